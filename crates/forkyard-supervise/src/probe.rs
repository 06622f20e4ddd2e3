//! The network checks of readiness and liveness probes: a TCP port that accepts, an HTTP(S)
//! GET that answers an expected status.
//!
//! Why this module exists: these checks may take up to their timeout, and the supervisor's
//! loop must never wait on one (a crashed service is restarted as soon as its death is
//! known). Each runs on a short-lived thread and reports back through a channel. Command
//! checks (`exec`) do not belong here: they are child processes, started and collected by
//! the loop itself like any other.
//!
//! Why a real HTTP client (ureq): a check is a guest in the checked service's log. A
//! hand-written client that read the status line and hung up left the rest of the answer
//! unread, so the kernel reset the connection and servers such as Python's `http.server`
//! logged a `ConnectionResetError` traceback on every check; it could not speak TLS either.
//! Here the whole answer is read (up to [`MAX_BODY`]) and the connection then closed
//! normally. The failure reasons are short, for a line such as `web not ready: <reason>`;
//! this module prints nothing.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ureq::http::Uri;

use crate::config::HttpCheck;

/// The most of a response body that is read. A health answer is far smaller; a longer body
/// is cut there and the connection dropped (the server may then see a reset, the price of
/// not reading an endless answer). The status decides the check either way.
pub const MAX_BODY: u64 = 64 * 1024;

/// The size of each of a check's input and output buffers, and the longest answer head.
const IO_BUFFER: usize = 16 * 1024;

/// Succeeds if `addr` (`host:port`) accepts a connection within `timeout` (the whole check,
/// over all the addresses the name resolves to). The connection is closed at once.
pub fn tcp(addr: &str, timeout: Duration) -> Result<(), String> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(|e| resolve_reason(host, &e))?.collect();
    let deadline = Instant::now() + timeout;
    let mut last = format!("cannot resolve '{host}': no address");
    for a in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timed out after {}", human(timeout)));
        }
        match TcpStream::connect_timeout(&a, left) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => last = format!("timed out after {}", human(timeout)),
            Err(e) => last = io_reason(&e, &a.to_string(), timeout),
        }
    }
    Err(last)
}

/// Succeeds if `GET check.url` (`http://` or `https://`), sent with `check.headers` and a
/// `User-Agent: forkyard`, answers one of `check.status` (any 2xx when that is empty), all
/// within `timeout` (resolving, connecting, sending, reading the whole answer).
///
/// Redirects are not followed (a 3xx is a status like any other), no proxy is used (the
/// checked service is the one being asked), and no connection is kept between checks.
/// Without the `https` feature of this crate, an `https://` URL fails with a reason saying so.
pub fn http(check: &HttpCheck, timeout: Duration) -> Result<(), String> {
    let url = check.url.as_str();
    let uri: Uri = url.parse().map_err(|e| format!("bad URL '{url}': {e}"))?;
    let (tls, default_port) = match uri.scheme_str() {
        Some("http") => (false, 80),
        Some("https") if cfg!(feature = "https") => (true, 443),
        Some("https") => {
            return Err("https:// needs forkyard built with its `https` feature; use http:// or rebuild".into());
        }
        _ => return Err(format!("'{url}': only http:// and https:// URLs can be checked")),
    };
    let host = uri.host().unwrap_or_default().to_string();
    let target = format!("{host}:{}", uri.port_u16().unwrap_or(default_port));

    let mut request = agent().get(uri).config().timeout_global(Some(timeout)).build();
    for (name, value) in &check.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.call().map_err(|e| ureq_reason(e, tls, &host, &target, timeout))?;
    let status = response.status();
    // Read the answer to its end before judging it, so the connection closes cleanly
    // whatever the verdict.
    let drained = drain(response.into_body());

    let passes = if check.status.is_empty() { status.is_success() } else { check.status.contains(&status.as_u16()) };
    if !passes {
        return Err(match status.canonical_reason() {
            Some(text) => format!("answered {} {text}", status.as_u16()),
            None => format!("answered {}", status.as_u16()),
        });
    }
    drained.map_err(|e| match ureq::Error::from(e) {
        ureq::Error::Timeout(_) => format!("timed out after {} reading the answer", human(timeout)),
        ureq::Error::Io(e) => format!("reading the answer: {}", io_reason(&e, &target, timeout)),
        other => format!("reading the answer: {other}"),
    })?;
    Ok(())
}

