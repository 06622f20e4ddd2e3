//! Descriptors: pipes, eventfds, reads, writes and `poll`, each retried on `EINTR` where a
//! caller would otherwise have to.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::cvt;

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
