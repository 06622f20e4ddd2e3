//! Collecting dead children: one [`Reaper`] type, three strategies, two scopes.
//!
//! Why this module exists: the seed's central lesson is that a finished child stays a zombie
//! until its parent collects it, and shows two ways to collect: on SIGCHLD, looping
//! `waitpid(-1, WNOHANG)` because several exits can arrive as one signal, or by polling.
//! Linux has since added a third, pidfds, which needs no signal at all. All three live here
//! behind one type, so `forkyard init` and `forkyard up` (and your program) choose by
//! configuration, not by rewriting their loop.
//!
//! | strategy | wakes up when | idle cost | scopes |
//! |---|---|---|---|
//! | [`Strategy::Signal`] | a SIGCHLD arrives (read from a signalfd) | none | both |
//! | [`Strategy::Poll`] | every tick of its interval | one wake-up per tick | both |
//! | [`Strategy::Pidfd`] | a watched child's pidfd becomes readable | none | own children only |
//!
//! **Scope.** [`Scope::OwnChildren`] waits only on the children handed to
//! [`Reaper::watch`], by PID or pidfd, never `waitpid(-1)`, so it coexists with
//! `std::process` and tokio children in the same program. [`Scope::All`] collects every
//! child, including orphans adopted by PID 1 or a subreaper: use it only where you own the
//! whole process (an init, a supervisor binary), because it also collects children that
//! other code in the process meant to wait for.
//!
//! Which to choose: PID 1 or a subreaper wants `Signal` + `All` (orphans arrive unannounced,
//! and only SIGCHLD tells of them). A library or a program with other process-spawning code
//! wants `Pidfd` + `OwnChildren` (no signal taken from anyone). `Poll` is the seed's second
//! way, for when neither signals nor pidfds are available, at the price of a zombie living
//! until the next tick.

mod pidfd;
mod poll;
mod signal;

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use crate::child::Child;
use crate::error::{Error, Result};
use crate::pid::Pid;
use crate::signal::Signal;
use crate::status::ExitStatus;
use crate::status::{ResourceUsage, WaitEvent, Waited};
use crate::sys;

pub use signal::block_sigchld;

/// How a [`Reaper`] learns that a child has died.
///
/// ```
/// use forkyard::{Reaper, Scope, Strategy};
///
/// // Polling suits a program that cannot take SIGCHLD and has no pidfds.
/// let reaper = Reaper::new(Strategy::Poll(std::time::Duration::from_millis(100)), Scope::OwnChildren)?;
/// assert_eq!(reaper.watched(), 0);
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// SIGCHLD through a signalfd, then `waitpid(..., WNOHANG)` until nothing is left, so
    /// coalesced signals lose no exit. SIGCHLD must be blocked in every thread: create the
    /// reaper (or call [`block_sigchld`]) before starting any thread.
    Signal,
    /// Sweep every `interval`, as the seed's second way does; no signal involved.
    Poll(Duration),
    /// epoll over the watched children's pidfds; no signal involved. Needs Linux 5.3+ and
    /// sees only children handed to [`Reaper::watch`], never adopted orphans.
    Pidfd,
    /// No descriptor of its own: the owner reads SIGCHLD itself (typically on a signalfd
    /// that also carries other signals, as `forkyard init` does, so that one blocking read
    /// serves both) and calls [`Reaper::try_reap`] when it has seen one. SIGCHLD must be
    /// blocked in every thread, as for [`Strategy::Signal`]; `wait` is refused.
    Manual,
}

/// Which children a [`Reaper`] collects.
///
/// ```
/// use forkyard::{Reaper, Scope, Strategy};
///
/// // Scope::All collects every child, adopted orphans too: for PID 1 or a subreaper.
/// forkyard::reap::block_sigchld()?;
/// let reaper = Reaper::new(Strategy::Signal, Scope::All)?;
/// assert_eq!(reaper.watched(), 0);
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only the children handed to [`Reaper::watch`].
    OwnChildren,
    /// Every child of this process, adopted orphans included (`waitpid(-1)`).
    All,
}

/// One collected child.
///
/// ```
/// use forkyard::{Child, Pid, Reaper, Scope, Strategy};
///
/// let mut reaper = Reaper::new(Strategy::Pidfd, Scope::OwnChildren)?;
/// let sh = std::process::Command::new("true").spawn().expect("true");
/// reaper.watch(Child::from_pid(Pid::new(sh.id() as i32).expect("a pid"))?)?;
/// let reaped = reaper.wait()?;
/// assert!(reaped[0].watched && reaped[0].status.success());
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reaped {
    /// Its PID (which the kernel may now reuse).
    pub pid: Pid,
    /// How it ended.
    pub status: ExitStatus,
    /// What it cost.
    pub usage: ResourceUsage,
    /// When it was collected.
    pub at: Instant,
    /// Whether it had been handed to [`Reaper::watch`] (false for adopted orphans and for
    /// children started by other code, seen only with [`Scope::All`]).
    pub watched: bool,
}

