//! What the engine has to say, as data: the binary words it.
//!
//! Why this module exists: the engine prints nothing. The machine and the driver report what
//! happened (a service started, a check failed and why, a signal arrived) as a [`Notice`], and
//! the program that runs the engine turns each into a line in its own words (`forkyard up`
//! prints them after `forkyard | `). So the policy can be tested by the notices it emits, and
//! the texts live in one place, next to the other texts of the binary.

use std::path::PathBuf;
use std::time::Duration;

use forkyard::{ExitStatus, Pid, Signal};

use crate::config::{Condition, Restart};

/// How whole process trees are stopped on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeMethod {
    /// Each run of a service in a cgroup of its own (everything it starts stays inside).
    Cgroups,
    /// The service's process group, its descendants in `/proc`, and its adopted orphans.
    ProcessGroups,
}

/// Why a check failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeFailure {
    /// It did not answer within its `timeout`.
    TimedOut(Duration),
    /// A command check ended this way (not with status 0).
    Exited(ExitStatus),
    /// A command check could not be started.
    CannotRun(String),
    /// A network check failed: the reason, as the probe put it (`connection refused
    /// (127.0.0.1:8080)`, `answered 503`).
    Network(String),
    /// A previous attempt of the same check has not come back yet.
    StillRunning,
}

/// Why a service that was waiting for another will not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockedBecause {
    /// The dependency failed (its restart budget is spent, or it was never ready in time).
    Failed,
    /// The dependency will not start either.
    Blocked,
    /// The dependency ended without reaching the condition.
    EndedWithout,
}

