//! `forkyard up` run as a user would, with real services: restarts and backoff, the budget,
//! dependencies with every condition and readiness kind, liveness, whole-tree stops, exit
//! codes, instances, users, Procfiles, logs, bad configurations, and PID 1.
//!
//! Helper services (an HTTP server, a NOTIFY_SOCKET sender, a line spammer) are this test
//! binary itself, re-executed with `FORKYARD_TEST_HELPER`.

#[path = "../../forkyard/tests/support/mod.rs"]
mod support;
mod up_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use forkyard::{Pid, Signal};
use up_support::{Up, alive_with, forkyard_bin, free_port, index_of, me, write_config, zombies_of};

fn main() {
    if let Ok(helper) = std::env::var("FORKYARD_TEST_HELPER") {
        std::process::exit(helper_main(&helper));
    }
    support::run(&[
        ("quick_crashes_back_off_then_the_budget_gives_up", quick_crashes_back_off_then_the_budget_gives_up),
        ("a_stable_run_restarts_at_once", a_stable_run_restarts_at_once),
        ("dependencies_wait_for_their_condition", dependencies_wait_for_their_condition),
        ("every_readiness_kind_gates_dependents", every_readiness_kind_gates_dependents),
        ("readiness_that_never_passes_keeps_dependents_down", readiness_that_never_passes_keeps_dependents_down),
        ("a_failed_dependency_blocks_its_dependents", a_failed_dependency_blocks_its_dependents),
        ("liveness_failures_restart_the_service", liveness_failures_restart_the_service),
        ("stopping_kills_the_whole_tree_with_cgroups", stopping_kills_the_whole_tree_with_cgroups),
        ("stopping_kills_the_whole_tree_without_cgroups", stopping_kills_the_whole_tree_without_cgroups),
        ("shutdown_goes_in_reverse_dependency_order", shutdown_goes_in_reverse_dependency_order),
        ("a_critical_service_ends_everything_with_its_status", a_critical_service_ends_everything_with_its_status),
        ("exit_on_first_and_all_ended", exit_on_first_and_all_ended),
        ("instances_are_numbered", instances_are_numbered),
        ("services_run_as_their_user_and_group", services_run_as_their_user_and_group),
        ("procfile_with_env_and_ports", procfile_with_env_and_ports),
        ("check_prints_the_order_and_starts_nothing", check_prints_the_order_and_starts_nothing),
        ("bad_configurations_exit_2_with_where_and_what", bad_configurations_exit_2_with_where_and_what),
        (
            "a_missing_program_is_retried_then_failed_while_others_run",
            a_missing_program_is_retried_then_failed_while_others_run,
        ),
        ("two_services_writing_a_megabyte_never_interleave", two_services_writing_a_megabyte_never_interleave),
        ("long_lines_and_unterminated_output", long_lines_and_unterminated_output),
        ("log_files_rotate", log_files_rotate),
        ("as_pid1_no_zombie_stays", as_pid1_no_zombie_stays),
        ("a_second_interrupt_kills_at_once", a_second_interrupt_kills_at_once),
        ("an_interrupt_delivered_twice_at_once_is_one_request", an_interrupt_delivered_twice_at_once_is_one_request),
        ("timestamps_start_every_line", timestamps_start_every_line),
        ("colour_on_a_terminal_unless_no_color", colour_on_a_terminal_unless_no_color),
        ("named_services_run_with_their_dependencies_only", named_services_run_with_their_dependencies_only),
    ])
}

// --- helpers run as services --------------------------------------------------------------

