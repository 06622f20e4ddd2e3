//! Service supervisors side by side: `forkyard up` against supervisord, runit and s6, and
//! against the floor of what restarting a service costs, printed as Markdown for
//! docs/benchmarks.md.
//!
//! Run with `bench/run.sh supervisors` (it installs the peers from Debian's packages).
//! Sections: `restart` (time from `kill -9` of a service to its replacement running, against
//! a C supervisor that only forks, execs and waits), `tree` (processes left after a stop),
//! `zombies` (as PID 1 while a service makes orphans), `rss` (the supervision processes'
//! memory with 100 services), `flood` (under a `yes` flood: `flood-memory`, the supervisor's
//! RSS, and `flood-latency`, how long a stop takes to reach the flooding service), `control`
//! (the control plane: `control-status`, `forkyard ctl status` against `supervisorctl status`
//! with 100 services, and `control-restart`, the restart after `kill -9` while 50 clients poll
//! the control socket; see supervisors/control.rs). A peer that is not installed is reported
//! and skipped. The forkyard binary is `FORKYARD_BIN` (default target/bench-bin/forkyard), its
//! `ctl` that of `FORKYARD_CTL_BIN` when set; `FORKYARD_BENCH_ONLY=text` keeps the
//! supervisors whose name contains `text` (and the floor); `FORKYARD_BENCH_ROUNDS=N` repeats
//! each measurement at most N times and `FORKYARD_BENCH_FLOOD_SECS=S` floods for S seconds
//! instead of 5 (to check the bench itself quickly; the recorded figures use the defaults).
//!
//! The C programs are in benches/supervisors/, compiled by the bench with gcc (`-O2 -static`,
//! so that what is timed after an exec is a few microseconds, not a dynamic loader): the timed
//! service (on start it reads CLOCK_MONOTONIC and sends its PID and that time as a datagram to
//! the bench's socket, so a restart is timed from the kill to the first thing the new process
//! does, with no polling on the bench's side), the floor supervisor, and the flooder (writes
//! like `yes`; reports when its SIGTERM arrives). The service that makes orphans is this bench
//! binary, re-executed with `FORKYARD_BENCH_HELPER`. The bench is a child subreaper: whatever a
//! supervisor leaves behind comes back to it, is counted, then killed and collected.

#[path = "../../../bench/common.rs"]
mod common;
#[path = "supervisors/control.rs"]
mod control;
#[path = "supervisors/flood.rs"]
mod flood;

use std::os::unix::fs::symlink;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use forkyard::procs::Snapshot;
use forkyard::{Pid, Signal};

fn main() {
    // The first thing a service does: note the time it started.
    let started = monotonic_ns();
    if let Ok(helper) = std::env::var("FORKYARD_BENCH_HELPER") {
        std::process::exit(helper_main(&helper, started));
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name || a == "supervisors");
    if let Err(e) = forkyard::subreaper::set_child_subreaper(true) {
        eprintln!("cannot become a child subreaper: {e}");
        std::process::exit(1);
    }
    let kinds = kinds();
    println!("_Measured {} on {} CPUs, kernel {}._\n", common::date(), common::cpus(), common::kernel());
    println!("| supervisor | version |\n|---|---|");
    for k in &kinds {
        println!("| {} | {} |", k.name(), k.version());
    }
    println!();
    if want("restart") {
        restart(&kinds);
    }
    if want("tree") {
        tree(&kinds);
    }
    if want("zombies") {
        zombies(&kinds);
    }
    if want("rss") {
        rss(&kinds);
    }
    if want("flood") || want("flood-memory") {
        flood::memory(&kinds);
    }
    if want("flood") || want("flood-latency") {
        flood::latency(&kinds);
    }
    if want("control") || want("control-status") || want("control-restart") {
        println!("### Control plane\n");
    }
    if want("control") || want("control-status") {
        control::status(&kinds);
    }
    if want("control") || want("control-restart") {
        control::restart_polled(&kinds);
    }
    let _ = std::fs::remove_dir_all(service_dir());
}

