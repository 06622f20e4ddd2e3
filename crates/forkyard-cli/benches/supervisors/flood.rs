//! Under a `yes` flood: the supervisor's memory while its service writes as fast as it can, and
//! how long a stop takes to reach that service.
//!
//! The supervisor's own stdout goes either to /dev/null or to a pipe that a thread of the bench
//! reads as fast as it can, so that what is measured is the supervisor, not a slow terminal.
//! Each peer captures the output its most natural way (`Output::Logged`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Stdio;
use std::thread::JoinHandle;
use std::time::Duration;

use forkyard::procs::Snapshot;
use forkyard::{Pid, Signal};

use super::{Kind, Output, Running, Svc, c_program, common, monotonic_ns, ms, range, rounds, wait_until};

/// The flooding service that reports its stop signal's arrival.
fn flooder_bin() -> PathBuf {
    c_program("flooder", include_str!("flooder.c"))
}

/// How long the memory is sampled under the flood: 5 s, or `FORKYARD_BENCH_FLOOD_SECS`.
fn flood_secs() -> f64 {
    std::env::var("FORKYARD_BENCH_FLOOD_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(5.0)
}

/// Where the supervisor's own stdout goes.
#[derive(Clone, Copy)]
enum Sink {
    Null,
    Pipe,
}

impl Sink {
    const ALL: [Sink; 2] = [Sink::Null, Sink::Pipe];

    fn name(self) -> &'static str {
        match self {
            Sink::Null => "/dev/null",
            Sink::Pipe => "pipe",
        }
    }

    /// The stdout to give the supervisor and, for a pipe, the thread that reads it to the end
    /// (it returns how many bytes it read).
    fn open(self) -> (Stdio, Option<JoinHandle<u64>>) {
        match self {
            Sink::Null => {
                let null = File::options().write(true).open("/dev/null").expect("open /dev/null");
                (Stdio::from(null), None)
            }
            Sink::Pipe => {
                // std::io::pipe is newer than the workspace's rust-version.
                let mut fds = [0; 2];
                // SAFETY: pipe2 writes two descriptors into the array we pass.
                if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
                    panic!("a pipe for the supervisor's stdout: {}", std::io::Error::last_os_error());
                }
                // SAFETY: both descriptors are new and owned by nothing else.
                let (mut r, w) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
                let reader = std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 17];
                    let mut total = 0u64;
                    loop {
                        match r.read(&mut buf) {
                            Ok(0) => return total,
                            Ok(n) => total += n as u64,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(_) => return total,
                        }
                    }
                });
                (Stdio::from(w), Some(reader))
            }
        }
    }
}

/// The supervisors that take part, each with what it does with the flood.
fn flooded(kinds: &[Kind]) -> Vec<(Kind, &'static str)> {
    kinds
        .iter()
        .filter_map(|&k| {
            let what = match k {
                Kind::Forkyard { zero_backoff: false } => {
                    "reads the service's pipe, prefixes each line, writes it to its stdout"
                }
                Kind::Supervisord { group: false } => {
                    "`stdout_logfile=/dev/stdout`, `maxbytes=0`: reads the service's pipe, writes to its stdout"
                }
                Kind::Runit => "runsv pipes the service into `svlogd -tt ./main` (files of 1 MB, 10 kept)",
                Kind::S6 { notify: false } => {
                    "s6-svscan pipes the service into `s6-log n10 s1000000 T ./main` (files of 1 MB, 10 kept)"
                }
                _ => return None,
            };
            Some((k, what))
        })
        .collect()
}

/// A field of /proc/PID/status in kB (VmRSS, VmHWM).
fn status_kb(pid: Pid, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Bytes a process has written (`wchar` of /proc/PID/io).
fn written(pid: Pid) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// kB with thousands separators.
fn kb(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out} kB")
}

// --- memory under the flood --------------------------------------------------------------------

