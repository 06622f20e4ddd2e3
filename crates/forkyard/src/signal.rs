//! Signals: names and numbers, sets and masks, dispositions, and a signalfd to read them.
//!
//! Why this module exists: every tool in forkyard takes signals from users (`--stop-signal
//! QUIT`, `--rewrite TERM:QUIT`, `SIGRTMIN+3`), forwards them, blocks them before threads
//! start, and must hand a child the mask and dispositions it inherited rather than its own.
//! Real-time signals are first-class here: their numbers depend on the C library (glibc keeps
//! 32 and 33 for itself), so names are computed from `SIGRTMIN()`/`SIGRTMAX()` at run time.

use std::fmt;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::pid::Pid;
use crate::sys;

pub(crate) mod number;

pub use number::{InvalidSignal, Signal};

impl Signal {
    /// Sends this signal to one process by PID. Prefer [`crate::Child::kill`] for your own
    /// children: a PID can be reused once its process has been reaped.
    ///
    /// ```
    /// use forkyard::{Launch, Signal};
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["sleep", "60"]))?;
    /// Signal::TERM.send(child.pid())?; // safe here: not collected yet, so the PID is still its
    /// assert_eq!(child.wait()?.signal(), Some(Signal::TERM));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn send(self, pid: Pid) -> Result<()> {
        self.checked()?;
        sys::kill(pid, self.0).map_err(|e| Error::sys("kill", format!("process {pid} ({self})"), e))
    }

    /// Sends this signal to every process in the group `pgid`.
    ///
    /// ```
    /// use forkyard::{Launch, Signal};
    /// use forkyard::spawn::{Group, Program};
    ///
    /// // `sleep` leads a group of its own; whatever it started would be in it too.
    /// let mut leader = Launch::new().group(Group::Own).start(Program::new(["sleep", "60"]))?;
    /// Signal::TERM.send_group(leader.pid())?; // the group's ID is its leader's PID
    /// assert_eq!(leader.wait()?.signal(), Some(Signal::TERM));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn send_group(self, pgid: Pid) -> Result<()> {
        self.checked()?;
        sys::kill_group(pgid, self.0).map_err(|e| Error::sys("kill", format!("process group {pgid} ({self})"), e))
    }

    /// What the calling process does on this signal now.
    ///
    /// ```
    /// use forkyard::{Disposition, Signal};
    ///
    /// assert_eq!(Signal::PIPE.disposition()?, Disposition::Ignore); // Rust's runtime did that
    /// assert_eq!(Signal::TERM.disposition()?, Disposition::Default);
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn disposition(self) -> Result<Disposition> {
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: a null new action only queries; `old` is valid for writes.
        sys::cvt(unsafe { libc::sigaction(self.0, std::ptr::null(), old.as_mut_ptr()) })
            .map_err(|e| Error::sys("sigaction", self.to_string(), e))?;
        // SAFETY: sigaction succeeded and filled `old` in.
        let old = unsafe { old.assume_init() };
        Ok(match old.sa_sigaction {
            libc::SIG_DFL => Disposition::Default,
            libc::SIG_IGN => Disposition::Ignore,
            _ => Disposition::Handler,
        })
    }

    /// Sets this signal to its default action or to be ignored, returning what it was.
    /// Installing handlers is deliberately not offered: forkyard reads signals from a
    /// [`SignalFd`] instead, which has none of a handler's restrictions.
    ///
    /// ```
    /// use forkyard::{Disposition, Signal};
    ///
    /// let before = Signal::HUP.set_disposition(Disposition::Ignore)?;
    /// assert_eq!((before, Signal::HUP.disposition()?), (Disposition::Default, Disposition::Ignore));
    /// Signal::HUP.set_disposition(before)?;
    /// assert!(Signal::HUP.set_disposition(Disposition::Handler).is_err()); // use a SignalFd
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn set_disposition(self, to: Disposition) -> Result<Disposition> {
        let handler = match to {
            Disposition::Default => libc::SIG_DFL,
            Disposition::Ignore => libc::SIG_IGN,
            Disposition::Handler => {
                return Err(Error::Unsupported {
                    what: "installing a signal handler",
                    why: "read signals from a SignalFd instead".into(),
                });
            }
        };
        let before = self.disposition()?;
        let mut action = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: a zeroed sigaction is a valid starting point (empty mask, no flags); we set
        // the handler field to SIG_DFL or SIG_IGN, which need no function behind them.
        unsafe {
            (*action.as_mut_ptr()).sa_sigaction = handler;
            sys::cvt(libc::sigaction(self.0, action.as_ptr(), std::ptr::null_mut()))
                .map_err(|e| Error::sys("sigaction", self.to_string(), e))?;
        }
        Ok(before)
    }
}

