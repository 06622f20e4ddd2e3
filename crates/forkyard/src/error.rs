//! The library's one error type.
//!
//! Why one type: callers of `forkyard` deal with a handful of failure families (a system call
//! failed, a child died before answering, the input was malformed), and a single
//! `#[non_exhaustive]` enum lets them match on what they care about and print the rest. Every
//! message says what failed, on what, and, where the kernel's error has a usual cause, what to
//! do about it.

use std::fmt;
use std::io;

use crate::pid::Pid;
use crate::signal::number::Signal;
use crate::status::ExitStatus;

/// A `Result` whose error is [`Error`].
///
/// ```
/// use forkyard::{Pid, Result};
///
/// fn parent_of_a_child() -> Result<Pid> {
///     forkyard::run_in_child(Pid::parent)
/// }
/// assert_eq!(parent_of_a_child()?, Pid::this());
/// # Ok::<(), forkyard::Error>(())
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `forkyard`.
///
/// Each message is whole: a kernel error is part of the text (`{}` prints it), so
/// [`std::error::Error::source`] returns `None` and a chain printer such as `anyhow`'s `{:#}`
/// prints it once. Match on the variant (and on [`StartStep`]) to tell failures apart, and
/// use [`Error::raw_os_error`] for the `errno`.
///
/// ```
/// use forkyard::{Error, Launch};
/// use forkyard::error::StartStep;
/// use forkyard::spawn::Program;
///
/// match Launch::new().start(Program::new(["/no/such/program"])) {
///     Err(e @ Error::Start { step: StartStep::Exec, .. }) => {
///         assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
///         assert!(e.to_string().starts_with("exec failed for '/no/such/program': "), "{e}");
///     }
///     other => panic!("expected an exec failure, got {other:?}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    Sys {
        /// The call, as a C programmer would name it (`fork`, `pidfd_open`, `waitid`, ...).
        call: &'static str,
        /// What it was called on (`child 1234`, `/proc/1234/stat`, ...).
        on: String,
        /// The kernel's answer.
        source: io::Error,
    },

    /// Starting a program failed in the child, at `exec` or at a step before it; the child
    /// has been collected.
    Start {
        /// The step that failed.
        step: StartStep,
        /// What it failed on (`'sh'`, `/srv/app for 'sh'`).
        on: String,
        /// The kernel's answer.
        source: io::Error,
    },

    /// The safe closure-in-a-child entry points refuse to fork a multi-threaded process.
    MultiThreaded {
        /// The thread count read from `/proc/self/status`.
        threads: usize,
    },

    /// The closure running in a child panicked.
    ChildPanicked {
        /// The child that panicked.
        pid: Pid,
        /// The panic message.
        message: String,
    },

    /// The child was killed by a signal before it delivered its result.
    ChildKilled {
        /// The child that was killed.
        pid: Pid,
        /// How it ended (always a signal).
        status: ExitStatus,
        /// The signal that killed it.
        signal: Signal,
    },

    /// The child exited without delivering its result (it called `exit` itself, or closed the
    /// result pipe early).
    ChildExitedEarly {
        /// The child.
        pid: Pid,
        /// How it ended.
        status: ExitStatus,
    },

    /// The child ended without delivering its result, and how it ended is unknown: the
    /// kernel discarded its exit status because this process ignores `SIGCHLD` (`SIG_IGN` or
    /// `SA_NOCLDWAIT`), or something else in the process collected it with `waitpid(-1)`.
    ChildLost {
        /// The child.
        pid: Pid,
    },

    /// The child's result arrived but could not be decoded.
    BadResult {
        /// The child.
        pid: Pid,
        /// What the decoder said.
        reason: String,
    },

    /// A text or number is not a signal.
    InvalidSignal(crate::signal::number::InvalidSignal),

    /// A text or number is not a process ID.
    InvalidPid(crate::pid::InvalidPid),

    /// A text could not be read as a duration.
    BadDuration {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The caller asked for something that cannot be: an argument out of range, a malformed
    /// value, a request that makes no sense.
    InvalidInput {
        /// What was given or asked for.
        what: String,
        /// Why it is refused, and what to give instead.
        why: String,
    },

    /// The request is sound but cannot be served by this strategy, kernel or process.
    Unsupported {
        /// What was asked for.
        what: &'static str,
        /// Why not, and what to use instead.
        why: String,
    },

    /// `/proc` could not be read.
    Proc {
        /// The file or process being read.
        on: String,
        /// What went wrong.
        reason: String,
    },
}

