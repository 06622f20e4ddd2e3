//! `forkyard ctl` against a real `forkyard up`, as a user would run them: status, restart,
//! stop that holds, start, scale, logs (tail and follow), reload (and a broken file), events,
//! who may use the socket, its modes, a silent client that must not hold anything up, and the
//! read-only TCP endpoints (/metrics, /healthz, /readyz).
//!
//! Every test gives `up` and `ctl` a socket in its own temporary directory (`--socket`), so
//! tests run in parallel; the one about the default location uses the default socket of its
//! own temporary configuration, which no other test shares. Services are `sleep 3700NN`
//! (NN: the test's marker) so that /proc shows exactly which processes a test started, and
//! each test ends by stopping `up` and checking that none of them is left. Helper services
//! are this test binary itself, re-executed with `FORKYARD_TEST_HELPER`, as in tests/up.rs.

#[path = "../../forkyard/tests/support/mod.rs"]
mod support;
mod up_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use forkyard::{Pid, Signal};
use forkyard_supervise::control::api;
use up_support::{Up, alive, forkyard_bin, free_port, me, sleeps_with, write_config};

fn main() {
    if let Ok(helper) = std::env::var("FORKYARD_TEST_HELPER") {
        std::process::exit(helper_main(&helper));
    }
    support::run(&[
        (
            "status_lists_every_service_and_shutdown_says_the_exit_code",
            status_lists_every_service_and_shutdown_says_the_exit_code,
        ),
        ("without_up_one_line_and_bad_usage_exits_2", without_up_one_line_and_bad_usage_exits_2),
        ("restart_changes_the_pid_and_the_old_tree_is_gone", restart_changes_the_pid_and_the_old_tree_is_gone),
        ("stop_keeps_an_always_service_down_until_start", stop_keeps_an_always_service_down_until_start),
        ("scale_adds_and_removes_instances", scale_adds_and_removes_instances),
        ("logs_tail_and_follow_until_up_stops", logs_tail_and_follow_until_up_stops),
        (
            "reload_adds_removes_changes_and_refuses_a_broken_file",
            reload_adds_removes_changes_and_refuses_a_broken_file,
        ),
        ("events_stream_state_changes", events_stream_state_changes),
        ("a_stranger_is_refused", a_stranger_is_refused),
        (
            "the_default_socket_is_private_and_found_without_flags",
            the_default_socket_is_private_and_found_without_flags,
        ),
        ("a_silent_client_does_not_delay_a_restart", a_silent_client_does_not_delay_a_restart),
        ("http_metrics_healthz_readyz", http_metrics_healthz_readyz),
    ])
}

// --- helpers run as services --------------------------------------------------------------

