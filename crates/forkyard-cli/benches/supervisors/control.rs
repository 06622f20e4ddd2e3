//! The control plane: how long `forkyard ctl status` takes with 100 services, against
//! `supervisorctl status` over the same 100 programs, and whether clients polling the control
//! socket slow down a restart.
//!
//! `control-status` runs `forkyard up` (with `--socket`) and supervisord (with its
//! `unix_http_server`) at once over 100 `sleep`s each, then times each client in turn, as a
//! person would run it: the wall time from spawning the client to its exit, its output read
//! through a pipe. The `forkyard ctl` used is `FORKYARD_CTL_BIN` when set (a binary built from
//! the `ctl` branch before it is merged), else `FORKYARD_BIN`. Reference lines time the same
//! request sent by the bench itself on an open socket (no process started) and the binary's
//! start-up alone (`forkyard --version`).
//!
//! `control-restart` runs `forkyard up` over the timed service (benches/supervisors/service.c,
//! as in `restart`) and 99 `sleep`s, and times restarts after `kill -9` exactly as `restart`
//! does, alternating: (a) no client on the control socket; (b) 50 clients, threads of the
//! bench, each on one keep-alive connection sending `GET /v1/services` again as soon as the
//! previous reply is read; (c) the same 50 clients opening a connection per request (as 50
//! `watch forkyard ctl status` would). The load starts before the kill, runs at least 0.5 s,
//! and stops once the replacement announced itself.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use forkyard::Pid;
use forkyard::procs::Snapshot;
use forkyard_supervise::control::api;

use super::{Kind, Output, Running, Svc, common, forkyard_bin, ms, one_restart, range, ratio, rounds, wait_until};

/// Services in both sections.
const N: usize = 100;
/// Polling clients in `control-restart`.
const CLIENTS: usize = 50;
/// The longest a load may run, whatever happens to the bench's main thread.
const LOAD_LIMIT: Duration = Duration::from_secs(60);

/// The binary whose `ctl` is timed.
fn ctl_bin() -> PathBuf {
    std::env::var_os("FORKYARD_CTL_BIN").map(PathBuf::from).unwrap_or_else(forkyard_bin)
}

/// Whether `bin` has the `ctl` command.
fn has_ctl(bin: &Path) -> bool {
    Command::new(bin)
        .args(["ctl", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where `Kind::command` has `forkyard up` bind its control socket.
fn forkyard_socket(r: &Running) -> PathBuf {
    r.dir().join("ctl.sock")
}

/// Where `Kind::command` has supervisord bind its socket (with `Output::Logged`).
fn supervisord_socket(r: &Running) -> PathBuf {
    r.dir().join("supervisor.sock")
}

fn sleeps(prefix: &str, n: usize) -> Vec<Svc> {
    (0..n).map(|i| Svc::new(&format!("s{i}"), vec!["sleep".into(), format!("{prefix}{i:05}")])).collect()
}

// --- a minimal HTTP/1.1 client ---------------------------------------------------------------------

/// Sends `GET path` on `stream` (kept alive) and reads the whole reply into `buf`: returns its
/// status and where the body starts in `buf`. Only replies with a `content-length` are read
/// (every `/v1/services` reply has one).
fn get(stream: &mut UnixStream, path: &str, buf: &mut Vec<u8>) -> io::Result<(u16, usize)> {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())?;
    buf.clear();
    let mut chunk = [0u8; 64 * 1024];
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let head_end = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(bad("headers over 64 KiB"));
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("headers not UTF-8"))?;
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status"))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .ok_or_else(|| bad("no content-length"))?;
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, head_end))
}

/// The overview from `up`'s control socket, if it answers with one.
fn overview(socket: &Path) -> Option<api::Overview> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let (status, body) = get(&mut s, "/v1/services", &mut buf).ok()?;
    if status != 200 {
        return None;
    }
    serde_json::from_slice(&buf[body..]).ok()
}

/// Waits (up to 60 s) for `up`'s socket to answer with `n` services running.
fn forkyard_all_running(socket: &Path, n: usize) -> bool {
    wait_until(Duration::from_secs(60), || {
        let o = overview(socket)?;
        (o.services.len() == n && o.services.iter().all(|s| s.state == "running" && s.pid.is_some())).then_some(())
    })
    .is_some()
}

