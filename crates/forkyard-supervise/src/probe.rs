//! The network checks of readiness and liveness probes: a TCP port that accepts, an HTTP
//! GET that answers 2xx.
//!
//! Why this module exists: these checks may take up to their timeout, and the supervisor's
//! loop must never wait on one (a crashed service is restarted as soon as its death is
//! known). Each runs on a short-lived thread and reports back through a channel. Command
//! checks (`exec`) do not belong here: they are child processes, started and collected by
//! the loop itself like any other.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<_> = addr.to_socket_addrs().map_err(|e| format!("cannot resolve {addr}: {e}"))?.collect();
    let mut last = format!("{addr} has no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(last)
}

/// Succeeds if `addr` (`host:port`) accepts a connection within `timeout`.
pub fn tcp(addr: &str, timeout: Duration) -> Result<(), String> {
    connect(addr, timeout).map(drop)
}

/// Succeeds if `GET url` (`http://host:port/path`) answers with a 2xx status within
/// `timeout`.
pub fn http(url: &str, timeout: Duration) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// is supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if host.contains(':') { host.to_string() } else { format!("{host}:80") };
    let mut s = connect(&addr, timeout)?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: forkyard\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).map_err(|e| format!("{url}: {e}"))?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(format!("{url}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head[..n]);
    let code: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer: {line:?}"))?;
    if (200..300).contains(&code) { Ok(()) } else { Err(format!("{url} answered {code}")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn tcp_sees_a_listening_port_and_a_closed_one() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        assert_eq!(tcp(&addr, Duration::from_secs(1)), Ok(()));
        drop(l);
        assert!(tcp(&addr, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn http_reads_the_status_code() {
        for (answer, ok) in [("HTTP/1.1 200 OK\r\n\r\n", true), ("HTTP/1.0 503 Unavailable\r\n\r\n", false)] {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = l.local_addr().expect("addr");
            let server = std::thread::spawn(move || {
                let (mut c, _) = l.accept().expect("accept");
                let mut buf = [0u8; 512];
                let _ = c.read(&mut buf);
                c.write_all(answer.as_bytes()).expect("write");
            });
            let result = http(&format!("http://{addr}/health"), Duration::from_secs(2));
            assert_eq!(result.is_ok(), ok, "{result:?}");
            server.join().expect("server");
        }
    }
}
