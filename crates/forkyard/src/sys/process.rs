//! Processes: `clone3`, pidfds, `kill` and the wait calls, returning what the kernel gave
//! (the `status` module decodes the wait data).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};

use super::cvt;
use crate::pid::Pid;

/// `pidfd_open(2)`: a descriptor that names this one process and can never name a stranger
/// that later reuses its number.
pub(crate) fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and a flags word; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // The kernel sets O_CLOEXEC on pidfds itself.
    // SAFETY: the call succeeded, so `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, a null siginfo (the kernel fills in a
    // SI_USER one) and zero flags.
    let ret = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal, std::ptr::null::<libc::siginfo_t>(), 0)
    };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// One side of a process made by [`clone_into_cgroup`].
pub(crate) enum Cloned {
    /// In the new process.
    Child,
    /// In the caller: the new process and a pidfd for it.
    Parent(Pid, OwnedFd),
}

/// `struct clone_args` of `clone3(2)`, up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3(2)` used as `fork`, with the child born in the cgroup v2 directory `cgroup`
/// (Linux 5.7+) and a pidfd for it. Being born there costs nothing, where moving a process
/// by writing to `cgroup.procs` waits for an RCU grace period (milliseconds). `Err` with
/// ENOSYS, EINVAL or E2BIG means this kernel cannot do it: fork and join instead.
///
/// # Safety
///
/// As for `fork`: until it calls `execve` or `_exit`, the child may only make
/// async-signal-safe calls, and it must never return into the caller's normal flow.
pub(crate) unsafe fn clone_into_cgroup(cgroup: RawFd) -> io::Result<Cloned> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        // CLONE_VFORK: the caller sleeps until the child has exec'd (or exited), so the two do
        // not fight over copy-on-write pages on the way to the exec.
        flags: CLONE_PIDFD | CLONE_INTO_CGROUP | CLONE_VFORK,
        pidfd: (&mut pidfd as *mut libc::c_int) as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size we pass, and `pidfd` outlives the
    // call; with no stack given, the child continues on a copy of ours, like fork. The
    // caller upholds the rules for the child.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Cloned::Child),
        pid => {
            let pid = Pid::new(pid as i32).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?;
            // SAFETY: with CLONE_PIDFD, a successful clone3 stored a fresh descriptor we own.
            Ok(Cloned::Parent(pid, unsafe { OwnedFd::from_raw_fd(pidfd) }))
        }
    }
}

/// A stack for a child made by [`clone_vm`]: anonymous memory with an inaccessible page below
/// it, so that a child that overflowed it would fault instead of writing over the parent's
/// memory (which it shares).
pub(crate) struct ChildStack {
    map: std::ptr::NonNull<libc::c_void>,
    len: usize,
}

impl ChildStack {
    /// Bytes of stack, guard page not counted. The child's code between clone and exec is a
    /// few frames of system calls (spawn/child.rs), far below this.
    const SIZE: usize = 64 * 1024;
    const GUARD: usize = 4096;

    pub(crate) fn new() -> io::Result<ChildStack> {
        let len = ChildStack::SIZE + ChildStack::GUARD;
        // SAFETY: a private anonymous mapping; no file, no fixed address.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = std::ptr::NonNull::new(map).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let stack = ChildStack { map, len };
        // SAFETY: the first page of the mapping just made, which nothing references.
        cvt(unsafe { libc::mprotect(map.as_ptr(), ChildStack::GUARD, libc::PROT_NONE) })?;
        Ok(stack)
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping we made; a child that used it has exec'd or
        // exited before `clone_vm` returned (CLONE_VFORK).
        unsafe { libc::munmap(self.map.as_ptr(), self.len) };
    }
}

/// The function a child made by [`clone_vm`] runs, on its own stack, with the argument given
/// to `clone_vm`. It must end in `execve` or `_exit`.
pub(crate) type ChildEntry = extern "C" fn(*mut libc::c_void) -> !;

