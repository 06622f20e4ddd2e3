//! What the control plane asks of the machine: start, stop and restart on request, units
//! added, changed and removed while everything runs (a reload, a scale), and the state of
//! each unit as the outside sees it.
//!
//! Why this module exists: `forkyard ctl` steers a running `up`. Every such request is a
//! decision like the others (a stopped service must stay down through its restart policy; a
//! restarted one starts with a fresh budget; a removed one is stopped, then forgotten), so it
//! is made here, purely, with the same counters and work list, and tested with doubles.
//!
//! Units keep their [`UnitId`] for life; a removed unit's slot is reused by the next unit
//! added, with its run numbers going on from where they were, so that an event or timer of
//! the old unit is still recognised as stale.

use std::time::Instant;

use forkyard::{ExitStatus, Pid};

use super::{Action, AfterStop, Machine, Phase, UnitId, UnitState, Work, id_of};
use crate::config::{Condition, Plan, Probe, Unit};
use crate::notice::{Notice, ProbeFailure};
use crate::policy::History;

/// A request from the control plane, for the units named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Start what is down (stopped, completed, failed, blocked, backing off).
    Start(Vec<UnitId>),
    /// Stop what runs, and keep it down until started.
    Stop(Vec<UnitId>),
    /// Stop what runs and start it again at once, with a fresh restart budget; start what is
    /// down.
    Restart(Vec<UnitId>),
}

/// A unit's state as the control plane names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting for its dependencies.
    Waiting,
    /// Being started.
    Starting,
    /// Running, and its readiness check has passed.
    Ready,
    /// Running (not ready yet, or without a readiness check).
    Running,
    /// Waiting to be started again.
    Backoff,
    /// Asked to stop.
    Stopping,
    /// Down: stopped on request, or in a shutdown.
    Stopped,
    /// Ran to completion with success.
    Completed,
    /// Down for good after a failure.
    Failed,
    /// Never to start: a dependency cannot reach its condition.
    Blocked,
}

impl State {
    /// The name used by the API and `forkyard ctl`.
    ///
    /// ```
    /// assert_eq!(forkyard_supervise::machine::State::Backoff.as_str(), "backoff");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Starting => "starting",
            State::Ready => "ready",
            State::Running => "running",
            State::Backoff => "backoff",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Completed => "completed",
            State::Failed => "failed",
            State::Blocked => "blocked",
        }
    }

    /// Whether it counts as ready for `/readyz` and for a wait after `start`: ready, running
    /// without a readiness check, or completed.
    pub fn is_up(self, has_ready_check: bool) -> bool {
        match self {
            State::Ready | State::Completed => true,
            State::Running => !has_ready_check,
            _ => false,
        }
    }
}

/// A unit as the control plane sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// Its state.
    pub state: State,
    /// Its main process, while it runs.
    pub pid: Option<Pid>,
    /// The current (or last) run.
    pub run: u64,
    /// Starts after the first one.
    pub restarts: u64,
    /// When the current run started, while it runs.
    pub started_at: Option<Instant>,
    /// How the last run ended.
    pub last_status: Option<ExitStatus>,
    /// Whether it has a readiness check, and so whether `ready` means anything.
    pub has_ready_check: bool,
    /// Ready in this run.
    pub ready: bool,
    /// Why the last readiness attempt of this run failed.
    pub ready_failure: Option<ProbeFailure>,
}

/// A change of state, for the event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The unit.
    pub unit: UnitId,
    /// Its state after the change.
    pub state: State,
    /// Its main process then.
    pub pid: Option<Pid>,
    /// Its run then.
    pub run: u64,
    /// How its run ended, when the change is an end.
    pub exit: Option<ExitStatus>,
}

/// What [`Machine::reconcile`] did, unit by unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// New units (started when their dependencies allow).
    pub added: Vec<UnitId>,
    /// Units whose settings changed (restarted with the new ones).
    pub changed: Vec<UnitId>,
    /// Units gone from the configuration (stopped, then removed).
    pub removed: Vec<UnitId>,
    /// Units left as they were.
    pub unchanged: Vec<UnitId>,
}