enum Backend {
    Manual,
    Signal(signal::Sigchld),
    Poll(poll::Ticker),
    Pidfd(pidfd::PidfdSet),
}

/// Collects dead children by one [`Strategy`], within one [`Scope`].
///
/// ```
/// use std::process::Command;
/// use forkyard::{Child, ExitStatus, Pid, Reaper, Scope, Strategy};
///
/// // Own children only, through their pidfds: no signal involved.
/// let mut reaper = Reaper::new(Strategy::Pidfd, Scope::OwnChildren)?;
/// let sh = Command::new("sh").args(["-c", "exit 4"]).spawn().expect("sh");
/// let pid = reaper.watch(Child::from_pid(Pid::new(sh.id() as i32).expect("a pid"))?)?;
/// let reaped = reaper.wait()?;
/// assert_eq!((reaped[0].pid, reaped[0].status), (pid, ExitStatus::Exited(4)));
/// # Ok::<(), forkyard::Error>(())
/// ```
pub struct Reaper {
    scope: Scope,
    backend: Backend,
    /// Ordered, and seeded by nothing (a `HashMap` asks the kernel for randomness at start).
    watched: BTreeMap<Pid, Child>,
}

impl Reaper {
    /// A reaper using `strategy` within `scope`.
    ///
    /// With [`Strategy::Signal`] this blocks SIGCHLD in the calling thread and fails if
    /// another thread of the process does not block it (it would swallow the signal). Any
    /// strategy resets SIGCHLD to its default disposition if it was ignored, since the kernel
    /// discards the exit status of children whose parent ignores SIGCHLD.
    ///
    /// ```
    /// use forkyard::{Reaper, Scope, Strategy};
    ///
    /// let own = Reaper::new(Strategy::Pidfd, Scope::OwnChildren)?;
    /// assert_eq!(own.scope(), Scope::OwnChildren);
    /// // Pidfds exist only for children we started, never for adopted orphans.
    /// assert!(Reaper::new(Strategy::Pidfd, Scope::All).is_err());
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn new(strategy: Strategy, scope: Scope) -> Result<Reaper> {
        if Signal::CHLD.disposition()? == crate::signal::Disposition::Ignore {
            Signal::CHLD.set_disposition(crate::signal::Disposition::Default)?;
        }
        let backend = match strategy {
            Strategy::Manual => Backend::Manual,
            Strategy::Signal => Backend::Signal(signal::Sigchld::new()?),
            Strategy::Poll(interval) => Backend::Poll(poll::Ticker::new(interval)?),
            Strategy::Pidfd => {
                if scope == Scope::All {
                    return Err(Error::Unsupported {
                        what: "a pidfd reaper with Scope::All",
                        why: "a pidfd exists only for children we started, never for adopted orphans; \
                              use Strategy::Signal for Scope::All"
                            .into(),
                    });
                }
                Backend::Pidfd(pidfd::PidfdSet::new()?)
            }
        };
        Ok(Reaper { scope, backend, watched: BTreeMap::new() })
    }

    /// The scope this reaper was made with.
    ///
    /// ```
    /// use forkyard::{Reaper, Scope, Strategy};
    ///
    /// let reaper = Reaper::new(Strategy::Signal, Scope::All)?;
    /// assert_eq!(reaper.scope(), Scope::All);
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Hands a child to the reaper, which will collect it. Returns its PID.
    ///
    /// ```
    /// use forkyard::{Launch, Reaper, Scope, Strategy};
    /// use forkyard::spawn::Program;
    ///
    /// let mut reaper = Reaper::new(Strategy::Pidfd, Scope::OwnChildren)?;
    /// let child = Launch::new().start(Program::new(["true"]))?;
    /// let pid = reaper.watch(child)?;
    /// assert!(reaper.is_watching(pid));
    /// assert_eq!(reaper.wait()?[0].pid, pid);
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn watch(&mut self, child: Child) -> Result<Pid> {
        let pid = child.pid();
        if let Backend::Pidfd(set) = &mut self.backend {
            set.add(&child)?;
        }
        self.watched.insert(pid, child);
        Ok(pid)
    }