/// One thing worth telling the user, from the machine or the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// Supervision begins.
    Starting {
        /// How many units (services and instances).
        units: usize,
        /// How trees are stopped.
        trees: TreeMethod,
    },
    /// A previous `up` of this configuration was killed and left processes behind; they were
    /// killed before anything started.
    LeftoversKilled {
        /// How many processes.
        processes: usize,
        /// The cgroup they were found in.
        cgroup: PathBuf,
    },
    /// A unit waits for its dependencies.
    Waiting {
        /// The unit.
        unit: String,
        /// What it waits for.
        on: Vec<(String, Condition)>,
    },
    /// A unit will never start: one of its dependencies cannot reach its condition.
    Blocked {
        /// The unit.
        unit: String,
        /// The dependency.
        dependency: String,
        /// The condition it would have had to reach.
        condition: Condition,
        /// Why it cannot.
        because: BlockedBecause,
    },
    /// A unit's process started.
    Started {
        /// The unit.
        unit: String,
        /// Its main process.
        pid: Pid,
    },
    /// A unit's process could not be started.
    CannotStart {
        /// The unit.
        unit: String,
        /// Why.
        error: String,
    },
    /// A unit passed its readiness check.
    Ready {
        /// The unit.
        unit: String,
    },
    /// A readiness check failed, for a reason other than the previous attempt's.
    NotReady {
        /// The unit.
        unit: String,
        /// Why.
        reason: ProbeFailure,
    },
    /// A unit was not ready within its `deadline`: it is stopped and marked failed.
    ReadyDeadline {
        /// The unit.
        unit: String,
        /// The deadline.
        deadline: Duration,
        /// The last check's failure, if one came back.
        last: Option<ProbeFailure>,
    },
    /// A liveness check failed.
    LivenessFailed {
        /// The unit.
        unit: String,
        /// Failures in a row.
        count: u32,
        /// The threshold that restarts it.
        threshold: u32,
        /// Why.
        reason: ProbeFailure,
    },
    /// Liveness failed `count` times in a row: the unit is restarted.
    LivenessRestart {
        /// The unit.
        unit: String,
        /// Failures in a row.
        count: u32,
    },
    /// A unit's process ended by itself.
    Exited {
        /// The unit.
        unit: String,
        /// How.
        status: ExitStatus,
    },
    /// A unit's process ended after it was asked to stop.
    Stopped {
        /// The unit.
        unit: String,
        /// How.
        status: ExitStatus,
    },
    /// A unit is asked to stop.
    Stopping {
        /// The unit.
        unit: String,
        /// The signal sent to its tree.
        signal: Signal,
        /// Time until SIGKILL.
        timeout: Duration,
    },
    /// A unit did not stop within its `stop_timeout`: its whole tree gets SIGKILL.
    StopTimeout {
        /// The unit.
        unit: String,
        /// The timeout.
        timeout: Duration,
    },
    /// A unit whose end ends everything has ended.
    EndsAll {
        /// The unit.
        unit: String,
    },
    /// A unit will be started again after `delay`.
    Restarting {
        /// The unit.
        unit: String,
        /// The delay (zero: at once).
        delay: Duration,
    },
    /// A `oneshot` unit completed successfully.
    Completed {
        /// The unit.
        unit: String,
    },
    /// A unit that failed is not restarted, by its policy.
    NotRestarted {
        /// The unit.
        unit: String,
        /// The policy.
        restart: Restart,
    },
    /// A unit restarted too often: it stays down.
    GaveUp {
        /// The unit.
        unit: String,
        /// Restarts within the window.
        restarts: u32,
        /// The window.
        window: Duration,
        /// The budget.
        max: u32,
    },
    /// A signal asks every service to stop.
    ShutdownRequested {
        /// The signal.
        signal: Signal,
        /// Whether a second one (a later Ctrl-C) would kill everything at once.
        can_force: bool,
    },
    /// A second interrupt: every tree gets SIGKILL now.
    ForceRequested {
        /// The signal.
        signal: Signal,
    },
    /// A signal that means nothing to the engine arrived; it goes on.
    SignalIgnored {
        /// The signal.
        signal: Signal,
    },
    /// SIGHUP (or `forkyard ctl reload`) asks for the configuration to be read again.
    ReloadRequested,
    /// The configuration was read again and applied.
    Reloaded {
        /// Instances added.
        added: Vec<String>,
        /// Instances restarted with new settings.
        changed: Vec<String>,
        /// Instances removed.
        removed: Vec<String>,
    },
    /// The configuration read again is not valid: nothing changed.
    ReloadFailed {
        /// Why (as `up --check` says it).
        error: String,
    },
    /// A unit was stopped on request and stays down until started.
    Held {
        /// The unit.
        unit: String,
    },
    /// A request came through the control socket.
    Requested {
        /// What (`start`, `stop`, `restart`, `signal HUP`, `scale 3`).
        what: String,
        /// The instances concerned.
        units: Vec<String>,
    },
    /// The control socket is ready for `forkyard ctl`.
    ControlListening {
        /// Its path.
        path: PathBuf,
    },
    /// The read-only HTTP endpoints are ready.
    HttpListening {
        /// The address.
        address: String,
    },
    /// The control plane could not be set up; the services run without it.
    ControlUnavailable {
        /// What failed.
        error: String,
    },
    /// Someone who is neither root nor `up`'s user connected to the control socket: refused.
    ControlRefused {
        /// Their user ID.
        uid: u32,
        /// Their process (0 when unknown).
        pid: i32,
        /// Refusals not reported before this one (reports are at most one a second).
        more: u64,
    },
    /// SIGUSR1: log files are opened again (after logrotate moved them).
    ReopeningLogs,
    /// A log file could not be opened or written; the service runs on without it.
    LogFile {
        /// The unit.
        unit: String,
        /// The file.
        path: PathBuf,
        /// Why.
        error: String,
    },
    /// The output was not being read and the supervisor's own messages piled up: this many
    /// were dropped (no line of a service ever is).
    OutputDropped {
        /// How many.
        count: u64,
    },
    /// The engine could not go on (waiting for events failed): everything is killed.
    Fatal {
        /// What failed.
        error: String,
    },
    /// The engine is about to exit with this code.
    Exiting {
        /// The code.
        code: i32,
    },
}