fn helper_main(which: &str) -> i32 {
    match which {
        // Answers every connection on $HELPER_PORT with "HTTP/1.0 200 OK".
        "http" => {
            let port = std::env::var("HELPER_PORT").unwrap_or_default();
            let Ok(listener) = std::net::TcpListener::bind(format!("127.0.0.1:{port}")) else { return 2 };
            println!("listening on {port}");
            for conn in listener.incoming().flatten() {
                let mut conn = conn;
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
            0
        }
        // Sends READY=1 to $NOTIFY_SOCKET, then sleeps.
        "notify" => {
            let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return 3 };
            let sock = std::os::unix::net::UnixDatagram::unbound().expect("socket");
            sock.send_to(b"STATUS=starting\nREADY=1\n", path).expect("send");
            std::thread::sleep(Duration::from_secs(1000));
            0
        }
        // Writes $SPAM_LINES lines "NAME-NNNNNN-xxxx..." of 64 bytes each, as fast as it can,
        // in write(2)s of 1000 bytes: most lines are cut in two by a write, so the supervisor
        // must put them back together.
        "spam" => {
            use std::os::fd::AsFd;
            let name = std::env::var("SPAM_NAME").unwrap_or_default();
            let n: usize = std::env::var("SPAM_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(16384);
            let text: String = (0..n).map(|i| spam_line(&name, i) + "\n").collect();
            let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() else { return 2 };
            let mut out = std::fs::File::from(fd);
            for chunk in text.as_bytes().chunks(1000) {
                if out.write_all(chunk).is_err() {
                    return 3;
                }
            }
            0
        }
        _ => 100,
    }
}

fn spam_line(name: &str, i: usize) -> String {
    let head = format!("{name}-{i:06}-");
    format!("{head}{}", "x".repeat(63 - head.len()))
}

// --- restarts -------------------------------------------------------------------------------

fn quick_crashes_back_off_then_the_budget_gives_up() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.crasher]\ncommand = \"echo crashing; exit 3\"\nbackoff_initial = \"20ms\"\nbackoff_max = \"1s\"\nmax_restarts = 3\n",
    );
    let (code, lines) = Up::start(dir.path(), &[], &[]).finish();
    let delays: Vec<&str> = lines.iter().filter_map(|l| l.split("restarting in ").nth(1)).collect();
    assert_eq!(delays, ["20ms", "40ms", "80ms"], "exponential backoff:\n{}", lines.join("\n"));
    assert_eq!(lines.iter().filter(|l| l.contains("crasher  | crashing")).count(), 4, "first run plus three restarts");
    assert!(lines.iter().any(|l| l.contains("crasher failed: restarted 3 times")), "{}", lines.join("\n"));
    assert_eq!(code, 3, "everything ended; the failed service's status");
}

fn a_stable_run_restarts_at_once() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.flaky]\ncommand = \"sleep 0.2; exit 1\"\nstable_after = \"100ms\"\nbackoff_initial = \"10s\"\nmax_restarts = 1\n",
    );
    let (code, lines) = Up::start(dir.path(), &[], &[]).finish();
    assert!(
        lines.iter().any(|l| l.ends_with("flaky restarting")),
        "no delay after a stable run:\n{}",
        lines.join("\n")
    );
    assert!(!lines.iter().any(|l| l.contains("restarting in")), "{}", lines.join("\n"));
    assert_eq!(code, 1);
}

// --- dependencies and readiness ----------------------------------------------------------------

fn dependencies_wait_for_their_condition() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        r#"
[services.migrate]
command = "sleep 0.2; echo migrated"
oneshot = true

[services.api]
command = "sleep 1000"
depends_on = { migrate = "completed_successfully" }

[services.worker]
command = "sleep 1000"
depends_on = ["api"]
"#,
    );
    let mut up = Up::start(dir.path(), &[], &[]);
    up.wait_for("worker started");
    let (code, lines) = up.stop_with(Signal::TERM);
    assert!(index_of(&lines, "migrate completed") < index_of(&lines, "api started"));
    assert!(index_of(&lines, "api started") < index_of(&lines, "worker started"));
    assert_eq!(code, 128 + libc::SIGTERM);
}

fn every_readiness_kind_gates_dependents() {
    let dir = tempfile::tempdir().expect("tmp");
    let (tcp, http) = (free_port(), free_port());
    let flag = dir.path().join("flag");
    let toml = format!(
        r#"
[services.execd]
command = "sleep 0.3; touch {flag}; sleep 1000"
ready = {{ exec = "test -e {flag}", interval = "50ms" }}

[services.tcpd]
command = ["{me}"]
env = {{ FORKYARD_TEST_HELPER = "http", HELPER_PORT = "{tcp}" }}
ready = {{ tcp = "127.0.0.1:{tcp}", interval = "50ms" }}

[services.httpd]
command = ["{me}"]
env = {{ FORKYARD_TEST_HELPER = "http", HELPER_PORT = "{http}" }}
ready = {{ http = "http://127.0.0.1:{http}/health", interval = "50ms" }}

[services.logd]
command = "sleep 0.2; echo 'server is accepting connections'; sleep 1000"
ready = {{ log = "accepting conn" }}

[services.notifyd]
command = ["{me}"]
env = {{ FORKYARD_TEST_HELPER = "notify" }}
ready = {{ notify = true }}

[services.app]
command = "echo app up; sleep 1000"
depends_on = {{ execd = "ready", tcpd = "ready", httpd = "ready", logd = "ready", notifyd = "ready" }}
"#,
        flag = flag.display(),
        me = me()
    );
    write_config(dir.path(), &toml);
    let mut up = Up::start(dir.path(), &[], &[]);
    up.wait_for("app      | app up");
    let (_, lines) = up.stop_with(Signal::TERM);
    let app = index_of(&lines, "app started");
    for s in ["execd", "tcpd", "httpd", "logd", "notifyd"] {
        assert!(
            index_of(&lines, &format!("{s} is ready")) < app,
            "{s} must be ready before app starts:\n{}",
            lines.join("\n")
        );
    }
}