impl Machine {
    // --- looking ---------------------------------------------------------------------------

    /// The units `name` stands for: `all`, a unit (`web.2`), or every instance of a service
    /// (`web`). Empty when it names nothing.
    pub fn find(&self, name: &str) -> Vec<UnitId> {
        if name == "all" {
            return self.ids().filter(|id| !self.units[id.index()].removing).collect();
        }
        if let Some(id) = self.names.get(name) {
            return vec![*id];
        }
        self.ids()
            .filter(|id| !self.units[id.index()].removing && self.units[id.index()].unit.service == name)
            .collect()
    }

    /// The services there are, in start order.
    pub fn services(&self) -> Vec<String> {
        let mut seen = Vec::<String>::new();
        for id in self.ids() {
            let s = &self.units[id.index()];
            if !s.removing && !seen.contains(&s.unit.service) {
                seen.push(s.unit.service.clone());
            }
        }
        seen
    }

    /// `ids` and every unit that depends on one of them, directly or not, in start order.
    pub fn with_dependents(&self, ids: &[UnitId]) -> Vec<UnitId> {
        let mut wanted = vec![false; self.units.len()];
        let mut stack: Vec<UnitId> = ids.to_vec();
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut wanted[id.index()], true) {
                continue;
            }
            stack.extend(self.units[id.index()].dependents.iter().map(|(d, _)| *d));
        }
        (0..self.units.len()).filter(|&i| wanted[i]).map(|i| UnitId(id_of(i))).collect()
    }

    /// A unit's state as the control plane names it.
    pub fn state(&self, id: UnitId) -> State {
        let s = &self.units[id.index()];
        match s.phase {
            Phase::Waiting => State::Waiting,
            Phase::Starting => State::Starting,
            Phase::Running if s.ready && s.unit.ready.is_some() => State::Ready,
            Phase::Running => State::Running,
            Phase::Backoff => State::Backoff,
            Phase::Stopping => State::Stopping,
            Phase::Done if s.completed == Some(true) => State::Completed,
            Phase::Done if s.completed == Some(false) => State::Failed,
            Phase::Done | Phase::Held | Phase::Removed => State::Stopped,
            Phase::Failed => State::Failed,
            Phase::Blocked => State::Blocked,
        }
    }

    /// A unit as the control plane sees it.
    pub fn view(&self, id: UnitId) -> View {
        let s = &self.units[id.index()];
        View {
            state: self.state(id),
            pid: s.pid,
            run: s.run,
            restarts: s.run.saturating_sub(s.first_run + 1),
            started_at: if s.pid.is_some() { s.started_at } else { None },
            last_status: s.last_status,
            has_ready_check: s.unit.ready.is_some(),
            ready: s.ready,
            ready_failure: if s.ready { None } else { s.ready_failure.clone() },
        }
    }

    /// The kind of a unit's readiness check, as the API names it.
    pub fn readiness_kind(&self, id: UnitId) -> Option<&'static str> {
        self.units[id.index()].unit.ready.as_ref().map(|c| match c.probe {
            Probe::Exec(_) => "exec",
            Probe::Tcp(_) => "tcp",
            Probe::Http(_) => "http",
            Probe::Log(_) => "log",
            Probe::Notify => "notify",
        })
    }

    /// The exit code `up` will end with once a shutdown has begun.
    pub fn shutdown_code(&self) -> Option<i32> {
        self.shutdown.map(|s| s.code)
    }

    /// Takes the state changes recorded since the last call (the driver takes them after
    /// every event, so they do not pile up).
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// Whether anything the control plane shows changed since the last call.
    pub fn take_touched(&mut self) -> bool {
        std::mem::take(&mut self.touched)
    }

    pub(super) fn record(&mut self, id: UnitId, ended: bool) {
        self.touched = true;
        let s = &self.units[id.index()];
        let change = Change {
            unit: id,
            state: self.state(id),
            pid: s.pid,
            run: s.run,
            exit: if ended { s.last_status } else { None },
        };
        self.changes.push(change);
    }

    // --- requests --------------------------------------------------------------------------

    /// Carries out a request; returns, for each unit concerned, the run that will answer it
    /// (the next run for what is started, the current one for what already runs or is
    /// stopped), so that a caller can wait for it.
    pub fn request(&mut self, request: Request, now: Instant, out: &mut Vec<Action>) -> Vec<(UnitId, u64)> {
        let mut answered = Vec::new();
        if self.exited || self.shutdown.is_some() {
            return answered;
        }
        match request {
            Request::Start(ids) => {
                for id in ids {
                    let run = self.start_on_request(id, now, out);
                    answered.push((id, run));
                }
            }
            Request::Stop(ids) => {
                // Dependents first, as in a shutdown.
                for id in ids.into_iter().rev() {
                    self.stop_on_request(id, AfterStop::Hold, now, out);
                    answered.push((id, self.units[id.index()].run));
                }
                answered.reverse();
            }
            Request::Restart(ids) => {
                for id in ids {
                    let s = &self.units[id.index()];
                    let run = s.run + 1;
                    match s.phase {
                        Phase::Running | Phase::Starting | Phase::Stopping => {
                            self.stop_on_request(id, AfterStop::Start, now, out)
                        }
                        _ => drop(self.start_on_request(id, now, out)),
                    }
                    answered.push((id, run));
                }
            }
        }
        self.do_work(now, out);
        self.check_finished(out);
        answered
    }

    /// Starts a unit that is down; returns the run that answers (the current one if it is
    /// already up).
    fn start_on_request(&mut self, id: UnitId, _now: Instant, out: &mut Vec<Action>) -> u64 {
        let s = &mut self.units[id.index()];
        if s.removing {
            return s.run;
        }
        match s.phase {
            Phase::Held | Phase::Done | Phase::Failed | Phase::Blocked => {
                s.history = History::default();
                s.completed = None;
                s.ready_failure = None;
                s.after_stop = AfterStop::Down;
                let run = s.run + 1;
                self.set_phase(id, Phase::Waiting);
                let s = &self.units[id.index()];
                if s.unmet == 0 {
                    self.work.push_back(Work::Start(id));
                } else {
                    let on = s
                        .deps
                        .iter()
                        .filter(|(d, c)| !self.units[d.index()].met(*c))
                        .map(|(d, c)| (self.units[d.index()].unit.name.clone(), *c))
                        .collect();
                    out.push(Action::Notice(Notice::Waiting { unit: s.unit.name.clone(), on }));
                }
                run
            }
            Phase::Backoff => {
                s.history = History::default();
                let run = s.run + 1;
                self.start(id, out);
                run
            }
            Phase::Stopping => {
                // Being stopped: it comes back once it has.
                s.after_stop = AfterStop::Start;
                s.run + 1
            }
            Phase::Starting => {
                // A stop asked for while it was being started no longer applies.
                s.pending = None;
                s.run
            }
            Phase::Waiting => s.run + 1,
            Phase::Running | Phase::Removed => s.run,
        }
    }

    fn stop_on_request(&mut self, id: UnitId, after: AfterStop, now: Instant, out: &mut Vec<Action>) {
        let s = &mut self.units[id.index()];
        match s.phase {
            Phase::Running => self.stop(id, after, now, out),
            Phase::Starting => s.pending = Some(after),
            Phase::Stopping => {
                if s.after_stop != AfterStop::Remove {
                    s.after_stop = after;
                }
            }
            Phase::Waiting | Phase::Backoff => match after {
                AfterStop::Remove => self.tombstone(id),
                AfterStop::Start => drop(self.start_on_request(id, now, out)),
                _ => {
                    out.push(Action::Notice(Notice::Held { unit: s.unit.name.clone() }));
                    self.set_phase(id, Phase::Held);
                }
            },
            Phase::Held | Phase::Done | Phase::Failed | Phase::Blocked => match after {
                AfterStop::Remove => self.tombstone(id),
                AfterStop::Start => drop(self.start_on_request(id, now, out)),
                _ => {}
            },
            Phase::Removed => {}
        }
    }

    /// Stops everything as SIGTERM would (a request through the control socket); returns
    /// the exit code `up` will end with.
    pub fn shutdown(&mut self, now: Instant, out: &mut Vec<Action>) -> Option<i32> {
        if self.exited {
            return None;
        }
        if self.shutdown.is_none() {
            self.begin_shutdown(128 + forkyard::Signal::TERM.as_raw(), now, out);
        }
        self.do_work(now, out);
        self.check_finished(out);
        self.shutdown.map(|s| s.code)
    }

    // --- units added, changed and removed ------------------------------------------------------

    /// Adds a unit while everything runs; it starts when its dependencies allow (not during a
    /// shutdown). Its `depends_on` names are looked up among the units present.
    pub fn add(&mut self, unit: Unit, now: Instant, out: &mut Vec<Action>) -> UnitId {
        let id = self.add_unit(unit, out);
        self.do_work(now, out);
        self.check_finished(out);
        id
    }

    fn add_unit(&mut self, unit: Unit, out: &mut Vec<Action>) -> UnitId {
        let name = unit.name.clone();
        let id = match self.free.pop() {
            Some(id) => {
                let run = self.units[id.index()].run;
                let attempts = self.units[id.index()].attempts;
                self.units[id.index()] = UnitState::new(unit, run);
                self.units[id.index()].attempts = attempts;
                id
            }
            None => {
                self.units.push(UnitState::new(unit, 0));
                UnitId(id_of(self.units.len() - 1))
            }
        };
        self.names.insert(name.clone(), id);
        self.link(id);
        if self.shutdown.is_some() {
            self.units[id.index()].phase = Phase::Done;
            return id;
        }
        self.active += 1;
        self.record(id, false);
        let s = &self.units[id.index()];
        if s.unmet == 0 {
            self.work.push_back(Work::Start(id));
        } else {
            let on = s
                .deps
                .iter()
                .filter(|(d, c)| !self.units[d.index()].met(*c))
                .map(|(d, c)| (self.units[d.index()].unit.name.clone(), *c))
                .collect();
            out.push(Action::Notice(Notice::Waiting { unit: name, on }));
        }
        id
    }

    /// Removes a unit: stopped as by a stop request, then forgotten (its id may be reused).
    pub fn remove(&mut self, id: UnitId, now: Instant, out: &mut Vec<Action>) {
        self.remove_unit(id, now, out);
        self.do_work(now, out);
        self.check_finished(out);
    }

    fn remove_unit(&mut self, id: UnitId, now: Instant, out: &mut Vec<Action>) {
        let s = &mut self.units[id.index()];
        if s.removing || s.phase == Phase::Removed {
            return;
        }
        s.removing = true;
        if self.names.get(&s.unit.name) == Some(&id) {
            self.names.remove(&s.unit.name);
        }
        self.stop_on_request(id, AfterStop::Remove, now, out);
    }

    /// The end of a removed unit: unlinked from everything, its slot free for reuse.
    pub(super) fn tombstone(&mut self, id: UnitId) {
        self.unlink(id);
        // Dependents lose a dependency they can no longer wait for.
        let dependents = std::mem::take(&mut self.units[id.index()].dependents);
        for (d, condition) in dependents {
            let met = self.units[id.index()].met(condition);
            let dep = &mut self.units[d.index()];
            dep.deps.retain(|(x, _)| *x != id);
            if !met {
                dep.unmet -= 1;
                if dep.unmet == 0 {
                    self.work.push_back(Work::Start(d));
                }
            }
        }
        let s = &mut self.units[id.index()];
        s.removing = true;
        s.pending = None;
        if self.names.get(&s.unit.name) == Some(&id) {
            self.names.remove(&s.unit.name);
        }
        self.set_phase(id, Phase::Removed);
        self.free.push(id);
    }

    /// Gives a unit new settings: relinked to its (possibly new) dependencies, and restarted
    /// with them if it runs, or started if it was down; left stopped if it was stopped on
    /// request.
    fn replace_unit(&mut self, id: UnitId, unit: Unit, now: Instant, out: &mut Vec<Action>) {
        self.unlink(id);
        self.units[id.index()].unit = unit;
        self.link(id);
        let s = &self.units[id.index()];
        match s.phase {
            Phase::Running | Phase::Starting | Phase::Stopping => self.stop_on_request(id, AfterStop::Start, now, out),
            Phase::Done | Phase::Failed | Phase::Blocked | Phase::Backoff => drop(self.start_on_request(id, now, out)),
            Phase::Waiting => {
                if s.unmet == 0 {
                    self.work.push_back(Work::Start(id));
                }
            }
            Phase::Held | Phase::Removed => {}
        }
    }

    /// Applies a new configuration: units are matched by name; new ones are added, gone
    /// ones removed, changed ones (any setting but where they were written) restarted with
    /// the new settings, and the others left as they are, same processes.
    pub fn reconcile(&mut self, plan: &Plan, now: Instant, out: &mut Vec<Action>) -> Reconciled {
        let mut done = Reconciled::default();
        if self.exited || self.shutdown.is_some() {
            return done;
        }
        let mut changed = Vec::new();
        for unit in &plan.units {
            match self.names.get(&unit.name).copied() {
                Some(id) if same_settings(&self.units[id.index()].unit, unit) => {
                    // Where it was written may have moved (for errors found later).
                    self.units[id.index()].unit.origin = unit.origin.clone();
                    done.unchanged.push(id);
                }
                Some(id) => changed.push((id, unit.clone())),
                None => done.added.push(self.add_unit(unit.clone(), out)),
            }
        }
        for (id, unit) in changed {
            self.replace_unit(id, unit, now, out);
            done.changed.push(id);
        }
        let keep: std::collections::HashSet<&str> = plan.units.iter().map(|u| u.name.as_str()).collect();
        let gone: Vec<UnitId> =
            self.ids().filter(|id| !keep.contains(self.units[id.index()].unit.name.as_str())).collect();
        for id in gone.into_iter().rev() {
            if !self.units[id.index()].removing {
                self.remove_unit(id, now, out);
                done.removed.push(id);
            }
        }
        done.removed.reverse();
        self.do_work(now, out);
        self.check_finished(out);
        done
    }

    // --- dependency links ----------------------------------------------------------------------

    /// Resolves a unit's `depends_on` among the units present and links it both ways.
    pub(super) fn link(&mut self, id: UnitId) {
        let deps: Vec<(UnitId, Condition)> = self.units[id.index()]
            .unit
            .depends_on
            .iter()
            .filter_map(|(name, c)| self.names.get(name).map(|d| (*d, *c)))
            .filter(|(d, _)| *d != id)
            .collect();
        let live = self.units[id.index()].phase.live();
        let mut unmet = 0;
        for &(d, c) in &deps {
            let dep = &mut self.units[d.index()];
            if !dep.met(c) {
                unmet += 1;
            }
            dep.dependents.push((id, c));
            if live {
                dep.live_dependents += 1;
            }
        }
        let s = &mut self.units[id.index()];
        s.deps = deps;
        s.unmet = unmet;
    }

    /// Undoes [`Machine::link`] for a unit's own dependencies.
    fn unlink(&mut self, id: UnitId) {
        let deps = std::mem::take(&mut self.units[id.index()].deps);
        let live = self.units[id.index()].phase.live();
        for (d, _) in deps {
            let dep = &mut self.units[d.index()];
            dep.dependents.retain(|(x, _)| *x != id);
            if live {
                dep.live_dependents -= 1;
                if dep.live_dependents == 0 && self.shutdown.is_some() {
                    self.work.push_back(Work::MaybeStop(d));
                }
            }
        }
        self.units[id.index()].unmet = 0;
    }
}

/// Whether two units have the same settings, wherever they were written.
fn same_settings(a: &Unit, b: &Unit) -> bool {
    let mut b = b.clone();
    b.origin = a.origin.clone();
    *a == b
}
