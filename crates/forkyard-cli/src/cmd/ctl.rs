//! `forkyard ctl`: steer a running `forkyard up` through its control API.
//!
//! Why it exists: a supervisor is steered while it runs (see a service's state, restart it,
//! read its recent output, reload the file) without stopping the stack. `up` serves an HTTP
//! API on a Unix socket (the contract is in docs/api.md and in
//! `forkyard_supervise::control::api`, whose types both sides use); this is its client. It
//! finds the socket the way `up` names it (from the configuration's absolute path), sends
//! one request per name with hyper over a Unix stream, and words every outcome here (the
//! engine prints nothing): replies as tables and lines, refusals as `forkyard ctl: <reason>`
//! with exit 1, bad usage with exit 2.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use forkyard_supervise::control::{self, api};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;

/// The largest reply body read whole (an overview of a thousand instances is well under a
/// megabyte); streams (`logs -f`, `events`) are not bounded.
const REPLY_LIMIT: usize = 64 * 1024 * 1024;

/// Options of `forkyard ctl`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration whose `up` to steer (default: ./forkyard.toml, else ./Procfile, as
    /// `up`). Give it before the command (`forkyard ctl -f app.toml logs -f`).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// The control socket (default: the one `up` makes for the configuration, or
    /// $FORKYARD_SOCKET).
    #[arg(long, value_name = "PATH", global = true)]
    socket: Option<PathBuf>,
    /// Print the replies as JSON, as received.
    #[arg(long, global = true)]
    json: bool,
    /// What to do.
    #[command(subcommand)]
    action: Action,
}

/// The commands of `forkyard ctl`.
#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Show each instance: state, pid, uptime, restarts, readiness, last exit, cpu, memory.
    Status {
        /// Services (`web`) or instances (`web.2`); default: all.
        #[arg(value_name = "NAME", value_parser = name)]
        names: Vec<String>,
    },
    /// Start stopped services or instances (waits until they are ready, or running).
    Start {
        /// Services, instances, or `all`.
        #[arg(value_name = "NAME", required = true, value_parser = name)]
        names: Vec<String>,
        /// Also start what depends on them.
        #[arg(long)]
        with_dependents: bool,
        /// Return once asked, without waiting for them to be ready.
        #[arg(long)]
        no_wait: bool,
    },
    /// Stop services or instances; they stay stopped, whatever their restart policy, until
    /// `start`.
    Stop {
        /// Services, instances, or `all`.
        #[arg(value_name = "NAME", required = true, value_parser = name)]
        names: Vec<String>,
        /// Also stop what depends on them (first).
        #[arg(long)]
        with_dependents: bool,
    },
    /// Restart services or instances (waits until they are ready again, or running).
    Restart {
        /// Services, instances, or `all`.
        #[arg(value_name = "NAME", required = true, value_parser = name)]
        names: Vec<String>,
        /// Also restart what depends on them.
        #[arg(long)]
        with_dependents: bool,
        /// Return once asked, without waiting for them to be ready.
        #[arg(long)]
        no_wait: bool,
    },
    /// Send a signal to the main process of each running instance.
    Signal {
        /// A service, an instance, or `all`.
        #[arg(value_name = "NAME", value_parser = name)]
        name: String,
        /// HUP, SIGTERM, 15, RTMIN+3...
        #[arg(value_name = "SIGNAL", value_parser = signal)]
        signal: String,
    },
    /// Set the number of instances of a service (0 to 1000).
    Scale {
        /// The service.
        #[arg(value_name = "SERVICE", value_parser = name)]
        service: String,
        /// How many instances it should have.
        #[arg(value_name = "N", value_parser = clap::value_parser!(u32).range(0..=1000))]
        instances: u32,
    },
    /// Print the recent output of services (as `up` prints it, without colour).
    Logs {
        /// Services or instances; default: all.
        #[arg(value_name = "NAME", value_parser = name)]
        names: Vec<String>,
        /// How many lines (default: 10).
        #[arg(short = 'n', long = "lines", value_name = "N")]
        lines: Option<u32>,
        /// Then keep printing new lines until `up` stops.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Read the configuration again: start what is new, stop what is gone, restart what
    /// changed (a file with an error changes nothing).
    Reload,
    /// Print each state change as a JSON line, until `up` stops.
    Events,
    /// Stop every service and `up` itself; prints the code `up` will exit with.
    Shutdown,
}

