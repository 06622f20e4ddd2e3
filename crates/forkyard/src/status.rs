//! How a process ended, and the other events `wait` reports.
//!
//! Why this module exists: the kernel packs an exit code, a signal number, a core-dump bit and
//! stop/continue events into one `int` (from `waitpid`) or a `siginfo_t` (from `waitid`), and
//! every layer above (the reapers, `init`'s exit code, the supervisor's restart policy) needs
//! the same unpacked answer, the same words for it, and the same shell number (128+n).

use std::fmt;
use std::time::Duration;

use crate::pid::Pid;
use crate::signal::number::Signal;
use crate::sys::{RawStatus, RawWait};

/// How a process ended.
///
/// ```
/// use forkyard::{ExitStatus, Signal};
///
/// let killed = ExitStatus::Signaled { signal: Signal::KILL, core_dumped: false };
/// assert_eq!(killed.to_string(), "killed by SIGKILL");
/// assert_eq!(killed.shell_code(), 137); // what a shell puts in $?
/// assert_eq!(ExitStatus::Exited(3).code(), Some(3));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub enum ExitStatus {
    /// It called `exit`/`_exit` (or returned from `main`) with this code. Only the low
    /// 8 bits survive, so `exit(256)` is `Exited(0)`.
    Exited(u8),
    /// A signal ended it.
    Signaled {
        /// The signal.
        signal: Signal,
        /// Whether the kernel wrote a core dump.
        core_dumped: bool,
    },
}

impl ExitStatus {
    /// Whether the process exited with code 0.
    ///
    /// ```
    /// use forkyard::ExitStatus;
    ///
    /// assert!(ExitStatus::Exited(0).success());
    /// assert!(!ExitStatus::Exited(1).success());
    /// ```
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// The exit code, if the process exited (rather than being killed).
    ///
    /// ```
    /// use forkyard::{ExitStatus, Signal};
    ///
    /// assert_eq!(ExitStatus::Exited(2).code(), Some(2));
    /// assert_eq!(ExitStatus::Signaled { signal: Signal::TERM, core_dumped: false }.code(), None);
    /// ```
    pub fn code(self) -> Option<u8> {
        match self {
            ExitStatus::Exited(code) => Some(code),
            ExitStatus::Signaled { .. } => None,
        }
    }

    /// The signal that ended the process, if one did.
    ///
    /// ```
    /// use forkyard::{ExitStatus, Signal};
    ///
    /// let killed = ExitStatus::Signaled { signal: Signal::KILL, core_dumped: false };
    /// assert_eq!(killed.signal(), Some(Signal::KILL));
    /// assert_eq!(ExitStatus::Exited(0).signal(), None);
    /// ```
    pub fn signal(self) -> Option<Signal> {
        match self {
            ExitStatus::Exited(_) => None,
            ExitStatus::Signaled { signal, .. } => Some(signal),
        }
    }

    /// Whether a core dump was written.
    ///
    /// ```
    /// use forkyard::{ExitStatus, Signal};
    ///
    /// assert!(ExitStatus::Signaled { signal: Signal::SEGV, core_dumped: true }.core_dumped());
    /// assert!(!ExitStatus::Exited(139).core_dumped()); // a code, however it looks
    /// ```
    pub fn core_dumped(self) -> bool {
        matches!(self, ExitStatus::Signaled { core_dumped: true, .. })
    }

    /// The number a POSIX shell would put in `$?`: the exit code, or 128 + the signal number.
    /// This is also what `forkyard init` and `forkyard up` exit with.
    ///
    /// ```
    /// use forkyard::{ExitStatus, Signal};
    ///
    /// assert_eq!(ExitStatus::Exited(3).shell_code(), 3);
    /// assert_eq!(ExitStatus::Signaled { signal: Signal::TERM, core_dumped: false }.shell_code(), 143);
    /// ```
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => i32::from(code),
            ExitStatus::Signaled { signal, .. } => 128 + signal.as_raw(),
        }
    }
}

