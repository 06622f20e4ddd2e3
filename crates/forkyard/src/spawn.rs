//! Starting a program in a child process with a clean slate.
//!
//! Why this module exists: signal masks and ignored signals survive `fork` and `exec`, so a
//! supervisor that blocks signals for itself would start its services with SIGTERM blocked
//! unless it hands back what it inherited. An init must also put the child in its own process
//! group (or session), give it the terminal, and never let it outlive a dead parent.
//! [`Launch`] describes that setup; [`Launch::spawn`] applies it to a
//! `std::process::Command` (which keeps doing what it does well: arguments, environment,
//! working directory, standard streams, `PATH` search, and reporting a failed `exec` back to
//! the parent) and returns a pidfd-backed [`Child`].

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::error::{Error, Result};
use crate::{Child, Disposition, Pid, Signal, SignalSet, sys};

/// Where the child sits among process groups and sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Group {
    /// The parent's group (what `std::process` does).
    #[default]
    Inherit,
    /// A new process group led by the child, so a signal can reach it and everything it
    /// starts at once (`kill(-pid)`).
    Own,
    /// A new session (and group) led by the child; with [`Launch::foreground`] the terminal
    /// on standard input becomes its controlling terminal, as dumb-init does.
    Session,
}

/// The user and groups a child runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The user ID.
    pub uid: u32,
    /// The primary group ID.
    pub gid: u32,
    /// Supplementary groups (the user's, from `getgrouplist`, when switching users).
    pub groups: Vec<u32>,
}

/// How a child is set up between `fork` and `exec`.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// Process group or session.
    pub group: Group,
    /// With [`Group::Own`]: make the child's group the foreground group of the terminal on
    /// standard input. With [`Group::Session`]: make that terminal the session's controlling
    /// terminal. No terminal is not an error.
    pub foreground: bool,
    /// The child's signal mask (`None`: whatever the calling thread has).
    pub signal_mask: Option<SignalSet>,
    /// Dispositions to set in the child, typically the ones the caller inherited for signals
    /// it changed for itself.
    pub dispositions: Vec<(Signal, Disposition)>,
    /// A signal the child receives if this process dies first.
    pub parent_death_signal: Option<Signal>,
    /// Run as this user (needs privilege); `None` keeps ours.
    pub credentials: Option<Credentials>,
    /// Bytes the child writes to standard error once its setup is done, just before `exec`.
    pub announce: Option<Vec<u8>>,
    /// An open `cgroup.procs` (of a cgroup v2) that the child joins by writing `0` to it
    /// first thing, so that everything it starts stays in that cgroup. The caller keeps the
    /// descriptor open until `spawn` returns.
    pub join_cgroup: Option<std::os::fd::RawFd>,
    /// If `LISTEN_PID` (socket activation) names this process, rename it to the child, which
    /// is the one that will use the sockets (catatonit does this). Only for a command without
    /// environment changes of its own (`Command::env`), whose `exec` reads the live
    /// environment.
    pub pass_listen_pid: bool,
}

impl Launch {
    /// Starts `command` with this setup.
    ///
    /// A failed `exec` (no such program, not executable) is returned as [`Error::Sys`] with
    /// call `exec` and the kernel's `errno`, after the failed child has been collected.
    ///
    /// The setup runs in the forked child before `exec`. It makes only system calls, except
    /// for `pass_listen_pid`, which edits the environment and so is safe only in a
    /// single-threaded process.
    pub fn spawn(&self, command: &mut Command) -> Result<Child> {
        let setup = self.clone();
        let parent = Pid::this();
        let listen_pid = if setup.pass_listen_pid {
            std::env::var("LISTEN_PID").ok().filter(|v| v.trim() == parent.as_raw().to_string())
        } else {
            None
        };
        // SAFETY: the closure runs in the child between fork and exec. It makes system calls
        // only (setpgid, setsid, ioctl, tcsetpgrp, setgroups, setgid, setuid, prctl,
        // getppid, sigaction, pthread_sigmask), none of which allocates or takes a lock,
        // except the LISTEN_PID rewrite, documented above as single-threaded only.
        unsafe {
            command.pre_exec(move || setup.in_child(parent, listen_pid.is_some()));
        }
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command.spawn().map_err(|e| Error::sys("exec", format!("'{program}'"), e))?;
        let pid = Pid::new(child.id() as i32)
            .ok_or_else(|| Error::sys("fork", format!("'{program}'"), std::io::ErrorKind::InvalidData.into()))?;
        // std's handle is dropped without waiting; ours, with a pidfd, takes over.
        drop(child);
        Ok(Child::fresh(pid))
    }

