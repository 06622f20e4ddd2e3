//! The supervisor's decisions, as a pure state machine: events in, actions out.
//!
//! Why this module exists: everything `forkyard up` decides (when a service may start, when it
//! is restarted and after how long, when it has failed, in which order services stop, which
//! exit code ends it all, what a second Ctrl-C means) is decided here and nowhere else, with
//! no system call, no clock and no recursion. [`Machine::handle`] takes one [`Event`] (a death,
//! a probe's result, a timer, a signal) and the time, and appends [`Action`]s (spawn, signal a
//! tree, arm a timer, report, exit) for the driver to carry out. Whatever an action causes
//! comes back later as another event, so a crash loop is a sequence of turns of the driver's
//! loop, never a stack that grows. The tests drive it with made-up events, in milliseconds.
//!
//! Units are kept by a stable [`UnitId`], not by position, and every process a unit runs is a
//! numbered *run*: events and timers name the run they belong to, and those of an earlier run
//! are recognised as stale and ignored.
//!
//! Work that follows from a change (start what became startable, block what can no longer
//! start, stop what has no live dependents left) goes through a work list, and counters are
//! kept per unit (unmet dependencies, live dependents), so that each event costs time in
//! proportion to the units it concerns, not to the size of the configuration.

mod control;
#[cfg(test)]
mod tests;

pub use control::{Change, Reconciled, Request, State, View};

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use forkyard::{ExitStatus, Pid, Signal};

use crate::config::{Check, Condition, Plan, Probe, Unit};
use crate::notice::{BlockedBecause, Notice, ProbeFailure};
use crate::policy::{self, Decision, History, Ran};

/// A unit's stable name inside the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitId(u32);

impl UnitId {
    /// The index of the unit in the plan it came from (also its colour in the output).
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The id of the unit at `index` in the plan.
    pub fn from_index(index: usize) -> UnitId {
        UnitId(id_of(index))
    }
}

/// Which of a unit's checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckKind {
    /// The readiness check: until it passes once per run.
    Ready,
    /// The liveness check: periodic, for the whole run.
    Live,
}

impl CheckKind {
    fn slot(self) -> usize {
        match self {
            CheckKind::Ready => 0,
            CheckKind::Live => 1,
        }
    }
}

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// The end of a restart delay.
    Restart,
    /// The end of `stop_timeout`.
    StopTimeout,
    /// Time for the next attempt of a check.
    Check(CheckKind),
    /// The end of one attempt's `timeout` (the attempt's number).
    CheckTimeout(CheckKind, u64),
    /// The end of the readiness `deadline`.
    ReadyDeadline,
}

/// A timer, for one run of one unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    /// The unit.
    pub unit: UnitId,
    /// The run it was armed for.
    pub run: u64,
    /// What for.
    pub kind: TimerKind,
}

/// What happened, as the driver tells the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Supervision begins: start what can start.
    Boot,
    /// The process of a [`Action::Spawn`] is running.
    Spawned {
        /// The unit.
        unit: UnitId,
        /// The run.
        run: u64,
        /// Its main process.
        pid: Pid,
    },
    /// The process of a [`Action::Spawn`] could not be started.
    SpawnFailed {
        /// The unit.
        unit: UnitId,
        /// The run.
        run: u64,
        /// Why, in words.
        error: String,
        /// The exit code that stands for it (127: no such program, 126: not executable, 1:
        /// anything else), as a shell would report it.
        code: u8,
    },
    /// A unit's main process ended (and was collected).
    Exited {
        /// The unit.
        unit: UnitId,
        /// The run.
        run: u64,
        /// How.
        status: ExitStatus,
    },
    /// An attempt of a check came back.
    Probed {
        /// The unit.
        unit: UnitId,
        /// The run.
        run: u64,
        /// Which check.
        kind: CheckKind,
        /// The attempt's number, from [`Action::StartProbe`].
        attempt: u64,
        /// Passed, or why not.
        result: Result<(), ProbeFailure>,
    },
    /// The service said it is ready (`READY=1` on its notify socket, or a line of its output
    /// matched its `log` check).
    ReadySignal {
        /// The unit.
        unit: UnitId,
        /// The run.
        run: u64,
    },
    /// A timer fired.
    Timer(Timer),
    /// A signal reached the supervisor (SIGCHLD is the driver's business, not this).
    Signal(Signal),
    /// The driver cannot go on (its event wait failed): kill everything and exit.
    Fatal(String),
}

