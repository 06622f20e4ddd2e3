//! Side-by-side measurements for docs/benchmarks.md, printed as Markdown.
//!
//! Run all: `cargo bench -p forkyard --bench compare`; or some of: `roundtrip pool reap idle
//! ps` after `--`. The `ps` section times the `forkyard` binary named by `FORKYARD_BIN`
//! (default `target/release/forkyard`; `bench/run.sh` builds it) against procps `ps`.
//!
//! Method: this machine's timing drifts by tens of percent from minute to minute (a VM on a
//! shared host), so compared variants are run in alternating rounds and the ratio is the
//! median of per-round ratios, not a ratio of separately taken medians.

#[path = "../../../bench/common.rs"]
mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use forkyard::{Fork, Pid, Pool, Reaper, Scope, Strategy};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    println!(
        "_Measured {} on {} ({} CPUs), kernel {}._\n",
        common::date(),
        common::host_cpu(),
        common::cpus(),
        common::kernel()
    );
    if want("roundtrip") {
        roundtrip();
    }
    if want("pool") {
        pool();
    }
    if want("reap") {
        reap_latency();
    }
    if want("idle") {
        idle_wakeups();
    }
    if want("ps") {
        ps();
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn minor_faults(who: libc::c_int) -> i64 {
    // SAFETY: an all-zero rusage is valid; getrusage fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is valid for writes.
    unsafe { libc::getrusage(who, &mut ru) };
    ru.ru_minflt
}

// --- round trip ---------------------------------------------------------------------------

fn roundtrip() {
    const ROUNDS: usize = 40;
    const PER_ROUND: usize = 100;
    let time = |f: &dyn Fn()| {
        let t = Instant::now();
        for _ in 0..PER_ROUND {
            f();
        }
        us(t.elapsed()) / PER_ROUND as f64
    };
    let variants: [(&str, &dyn Fn()); 3] = [
        ("bare `fork` + `_exit` + `waitpid`", &common::bare_fork),
        ("`run_in_child(|| 42u64)`", &|| {
            forkyard::run_in_child(|| 42u64).expect("child");
        }),
        ("`run_in_child` returning 32 KiB", &|| {
            forkyard::run_in_child(|| vec![7u8; 32 * 1024]).expect("child");
        }),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut faults = vec![(0i64, 0i64); variants.len()];
    for _ in 0..ROUNDS {
        let mut round = Vec::new();
        for (i, (_, f)) in variants.iter().enumerate() {
            let before = (minor_faults(libc::RUSAGE_SELF), minor_faults(libc::RUSAGE_CHILDREN));
            round.push(time(*f));
            faults[i].0 += minor_faults(libc::RUSAGE_SELF) - before.0;
            faults[i].1 += minor_faults(libc::RUSAGE_CHILDREN) - before.1;
        }
        for (i, t) in round.iter().enumerate() {
            times[i].push(*t);
            ratios[i].push(t / round[0]);
        }
    }
    let calls = (ROUNDS * PER_ROUND) as f64;
    println!("### Closure in a child: round trip\n");
    println!(
        "{ROUNDS} alternating rounds of {PER_ROUND} calls each. Page faults are minor faults per call from getrusage: after a fork, each page either process writes, and each code page the child runs, costs one.\n"
    );
    println!("| call | median per call | ratio to bare fork (median of rounds) | faults: parent + child |");
    println!("|---|---|---|---|");
    for (i, (name, _)) in variants.iter().enumerate() {
        println!(
            "| {name} | {:.1} µs | {:.2}× | {:.1} + {:.1} |",
            common::median(&mut times[i]),
            common::median(&mut ratios[i]),
            faults[i].0 as f64 / calls,
            faults[i].1 as f64 / calls
        );
    }
    println!();
}

// --- pool vs Python ----------------------------------------------------------------------

const PYTHON_POOL: &str = r#"
import multiprocessing as mp, statistics, sys, time
def f(x):
    return x * x
if __name__ == "__main__":
    mp.set_start_method("fork")
    mode = sys.argv[1]
    items = list(range(10000))
    if mode == "cold":
        t = time.perf_counter()
        p = mp.Pool(2)
        r = p.map(f, items)
        p.close(); p.join()
        print(time.perf_counter() - t)
    else:
        p = mp.Pool(2)
        p.map(f, items)
        t = time.perf_counter()
        r = p.map(f, items)
        print(time.perf_counter() - t)
        p.close(); p.join()
"#;

fn python_pool(mode: &str) -> Option<f64> {
    let out = Command::new("python3").args(["-c", PYTHON_POOL, mode]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().ok().map(|s| s * 1e3)
}

fn pool() {
    const ROUNDS: usize = 15;
    let inputs: Vec<u64> = (0..10_000).collect();
    let ours_cold = || {
        let t = Instant::now();
        let mut p = Pool::new(2, |x: u64| x * x).expect("pool");
        let r = p.map(&inputs).expect("map");
        drop(p);
        assert_eq!(r.len(), 10_000);
        t.elapsed().as_secs_f64() * 1e3
    };
    let ours_warm = || {
        let mut p = Pool::new(2, |x: u64| x * x).expect("pool");
        p.map(&inputs).expect("map");
        let t = Instant::now();
        let r = p.map(&inputs).expect("map");
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(r.len(), 10_000);
        ms
    };
    let (mut oc, mut ow, mut pc, mut pw, mut rc, mut rw) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let (a, b) = (ours_cold(), ours_warm());
        let Some(c) = python_pool("cold") else {
            println!("### Pool\n\npython3 is not available; skipped.\n");
            return;
        };
        let d = python_pool("warm").unwrap_or(f64::NAN);
        oc.push(a);
        ow.push(b);
        pc.push(c);
        pw.push(d);
        rc.push(c / a);
        rw.push(d / b);
    }
    let pyver = Command::new("python3")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("### Pool map of 10,000 tiny items (x → x², 2 workers)\n");
    println!(
        "{ROUNDS} alternating rounds; {pyver} `multiprocessing.Pool` with the fork start method, timed inside the interpreter (its start-up is not counted).\n"
    );
    println!("| | forkyard `Pool` | Python `Pool` | Python ÷ forkyard |");
    println!("|---|---|---|---|");
    println!(
        "| start, map, stop | {:.2} ms | {:.2} ms | {:.1}× |",
        common::median(&mut oc),
        common::median(&mut pc),
        common::median(&mut rc)
    );
    println!(
        "| map on a warm pool | {:.2} ms | {:.2} ms | {:.1}× |",
        common::median(&mut ow),
        common::median(&mut pw),
        common::median(&mut rw)
    );
    println!();
}

// --- reap latency --------------------------------------------------------------------------

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: valid array for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are fresh and ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Forks a child that writes CLOCK_MONOTONIC to `w` and exits at once.
fn stamped_child(w: &OwnedFd) -> forkyard::Child {
    // SAFETY: single-threaded bench; the child writes and _exits.
    match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => {
            let t = forkyard::time::monotonic_now().as_nanos() as u64;
            // SAFETY: writing 8 bytes from a valid buffer.
            unsafe { libc::write(w.as_raw_fd(), t.to_le_bytes().as_ptr().cast(), 8) };
            forkyard::exit_child(0)
        }
        Fork::Parent(child) => child,
    }
}

fn reap_latency() {
    const N: usize = 300;
    println!("### From a child's exit to its `Reaped`\n");
    println!(
        "The child reads CLOCK_MONOTONIC, writes it to a pipe and calls `_exit`; the parent reads the clock when `wait` returns. {N} children per strategy, one at a time.\n"
    );
    println!("| strategy | median | 90th percentile | max |");
    println!("|---|---|---|---|");
    let strategies: [(&str, Option<(Strategy, Scope)>); 5] = [
        ("blocking `Child::wait` (reference)", None),
        ("`Signal`, `Scope::All`", Some((Strategy::Signal, Scope::All))),
        ("`Signal`, `Scope::OwnChildren`", Some((Strategy::Signal, Scope::OwnChildren))),
        ("`Pidfd`", Some((Strategy::Pidfd, Scope::OwnChildren))),
        ("`Poll(10ms)`", Some((Strategy::Poll(Duration::from_millis(10)), Scope::OwnChildren))),
    ];
    for (name, strategy) in strategies {
        let (r, w) = pipe();
        let mut reaper = strategy.map(|(s, scope)| Reaper::new(s, scope).expect("reaper"));
        let mut lat = Vec::with_capacity(N);
        let mut file = std::fs::File::from(r.try_clone().expect("dup"));
        for _ in 0..N {
            let mut child = stamped_child(&w);
            let reaped_at = match &mut reaper {
                None => {
                    child.wait().expect("wait");
                    forkyard::time::monotonic_now()
                }
                Some(reaper) => {
                    reaper.watch(child).expect("watch");
                    let got = reaper.wait().expect("wait");
                    let t = forkyard::time::monotonic_now();
                    assert_eq!(got.len(), 1);
                    t
                }
            };
            let mut b = [0u8; 8];
            file.read_exact(&mut b).expect("the child's clock");
            let exited = Duration::from_nanos(u64::from_le_bytes(b));
            lat.push(us(reaped_at.saturating_sub(exited)));
        }
        println!(
            "| {name} | {:.1} µs | {:.1} µs | {:.1} µs |",
            common::median(&mut lat),
            percentile(&mut lat, 0.9),
            percentile(&mut lat, 1.0)
        );
    }
    println!();
}

// --- idle wake-ups -------------------------------------------------------------------------

fn voluntary_switches(pid: Pid) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches")
}

