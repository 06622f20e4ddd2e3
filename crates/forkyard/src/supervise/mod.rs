//! `forkyard up`: supervise many services, event-driven, and leave nothing behind.
//!
//! Why this module exists: the supervisors people run today restart a crashed service after
//! a second of polling (supervisord, Horust), leave a stopped service's children running,
//! cannot prefix log lines with the service's name or exit with a failed service's code, and
//! make poor PID 1s. This one is a single-threaded loop over one epoll: a signalfd (SIGCHLD,
//! SIGTERM, SIGINT), every service's output pipes, readiness sockets, and a timer heap for
//! backoffs, checks and stop timeouts. A death is acted on the moment SIGCHLD is read; no
//! part of it polls.
//!
//! Parts: [`config`] (what to run), [`policy`] (when to restart), `logs` (the prefixed
//! output), `probe` (network checks), `tree` (stopping a whole process tree).

pub mod config;
mod logs;
pub mod policy;
mod probe;
mod tree;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use config::{CommandLine, Condition, Plan, Probe, Unit};
use policy::{Decision, History};

use crate::init::Inherited;
use crate::spawn::{Credentials, Group, Launch, Program};
use crate::{ExitStatus, Pid, Reaper, Scope, Signal, SignalFd, SignalSet, Strategy, sys};

/// How `up` runs, besides the plan.
#[derive(Clone, Debug)]
pub struct Options {
    /// What the supervisor inherited (its services start with the same mask and
    /// dispositions).
    pub inherited: Inherited,
    /// End when any service ends, as if every service were `critical`.
    pub exit_on_first: bool,
    /// Colour the names (on a terminal, unless `NO_COLOR`).
    pub colour: bool,
    /// Put a time in front of every line.
    pub timestamps: bool,
}