/// What the driver is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a new run of the unit's command; answer with [`Event::Spawned`] or
    /// [`Event::SpawnFailed`].
    Spawn {
        /// The unit.
        unit: UnitId,
        /// The new run's number.
        run: u64,
    },
    /// Send `signal` once to every process of the run's tree.
    Signal {
        /// The unit.
        unit: UnitId,
        /// The run.
        run: u64,
        /// The signal.
        signal: Signal,
    },
    /// SIGKILL to every process of the run's tree (what is left after the main process, too).
    KillTree {
        /// The unit.
        unit: UnitId,
        /// The run.
        run: u64,
    },
    /// Start an attempt of a check; answer with [`Event::Probed`] with the same attempt.
    StartProbe {
        /// The unit.
        unit: UnitId,
        /// The run.
        run: u64,
        /// Which check.
        kind: CheckKind,
        /// The attempt's number.
        attempt: u64,
    },
    /// Abandon an attempt (its time is up, or its run ended): kill a command check's whole
    /// process group. Its result, if it still comes, is ignored.
    CancelProbe {
        /// The unit.
        unit: UnitId,
        /// The run.
        run: u64,
        /// Which check.
        kind: CheckKind,
        /// The attempt's number.
        attempt: u64,
    },
    /// Fire [`Event::Timer`] with `timer` at `at` (or as soon as possible after).
    Arm {
        /// When.
        at: Instant,
        /// What.
        timer: Timer,
    },
    /// Tell the user.
    Notice(Notice),
    /// Open every log file again (SIGUSR1).
    ReopenLogs,
    /// Read the configuration again and apply it with [`Machine::reconcile`] (SIGHUP).
    Reload,
    /// Everything has ended: clean up and exit with `code`.
    Exit {
        /// The exit code.
        code: i32,
    },
}

/// How the machine runs, besides the plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// End when any unit ends, as if every unit were `critical`.
    pub exit_on_first: bool,
}

/// Where a unit is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for its dependencies.
    Waiting,
    /// Its process is being started.
    Starting,
    /// Its process runs.
    Running,
    /// Waiting to be started again.
    Backoff,
    /// Asked to stop; SIGKILL at the deadline.
    Stopping,
    /// Down for good: completed, not to be restarted, or stopped.
    Done,
    /// Down for good: its restart budget is spent, or it was not ready in time.
    Failed,
    /// Never to start: a dependency cannot reach its condition.
    Blocked,
    /// Stopped on request (`forkyard ctl stop`): stays down, whatever its restart policy,
    /// until started again; `up` does not end because of it.
    Held,
    /// Taken out of the configuration (a reload, a scale down): forgotten.
    Removed,
}

impl Phase {
    /// Whether the unit still has something to do (the machine exits when no unit has).
    fn active(self) -> bool {
        matches!(
            self,
            Phase::Waiting | Phase::Starting | Phase::Running | Phase::Backoff | Phase::Stopping | Phase::Held
        )
    }

    /// Whether a process of the unit is (or is about to be) running.
    fn live(self) -> bool {
        matches!(self, Phase::Starting | Phase::Running | Phase::Stopping)
    }
}

/// What follows when a stopped run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterStop {
    /// It stays down (a shutdown).
    Down,
    /// It is started again under its restart policy (liveness).
    Restart,
    /// It is marked failed (not ready in time).
    Fail,
    /// It stays down until started again (a stop request).
    Hold,
    /// It is started again at once, budget reset (a restart request, a changed
    /// configuration).
    Start,
    /// It is forgotten (removed from the configuration).
    Remove,
}

struct UnitState {
    unit: Unit,
    /// What it depends on, and on what condition.
    deps: Vec<(UnitId, Condition)>,
    /// Who depends on it, and on what condition.
    dependents: Vec<(UnitId, Condition)>,
    /// Dependencies whose condition has not been met yet.
    unmet: usize,
    /// Dependents whose process is (or is about to be) running.
    live_dependents: usize,
    phase: Phase,
    run: u64,
    pid: Option<Pid>,
    started_at: Option<Instant>,
    ever_started: bool,
    /// Ready in this run.
    ready: bool,
    /// Ready in some run (what `depends_on = { x = "ready" }` waits for).
    was_ready: bool,
    completed: Option<bool>,
    last_status: Option<ExitStatus>,
    history: History,
    /// The attempt in flight per check kind.
    probes: [Option<u64>; 2],
    attempts: u64,
    live_failures: u32,
    /// The last readiness failure of this run (a new one is reported when it differs).
    ready_failure: Option<ProbeFailure>,
    after_stop: AfterStop,
    /// A stop requested while the process was being started: applied once it runs.
    pending: Option<AfterStop>,
    /// The run of its first start in this slot (slots of removed units are reused, and run
    /// numbers never go back, so stale events stay recognisable).
    first_run: u64,
    /// Being removed: no longer found by name.
    removing: bool,
}