fn readiness_that_never_passes_keeps_dependents_down() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.db]\ncommand = \"sleep 1000\"\nready = { exec = \"echo x >> checks; false\", interval = \"20ms\" }\n\n[services.web]\ncommand = \"echo web; sleep 1000\"\ndepends_on = { db = \"ready\" }\n",
    );
    let mut up = Up::start(dir.path(), &[], &[]);
    up.wait_for("web waits for db (ready)");
    // Several checks fail meanwhile (each leaves a line in `checks`); web must still wait.
    let checks = dir.path().join("checks");
    support::wait_for("five failed readiness checks", support::PATIENCE, || {
        (std::fs::read_to_string(&checks).unwrap_or_default().lines().count() >= 5).then_some(())
    });
    let (_, lines) = up.stop_with(Signal::TERM);
    assert!(!lines.iter().any(|l| l.contains("web started")), "{}", lines.join("\n"));
}

fn a_failed_dependency_blocks_its_dependents() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.setup]\ncommand = \"exit 4\"\noneshot = true\nrestart = \"never\"\n\n[services.app]\ncommand = \"sleep 1000\"\ndepends_on = { setup = \"completed_successfully\" }\n",
    );
    let (code, lines) = Up::start(dir.path(), &[], &[]).finish();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("app will not start: setup ended without reaching it (completed successfully)")),
        "{}",
        lines.join("\n")
    );
    assert_eq!(code, 4);
}

fn liveness_failures_restart_the_service() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.app]\ncommand = \"sleep 1000\"\nliveness = { exec = \"false\", interval = \"50ms\", failure_threshold = 2 }\nmax_restarts = 5\n",
    );
    let mut up = Up::start(dir.path(), &[], &[]);
    let first = up.wait_for("app started");
    up.wait_for("app failed its liveness check (2/2)");
    up.wait_for("app restarting: its liveness check failed 2 times");
    let after = up.wait_for("app stopped");
    let restarted = up.wait_for_after(after, "app started");
    let (_, lines) = up.stop_with(Signal::TERM);
    assert_ne!(lines[first], lines[restarted], "the restart runs a new process (a new pid)");
}

// --- stopping ----------------------------------------------------------------------------------

fn tree_service(marker: &str) -> String {
    // A direct child, a grandchild that leaves the group (setsid), one that ignores SIGTERM,
    // and one that daemonizes (its parent exits, so it is re-parented).
    format!(
        "[services.tree]\ncommand = \"sleep 1000{marker}1 & setsid sleep 1000{marker}2 & (trap '' TERM; sleep 1000{marker}3) & (sh -c 'sleep 1000{marker}4 &' ) ; echo spawned; wait\"\nstop_timeout = \"300ms\"\n"
    )
}

fn stop_tree(envs: &[(&str, &str)], marker: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(dir.path(), &tree_service(marker));
    let mut up = Up::start(dir.path(), &[], envs);
    up.wait_for("tree     | spawned");
    let mut last = Vec::new();
    let found = support::wait_until(support::PATIENCE, || {
        last = alive_with(&format!("1000{marker}"));
        last.len() == 4
    });
    assert!(found, "expected four sleeps, saw {last:?}");
    let (code, lines) = up.stop_with(Signal::TERM);
    assert_eq!(code, 128 + libc::SIGTERM, "{}", lines.join("\n"));
    let left = alive_with(&format!("1000{marker}"));
    assert!(left.is_empty(), "left behind: {left:?}\n{}", lines.join("\n"));
}

