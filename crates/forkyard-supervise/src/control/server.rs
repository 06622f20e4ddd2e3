//! The HTTP server of the control plane, on a thread of its own: the full API on the Unix
//! socket, and `/metrics`, `/healthz` and `/readyz` (read-only) on TCP.
//!
//! Why this module exists: requests are parsed by hyper on a single-threaded tokio runtime,
//! away from the supervisor's loop. Every request is bounded: headers must arrive within
//! [`HEADER_TIMEOUT`] and fit in [`MAX_HEADERS`], no endpoint reads a body (one announced
//! larger than [`MAX_BODY`] is refused), connections are capped at [`MAX_CONNECTIONS`],
//! and a slow reader of a stream only ever holds up its own stream, losing the oldest lines
//! when it falls too far behind. Who may connect is checked on every connection with
//! `SO_PEERCRED`: root and `up`'s own user.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{Either, Full, channel::Channel};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, Semaphore, broadcast, oneshot, watch};

use super::api;
use super::hub::{Act, Command, Hub, Refusal, Snapshot, UnitSnap};

/// Time for a request's headers to arrive; past it the connection is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The most bytes of request headers.
pub const MAX_HEADERS: usize = 16 * 1024;
/// The largest body announced that is not refused (no endpoint reads one).
pub const MAX_BODY: u64 = 64 * 1024;
/// Connections served at once; more wait in the kernel's queue. Kept well under the usual
/// limit of 1,024 descriptors, which the services' pipes also need. Only root and `up`'s own
/// user can hold them (others are answered and dropped at once), and they can stop `up`
/// anyway.
pub const MAX_CONNECTIONS: usize = 256;
/// The longest a `start` or `restart` waits for readiness when nothing else says.
pub const DEFAULT_READY_WAIT: Duration = Duration::from_secs(60);

type Body = Either<Full<Bytes>, Channel<Bytes>>;

/// The running server: stop it with [`Server::stop`].
#[derive(Debug)]
pub struct Server {
    stop: Arc<Notify>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Server {
    /// Starts the server thread on the listeners given (either may be absent).
    pub fn start(
        hub: Arc<Hub>,
        snapshot: watch::Receiver<Arc<Snapshot>>,
        unix: Option<std::os::unix::net::UnixListener>,
        tcp: Option<std::net::TcpListener>,
    ) -> std::io::Result<Server> {
        let stop = Arc::new(Notify::new());
        let (done_tx, done) = std::sync::mpsc::channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let stop2 = Arc::clone(&stop);
        std::thread::Builder::new().name("forkyard-api".into()).spawn(move || {
            lower_priority();
            runtime.block_on(serve(hub, snapshot, unix, tcp, stop2));
            // Dropping the runtime ends what is left (idle keep-alive connections).
            drop(runtime);
            let _ = done_tx.send(());
        })?;
        Ok(Server { stop, done })
    }

    /// Stops accepting, lets streams that have ended (their channels closed) finish their
    /// last bytes for up to `patience`, then ends the thread.
    pub fn stop(self, patience: Duration) {
        self.stop.notify_one();
        let _ = self.done.recv_timeout(patience + Duration::from_millis(500));
    }
}

/// How much nicer than the supervisor's loop the API thread runs.
const API_NICE: i32 = 10;

/// Makes the calling thread (the API's) yield the CPU to the supervisor's loop and the
/// services it starts. On a machine with few CPUs, 50 clients polling status otherwise
/// delayed restarts by competing for a core (seen in the control benchmark: 1.17x without,
/// 0.96-1.04x with a lower priority). Threads on Linux have their own nice value; the
/// services are forked by the loop's thread and do not inherit this one.
fn lower_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid);
        if let Ok(tid) = libc::id_t::try_from(tid) {
            let _ = libc::setpriority(libc::PRIO_PROCESS, tid, API_NICE);
        }
    }
}

#[derive(Clone)]
struct Ctx {
    hub: Arc<Hub>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    streams: Arc<Semaphore>,
}