/// Accepts a service or instance name (`[A-Za-z0-9_.-]+`), so that nothing in it needs
/// escaping and no name can reach another path.
fn name(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        Ok(text.to_string())
    } else {
        Err("a name is letters, digits, '_', '.' and '-': a service (web), an instance (web.2) or all".into())
    }
}

/// Accepts a signal as `up` reads it (`HUP`, `SIGTERM`, `15`, `RTMIN+3`); keeps the text.
fn signal(text: &str) -> Result<String, String> {
    text.parse::<forkyard::Signal>().map(|_| text.trim().to_string()).map_err(|e| e.to_string())
}

/// The `up` to talk to: its configuration (when known) and its socket.
struct Target {
    /// The configuration, made absolute (`None` when only a socket was given and there is no
    /// file here).
    config: Option<PathBuf>,
    /// The control socket.
    socket: PathBuf,
    /// Whether `--socket` named it (so that starting `up` needs the same flag).
    socket_given: bool,
}

impl Target {
    /// Finds the configuration as `up` does, then its socket; `Err` is a usage error.
    fn find(args: &Args) -> Result<Target, String> {
        let socket_named =
            args.socket.is_some() || std::env::var_os(control::SOCKET_VARIABLE).is_some_and(|v| !v.is_empty());
        let file = match crate::cmd::up::config_path(args.file.as_deref()) {
            Ok(f) => Some(f),
            Err(_) if socket_named => None,
            Err(_) => {
                return Err("no forkyard.toml or Procfile in this directory: give the configuration of the \
                            forkyard up to steer with -f FILE, or its socket with --socket PATH"
                    .into());
            }
        };
        let config = match file {
            Some(f) => Some(std::path::absolute(&f).map_err(|e| format!("{}: {e}", f.display()))?),
            None => None,
        };
        let socket = match &config {
            Some(c) => control::socket_for(c, args.socket.as_deref()),
            // Only reached with a socket given (flag or variable); any path serves.
            None => control::socket_for(Path::new("forkyard.toml"), args.socket.as_deref()),
        };
        Ok(Target { config, socket, socket_given: args.socket.is_some() })
    }
}

/// Why a command failed (worded by [`explain`]).
#[derive(Debug)]
enum Failure {
    /// No socket there: no `up` runs for this configuration.
    NoSocket,
    /// The socket is there but nothing accepts on it (a killed `up` left it).
    NobodyListens,
    /// The kernel refused to let us reach the socket.
    Denied,
    /// `up` (running as this uid) refuses us: we are neither root nor its user.
    NotAllowed(u32),
    /// Any other failure to connect.
    Connect(io::Error),
    /// The HTTP exchange failed.
    Http(hyper::Error),
    /// `up` refused the request: its status and reply.
    Refused { status: StatusCode, reply: Option<api::ErrorReply>, body: String },
    /// A reply that is not what the contract says.
    BadReply(String),
    /// Writing to standard output failed (other than a closed pipe).
    Output(io::Error),
    /// Standard output was closed (`| head`): not an error, the command just ends.
    Closed,
}

impl From<hyper::Error> for Failure {
    fn from(e: hyper::Error) -> Failure {
        Failure::Http(e)
    }
}

/// Runs `forkyard ctl`; returns the exit code (0 done, 1 refused or failed, 2 bad usage).
pub fn run(args: &Args) -> i32 {
    let target = match Target::find(args) {
        Ok(t) => t,
        Err(e) => {
            crate::compat::err(&format!("forkyard ctl: {e}\n"));
            return 2;
        }
    };
    // One connection at a time, on this thread: nothing here needs more.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_io().build() {
        Ok(r) => r,
        Err(e) => {
            crate::compat::err(&format!("forkyard ctl: cannot start its I/O runtime: {e}\n"));
            return 1;
        }
    };
    match runtime.block_on(act(&target, args)) {
        Ok(code) => code,
        Err(Failure::Closed) => 0,
        Err(f) => {
            crate::compat::err(&format!("forkyard ctl: {}\n", explain(&target, &f)));
            1
        }
    }
}