fn stopping_kills_the_whole_tree_with_cgroups() {
    stop_tree(&[], "7");
}

fn stopping_kills_the_whole_tree_without_cgroups() {
    stop_tree(&[("FORKYARD_CGROUPS", "0")], "8");
}

fn shutdown_goes_in_reverse_dependency_order() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.db]\ncommand = \"sleep 1000\"\n\n[services.api]\ncommand = \"sleep 1000\"\ndepends_on = [\"db\"]\n\n[services.web]\ncommand = \"sleep 1000\"\ndepends_on = [\"api\"]\n",
    );
    let mut up = Up::start(dir.path(), &[], &[]);
    up.wait_for("web started");
    let (_, lines) = up.stop_with(Signal::INT);
    let (w, a, d) = (index_of(&lines, "web stopped"), index_of(&lines, "api stopped"), index_of(&lines, "db stopped"));
    assert!(
        w < index_of(&lines, "stopping api") && a < index_of(&lines, "stopping db") && w < a && a < d,
        "{}",
        lines.join("\n")
    );
}

// --- exit codes ----------------------------------------------------------------------------------

fn a_critical_service_ends_everything_with_its_status() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.main]\ncommand = \"sleep 0.2; exit 7\"\ncritical = true\n\n[services.side]\ncommand = \"sleep 1000\"\n",
    );
    let (code, lines) = Up::start(dir.path(), &[], &[]).finish();
    assert_eq!(code, 7, "{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("side stopped")));
    write_config(
        dir.path(),
        "[services.main]\ncommand = \"sleep 0.2; kill -KILL $$\"\ncritical = true\n\n[services.side]\ncommand = \"sleep 1000\"\n",
    );
    let (code, _) = Up::start(dir.path(), &[], &[]).finish();
    assert_eq!(code, 128 + libc::SIGKILL);
}

fn exit_on_first_and_all_ended() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.a]\ncommand = \"sleep 0.2; exit 5\"\nrestart = \"always\"\n\n[services.b]\ncommand = \"sleep 1000\"\n",
    );
    let (code, _) = Up::start(dir.path(), &["--exit-on-first"], &[]).finish();
    assert_eq!(code, 5);
    write_config(
        dir.path(),
        "[services.a]\ncommand = \"true\"\noneshot = true\n\n[services.b]\ncommand = \"exit 0\"\nrestart = \"never\"\n",
    );
    let (code, lines) = Up::start(dir.path(), &[], &[]).finish();
    assert_eq!(code, 0, "every service ended well: {}", lines.join("\n"));
}

// --- instances and users ------------------------------------------------------------------------

fn instances_are_numbered() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.w]\ncommand = \"echo instance $FORKYARD_INSTANCE\"\ninstances = 3\nrestart = \"never\"\n",
    );
    let (code, lines) = Up::start(dir.path(), &[], &[]).finish();
    assert_eq!(code, 0);
    for i in 1..=3 {
        assert!(lines.iter().any(|l| l == &format!("w.{i}      | instance {i}")), "{}", lines.join("\n"));
    }
}

fn services_run_as_their_user_and_group() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    write_config(
        dir.path(),
        "[services.who]\ncommand = \"echo ids $(id -u) $(id -g)\"\nuser = \"nobody\"\ngroup = \"nogroup\"\nrestart = \"never\"\n",
    );
    let (code, lines) = Up::start(dir.path(), &[], &[]).finish();
    assert_eq!(code, 0, "{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.ends_with("ids 65534 65534")), "{}", lines.join("\n"));
    write_config(dir.path(), "[services.who]\ncommand = \"true\"\nuser = \"no-such-user\"\nmax_restarts = 0\n");
    let (_, lines) = Up::start(dir.path(), &[], &[]).finish();
    assert!(
        lines.iter().any(|l| l.contains("who cannot start: user 'no-such-user' does not exist")),
        "{}",
        lines.join("\n")
    );
}

fn procfile_with_env_and_ports() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("Procfile"),
        "web: echo web $PORT $GREETING; sleep 1000\nworker: echo worker $PORT; sleep 0.3; exit 6\n",
    )
    .expect("write");
    std::fs::write(dir.path().join(".env"), "GREETING=\"hello there\"\n").expect("write");
    let (code, lines) = Up::start(dir.path(), &[], &[]).finish();
    assert!(lines.iter().any(|l| l.ends_with("web 5000 hello there")), "{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.ends_with("worker 5100")), "{}", lines.join("\n"));
    assert_eq!(code, 6, "as foreman: the first process to end ends everything, with its status");
}

