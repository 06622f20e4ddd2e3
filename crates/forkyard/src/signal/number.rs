//! A signal's number and name, and reading one from text.
//!
//! Why this module exists apart from the rest of `signal`: naming and parsing signals needs no
//! system call and no crate error, so the error type and the wait statuses (which hold a
//! [`Signal`]) can sit above it while the signal operations (which return those errors) sit
//! above them. Real-time signals are first-class: their numbers depend on the C library (glibc
//! keeps 32 and 33 for itself), so names are computed from `SIGRTMIN()`/`SIGRTMAX()` at run
//! time.

use std::fmt;
use std::str::FromStr;

/// One signal, standard (1-31) or real-time (`SIGRTMIN`..=`SIGRTMAX`).
///
/// Every way in checks the number: [`Signal::new`], `TryFrom<i32>`, parsing a name or number,
/// and serde (a deserialized `0` or `99` is an error naming the value, so it never reaches
/// `kill`).
///
/// ```
/// use forkyard::Signal;
///
/// let quit: Signal = "SIGQUIT".parse()?;
/// assert_eq!(quit, Signal::QUIT);
/// assert_eq!("RTMIN+3".parse::<Signal>()?.to_string(), "SIGRTMIN+3");
/// assert!(Signal::try_from(0).is_err());
/// let err = serde_json::from_str::<Signal>("99").unwrap_err();
/// assert!(err.to_string().contains("'99' is not a signal"), "{err}");
/// # Ok::<(), forkyard::signal::InvalidSignal>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "i32")]
pub struct Signal(pub(super) i32);

/// A text or number that is not a signal on this system; names what was given and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{input}' is not a signal: {reason} (use a name like TERM or SIGTERM, a number like 15, \
     or SIGRTMIN+3)"
)]
///
/// ```
/// let err = "SIGNOPE".parse::<forkyard::Signal>().unwrap_err();
/// assert_eq!((err.input.as_str(), err.reason), ("SIGNOPE", "unknown signal name"));
/// ```
pub struct InvalidSignal {
    /// What was given.
    pub input: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl TryFrom<i32> for Signal {
    type Error = InvalidSignal;

    fn try_from(number: i32) -> std::result::Result<Signal, InvalidSignal> {
        Signal::new(number).ok_or_else(|| InvalidSignal {
            input: number.to_string(),
            reason: "no signal has that number on this system",
        })
    }
}

/// The standard signals by name, as Linux numbers them on this architecture. The first name
/// of a number is the one we print.
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

#[allow(missing_docs)]
impl Signal {
    pub const HUP: Signal = Signal(libc::SIGHUP);
    pub const INT: Signal = Signal(libc::SIGINT);
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    pub const ILL: Signal = Signal(libc::SIGILL);
    pub const TRAP: Signal = Signal(libc::SIGTRAP);
    pub const ABRT: Signal = Signal(libc::SIGABRT);
    pub const BUS: Signal = Signal(libc::SIGBUS);
    pub const FPE: Signal = Signal(libc::SIGFPE);
    pub const KILL: Signal = Signal(libc::SIGKILL);
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    pub const SEGV: Signal = Signal(libc::SIGSEGV);
    pub const USR2: Signal = Signal(libc::SIGUSR2);
    pub const PIPE: Signal = Signal(libc::SIGPIPE);
    pub const ALRM: Signal = Signal(libc::SIGALRM);
    pub const TERM: Signal = Signal(libc::SIGTERM);
    pub const CHLD: Signal = Signal(libc::SIGCHLD);
    pub const CONT: Signal = Signal(libc::SIGCONT);
    pub const STOP: Signal = Signal(libc::SIGSTOP);
    pub const TSTP: Signal = Signal(libc::SIGTSTP);
    pub const TTIN: Signal = Signal(libc::SIGTTIN);
    pub const TTOU: Signal = Signal(libc::SIGTTOU);
    pub const URG: Signal = Signal(libc::SIGURG);
    pub const WINCH: Signal = Signal(libc::SIGWINCH);
    pub const PWR: Signal = Signal(libc::SIGPWR);
    pub const SYS: Signal = Signal(libc::SIGSYS);
}

impl Signal {
    /// The signal with this number, if it is one (1..=`SIGRTMAX`).
    pub fn new(number: i32) -> Option<Signal> {
        (1..=libc::SIGRTMAX()).contains(&number).then_some(Signal(number))
    }

