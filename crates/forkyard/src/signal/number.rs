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

/// The standard signals a program names, with what each usually means.
impl Signal {
    /// `SIGHUP`: the terminal hung up; by convention a daemon reloads its configuration.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::HUP.to_string(), "SIGHUP");
    /// assert_eq!("HUP".parse::<Signal>(), Ok(Signal::HUP));
    /// ```
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// `SIGINT`: an interrupt from the keyboard (Ctrl-C).
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::INT.to_string(), "SIGINT");
    /// assert_eq!("INT".parse::<Signal>(), Ok(Signal::INT));
    /// ```
    pub const INT: Signal = Signal(libc::SIGINT);
    /// `SIGQUIT`: a quit from the keyboard (Ctrl-\\), ending with a core dump by default.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::QUIT.to_string(), "SIGQUIT");
    /// assert_eq!("QUIT".parse::<Signal>(), Ok(Signal::QUIT));
    /// ```
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    /// `SIGILL`: an illegal instruction.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::ILL.to_string(), "SIGILL");
    /// assert_eq!("ILL".parse::<Signal>(), Ok(Signal::ILL));
    /// ```
    pub const ILL: Signal = Signal(libc::SIGILL);
    /// `SIGTRAP`: a trace or breakpoint trap.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::TRAP.to_string(), "SIGTRAP");
    /// assert_eq!("TRAP".parse::<Signal>(), Ok(Signal::TRAP));
    /// ```
    pub const TRAP: Signal = Signal(libc::SIGTRAP);
    /// `SIGABRT`: `abort()` was called.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::ABRT.to_string(), "SIGABRT");
    /// assert_eq!("ABRT".parse::<Signal>(), Ok(Signal::ABRT));
    /// ```
    pub const ABRT: Signal = Signal(libc::SIGABRT);
    /// `SIGBUS`: a bus error (a bad memory access, such as past the end of a mapped file).
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::BUS.to_string(), "SIGBUS");
    /// assert_eq!("BUS".parse::<Signal>(), Ok(Signal::BUS));
    /// ```
    pub const BUS: Signal = Signal(libc::SIGBUS);
    /// `SIGFPE`: an arithmetic error (such as an integer division by zero).
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::FPE.to_string(), "SIGFPE");
    /// assert_eq!("FPE".parse::<Signal>(), Ok(Signal::FPE));
    /// ```
    pub const FPE: Signal = Signal(libc::SIGFPE);
    /// `SIGKILL`: ends the process; it cannot be caught, blocked or ignored.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::KILL.to_string(), "SIGKILL");
    /// assert_eq!("KILL".parse::<Signal>(), Ok(Signal::KILL));
    /// ```
    pub const KILL: Signal = Signal(libc::SIGKILL);
    /// `SIGUSR1`: the first signal left to programs to define.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::USR1.to_string(), "SIGUSR1");
    /// assert_eq!("USR1".parse::<Signal>(), Ok(Signal::USR1));
    /// ```
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// `SIGSEGV`: an invalid memory reference.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::SEGV.to_string(), "SIGSEGV");
    /// assert_eq!("SEGV".parse::<Signal>(), Ok(Signal::SEGV));
    /// ```
    pub const SEGV: Signal = Signal(libc::SIGSEGV);
    /// `SIGUSR2`: the second signal left to programs to define.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::USR2.to_string(), "SIGUSR2");
    /// assert_eq!("USR2".parse::<Signal>(), Ok(Signal::USR2));
    /// ```
    pub const USR2: Signal = Signal(libc::SIGUSR2);
    /// `SIGPIPE`: a write to a pipe with no reader.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::PIPE.to_string(), "SIGPIPE");
    /// assert_eq!("PIPE".parse::<Signal>(), Ok(Signal::PIPE));
    /// ```
    pub const PIPE: Signal = Signal(libc::SIGPIPE);
    /// `SIGALRM`: a timer set by `alarm()` went off.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::ALRM.to_string(), "SIGALRM");
    /// assert_eq!("ALRM".parse::<Signal>(), Ok(Signal::ALRM));
    /// ```
    pub const ALRM: Signal = Signal(libc::SIGALRM);
    /// `SIGTERM`: the polite request to end, which `kill` sends by default.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::TERM.to_string(), "SIGTERM");
    /// assert_eq!("TERM".parse::<Signal>(), Ok(Signal::TERM));
    /// ```
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// `SIGCHLD`: a child stopped, continued or ended.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::CHLD.to_string(), "SIGCHLD");
    /// assert_eq!("CHLD".parse::<Signal>(), Ok(Signal::CHLD));
    /// ```
    pub const CHLD: Signal = Signal(libc::SIGCHLD);
    /// `SIGCONT`: continue if stopped.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::CONT.to_string(), "SIGCONT");
    /// assert_eq!("CONT".parse::<Signal>(), Ok(Signal::CONT));
    /// ```
    pub const CONT: Signal = Signal(libc::SIGCONT);
    /// `SIGSTOP`: stops the process; it cannot be caught, blocked or ignored.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::STOP.to_string(), "SIGSTOP");
    /// assert_eq!("STOP".parse::<Signal>(), Ok(Signal::STOP));
    /// ```
    pub const STOP: Signal = Signal(libc::SIGSTOP);
    /// `SIGTSTP`: a stop from the keyboard (Ctrl-Z).
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::TSTP.to_string(), "SIGTSTP");
    /// assert_eq!("TSTP".parse::<Signal>(), Ok(Signal::TSTP));
    /// ```
    pub const TSTP: Signal = Signal(libc::SIGTSTP);
    /// `SIGTTIN`: a background process read from its terminal.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::TTIN.to_string(), "SIGTTIN");
    /// assert_eq!("TTIN".parse::<Signal>(), Ok(Signal::TTIN));
    /// ```
    pub const TTIN: Signal = Signal(libc::SIGTTIN);
    /// `SIGTTOU`: a background process wrote to its terminal (or changed its settings).
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::TTOU.to_string(), "SIGTTOU");
    /// assert_eq!("TTOU".parse::<Signal>(), Ok(Signal::TTOU));
    /// ```
    pub const TTOU: Signal = Signal(libc::SIGTTOU);
    /// `SIGURG`: urgent data arrived on a socket.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::URG.to_string(), "SIGURG");
    /// assert_eq!("URG".parse::<Signal>(), Ok(Signal::URG));
    /// ```
    pub const URG: Signal = Signal(libc::SIGURG);
    /// `SIGWINCH`: the terminal's window size changed.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::WINCH.to_string(), "SIGWINCH");
    /// assert_eq!("WINCH".parse::<Signal>(), Ok(Signal::WINCH));
    /// ```
    pub const WINCH: Signal = Signal(libc::SIGWINCH);
    /// `SIGPWR`: the power is failing (sent by UPS daemons; an init may shut down).
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::PWR.to_string(), "SIGPWR");
    /// assert_eq!("PWR".parse::<Signal>(), Ok(Signal::PWR));
    /// ```
    pub const PWR: Signal = Signal(libc::SIGPWR);
    /// `SIGSYS`: a bad system call (also what a seccomp filter may send).
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::SYS.to_string(), "SIGSYS");
    /// assert_eq!("SYS".parse::<Signal>(), Ok(Signal::SYS));
    /// ```
    pub const SYS: Signal = Signal(libc::SIGSYS);
}