/// The steps of [`crate::Launch::start`] in the child, in order; the one that failed is in
/// [`Error::Start`].
///
/// ```
/// use forkyard::error::StartStep;
/// use forkyard::spawn::Program;
/// use forkyard::{Error, Launch};
///
/// let mut program = Program::new(["true"]);
/// program.cwd = Some("/no/such/directory".into());
/// let err = Launch::new().start(program).unwrap_err();
/// assert!(matches!(err, Error::Start { step: StartStep::Chdir, .. }), "{err}");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartStep {
    /// Moving into the cgroup (when it could not be born there).
    JoinCgroup,
    /// Putting the standard streams in place (`dup2`).
    Stdio,
    /// Entering the working directory (`chdir`).
    Chdir,
    /// The setup of [`crate::Launch`]: process group, terminal, credentials, signals.
    Setup,
    /// Running the program (`execve`, after the `PATH` search).
    Exec,
}

impl fmt::Display for StartStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StartStep::JoinCgroup => "joining the cgroup",
            StartStep::Stdio => "dup2",
            StartStep::Chdir => "chdir",
            StartStep::Setup => "setting up the child",
            StartStep::Exec => "exec",
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sys { call, on, source } => write!(f, "{call} failed for {on}: {source}{}", Hint(call, source)),
            Error::Start { step, on, source } => {
                write!(f, "{step} failed for {on}: {source}{}", Hint(&step.to_string(), source))
            }
            Error::MultiThreaded { threads } => write!(
                f,
                "refusing to fork: this process has {threads} threads, and a forked child of a \
                 multi-threaded process may deadlock on a lock another thread held (the allocator, \
                 stdout); fork before starting threads, or use the `unsafe` variant if you know every \
                 other thread is idle"
            ),
            Error::ChildPanicked { pid, message } => write!(f, "child {pid} panicked: {message}"),
            Error::ChildKilled { pid, status, .. } => {
                write!(f, "child {pid} was {status} before it delivered its result")
            }
            Error::ChildExitedEarly { pid, status } => write!(
                f,
                "child {pid} {status} without delivering its result (did the closure call \
                 std::process::exit, or close inherited file descriptors?)"
            ),
            Error::ChildLost { pid } => write!(
                f,
                "child {pid} ended without delivering its result, and how it ended is unknown: this \
                 process ignores SIGCHLD (so the kernel discarded the exit status) or collects \
                 children with waitpid(-1); restore SIGCHLD's default action to learn why it died"
            ),
            Error::BadResult { pid, reason } => {
                write!(f, "the result sent by child {pid} could not be decoded: {reason}")
            }
            Error::InvalidSignal(e) => fmt::Display::fmt(e, f),
            Error::InvalidPid(e) => fmt::Display::fmt(e, f),
            Error::BadDuration { input, reason } => {
                write!(f, "'{input}' is not a duration: {reason} (write e.g. 500ms, 5s, 1m30s, or 0)")
            }
            Error::InvalidInput { what, why } => write!(f, "{what}: {why}"),
            Error::Unsupported { what, why } => write!(f, "{what}: {why}"),
            Error::Proc { on, reason } => write!(f, "reading /proc failed for {on}: {reason} (is /proc mounted?)"),
        }
    }
}

/// Every message is whole (see [`Error`]), so there is no separate source.
impl std::error::Error for Error {}

impl From<crate::signal::number::InvalidSignal> for Error {
    fn from(e: crate::signal::number::InvalidSignal) -> Error {
        Error::InvalidSignal(e)
    }
}

impl From<crate::pid::InvalidPid> for Error {
    fn from(e: crate::pid::InvalidPid) -> Error {
        Error::InvalidPid(e)
    }
}

impl Error {
    /// Builds [`Error::Sys`] from the calling thread's `errno`.
    pub(crate) fn last_os(call: &'static str, on: impl Into<String>) -> Error {
        Error::Sys { call, on: on.into(), source: io::Error::last_os_error() }
    }