// --- status of 100 services --------------------------------------------------------------------

/// One way of asking for the status of everything.
struct Client {
    name: String,
    what: String,
    /// Runs the client once; `Ok(ms)` for a complete answer, else what went wrong.
    run: Box<dyn Fn() -> Result<f64, String>>,
}

/// Times `cmd` from spawn to exit (its stdout read through a pipe); the answer must exit 0
/// and have `n` lines that contain `word`.
fn timed_command(mut cmd: Command, word: &'static str, n: usize) -> Result<f64, String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let t0 = Instant::now();
    let out = cmd.output().map_err(|e| format!("spawn: {e}"))?;
    let took = t0.elapsed().as_secs_f64() * 1e3;
    let text = String::from_utf8_lossy(&out.stdout);
    let found = text.lines().filter(|l| l.contains(word)).count();
    if !out.status.success() || found != n {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{}, {found} lines {word}: {}", out.status, err.trim()));
    }
    Ok(took)
}

/// `supervisor.getAllProcessInfo` (what `supervisorctl status` asks) on supervisord's socket,
/// sent by the bench: the time to the end of the reply.
fn xmlrpc_all(socket: &Path) -> Result<f64, String> {
    let body = "<?xml version=\"1.0\"?><methodCall><methodName>supervisor.getAllProcessInfo</methodName><params></params></methodCall>";
    let req = format!(
        "POST /RPC2 HTTP/1.0\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let t0 = Instant::now();
    let mut s = UnixStream::connect(socket).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // HTTP/1.0: the reply ends when supervisord closes.
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    let took = t0.elapsed().as_secs_f64() * 1e3;
    let text = String::from_utf8_lossy(&reply);
    let running = text.matches("<string>RUNNING</string>").count();
    if !text.starts_with("HTTP/1.0 200") || running != N {
        return Err(format!("a reply with {running} RUNNING"));
    }
    Ok(took)
}

/// `GET /v1/services` sent by the bench on a fresh connection: the time to the end of the reply.
fn get_all(socket: &Path) -> Result<f64, String> {
    let t0 = Instant::now();
    let mut s = UnixStream::connect(socket).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let (status, _) = get(&mut s, "/v1/services", &mut buf).map_err(|e| e.to_string())?;
    let took = t0.elapsed().as_secs_f64() * 1e3;
    if status != 200 {
        return Err(format!("status {status}"));
    }
    Ok(took)
}

/// `forkyard ctl status` against `supervisorctl status`, 100 services each.
pub fn status(kinds: &[Kind]) {
    let n = rounds(50);
    let ctl = ctl_bin();
    let supervisord = kinds.contains(&Kind::Supervisord { group: false });
    let forkyard = kinds.contains(&Kind::Forkyard { zero_backoff: false });
    println!("#### `forkyard ctl status` against `supervisorctl status`, {N} services\n");
    let ctl_note = if std::env::var_os("FORKYARD_CTL_BIN").is_some() {
        format!("`forkyard ctl` is `FORKYARD_CTL_BIN` ({}), `up` is `FORKYARD_BIN`", ctl.display())
    } else {
        "`forkyard ctl` and `up` are the same binary (`FORKYARD_BIN`)".to_string()
    };
    println!(
        "`forkyard up --socket S` and supervisord (`unix_http_server`, `rpcinterface:supervisor`, a `[supervisorctl]` section naming the socket) run at once, each over the same {N} programs (`sleep`); once all {N} are running in both, each client is run {n} times, the clients in turn (the order alternating), as a person would run it: wall time from the spawn to the exit, its output read through a pipe and checked ({N} lines, each service running). {ctl_note}. Reference lines: the same request sent by the bench itself on a fresh connection to the socket, with no process started; and `forkyard --version`, the binary's start-up alone. Median, with the range.\n"
    );
    let forkyard_ok = forkyard && has_ctl(&ctl);
    if forkyard && !forkyard_ok {
        println!(
            "_{} has no `ctl` command: forkyard ctl is not measured (set FORKYARD_CTL_BIN to a binary that has it)._\n",
            ctl.display()
        );
    }
    let mut running: Vec<(Kind, Running)> = Vec::new();
    let mut clients: Vec<Client> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    if forkyard_ok {
        let kind = Kind::Forkyard { zero_backoff: false };
        let r = Running::start(kind, &sleeps("50", N), "none", false);
        let socket = forkyard_socket(&r);
        if forkyard_all_running(&socket, N) {
            let (ctl, s) = (ctl.clone(), socket.clone());
            clients.push(Client {
                name: "forkyard ctl status".into(),
                what: "`forkyard ctl --socket S status`".into(),
                run: Box::new(move || {
                    let mut c = Command::new(&ctl);
                    c.arg("ctl").arg("--socket").arg(&s).arg("status");
                    timed_command(c, "running", N)
                }),
            });
            let s = socket.clone();
            clients.push(Client {
                name: "(reference) the bench: `GET /v1/services`".into(),
                what: "a connection, the request, the reply read to its end".into(),
                run: Box::new(move || get_all(&s)),
            });
            let bin = forkyard_bin();
            clients.push(Client {
                name: "(reference) `forkyard --version`".into(),
                what: "the start-up of `up`'s binary alone".into(),
                run: Box::new(move || {
                    let mut c = Command::new(&bin);
                    c.arg("--version");
                    timed_command(c, "forkyard", 1)
                }),
            });
        } else {
            failures.push(format!("forkyard up: the {N} services were not all running within 60 s"));
        }
        running.push((kind, r));
    }
    if supervisord {
        let kind = Kind::Supervisord { group: false };
        let r = Running::start_with(kind, &sleeps("51", N), "none", false, Output::Logged, Stdio::null());
        let conf = r.dir().join("supervisord.conf");
        let socket = supervisord_socket(&r);
        // Its `[supervisorctl]` section names the socket.
        let command = move || {
            let mut c = Command::new("supervisorctl");
            c.arg("-c").arg(&conf).arg("status");
            c
        };
        // supervisord calls a program RUNNING once it has been up for `startsecs` (1 s).
        let up = wait_until(Duration::from_secs(60), || timed_command(command(), "RUNNING", N).ok());
        if up.is_some() {
            clients.push(Client {
                name: "supervisorctl status".into(),
                what: "`supervisorctl -c supervisord.conf status`".into(),
                run: Box::new(move || timed_command(command(), "RUNNING", N)),
            });
            let s = socket.clone();
            clients.push(Client {
                name: "(reference) the bench: `supervisor.getAllProcessInfo`".into(),
                what: "a connection, the XML-RPC request `supervisorctl status` sends, the reply read to its end"
                    .into(),
                run: Box::new(move || xmlrpc_all(&s)),
            });
        } else {
            failures.push(format!("supervisord: the {N} programs were not all RUNNING within 60 s"));
        }
        running.push((kind, r));
    }
    // Once each, unmeasured (the first run reads the programs from disk), then the rounds.
    for c in &clients {
        let _ = (c.run)();
    }
    let mut times: Vec<Vec<Result<f64, String>>> = clients.iter().map(|_| Vec::new()).collect();
    for round in 0..n {
        for j in 0..clients.len() {
            let i = if round % 2 == 0 { j } else { clients.len() - 1 - j };
            times[i].push((clients[i].run)());
        }
    }
    for (kind, mut r) in running {
        r.stop(kind);
        r.finish();
    }

    println!("| client | what is timed | median | range | × forkyard ctl |");
    println!("|---|---|---|---|---|");
    let ok = |v: &[Result<f64, String>]| -> Vec<f64> { v.iter().filter_map(|r| r.as_ref().ok().copied()).collect() };
    let median_of = |v: &[Result<f64, String>]| common::median(&mut ok(v));
    let reference = clients.iter().position(|c| c.name == "forkyard ctl status").map(|i| median_of(&times[i]));
    for (i, c) in clients.iter().enumerate() {
        let good = ok(&times[i]);
        let failed: Vec<&String> = times[i].iter().filter_map(|r| r.as_ref().err()).collect();
        let note = match failed.first() {
            Some(e) => format!(" ({} of {} failed: {e})", failed.len(), times[i].len()),
            None => String::new(),
        };
        let m = common::median(&mut good.clone());
        let span = if good.is_empty() { "—".to_string() } else { range(&good) };
        let times_ctl = match reference {
            Some(f) if !m.is_nan() && f > 0.0 => format!("{:.2}×", m / f),
            _ => "—".into(),
        };
        println!("| {} | {} | {}{note} | {span} | {times_ctl} |", c.name, c.what, ms(m));
    }
    println!();
    for f in &failures {
        println!("{f}.\n");
    }
    let ctl_row = clients.iter().position(|c| c.name == "forkyard ctl status");
    let sup_row = clients.iter().position(|c| c.name == "supervisorctl status");
    if let Some(i) = ctl_row {
        let m = median_of(&times[i]);
        let failed = times[i].iter().filter(|r| r.is_err()).count();
        let verdict = if m <= 10.0 && failed == 0 { "met" } else { "not met" };
        let versus = match sup_row {
            Some(s) => {
                format!("; supervisorctl status {} ({:.1}×)", ms(median_of(&times[s])), median_of(&times[s]) / m)
            }
            None => String::new(),
        };
        println!(
            "forkyard ctl status with {N} services: median {} over {} runs{versus}. Target ≤ 10 ms: {verdict}.\n",
            ms(m),
            times[i].len()
        );
    }
}

// --- restart latency under polling clients -------------------------------------------------------

/// How the polling clients connect.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// One connection per client, kept alive.
    KeepAlive,
    /// A new connection for each request.
    PerRequest,
}