/// What a process does when a signal arrives.
///
/// ```
/// use forkyard::{Disposition, Signal};
///
/// let before = Signal::PIPE.set_disposition(Disposition::Ignore)?;
/// assert_eq!(Signal::PIPE.disposition()?, Disposition::Ignore);
/// Signal::PIPE.set_disposition(before)?;
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Disposition {
    /// The default action (terminate, core, stop, continue or nothing, by signal).
    Default,
    /// Discard it. Survives `exec`, so a child inherits it.
    Ignore,
    /// A handler function (reset to `Default` by `exec`).
    Handler,
}

/// The signal state a process inherited, captured before it changes anything, so that the
/// commands it starts get the same (an init or a supervisor blocks and takes signals for
/// itself; its children must not see that).
///
/// ```
/// use forkyard::{Inherited, Launch};
/// use forkyard::spawn::Program;
///
/// // At the top of main, before blocking or ignoring anything for ourselves:
/// let inherited = Inherited::capture()?;
/// // ... later, a command started with what we were given, not what we changed:
/// let launch = Launch::new().signal_mask(inherited.mask).dispositions(inherited.dispositions());
/// launch.start(Program::new(["true"]))?.wait()?;
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Inherited {
    /// The signal mask.
    pub mask: SignalSet,
    /// SIGCHLD's disposition (a reaper must not ignore it, or exit statuses are lost).
    pub sigchld: Disposition,
    /// SIGPIPE's disposition (`std::process::Command` resets it in its children).
    pub sigpipe: Disposition,
}

impl Inherited {
    /// Reads them now. Call this first: a Rust program's runtime sets SIGPIPE to "ignore"
    /// before `main`, so an exact picture needs a `#![no_main]` binary (as `forkyard` is).
    ///
    /// ```
    /// use forkyard::{Disposition, Inherited, Signal};
    ///
    /// let inherited = Inherited::capture()?;
    /// assert!(!inherited.mask.contains(Signal::TERM));
    /// // A Rust `main` has already set SIGPIPE to "ignore", so this is what a doc-test sees.
    /// assert_eq!(inherited.sigpipe, Disposition::Ignore);
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn capture() -> Result<Inherited> {
        Ok(Inherited {
            mask: SignalSet::thread_mask()?,
            sigchld: Signal::CHLD.disposition()?,
            sigpipe: Signal::PIPE.disposition()?,
        })
    }

    /// Nothing blocked, nothing ignored: what to assume when [`Inherited::capture`] fails.
    ///
    /// ```
    /// use forkyard::{Disposition, Inherited, SignalSet};
    ///
    /// let pristine = Inherited::pristine();
    /// assert_eq!((pristine.mask, pristine.sigpipe), (SignalSet::empty(), Disposition::Default));
    /// ```
    pub fn pristine() -> Inherited {
        Inherited { mask: SignalSet::empty(), sigchld: Disposition::Default, sigpipe: Disposition::Default }
    }