/// The one client of every check: it holds no connection between checks (no pool, so
/// nothing leaks and each check measures a fresh connection) and caches only its TLS
/// configuration (the trusted roots), which is costly to build for each check.
fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent("forkyard")
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            // A check's memory: an answer's head is small, and the body goes through these
            // buffers to be discarded (ureq's defaults are 128 KiB each).
            .input_buffer_size(IO_BUFFER)
            .output_buffer_size(IO_BUFFER)
            .max_response_header_size(IO_BUFFER)
            .build()
            .into()
    })
}

/// Reads and discards the body, up to [`MAX_BODY`].
fn drain(body: ureq::Body) -> io::Result<u64> {
    io::copy(&mut body.into_reader().take(MAX_BODY), &mut io::sink())
}

/// What went wrong with a request, in a few words.
fn ureq_reason(e: ureq::Error, tls: bool, host: &str, target: &str, timeout: Duration) -> String {
    use ureq::Error;
    match e {
        Error::Timeout(_) => format!("timed out after {}", human(timeout)),
        Error::HostNotFound => format!("cannot resolve '{host}': no address"),
        Error::Io(e) if is_lookup_failure(&e) => resolve_reason(host, &e),
        // rustls reports its failures (a bad certificate, a peer that does not speak TLS)
        // through the I/O stream as `InvalidData`; nothing else in a plain exchange does.
        Error::Io(e) if tls && e.kind() == io::ErrorKind::InvalidData => format!("TLS: {e}"),
        Error::Io(e) => io_reason(&e, target, timeout),
        Error::Tls(text) => format!("TLS: {text}"),
        #[cfg(feature = "https")]
        Error::Rustls(e) => format!("TLS: {e}"),
        #[cfg(feature = "https")]
        Error::Pem(e) => format!("TLS: {e:?}"),
        Error::TlsRequired => "TLS: the connection was not secured".to_string(),
        Error::Protocol(e) => format!("not an HTTP answer from {target}: {e}"),
        Error::LargeResponseHeader(size, max) => format!("answer headers too big ({size} bytes, at most {max})"),
        Error::BadUri(text) => format!("bad URL: {text}"),
        Error::Http(e) => format!("bad request (check the headers): {e}"),
        other => format!("{other} ({target})"),
    }
}

/// An I/O failure, naming the address where it helps.
fn io_reason(e: &io::Error, target: &str, timeout: Duration) -> String {
    use io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => format!("connection refused ({target})"),
        ErrorKind::ConnectionReset => format!("connection reset ({target})"),
        ErrorKind::UnexpectedEof => format!("connection closed before the answer ended ({target})"),
        ErrorKind::TimedOut | ErrorKind::WouldBlock => format!("timed out after {}", human(timeout)),
        _ => format!("{e} ({target})"),
    }
}

/// Whether an I/O error is the standard library's report of a failed name lookup
/// (`getaddrinfo`), which carries no error kind of its own nor an errno.
fn is_lookup_failure(e: &io::Error) -> bool {
    e.raw_os_error().is_none() && e.to_string().starts_with(LOOKUP_PREFIX)
}

const LOOKUP_PREFIX: &str = "failed to lookup address information: ";

fn resolve_reason(host: &str, e: &io::Error) -> String {
    let text = e.to_string();
    let detail = text.strip_prefix(LOOKUP_PREFIX).unwrap_or(&text);
    format!("cannot resolve '{host}': {detail}")
}