fn check_prints_the_order_and_starts_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let marker = dir.path().join("ran");
    write_config(
        dir.path(),
        &format!(
            "[services.web]\ncommand = \"touch {m}\"\ndepends_on = {{ db = \"ready\" }}\n\n[services.db]\ncommand = \"touch {m}\"\n",
            m = marker.display()
        ),
    );
    let out = Command::new(forkyard_bin()).args(["up", "--check"]).current_dir(dir.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "forkyard.toml: 2 unit(s), in start order:\n  db\n  web  after db (ready)\n"
    );
    assert!(!marker.exists());
}

fn bad_configurations_exit_2_with_where_and_what() {
    let dir = tempfile::tempdir().expect("tmp");
    let marker = dir.path().join("ran");
    let m = marker.display();
    for (toml, expect) in [
        (
            format!("[services.web]\ncommand = \"touch {m}\"\nrestrat = \"always\"\n"),
            "forkyard.toml:3:1: service 'web': unknown field `restrat`",
        ),
        (
            format!("[services.web]\ncommand = \"touch {m}\"\ninstances = \"two\"\n"),
            "forkyard.toml:3:13: service 'web': ",
        ),
        (
            format!("[services.web]\ncommand = \"touch {m}\"\ndepends_on = [\"db\"]\n"),
            "forkyard.toml:3:14: service 'web': depends_on names 'db', but there is no such service",
        ),
        (
            format!(
                "[services.a]\ncommand = \"touch {m}\"\ndepends_on = [\"b\"]\n[services.b]\ncommand = \"x\"\ndepends_on = [\"a\"]\n"
            ),
            "dependency cycle: a -> b -> a",
        ),
        ("[services.web]\nrestart = \"always\"\n".to_string(), "service 'web': no command"),
        (format!("[services.web]\ncommand = \"touch {m}\"\nenv_file = \"missing.env\"\n"), "env_file"),
    ] {
        write_config(dir.path(), &toml);
        let out = Command::new(forkyard_bin()).args(["up"]).current_dir(dir.path()).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml}: {err}");
        assert!(err.contains(expect), "{toml}\nexpected {expect:?} in: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(!marker.exists(), "nothing may start on a bad configuration");
    }
}

fn a_missing_program_is_retried_then_failed_while_others_run() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.broken]\ncommand = [\"/no/such/program\"]\nbackoff_initial = \"10ms\"\nmax_restarts = 2\n\n[services.fine]\ncommand = \"echo fine; sleep 1000\"\n",
    );
    let mut up = Up::start(dir.path(), &[], &[]);
    up.wait_for("broken failed: restarted 2 times");
    up.wait_for("fine     | fine");
    let (_, lines) = up.stop_with(Signal::TERM);
    assert!(
        lines.iter().any(|l| l.contains("broken cannot start: /no/such/program: No such file or directory")),
        "{}",
        lines.join("\n")
    );
    assert!(lines.iter().any(|l| l.contains("fine stopped")), "the other service kept running until the stop");
}

// --- logs --------------------------------------------------------------------------------------

fn two_services_writing_a_megabyte_never_interleave() {
    let dir = tempfile::tempdir().expect("tmp");
    let lines_each = 16_384; // 16384 lines of 64 bytes = 1 MiB per service
    write_config(
        dir.path(),
        &format!(
            "[services.a]\ncommand = [\"{me}\"]\nenv = {{ FORKYARD_TEST_HELPER = \"spam\", SPAM_NAME = \"a\", SPAM_LINES = \"{n}\" }}\nrestart = \"never\"\n\n[services.b]\ncommand = [\"{me}\"]\nenv = {{ FORKYARD_TEST_HELPER = \"spam\", SPAM_NAME = \"b\", SPAM_LINES = \"{n}\" }}\nrestart = \"never\"\n",
            me = me(),
            n = lines_each
        ),
    );
    let out = Command::new(forkyard_bin()).args(["up", "--no-color"]).current_dir(dir.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut next_a, mut next_b) = (0, 0);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("a        | ") {
            assert_eq!(rest, spam_line("a", next_a), "a line was cut or mixed");
            next_a += 1;
        } else if let Some(rest) = line.strip_prefix("b        | ") {
            assert_eq!(rest, spam_line("b", next_b), "a line was cut or mixed");
            next_b += 1;
        } else {
            assert!(line.starts_with("forkyard | "), "a stray line: {line:?}");
        }
    }
    assert_eq!((next_a, next_b), (lines_each, lines_each), "every line, in order");
}