/// `clone3(2)` as `posix_spawn` uses `clone`: the child shares our memory (CLONE_VM) and runs
/// `entry(arg)` on `stack`, while the calling thread sleeps until the child has called
/// `execve` or exited (CLONE_VFORK). With `cgroup`, the child is born in that cgroup v2
/// directory. Returns the child and a pidfd for it.
///
/// Why: a `fork` copies the caller's page tables and marks its memory copy-on-write, and the
/// exec then tears the copy down. For a supervisor holding a few megabytes, that was most of
/// the time from a service's death to its replacement's first instruction (ftrace: 200 µs in
/// `clone3` against 64 µs for a small C program's `fork`); sharing the memory costs neither.
///
/// `Err` with ENOSYS, EINVAL or E2BIG means this kernel cannot do it (with `cgroup`: perhaps
/// only CLONE_INTO_CGROUP): try without `cgroup`, then fork.
///
/// # Safety
///
/// The child runs in our memory, on `stack`, while other threads of ours may run. `entry` may
/// only make async-signal-safe system calls on memory that stays valid and unchanged until
/// the child execs (the caller's frame qualifies: the calling thread sleeps until then); it
/// must not allocate, take a lock, unwind or return. Every signal must be blocked in the
/// calling thread across the call ([`block_every_signal`]); the child starts with every
/// caught signal at its default action (CLONE_CLEAR_SIGHAND), so none of our handlers can run
/// in it once it unblocks them.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn clone_vm(
    cgroup: Option<RawFd>,
    stack: &ChildStack,
    entry: ChildEntry,
    arg: *mut libc::c_void,
) -> io::Result<(Pid, OwnedFd)> {
    const CLONE_VM: u64 = 0x100;
    // Every caught signal back to the default in the child (ignored ones stay ignored),
    // Linux 5.5+: no handler of ours can run on our memory in the child.
    const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: CLONE_VM
            | CLONE_VFORK
            | CLONE_PIDFD
            | CLONE_CLEAR_SIGHAND
            | if cgroup.is_some() { CLONE_INTO_CGROUP } else { 0 },
        pidfd: (&mut pidfd as *mut libc::c_int) as u64,
        exit_signal: libc::SIGCHLD as u64,
        // The kernel starts the child at `stack + stack_size` (the stack grows down): the top
        // of the mapping, page-aligned and so 16-byte aligned, as the x86-64 ABI wants at a
        // call.
        stack: stack.map.as_ptr() as u64 + ChildStack::GUARD as u64,
        stack_size: ChildStack::SIZE as u64,
        cgroup: cgroup.map_or(0, |fd| fd as u64),
        ..CloneArgs::default()
    };
    let ret: i64;
    // SAFETY: `args` is a valid clone_args of the size passed, and `pidfd` outlives the call.
    // In the parent, `syscall` changes only rax (the result), rcx and r11 (declared); the
    // registers holding `entry` and `arg` are not among them (`out`, not `lateout`, so the
    // inputs are not placed there). In the child (rax = 0) execution goes on at the next
    // instruction on the new stack: it clears the frame pointer, calls `entry(arg)`, which
    // never returns (`ud2` traps if it did), and never reaches the code after this block.
    // The caller upholds the rules above for what `entry` does.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, {arg}",
            "call {entry}",
            "ud2",
            "2:",
            entry = in(reg) entry,
            arg = in(reg) arg,
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") &mut args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            out("rcx") _,
            out("r11") _,
        );
    }
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret as i32));
    }
    let pid = Pid::new(ret as i32).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: with CLONE_PIDFD, a successful clone3 stored a fresh descriptor we own.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}

/// Blocks every signal in the calling thread, the C library's own included (glibc keeps 32
/// and 33 out of `pthread_sigmask`, musl 32 to 34), and returns the previous mask as the
/// kernel's 64-bit set, for [`set_signal_mask`].
pub(crate) fn block_every_signal() -> io::Result<u64> {
    let all: u64 = !0;
    let mut old: u64 = 0;
    // SAFETY: rt_sigprocmask with valid pointers to 8-byte sets and their size.
    let ret = unsafe {
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_BLOCK, &all as *const u64, &mut old as *mut u64, 8)
    };
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(old) }
}