impl UnitState {
    /// A unit not yet linked to its dependencies, waiting, whose next run is `run + 1`.
    fn new(unit: Unit, run: u64) -> UnitState {
        UnitState {
            unit,
            deps: Vec::new(),
            dependents: Vec::new(),
            unmet: 0,
            live_dependents: 0,
            phase: Phase::Waiting,
            run,
            pid: None,
            started_at: None,
            ever_started: false,
            ready: false,
            was_ready: false,
            completed: None,
            last_status: None,
            history: History::default(),
            probes: [None, None],
            attempts: 0,
            live_failures: 0,
            ready_failure: None,
            after_stop: AfterStop::Down,
            pending: None,
            first_run: run,
            removing: false,
        }
    }

    fn met(&self, condition: Condition) -> bool {
        match condition {
            Condition::Started => self.ever_started,
            Condition::Ready => self.was_ready,
            Condition::CompletedSuccessfully => self.completed == Some(true),
        }
    }
}

/// Follow-up work, done in order after each event (a list, not recursion).
#[derive(Clone, Copy, Debug)]
enum Work {
    /// Start it if it is waiting and nothing is unmet.
    Start(UnitId),
    /// It will never start: a dependency cannot meet its condition.
    Block(UnitId, UnitId, Condition, BlockedBecause),
    /// In a shutdown: stop it if nothing live depends on it.
    MaybeStop(UnitId),
}

#[derive(Clone, Copy, Debug)]
struct Shutdown {
    code: i32,
    forced: bool,
}

/// The supervisor's state and rules. See the module documentation.
pub struct Machine {
    units: Vec<UnitState>,
    settings: Settings,
    /// Units still active (the machine exits at zero).
    active: usize,
    shutdown: Option<Shutdown>,
    /// When the first SIGINT came (a later one, at least [`FORCE_AFTER`] on, forces).
    first_interrupt: Option<Instant>,
    exited: bool,
    work: VecDeque<Work>,
    /// Present units by name (not removed, not being removed).
    names: HashMap<String, UnitId>,
    /// Slots of removed units, for reuse.
    free: Vec<UnitId>,
    /// State changes since the driver last took them.
    changes: Vec<Change>,
    /// Something the control plane shows changed since the driver last asked (a state, a
    /// readiness failure).
    touched: bool,
}

/// A second SIGINT kills everything at once only if it comes at least this long after the
/// first. GNU `timeout -s INT`, npm and yarn deliver one SIGINT to the process and one to its
/// group within microseconds: that is one request, not two.
pub const FORCE_AFTER: Duration = Duration::from_secs(1);

impl Machine {
    /// A machine for `plan`, its units in the plan's (start) order, all waiting. Send it
    /// [`Event::Boot`] to begin.
    pub fn new(plan: &Plan, settings: Settings) -> Machine {
        let mut m = Machine {
            units: Vec::with_capacity(plan.units.len()),
            settings,
            active: 0,
            shutdown: None,
            first_interrupt: None,
            exited: false,
            work: VecDeque::new(),
            names: HashMap::new(),
            free: Vec::new(),
            changes: Vec::new(),
            touched: true,
        };
        for unit in &plan.units {
            let id = UnitId(id_of(m.units.len()));
            m.units.push(UnitState::new(unit.clone(), 0));
            m.active += 1;
            m.names.insert(unit.name.clone(), id);
        }
        for i in 0..m.units.len() {
            m.link(UnitId(id_of(i)));
        }
        m
    }