/// One supervisor's memory under the flood.
struct Memory {
    processes: usize,
    /// The largest sum of VmRSS over the supervision tree among the samples.
    rss_max: u64,
    /// VmHWM summed over the supervision tree at the end of the flood.
    hwm_sum: u64,
    /// The process with the largest VmHWM: its name and VmHWM.
    biggest: (String, u64),
    /// What `yes` wrote, in bytes per second.
    rate: f64,
}

fn memory_under_flood(kind: Kind, sink: Sink, secs: f64) -> Result<Memory, String> {
    let (stdout, reader) = sink.open();
    // Two words, so that runit and s6 get a `run` script (`exec /usr/bin/yes y`), as usual.
    let yes = Svc::new("flood", vec!["/usr/bin/yes".into(), "y".into()]);
    let r = Running::start_with(kind, &[yes], "none", false, Output::Logged, stdout);
    let root = Pid::new(r.pid).expect("pid");
    let found = wait_until(Duration::from_secs(20), || {
        let snap = Snapshot::take().ok()?;
        snap.descendants(root).iter().find(|p| p.comm == "yes" && !p.is_zombie()).map(|p| p.pid)
    });
    let result = match found {
        None => Err("`yes` did not start".to_string()),
        Some(yes) => {
            // Let the flood and the loggers settle before the tree is listed.
            std::thread::sleep(Duration::from_millis(500));
            let snap = Snapshot::take().expect("snapshot");
            let ours: Vec<(Pid, String)> = snap
                .tree(root)
                .iter()
                .map(|e| e.process)
                .filter(|p| p.pid != yes)
                .map(|p| (p.pid, p.comm.clone()))
                .collect();
            let w0 = written(yes).unwrap_or(0);
            let t0 = monotonic_ns();
            let mut rss_max = 0;
            let end = t0 + (secs * 1e9) as u64;
            while monotonic_ns() < end {
                let sum: u64 = ours.iter().filter_map(|(p, _)| status_kb(*p, "VmRSS")).sum();
                rss_max = rss_max.max(sum);
                std::thread::sleep(Duration::from_millis(50));
            }
            let rate = (written(yes).unwrap_or(0).saturating_sub(w0)) as f64 / ((monotonic_ns() - t0) as f64 / 1e9);
            let hwm: Vec<(String, u64)> =
                ours.iter().map(|(p, name)| (name.clone(), status_kb(*p, "VmHWM").unwrap_or(0))).collect();
            let biggest = hwm.iter().max_by_key(|(_, v)| *v).cloned().unwrap_or_default();
            Ok(Memory { processes: ours.len(), rss_max, hwm_sum: hwm.iter().map(|(_, v)| v).sum(), biggest, rate })
        }
    };
    r.finish();
    if let Some(reader) = reader {
        let _ = reader.join();
    }
    result
}

