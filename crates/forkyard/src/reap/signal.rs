//! The SIGCHLD strategy: a signalfd that becomes readable when a child changes state.
//!
//! Why a signalfd and not a handler: the seed's handler runs in signal context, where only
//! async-signal-safe calls are allowed, and must re-install itself on some Unixes. A
//! signalfd turns the signal into data read in the ordinary loop, with none of that. The
//! price is that SIGCHLD must be blocked in every thread, or the kernel hands it to a thread
//! that does not block it, where its default action (ignore) discards it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::signal::Signal;
use crate::signal::{SignalFd, SignalSet};
use crate::sys;

/// Blocks SIGCHLD in the calling thread, so that threads started from it afterwards
/// inherit the block. Call it at the top of `main` if you will create a
/// [`crate::Strategy::Signal`] reaper after starting threads.
///
/// ```
/// use forkyard::{Reaper, Scope, Signal, SignalSet, Strategy};
///
/// forkyard::reap::block_sigchld()?; // first thing: threads started later inherit the block
/// let worker = std::thread::spawn(|| SignalSet::thread_mask().map(|m| m.contains(Signal::CHLD)));
/// assert!(worker.join().expect("joined")?);
/// // So a SIGCHLD reaper is possible even now that there are threads.
/// let reaper = Reaper::new(Strategy::Signal, Scope::All)?;
/// # drop(reaper);
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn block_sigchld() -> Result<()> {
    [Signal::CHLD].into_iter().collect::<SignalSet>().block().map(drop)
}

pub(super) struct Sigchld {
    fd: SignalFd,
}

impl Sigchld {
    pub(super) fn new() -> Result<Sigchld> {
        block_sigchld()?;
        // With one thread, the block above is enough.
        let threads = crate::procs::thread_count().unwrap_or(2);
        if threads > 1
            && let Some(tid) = thread_not_blocking_sigchld()?
        {
            return Err(Error::Unsupported {
                what: "a SIGCHLD reaper",
                why: format!(
                    "thread {tid} of this process does not block SIGCHLD and would swallow it; \
                     call forkyard::reap::block_sigchld() before starting threads, or use Strategy::Pidfd"
                ),
            });
        }
        let set: SignalSet = [Signal::CHLD].into_iter().collect();
        Ok(Sigchld { fd: SignalFd::new(&set)? })
    }

    /// Reads and discards every pending SIGCHLD: one read stands for any number of exits,
    /// and the sweep that follows finds them all.
    pub(super) fn drain(&self) -> Result<()> {
        // SIGCHLD is a standard signal: at most one is pending, so one read empties it.
        self.fd.try_read()?;
        Ok(())
    }

    /// Sleeps until a SIGCHLD is pending or `timeout` passes.
    pub(super) fn wait(&self, timeout: Option<Duration>) -> Result<()> {
        let mut fds = [libc::pollfd { fd: self.fd.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        sys::poll(&mut fds, timeout).map_err(|e| Error::sys("poll", "the SIGCHLD signalfd", e))?;
        Ok(())
    }

    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The first thread of this process whose mask lets SIGCHLD through.
fn thread_not_blocking_sigchld() -> Result<Option<i32>> {
    let threads = crate::procs::thread_masks()?;
    Ok(threads.into_iter().find(|(_, mask)| !mask.contains(Signal::CHLD)).map(|(tid, _)| tid))
}