/// Carries out the command; `Ok` holds the exit code (1 when some of several requests were
/// refused, each reported as it came).
async fn act(target: &Target, args: &Args) -> Result<i32, Failure> {
    let json = args.json;
    let socket = target.socket.as_path();
    match &args.action {
        Action::Status { names } => {
            let path = with_query("/v1/services", &names_query(names));
            let (raw, overview) = call::<api::Overview>(socket, Method::GET, &path).await?;
            if json { print_raw(&raw) } else { print(&table(&overview.services)) }.map(|()| 0)
        }
        Action::Start { names, with_dependents, no_wait } => {
            let query = flags(*with_dependents, Some(*no_wait));
            each(target, names, "start", &query, json, "started").await
        }
        Action::Stop { names, with_dependents } => {
            let query = flags(*with_dependents, None);
            each(target, names, "stop", &query, json, "stopped").await
        }
        Action::Restart { names, with_dependents, no_wait } => {
            let query = flags(*with_dependents, Some(*no_wait));
            each(target, names, "restart", &query, json, "restarted").await
        }
        Action::Signal { name, signal } => {
            let path = with_query(&format!("/v1/services/{}/signal", encode(name)), &[("signal", signal.clone())]);
            let (raw, done) = call::<api::Done>(socket, Method::POST, &path).await?;
            if json {
                print_raw(&raw)?;
            } else {
                print(&units_line(&done.units, &format!("sent {signal}")))?;
            }
            Ok(0)
        }
        Action::Scale { service, instances } => {
            let path =
                with_query(&format!("/v1/services/{}/scale", encode(service)), &[("instances", instances.to_string())]);
            let (raw, scaled) = call::<api::Scaled>(socket, Method::POST, &path).await?;
            if json { print_raw(&raw) } else { print(&scaled_text(service, &scaled)) }.map(|()| 0)
        }
        Action::Logs { names, lines, follow } => {
            let mut query = names_query(names);
            if let Some(n) = lines {
                query.push(("lines", n.to_string()));
            }
            if *follow {
                query.push(("follow", "true".into()));
            }
            let response = request(socket, Method::GET, &with_query("/v1/logs", &query)).await?;
            stream(response, *follow).await.map(|()| 0)
        }
        Action::Reload => {
            let (raw, reloaded) = call::<api::Reloaded>(socket, Method::POST, "/v1/reload").await?;
            if json { print_raw(&raw) } else { print(&reloaded_text(&reloaded)) }.map(|()| 0)
        }
        Action::Events => {
            let response = request(socket, Method::GET, "/v1/events").await?;
            stream(response, true).await.map(|()| 0)
        }
        Action::Shutdown => {
            let (raw, down) = call::<api::ShuttingDown>(socket, Method::POST, "/v1/shutdown").await?;
            if json {
                print_raw(&raw)
            } else {
                print(&format!("forkyard up is stopping everything; it will exit with {}\n", down.exit_code))
            }
            .map(|()| 0)
        }
    }
}

/// start, stop or restart: one request per name, each reported as its reply comes; a
/// refusal is reported and the next name still tried (exit 1 at the end), a failure to
/// reach `up` at all ends the command.
async fn each(
    target: &Target,
    names: &[String],
    action: &str,
    query: &[(&str, String)],
    json: bool,
    done_word: &str,
) -> Result<i32, Failure> {
    let mut code = 0;
    for n in names {
        let path = with_query(&format!("/v1/services/{}/{action}", encode(n)), query);
        match call::<api::Done>(&target.socket, Method::POST, &path).await {
            Ok((raw, done)) => {
                if json {
                    print_raw(&raw)?;
                } else {
                    print(&units_line(&done.units, done_word))?;
                }
            }
            Err(f @ Failure::Refused { .. }) => {
                crate::compat::err(&format!("forkyard ctl: {n}: {}\n", explain(target, &f)));
                code = 1;
            }
            Err(f) => return Err(f),
        }
    }
    Ok(code)
}

/// The query of start, stop and restart.
fn flags(with_dependents: bool, no_wait: Option<bool>) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if with_dependents {
        query.push(("with_dependents", "true".to_string()));
    }
    if no_wait == Some(true) {
        query.push(("wait", "false".to_string()));
    }
    query
}

/// `name=` once per name; `all` (or nothing) asks for everything.
fn names_query(names: &[String]) -> Vec<(&'static str, String)> {
    if names.iter().any(|n| n == "all") {
        return Vec::new();
    }
    names.iter().map(|n| ("name", n.clone())).collect()
}

