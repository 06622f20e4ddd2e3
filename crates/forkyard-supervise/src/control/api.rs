//! The control API's messages, as Rust types: what the server (inside `up`) sends and what
//! `forkyard ctl` reads, so that the two cannot drift apart.
//!
//! Why this module exists: the API is JSON over HTTP, documented in docs/api.md for `curl`
//! users; both ends of forkyard's own use of it serialize and parse these types.

use serde::{Deserialize, Serialize};

/// The version prefix of every control path (`/v1/services`, ...).
pub const PREFIX: &str = "/v1";

/// `GET /v1/services`: the supervisor and its services.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// The supervisor itself.
    pub up: UpStatus,
    /// Every service instance, in start order (those asked for with `?name=`, if any).
    pub services: Vec<ServiceStatus>,
}

/// The supervisor in [`Overview`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpStatus {
    /// Its process ID.
    pub pid: i32,
    /// The configuration file it runs (absolute).
    pub config: String,
    /// Seconds since it started.
    pub uptime_seconds: f64,
    /// `running`, or `stopping` once a shutdown has begun.
    pub state: String,
    /// The exit code it will end with, once a shutdown has begun.
    pub exit_code: Option<i32>,
}

/// One service instance in [`Overview`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// `web`, or `web.2` for an instance.
    pub name: String,
    /// The service it belongs to (`web`).
    pub service: String,
    /// Its instance number, for a service with instances.
    pub instance: Option<u32>,
    /// One of `waiting`, `starting`, `ready`, `running`, `backoff`, `stopping`, `stopped`,
    /// `completed`, `failed`, `blocked`.
    pub state: String,
    /// The main process of the current run, while it runs.
    pub pid: Option<i32>,
    /// The number of the current (or last) run: 1 for the first start, +1 per start.
    pub run: u64,
    /// Seconds since the current run started, while it runs.
    pub uptime_seconds: Option<f64>,
    /// Starts after the first one.
    pub restarts: u64,
    /// How the last run ended.
    pub last_exit: Option<ExitInfo>,
    /// Whether it is ready; `None` when it has no readiness check.
    pub ready: Option<bool>,
    /// The kind of readiness check (`exec`, `tcp`, `http`, `log`, `notify`), if any.
    pub readiness: Option<String>,
    /// Why the last readiness attempt failed, while it is not ready.
    pub last_probe_failure: Option<String>,
    /// CPU time of its processes (user + system), from its cgroup, else its main process.
    pub cpu_seconds: Option<f64>,
    /// Memory of its processes, from its cgroup (`memory.current`), else its main process's
    /// resident set.
    pub memory_bytes: Option<u64>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// As a shell reports it in `$?` (128 + n for a signal).
    pub code: i32,
    /// In words: `exited with code 3`, `killed by SIGKILL`.
    pub description: String,
}

/// The reply to start, stop, restart and signal: the instances concerned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// The instances the request applied to.
    pub units: Vec<String>,
}

/// The reply to `POST /v1/services/{service}/scale`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaled {
    /// The service's instances now.
    pub units: Vec<String>,
    /// Those added.
    pub added: Vec<String>,
    /// Those removed (stopped as by `stop`, then forgotten).
    pub removed: Vec<String>,
}

/// The reply to `POST /v1/reload`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    /// Instances new in the file: started (when their dependencies allow).
    pub added: Vec<String>,
    /// Instances gone from the file: stopped and forgotten.
    pub removed: Vec<String>,
    /// Instances whose settings changed: restarted with the new ones.
    pub changed: Vec<String>,
    /// Instances left as they were, same processes.
    pub unchanged: Vec<String>,
}

/// The reply to `POST /v1/shutdown`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShuttingDown {
    /// What `up` will exit with, as things stand (a service failing while it stops can
    /// still make it non-zero).
    pub exit_code: i32,
}

/// One line of `GET /v1/events`: a service instance changed state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateEvent {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// The instance.
    pub name: String,
    /// Its service.
    pub service: String,
    /// Its new state (as in [`ServiceStatus::state`]).
    pub state: String,
    /// Its main process, while it runs.
    pub pid: Option<i32>,
    /// Its run number.
    pub run: u64,
    /// How the run ended, when the change is an end.
    pub exit: Option<ExitInfo>,
}

/// The body of every error reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong, and what to do.
    pub error: String,
    /// For an unknown name: the services there are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}