    /// The setup itself, in the forked child.
    fn in_child(&self, parent: Pid, rewrite_listen_pid: bool) -> std::io::Result<()> {
        if let Some(fd) = self.join_cgroup {
            // SAFETY: a two-byte write from a static buffer to a descriptor the caller keeps
            // open.
            if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
                return Err(std::io::Error::last_os_error());
            }
        }
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
            // SAFETY: the pointer and length describe the `groups` vector, alive for the call.
            sys::cvt(unsafe { libc::setgroups(creds.groups.len(), creds.groups.as_ptr()) })?;
            // SAFETY: setgid with a plain number.
            sys::cvt(unsafe { libc::setgid(creds.gid) })?;
            // SAFETY: setuid with a plain number (last: it drops the right to do the above).
            sys::cvt(unsafe { libc::setuid(creds.uid) })?;
        }
        if let Some(signal) = self.parent_death_signal {
            // SAFETY: prctl with a signal number; no memory is passed.
            sys::cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal.as_raw() as libc::c_ulong, 0, 0, 0) })?;
            // SAFETY: getppid has no preconditions.
            if unsafe { libc::getppid() } != parent.as_raw() {
                // The parent is already gone: the signal will never come, so raise it.
                // SAFETY: raise with a valid signal number.
                unsafe { libc::raise(signal.as_raw()) };
            }
        }
        for &(signal, disposition) in &self.dispositions {
            let handler = match disposition {
                Disposition::Ignore => libc::SIG_IGN,
                Disposition::Default | Disposition::Handler => libc::SIG_DFL,
            };
            // SAFETY: SIG_IGN and SIG_DFL need no function behind them.
            unsafe { libc::signal(signal.as_raw(), handler) };
        }
        if rewrite_listen_pid {
            // Not std::env::set_var: Command::spawn holds std's environment lock across the
            // fork, so in this child it is locked for good. libc's setenv takes glibc's own
            // lock, free in a single-threaded parent (the contract of `pass_listen_pid`); the
            // number is formatted without allocating.
            let mut digits = [0u8; 24];
            // SAFETY: getpid has no preconditions.
            let mut n = unsafe { libc::getpid() } as u32;
            let mut i = digits.len() - 1; // digits[last] stays 0: the terminator
            loop {
                i -= 1;
                digits[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            // SAFETY: both strings are NUL-terminated and live for the call.
            unsafe { libc::setenv(c"LISTEN_PID".as_ptr(), digits[i..].as_ptr().cast(), 1) };
        }
        if let Some(text) = &self.announce {
            // SAFETY: a write of a valid buffer to standard error.
            unsafe { libc::write(libc::STDERR_FILENO, text.as_ptr().cast(), text.len()) };
        }
        if let Some(mask) = &self.signal_mask {
            // Last, so that nothing above runs with signals unblocked.
            // SAFETY: a valid sigset_t; the old mask is not wanted.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask.as_raw(), std::ptr::null_mut()) };
        }
        Ok(())
    }
}

/// The supplementary groups of `user` (whose primary group is `gid`), from the group
/// database, for [`Credentials::groups`]. Call it before forking: it reads files.
pub fn groups_of(user: &str, gid: u32) -> Result<Vec<u32>> {
    let name = std::ffi::CString::new(user)
        .map_err(|_| Error::Unsupported { what: "a user name with a NUL byte", why: format!("{user:?}") })?;
    let mut n: libc::c_int = 32;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        // SAFETY: `groups` has room for `n` entries and `n` is updated by the call.
        let ret = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if ret >= 0 {
            groups.truncate(n.max(0) as usize);
            return Ok(groups);
        }
        if n as usize <= groups.len() {
            n = groups.len() as libc::c_int * 2;
        }
    }
}
