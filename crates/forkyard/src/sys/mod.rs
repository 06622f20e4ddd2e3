//! Thin, checked wrappers over the raw system calls the rest of the crate needs.
//!
//! Why this module exists: nearly every `unsafe` call into the kernel lives here, each with
//! its `SAFETY` note, so the modules above deal in safe functions, `io::Result` and owned file
//! descriptors. (The exceptions are the calls that must run between `fork` and `_exit`, which
//! stay next to the fork so their async-signal-safety can be read in one place.) One file per
//! concern: descriptors (`fd`), processes (`process`), `epoll`, and mapped memory (`mem`);
//! everything is re-exported here, so callers write `sys::pipe`, `sys::waitid`.

use std::io;
use std::time::Duration;

mod epoll;
mod fd;
mod mem;
mod process;

pub(crate) use epoll::Epoll;
pub(crate) use fd::*;
pub(crate) use mem::SharedMem;
pub(crate) use process::*;

/// Turns a `-1` return into the thread's `errno`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Turns the -1 of `libc::syscall` (a `c_long`) into the `errno` error.
pub(crate) fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// `CLOCK_MONOTONIC` as a `Duration` since an arbitrary fixed point: comparable across
/// processes on the same machine, unlike `Instant`.
pub(crate) fn monotonic_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is valid for writes; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