    /// The units present (not removed), in start order (units added at run time last).
    pub fn ids(&self) -> impl Iterator<Item = UnitId> + '_ {
        (0..self.units.len()).filter(|&i| self.units[i].phase != Phase::Removed).map(|i| UnitId(id_of(i)))
    }

    /// How many unit slots there are (removed ones included): every [`UnitId`] given out is
    /// below this.
    pub fn slots(&self) -> usize {
        self.units.len()
    }

    /// The configuration of a unit.
    pub fn unit(&self, id: UnitId) -> &Unit {
        &self.units[id.index()].unit
    }

    /// Where a unit is in its life.
    pub fn phase(&self, id: UnitId) -> Phase {
        self.units[id.index()].phase
    }

    /// The main process of a unit's current run, while it runs.
    pub fn pid(&self, id: UnitId) -> Option<Pid> {
        self.units[id.index()].pid
    }

    /// Whether a line of the unit's output may make it ready now (its check is `log`, its
    /// process runs and is not ready yet): the driver matches lines only then.
    pub fn wants_log_ready(&self, id: UnitId) -> bool {
        let s = &self.units[id.index()];
        s.phase == Phase::Running && !s.ready && matches!(s.unit.ready.as_ref().map(|c| &c.probe), Some(Probe::Log(_)))
    }

    /// Whether the machine has asked to exit.
    pub fn has_exited(&self) -> bool {
        self.exited
    }

    /// Takes one event at time `now`; appends what to do to `out`.
    pub fn handle(&mut self, event: Event, now: Instant, out: &mut Vec<Action>) {
        if self.exited {
            return;
        }
        match event {
            Event::Boot => {
                for i in 0..self.units.len() {
                    let id = UnitId(id_of(i));
                    if self.units[i].unmet == 0 {
                        self.work.push_back(Work::Start(id));
                    } else {
                        let on = self.units[i]
                            .deps
                            .iter()
                            .map(|(d, c)| (self.units[d.index()].unit.name.clone(), *c))
                            .collect();
                        out.push(Action::Notice(Notice::Waiting { unit: self.units[i].unit.name.clone(), on }));
                    }
                }
            }
            Event::Spawned { unit, run, pid } => self.spawned(unit, run, pid, now, out),
            Event::SpawnFailed { unit, run, error, code } => {
                let s = &self.units[unit.index()];
                if s.run == run && s.phase == Phase::Starting {
                    out.push(Action::Notice(Notice::CannotStart { unit: s.unit.name.clone(), error }));
                    self.ended(unit, ExitStatus::Exited(code), Ran::NotStarted, now, out);
                }
            }
            Event::Exited { unit, run, status } => {
                let s = &self.units[unit.index()];
                if s.run == run && s.pid.is_some() {
                    let ran = Ran::For(s.started_at.map_or(Duration::ZERO, |t| now.saturating_duration_since(t)));
                    self.ended(unit, status, ran, now, out);
                }
            }
            Event::Probed { unit, run, kind, attempt, result } => {
                let s = &mut self.units[unit.index()];
                if s.run == run && s.probes[kind.slot()] == Some(attempt) {
                    s.probes[kind.slot()] = None;
                    self.probed(unit, kind, result, now, out);
                }
            }
            Event::ReadySignal { unit, run } => {
                let s = &self.units[unit.index()];
                if s.run == run && s.phase == Phase::Running {
                    self.mark_ready(unit, out);
                }
            }
            Event::Timer(timer) => self.timer(timer, now, out),
            Event::Signal(signal) => self.signal(signal, now, out),
            Event::Fatal(error) => {
                out.push(Action::Notice(Notice::Fatal { error }));
                self.begin_shutdown(1, now, out);
                self.force(out);
            }
        }
        self.do_work(now, out);
        self.check_finished(out);
    }

    // --- phases and the counters that follow them ---------------------------------------

    /// Moves a unit to `phase`, keeping the counters right and queueing what follows.
    fn set_phase(&mut self, id: UnitId, phase: Phase) {
        let old = self.units[id.index()].phase;
        if old == phase {
            return;
        }
        self.units[id.index()].phase = phase;
        self.record(id, old.live() && !phase.live());
        match (old.active(), phase.active()) {
            (true, false) => self.active -= 1,
            (false, true) => self.active += 1,
            _ => {}
        }
        if old.live() != phase.live() {
            for k in 0..self.units[id.index()].deps.len() {
                let dep = self.units[id.index()].deps[k].0;
                let d = &mut self.units[dep.index()];
                if phase.live() {
                    d.live_dependents += 1;
                } else {
                    d.live_dependents -= 1;
                    if d.live_dependents == 0 && self.shutdown.is_some() {
                        self.work.push_back(Work::MaybeStop(dep));
                    }
                }
            }
        }
        if !phase.active() {
            // Dependents still waiting for a condition this unit has not met never will.
            let because = match phase {
                Phase::Failed => BlockedBecause::Failed,
                Phase::Blocked => BlockedBecause::Blocked,
                _ => BlockedBecause::EndedWithout,
            };
            for k in 0..self.units[id.index()].dependents.len() {
                let (dependent, condition) = self.units[id.index()].dependents[k];
                if !self.units[id.index()].met(condition) && self.units[dependent.index()].phase == Phase::Waiting {
                    self.work.push_back(Work::Block(dependent, id, condition, because));
                }
            }
        }
    }

    /// Records that `id` has now met `condition` (for the first time): dependents waiting on
    /// it have one thing fewer to wait for.
    fn condition_met(&mut self, id: UnitId, condition: Condition) {
        for k in 0..self.units[id.index()].dependents.len() {
            let (dependent, c) = self.units[id.index()].dependents[k];
            if c == condition {
                let d = &mut self.units[dependent.index()];
                d.unmet -= 1;
                if d.unmet == 0 {
                    self.work.push_back(Work::Start(dependent));
                }
            }
        }
    }

    fn do_work(&mut self, now: Instant, out: &mut Vec<Action>) {
        while let Some(work) = self.work.pop_front() {
            match work {
                Work::Start(id) => {
                    let s = &self.units[id.index()];
                    if s.phase == Phase::Waiting && s.unmet == 0 && self.shutdown.is_none() {
                        self.start(id, out);
                    }
                }
                Work::Block(id, dep, condition, because) => {
                    if self.units[id.index()].phase == Phase::Waiting && self.shutdown.is_none() {
                        out.push(Action::Notice(Notice::Blocked {
                            unit: self.units[id.index()].unit.name.clone(),
                            dependency: self.units[dep.index()].unit.name.clone(),
                            condition,
                            because,
                        }));
                        self.set_phase(id, Phase::Blocked);
                    }
                }
                Work::MaybeStop(id) => {
                    let s = &self.units[id.index()];
                    let forced = self.shutdown.is_some_and(|s| s.forced);
                    if s.phase == Phase::Running && (s.live_dependents == 0 || forced) {
                        self.stop(id, AfterStop::Down, now, out);
                    }
                }
            }
        }
    }

    fn check_finished(&mut self, out: &mut Vec<Action>) {
        if self.active > 0 || self.exited {
            return;
        }
        self.exited = true;
        let code = match self.shutdown {
            Some(s) => s.code,
            // Everything ended by itself: the first failure's status (in start order), else 0.
            None => self
                .units
                .iter()
                .find(|s| match s.phase {
                    Phase::Failed | Phase::Blocked => true,
                    Phase::Done => s.completed == Some(false),
                    _ => false,
                })
                .map_or(0, |s| match (s.phase, s.last_status) {
                    (Phase::Blocked, _) | (_, None) => 1,
                    // A failure never exits 0, even when its last exit was a success (a
                    // budget spent on `restart = "always"`, a readiness deadline whose stop
                    // the service obeyed with status 0).
                    (_, Some(status)) => match status.shell_code() {
                        0 => 1,
                        code => code,
                    },
                }),
        };
        out.push(Action::Notice(Notice::Exiting { code }));
        out.push(Action::Exit { code });
    }

    // --- starting -------------------------------------------------------------------------

    fn start(&mut self, id: UnitId, out: &mut Vec<Action>) {
        let s = &mut self.units[id.index()];
        s.run += 1;
        let run = s.run;
        self.set_phase(id, Phase::Starting);
        out.push(Action::Spawn { unit: id, run });
    }

    fn spawned(&mut self, id: UnitId, run: u64, pid: Pid, now: Instant, out: &mut Vec<Action>) {
        let s = &mut self.units[id.index()];
        if s.run != run || s.phase != Phase::Starting {
            return;
        }
        s.pid = Some(pid);
        s.started_at = Some(now);
        s.ready = false;
        s.ready_failure = None;
        s.live_failures = 0;
        s.probes = [None, None];
        let first_start = !s.ever_started;
        s.ever_started = true;
        let name = s.unit.name.clone();
        let ready = s.unit.ready.clone();
        let liveness = s.unit.liveness.as_ref().map(|c| c.initial_delay + c.interval);
        self.set_phase(id, Phase::Running);
        out.push(Action::Notice(Notice::Started { unit: name, pid }));
        if first_start {
            self.condition_met(id, Condition::Started);
        }
        match ready {
            None => self.mark_ready(id, out),
            Some(check) => {
                if matches!(check.probe, Probe::Exec(_) | Probe::Tcp(_) | Probe::Http(_)) {
                    let timer = Timer { unit: id, run, kind: TimerKind::Check(CheckKind::Ready) };
                    out.push(Action::Arm { at: now + check.initial_delay, timer });
                }
                if let Some(deadline) = check.deadline {
                    out.push(Action::Arm {
                        at: now + deadline,
                        timer: Timer { unit: id, run, kind: TimerKind::ReadyDeadline },
                    });
                }
            }
        }
        if let Some(first) = liveness {
            out.push(Action::Arm {
                at: now + first,
                timer: Timer { unit: id, run, kind: TimerKind::Check(CheckKind::Live) },
            });
        }
        if let Some(after) = self.units[id.index()].pending.take() {
            // Asked to stop (or restart) while it was being started.
            self.stop(id, after, now, out);
            return;
        }
        if let Some(shutdown) = self.shutdown {
            // Started while everything stops (the spawn was already on its way).
            if shutdown.forced {
                self.set_phase(id, Phase::Stopping);
                out.push(Action::KillTree { unit: id, run });
            } else {
                self.work.push_back(Work::MaybeStop(id));
            }
        }
    }

    fn mark_ready(&mut self, id: UnitId, out: &mut Vec<Action>) {
        let s = &mut self.units[id.index()];
        if s.ready {
            return;
        }
        s.ready = true;
        let first = !s.was_ready;
        s.was_ready = true;
        if s.unit.ready.is_some() {
            // Running becomes ready (without a check, the state stays `running`).
            self.record(id, false);
        }
        self.touched = true;
        let s = &mut self.units[id.index()];
        if s.unit.ready.is_some() {
            out.push(Action::Notice(Notice::Ready { unit: s.unit.name.clone() }));
        }
        if first {
            self.condition_met(id, Condition::Ready);
        }
    }

    // --- ends -----------------------------------------------------------------------------

    /// A run ended (its process exited, or could not be started).
    fn ended(&mut self, id: UnitId, status: ExitStatus, ran: Ran, now: Instant, out: &mut Vec<Action>) {
        let s = &mut self.units[id.index()];
        let run = s.run;
        if let Some(after) = s.pending.take() {
            // It ended before it ran (or before the stop could be sent): as if stopped.
            s.after_stop = after;
            s.phase = Phase::Stopping;
        }
        let was_stopping = s.phase == Phase::Stopping;
        s.pid = None;
        s.last_status = Some(status);
        s.ready = false;
        for kind in [CheckKind::Ready, CheckKind::Live] {
            if let Some(attempt) = s.probes[kind.slot()].take() {
                out.push(Action::CancelProbe { unit: id, run, kind, attempt });
            }
        }
        let name = s.unit.name.clone();
        if ran != Ran::NotStarted {
            // Whatever the service left behind in its tree goes with it.
            out.push(Action::KillTree { unit: id, run });
        }
        if was_stopping {
            out.push(Action::Notice(Notice::Stopped { unit: name, status }));
            let after = std::mem::replace(&mut s.after_stop, AfterStop::Down);
            match after {
                AfterStop::Restart if self.shutdown.is_none() => {
                    let decision = policy::decide_restart(&s.unit, &mut s.history, ran, now);
                    self.apply(id, decision, now, out);
                }
                AfterStop::Fail => self.set_phase(id, Phase::Failed),
                AfterStop::Remove => self.tombstone(id),
                AfterStop::Hold if self.shutdown.is_none() => self.set_phase(id, Phase::Held),
                AfterStop::Start if self.shutdown.is_none() => {
                    s.history = History::default();
                    self.set_phase(id, Phase::Backoff);
                    self.start(id, out);
                }
                _ => self.set_phase(id, Phase::Done),
            }
            return;
        }
        if ran != Ran::NotStarted {
            out.push(Action::Notice(Notice::Exited { unit: name.clone(), status }));
        }
        if self.shutdown.is_some() {
            self.set_phase(id, Phase::Done);
            return;
        }
        let s = &mut self.units[id.index()];
        let success = policy::is_success(&s.unit, status);
        let ends_all = s.unit.critical || self.settings.exit_on_first;
        // A oneshot that completes has done its job; that ends nothing.
        if ends_all && !(s.unit.oneshot && success) {
            s.completed = Some(success);
            self.set_phase(id, Phase::Done);
            out.push(Action::Notice(Notice::EndsAll { unit: name }));
            self.begin_shutdown(status.shell_code(), now, out);
            return;
        }
        let decision = policy::after_exit(&s.unit, status, ran, &mut s.history, now);
        self.apply(id, decision, now, out);
    }

    fn apply(&mut self, id: UnitId, decision: Decision, now: Instant, out: &mut Vec<Action>) {
        let s = &mut self.units[id.index()];
        let name = s.unit.name.clone();
        match decision {
            Decision::Restart(delay) if delay.is_zero() => {
                out.push(Action::Notice(Notice::Restarting { unit: name, delay }));
                // At once: a spawn is an action, and its outcome comes back as an event, so
                // even a process that dies at birth makes one restart per turn of the
                // driver's loop (its death is news from the kernel), never a loop in here.
                self.set_phase(id, Phase::Backoff);
                self.start(id, out);
            }
            Decision::Restart(delay) => {
                out.push(Action::Notice(Notice::Restarting { unit: name, delay }));
                let timer = Timer { unit: id, run: s.run, kind: TimerKind::Restart };
                out.push(Action::Arm { at: now + delay, timer });
                self.set_phase(id, Phase::Backoff);
            }
            Decision::Done { success } => {
                s.completed = Some(success);
                if s.unit.oneshot && success {
                    out.push(Action::Notice(Notice::Completed { unit: name }));
                } else if !success {
                    out.push(Action::Notice(Notice::NotRestarted { unit: name, restart: s.unit.restart }));
                }
                if success {
                    self.condition_met(id, Condition::CompletedSuccessfully);
                }
                self.set_phase(id, Phase::Done);
            }
            Decision::GiveUp { restarts, window, max } => {
                out.push(Action::Notice(Notice::GaveUp { unit: name, restarts, window, max }));
                self.set_phase(id, Phase::Failed);
            }
        }
    }

    // --- checks -----------------------------------------------------------------------------

    fn check_of(&self, id: UnitId, kind: CheckKind) -> Option<&Check> {
        let unit = &self.units[id.index()].unit;
        match kind {
            CheckKind::Ready => unit.ready.as_ref(),
            CheckKind::Live => unit.liveness.as_ref(),
        }
    }

    fn timer(&mut self, timer: Timer, now: Instant, out: &mut Vec<Action>) {
        let id = timer.unit;
        let Some(s) = self.units.get(id.index()) else { return };
        if s.run != timer.run {
            return;
        }
        match timer.kind {
            TimerKind::Restart => {
                if s.phase == Phase::Backoff && self.shutdown.is_none() {
                    self.start(id, out);
                }
            }
            TimerKind::StopTimeout => {
                if s.phase == Phase::Stopping {
                    let timeout = s.unit.stop_timeout;
                    out.push(Action::Notice(Notice::StopTimeout { unit: s.unit.name.clone(), timeout }));
                    out.push(Action::KillTree { unit: id, run: timer.run });
                }
            }
            TimerKind::Check(kind) => {
                let wanted = s.phase == Phase::Running
                    && s.probes[kind.slot()].is_none()
                    && !(kind == CheckKind::Ready && s.ready);
                let Some(timeout) = self.check_of(id, kind).map(|c| c.timeout) else { return };
                if wanted {
                    let s = &mut self.units[id.index()];
                    s.attempts += 1;
                    let attempt = s.attempts;
                    s.probes[kind.slot()] = Some(attempt);
                    out.push(Action::StartProbe { unit: id, run: timer.run, kind, attempt });
                    let timer = Timer { unit: id, run: timer.run, kind: TimerKind::CheckTimeout(kind, attempt) };
                    out.push(Action::Arm { at: now + timeout, timer });
                }
            }
            TimerKind::CheckTimeout(kind, attempt) => {
                if s.probes[kind.slot()] == Some(attempt) {
                    let timeout = self.check_of(id, kind).map_or(Duration::ZERO, |c| c.timeout);
                    self.units[id.index()].probes[kind.slot()] = None;
                    out.push(Action::CancelProbe { unit: id, run: timer.run, kind, attempt });
                    self.probed(id, kind, Err(ProbeFailure::TimedOut(timeout)), now, out);
                }
            }
            TimerKind::ReadyDeadline => {
                if s.phase == Phase::Running && !s.ready {
                    let deadline = s.unit.ready.as_ref().and_then(|c| c.deadline).unwrap_or_default();
                    let notice =
                        Notice::ReadyDeadline { unit: s.unit.name.clone(), deadline, last: s.ready_failure.clone() };
                    out.push(Action::Notice(notice));
                    self.stop(id, AfterStop::Fail, now, out);
                }
            }
        }
    }

    fn probed(
        &mut self,
        id: UnitId,
        kind: CheckKind,
        result: Result<(), ProbeFailure>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let s = &mut self.units[id.index()];
        if s.phase != Phase::Running {
            return;
        }
        let Some(check) = (match kind {
            CheckKind::Ready => s.unit.ready.as_ref(),
            CheckKind::Live => s.unit.liveness.as_ref(),
        }) else {
            return;
        };
        let (interval, threshold) = (check.interval, check.failure_threshold);
        let next = Timer { unit: id, run: s.run, kind: TimerKind::Check(kind) };
        match (kind, result) {
            (CheckKind::Ready, Ok(())) => self.mark_ready(id, out),
            (CheckKind::Ready, Err(reason)) => {
                if s.ready_failure.as_ref() != Some(&reason) {
                    out.push(Action::Notice(Notice::NotReady { unit: s.unit.name.clone(), reason: reason.clone() }));
                    s.ready_failure = Some(reason);
                    self.touched = true;
                }
                out.push(Action::Arm { at: now + interval, timer: next });
            }
            (CheckKind::Live, Ok(())) => {
                s.live_failures = 0;
                out.push(Action::Arm { at: now + interval, timer: next });
            }
            (CheckKind::Live, Err(reason)) => {
                s.live_failures += 1;
                let count = s.live_failures;
                let name = s.unit.name.clone();
                out.push(Action::Notice(Notice::LivenessFailed { unit: name.clone(), count, threshold, reason }));
                if count >= threshold {
                    out.push(Action::Notice(Notice::LivenessRestart { unit: name, count }));
                    self.stop(id, AfterStop::Restart, now, out);
                } else {
                    out.push(Action::Arm { at: now + interval, timer: next });
                }
            }
        }
    }

    // --- stopping ----------------------------------------------------------------------------

    fn stop(&mut self, id: UnitId, after: AfterStop, now: Instant, out: &mut Vec<Action>) {
        let s = &mut self.units[id.index()];
        if s.phase != Phase::Running {
            return;
        }
        s.after_stop = after;
        let (signal, timeout, run) = (s.unit.stop_signal, s.unit.stop_timeout, s.run);
        out.push(Action::Notice(Notice::Stopping { unit: s.unit.name.clone(), signal, timeout }));
        self.set_phase(id, Phase::Stopping);
        out.push(Action::Signal { unit: id, run, signal });
        out.push(Action::Arm { at: now + timeout, timer: Timer { unit: id, run, kind: TimerKind::StopTimeout } });
    }

    fn signal(&mut self, signal: Signal, now: Instant, out: &mut Vec<Action>) {
        match signal {
            s if s == Signal::INT || s == Signal::TERM || s == Signal::QUIT => {
                if s == Signal::INT {
                    match self.first_interrupt {
                        Some(first) if now.saturating_duration_since(first) >= FORCE_AFTER => {
                            if !self.shutdown.is_some_and(|s| s.forced) {
                                out.push(Action::Notice(Notice::ForceRequested { signal: s }));
                                self.begin_shutdown(128 + s.as_raw(), now, out);
                                self.force(out);
                            }
                            return;
                        }
                        // The same request delivered twice (to the process and its group).
                        Some(_) => return,
                        None => self.first_interrupt = Some(now),
                    }
                }
                if self.shutdown.is_none() {
                    out.push(Action::Notice(Notice::ShutdownRequested { signal: s, can_force: s == Signal::INT }));
                    self.begin_shutdown(128 + s.as_raw(), now, out);
                } else if s == Signal::INT {
                    out.push(Action::Notice(Notice::ShutdownRequested { signal: s, can_force: true }));
                }
            }
            s if s == Signal::HUP => {
                if self.shutdown.is_none() {
                    out.push(Action::Notice(Notice::ReloadRequested));
                    out.push(Action::Reload);
                }
            }
            s if s == Signal::USR1 => {
                out.push(Action::Notice(Notice::ReopeningLogs));
                out.push(Action::ReopenLogs);
            }
            s if s == Signal::CHLD => {}
            s => out.push(Action::Notice(Notice::SignalIgnored { signal: s })),
        }
    }

    fn begin_shutdown(&mut self, code: i32, _now: Instant, _out: &mut Vec<Action>) {
        if self.shutdown.is_some() {
            return;
        }
        self.shutdown = Some(Shutdown { code, forced: false });
        // Dependents first: from the end of the start order.
        for i in (0..self.units.len()).rev() {
            let id = UnitId(id_of(i));
            match self.units[i].phase {
                Phase::Waiting | Phase::Backoff | Phase::Held => self.set_phase(id, Phase::Done),
                Phase::Running => self.work.push_back(Work::MaybeStop(id)),
                // Asked to stop while being started: in a shutdown, as everything else.
                Phase::Starting => self.units[i].pending = None,
                _ => {}
            }
        }
    }

    /// Kills every tree at once (a second interrupt, or a fatal error).
    fn force(&mut self, out: &mut Vec<Action>) {
        if let Some(s) = &mut self.shutdown {
            s.forced = true;
        }
        for i in 0..self.units.len() {
            let id = UnitId(id_of(i));
            let s = &self.units[i];
            if matches!(s.phase, Phase::Running | Phase::Stopping) {
                let run = s.run;
                self.set_phase(id, Phase::Stopping);
                out.push(Action::KillTree { unit: id, run });
            }
        }
    }
}

fn id_of(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}
