//! What happens when a supervised process exits: restart (after how long), stay down, or
//! give up.
//!
//! Why this module exists: restart policy is where supervisors surprise people (a crash loop
//! that never backs off, a budget that does not bound loops after start, a fixed one-second
//! sleep). The rules live here as plain functions of the unit's settings, its exit, how long
//! it ran and its recent restarts, with time passed in, so they are tested exhaustively
//! without a single process. The rules:
//!
//! - success is an exit code in `success_codes`; a death by signal is never success;
//! - a `oneshot` unit that succeeds is complete; otherwise `restart` decides
//!   (`always`, `on-failure`, `never`);
//! - a run of at least `stable_after` restarts at once and resets the backoff; a shorter one
//!   waits the current backoff, which doubles from `backoff_initial` up to `backoff_max`;
//! - more than `max_restarts` restarts within `restart_window` mark the unit failed;
//! - a start that failed (no such program, a bad directory, an unknown user) never counts as
//!   a stable run, and is retried no sooner than [`MIN_RETRY_AFTER_FAILED_START`]: nothing
//!   that made it fail can be fixed faster, and a zero backoff must not become a busy loop.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::{Restart, Unit};
use forkyard::ExitStatus;

/// The shortest wait before retrying a start that failed.
pub const MIN_RETRY_AFTER_FAILED_START: Duration = Duration::from_millis(100);

/// How the run that just ended went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// Its process ran for this long.
    For(Duration),
    /// Its process could not be started.
    NotStarted,
}

/// A unit's recent restarts and current backoff.
#[derive(Clone, Debug, Default)]
pub struct History {
    restarts: VecDeque<Instant>,
    backoff: Option<Duration>,
}

/// What to do after an exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after this delay.
    Restart(Duration),
    /// Leave it down: it is done (`success` says whether it ended well).
    Done {
        /// Whether the exit counts as success.
        success: bool,
    },
    /// Leave it down for good: its restart budget is spent.
    GiveUp {
        /// Restarts counted within the window.
        restarts: u32,
        /// The window (`restart_window`).
        window: Duration,
        /// The budget (`max_restarts`).
        max: u32,
    },
}

/// Whether `status` counts as success for `unit`.
pub fn is_success(unit: &Unit, status: ExitStatus) -> bool {
    status.code().is_some_and(|c| unit.success_codes.contains(&c))
}

/// Decides what follows an exit of `unit` after its run `ran`, at time `now`, and records the
/// restart in `history` if there is one.
pub fn after_exit(unit: &Unit, status: ExitStatus, ran: Ran, history: &mut History, now: Instant) -> Decision {
    let success = is_success(unit, status);
    if unit.oneshot && success {
        return Decision::Done { success: true };
    }
    let restart = match unit.restart {
        Restart::Always => true,
        Restart::OnFailure => !success,
        Restart::Never => false,
    };
    if !restart {
        return Decision::Done { success };
    }
    decide_restart(unit, history, ran, now)
}

