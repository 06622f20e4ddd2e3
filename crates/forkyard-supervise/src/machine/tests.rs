//! The machine's policies, driven by made-up events on a made-up clock: no process, no
//! thread, no sleep. A small simulated driver (`Sim`) answers spawns, keeps the armed timers
//! and fires them as its clock moves on, so each test reads as the story it checks.

use std::path::Path;
use std::time::{Duration, Instant};

use forkyard::{ExitStatus, Pid, Signal};

use super::*;
use crate::config::{Condition, Restart};
use crate::notice::{BlockedBecause, Notice, ProbeFailure};

struct Sim {
    m: Machine,
    ids: std::collections::HashMap<String, UnitId>,
    now: Instant,
    t0: Instant,
    /// Every action so far, in order.
    log: Vec<Action>,
    /// Armed timers not yet fired.
    timers: Vec<(Instant, Timer)>,
    /// Spawns not answered yet.
    spawns: Vec<(UnitId, u64)>,
    /// Answer spawns at once with a new PID.
    auto_spawn: bool,
    next_pid: i32,
    exit: Option<i32>,
}

fn plan(toml: &str) -> Plan {
    crate::config::parse_toml(toml, Path::new("forkyard.toml")).expect("a valid configuration")
}

impl Sim {
    fn new(toml: &str) -> Sim {
        Sim::with(toml, Settings::default())
    }

    fn with(toml: &str, settings: Settings) -> Sim {
        let now = Instant::now();
        let m = Machine::new(&plan(toml), settings);
        Sim {
            ids: m.ids().map(|id| (m.unit(id).name.clone(), id)).collect(),
            m,
            now,
            t0: now,
            log: Vec::new(),
            timers: Vec::new(),
            spawns: Vec::new(),
            auto_spawn: true,
            next_pid: 100,
            exit: None,
        }
    }

    fn id(&self, name: &str) -> UnitId {
        *self.ids.get(name).unwrap_or_else(|| panic!("no unit {name}"))
    }

    fn run_of(&self, name: &str) -> u64 {
        self.m.units[self.id(name).index()].run
    }

