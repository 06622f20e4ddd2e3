//! The driver: the kernel's news in, the machine's actions out, over one epoll.
//!
//! Why this module exists: the [`machine`](crate::machine) decides and the driver does. It
//! owns every descriptor (a signalfd for every signal that would otherwise kill `up`, the
//! services' pipes and notify sockets, an eventfd for probe results and one for room in the
//! output) and turns what they say into events; it carries out the machine's actions
//! (spawns, signals to whole trees, timers, probes) and words its notices through the
//! binary's function. It decides nothing.
//!
//! Every turn of the loop is bounded, so that one flooding or stalled party never delays the
//! rest: at most one read of [`READ_CHUNK`] per service stream per turn, round-robin, and none
//! while the output is past its high-water mark (the services then block on their own
//! writes, as under a slow terminal); at most [`SPAWNS_PER_TURN`] starts per turn; at most a
//! batch of signals and datagrams. Signals and deaths are read first in every turn, so a
//! SIGTERM or a crash is acted on within one turn whatever the output is doing.

mod control;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use forkyard::error::StartStep;
use forkyard::signal::SignalInfo;
use forkyard::spawn::{Group, Launch, Program};
use forkyard::{Pid, Reaper, Scope, Signal, SignalFd, SignalSet, Strategy};
use rustix::event::epoll;

use crate::config::{CommandLine, Plan, Probe, Unit};
use crate::logs::{Lines, LogFile};
use crate::machine::{Action, CheckKind, Event, Machine, Settings, Timer, UnitId};
use crate::notice::{Notice, ProbeFailure, TreeMethod};
use crate::output::{Output, Style};
use crate::runtime::RuntimeDir;
use crate::tree::{self, Cgroups, UnitCgroup};

/// The most read from one service stream in one turn.
pub const READ_CHUNK: usize = 64 * 1024;
/// Lines are handed to the output in slices of this much input, so that the output's
/// backlog passes its high-water mark by at most one slice's worth.
const SLICE: usize = 4 * 1024;
/// The most processes started in one turn (the rest wait for the next turn).
pub const SPAWNS_PER_TURN: usize = 64;
/// The most datagrams read from one notify socket in one turn.
const DATAGRAMS_PER_TURN: usize = 64;

/// How `up` runs, besides the plan.
#[derive(Clone)]
pub struct Options {
    /// What the supervisor inherited (its services start with the same mask and
    /// dispositions).
    pub inherited: forkyard::Inherited,
    /// End when any service ends, as if every service were `critical`.
    pub exit_on_first: bool,
    /// Colour the names (on a terminal, unless `NO_COLOR`).
    pub colour: bool,
    /// Put a time in front of every line.
    pub timestamps: bool,
    /// Words a notice (the binary's texts).
    pub words: fn(&Notice) -> String,
    /// Words why a check failed (for `ctl status`).
    pub failure_words: fn(&ProbeFailure) -> String,
    /// The control plane, if there is to be one.
    pub control: Option<ControlOptions>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("exit_on_first", &self.exit_on_first)
            .field("colour", &self.colour)
            .field("timestamps", &self.timestamps)
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

/// Where and how the control plane listens.
#[derive(Clone)]
pub struct ControlOptions {
    /// The control socket.
    pub socket: std::path::PathBuf,
    /// Whether `socket` is the default location (its directory is then made private).
    pub default_location: bool,
    /// Where to serve the read-only HTTP endpoints, besides `[http] listen`.
    pub http: Option<String>,
    /// Reads the configuration again, for reloads.
    pub reload: Option<crate::control::Reload>,
}

impl std::fmt::Debug for ControlOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlOptions")
            .field("socket", &self.socket)
            .field("http", &self.http)
            .field("reload", &self.reload.is_some())
            .finish_non_exhaustive()
    }
}