// --- the helper run as a service ---------------------------------------------------------------

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the valid timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn helper_main(which: &str, started: u64) -> i32 {
    // Tell the bench: "PID started-at-ns".
    if let Ok(path) = std::env::var("FORKYARD_BENCH_SOCK") {
        if let Ok(sock) = UnixDatagram::unbound() {
            let _ = sock.send_to(format!("{} {started}", std::process::id()).as_bytes(), path);
        }
    }
    match which {
        // Orphans one child every 200 ms: a fork whose child forks and both exit at once,
        // leaving the grandchild's zombie to PID 1.
        "orphaner" => loop {
            std::thread::sleep(Duration::from_millis(200));
            common::make_orphan();
        },
        _ => 100,
    }
}

fn me() -> PathBuf {
    std::env::current_exe().expect("the bench binary")
}

/// Compiles one of the bench's C programs (`benches/supervisors/NAME.c`) once per bench run,
/// static where the C library allows it (so that what runs after the exec is a few
/// microseconds, not a dynamic loader).
fn c_program(name: &'static str, source: &'static str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(&'static str, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, bin)) = built.iter().find(|(n, _)| *n == name) {
        return bin.clone();
    }
    let dir = service_dir();
    std::fs::create_dir_all(&dir).expect("a directory for the C programs");
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap_or_else(|e| panic!("write {name}.c: {e}"));
    let bin = dir.join(name);
    for flags in [&["-O2", "-static"][..], &["-O2"][..]] {
        let ok = Command::new("gcc").args(flags).arg("-o").arg(&bin).arg(&src).status().is_ok_and(|s| s.success());
        if ok {
            built.push((name, bin.clone()));
            return bin;
        }
    }
    panic!("cannot compile {name}.c with gcc");
}

fn service_dir() -> PathBuf {
    std::env::temp_dir().join(format!("forkyard-bench-{}", std::process::id()))
}

/// The timed service: announces its start, then waits.
fn service_bin() -> PathBuf {
    c_program("service", include_str!("supervisors/service.c"))
}

/// The floor: a C loop of fork, exec and wait.
fn floor_bin() -> PathBuf {
    c_program("floor", include_str!("supervisors/floor.c"))
}

/// How many times to repeat a measurement: `default`, or fewer with `FORKYARD_BENCH_ROUNDS`
/// (for a quick check of the bench itself; the recorded figures use the defaults).
fn rounds(default: usize) -> usize {
    std::env::var("FORKYARD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(default, |n: usize| n.clamp(1, default))
}

// --- the supervisors ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// The floor: a C loop of fork, exec, wait (benches/supervisors/floor.c).
    Floor,
    /// `forkyard up`, default settings unless `zero_backoff`.
    Forkyard { zero_backoff: bool },
    /// supervisord, `stopasgroup`/`killasgroup` if `group`.
    Supervisord { group: bool },
    /// runsvdir and runsv.
    Runit,
    /// s6-svscan and s6-supervise, with notification-fd readiness if `notify`.
    S6 { notify: bool },
}

/// What a supervisor does with its services' output.
#[derive(Clone, Copy, PartialEq)]
enum Output {
    /// The least it can do: supervisord `stdout_logfile=NONE`; runit and s6 no log service
    /// (the service writes straight to the supervisor's inherited stdout); forkyard up as always
    /// (it has no other way: it prefixes each line and writes it to its stdout).
    Plain,
    /// Each one's most natural capture: forkyard up as always; supervisord as in containers,
    /// `stdout_logfile=/dev/stdout` with `stdout_logfile_maxbytes=0` (and its control socket,
    /// as supervisorctl needs); runit a `log/run` of `svlogd -tt ./main`; s6 a `log/run` of
    /// `s6-log n10 s1000000 T ./main` (both: 1 MB files, 10 kept, timestamps).
    Logged,
}

/// One service: what it runs.
struct Svc {
    name: String,
    /// An argv (exec'd directly, or as runit/s6's `run` when it is the helper alone).
    argv: Vec<String>,
    /// forkyard's `max_restarts`, when its default (10 a minute) would stop the bench's kills.
    max_restarts: Option<u32>,
}

