//! What init does after its command exits, as a pure step function: facts in (the command's
//! exit, whether any process is left, the time), decisions out (signal what is left, wait,
//! exit with this code). No system calls and no clock: the loop in `run.rs` asks the kernel
//! and carries the decisions out.
//!
//! Why this module exists: the ending is where inits differ (tini and catatonit exit at once;
//! forkyard gives what is left a grace period, or waits for all of it) and where a mistake
//! costs work (a writer killed mid-file) or hangs a container (a deadline never checked).
//! Kept apart from `poll` and `kill`, every path is tested in microseconds.
//!
//! The phases: **Running** (the command runs) → **Draining** (it has exited; the rest are
//! waited for, until a deadline with a grace period) → **Killing** (the grace period is over;
//! what is left has been sent SIGKILL and is swept again now and then) → exit.

use std::time::{Duration, Instant};

use forkyard::ExitStatus;

use crate::AfterExit;

/// How often the loop looks again, once killing, for processes forked after the last sweep.
pub const KILL_RECHECK: Duration = Duration::from_millis(100);

/// Where init is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The command runs: forwarded signals go to it.
    Running,
    /// The command has exited; the others are waited for (until the deadline, if any).
    Draining {
        /// When the grace period ends (`None`: waiting for all, no end).
        deadline: Option<Instant>,
    },
    /// The grace period is over; everything left has been sent SIGKILL.
    Killing,
}

/// Something to do to the processes left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// Send SIGTERM to every remaining process; they have `grace` to exit.
    StartGrace {
        /// The grace period.
        grace: Duration,
    },
    /// Announce that init waits for every remaining process to exit on its own.
    WaitForAll,
    /// The grace period is over: send SIGKILL to every remaining process.
    Kill,
    /// Send SIGKILL again, to whatever was forked since the last sweep.
    KillAgain,
}

/// How init ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Init's exit code (the command's, as [`exit_code`] computed it).
    pub code: i32,
    /// Whether init waited for the remaining processes first (false: it exits as soon as
    /// the command has).
    pub drained: bool,
}

/// One step's decisions: an act (first), then possibly the exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Decision {
    /// What to do to the remaining processes.
    pub act: Option<Act>,
    /// Exit after the act, with this.
    pub exit: Option<Exit>,
}

/// The state machine of the ending.
#[derive(Clone, Debug)]
pub struct Phases {
    after_exit: AfterExit,
    phase: Phase,
    code: i32,
}

impl Phases {
    /// Running, with what to do once the command exits.
    pub fn new(after_exit: AfterExit) -> Phases {
        Phases { after_exit, phase: Phase::Running, code: 0 }
    }

    /// Where init is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the command still runs (forwarded signals go to it, not to what it left).
    pub fn running(&self) -> bool {
        self.phase == Phase::Running
    }

    /// How long the loop may sleep before calling [`Phases::woke`] without a signal: `None`
    /// for as long as it takes.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        match self.phase {
            Phase::Running | Phase::Draining { deadline: None } => None,
            Phase::Draining { deadline: Some(d) } => Some(d.saturating_duration_since(now)),
            Phase::Killing => Some(KILL_RECHECK),
        }
    }

    /// The command has exited and init will end with `code`; `children_left`: whether any
    /// child of init remains (running or not yet collected).
    pub fn main_exited(&mut self, code: i32, children_left: bool, now: Instant) -> Decision {
        if self.phase != Phase::Running {
            return Decision::default();
        }
        self.code = code;
        let at_once = Decision { act: None, exit: Some(Exit { code, drained: false }) };
        match self.after_exit {
            AfterExit::Exit | AfterExit::Grace(Duration::ZERO) => at_once,
            AfterExit::Grace(_) if !children_left => at_once,
            AfterExit::Grace(grace) => {
                self.phase = Phase::Draining { deadline: Some(now + grace) };
                Decision { act: Some(Act::StartGrace { grace }), exit: None }
            }
            AfterExit::WaitAll => {
                self.phase = Phase::Draining { deadline: None };
                let exit = (!children_left).then_some(Exit { code, drained: true });
                Decision { act: Some(Act::WaitForAll), exit }
            }
        }
    }

    /// A wake-up after the command exited (a signal, SIGCHLD, or the timeout), once whatever
    /// had ended was collected; `children_left` as for [`Phases::main_exited`].
    pub fn woke(&mut self, children_left: bool, now: Instant) -> Decision {
        let drained = Decision { act: None, exit: Some(Exit { code: self.code, drained: true }) };
        match self.phase {
            Phase::Running => Decision::default(),
            _ if !children_left => drained,
            Phase::Draining { deadline: Some(d) } if now >= d => {
                self.phase = Phase::Killing;
                Decision { act: Some(Act::Kill), exit: None }
            }
            Phase::Draining { .. } => Decision::default(),
            Phase::Killing => Decision { act: Some(Act::KillAgain), exit: None },
        }
    }
}

/// The command's status as init's exit code: the shell's number (128 + n for signal n), then
/// the first matching remap.
pub fn exit_code(status: ExitStatus, remap: &[(u8, u8)]) -> i32 {
    let code = (status.shell_code() & 0xff) as u8;
    let code = remap.iter().find(|(from, _)| *from == code).map_or(code, |(_, to)| *to);
    i32::from(code)
}