/// Why the engine could not begin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A step of the setup failed.
    #[error("{step}: {source}")]
    Step {
        /// What was being done.
        step: &'static str,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A library call of the setup failed.
    #[error("{step}: {source}")]
    Library {
        /// What was being done.
        step: &'static str,
        /// Why it failed.
        #[source]
        source: forkyard::Error,
    },
    /// The read-only HTTP endpoints cannot listen where asked.
    #[error("cannot serve HTTP on {address}: {source}")]
    Http {
        /// The address asked for.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A service's log file cannot be used.
    #[error("the log file {} of {unit}: {source}", path.display())]
    LogFile {
        /// The unit.
        unit: String,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn step<E: Into<std::io::Error>>(step: &'static str) -> impl FnOnce(E) -> SetupError {
    move |e| SetupError::Step { step, source: e.into() }
}

fn library(step: &'static str) -> impl FnOnce(forkyard::Error) -> SetupError {
    move |source| SetupError::Library { step, source }
}

/// Runs the plan until it ends; returns `up`'s exit code: the status of the service whose
/// end ended it (128 + n for a signal), else the first failure's, else 0.
pub fn run(plan: &Plan, options: &Options) -> Result<i32, SetupError> {
    let mut driver = Driver::new(plan, options)?;
    driver.start_control(plan)?;
    Ok(driver.run())
}

const SIGNALS: u64 = u64::MAX;
const PROBES: u64 = u64::MAX - 1;
const ROOM: u64 = u64::MAX - 2;
const CONTROL: u64 = u64::MAX - 3;
/// Notify sockets: this bit plus the unit's index. Streams: their slot number.
const NOTIFY: u64 = 1 << 40;

/// One of a service's output pipes (stdout or stderr), read until its end even after the
/// run that opened it has ended.
struct Stream {
    unit: UnitId,
    fd: OwnedFd,
    lines: Lines,
    /// Input read but not yet turned into lines (the output was full).
    leftover: Vec<u8>,
    /// In the ready list.
    queued: bool,
}

/// A check in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Running {
    Idle,
    Exec {
        pid: Pid,
        attempt: u64,
    },
    /// A thread is on it (until its result comes back, even after the machine gave up).
    Net {
        attempt: u64,
    },
}

/// What the driver keeps per unit.
struct Slot {
    run: u64,
    /// The current run's main process, while it runs.
    pid: Option<Pid>,
    /// The process group the current (or last) run's main process led.
    group: Option<Pid>,
    cgroup: Option<UnitCgroup>,
    /// A cgroup made ahead for the next run, once the unit has restarted (so that a restart
    /// does not wait for a `mkdir` in the cgroup filesystem).
    spare: Option<UnitCgroup>,
    notify: Option<UnixDatagram>,
    log: Option<LogFile>,
    /// The last write to the log file failed (reported once until one succeeds).
    log_failing: bool,
    regex: Option<regex_lite::Regex>,
    checks: [Running; 2],
    /// Its streams still open (this run's, and an earlier run's until their end).
    streams: Vec<usize>,
    /// Runs ended, by `$?` (for the metrics).
    exits: BTreeMap<i32, u64>,
    /// When the current run started, on the wall clock.
    started_wall: Option<std::time::SystemTime>,
    /// Its name, shared with the log followers.
    name: std::sync::Arc<str>,
}

/// Who a child process is.
#[derive(Clone, Copy, Debug)]
enum Owner {
    Main(UnitId, u64),
    Probe(UnitId, u64, CheckKind, u64),
}

type ProbeResult = (UnitId, u64, CheckKind, u64, Result<(), String>);

struct Driver<'a> {
    machine: Machine,
    options: &'a Options,
    epoll: OwnedFd,
    signals: SignalFd,
    reaper: Reaper,
    output: Output,
    output_waiting: bool,
    slots: Vec<Slot>,
    streams: Vec<Option<Stream>>,
    free_streams: Vec<usize>,
    ready: VecDeque<usize>,
    read_buf: Vec<u8>,
    owners: HashMap<Pid, Owner>,
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    timer_seq: u64,
    events: VecDeque<Event>,
    actions: VecDeque<Action>,
    probe_tx: mpsc::Sender<ProbeResult>,
    probe_rx: mpsc::Receiver<ProbeResult>,
    probe_wake: std::sync::Arc<OwnedFd>,
    cgroups: Option<Cgroups>,
    cgroup_runs: u64,
    /// Cgroups of ended runs not yet removed (a dying process keeps one busy briefly).
    retired: Vec<UnitCgroup>,
    /// A child was collected: try removing the retired cgroups at the end of the turn, once
    /// the replacements are on their way (an rmdir costs about 50 µs).
    sweep_retired: bool,
    /// `/dev/null` for reading, opened once: each service's standard input is a copy.
    null: Option<OwnedFd>,
    /// Cgroups of ended runs whose leftovers are to be killed at the end of this turn, after
    /// the replacements have been started (they are in cgroups of their own).
    dying: Vec<UnitCgroup>,
    /// Units started in this turn (each may get a spare cgroup when the turn ends).
    started: Vec<usize>,
    runtime: Option<RuntimeDir>,
    exit: Option<i32>,
    /// Lines of the current read kept for the control plane (reused between reads).
    kept: Vec<u8>,
    /// The control plane, when it runs.
    control: Option<control::Ctl>,
}

/// Every signal that would end, or otherwise disturb, `up` if left to its default: all of
/// them but those whose default is to stop, continue or be ignored (a terminal's Ctrl-Z still
/// stops `up`, as it stops any program).
fn handled_signals() -> SignalSet {
    let left_alone = [Signal::TSTP, Signal::TTIN, Signal::TTOU, Signal::CONT, Signal::WINCH, Signal::URG];
    Signal::all().filter(|s| s.is_catchable() && !left_alone.contains(s)).collect()
}

impl<'a> Driver<'a> {
    fn new(plan: &Plan, options: &'a Options) -> Result<Driver<'a>, SetupError> {
        // Every signal the loop handles is read from the signalfd; block them before any
        // thread (the output's, the probes') exists, so that each thread inherits the mask.
        let set = handled_signals();
        set.block().map_err(library("blocking signals"))?;
        if Pid::this() != Pid::INIT {
            // Orphans of services come back to us, so nothing escapes the final clean-up.
            forkyard::subreaper::set_child_subreaper(true).map_err(library("becoming a child subreaper"))?;
        }
        let reaper = Reaper::new(Strategy::Manual, Scope::All).map_err(library("setting up the reaper"))?;
        let signals = SignalFd::new(&set).map_err(library("creating a signalfd"))?;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(step("creating an epoll"))?;
        let flags = rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK;
        let probe_wake = rustix::event::eventfd(0, flags).map_err(step("creating an eventfd"))?;
        let width = plan.units.iter().map(|u| u.name.len()).max().unwrap_or(0);
        // Our own copy of standard output for the writer thread; with standard output closed
        // (`forkyard up >&-`), the services still run and their lines go nowhere.
        let stdout = match std::io::stdout().as_fd().try_clone_to_owned() {
            Ok(fd) => fd,
            Err(_) => dev_null(true).map_err(step("opening /dev/null for a closed standard output"))?,
        };
        let output = Output::new(stdout, Style { colour: options.colour, timestamps: options.timestamps, width })
            .map_err(step("starting the output thread"))?;
        for (fd, token) in [(signals.as_fd(), SIGNALS), (probe_wake.as_fd(), PROBES), (output.room_fd(), ROOM)] {
            epoll::add(&epoll, fd, epoll::EventData::new_u64(token), epoll::EventFlags::IN)
                .map_err(step("watching the supervisor's descriptors"))?;
        }
        let mut slots = Vec::with_capacity(plan.units.len());
        for unit in &plan.units {
            slots.push(Slot::new(unit)?);
        }
        let (probe_tx, probe_rx) = mpsc::channel();
        let (cgroups, leftovers) = match Cgroups::create(&tree::config_key(&plan.source)) {
            Some((c, l)) => (Some(c), l),
            None => (None, Vec::new()),
        };
        let mut driver = Driver {
            machine: Machine::new(plan, Settings { exit_on_first: options.exit_on_first }),
            options,
            epoll,
            signals,
            reaper,
            output,
            output_waiting: false,
            slots,
            streams: Vec::new(),
            free_streams: Vec::new(),
            ready: VecDeque::new(),
            read_buf: vec![0; READ_CHUNK],
            owners: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            events: VecDeque::new(),
            actions: VecDeque::new(),
            probe_tx,
            probe_rx,
            probe_wake: std::sync::Arc::new(probe_wake),
            cgroups,
            cgroup_runs: 0,
            retired: Vec::new(),
            sweep_retired: false,
            null: dev_null(false).ok(),
            dying: Vec::new(),
            started: Vec::new(),
            runtime: None,
            exit: None,
            kept: Vec::new(),
            control: None,
        };
        for leftover in leftovers {
            driver.say(&Notice::LeftoversKilled { processes: leftover.processes, cgroup: leftover.cgroup });
        }
        Ok(driver)
    }

    fn say(&mut self, notice: &Notice) {
        let text = (self.options.words)(notice);
        self.output.event(&text);
    }

    fn run(&mut self) -> i32 {
        let trees = if self.cgroups.is_some() { TreeMethod::Cgroups } else { TreeMethod::ProcessGroups };
        self.say(&Notice::Starting { units: self.slots.len(), trees });
        self.events.push_back(Event::Boot);
        let mut ready_fds: Vec<epoll::Event> = Vec::with_capacity(64);
        loop {
            self.process();
            if let Some(code) = self.exit {
                return self.finish(code);
            }
            self.pump();
            self.process();
            if let Some(code) = self.exit {
                return self.finish(code);
            }
            let dropped = self.output.take_dropped();
            if dropped > 0 {
                self.say(&Notice::OutputDropped { count: dropped });
            }
            self.output.flush();
            self.publish();
            if !self.ready.is_empty() && !self.output.has_room() && !self.output_waiting {
                // Streams wait for room: ask to be woken when there is some, here, before
                // the loop sleeps, whichever read filled the output (asked only in `pump`, a
                // round whose last read filled it slept with the services blocked on full
                // pipes and nothing left to wake it: 2 runs in 23 of the yes flood test).
                self.output_waiting = self.output.wait_for_room();
            }
            let busy = !self.events.is_empty() || !self.actions.is_empty() || self.can_pump();
            let timeout = if busy {
                Some(Duration::ZERO)
            } else {
                self.timers.peek().map(|Reverse((at, _, _))| at.saturating_duration_since(Instant::now()))
            };
            let timespec = timeout.map(|t| {
                rustix::event::Timespec::try_from(t)
                    .unwrap_or(rustix::event::Timespec { tv_sec: i64::MAX / 2, tv_nsec: 0 })
            });
            ready_fds.clear();
            match epoll::wait(&self.epoll, rustix::buffer::spare_capacity(&mut ready_fds), timespec.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    self.events.push_back(Event::Fatal(format!("epoll_wait: {e}")));
                    continue;
                }
            }
            // Signals (and so deaths) first: whatever else is ready waits its turn.
            if ready_fds.iter().any(|e| e.data.u64() == SIGNALS) {
                self.on_signals();
            }
            for e in &ready_fds {
                match e.data.u64() {
                    SIGNALS => {}
                    PROBES => self.on_probe_results(),
                    CONTROL => self.on_commands(),
                    ROOM => {
                        self.output.clear_room();
                        self.output_waiting = false;
                    }
                    t if t & NOTIFY != 0 => self.on_notify((t & !NOTIFY) as usize),
                    t => self.mark_ready_stream(t as usize),
                }
            }
            self.fire_timers();
        }
    }

    /// Feeds queued events to the machine and carries out its actions, spawns bounded per
    /// turn; an action's consequence comes back as an event in the same loop (a queue, not a
    /// call back into the machine).
    fn process(&mut self) {
        self.process_queue();
        self.end_of_turn();
    }

    /// What can wait until this turn's spawns are done: killing what ended runs left in their
    /// cgroups, and making the next cgroup of units that have restarted.
    fn end_of_turn(&mut self) {
        for cg in std::mem::take(&mut self.dying) {
            cg.kill();
            self.retired.push(cg);
        }
        if std::mem::take(&mut self.sweep_retired) {
            self.retired.retain(|c| !c.remove());
        }
        if let Some(cgroups) = &self.cgroups {
            for i in std::mem::take(&mut self.started) {
                let slot = &mut self.slots[i];
                if slot.run >= 2 && slot.spare.is_none() {
                    self.cgroup_runs += 1;
                    let name = format!("{}@{}", self.machine.unit(id(i)).name, self.cgroup_runs);
                    slot.spare = cgroups.unit(&name).ok();
                }
            }
        } else {
            self.started.clear();
        }
    }

    fn process_queue(&mut self) {
        let mut spawns = 0;
        loop {
            while let Some(action) = self.actions.pop_front() {
                if matches!(action, Action::Spawn { .. }) {
                    if spawns == SPAWNS_PER_TURN {
                        self.actions.push_front(action);
                        return;
                    }
                    spawns += 1;
                }
                self.execute(action);
                if self.exit.is_some() {
                    return;
                }
            }
            let Some(event) = self.events.pop_front() else { return };
            let mut out = Vec::new();
            self.machine.handle(event, Instant::now(), &mut out);
            self.actions.extend(out);
            self.after_machine();
        }
    }

    fn execute(&mut self, action: Action) {
        match action {
            Action::Spawn { unit, run } => {
                let event = self.spawn(unit, run);
                self.events.push_back(event);
            }
            Action::Signal { unit, run, signal } => self.signal_tree(unit, run, signal),
            Action::KillTree { unit, run } => self.signal_tree(unit, run, Signal::KILL),
            Action::StartProbe { unit, run, kind, attempt } => self.start_probe(unit, run, kind, attempt),
            Action::CancelProbe { unit, kind, attempt, .. } => {
                let slot = &mut self.slots[unit.index()];
                match slot.checks[slot_of(kind)] {
                    Running::Exec { pid, attempt: a } if a == attempt => {
                        // Its own process group, led by it and not yet collected: the group
                        // ID cannot have been reused.
                        let _ = Signal::KILL.send_group(pid);
                        slot.checks[slot_of(kind)] = Running::Idle;
                    }
                    _ => {}
                }
            }
            Action::Arm { at, timer } => {
                self.timer_seq += 1;
                self.timers.push(Reverse((at, self.timer_seq, timer)));
            }
            Action::Notice(notice) => self.say(&notice),
            Action::ReopenLogs => {
                for i in 0..self.slots.len() {
                    let Some(log) = &mut self.slots[i].log else { continue };
                    if let Err(e) = log.reopen() {
                        let notice = Notice::LogFile {
                            unit: self.machine.unit(id(i)).name.clone(),
                            path: self.machine.unit(id(i)).log_file.clone().unwrap_or_default(),
                            error: e.to_string(),
                        };
                        self.say(&notice);
                    }
                }
            }
            Action::Exit { code } => self.exit = Some(code),
            Action::Reload => self.reload_in_background(),
        }
    }

    // --- starting -----------------------------------------------------------------------------

    fn spawn(&mut self, unit_id: UnitId, run: u64) -> Event {
        let i = unit_id.index();
        let unit = self.machine.unit(unit_id).clone();
        let failed = |error: String, code: u8| Event::SpawnFailed { unit: unit_id, run, error, code };
        let credentials = match (&unit.user, &unit.group) {
            (None, None) => None,
            (user, group) => match forkyard::users::credentials(user.as_deref(), group.as_deref()) {
                Ok(c) => Some(c),
                Err(e) => return failed(e.to_string(), 1),
            },
        };
        if let Some(cgroups) = &self.cgroups {
            // A fresh cgroup for every run. Besides starting clean, this avoids a kernel bug
            // (seen on 6.18): once `cgroup.kill` has been used on a cgroup, every child
            // started in it with CLONE_INTO_CGROUP is killed at birth.
            if let Some(old) = self.slots[i].cgroup.take() {
                self.retired.push(old);
            }
            let made = match self.slots[i].spare.take() {
                Some(spare) => Some(spare),
                None => {
                    self.cgroup_runs += 1;
                    cgroups.unit(&format!("{}@{}", unit.name, self.cgroup_runs)).ok()
                }
            };
            // Without a cgroup this run falls back to process groups and /proc.
            self.slots[i].cgroup = made;
        }
        let mut program = command_for(&unit.command, &unit);
        let pipes = (|| -> std::io::Result<_> {
            let flags = rustix::pipe::PipeFlags::CLOEXEC;
            let null = match &self.null {
                Some(null) => null.try_clone()?,
                None => dev_null(false)?,
            };
            Ok((rustix::pipe::pipe_with(flags)?, rustix::pipe::pipe_with(flags)?, null))
        })();
        let ((out_r, out_w), (err_r, err_w), null) = match pipes {
            Ok(p) => p,
            Err(e) => return failed(format!("creating its pipes: {e}"), 1),
        };
        program.stdio = [Some(null), Some(out_w), Some(err_w)];
        let notify = if matches!(unit.ready.as_ref().map(|c| &c.probe), Some(Probe::Notify)) {
            let owner = credentials.as_ref().map(|c| (c.uid, c.gid));
            match self.notify_socket(&unit.name, owner) {
                Ok((sock, path)) => {
                    program.env.push(("NOTIFY_SOCKET".into(), path.into()));
                    Some(sock)
                }
                Err(e) => return failed(format!("creating its notify socket: {e}"), 1),
            }
        } else {
            None
        };
        let mut launch = Launch::new()
            .group(Group::Own)
            .signal_mask(self.options.inherited.mask)
            .dispositions(self.options.inherited.dispositions())
            // If `up` dies (kill -9, the OOM killer), the service is asked to stop as `up`
            // would have asked; set in the child after its credentials change (which clears
            // it).
            .parent_death_signal(unit.stop_signal);
        launch.credentials = credentials;
        launch.cgroup = self.slots[i].cgroup.as_ref().map(UnitCgroup::dir_fd);
        let child = match launch.start(program) {
            Ok(child) => child,
            Err(e) => {
                let (text, code) = start_error(&unit.command, &unit.cwd, &e);
                return failed(text, code);
            }
        };
        let pid = match self.reaper.watch(child) {
            Ok(pid) => pid,
            Err(e) => return failed(format!("watching its process: {e}"), 1),
        };
        self.owners.insert(pid, Owner::Main(unit_id, run));
        let slot = &mut self.slots[i];
        slot.run = run;
        slot.pid = Some(pid);
        slot.started_wall = Some(std::time::SystemTime::now());
        slot.group = Some(pid);
        slot.checks = [Running::Idle; 2];
        if let Some(old) = std::mem::replace(&mut slot.notify, notify) {
            drop(old);
        }
        if let Some(sock) = &self.slots[i].notify {
            let token = NOTIFY | i as u64;
            let _ = epoll::add(&self.epoll, sock, epoll::EventData::new_u64(token), epoll::EventFlags::IN);
        }
        self.add_stream(unit_id, out_r);
        self.add_stream(unit_id, err_r);
        self.started.push(i);
        Event::Spawned { unit: unit_id, run, pid }
    }

    fn notify_socket(
        &mut self,
        name: &str,
        owner: Option<(u32, u32)>,
    ) -> std::io::Result<(UnixDatagram, std::path::PathBuf)> {
        if self.runtime.is_none() {
            self.runtime = Some(RuntimeDir::create()?);
        }
        match &self.runtime {
            Some(dir) => dir.notify_socket(name, owner),
            None => Err(std::io::ErrorKind::NotFound.into()),
        }
    }

    fn add_stream(&mut self, unit: UnitId, fd: OwnedFd) {
        let _ = rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK);
        let stream = Stream { unit, fd, lines: Lines::default(), leftover: Vec::new(), queued: false };
        let n = match self.free_streams.pop() {
            Some(n) => {
                self.streams[n] = Some(stream);
                n
            }
            None => {
                self.streams.push(Some(stream));
                self.streams.len() - 1
            }
        };
        self.slots[unit.index()].streams.push(n);
        if let Some(s) = &self.streams[n] {
            // Edge-triggered: the stream stays in the ready list until a read finds it empty,
            // so it is read a bounded amount per turn, in turn with the others.
            let flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP | epoll::EventFlags::ET;
            if epoll::add(&self.epoll, &s.fd, epoll::EventData::new_u64(n as u64), flags).is_err() {
                // Without epoll it could never be read: read it while it lasts instead.
                self.mark_ready_stream(n);
                return;
            }
        }
        // Whatever the service wrote before we watched it is not an edge: look once.
        self.mark_ready_stream(n);
    }

    // --- trees and probes ---------------------------------------------------------------------

    fn signal_tree(&mut self, unit: UnitId, run: u64, signal: Signal) {
        let slot = &mut self.slots[unit.index()];
        if slot.run != run {
            return;
        }
        if signal == Signal::KILL && slot.pid.is_none() && slot.cgroup.is_some() {
            // The run has ended: what it left is killed once the replacement, if any, is on
            // its way (in a cgroup of its own), at the end of this turn.
            if let Some(cg) = slot.cgroup.take() {
                self.dying.push(cg);
            }
            return;
        }
        let slot = &self.slots[unit.index()];
        match &slot.cgroup {
            Some(cg) => drop(cg.signal(signal)),
            None => drop(tree::signal_fallback(slot.pid, slot.group, &self.machine.unit(unit).name, signal)),
        }
    }

    fn start_probe(&mut self, unit_id: UnitId, run: u64, kind: CheckKind, attempt: u64) {
        let i = unit_id.index();
        let unit = self.machine.unit(unit_id);
        let check = match kind {
            CheckKind::Ready => unit.ready.as_ref(),
            CheckKind::Live => unit.liveness.as_ref(),
        };
        let Some(check) = check else { return };
        let reply = |result: Result<(), ProbeFailure>| Event::Probed { unit: unit_id, run, kind, attempt, result };
        match &check.probe {
            Probe::Exec(line) => {
                if let Running::Exec { .. } = self.slots[i].checks[slot_of(kind)] {
                    self.events.push_back(reply(Err(ProbeFailure::StillRunning)));
                    return;
                }
                let mut program = command_for(line, unit);
                let credentials = match (&unit.user, &unit.group) {
                    (None, None) => None,
                    (user, group) => match forkyard::users::credentials(user.as_deref(), group.as_deref()) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            self.events.push_back(reply(Err(ProbeFailure::CannotRun(e.to_string()))));
                            return;
                        }
                    },
                };
                let null = (|| {
                    Ok::<_, std::io::Error>([Some(dev_null(false)?), Some(dev_null(true)?), Some(dev_null(true)?)])
                })();
                match null {
                    Ok(null) => program.stdio = null,
                    Err(e) => {
                        self.events.push_back(reply(Err(ProbeFailure::CannotRun(format!("opening /dev/null: {e}")))));
                        return;
                    }
                }
                // In its own process group, to be killed whole on timeout, and in the unit's
                // cgroup, to go with the unit's tree.
                let mut launch = Launch::new()
                    .group(Group::Own)
                    .signal_mask(self.options.inherited.mask)
                    .dispositions(self.options.inherited.dispositions())
                    .parent_death_signal(Signal::KILL);
                launch.credentials = credentials;
                launch.cgroup = self.slots[i].cgroup.as_ref().map(UnitCgroup::dir_fd);
                match launch.start(program).and_then(|c| self.reaper.watch(c)) {
                    Ok(pid) => {
                        self.owners.insert(pid, Owner::Probe(unit_id, run, kind, attempt));
                        self.slots[i].checks[slot_of(kind)] = Running::Exec { pid, attempt };
                    }
                    Err(e) => {
                        let (text, _) = start_error(line, &unit.cwd, &e);
                        self.events.push_back(reply(Err(ProbeFailure::CannotRun(text))));
                    }
                }
            }
            Probe::Tcp(_) | Probe::Http(_) => {
                if let Running::Net { .. } = self.slots[i].checks[slot_of(kind)] {
                    // A thread still on the previous attempt: never more than one per check.
                    self.events.push_back(reply(Err(ProbeFailure::StillRunning)));
                    return;
                }
                let probe = check.probe.clone();
                let timeout = check.timeout;
                let (tx, wake) = (self.probe_tx.clone(), std::sync::Arc::clone(&self.probe_wake));
                let spawned = std::thread::Builder::new().name("forkyard-probe".into()).spawn(move || {
                    let result = match &probe {
                        Probe::Http(h) => crate::probe::http(h, timeout),
                        Probe::Tcp(addr) => crate::probe::tcp(addr, timeout),
                        _ => Ok(()),
                    };
                    let _ = tx.send((unit_id, run, kind, attempt, result));
                    let _ = rustix::io::write(&*wake, &1u64.to_ne_bytes());
                });
                match spawned {
                    Ok(_) => self.slots[i].checks[slot_of(kind)] = Running::Net { attempt },
                    Err(e) => {
                        self.events.push_back(reply(Err(ProbeFailure::CannotRun(format!("starting a thread: {e}")))))
                    }
                }
            }
            Probe::Log(_) | Probe::Notify => {}
        }
    }

    fn on_probe_results(&mut self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&*self.probe_wake, &mut buf);
        while let Ok((unit, run, kind, attempt, result)) = self.probe_rx.try_recv() {
            let slot = &mut self.slots[unit.index()];
            if slot.checks[slot_of(kind)] == (Running::Net { attempt }) {
                slot.checks[slot_of(kind)] = Running::Idle;
            }
            let result = result.map_err(ProbeFailure::Network);
            self.events.push_back(Event::Probed { unit, run, kind, attempt, result });
        }
    }

    // --- the kernel's news ---------------------------------------------------------------------

    fn on_signals(&mut self) {
        let mut batch = [SignalInfo::default(); 16];
        let mut chld = false;
        // Bounded: a flood of signals cannot hold the turn.
        for _ in 0..4 {
            let n = match self.signals.read_batch(&mut batch) {
                Ok(n) => n,
                Err(e) => {
                    self.events.push_back(Event::Fatal(format!("reading signals: {e}")));
                    return;
                }
            };
            for info in &batch[..n] {
                if info.signal == Signal::CHLD {
                    chld = true;
                } else {
                    self.events.push_back(Event::Signal(info.signal));
                }
            }
            if n < batch.len() {
                break;
            }
        }
        if chld {
            self.reap();
        }
    }

    fn reap(&mut self) {
        let reaped = match self.reaper.try_reap() {
            Ok(r) => r,
            Err(e) => {
                self.events.push_back(Event::Fatal(format!("collecting children: {e}")));
                return;
            }
        };
        for r in reaped {
            match self.owners.remove(&r.pid) {
                Some(Owner::Main(unit, run)) => {
                    let slot = &mut self.slots[unit.index()];
                    if slot.pid == Some(r.pid) {
                        slot.pid = None;
                    }
                    *slot.exits.entry(r.status.shell_code()).or_insert(0) += 1;
                    // What it wrote last comes before the news of its end (as far as the
                    // output has room).
                    let mine = self.slots[unit.index()].streams.clone();
                    for n in mine {
                        // What did not fit in the output is read in turn later: its edge
                        // is spent, so it must be queued here.
                        if self.read_stream(n) {
                            self.mark_ready_stream(n);
                        }
                    }
                    self.events.push_back(Event::Exited { unit, run, status: r.status });
                }
                Some(Owner::Probe(unit, run, kind, attempt)) => {
                    let slot = &mut self.slots[unit.index()];
                    if matches!(slot.checks[slot_of(kind)], Running::Exec { pid, .. } if pid == r.pid) {
                        slot.checks[slot_of(kind)] = Running::Idle;
                    }
                    let result = if r.status.success() { Ok(()) } else { Err(ProbeFailure::Exited(r.status)) };
                    self.events.push_back(Event::Probed { unit, run, kind, attempt, result });
                }
                // An orphan adopted by us: collecting it was the job.
                None => {}
            }
        }
        self.sweep_retired = true;
    }

    fn on_notify(&mut self, i: usize) {
        let Some(sock) = &self.slots[i].notify else { return };
        let mut buf = [0u8; 4096];
        let mut ready = false;
        for _ in 0..DATAGRAMS_PER_TURN {
            match sock.recv(&mut buf) {
                Ok(n) => ready |= buf[..n].split(|&b| b == b'\n').any(|l| l == b"READY=1"),
                Err(_) => break,
            }
        }
        if ready {
            self.events.push_back(Event::ReadySignal { unit: id(i), run: self.slots[i].run });
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.events.push_back(Event::Timer(timer));
        }
    }

    // --- output ----------------------------------------------------------------------------------

    fn mark_ready_stream(&mut self, n: usize) {
        if let Some(Some(s)) = self.streams.get_mut(n) {
            if !s.queued {
                s.queued = true;
                self.ready.push_back(n);
            }
        }
    }

    fn can_pump(&self) -> bool {
        !self.ready.is_empty() && self.output.has_room()
    }

    /// One round over the ready streams: one bounded read each, while the output has room.
    fn pump(&mut self) {
        for _ in 0..self.ready.len() {
            if !self.output.has_room() {
                // The loop asks to be woken through ROOM once the writer has caught up
                // (before it sleeps); until then the services' pipes fill and their writes
                // block.
                return;
            }
            let Some(n) = self.ready.pop_front() else { return };
            if let Some(Some(s)) = self.streams.get_mut(n) {
                s.queued = false;
            }
            if self.read_stream(n) {
                self.mark_ready_stream(n);
            }
        }
    }

    /// Reads once from stream `n` (after what was left over) and hands the lines on; returns
    /// whether it may have more.
    fn read_stream(&mut self, n: usize) -> bool {
        let Some(Some(stream)) = self.streams.get_mut(n) else { return false };
        if !stream.leftover.is_empty() {
            let rest = std::mem::take(&mut stream.leftover);
            let used = self.consume(n, &rest);
            if let Some(Some(stream)) = self.streams.get_mut(n) {
                stream.leftover = rest[used..].to_vec();
                if !stream.leftover.is_empty() {
                    return true;
                }
            }
        }
        let Some(Some(stream)) = self.streams.get_mut(n) else { return false };
        let mut buf = std::mem::take(&mut self.read_buf);
        let more = match rustix::io::read(&stream.fd, &mut buf[..]) {
            Ok(0) => {
                self.close_stream(n);
                false
            }
            Ok(got) => {
                let used = self.consume(n, &buf[..got]);
                if used < got {
                    if let Some(Some(stream)) = self.streams.get_mut(n) {
                        stream.leftover = buf[used..got].to_vec();
                    }
                }
                true
            }
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => false,
            Err(_) => {
                self.close_stream(n);
                false
            }
        };
        self.read_buf = buf;
        more
    }

    /// Turns `data` from stream `n` into lines (output, log file, log readiness), slice by
    /// slice while the output has room; returns how much was used.
    fn consume(&mut self, n: usize, data: &[u8]) -> usize {
        let words = self.options.words;
        let Driver { streams, slots, machine, output, events, control, kept, .. } = self;
        let Some(Some(stream)) = streams.get_mut(n) else { return data.len() };
        let unit = stream.unit;
        let slot = &mut slots[unit.index()];
        let name = machine.unit(unit).name.as_str();
        let watch = machine.wants_log_ready(unit) && slot.run > 0;
        let keep = control.is_some();
        kept.clear();
        let mut matched = false;
        let mut log_error = None;
        let mut used = 0;
        output.start_batch(name, unit.index());
        for piece in data.chunks(SLICE) {
            if !output.has_room() {
                break;
            }
            stream.lines.feed(piece, |line| {
                output.batch_line(line);
                if keep {
                    kept.extend_from_slice(line);
                    kept.push(b'\n');
                }
                if let Some(log) = &mut slot.log {
                    match log.line(line) {
                        Ok(()) => slot.log_failing = false,
                        Err(e) => log_error = Some(e),
                    }
                }
                if watch && !matched {
                    matched = slot.regex.as_ref().is_some_and(|r| r.is_match(&String::from_utf8_lossy(line)));
                }
            });
            used += piece.len();
        }
        if matched {
            events.push_back(Event::ReadySignal { unit, run: slot.run });
        }
        if let Some(ctl) = control {
            ctl.keep_lines(unit.index(), &slot.name, kept);
        }
        if let Some(e) = log_error {
            if !slot.log_failing {
                slot.log_failing = true;
                let notice = Notice::LogFile {
                    unit: name.to_string(),
                    path: machine.unit(unit).log_file.clone().unwrap_or_default(),
                    error: e.to_string(),
                };
                output.event(&words(&notice));
            }
        }
        used
    }

    fn close_stream(&mut self, n: usize) {
        let Some(mut stream) = self.streams.get_mut(n).and_then(Option::take) else { return };
        let _ = epoll::delete(&self.epoll, &stream.fd);
        self.slots[stream.unit.index()].streams.retain(|&m| m != n);
        let mut last = None;
        stream.lines.finish(|l| last = Some(l.to_vec()));
        if let Some(line) = last {
            let name = self.machine.unit(stream.unit).name.clone();
            self.output.line(&name, stream.unit.index(), &line);
            if let Some(ctl) = &self.control {
                let mut kept = line.clone();
                kept.push(b'\n');
                ctl.keep_lines(stream.unit.index(), &self.slots[stream.unit.index()].name, &kept);
            }
            if let Some(log) = &mut self.slots[stream.unit.index()].log {
                let _ = log.line(&line);
            }
        }
        self.free_streams.push(n);
    }

    // --- the end ---------------------------------------------------------------------------------

    /// Before exiting: nothing we started, directly or not, may be left.
    fn finish(&mut self, code: i32) -> i32 {
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            match &slot.cgroup {
                Some(cg) => drop(cg.signal(Signal::KILL)),
                None => drop(tree::signal_fallback(slot.pid, slot.group, &self.machine.unit(id(i)).name, Signal::KILL)),
            }
        }
        for cg in self.dying.drain(..).chain(self.slots.iter_mut().filter_map(|s| s.spare.take())) {
            self.retired.push(cg);
        }
        for cg in &self.retired {
            cg.kill();
        }
        let me = Pid::this();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let _ = self.reaper.try_reap();
            let Ok(snap) =
                forkyard::procs::Snapshot::take_with(forkyard::procs::ScanOptions { cmdline: false, threads: 1 })
            else {
                break;
            };
            if snap.children(me).count() == 0 || Instant::now() > deadline {
                break;
            }
            snap.signal_descendants(me, Signal::KILL);
            let _ = self.signals.read(Some(Duration::from_millis(50)));
        }
        // The last lines of every stream still open (a bounded number of reads: whatever
        // could still write to them has been killed, but a pipe may be shared with a process
        // outside our reach).
        for n in 0..self.streams.len() {
            for _ in 0..16 {
                if !self.output.has_room() || !self.read_stream(n) {
                    break;
                }
            }
            self.close_stream(n);
        }
        for slot in &mut self.slots {
            if let Some(cg) = slot.cgroup.take() {
                self.retired.push(cg);
            }
        }
        self.retired.retain(|c| !c.remove());
        self.cgroups = None;
        self.runtime = None;
        self.close_control();
        let dropped = self.output.take_dropped();
        if dropped > 0 {
            self.say(&Notice::OutputDropped { count: dropped });
        }
        // A reader that takes nothing for a second is not reading: exit anyway.
        self.output.finish(Duration::from_secs(1));
        code
    }
}

