//! Everything that runs in a child between `fork` (or `clone3`) and `exec`.
//!
//! **The rule of this file: no allocation and no lock.** The parent may have other threads,
//! and a thread that held the allocator's lock, stdout's lock or the C library's environment
//! lock at the moment of the fork does not exist in the child to release it. So the code
//! here makes system calls (through `libc` or `syscall`) on memory prepared before the fork,
//! formats numbers into stack buffers, and reports failures as an errno through a pipe. The
//! one exception, `setenv` for `pass_listen_pid` under [`Launch::spawn`], is refused in a
//! process with other threads before the fork. Anything that allocates (building `argv`,
//! the environment, the `PATH` candidates) belongs in the parent, in `spawn.rs`.
//!
//! On x86-64, `Launch::start`'s child shares the parent's memory (`clone3` with CLONE_VM, as
//! `posix_spawn` does) and runs on a stack of its own: on top of the rule above, whatever it
//! writes the parent sees, so it writes only its own stack, the `LISTEN_PID` slot prepared
//! for it and `errno` (in the parent thread's TLS: that thread sleeps until the exec, and
//! reads the result of the clone from a register, not `errno`). It is born with every caught
//! signal at its default action (CLONE_CLEAR_SIGHAND) and every signal blocked until its last
//! step, so no handler of the parent's ever runs in it. A child that changes its user is
//! forked instead (see `Launch::start`).

use std::os::fd::RawFd;

#[cfg(target_arch = "x86_64")]
use super::Shared;
use super::{Group, Launch, Prepared, STEP_CGROUP, STEP_CWD, STEP_EXEC, STEP_SETUP, STEP_STDIO};
use crate::pid::Pid;
use crate::signal::{Disposition, Signal, SignalSet};
use crate::sys;

