//! What the supervisor's loop and the API thread share, and how they talk.
//!
//! Why this module exists: the loop must never wait for a client, and a client must never
//! wait for a turn of the loop just to read the state. So the loop *publishes*: a snapshot of
//! every unit when something changed (read by any number of clients at no cost to the loop),
//! each service's recent lines in a bounded ring, and state changes and new lines on
//! broadcast channels whose slow readers lose the oldest items instead of holding anything
//! up. Clients *ask* through a command queue that the loop empties a bounded batch at a time,
//! woken by an eventfd like every other source of news.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{broadcast, oneshot};

use super::api;
use crate::config::Plan;

/// The most lines kept per service when the configuration does not say.
pub const DEFAULT_LOG_LINES: usize = 1000;
/// The most bytes kept per service, whatever the line count (lines are up to 16 KiB).
pub const RING_BYTES: usize = 1 << 20;
/// Batches of new lines (each at most one read, 64 KiB) a follower may fall behind before it
/// loses the oldest: what a stalled `logs -f` can hold in memory is bounded by this.
pub const LINES_DEPTH: usize = 64;
/// State changes an `events` reader may fall behind before it loses the oldest.
pub const EVENTS_DEPTH: usize = 1024;

/// The state of everything, as last published by the loop.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// `up`'s process ID.
    pub pid: i32,
    /// The configuration file (absolute).
    pub config: String,
    /// When `up` started.
    pub started: Instant,
    /// The exit code, once a shutdown has begun.
    pub exit_code: Option<i32>,
    /// `up` is about to exit: streams end.
    pub finished: bool,
    /// The width names are padded to in the output.
    pub width: usize,
    /// Units present, in start order.
    pub units: Vec<UnitSnap>,
    /// Service names, in start order.
    pub services: Vec<String>,
}

impl Snapshot {
    /// The snapshot of `up` (process `pid`, configuration `config`) before its loop has
    /// published one: no unit yet.
    pub fn empty(pid: i32, config: &str) -> Snapshot {
        Snapshot {
            pid,
            config: config.to_string(),
            started: Instant::now(),
            exit_code: None,
            finished: false,
            width: 0,
            units: Vec::new(),
            services: Vec::new(),
        }
    }
}

/// One unit in a [`Snapshot`].
#[derive(Clone, Debug)]
pub struct UnitSnap {
    /// Its slot (its log ring's index).
    pub index: usize,
    /// Its status; `uptime_seconds`, `cpu_seconds` and `memory_bytes` are filled in when
    /// it is read.
    pub status: api::ServiceStatus,
    /// Whether it has a readiness check.
    pub has_ready_check: bool,
    /// When the current run started.
    pub started_at: Option<Instant>,
    /// The same, on the wall clock (for the start-time metric).
    pub started_wall: Option<SystemTime>,
    /// The cgroup of the current run, if any.
    pub cgroup: Option<PathBuf>,
    /// How many runs ended with each `$?`.
    pub exits: Vec<(i32, u64)>,
    /// How long a `start` may wait for it to be ready.
    pub ready_wait: Duration,
    /// How long a `stop` may wait for it to be down.
    pub stop_wait: Duration,
}

/// What a client asks of the loop. Each carries where the answer goes.
#[derive(Debug)]
pub enum Command {
    /// Start, stop or restart the units `name` stands for.
    Act {
        /// Which.
        act: Act,
        /// A service, an instance or `all`.
        name: String,
        /// With everything that depends on them.
        with_dependents: bool,
        /// The answer: each unit and the run that will answer the request.
        reply: oneshot::Sender<Result<Vec<(String, u64)>, Refusal>>,
    },
    /// Send a signal to the main process of each running unit `name` stands for.
    Signal {
        /// A service, an instance or `all`.
        name: String,
        /// Which signal.
        signal: forkyard::Signal,
        /// The units signalled.
        reply: oneshot::Sender<Result<Vec<String>, Refusal>>,
    },
    /// Run `instances` instances of `service`.
    Scale {
        /// The service.
        service: String,
        /// How many.
        instances: u32,
        /// What changed.
        reply: oneshot::Sender<Result<api::Scaled, Refusal>>,
    },
    /// Apply a configuration read again (by a client's reload, or after SIGHUP).
    Apply {
        /// The new plan, or why it could not be had.
        plan: Result<Plan, String>,
        /// What changed (none for SIGHUP).
        reply: Option<oneshot::Sender<Result<api::Reloaded, Refusal>>>,
    },
    /// Stop everything, as SIGTERM.
    Shutdown {
        /// The exit code `up` will end with.
        reply: oneshot::Sender<Result<i32, Refusal>>,
    },
    /// Someone not allowed connected (for the log).
    Refused {
        /// Their user.
        uid: u32,
        /// Their process, if known.
        pid: i32,
    },
}