/// Runs the plan until it ends; returns `up`'s exit code: the status of the service whose
/// end ended it (128 + n for a signal), else the first failure's, else 0.
pub fn run(plan: &Plan, options: &Options) -> i32 {
    match Supervisor::new(plan, options) {
        Ok(mut s) => s.run(),
        Err(e) => {
            eprintln!("forkyard up: {e}");
            1
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for its dependencies.
    Waiting,
    /// Its process runs.
    Running,
    /// Waiting to be started again.
    Backoff,
    /// Asked to stop; SIGKILL at the deadline.
    Stopping,
    /// Down for good: completed, not to be restarted, or stopped.
    Done,
    /// Down for good: its restart budget is spent.
    Failed,
    /// Never to start: a dependency cannot be met.
    Blocked,
}

/// A check in progress.
enum Running {
    Exec(Pid),
    Net,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ready,
    Live,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Start(usize, u64),
    StopTimeout(usize, u64),
    Check(usize, u64, Kind),
    CheckTimeout(usize, u64, Kind),
}

struct Stream {
    fd: OwnedFd,
    lines: logs::Lines,
}

struct State {
    unit: Unit,
    phase: Phase,
    /// Counts starts, so that timers of an earlier run are recognised as stale.
    generation: u64,
    pid: Option<Pid>,
    started_at: Option<Instant>,
    ever_started: bool,
    ready: bool,
    ready_announced: bool,
    completed: Option<bool>,
    last_status: Option<ExitStatus>,
    history: History,
    out: Option<Stream>,
    err: Option<Stream>,
    notify: Option<UnixDatagram>,
    regex: Option<regex_lite::Regex>,
    cgroup: Option<tree::UnitCgroup>,
    log_file: Option<logs::LogFile>,
    checks: [Option<Running>; 2],
    live_failures: u32,
    restart_after_stop: bool,
    waiting_logged: bool,
}

/// The epoll tokens: the signalfd, the probe-result eventfd, then four per unit.
const SIGNALS: u64 = 0;
const PROBES: u64 = 1;
fn token(unit: usize, which: u64) -> u64 {
    16 + unit as u64 * 4 + which
}

struct Supervisor {
    states: Vec<State>,
    options: Options,
    from_procfile: bool,
    epoll: sys::Epoll,
    signals: SignalFd,
    reaper: Reaper,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    output: logs::Output,
    probe_tx: mpsc::Sender<(usize, u64, Kind, Result<(), String>)>,
    probe_rx: mpsc::Receiver<(usize, u64, Kind, Result<(), String>)>,
    probe_wake: OwnedFd,
    cgroups: Option<tree::Cgroups>,
    /// Cgroups of ended runs not yet removed (a dying process can keep one busy briefly).
    retired: Vec<tree::UnitCgroup>,
    /// Numbers the runs' cgroups.
    cgroup_runs: u64,
    runtime_dir: PathBuf,
    /// Shutting down, with the exit code to end with; `forced` after a second interrupt.
    shutdown: Option<(i32, bool)>,
}

impl Supervisor {
    fn new(plan: &Plan, options: &Options) -> crate::Result<Supervisor> {
        // Every signal the loop handles is read from the signalfd; block them before any
        // probe thread exists.
        let set: SignalSet = [Signal::CHLD, Signal::TERM, Signal::INT, Signal::HUP, Signal::QUIT].into_iter().collect();
        set.block()?;
        if Pid::this() != Pid::INIT {
            // Orphans of services come back to us, so nothing escapes the final clean-up.
            crate::subreaper::set_child_subreaper(true)?;
        }
        let reaper = Reaper::new(Strategy::Manual, Scope::All)?;
        let signals = SignalFd::new(&set)?;
        let epoll = sys::Epoll::new().map_err(|e| crate::Error::sys("epoll_create1", "the supervisor", e))?;
        epoll.add(signals.as_fd(), SIGNALS).map_err(|e| crate::Error::sys("epoll_ctl", "the signalfd", e))?;
        let probe_wake = sys::eventfd().map_err(|e| crate::Error::sys("eventfd", "the supervisor", e))?;
        sys::set_nonblocking(probe_wake.as_fd(), true).map_err(|e| crate::Error::sys("fcntl", "the eventfd", e))?;
        epoll.add(probe_wake.as_fd(), PROBES).map_err(|e| crate::Error::sys("epoll_ctl", "the eventfd", e))?;
        let (probe_tx, probe_rx) = mpsc::channel();
        let runtime_dir = std::env::temp_dir().join(format!("forkyard-{}", Pid::this()));
        let width = plan.units.iter().map(|u| u.name.len()).max().unwrap_or(0);
        let mut states = Vec::new();
        for unit in &plan.units {
            let regex = match &unit.ready.as_ref().map(|c| &c.probe) {
                Some(Probe::Log(r)) => regex_lite::Regex::new(r).ok(),
                _ => None,
            };
            let log_file = match &unit.log_file {
                Some(path) => {
                    Some(logs::LogFile::open(path.clone(), unit.log_max_size, unit.log_keep).map_err(|e| {
                        crate::Error::sys("open", format!("the log file {} of {}", path.display(), unit.name), e)
                    })?)
                }
                None => None,
            };
            states.push(State {
                unit: unit.clone(),
                phase: Phase::Waiting,
                generation: 0,
                pid: None,
                started_at: None,
                ever_started: false,
                ready: false,
                ready_announced: false,
                completed: None,
                last_status: None,
                history: History::default(),
                out: None,
                err: None,
                notify: None,
                regex,
                cgroup: None,
                log_file,
                checks: [None, None],
                live_failures: 0,
                restart_after_stop: false,
                waiting_logged: false,
            });
        }
        Ok(Supervisor {
            states,
            options: options.clone(),
            from_procfile: plan.from_procfile,
            epoll,
            signals,
            reaper,
            timers: BinaryHeap::new(),
            output: logs::Output::new(options.colour, options.timestamps, width),
            probe_tx,
            probe_rx,
            probe_wake,
            cgroups: tree::Cgroups::create(),
            retired: Vec::new(),
            cgroup_runs: 0,
            runtime_dir,
            shutdown: None,
        })
    }

    fn run(&mut self) -> i32 {
        let tree_how = if self.cgroups.is_some() { "cgroups" } else { "process groups and /proc" };
        self.output.event(format_args!("starting {} service(s); stopping trees with {tree_how}", self.states.len()));
        let mut tokens = Vec::new();
        loop {
            self.schedule();
            if let Some(code) = self.finished() {
                self.output.event(format_args!("exiting with {code}"));
                self.cleanup();
                self.output.flush();
                return code;
            }
            self.output.flush();
            let timeout = self.timers.peek().map(|Reverse((t, _))| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.epoll.wait(&mut tokens, timeout) {
                self.output.event(format_args!("error: waiting for events failed: {e}; stopping everything"));
                self.begin_shutdown(1);
                self.force();
            }
            for &t in &tokens {
                match t {
                    SIGNALS => self.on_signals(),
                    PROBES => self.on_probe_results(),
                    t => {
                        let i = ((t - 16) / 4) as usize;
                        match (t - 16) % 4 {
                            0 => self.read_output(i, false),
                            1 => self.read_output(i, true),
                            _ => self.on_notify(i),
                        }
                    }
                }
            }
            self.fire_timers();
        }
    }

    // --- starting ------------------------------------------------------------------------

    /// Starts what can start; in a shutdown, stops what can stop (dependents first).
    fn schedule(&mut self) {
        if let Some((_, forced)) = self.shutdown {
            for i in (0..self.states.len()).rev() {
                match self.states[i].phase {
                    Phase::Waiting | Phase::Backoff => self.states[i].phase = Phase::Done,
                    Phase::Running if forced || !self.has_live_dependents(i) => self.stop(i),
                    _ => {}
                }
            }
            return;
        }
        for i in 0..self.states.len() {
            if self.states[i].phase != Phase::Waiting {
                continue;
            }
            let mut blocked = None;
            let mut waiting = Vec::new();
            for (dep, cond) in self.states[i].unit.depends_on.clone() {
                let Some(d) = self.states.iter().find(|s| s.unit.name == dep) else { continue };
                let met = match cond {
                    Condition::Started => d.ever_started,
                    Condition::Ready => d.ready_announced,
                    Condition::CompletedSuccessfully => d.completed == Some(true),
                };
                if met {
                    continue;
                }
                let impossible = matches!(d.phase, Phase::Failed | Phase::Blocked)
                    || (d.phase == Phase::Done && cond == Condition::CompletedSuccessfully)
                    || (d.phase == Phase::Done && !d.ever_started);
                if impossible {
                    let why = match d.phase {
                        Phase::Failed => "failed",
                        Phase::Blocked => "cannot start",
                        _ => "ended without reaching it",
                    };
                    blocked = Some(format!("{dep} {why} ({})", condition_name(cond)));
                    break;
                }
                waiting.push(format!("{dep} ({})", condition_name(cond)));
            }
            if let Some(reason) = blocked {
                self.output.event(format_args!("{} will not start: {reason}", self.states[i].unit.name));
                self.states[i].phase = Phase::Blocked;
            } else if waiting.is_empty() {
                self.start(i);
            } else if !self.states[i].waiting_logged {
                self.states[i].waiting_logged = true;
                self.output.event(format_args!("{} waits for {}", self.states[i].unit.name, waiting.join(", ")));
            }
        }
    }

    fn has_live_dependents(&self, i: usize) -> bool {
        let name = &self.states[i].unit.name;
        self.states.iter().any(|s| {
            matches!(s.phase, Phase::Running | Phase::Stopping) && s.unit.depends_on.iter().any(|(d, _)| d == name)
        })
    }

    fn launch(&self, i: usize) -> Result<Launch, String> {
        let unit = &self.states[i].unit;
        let credentials = match (&unit.user, &unit.group) {
            (None, None) => None,
            (user, group) => Some(credentials(user.as_deref(), group.as_deref())?),
        };
        Ok(Launch {
            group: Group::Own,
            foreground: false,
            signal_mask: Some(self.options.inherited.mask),
            dispositions: self.options.inherited.dispositions(),
            parent_death_signal: None,
            credentials,
            pass_listen_pid: false,
            announce: None,
            cgroup: self.states[i].cgroup.as_ref().map(|c| c.dir_fd()),
        })
    }

    fn start(&mut self, i: usize) {
        let now = Instant::now();
        if self.cgroups.is_some() {
            // A fresh cgroup for every run. Besides starting clean, this avoids a kernel bug
            // (seen on 6.18): once `cgroup.kill` has been used on a cgroup, every child
            // started in it with CLONE_INTO_CGROUP is killed at birth.
            if let Some(old) = self.states[i].cgroup.take() {
                old.signal(Signal::KILL);
                self.retired.push(old);
            }
            self.cgroup_runs += 1;
            let name = format!("{}@{}", self.states[i].unit.name, self.cgroup_runs);
            self.states[i].cgroup = self.cgroups.as_ref().and_then(|c| c.unit(&name).ok());
        }
        self.spawn_and_track(i, now);
        // Tidying the ended runs' cgroups can wait until the new run is on its way.
        self.retired.retain(|c| !c.remove());
    }

    fn spawn_and_track(&mut self, i: usize, now: Instant) {
        match self.spawn_unit(i) {
            Ok(pid) => {
                let s = &mut self.states[i];
                s.generation += 1;
                s.pid = Some(pid);
                s.phase = Phase::Running;
                s.started_at = Some(now);
                s.ever_started = true;
                s.ready = false;
                s.live_failures = 0;
                s.checks = [None, None];
                let (generation, name) = (s.generation, s.unit.name.clone());
                self.output.event(format_args!("{name} started (pid {pid})"));
                match self.states[i].unit.ready.clone() {
                    None => self.mark_ready(i),
                    Some(check) => {
                        if matches!(check.probe, Probe::Exec(_) | Probe::Tcp(_) | Probe::Http(_)) {
                            self.timers.push(Reverse((now, Timer::Check(i, generation, Kind::Ready))));
                        }
                    }
                }
                if let Some(check) = &self.states[i].unit.liveness {
                    let at = now + check.initial_delay + check.interval;
                    self.timers.push(Reverse((at, Timer::Check(i, generation, Kind::Live))));
                }
            }
            Err(e) => {
                let name = self.states[i].unit.name.clone();
                self.output.event(format_args!("{name} cannot start: {e}"));
                // Treated as an exit: retried under the unit's policy, failed when the
                // budget is spent.
                let status = ExitStatus::Exited(127);
                self.states[i].last_status = Some(status);
                self.after_exit(i, status, Duration::ZERO);
            }
        }
    }

    fn spawn_unit(&mut self, i: usize) -> Result<Pid, String> {
        let launch = self.launch(i)?;
        let unit = &self.states[i].unit;
        let mut cmd = command_for(&unit.command, unit);
        let notify = matches!(unit.ready.as_ref().map(|c| &c.probe), Some(Probe::Notify));
        let (out_r, out_w) = sys::pipe().map_err(|e| format!("pipe2: {e}"))?;
        let (err_r, err_w) = sys::pipe().map_err(|e| format!("pipe2: {e}"))?;
        cmd.stdio = [Some(dev_null(false)?), Some(out_w), Some(err_w)];
        if notify {
            std::fs::create_dir_all(&self.runtime_dir)
                .map_err(|e| format!("creating {}: {e}", self.runtime_dir.display()))?;
            let path = self.runtime_dir.join(format!("{}.notify", self.states[i].unit.name));
            let _ = std::fs::remove_file(&path);
            let sock = UnixDatagram::bind(&path).map_err(|e| format!("binding {}: {e}", path.display()))?;
            sock.set_nonblocking(true).map_err(|e| e.to_string())?;
            let _ = self.epoll.add(sock.as_fd(), token(i, 2));
            cmd.env.push(("NOTIFY_SOCKET".into(), path.clone().into()));
            if let Some(old) = self.states[i].notify.replace(sock) {
                let _ = self.epoll.delete(old.as_fd());
            }
        }
        let child = launch.start(cmd).map_err(|e| match e {
            crate::Error::Sys { call: "exec", source, .. } => {
                format!("{}: {}", program_name(&self.states[i].unit.command), crate::error::strerror(&source))
            }
            other => other.to_string(),
        })?;
        for (fd, which) in [(&out_r, 0), (&err_r, 1)] {
            let _ = sys::set_nonblocking(fd.as_fd(), true);
            let _ = self.epoll.add(fd.as_fd(), token(i, which));
        }
        // Output of an earlier run still being read is flushed first.
        self.close_stream(i, false);
        self.close_stream(i, true);
        self.states[i].out = Some(Stream { fd: out_r, lines: logs::Lines::default() });
        self.states[i].err = Some(Stream { fd: err_r, lines: logs::Lines::default() });
        self.reaper.watch(child).map_err(|e| e.to_string())
    }

    fn mark_ready(&mut self, i: usize) {
        let s = &mut self.states[i];
        if s.ready {
            return;
        }
        s.ready = true;
        if s.unit.ready.is_some() {
            self.output.event(format_args!("{} is ready", s.unit.name));
        }
        s.ready_announced = true;
    }

    // --- exits ---------------------------------------------------------------------------

    fn on_signals(&mut self) {
        let mut chld = false;
        while let Ok(Some(info)) = self.signals.try_read() {
            match info.signal {
                s if s == Signal::CHLD => chld = true,
                s => self.on_stop_request(s),
            }
        }
        if chld {
            self.reap();
        }
    }

    /// SIGTERM, SIGINT (and SIGHUP, SIGQUIT) stop everything gracefully; a second SIGINT
    /// (Ctrl-C twice) kills everything at once. A repeated SIGTERM changes nothing: tools
    /// like `timeout` send one to the process and one to its group.
    fn on_stop_request(&mut self, signal: Signal) {
        match self.shutdown {
            None => {
                let hint = if signal == Signal::INT { " (Ctrl-C again to kill them at once)" } else { "" };
                self.output.event(format_args!("{signal} received: stopping every service{hint}"));
                self.begin_shutdown(128 + signal.as_raw());
            }
            Some((code, false)) if signal == Signal::INT => {
                self.output.event(format_args!("{signal} received again: killing every service now"));
                self.shutdown = Some((code, true));
                self.force();
            }
            Some(_) => {}
        }
    }

    fn reap(&mut self) {
        let reaped = match self.reaper.try_reap() {
            Ok(r) => r,
            Err(e) => {
                self.output.event(format_args!("error: collecting children failed: {e}"));
                return;
            }
        };
        for r in reaped {
            if let Some(i) = self.states.iter().position(|s| s.pid == Some(r.pid)) {
                self.on_unit_exit(i, r.status);
            } else if let Some((i, k)) = self.find_check(r.pid) {
                self.states[i].checks[k as usize] = None;
                let result = if r.status.success() { Ok(()) } else { Err(format!("the check {}", r.status)) };
                let generation = self.states[i].generation;
                self.on_check_result(i, generation, k, result);
            }
            // Anything else was an orphan adopted by us; collecting it was the job.
        }
    }

    fn find_check(&self, pid: Pid) -> Option<(usize, Kind)> {
        self.states.iter().enumerate().find_map(|(i, s)| {
            [Kind::Ready, Kind::Live]
                .into_iter()
                .find(|k| matches!(s.checks[*k as usize], Some(Running::Exec(p)) if p == pid))
                .map(|k| (i, k))
        })
    }

    fn kill_tree(&self, i: usize, signal: Signal) -> usize {
        let s = &self.states[i];
        match (&s.cgroup, s.pid) {
            (Some(cg), _) => cg.signal(signal),
            (None, Some(pid)) => tree::signal_tree(pid, signal),
            (None, None) => 0,
        }
    }

    fn on_unit_exit(&mut self, i: usize, status: ExitStatus) {
        // Whatever the service left in its tree goes with it. In a cgroup, that waits until
        // a restart is on its way (the new run gets a cgroup of its own).
        let old_cgroup = self.states[i].cgroup.take();
        if old_cgroup.is_none() {
            if let Some(pid) = self.states[i].pid {
                let _ = Signal::KILL.send_group(pid);
            }
        }
        self.unit_ended(i, status);
        if let Some(cg) = old_cgroup {
            cg.signal(Signal::KILL);
            if !cg.remove() {
                self.retired.push(cg);
            }
        }
    }

    fn unit_ended(&mut self, i: usize, status: ExitStatus) {
        let now = Instant::now();
        self.read_output(i, false);
        self.read_output(i, true);
        let s = &mut self.states[i];
        s.pid = None;
        s.last_status = Some(status);
        s.checks = [None, None];
        let ran_for = s.started_at.map_or(Duration::ZERO, |t| now.duration_since(t));
        let name = s.unit.name.clone();
        if s.phase == Phase::Stopping {
            self.output.event(format_args!("{name} stopped ({status})"));
            if self.states[i].restart_after_stop && self.shutdown.is_none() {
                self.states[i].restart_after_stop = false;
                let s = &mut self.states[i];
                let decision = policy::decide_restart(&s.unit, &mut s.history, ran_for, now);
                self.apply(i, decision);
            } else {
                self.states[i].phase = Phase::Done;
            }
            return;
        }
        self.output.event(format_args!("{name} {status}"));
        if self.shutdown.is_some() {
            self.states[i].phase = Phase::Done;
            return;
        }
        let ends_all = self.states[i].unit.critical || self.options.exit_on_first || self.from_procfile;
        if ends_all {
            let success = policy::is_success(&self.states[i].unit, status);
            self.states[i].phase = Phase::Done;
            self.states[i].completed = Some(success);
            self.output.event(format_args!("{name} has ended, so everything stops"));
            self.begin_shutdown(status.shell_code());
            return;
        }
        self.after_exit(i, status, ran_for);
    }

    fn after_exit(&mut self, i: usize, status: ExitStatus, ran_for: Duration) {
        let s = &mut self.states[i];
        let decision = policy::after_exit(&s.unit, status, ran_for, &mut s.history, Instant::now());
        self.apply(i, decision);
    }

    fn apply(&mut self, i: usize, decision: Decision) {
        let name = self.states[i].unit.name.clone();
        match decision {
            Decision::Restart(delay) if delay.is_zero() => {
                self.output.event(format_args!("{name} restarting"));
                self.start(i);
            }
            Decision::Restart(delay) => {
                self.output.event(format_args!("{name} restarting in {delay:?}"));
                let s = &mut self.states[i];
                s.phase = Phase::Backoff;
                self.timers.push(Reverse((Instant::now() + delay, Timer::Start(i, s.generation))));
            }
            Decision::Done { success } => {
                let s = &mut self.states[i];
                s.phase = Phase::Done;
                s.completed = Some(success);
                if s.unit.oneshot && success {
                    self.output.event(format_args!("{name} completed"));
                } else if !success {
                    self.output.event(format_args!("{name} will not be restarted (restart = {:?})", s.unit.restart));
                }
            }
            Decision::GiveUp { reason } => {
                self.states[i].phase = Phase::Failed;
                self.output.event(format_args!("{name} failed: {reason}"));
            }
        }
    }

    // --- stopping ------------------------------------------------------------------------

    fn begin_shutdown(&mut self, code: i32) {
        if self.shutdown.is_none() {
            self.shutdown = Some((code, false));
        }
    }

    fn stop(&mut self, i: usize) {
        let s = &mut self.states[i];
        let Some(pid) = s.pid else { return };
        s.phase = Phase::Stopping;
        let (signal, timeout, generation, name) =
            (s.unit.stop_signal, s.unit.stop_timeout, s.generation, s.unit.name.clone());
        self.output.event(format_args!("stopping {name} ({signal}, then SIGKILL after {timeout:?})"));
        // Everything in its cgroup, or else its whole process group, as a terminal would;
        // never both, so that no process gets the signal twice.
        match &self.states[i].cgroup {
            Some(cg) => drop(cg.signal(signal)),
            None => drop(signal.send_group(pid)),
        }
        self.timers.push(Reverse((Instant::now() + timeout, Timer::StopTimeout(i, generation))));
    }

    fn force(&mut self) {
        for i in 0..self.states.len() {
            if matches!(self.states[i].phase, Phase::Running | Phase::Stopping) {
                self.kill_tree(i, Signal::KILL);
            }
        }
    }

    /// `Some(code)` once nothing is left to run (or stop).
    fn finished(&mut self) -> Option<i32> {
        let active = self
            .states
            .iter()
            .any(|s| matches!(s.phase, Phase::Running | Phase::Stopping | Phase::Backoff | Phase::Waiting));
        if active {
            return None;
        }
        if let Some((code, _)) = self.shutdown {
            return Some(code);
        }
        // Everything ended by itself: the first failure's status, else 0.
        let failed = self.states.iter().find(|s| match s.phase {
            Phase::Failed | Phase::Blocked => true,
            Phase::Done => s.completed == Some(false),
            _ => false,
        });
        Some(failed.map_or(0, |s| match (s.phase, s.last_status) {
            (Phase::Blocked, _) | (_, None) => 1,
            (_, Some(status)) => status.shell_code(),
        }))
    }

    /// Before exiting: nothing we started, directly or not, may be left.
    fn cleanup(&mut self) {
        for i in 0..self.states.len() {
            self.kill_tree(i, Signal::KILL);
        }
        let me = Pid::this();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let _ = self.reaper.try_reap();
            let Ok(snap) = crate::procs::Snapshot::take_with(crate::procs::ScanOptions { cmdline: false, threads: 1 })
            else {
                break;
            };
            let left: Vec<Pid> = snap.descendants(me).iter().filter(|p| !p.is_zombie()).map(|p| p.pid).collect();
            let children = snap.children(me).count();
            if children == 0 || Instant::now() > deadline {
                break;
            }
            for pid in left {
                let _ = Signal::KILL.send(pid);
            }
            let _ = self.signals.read(Some(Duration::from_millis(50)));
        }
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
        self.cgroups = None;
    }

    // --- timers --------------------------------------------------------------------------

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, timer))) = self.timers.pop() else { break };
            match timer {
                Timer::Start(i, g)
                    if self.states[i].generation == g
                        && self.states[i].phase == Phase::Backoff
                        && self.shutdown.is_none() =>
                {
                    self.start(i);
                }
                Timer::StopTimeout(i, g)
                    if self.states[i].generation == g && self.states[i].phase == Phase::Stopping =>
                {
                    let n = self.kill_tree(i, Signal::KILL);
                    let name = self.states[i].unit.name.clone();
                    self.output
                        .event(format_args!("{name} did not stop in time: sent SIGKILL to {} process(es)", n.max(1)));
                }
                Timer::Check(i, g, k) if self.states[i].generation == g && self.states[i].phase == Phase::Running => {
                    self.run_check(i, k);
                }
                Timer::CheckTimeout(i, g, k) if self.states[i].generation == g => {
                    if let Some(Running::Exec(pid)) = self.states[i].checks[k as usize] {
                        // Killed; its exit reports the failure.
                        let _ = self.reaper.kill(pid, Signal::KILL);
                    }
                }
                _ => {}
            }
        }
    }

    // --- checks --------------------------------------------------------------------------

    fn run_check(&mut self, i: usize, kind: Kind) {
        let Some(check) = (match kind {
            Kind::Ready => self.states[i].unit.ready.clone(),
            Kind::Live => self.states[i].unit.liveness.clone(),
        }) else {
            return;
        };
        if self.states[i].checks[kind as usize].is_some() || (kind == Kind::Ready && self.states[i].ready) {
            return;
        }
        let generation = self.states[i].generation;
        match &check.probe {
            Probe::Exec(line) => {
                let mut cmd = command_for(line, &self.states[i].unit);
                let null = dev_null(false).and_then(|r| {
                    let w = dev_null(true)?;
                    let w2 = w.try_clone().map_err(|e| format!("dup of /dev/null: {e}"))?;
                    Ok([Some(r), Some(w), Some(w2)])
                });
                match null {
                    Ok(null) => cmd.stdio = null,
                    Err(e) => {
                        self.on_check_result(i, generation, kind, Err(e));
                        return;
                    }
                }
                let launch = match self.launch(i) {
                    Ok(mut l) => {
                        l.cgroup = None;
                        l
                    }
                    Err(e) => {
                        self.on_check_result(i, generation, kind, Err(e));
                        return;
                    }
                };
                match launch.start(cmd).and_then(|c| self.reaper.watch(c)) {
                    Ok(pid) => {
                        self.states[i].checks[kind as usize] = Some(Running::Exec(pid));
                        let at = Instant::now() + check.timeout;
                        self.timers.push(Reverse((at, Timer::CheckTimeout(i, generation, kind))));
                    }
                    Err(e) => self.on_check_result(i, generation, kind, Err(e.to_string())),
                }
            }
            Probe::Tcp(addr) | Probe::Http(addr) => {
                let (addr, http, timeout) = (addr.clone(), matches!(check.probe, Probe::Http(_)), check.timeout);
                let (tx, wake) = (self.probe_tx.clone(), self.probe_wake.try_clone());
                self.states[i].checks[kind as usize] = Some(Running::Net);
                std::thread::spawn(move || {
                    let result = if http { probe::http(&addr, timeout) } else { probe::tcp(&addr, timeout) };
                    let _ = tx.send((i, generation, kind, result));
                    if let Ok(wake) = wake {
                        let _ = sys::write_all(wake.as_fd(), &1u64.to_ne_bytes());
                    }
                });
            }
            Probe::Log(_) | Probe::Notify => {}
        }
    }

    fn on_probe_results(&mut self) {
        let mut buf = [0u8; 8];
        let _ = sys::read(self.probe_wake.as_fd(), &mut buf);
        while let Ok((i, generation, kind, result)) = self.probe_rx.try_recv() {
            if self.states[i].generation == generation {
                self.states[i].checks[kind as usize] = None;
                self.on_check_result(i, generation, kind, result);
            }
        }
    }

    fn on_check_result(&mut self, i: usize, generation: u64, kind: Kind, result: Result<(), String>) {
        if self.states[i].generation != generation || self.states[i].phase != Phase::Running {
            return;
        }
        let name = self.states[i].unit.name.clone();
        match kind {
            Kind::Ready => match result {
                Ok(()) => self.mark_ready(i),
                Err(_) => {
                    if let Some(check) = &self.states[i].unit.ready {
                        let at = Instant::now() + check.interval;
                        self.timers.push(Reverse((at, Timer::Check(i, generation, Kind::Ready))));
                    }
                }
            },
            Kind::Live => {
                let Some(check) = self.states[i].unit.liveness.clone() else { return };
                match result {
                    Ok(()) => self.states[i].live_failures = 0,
                    Err(e) => {
                        self.states[i].live_failures += 1;
                        let n = self.states[i].live_failures;
                        self.output.event(format_args!(
                            "{name} failed its liveness check ({n}/{}): {e}",
                            check.failure_threshold
                        ));
                        if n >= check.failure_threshold {
                            self.output.event(format_args!("{name} restarting: its liveness check failed {n} times"));
                            self.states[i].restart_after_stop = true;
                            self.stop(i);
                            return;
                        }
                    }
                }
                self.timers.push(Reverse((Instant::now() + check.interval, Timer::Check(i, generation, Kind::Live))));
            }
        }
    }

    fn on_notify(&mut self, i: usize) {
        let mut buf = [0u8; 4096];
        let mut ready = false;
        if let Some(sock) = &self.states[i].notify {
            while let Ok(n) = sock.recv(&mut buf) {
                ready |= String::from_utf8_lossy(&buf[..n]).lines().any(|l| l.trim() == "READY=1");
            }
        }
        if ready && self.states[i].phase == Phase::Running {
            self.mark_ready(i);
        }
    }

    // --- output --------------------------------------------------------------------------

    fn read_output(&mut self, i: usize, stderr: bool) {
        let mut buf = [0u8; 64 * 1024];
        loop {
            let stream = if stderr { &mut self.states[i].err } else { &mut self.states[i].out };
            let Some(stream) = stream else { return };
            match sys::read(stream.fd.as_fd(), &mut buf) {
                Ok(0) => {
                    self.close_stream(i, stderr);
                    return;
                }
                Ok(n) => self.emit(i, stderr, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.close_stream(i, stderr);
                    return;
                }
            }
        }
    }

    fn emit(&mut self, i: usize, stderr: bool, data: &[u8]) {
        let mut lines = Vec::new();
        {
            let s = &mut self.states[i];
            let stream = if stderr { &mut s.err } else { &mut s.out };
            if let Some(stream) = stream {
                stream.lines.feed(data, |l| lines.push(l.to_vec()));
            }
        }
        for line in lines {
            self.one_line(i, &line);
        }
    }

    fn one_line(&mut self, i: usize, line: &[u8]) {
        let s = &mut self.states[i];
        self.output.line(&s.unit.name, i, line);
        if let Some(f) = &mut s.log_file {
            let _ = f.line(line);
        }
        if !s.ready
            && s.phase == Phase::Running
            && s.regex.as_ref().is_some_and(|r| r.is_match(&String::from_utf8_lossy(line)))
        {
            self.mark_ready(i);
        }
    }

    fn close_stream(&mut self, i: usize, stderr: bool) {
        let taken = if stderr { self.states[i].err.take() } else { self.states[i].out.take() };
        if let Some(mut stream) = taken {
            let _ = self.epoll.delete(stream.fd.as_fd());
            let mut last = None;
            stream.lines.finish(|l| last = Some(l.to_vec()));
            if let Some(l) = last {
                self.one_line(i, &l);
            }
        }
    }
}