    /// How many watched children have not been collected yet.
    ///
    /// ```
    /// use forkyard::{Launch, Reaper, Scope, Strategy};
    /// use forkyard::spawn::Program;
    ///
    /// let mut reaper = Reaper::new(Strategy::Pidfd, Scope::OwnChildren)?;
    /// for _ in 0..3 {
    ///     reaper.watch(Launch::new().start(Program::new(["true"]))?)?;
    /// }
    /// assert_eq!(reaper.watched(), 3);
    /// while reaper.watched() > 0 {
    ///     reaper.wait()?;
    /// }
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn watched(&self) -> usize {
        self.watched.len()
    }

    /// Whether `pid` is a watched child not yet collected.
    ///
    /// ```
    /// use forkyard::{Launch, Reaper, Scope, Strategy};
    /// use forkyard::spawn::Program;
    ///
    /// let mut reaper = Reaper::new(Strategy::Pidfd, Scope::OwnChildren)?;
    /// let pid = reaper.watch(Launch::new().start(Program::new(["true"]))?)?;
    /// assert!(reaper.is_watching(pid));
    /// reaper.wait()?;
    /// assert!(!reaper.is_watching(pid)); // collected
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn is_watching(&self, pid: Pid) -> bool {
        self.watched.contains_key(&pid)
    }

    /// Sends `signal` to a watched child (through its pidfd, so never to a recycled PID).
    ///
    /// ```
    /// use forkyard::{Launch, Reaper, Scope, Signal, Strategy};
    /// use forkyard::spawn::Program;
    ///
    /// let mut reaper = Reaper::new(Strategy::Pidfd, Scope::OwnChildren)?;
    /// let pid = reaper.watch(Launch::new().start(Program::new(["sleep", "60"]))?)?;
    /// reaper.kill(pid, Signal::TERM)?;
    /// assert_eq!(reaper.wait()?[0].status.signal(), Some(Signal::TERM));
    /// assert!(reaper.kill(pid, Signal::TERM).is_err()); // no longer watched
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn kill(&self, pid: Pid, signal: Signal) -> Result<()> {
        match self.watched.get(&pid) {
            Some(child) => child.kill(signal),
            None => Err(Error::invalid(
                format!("signalling process {pid} through the reaper"),
                "it is not a watched child of this reaper (already collected?)",
            )),
        }
    }

