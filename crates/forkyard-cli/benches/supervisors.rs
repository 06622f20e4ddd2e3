//! Service supervisors side by side: `forkyard up` against supervisord, runit and s6, printed
//! as Markdown for docs/benchmarks.md.
//!
//! Run with `bench/run.sh supervisors` (it installs the peers from Debian's packages).
//! Sections: `restart` (time from `kill -9` of a service to its replacement running), `tree`
//! (processes left after a stop), `zombies` (as PID 1 while a service makes orphans), `rss`
//! (the supervision processes' memory with 100 services). A peer that is not installed is
//! reported and skipped. The forkyard binary is `FORKYARD_BIN` (default
//! target/bench-bin/forkyard); `FORKYARD_BENCH_ONLY=text` keeps the supervisors whose name
//! contains `text`.
//!
//! The timed service is a 30-line C program the bench compiles (`gcc -O2 -static`, so that
//! what is timed after the exec is a few microseconds, not a dynamic loader): on start it
//! reads CLOCK_MONOTONIC and sends its PID and that time as a datagram to the bench's socket,
//! so a restart is timed from the kill to the first thing the new process does, with no
//! polling on the bench's side. The service that makes orphans is this bench binary,
//! re-executed with `FORKYARD_BENCH_HELPER`. The bench is a child subreaper: whatever a
//! supervisor leaves behind comes back to it, is counted, then killed and collected.

#[path = "../../../bench/common.rs"]
mod common;

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

const SERVICE_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

int main(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const char *path = getenv("FORKYARD_BENCH_SOCK");
    if (path) {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "%d %llu", (int)getpid(),
                         (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sendto(fd, msg, n, 0, (struct sockaddr *)&addr, sizeof addr);
        close(fd);
    }
    const char *notify = getenv("FORKYARD_BENCH_NOTIFY_FD");
    if (notify) {
        int fd = atoi(notify);
        write(fd, "\n", 1);
        close(fd);
    }
    for (;;) pause();
}
"#;

fn service_dir() -> PathBuf {
    std::env::temp_dir().join(format!("forkyard-bench-{}", std::process::id()))
}

/// The timed service, compiled once per bench run (static where the C library allows it).
fn service_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = service_dir();
        std::fs::create_dir_all(&dir).expect("a directory for the service");
        let src = dir.join("service.c");
        std::fs::write(&src, SERVICE_C).expect("write service.c");
        let bin = dir.join("service");
        for flags in [&["-O2", "-static"][..], &["-O2"][..]] {
            let ok = Command::new("gcc").args(flags).arg("-o").arg(&bin).arg(&src).status().is_ok_and(|s| s.success());
            if ok {
                return bin;
            }
        }
        panic!("cannot compile the timed service with gcc");
    })
    .clone()
}

// --- the supervisors ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `forkyard up`, default settings unless `zero_backoff`.
    Forkyard { zero_backoff: bool },
    /// supervisord, `stopasgroup`/`killasgroup` if `group`.
    Supervisord { group: bool },
    /// runsvdir and runsv.
    Runit,
    /// s6-svscan and s6-supervise, with notification-fd readiness if `notify`.
    S6 { notify: bool },
}

/// One service: what it runs.
struct Svc {
    name: String,
    /// An argv (exec'd directly, or as runit/s6's `run` when it is the helper alone).
    argv: Vec<String>,
}

impl Svc {
    /// The timed service (the C helper).
    fn timed(name: &str) -> Svc {
        Svc { name: name.into(), argv: vec![service_bin().display().to_string()] }
    }
    /// This bench binary as a service (its mode set by `FORKYARD_BENCH_HELPER`).
    fn helper(name: &str) -> Svc {
        Svc { name: name.into(), argv: vec![me().display().to_string()] }
    }
    fn shell(name: &str, script: &str) -> Svc {
        Svc { name: name.into(), argv: vec!["/bin/sh".into(), "-c".into(), script.into()] }
    }
}

fn forkyard_bin() -> PathBuf {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    std::env::var("FORKYARD_BIN").unwrap_or_else(|_| format!("{root}/target/bench-bin/forkyard")).into()
}