/// `line` (the unit's command or one of its checks) in the unit's directory and environment.
fn command_for(line: &CommandLine, unit: &Unit) -> Program {
    let mut program = match line {
        CommandLine::Argv(argv) => Program::new(argv),
        CommandLine::Shell(s) => Program::new(["/bin/sh", "-c", s.as_str()]),
    };
    program.cwd = Some(unit.cwd.clone());
    program.env = unit.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
    program
}

fn condition_name(c: Condition) -> &'static str {
    match c {
        Condition::Started => "started",
        Condition::Ready => "ready",
        Condition::CompletedSuccessfully => "completed successfully",
    }
}

/// `/dev/null`, open for reading or for writing.
fn dev_null(write: bool) -> Result<OwnedFd, String> {
    std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| format!("opening /dev/null: {e}"))
}

fn program_name(line: &CommandLine) -> String {
    match line {
        CommandLine::Argv(a) => a.first().cloned().unwrap_or_default(),
        CommandLine::Shell(_) => "/bin/sh".into(),
    }
}

/// Resolves a user and group (names or numbers) to IDs and the user's supplementary groups.
fn credentials(user: Option<&str>, group: Option<&str>) -> Result<Credentials, String> {
    let (uid, user_gid, name) = match user {
        None => {
            // SAFETY: getuid and getgid have no preconditions.
            unsafe { (libc::getuid(), libc::getgid(), None) }
        }
        Some(u) => match lookup_user(u) {
            Some((uid, gid, name)) => (uid, gid, Some(name)),
            None => return Err(format!("user '{u}' does not exist")),
        },
    };
    let gid = match group {
        None => user_gid,
        Some(g) => lookup_group(g).ok_or_else(|| format!("group '{g}' does not exist"))?,
    };
    let groups = match &name {
        Some(n) => crate::spawn::groups_of(n, gid).map_err(|e| e.to_string())?,
        None => vec![gid],
    };
    Ok(Credentials { uid, gid, groups })
}

