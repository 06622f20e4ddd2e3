//! Container inits side by side: forkyard (dynamic and static builds) against tini,
//! tini-static, dumb-init and catatonit, printed as Markdown for docs/benchmarks.md.
//!
//! Run with `bench/run.sh inits` (it installs the peers from Debian's packages and builds
//! both forkyard binaries). Binaries: `FORKYARD_BIN` (default target/bench-bin/forkyard) and
//! `FORKYARD_STATIC_BIN` (default target/x86_64-unknown-linux-musl/init/forkyard); a peer or
//! binary that is missing is reported and skipped.
//!
//! Every init runs the same workload, as PID 1 of a fresh PID namespace where the question is
//! about PID 1 (orphans, zombies), and as a plain parent otherwise. The workloads are this
//! bench binary itself, re-executed with `FORKYARD_BENCH_HELPER`.

#[path = "../../../bench/common.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    if let Ok(helper) = std::env::var("FORKYARD_BENCH_HELPER") {
        std::process::exit(helper_main(&helper));
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name || a == "inits");
    let inits = inits();
    println!("_Measured {} on {} CPUs, kernel {}._\n", common::date(), common::cpus(), common::kernel());
    println!("| init | binary |\n|---|---|");
    for i in &inits {
        println!("| {} | `{}` ({} kB{}) |", i.name, i.path.display(), size_kb(&i.path), i.note);
    }
    println!();
    if want("storm") {
        storm(&inits);
    }
    if want("zombies") {
        zombies(&inits);
    }
    if want("idle") {
        idle(&inits);
    }
    if want("true") {
        true_wall(&inits);
    }
    if want("rss") {
        rss(&inits);
    }
}

// --- the inits -------------------------------------------------------------------------------

struct Init {
    name: &'static str,
    path: PathBuf,
    /// Arguments before the command (for `forkyard`, `init` and its options).
    args: Vec<&'static str>,
    note: &'static str,
}

impl Init {
    fn command(&self, pid1: bool) -> Command {
        let mut cmd = if pid1 {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc"]).arg(&self.path);
            c
        } else {
            Command::new(&self.path)
        };
        cmd.args(&self.args);
        cmd
    }
}

fn inits() -> Vec<Init> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let dynamic = std::env::var("FORKYARD_BIN").unwrap_or_else(|_| format!("{root}/target/bench-bin/forkyard"));
    let stat = std::env::var("FORKYARD_STATIC_BIN")
        .unwrap_or_else(|_| format!("{root}/target/x86_64-unknown-linux-musl/init/forkyard"));
    let candidates = [
        Init { name: "forkyard init", path: dynamic.into(), args: vec!["init", "--"], note: ", glibc, dynamic" },
        Init { name: "forkyard init (static)", path: stat.into(), args: vec!["init", "--"], note: ", musl, static" },
        Init { name: "tini", path: "/usr/bin/tini".into(), args: vec!["-s", "--"], note: "" },
        Init { name: "tini-static", path: "/usr/bin/tini-static".into(), args: vec!["-s", "--"], note: "" },
        Init { name: "dumb-init", path: "/usr/bin/dumb-init".into(), args: vec![], note: "" },
        Init { name: "catatonit", path: "/usr/bin/catatonit".into(), args: vec!["--"], note: "" },
    ];
    candidates
        .into_iter()
        .filter(|i| {
            let found = i.path.exists();
            if !found {
                eprintln!("skipping {}: {} not found", i.name, i.path.display());
            }
            found
        })
        .collect()
}

fn me() -> PathBuf {
    std::env::current_exe().expect("the bench binary")
}

// --- helpers run as the init's command ----------------------------------------------------------

fn helper_main(which: &str) -> i32 {
    match which {
        // Forks N children that exit at once and collects them itself (the baseline).
        "own" => {
            let n = count();
            for _ in 0..n {
                common::bare_fork();
            }
            0
        }
        // Makes N orphans (double fork; the grandchild exits at once, for PID 1 to collect),
        // prints "done", then waits for its stdin to close.
        "storm" => {
            let n = count();
            for _ in 0..n {
                common::make_orphan();
            }
            println!("done");
            let _ = std::io::stdout().flush();
            wait_stdin();
            0
        }
        // Orphans one child every 200 ms until its stdin closes.
        "orphaner" => {
            println!("ready");
            let _ = std::io::stdout().flush();
            loop {
                let mut fds = [libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 }];
                // SAFETY: a valid pollfd; 200 ms timeout.
                let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 200) };
                if n > 0 {
                    return 0;
                }
                common::make_orphan();
            }
        }
        // Prints "ready" and waits for stdin to close.
        "idle" => {
            println!("ready");
            let _ = std::io::stdout().flush();
            wait_stdin();
            0
        }
        _ => 100,
    }
}

