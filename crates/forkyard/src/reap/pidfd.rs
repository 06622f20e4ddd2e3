//! The pidfd strategy: epoll over the pidfds of the children we started.
//!
//! Why: a pidfd becomes readable when its process ends, so waiting needs no signal at all
//! and takes nothing from other code in the process (tokio, std, a second reaper). It cannot
//! see orphans, because nobody holds a pidfd for a process that was adopted.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::child::Child;
use crate::error::{Error, Result};
use crate::pid::Pid;
use crate::sys;

pub(super) struct PidfdSet {
    epoll: sys::Epoll,
    /// A duplicate of each registered pidfd: epoll forgets a descriptor when its last copy
    /// closes, so we keep one until the child is collected.
    fds: BTreeMap<Pid, OwnedFd>,
    ready: Vec<u64>,
}

impl PidfdSet {
    pub(super) fn new() -> Result<PidfdSet> {
        if !sys::pidfds_available() {
            return Err(Error::Unsupported {
                what: "a pidfd reaper",
                why: "this kernel has no pidfds (Linux 5.3 or later needed); use Strategy::Signal".into(),
            });
        }
        let epoll = sys::Epoll::new().map_err(|e| Error::sys("epoll_create1", "a pidfd reaper", e))?;
        Ok(PidfdSet { epoll, fds: BTreeMap::new(), ready: Vec::new() })
    }

    pub(super) fn add(&mut self, child: &Child) -> Result<()> {
        let pid = child.pid();
        let fd = match child.pidfd() {
            Some(fd) => {
                fd.try_clone_to_owned().map_err(|e| Error::sys("dup", format!("the pidfd of child {pid}"), e))?
            }
            None => {
                return Err(Error::Unsupported {
                    what: "watching a child without a pidfd",
                    why: format!("child {pid} has no pidfd (the descriptor table was full when it was forked)"),
                });
            }
        };
        self.epoll
            .add(fd.as_fd(), pid.as_raw() as u64)
            .map_err(|e| Error::sys("epoll_ctl", format!("the pidfd of child {pid}"), e))?;
        self.fds.insert(pid, fd);
        Ok(())
    }

    pub(super) fn forget(&mut self, pid: Pid) {
        if let Some(fd) = self.fds.remove(&pid) {
            let _ = self.epoll.delete(fd.as_fd());
        }
    }

    /// Waits for pidfds to become readable; returns the PIDs whose process has ended.
    pub(super) fn wait(&mut self, timeout: Option<Duration>) -> Result<Vec<Pid>> {
        self.epoll.wait(&mut self.ready, timeout).map_err(|e| Error::sys("epoll_wait", "a pidfd reaper", e))?;
        Ok(self.ready.iter().filter_map(|&t| Pid::new(t as i32)).collect())
    }

    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}