impl Signal {
    /// The signal with this number, if it is one (1..=`SIGRTMAX`).
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::new(15), Some(Signal::TERM));
    /// assert_eq!(Signal::new(0), None); // 0 only checks a process exists, to kill(2)
    /// assert_eq!(Signal::new(65), None);
    /// ```
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
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::KILL.as_raw(), 9);
    /// ```
    pub fn as_raw(self) -> i32 {
        self.0
    }

    /// The lowest real-time signal the C library leaves to programs.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!("SIGRTMIN+2".parse::<Signal>()?.as_raw(), Signal::rtmin().as_raw() + 2);
    /// assert!(Signal::rtmin().as_raw() > 31); // after the standard signals
    /// # Ok::<(), forkyard::signal::InvalidSignal>(())
    /// ```
    pub fn rtmin() -> Signal {
        Signal(libc::SIGRTMIN())
    }

    /// The highest real-time signal.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert_eq!(Signal::rtmax().to_string(), "SIGRTMAX");
    /// assert!(Signal::rtmax().as_raw() > Signal::rtmin().as_raw());
    /// ```
    pub fn rtmax() -> Signal {
        Signal(libc::SIGRTMAX())
    }

    /// Whether this is a real-time signal (queued, never coalesced).
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert!(Signal::rtmin().is_realtime());
    /// assert!(!Signal::TERM.is_realtime());
    /// ```
    pub fn is_realtime(self) -> bool {
        self.0 >= libc::SIGRTMIN() && self.0 <= libc::SIGRTMAX()
    }

    /// Whether a process can catch, block or ignore it: everything but SIGKILL and SIGSTOP.
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// assert!(Signal::TERM.is_catchable());
    /// assert!(!Signal::KILL.is_catchable() && !Signal::STOP.is_catchable());
    /// ```
    pub fn is_catchable(self) -> bool {
        self != Signal::KILL && self != Signal::STOP
    }

    /// Every signal a program may use: 1-31 and `SIGRTMIN`..=`SIGRTMAX` (the numbers glibc
    /// keeps for its threads are left out).
    ///
    /// ```
    /// use forkyard::Signal;
    ///
    /// let names: Vec<String> = Signal::all().take(2).map(|s| s.to_string()).collect();
    /// assert_eq!(names, ["SIGHUP", "SIGINT"]);
    /// assert_eq!(Signal::all().last(), Some(Signal::rtmax()));
    /// ```
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
