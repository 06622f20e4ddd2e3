//! What a configuration means, apart from how it was written: units, their checks and
//! dependencies, and where each was defined.
//!
//! Why this module exists: the engine (the state machine, the driver) works from these types
//! alone, whichever file format they came from, so they live apart from the parsers; a new
//! format adds a parser, not a type.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use forkyard::Signal;

/// When a service is started again after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Whatever the exit.
    Always,
    /// Only when the exit status is not among `success_codes` (or a signal killed it).
    #[default]
    OnFailure,
    /// Never.
    Never,
}

/// What a dependency must reach before the dependent starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// It has been started.
    Started,
    /// Its readiness check has passed (or it has started, if it has none).
    Ready,
    /// It ran to completion with a success code (for `oneshot` tasks).
    CompletedSuccessfully,
}

/// How a service is run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CommandLine {
    /// Executed directly (`["nginx", "-g", "daemon off;"]`).
    Argv(Vec<String>),
    /// Run by `/bin/sh -c`.
    Shell(String),
}

/// A check: readiness (once, until it passes) or liveness (periodic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A command that exits 0.
    Exec(CommandLine),
    /// A TCP port that accepts a connection (`host:port`).
    Tcp(String),
    /// An HTTP(S) GET that answers with an expected status.
    Http(HttpCheck),
    /// A line of the service's output matching this regular expression (readiness only).
    Log(String),
    /// `READY=1` on the datagram socket named by `NOTIFY_SOCKET` (readiness only).
    Notify,
}

/// An HTTP(S) check: `GET url` with `headers`, passing on one of `status` (any 2xx when empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    /// `http://host:port/path` or `https://...`.
    pub url: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// The statuses that pass; empty means any 2xx.
    pub status: Vec<u16>,
}

/// A probe with its timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What is checked.
    pub probe: Probe,
    /// Time between attempts (never zero).
    pub interval: Duration,
    /// How long one attempt may take (never zero).
    pub timeout: Duration,
    /// For liveness: consecutive failures before the service is restarted.
    pub failure_threshold: u32,
    /// For liveness: time after start before the first check.
    pub initial_delay: Duration,
    /// For readiness: past this time after start without passing, the service is marked
    /// failed and its dependents blocked (`None`: wait for ever).
    pub deadline: Option<Duration>,
}

/// A place in a configuration file, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, in characters.
    pub column: usize,
}

/// Where a unit was defined, so that a fault found after loading (a program that is not
/// installed, a user that does not exist) can be reported at the key that names it.
///
/// Every position is `None` for a unit built in code; [`Origin::at`] falls back from a
/// key's position to the unit's own, then to the file's first line.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Origin {
    /// The configuration file (empty for a unit built in code).
    pub file: PathBuf,
    /// The service's table (`[services.web]`), or its Procfile line.
    pub unit: Option<Position>,
    /// The `command` value.
    pub command: Option<Position>,
    /// The `cwd` value.
    pub cwd: Option<Position>,
    /// The `user` value.
    pub user: Option<Position>,
    /// The `group` value.
    pub group: Option<Position>,
    /// The readiness check's `exec` value.
    pub ready_exec: Option<Position>,
    /// The liveness check's `exec` value.
    pub liveness_exec: Option<Position>,
}

impl Origin {
    /// The position of a key (one of this origin's fields), else of the unit, else line 1.
    pub fn at(&self, key: Option<Position>) -> Position {
        key.or(self.unit).unwrap_or(Position { line: 1, column: 1 })
    }
}

/// One process to supervise (a service, or one instance of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// `web`, or `web.2` for an instance.
    pub name: String,
    /// The service it belongs to.
    pub service: String,
    /// 1-based instance number, if the service has `instances`.
    pub instance: Option<u32>,
    /// What to run.
    pub command: CommandLine,
    /// Working directory (absolute).
    pub cwd: PathBuf,
    /// Environment added to the supervisor's; a later entry for the same name wins. In
    /// order: `.env` beside the configuration, the top-level `[env]`, the service's
    /// `env_file`, its `env`, then `FORKYARD_INSTANCE` (instances) or `PORT` (Procfile).
    pub env: Vec<(String, String)>,
    /// Run as this user (name or number).
    pub user: Option<String>,
    /// Run with this primary group (name or number).
    pub group: Option<String>,
    /// Restart policy.
    pub restart: Restart,
    /// Exit codes that count as success.
    pub success_codes: Vec<u8>,
    /// First restart delay after a quick exit; it doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Largest restart delay.
    pub backoff_max: Duration,
    /// A run at least this long resets the backoff (and restarts at once).
    pub stable_after: Duration,
    /// More restarts than this within `restart_window` mark the unit failed.
    pub max_restarts: u32,
    /// The window for `max_restarts`.
    pub restart_window: Duration,
    /// Units this one waits for, with the condition (units of a multi-instance service are
    /// all listed).
    pub depends_on: Vec<(String, Condition)>,
    /// Readiness check.
    pub ready: Option<Check>,
    /// Liveness check.
    pub liveness: Option<Check>,
    /// Signal that asks it to stop.
    pub stop_signal: Signal,
    /// How long a stop may take before SIGKILL.
    pub stop_timeout: Duration,
    /// Runs to completion; never restarted after a success.
    pub oneshot: bool,
    /// Its end ends `up`.
    pub critical: bool,
    /// Copy of its output, rotated by size.
    pub log_file: Option<PathBuf>,
    /// Rotate the log file past this many bytes.
    pub log_max_size: u64,
    /// Rotated files kept.
    pub log_keep: u32,
    /// Where it was defined (for errors found after loading).
    pub origin: Origin,
}

impl Unit {
    /// A unit with forkyard.toml's defaults: restart on failure, backoff from 100 ms to
    /// 30 s (reset after 1 s up), at most 10 restarts a minute, SIGTERM then SIGKILL after
    /// 10 s, logs rotated at 10 MB keeping 5; no known origin.
    pub fn new(name: &str, command: CommandLine, cwd: PathBuf) -> Unit {
        Unit {
            name: name.to_string(),
            service: name.to_string(),
            instance: None,
            command,
            cwd,
            env: Vec::new(),
            user: None,
            group: None,
            restart: Restart::OnFailure,
            success_codes: vec![0],
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(1),
            max_restarts: 10,
            restart_window: Duration::from_secs(60),
            depends_on: Vec::new(),
            ready: None,
            liveness: None,
            stop_signal: Signal::TERM,
            stop_timeout: Duration::from_secs(10),
            oneshot: false,
            critical: false,
            log_file: None,
            log_max_size: 10 << 20,
            log_keep: 5,
            origin: Origin::default(),
        }
    }
}