fn idle_wakeups() {
    const IDLE: Duration = Duration::from_secs(5);
    println!("### Wake-ups of an idle reaper in 5 s\n");
    println!(
        "A process creates the reaper, starts one child that sleeps, and calls `wait`. Voluntary context switches of that process (from /proc/PID/status) are read when it is ready and again 5 s later.\n"
    );
    println!("| strategy | wake-ups in 5 s |");
    println!("|---|---|");
    for (name, strategy, scope) in [
        ("`Signal`, `Scope::All`", Strategy::Signal, Scope::All),
        ("`Pidfd`", Strategy::Pidfd, Scope::OwnChildren),
        ("`Poll(100ms)`", Strategy::Poll(Duration::from_millis(100)), Scope::OwnChildren),
        ("`Poll(1s)`", Strategy::Poll(Duration::from_secs(1)), Scope::OwnChildren),
    ] {
        let (ready_r, ready_w) = pipe();
        // SAFETY: single-threaded bench; the host process makes ordinary calls and _exits.
        let mut host = match unsafe { forkyard::fork() }.expect("fork") {
            Fork::Child => {
                let mut reaper = Reaper::new(strategy, scope).expect("reaper");
                // SAFETY: the host is single-threaded; the sleeper pauses until killed.
                let sleeper = match unsafe { forkyard::fork() }.expect("fork") {
                    Fork::Child => loop {
                        // SAFETY: pause has no preconditions.
                        unsafe { libc::pause() };
                    },
                    Fork::Parent(c) => c,
                };
                let pid = sleeper.pid().as_raw().to_le_bytes();
                reaper.watch(sleeper).expect("watch");
                // SAFETY: writing 4 bytes from a valid buffer.
                unsafe { libc::write(ready_w.as_raw_fd(), pid.as_ptr().cast(), 4) };
                while reaper.wait().expect("wait").is_empty() {}
                forkyard::exit_child(0)
            }
            Fork::Parent(c) => c,
        };
        drop(ready_w);
        let mut b = [0u8; 4];
        std::fs::File::from(ready_r).read_exact(&mut b).expect("ready");
        let sleeper = Pid::new(i32::from_le_bytes(b)).expect("pid");
        // Let the host reach its sleep, then count.
        std::thread::sleep(Duration::from_millis(200));
        let before = voluntary_switches(host.pid());
        std::thread::sleep(IDLE);
        let after = voluntary_switches(host.pid());
        forkyard::Signal::KILL.send(sleeper).expect("kill the sleeper");
        host.wait().expect("host");
        println!("| {name} | {} |", after - before);
    }
    println!();
}