async fn serve(
    hub: Arc<Hub>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    unix: Option<std::os::unix::net::UnixListener>,
    tcp: Option<std::net::TcpListener>,
    stop: Arc<Notify>,
) {
    let unix = unix.and_then(|l| tokio::net::UnixListener::from_std(l).ok());
    let tcp = tcp.and_then(|l| {
        l.set_nonblocking(true).ok()?;
        tokio::net::TcpListener::from_std(l).ok()
    });
    let ctx = Ctx { hub, snapshot, streams: Arc::new(Semaphore::new(MAX_CONNECTIONS)) };
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let me = rustix::process::geteuid().as_raw();
    loop {
        tokio::select! {
            _ = stop.notified() => break,
            accepted = accept_unix(unix.as_ref()) => {
                let Ok(stream) = accepted else {
                    // Out of descriptors, most likely: do not spin on it.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let (uid, pid) = match stream.peer_cred() {
                    Ok(c) => (c.uid(), c.pid().unwrap_or(0)),
                    Err(_) => (u32::MAX, 0),
                };
                if uid != 0 && uid != me {
                    // Refused at once, holding no connection slot: whoever is not allowed
                    // cannot use up the slots of those who are.
                    ctx.hub.send(Command::Refused { uid, pid });
                    tokio::spawn(refuse(stream));
                    continue;
                }
                let Ok(permit) = Arc::clone(&limit).acquire_owned().await else { break };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    connection(stream, ctx, Access { read_only: false }).await;
                    drop(permit);
                });
            }
            accepted = accept_tcp(tcp.as_ref()) => {
                let Ok(stream) = accepted else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let Ok(permit) = Arc::clone(&limit).acquire_owned().await else { break };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    connection(stream, ctx, Access { read_only: true }).await;
                    drop(permit);
                });
            }
        }
    }
    // Streams end once the loop's channels close; give them a moment to say their last.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while ctx.streams.available_permits() < MAX_CONNECTIONS && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn accept_unix(l: Option<&tokio::net::UnixListener>) -> std::io::Result<tokio::net::UnixStream> {
    match l {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

async fn accept_tcp(l: Option<&tokio::net::TcpListener>) -> std::io::Result<tokio::net::TcpStream> {
    match l {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

#[derive(Clone, Copy)]
struct Access {
    read_only: bool,
}

/// The whole answer to a peer that is not allowed: a fixed 403, whatever it sends, then the
/// connection is closed (bounded in time: a peer that does not read it is dropped).
async fn refuse(mut stream: tokio::net::UnixStream) {
    use tokio::io::AsyncWriteExt;
    let body = serde_json::to_string(&api::ErrorReply {
        error: "only root and the user running forkyard up may use its control socket".into(),
        services: Vec::new(),
    })
    .unwrap_or_default();
    let reply = format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(HEADER_TIMEOUT, async {
        use tokio::io::AsyncReadExt;
        // The request's headers first (bounded): an HTTP client may not take a reply that
        // comes before its request has gone.
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while head.len() < MAX_HEADERS && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
        // Read what the peer sent (a bounded amount) before closing: closing with unread
        // input resets the connection, and the peer may lose the reply.
        let mut sink = [0u8; 4096];
        let mut left = MAX_HEADERS;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

async fn connection<S>(stream: S, ctx: Ctx, access: Access)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(route(ctx, access, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADERS)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

// --- replies ---------------------------------------------------------------------------------------

fn json<T: serde::Serialize>(status: u16, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut r = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: u16, text: impl Into<String>) -> Response<Body> {
    json(status, &api::ErrorReply { error: text.into(), services: Vec::new() })
}

fn refused(r: Refusal) -> Response<Body> {
    json(r.status, &api::ErrorReply { error: r.error, services: r.services })
}

fn wrong_method(allow: &'static str) -> Response<Body> {
    let mut r = error(405, format!("this path takes {allow} only"));
    r.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    r
}

fn stream(content_type: &'static str, body: Channel<Bytes>) -> Response<Body> {
    let mut r = Response::new(Either::Right(body));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

// --- routes ----------------------------------------------------------------------------------------

async fn route(ctx: Ctx, access: Access, req: Request<Incoming>) -> Response<Body> {
    let announced = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY) {
        return error(413, format!("request bodies are limited to {MAX_BODY} bytes, and no endpoint takes one"));
    }
    let query = Query::parse(req.uri().query().unwrap_or(""));
    let path: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let post = req.method() == Method::POST;
    match path.as_slice() {
        ["metrics"] if get => metrics(&ctx),
        ["healthz"] if get => healthz(&ctx),
        ["readyz"] if get => readyz(&ctx, &query),
        ["metrics"] | ["healthz"] | ["readyz"] => wrong_method("GET"),
        _ if access.read_only => error(404, "not found: this address serves /metrics, /healthz and /readyz only"),
        ["v1", "services"] if get => overview(&ctx, &query),
        ["v1", "services", name, action] if post => match *action {
            "start" => act(&ctx, Act::Start, name, &query).await,
            "stop" => act(&ctx, Act::Stop, name, &query).await,
            "restart" => act(&ctx, Act::Restart, name, &query).await,
            "signal" => signal(&ctx, name, &query).await,
            "scale" => scale(&ctx, name, &query).await,
            other => error(404, format!("no action '{other}': use start, stop, restart, signal or scale")),
        },
        ["v1", "logs"] if get => logs(&ctx, &query),
        ["v1", "events"] if get => events(&ctx),
        ["v1", "reload"] if post => reload(&ctx).await,
        ["v1", "shutdown"] if post => shutdown(&ctx).await,
        ["v1", "services"] | ["v1", "logs"] | ["v1", "events"] => wrong_method("GET"),
        ["v1", "services", _, _] | ["v1", "reload"] | ["v1", "shutdown"] => wrong_method("POST"),
        _ => error(404, format!("not found: {} (see docs/api.md for the endpoints)", req.uri().path())),
    }
}

/// A request's query: `a=1&b=x&b=y`, percent-decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        let decode =
            |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .take(256)
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string))
            .collect()
    }

    fn one(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, Refusal> {
        match self.one(key) {
            None => Ok(default),
            Some("" | "1" | "true" | "yes") => Ok(true),
            Some("0" | "false" | "no") => Ok(false),
            Some(other) => Err(Refusal::new(400, format!("{key}={other}: expected true or false"))),
        }
    }
}

/// The units of the snapshot `names` stand for (all when empty), or a 404 naming the first
/// unknown one.
fn select<'a>(snap: &'a Snapshot, names: &[String]) -> Result<Vec<&'a UnitSnap>, Refusal> {
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(snap.units.iter().collect());
    }
    let mut picked = Vec::new();
    let mut seen = HashSet::new();
    for name in names {
        let found: Vec<&UnitSnap> =
            snap.units.iter().filter(|u| u.status.name == *name || u.status.service == *name).collect();
        if found.is_empty() {
            return Err(unknown(snap, name));
        }
        for u in found {
            if seen.insert(u.index) {
                picked.push(u);
            }
        }
    }
    Ok(picked)
}

fn unknown(snap: &Snapshot, name: &str) -> Refusal {
    Refusal {
        status: 404,
        error: format!("no service or instance named '{name}'; there are: {}", snap.services.join(", ")),
        services: snap.services.clone(),
    }
}

fn full_status(u: &UnitSnap, now: Instant) -> api::ServiceStatus {
    let mut s = u.status.clone();
    s.uptime_seconds = u.started_at.map(|t| now.saturating_duration_since(t).as_secs_f64());
    if s.pid.is_some() || u.cgroup.is_some() {
        let pid = s.pid.and_then(forkyard::Pid::new);
        let (cpu, memory) = super::usage::of(u.cgroup.as_deref().filter(|_| s.pid.is_some()), pid);
        s.cpu_seconds = cpu;
        s.memory_bytes = memory;
    }
    s
}

fn overview(ctx: &Ctx, query: &Query) -> Response<Body> {
    let snap = Arc::clone(&ctx.snapshot.borrow());
    let units = match select(&snap, &query.all("name")) {
        Ok(u) => u,
        Err(r) => return refused(r),
    };
    let now = Instant::now();
    let reply = api::Overview {
        up: api::UpStatus {
            pid: snap.pid,
            config: snap.config.clone(),
            uptime_seconds: now.saturating_duration_since(snap.started).as_secs_f64(),
            state: if snap.exit_code.is_some() { "stopping" } else { "running" }.into(),
            exit_code: snap.exit_code,
        },
        services: units.into_iter().map(|u| full_status(u, now)).collect(),
    };
    json(200, &reply)
}

/// A valid name for a path: what service and instance names are made of, or `all`.
fn valid(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

async fn ask<T>(ctx: &Ctx, command: impl FnOnce(oneshot::Sender<Result<T, Refusal>>) -> Command) -> Result<T, Refusal> {
    let (tx, rx) = oneshot::channel();
    if !ctx.hub.send(command(tx)) {
        return Err(Refusal::new(503, "forkyard up is exiting"));
    }
    match rx.await {
        Ok(answer) => answer,
        Err(_) => Err(Refusal::new(503, "forkyard up is exiting")),
    }
}

async fn act(ctx: &Ctx, which: Act, name: &str, query: &Query) -> Response<Body> {
    if !valid(name) {
        return error(400, format!("'{name}' is not a service or instance name"));
    }
    let (with_dependents, wait) = match (query.flag("with_dependents", false), query.flag("wait", true)) {
        (Ok(d), Ok(w)) => (d, w),
        (Err(r), _) | (_, Err(r)) => return refused(r),
    };
    let name = name.to_string();
    let targets = match ask(ctx, |reply| Command::Act { act: which, name, with_dependents, reply }).await {
        Ok(t) => t,
        Err(r) => return refused(r),
    };
    if wait || which == Act::Stop {
        if let Err(r) = wait_for(ctx.snapshot.clone(), &targets, which).await {
            return refused(r);
        }
    }
    json(200, &api::Done { units: targets.into_iter().map(|(n, _)| n).collect() })
}

/// Waits until every target has answered: up (ready, or running without a check) in the run
/// given, for a start; down, for a stop.
async fn wait_for(
    mut rx: watch::Receiver<Arc<Snapshot>>,
    targets: &[(String, u64)],
    which: Act,
) -> Result<(), Refusal> {
    let bound = {
        let snap = rx.borrow();
        targets
            .iter()
            .filter_map(|(n, _)| snap.units.iter().find(|u| u.status.name == *n))
            .map(|u| if which == Act::Stop { u.stop_wait } else { u.ready_wait })
            .max()
            .unwrap_or(DEFAULT_READY_WAIT)
    };
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let snap = Arc::clone(&rx.borrow_and_update());
        let mut waiting = None;
        for (name, run) in targets {
            let Some(u) = snap.units.iter().find(|u| u.status.name == *name) else {
                return Err(Refusal::new(409, format!("{name} was removed meanwhile")));
            };
            let state = u.status.state.as_str();
            let answered = u.status.run >= *run;
            if which == Act::Stop {
                if !matches!(state, "stopped" | "failed" | "completed" | "blocked") {
                    waiting = Some((name, state));
                }
                continue;
            }
            let up = matches!(state, "ready" | "completed") || (state == "running" && !u.has_ready_check);
            if answered && up {
                continue;
            }
            if answered && matches!(state, "failed" | "stopped" | "backoff" | "blocked") {
                let how = u.status.last_exit.as_ref().map(|e| format!(" ({})", e.description)).unwrap_or_default();
                return Err(Refusal::new(
                    500,
                    format!("{name} is {state}{how} instead of ready; see forkyard ctl logs {name}"),
                ));
            }
            waiting = Some((name, state));
        }
        let Some((name, state)) = waiting else { return Ok(()) };
        if snap.finished {
            return Err(Refusal::new(503, "forkyard up is exiting"));
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Refusal::new(503, "forkyard up is exiting")),
            Err(_) => {
                let want = if which == Act::Stop { "down" } else { "ready" };
                return Err(Refusal::new(
                    504,
                    format!("{name} is still {state} after {bound:?}; it was asked, but is not {want} yet"),
                ));
            }
        }
    }
}

