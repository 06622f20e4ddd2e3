//! Thin, checked wrappers over the raw system calls the rest of the crate needs.
//!
//! Why this module exists: nearly every `unsafe` call into the kernel lives here, each with
//! its `SAFETY` note, so the modules above deal in safe functions, `io::Result` and owned file
//! descriptors. (The exceptions are the calls that must run between `fork` and `_exit`, which
//! stay next to the fork so their async-signal-safety can be read in one place.)

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::pid::Pid;

/// Turns a `-1` return into the thread's `errno`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Turns the -1 of `libc::syscall` (a `c_long`) into the `errno` error.
pub(crate) fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// A pipe whose two ends are closed on `exec`, so no program we start inherits them.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    pipe_with(0)
}

/// A close-on-exec pipe with extra `pipe2` flags (`O_NONBLOCK` on both ends, say).
pub(crate) fn pipe_with(flags: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | flags) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets or clears `O_NONBLOCK` on a descriptor.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL on a valid descriptor reads its flags; no memory is passed.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let flags = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
    // SAFETY: F_SETFL with an int argument on a valid descriptor.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) })?;
    Ok(())
}

/// `read(2)`, retried on `EINTR`.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the buffer is valid for `buf.len()` writable bytes.
    unsafe { read_raw(fd, buf.as_mut_ptr(), buf.len()) }
}

/// `read(2)` into raw memory, retried on `EINTR`.
///
/// # Safety
///
/// `buf` must be valid for `len` writable bytes.
pub(crate) unsafe fn read_raw(fd: BorrowedFd<'_>, buf: *mut u8, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: the caller guarantees `buf` is valid for `len` writable bytes.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.cast(), len) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `read(2)` into the spare capacity of `data`, retried on `EINTR`; returns the bytes added.
pub(crate) fn read_spare(fd: BorrowedFd<'_>, data: &mut Vec<u8>) -> io::Result<usize> {
    let spare = data.spare_capacity_mut();
    // SAFETY: the spare capacity is valid for `spare.len()` writable bytes.
    let n = unsafe { read_raw(fd, spare.as_mut_ptr().cast(), spare.len()) }?;
    // SAFETY: the kernel initialised the `n` bytes past the old length, all we claim.
    unsafe { data.set_len(data.len() + n) };
    Ok(n)
}

/// A close-on-exec eventfd, used as a one-shot "wake up" from a child.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes an initial value and flags; it returns a new descriptor.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) })?;
    // SAFETY: the call succeeded, so `fd` is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How many bytes a pipe holds (`F_GETPIPE_SZ`).
pub(crate) fn pipe_capacity(fd: BorrowedFd<'_>) -> io::Result<usize> {
    // SAFETY: F_GETPIPE_SZ on a valid descriptor returns an int; no memory is passed.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) }).map(|n| n as usize)
}

/// Writes the whole buffer (a blocking descriptor is assumed), retrying on `EINTR` and short
/// writes.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: the buffer is valid for `buf.len()` readable bytes.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// [`write_all`] for a freshly forked child, through `syscall()`.
///
/// `fork` does not copy the page-table entries of code pages (they are file-backed), so a
/// child takes a minor fault on every distinct code page it runs. Sending the child's few
/// system calls through the one `syscall()` entry point instead of a libc wrapper each
/// measurably shortens `run_in_child` (see docs/benchmarks.md).
/// A non-blocking descriptor is waited on with `poll` when full.
pub(crate) fn child_write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: write(fd, buf, len) with a buffer valid for `buf.len()` readable bytes.
        let n = unsafe { libc::syscall(libc::SYS_write, fd.as_raw_fd(), buf.as_ptr(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    let mut fds = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 }];
                    poll(&mut fds, None)?;
                    continue;
                }
                _ => return Err(err),
            }
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// One `write(2)` on a non-blocking descriptor: how much went in (0 if the pipe is full).
pub(crate) fn write_some(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the buffer is valid for `buf.len()` readable bytes.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(err),
        }
    }
}

/// Milliseconds for `poll`/`epoll_wait`: rounded up so a short timeout never becomes a busy
/// loop, `-1` for "forever".
pub(crate) fn poll_timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

/// `poll(2)` once; `EINTR` is reported as zero ready descriptors so the caller re-checks its
/// own deadline.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, poll_timeout_ms(timeout)) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(err);
    }
    Ok(n as usize)
}

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

/// An epoll instance, for waiting on many descriptors with no per-call cost in their number.
pub(crate) struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes a flags word and returns a new descriptor.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: the call succeeded, so `fd` is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    pub(crate) fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: both descriptors are valid and `ev` is a valid event for the call to read.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) }).map(drop)
    }

    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: both descriptors are valid; EPOLL_CTL_DEL ignores the event pointer.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd.as_raw_fd(), std::ptr::null_mut()) })
            .map(drop)
    }

    /// Waits for readiness; returns the tokens of the ready descriptors (none on timeout or
    /// `EINTR`).
    pub(crate) fn wait(&self, out: &mut Vec<u64>, timeout: Option<Duration>) -> io::Result<()> {
        out.clear();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // SAFETY: `events` is a valid writable array of 64 entries.
        let n = unsafe {
            libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, poll_timeout_ms(timeout))
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(err);
        }
        out.extend(events[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }
}

/// `CLOCK_MONOTONIC` as a `Duration` since an arbitrary fixed point: comparable across
/// processes on the same machine, unlike `Instant`.
pub(crate) fn monotonic_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is valid for writes; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Anonymous memory shared with the children forked after its creation (`MAP_SHARED`):
/// writes on either side are seen by the other, unlike the rest of a forked child's memory.
pub(crate) struct SharedMem {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

impl SharedMem {
    pub(crate) fn new(len: usize) -> io::Result<SharedMem> {
        // SAFETY: an anonymous shared mapping; no file, no fixed address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast()).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Ok(SharedMem { ptr, len })
    }

    /// The `i`-th 32-bit slot, as an atomic (the mapping is page-aligned and zero-filled).
    pub(crate) fn slot(&self, i: usize) -> &std::sync::atomic::AtomicU32 {
        assert!((i + 1) * 4 <= self.len, "slot {i} is outside the shared mapping");
        // SAFETY: the slot lies inside the mapping (checked above), is 4-byte aligned (the
        // mapping is page-aligned), lives as long as `self`, and is only ever accessed
        // atomically.
        unsafe { &*self.ptr.as_ptr().add(i * 4).cast::<std::sync::atomic::AtomicU32>() }
    }
}

impl Drop for SharedMem {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping we made; no reference into it outlives self.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