/// Start, stop or restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// Start.
    Start,
    /// Stop, and keep down.
    Stop,
    /// Stop and start again.
    Restart,
}

impl Act {
    /// Its name in paths and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Act::Start => "start",
            Act::Stop => "stop",
            Act::Restart => "restart",
        }
    }
}

/// A request the loop will not carry out: the HTTP status and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 404, 409, 422, 503...
    pub status: u16,
    /// Why, and what to do.
    pub error: String,
    /// For an unknown name: the services there are.
    pub services: Vec<String>,
}

impl Refusal {
    /// A refusal with `status` and `error`.
    pub fn new(status: u16, error: impl Into<String>) -> Refusal {
        Refusal { status, error: error.into(), services: Vec::new() }
    }
}

/// New lines of one unit, for followers.
#[derive(Debug)]
pub struct LogChunk {
    /// The unit's slot.
    pub index: usize,
    /// Its name.
    pub name: Arc<str>,
    /// Whole lines, each ending in `\n`.
    pub lines: Vec<u8>,
}

/// The recent lines of every unit, bounded by lines and by bytes.
#[derive(Debug, Default)]
pub struct Rings {
    rings: Vec<Ring>,
    max_lines: usize,
    /// Where new lines go for followers (`None` once `up` is exiting: streams end).
    pub follow: Option<broadcast::Sender<Arc<LogChunk>>>,
}

#[derive(Debug, Default)]
struct Ring {
    data: VecDeque<u8>,
    lens: VecDeque<usize>,
}

/// The last `max` lines of `lines` (whole lines, each ended by a newline), without their
/// newlines. Only that many can stay in a ring: under a flood (32,768 lines in a 64 KiB read
/// of `yes`) the others are skipped instead of pushed and pushed out again.
pub fn last_lines(lines: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
    let body = lines.strip_suffix(b"\n").unwrap_or(lines);
    let mut start = 0;
    let mut seen = 0;
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == max {
                start = i + 1;
                break;
            }
        }
    }
    // Nothing at all is no line (where `split` would give one empty one).
    let count = if lines.is_empty() { 0 } else { max };
    body[start..].split(|&b| b == b'\n').take(count)
}

impl Rings {
    /// Rings keeping `max_lines` lines each (and at most [`RING_BYTES`]).
    pub fn new(max_lines: usize) -> Rings {
        Rings { rings: Vec::new(), max_lines, follow: Some(broadcast::channel(LINES_DEPTH).0) }
    }

    /// Empties the ring of slot `index` (a new unit in a reused slot).
    pub fn clear(&mut self, index: usize) {
        if let Some(r) = self.rings.get_mut(index) {
            *r = Ring::default();
        }
    }

    /// Adds one line (without its newline) to slot `index`.
    pub fn push(&mut self, index: usize, line: &[u8]) {
        if self.max_lines == 0 {
            return;
        }
        if self.rings.len() <= index {
            self.rings.resize_with(index + 1, Ring::default);
        }
        let max_lines = self.max_lines;
        let r = &mut self.rings[index];
        let line = &line[..line.len().min(RING_BYTES)];
        while r.lens.len() >= max_lines || (!r.lens.is_empty() && r.data.len() + line.len() > RING_BYTES) {
            let n = r.lens.pop_front().unwrap_or(0);
            r.data.drain(..n.min(r.data.len()));
        }
        r.data.extend(line);
        r.lens.push_back(line.len());
    }