#[cfg(test)]
mod tests {
    use forkyard::Signal;

    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn exit_policy_and_zero_grace_exit_at_once_whatever_is_left() {
        let t0 = Instant::now();
        for policy in [AfterExit::Exit, AfterExit::Grace(Duration::ZERO)] {
            let mut p = Phases::new(policy);
            let d = p.main_exited(3, true, t0);
            assert_eq!(d, Decision { act: None, exit: Some(Exit { code: 3, drained: false }) }, "{policy:?}");
        }
    }

    #[test]
    fn grace_with_nothing_left_exits_at_once_without_signalling() {
        let mut p = Phases::new(AfterExit::Grace(Duration::from_secs(5)));
        let d = p.main_exited(0, false, Instant::now());
        assert_eq!(d, Decision { act: None, exit: Some(Exit { code: 0, drained: false }) });
    }

    #[test]
    fn grace_terms_then_waits_then_kills_at_the_deadline_then_sweeps_until_empty() {
        let t0 = Instant::now();
        let mut p = Phases::new(AfterExit::Grace(Duration::from_secs(5)));
        assert!(p.running());
        assert_eq!(p.timeout(t0), None, "no wake-up while the command runs");
        let d = p.main_exited(143, true, t0);
        assert_eq!(d, Decision { act: Some(Act::StartGrace { grace: Duration::from_secs(5) }), exit: None });
        assert!(!p.running());
        assert_eq!(p.timeout(at(t0, 1000)), Some(Duration::from_secs(4)));
        // Before the deadline, with processes left: nothing to do.
        assert_eq!(p.woke(true, at(t0, 4999)), Decision::default());
        // At the deadline: SIGKILL, once.
        assert_eq!(p.woke(true, at(t0, 5000)), Decision { act: Some(Act::Kill), exit: None });
        assert_eq!(p.phase(), Phase::Killing);
        assert_eq!(p.timeout(at(t0, 5000)), Some(KILL_RECHECK));
        assert_eq!(p.woke(true, at(t0, 5100)), Decision { act: Some(Act::KillAgain), exit: None });
        // Everything collected: exit with the command's code.
        assert_eq!(p.woke(false, at(t0, 5200)), Decision { act: None, exit: Some(Exit { code: 143, drained: true }) });
    }

    #[test]
    fn grace_ends_early_when_everything_has_exited() {
        let t0 = Instant::now();
        let mut p = Phases::new(AfterExit::Grace(Duration::from_secs(5)));
        p.main_exited(7, true, t0);
        assert_eq!(p.woke(false, at(t0, 10)), Decision { act: None, exit: Some(Exit { code: 7, drained: true }) });
        // Past the deadline with nothing left: no SIGKILL for nobody.
        let mut p = Phases::new(AfterExit::Grace(Duration::from_secs(5)));
        p.main_exited(7, true, t0);
        assert_eq!(p.woke(false, at(t0, 9000)).act, None);
    }

    #[test]
    fn a_deadline_past_by_the_time_of_the_wake_up_still_kills() {
        let t0 = Instant::now();
        let mut p = Phases::new(AfterExit::Grace(Duration::from_millis(100)));
        p.main_exited(0, true, t0);
        assert_eq!(p.timeout(at(t0, 500)), Some(Duration::ZERO), "an overdue deadline wakes at once");
        assert_eq!(p.woke(true, at(t0, 500)).act, Some(Act::Kill));
    }

    #[test]
    fn wait_all_never_kills_and_exits_when_nothing_is_left() {
        let t0 = Instant::now();
        let mut p = Phases::new(AfterExit::WaitAll);
        assert_eq!(p.main_exited(5, true, t0), Decision { act: Some(Act::WaitForAll), exit: None });
        assert_eq!(p.timeout(t0), None, "no deadline: sleep until a signal");
        for hours in [1, 24, 24 * 365] {
            assert_eq!(p.woke(true, t0 + Duration::from_secs(3600 * hours)), Decision::default());
        }
        assert_eq!(p.woke(false, at(t0, 1)), Decision { act: None, exit: Some(Exit { code: 5, drained: true }) });
    }

    #[test]
    fn wait_all_with_nothing_left_announces_and_exits_in_one_step() {
        let mut p = Phases::new(AfterExit::WaitAll);
        let d = p.main_exited(0, false, Instant::now());
        assert_eq!(d, Decision { act: Some(Act::WaitForAll), exit: Some(Exit { code: 0, drained: true }) });
    }

    #[test]
    fn wake_ups_while_running_and_repeated_exits_decide_nothing() {
        let t0 = Instant::now();
        let mut p = Phases::new(AfterExit::Grace(Duration::from_secs(1)));
        assert_eq!(p.woke(false, t0), Decision::default(), "no exit before the command has exited");
        p.main_exited(1, true, t0);
        assert_eq!(p.main_exited(2, true, t0), Decision::default(), "the command exits once");
        assert_eq!(p.woke(false, t0).exit, Some(Exit { code: 1, drained: true }));
    }

    #[test]
    fn exit_codes_follow_the_shell_and_the_remaps() {
        assert_eq!(exit_code(ExitStatus::Exited(3), &[]), 3);
        let term = ExitStatus::Signaled { signal: Signal::TERM, core_dumped: false };
        assert_eq!(exit_code(term, &[]), 143);
        let remap = [(143, 0), (3, 7), (3, 9)];
        assert_eq!(exit_code(term, &remap), 0);
        assert_eq!(exit_code(ExitStatus::Exited(3), &remap), 7, "the first matching remap wins");
        assert_eq!(exit_code(ExitStatus::Exited(4), &remap), 4);
    }
}