    /// Feeds one event, then answers what a driver would answer at once (spawns).
    fn send(&mut self, event: Event) {
        let mut queue = std::collections::VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let mut out = Vec::new();
            self.m.handle(event, self.now, &mut out);
            self.take(out, &mut queue);
        }
    }

    /// Calls the machine directly (a control request, a reload), then answers as `send`.
    fn call<R>(&mut self, f: impl FnOnce(&mut Machine, Instant, &mut Vec<Action>) -> R) -> R {
        let mut out = Vec::new();
        let r = f(&mut self.m, self.now, &mut out);
        let mut queue = std::collections::VecDeque::new();
        self.take(out, &mut queue);
        while let Some(event) = queue.pop_front() {
            let mut out = Vec::new();
            self.m.handle(event, self.now, &mut out);
            self.take(out, &mut queue);
        }
        r
    }

    fn take(&mut self, out: Vec<Action>, queue: &mut std::collections::VecDeque<Event>) {
        for action in &out {
            match action {
                Action::Arm { at, timer } => self.timers.push((*at, *timer)),
                Action::Spawn { unit, run } => {
                    if self.auto_spawn {
                        self.next_pid += 1;
                        let pid = Pid::new(self.next_pid).expect("pid");
                        queue.push_back(Event::Spawned { unit: *unit, run: *run, pid });
                    } else {
                        self.spawns.push((*unit, *run));
                    }
                }
                Action::Exit { code } => {
                    assert!(self.exit.is_none(), "exit asked twice");
                    self.exit = Some(*code);
                }
                _ => {}
            }
        }
        self.log.extend(out);
    }

    /// Moves the clock on by `d`, firing due timers in time order.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.timers.sort_by_key(|(at, t)| (*at, *t));
            match self.timers.first() {
                Some((at, _)) if *at <= end => {
                    let (at, timer) = self.timers.remove(0);
                    self.now = self.now.max(at);
                    self.send(Event::Timer(timer));
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn exit(&mut self, name: &str, status: ExitStatus) {
        let (unit, run) = (self.id(name), self.run_of(name));
        self.send(Event::Exited { unit, run, status });
    }

    fn notices(&self) -> Vec<&Notice> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::Notice(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    fn started(&self) -> Vec<String> {
        self.notices()
            .into_iter()
            .filter_map(|n| match n {
                Notice::Started { unit, .. } => Some(unit.clone()),
                _ => None,
            })
            .collect()
    }

    fn has(&self, wanted: &Notice) -> bool {
        self.notices().contains(&wanted)
    }

    /// The position in the log of the first action matching `f`.
    fn position(&self, f: impl Fn(&Action) -> bool) -> usize {
        self.log.iter().position(f).unwrap_or_else(|| panic!("no such action in {:#?}", self.log))
    }

    fn since(&self) -> Duration {
        self.now - self.t0
    }
}

const FAIL: ExitStatus = ExitStatus::Exited(1);
const OK: ExitStatus = ExitStatus::Exited(0);
const TERMED: ExitStatus = ExitStatus::Signaled { signal: Signal::TERM, core_dumped: false };
const MS: Duration = Duration::from_millis(1);

fn stopping(unit: &str) -> impl Fn(&Action) -> bool + '_ {
    move |a| matches!(a, Action::Notice(Notice::Stopping { unit: u, .. }) if u == unit)
}

// --- dependency gating ----------------------------------------------------------------------

#[test]
fn started_dependencies_wait_for_a_start_only() {
    let mut sim = Sim::new("[services.db]\ncommand = \"x\"\n[services.web]\ncommand = \"x\"\ndepends_on = [\"db\"]\n");
    sim.auto_spawn = false;
    sim.send(Event::Boot);
    assert_eq!(sim.spawns, [(sim.id("db"), 1)], "web waits");
    assert!(sim.has(&Notice::Waiting { unit: "web".into(), on: vec![("db".into(), Condition::Started)] }));
    let db = sim.id("db");
    sim.spawns.clear();
    sim.send(Event::Spawned { unit: db, run: 1, pid: Pid::new(7).expect("pid") });
    assert_eq!(sim.spawns, [(sim.id("web"), 1)], "db started: web may start");
}

#[test]
fn ready_dependencies_wait_for_the_check_to_pass() {
    let mut sim = Sim::new(
        "[services.db]\ncommand = \"x\"\nready = { tcp = \"127.0.0.1:1\", interval = \"100ms\" }\n[services.web]\ncommand = \"x\"\ndepends_on = { db = \"ready\" }\n",
    );
    sim.send(Event::Boot);
    assert_eq!(sim.started(), ["db"]);
    // The first attempt is at once (initial_delay 0), and fails.
    sim.advance(Duration::ZERO);
    let db = sim.id("db");
    let attempt = |sim: &Sim| {
        sim.log
            .iter()
            .rev()
            .find_map(|a| match a {
                Action::StartProbe { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .expect("a probe was started")
    };
    let a1 = attempt(&sim);
    let refused = ProbeFailure::Network("connection refused".into());
    sim.send(Event::Probed { unit: db, run: 1, kind: CheckKind::Ready, attempt: a1, result: Err(refused.clone()) });
    assert_eq!(sim.started(), ["db"], "not ready: web still waits");
    sim.advance(100 * MS);
    let a2 = attempt(&sim);
    assert_ne!(a1, a2, "a second attempt after the interval");
    sim.send(Event::Probed { unit: db, run: 1, kind: CheckKind::Ready, attempt: a2, result: Ok(()) });
    assert_eq!(sim.started(), ["db", "web"]);
    assert!(sim.has(&Notice::Ready { unit: "db".into() }));
}

#[test]
fn completed_dependencies_wait_for_success_and_block_on_failure() {
    let toml = "[services.migrate]\ncommand = \"x\"\noneshot = true\nrestart = \"never\"\n[services.app]\ncommand = \"x\"\ndepends_on = { migrate = \"completed_successfully\" }\n";
    let mut sim = Sim::new(toml);
    sim.send(Event::Boot);
    assert_eq!(sim.started(), ["migrate"]);
    sim.exit("migrate", OK);
    assert_eq!(sim.started(), ["migrate", "app"]);
    assert!(sim.has(&Notice::Completed { unit: "migrate".into() }));

    let mut sim = Sim::new(toml);
    sim.send(Event::Boot);
    sim.exit("migrate", ExitStatus::Exited(4));
    assert_eq!(sim.started(), ["migrate"]);
    assert!(sim.has(&Notice::Blocked {
        unit: "app".into(),
        dependency: "migrate".into(),
        condition: Condition::CompletedSuccessfully,
        because: BlockedBecause::EndedWithout,
    }));
    assert_eq!(sim.m.phase(sim.id("app")), Phase::Blocked);
    assert_eq!(sim.exit, Some(4), "everything ended; the first failure's status");
}

#[test]
fn a_block_runs_down_a_chain_without_recursion_and_exits_1() {
    // c waits for b which waits for a; a can never start.
    let mut sim = Sim::new(
        "[services.a]\ncommand = \"x\"\nmax_restarts = 0\n[services.b]\ncommand = \"x\"\ndepends_on = [\"a\"]\n[services.c]\ncommand = \"x\"\ndepends_on = [\"b\"]\n",
    );
    sim.auto_spawn = false;
    sim.send(Event::Boot);
    let a = sim.id("a");
    sim.send(Event::SpawnFailed { unit: a, run: 1, error: "no such program".into(), code: 127 });
    assert_eq!(sim.m.phase(a), Phase::Failed);
    assert_eq!(sim.m.phase(sim.id("b")), Phase::Blocked);
    assert_eq!(sim.m.phase(sim.id("c")), Phase::Blocked);
    assert!(sim.has(&Notice::Blocked {
        unit: "c".into(),
        dependency: "b".into(),
        condition: Condition::Started,
        because: BlockedBecause::Blocked,
    }));
    assert_eq!(sim.exit, Some(127), "a's start failure, as a shell's 127");
}

#[test]
fn a_dependency_that_ends_before_being_ready_blocks() {
    let mut sim = Sim::new(
        "[services.db]\ncommand = \"x\"\nready = { exec = \"true\" }\nrestart = \"never\"\n[services.web]\ncommand = \"x\"\ndepends_on = { db = \"ready\" }\n",
    );
    sim.send(Event::Boot);
    sim.exit("db", ExitStatus::Exited(2));
    assert_eq!(sim.m.phase(sim.id("web")), Phase::Blocked);
    assert_eq!(sim.exit, Some(2));
}

#[test]
fn a_dependency_met_once_stays_met_through_restarts() {
    let mut sim = Sim::new(
        "[services.db]\ncommand = \"x\"\nrestart = \"always\"\n[services.web]\ncommand = \"x\"\ndepends_on = [\"db\"]\n[services.late]\ncommand = \"x\"\ndepends_on = [\"db\", \"web\"]\n",
    );
    sim.send(Event::Boot);
    assert_eq!(sim.started(), ["db", "web", "late"]);
    sim.advance(5 * Duration::from_secs(1));
    sim.exit("db", FAIL);
    sim.advance(Duration::ZERO);
    assert_eq!(sim.started(), ["db", "web", "late", "db"], "only db starts again");
}

// --- restarts, backoff and budget --------------------------------------------------------------

#[test]
fn quick_crashes_back_off_and_the_budget_gives_up() {
    let mut sim = Sim::new(
        "[services.c]\ncommand = \"x\"\nbackoff_initial = \"20ms\"\nbackoff_max = \"50ms\"\nmax_restarts = 3\n",
    );
    sim.send(Event::Boot);
    let mut delays = Vec::new();
    for _ in 0..4 {
        sim.exit("c", FAIL);
        if let Some(Notice::Restarting { delay, .. }) = sim.notices().last().copied() {
            delays.push(delay.as_millis());
        }
        sim.advance(Duration::from_millis(60));
    }
    assert_eq!(delays, [20, 40, 50]);
    assert!(sim.has(&Notice::GaveUp { unit: "c".into(), restarts: 3, window: Duration::from_secs(60), max: 3 }));
    assert_eq!(sim.m.phase(sim.id("c")), Phase::Failed);
    assert_eq!(sim.exit, Some(1));
    assert_eq!(sim.started().len(), 4);
}

#[test]
fn a_restart_at_zero_delay_is_a_spawn_whose_outcome_comes_back_later() {
    let mut sim =
        Sim::new("[services.c]\ncommand = \"x\"\nstable_after = \"0\"\nrestart_window = \"0\"\nmax_restarts = 10000\n");
    sim.auto_spawn = false;
    sim.send(Event::Boot);
    let (c, run) = sim.spawns.pop().expect("the first spawn");
    sim.send(Event::Spawned { unit: c, run, pid: Pid::new(50).expect("pid") });
    sim.exit("c", FAIL);
    // The new run is asked for at once, and the machine returns: what happens to it is the
    // next event, not a call made from in here.
    assert_eq!(sim.spawns, [(c, 2)]);
    assert_eq!(sim.m.phase(c), Phase::Starting);
    assert_eq!(sim.started().len(), 1);
    sim.send(Event::Spawned { unit: c, run: 2, pid: Pid::new(51).expect("pid") });
    assert_eq!(sim.started().len(), 2);
}

#[test]
fn a_start_that_keeps_failing_never_loops_within_an_event() {
    // The configuration that crashed the old engine: every start fails, nothing bounds it.
    let mut sim = Sim::new(
        "[services.bad]\ncommand = [\"true\"]\ncwd = \"/nonexistent-dir\"\nstable_after = \"0\"\nrestart_window = \"0\"\nbackoff_initial = \"0\"\nbackoff_max = \"0\"\nmax_restarts = 10000\n",
    );
    sim.auto_spawn = false;
    sim.send(Event::Boot);
    for round in 1..=1000u64 {
        let (unit, run) = sim.spawns.pop().expect("one spawn per round");
        assert_eq!(run, round);
        sim.send(Event::SpawnFailed { unit, run, error: "chdir: No such file or directory".into(), code: 1 });
        assert!(sim.spawns.is_empty(), "the retry waits for its timer");
        sim.advance(crate::policy::MIN_RETRY_AFTER_FAILED_START);
    }
    assert!(sim.since() >= 1000 * crate::policy::MIN_RETRY_AFTER_FAILED_START, "each retry waited the floor");
}

#[test]
fn a_stale_restart_timer_is_ignored() {
    let mut sim = Sim::new("[services.c]\ncommand = \"x\"\nbackoff_initial = \"1s\"\n");
    sim.send(Event::Boot);
    sim.exit("c", FAIL);
    // A timer of run 1 that fires again later (duplicated, or left from before) must not start
    // a second process once run 2 is on.
    let stale = Timer { unit: sim.id("c"), run: 1, kind: TimerKind::Restart };
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.started().len(), 2);
    sim.send(Event::Timer(stale));
    assert_eq!(sim.started().len(), 2);
    assert_eq!(sim.m.phase(sim.id("c")), Phase::Running);
}

// --- checks --------------------------------------------------------------------------------------

fn last_probe(sim: &Sim) -> (UnitId, u64, CheckKind, u64) {
    sim.log
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::StartProbe { unit, run, kind, attempt } => Some((*unit, *run, *kind, *attempt)),
            _ => None,
        })
        .expect("a probe")
}

#[test]
fn a_readiness_failure_is_told_when_its_reason_changes() {
    let mut sim = Sim::new("[services.db]\ncommand = \"x\"\nready = { tcp = \"127.0.0.1:1\", interval = \"10ms\" }\n");
    sim.send(Event::Boot);
    let reasons = [
        ProbeFailure::Network("connection refused".into()),
        ProbeFailure::Network("connection refused".into()),
        ProbeFailure::Network("answered 500".into()),
        ProbeFailure::Network("answered 500".into()),
    ];
    for reason in reasons {
        sim.advance(10 * MS);
        let (unit, run, kind, attempt) = last_probe(&sim);
        sim.send(Event::Probed { unit, run, kind, attempt, result: Err(reason) });
    }
    let told: Vec<&ProbeFailure> = sim
        .notices()
        .into_iter()
        .filter_map(|n| match n {
            Notice::NotReady { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        [&ProbeFailure::Network("connection refused".into()), &ProbeFailure::Network("answered 500".into())]
    );
}

#[test]
fn an_attempt_that_times_out_is_cancelled_and_counted_as_a_failure() {
    let mut sim = Sim::new(
        "[services.app]\ncommand = \"x\"\nliveness = { exec = \"sleep 9\", interval = \"1s\", timeout = \"200ms\", failure_threshold = 1 }\n",
    );
    sim.send(Event::Boot);
    sim.advance(Duration::from_secs(1));
    let (unit, run, kind, attempt) = last_probe(&sim);
    sim.advance(200 * MS);
    assert!(sim.log.contains(&Action::CancelProbe { unit, run, kind, attempt }), "the hung check is killed");
    assert!(sim.has(&Notice::LivenessFailed {
        unit: "app".into(),
        count: 1,
        threshold: 1,
        reason: ProbeFailure::TimedOut(200 * MS),
    }));
    // Its late result changes nothing.
    let stops = sim.log.iter().filter(|a| stopping("app")(a)).count();
    sim.send(Event::Probed { unit, run, kind, attempt, result: Ok(()) });
    assert_eq!(sim.log.iter().filter(|a| stopping("app")(a)).count(), stops);
}

#[test]
fn liveness_restarts_after_the_threshold_in_a_row() {
    let mut sim = Sim::new(
        "[services.app]\ncommand = \"x\"\nliveness = { exec = \"false\", interval = \"50ms\", failure_threshold = 3 }\n",
    );
    sim.send(Event::Boot);
    let fail = ProbeFailure::Exited(FAIL);
    // fail, fail, pass: the count starts again.
    for result in [Err(fail.clone()), Err(fail.clone()), Ok(())] {
        sim.advance(50 * MS);
        let (unit, run, kind, attempt) = last_probe(&sim);
        sim.send(Event::Probed { unit, run, kind, attempt, result });
    }
    assert!(!sim.log.iter().any(stopping("app")));
    for _ in 0..3 {
        sim.advance(50 * MS);
        let (unit, run, kind, attempt) = last_probe(&sim);
        sim.send(Event::Probed { unit, run, kind, attempt, result: Err(fail.clone()) });
    }
    assert!(sim.has(&Notice::LivenessRestart { unit: "app".into(), count: 3 }));
    let (id, run) = (sim.id("app"), sim.run_of("app"));
    assert!(sim.log.contains(&Action::Signal { unit: id, run, signal: Signal::TERM }));
    sim.exit("app", ExitStatus::Signaled { signal: Signal::TERM, core_dumped: false });
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.started().len(), 2, "started again after it stopped");
}

#[test]
fn a_readiness_deadline_fails_the_service_and_blocks_its_dependents() {
    let mut sim = Sim::new(
        "[services.db]\ncommand = \"x\"\nready = { exec = \"false\", interval = \"1s\" }\n[services.web]\ncommand = \"x\"\ndepends_on = { db = \"ready\" }\n",
    );
    // The loader does not know `deadline` yet everywhere; set it on the unit directly.
    let db = sim.id("db");
    if let Some(check) = sim.m.units[db.index()].unit.ready.as_mut() {
        check.deadline = Some(Duration::from_secs(3));
    }
    sim.send(Event::Boot);
    for _ in 0..2 {
        sim.advance(Duration::from_secs(1));
        let (unit, run, kind, attempt) = last_probe(&sim);
        sim.send(Event::Probed { unit, run, kind, attempt, result: Err(ProbeFailure::Exited(ExitStatus::Exited(3))) });
    }
    sim.advance(Duration::from_secs(1));
    assert!(sim.has(&Notice::ReadyDeadline {
        unit: "db".into(),
        deadline: Duration::from_secs(3),
        last: Some(ProbeFailure::Exited(ExitStatus::Exited(3))),
    }));
    sim.exit("db", ExitStatus::Signaled { signal: Signal::TERM, core_dumped: false });
    assert_eq!(sim.m.phase(db), Phase::Failed, "not restarted");
    assert!(sim.has(&Notice::Blocked {
        unit: "web".into(),
        dependency: "db".into(),
        condition: Condition::Ready,
        because: BlockedBecause::Failed,
    }));
    assert_eq!(sim.exit, Some(128 + 15), "the failed service's status");
}

#[test]
fn checks_in_flight_are_cancelled_when_the_run_ends() {
    let mut sim = Sim::new(
        "[services.app]\ncommand = \"x\"\nready = { exec = \"sleep 9\", timeout = \"1m\" }\nrestart = \"never\"\n",
    );
    sim.send(Event::Boot);
    sim.advance(Duration::ZERO);
    let (unit, run, kind, attempt) = last_probe(&sim);
    sim.exit("app", OK);
    assert!(sim.log.contains(&Action::CancelProbe { unit, run, kind, attempt }));
    assert!(sim.log.contains(&Action::KillTree { unit, run }), "what the service left goes too");
}

#[test]
fn notify_and_log_readiness_come_as_ready_signals_of_the_current_run() {
    let mut sim = Sim::new("[services.a]\ncommand = \"x\"\nready = { log = \"listening\" }\nrestart = \"always\"\n");
    sim.send(Event::Boot);
    let a = sim.id("a");
    assert!(sim.m.wants_log_ready(a));
    sim.exit("a", FAIL);
    sim.advance(Duration::from_secs(1));
    sim.send(Event::ReadySignal { unit: a, run: 1 });
    assert!(!sim.has(&Notice::Ready { unit: "a".into() }), "a signal of an ended run is stale");
    sim.send(Event::ReadySignal { unit: a, run: 2 });
    assert!(sim.has(&Notice::Ready { unit: "a".into() }));
    assert!(!sim.m.wants_log_ready(a), "no more matching once ready");
}

// --- stopping -------------------------------------------------------------------------------------

const CHAIN: &str = "[services.db]\ncommand = \"x\"\n[services.api]\ncommand = \"x\"\ndepends_on = [\"db\"]\n[services.web]\ncommand = \"x\"\ndepends_on = [\"api\"]\n";

#[test]
fn a_shutdown_stops_dependents_first_one_level_at_a_time() {
    let mut sim = Sim::new(CHAIN);
    sim.send(Event::Boot);
    sim.send(Event::Signal(Signal::TERM));
    assert!(sim.log.iter().any(stopping("web")));
    assert!(!sim.log.iter().any(stopping("api")), "api waits for web to end");
    let killed = ExitStatus::Signaled { signal: Signal::TERM, core_dumped: false };
    sim.exit("web", killed);
    assert!(sim.log.iter().any(stopping("api")) && !sim.log.iter().any(stopping("db")));
    sim.exit("api", killed);
    sim.exit("db", killed);
    assert!(sim.position(stopping("web")) < sim.position(stopping("api")));
    assert_eq!(sim.exit, Some(128 + 15));
}

#[test]
fn a_stop_that_takes_too_long_kills_the_tree() {
    let mut sim = Sim::new("[services.s]\ncommand = \"x\"\nstop_timeout = \"300ms\"\n");
    sim.send(Event::Boot);
    sim.send(Event::Signal(Signal::TERM));
    let (unit, run) = (sim.id("s"), sim.run_of("s"));
    sim.advance(299 * MS);
    assert!(!sim.log.contains(&Action::KillTree { unit, run }));
    sim.advance(MS);
    assert!(sim.log.contains(&Action::KillTree { unit, run }));
    assert!(sim.has(&Notice::StopTimeout { unit: "s".into(), timeout: 300 * MS }));
}

#[test]
fn a_second_interrupt_forces_only_a_second_or_more_after_the_first() {
    let mut sim = Sim::new(CHAIN);
    sim.send(Event::Boot);
    sim.send(Event::Signal(Signal::INT));
    // GNU timeout, npm and yarn: the same SIGINT again within microseconds.
    sim.advance(Duration::from_micros(20));
    sim.send(Event::Signal(Signal::INT));
    assert!(!sim.log.iter().any(|a| matches!(a, Action::KillTree { .. })), "a duplicate is not a second request");
    sim.advance(Duration::from_secs(1));
    sim.send(Event::Signal(Signal::INT));
    assert!(sim.has(&Notice::ForceRequested { signal: Signal::INT }));
    for name in ["db", "api", "web"] {
        let (unit, run) = (sim.id(name), sim.run_of(name));
        assert!(sim.log.contains(&Action::KillTree { unit, run }), "{name} killed at once");
    }
}

#[test]
fn repeated_terms_change_nothing() {
    let mut sim = Sim::new(CHAIN);
    sim.send(Event::Boot);
    sim.send(Event::Signal(Signal::TERM));
    sim.advance(Duration::from_secs(5));
    let before = sim.log.len();
    sim.send(Event::Signal(Signal::TERM));
    assert_eq!(sim.log.len(), before);
}

#[test]
fn a_unit_still_starting_at_shutdown_is_stopped_once_it_runs() {
    let mut sim = Sim::new("[services.s]\ncommand = \"x\"\n");
    sim.auto_spawn = false;
    sim.send(Event::Boot);
    sim.send(Event::Signal(Signal::TERM));
    assert_eq!(sim.exit, None, "its spawn is on its way");
    let (unit, run) = sim.spawns[0];
    sim.send(Event::Spawned { unit, run, pid: Pid::new(9).expect("pid") });
    assert!(sim.log.contains(&Action::Signal { unit, run, signal: Signal::TERM }));
}

// --- signals that do not stop ---------------------------------------------------------------------

#[test]
fn other_signals_reload_reopen_or_are_ignored() {
    let mut sim = Sim::new("[services.s]\ncommand = \"x\"\n");
    sim.send(Event::Boot);
    sim.send(Event::Signal(Signal::HUP));
    sim.send(Event::Signal(Signal::USR1));
    sim.send(Event::Signal(Signal::USR2));
    sim.send(Event::Signal(Signal::PIPE));
    assert!(sim.has(&Notice::ReloadRequested));
    assert!(sim.log.contains(&Action::Reload));
    assert!(sim.log.contains(&Action::ReopenLogs));
    assert!(sim.has(&Notice::SignalIgnored { signal: Signal::USR2 }));
    assert!(sim.has(&Notice::SignalIgnored { signal: Signal::PIPE }));
    assert_eq!(sim.m.phase(sim.id("s")), Phase::Running, "still running");
    assert_eq!(sim.exit, None);
}

// --- exit codes ---------------------------------------------------------------------------------------

#[test]
fn a_critical_end_ends_everything_with_its_status() {
    let mut sim = Sim::new("[services.main]\ncommand = \"x\"\ncritical = true\n[services.side]\ncommand = \"x\"\n");
    sim.send(Event::Boot);
    sim.exit("main", ExitStatus::Exited(7));
    assert!(sim.has(&Notice::EndsAll { unit: "main".into() }));
    sim.exit("side", ExitStatus::Signaled { signal: Signal::TERM, core_dumped: false });
    assert_eq!(sim.exit, Some(7));
}

#[test]
fn exit_on_first_is_not_triggered_by_a_completed_oneshot() {
    let toml = "[services.setup]\ncommand = \"x\"\noneshot = true\n[services.web]\ncommand = \"x\"\ndepends_on = { setup = \"completed_successfully\" }\n";
    let mut sim = Sim::with(toml, Settings { exit_on_first: true });
    sim.send(Event::Boot);
    sim.exit("setup", OK);
    assert_eq!(sim.exit, None);
    assert_eq!(sim.started(), ["setup", "web"]);
    sim.exit("web", ExitStatus::Exited(3));
    assert_eq!(sim.exit, Some(3), "but any other end is");
}

#[test]
fn everything_ended_well_exits_0_and_the_first_failure_in_start_order_wins() {
    let mut sim = Sim::new(
        "[services.a]\ncommand = \"x\"\nrestart = \"never\"\n[services.b]\ncommand = \"x\"\nrestart = \"never\"\n",
    );
    sim.send(Event::Boot);
    sim.exit("a", OK);
    sim.exit("b", OK);
    assert_eq!(sim.exit, Some(0));

    let mut sim = Sim::new(
        "[services.a]\ncommand = \"x\"\nrestart = \"never\"\n[services.b]\ncommand = \"x\"\nrestart = \"never\"\n",
    );
    sim.send(Event::Boot);
    sim.exit("b", ExitStatus::Exited(5));
    sim.exit("a", ExitStatus::Signaled { signal: Signal::KILL, core_dumped: false });
    assert_eq!(sim.exit, Some(128 + 9), "a comes first in start order");
}

#[test]
fn forty_thousand_instances_start_and_stop_in_linear_time() {
    let mut sim = Sim::new(
        "[services.db]\ncommand = \"x\"\n[services.w]\ncommand = \"x\"\ninstances = 40000\ndepends_on = [\"db\"]\n[services.all]\ncommand = \"x\"\ndepends_on = [\"w\"]\n",
    );
    sim.send(Event::Boot);
    assert_eq!(sim.started().len(), 40_002);
    sim.send(Event::Signal(Signal::TERM));
    assert!(sim.log.iter().any(stopping("all")));
    let killed = ExitStatus::Signaled { signal: Signal::TERM, core_dumped: false };
    sim.exit("all", killed);
    for i in 1..=40_000 {
        sim.exit(&format!("w.{i}"), killed);
    }
    sim.exit("db", killed);
    assert_eq!(sim.exit, Some(128 + 15));
}

#[test]
fn restart_policy_never_leaves_a_failed_service_down_and_says_so() {
    let mut sim = Sim::new("[services.s]\ncommand = \"x\"\nrestart = \"never\"\n");
    sim.send(Event::Boot);
    sim.exit("s", FAIL);
    assert!(sim.has(&Notice::NotRestarted { unit: "s".into(), restart: Restart::Never }));
    assert_eq!(sim.exit, Some(1));
}

#[test]
fn a_failure_never_exits_0() {
    // restart = "always" spends its budget on exits that were all successes.
    let mut sim =
        Sim::new("[services.w]\ncommand = \"x\"\nrestart = \"always\"\nmax_restarts = 2\nbackoff_initial = \"0\"\n");
    sim.send(Event::Boot);
    for _ in 0..3 {
        sim.exit("w", OK);
        sim.advance(Duration::from_secs(1));
    }
    assert_eq!(sim.m.phase(sim.id("w")), Phase::Failed);
    assert_eq!(sim.exit, Some(1));
}

// --- control requests, reloads, scaling ------------------------------------------------------------

fn signalled(sim: &Sim, name: &str, signal: Signal) -> bool {
    let (unit, run) = (sim.id(name), sim.run_of(name));
    sim.log.contains(&Action::Signal { unit, run, signal })
}

#[test]
fn a_stopped_service_stays_down_through_its_policy_until_started() {
    let mut sim = Sim::new("[services.s]\ncommand = \"x\"\nrestart = \"always\"\n[services.t]\ncommand = \"x\"\n");
    sim.send(Event::Boot);
    let s = sim.id("s");
    let answered = sim.call(|m, now, out| m.request(Request::Stop(vec![s]), now, out));
    assert_eq!(answered, [(s, 1)]);
    assert!(signalled(&sim, "s", Signal::TERM));
    assert_eq!(sim.m.state(s), State::Stopping);
    sim.exit("s", TERMED);
    assert_eq!(sim.m.state(s), State::Stopped);
    sim.advance(Duration::from_secs(120));
    assert_eq!(sim.started().iter().filter(|u| *u == "s").count(), 1, "not brought back by restart = always");
    // Another service ending does not end `up` while one is held.
    sim.exit("t", OK);
    assert_eq!(sim.exit, None, "a stopped service keeps up running");
    let answered = sim.call(|m, now, out| m.request(Request::Start(vec![s]), now, out));
    assert_eq!(answered, [(s, 2)]);
    assert_eq!(sim.m.state(s), State::Running);
    assert_eq!(sim.m.view(s).restarts, 1);
}

#[test]
fn a_restart_starts_a_new_run_at_once_with_a_fresh_budget() {
    let mut sim = Sim::new("[services.s]\ncommand = \"x\"\nmax_restarts = 1\nrestart_window = \"1h\"\n");
    sim.send(Event::Boot);
    let s = sim.id("s");
    // Spend the budget.
    sim.exit("s", FAIL);
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.run_of("s"), 2);
    for _ in 0..3 {
        let run = sim.run_of("s");
        let answered = sim.call(|m, now, out| m.request(Request::Restart(vec![s]), now, out));
        assert_eq!(answered, [(s, run + 1)], "answered by the next run");
        sim.exit("s", TERMED);
        assert_eq!(sim.run_of("s"), run + 1, "started again at once, no delay");
        assert_eq!(sim.m.state(s), State::Running);
    }
}

#[test]
fn a_stop_asked_while_starting_is_applied_once_it_runs() {
    let mut sim = Sim::new("[services.s]\ncommand = \"x\"\n");
    sim.auto_spawn = false;
    sim.send(Event::Boot);
    let (s, run) = sim.spawns.pop().expect("spawn");
    sim.call(|m, now, out| m.request(Request::Stop(vec![s]), now, out));
    assert!(!signalled(&sim, "s", Signal::TERM), "nothing to signal yet");
    sim.send(Event::Spawned { unit: s, run, pid: Pid::new(77).expect("pid") });
    assert!(signalled(&sim, "s", Signal::TERM), "stopped as soon as it runs");
    sim.exit("s", OK);
    assert_eq!(sim.m.state(s), State::Stopped);
}

#[test]
fn a_stop_while_waiting_holds_and_a_shutdown_ends_the_held() {
    let mut sim = Sim::new(
        "[services.db]\ncommand = \"x\"\nready = { exec = \"x\" }\n[services.web]\ncommand = \"x\"\ndepends_on = { db = \"ready\" }\n",
    );
    sim.send(Event::Boot);
    let web = sim.id("web");
    sim.call(|m, now, out| m.request(Request::Stop(vec![web]), now, out));
    assert_eq!(sim.m.state(web), State::Stopped);
    assert!(sim.has(&Notice::Held { unit: "web".into() }));
    sim.send(Event::ReadySignal { unit: sim.id("db"), run: 1 });
    assert!(!sim.started().contains(&"web".to_string()), "held: not started when db is ready");
    sim.send(Event::Signal(Signal::TERM));
    sim.exit("db", TERMED);
    assert_eq!(sim.exit, Some(143));
}

#[test]
fn names_find_units_and_dependents_follow() {
    let sim = Sim::new(
        "[services.db]\ncommand = \"x\"\n[services.api]\ncommand = \"x\"\ndepends_on = [\"db\"]\n[services.web]\ncommand = \"x\"\ninstances = 2\ndepends_on = [\"api\"]\n[services.other]\ncommand = \"x\"\n",
    );
    let ids = |names: &[&str]| names.iter().map(|n| sim.id(n)).collect::<Vec<_>>();
    assert_eq!(sim.m.find("web"), ids(&["web.1", "web.2"]));
    assert_eq!(sim.m.find("web.2"), ids(&["web.2"]));
    assert_eq!(sim.m.find("all").len(), 5);
    assert!(sim.m.find("nope").is_empty());
    assert_eq!(sim.m.with_dependents(&ids(&["db"])), ids(&["db", "api", "web.1", "web.2"]));
    assert_eq!(sim.m.services(), ["db", "api", "other", "web"], "in start order");
}

#[test]
fn a_reload_adds_removes_restarts_and_leaves_the_unchanged_alone() {
    let mut sim = Sim::new(
        "[services.keep]\ncommand = \"x\"\n[services.change]\ncommand = \"x\"\n[services.gone]\ncommand = \"x\"\n",
    );
    sim.send(Event::Boot);
    let (keep, change, gone) = (sim.id("keep"), sim.id("change"), sim.id("gone"));
    let keep_pid = sim.m.pid(keep);
    // `keep` moves down a line (a comment above it): where it is written is not a setting.
    let new = plan(
        "# moved\n[services.keep]\ncommand = \"x\"\n[services.change]\ncommand = \"y\"\n[services.new]\ncommand = \"x\"\ndepends_on = [\"keep\"]\n",
    );
    let done = sim.call(|m, now, out| m.reconcile(&new, now, out));
    assert_eq!(done.unchanged, [keep]);
    assert_eq!(done.changed, [change]);
    assert_eq!(done.removed, [gone]);
    assert_eq!(done.added.len(), 1);
    let added = done.added[0];
    assert_eq!(sim.m.unit(added).name, "new");
    assert_eq!(sim.m.state(added), State::Running, "its dependency runs: started");
    assert_eq!(sim.m.pid(keep), keep_pid, "same process");
    assert!(signalled(&sim, "change", Signal::TERM) && signalled(&sim, "gone", Signal::TERM));
    sim.exit("change", TERMED);
    assert_eq!(sim.run_of("change"), 2, "restarted with its new settings");
    assert_eq!(sim.m.unit(change).command, crate::config::CommandLine::Shell("y".into()));
    let gone_run = sim.run_of("gone");
    sim.exit("gone", TERMED);
    assert!(!sim.m.ids().any(|id| id == gone), "forgotten once stopped");
    assert!(sim.m.find("gone").is_empty());
    // Its slot is reused, with run numbers going on, so its stale events stay stale.
    let again = sim.call(|m, now, out| m.add(sim_unit("again"), now, out));
    assert_eq!(again, gone);
    assert_eq!(sim.m.view(again).run, gone_run + 1);
    assert_eq!(sim.m.view(again).restarts, 0);
    sim.send(Event::Exited { unit: gone, run: gone_run, status: FAIL });
    assert_eq!(sim.m.state(again), State::Running, "the old run's news is ignored");
}

fn sim_unit(name: &str) -> crate::config::Unit {
    crate::config::Unit::new(name, crate::config::CommandLine::Shell("x".into()), "/".into())
}

#[test]
fn removing_what_a_waiting_unit_needs_lets_it_start() {
    let mut sim = Sim::new(
        "[services.w]\ncommand = \"x\"\ninstances = 2\nready = { exec = \"x\" }\n[services.api]\ncommand = \"x\"\ndepends_on = { w = \"ready\" }\n",
    );
    sim.send(Event::Boot);
    let (w1, w2, api) = (sim.id("w.1"), sim.id("w.2"), sim.id("api"));
    sim.send(Event::ReadySignal { unit: w1, run: 1 });
    assert_eq!(sim.m.state(api), State::Waiting);
    // Scaled down to one: api no longer waits for w.2.
    sim.call(|m, now, out| m.remove(w2, now, out));
    assert_eq!(sim.m.state(api), State::Waiting, "w.2 is still stopping");
    sim.exit("w.2", TERMED);
    assert_eq!(sim.m.state(api), State::Running);
}

#[test]
fn requests_during_a_shutdown_do_nothing() {
    let mut sim = Sim::new("[services.s]\ncommand = \"x\"\n[services.t]\ncommand = \"x\"\n");
    sim.send(Event::Boot);
    sim.send(Event::Signal(Signal::TERM));
    let t = sim.id("t");
    sim.exit("t", TERMED);
    let answered = sim.call(|m, now, out| m.request(Request::Start(vec![t]), now, out));
    assert!(answered.is_empty());
    assert_eq!(sim.m.state(t), State::Stopped);
    assert_eq!(sim.m.shutdown_code(), Some(143));
}

#[test]
fn changes_are_recorded_for_the_event_stream() {
    let mut sim = Sim::new("[services.s]\ncommand = \"x\"\nrestart = \"never\"\n");
    sim.send(Event::Boot);
    sim.exit("s", FAIL);
    let s = sim.id("s");
    let changes: Vec<(State, Option<ExitStatus>)> =
        sim.m.take_changes().into_iter().filter(|c| c.unit == s).map(|c| (c.state, c.exit)).collect();
    assert_eq!(
        changes,
        [(State::Starting, None), (State::Running, None), (State::Failed, Some(FAIL))],
        "each change once: no second `running` when it is marked ready without a check"
    );
    assert!(sim.m.take_changes().is_empty(), "taken");
}