async fn signal(ctx: &Ctx, name: &str, query: &Query) -> Response<Body> {
    if !valid(name) {
        return error(400, format!("'{name}' is not a service or instance name"));
    }
    let Some(text) = query.one("signal") else {
        return error(400, "give the signal: ?signal=HUP (a name, SIGNAME, or a number)");
    };
    let signal = match text.parse::<forkyard::Signal>() {
        Ok(s) => s,
        Err(e) => return error(400, format!("signal={text}: {e}")),
    };
    let name = name.to_string();
    match ask(ctx, |reply| Command::Signal { name, signal, reply }).await {
        Ok(units) => json(200, &api::Done { units }),
        Err(r) => refused(r),
    }
}

async fn scale(ctx: &Ctx, service: &str, query: &Query) -> Response<Body> {
    if !valid(service) {
        return error(400, format!("'{service}' is not a service name"));
    }
    let instances = match query.one("instances").map(str::parse::<u32>) {
        Some(Ok(n)) if n <= super::MAX_INSTANCES => n,
        _ => {
            return error(
                400,
                format!("give the number of instances: ?instances=N, from 0 to {}", super::MAX_INSTANCES),
            );
        }
    };
    let service = service.to_string();
    match ask(ctx, |reply| Command::Scale { service, instances, reply }).await {
        Ok(done) => json(200, &done),
        Err(r) => refused(r),
    }
}

