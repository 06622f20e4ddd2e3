//! A handle on one child process, backed by a pidfd where the kernel has them.
//!
//! Why this module exists: a PID is only a number, and once its process has been reaped the
//! kernel may give the number to a stranger; `kill(pid)` after that hits the wrong process.
//! A pidfd (Linux 5.3+) names one process for as long as the descriptor is open, so
//! [`Child::kill`] and [`Child::wait`] can never reach a recycled PID.
//!
//! **Fallback without pidfds** (older kernels, or a descriptor table that was full at fork
//! time): the handle keeps the bare PID. That is still safe as long as nothing else in the
//! process reaps it, because a child's PID cannot be reused until its parent has collected it;
//! `kill` is refused once the handle has seen the child reaped, and `wait_timeout` polls with
//! a backoff (1 ms doubling to 50 ms) instead of sleeping on the descriptor.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::pid::Pid;
use crate::signal::Signal;
use crate::status::ExitStatus;
use crate::status::{ResourceUsage, WaitEvent, Waited};
use crate::sys;

/// A child process of this process, not yet collected (or collected by this handle).
///
/// Dropping a `Child` that is still running does not kill it; the handle is put on a list of
/// dropped children, and every later fork or wait in this crate (or
/// [`reap_dropped_children`]) collects those that have ended, so they do not stay zombies.
///
/// ```
/// use std::time::Duration;
/// use forkyard::{Fork, Signal};
///
/// // SAFETY: a doc-test is single-threaded; the child only sleeps and ends with _exit.
/// let mut child = match unsafe { forkyard::fork() }? {
///     Fork::Child => {
///         std::thread::sleep(Duration::from_secs(60));
///         forkyard::exit_child(0)
///     }
///     Fork::Parent(child) => child,
/// };
/// assert_eq!(child.try_wait()?, None); // still running
/// child.kill(Signal::TERM)?; // through the pidfd: never a recycled PID
/// assert_eq!(child.wait()?.signal(), Some(Signal::TERM));
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    pidfd: Option<OwnedFd>,
    ended: Option<(ExitStatus, ResourceUsage)>,
}

/// Children whose handles were dropped while they ran, to be reaped when they end.
static DROPPED: Mutex<Vec<Child>> = Mutex::new(Vec::new());
/// How many there are: read without the lock, so the common case (none) writes no memory,
/// which matters right after a fork, when every page written is copied.
static DROPPED_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Collects the dropped children that have ended; returns how many were collected.
///
/// Called before every fork and after every wait in this crate, so most programs never need
/// to call it.
///
/// ```
/// // Nothing was dropped while running, so nothing is collected (and no lock is taken).
/// assert_eq!(forkyard::child::reap_dropped_children(), 0);
/// ```
pub fn reap_dropped_children() -> usize {
    // The common case, nothing dropped, takes no lock and writes nothing.
    if DROPPED_COUNT.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    let Ok(mut dropped) = DROPPED.try_lock() else {
        return 0;
    };
    let before = dropped.len();
    dropped.retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_)) | Err(_)));
    DROPPED_COUNT.store(dropped.len(), Ordering::Relaxed);
    before - dropped.len()
}

impl Child {
    /// The handle for a child we have just forked: opens its pidfd (it cannot have been
    /// reaped yet, so the PID is still ours).
    /// A child we just made whose pidfd came with it (`clone3` with CLONE_PIDFD).
    pub(crate) fn with_pidfd(pid: Pid, pidfd: OwnedFd) -> Child {
        Child { pid, pidfd: Some(pidfd), ended: None }
    }

    pub(crate) fn fresh(pid: Pid) -> Child {
        let pidfd = if sys::pidfds_available() { sys::pidfd_open(pid).ok() } else { None };
        Child { pid, pidfd, ended: None }
    }