    /// The dispositions to hand a started command back: SIGPIPE's always (the Rust runtime
    /// and `std::process` change it), SIGCHLD's if it was ignored.
    ///
    /// ```
    /// use forkyard::{Disposition, Inherited, Launch, Signal};
    /// use forkyard::spawn::Program;
    ///
    /// let given = Inherited::pristine();
    /// assert_eq!(given.dispositions(), [(Signal::PIPE, Disposition::Default)]);
    /// // So the shell dies of SIGPIPE, as it would have without Rust's runtime ignoring it.
    /// let launch = Launch::new().dispositions(given.dispositions());
    /// let mut sh = launch.start(Program::new(["sh", "-c", "kill -PIPE $$"]))?;
    /// assert_eq!(sh.wait()?.signal(), Some(Signal::PIPE));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn dispositions(&self) -> Vec<(Signal, Disposition)> {
        let mut list = vec![(Signal::PIPE, self.sigpipe)];
        if self.sigchld == Disposition::Ignore {
            list.push((Signal::CHLD, Disposition::Ignore));
        }
        list
    }
}

/// A set of signals (a `sigset_t`), used for masks and for signalfds.
///
/// ```
/// use forkyard::{Signal, SignalSet};
///
/// let set: SignalSet = [Signal::TERM, Signal::rtmin()].into_iter().collect();
/// assert!(set.contains(Signal::TERM) && !set.contains(Signal::INT));
/// let before = set.block()?; // blocked in this thread from now on
/// before.set_thread_mask()?; // and back as it was
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct SignalSet(libc::sigset_t);