fn helper_main(which: &str) -> i32 {
    match which {
        // Prints line-1 ... line-$SAY_LINES, then "signalled-K" for the K-th SIGUSR1.
        "say" => {
            let n: usize = std::env::var("SAY_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
            let mut set = forkyard::SignalSet::empty();
            set.insert(Signal::USR1);
            // Blocked before the lines go out: a signal sent once they are seen is not lost.
            if set.block().is_err() {
                return 2;
            }
            let Ok(fd) = forkyard::SignalFd::blocking(&set) else { return 3 };
            for i in 1..=n {
                println!("line-{i}");
            }
            for k in 1.. {
                if fd.read(None).is_err() {
                    return 4;
                }
                println!("signalled-{k}");
            }
            0
        }
        // Sends one request to the socket $RAW_SOCKET by hand and prints the whole reply.
        "raw" => {
            let Some(path) = std::env::var_os("RAW_SOCKET") else { return 2 };
            let Ok(mut conn) = std::os::unix::net::UnixStream::connect(path) else { return 3 };
            let _ = conn.write_all(b"GET /v1/services HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            let mut reply = Vec::new();
            let _ = conn.read_to_end(&mut reply);
            let _ = std::io::stdout().write_all(&reply);
            0
        }
        _ => 100,
    }
}

// --- the stack under test -------------------------------------------------------------------

/// A `forkyard up` with its own directory and control socket.
struct Stack {
    dir: tempfile::TempDir,
    socket: PathBuf,
    up: Up,
    /// The `sleep 3700NN` marker of the test's services.
    marker: String,
}

impl Stack {
    /// Writes `toml` and starts `up` on a socket in a fresh directory; returns once the
    /// socket is served.
    fn start(marker: &str, toml: &str, args: &[&str]) -> Stack {
        let dir = tempfile::tempdir().expect("tmp");
        write_config(dir.path(), toml);
        let socket = dir.path().join("ctl.sock");
        let mut all = vec!["--socket", socket.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        let mut up = Up::start(dir.path(), &all, &[]);
        up.wait_for("control socket: ");
        Stack { dir, socket, up, marker: format!("3700{marker}") }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `forkyard ctl --socket S ARGS` in the stack's directory.
    fn ctl(&self, args: &[&str]) -> Output {
        ctl_in(self.path(), Some(&self.socket), args)
    }

    /// Runs ctl and expects exit 0; returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert_eq!(out.status.code(), Some(0), "ctl {args:?}: {}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "ctl {args:?} wrote to stderr: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// `ctl status --json`, parsed.
    fn overview(&self) -> api::Overview {
        let out = self.ok(&["status", "--json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json is not an Overview ({e}): {out}"))
    }

    /// One instance's status (panics if it is not listed).
    fn unit(&self, name: &str) -> api::ServiceStatus {
        let all = self.overview();
        all.services.into_iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name} is not listed"))
    }

    /// Waits until `check` holds for the overview; returns it.
    fn wait_overview(&self, what: &str, check: impl Fn(&api::Overview) -> bool) -> api::Overview {
        support::wait_for(what, support::PATIENCE, || {
            let o = self.overview();
            check(&o).then_some(o)
        })
    }

    /// Waits until `name` is in `state` with a main process; returns its pid.
    fn wait_running(&self, name: &str, state: &str) -> Pid {
        let o = self.wait_overview(&format!("{name} {state} with a pid"), |o| {
            o.services.iter().any(|s| s.name == name && s.state == state && s.pid.is_some())
        });
        let pid = o.services.iter().find(|s| s.name == name).and_then(|s| s.pid).expect("pid");
        Pid::new(pid).expect("a valid pid")
    }

    /// The test's `sleep 3700NN` processes alive now.
    fn sleeps(&self) -> Vec<(Pid, String)> {
        sleeps_with(&self.marker)
    }

    /// Stops `up` with SIGTERM and checks that nothing it ran is left and its socket is
    /// gone; returns all its lines.
    fn finish(self) -> Vec<String> {
        let socket = self.socket.clone();
        let marker = self.marker.clone();
        let (code, lines) = self.up.stop_with(Signal::TERM);
        assert_eq!(code, 128 + libc::SIGTERM, "{}", lines.join("\n"));
        nothing_left(&marker, &socket, &lines);
        drop(self.dir);
        lines
    }
}

/// The final checks: no process of the test's services and no socket left behind.
fn nothing_left(marker: &str, socket: &Path, lines: &[String]) {
    let left = sleeps_with(marker);
    assert!(left.is_empty(), "left behind: {left:?}\n{}", lines.join("\n"));
    assert!(!socket.exists(), "the socket {} was left behind", socket.display());
}

fn ctl_in(dir: &Path, socket: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(forkyard_bin());
    cmd.arg("ctl");
    if let Some(s) = socket {
        cmd.arg("--socket").arg(s);
    }
    cmd.args(args).current_dir(dir).stdin(Stdio::null()).env_remove("FORKYARD_SOCKET");
    cmd.output().expect("run forkyard ctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `ctl` that streams (logs -f, events): its lines arrive on `rx`.
struct Streaming {
    child: Child,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Streaming {
    fn start(stack: &Stack, args: &[&str]) -> Streaming {
        let mut child = Command::new(forkyard_bin())
            .arg("ctl")
            .arg("--socket")
            .arg(&stack.socket)
            .args(args)
            .current_dir(stack.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn forkyard ctl");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming { child, rx, seen: Vec::new() }
    }

    /// Waits (with a generous bound) for a line for which `check` holds.
    fn wait_line(&mut self, what: &str, check: impl Fn(&str) -> bool) -> String {
        self.wait_line_after(0, what, check)
    }

    /// Like `wait_line`, but only lines at index `from` or later count.
    fn wait_line_after(&mut self, from: usize, what: &str, check: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.seen.iter().skip(from).find(|l| check(l)) {
            return l.clone();
        }
        loop {
            match self.rx.recv_timeout(support::PATIENCE) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if check(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {what} in:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits for ctl to end by itself; returns its exit code.
    fn finish(mut self) -> i32 {
        let status =
            support::wait_for("forkyard ctl to end", support::PATIENCE, || self.child.try_wait().expect("try_wait"));
        status.code().unwrap_or_else(|| panic!("ctl was killed: {status}"))
    }
}

// --- status and the absence of up -----------------------------------------------------------

fn status_lists_every_service_and_shutdown_says_the_exit_code() {
    let mut stack = Stack::start(
        "11",
        r#"
[services.db]
command = "sleep 370011"
ready = { exec = "true", interval = "50ms" }

[services.web]
command = "sleep 370011"
instances = 2
depends_on = { db = "ready" }

[services.setup]
command = "exit 0"
oneshot = true

[services.broken]
command = "exit 3"
restart = "never"
"#,
        &[],
    );
    let states =
        [("db", "ready"), ("web.1", "running"), ("web.2", "running"), ("setup", "completed"), ("broken", "failed")];
    let o = stack.wait_overview("every service in its settled state", |o| {
        states.iter().all(|(n, s)| o.services.iter().any(|u| u.name == *n && u.state == *s))
    });
    assert_eq!(o.services.len(), states.len(), "{o:?}");
    assert_eq!(o.up.pid, stack.up.pid().as_raw());
    assert!(o.up.config.ends_with("forkyard.toml") && Path::new(&o.up.config).is_absolute(), "{}", o.up.config);

    let table = stack.ok(&["status"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), states.len(), "one line per instance:\n{table}");
    // The state column starts at the same place on every line.
    let state_at: Vec<usize> = lines
        .iter()
        .map(|l| {
            let name = l.split_whitespace().next().expect("a name");
            name.len() + l[name.len()..].len() - l[name.len()..].trim_start().len()
        })
        .collect();
    assert!(state_at.iter().all(|&c| c == state_at[0]), "columns not aligned:\n{table}");
    for (name, state) in states {
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{table}"));
        assert_eq!(line.split_whitespace().nth(1), Some(state), "{line}");
        let unit = o.services.iter().find(|u| u.name == name).expect("listed");
        match unit.pid {
            Some(pid) => {
                assert!(line.contains(&format!("pid {pid}, uptime ")), "{line}");
                assert!(alive(Pid::new(pid).expect("pid")), "{name}'s pid {pid} is not a live process");
                stack.up.wait_for(&format!("{name} started (pid {pid})"));
            }
            None => assert!(!line.contains("pid "), "{line}"),
        }
    }
    let broken = lines.iter().find(|l| l.starts_with("broken ")).expect("broken");
    assert!(broken.contains("($? = 3)"), "the last exit in words and as $?: {broken}");
    let db = lines.iter().find(|l| l.starts_with("db ")).expect("db");
    assert!(db.contains(", ready"), "{db}");

    // Names narrow the list; an unknown one is refused with the names there are.
    let web = stack.ok(&["status", "web"]);
    let names: Vec<&str> = web.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(names, ["web.1", "web.2"], "{web}");
    let out = stack.ctl(&["status", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("forkyard ctl: ") && err.contains("nope") && err.contains("web"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // shutdown says what up will exit with, and up does.
    let said = stack.ok(&["shutdown"]);
    let promised: i32 = said
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no exit code in {said:?}"));
    let (socket, marker) = (stack.socket.clone(), stack.marker.clone());
    let (code, lines) = stack.up.finish();
    assert_eq!(code, promised, "{said}\n{}", lines.join("\n"));
    nothing_left(&marker, &socket, &lines);
}

fn without_up_one_line_and_bad_usage_exits_2() {
    let dir = tempfile::tempdir().expect("tmp");
    // No configuration here and no socket given: bad usage.
    let out = ctl_in(dir.path(), None, &["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    write_config(dir.path(), "[services.a]\ncommand = \"sleep 370021\"\n");
    let config = dir.path().join("forkyard.toml");
    // The default socket of this configuration: no up serves it.
    let out = ctl_in(dir.path(), None, &["status"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let default = forkyard_supervise::control::default_socket(&config);
    assert!(err.contains(&config.display().to_string()), "names the configuration: {err}");
    assert!(err.contains(&default.display().to_string()), "names the socket looked for: {err}");
    assert!(err.contains("forkyard up"), "says what to do: {err}");
    // A socket given, nothing there; then one left by a dead up (nobody accepts).
    let missing = dir.path().join("missing.sock");
    let out = ctl_in(dir.path(), Some(&missing), &["restart", "a"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&missing.display().to_string()) && err.lines().count() == 1, "{err}");
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let out = ctl_in(dir.path(), Some(&stale), &["logs", "-f"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&stale.display().to_string()) && err.lines().count() == 1, "{err}");
    // Names that are not names, numbers out of range: clap's usage errors, before any request.
    for args in [&["restart", "a/../b"][..], &["status", "web 2"], &["scale", "a", "1001"], &["signal", "a", "NOPE"]] {
        let out = ctl_in(dir.path(), Some(&missing), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
    }
}

// --- start, stop, restart -------------------------------------------------------------------

fn restart_changes_the_pid_and_the_old_tree_is_gone() {
    let stack = Stack::start(
        "31",
        "[services.tree]\ncommand = \"sleep 370031 & sleep 370031 & echo spawned; wait\"\nstop_timeout = \"2s\"\n\n[services.side]\ncommand = [\"sleep\", \"370031\"]\n",
        &[],
    );
    let before = stack.wait_running("tree", "running");
    let side = stack.wait_running("side", "running");
    // The main shell and its two sleeps (side's sleep is the third).
    let old_tree: Vec<Pid> = support::wait_for("tree's two sleeps", support::PATIENCE, || {
        let s: Vec<Pid> = stack.sleeps().into_iter().map(|(p, _)| p).filter(|p| *p != side).collect();
        (s.len() == 2).then_some(s)
    });
    assert_eq!(stack.ok(&["restart", "tree"]), "tree: restarted\n");
    let after = stack.wait_running("tree", "running");
    assert_ne!(before, after, "a restart runs a new process");
    // The old tree is gone while up still runs; the side service was not touched.
    support::wait_for("the old tree to be gone", support::PATIENCE, || {
        (!alive(before) && old_tree.iter().all(|p| !alive(*p))).then_some(())
    });
    assert!(stack.up.is_running());
    assert_eq!(stack.unit("side").pid, Some(side.as_raw()));
    assert_eq!(stack.unit("tree").restarts, 1);
    stack.finish();
}

fn stop_keeps_an_always_service_down_until_start() {
    let mut stack = Stack::start(
        "41",
        "[services.keeper]\ncommand = \"sleep 370041\"\nrestart = \"always\"\nbackoff_initial = \"10ms\"\n\n[services.other]\ncommand = \"sleep 370041\"\n",
        &[],
    );
    let first = stack.wait_running("keeper", "running");
    stack.wait_running("other", "running");
    assert_eq!(stack.ok(&["stop", "keeper"]), "keeper: stopped\n");
    let held = stack.unit("keeper");
    assert_eq!((held.state.as_str(), held.pid), ("stopped", None), "{held:?}");
    assert!(!alive(first), "stop returns once it is stopped");
    // Let the loop go round: restart another service and wait for it. A keeper that was not
    // held would have been started again (at once: its backoff is 10ms) by then.
    let other = stack.unit("other").pid;
    assert_eq!(stack.ok(&["restart", "other"]), "other: restarted\n");
    stack.wait_overview("other restarted", |o| {
        o.services.iter().any(|s| s.name == "other" && s.pid.is_some() && s.pid != other)
    });
    let still = stack.unit("keeper");
    assert_eq!((still.state.as_str(), still.pid, still.run), ("stopped", None, held.run), "it came back: {still:?}");
    let stop_line = stack.up.wait_for("keeper stopped (");
    assert_eq!(stack.up.count("keeper started"), 1, "{}", stack.up.seen.join("\n"));
    // start brings it back.
    assert_eq!(stack.ok(&["start", "keeper"]), "keeper: started\n");
    let back = stack.wait_running("keeper", "running");
    assert_ne!(back, first);
    assert!(alive(back));
    stack.up.wait_for_after(stop_line, "keeper started");
    stack.finish();
}

fn scale_adds_and_removes_instances() {
    let stack = Stack::start("51", "[services.w]\ncommand = \"sleep 370051\"\ninstances = 2\n", &[]);
    stack.wait_running("w.2", "running");
    let out = stack.ok(&["scale", "w", "4"]);
    assert_eq!(out, "w.3: added\nw.4: added\nw: 4 instance(s)\n");
    let o = stack.wait_overview("four instances running", |o| {
        o.services.iter().filter(|s| s.service == "w" && s.state == "running" && s.pid.is_some()).count() == 4
    });
    let names: Vec<&str> = o.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["w.1", "w.2", "w.3", "w.4"]);
    let extra: Vec<Pid> = o.services[2..].iter().map(|s| Pid::new(s.pid.expect("pid")).expect("pid")).collect();
    assert!(extra.iter().all(|p| alive(*p)), "the new instances' processes exist");
    support::wait_for("four sleeps", support::PATIENCE, || (stack.sleeps().len() == 4).then_some(()));
    // And down again: the extra instances are stopped and forgotten.
    let out = stack.ok(&["scale", "w", "2"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["w.3: removed", "w.4: removed", "w: 2 instance(s)"], "{out}");
    support::wait_for("the removed instances' processes to be gone", support::PATIENCE, || {
        extra.iter().all(|p| !alive(*p)).then_some(())
    });
    // The reply may come while they stop; then they are forgotten.
    stack.wait_overview("only w.1 and w.2 listed", |o| {
        o.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>() == ["w.1", "w.2"]
    });
    assert_eq!(stack.sleeps().len(), 2, "{:?}", stack.sleeps());
    // A scale of something that is not a service is refused.
    let out = stack.ctl(&["scale", "nope", "3"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    stack.finish();
}

// --- reload ----------------------------------------------------------------------------------

fn reload_adds_removes_changes_and_refuses_a_broken_file() {
    let keep = "[services.keep]\ncommand = \"sleep 370055\"\n";
    let stack = Stack::start(
        "55",
        &format!(
            "{keep}\n[services.gone]\ncommand = \"sleep 370055\"\n\n[services.change]\ncommand = \"sleep 370055\"\nenv = {{ A = \"1\" }}\n"
        ),
        &[],
    );
    let kept = stack.wait_running("keep", "running");
    let gone = stack.wait_running("gone", "running");
    let changed = stack.wait_running("change", "running");
    write_config(
        stack.path(),
        &format!(
            "{keep}\n[services.change]\ncommand = \"sleep 370055\"\nenv = {{ A = \"2\" }}\n\n[services.new]\ncommand = \"sleep 370055\"\n"
        ),
    );
    let out = stack.ok(&["reload"]);
    assert_eq!(
        out,
        "new: added\ngone: removed\nchange: changed (restarted)\nreloaded: 1 added, 1 removed, 1 changed, 1 unchanged\n"
    );
    let o = stack.wait_overview("new and change running", |o| {
        ["new", "change"]
            .iter()
            .all(|n| o.services.iter().any(|s| s.name == *n && s.state == "running" && s.pid.is_some()))
    });
    let names: Vec<&str> = o.services.iter().map(|s| s.name.as_str()).collect();
    assert!(!names.contains(&"gone") && names.len() == 3, "{names:?}");
    let pid_of = |n: &str| o.services.iter().find(|s| s.name == n).and_then(|s| s.pid);
    assert_eq!(pid_of("keep"), Some(kept.as_raw()), "an unchanged service keeps its process");
    assert_ne!(pid_of("change"), Some(changed.as_raw()), "a changed one runs anew");
    support::wait_for("the removed and replaced processes to be gone", support::PATIENCE, || {
        (!alive(gone) && !alive(changed)).then_some(())
    });
    // The new settings are in force: the changed service's environment.
    let environ = std::fs::read(format!("/proc/{}/environ", pid_of("change").expect("pid"))).expect("environ");
    assert!(environ.split(|&b| b == 0).any(|v| v == b"A=2"), "the changed service runs with A=2");

    // A broken file: refused with up --check's words, nothing changed.
    write_config(stack.path(), &format!("{keep}restrat = \"always\"\n"));
    let out = stack.ctl(&["reload"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("forkyard ctl: ") && err.contains("unknown field `restrat`"), "{err}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let after = stack.overview();
    let now: Vec<(&str, Option<i32>)> = after.services.iter().map(|s| (s.name.as_str(), s.pid)).collect();
    let before: Vec<(&str, Option<i32>)> = o.services.iter().map(|s| (s.name.as_str(), s.pid)).collect();
    assert_eq!(now, before, "a refused reload changes nothing");
    stack.finish();
}

// --- logs and events ---------------------------------------------------------------------------

fn logs_tail_and_follow_until_up_stops() {
    let mut stack = Stack::start(
        "61",
        &format!(
            "[services.talker]\ncommand = [\"{me}\"]\nenv = {{ FORKYARD_TEST_HELPER = \"say\", SAY_LINES = \"50\" }}\n\n[services.quiet]\ncommand = \"echo hush; sleep 370061\"\n",
            me = me()
        ),
        &[],
    );
    stack.up.wait_for("| line-50");
    stack.up.wait_for("| hush");
    // The last 5 lines of one service, as up prints them.
    let out = stack.ok(&["logs", "-n", "5", "talker"]);
    let texts: Vec<(&str, &str)> = out
        .lines()
        .map(|l| l.split_once(" | ").map(|(n, t)| (n.trim_end(), t)).unwrap_or_else(|| panic!("{l:?}")))
        .collect();
    let expected: Vec<(&str, String)> = (46..=50).map(|i| ("talker", format!("line-{i}"))).collect();
    assert_eq!(texts.len(), 5, "{out}");
    for ((n, t), (en, et)) in texts.iter().zip(&expected) {
        assert_eq!((*n, *t), (*en, et.as_str()), "{out}");
    }
    // Every service when none is named.
    let all = stack.ok(&["logs", "-n", "1"]);
    assert!(all.lines().any(|l| l.ends_with("| line-50")) && all.lines().any(|l| l.ends_with("| hush")), "{all}");
    // Follow: the tail, then a new line as it is printed, then the end when up stops.
    let mut follow = Streaming::start(&stack, &["logs", "-f", "-n", "1", "talker"]);
    follow.wait_line("line-50", |l| l.ends_with("| line-50"));
    assert_eq!(stack.ok(&["signal", "talker", "USR1"]), "talker: sent USR1\n");
    follow.wait_line("signalled-1", |l| l.ends_with("| signalled-1"));
    assert!(follow.seen.iter().all(|l| l.starts_with("talker ")), "only talker's lines: {:?}", follow.seen);
    stack.finish();
    assert_eq!(follow.finish(), 0, "logs -f ends cleanly when up stops");
}

fn events_stream_state_changes() {
    let stack = Stack::start("71", "[services.ev]\ncommand = \"sleep 370071\"\n", &[]);
    let first = stack.wait_running("ev", "running");
    let mut events = Streaming::start(&stack, &["events"]);
    // The stream may not be subscribed yet when the first restart happens: restart until an
    // event arrives (each restart is two changes or more).
    let mut live = false;
    for _ in 0..100 {
        stack.ok(&["restart", "ev", "--no-wait"]);
        if let Ok(line) = events.rx.recv_timeout(Duration::from_millis(200)) {
            events.seen.push(line);
            live = true;
            break;
        }
    }
    assert!(live, "no event came");
    let parse = |l: &str| -> api::StateEvent {
        serde_json::from_str(l).unwrap_or_else(|e| panic!("not a StateEvent ({e}): {l}"))
    };
    // Now subscribed: one more restart is a stop, then a new run with a new pid.
    let before = stack.wait_running("ev", "running");
    let from = events.seen.len();
    assert_eq!(stack.ok(&["restart", "ev"]), "ev: restarted\n");
    events.wait_line_after(from, "ev stopping or stopped", |l| {
        let e = parse(l);
        e.name == "ev" && (e.state == "stopped" || e.state == "stopping")
    });
    let running = events.wait_line_after(from, "ev running with a new pid", |l| {
        let e = parse(l);
        e.name == "ev" && e.state == "running" && e.pid.is_some_and(|p| p != before.as_raw() && p != first.as_raw())
    });
    let e = parse(&running);
    assert_eq!(e.service, "ev");
    assert!(e.time > 1.0e9 && e.run >= 2, "{running}");
    stack.finish();
    assert_eq!(events.finish(), 0, "events ends cleanly when up stops");
}

// --- who may use it ----------------------------------------------------------------------------

fn a_stranger_is_refused() {
    let mut stack = Stack::start("81", "[services.s]\ncommand = \"sleep 370081\"\n", &[]);
    let pid = stack.wait_running("s", "running");
    // nobody can reach the socket (the directory is traversable) and run a copy of forkyard.
    std::fs::set_permissions(stack.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let bin = stack.path().join("forkyard");
    std::fs::copy(forkyard_bin(), &bin).expect("copy forkyard");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let as_nobody = |args: &[&str]| -> Output {
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(&bin)
            .arg("ctl")
            .arg("--socket")
            .arg(&stack.socket)
            .args(args)
            .current_dir(stack.path())
            .stdin(Stdio::null())
            .output()
            .expect("setpriv (util-linux) is needed, and root")
    };
    // As made (0600): the kernel refuses.
    let out = as_nobody(&["status"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("permission denied") && err.lines().count() == 1, "{err}");
    // With the socket's mode loosened, the server's own check (SO_PEERCRED) refuses: 403.
    std::fs::set_permissions(&stack.socket, std::fs::Permissions::from_mode(0o666)).expect("chmod socket");
    for args in [&["status"][..], &["stop", "s"], &["shutdown"]] {
        let out = as_nobody(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with("forkyard ctl: ") && err.contains("only root and the user running forkyard up"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    // The refusal on the wire, to a client that sends its request first.
    let raw = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(me())
        .env("FORKYARD_TEST_HELPER", "raw")
        .env("RAW_SOCKET", &stack.socket)
        .stdin(Stdio::null())
        .output()
        .expect("setpriv runs the helper");
    let reply = text(&raw.stdout);
    assert!(reply.starts_with("HTTP/1.1 403 "), "{reply:?} ({})", text(&raw.stderr));
    assert!(reply.contains("only root and the user running forkyard up"), "{reply}");
    stack.up.wait_for("refused a control connection from uid 65534");
    assert_eq!(stack.unit("s").pid, Some(pid.as_raw()), "nothing changed");
    assert!(stack.up.is_running());
    stack.finish();
}

fn the_default_socket_is_private_and_found_without_flags() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(dir.path(), "[services.d]\ncommand = \"sleep 370091\"\n");
    let config = dir.path().join("forkyard.toml");
    let expected = forkyard_supervise::control::default_socket(&config);
    let mut up = Up::start(dir.path(), &[], &[]);
    let i = up.wait_for("control socket: ");
    assert!(up.seen[i].contains(&expected.display().to_string()), "{} vs {}", up.seen[i], expected.display());
    let meta = std::fs::symlink_metadata(&expected).expect("the socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "the socket's mode");
    let parent = expected.parent().expect("its directory");
    assert_eq!(std::fs::metadata(parent).expect("dir").permissions().mode() & 0o777, 0o700, "its directory's mode");
    // ctl in the same directory finds it with no flag; -f from elsewhere too.
    let out = ctl_in(dir.path(), None, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("d "), "{}", text(&out.stdout));
    let elsewhere = tempfile::tempdir().expect("tmp");
    let out = ctl_in(elsewhere.path(), None, &["-f", config.to_str().expect("utf-8"), "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (code, lines) = up.stop_with(Signal::TERM);
    assert_eq!(code, 128 + libc::SIGTERM);
    nothing_left("370091", &expected, &lines);
}

fn a_silent_client_does_not_delay_a_restart() {
    let mut stack = Stack::start(
        "95",
        "[services.victim]\ncommand = \"sleep 370095\"\nrestart = \"always\"\nbackoff_initial = \"10ms\"\n",
        &[],
    );
    let first = stack.wait_running("victim", "running");
    // One client connects and says nothing; another stops in the middle of its headers.
    let silent = std::os::unix::net::UnixStream::connect(&stack.socket).expect("connect");
    let mut partial = std::os::unix::net::UnixStream::connect(&stack.socket).expect("connect");
    partial.write_all(b"GET /v1/services HTTP/1.1\r\nHo").expect("write");
    let from = stack.up.wait_for(&format!("victim started (pid {first})")) + 1;
    Signal::KILL.send(first).expect("kill -9");
    let (_, again) = stack.up.started_after(from, "victim");
    assert_ne!(again, first);
    // Others are served meanwhile: status shows the new run...
    assert_eq!(stack.wait_running("victim", "running"), again);
    // ...and all that happened while both clients still hung on: neither was answered or
    // dropped first (a server or loop waiting on them would only have gone on once the
    // server gave up on them, closing them).
    for (what, conn) in [("silent", &silent), ("partial", &partial)] {
        conn.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 64];
        match (&*conn).read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("the {what} client was dealt with first: {other:?}"),
        }
    }
    drop((silent, partial));
    stack.finish();
}

// --- the read-only TCP endpoints ---------------------------------------------------------------

/// `GET path` over TCP: (status, body).
fn http_get(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(conn, "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("write");
    let mut reply = String::new();
    conn.read_to_string(&mut reply).expect("read");
    let status = reply.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{reply}"));
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn http_metrics_healthz_readyz() {
    let port = free_port();
    let dir_flag = tempfile::tempdir().expect("tmp");
    let flag = dir_flag.path().join("ready");
    let mut stack = Stack::start(
        "97",
        &format!(
            "[services.plain]\ncommand = \"sleep 370097\"\n\n[services.gated]\ncommand = \"sleep 370097\"\nready = {{ exec = \"test -e {flag}\", interval = \"50ms\" }}\n\n[services.once]\ncommand = \"true\"\noneshot = true\n",
            flag = flag.display()
        ),
        &["--http", &format!("127.0.0.1:{port}")],
    );
    stack.up.wait_for(&format!("serving /metrics, /healthz and /readyz on http://127.0.0.1:{port}"));
    stack.wait_running("plain", "running");
    stack.wait_overview("gated running, not ready", |o| {
        o.services.iter().any(|s| s.name == "gated" && s.pid.is_some() && s.ready == Some(false))
    });

    assert_eq!(http_get(port, "GET", "/healthz"), (200, r#"{"status":"ok"}"#.to_string()));
    // Not ready while gated's check fails; a service named alone can be.
    let (status, body) = http_get(port, "GET", "/readyz");
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["ready"], false);
    let names: Vec<&str> =
        v["not_ready"].as_array().expect("not_ready").iter().filter_map(|u| u["name"].as_str()).collect();
    assert!(names.contains(&"gated") && !names.contains(&"plain"), "{body}");
    support::wait_for("plain alone ready", support::PATIENCE, || {
        (http_get(port, "GET", "/readyz?service=plain").0 == 200).then_some(())
    });
    std::fs::write(&flag, "").expect("touch");
    support::wait_for("/readyz 200", support::PATIENCE, || (http_get(port, "GET", "/readyz").0 == 200).then_some(()));
    assert_eq!(http_get(port, "GET", "/readyz").1, r#"{"ready":true}"#);

    // Every metric, each with a service label (exits once the oneshot has ended).
    let names = [
        "forkyard_service_up",
        "forkyard_service_ready",
        "forkyard_service_restarts_total",
        "forkyard_service_start_time_seconds",
        "forkyard_service_cpu_seconds_total",
        "forkyard_service_memory_bytes",
        "forkyard_service_exits_total",
    ];
    let mut last = String::new();
    let found = support::wait_until(support::PATIENCE, || {
        let (status, body) = http_get(port, "GET", "/metrics");
        last = body;
        status == 200
            && names.iter().all(|n| {
                last.lines().any(|l| {
                    !l.starts_with('#')
                        && l.split(['{', ' ']).next() == Some(*n)
                        && l.contains("service=\"")
                        && l.rsplit(' ').next().is_some_and(|v| v.parse::<f64>().is_ok())
                })
            })
    });
    assert!(found, "not every metric, with a service label:\n{last}");
    assert!(
        last.lines()
            .any(|l| l.starts_with("forkyard_service_up{") && l.contains("service=\"plain\"") && l.ends_with(" 1")),
        "{last}"
    );
    assert!(
        last.lines().any(|l| l.starts_with("forkyard_service_exits_total{")
            && l.contains("service=\"once\"")
            && l.contains("exit=\"0\"")),
        "{last}"
    );
    // Read-only: the control API is not on TCP, and nothing there changes anything.
    assert_eq!(http_get(port, "GET", "/v1/services").0, 404);
    assert_ne!(http_get(port, "POST", "/v1/shutdown").0 / 100, 2);
    assert_eq!(http_get(port, "POST", "/metrics").0, 405);
    assert!(stack.up.is_running());
    stack.finish();
}