/// (a) The supervisor's memory under a `yes` flood.
pub fn memory(kinds: &[Kind]) {
    let secs = flood_secs();
    println!("### Memory under a `yes` flood\n");
    println!(
        "One service runs `yes` (`/usr/bin/yes y`: 8 KiB writes of `y\\n` as fast as the pipe takes them); the supervisor's own stdout goes to /dev/null or to a pipe that the bench reads as fast as it can. After `yes` started and 0.5 s more, the supervision tree (every process under the supervisor but `yes`) is listed, its VmRSS summed every 50 ms for {secs} s; then each process's VmHWM (its peak RSS since it started, from /proc/PID/status). \"yes wrote\" is the flood's rate over the same {secs} s (`wchar` of /proc/PID/io): how fast the supervision takes the output in.\n"
    );
    println!(
        "| supervisor | what it does with the output | its stdout | processes | VmRSS, max of samples (summed) | VmHWM, summed | largest VmHWM | yes wrote |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut forkyard_hwm = Vec::new();
    for (kind, what) in flooded(kinds) {
        for sink in Sink::ALL {
            match memory_under_flood(kind, sink, secs) {
                Ok(m) => {
                    if matches!(kind, Kind::Forkyard { .. }) {
                        forkyard_hwm.push(m.hwm_sum);
                    }
                    println!(
                        "| {} | {what} | {} | {} | {} | {} | {} {} | {:.0} MB/s |",
                        kind.name(),
                        sink.name(),
                        m.processes,
                        kb(m.rss_max),
                        kb(m.hwm_sum),
                        m.biggest.0,
                        kb(m.biggest.1),
                        m.rate / 1e6
                    );
                }
                Err(e) => println!("| {} | {what} | {} | {e} | — | — | — | — |", kind.name(), sink.name()),
            }
        }
    }
    println!();
    if let Some(&worst) = forkyard_hwm.iter().max() {
        let verdict = if worst < 32 * 1024 { "met" } else { "not met" };
        println!(
            "forkyard up's peak RSS under the flood: at most {} (VmHWM). Target < 32 MiB: {verdict}.\n",
            kb(worst)
        );
    }
}

// --- signal latency under the flood --------------------------------------------------------------

/// How the bench asks for the stop.
#[derive(Clone, Copy)]
enum Stop {
    /// This signal to the supervisor.
    Signal(Signal),
    /// `d` written to the service's `supervise/control` FIFO, as `sv down` and `s6-svc -d` do.
    Control,
    /// `supervisor.stopProcess` over supervisord's Unix socket, as `supervisorctl stop` sends it.
    XmlRpc,
}

fn stops(kinds: &[Kind]) -> Vec<(Kind, Stop, &'static str)> {
    let mut out = Vec::new();
    for (kind, _) in flooded(kinds) {
        match kind {
            Kind::Forkyard { .. } => out.push((kind, Stop::Signal(Signal::TERM), "SIGTERM to `up`")),
            Kind::Supervisord { .. } => {
                out.push((kind, Stop::Signal(Signal::TERM), "SIGTERM to supervisord (shutdown)"));
                out.push((
                    kind,
                    Stop::XmlRpc,
                    "`supervisor.stopProcess` on its socket (`supervisorctl stop`'s request)",
                ));
            }
            Kind::Runit => {
                out.push((kind, Stop::Signal(Signal::HUP), "SIGHUP to runsvdir (shutdown; its SIGTERM stops nothing)"));
                out.push((kind, Stop::Control, "`d` into supervise/control (what `sv down` writes)"));
            }
            Kind::S6 { .. } => {
                out.push((kind, Stop::Signal(Signal::TERM), "SIGTERM to s6-svscan (shutdown)"));
                out.push((kind, Stop::Control, "`d` into supervise/control (what `s6-svc -d` writes)"));
            }
            Kind::Floor => {}
        }
    }
    out
}

/// One stop under the flood: the time from the bench's request to the flooder's handler.
fn one_stop(kind: Kind, stop: Stop, sink: Sink, warm: Duration) -> Result<f64, String> {
    let (stdout, reader) = sink.open();
    let svc = Svc::new("flood", vec![flooder_bin().display().to_string()]);
    let r = Running::start_with(kind, &[svc], "none", false, Output::Logged, stdout);
    let result = (|| {
        r.announced(Duration::from_secs(30)).ok_or("the flooder did not start")?;
        std::thread::sleep(warm);
        let mut control = None;
        let mut rpc = None;
        match stop {
            Stop::Control => {
                let fifo = r.dir().join("scan/flood/supervise/control");
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&fifo)
                    .map_err(|e| format!("{}: {e}", fifo.display()))?;
                control = Some(f);
            }
            Stop::XmlRpc => {
                let s = UnixStream::connect(r.dir().join("supervisor.sock"))
                    .map_err(|e| format!("supervisor.sock: {e}"))?;
                rpc = Some(s);
            }
            Stop::Signal(_) => {}
        }
        let t0 = monotonic_ns();
        match stop {
            Stop::Signal(sig) => sig.send(Pid::new(r.pid).expect("pid")).map_err(|e| e.to_string())?,
            Stop::Control => {
                control.as_mut().expect("opened").write_all(b"d").map_err(|e| e.to_string())?;
            }
            Stop::XmlRpc => {
                let body = "<?xml version=\"1.0\"?><methodCall><methodName>supervisor.stopProcess</methodName><params><param><value><string>flood</string></value></param><param><value><boolean>0</boolean></value></param></params></methodCall>";
                let req = format!(
                    "POST /RPC2 HTTP/1.0\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                rpc.as_mut().expect("connected").write_all(req.as_bytes()).map_err(|e| e.to_string())?;
            }
        }
        // The next report from a flooder: its stop signal's arrival (a restart would announce
        // a start instead, which is skipped).
        let limit = Duration::from_secs(15);
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let text = r.message(left.max(Duration::from_millis(1))).ok_or("not within 15 s")?;
            if let Some(rest) = text.strip_prefix("stop ") {
                let at: u64 = rest.split(' ').nth(1).and_then(|v| v.parse().ok()).ok_or("a bad report")?;
                return Ok(at.saturating_sub(t0) as f64 / 1e6);
            }
        }
    })();
    r.finish();
    if let Some(reader) = reader {
        let _ = reader.join();
    }
    result
}

