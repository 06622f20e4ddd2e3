//! What the `up` and `up_faults` tests share: a running `forkyard up` and the lines it
//! prints, the test binary as a helper service, and looks at /proc.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use forkyard::procs::{ScanOptions, Snapshot};
use forkyard::{Pid, Signal};

use crate::support;

pub fn forkyard_bin() -> &'static str {
    env!("CARGO_BIN_EXE_forkyard")
}

/// The test binary (helper services are this binary with `FORKYARD_TEST_HELPER` set).
pub fn me() -> String {
    std::env::current_exe().expect("the test binary").display().to_string()
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A running `forkyard up` and the lines it has printed.
pub struct Up {
    pub child: Child,
    pub rx: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Up {
    pub fn start(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Up {
        let mut cmd = Command::new(forkyard_bin());
        cmd.arg("up")
            .args(args)
            .arg("--no-color")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn forkyard up");
        let (tx, rx) = mpsc::channel();
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Up { child, rx, seen: Vec::new() }
    }

    /// Waits (with a generous bound) for a line containing `text`; returns its index.
    pub fn wait_for(&mut self, text: &str) -> usize {
        self.wait_for_after(0, text)
    }

    /// Like `wait_for`, but only lines at index `from` or later count.
    pub fn wait_for_after(&mut self, from: usize, text: &str) -> usize {
        if let Some(i) = self.seen.iter().skip(from).position(|l| l.contains(text)) {
            return from + i;
        }
        loop {
            match self.rx.recv_timeout(support::PATIENCE) {
                Ok(line) => {
                    self.seen.push(line);
                    if self.seen.last().is_some_and(|l| l.contains(text)) {
                        return self.seen.len() - 1;
                    }
                }
                Err(_) => panic!("no line with {text:?} in:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Takes the lines printed so far without waiting.
    pub fn drain(&mut self) {
        while let Ok(line) = self.rx.try_recv() {
            self.seen.push(line);
        }
    }

    /// How many lines seen so far contain `text` (after taking what has arrived).
    pub fn count(&mut self, text: &str) -> usize {
        self.drain();
        self.seen.iter().filter(|l| l.contains(text)).count()
    }

    pub fn pid(&self) -> Pid {
        Pid::new(self.child.id() as i32).expect("pid")
    }

    /// Whether `up` still runs (it has not exited; checked without collecting it).
    pub fn is_running(&self) -> bool {
        support::state(self.pid()).is_some_and(|s| s != forkyard::procs::State::Zombie)
    }

    /// The main process of `unit` from the first "`unit` started (pid N)" line at index
    /// `from` or later (waiting for it); returns the line's index and the pid.
    pub fn started_after(&mut self, from: usize, unit: &str) -> (usize, Pid) {
        let i = self.wait_for_after(from, &format!("| {unit} started (pid "));
        let pid = self.seen[i]
            .rsplit("(pid ")
            .next()
            .and_then(|p| p.trim_end_matches(')').parse().ok())
            .and_then(Pid::new)
            .unwrap_or_else(|| panic!("no pid in {:?}", self.seen[i]));
        (i, pid)
    }

    /// Sends `signal` to up and waits for it to exit; returns its code and all its lines.
    pub fn stop_with(self, signal: Signal) -> (i32, Vec<String>) {
        signal.send(self.pid()).expect("signal up");
        self.finish()
    }

    /// Waits for up to exit by itself.
    pub fn finish(mut self) -> (i32, Vec<String>) {
        let status =
            support::wait_for("forkyard up to exit", support::PATIENCE, || self.child.try_wait().expect("try_wait"));
        while let Ok(line) = self.rx.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (status.code().unwrap_or_else(|| panic!("up was killed: {status}")), self.seen)
    }
}

pub fn write_config(dir: &Path, toml: &str) {
    std::fs::write(dir.join("forkyard.toml"), toml).expect("write forkyard.toml");
}

pub fn index_of(lines: &[String], text: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no line with {text:?} in:\n{}", lines.join("\n")))
}

/// `sleep` processes alive whose command line contains `marker` (the shell that started them
/// names every marker too, so it is left out).
pub fn alive_with(marker: &str) -> Vec<String> {
    sleeps_with(marker).iter().map(|(pid, cmd)| format!("{pid} {cmd}")).collect()
}

/// Like [`alive_with`], as (pid, command line) pairs.
pub fn sleeps_with(marker: &str) -> Vec<(Pid, String)> {
    let snap = Snapshot::take().expect("snapshot");
    snap.processes()
        .iter()
        .filter(|p| !p.is_zombie() && p.comm == "sleep" && p.command().contains(marker))
        .map(|p| (p.pid, p.command()))
        .collect()
}

/// The zombie children of `ppid`.
pub fn zombies_of(ppid: i32) -> usize {
    let snap = Snapshot::take_with(ScanOptions { cmdline: false, threads: 1 }).expect("snapshot");
    snap.zombies().filter(|z| z.ppid.map(Pid::as_raw) == Some(ppid)).count()
}

/// The children of `parent` whose name (`comm`) is `comm`, living or not: (pid, is zombie).
pub fn children_named(parent: Pid, comm: &str) -> Vec<(Pid, bool)> {
    let snap = Snapshot::take_with(ScanOptions { cmdline: false, threads: 1 }).expect("snapshot");
    snap.children(parent).filter(|p| p.comm == comm).map(|p| (p.pid, p.is_zombie())).collect()
}

/// Whether `pid` is alive (there and not a zombie).
pub fn alive(pid: Pid) -> bool {
    support::state(pid).is_some_and(|s| s != forkyard::procs::State::Zombie)
}

/// A field of /proc/PID/status in kB (`VmRSS`, `VmHWM`), or `None` once the process is gone.
pub fn status_kb(pid: Pid, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