impl Slot {
    /// The slot of a unit that has not run yet: its log file opened, its readiness pattern
    /// compiled.
    fn new(unit: &Unit) -> Result<Slot, SetupError> {
        let regex = match unit.ready.as_ref().map(|c| &c.probe) {
            Some(Probe::Log(r)) => regex_lite::Regex::new(r).ok(),
            _ => None,
        };
        let log =
            match &unit.log_file {
                Some(path) => {
                    let owner = match (&unit.user, &unit.group) {
                        (None, None) => None,
                        (user, group) => {
                            forkyard::users::credentials(user.as_deref(), group.as_deref()).ok().map(|c| c.uid)
                        }
                    };
                    Some(LogFile::open(path.clone(), unit.log_max_size, unit.log_keep, owner).map_err(|source| {
                        SetupError::LogFile { unit: unit.name.clone(), path: path.clone(), source }
                    })?)
                }
                None => None,
            };
        Ok(Slot {
            run: 0,
            pid: None,
            group: None,
            cgroup: None,
            spare: None,
            notify: None,
            log,
            log_failing: false,
            regex,
            checks: [Running::Idle; 2],
            streams: Vec::new(),
            exits: BTreeMap::new(),
            started_wall: None,
            name: std::sync::Arc::from(unit.name.as_str()),
        })
    }
}