impl Svc {
    fn new(name: &str, argv: Vec<String>) -> Svc {
        Svc { name: name.into(), argv, max_restarts: None }
    }
    /// The timed service (the C helper), killed many times a minute: forkyard's restart budget
    /// is raised so that it does not take the bench's kills for a crash loop (no peer has a
    /// budget that counts these: supervisord's `startretries` counts only failed starts).
    fn timed(name: &str) -> Svc {
        Svc { max_restarts: Some(1_000_000), ..Svc::new(name, vec![service_bin().display().to_string()]) }
    }
    /// This bench binary as a service (its mode set by `FORKYARD_BENCH_HELPER`).
    fn helper(name: &str) -> Svc {
        Svc::new(name, vec![me().display().to_string()])
    }
    fn shell(name: &str, script: &str) -> Svc {
        Svc::new(name, vec!["/bin/sh".into(), "-c".into(), script.into()])
    }
}

fn forkyard_bin() -> PathBuf {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    std::env::var("FORKYARD_BIN").unwrap_or_else(|_| format!("{root}/target/bench-bin/forkyard")).into()
}

fn kinds() -> Vec<Kind> {
    let all = [
        Kind::Floor,
        Kind::Forkyard { zero_backoff: false },
        Kind::Supervisord { group: false },
        Kind::Supervisord { group: true },
        Kind::Runit,
        Kind::S6 { notify: false },
        Kind::S6 { notify: true },
    ];
    let only = std::env::var("FORKYARD_BENCH_ONLY").unwrap_or_default();
    all.into_iter()
        .filter(|k| k.name().contains(only.as_str()) || *k == Kind::Floor)
        .filter(|k| {
            let found = k.program().exists();
            if !found {
                eprintln!("skipping {}: {} not found", k.name(), k.program().display());
            }
            found
        })
        .collect()
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write a run script");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod a run script");
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Floor => "floor (C: fork, execv, waitpid)",
            Kind::Forkyard { zero_backoff: false } => "forkyard up",
            Kind::Forkyard { zero_backoff: true } => "forkyard up (backoff_initial = \"0s\")",
            Kind::Supervisord { group: false } => "supervisord",
            Kind::Supervisord { group: true } => "supervisord (stopasgroup, killasgroup)",
            Kind::Runit => "runit (runsvdir)",
            Kind::S6 { notify: false } => "s6 (s6-svscan)",
            Kind::S6 { notify: true } => "s6 (s6-svscan, notification-fd)",
        }
    }

    fn program(self) -> PathBuf {
        match self {
            Kind::Floor => floor_bin(),
            Kind::Forkyard { .. } => forkyard_bin(),
            Kind::Supervisord { .. } => "/usr/bin/supervisord".into(),
            Kind::Runit => "/usr/bin/runsvdir".into(),
            Kind::S6 { .. } => "/usr/bin/s6-svscan".into(),
        }
    }

    fn version(self) -> String {
        let pkg = match self {
            Kind::Floor => {
                let gcc = Command::new("gcc").arg("-dumpfullversion").output();
                let v = gcc.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
                return format!("benches/supervisors/floor.c, gcc {v} -O2 -static");
            }
            Kind::Forkyard { .. } => return format!("forkyard {}", env!("CARGO_PKG_VERSION")),
            Kind::Supervisord { .. } => "supervisor",
            Kind::Runit => "runit",
            Kind::S6 { .. } => "s6",
        };
        Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}", pkg])
            .output()
            .map(|o| format!("Debian {pkg} {}", String::from_utf8_lossy(&o.stdout)))
            .unwrap_or_else(|_| pkg.to_string())
    }

    /// Writes the configuration for `services` under `dir`; returns the command to run.
    fn command(self, dir: &Path, services: &[Svc], output: Output) -> Command {
        match self {
            Kind::Floor => {
                let [s] = services else { panic!("the floor runs exactly one service") };
                let mut cmd = Command::new(self.program());
                cmd.args(&s.argv);
                cmd
            }
            Kind::Forkyard { zero_backoff } => {
                let mut text = String::new();
                for s in services {
                    let argv: Vec<String> = s.argv.iter().map(|a| toml_str(a)).collect();
                    text += &format!("[services.{}]\ncommand = [{}]\n", s.name, argv.join(", "));
                    if zero_backoff {
                        text += "backoff_initial = \"0s\"\n";
                    }
                    if let Some(n) = s.max_restarts {
                        text += &format!("max_restarts = {n}\n");
                    }
                }
                std::fs::write(dir.join("forkyard.toml"), text).expect("write forkyard.toml");
                let mut cmd = Command::new(self.program());
                cmd.args(["up", "--no-color", "-f"]).arg(dir.join("forkyard.toml"));
                // Its control socket beside its configuration (removed with it, even after a
                // `kill -9`), where the `control` sections find it.
                cmd.arg("--socket").arg(dir.join("ctl.sock"));
                cmd
            }
            Kind::Supervisord { group } => {
                let d = dir.display();
                let mut text = format!(
                    "[supervisord]\nnodaemon=true\nuser=root\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\nchildlogdir={d}\n"
                );
                if output == Output::Logged {
                    text += &format!(
                        "\n[unix_http_server]\nfile={d}/supervisor.sock\n\n[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n[supervisorctl]\nserverurl=unix://{d}/supervisor.sock\n"
                    );
                }
                for s in services {
                    let argv: Vec<String> = s.argv.iter().map(|a| format!("\"{}\"", a.replace('"', "\\\""))).collect();
                    text += &format!("\n[program:{}]\ncommand={}\nautorestart=true\n", s.name, argv.join(" "));
                    text += match output {
                        Output::Plain => "stdout_logfile=NONE\nstderr_logfile=NONE\n",
                        Output::Logged => {
                            "stdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\nredirect_stderr=true\n"
                        }
                    };
                    if group {
                        text += "stopasgroup=true\nkillasgroup=true\n";
                    }
                }
                std::fs::write(dir.join("supervisord.conf"), text).expect("write supervisord.conf");
                let mut cmd = Command::new(self.program());
                cmd.arg("-c").arg(dir.join("supervisord.conf"));
                cmd
            }
            Kind::Runit | Kind::S6 { .. } => {
                let scan = dir.join("scan");
                for s in services {
                    let sdir = scan.join(&s.name);
                    std::fs::create_dir_all(&sdir).expect("service directory");
                    if s.argv.len() == 1 {
                        // The helper alone: `run` is the program itself, exec'd directly.
                        symlink(&s.argv[0], sdir.join("run")).expect("run link");
                    } else {
                        let words: Vec<String> = s.argv.iter().map(|a| sh_quote(a)).collect();
                        write_script(&sdir.join("run"), &format!("exec {}", words.join(" ")));
                    }
                    if self == (Kind::S6 { notify: true }) {
                        std::fs::write(sdir.join("notification-fd"), "3\n").expect("notification-fd");
                    }
                    if output == Output::Logged {
                        let log = sdir.join("log");
                        std::fs::create_dir_all(log.join("main")).expect("log directory");
                        let logger = if self == Kind::Runit {
                            "exec svlogd -tt ./main"
                        } else {
                            "exec s6-log n10 s1000000 T ./main"
                        };
                        write_script(&log.join("run"), logger);
                    }
                }
                let mut cmd = Command::new(self.program());
                if self == Kind::Runit {
                    cmd.arg("-P");
                }
                if self == (Kind::S6 { notify: true }) {
                    cmd.env("FORKYARD_BENCH_NOTIFY_FD", "3");
                }
                cmd.arg(&scan);
                cmd
            }
        }
    }

    /// The way to stop it all (as a container stop would): the signal to send.
    fn stop_signal(self) -> Signal {
        match self {
            // runsvdir: HUP sends TERM to every runsv (which stops its service) and exits.
            // (Its TERM makes it exit at once and leaves every runsv and service running.)
            Kind::Runit => Signal::HUP,
            _ => Signal::TERM,
        }
    }
}