    /// A descriptor that becomes readable when [`Reaper::try_reap`] may find something, for
    /// an outer event loop: the signalfd or the epoll descriptor. `None` for `Poll`, which
    /// wakes by time only.
    ///
    /// ```
    /// use std::time::Duration;
    /// use forkyard::{Reaper, Scope, Strategy};
    ///
    /// let reaper = Reaper::new(Strategy::Pidfd, Scope::OwnChildren)?;
    /// assert!(reaper.as_fd().is_some()); // add it to your own poll or epoll set
    /// let polled = Reaper::new(Strategy::Poll(Duration::from_millis(50)), Scope::OwnChildren)?;
    /// assert!(polled.as_fd().is_none()); // wakes by time only
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.backend {
            Backend::Signal(s) => Some(s.as_fd()),
            Backend::Pidfd(set) => Some(set.as_fd()),
            Backend::Poll(_) | Backend::Manual => None,
        }
    }

    /// Collects whatever has died, without blocking (for `Poll`, regardless of the tick).
    ///
    /// ```
    /// use forkyard::{Launch, Reaper, Scope, Strategy};
    /// use forkyard::spawn::Program;
    ///
    /// let mut reaper = Reaper::new(Strategy::Pidfd, Scope::OwnChildren)?;
    /// let mut sleeper = Launch::new().start(Program::new(["sleep", "60"]))?;
    /// assert!(reaper.try_reap()?.is_empty()); // nothing has died: returns at once
    /// sleeper.kill(forkyard::Signal::KILL)?;
    /// reaper.watch(sleeper)?;
    /// while reaper.try_reap()?.is_empty() {
    ///     std::thread::yield_now();
    /// }
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn try_reap(&mut self) -> Result<Vec<Reaped>> {
        let mut out = Vec::new();
        if let Backend::Signal(s) = &self.backend {
            s.drain()?;
        }
        self.sweep(&mut out)?;
        Ok(out)
    }

    /// Blocks until at least one child has been collected and returns those collected.
    ///
    /// With [`Scope::OwnChildren`] and nothing watched it returns an empty list at once
    /// rather than wait forever. With [`Scope::All`] it waits for children that do not exist
    /// yet (an orphan about to be adopted), as an init must.
    ///
    /// ```
    /// use forkyard::{ExitStatus, Launch, Reaper, Scope, Strategy};
    /// use forkyard::spawn::Program;
    ///
    /// // An init's loop in miniature: every child, however it was started.
    /// let mut reaper = Reaper::new(Strategy::Signal, Scope::All)?;
    /// let started = Launch::new().start(Program::new(["sh", "-c", "exit 5"]))?;
    /// let reaped = reaper.wait()?;
    /// assert_eq!((reaped[0].pid, reaped[0].status), (started.pid(), ExitStatus::Exited(5)));
    /// assert!(!reaped[0].watched); // collected as "any child"
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn wait(&mut self) -> Result<Vec<Reaped>> {
        self.wait_until(None)
    }

    /// Like [`Reaper::wait`], but gives up after `timeout` with an empty list.
    ///
    /// ```
    /// use std::time::Duration;
    /// use forkyard::{Launch, Reaper, Scope, Signal, Strategy};
    /// use forkyard::spawn::Program;
    ///
    /// let mut reaper = Reaper::new(Strategy::Pidfd, Scope::OwnChildren)?;
    /// let pid = reaper.watch(Launch::new().start(Program::new(["sleep", "60"]))?)?;
    /// assert!(reaper.wait_timeout(Duration::from_millis(10))?.is_empty()); // still running
    /// reaper.kill(pid, Signal::KILL)?;
    /// assert_eq!(reaper.wait_timeout(Duration::from_secs(60))?.len(), 1);
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Vec<Reaped>> {
        self.wait_until(Some(Instant::now() + timeout))
    }

    fn wait_until(&mut self, deadline: Option<Instant>) -> Result<Vec<Reaped>> {
        let mut out = Vec::new();
        loop {
            if self.scope == Scope::OwnChildren && self.watched.is_empty() {
                return Ok(out);
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match &mut self.backend {
                Backend::Manual => {
                    return Err(Error::Unsupported {
                        what: "waiting on a manual reaper",
                        why: "it has no event source of its own; call try_reap when SIGCHLD arrives".into(),
                    });
                }
                Backend::Signal(s) => {
                    // Drain first: any exit after this point leaves a new SIGCHLD pending.
                    s.drain()?;
                    self.sweep(&mut out)?;
                    if !out.is_empty() || left.is_some_and(|l| l.is_zero()) {
                        return Ok(out);
                    }
                    if let Backend::Signal(s) = &self.backend {
                        s.wait(left)?;
                    }
                }
                Backend::Poll(ticker) => {
                    if !ticker.sleep_until_tick(deadline) {
                        return Ok(out);
                    }
                    self.sweep(&mut out)?;
                    if !out.is_empty() {
                        return Ok(out);
                    }
                }
                Backend::Pidfd(set) => {
                    let ready = set.wait(left)?;
                    for pid in ready {
                        self.collect_watched(pid, &mut out)?;
                    }
                    if !out.is_empty() || left.is_some_and(|l| l.is_zero()) {
                        return Ok(out);
                    }
                }
            }
        }
    }

    /// One pass over what this reaper may collect.
    fn sweep(&mut self, out: &mut Vec<Reaped>) -> Result<()> {
        match self.scope {
            Scope::All => loop {
                match sys::wait4(-1, libc::WNOHANG).map(|w| w.map(Waited::from)) {
                    Ok(Some(Waited { pid, event: WaitEvent::Ended(status), usage })) => {
                        let watched = match self.watched.remove(&pid) {
                            Some(mut child) => {
                                child.set_reaped(status, usage);
                                if let Backend::Pidfd(set) = &mut self.backend {
                                    set.forget(pid);
                                }
                                true
                            }
                            None => false,
                        };
                        out.push(Reaped { pid, status, usage, at: Instant::now(), watched });
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => return Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(()),
                    Err(e) => return Err(Error::sys("waitpid", "any child (-1)", e)),
                }
            },
            Scope::OwnChildren => {
                let pids: Vec<Pid> = self.watched.keys().copied().collect();
                for pid in pids {
                    self.collect_watched(pid, out)?;
                }
                Ok(())
            }
        }
    }

    fn collect_watched(&mut self, pid: Pid, out: &mut Vec<Reaped>) -> Result<()> {
        let Some(child) = self.watched.get_mut(&pid) else {
            return Ok(());
        };
        if let Some(status) = child.try_wait()? {
            let usage = child.resource_usage().unwrap_or_default();
            self.watched.remove(&pid);
            if let Backend::Pidfd(set) = &mut self.backend {
                set.forget(pid);
            }
            out.push(Reaped { pid, status, usage, at: Instant::now(), watched: true });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Reaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let strategy = match &self.backend {
            Backend::Signal(_) => "Signal".to_string(),
            Backend::Poll(t) => format!("Poll({:?})", t.interval()),
            Backend::Pidfd(_) => "Pidfd".to_string(),
            Backend::Manual => "Manual".to_string(),
        };
        f.debug_struct("Reaper")
            .field("strategy", &strategy)
            .field("scope", &self.scope)
            .field("watched", &self.watched.keys().collect::<Vec<_>>())
            .finish()
    }
}
