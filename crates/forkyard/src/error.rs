//! The library's one error type.
//!
//! Why one type: callers of `forkyard` deal with a handful of failure families (a system call
//! failed, a child died before answering, the input was malformed), and a single
//! `#[non_exhaustive]` enum lets them match on what they care about and print the rest. Every
//! message says what failed, on what, and, where the kernel's error has a usual cause, what to
//! do about it.

use std::fmt;
use std::io;

use crate::{ExitStatus, Pid, Signal};

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `forkyard`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    #[error("{call} failed for {on}: {source}{}", Hint(call, source))]
    Sys {
        /// The call, as a C programmer would name it (`fork`, `pidfd_open`, `waitid`, ...).
        call: &'static str,
        /// What it was called on (`child 1234`, `/proc/1234/stat`, ...).
        on: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },

    /// The safe closure-in-a-child entry points refuse to fork a multi-threaded process.
    #[error(
        "refusing to fork: this process has {threads} threads, and a forked child of a \
         multi-threaded process may deadlock on a lock another thread held (the allocator, \
         stdout); fork before starting threads, or use the `unsafe` variant if you know every \
         other thread is idle"
    )]
    MultiThreaded {
        /// The thread count read from `/proc/self/status`.
        threads: usize,
    },

    /// The closure running in a child panicked.
    #[error("child {pid} panicked: {message}")]
    ChildPanicked {
        /// The child that panicked.
        pid: Pid,
        /// The panic message.
        message: String,
    },

    /// The child was killed by a signal before it delivered its result.
    #[error("child {pid} was {status} before it delivered its result")]
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
    #[error(
        "child {pid} {status} without delivering its result (did the closure call \
         std::process::exit, or close inherited file descriptors?)"
    )]
    ChildExitedEarly {
        /// The child.
        pid: Pid,
        /// How it ended.
        status: ExitStatus,
    },

    /// The child ended without delivering its result, and how it ended is unknown: the
    /// kernel discarded its exit status because this process ignores `SIGCHLD` (`SIG_IGN` or
    /// `SA_NOCLDWAIT`), or something else in the process collected it with `waitpid(-1)`.
    #[error(
        "child {pid} ended without delivering its result, and how it ended is unknown: this \
         process ignores SIGCHLD (so the kernel discarded the exit status) or collects children \
         with waitpid(-1); restore SIGCHLD's default action to learn why it died"
    )]
    ChildLost {
        /// The child.
        pid: Pid,
    },

    /// The child's result arrived but could not be decoded.
    #[error("the result sent by child {pid} could not be decoded: {reason}")]
    BadResult {
        /// The child.
        pid: Pid,
        /// What the decoder said.
        reason: String,
    },

    /// A text or number is not a signal.
    #[error(transparent)]
    InvalidSignal(#[from] crate::signal::InvalidSignal),

    /// A text or number is not a process ID.
    #[error(transparent)]
    InvalidPid(#[from] crate::pid::InvalidPid),

    /// A text could not be read as a duration.
    #[error("'{input}' is not a duration: {reason} (write e.g. 500ms, 5s, 1m30s, or 0)")]
    BadDuration {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The request cannot be served by this strategy, kernel or configuration.
    #[error("{what}: {why}")]
    Unsupported {
        /// What was asked for.
        what: &'static str,
        /// Why not, and what to use instead.
        why: String,
    },

    /// `/proc` could not be read.
    #[error(
        "reading /proc failed for {on}: {reason} (is /proc mounted? in a container, mount it or run with --mount-proc)"
    )]
    Proc {
        /// The file or process being read.
        on: String,
        /// What went wrong.
        reason: String,
    },
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

    /// The `errno` behind this error, if it came from a system call.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Sys { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The text of an `errno` as C's `strerror` prints it ("No such file or directory"),
/// without Rust's "(os error 2)"; other errors as they display.
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
struct Hint<'a>(&'a &'static str, &'a io::Error);

impl fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(errno) = self.1.raw_os_error() else {
            return Ok(());
        };
        let hint = match (*self.0, errno) {
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
    fn unknown_errno_gets_no_made_up_hint() {
        let e = Error::sys("read", "a pipe", io::Error::from_raw_os_error(libc::EIO));
        assert!(e.to_string().ends_with("(os error 5)"), "{e}");
    }
}