/// Percent-encodes everything but the unreserved characters of RFC 3986, so that a value
/// (`RTMIN+3`) reaches the server as typed.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `path?k=v&k=v`, each key and value encoded.
fn with_query(path: &str, query: &[(&str, String)]) -> String {
    let mut out = path.to_string();
    for (i, (k, v)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&encode(k));
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

/// Connects to `socket`, sends one bodiless request and returns the response head (its body
/// still to be read).
async fn request(socket: &Path, method: Method, path: &str) -> Result<Response<Incoming>, Failure> {
    let stream = tokio::net::UnixStream::connect(socket).await.map_err(connect_failure)?;
    // Who serves the socket: if we may not use it, a failed exchange is that refusal.
    let server_uid = stream.peer_cred().ok().map(|c| c.uid());
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(hyper_util::rt::TokioIo::new(stream)).await?;
    // The connection's own errors come back through the request and its body.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let post = method == Method::POST;
    let mut builder = Request::builder().method(method).uri(path).header(hyper::header::HOST, "localhost");
    if post {
        builder = builder.header(hyper::header::CONTENT_LENGTH, "0");
    }
    let request = builder.body(Empty::new()).map_err(|e| Failure::BadReply(format!("the request {path}: {e}")))?;
    sender.send_request(request).await.map_err(|e| match server_uid {
        // `up` answers a peer it refuses at once, before reading its request; the answer
        // can then come before the request is written, which HTTP clients reject.
        Some(uid) if !may_use(uid) => Failure::NotAllowed(uid),
        _ => Failure::Http(e),
    })
}

/// Whether `up`'s control socket serves us when it runs as `uid`: root and that user only.
fn may_use(uid: u32) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    me == 0 || me == uid
}

/// Sends a request and reads its JSON reply: `T` on success (with the bytes as received),
/// else the refusal.
async fn call<T: DeserializeOwned>(socket: &Path, method: Method, path: &str) -> Result<(Bytes, T), Failure> {
    let response = request(socket, method, path).await?;
    let status = response.status();
    let raw = Limited::new(response.into_body(), REPLY_LIMIT)
        .collect()
        .await
        .map_err(|e| match e.downcast::<hyper::Error>() {
            Ok(e) => Failure::Http(*e),
            Err(e) => Failure::BadReply(format!("the reply is too large: {e}")),
        })?
        .to_bytes();
    if !status.is_success() {
        return Err(refusal(status, &raw));
    }
    let parsed = serde_json::from_slice(&raw)
        .map_err(|e| Failure::BadReply(format!("a {status} reply that is not the expected JSON ({e})")))?;
    Ok((raw, parsed))
}

/// The failure for a non-success reply.
fn refusal(status: StatusCode, raw: &[u8]) -> Failure {
    Failure::Refused {
        status,
        reply: serde_json::from_slice(raw).ok(),
        body: String::from_utf8_lossy(raw).trim().to_string(),
    }
}

/// Copies a streamed body to standard output as it comes, flushing each piece. With
/// `follow`, the stream breaking off is `up` going away: the end, not a failure.
async fn stream(response: Response<Incoming>, follow: bool) -> Result<(), Failure> {
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let raw = Limited::new(body, REPLY_LIMIT).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        return Err(refusal(status, &raw));
    }
    let mut out = io::stdout().lock();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    out.write_all(data).and_then(|()| out.flush()).map_err(output_failure)?;
                }
            }
            Err(_) if follow => return Ok(()),
            Err(e) => return Err(Failure::Http(e)),
        }
    }
    Ok(())
}

/// Sorts a connect error into what the user can do about it.
fn connect_failure(e: io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::NotFound => Failure::NoSocket,
        io::ErrorKind::ConnectionRefused => Failure::NobodyListens,
        io::ErrorKind::PermissionDenied => Failure::Denied,
        _ => Failure::Connect(e),
    }
}

fn output_failure(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe { Failure::Closed } else { Failure::Output(e) }
}

/// Writes to standard output.
fn print(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(output_failure)
}