async fn reload(ctx: &Ctx) -> Response<Body> {
    let Some(load) = ctx.hub.reload.clone() else {
        return error(501, "this forkyard up cannot reload its configuration");
    };
    let plan = match tokio::task::spawn_blocking(move || load()).await {
        Ok(p) => p,
        Err(_) => Err("reading the configuration failed unexpectedly".into()),
    };
    match ask(ctx, |reply| Command::Apply { plan, reply: Some(reply) }).await {
        Ok(done) => json(200, &done),
        Err(r) => refused(r),
    }
}

async fn shutdown(ctx: &Ctx) -> Response<Body> {
    match ask(ctx, |reply| Command::Shutdown { reply }).await {
        Ok(exit_code) => json(202, &api::ShuttingDown { exit_code }),
        Err(r) => refused(r),
    }
}

fn prefixed(out: &mut Vec<u8>, name: &str, width: usize, line: &[u8]) {
    use std::io::Write;
    let _ = write!(out, "{name:<width$} | ");
    out.extend_from_slice(line);
    out.push(b'\n');
}

fn logs(ctx: &Ctx, query: &Query) -> Response<Body> {
    let snap = Arc::clone(&ctx.snapshot.borrow());
    let units = match select(&snap, &query.all("name")) {
        Ok(u) => u,
        Err(r) => return refused(r),
    };
    let follow = match query.flag("follow", false) {
        Ok(f) => f,
        Err(r) => return refused(r),
    };
    let lines = match query.one("lines").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) => n,
        Some(Err(_)) => return error(400, "lines=N: expected a number of lines"),
    };
    let width = snap.width;
    let mut first = Vec::new();
    let wanted: HashSet<usize> = units.iter().map(|u| u.index).collect();
    let receiver = {
        let Ok(rings) = ctx.hub.rings.lock() else { return error(500, "the log buffers are unavailable") };
        for u in &units {
            for line in rings.tail(u.index, lines.min(rings.max_lines())) {
                prefixed(&mut first, &u.status.name, width, &line);
            }
        }
        // Under the lock: nothing added between the tail and the subscription is lost.
        if follow {
            match &rings.follow {
                Some(tx) => Some(tx.subscribe()),
                None => return error(503, "forkyard up is exiting"),
            }
        } else {
            None
        }
    };
    let Some(mut rx) = receiver else {
        let mut r = Response::new(Either::Left(Full::new(Bytes::from(first))));
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        return r;
    };
    let Ok(permit) = Arc::clone(&ctx.streams).try_acquire_owned() else {
        return error(503, "too many streams open; try again later");
    };
    let (mut tx, body) = Channel::<Bytes>::new(16);
    tokio::spawn(async move {
        let _permit = permit;
        if !first.is_empty() && tx.send_data(Bytes::from(first)).await.is_err() {
            return;
        }
        loop {
            match rx.recv().await {
                Ok(chunk) if wanted.contains(&chunk.index) => {
                    let mut out = Vec::with_capacity(chunk.lines.len() + 64);
                    for line in chunk.lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                        prefixed(&mut out, &chunk.name, width, line);
                    }
                    if tx.send_data(Bytes::from(out)).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    stream("text/plain; charset=utf-8", body)
}

fn events(ctx: &Ctx) -> Response<Body> {
    let Ok(permit) = Arc::clone(&ctx.streams).try_acquire_owned() else {
        return error(503, "too many streams open; try again later");
    };
    let rx = match ctx.hub.events.lock() {
        Ok(events) => events.as_ref().map(broadcast::Sender::subscribe),
        Err(_) => None,
    };
    let Some(mut rx) = rx else { return error(503, "forkyard up is exiting") };
    let (mut tx, body) = Channel::<Bytes>::new(16);
    tokio::spawn(async move {
        let _permit = permit;
        loop {
            match rx.recv().await {
                Ok(line) => {
                    let mut out = Vec::with_capacity(line.len() + 1);
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                    if tx.send_data(Bytes::from(out)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    stream("application/x-ndjson", body)
}

// --- for orchestrators ----------------------------------------------------------------------------

fn healthz(ctx: &Ctx) -> Response<Body> {
    let stopping = ctx.snapshot.borrow().exit_code.is_some();
    if stopping {
        json(503, &serde_json::json!({ "status": "stopping" }))
    } else {
        json(200, &serde_json::json!({ "status": "ok" }))
    }
}

fn readyz(ctx: &Ctx, query: &Query) -> Response<Body> {
    let snap = Arc::clone(&ctx.snapshot.borrow());
    let units = match select(&snap, &query.all("service")) {
        Ok(u) => u,
        Err(r) => return refused(r),
    };
    let not_ready: Vec<serde_json::Value> = units
        .iter()
        .filter(|u| {
            let state = u.status.state.as_str();
            !(matches!(state, "ready" | "completed") || (state == "running" && !u.has_ready_check))
        })
        .map(|u| {
            serde_json::json!({
                "name": u.status.name,
                "state": u.status.state,
                "reason": u.status.last_probe_failure,
            })
        })
        .collect();
    if not_ready.is_empty() && snap.exit_code.is_none() {
        json(200, &serde_json::json!({ "ready": true }))
    } else {
        json(503, &serde_json::json!({ "ready": false, "stopping": snap.exit_code.is_some(), "not_ready": not_ready }))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ExitLabel {
    service: String,
    exit: String,
}

fn metrics(ctx: &Ctx) -> Response<Body> {
    use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
    use std::sync::atomic::AtomicU64;
    let snap = Arc::clone(&ctx.snapshot.borrow());
    let mut registry = prometheus_client::registry::Registry::default();
    let up = Family::<ServiceLabel, Gauge>::default();
    let ready = Family::<ServiceLabel, Gauge>::default();
    let restarts = Family::<ServiceLabel, Counter>::default();
    let start_time = Family::<ServiceLabel, Gauge<f64, AtomicU64>>::default();
    let cpu = Family::<ServiceLabel, Counter<f64, AtomicU64>>::default();
    let memory = Family::<ServiceLabel, Gauge>::default();
    let exits = Family::<ExitLabel, Counter>::default();
    registry.register("forkyard_service_up", "Whether the service's main process runs (1) or not (0)", up.clone());
    registry.register(
        "forkyard_service_ready",
        "Whether the service is ready: its readiness check passed, or it runs and has none",
        ready.clone(),
    );
    registry.register("forkyard_service_restarts", "Starts of the service after its first", restarts.clone());
    registry.register(
        "forkyard_service_start_time_seconds",
        "When the current run started, in seconds since the Unix epoch",
        start_time.clone(),
    );
    registry.register(
        "forkyard_service_cpu_seconds",
        "CPU time of the service's processes (its cgroup, else its main process)",
        cpu.clone(),
    );
    registry.register(
        "forkyard_service_memory_bytes",
        "Memory of the service's processes (its cgroup, else its main process's resident set)",
        memory.clone(),
    );
    registry.register("forkyard_service_exits", "Runs of the service that ended, by exit status ($?)", exits.clone());
    let now = Instant::now();
    for u in &snap.units {
        let label = ServiceLabel { service: u.status.name.clone() };
        let s = full_status(u, now);
        up.get_or_create(&label).set(i64::from(s.pid.is_some()));
        let is_ready =
            matches!(s.state.as_str(), "ready" | "completed") || (s.state == "running" && !u.has_ready_check);
        ready.get_or_create(&label).set(i64::from(is_ready));
        restarts.get_or_create(&label).inc_by(s.restarts);
        let started = u.started_wall.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0.0, |d| d.as_secs_f64());
        start_time.get_or_create(&label).set(started);
        cpu.get_or_create(&label).inc_by(s.cpu_seconds.unwrap_or(0.0));
        memory.get_or_create(&label).set(s.memory_bytes.map_or(0, |m| i64::try_from(m).unwrap_or(i64::MAX)));
        for (code, n) in &u.exits {
            exits.get_or_create(&ExitLabel { service: u.status.name.clone(), exit: code.to_string() }).inc_by(*n);
        }
    }
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        return error(500, "encoding the metrics failed");
    }
    let mut r = Response::new(Either::Left(Full::new(Bytes::from(text))));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    r
}

/// Seconds since the Unix epoch, for events.
pub fn wall_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded_and_split() {
        let q = Query::parse("name=web&name=db.1,cache&lines=5&follow&signal=RTMIN%2B3&x=a+b");
        assert_eq!(q.all("name"), ["web", "db.1", "cache"]);
        assert_eq!(q.one("lines"), Some("5"));
        assert!(matches!(q.flag("follow", false), Ok(true)));
        assert!(matches!(q.flag("absent", false), Ok(false)));
        assert_eq!(q.one("signal"), Some("RTMIN+3"));
        assert_eq!(q.one("x"), Some("a b"));
        assert!(Query::parse("wait=maybe").flag("wait", true).is_err());
    }

    #[test]
    fn the_api_thread_yields_to_the_loop() {
        let (hub, _commands) = super::super::hub::hub(10, None).expect("hub");
        let snapshot = tokio::sync::watch::channel(Arc::new(Snapshot::empty(1, ""))).1;
        let server = Server::start(Arc::new(hub), snapshot, None, None).expect("start");
        let nice_of_api = || {
            let tasks = std::fs::read_dir("/proc/self/task").expect("tasks");
            tasks.flatten().find_map(|t| {
                let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                if comm.trim() != "forkyard-api" {
                    return None;
                }
                let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
                let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
                rest.get(16)?.parse::<i32>().ok()
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = nice_of_api();
        while seen != Some(API_NICE) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            seen = nice_of_api();
        }
        server.stop(Duration::from_millis(100));
        assert_eq!(seen, Some(API_NICE), "the API thread's nice value");
    }

    #[test]
    fn names_are_checked_before_they_reach_the_loop() {
        assert!(valid("web.2") && valid("all") && valid("a-b_c"));
        assert!(!valid("") && !valid("../x") && !valid("a b") && !valid(&"x".repeat(300)));
    }
}
