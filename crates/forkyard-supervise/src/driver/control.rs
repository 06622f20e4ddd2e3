//! The driver's side of the control plane: it starts the server, takes the clients'
//! commands a bounded batch per turn, publishes what they read, and keeps the slots in step
//! with units added and removed at run time.
//!
//! Why this module exists: the driver's loop is the only place that touches the machine, so
//! a command from a client becomes a machine request here, on the loop's own turn; and what
//! clients read (the snapshot, the recent lines, the event stream) is produced here, at most
//! once per turn, so that many clients cost the loop nothing more than one.

use std::collections::HashMap;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

use forkyard::Signal;
use rustix::event::epoll;
use tokio::sync::watch;

use super::{CONTROL, Driver, SetupError, Slot, id};
use crate::config::{Plan, Unit};
use crate::control::api;
use crate::control::hub::{self, Act, Command, Hub, LogChunk, Refusal, Snapshot, UnitSnap, last_lines};
use crate::control::server::{DEFAULT_READY_WAIT, Server, wall_seconds};
use crate::machine::{Change, Phase, Request, UnitId};
use crate::notice::Notice;

/// Commands taken from the queue in one turn.
const COMMANDS_PER_TURN: usize = 64;
/// Reports of refused connections: at most one per this long.
const REFUSED_EVERY: Duration = Duration::from_secs(1);

/// The control plane, from the driver's side.
pub(super) struct Ctl {
    hub: Arc<Hub>,
    commands: mpsc::Receiver<Command>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    server: Option<Server>,
    /// Something changed since the last snapshot.
    dirty: bool,
    started: Instant,
    config: String,
    /// Each service's settings, for new instances when it is scaled.
    templates: HashMap<String, Unit>,
    /// When a refused connection was last reported, and how many since.
    refused: (Option<Instant>, u64),
    /// The socket we bound, removed at the end.
    socket: Option<std::path::PathBuf>,
}

impl Ctl {
    /// Keeps the lines of one read for `ctl logs` and hands them to followers.
    pub(super) fn keep_lines(&self, index: usize, name: &Arc<str>, lines: &[u8]) {
        if lines.is_empty() {
            return;
        }
        let Ok(mut rings) = self.hub.rings.lock() else { return };
        let max = rings.max_lines();
        for line in last_lines(lines, max) {
            rings.push(index, line);
        }
        if let Some(tx) = &rings.follow {
            if tx.receiver_count() > 0 {
                let _ = tx.send(Arc::new(LogChunk { index, name: Arc::clone(name), lines: lines.to_vec() }));
            }
        }
    }
}

fn templates(plan: &Plan) -> HashMap<String, Unit> {
    let mut t = HashMap::new();
    for u in &plan.units {
        t.entry(u.service.clone()).or_insert_with(|| u.clone());
    }
    t
}