/// Writes a reply as received, ending with a newline.
fn print_raw(raw: &[u8]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    let newline: &[u8] = if raw.ends_with(b"\n") { b"" } else { b"\n" };
    out.write_all(raw).and_then(|()| out.write_all(newline)).and_then(|()| out.flush()).map_err(output_failure)
}

/// The one-line reason for a failure (after `forkyard ctl: `).
fn explain(target: &Target, failure: &Failure) -> String {
    let socket = target.socket.display();
    let of = match &target.config {
        Some(c) => format!("for {}", c.display()),
        None => "at that socket".to_string(),
    };
    let start = match (&target.config, target.socket_given) {
        (Some(c), false) => format!("start one with 'forkyard up -f {}'", c.display()),
        (Some(c), true) => format!("start one with 'forkyard up -f {} --socket {socket}'", c.display()),
        (None, _) => format!("start one with 'forkyard up --socket {socket}'"),
    };
    match failure {
        Failure::NoSocket => format!(
            "no forkyard up is running {of}: there is no socket at {socket}; {start} (or name the socket of \
             a running one with --socket PATH)"
        ),
        Failure::NobodyListens => format!(
            "no forkyard up is running {of}: nothing accepts on {socket} (left by an up that was killed?); \
             {start} (or name the socket of a running one with --socket PATH)"
        ),
        Failure::Denied => {
            let owner = std::fs::metadata(&target.socket)
                .map(|m| format!(" (it belongs to uid {})", std::os::unix::fs::MetadataExt::uid(&m)))
                .unwrap_or_default();
            format!(
                "permission denied on the control socket {socket}{owner}: only root and the user that runs \
                 forkyard up may use it"
            )
        }
        Failure::NotAllowed(uid) => format!(
            "forkyard up refused the connection on {socket}: only root and the user running forkyard up \
             (uid {uid}) may use its control socket"
        ),
        Failure::Connect(e) => format!("cannot connect to {socket}: {e}"),
        Failure::Http(e) if e.is_incomplete_message() || e.is_closed() => {
            format!("forkyard up closed the connection on {socket} before answering (is it stopping?)")
        }
        Failure::Http(e) => format!("talking to forkyard up on {socket}: {e}"),
        Failure::Refused { status, reply: Some(reply), .. } => {
            let mut text = reply.error.clone();
            // The list, unless the text already names them all.
            let listed = reply.services.iter().all(|s| reply.error.contains(s.as_str()));
            if *status == StatusCode::NOT_FOUND && !listed {
                let _ = write!(text, " (services: {})", reply.services.join(", "));
            }
            text
        }
        Failure::Refused { status, reply: None, body } => {
            let first = body.lines().next().unwrap_or("");
            if first.is_empty() {
                format!("forkyard up answered {status}")
            } else {
                format!("forkyard up answered {status}: {first}")
            }
        }
        Failure::BadReply(e) => format!("forkyard up on {socket} sent {e}"),
        Failure::Output(e) => format!("writing to standard output: {e}"),
        Failure::Closed => "standard output was closed".into(),
    }
}

// --- words ----------------------------------------------------------------------------------

/// `web.1: restarted` for each instance (or a note that the request concerned none).
fn units_line(units: &[String], word: &str) -> String {
    if units.is_empty() {
        return format!("no instance: nothing {word}\n");
    }
    units.iter().map(|u| format!("{u}: {word}\n")).collect()
}

/// What `scale` changed, one instance a line, then the count.
fn scaled_text(service: &str, scaled: &api::Scaled) -> String {
    let mut text = String::new();
    for u in &scaled.added {
        let _ = writeln!(text, "{u}: added");
    }
    for u in &scaled.removed {
        let _ = writeln!(text, "{u}: removed");
    }
    let _ = writeln!(text, "{service}: {} instance(s)", scaled.units.len());
    text
}

/// What `reload` changed, one instance a line, then the counts.
fn reloaded_text(r: &api::Reloaded) -> String {
    let mut text = String::new();
    for (list, word) in [(&r.added, "added"), (&r.removed, "removed"), (&r.changed, "changed (restarted)")] {
        for u in list {
            let _ = writeln!(text, "{u}: {word}");
        }
    }
    let _ = writeln!(
        text,
        "reloaded: {} added, {} removed, {} changed, {} unchanged",
        r.added.len(),
        r.removed.len(),
        r.changed.len(),
        r.unchanged.len()
    );
    text
}