/// What a load of polling clients did.
struct LoadReport {
    requests: u64,
    errors: u64,
    secs: f64,
    /// Each request's time, in ms (one client's view of a `GET /v1/services`).
    latencies: Vec<f64>,
    first_error: Option<String>,
    /// CPU seconds used meanwhile by `up`'s API thread and by `up` as a whole.
    cpu: (f64, f64),
}

/// CPU seconds used so far by `pid`'s thread named `forkyard-api` and by the whole process.
fn up_cpu(pid: i32) -> (f64, f64) {
    // utime + stime, the 14th and 15th fields, counted after the parenthesised name.
    let ticks = |path: String| -> Option<u64> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut f = text.rsplit_once(')')?.1.split_whitespace().skip(11);
        Some(f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?)
    };
    // SAFETY: sysconf only reads a system constant.
    let hz = (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64;
    let api = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .find(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "forkyard-api"))
        .and_then(|t| ticks(t.path().join("stat").display().to_string()))
        .unwrap_or(0);
    let all = ticks(format!("/proc/{pid}/stat")).unwrap_or(0);
    (api as f64 / hz, all as f64 / hz)
}

/// `CLIENTS` threads polling `GET /v1/services` until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Polled>>,
    started: Instant,
}

impl Load {
    fn start(socket: &Path, mode: Mode) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let threads = (0..CLIENTS)
            .map(|i| {
                let (stop, requests, socket) = (Arc::clone(&stop), Arc::clone(&requests), socket.to_path_buf());
                std::thread::Builder::new()
                    .name(format!("poller-{i}"))
                    .stack_size(256 * 1024)
                    .spawn(move || poll(&socket, mode, &stop, &requests, started))
                    .expect("a polling client's thread")
            })
            .collect();
        Load { stop, requests, threads, started }
    }

    /// Waits (up to 10 s) for `n` requests answered.
    fn answered(&self, n: u64) -> bool {
        wait_until(Duration::from_secs(10), || (self.requests.load(Ordering::Relaxed) >= n).then_some(())).is_some()
    }

    fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut report =
            LoadReport { requests: 0, errors: 0, secs: 0.0, latencies: Vec::new(), first_error: None, cpu: (0.0, 0.0) };
        for t in self.threads {
            let p = t.join().expect("a polling client panicked");
            report.errors += p.errors;
            report.latencies.extend(p.latencies);
            report.first_error = report.first_error.or(p.first_error);
        }
        // Until the last client had its last reply.
        report.secs = self.started.elapsed().as_secs_f64();
        report.requests = self.requests.load(Ordering::Relaxed);
        report
    }
}

