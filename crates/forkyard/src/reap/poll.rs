//! The polling strategy: the seed's second way, a sweep every interval.
//!
//! Why keep it: it needs neither signals nor pidfds, so it works where a library may not
//! touch the signal mask and the kernel is older than 5.3. Its cost is visible by design: a
//! zombie lives until the next tick, and the reaper wakes once per tick even when idle.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

pub(super) struct Ticker {
    interval: Duration,
    next: Instant,
}

impl Ticker {
    pub(super) fn new(interval: Duration) -> Result<Ticker> {
        if interval.is_zero() {
            return Err(Error::invalid(
                "a polling reaper with a zero interval",
                "it would spin; give an interval such as 100ms, or use Strategy::Signal",
            ));
        }
        Ok(Ticker { interval, next: Instant::now() + interval })
    }

    pub(super) fn interval(&self) -> Duration {
        self.interval
    }

    /// Sleeps until the next tick and schedules the one after (ticks are on a fixed grid, so
    /// slow sweeps do not drift it). Returns false, without waiting for the tick, if
    /// `deadline` comes first.
    pub(super) fn sleep_until_tick(&mut self, deadline: Option<Instant>) -> bool {
        let now = Instant::now();
        if let Some(d) = deadline {
            if d < self.next {
                std::thread::sleep(d.saturating_duration_since(now));
                return false;
            }
        }
        std::thread::sleep(self.next.saturating_duration_since(now));
        let now = Instant::now();
        while self.next <= now {
            self.next += self.interval;
        }
        true
    }
}