    /// Takes charge of an existing child of this process that has not been reaped, such as
    /// one started by `std::process::Command::spawn`. Fails if `pid` is not a child of this
    /// process (or has already been reaped).
    ///
    /// Do not also wait on it through the `std` handle: only one of the two can collect it.
    ///
    /// ```
    /// use std::process::Command;
    /// use forkyard::{Child, ExitStatus, Pid};
    ///
    /// let started = Command::new("sh").args(["-c", "exit 4"]).spawn()?;
    /// let pid = Pid::new(started.id() as i32).expect("a child's PID is positive");
    /// let mut child = Child::from_pid(pid)?; // from now on this handle collects it, not std's
    /// assert_eq!(child.wait()?, ExitStatus::Exited(4));
    /// assert!(Child::from_pid(Pid::INIT).is_err()); // not a child of ours
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pid(pid: Pid) -> Result<Child> {
        let child = Child::fresh(pid);
        // WNOWAIT leaves the child waitable; ECHILD proves it is not ours to wait for.
        let probe = match &child.pidfd {
            Some(fd) => sys::waitid(libc::P_PIDFD, fd.as_raw_fd(), libc::WEXITED | libc::WNOHANG | libc::WNOWAIT),
            None => sys::waitid(libc::P_PID, pid.as_raw(), libc::WEXITED | libc::WNOHANG | libc::WNOWAIT),
        };
        match probe {
            Ok(_) => Ok(child),
            Err(e) => {
                // It is not our child, so there is nothing for Drop to collect.
                let mut child = child;
                child.ended = Some((ExitStatus::Exited(0), ResourceUsage::default()));
                Err(Error::sys("waitid", format!("process {pid} (is it a child of this process?)"), e))
            }
        }
    }