/// Sets the calling thread's signal mask to the kernel's 64-bit set `mask`, exactly (the C
/// library's own signals included).
pub(crate) fn set_signal_mask(mask: u64) -> io::Result<()> {
    // SAFETY: rt_sigprocmask with a valid pointer to an 8-byte set and its size.
    let ret = unsafe {
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &mask as *const u64, std::ptr::null_mut::<u64>(), 8)
    };
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Whether this kernel has pidfds, probed once on our own PID.
pub(crate) fn pidfds_available() -> bool {
    // 0: unknown, 1: yes, 2: no.
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let yes = match pidfd_open(Pid::this()) {
                Ok(_) => true,
                // Only "the kernel has no such call" means no; a full descriptor table is a
                // passing condition, not a property of the kernel.
                Err(e) => e.raw_os_error() != Some(libc::ENOSYS),
            };
            STATE.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
            yes
        }
    }
}

/// `kill(2)` on one process.
pub(crate) fn kill(pid: Pid, signal: i32) -> io::Result<()> {
    // SAFETY: kill takes two ints; a positive pid names exactly one process.
    cvt(unsafe { libc::kill(pid.as_raw(), signal) }).map(drop)
}

/// `kill(2)` on a whole process group.
pub(crate) fn kill_group(pgid: Pid, signal: i32) -> io::Result<()> {
    // SAFETY: kill takes two ints; a negative pid names the process group.
    cvt(unsafe { libc::kill(-pgid.as_raw(), signal) }).map(drop)
}

/// How the kernel packed what a wait call collected; the `status` module decodes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RawStatus {
    /// The `int` of `wait4`.
    Wait(libc::c_int),
    /// The `si_code` and `si_status` of `waitid`.
    Siginfo { code: libc::c_int, status: libc::c_int },
}

/// What a wait call collected, as the kernel gave it.
#[derive(Clone, Copy)]
pub(crate) struct RawWait {
    pub pid: Pid,
    pub status: RawStatus,
    pub rusage: libc::rusage,
}

/// `wait4(2)`: `pid` is -1 for any child. `Ok(None)` when `WNOHANG` found nothing ready.
/// Blocking calls are retried on `EINTR`.
pub(crate) fn wait4(pid: i32, options: libc::c_int) -> io::Result<Option<RawWait>> {
    loop {
        let mut status: libc::c_int = 0;
        let mut ru = MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: both out-pointers are valid for writes of their types.
        let ret = unsafe { libc::wait4(pid, &mut status, options, ru.as_mut_ptr()) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        let Some(pid) = Pid::new(ret) else {
            return Ok(None);
        };
        // SAFETY: the buffer was zero-initialised and the kernel filled it in.
        let rusage = unsafe { ru.assume_init() };
        return Ok(Some(RawWait { pid, status: RawStatus::Wait(status), rusage }));
    }
}

/// The raw `waitid` system call, which (unlike glibc's wrapper) also returns the child's
/// resource usage. `idtype` is `P_PID`, `P_PIDFD` or `P_ALL`. Blocking calls are retried on
/// `EINTR`.
pub(crate) fn waitid(idtype: libc::idtype_t, id: i32, options: libc::c_int) -> io::Result<Option<RawWait>> {
    loop {
        // Zeroed so that si_pid reads 0 when WNOHANG finds nothing (the kernel leaves it).
        let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
        let mut ru = MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: both out-pointers are valid for writes of their types; the other arguments
        // are plain integers.
        let ret = unsafe { libc::syscall(libc::SYS_waitid, idtype, id, info.as_mut_ptr(), options, ru.as_mut_ptr()) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // SAFETY: zero-initialised, then possibly filled in by the kernel.
        let info = unsafe { info.assume_init() };
        // SAFETY: for SIGCHLD-style siginfo from waitid, si_pid and si_status are the valid
        // union members.
        let (raw_pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        let Some(pid) = Pid::new(raw_pid) else {
            return Ok(None);
        };
        // SAFETY: as above.
        let rusage = unsafe { ru.assume_init() };
        return Ok(Some(RawWait { pid, status: RawStatus::Siginfo { code: info.si_code, status }, rusage }));
    }
}