impl Launch<'_> {
    /// The setup itself, in the forked child.
    pub(super) fn in_child(&self, cgroup: Option<RawFd>, parent: Pid, rewrite_listen_pid: bool) -> std::io::Result<()> {
        if let Some(dir) = cgroup {
            join_cgroup(dir)?;
        }
        self.setup(parent, rewrite_listen_pid, None)
    }

    /// Everything but the cgroup, in the child. `restore` is the kernel's signal mask to end
    /// with when the launch sets none (a child of `clone_vm` starts with every signal
    /// blocked).
    fn setup(&self, parent: Pid, rewrite_listen_pid: bool, restore: Option<u64>) -> std::io::Result<()> {
        match self.group {
            Group::Inherit => {}
            // SAFETY: setpgid(0, 0) on ourselves; no memory is passed.
            Group::Own => drop(sys::cvt(unsafe { libc::setpgid(0, 0) })?),
            // SAFETY: setsid on ourselves; no memory is passed.
            Group::Session => drop(sys::cvt(unsafe { libc::setsid() })?),
        }
        if self.foreground {
            match self.group {
                Group::Own => {
                    // A background group that calls tcsetpgrp gets SIGTTOU unless the signal
                    // is blocked: block it for the call.
                    let mut ttou = SignalSet::empty();
                    ttou.insert(Signal::TTOU);
                    let mut old = SignalSet::empty();
                    // SAFETY: both sets are valid sigset_t values (SignalSet is
                    // repr(transparent)); tcsetpgrp takes a descriptor and our own PID.
                    // ENOTTY or ENXIO (no terminal) are fine: the child runs on.
                    unsafe {
                        libc::pthread_sigmask(libc::SIG_BLOCK, ttou.as_raw(), (&mut old as *mut SignalSet).cast());
                        libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
                        libc::pthread_sigmask(libc::SIG_SETMASK, old.as_raw(), std::ptr::null_mut());
                    }
                }
                // SAFETY: TIOCSCTTY with argument 0 on standard input; failure (no terminal,
                // or one owned by another session) leaves the child without one.
                Group::Session => drop(unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCSCTTY, 0) }),
                Group::Inherit => {}
            }
        }
        if let Some(creds) = &self.credentials {
            // The system calls themselves, not glibc's wrappers: in a process with threads,
            // glibc's setgroups/setgid/setuid make every thread change too (it signals each
            // one and waits), and in a child started by `clone3` glibc still believes the
            // parent's threads are there, so the child waits for them for ever. In the child
            // there is one thread, and credentials are per thread: the call is the change.
            // SAFETY: the pointer and length describe the `groups` vector, alive for the call.
            sys::cvt_long(unsafe { libc::syscall(libc::SYS_setgroups, creds.groups.len(), creds.groups.as_ptr()) })?;
            // SAFETY: setgid with a plain number.
            sys::cvt_long(unsafe { libc::syscall(libc::SYS_setgid, creds.gid) })?;
            // SAFETY: setuid with a plain number (last: it drops the right to do the above).
            sys::cvt_long(unsafe { libc::syscall(libc::SYS_setuid, creds.uid) })?;
        }
        if let Some(signal) = self.parent_death_signal {
            // SAFETY: prctl with a signal number; no memory is passed.
            sys::cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal.as_raw() as libc::c_ulong, 0, 0, 0) })?;
            // SAFETY: getppid has no preconditions.
            if unsafe { libc::getppid() } != parent.as_raw() {
                // The parent is already gone: the signal will never come, so send it. Not
                // raise(): glibc's raise signals the thread its thread block names, which in a
                // child of `clone3` is the parent's thread.
                // SAFETY: kill of ourselves (getpid is the system call) with a valid signal.
                unsafe { libc::kill(libc::getpid(), signal.as_raw()) };
            }
        }
        for &(signal, disposition) in &self.dispositions {
            let handler = match disposition {
                Disposition::Ignore => libc::SIG_IGN,
                Disposition::Default | Disposition::Handler => libc::SIG_DFL,
            };
            set_disposition(signal.as_raw(), handler);
        }
        if rewrite_listen_pid {
            // Not std::env::set_var: Command::spawn holds std's environment lock across the
            // fork, so in this child it is locked for good. libc's setenv takes glibc's own
            // lock, free in a single-threaded parent (the contract of `pass_listen_pid`); the
            // number is formatted without allocating.
            let mut digits = [0u8; 12];
            // SAFETY: getpid has no preconditions.
            let i = decimal(unsafe { libc::getpid() } as u32, &mut digits);
            // SAFETY: both strings are NUL-terminated and live for the call.
            unsafe { libc::setenv(c"LISTEN_PID".as_ptr(), digits[i..].as_ptr().cast(), 1) };
        }
        if let Some(text) = &self.announce {
            // SAFETY: a write of a valid buffer to standard error.
            unsafe { libc::write(libc::STDERR_FILENO, text.as_ptr().cast(), text.len()) };
        }
        // Last, so that nothing above runs with signals unblocked.
        if let Some(mask) = &self.signal_mask {
            // SAFETY: a valid sigset_t; the old mask is not wanted.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask.as_raw(), std::ptr::null_mut()) };
        } else if let Some(raw) = restore {
            sys::set_signal_mask(raw)?;
        }
        Ok(())
    }

    /// The child's side of `start`: system calls only, then `execve`; on failure, the step
    /// and errno go to `report` and the child ends with status 127. `shared_mask` is given in
    /// a child that shares the parent's memory and starts with every signal blocked: that
    /// mask (the parent's, as the kernel keeps it, before it blocked everything) is the one to
    /// end with.
    pub(super) fn exec_child(
        &self,
        prepared: &Prepared,
        mut stdio: [Option<RawFd>; 3],
        join: Option<RawFd>,
        parent: Pid,
        report: RawFd,
        shared_mask: Option<u64>,
    ) -> ! {
        let fail = |step: u8, errno: i32| -> ! {
            let e = errno.to_le_bytes();
            let msg = [step, e[0], e[1], e[2], e[3]];
            // SAFETY: a write of a valid buffer to the report pipe, then _exit.
            unsafe {
                libc::write(report, msg.as_ptr().cast(), msg.len());
                libc::_exit(127)
            }
        };
        let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
        if let Some(dir) = join {
            if let Err(e) = join_cgroup(dir) {
                fail(STEP_CGROUP, e.raw_os_error().unwrap_or(libc::EIO));
            }
        }
        // A stream whose descriptor is another stream's number (0..2) moves out of the way
        // first, so that no dup2 below overwrites a source still to be used.
        for (target, fd) in stdio.iter_mut().enumerate() {
            if let Some(f) = fd {
                if *f < 3 && *f != target as RawFd {
                    // SAFETY: fcntl on a descriptor we hold; no memory is passed.
                    let moved = unsafe { libc::fcntl(*f, libc::F_DUPFD_CLOEXEC, 3) };
                    if moved < 0 {
                        fail(STEP_STDIO, errno());
                    }
                    *f = moved;
                }
            }
        }
        for (target, fd) in stdio.iter().enumerate() {
            let Some(f) = *fd else { continue };
            // SAFETY: fcntl and dup2 on descriptors we hold; no memory is passed. dup2's copy
            // does not have close-on-exec; a stream already in place has it cleared.
            let ok = unsafe {
                if f == target as RawFd { libc::fcntl(f, libc::F_SETFD, 0) } else { libc::dup2(f, target as RawFd) }
            };
            if ok < 0 {
                fail(STEP_STDIO, errno());
            }
        }
        if let Some(cwd) = &prepared.cwd {
            // SAFETY: a NUL-terminated path prepared before the fork.
            if unsafe { libc::chdir(cwd.as_ptr()) } != 0 {
                fail(STEP_CWD, errno());
            }
        }
        if let Err(e) = self.setup(parent, false, shared_mask) {
            fail(STEP_SETUP, e.raw_os_error().unwrap_or(libc::EIO));
        }
        if let Some(at) = prepared.listen_pid_at {
            let mut digits = [0u8; 12];
            // SAFETY: getpid has no preconditions.
            let from = decimal(unsafe { libc::getpid() } as u32, &mut digits);
            // SAFETY: `at` has room for 12 bytes (see `Prepared::new`) in a buffer that only
            // this start uses: our own copy after a fork, or, sharing the parent's memory, the
            // parent's, which its starting thread leaves alone until we have exec'd.
            unsafe { std::ptr::copy_nonoverlapping(digits[from..].as_ptr(), at, digits.len() - from) };
        }
        // As execvp: a missing file moves on to the next directory; a file that exists but
        // cannot be run is remembered and reported if nothing else runs.
        let mut seen_eacces = false;
        let mut last = libc::ENOENT;
        for path in &prepared.candidates {
            // SAFETY: NUL-terminated strings and NULL-terminated arrays that live until here.
            unsafe { libc::execve(path.as_ptr(), prepared.argv_ptrs.as_ptr(), prepared.envp_ptrs.as_ptr()) };
            last = errno();
            match last {
                libc::EACCES => seen_eacces = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => fail(STEP_EXEC, last),
            }
        }
        fail(STEP_EXEC, if seen_eacces { libc::EACCES } else { last })
    }
}