impl SignalSet {
    /// No signals.
    ///
    /// ```
    /// use forkyard::SignalSet;
    ///
    /// assert_eq!(SignalSet::empty().iter().count(), 0);
    /// ```
    pub fn empty() -> SignalSet {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the whole set.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            SignalSet(set.assume_init())
        }
    }

    /// Every signal (glibc leaves out the two it keeps for its threads).
    ///
    /// ```
    /// use forkyard::{Signal, SignalSet};
    ///
    /// let all = SignalSet::full();
    /// assert!(all.contains(Signal::TERM) && all.contains(Signal::rtmax()));
    /// ```
    pub fn full() -> SignalSet {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises the whole set.
        unsafe {
            libc::sigfillset(set.as_mut_ptr());
            SignalSet(set.assume_init())
        }
    }

    /// Adds a signal.
    ///
    /// ```
    /// use forkyard::{Signal, SignalSet};
    ///
    /// let mut set = SignalSet::empty();
    /// set.insert(Signal::HUP);
    /// assert!(set.contains(Signal::HUP));
    /// ```
    pub fn insert(&mut self, signal: Signal) {
        // SAFETY: the set is initialised and the number is a valid signal.
        unsafe { libc::sigaddset(&mut self.0, signal.0) };
    }

    /// Removes a signal.
    ///
    /// ```
    /// use forkyard::{Signal, SignalSet};
    ///
    /// let mut set = SignalSet::full();
    /// set.remove(Signal::INT);
    /// assert!(!set.contains(Signal::INT) && set.contains(Signal::TERM));
    /// ```
    pub fn remove(&mut self, signal: Signal) {
        // SAFETY: the set is initialised and the number is a valid signal.
        unsafe { libc::sigdelset(&mut self.0, signal.0) };
    }

    /// Whether the set holds this signal.
    ///
    /// ```
    /// use forkyard::{Signal, SignalSet};
    ///
    /// let set: SignalSet = [Signal::USR1].into_iter().collect();
    /// assert!(set.contains(Signal::USR1));
    /// assert!(!set.contains(Signal::USR2));
    /// ```
    pub fn contains(&self, signal: Signal) -> bool {
        // SAFETY: the set is initialised and the number is a valid signal.
        unsafe { libc::sigismember(&self.0, signal.0) == 1 }
    }

    /// The signals in the set, lowest first.
    ///
    /// ```
    /// use forkyard::{Signal, SignalSet};
    ///
    /// let set: SignalSet = [Signal::TERM, Signal::HUP].into_iter().collect();
    /// assert_eq!(set.iter().collect::<Vec<_>>(), [Signal::HUP, Signal::TERM]); // lowest first
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = Signal> + '_ {
        (1..=libc::SIGRTMAX()).map(Signal).filter(|s| self.contains(*s))
    }

    /// The raw set, for the system calls that take one.
    pub(crate) fn as_raw(&self) -> &libc::sigset_t {
        &self.0
    }

    fn mask(how: libc::c_int, set: Option<&SignalSet>) -> Result<SignalSet> {
        let mut old = SignalSet::empty();
        let new = set.map_or(std::ptr::null(), |s| &s.0 as *const libc::sigset_t);
        // SAFETY: `new` is null or a valid set; `old` is a valid set to write to.
        let ret = unsafe { libc::pthread_sigmask(how, new, &mut old.0) };
        if ret != 0 {
            return Err(Error::sys("pthread_sigmask", "the calling thread", std::io::Error::from_raw_os_error(ret)));
        }
        Ok(old)
    }

    /// The calling thread's signal mask.
    ///
    /// ```
    /// use forkyard::{Signal, SignalSet};
    ///
    /// let before = SignalSet::thread_mask()?;
    /// let set: SignalSet = [Signal::USR1].into_iter().collect();
    /// set.block()?;
    /// assert!(SignalSet::thread_mask()?.contains(Signal::USR1));
    /// before.set_thread_mask()?;
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn thread_mask() -> Result<SignalSet> {
        SignalSet::mask(libc::SIG_BLOCK, None)
    }

    /// Blocks these signals in the calling thread (threads started afterwards inherit the
    /// mask); returns the mask as it was.
    ///
    /// ```
    /// use forkyard::{Pid, Signal, SignalSet};
    ///
    /// let set: SignalSet = [Signal::USR1].into_iter().collect();
    /// let before = set.block()?;
    /// Signal::USR1.send(Pid::this())?; // blocked: it waits, pending, instead of killing us
    /// assert!(!before.contains(Signal::USR1));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn block(&self) -> Result<SignalSet> {
        SignalSet::mask(libc::SIG_BLOCK, Some(self))
    }

    /// Unblocks these signals in the calling thread; returns the mask as it was.
    ///
    /// ```
    /// use forkyard::{Signal, SignalSet};
    ///
    /// let set: SignalSet = [Signal::USR2].into_iter().collect();
    /// set.block()?;
    /// let before = set.unblock()?;
    /// assert!(before.contains(Signal::USR2) && !SignalSet::thread_mask()?.contains(Signal::USR2));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn unblock(&self) -> Result<SignalSet> {
        SignalSet::mask(libc::SIG_UNBLOCK, Some(self))
    }

    /// Makes this set the calling thread's whole mask; returns the mask as it was.
    ///
    /// ```
    /// use forkyard::{Signal, SignalSet};
    ///
    /// let only_term: SignalSet = [Signal::TERM].into_iter().collect();
    /// let before = only_term.set_thread_mask()?;
    /// assert_eq!(SignalSet::thread_mask()?, only_term);
    /// before.set_thread_mask()?;
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn set_thread_mask(&self) -> Result<SignalSet> {
        SignalSet::mask(libc::SIG_SETMASK, Some(self))
    }

    /// The signals whose disposition in this process is "ignore".
    ///
    /// ```
    /// use forkyard::{Disposition, Signal, SignalSet};
    ///
    /// Signal::USR1.set_disposition(Disposition::Ignore)?;
    /// let ignored = SignalSet::ignored()?;
    /// assert!(ignored.contains(Signal::USR1) && !ignored.contains(Signal::TERM));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn ignored() -> Result<SignalSet> {
        let mut set = SignalSet::empty();
        for signal in Signal::all().filter(|s| s.is_catchable()) {
            if signal.disposition()? == Disposition::Ignore {
                set.insert(signal);
            }
        }
        Ok(set)
    }
}

impl FromIterator<Signal> for SignalSet {
    fn from_iter<I: IntoIterator<Item = Signal>>(iter: I) -> SignalSet {
        let mut set = SignalSet::empty();
        for s in iter {
            set.insert(s);
        }
        set
    }
}