/// A supervisor running under the bench, with the socket its services announce themselves on.
struct Running {
    child: Child,
    sock: UnixDatagram,
    /// The supervisor's host PID (PID 1 of its namespace if `pid1`).
    pid: i32,
    pid1: bool,
    dir: tempfile::TempDir,
}

impl Running {
    fn start(kind: Kind, services: &[Svc], helper: &str, pid1: bool) -> Running {
        Running::start_with(kind, services, helper, pid1, Output::Plain, Stdio::null())
    }

    /// Starts `kind` over `services`, its output configured as `output` and its own stdout
    /// going to `stdout`.
    fn start_with(kind: Kind, services: &[Svc], helper: &str, pid1: bool, output: Output, stdout: Stdio) -> Running {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sock_path = dir.path().join("sock");
        let sock = UnixDatagram::bind(&sock_path).expect("bind the bench's socket");
        let inner = kind.command(dir.path(), services, output);
        let mut cmd = if pid1 {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc"]).arg(inner.get_program()).args(inner.get_args());
            for (k, v) in inner.get_envs() {
                if let Some(v) = v {
                    c.env(k, v);
                }
            }
            c
        } else {
            inner
        };
        cmd.env("FORKYARD_BENCH_HELPER", helper)
            .env("FORKYARD_BENCH_SOCK", &sock_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", kind.name()));
        let mut pid = child.id() as i32;
        if pid1 {
            pid = wait_until(Duration::from_secs(10), || first_child(pid)).expect("unshare's child");
        }
        Running { child, sock, pid, pid1, dir }
    }

    /// The directory of its configuration (and of the bench's socket).
    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The next message on the bench's socket, as text.
    fn message(&self, limit: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(limit)).ok()?;
        let mut buf = [0u8; 80];
        let n = self.sock.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// The next service start announced: (its PID, its start time in ns).
    fn announced(&self, limit: Duration) -> Option<(i32, u64)> {
        let text = self.message(limit)?;
        let (pid, at) = text.split_once(' ')?;
        Some((pid.parse().ok()?, at.parse().ok()?))
    }

    /// Stops the supervisor its way and waits (up to 30 s) for it to exit.
    fn stop(&mut self, kind: Kind) -> bool {
        let _ = kind.stop_signal().send(Pid::new(self.pid).expect("pid"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Ends everything it started, one way or another, and collects it.
    fn finish(mut self) {
        if self.pid1 {
            // PID 1's death kills its whole namespace.
            let _ = Signal::KILL.send(Pid::new(self.pid).expect("pid"));
        } else if let Ok(None) = self.child.try_wait() {
            let _ = Signal::KILL.send(Pid::new(self.pid).expect("pid"));
        }
        let _ = self.child.wait();
        kill_everything_left();
    }
}

fn first_child(pid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?.split_whitespace().next()?.parse().ok()
}

fn wait_until<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Kills and collects every descendant of the bench, round after round (orphans come back
/// to it, a subreaper); returns how many processes were killed.
fn kill_everything_left() -> usize {
    let me = Pid::this();
    let mut killed = 0;
    for _ in 0..100 {
        let Ok(snap) = Snapshot::take() else { break };
        let children: Vec<Pid> = snap.children(me).map(|p| p.pid).collect();
        if children.is_empty() {
            break;
        }
        for p in snap.descendants(me) {
            if !p.is_zombie() && Signal::KILL.send(p.pid).is_ok() {
                killed += 1;
            }
        }
        for pid in children {
            let _ = forkyard::Child::from_pid(pid).and_then(|mut c| c.wait());
        }
    }
    killed
}

fn range(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{} – {}", ms(min), ms(max))
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

// --- restart after kill -9 --------------------------------------------------------------------

/// Kills the service `up_for` after it started and times its replacement; `None` if no
/// replacement came within 30 s.
fn one_restart(r: &Running, pid: i32, started: u64, up_for: Duration) -> Option<(f64, i32, u64)> {
    let due = started + up_for.as_nanos() as u64;
    let now = monotonic_ns();
    if due > now {
        std::thread::sleep(Duration::from_nanos(due - now));
    }
    let killed_at = monotonic_ns();
    Signal::KILL.send(Pid::new(pid)?).ok()?;
    let (new_pid, new_start) = r.announced(Duration::from_secs(30))?;
    Some(((new_start.saturating_sub(killed_at)) as f64 / 1e6, new_pid, new_start))
}

/// The median of per-round ratios `a[i] / b[i]` over the rounds where both were measured,
/// with their range.
fn ratio(a: &[Option<f64>], b: &[Option<f64>]) -> Option<(f64, f64, f64)> {
    let mut r: Vec<f64> = a.iter().zip(b).filter_map(|(x, y)| Some(x.as_ref()? / y.as_ref()?)).collect();
    if r.is_empty() {
        return None;
    }
    let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((common::median(&mut r), lo, hi))
}

/// The time from a spawn by the bench to the service's first instruction: the part of every
/// restart that is the kernel's fork and exec, with no supervisor and no kill.
fn exec_alone(n: usize) -> Vec<f64> {
    let mut base = Vec::new();
    let dir = tempfile::tempdir().expect("tmp");
    let sock_path = dir.path().join("sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // One spawn first, unmeasured: the freshly compiled service's first exec reads it from disk.
    for round in 0..=n {
        let t = monotonic_ns();
        let mut child = Command::new(service_bin()).env("FORKYARD_BENCH_SOCK", &sock_path).spawn().expect("spawn");
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).expect("announcement");
        let at: u64 = std::str::from_utf8(&buf[..n]).ok().and_then(|s| s.split(' ').nth(1)?.parse().ok()).unwrap_or(t);
        if round > 0 {
            base.push(at.saturating_sub(t) as f64 / 1e6);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    base
}

fn restart(kinds: &[Kind]) {
    let long_n = rounds(20);
    let short_n = rounds(5);
    println!("### Restart after `kill -9`\n");
    println!(
        "From just before `kill -9` of the service to the first instruction of its replacement (the service is a static C program that reads CLOCK_MONOTONIC first thing and sends it to the bench). The floor is a C supervisor that only forks, execs and waits (`for (;;) {{ pid = fork(); if (!pid) execv(...); waitpid(pid); }}`, static), measured exactly as the others. \"Up 1.5 s\": every supervisor runs its service at once, and in each of {long_n} rounds the bench kills each one's service in turn (the order rotating), 1.5 s or more after it started. \"Up 0.2 s\": {short_n} rounds of a fresh start of each supervisor in turn, killing the service 0.2 s after it started. Median, with the range; \"× floor\" is the median of the per-round ratios to the floor's time in the same round. runit and s6 run the service directly as `run` (a symbolic link), so no shell is timed.\n"
    );
    let mut rows: Vec<Kind> = kinds.iter().copied().filter(|k| *k != (Kind::Supervisord { group: true })).collect();
    if let Some(i) = rows.iter().position(|k| matches!(k, Kind::Forkyard { .. })) {
        rows.insert(i + 1, Kind::Forkyard { zero_backoff: true });
    }
    let svc = [Svc::timed("svc")];
    let base = exec_alone(long_n);

    // Up 1.5 s: all at once, kills in rotating order. Each row gets one entry per round.
    let mut long: Vec<Vec<Option<f64>>> = vec![Vec::new(); rows.len()];
    let live: Vec<Running> = rows.iter().map(|&k| Running::start(k, &svc, "service", false)).collect();
    let mut current: Vec<Option<(i32, u64)>> = live.iter().map(|r| r.announced(Duration::from_secs(30))).collect();
    for round in 0..long_n {
        for j in 0..rows.len() {
            let i = (round + j) % rows.len();
            let Some((pid, started)) = current[i] else {
                long[i].push(None);
                continue;
            };
            // Let the previous supervisor finish what it does after a restart (supervisord
            // logs it), so that it does not compete with this one for the CPUs.
            std::thread::sleep(Duration::from_millis(100));
            let measured = one_restart(&live[i], pid, started, Duration::from_millis(1500));
            long[i].push(measured.map(|(t, _, _)| t));
            current[i] = measured.map(|(_, p, s)| (p, s));
        }
    }
    for r in live {
        r.finish();
    }

    // Up 0.2 s: a fresh supervisor each time, in turn.
    let mut short: Vec<Vec<Option<f64>>> = vec![Vec::new(); rows.len()];
    for round in 0..short_n {
        for j in 0..rows.len() {
            let i = (round + j) % rows.len();
            let r = Running::start(rows[i], &svc, "service", false);
            let measured = r
                .announced(Duration::from_secs(30))
                .and_then(|(pid, started)| one_restart(&r, pid, started, Duration::from_millis(200)));
            short[i].push(measured.map(|(t, _, _)| t));
            r.finish();
        }
    }

    println!("| supervisor | up 1.5 s: median | range | × floor | up 0.2 s: median | range | × floor |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| (reference: the bench spawns the service, no kill, no supervisor) | {} | {} | — | — | — | — |",
        ms(common::median(&mut base.clone())),
        range(&base)
    );
    let floor = rows.iter().position(|k| *k == Kind::Floor);
    let times = |v: &[Option<f64>]| -> Vec<f64> { v.iter().flatten().copied().collect() };
    let cell = |v: &[Option<f64>]| {
        let t = times(v);
        if t.len() < v.len() {
            format!("{} of {} came back", t.len(), v.len())
        } else {
            ms(common::median(&mut t.clone()))
        }
    };
    let span = |v: &[Option<f64>]| {
        let t = times(v);
        if t.is_empty() { "—".to_string() } else { range(&t) }
    };
    let times_floor = |v: &[Option<f64>], f: Option<&Vec<Option<f64>>>| match f.and_then(|f| ratio(v, f)) {
        Some((m, _, _)) => format!("{m:.2}×"),
        None => "—".into(),
    };
    for (i, kind) in rows.iter().enumerate() {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            kind.name(),
            cell(&long[i]),
            span(&long[i]),
            times_floor(&long[i], floor.map(|f| &long[f])),
            cell(&short[i]),
            span(&short[i]),
            times_floor(&short[i], floor.map(|f| &short[f])),
        );
    }
    println!();
    let fy = rows.iter().position(|k| *k == (Kind::Forkyard { zero_backoff: false }));
    if let (Some(f), Some(y)) = (floor, fy) {
        if let Some((m, lo, hi)) = ratio(&long[y], &long[f]) {
            let of_medians = common::median(&mut times(&long[y])) / common::median(&mut times(&long[f]));
            let verdict = if m <= 1.25 { "met" } else { "not met" };
            println!(
                "forkyard up, up 1.5 s: {m:.2}× the floor (median of {} per-round ratios, {lo:.2}-{hi:.2}; ratio of the medians {of_medians:.2}×). Target ≤ 1.25×: {verdict}.\n",
                long[y].iter().zip(&long[f]).filter(|(a, b)| a.is_some() && b.is_some()).count()
            );
        }
    }
}

// --- processes left after a stop ---------------------------------------------------------------

/// Live `sleep` processes whose arguments contain `marker`.
fn sleeps_alive(marker: &str) -> usize {
    let Ok(snap) = Snapshot::take() else { return 0 };
    snap.processes().iter().filter(|p| !p.is_zombie() && p.comm == "sleep" && p.command().contains(marker)).count()
}

fn tree(kinds: &[Kind]) {
    println!("### Processes left after stopping a service's tree\n");
    println!(
        "The supervisor runs one service and is then stopped as a container stop would (SIGTERM; runsvdir: SIGHUP, which stops every runsv and its service). Counted: the service's `sleep` processes still alive 0.5 s after the supervisor exited (the bench is a subreaper, so orphans come to it and are killed afterwards). \"Simple\" is `sh -c 'sleep A & sleep B; wait'`; \"escaping\" adds a grandchild that left the process group (`setsid sleep C`) and one that daemonized (`sh -c 'sleep D &'`, its parent gone).\n"
    );
    println!("| supervisor | simple: left of 2 | escaping: left of 4 |");
    println!("|---|---|---|");
    let trees = [
        ("sleep 2000001 & sleep 2000002; wait", "20000", 2),
        ("sleep 3000001 & sleep 3000002 & setsid sleep 3000003 & sh -c 'sleep 3000004 &'; wait", "30000", 4),
    ];
    for &kind in kinds.iter().filter(|k| !matches!(k, Kind::Floor | Kind::S6 { notify: true })) {
        let mut cells = Vec::new();
        for (script, marker, n) in trees {
            let mut r = Running::start(kind, &[Svc::shell("tree", script)], "none", false);
            let all_up = wait_until(Duration::from_secs(20), || (sleeps_alive(marker) == n).then_some(()));
            if all_up.is_none() {
                cells.push("did not start".to_string());
                r.finish();
                continue;
            }
            let stopped = r.stop(kind);
            std::thread::sleep(Duration::from_millis(500));
            let left = sleeps_alive(marker);
            cells.push(if stopped { left.to_string() } else { format!("{left} (did not exit in 30 s)") });
            r.finish();
        }
        println!("| {} | {} | {} |", kind.name(), cells[0], cells[1]);
    }
    println!();
}

// --- zombies as PID 1 --------------------------------------------------------------------------

fn zombies(kinds: &[Kind]) {
    println!("### Zombies while PID 1 (a service orphans a child every 200 ms)\n");
    println!(
        "The supervisor is PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc`); its one service makes an orphan every 200 ms that exits at once. 30 samples, 100 ms apart, of the zombies anywhere in the namespace.\n"
    );
    println!("| supervisor as PID 1 | max zombies | sum over 30 samples |");
    println!("|---|---|---|");
    for &kind in kinds
        .iter()
        .filter(|k| !matches!(k, Kind::Floor | Kind::S6 { notify: true } | Kind::Supervisord { group: true }))
    {
        let r = Running::start(kind, &[Svc::helper("orphaner")], "orphaner", true);
        if r.announced(Duration::from_secs(30)).is_none() {
            println!("| {} | did not start | — |", kind.name());
            r.finish();
            continue;
        }
        let root = Pid::new(r.pid).expect("pid");
        let samples: Vec<usize> = (0..30)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(100));
                Snapshot::take().map(|s| s.tree(root).iter().filter(|e| e.process.is_zombie()).count()).unwrap_or(0)
            })
            .collect();
        r.finish();
        println!("| {} | {} | {} |", kind.name(), samples.iter().max().unwrap_or(&0), samples.iter().sum::<usize>());
    }
    println!();
}

// --- memory with 100 services ------------------------------------------------------------------

fn pss_kb(pid: Pid) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn rss(kinds: &[Kind]) {
    const N: usize = 100;
    println!("### Memory of the supervision with {N} services of `sleep`\n");
    println!(
        "Every process of the supervision tree except the services themselves (runit and s6 run one supervisor process per service), once all {N} `sleep` processes run: their count, the sum of their RSS, and the sum of their PSS (shared pages divided among the processes sharing them, from /proc/PID/smaps_rollup), which does not count a shared library {N} times.\n"
    );
    println!("| supervisor | processes | RSS, summed | PSS, summed |");
    println!("|---|---|---|---|");
    // SAFETY: sysconf only reads a system constant.
    let page_kb = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as u64 / 1024;
    for &kind in kinds
        .iter()
        .filter(|k| !matches!(k, Kind::Floor | Kind::S6 { notify: true } | Kind::Supervisord { group: true }))
    {
        let services: Vec<Svc> =
            (0..N).map(|i| Svc::new(&format!("s{i}"), vec!["sleep".into(), format!("40{i:05}")])).collect();
        let r = Running::start(kind, &services, "none", false);
        let root = Pid::new(r.pid).expect("pid");
        let count_sleeps = || {
            Snapshot::take()
                .map(|s| s.descendants(root).iter().filter(|p| p.comm == "sleep" && !p.is_zombie()).count())
                .unwrap_or(0)
        };
        if wait_until(Duration::from_secs(60), || (count_sleeps() == N).then_some(())).is_none() {
            println!("| {} | only {} of {N} services started | — | — |", kind.name(), count_sleeps());
            r.finish();
            continue;
        }
        // Let the supervisor settle after the start-up burst.
        std::thread::sleep(Duration::from_secs(2));
        let snap = Snapshot::take().expect("snapshot");
        let ours: Vec<Pid> =
            snap.tree(root).iter().map(|e| e.process).filter(|p| p.comm != "sleep").map(|p| p.pid).collect();
        let rss: u64 = ours.iter().filter_map(|p| snap.get(*p)).map(|p| p.rss_pages * page_kb).sum();
        let pss: u64 = ours.iter().map(|p| pss_kb(*p)).sum();
        r.finish();
        println!("| {} | {} | {} kB | {} kB |", kind.name(), ours.len(), rss, pss);
    }
    println!();
}
