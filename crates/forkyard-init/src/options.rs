//! What init is asked to do: [`Init`] and its settings, and the pure choices made from them
//! (which signal to forward when one arrives).
//!
//! Why this module exists: the four command lines the binary accepts (forkyard's own, tini's,
//! dumb-init's, catatonit's) differ only in these settings; keeping them in one plain struct
//! lets each mode be a mapping from its options, and the choices be tested without
//! processes.

use std::ffi::OsString;
use std::time::Duration;

use forkyard::spawn::Group;
use forkyard::{Inherited, Signal, SignalSet};

/// Who receives the signals init forwards while the command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardTo {
    /// The command's process only.
    Child,
    /// The command's whole process group (or session).
    Group,
}

/// What init does when the command has exited and other processes remain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterExit {
    /// Exit at once (tini, catatonit). In a PID namespace the kernel then SIGKILLs the rest.
    Exit,
    /// Send SIGTERM to every remaining descendant, wait until they have all exited or this
    /// long has passed, SIGKILL what is left, collect everything, then exit.
    Grace(Duration),
    /// Keep collecting until every descendant has exited on its own.
    WaitAll,
}

/// What init does with SIGTSTP, SIGTTIN and SIGTTOU (unless [`Init::ignore`] drops them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobControl {
    /// Forward them like any other signal (init itself is not stopped).
    Forward,
    /// Forward them, then stop init too until SIGCONT (dumb-init). With `as_sigstop`, they
    /// are forwarded as SIGSTOP unless rewritten.
    StopWithChild {
        /// Forward SIGSTOP instead.
        as_sigstop: bool,
    },
}

/// Whether init becomes a child subreaper when it is not PID 1. A subreaper flag init
/// inherited (set by whatever started it, kept across `execve`) is found and used in every
/// case; `No` does not clear it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subreaper {
    /// Never set the flag.
    No,
    /// Set it; if the kernel refuses, report [`crate::Event::NoSubreaper`] and carry on.
    Try,
    /// Set it; if the kernel refuses, do not start the command.
    Require,
}

/// Everything `forkyard init` (or one of its compatibility modes) is asked to do.
#[derive(Clone, Debug)]
pub struct Init {
    /// The command and its arguments; `argv[0]` is searched in `PATH`.
    pub command: Vec<OsString>,
    /// What init inherited ([`Inherited::capture`]).
    pub inherited: Inherited,
    /// Who gets forwarded signals.
    pub forward_to: ForwardTo,
    /// The command's own process group (default) or its own session.
    pub group: Group,
    /// Signal rewrites: `(from, Some(to))` forwards `to` instead, `(from, None)` drops it.
    pub rewrite: Vec<(Signal, Option<Signal>)>,
    /// Exit-code rewrites applied to the final status: `(from, to)`.
    pub remap_exit: Vec<(u8, u8)>,
    /// A signal init receives when its own parent dies.
    pub parent_death_signal: Option<Signal>,
    /// Become a subreaper when not PID 1.
    pub subreaper: Subreaper,
    /// A line the command's process writes to standard error once its setup is done, before
    /// `exec` (dumb-init's `setsid complete.` in debug mode).
    pub child_announce: Option<Vec<u8>>,
    /// Signals init takes and drops: neither forwarded nor acted on.
    pub ignore: Vec<Signal>,
    /// Signals init leaves unblocked, so their default action applies to init itself (tini
    /// and catatonit do this for SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS).
    pub leave_unblocked: Vec<Signal>,
    /// What happens when the command exits.
    pub after_exit: AfterExit,
    /// What happens with the terminal-stop signals.
    pub job_control: JobControl,
    /// When the command exits, send SIGTERM (through the rewrites) to where forwarded signals
    /// go (dumb-init), before anything else.
    pub term_on_exit: bool,
    /// Give up init's controlling terminal before starting the command, and if init was the
    /// session leader, ignore the SIGHUP and SIGCONT that this sends (dumb-init).
    pub detach_terminal: bool,
    /// Move init (not the command) to `/` (dumb-init), so it keeps no directory busy.
    pub chdir_root: bool,
    /// Rewrite `LISTEN_PID` from init's PID to the command's (catatonit). Edits the
    /// environment, so only for a single-threaded program.
    pub pass_listen_pid: bool,
    /// Close every inherited descriptor above standard error once the command has started:
    /// off unless [`Init::close_inherited_fds`] turned it on.
    close_inherited_fds: bool,
}

impl Init {
    /// The defaults of `forkyard init`: own process group, signals to the command,
    /// subreaper when not PID 1, a 5 s grace period, inherited descriptors left alone.
    pub fn new(command: Vec<OsString>, inherited: Inherited) -> Init {
        Init {
            command,
            inherited,
            forward_to: ForwardTo::Child,
            group: Group::Own,
            rewrite: Vec::new(),
            remap_exit: Vec::new(),
            parent_death_signal: None,
            subreaper: Subreaper::Try,
            child_announce: None,
            ignore: Vec::new(),
            leave_unblocked: Vec::new(),
            after_exit: AfterExit::Grace(Duration::from_secs(5)),
            job_control: JobControl::Forward,
            term_on_exit: false,
            detach_terminal: false,
            chdir_root: false,
            pass_listen_pid: false,
            close_inherited_fds: false,
        }
    }