    /// Builds [`Error::Sys`] from an `io::Error`.
    pub(crate) fn sys(call: &'static str, on: impl Into<String>, source: io::Error) -> Error {
        Error::Sys { call, on: on.into(), source }
    }

    /// Builds [`Error::InvalidInput`].
    pub(crate) fn invalid(what: impl Into<String>, why: impl Into<String>) -> Error {
        Error::InvalidInput { what: what.into(), why: why.into() }
    }

    /// The `errno` behind this error, if it came from a system call.
    ///
    /// ```
    /// use forkyard::{Child, Pid};
    ///
    /// // Process 1 is not our child: waitid says ECHILD.
    /// let err = Child::from_pid(Pid::INIT).unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(libc::ECHILD));
    /// let err = "soon".parse::<forkyard::Signal>().map_err(forkyard::Error::from).unwrap_err();
    /// assert_eq!(err.raw_os_error(), None); // not from a system call
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Sys { source, .. } | Error::Start { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The text of an `errno` as C's `strerror` prints it ("No such file or directory"),
/// without Rust's "(os error 2)"; other errors as they display.
///
/// ```
/// let e = std::io::Error::from_raw_os_error(libc::ENOENT);
/// assert_eq!(forkyard::error::strerror(&e), "No such file or directory");
/// ```
pub fn strerror(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(errno) => {
            // SAFETY: strerror returns a pointer to a NUL-terminated string that stays valid
            // until the next strerror call on this thread; it is copied at once.
            let text = unsafe { std::ffi::CStr::from_ptr(libc::strerror(errno)) };
            text.to_string_lossy().into_owned()
        }
        None => error.to_string(),
    }
}

/// The usual cause of an `errno` from a given call, and what to do about it.
struct Hint<'a>(&'a str, &'a io::Error);

impl fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(errno) = self.1.raw_os_error() else {
            return Ok(());
        };
        let hint = match (self.0, errno) {
            ("fork", libc::EAGAIN) => {
                "the process limit is reached (ulimit -u, or the cgroup's pids.max); wait for \
                 some processes to exit or raise the limit"
            }
            (_, libc::ENOMEM) => "the system is out of memory",
            (_, libc::EMFILE) => "this process has too many open files; raise `ulimit -n`",
            (_, libc::ENFILE) => "the system has too many open files",
            (_, libc::EPERM) => "not permitted; run as root or with the needed capability",
            (_, libc::ENOSYS) => "this kernel lacks the call (pidfds need Linux 5.3 or later)",
            (_, libc::ECHILD) => {
                "the child was already collected elsewhere; something in this process called \
                 waitpid(-1) or set SIGCHLD to SIG_IGN"
            }
            (_, libc::ESRCH) => "no such process; it has already exited",
            _ => return Ok(()),
        };
        write!(f, " ({hint})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_eagain_explains_the_process_limit() {
        let e = Error::sys("fork", "a closure child", io::Error::from_raw_os_error(libc::EAGAIN));
        let text = e.to_string();
        assert!(text.starts_with("fork failed for a closure child: "), "{text}");
        assert!(text.contains("ulimit -u"), "{text}");
        assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
    }

    #[test]
    fn the_kernels_error_is_printed_once() {
        let e = Error::sys("read", "a pipe", io::Error::from_raw_os_error(libc::EIO));
        assert!(std::error::Error::source(&e).is_none(), "the message carries it already: {e}");
        let e = anyhow_like_chain(&e);
        assert_eq!(e.matches("Input/output error").count(), 1, "{e}");
    }

    /// What `anyhow`'s `{:#}` prints: each error of the chain, joined by ": ".
    fn anyhow_like_chain(e: &(dyn std::error::Error + 'static)) -> String {
        let mut text = e.to_string();
        let mut next = e.source();
        while let Some(cause) = next {
            text = format!("{text}: {cause}");
            next = cause.source();
        }
        text
    }

    #[test]
    fn unknown_errno_gets_no_made_up_hint() {
        let e = Error::sys("read", "a pipe", io::Error::from_raw_os_error(libc::EIO));
        assert!(e.to_string().ends_with("(os error 5)"), "{e}");
    }
}