/// The status table: one line per instance, the name and state columns padded to their
/// widest entry (as `supervisorctl status` does), then the details.
fn table(services: &[api::ServiceStatus]) -> String {
    let name_width = services.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let state_width = services.iter().map(|s| s.state.len()).max().unwrap_or(0);
    let mut text = String::new();
    for s in services {
        let line = format!("{:<name_width$}  {:<state_width$}  {}", s.name, s.state, details(s));
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// The details of one instance: `pid N, uptime H:MM:SS, restarts N`, readiness, cpu and
/// memory while it runs; how its last run ended (and `$?`) when it does not.
fn details(s: &api::ServiceStatus) -> String {
    let mut parts = Vec::new();
    match s.pid {
        Some(pid) => {
            parts.push(format!("pid {pid}"));
            if let Some(up) = s.uptime_seconds {
                parts.push(format!("uptime {}", clock(up)));
            }
            parts.push(format!("restarts {}", s.restarts));
            match (s.ready, &s.last_probe_failure) {
                (Some(true), _) => parts.push("ready".into()),
                (Some(false), Some(why)) => parts.push(format!("not ready: {why}")),
                (Some(false), None) => parts.push("not ready".into()),
                (None, _) => {}
            }
        }
        None => {
            if let Some(exit) = &s.last_exit {
                parts.push(exit_words(exit));
            }
            if s.restarts > 0 {
                parts.push(format!("restarts {}", s.restarts));
            }
        }
    }
    if let Some(cpu) = s.cpu_seconds {
        parts.push(format!("cpu {}", cpu_time(cpu)));
    }
    if let Some(memory) = s.memory_bytes {
        parts.push(format!("mem {}", bytes(memory)));
    }
    parts.join(", ")
}

/// `exited with code 3 ($? = 3)`.
fn exit_words(exit: &api::ExitInfo) -> String {
    format!("{} ($? = {})", exit.description, exit.code)
}

/// Whole seconds as `H:MM:SS` (hours not wrapped into days): `0:00:07`, `26:03:04`.
fn clock(seconds: f64) -> String {
    let total = if seconds.is_finite() && seconds > 0.0 { seconds as u64 } else { 0 };
    format!("{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60)
}

/// CPU time in the largest unit that keeps it short: `0.42s`, `12.3s`, `4m05s`, `2h07m`.
fn cpu_time(seconds: f64) -> String {
    let s = if seconds.is_finite() && seconds > 0.0 { seconds } else { 0.0 };
    if s < 10.0 {
        format!("{s:.2}s")
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        let whole = s as u64;
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        let whole = s as u64;
        format!("{}h{:02}m", whole / 3600, whole / 60 % 60)
    }
}

/// A size in binary units with three significant digits: `512 B`, `1.50 KiB`, `12.3 MiB`,
/// `512 MiB`, `2.00 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    // Rounding can reach the next unit (1023.99 KiB prints as 1024 KiB otherwise).
    if value >= 999.5 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let digits = if value < 9.995 {
        2
    } else if value < 99.95 {
        1
    } else {
        0
    };
    format!("{value:.digits$} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str, state: &str) -> api::ServiceStatus {
        api::ServiceStatus {
            name: name.into(),
            service: name.split('.').next().unwrap_or(name).into(),
            instance: None,
            state: state.into(),
            pid: None,
            run: 1,
            uptime_seconds: None,
            restarts: 0,
            last_exit: None,
            ready: None,
            readiness: None,
            last_probe_failure: None,
            cpu_seconds: None,
            memory_bytes: None,
        }
    }

    #[test]
    fn clock_is_hours_minutes_seconds() {
        assert_eq!(clock(0.0), "0:00:00");
        assert_eq!(clock(7.9), "0:00:07");
        assert_eq!(clock(59.0), "0:00:59");
        assert_eq!(clock(60.0), "0:01:00");
        assert_eq!(clock(3723.0), "1:02:03");
        assert_eq!(clock(26.0 * 3600.0 + 184.0), "26:03:04", "hours go past a day");
        assert_eq!(clock(-3.0), "0:00:00");
        assert_eq!(clock(f64::NAN), "0:00:00");
    }

    #[test]
    fn cpu_time_stays_short() {
        assert_eq!(cpu_time(0.0), "0.00s");
        assert_eq!(cpu_time(0.423), "0.42s");
        assert_eq!(cpu_time(12.34), "12.3s");
        assert_eq!(cpu_time(245.0), "4m05s");
        assert_eq!(cpu_time(2.0 * 3600.0 + 7.0 * 60.0 + 30.0), "2h07m");
    }

    #[test]
    fn bytes_in_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.00 KiB");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(12_900_000), "12.3 MiB");
        assert_eq!(bytes(512 * 1024 * 1024), "512 MiB");
        assert_eq!(bytes(1024 * 1024 - 1), "1.00 MiB", "rounding moves up a unit");
        assert_eq!(bytes(2 * 1024 * 1024 * 1024), "2.00 GiB");
    }

    #[test]
    fn exits_in_words_with_the_shell_status() {
        let exit = api::ExitInfo { code: 137, description: "killed by SIGKILL".into() };
        assert_eq!(exit_words(&exit), "killed by SIGKILL ($? = 137)");
    }

    #[test]
    fn the_table_aligns_names_and_states() {
        let mut db = instance("db", "ready");
        db.pid = Some(1234);
        db.uptime_seconds = Some(3723.5);
        db.ready = Some(true);
        db.readiness = Some("tcp".into());
        db.cpu_seconds = Some(1.5);
        db.memory_bytes = Some(12_900_000);
        let mut web = instance("web.1", "starting");
        web.pid = Some(99);
        web.uptime_seconds = Some(3.0);
        web.restarts = 2;
        web.ready = Some(false);
        web.last_probe_failure = Some("connection refused".into());
        let mut worker = instance("worker.10", "stopped");
        worker.last_exit = Some(api::ExitInfo { code: 3, description: "exited with code 3".into() });
        worker.restarts = 1;
        let waiting = instance("job", "waiting");
        let text = table(&[db, web, worker, waiting]);
        assert_eq!(
            text,
            "db         ready     pid 1234, uptime 1:02:03, restarts 0, ready, cpu 1.50s, mem 12.3 MiB\n\
             web.1      starting  pid 99, uptime 0:00:03, restarts 2, not ready: connection refused\n\
             worker.10  stopped   exited with code 3 ($? = 3), restarts 1\n\
             job        waiting\n"
        );
    }

    #[test]
    fn an_empty_table_is_empty() {
        assert_eq!(table(&[]), "");
    }

    #[test]
    fn names_are_checked_and_values_encoded() {
        assert!(name("web.2").is_ok() && name("all").is_ok() && name("a_b-c").is_ok());
        for bad in ["", "web/../x", "web 2", "web?x", "wéb", "a%2F"] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(encode("RTMIN+3"), "RTMIN%2B3");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(
            with_query("/v1/logs", &[("name", "web".into()), ("lines", "5".into())]),
            "/v1/logs?name=web&lines=5"
        );
        assert_eq!(names_query(&["web".into(), "all".into()]), Vec::<(&str, String)>::new());
    }

    #[test]
    fn signals_are_checked() {
        assert_eq!(signal("HUP").as_deref(), Ok("HUP"));
        assert!(signal("RTMIN+3").is_ok() && signal("15").is_ok() && signal("SIGTERM").is_ok());
        assert!(signal("NOPE").is_err());
    }

    #[test]
    fn a_refusal_names_the_services_for_404() {
        let target =
            Target { config: Some("/srv/forkyard.toml".into()), socket: "/run/s.sock".into(), socket_given: false };
        let f = refusal(StatusCode::NOT_FOUND, br#"{"error":"no service named 'x'","services":["db","web"]}"#);
        assert_eq!(explain(&target, &f), "no service named 'x' (services: db, web)");
        let f = refusal(StatusCode::NOT_FOUND, br#"{"error":"no 'x'; there are: db, web","services":["db","web"]}"#);
        assert_eq!(explain(&target, &f), "no 'x'; there are: db, web", "not listed twice");
        let f = refusal(StatusCode::BAD_GATEWAY, b"oops\nmore");
        assert_eq!(explain(&target, &f), "forkyard up answered 502 Bad Gateway: oops");
        let text = explain(&target, &Failure::NoSocket);
        assert!(text.contains("/srv/forkyard.toml") && text.contains("/run/s.sock"), "{text}");
        assert!(!text.contains('\n'));
    }
}