/// Where a child of `sys::clone_vm` starts, on its own stack.
#[cfg(target_arch = "x86_64")]
pub(super) extern "C" fn shared_entry(arg: *mut libc::c_void) -> ! {
    // SAFETY: `arg` is the `Shared` that `Launch::start` keeps in its frame, and that frame
    // lives until this child has exec'd or exited (CLONE_VFORK keeps the caller asleep).
    let shared = unsafe { &*arg.cast::<Shared<'_>>() };
    shared.launch.exec_child(
        shared.prepared,
        shared.stdio,
        shared.join,
        shared.parent,
        shared.report,
        Some(shared.mask),
    )
}

/// Sets `signal` to SIG_IGN or SIG_DFL by the system call itself: the C library's wrapper
/// may take a lock (musl's does for SIGABRT), and in a child that shares our memory that lock
/// is the parent's.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn set_disposition(signal: libc::c_int, handler: libc::sighandler_t) {
    /// The kernel's `struct sigaction` on x86-64 and aarch64.
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let action = KernelSigaction { handler, flags: 0, restorer: 0, mask: 0 };
    // SAFETY: rt_sigaction with a valid action for SIG_IGN or SIG_DFL (no function, so no
    // restorer), no old action wanted, and the kernel's 8-byte set size.
    unsafe {
        libc::syscall(libc::SYS_rt_sigaction, signal, &action as *const KernelSigaction, std::ptr::null_mut::<u8>(), 8)
    };
}

/// Elsewhere (no child shares our memory there) through the C library.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn set_disposition(signal: libc::c_int, handler: libc::sighandler_t) {
    // SAFETY: SIG_IGN and SIG_DFL need no function behind them.
    unsafe { libc::signal(signal, handler) };
}

/// Moves the calling process into the cgroup whose directory is open as `dir`, by writing
/// `0` to its `cgroup.procs`. Async-signal-safe.
fn join_cgroup(dir: RawFd) -> std::io::Result<()> {
    // SAFETY: openat with a NUL-terminated literal relative to a directory descriptor the
    // caller keeps open.
    let procs = sys::cvt(unsafe { libc::openat(dir, c"cgroup.procs".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) })?;
    // SAFETY: a one-byte write from a static buffer to the descriptor just opened.
    let written = unsafe { libc::write(procs, b"0".as_ptr().cast(), 1) };
    let result = if written == 1 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
    // SAFETY: closing the descriptor opened above, used by nothing else.
    unsafe { libc::close(procs) };
    result
}

/// Writes `n` in decimal, NUL-terminated, at the end of `out`; returns where it starts.
/// Allocates nothing, for use between fork and exec.
fn decimal(mut n: u32, out: &mut [u8; 12]) -> usize {
    let mut i = out.len() - 1;
    out[i] = 0;
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return i;
        }
    }
}