fn lookup_user(user: &str) -> Option<(u32, u32, String)> {
    let c = CString::new(user).ok()?;
    let mut pwd = std::mem::MaybeUninit::<libc::passwd>::zeroed();
    let mut buf = vec![0u8; 16 * 1024];
    let mut result = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the buffer outlives the result's use.
    let rc = unsafe { libc::getpwnam_r(c.as_ptr(), pwd.as_mut_ptr(), buf.as_mut_ptr().cast(), buf.len(), &mut result) };
    if rc == 0 && !result.is_null() {
        // SAFETY: getpwnam_r filled `pwd` (result points to it).
        let pwd = unsafe { pwd.assume_init() };
        // SAFETY: pw_name points into `buf`, NUL-terminated.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned();
        return Some((pwd.pw_uid, pwd.pw_gid, name));
    }
    let uid: u32 = user.parse().ok()?;
    Some((uid, uid, user.to_string()))
}

fn lookup_group(group: &str) -> Option<u32> {
    let c = CString::new(group).ok()?;
    let mut grp = std::mem::MaybeUninit::<libc::group>::zeroed();
    let mut buf = vec![0u8; 16 * 1024];
    let mut result = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call.
    let rc = unsafe { libc::getgrnam_r(c.as_ptr(), grp.as_mut_ptr(), buf.as_mut_ptr().cast(), buf.len(), &mut result) };
    if rc == 0 && !result.is_null() {
        // SAFETY: getgrnam_r filled `grp`.
        return Some(unsafe { grp.assume_init() }.gr_gid);
    }
    group.parse().ok()
}