    /// The child's PID.
    ///
    /// ```
    /// use forkyard::{Launch, Pid};
    /// use forkyard::procs::Process;
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["true"]))?;
    /// let seen = Process::read(child.pid())?.expect("not collected yet, so still listed");
    /// assert_eq!(seen.ppid, Some(Pid::this()));
    /// child.wait()?;
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The child's pidfd, if the kernel gave one: poll it for readability to learn of the
    /// child's exit without a signal.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// use forkyard::Launch;
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["true"]))?;
    /// let fd = child.pidfd().expect("Linux 5.3 and later give one");
    /// // It becomes readable when the child ends: any event loop can wait for that.
    /// let mut ready = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
    /// // SAFETY: one valid pollfd; -1 waits without a time limit.
    /// assert_eq!(unsafe { libc::poll(ready.as_mut_ptr(), 1, -1) }, 1);
    /// assert!(child.try_wait()?.is_some()); // so collecting it does not block
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// How the child ended, if this handle has collected it.
    ///
    /// ```
    /// use forkyard::{ExitStatus, Launch};
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["true"]))?;
    /// assert_eq!(child.status(), None); // not collected yet
    /// child.wait()?;
    /// assert_eq!(child.status(), Some(ExitStatus::Exited(0)));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn status(&self) -> Option<ExitStatus> {
        self.ended.map(|(status, _)| status)
    }

    /// What the child cost (CPU times, peak memory), once it has been collected.
    ///
    /// ```
    /// use forkyard::Launch;
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["true"]))?;
    /// assert!(child.resource_usage().is_none()); // known only once collected
    /// child.wait()?;
    /// assert!(child.resource_usage().expect("collected").max_rss_kib > 0);
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn resource_usage(&self) -> Option<ResourceUsage> {
        self.ended.map(|(_, usage)| usage)
    }

    fn wait_raw(&mut self, options: libc::c_int) -> Result<Option<ExitStatus>> {
        if let Some((status, _)) = self.ended {
            return Ok(Some(status));
        }
        let waited = match &self.pidfd {
            Some(fd) => sys::waitid(libc::P_PIDFD, fd.as_raw_fd(), libc::WEXITED | options),
            None => sys::wait4(self.pid.as_raw(), options),
        };
        let waited = waited.map_err(|e| Error::sys("waitid", format!("child {}", self.pid), e))?;
        Ok(self.record(waited.map(Waited::from)))
    }

    fn record(&mut self, waited: Option<Waited>) -> Option<ExitStatus> {
        match waited {
            Some(Waited { event: WaitEvent::Ended(status), usage, .. }) => {
                self.ended = Some((status, usage));
                self.pidfd = None;
                Some(status)
            }
            _ => None,
        }
    }

    /// Marks the child as collected by someone else (a reaper that used `waitpid(-1)`).
    pub(crate) fn set_reaped(&mut self, status: ExitStatus, usage: ResourceUsage) {
        self.ended = Some((status, usage));
        self.pidfd = None;
    }

    /// Waits for the child to end, collects it and returns how it ended. Returns at once if
    /// it was already collected.
    ///
    /// ```
    /// use forkyard::{ExitStatus, Launch};
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["sh", "-c", "exit 3"]))?;
    /// assert_eq!(child.wait()?, ExitStatus::Exited(3));
    /// assert_eq!(child.wait()?, ExitStatus::Exited(3)); // again: the same answer, at once
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn wait(&mut self) -> Result<ExitStatus> {
        let status = self.wait_raw(0)?;
        reap_dropped_children();
        status.ok_or_else(|| {
            Error::sys("waitid", format!("child {}", self.pid), std::io::ErrorKind::UnexpectedEof.into())
        })
    }

    /// Collects the child if it has ended; `Ok(None)` if it is still running.
    ///
    /// ```
    /// use forkyard::{Launch, Signal};
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["sleep", "60"]))?;
    /// assert_eq!(child.try_wait()?, None); // still running
    /// child.kill(Signal::KILL)?;
    /// child.wait()?;
    /// assert!(child.try_wait()?.is_some());
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.wait_raw(libc::WNOHANG)
    }

    /// Waits up to `timeout` for the child to end. On `Ok(None)` the child is still
    /// running, and still waitable.
    ///
    /// ```
    /// use std::time::Duration;
    /// use forkyard::{Launch, Signal};
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["sleep", "60"]))?;
    /// assert_eq!(child.wait_timeout(Duration::from_millis(10))?, None); // still running
    /// child.kill(Signal::TERM)?;
    /// let status = child.wait_timeout(Duration::from_secs(60))?.expect("it ends on SIGTERM");
    /// assert_eq!(status.signal(), Some(Signal::TERM));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_millis(1);
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return Ok(None);
            };
            match &self.pidfd {
                Some(fd) => {
                    // A pidfd becomes readable when the process ends.
                    let mut fds = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
                    sys::poll(&mut fds, Some(left))
                        .map_err(|e| Error::sys("poll", format!("the pidfd of child {}", self.pid), e))?;
                }
                None => {
                    std::thread::sleep(backoff.min(left));
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
            }
        }
    }

    /// Sends `signal` to the child. Once the child has been collected nothing is sent and
    /// `Ok(())` is returned; a child that has ended but is not yet collected cannot be
    /// reached either, and that is not an error.
    ///
    /// ```
    /// use forkyard::{Launch, Signal};
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["sleep", "60"]))?;
    /// child.kill(Signal::INT)?;
    /// assert_eq!(child.wait()?.signal(), Some(Signal::INT));
    /// child.kill(Signal::INT)?; // collected: nothing is sent, and no stranger can be hit
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn kill(&self, signal: Signal) -> Result<()> {
        signal.checked()?;
        if self.ended.is_some() {
            return Ok(());
        }
        let sent = match &self.pidfd {
            Some(fd) => sys::pidfd_send_signal(fd.as_fd(), signal.as_raw()),
            // The child is not collected, so its PID cannot have been reused.
            None => sys::kill(self.pid, signal.as_raw()),
        };
        match sent {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(e) => Err(Error::sys("pidfd_send_signal", format!("child {} ({signal})", self.pid), e)),
            Ok(()) => Ok(()),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.ended.is_some() || matches!(self.try_wait(), Ok(Some(_)) | Err(_)) {
            return;
        }
        let orphan = Child { pid: self.pid, pidfd: self.pidfd.take(), ended: None };
        self.ended = Some((ExitStatus::Exited(0), ResourceUsage::default()));
        if let Ok(mut dropped) = DROPPED.lock() {
            dropped.push(orphan);
            DROPPED_COUNT.store(dropped.len(), Ordering::Relaxed);
        } else {
            // A poisoned list only happens after a panic elsewhere; leaking the handle keeps
            // the child reapable by a later waitpid(-1) rather than losing it.
            std::mem::forget(orphan);
        }
    }
}