    /// Has init close, once the command has started, every descriptor above standard error
    /// that was open when [`crate::run`] began (catatonit does, so that init keeps no pipe or
    /// socket of its launcher alive). The command keeps its own copies.
    ///
    /// # Safety
    ///
    /// Every such descriptor is closed behind the back of whatever owns it. The caller must
    /// own no live `OwnedFd`, `File`, socket or other handle above descriptor 2 that it will
    /// use or drop after [`crate::run`] starts: a binary's `main` that opened nothing
    /// qualifies; a library caller in general does not.
    pub unsafe fn close_inherited_fds(&mut self) {
        self.close_inherited_fds = true;
    }

    /// Whether [`Init::close_inherited_fds`] was called.
    pub fn closes_inherited_fds(&self) -> bool {
        self.close_inherited_fds
    }

    /// The signal to forward for `signal` after the rewrites: `None` if it is dropped.
    pub fn rewritten(&self, signal: Signal) -> Option<Signal> {
        match self.rewrite.iter().find(|(from, _)| *from == signal) {
            Some((_, to)) => *to,
            None => Some(signal),
        }
    }

    /// What is forwarded when `signal` arrives (not SIGCHLD, not an ignored one): the
    /// rewrite, or SIGSTOP for a terminal-stop signal in dumb-init's setsid mode; `None` to
    /// drop it.
    pub fn forward_target(&self, signal: Signal) -> Option<Signal> {
        let rewritten = self.rewrite.iter().any(|(from, _)| *from == signal);
        match self.job_control {
            JobControl::StopWithChild { as_sigstop: true } if is_terminal_stop(signal) && !rewritten => {
                Some(Signal::STOP)
            }
            _ => self.rewritten(signal),
        }
    }

    /// Whether init stops itself after forwarding `signal` (dumb-init's job control).
    pub fn suspends_on(&self, signal: Signal) -> bool {
        is_terminal_stop(signal) && matches!(self.job_control, JobControl::StopWithChild { .. })
    }

    /// Every signal init takes through its signalfd, SIGCHLD included: all that can be
    /// blocked but [`Init::leave_unblocked`]. The synchronous ones (SIGSEGV, SIGBUS, ...) are
    /// blocked by default: a real fault in init is delivered regardless of the mask, and one
    /// sent with `kill` is then forwarded like any other.
    pub fn taken_signals(&self) -> SignalSet {
        Signal::all().filter(|s| s.is_catchable() && !self.leave_unblocked.contains(s)).collect()
    }
}

fn is_terminal_stop(signal: Signal) -> bool {
    signal == Signal::TSTP || signal == Signal::TTIN || signal == Signal::TTOU
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() -> Init {
        Init::new(vec!["true".into()], Inherited::pristine())
    }

    #[test]
    fn rewrites_replace_or_drop() {
        let mut i = init();
        i.rewrite = vec![(Signal::TERM, Some(Signal::QUIT)), (Signal::HUP, None)];
        assert_eq!(i.forward_target(Signal::TERM), Some(Signal::QUIT));
        assert_eq!(i.forward_target(Signal::HUP), None);
        assert_eq!(i.forward_target(Signal::INT), Some(Signal::INT));
    }

    #[test]
    fn terminal_stops_become_sigstop_in_setsid_mode_unless_rewritten() {
        let mut i = init();
        assert_eq!(i.forward_target(Signal::TSTP), Some(Signal::TSTP));
        assert!(!i.suspends_on(Signal::TSTP));
        i.job_control = JobControl::StopWithChild { as_sigstop: true };
        i.rewrite = vec![(Signal::TTIN, Some(Signal::USR1))];
        assert_eq!(i.forward_target(Signal::TSTP), Some(Signal::STOP));
        assert_eq!(i.forward_target(Signal::TTIN), Some(Signal::USR1));
        assert!(i.suspends_on(Signal::TTIN));
        assert!(!i.suspends_on(Signal::TERM));
        i.job_control = JobControl::StopWithChild { as_sigstop: false };
        assert_eq!(i.forward_target(Signal::TSTP), Some(Signal::TSTP));
    }

    #[test]
    fn every_catchable_signal_is_taken_but_those_left_unblocked() {
        let mut i = init();
        let set = i.taken_signals();
        for s in [Signal::TERM, Signal::CHLD, Signal::HUP, Signal::SEGV, Signal::TSTP, Signal::rtmin(), Signal::rtmax()]
        {
            assert!(set.contains(s), "{s}");
        }
        assert!(!set.contains(Signal::KILL) && !set.contains(Signal::STOP));
        i.leave_unblocked = vec![Signal::SEGV];
        assert!(!i.taken_signals().contains(Signal::SEGV));
    }

    #[test]
    fn inherited_descriptors_stay_open_unless_asked() {
        let mut i = init();
        assert!(!i.closes_inherited_fds());
        // SAFETY: a test that never runs init.
        unsafe { i.close_inherited_fds() };
        assert!(i.closes_inherited_fds());
    }
}
