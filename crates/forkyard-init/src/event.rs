//! What init did or saw, as data: the [`Event`]s it reports and the [`Report`] that takes
//! them.
//!
//! Why this module exists: a library prints nothing. Each event carries the facts (a PID,
//! a signal, a status, an error); the `forkyard` binary decides which to show and in whose
//! words (forkyard's own, or tini's, dumb-init's, catatonit's). Events are reported as they
//! happen, most of them on the hot path (one per signal, one per collected process), so a
//! report should decide cheaply whether to show one before formatting anything.

use std::ffi::OsString;
use std::time::Duration;

use forkyard::{Error, ExitStatus, Pid, Signal};

/// Takes init's events as they happen.
///
/// Any `FnMut(&Event)` is a report.
pub trait Report {
    /// One event.
    fn event(&mut self, event: &Event<'_>);
}

impl<F: FnMut(&Event<'_>)> Report for F {
    fn event(&mut self, event: &Event<'_>) {
        self(event)
    }
}

/// How orphans reach init, found out before the command starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaping {
    /// Init is PID 1 of its namespace: the kernel hands it every orphan.
    AsPid1,
    /// Init was already a child subreaper when it started: whatever launched it set the flag,
    /// which survives `execve`.
    AsInheritedSubreaper,
    /// Init made itself a child subreaper.
    AsSubreaper,
    /// Neither: orphans escape init and go to whoever is above it.
    No,
}

impl Reaping {
    /// Whether orphans below init are re-parented to it.
    pub fn adopts_orphans(self) -> bool {
        self != Reaping::No
    }
}

/// Something init did or saw.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Init could not become a subreaper (and carries on, with [`crate::Subreaper::Try`]).
    NoSubreaper {
        /// Why.
        error: &'a Error,
    },
    /// How orphans reach init (reported once, before the command starts).
    Reaping(Reaping),
    /// Init gave up its controlling terminal.
    DetachedTerminal {
        /// Whether it led the session (the kernel then sends the SIGHUP and SIGCONT that
        /// init ignores once).
        was_session_leader: bool,
    },
    /// Init could not give up a terminal (usually: it has none).
    DetachTerminalFailed {
        /// The error.
        error: &'a std::io::Error,
    },
    /// The command started.
    Started {
        /// Its PID.
        pid: Pid,
        /// Its command line.
        command: &'a [OsString],
    },
    /// A signal arrived (SIGCHLD included).
    Received {
        /// The signal.
        signal: Signal,
    },
    /// A SIGHUP or SIGCONT caused by giving up the terminal was dropped.
    IgnoredHandoff {
        /// The signal.
        signal: Signal,
    },
    /// A signal on [`crate::Init::ignore`] was dropped.
    Ignored {
        /// The signal.
        signal: Signal,
    },
    /// A signal is forwarded as another.
    Translated {
        /// What arrived.
        from: Signal,
        /// What is forwarded.
        to: Signal,
    },
    /// A signal rewritten to nothing was dropped.
    Dropped {
        /// The signal.
        signal: Signal,
    },
    /// A signal was sent to the command (and its group, with `group`).
    Forwarded {
        /// The signal sent.
        signal: Signal,
        /// The command.
        pid: Pid,
        /// Whether its whole group got it.
        group: bool,
    },
    /// A signal could not be sent to the command.
    ForwardFailed {
        /// The signal.
        signal: Signal,
        /// Why.
        error: &'a Error,
    },
    /// After the command exited, a signal went to everything it left behind.
    ForwardedToRemaining {
        /// The signal.
        signal: Signal,
        /// How many processes got it (as PID 1: 1 for "some").
        count: usize,
    },
    /// Init stops itself along with the command (job control).
    Suspending,
    /// A process was collected.
    Reaped {
        /// Its PID.
        pid: Pid,
        /// How it ended.
        status: ExitStatus,
        /// Whether it was the command.
        main: bool,
    },
    /// The command has exited: SIGTERM (or its rewrite) was sent on to its group or to the
    /// command itself (`sent`: whether anything received it).
    TermOnExit {
        /// The signal.
        signal: Signal,
        /// Whether a process received it.
        sent: bool,
    },
    /// The command has exited; init will exit with `code` (at once, or once the rest is done).
    MainExited {
        /// The command's status.
        status: ExitStatus,
        /// Init's exit code.
        code: i32,
    },
    /// The grace period started: SIGTERM went to `signalled` remaining processes.
    GraceStarted {
        /// How many (as PID 1: 1 for "some").
        signalled: usize,
        /// How long they have.
        grace: Duration,
    },
    /// Waiting for the remaining processes to exit on their own.
    WaitingForAll,
    /// The grace period is over: SIGKILL went to `killed` processes.
    GraceOver {
        /// How many (as PID 1: 1 for "some").
        killed: usize,
    },
    /// Everything has exited after the command; init exits with `code`.
    Exiting {
        /// The code.
        code: i32,
    },
}