    /// Wraps a number the kernel reported (a wait status, a siginfo); no check is needed.
    pub(crate) fn from_kernel(number: i32) -> Signal {
        Signal(number)
    }

    /// Itself if it is a signal: every public way of making a `Signal` checks, but the
    /// placeholder in [`SignalInfo::default`] holds 0, which must never reach `kill` (where it
    /// would mean "check that the process exists").
    pub(crate) fn checked(self) -> std::result::Result<Signal, InvalidSignal> {
        Signal::try_from(self.0)
    }

    /// The signal's number.
    pub fn as_raw(self) -> i32 {
        self.0
    }

    /// The lowest real-time signal the C library leaves to programs.
    pub fn rtmin() -> Signal {
        Signal(libc::SIGRTMIN())
    }

    /// The highest real-time signal.
    pub fn rtmax() -> Signal {
        Signal(libc::SIGRTMAX())
    }

    /// Whether this is a real-time signal (queued, never coalesced).
    pub fn is_realtime(self) -> bool {
        self.0 >= libc::SIGRTMIN() && self.0 <= libc::SIGRTMAX()
    }

    /// Whether a process can catch, block or ignore it: everything but SIGKILL and SIGSTOP.
    pub fn is_catchable(self) -> bool {
        self != Signal::KILL && self != Signal::STOP
    }

    /// Every signal a program may use: 1-31 and `SIGRTMIN`..=`SIGRTMAX` (the numbers glibc
    /// keeps for its threads are left out).
    pub fn all() -> impl Iterator<Item = Signal> {
        (1..32).chain(libc::SIGRTMIN()..=libc::SIGRTMAX()).map(Signal)
    }
}

impl fmt::Display for Signal {
    /// `SIGTERM`, `SIGRTMIN+3`, `SIGRTMAX-2`, as `kill -l` prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((name, _)) = NAMES.iter().find(|(_, n)| *n == self.0) {
            return write!(f, "SIG{name}");
        }
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        if self.0 == min {
            f.write_str("SIGRTMIN")
        } else if self.0 == max {
            f.write_str("SIGRTMAX")
        } else if self.0 > min && self.0 - min <= (max - min) / 2 {
            write!(f, "SIGRTMIN+{}", self.0 - min)
        } else if self.0 > min && self.0 < max {
            write!(f, "SIGRTMAX-{}", max - self.0)
        } else {
            write!(f, "SIG{}", self.0)
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}({})", self.0)
    }
}

impl FromStr for Signal {
    type Err = InvalidSignal;

    /// Reads `TERM`, `SIGTERM`, `term`, `15`, `RTMIN`, `SIGRTMIN+3`, `RTMAX-1`.
    fn from_str(input: &str) -> std::result::Result<Signal, InvalidSignal> {
        let bad = |reason| InvalidSignal { input: input.to_string(), reason };
        let text = input.trim();
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            let n: i32 = text.parse().map_err(|_| bad("the number is too large"))?;
            return Signal::new(n).ok_or_else(|| bad("no signal has that number on this system"));
        }
        let upper = text.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some((_, n)) = NAMES.iter().find(|(candidate, _)| *candidate == name) {
            return Ok(Signal(*n));
        }
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        let realtime = |base: i32, rest: &str, sign: i32| -> std::result::Result<Signal, InvalidSignal> {
            let n = if rest.is_empty() {
                base
            } else {
                let (op, digits) = rest.split_at(1);
                let expected = if sign > 0 { "+" } else { "-" };
                if op != expected || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("write real-time signals as RTMIN+n or RTMAX-n"));
                }
                let offset: i32 = digits.parse().map_err(|_| bad("the offset is too large"))?;
                base + sign * offset
            };
            if (min..=max).contains(&n) { Ok(Signal(n)) } else { Err(bad("it is outside SIGRTMIN..SIGRTMAX")) }
        };
        if let Some(rest) = name.strip_prefix("RTMIN") {
            return realtime(min, rest, 1);
        }
        if let Some(rest) = name.strip_prefix("RTMAX") {
            return realtime(max, rest, -1);
        }
        Err(bad("unknown signal name"))
    }
}