fn kinds() -> Vec<Kind> {
    let all = [
        Kind::Forkyard { zero_backoff: false },
        Kind::Supervisord { group: false },
        Kind::Supervisord { group: true },
        Kind::Runit,
        Kind::S6 { notify: false },
        Kind::S6 { notify: true },
    ];
    let only = std::env::var("FORKYARD_BENCH_ONLY").unwrap_or_default();
    all.into_iter()
        .filter(|k| k.name().contains(only.as_str()))
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

impl Kind {
    fn name(self) -> &'static str {
        match self {
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
            Kind::Forkyard { .. } => forkyard_bin(),
            Kind::Supervisord { .. } => "/usr/bin/supervisord".into(),
            Kind::Runit => "/usr/bin/runsvdir".into(),
            Kind::S6 { .. } => "/usr/bin/s6-svscan".into(),
        }
    }

    fn version(self) -> String {
        let pkg = match self {
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
    fn command(self, dir: &Path, services: &[Svc]) -> Command {
        match self {
            Kind::Forkyard { zero_backoff } => {
                let mut text = String::new();
                for s in services {
                    let argv: Vec<String> = s.argv.iter().map(|a| toml_str(a)).collect();
                    text += &format!("[services.{}]\ncommand = [{}]\n", s.name, argv.join(", "));
                    if zero_backoff {
                        text += "backoff_initial = \"0s\"\n";
                    }
                }
                std::fs::write(dir.join("forkyard.toml"), text).expect("write forkyard.toml");
                let mut cmd = Command::new(self.program());
                cmd.args(["up", "--no-color", "-f"]).arg(dir.join("forkyard.toml"));
                cmd
            }
            Kind::Supervisord { group } => {
                let d = dir.display();
                let mut text = format!(
                    "[supervisord]\nnodaemon=true\nuser=root\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\nchildlogdir={d}\n"
                );
                for s in services {
                    let argv: Vec<String> = s.argv.iter().map(|a| format!("\"{}\"", a.replace('"', "\\\""))).collect();
                    text += &format!(
                        "\n[program:{}]\ncommand={}\nautorestart=true\nstdout_logfile=NONE\nstderr_logfile=NONE\n",
                        s.name,
                        argv.join(" ")
                    );
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
                        let run = sdir.join("run");
                        std::fs::write(&run, format!("#!/bin/sh\nexec {}\n", words.join(" "))).expect("run script");
                        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                            .expect("chmod run");
                    }
                    if self == (Kind::S6 { notify: true }) {
                        std::fs::write(sdir.join("notification-fd"), "3\n").expect("notification-fd");
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
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(kind: Kind, services: &[Svc], helper: &str, pid1: bool) -> Running {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sock_path = dir.path().join("sock");
        let sock = UnixDatagram::bind(&sock_path).expect("bind the bench's socket");
        let inner = kind.command(dir.path(), services);
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
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", kind.name()));
        let mut pid = child.id() as i32;
        if pid1 {
            pid = wait_until(Duration::from_secs(10), || first_child(pid)).expect("unshare's child");
        }
        Running { child, sock, pid, pid1, _dir: dir }
    }

    /// The next service start announced: (its PID, its start time in ns).
    fn announced(&self, limit: Duration) -> Option<(i32, u64)> {
        self.sock.set_read_timeout(Some(limit)).ok()?;
        let mut buf = [0u8; 64];
        let n = self.sock.recv(&mut buf).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
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

fn restart(kinds: &[Kind]) {
    const LONG: usize = 10;
    const SHORT: usize = 5;
    println!("### Restart after `kill -9`\n");
    println!(
        "From just before `kill -9` of the service to the first instruction of its replacement (the service is a static C program that reads CLOCK_MONOTONIC first thing and sends it to the bench; the floor is the bench spawning it directly). \"Up 1.5 s\": {LONG} kills in a row, each 1.5 s after the service started. \"Up 0.2 s\": {SHORT} fresh starts of the supervisor, each killing the service 0.2 s after it started. Median, with the range. runit and s6 run the service directly as `run` (a symbolic link), so no shell is timed.\n"
    );
    // The floor: how long a plain spawn of the service takes to reach its first instruction.
    let mut base = Vec::new();
    let dir = tempfile::tempdir().expect("tmp");
    let sock_path = dir.path().join("sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // One spawn first, unmeasured: the freshly compiled service's first exec reads it from disk.
    for round in 0..=LONG {
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
    println!("| supervisor | up 1.5 s: median | range | up 0.2 s: median | range |");
    println!("|---|---|---|---|---|");
    println!(
        "| (floor: the bench itself spawns the service) | {} | {} | — | — |",
        ms(common::median(&mut base.clone())),
        range(&base)
    );
    let mut rows: Vec<Kind> = kinds.iter().copied().filter(|k| *k != (Kind::Supervisord { group: true })).collect();
    if let Some(i) = rows.iter().position(|k| matches!(k, Kind::Forkyard { .. })) {
        rows.insert(i + 1, Kind::Forkyard { zero_backoff: true });
    }
    for &kind in &rows {
        let svc = [Svc::timed("svc")];
        // Up 1.5 s, kills in a row.
        let mut long = Vec::new();
        let r = Running::start(kind, &svc, "service", false);
        if let Some((mut pid, mut started)) = r.announced(Duration::from_secs(30)) {
            for _ in 0..LONG {
                let Some((t, p, s)) = one_restart(&r, pid, started, Duration::from_millis(1500)) else { break };
                long.push(t);
                (pid, started) = (p, s);
            }
        }
        r.finish();
        // Up 0.2 s, a fresh supervisor each time.
        let mut short = Vec::new();
        for _ in 0..SHORT {
            let r = Running::start(kind, &svc, "service", false);
            if let Some((pid, started)) = r.announced(Duration::from_secs(30)) {
                if let Some((t, _, _)) = one_restart(&r, pid, started, Duration::from_millis(200)) {
                    short.push(t);
                }
            }
            r.finish();
        }
        let cell = |v: &mut Vec<f64>, n: usize| {
            if v.len() < n { format!("{} of {n} came back", v.len()) } else { ms(common::median(&mut v.clone())) }
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            kind.name(),
            cell(&mut long, LONG),
            if long.is_empty() { "—".into() } else { range(&long) },
            cell(&mut short, SHORT),
            if short.is_empty() { "—".into() } else { range(&short) }
        );
    }
    println!();
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
    for &kind in kinds.iter().filter(|k| **k != (Kind::S6 { notify: true })) {
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
    for &kind in kinds.iter().filter(|k| !matches!(k, Kind::S6 { notify: true } | Kind::Supervisord { group: true })) {
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
    for &kind in kinds.iter().filter(|k| !matches!(k, Kind::S6 { notify: true } | Kind::Supervisord { group: true })) {
        let services: Vec<Svc> =
            (0..N).map(|i| Svc { name: format!("s{i}"), argv: vec!["sleep".into(), format!("40{i:05}")] }).collect();
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