fn count() -> usize {
    std::env::var("FORKYARD_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(5000)
}

fn wait_stdin() {
    let mut b = [0u8; 64];
    // SAFETY: blocking reads into a valid buffer until end of file.
    while unsafe { libc::read(0, b.as_mut_ptr().cast(), b.len()) } > 0 {}
}

// --- measuring ---------------------------------------------------------------------------------

/// A started init with its workload; stdout lines are read with `line`.
struct Running {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Running {
    fn start(init: &Init, pid1: bool, helper: &str, envs: &[(&str, String)]) -> Running {
        let mut cmd = init.command(pid1);
        cmd.arg(me())
            .env("FORKYARD_BENCH_HELPER", helper)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Running { child, out }
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        self.out.read_line(&mut s).expect("read");
        s.trim().to_string()
    }

    /// The init's own host PID: the process itself, or unshare's only child.
    fn init_pid(&self, pid1: bool) -> i32 {
        let me = self.child.id() as i32;
        if !pid1 {
            return me;
        }
        let children = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default();
        children.split_whitespace().next().and_then(|p| p.parse().ok()).expect("unshare's child")
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The CPU time a process has used, from /proc/PID/schedstat (nanoseconds; the tick-based
/// utime and stime of /proc/PID/stat are too coarse for an init's few milliseconds).
fn cpu_time(pid: i32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    Duration::from_nanos(text.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn status_field(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Zombies whose parent is `ppid`.
fn zombies_of(ppid: i32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
            let mut f = after.split(' ');
            f.next() == Some("Z") && f.next().and_then(|p| p.parse::<i32>().ok()) == Some(ppid)
        })
        .count()
}

// --- the five measurements ---------------------------------------------------------------------

fn storm(inits: &[Init]) {
    const ROUNDS: usize = 5;
    let n = count();
    println!("### {n} orphans created as fast as possible (init as PID 1 of a new PID namespace)\n");
    println!(
        "A process makes {n} orphans (fork, whose child forks and both exit at once), so PID 1 must collect {n} zombies. Wall time is from start until no zombie is left; CPU is the init's own at that moment (time on CPU from /proc/PID/schedstat). The baseline forks {n} children and collects them itself, with no init. Median of {ROUNDS} runs.\n"
    );
    let mut base = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let status = Command::new(me()).env("FORKYARD_BENCH_HELPER", "own").status().expect("baseline");
        assert!(status.success());
        base.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("| init | wall time | init's CPU time |");
    println!("|---|---|---|");
    println!("| (baseline: the creator collects its own children) | {:.0} ms | — |", common::median(&mut base));
    for init in inits {
        let (mut wall, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let mut r = Running::start(init, true, "storm", &[]);
            assert_eq!(r.line(), "done");
            let pid = r.init_pid(true);
            // Wait (for the state, with a bound) until PID 1 has collected every zombie.
            let deadline = Instant::now() + Duration::from_secs(60);
            while zombies_of(pid) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            wall.push(t.elapsed().as_secs_f64() * 1e3);
            cpu.push(cpu_time(pid).as_secs_f64() * 1e3);
            r.finish();
        }
        println!("| {} | {:.0} ms | {:.1} ms |", init.name, common::median(&mut wall), common::median(&mut cpu));
    }
    println!();
}

fn zombies(inits: &[Init]) {
    println!("### Zombies while a service orphans a child every 200 ms (init as PID 1)\n");
    println!("30 samples, 100 ms apart, of the zombies whose parent is the init.\n");
    println!("| init | max zombies | sum over 30 samples |");
    println!("|---|---|---|");
    for init in inits {
        let mut r = Running::start(init, true, "orphaner", &[]);
        assert_eq!(r.line(), "ready");
        let pid = r.init_pid(true);
        let samples: Vec<usize> = (0..30)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(100));
                zombies_of(pid)
            })
            .collect();
        r.finish();
        println!("| {} | {} | {} |", init.name, samples.iter().max().unwrap_or(&0), samples.iter().sum::<usize>());
    }
    println!();
}

fn idle(inits: &[Init]) {
    println!("### Wake-ups in 5 s of idling\n");
    println!("Voluntary context switches of the init process (/proc/PID/status) while its command waits on a pipe.\n");
    println!("| init | wake-ups in 5 s |");
    println!("|---|---|");
    for init in inits {
        let mut r = Running::start(init, false, "idle", &[]);
        assert_eq!(r.line(), "ready");
        let pid = r.init_pid(false);
        std::thread::sleep(Duration::from_millis(200));
        let before = status_field(pid, "voluntary_ctxt_switches:");
        std::thread::sleep(Duration::from_secs(5));
        let after = status_field(pid, "voluntary_ctxt_switches:");
        r.finish();
        println!("| {} | {} |", init.name, after - before);
    }
    println!();
}

fn true_wall(inits: &[Init]) {
    const ROUNDS: usize = 30;
    const PER: usize = 20;
    println!("### Wall time of `INIT -- true`\n");
    println!(
        "{ROUNDS} alternating rounds of {PER} runs each; the median of the per-round means. (`tini` gets `-s` so it does not warn.)\n"
    );
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); inits.len() + 1];
    let run = |cmd: &mut Command| {
        let t = Instant::now();
        let s = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("run");
        assert!(s.success());
        t.elapsed().as_secs_f64() * 1e3
    };
    for _ in 0..ROUNDS {
        times[0].push((0..PER).map(|_| run(&mut Command::new("true"))).sum::<f64>() / PER as f64);
        for (i, init) in inits.iter().enumerate() {
            times[i + 1].push((0..PER).map(|_| run(init.command(false).arg("true"))).sum::<f64>() / PER as f64);
        }
    }
    println!("| command | median |");
    println!("|---|---|");
    println!("| `true` alone | {:.2} ms |", common::median(&mut times[0]));
    for (i, init) in inits.iter().enumerate() {
        println!("| {} | {:.2} ms |", init.name, common::median(&mut times[i + 1]));
    }
    println!();
}

fn rss(inits: &[Init]) {
    println!("### The init's own peak RSS\n");
    println!(
        "VmHWM of the init process (not of its command) from /proc/PID/status, while its command waits on a pipe.\n"
    );
    println!("| init | peak RSS (VmHWM) |");
    println!("|---|---|");
    for init in inits {
        let mut r = Running::start(init, false, "idle", &[]);
        assert_eq!(r.line(), "ready");
        let pid = r.init_pid(false);
        let hwm = status_field(pid, "VmHWM:");
        r.finish();
        println!("| {} | {hwm} kB |", init.name);
    }
    println!();
}

// --- where ---------------------------------------------------------------------------------------

fn size_kb(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len() / 1024).unwrap_or(0)
}