    /// The last `n` lines of slot `index`, oldest first.
    pub fn tail(&self, index: usize, n: usize) -> Vec<Vec<u8>> {
        let Some(r) = self.rings.get(index) else { return Vec::new() };
        let skip = r.lens.len().saturating_sub(n);
        let mut at: usize = r.lens.iter().take(skip).sum();
        let mut out = Vec::with_capacity(r.lens.len() - skip);
        for &len in r.lens.iter().skip(skip) {
            out.push(r.data.range(at..at + len).copied().collect());
            at += len;
        }
        out
    }

    /// The most lines kept per unit.
    pub fn max_lines(&self) -> usize {
        self.max_lines
    }
}

/// The shared half: what the API thread holds.
pub struct Hub {
    /// The recent lines (the loop adds and sends to followers under this lock, so a reader
    /// that takes the tail and subscribes under it misses nothing and sees nothing twice).
    pub rings: Mutex<Rings>,
    /// Commands for the loop.
    pub commands: Mutex<mpsc::Sender<Command>>,
    /// Written after each command, to wake the loop.
    pub wake: OwnedFd,
    /// Reads the configuration again (runs on the API thread or a thread of its own, never on
    /// the loop: it may look up users and read files).
    pub reload: Option<super::Reload>,
    /// Where state changes go, as JSON lines (`None` once `up` is exiting: streams end).
    pub events: Mutex<Option<broadcast::Sender<Arc<str>>>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("reload", &self.reload.is_some()).finish_non_exhaustive()
    }
}

impl Hub {
    /// Sends a command to the loop and wakes it. False if the loop is gone.
    pub fn send(&self, command: Command) -> bool {
        let sent = match self.commands.lock() {
            Ok(tx) => tx.send(command).is_ok(),
            Err(_) => false,
        };
        if sent {
            let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
        }
        sent
    }
}

/// A new hub for `max_lines` per ring, whose commands go to the receiver returned.
pub fn hub(max_lines: usize, reload: Option<super::Reload>) -> std::io::Result<(Hub, mpsc::Receiver<Command>)> {
    let flags = rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK;
    let wake = rustix::event::eventfd(0, flags)?;
    let (tx, rx) = mpsc::channel();
    let hub = Hub {
        rings: Mutex::new(Rings::new(max_lines)),
        commands: Mutex::new(tx),
        wake,
        reload,
        events: Mutex::new(Some(broadcast::channel(EVENTS_DEPTH).0)),
    };
    Ok((hub, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_lines_a_ring_can_keep_are_pushed_and_empty_lines_count() {
        let all = |lines: &[u8], max| {
            last_lines(lines, max).map(|l| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>()
        };
        assert_eq!(all(b"a\nb\n\nc\n", 10), ["a", "b", "", "c"]);
        assert_eq!(all(b"a\nb\n\nc\n", 2), ["", "c"]);
        assert_eq!(all(b"a\nb\n", 2), ["a", "b"]);
        assert_eq!(all(b"\n", 5), [""]);
        assert!(all(b"", 5).is_empty());
        assert!(all(b"a\n", 0).is_empty());
        let flood = b"y\n".repeat(32_768);
        assert_eq!(last_lines(&flood, 1000).count(), 1000);
    }

    #[test]
    fn a_ring_keeps_the_last_lines_within_its_bounds() {
        let mut r = Rings::new(3);
        for i in 0..10 {
            r.push(1, format!("line {i}").as_bytes());
        }
        assert_eq!(r.tail(1, 2), [b"line 8".to_vec(), b"line 9".to_vec()]);
        assert_eq!(r.tail(1, 100).len(), 3, "never more than max_lines");
        assert!(r.tail(0, 5).is_empty() && r.tail(7, 5).is_empty());
        // Bytes bound: two lines of half the budget and a bit push out the first.
        let big = vec![b'x'; RING_BYTES / 2 + 1];
        r.push(2, &big);
        r.push(2, &big);
        assert_eq!(r.tail(2, 10).len(), 1);
        r.clear(1);
        assert!(r.tail(1, 5).is_empty());
        let mut none = Rings::new(0);
        none.push(0, b"x");
        assert!(none.tail(0, 5).is_empty());
    }
}