/// What one polling client did.
struct Polled {
    errors: u64,
    /// Its requests' times, in ms.
    latencies: Vec<f64>,
    first_error: Option<String>,
}

/// One polling client, until `stop` (or [`LOAD_LIMIT`]).
fn poll(socket: &Path, mode: Mode, stop: &AtomicBool, requests: &AtomicU64, started: Instant) -> Polled {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut conn: Option<UnixStream> = None;
    let (mut errors, mut latencies, mut first) = (0u64, Vec::new(), None);
    while !stop.load(Ordering::Relaxed) && started.elapsed() < LOAD_LIMIT {
        let t0 = Instant::now();
        let result = (|| {
            let mut s = match conn.take() {
                Some(s) => s,
                None => {
                    let s = UnixStream::connect(socket)?;
                    s.set_read_timeout(Some(Duration::from_secs(10)))?;
                    s
                }
            };
            let (status, _) = get(&mut s, "/v1/services", &mut buf)?;
            if mode == Mode::KeepAlive {
                conn = Some(s);
            }
            if status == 200 { Ok(()) } else { Err(io::Error::other(format!("status {status}"))) }
        })();
        match result {
            Ok(()) => {
                latencies.push(t0.elapsed().as_secs_f64() * 1e3);
                requests.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                errors += 1;
                first.get_or_insert_with(|| e.to_string());
                // Do not spin on a socket that refuses.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Polled { errors, latencies, first_error: first }
}

/// One condition of the restart measurement.
#[derive(Clone, Copy)]
struct Condition {
    name: &'static str,
    load: Option<Mode>,
}

/// Restart latency after `kill -9` with and without clients polling the control socket.
pub fn restart_polled(kinds: &[Kind]) {
    let n = rounds(50);
    let kind = Kind::Forkyard { zero_backoff: false };
    if !kinds.contains(&kind) {
        return;
    }
    let conditions = [
        Condition { name: "(a) no client", load: None },
        Condition { name: "(b) 50 clients, keep-alive", load: Some(Mode::KeepAlive) },
        Condition { name: "(c) 50 clients, a connection per request", load: Some(Mode::PerRequest) },
    ];
    println!("#### Restart after `kill -9` under polling clients\n");
    println!(
        "`forkyard up` runs {N} services: the timed service of \"Restart after `kill -9`\" and {} `sleep`s. Its restart is timed as there (from just before `kill -9` to the replacement's first instruction, each kill 1.5 s or more after the service started), in {n} rounds of the conditions in turn (the order rotating, 0.1 s apart): (a) nothing on the control socket; (b) {CLIENTS} clients, threads of the bench, each on one keep-alive connection sending `GET /v1/services` (all {N} services, about 25 kB of JSON) again as soon as it has read the previous reply; (c) the same {CLIENTS} clients opening a new connection for each request. The load starts before the kill, runs at least 0.5 s before it and stops once the replacement announced itself. Median, with the range; \"× (a)\" is the median of the per-round ratios to (a). The GETs columns are the clients' view: requests answered per second over the load, and one request's time; the last is the CPU time of `up`'s API thread and of the whole `up` process over the load, as a share of one CPU (clock ticks from /proc).\n",
        N - 1
    );
    let mut services = vec![Svc::timed("svc")];
    services.extend(sleeps("52", N - 1));
    let mut r = Running::start(kind, &services, "service", false);
    let socket = forkyard_socket(&r);
    let first = r.announced(Duration::from_secs(30));
    if first.is_none() || !forkyard_all_running(&socket, N) {
        println!("forkyard up: the {N} services were not all running within 60 s; not measured.\n");
        r.stop(kind);
        r.finish();
        return;
    }
    let mut current = first;
    let mut times: Vec<Vec<Option<f64>>> = vec![Vec::new(); conditions.len()];
    let mut loads: Vec<Vec<LoadReport>> = conditions.iter().map(|_| Vec::new()).collect();
    let mut lost = 0;
    for round in 0..n {
        for j in 0..conditions.len() {
            let i = (round + j) % conditions.len();
            let Some((pid, started)) = current else {
                times[i].push(None);
                continue;
            };
            std::thread::sleep(Duration::from_millis(100));
            let cpu0 = up_cpu(r.pid);
            let load = conditions[i].load.map(|mode| Load::start(&socket, mode));
            if let Some(l) = &load {
                if !l.answered(CLIENTS as u64) {
                    lost += 1;
                }
                let warm = Duration::from_millis(500).saturating_sub(l.started.elapsed());
                std::thread::sleep(warm);
            }
            let measured = one_restart(&r, pid, started, Duration::from_millis(1500));
            if let Some(l) = load {
                let mut report = l.finish();
                let cpu1 = up_cpu(r.pid);
                report.cpu = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
                loads[i].push(report);
            }
            times[i].push(measured.map(|(t, _, _)| t));
            current = measured.map(|(_, p, s)| (p, s));
        }
    }
    let sleeping = Snapshot::take()
        .map(|s| {
            s.descendants(Pid::new(r.pid).expect("pid")).iter().filter(|p| p.comm == "sleep" && !p.is_zombie()).count()
        })
        .unwrap_or(0);
    let stopped = r.stop(kind);
    r.finish();

    println!(
        "| condition | median | range | × (a) | GETs answered per s | one GET: median | range | CPU of up's API thread, of up |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let ok = |v: &[Option<f64>]| -> Vec<f64> { v.iter().flatten().copied().collect() };
    for (i, c) in conditions.iter().enumerate() {
        let t = ok(&times[i]);
        let cell = if t.len() < times[i].len() {
            format!("{} ({} of {} came back)", ms(common::median(&mut t.clone())), t.len(), times[i].len())
        } else {
            ms(common::median(&mut t.clone()))
        };
        let span = if t.is_empty() { "—".to_string() } else { range(&t) };
        let vs = match (i, ratio(&times[i], &times[0])) {
            (0, _) | (_, None) => "—".to_string(),
            (_, Some((m, lo, hi))) => format!("{m:.2}× ({lo:.2}-{hi:.2})"),
        };
        let (rate, one, one_span, cpu) = if c.load.is_some() {
            let ls = &loads[i];
            let reqs: u64 = ls.iter().map(|l| l.requests).sum();
            let secs: f64 = ls.iter().map(|l| l.secs).sum();
            let errors: u64 = ls.iter().map(|l| l.errors).sum();
            let mut lat: Vec<f64> = ls.iter().flat_map(|l| l.latencies.iter().copied()).collect();
            let err = match ls.iter().find_map(|l| l.first_error.as_ref()) {
                Some(e) if errors > 0 => format!(" ({errors} errors: {e})"),
                _ => String::new(),
            };
            let span = if lat.is_empty() { "—".to_string() } else { range(&lat) };
            let api: f64 = ls.iter().map(|l| l.cpu.0).sum();
            let all: f64 = ls.iter().map(|l| l.cpu.1).sum();
            let cpu = format!("{:.0} %, {:.0} %", api / secs.max(1e-9) * 100.0, all / secs.max(1e-9) * 100.0);
            (format!("{:.0}{err}", reqs as f64 / secs.max(1e-9)), ms(common::median(&mut lat)), span, cpu)
        } else {
            ("—".into(), "—".into(), "—".into(), "—".into())
        };
        println!("| {} | {cell} | {span} | {vs} | {rate} | {one} | {one_span} | {cpu} |", c.name);
    }
    println!();
    if lost > 0 {
        println!("In {lost} rounds the clients had not had {CLIENTS} answers within 10 s of their start.\n");
    }
    if sleeping != N - 1 || !stopped {
        println!(
            "After the rounds: {sleeping} of {} `sleep`s were running; `up` {} on SIGTERM.\n",
            N - 1,
            if stopped { "exited" } else { "did not exit within 30 s" }
        );
    }
    let a = common::median(&mut ok(&times[0]));
    let b = common::median(&mut ok(&times[1]));
    let per_round = ratio(&times[1], &times[0]);
    if !a.is_nan() && !b.is_nan() {
        let of_medians = b / a;
        let all_back = times.iter().all(|t| t.iter().all(Option::is_some));
        let verdict = if of_medians <= 1.1 && all_back { "met" } else { "not met" };
        let rounds_note = match per_round {
            Some((m, lo, hi)) => format!("; median of the per-round ratios {m:.2}×, {lo:.2}-{hi:.2}"),
            None => String::new(),
        };
        println!(
            "Restart under {CLIENTS} keep-alive polling clients: {} against {} with none, (b)/(a) = {of_medians:.2}× (ratio of the medians{rounds_note}). Target ≤ 1.1×: {verdict}.\n",
            ms(b),
            ms(a)
        );
    }
}