// --- ps ----------------------------------------------------------------------------------

fn ps() {
    const ALIVE: usize = 10_000;
    const ROUNDS: usize = 10;
    // cargo runs benches from the crate's directory; the binary is in the workspace's target.
    let bin = std::env::var("FORKYARD_BIN")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/bench-bin/forkyard").into());
    if !std::path::Path::new(&bin).exists() {
        println!(
            "### ps\n\n{bin} not found: build it with `cargo build --release -p forkyard-cli` (bench/run.sh does).\n"
        );
        return;
    }
    // Start ALIVE processes that block on a pipe, so they all end when it closes.
    let (r, w) = pipe();
    let mut kids = Vec::with_capacity(ALIVE);
    for _ in 0..ALIVE {
        // SAFETY: single-threaded bench; each child closes its write end, reads and _exits.
        match unsafe { forkyard::fork() }.expect("fork") {
            Fork::Child => {
                let mut b = [0u8; 1];
                // SAFETY: closing our copy of the write end, then a blocking read.
                unsafe {
                    libc::close(w.as_raw_fd());
                    libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                }
                forkyard::exit_child(0)
            }
            Fork::Parent(c) => kids.push(c),
        }
    }
    let total = forkyard::procs::Snapshot::take().expect("snapshot").processes().len();
    let run = |cmd: &str, args: &[&str]| -> f64 {
        let t = Instant::now();
        let status = Command::new(cmd).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("run");
        assert!(status.success(), "{cmd} {args:?}");
        t.elapsed().as_secs_f64() * 1e3
    };
    let columns = "pid,ppid,pgid,sid,tty,stat,user,time,args";
    let cases: [(&str, &str, Vec<&str>); 4] = [
        ("`ps -e` (PID TTY TIME CMD)", "ps", vec!["-e"]),
        ("`forkyard ps`", bin.as_str(), vec!["ps"]),
        ("`ps -eo pid,ppid,pgid,sid,tty,stat,user,time,args` (forkyard's columns)", "ps", vec!["-eo", columns]),
        ("`forkyard ps --zombies`", bin.as_str(), vec!["ps", "--zombies"]),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, cmd, args)) in cases.iter().enumerate() {
            times[i].push(run(cmd, args));
        }
    }
    drop(w);
    drop(r);
    for mut k in kids {
        k.wait().expect("collect");
    }
    let procps = Command::new("ps")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("### `forkyard ps` against procps with {ALIVE} extra processes alive\n");
    println!("{total} processes in all; {ROUNDS} alternating rounds; output to /dev/null; {procps}.\n");
    println!("| command | median wall time | procps `ps -e` ÷ this |");
    println!("|---|---|---|");
    let base = common::median(&mut times[0].clone());
    for (i, (name, _, _)) in cases.iter().enumerate() {
        let m = common::median(&mut times[i]);
        println!("| {name} | {m:.1} ms | {:.2}× |", base / m);
    }
    println!();
}