impl Driver<'_> {
    /// Starts the control plane, if asked for: the socket (a failure is reported and the
    /// services run without it), the HTTP endpoints (a failure is an error: they were asked
    /// for by address), the server thread.
    pub(super) fn start_control(&mut self, plan: &Plan) -> Result<(), SetupError> {
        let Some(options) = self.options.control.clone() else { return Ok(()) };
        let http = options.http.clone().or_else(|| plan.control.http_listen.clone());
        let tcp = match &http {
            Some(address) => Some(
                std::net::TcpListener::bind(address)
                    .map_err(|source| SetupError::Http { address: address.clone(), source })?,
            ),
            None => None,
        };
        let (hub, commands) = match hub::hub(plan.control.log_lines, options.reload.clone()) {
            Ok(h) => h,
            Err(e) => {
                self.say(&Notice::ControlUnavailable { error: format!("creating an eventfd: {e}") });
                return Ok(());
            }
        };
        let hub = Arc::new(hub);
        if let Err(e) = epoll::add(&self.epoll, &hub.wake, epoll::EventData::new_u64(CONTROL), epoll::EventFlags::IN) {
            self.say(&Notice::ControlUnavailable { error: format!("watching its eventfd: {e}") });
            return Ok(());
        }
        let unix = match crate::control::socket::bind(&options.socket, options.default_location) {
            Ok(l) => Some(l),
            Err(e) => {
                self.say(&Notice::ControlUnavailable { error: e.to_string() });
                None
            }
        };
        let bound = unix.is_some();
        if unix.is_none() && tcp.is_none() {
            return Ok(());
        }
        let local = tcp.as_ref().and_then(|t| t.local_addr().ok());
        let config = std::path::absolute(&plan.source).unwrap_or_else(|_| plan.source.clone()).display().to_string();
        let mut ctl = Ctl {
            hub: Arc::clone(&hub),
            commands,
            snapshot: watch::channel(Arc::new(Snapshot::empty(forkyard::Pid::this().as_raw(), &config))).0,
            server: None,
            dirty: true,
            started: Instant::now(),
            config,
            templates: templates(plan),
            refused: (None, 0),
            socket: bound.then(|| options.socket.clone()),
        };
        let rx = ctl.snapshot.subscribe();
        match Server::start(hub, rx, unix, tcp) {
            Ok(server) => ctl.server = Some(server),
            Err(e) => {
                self.say(&Notice::ControlUnavailable { error: format!("starting its thread: {e}") });
                return Ok(());
            }
        }
        self.control = Some(ctl);
        self.publish();
        if bound {
            self.say(&Notice::ControlListening { path: options.socket.clone() });
        }
        if let Some(address) = local {
            self.say(&Notice::HttpListening { address: address.to_string() });
        }
        Ok(())
    }

    /// After the machine has handled something: its state changes go to the event stream,
    /// and the snapshot is due.
    pub(super) fn after_machine(&mut self) {
        let touched = self.machine.take_touched();
        let changes = self.machine.take_changes();
        let Some(ctl) = &mut self.control else { return };
        ctl.dirty |= touched;
        if changes.is_empty() {
            return;
        }
        let events = ctl.hub.events.lock().ok().and_then(|e| e.as_ref().filter(|tx| tx.receiver_count() > 0).cloned());
        for change in &changes {
            if let Some(tx) = &events {
                let _ = tx.send(Arc::from(event_line(&self.machine, change).as_str()));
            }
            if self.machine.phase(change.unit) == Phase::Removed {
                self.forget_slot(change.unit);
            }
        }
    }

    /// Publishes the snapshot if something changed (at most once a turn).
    pub(super) fn publish(&mut self) {
        let Some(ctl) = &self.control else { return };
        if !ctl.dirty {
            return;
        }
        let snap = self.snapshot(false);
        if let Some(ctl) = &mut self.control {
            ctl.snapshot.send_replace(Arc::new(snap));
            ctl.dirty = false;
        }
    }

    fn snapshot(&self, finished: bool) -> Snapshot {
        let (started, config) = match &self.control {
            Some(c) => (c.started, c.config.clone()),
            None => (Instant::now(), String::new()),
        };
        let mut units = Vec::new();
        for uid in self.machine.ids() {
            let i = uid.index();
            let unit = self.machine.unit(uid);
            let view = self.machine.view(uid);
            let Some(slot) = self.slots.get(i) else { continue };
            let status = api::ServiceStatus {
                name: unit.name.clone(),
                service: unit.service.clone(),
                instance: unit.instance,
                state: view.state.as_str().into(),
                pid: view.pid.map(|p| p.as_raw()),
                run: view.run,
                uptime_seconds: None,
                restarts: view.restarts,
                last_exit: view.last_status.map(|s| api::ExitInfo { code: s.shell_code(), description: s.to_string() }),
                ready: view.has_ready_check.then_some(view.ready),
                readiness: self.machine.readiness_kind(uid).map(str::to_string),
                last_probe_failure: view.ready_failure.as_ref().map(self.options.failure_words),
                cpu_seconds: None,
                memory_bytes: None,
            };
            units.push(UnitSnap {
                index: i,
                status,
                has_ready_check: view.has_ready_check,
                started_at: view.started_at,
                started_wall: if view.pid.is_some() { slot.started_wall } else { None },
                cgroup: slot.cgroup.as_ref().map(|c| c.path().to_path_buf()),
                exits: slot.exits.iter().map(|(k, v)| (*k, *v)).collect(),
                ready_wait: unit.ready.as_ref().and_then(|c| c.deadline).unwrap_or(DEFAULT_READY_WAIT),
                stop_wait: unit.stop_timeout + Duration::from_secs(5),
            });
        }
        Snapshot {
            pid: forkyard::Pid::this().as_raw(),
            config,
            started,
            exit_code: self.machine.shutdown_code(),
            finished,
            width: self.output.width(),
            units,
            services: self.machine.services(),
        }
    }

    /// Takes a bounded batch of the clients' commands.
    pub(super) fn on_commands(&mut self) {
        let Some(ctl) = &self.control else { return };
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&ctl.hub.wake, &mut buf);
        let mut batch = Vec::new();
        while batch.len() < COMMANDS_PER_TURN {
            match ctl.commands.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        if batch.len() == COMMANDS_PER_TURN {
            // More may wait: come back next turn.
            let _ = rustix::io::write(&ctl.hub.wake, &1u64.to_ne_bytes());
        }
        for command in batch {
            self.command(command);
        }
    }

    fn unknown(&self, name: &str) -> Refusal {
        let services = self.machine.services();
        Refusal {
            status: 404,
            error: format!("no service or instance named '{name}'; there are: {}", services.join(", ")),
            services,
        }
    }

    fn shutting_down(&self) -> Option<Refusal> {
        self.machine.shutdown_code().map(|code| {
            Refusal::new(
                503,
                format!("forkyard up is shutting down (it will exit with {code}); nothing can be changed"),
            )
        })
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Act { act, name, with_dependents, reply } => {
                let answer = self.act(act, &name, with_dependents, now);
                let _ = reply.send(answer);
            }
            Command::Signal { name, signal, reply } => {
                let answer = self.signal_units(&name, signal);
                let _ = reply.send(answer);
            }
            Command::Scale { service, instances, reply } => {
                let answer = self.scale(&service, instances, now);
                let _ = reply.send(answer);
            }
            Command::Apply { plan, reply } => {
                let answer = self.apply(plan, now);
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }
            Command::Shutdown { reply } => {
                let mut out = Vec::new();
                if self.machine.shutdown_code().is_none() {
                    self.say(&Notice::Requested { what: "shutdown".into(), units: Vec::new() });
                }
                let code = self.machine.shutdown(now, &mut out);
                self.actions.extend(out);
                self.after_machine();
                let _ = reply.send(code.ok_or_else(|| Refusal::new(503, "forkyard up is exiting")));
            }
            Command::Refused { uid, pid } => {
                let Some(ctl) = &mut self.control else { return };
                let (last, more) = ctl.refused;
                if last.is_some_and(|t| now.saturating_duration_since(t) < REFUSED_EVERY) {
                    ctl.refused.1 += 1;
                    return;
                }
                ctl.refused = (Some(now), 0);
                self.say(&Notice::ControlRefused { uid, pid, more });
            }
        }
    }

    fn act(
        &mut self,
        act: Act,
        name: &str,
        with_dependents: bool,
        now: Instant,
    ) -> Result<Vec<(String, u64)>, Refusal> {
        if let Some(r) = self.shutting_down() {
            return Err(r);
        }
        let mut ids = self.machine.find(name);
        if ids.is_empty() {
            return Err(self.unknown(name));
        }
        if with_dependents {
            ids = self.machine.with_dependents(&ids);
        }
        let names: Vec<String> = ids.iter().map(|i| self.machine.unit(*i).name.clone()).collect();
        self.say(&Notice::Requested { what: act.as_str().into(), units: names });
        let request = match act {
            Act::Start => Request::Start(ids),
            Act::Stop => Request::Stop(ids),
            Act::Restart => Request::Restart(ids),
        };
        let mut out = Vec::new();
        let answered = self.machine.request(request, now, &mut out);
        self.actions.extend(out);
        self.after_machine();
        Ok(answered.into_iter().map(|(u, run)| (self.machine.unit(u).name.clone(), run)).collect())
    }

    fn signal_units(&mut self, name: &str, signal: Signal) -> Result<Vec<String>, Refusal> {
        if let Some(r) = self.shutting_down() {
            return Err(r);
        }
        let ids = self.machine.find(name);
        if ids.is_empty() {
            return Err(self.unknown(name));
        }
        let mut sent = Vec::new();
        for uid in ids {
            if let Some(pid) = self.machine.pid(uid) {
                if signal.send(pid).is_ok() {
                    sent.push(self.machine.unit(uid).name.clone());
                }
            }
        }
        if sent.is_empty() {
            return Err(Refusal::new(409, format!("{name}: nothing runs to send {signal} to")));
        }
        self.say(&Notice::Requested { what: format!("signal {signal}"), units: sent.clone() });
        Ok(sent)
    }

    fn scale(&mut self, service: &str, instances: u32, now: Instant) -> Result<api::Scaled, Refusal> {
        if let Some(r) = self.shutting_down() {
            return Err(r);
        }
        let mut current: Vec<UnitId> =
            self.machine.find(service).into_iter().filter(|u| self.machine.unit(*u).service == service).collect();
        let template = match self.control.as_ref().and_then(|c| c.templates.get(service)) {
            Some(t) => t.clone(),
            None if current.is_empty() => return Err(self.unknown(service)),
            None => self.machine.unit(current[0]).clone(),
        };
        if current.is_empty() && !self.machine.find(service).is_empty() {
            return Err(Refusal::new(400, format!("'{service}' is an instance; scale takes a service name")));
        }
        current.sort_by_key(|u| self.machine.unit(*u).instance.unwrap_or(1));
        let wanted = instances as usize;
        let mut added = Vec::new();
        let mut removed = Vec::new();
        let mut out = Vec::new();
        let mut next = current.iter().map(|u| self.machine.unit(*u).instance.unwrap_or(1)).max().unwrap_or(0) + 1;
        while current.len() < wanted {
            let mut unit = template.clone();
            unit.name = format!("{service}.{next}");
            unit.instance = Some(next);
            unit.env.retain(|(k, _)| k != "FORKYARD_INSTANCE");
            unit.env.push(("FORKYARD_INSTANCE".into(), next.to_string()));
            next += 1;
            let uid = self.add_unit(unit, now, &mut out);
            added.push(self.machine.unit(uid).name.clone());
            current.push(uid);
        }
        while current.len() > wanted {
            let Some(uid) = current.pop() else { break };
            removed.push(self.machine.unit(uid).name.clone());
            self.machine.remove(uid, now, &mut out);
        }
        self.actions.extend(out);
        self.after_machine();
        let units = current.iter().map(|u| self.machine.unit(*u).name.clone()).collect();
        self.say(&Notice::Requested { what: format!("scale {instances}"), units: vec![service.to_string()] });
        Ok(api::Scaled { units, added, removed })
    }

    /// Adds a unit to the machine and gives it a fresh slot.
    fn add_unit(&mut self, unit: Unit, now: Instant, out: &mut Vec<crate::machine::Action>) -> UnitId {
        let uid = self.machine.add(unit, now, out);
        self.fresh_slot(uid);
        uid
    }

    /// A new unit's slot (appended, or a removed unit's, reset).
    fn fresh_slot(&mut self, uid: UnitId) {
        let i = uid.index();
        let unit = self.machine.unit(uid).clone();
        let slot = match Slot::new(&unit) {
            Ok(s) => s,
            Err(e) => {
                self.say(&Notice::LogFile {
                    unit: unit.name.clone(),
                    path: unit.log_file.clone().unwrap_or_default(),
                    error: e.to_string(),
                });
                let mut plain = unit.clone();
                plain.log_file = None;
                match Slot::new(&plain) {
                    Ok(s) => s,
                    Err(_) => return,
                }
            }
        };
        if i < self.slots.len() {
            let old = std::mem::replace(&mut self.slots[i], slot);
            // What the old unit's streams still hold is read under the new slot's name; its
            // cgroups are retired.
            self.slots[i].streams = old.streams;
            self.slots[i].run = old.run;
            self.retired.extend(old.cgroup.into_iter().chain(old.spare));
        } else {
            while self.slots.len() < i {
                // Never happens (ids are given out in order); keeps the indices right if it did.
                let filler = self.machine.unit(id(self.slots.len())).clone();
                match Slot::new(&filler) {
                    Ok(s) => self.slots.push(s),
                    Err(_) => return,
                }
            }
            self.slots.push(slot);
        }
        if let Some(ctl) = &self.control {
            if let Ok(mut rings) = ctl.hub.rings.lock() {
                rings.clear(i);
            }
        }
    }

    /// A removed unit's slot lets go of what it holds (its output streams are read to their
    /// end as usual).
    fn forget_slot(&mut self, uid: UnitId) {
        let Some(slot) = self.slots.get_mut(uid.index()) else { return };
        slot.notify = None;
        slot.log = None;
        let cgroups: Vec<_> = slot.cgroup.take().into_iter().chain(slot.spare.take()).collect();
        self.retired.extend(cgroups);
    }

    /// Applies a configuration read again.
    fn apply(&mut self, plan: Result<Plan, String>, now: Instant) -> Result<api::Reloaded, Refusal> {
        if let Some(r) = self.shutting_down() {
            return Err(r);
        }
        let plan = match plan {
            Ok(p) => p,
            Err(error) => {
                self.say(&Notice::ReloadFailed { error: error.clone() });
                return Err(Refusal::new(422, error));
            }
        };
        let mut out = Vec::new();
        let done = self.machine.reconcile(&plan, now, &mut out);
        for &uid in &done.added {
            self.fresh_slot(uid);
        }
        for &uid in &done.changed {
            // New settings: a new log file or readiness pattern; the run goes on in its slot.
            let unit = self.machine.unit(uid).clone();
            if let Ok(fresh) = Slot::new(&unit) {
                let slot = &mut self.slots[uid.index()];
                slot.log = fresh.log;
                slot.regex = fresh.regex;
            }
        }
        if let Some(ctl) = &mut self.control {
            ctl.templates = templates(&plan);
        }
        self.actions.extend(out);
        self.after_machine();
        let names = |ids: &[UnitId]| ids.iter().map(|u| self.machine.unit(*u).name.clone()).collect::<Vec<_>>();
        let reply = api::Reloaded {
            added: names(&done.added),
            removed: names(&done.removed),
            changed: names(&done.changed),
            unchanged: names(&done.unchanged),
        };
        self.say(&Notice::Reloaded {
            added: reply.added.clone(),
            changed: reply.changed.clone(),
            removed: reply.removed.clone(),
        });
        Ok(reply)
    }

    /// SIGHUP: reads the configuration on a thread of its own, then applies it through the
    /// command queue like a client's reload.
    pub(super) fn reload_in_background(&mut self) {
        let Some(ctl) = &self.control else {
            self.say(&Notice::ReloadFailed { error: "this forkyard up runs without its control plane".into() });
            return;
        };
        let Some(load) = ctl.hub.reload.clone() else {
            self.say(&Notice::ReloadFailed { error: "this forkyard up cannot read its configuration again".into() });
            return;
        };
        let hub = Arc::clone(&ctl.hub);
        let spawned = std::thread::Builder::new().name("forkyard-reload".into()).spawn(move || {
            let plan = load();
            hub.send(Command::Apply { plan, reply: None });
        });
        if let Err(e) = spawned {
            self.say(&Notice::ReloadFailed { error: format!("starting a thread to read it: {e}") });
        }
    }

    /// The end: a last snapshot (streams see `finished`), streams closed, the server
    /// stopped, the socket removed.
    pub(super) fn close_control(&mut self) {
        if self.control.is_none() {
            return;
        }
        let snap = self.snapshot(true);
        let Some(ctl) = self.control.take() else { return };
        ctl.snapshot.send_replace(Arc::new(snap));
        if let Ok(mut rings) = ctl.hub.rings.lock() {
            rings.follow = None;
        }
        if let Ok(mut events) = ctl.hub.events.lock() {
            *events = None;
        }
        if let Some(server) = ctl.server {
            server.stop(Duration::from_millis(500));
        }
        if let Some(path) = &ctl.socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn event_line(machine: &crate::machine::Machine, change: &Change) -> String {
    let unit = machine.unit(change.unit);
    let event = api::StateEvent {
        time: wall_seconds(SystemTime::now()),
        name: unit.name.clone(),
        service: unit.service.clone(),
        state: change.state.as_str().into(),
        pid: change.pid.map(|p| p.as_raw()),
        run: change.run,
        exit: change.exit.map(|s| api::ExitInfo { code: s.shell_code(), description: s.to_string() }),
    };
    serde_json::to_string(&event).unwrap_or_default()
}