/// `2s`, `500ms`, `1.5s`.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        let fraction = format!("{:03}", ms % 1000);
        format!("{}.{}s", ms / 1000, fraction.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::thread::JoinHandle;

    const GENEROUS: Duration = Duration::from_secs(10);

    fn check(url: String) -> HttpCheck {
        HttpCheck { url, headers: Vec::new(), status: Vec::new() }
    }

    /// What the test server saw of one exchange.
    struct Seen {
        request: String,
        /// The result of reading once more after the answer: `Ok(0)` when the client closed
        /// cleanly (FIN), an error (`ECONNRESET`) when it dropped unread data.
        after: io::Result<usize>,
    }

    /// Reads one request head (bounded), writes `answer`, then waits for the client to close.
    fn serve_once(answer: Vec<u8>) -> (String, JoinHandle<Seen>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().expect("accept");
            c.set_read_timeout(Some(GENEROUS)).expect("timeout");
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            // Not checked: a client that stops reading at MAX_BODY may reset the connection.
            let _ = c.write_all(&answer);
            let after = c.read(&mut buf);
            Seen { request: String::from_utf8_lossy(&request).into_owned(), after }
        });
        (addr, server)
    }

    fn answer(status: &str, body: &[u8]) -> Vec<u8> {
        let mut a = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        a.extend_from_slice(body);
        a
    }

    #[test]
    fn tcp_sees_a_listening_port_and_a_closed_one() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        assert_eq!(tcp(&addr, GENEROUS), Ok(()));
        drop(l);
        assert_eq!(tcp(&addr, GENEROUS), Err(format!("connection refused ({addr})")));
    }

    #[test]
    fn a_2xx_passes_by_default() {
        let (addr, server) = serve_once(answer("200 OK", b"ok"));
        assert_eq!(http(&check(format!("http://{addr}/health")), GENEROUS), Ok(()));
        server.join().expect("server");
    }

    #[test]
    fn the_listed_statuses_are_the_ones_that_pass() {
        let (addr, server) = serve_once(answer("204 No Content", b""));
        let mut c = check(format!("http://{addr}/"));
        c.status = vec![204];
        assert_eq!(http(&c, GENEROUS), Ok(()));
        server.join().expect("server");

        let (addr, server) = serve_once(answer("200 OK", b""));
        let mut c = check(format!("http://{addr}/"));
        c.status = vec![204];
        assert_eq!(http(&c, GENEROUS), Err("answered 200 OK".to_string()));
        server.join().expect("server");
    }

    #[test]
    fn a_500_fails_with_its_code() {
        let (addr, server) = serve_once(answer("500 Internal Server Error", b"boom"));
        assert_eq!(http(&check(format!("http://{addr}/")), GENEROUS), Err("answered 500 Internal Server Error".into()));
        server.join().expect("server");
    }

    #[test]
    fn the_headers_and_the_user_agent_arrive() {
        let (addr, server) = serve_once(answer("200 OK", b""));
        let mut c = check(format!("http://{addr}/ready?x=1"));
        c.headers = vec![("Authorization".into(), "Bearer s3cret".into()), ("X-Probe".into(), "yes".into())];
        assert_eq!(http(&c, GENEROUS), Ok(()));
        let seen = server.join().expect("server");
        let head = seen.request.to_ascii_lowercase();
        assert!(head.starts_with("get /ready?x=1 http/1.1\r\n"), "{}", seen.request);
        assert!(head.contains("\r\nauthorization: bearer s3cret\r\n"), "{}", seen.request);
        assert!(head.contains("\r\nx-probe: yes\r\n"), "{}", seen.request);
        assert!(head.contains("\r\nuser-agent: forkyard\r\n"), "{}", seen.request);
    }

    #[test]
    fn the_whole_answer_is_read_and_the_connection_closed_without_a_reset() {
        // Under MAX_BODY, but more than the client's input buffer: a client that closed
        // after the head would leave some of it unread in the socket, and the kernel would
        // answer with a reset.
        let body = vec![b'x'; 3 * IO_BUFFER];
        for status in ["200 OK", "503 Service Unavailable"] {
            let (addr, server) = serve_once(answer(status, &body));
            let result = http(&check(format!("http://{addr}/")), GENEROUS);
            assert_eq!(result.is_ok(), status.starts_with("200"), "{result:?}");
            let seen = server.join().expect("server");
            assert_eq!(seen.after.map_err(|e| e.kind()), Ok(0), "the client did not close cleanly");
        }
    }

    #[test]
    fn a_body_beyond_the_cap_is_cut_and_the_status_still_decides() {
        // A body announced as 1 GiB, of which more than MAX_BODY comes and then nothing:
        // a client without the cap would wait for the rest until its timeout.
        for (status, expected) in [("200 OK", Ok(())), ("502 Bad Gateway", Err("answered 502 Bad Gateway".to_string()))]
        {
            let mut a = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n", 1u64 << 30).into_bytes();
            a.resize(a.len() + 2 * MAX_BODY as usize, b'x');
            let (addr, server) = serve_once(a);
            assert_eq!(http(&check(format!("http://{addr}/")), GENEROUS), expected);
            server.join().expect("server");
        }
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        // Accepted by the kernel (backlog), never read nor answered. The check runs on a
        // thread so that a check without its timeout fails here instead of hanging.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(http(&check(format!("http://{addr}/")), Duration::from_millis(300))));
        let result = rx.recv_timeout(Duration::from_secs(60)).expect("the check did not end");
        assert_eq!(result, Err("timed out after 300ms".to_string()));
        drop(l);
    }

    #[test]
    fn a_closed_port_is_refused() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        assert_eq!(http(&check(format!("http://{addr}/")), GENEROUS), Err(format!("connection refused ({addr})")));
    }

    #[test]
    fn an_unknown_host_cannot_be_resolved() {
        let result = http(&check("http://nohost.invalid:8080/".into()), GENEROUS);
        let reason = result.expect_err("resolved .invalid");
        assert!(reason.starts_with("cannot resolve 'nohost.invalid': "), "{reason}");
        let reason = tcp("nohost.invalid:8080", GENEROUS).expect_err("resolved .invalid");
        assert!(reason.starts_with("cannot resolve 'nohost.invalid': "), "{reason}");
    }

    #[test]
    fn other_schemes_are_refused() {
        let reason = http(&check("ftp://127.0.0.1/".into()), GENEROUS).expect_err("ftp");
        assert!(reason.contains("only http:// and https://"), "{reason}");
    }

    #[cfg(feature = "https")]
    #[test]
    fn https_speaks_tls() {
        // A plain-HTTP server: it reads what comes (a TLS ClientHello, no blank line to wait
        // for) and answers in clear.
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().expect("accept");
            c.set_read_timeout(Some(GENEROUS)).expect("timeout");
            let mut first = [0u8; 1];
            let n = c.read(&mut first).unwrap_or(0);
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            first[..n].to_vec()
        });
        let result = http(&check(format!("https://{addr}/")), GENEROUS);
        let first = server.join().expect("server");
        let reason = result.expect_err("a plain server passed a TLS check");
        assert!(reason.starts_with("TLS: "), "{reason}");
        // The first byte of a TLS record of type handshake.
        assert_eq!(first, [0x16], "no ClientHello");
    }

    #[cfg(not(feature = "https"))]
    #[test]
    fn https_needs_the_feature_and_connects_nowhere_without_it() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let reason = http(&check(format!("https://{addr}/")), GENEROUS).expect_err("https without TLS");
        assert!(reason.contains("`https` feature"), "{reason}");
        l.set_nonblocking(true).expect("nonblocking");
        assert_eq!(l.accept().map(drop).map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock), "it connected");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(2)), "2s");
        assert_eq!(human(Duration::from_millis(300)), "300ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_millis(1250)), "1.25s");
    }

    /// `python3 -m http.server` on a free port, killed and reaped when dropped.
    struct PythonServer {
        child: std::process::Child,
    }

    impl Drop for PythonServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn python_http_server_logs_no_reset() {
        // A client that hangs up early makes the server log a traceback on some requests
        // only (a race between its writes and the reset): probe often enough to see it.
        const PROBES: usize = 20;
        let dir = tempfile::tempdir().expect("tmp");
        // Larger than the client's input buffer, so that a client hanging up early would
        // leave part of it unread.
        std::fs::write(dir.path().join("health"), "ok\n".repeat(IO_BUFFER)).expect("write");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let spawned = std::process::Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn();
        let mut server = match spawned {
            Ok(child) => PythonServer { child },
            Err(e) => {
                eprintln!("skipped: cannot run python3 ({e})");
                return;
            }
        };
        let addr = format!("127.0.0.1:{port}");
        // Wait for it to listen, with a generous bound.
        let deadline = Instant::now() + Duration::from_secs(30);
        while tcp(&addr, GENEROUS).is_err() {
            assert!(Instant::now() < deadline, "python3 -m http.server never listened on {addr}");
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("python3 -m http.server exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let c = check(format!("http://{addr}/health"));
        for _ in 0..PROBES {
            assert_eq!(http(&c, GENEROUS), Ok(()));
        }
        assert!(http(&check(format!("http://{addr}/missing")), GENEROUS).is_err());
        // The server logs each request after answering it: wait for the six lines, so that
        // a traceback printed while handling the last one is in the file too.
        let log = dir.path().join("stderr");
        let deadline = Instant::now() + Duration::from_secs(30);
        let text = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.matches("\" 200 ").count() >= PROBES && text.contains("\" 404 ") {
                break text;
            }
            assert!(Instant::now() < deadline, "the server did not log the requests:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        // A last request as a barrier: a traceback from an earlier one would be printed by
        // the time this one is answered and logged.
        assert_eq!(http(&c, GENEROUS), Ok(()));
        let deadline = Instant::now() + Duration::from_secs(30);
        let text = loop {
            let now = std::fs::read_to_string(&log).unwrap_or_default();
            if now.matches("\" 200 ").count() > PROBES {
                break now;
            }
            assert!(Instant::now() < deadline, "the server did not log the last request:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(server);
        assert!(!text.contains("ConnectionResetError") && !text.contains("Traceback"), "{text}");
    }
}