fn long_lines_and_unterminated_output() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.long]\ncommand = \"head -c 40000 /dev/zero | tr '\\\\0' x; echo; printf tail-without-newline\"\nrestart = \"never\"\n",
    );
    let out = Command::new(forkyard_bin()).args(["up", "--no-color"]).current_dir(dir.path()).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    let pieces: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("long     | ")).collect();
    assert_eq!(pieces.iter().map(|p| p.len()).collect::<Vec<_>>(), [16384, 16384, 7232, 20], "{pieces:?}");
    assert_eq!(pieces.last().copied(), Some("tail-without-newline"));
}

fn log_files_rotate() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.chatty]\ncommand = \"for i in $(seq 1 200); do echo line-$i-padding-padding; done\"\nrestart = \"never\"\nlog_file = \"logs/chatty.log\"\nlog_max_size = \"1KB\"\nlog_keep = 2\n",
    );
    let (code, _) = Up::start(dir.path(), &[], &[]).finish();
    assert_eq!(code, 0);
    let logs = dir.path().join("logs");
    let current = std::fs::read_to_string(logs.join("chatty.log")).expect("log");
    assert!(current.ends_with("line-200-padding-padding\n"), "{current}");
    assert!(current.len() <= 1024);
    assert!(logs.join("chatty.log.1").exists() && logs.join("chatty.log.2").exists());
    assert!(!logs.join("chatty.log.3").exists(), "only log_keep rotated files");
}

// --- PID 1 -------------------------------------------------------------------------------------

fn as_pid1_no_zombie_stays() {
    let dir = tempfile::tempdir().expect("tmp");
    // A service that orphans 50 children that exit at once; as PID 1, up must collect them.
    write_config(
        dir.path(),
        "[services.orphaner]\ncommand = \"for i in $(seq 1 50); do (true &) ; done; echo orphaned; sleep 1000\"\n",
    );
    let mut child = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", forkyard_bin(), "up", "--no-color"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) is needed, and root");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains("orphaned") {
        line.clear();
        assert!(out.read_line(&mut line).expect("read") > 0, "up ended early");
    }
    let unshare = child.id();
    let up = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).expect("children");
    let up: i32 = up.split_whitespace().next().and_then(|p| p.parse().ok()).expect("up's pid");
    support::wait_for("up (PID 1) to collect the orphans", support::PATIENCE, || (zombies_of(up) == 0).then_some(()));
    Signal::TERM.send(Pid::new(up).expect("pid")).expect("signal");
    let status = support::wait_for("up to exit", support::PATIENCE, || child.try_wait().expect("try_wait"));
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    let _ = PathBuf::new();
}

// --- stopping at once, timestamps, colour ---------------------------------------------------

fn a_second_interrupt_kills_at_once() {
    let dir = tempfile::tempdir().expect("tmp");
    // It ignores the stop signal and would be given an hour: only the second Ctrl-C ends it
    // within the test's patience.
    write_config(
        dir.path(),
        "[services.stubborn]\ncommand = \"trap '' TERM INT; echo up; while :; do sleep 1; done\"\nstop_timeout = \"1h\"\n",
    );
    let mut up = Up::start(dir.path(), &[], &[]);
    up.wait_for("stubborn | up");
    Signal::INT.send(up.pid()).expect("first SIGINT");
    let first = up.wait_for("stopping stubborn (SIGTERM, then SIGKILL after 3600s)");
    // A second SIGINT counts only a second or more after the first (one delivered twice at
    // once is one request): press Ctrl-C now and then until it is taken.
    let mut taken = false;
    for _ in 0..100 {
        Signal::INT.send(up.pid()).expect("another SIGINT");
        if let Ok(line) = up.rx.recv_timeout(Duration::from_millis(300)) {
            up.seen.push(line);
        }
        if up.seen.iter().skip(first).any(|l| l.contains("SIGINT received again: killing every service now")) {
            taken = true;
            break;
        }
    }
    assert!(taken, "{}", up.seen.join("\n"));
    let (code, lines) = up.finish();
    assert!(lines.iter().any(|l| l.contains("stubborn stopped (killed by SIGKILL)")), "{}", lines.join("\n"));
    assert_eq!(code, 128 + libc::SIGINT);
}