fn id(i: usize) -> UnitId {
    // Units are numbered by their index in the plan; the machine gives out the same ids.
    UnitId::from_index(i)
}

fn slot_of(kind: CheckKind) -> usize {
    match kind {
        CheckKind::Ready => 0,
        CheckKind::Live => 1,
    }
}

/// `line` (the unit's command or one of its checks) in the unit's directory and
/// environment, with the unit's name in `FORKYARD_SERVICE`.
fn command_for(line: &CommandLine, unit: &Unit) -> Program {
    let mut program = match line {
        CommandLine::Argv(argv) => Program::new(argv),
        CommandLine::Shell(s) => Program::new(["/bin/sh", "-c", s.as_str()]),
    };
    program.cwd = Some(unit.cwd.clone());
    program.env = unit.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
    program.env.push((tree::UNIT_VARIABLE.into(), unit.name.clone().into()));
    program
}

/// `/dev/null`, open for reading or for writing.
fn dev_null(write: bool) -> std::io::Result<OwnedFd> {
    std::fs::OpenOptions::new().read(!write).write(write).open("/dev/null").map(OwnedFd::from)
}

/// A failed start in words, and the code a shell would give it: 127 when the program was not
/// found, 126 when it could not be executed, 1 for anything else (a bad directory, a setup
/// step refused).
fn start_error(line: &CommandLine, cwd: &std::path::Path, e: &forkyard::Error) -> (String, u8) {
    let program = match line {
        CommandLine::Argv(a) => a.first().cloned().unwrap_or_default(),
        CommandLine::Shell(_) => "/bin/sh".into(),
    };
    match e {
        forkyard::Error::Start { step: StartStep::Exec, source, .. } => {
            let code = match source.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => 127,
                Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EISDIR) | Some(libc::EPERM) => 126,
                _ => 1,
            };
            (format!("{program}: {}", forkyard::error::strerror(source)), code)
        }
        forkyard::Error::Start { step: StartStep::Chdir, source, .. } => {
            (format!("cannot enter its directory {} (cwd): {}", cwd.display(), forkyard::error::strerror(source)), 1)
        }
        other => (other.to_string(), 1),
    }
}