/// (b) How long a stop takes to reach a flooding service.
pub fn latency(kinds: &[Kind]) {
    let n = rounds(10);
    let warm = Duration::from_secs(1);
    println!("### Signal latency under a `yes` flood\n");
    println!(
        "The service is a static C program that writes like `yes` (8 KiB writes of `y\\n`) and, first thing in its SIGTERM handler, reads CLOCK_MONOTONIC and sends it to the bench. The supervisor is started afresh, its stdout to /dev/null or to a pipe the bench reads; after {} s of flood the bench asks for the stop: measured from just before the request (`kill(2)` on the supervisor, or the write of the command) to the signal's arrival in the service. {n} rounds, the cases in turn; median, with the range.\n",
        warm.as_secs()
    );
    let cases = stops(kinds);
    let mut times: Vec<Vec<Result<f64, String>>> = vec![Vec::new(); cases.len() * Sink::ALL.len()];
    for _ in 0..n {
        for (c, &(kind, stop, _)) in cases.iter().enumerate() {
            for (s, &sink) in Sink::ALL.iter().enumerate() {
                times[c * Sink::ALL.len() + s].push(one_stop(kind, stop, sink, warm));
            }
        }
    }
    println!("| supervisor | the request | its stdout | median | range |");
    println!("|---|---|---|---|---|");
    let mut forkyard = Vec::new();
    let mut forkyard_failed = 0;
    for (c, &(kind, _, what)) in cases.iter().enumerate() {
        for (s, &sink) in Sink::ALL.iter().enumerate() {
            let all = &times[c * Sink::ALL.len() + s];
            let mut ok: Vec<f64> = all.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
            let failed: Vec<&String> = all.iter().filter_map(|r| r.as_ref().err()).collect();
            if matches!(kind, Kind::Forkyard { .. }) {
                forkyard.extend(ok.iter().copied());
                forkyard_failed += failed.len();
            }
            let median = if ok.is_empty() { "—".to_string() } else { ms(common::median(&mut ok)) };
            let span = if ok.is_empty() { "—".to_string() } else { range(&ok) };
            let note = match failed.first() {
                Some(e) => format!(" ({} of {} failed: {e})", failed.len(), all.len()),
                None => String::new(),
            };
            println!("| {} | {what} | {} | {median}{note} | {span} |", kind.name(), sink.name());
        }
    }
    println!();
    if forkyard_failed > 0 {
        println!(
            "forkyard up: {forkyard_failed} of {} SIGTERMs did not reach the flooding service within 15 s. Target ≤ 100 ms: not met.\n",
            forkyard_failed + forkyard.len()
        );
    } else if !forkyard.is_empty() {
        let worst = forkyard.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let verdict = if worst <= 100.0 { "met" } else { "not met" };
        println!(
            "forkyard up: SIGTERM reached the flooding service within {} at worst ({} stops). Target ≤ 100 ms: {verdict}.\n",
            ms(worst),
            forkyard.len()
        );
    }
}