impl fmt::Display for ExitStatus {
    /// In words: `exited with status 3`, `killed by SIGKILL`, `killed by SIGSEGV (core
    /// dumped)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited with status {code}"),
            ExitStatus::Signaled { signal, core_dumped: false } => write!(f, "killed by {signal}"),
            ExitStatus::Signaled { signal, core_dumped: true } => {
                write!(f, "killed by {signal} (core dumped)")
            }
        }
    }
}

/// One event that `wait` can report about a child: it ended, it was stopped, or it was
/// continued.
///
/// ```
/// use forkyard::{ExitStatus, WaitEvent};
///
/// let ended = WaitEvent::Ended(ExitStatus::Exited(0));
/// assert_eq!(ended.exit_status(), Some(ExitStatus::Exited(0)));
/// assert_eq!(WaitEvent::Continued.to_string(), "continued");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum WaitEvent {
    /// The child ended; it is gone once this has been collected.
    Ended(ExitStatus),
    /// The child was stopped by this signal (reported only to callers who ask with
    /// `WUNTRACED`/`WSTOPPED`).
    Stopped(Signal),
    /// The child was resumed by `SIGCONT` (reported only with `WCONTINUED`).
    Continued,
}

impl WaitEvent {
    /// Decodes the status word that `waitpid(2)` and `wait4(2)` store, for a caller that
    /// makes the call itself (an init that asks the kernel for nothing more than the status).
    ///
    /// ```
    /// use forkyard::{ExitStatus, WaitEvent};
    ///
    /// assert_eq!(WaitEvent::from_wait_status(3 << 8), WaitEvent::Ended(ExitStatus::Exited(3)));
    /// ```
    pub fn from_wait_status(status: i32) -> WaitEvent {
        WaitEvent::from_raw(status)
    }

    /// Decodes the `int` that `waitpid`/`wait4` store.
    pub(crate) fn from_raw(status: libc::c_int) -> WaitEvent {
        if libc::WIFEXITED(status) {
            WaitEvent::Ended(ExitStatus::Exited(libc::WEXITSTATUS(status) as u8))
        } else if libc::WIFSIGNALED(status) {
            WaitEvent::Ended(ExitStatus::Signaled {
                signal: Signal::from_kernel(libc::WTERMSIG(status)),
                core_dumped: libc::WCOREDUMP(status),
            })
        } else if libc::WIFSTOPPED(status) {
            WaitEvent::Stopped(Signal::from_kernel(libc::WSTOPSIG(status)))
        } else {
            WaitEvent::Continued
        }
    }

    /// Decodes the `si_code`/`si_status` pair that `waitid` and a SIGCHLD `siginfo` carry.
    pub(crate) fn from_siginfo(code: libc::c_int, status: libc::c_int) -> WaitEvent {
        match code {
            libc::CLD_EXITED => WaitEvent::Ended(ExitStatus::Exited(status as u8)),
            libc::CLD_KILLED => {
                WaitEvent::Ended(ExitStatus::Signaled { signal: Signal::from_kernel(status), core_dumped: false })
            }
            libc::CLD_DUMPED => {
                WaitEvent::Ended(ExitStatus::Signaled { signal: Signal::from_kernel(status), core_dumped: true })
            }
            libc::CLD_STOPPED | libc::CLD_TRAPPED => WaitEvent::Stopped(Signal::from_kernel(status)),
            _ => WaitEvent::Continued,
        }
    }

    /// The exit status, if this event is the end of the process.
    ///
    /// ```
    /// use forkyard::{ExitStatus, Signal, WaitEvent};
    ///
    /// assert_eq!(WaitEvent::Ended(ExitStatus::Exited(1)).exit_status(), Some(ExitStatus::Exited(1)));
    /// assert_eq!(WaitEvent::Stopped(Signal::STOP).exit_status(), None);
    /// ```
    pub fn exit_status(self) -> Option<ExitStatus> {
        match self {
            WaitEvent::Ended(status) => Some(status),
            _ => None,
        }
    }
}

impl fmt::Display for WaitEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitEvent::Ended(status) => status.fmt(f),
            WaitEvent::Stopped(signal) => write!(f, "stopped by {signal}"),
            WaitEvent::Continued => f.write_str("continued"),
        }
    }
}

