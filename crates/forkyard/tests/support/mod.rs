//! The harness for forkyard's integration tests.
//!
//! Why not libtest's: it runs every test on a spawned thread, and a process with two threads
//! is exactly what `run_in_child` and the SIGCHLD reaper must refuse. Here each test runs on
//! the main thread of its own process (nextest's process-per-test mode, or a re-exec of this
//! binary under `cargo test`), and after each test the harness checks that nothing was left
//! behind: a child or zombie of the test process fails the test, then is killed and reaped.
//! The test process is a child subreaper, so that includes orphaned grandchildren.
#![allow(dead_code, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use forkyard::Pid;
use forkyard::procs::{Snapshot, State};

/// Runs the named tests and exits.
pub fn run(tests: &[(&'static str, fn())]) -> ! {
    let mut args = libtest_mimic::Arguments::from_args();
    // One test at a time on the main thread: forking needs a single-threaded process.
    args.test_threads = Some(1);
    let inline = std::env::var_os("FORKYARD_TEST_INLINE").is_some()
        || std::env::var("NEXTEST_EXECUTION_MODE").is_ok_and(|m| m == "process-per-test");
    let trials = tests
        .iter()
        .map(|&(name, body)| {
            libtest_mimic::Trial::test(name, move || {
                if inline {
                    // Orphans of the test come back to the test process, so the check below
                    // sees them too (and they cannot become some other init's zombies).
                    forkyard::subreaper::set_child_subreaper(true).map_err(|e| e.to_string())?;
                    // Clean up after a failed test too, then report the failure itself.
                    let outcome = std::panic::catch_unwind(body);
                    let left = check_nothing_left(name);
                    if let Err(payload) = outcome {
                        std::panic::resume_unwind(payload);
                    }
                    left
                } else {
                    rerun_isolated(name)
                }
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

fn rerun_isolated(name: &str) -> Result<(), libtest_mimic::Failed> {
    let exe = std::env::current_exe().map_err(|e| format!("finding the test binary: {e}"))?;
    let status = Command::new(exe)
        .args([name, "--exact", "--nocapture"])
        .env("FORKYARD_TEST_INLINE", "1")
        .status()
        .map_err(|e| format!("re-running {name} in its own process: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{name} failed in its own process ({status})").into()) }
}

/// Fails if the test process still has children (running or zombie); cleans them up.
///
/// The cleanup kills every descendant, not just the children: a supervisor killed on its own
/// would leave its services to be adopted by this (subreaper) process after the scan. So it
/// kills and collects round after round until no child is left.
fn check_nothing_left(name: &str) -> Result<(), libtest_mimic::Failed> {
    let me = Pid::this();
    let snap = Snapshot::take().map_err(|e| format!("scanning /proc after {name}: {e}"))?;
    let left: Vec<String> = snap.children(me).map(|p| format!("{} {} {}", p.pid, p.state, p.command())).collect();
    if left.is_empty() {
        return Ok(());
    }
    let mut snap = snap;
    for _ in 0..100 {
        let children: Vec<Pid> = snap.children(me).map(|p| p.pid).collect();
        if children.is_empty() {
            break;
        }
        for p in snap.descendants(me) {
            let _ = forkyard::Signal::KILL.send(p.pid);
        }
        for pid in children {
            let _ = forkyard::Child::from_pid(pid).and_then(|mut c| c.wait());
        }
        snap = Snapshot::take().map_err(|e| format!("scanning /proc after {name}: {e}"))?;
    }
    Err(format!("{name} left {} process(es) behind (pid state command): {left:?}", left.len()).into())
}

/// Waits until `check` returns `Some`, polling every millisecond or so, for at most `limit`
/// (a generous bound for a state that should arrive almost at once). Panics naming `what`
/// if it never does.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let mut value = None;
    let found = wait_until(limit, || {
        value = check();
        value.is_some()
    });
    match value {
        Some(v) if found => v,
        _ => panic!("gave up after {limit:?} waiting for {what}"),
    }
}

/// Polls `check` with a growing pause until it returns true or `limit` passes; says which.
#[allow(dead_code)]
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_micros(200);
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The state of `pid` right now (`None` once it is gone).
pub fn state(pid: Pid) -> Option<State> {
    forkyard::procs::state(pid).expect("reading /proc/PID/stat")
}

/// Waits until `pid` is a zombie.
pub fn wait_zombie(pid: Pid) {
    wait_for(&format!("{pid} to become a zombie"), Duration::from_secs(20), || {
        (state(pid) == Some(State::Zombie)).then_some(())
    })
}

/// Collects every child of the test process, adopted orphans included, waiting for those
/// still running to end; returns how many.
pub fn reap_adopted() -> usize {
    let me = Pid::this();
    let snap = Snapshot::take().expect("scanning /proc");
    let pids: Vec<Pid> = snap.children(me).map(|p| p.pid).collect();
    for pid in &pids {
        forkyard::Child::from_pid(*pid).and_then(|mut c| c.wait()).expect("collecting an adopted child");
    }
    pids.len()
}

/// A generous bound for events that normally take microseconds.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A close-on-exec pipe: its read end as a `File`, its write end to hand to a child.
pub fn pipe() -> (std::fs::File, std::os::fd::OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array we pass.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe2");
    // SAFETY: both descriptors are fresh and ours.
    unsafe {
        use std::os::fd::FromRawFd;
        (std::fs::File::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    }
}