/// The restart half of [`after_exit`], also used when a liveness check restarts a unit.
pub fn decide_restart(unit: &Unit, history: &mut History, ran: Ran, now: Instant) -> Decision {
    while history.restarts.front().is_some_and(|t| now.duration_since(*t) >= unit.restart_window) {
        history.restarts.pop_front();
    }
    if history.restarts.len() as u32 >= unit.max_restarts {
        return Decision::GiveUp {
            restarts: u32::try_from(history.restarts.len()).unwrap_or(u32::MAX),
            window: unit.restart_window,
            max: unit.max_restarts,
        };
    }
    let delay = match ran {
        Ran::For(ran_for) if ran_for >= unit.stable_after => {
            history.backoff = None;
            Duration::ZERO
        }
        _ => {
            let delay = history.backoff.unwrap_or(unit.backoff_initial).min(unit.backoff_max);
            history.backoff = Some((delay * 2).min(unit.backoff_max).max(unit.backoff_initial));
            delay
        }
    };
    let delay = if ran == Ran::NotStarted { delay.max(MIN_RETRY_AFTER_FAILED_START) } else { delay };
    history.restarts.push_back(now + delay);
    Decision::Restart(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CommandLine, Restart};
    use forkyard::Signal;

    fn unit() -> Unit {
        Unit {
            backoff_max: Duration::from_secs(1),
            max_restarts: 3,
            ..Unit::new("u", CommandLine::Shell("true".into()), ".".into())
        }
    }

    const FAIL: ExitStatus = ExitStatus::Exited(1);
    const OK: ExitStatus = ExitStatus::Exited(0);
    const QUICK: Ran = Ran::For(Duration::from_millis(10));
    const LONG: Ran = Ran::For(Duration::from_secs(5));

    #[test]
    fn policies_decide_who_restarts() {
        let t = Instant::now();
        let mut u = unit();
        let killed = ExitStatus::Signaled { signal: Signal::KILL, core_dumped: false };
        assert_eq!(after_exit(&u, OK, LONG, &mut History::default(), t), Decision::Done { success: true });
        assert_eq!(after_exit(&u, FAIL, LONG, &mut History::default(), t), Decision::Restart(Duration::ZERO));
        assert_eq!(after_exit(&u, killed, LONG, &mut History::default(), t), Decision::Restart(Duration::ZERO));
        u.restart = Restart::Always;
        assert_eq!(after_exit(&u, OK, LONG, &mut History::default(), t), Decision::Restart(Duration::ZERO));
        u.restart = Restart::Never;
        assert_eq!(after_exit(&u, FAIL, LONG, &mut History::default(), t), Decision::Done { success: false });
        u.restart = Restart::OnFailure;
        u.success_codes = vec![0, 3];
        assert_eq!(
            after_exit(&u, ExitStatus::Exited(3), LONG, &mut History::default(), t),
            Decision::Done { success: true }
        );
    }

    #[test]
    fn oneshots_complete_on_success_and_retry_on_failure() {
        let t = Instant::now();
        let mut u = unit();
        u.oneshot = true;
        u.restart = Restart::Always;
        assert_eq!(after_exit(&u, OK, QUICK, &mut History::default(), t), Decision::Done { success: true });
        assert!(matches!(after_exit(&u, FAIL, QUICK, &mut History::default(), t), Decision::Restart(_)));
    }

    #[test]
    fn quick_exits_back_off_exponentially_and_a_stable_run_resets() {
        let mut now = Instant::now();
        let mut u = unit();
        u.max_restarts = 100;
        let mut h = History::default();
        let mut delays = Vec::new();
        for _ in 0..6 {
            match after_exit(&u, FAIL, QUICK, &mut h, now) {
                Decision::Restart(d) => delays.push(d.as_millis()),
                other => panic!("{other:?}"),
            }
            now += Duration::from_millis(50);
        }
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(
            after_exit(&u, FAIL, LONG, &mut h, now),
            Decision::Restart(Duration::ZERO),
            "a stable run restarts at once"
        );
        assert_eq!(
            after_exit(&u, FAIL, QUICK, &mut h, now),
            Decision::Restart(Duration::from_millis(100)),
            "and resets the backoff"
        );
    }

    #[test]
    fn the_budget_bounds_restarts_within_the_window() {
        let mut now = Instant::now();
        let u = unit();
        let mut h = History::default();
        for _ in 0..3 {
            assert!(matches!(after_exit(&u, FAIL, LONG, &mut h, now), Decision::Restart(_)));
            now += Duration::from_secs(1);
        }
        assert_eq!(
            after_exit(&u, FAIL, LONG, &mut h, now),
            Decision::GiveUp { restarts: 3, window: Duration::from_secs(60), max: 3 }
        );
        // Once the window has moved on, restarts are allowed again.
        now += Duration::from_secs(60);
        assert!(matches!(after_exit(&u, FAIL, LONG, &mut h, now), Decision::Restart(_)));
    }

    #[test]
    fn a_failed_start_is_never_stable_and_never_a_busy_loop() {
        let t = Instant::now();
        let mut u = unit();
        u.stable_after = Duration::ZERO;
        u.backoff_initial = Duration::ZERO;
        u.backoff_max = Duration::ZERO;
        u.restart_window = Duration::ZERO;
        u.max_restarts = 10_000;
        let mut h = History::default();
        let status = ExitStatus::Exited(127);
        // A run of any length is stable with stable_after = 0: at once.
        assert_eq!(after_exit(&u, status, Ran::For(Duration::ZERO), &mut h, t), Decision::Restart(Duration::ZERO));
        // A start that failed waits at least the floor.
        assert_eq!(after_exit(&u, status, Ran::NotStarted, &mut h, t), Decision::Restart(MIN_RETRY_AFTER_FAILED_START));
        // And a longer backoff is kept.
        u.backoff_initial = Duration::from_secs(2);
        u.backoff_max = Duration::from_secs(2);
        assert_eq!(
            after_exit(&u, status, Ran::NotStarted, &mut History::default(), t),
            Decision::Restart(Duration::from_secs(2))
        );
    }
}