fn an_interrupt_delivered_twice_at_once_is_one_request() {
    // GNU timeout sends its signal to the command and then to its own process group, which
    // the command is in: two SIGINTs within microseconds. That is a graceful stop, not a
    // forced one: the service gets its stop signal and the time to act on it.
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.graceful]\ncommand = \"trap 'echo cleaning up; sleep 0.3; echo done; exit 0' TERM; echo up; while :; do sleep 0.1; done\"\n",
    );
    let out = Command::new("timeout")
        .args(["-s", "INT", "1.5", forkyard_bin(), "up", "--no-color"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("timeout (coreutils) runs forkyard up");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("graceful | up"), "{text}");
    assert!(!text.contains("received again"), "{text}");
    assert!(text.contains("graceful | done") && text.contains("graceful stopped (exited with status 0)"), "{text}");
}

fn timestamps_start_every_line() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(dir.path(), "[services.once]\ncommand = \"echo hello\"\noneshot = true\n");
    let (code, lines) = Up::start(dir.path(), &["--timestamps"], &[]).finish();
    assert_eq!(code, 0);
    let stamp = regex_lite::Regex::new(r"^\d\d:\d\d:\d\d\.\d\d\d (forkyard|once    ) \| ").expect("regex");
    assert!(lines.len() >= 3, "{}", lines.join("\n"));
    for line in &lines {
        assert!(stamp.is_match(line), "a line without its time: {line:?}");
    }
    assert!(lines.iter().any(|l| l.ends_with("once     | hello")), "{}", lines.join("\n"));
}

/// Runs `up` with its output on a pseudo-terminal; returns all it wrote.
fn on_a_terminal(dir: &Path, envs: &[(&str, &str)]) -> String {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty fills the two descriptors; the name, termios and size may be null.
    let ok =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(ok, 0, "openpty");
    // SAFETY: both descriptors are fresh and ours.
    let (master, slave) = unsafe {
        use std::os::fd::FromRawFd;
        (std::fs::File::from_raw_fd(master), std::os::fd::OwnedFd::from_raw_fd(slave))
    };
    let mut cmd = Command::new(forkyard_bin());
    cmd.arg("up").current_dir(dir).stdin(Stdio::null()).stdout(slave.try_clone().expect("dup")).stderr(slave);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn forkyard up");
    drop(cmd);
    let status = support::wait_for("up to exit", support::PATIENCE, || child.try_wait().expect("try_wait"));
    assert_eq!(status.code(), Some(0));
    // Everything written is in the terminal's buffer; with the last slave closed, reading
    // ends in EIO once it is drained.
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut reader = master;
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn colour_on_a_terminal_unless_no_color() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(dir.path(), "[services.once]\ncommand = \"echo hello\"\noneshot = true\n");
    let coloured = on_a_terminal(dir.path(), &[]);
    assert!(coloured.contains("\x1b[") && coloured.contains("hello"), "{coloured:?}");
    let plain = on_a_terminal(dir.path(), &[("NO_COLOR", "1")]);
    assert!(!plain.contains('\x1b') && plain.contains("once     | hello"), "{plain:?}");
}

fn named_services_run_with_their_dependencies_only() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.db]\ncommand = \"echo db ran\"\noneshot = true\n\n[services.web]\ncommand = \"echo web ran\"\noneshot = true\ndepends_on = { db = \"completed_successfully\" }\n\n[services.other]\ncommand = \"echo other ran\"\noneshot = true\n",
    );
    let (code, lines) = Up::start(dir.path(), &["web"], &[]).finish();
    assert_eq!(code, 0, "{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.ends_with("| db ran")) && lines.iter().any(|l| l.ends_with("| web ran")));
    assert!(!lines.iter().any(|l| l.contains("other")), "{}", lines.join("\n"));
    let (code, lines) = Up::start(dir.path(), &["nope"], &[]).finish();
    assert_eq!(code, 2);
    assert!(lines.iter().any(|l| l.contains("no service named 'nope'")), "{}", lines.join("\n"));
}