/// What a finished child cost, as `wait4`/`waitid` report it.
///
/// ```
/// // SAFETY: a doc-test is single-threaded; the child only spins, then ends with _exit.
/// let mut child = match unsafe { forkyard::fork() }? {
///     forkyard::Fork::Child => forkyard::exit_child(0),
///     forkyard::Fork::Parent(child) => child,
/// };
/// child.wait()?;
/// let usage = child.resource_usage().expect("known once collected");
/// assert!(usage.max_rss_kib > 0);
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ResourceUsage {
    /// CPU time spent in user mode.
    pub user: Duration,
    /// CPU time spent in the kernel on its behalf.
    pub system: Duration,
    /// Its peak resident set size, in kibibytes.
    pub max_rss_kib: u64,
}

/// What a wait call collected, decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waited {
    pub pid: Pid,
    pub event: WaitEvent,
    pub usage: ResourceUsage,
}

impl From<RawWait> for Waited {
    fn from(raw: RawWait) -> Waited {
        let event = match raw.status {
            RawStatus::Wait(status) => WaitEvent::from_raw(status),
            RawStatus::Siginfo { code, status } => WaitEvent::from_siginfo(code, status),
        };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
        let usage = ResourceUsage {
            user: tv(raw.rusage.ru_utime),
            system: tv(raw.rusage.ru_stime),
            // Linux reports ru_maxrss in kibibytes.
            max_rss_kib: raw.rusage.ru_maxrss.max(0) as u64,
        };
        Waited { pid: raw.pid, event, usage }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Raw statuses as the kernel encodes them: code << 8 for exits, the signal number (plus
    // 0x80 for a core dump) for deaths, sig << 8 | 0x7f for stops, 0xffff for continues.
    #[test]
    fn decodes_raw_wait_statuses() {
        assert_eq!(WaitEvent::from_raw(3 << 8), WaitEvent::Ended(ExitStatus::Exited(3)));
        assert_eq!(
            WaitEvent::from_raw(libc::SIGKILL),
            WaitEvent::Ended(ExitStatus::Signaled { signal: Signal::KILL, core_dumped: false })
        );
        assert_eq!(
            WaitEvent::from_raw(libc::SIGSEGV | 0x80),
            WaitEvent::Ended(ExitStatus::Signaled { signal: Signal::SEGV, core_dumped: true })
        );
        assert_eq!(WaitEvent::from_raw((libc::SIGTSTP << 8) | 0x7f), WaitEvent::Stopped(Signal::TSTP));
        assert_eq!(WaitEvent::from_raw(0xffff), WaitEvent::Continued);
    }

    #[test]
    fn decodes_siginfo_codes() {
        assert_eq!(WaitEvent::from_siginfo(libc::CLD_EXITED, 255), WaitEvent::Ended(ExitStatus::Exited(255)));
        assert_eq!(
            WaitEvent::from_siginfo(libc::CLD_DUMPED, libc::SIGABRT).exit_status(),
            Some(ExitStatus::Signaled { signal: Signal::ABRT, core_dumped: true })
        );
        assert_eq!(WaitEvent::from_siginfo(libc::CLD_STOPPED, libc::SIGSTOP), WaitEvent::Stopped(Signal::STOP));
        assert_eq!(WaitEvent::from_siginfo(libc::CLD_CONTINUED, libc::SIGCONT), WaitEvent::Continued);
    }

    #[test]
    fn words_and_shell_numbers() {
        let three = ExitStatus::Exited(3);
        assert_eq!(three.to_string(), "exited with status 3");
        assert_eq!(three.shell_code(), 3);
        let killed = ExitStatus::Signaled { signal: Signal::KILL, core_dumped: true };
        assert_eq!(killed.to_string(), "killed by SIGKILL (core dumped)");
        assert_eq!(killed.shell_code(), 137);
        let term = ExitStatus::Signaled { signal: Signal::TERM, core_dumped: false };
        assert_eq!(term.to_string(), "killed by SIGTERM");
        assert_eq!(term.shell_code(), 143);
        assert!(!term.success() && ExitStatus::Exited(0).success());
        assert_eq!(term.signal(), Some(Signal::TERM));
        assert_eq!(three.code(), Some(3));
    }
}