impl PartialEq for SignalSet {
    fn eq(&self, other: &SignalSet) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for SignalSet {}

impl fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// One signal read from a [`SignalFd`].
///
/// ```
/// use forkyard::{Pid, Signal, SignalFd, SignalInfo, SignalSet};
///
/// let set: SignalSet = [Signal::USR2].into_iter().collect();
/// set.block()?;
/// let signals = SignalFd::new(&set)?;
/// Signal::USR2.send(Pid::this())?;
/// let mut batch = [SignalInfo::default(); 4];
/// let mut n = 0;
/// while n == 0 {
///     n = signals.read_batch(&mut batch)?;
/// }
/// assert_eq!(batch[0].signal, Signal::USR2);
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalInfo {
    /// The signal.
    pub signal: Signal,
    /// `si_code`: who or what sent it (`SI_USER` for `kill`, `CLD_EXITED` for SIGCHLD, ...).
    pub code: i32,
    /// The sending process, when the kernel says (`kill`, SIGCHLD).
    pub sender: Option<Pid>,
    /// The sender's real user ID.
    pub sender_uid: u32,
}

impl Default for SignalInfo {
    /// A placeholder (signal number 0) for buffers that [`SignalFd::read_batch`] fills.
    fn default() -> SignalInfo {
        SignalInfo { signal: Signal(0), code: 0, sender: None, sender_uid: 0 }
    }
}

/// A descriptor that delivers blocked signals as data, read in an ordinary loop (no handler,
/// no async-signal-safety rules, no lost wake-up between a check and a sleep).
///
/// The signals must be blocked in **every** thread, or the kernel may deliver them to a
/// thread that does not block them instead; block them before starting any thread.
///
/// ```
/// use std::time::Duration;
/// use forkyard::{Pid, Signal, SignalFd, SignalSet};
///
/// let set: SignalSet = [Signal::USR1].into_iter().collect();
/// set.block()?; // first, or the signal's default action kills us
/// let signals = SignalFd::new(&set)?;
/// Signal::USR1.send(Pid::this())?;
/// let info = signals.read(Some(Duration::from_secs(10)))?.expect("it arrives");
/// assert_eq!((info.signal, info.sender), (Signal::USR1, Some(Pid::this())));
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// A non-blocking, close-on-exec signalfd for `set`. It does not block the signals: call
    /// [`SignalSet::block`] first.
    ///
    /// ```
    /// use forkyard::{Pid, Signal, SignalFd, SignalSet};
    ///
    /// let set: SignalSet = [Signal::HUP].into_iter().collect();
    /// set.block()?;
    /// let signals = SignalFd::new(&set)?;
    /// assert_eq!(signals.try_read()?, None); // non-blocking: nothing pending yet
    /// Signal::HUP.send(Pid::this())?;
    /// assert_eq!(signals.try_read()?.map(|info| info.signal), Some(Signal::HUP));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn new(set: &SignalSet) -> Result<SignalFd> {
        // SAFETY: -1 asks for a new descriptor; the set is a valid sigset_t.
        let fd = unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        let fd = sys::cvt(fd).map_err(|e| Error::sys("signalfd", format!("{set:?}"), e))?;
        // SAFETY: signalfd succeeded; the descriptor is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd })
    }

    /// A close-on-exec signalfd for `set` whose reads block until a signal is pending: an
    /// event loop with nothing else to wait for then needs one `read` per wake-up and no
    /// `poll`. [`SignalFd::try_read`] and [`SignalFd::read`] must not be used on it.
    ///
    /// ```
    /// use forkyard::{Pid, Signal, SignalFd, SignalInfo, SignalSet};
    ///
    /// let set: SignalSet = [Signal::TERM].into_iter().collect();
    /// set.block()?;
    /// let signals = SignalFd::blocking(&set)?;
    /// Signal::TERM.send(Pid::this())?;
    /// let mut batch = [SignalInfo::default(); 8];
    /// let n = signals.read_batch(&mut batch)?; // sleeps until at least one is pending
    /// assert_eq!((n, batch[0].signal), (1, Signal::TERM));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn blocking(set: &SignalSet) -> Result<SignalFd> {
        // SAFETY: -1 asks for a new descriptor; the set is a valid sigset_t.
        let fd = unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC) };
        let fd = sys::cvt(fd).map_err(|e| Error::sys("signalfd", format!("{set:?}"), e))?;
        // SAFETY: signalfd succeeded; the descriptor is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd })
    }

    /// Reads every pending signal, up to `out.len()`, in one `read`; on a
    /// [`SignalFd::blocking`] descriptor it waits for the first. Returns how many were read
    /// (0 on a non-blocking one with nothing pending).
    ///
    /// ```
    /// use forkyard::{Pid, Signal, SignalFd, SignalInfo, SignalSet};
    ///
    /// let set: SignalSet = [Signal::USR1, Signal::USR2].into_iter().collect();
    /// set.block()?;
    /// let signals = SignalFd::new(&set)?;
    /// Signal::USR1.send(Pid::this())?;
    /// Signal::USR2.send(Pid::this())?;
    /// let mut batch = [SignalInfo::default(); 8];
    /// assert_eq!(signals.read_batch(&mut batch)?, 2); // both, in one read
    /// assert_eq!(signals.read_batch(&mut batch)?, 0); // and none left
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn read_batch(&self, out: &mut [SignalInfo]) -> Result<usize> {
        const N: usize = 16;
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let mut raw = [MaybeUninit::<libc::signalfd_siginfo>::zeroed(); N];
        let want = out.len().min(N);
        // SAFETY: `raw` holds `N` zeroed records, so `want * size` bytes are writable.
        let buf = unsafe { std::slice::from_raw_parts_mut(raw.as_mut_ptr().cast::<u8>(), want * size) };
        let n = match sys::read(self.fd.as_fd(), buf) {
            Ok(n) => n / size,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(Error::sys("read", "a signalfd", e)),
        };
        for (slot, record) in out.iter_mut().zip(&raw[..n]) {
            // SAFETY: the kernel wrote whole records into the first `n`.
            let r = unsafe { record.assume_init_ref() };
            *slot = SignalInfo {
                signal: Signal(r.ssi_signo as i32),
                code: r.ssi_code,
                sender: Pid::new(r.ssi_pid as i32),
                sender_uid: r.ssi_uid,
            };
        }
        Ok(n)
    }

    /// Reads one pending signal without blocking.
    ///
    /// ```
    /// use forkyard::{Pid, Signal, SignalFd, SignalSet};
    ///
    /// let set: SignalSet = [Signal::WINCH].into_iter().collect();
    /// set.block()?;
    /// let signals = SignalFd::new(&set)?;
    /// assert_eq!(signals.try_read()?, None);
    /// Signal::WINCH.send(Pid::this())?;
    /// let info = signals.try_read()?.expect("pending");
    /// assert_eq!(info.sender, Some(Pid::this()));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn try_read(&self) -> Result<Option<SignalInfo>> {
        let mut raw = MaybeUninit::<libc::signalfd_siginfo>::zeroed();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `raw` is a valid, writable signalfd_siginfo of exactly `size` bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(raw.as_mut_ptr().cast::<u8>(), size) };
        match sys::read(self.fd.as_fd(), buf) {
            Ok(n) if n == size => {
                // SAFETY: the kernel wrote a whole record.
                let raw = unsafe { raw.assume_init() };
                Ok(Some(SignalInfo {
                    signal: Signal(raw.ssi_signo as i32),
                    code: raw.ssi_code,
                    sender: Pid::new(raw.ssi_pid as i32),
                    sender_uid: raw.ssi_uid,
                }))
            }
            Ok(_) => Err(Error::sys("read", "a signalfd", std::io::ErrorKind::UnexpectedEof.into())),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(Error::sys("read", "a signalfd", e)),
        }
    }

    /// Waits up to `timeout` (forever with `None`) for a signal and reads it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use forkyard::{Pid, Signal, SignalFd, SignalSet};
    ///
    /// let set: SignalSet = [Signal::ALRM].into_iter().collect();
    /// set.block()?;
    /// let signals = SignalFd::new(&set)?;
    /// assert_eq!(signals.read(Some(Duration::from_millis(10)))?, None); // gave up
    /// Signal::ALRM.send(Pid::this())?;
    /// assert_eq!(signals.read(None)?.map(|i| i.signal), Some(Signal::ALRM));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn read(&self, timeout: Option<Duration>) -> Result<Option<SignalInfo>> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            if let Some(info) = self.try_read()? {
                return Ok(Some(info));
            }
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(None),
                },
            };
            let mut fds = [libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
            sys::poll(&mut fds, left).map_err(|e| Error::sys("poll", "a signalfd", e))?;
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_numbers_and_realtime() {
        for text in ["TERM", "SIGTERM", "term", "SigTerm", "15", " 15 "] {
            assert_eq!(text.parse::<Signal>().ok(), Some(Signal::TERM), "{text}");
        }
        assert_eq!("IOT".parse::<Signal>().ok(), Some(Signal::ABRT));
        let min = libc::SIGRTMIN();
        let max = libc::SIGRTMAX();
        assert_eq!("SIGRTMIN+3".parse::<Signal>().map(Signal::as_raw).ok(), Some(min + 3));
        assert_eq!("RTMIN".parse::<Signal>().map(Signal::as_raw).ok(), Some(min));
        assert_eq!("rtmax-1".parse::<Signal>().map(Signal::as_raw).ok(), Some(max - 1));
        assert_eq!("SIGRTMAX".parse::<Signal>().map(Signal::as_raw).ok(), Some(max));
        assert_eq!(max.to_string().parse::<Signal>().map(Signal::as_raw).ok(), Some(max));
    }

    #[test]
    fn refuses_what_is_not_a_signal() {
        for text in ["", "0", "65", "99999999999", "TERMINATE", "RTMIN-1", "RTMAX+1", "RTMIN+", "RTMIN+x", "-15"] {
            let err = text.parse::<Signal>().expect_err(text);
            assert!(err.to_string().contains("is not a signal"), "{text}: {err}");
        }
    }

    #[test]
    fn every_way_in_refuses_a_bad_number_and_names_it() {
        for bad in [0, 99, -1, libc::SIGRTMAX() + 1] {
            let err = Signal::try_from(bad).expect_err("refused");
            assert!(err.to_string().starts_with(&format!("'{bad}' is not a signal")), "{err}");
            let err = serde_json::from_str::<Signal>(&bad.to_string()).expect_err("refused");
            assert!(err.to_string().contains(&format!("'{bad}' is not a signal")), "{err}");
            let encoded = postcard::to_allocvec(&bad).expect("encode");
            assert!(postcard::from_bytes::<Signal>(&encoded).is_err(), "{bad}");
        }
        assert_eq!(serde_json::from_str::<Signal>("15").ok(), Some(Signal::TERM));
        let encoded = postcard::to_allocvec(&Signal::rtmax()).expect("encode");
        assert_eq!(postcard::from_bytes::<Signal>(&encoded).ok(), Some(Signal::rtmax()));
    }

    #[test]
    fn the_placeholder_signal_is_never_sent() {
        let placeholder = SignalInfo::default().signal;
        let err = placeholder.send(Pid::this()).expect_err("refused");
        assert!(err.to_string().contains("'0' is not a signal"), "{err}");
        assert!(placeholder.send_group(Pid::this()).is_err());
    }

    #[test]
    fn names_round_trip_like_kill_l() {
        for signal in Signal::all() {
            let name = signal.to_string();
            assert_eq!(name.parse::<Signal>().ok(), Some(signal), "{name}");
        }
        let min = libc::SIGRTMIN();
        assert_eq!(Signal(min + 3).to_string(), "SIGRTMIN+3");
        assert_eq!(Signal(libc::SIGRTMAX() - 2).to_string(), "SIGRTMAX-2");
        assert_eq!(Signal::KILL.to_string(), "SIGKILL");
        assert_eq!(format!("{:?}", Signal::TERM), "SIGTERM(15)");
    }

    #[test]
    fn sets_hold_what_was_put_in() {
        let mut set: SignalSet = [Signal::TERM, Signal::rtmin()].into_iter().collect();
        assert!(set.contains(Signal::TERM) && set.contains(Signal::rtmin()));
        assert!(!set.contains(Signal::INT));
        set.remove(Signal::TERM);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![Signal::rtmin()]);
        assert!(SignalSet::full().contains(Signal::rtmax()));
        assert_eq!(SignalSet::empty().iter().count(), 0);
    }
}
