//! `forkyard up` under faults and hostile input, end to end: starts that keep failing,
//! stray signals, a flood of output, a standard output nobody reads, escaping descendants,
//! hanging checks, a killed `up`, planted links, other users, and bad configurations.
//!
//! Each test looks at the system while `up` still runs (its final clean-up would hide a leak),
//! waits for events with generous bounds and asserts no duration. Each was seen to fail with
//! the feature it names broken on purpose (which break, for which test: this file's history).
//!
//! Helper services (an odd-sized writer, a NOTIFY_SOCKET sender) are this test binary itself,
//! re-executed with `FORKYARD_TEST_HELPER`.

#[path = "../../forkyard/tests/support/mod.rs"]
mod support;
mod up_support;

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use forkyard::{Pid, Signal};
use up_support::{
    Up, alive, children_named, forkyard_bin, free_port, me, sleeps_with, status_kb, write_config, zombies_of,
};

fn main() {
    if let Ok(helper) = std::env::var("FORKYARD_TEST_HELPER") {
        std::process::exit(helper_main(&helper));
    }
    support::run(&[
        (
            "a_start_in_a_missing_directory_retried_at_once_crashes_nothing",
            a_start_in_a_missing_directory_retried_at_once_crashes_nothing,
        ),
        ("a_missing_program_retried_at_once_crashes_nothing", a_missing_program_retried_at_once_crashes_nothing),
        ("ordinary_signals_are_logged_and_kill_nothing", ordinary_signals_are_logged_and_kill_nothing),
        ("sigusr1_reopens_log_files_moved_away", sigusr1_reopens_log_files_moved_away),
        ("a_yes_flood_keeps_up_small_and_obedient", a_yes_flood_keeps_up_small_and_obedient),
        ("a_stalled_stdout_stops_neither_restarts_nor_sigterm", a_stalled_stdout_stops_neither_restarts_nor_sigterm),
        ("no_line_is_lost_or_cut_under_a_stalled_reader", no_line_is_lost_or_cut_under_a_stalled_reader),
        (
            "a_liveness_restart_kills_the_old_tree_while_up_runs_with_cgroups",
            a_liveness_restart_kills_the_old_tree_while_up_runs_with_cgroups,
        ),
        (
            "a_liveness_restart_kills_the_old_tree_while_up_runs_without_cgroups",
            a_liveness_restart_kills_the_old_tree_while_up_runs_without_cgroups,
        ),
        (
            "a_main_process_that_exits_leaves_no_tree_behind_with_cgroups",
            a_main_process_that_exits_leaves_no_tree_behind_with_cgroups,
        ),
        (
            "a_main_process_that_exits_leaves_no_tree_behind_without_cgroups",
            a_main_process_that_exits_leaves_no_tree_behind_without_cgroups,
        ),
        ("a_service_killed_with_sigkill_is_restarted_anew", a_service_killed_with_sigkill_is_restarted_anew),
        ("killing_up_with_sigkill_stops_its_services", killing_up_with_sigkill_stops_its_services),
        ("the_next_up_kills_what_a_killed_up_left", the_next_up_kills_what_a_killed_up_left),
        (
            "the_next_up_kills_what_a_killed_up_left_while_another_up_sweeps",
            the_next_up_kills_what_a_killed_up_left_while_another_up_sweeps,
        ),
        ("hanging_exec_checks_are_killed_whole_with_cgroups", hanging_exec_checks_are_killed_whole_with_cgroups),
        ("hanging_exec_checks_are_killed_whole_without_cgroups", hanging_exec_checks_are_killed_whole_without_cgroups),
        ("a_log_file_that_is_a_symbolic_link_is_refused", a_log_file_that_is_a_symbolic_link_is_refused),
        ("notify_readiness_works_for_a_service_run_as_nobody", notify_readiness_works_for_a_service_run_as_nobody),
        ("a_numeric_user_gets_its_passwd_primary_group", a_numeric_user_gets_its_passwd_primary_group),
        ("starting_a_service_as_another_user_never_freezes_up", starting_a_service_as_another_user_never_freezes_up),
        (
            "a_full_line_whose_newline_comes_later_gives_no_empty_line",
            a_full_line_whose_newline_comes_later_gives_no_empty_line,
        ),
        ("http_checks_make_python_print_no_traceback", http_checks_make_python_print_no_traceback),
        ("a_readiness_deadline_fails_the_service_and_says_why", a_readiness_deadline_fails_the_service_and_says_why),
        (
            "a_service_failed_by_its_deadline_never_makes_up_exit_0",
            a_service_failed_by_its_deadline_never_makes_up_exit_0,
        ),
        ("dotenv_and_the_env_table_reach_the_service", dotenv_and_the_env_table_reach_the_service),
        ("check_verifies_programs_directories_and_users", check_verifies_programs_directories_and_users),
        ("a_service_that_never_started_exits_127_126_or_1", a_service_that_never_started_exits_127_126_or_1),
        ("exit_on_first_is_not_ended_by_a_completed_oneshot", exit_on_first_is_not_ended_by_a_completed_oneshot),
        (
            "a_procfile_port_past_65535_and_bad_env_keys_are_refused",
            a_procfile_port_past_65535_and_bad_env_keys_are_refused,
        ),
        (
            "as_pid1_a_killed_service_is_restarted_and_no_zombie_stays",
            as_pid1_a_killed_service_is_restarted_and_no_zombie_stays,
        ),
    ])
}

// --- helpers run as services --------------------------------------------------------------

fn helper_main(which: &str) -> i32 {
    match which {
        // Writes $CHUNK_LINES numbered lines of odd lengths, in write(2)s of $CHUNK_SIZE bytes
        // that do not follow the lines.
        "chunks" => {
            let n: usize = std::env::var("CHUNK_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
            let size: usize = std::env::var("CHUNK_SIZE").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
            let mut all = Vec::new();
            for i in 0..n {
                all.extend_from_slice(chunk_line(i).as_bytes());
                all.push(b'\n');
            }
            for piece in all.chunks(size) {
                let mut rest = piece;
                while !rest.is_empty() {
                    // SAFETY: writes from a valid buffer of that length to standard output.
                    let n = unsafe { libc::write(1, rest.as_ptr().cast(), rest.len()) };
                    if n <= 0 {
                        return 3;
                    }
                    rest = &rest[n as usize..];
                }
            }
            0
        }
        // Says where its NOTIFY_SOCKET is and who it runs as, sends READY=1, then sleeps.
        "notify" => {
            let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return 3 };
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc::getuid() };
            println!("socket={} uid={uid}", Path::new(&path).display());
            let sock = std::os::unix::net::UnixDatagram::unbound().expect("socket");
            if let Err(e) = sock.send_to(b"READY=1\n", &path) {
                println!("cannot send: {e}");
                return 4;
            }
            std::thread::sleep(Duration::from_secs(1000));
            0
        }
        _ => 100,
    }
}

/// Line `i` of the "chunks" helper: its number, then 10 to 309 letters.
fn chunk_line(i: usize) -> String {
    let len = 10 + (i * 7919) % 300;
    let body: String = (0..len).map(|k| char::from(b'a' + ((i + k) % 26) as u8)).collect();
    format!("n{i:06}-{body}")
}

// --- tools --------------------------------------------------------------------------------

/// A `forkyard up` whose standard output is `stdout` (the test reads it, or not, as it
/// pleases); its standard error goes to a file in `dir`.
fn spawn_up(dir: &Path, args: &[&str], stdout: Stdio) -> Child {
    let stderr = std::fs::File::create(dir.join("up.stderr")).expect("stderr file");
    let mut cmd = Command::new(forkyard_bin());
    cmd.arg("up").args(args).arg("--no-color").current_dir(dir).stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let child = cmd.spawn().expect("spawn forkyard up");
    // Our copies of its descriptors go with the command (a pipe's write end must close).
    drop(cmd);
    child
}

fn pid_of(child: &Child) -> Pid {
    Pid::new(child.id() as i32).expect("pid")
}

/// A pipe (read end, write end), both close-on-exec.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2");
    // SAFETY: both are fresh and ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Bytes waiting in a pipe (FIONREAD on its read end).
fn queued(fd: &impl AsRawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD");
    n as usize
}

/// Waits until the pipe that `up` writes to (its read end `fd`) fills up: nothing reads it.
/// A pipe whose writer is blocked is seldom full to the byte (its pages are filled by
/// writes of any size), so "full" is most of its size here; whether up then stops reading
/// its services is for the caller to see ([`stops_writing`]).
fn wait_full(fd: &impl AsRawFd, up: Pid) {
    // SAFETY: F_GETPIPE_SZ takes no argument.
    let size = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert!(size > 0, "F_GETPIPE_SZ");
    let full = support::wait_until(support::PATIENCE, || queued(fd) >= size as usize / 2);
    assert!(
        full,
        "up's standard output never filled: {} of {size} bytes; up {:?}, its children {:?}",
        queued(fd),
        support::state(up),
        forkyard::procs::Snapshot::take()
            .map(|s| s.children(up).map(|p| format!("{} {} {}", p.pid, p.state, p.command())).collect::<Vec<_>>())
    );
}

/// Bytes `pid` has written so far (`wchar` of /proc/PID/io), `None` once it is gone.
fn written(pid: Pid) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("wchar: ")).and_then(|v| v.trim().parse().ok())
}

/// Waits until `pid` writes no more: its output is not being read (it is blocked on a full
/// pipe). Says whether that happened within the patience.
fn stops_writing(pid: Pid) -> bool {
    let mut last = None;
    support::wait_until(support::PATIENCE, || {
        std::thread::sleep(Duration::from_millis(200));
        let now = written(pid);
        let still = now.is_some() && now == last;
        last = now;
        still
    })
}

/// The one living child of `parent` named `comm`, waiting for it to be there.
fn only_child_named(parent: Pid, comm: &str) -> Pid {
    support::wait_for(&format!("a {comm} child of {parent}"), support::PATIENCE, || {
        let living: Vec<Pid> = children_named(parent, comm).into_iter().filter(|(_, z)| !z).map(|(p, _)| p).collect();
        (living.len() == 1).then(|| living[0])
    })
}

/// Waits for `n` lines containing `text` (counted from the start).
fn wait_count(up: &mut Up, text: &str, n: usize) {
    let mut from = 0;
    for _ in 0..n {
        from = up.wait_for_after(from, text) + 1;
    }
}

/// Whether `up` (seen through its first lines) stops trees with cgroups here.
fn with_cgroups(up: &mut Up) -> bool {
    let i = up.wait_for("stopping trees with");
    up.seen[i].contains("stopping trees with cgroups")
}

fn no_cgroups() -> [(&'static str, &'static str); 1] {
    [("FORKYARD_CGROUPS", "0")]
}

/// Makes `dir` readable by other users (services that run as `nobody`).
fn open_to_all(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A copy of this test binary that any user can run (where the build directory is not
/// reachable by them), for helpers run as another user.
fn helper_for_all(dir: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let reachable = exe.ancestors().skip(1).all(|d| d.metadata().is_ok_and(|m| m.mode() & 0o001 != 0))
        && exe.metadata().is_ok_and(|m| m.mode() & 0o005 == 0o005);
    if reachable {
        return exe;
    }
    let copy = dir.join("helper");
    std::fs::copy(&exe, &copy).expect("copy the test binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    copy
}

// --- starts that keep failing ---------------------------------------------------------------

/// A unit whose every start fails at once, retried with no backoff and an unbounded budget,
/// beside a healthy one: `up` must neither crash nor stop supervising the other.
fn start_keeps_failing(bad: &str, marker: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        &format!(
            "[services.bad]\n{bad}\nstable_after = \"0\"\nrestart_window = \"0\"\nbackoff_initial = \"0\"\nbackoff_max = \"0\"\nmax_restarts = 10000\n\n[services.good]\ncommand = [\"sleep\", \"1000{marker}\"]\n"
        ),
    );
    let mut up = Up::start(dir.path(), &[], &[]);
    let (_, good) = up.started_after(0, "good");
    wait_count(&mut up, "bad cannot start: ", 8);
    assert!(up.is_running(), "up died:\n{}", up.seen.join("\n"));
    assert!(alive(good), "the healthy service is gone:\n{}", up.seen.join("\n"));
    assert_eq!(up.count("good started"), 1, "the healthy service was not disturbed:\n{}", up.seen.join("\n"));
    let (code, lines) = up.stop_with(Signal::TERM);
    assert_eq!(code, 128 + libc::SIGTERM, "{}", lines.join("\n"));
}

fn a_start_in_a_missing_directory_retried_at_once_crashes_nothing() {
    start_keeps_failing("command = [\"true\"]\ncwd = \"/nonexistent-dir\"", "511");
}

fn a_missing_program_retried_at_once_crashes_nothing() {
    start_keeps_failing("command = [\"/no/such/program\"]", "512");
}

// --- signals ----------------------------------------------------------------------------------

fn ordinary_signals_are_logged_and_kill_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(dir.path(), "[services.svc]\ncommand = [\"sleep\", \"1000521\"]\n");
    let mut up = Up::start(dir.path(), &[], &[]);
    let (_, svc) = up.started_after(0, "svc");
    let rt = Signal::new(libc::SIGRTMIN() + 3).expect("a real-time signal");
    for (signal, said) in [
        (Signal::USR2, "SIGUSR2 received: ignored"),
        // A reload of an unchanged file: nothing restarted.
        (Signal::HUP, "configuration reloaded: added none; restarting with new settings none; removed none"),
        (Signal::ALRM, "SIGALRM received: ignored"),
        (Signal::PIPE, "SIGPIPE received: ignored"),
        (Signal::PWR, "SIGPWR received: ignored"),
        (rt, "SIGRTMIN+3 received: ignored"),
    ] {
        let from = up.seen.len();
        signal.send(up.pid()).expect("signal up");
        up.wait_for_after(from, said);
        assert!(up.is_running(), "{signal} ended up:\n{}", up.seen.join("\n"));
    }
    assert!(alive(svc), "the service is gone:\n{}", up.seen.join("\n"));
    assert_eq!(up.count("svc started"), 1, "the service was not restarted:\n{}", up.seen.join("\n"));
    let (code, lines) = up.stop_with(Signal::TERM);
    assert_eq!(code, 128 + libc::SIGTERM, "{}", lines.join("\n"));
}

/// The numbers of the `tick-N` lines of a log file.
fn ticks(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.strip_prefix("tick-").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("a bad line {l:?}")))
        .collect()
}

fn sigusr1_reopens_log_files_moved_away() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.ticker]\ncommand = \"i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.05; done\"\nlog_file = \"ticker.log\"\n",
    );
    let (log, moved) = (dir.path().join("ticker.log"), dir.path().join("ticker.log.1"));
    let mut up = Up::start(dir.path(), &[], &[]);
    support::wait_for("lines in the log file", support::PATIENCE, || (ticks(&log).len() >= 3).then_some(()));
    // As logrotate does: move the file, then tell the writer.
    std::fs::rename(&log, &moved).expect("rename");
    let from = up.seen.len();
    Signal::USR1.send(up.pid()).expect("SIGUSR1");
    up.wait_for_after(from, "SIGUSR1 received: reopening the log files");
    support::wait_for("lines in a new log file", support::PATIENCE, || (ticks(&log).len() >= 3).then_some(()));
    let old = ticks(&moved);
    let first_new = ticks(&log)[0];
    support::wait_for("more lines in the new log file", support::PATIENCE, || (ticks(&log).len() >= 6).then_some(()));
    assert_eq!(ticks(&moved), old, "the moved file still grows");
    assert_eq!(old.last().map(|n| n + 1), Some(first_new), "a line was lost or doubled at the switch");
    assert!(up.is_running());
    let (code, lines) = up.stop_with(Signal::TERM);
    assert_eq!(code, 128 + libc::SIGTERM, "{}", lines.join("\n"));
}

// --- floods and stalls --------------------------------------------------------------------------

const RSS_LIMIT_KB: u64 = 32 * 1024;
const YES: &str = "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy";

/// Checks the complete lines in `data` (up to its last newline) and returns the rest: each is
/// `yes`'s line or one of forkyard's own.
fn check_yes_lines(data: &[u8]) -> usize {
    let end = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let want = format!("yes      | {YES}");
    for line in data[..end].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = String::from_utf8_lossy(line);
        assert!(line == want || line.starts_with("forkyard | "), "a cut or mixed line: {line:?}");
    }
    end
}

fn a_yes_flood_keeps_up_small_and_obedient() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(dir.path(), &format!("[services.yes]\ncommand = [\"yes\", \"{YES}\"]\n"));
    let mut child = spawn_up(dir.path(), &[], Stdio::piped());
    let up = pid_of(&child);
    let mut out = child.stdout.take().expect("stdout");
    let (mut total, mut next_sample, mut samples) = (0usize, 0usize, Vec::new());
    // Read as a terminal would, steadily but slower than `yes` writes: what up cannot pass
    // on must wait in the service's pipe, not in up's memory.
    let mut buf = vec![0u8; 16 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    let mut signalled = false;
    let mut hwm = 0;
    loop {
        let n = out.read(&mut buf).expect("read up's output");
        if n == 0 {
            break;
        }
        total += n;
        if !signalled {
            std::thread::sleep(Duration::from_millis(1));
        }
        partial.extend_from_slice(&buf[..n]);
        let used = check_yes_lines(&partial);
        partial.drain(..used);
        if !signalled && total >= next_sample {
            samples.push(status_kb(up, "VmRSS").expect("up's VmRSS"));
            next_sample += 1 << 20;
        }
        if !signalled && total >= 16 << 20 {
            hwm = status_kb(up, "VmHWM").expect("up's VmHWM");
            // While it floods: SIGTERM must still be acted on.
            Signal::TERM.send(up).expect("SIGTERM");
            signalled = true;
        }
    }
    let status = support::wait_for("up to exit", support::PATIENCE, || child.try_wait().expect("try_wait"));
    let text = String::from_utf8_lossy(&partial);
    assert!(signalled, "up ended before the flood was read ({total} bytes): {status} {text}");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{text}");
    eprintln!("up's RSS under the flood (kB): {samples:?}; peak {hwm}");
    assert!(samples.len() >= 10, "{samples:?}");
    assert!(samples.iter().all(|&kb| kb < RSS_LIMIT_KB), "up's RSS (kB) under the flood: {samples:?}");
    assert!(hwm < RSS_LIMIT_KB, "up's peak RSS: {hwm} kB (samples {samples:?})");
}

fn a_stalled_stdout_stops_neither_restarts_nor_sigterm() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(dir.path(), &format!("[services.yes]\ncommand = [\"yes\", \"{YES}\"]\n"));
    // `forkyard up | sleep 1000`: a pipe that nobody reads.
    let (read_end, write_end) = pipe();
    let mut child = spawn_up(dir.path(), &[], Stdio::from(write_end));
    let up = pid_of(&child);
    wait_full(&read_end, up);
    let first = only_child_named(up, "yes");
    // Once up holds as much as it will, it stops reading: the service blocks on its pipe.
    assert!(stops_writing(first), "up never stopped reading the service (RSS {:?} kB)", status_kb(up, "VmRSS"));
    let rss = status_kb(up, "VmRSS").expect("up's VmRSS");
    assert!(rss < RSS_LIMIT_KB, "up holds {rss} kB while its output is stalled");
    Signal::KILL.send(first).expect("kill -9 the service");
    // Supervision goes on: the dead process is collected and a new one started.
    let second = support::wait_for("a new yes", support::PATIENCE, || {
        let now = children_named(up, "yes");
        let gone = !now.iter().any(|(p, _)| *p == first);
        now.iter().find(|(p, zombie)| *p != first && !zombie).filter(|_| gone).map(|(p, _)| *p)
    });
    assert_ne!(second, first);
    assert_eq!(zombies_of(up.as_raw()), 0, "a zombie child of up stays");
    // SIGTERM is obeyed though nobody reads what up writes.
    Signal::TERM.send(up).expect("SIGTERM");
    let status = support::wait_for("up to exit", support::PATIENCE, || child.try_wait().expect("try_wait"));
    let mut data = Vec::new();
    std::fs::File::from(read_end).read_to_end(&mut data).expect("drain");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{}", String::from_utf8_lossy(&data));
    check_yes_lines(&data);
}

fn no_line_is_lost_or_cut_under_a_stalled_reader() {
    let dir = tempfile::tempdir().expect("tmp");
    let lines = 20_000; // about 3.4 MB: more than every buffer on the way
    write_config(
        dir.path(),
        &format!(
            "[services.chunky]\ncommand = [\"{me}\"]\nenv = {{ FORKYARD_TEST_HELPER = \"chunks\", CHUNK_LINES = \"{lines}\", CHUNK_SIZE = \"1000\" }}\nrestart = \"never\"\n",
            me = me()
        ),
    );
    let mut child = spawn_up(dir.path(), &[], Stdio::piped());
    let up = pid_of(&child);
    let mut out = child.stdout.take().expect("stdout");
    // Not reading: up's output fills, up stops reading the service, the service blocks.
    wait_full(&out, up);
    let service = support::wait_for("the service", support::PATIENCE, || {
        let snap = forkyard::procs::Snapshot::take().expect("snapshot");
        snap.children(up).find(|p| !p.is_zombie()).map(|p| p.pid)
    });
    assert!(stops_writing(service), "the service never blocked on its output");
    // Now read it all.
    let mut data = Vec::new();
    out.read_to_end(&mut data).expect("read");
    let status = support::wait_for("up to exit", support::PATIENCE, || child.try_wait().expect("try_wait"));
    let text = String::from_utf8_lossy(&data);
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        text.lines().filter(|l| l.starts_with("forkyard")).collect::<Vec<_>>().join("\n")
    );
    let mut next = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("chunky   | ") {
            assert_eq!(rest, chunk_line(next), "line {next} lost, cut or out of order");
            next += 1;
        } else {
            assert!(line.starts_with("forkyard | "), "a stray line: {line:?}");
        }
    }
    assert_eq!(next, lines, "every line, once");
}

// --- trees --------------------------------------------------------------------------------------

/// A service with a direct child, a grandchild that leaves the group (setsid), one that
/// ignores SIGTERM and one that daemonizes (its parent exits, so it is re-parented to up),
/// each a `sleep 1000<marker><n>`; then `tail` (the rest of the shell command).
fn tree_command(marker: &str, tail: &str) -> String {
    format!(
        "sleep 1000{marker}1 & setsid sleep 1000{marker}2 & (trap '' TERM; sleep 1000{marker}3) & (sh -c 'sleep 1000{marker}4 &') ; echo spawned; {tail}"
    )
}

fn four_sleeps(marker: &str) -> HashSet<Pid> {
    support::wait_for(&format!("the four sleeps of {marker}"), support::PATIENCE, || {
        let now = sleeps_with(&format!("1000{marker}"));
        (now.len() == 4).then(|| now.into_iter().map(|(p, _)| p).collect())
    })
}

/// Waits until none of `old` is alive and four new sleeps run, while up runs.
fn old_tree_gone_new_one_up(up: &Up, marker: &str, old: &HashSet<Pid>) {
    let mut last = Vec::new();
    let replaced = support::wait_until(support::PATIENCE, || {
        last = sleeps_with(&format!("1000{marker}"));
        let olds = last.iter().filter(|(p, _)| old.contains(p)).count();
        let news = last.iter().filter(|(p, _)| !old.contains(p)).count();
        olds == 0 && news == 4
    });
    let running = up.is_running();
    assert!(
        replaced,
        "the first run's tree was not replaced (old pids {old:?}), now: {last:?}\n{}",
        up.seen.join("\n")
    );
    assert!(running, "up had exited: its final clean-up does not count");
}

fn liveness_restart_tree(envs: &[(&str, &str)], marker: &str, cgroups: bool) {
    let dir = tempfile::tempdir().expect("tmp");
    let flag = dir.path().join("flag");
    write_config(
        dir.path(),
        &format!(
            "[services.tree]\ncommand = \"{cmd}\"\nliveness = {{ exec = \"test ! -e {flag}\", interval = \"100ms\", failure_threshold = 1 }}\nstop_timeout = \"300ms\"\n",
            cmd = tree_command(marker, "wait"),
            flag = flag.display()
        ),
    );
    let mut up = Up::start(dir.path(), &[], envs);
    assert_eq!(with_cgroups(&mut up), cgroups, "{}", up.seen.join("\n"));
    up.wait_for("tree     | spawned");
    let old = four_sleeps(marker);
    std::fs::write(&flag, "").expect("touch flag");
    up.wait_for("tree restarting: its liveness check failed");
    std::fs::remove_file(&flag).expect("rm flag");
    old_tree_gone_new_one_up(&up, marker, &old);
    let (code, lines) = up.stop_with(Signal::TERM);
    assert_eq!(code, 128 + libc::SIGTERM, "{}", lines.join("\n"));
}

fn exited_main_tree(envs: &[(&str, &str)], marker: &str, cgroups: bool) {
    let dir = tempfile::tempdir().expect("tmp");
    let flag = dir.path().join("flag");
    let tail = format!("while [ ! -e {f} ]; do sleep 0.05; done; rm -f {f}; exit 0", f = flag.display());
    write_config(
        dir.path(),
        &format!("[services.tree]\ncommand = \"{}\"\nrestart = \"always\"\n", tree_command(marker, &tail)),
    );
    let mut up = Up::start(dir.path(), &[], envs);
    assert_eq!(with_cgroups(&mut up), cgroups, "{}", up.seen.join("\n"));
    up.wait_for("tree     | spawned");
    let old = four_sleeps(marker);
    std::fs::write(&flag, "").expect("touch flag");
    up.wait_for("tree exited with status 0");
    old_tree_gone_new_one_up(&up, marker, &old);
    let (code, lines) = up.stop_with(Signal::TERM);
    assert_eq!(code, 128 + libc::SIGTERM, "{}", lines.join("\n"));
}

/// Skips (with a note) where this host gives forkyard no cgroups.
fn cgroups_here() -> bool {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(dir.path(), "[services.probe]\ncommand = \"true\"\noneshot = true\n");
    let mut up = Up::start(dir.path(), &[], &[]);
    let yes = with_cgroups(&mut up);
    up.finish();
    if !yes {
        eprintln!("note: skipped, forkyard gets no cgroups on this host");
    }
    yes
}

fn a_liveness_restart_kills_the_old_tree_while_up_runs_with_cgroups() {
    if cgroups_here() {
        liveness_restart_tree(&[], "531", true);
    }
}

fn a_liveness_restart_kills_the_old_tree_while_up_runs_without_cgroups() {
    liveness_restart_tree(&no_cgroups(), "532", false);
}

fn a_main_process_that_exits_leaves_no_tree_behind_with_cgroups() {
    if cgroups_here() {
        exited_main_tree(&[], "533", true);
    }
}

fn a_main_process_that_exits_leaves_no_tree_behind_without_cgroups() {
    exited_main_tree(&no_cgroups(), "534", false);
}

// --- kill -9 --------------------------------------------------------------------------------------

fn a_service_killed_with_sigkill_is_restarted_anew() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(dir.path(), "[services.svc]\ncommand = [\"sleep\", \"1000541\"]\n");
    let mut up = Up::start(dir.path(), &[], &[]);
    let (at, first) = up.started_after(0, "svc");
    Signal::KILL.send(first).expect("kill -9");
    up.wait_for_after(at, "svc killed by SIGKILL");
    let (_, second) = up.started_after(at + 1, "svc");
    assert_ne!(first, second);
    assert!(alive(second), "the new process does not run");
    assert_eq!(sleeps_with("1000541").len(), 1, "one copy");
    assert!(support::state(first).is_none(), "the killed process was not collected");
    let (code, lines) = up.stop_with(Signal::TERM);
    assert_eq!(code, 128 + libc::SIGTERM, "{}", lines.join("\n"));
}

/// Kills `up` with SIGKILL and collects it.
fn kill_up(up: &mut Up) {
    Signal::KILL.send(up.pid()).expect("kill -9 up");
    let status = up.child.wait().expect("wait");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
}

/// The stale cgroup subtree that `pid` is in, opened and locked as another `up`'s sweep of it
/// locks it (shared: the lock a live `up` holds is exclusive).
fn sweeping(pid: Pid) -> std::fs::File {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("the sleep's cgroup");
    let path = text.lines().find_map(|l| l.strip_prefix("0::")).expect("a cgroup2 line");
    // `<our cgroup>/forkyard-<key>-<pid>/<unit>`: the subtree of an `up` we started is in ours.
    let subtree = Path::new(path).parent().and_then(Path::file_name).expect("the subtree's name");
    let root = forkyard::procs::own_cgroup().expect("our cgroup").join(subtree);
    let file = std::fs::File::open(&root).expect("open the stale subtree");
    // SAFETY: flock on a descriptor we own.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    assert_eq!(locked, 0, "lock {}: {}", root.display(), std::io::Error::last_os_error());
    file
}

/// Waits until `pid` (now an orphan adopted by the test process) has ended, and collects it.
fn wait_adopted_end(pid: Pid, what: &str) {
    support::wait_for(what, support::PATIENCE, || (!alive(pid)).then_some(()));
    if support::state(pid).is_some() {
        forkyard::Child::from_pid(pid).and_then(|mut c| c.wait()).expect("collect");
    }
}

fn killing_up_with_sigkill_stops_its_services() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(dir.path(), "[services.svc]\ncommand = [\"sleep\", \"1000551\"]\n");
    let mut up = Up::start(dir.path(), &[], &[]);
    let (_, svc) = up.started_after(0, "svc");
    kill_up(&mut up);
    // The service got its parent-death signal.
    wait_adopted_end(svc, "the service to end after up was killed");
    support::reap_adopted();
}

fn the_next_up_kills_what_a_killed_up_left() {
    next_up_kills_leftovers("1000552", false);
}

/// Every `up` sweeps the stale subtrees of all the others when it starts: one doing so at the
/// moment the next `up` of a killed one's configuration looks must not hide the leftovers
/// (that race failed `the_next_up_kills_what_a_killed_up_left` 1 run in 15 of the suite).
fn the_next_up_kills_what_a_killed_up_left_while_another_up_sweeps() {
    next_up_kills_leftovers("1000553", true);
}

/// Kills an `up` whose service left a process (a sleep for `marker` seconds, a number no other
/// test sleeps: tests run side by side), then starts the next one; with `sweep_beside`, holds
/// the lock a sweep of another `up` takes on the stale subtree while the next one starts.
fn next_up_kills_leftovers(marker: &str, sweep_beside: bool) {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(dir.path(), &format!("[services.svc]\ncommand = \"sleep {marker} & wait\"\n"));
    let mut up = Up::start(dir.path(), &[], &[]);
    if !with_cgroups(&mut up) {
        eprintln!("note: skipped, forkyard gets no cgroups on this host");
        up.stop_with(Signal::TERM);
        return;
    }
    let (_, sh) = up.started_after(0, "svc");
    let (old, _) = support::wait_for("the sleep", support::PATIENCE, || sleeps_with(marker).pop());
    kill_up(&mut up);
    // The shell dies of its parent-death signal; its sleep lives on, in the stale cgroup.
    wait_adopted_end(sh, "the service's shell to end");
    assert!(alive(old), "the sleep should outlive the shell (it has no parent-death signal)");
    let sweep = sweep_beside.then(|| sweeping(old));
    let mut next = Up::start(dir.path(), &[], &[]);
    next.wait_for("killed 1 process(es) that a previous forkyard up of this configuration left running");
    drop(sweep);
    let (i, _) = next.started_after(0, "svc");
    assert!(
        i > next.seen.iter().position(|l| l.contains("killed 1 process")).unwrap_or(usize::MAX),
        "the leftovers are killed before anything starts"
    );
    wait_adopted_end(old, "the old sleep to be killed");
    let copies = support::wait_for("the new sleep", support::PATIENCE, || {
        let now = sleeps_with(marker);
        (!now.is_empty()).then_some(now)
    });
    assert_eq!(copies.len(), 1, "one copy runs: {copies:?}");
    assert_ne!(copies[0].0, old);
    let (code, lines) = next.stop_with(Signal::TERM);
    assert_eq!(code, 128 + libc::SIGTERM, "{}", lines.join("\n"));
    support::reap_adopted();
}

// --- checks -------------------------------------------------------------------------------------

fn hanging_checks(envs: &[(&str, &str)], marker: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let attempts = dir.path().join("attempts");
    // `; true` keeps the shell from exec'ing the sleep: the check is a shell with a child.
    write_config(
        dir.path(),
        &format!(
            "[services.db]\ncommand = [\"sleep\", \"1000\"]\nready = {{ exec = \"echo x >> {a}; sleep 1000{marker}; true\", interval = \"50ms\", timeout = \"100ms\" }}\n",
            a = attempts.display()
        ),
    );
    let mut up = Up::start(dir.path(), &[], envs);
    let mut most = 0;
    let mut seen = Vec::new();
    let done = support::wait_until(support::PATIENCE, || {
        let now = sleeps_with(&format!("1000{marker}"));
        if now.len() > most {
            most = now.len();
            seen = now;
        }
        std::fs::read_to_string(&attempts).unwrap_or_default().lines().count() >= 10
    });
    assert!(done, "ten attempts never came:\n{}", up.seen.join("\n"));
    assert!(up.is_running());
    assert!(most <= 1, "{most} check processes alive at once: {seen:?}");
    up.wait_for("db not ready yet: timed out after 100ms");
    let (code, lines) = up.stop_with(Signal::TERM);
    assert_eq!(code, 128 + libc::SIGTERM, "{}", lines.join("\n"));
}

fn hanging_exec_checks_are_killed_whole_with_cgroups() {
    hanging_checks(&[], "561");
}

fn hanging_exec_checks_are_killed_whole_without_cgroups() {
    hanging_checks(&no_cgroups(), "562");
}

// --- files, sockets and users ---------------------------------------------------------------------

fn a_log_file_that_is_a_symbolic_link_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let target = dir.path().join("precious");
    std::fs::write(&target, "precious\n").expect("write");
    std::os::unix::fs::symlink(&target, dir.path().join("web.log")).expect("symlink");
    let ran = dir.path().join("ran");
    write_config(
        dir.path(),
        &format!("[services.web]\ncommand = \"touch {}; echo hello\"\nlog_file = \"web.log\"\n", ran.display()),
    );
    let out = Command::new(forkyard_bin()).args(["up", "--no-color"]).current_dir(dir.path()).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}{}", String::from_utf8_lossy(&out.stdout));
    assert!(err.contains("web.log") && err.contains("is a symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "precious\n", "the link's target was written");
    assert!(!ran.exists(), "a service started");
}

fn notify_readiness_works_for_a_service_run_as_nobody() {
    let dir = tempfile::tempdir().expect("tmp");
    open_to_all(dir.path());
    let helper = helper_for_all(dir.path());
    write_config(
        dir.path(),
        &format!(
            "[services.notifyd]\ncommand = [\"{}\"]\nuser = \"nobody\"\nenv = {{ FORKYARD_TEST_HELPER = \"notify\" }}\nready = {{ notify = true }}\n",
            helper.display()
        ),
    );
    let mut up = Up::start(dir.path(), &[], &[]);
    let said = up.wait_for("notifyd  | socket=");
    up.wait_for("notifyd is ready");
    let line = up.seen[said].clone();
    let socket = line.split("socket=").nth(1).and_then(|r| r.split(' ').next()).map(PathBuf::from).expect("path");
    assert!(line.ends_with("uid=65534"), "{line}");
    assert!(!socket.starts_with("/tmp/forkyard-"), "a predictable directory: {}", socket.display());
    // While up runs: the directory is its own and writable by no one else; the socket is the
    // service's.
    let parent = socket.parent().expect("parent");
    let meta = std::fs::symlink_metadata(parent).expect("lstat the socket's directory");
    assert!(meta.is_dir() && meta.uid() == 0, "{} {meta:?}", parent.display());
    assert_eq!(meta.mode() & 0o022, 0, "{} is writable by others: {:o}", parent.display(), meta.mode());
    let sock = std::fs::symlink_metadata(&socket).expect("lstat the socket");
    assert_eq!((sock.uid(), sock.mode() & 0o077), (65534, 0), "{:o}", sock.mode());
    let (code, lines) = up.stop_with(Signal::TERM);
    assert_eq!(code, 128 + libc::SIGTERM, "{}", lines.join("\n"));
    assert!(!parent.exists(), "the runtime directory was left behind");
}

/// The primary group of `uid` in /etc/passwd.
fn passwd_gid(uid: u32) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[2].parse() == Ok(uid)).then(|| f[3].parse().ok()).flatten()
    })
}

fn a_numeric_user_gets_its_passwd_primary_group() {
    let Some(gid) = passwd_gid(5).filter(|&g| g != 5) else {
        eprintln!("note: skipped, uid 5 has no passwd entry with another group here");
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    open_to_all(dir.path());
    write_config(
        dir.path(),
        "[services.who]\ncommand = \"echo ids $(id -u) $(id -g)\"\nuser = \"5\"\nrestart = \"never\"\n",
    );
    let (code, lines) = Up::start(dir.path(), &[], &[]).finish();
    assert_eq!(code, 0, "{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.ends_with(&format!("| ids 5 {gid}"))), "{}", lines.join("\n"));
}

/// ENGINE BUG (reported, not fixed here): now and then `up` freezes for good as it starts a
/// service that has a `user` (about one start in ten here; `services_run_as_their_user_and_group`
/// in up.rs and `notify_readiness_works_for_a_service_run_as_nobody` hang the same way).
/// `Launch::start` makes the child with a raw `clone3` (CLONE_VFORK | CLONE_INTO_CGROUP), so
/// glibc in the child still believes the parent's threads (the output thread) exist; its
/// `setgroups`/`setgid`/`setuid` wrappers then run the all-threads "setxid" protocol and wait
/// forever on a thread that was being created when the clone happened. The child hangs
/// before exec (still uid 0, in `setxid_mark_thread`), and `up` sleeps uninterruptibly in
/// `clone3` waiting for it: no output, deaf to SIGTERM. Without cgroups (`fork`) it does not
/// happen. The fix is for the child to make the raw system calls (SYS_setgroups,
/// SYS_setgid, SYS_setuid), which act on the calling thread only.
fn starting_a_service_as_another_user_never_freezes_up() {
    let dir = tempfile::tempdir().expect("tmp");
    open_to_all(dir.path());
    write_config(dir.path(), "[services.who]\ncommand = \"true\"\nuser = \"nobody\"\noneshot = true\n");
    for run in 0..40 {
        let mut child = spawn_up(dir.path(), &[], Stdio::null());
        let up = pid_of(&child);
        let ended = support::wait_until(support::PATIENCE, || child.try_wait().expect("try_wait").is_some());
        if !ended {
            let snap = forkyard::procs::Snapshot::take().expect("snapshot");
            let stuck: Vec<String> =
                snap.children(up).map(|p| format!("{} {} uid {} {}", p.pid, p.state, p.uid, p.command())).collect();
            let state = support::state(up);
            for p in snap.descendants(up) {
                let _ = Signal::KILL.send(p.pid);
            }
            let _ = Signal::KILL.send(up);
            let _ = child.wait();
            panic!("up froze on start {run}: up {state:?}, its children {stuck:?}");
        }
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), Some(0), "start {run}");
    }
}

// --- lines ----------------------------------------------------------------------------------------

fn a_full_line_whose_newline_comes_later_gives_no_empty_line() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.long]\ncommand = \"head -c 16384 /dev/zero | tr '\\\\0' x; sleep 0.3; echo; echo next\"\nrestart = \"never\"\n",
    );
    let out = Command::new(forkyard_bin()).args(["up", "--no-color"]).current_dir(dir.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let pieces: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("long     | ")).collect();
    assert_eq!(pieces.len(), 2, "{:?}", pieces.iter().map(|p| p.len()).collect::<Vec<_>>());
    assert_eq!(pieces[0], "x".repeat(16384));
    assert_eq!(pieces[1], "next");
}

// --- probes ---------------------------------------------------------------------------------------

fn http_checks_make_python_print_no_traceback() {
    if Command::new("python3").arg("--version").output().map_or(true, |o| !o.status.success()) {
        eprintln!("note: skipped, no python3 here");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    write_config(
        dir.path(),
        &format!(
            "[services.py]\ncommand = [\"python3\", \"-u\", \"-m\", \"http.server\", \"{port}\", \"--bind\", \"127.0.0.1\"]\nready = {{ http = \"http://127.0.0.1:{port}/\", interval = \"50ms\" }}\nliveness = {{ http = \"http://127.0.0.1:{port}/\", interval = \"50ms\", failure_threshold = 1000 }}\n"
        ),
    );
    let mut up = Up::start(dir.path(), &[], &[]);
    // Python may take a while to listen: liveness fails meanwhile, without consequence.
    let ready = up.wait_for("py is ready");
    wait_count(&mut up, "\"GET / HTTP/1.1\" 200", 20);
    let (code, lines) = up.stop_with(Signal::TERM);
    assert_eq!(code, 128 + libc::SIGTERM, "{}", lines.join("\n"));
    for bad in ["Traceback", "ConnectionResetError", "BrokenPipe", "Exception occurred"] {
        assert!(!lines.iter().any(|l| l.contains(bad)), "{bad}:\n{}", lines.join("\n"));
    }
    assert!(!lines.iter().skip(ready).any(|l| l.contains("py failed its liveness check")), "{}", lines.join("\n"));
}

fn a_readiness_deadline_fails_the_service_and_says_why() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.db]\ncommand = [\"sleep\", \"1000\"]\nready = { exec = \"exit 3\", interval = \"50ms\", deadline = \"1s\" }\n\n[services.web]\ncommand = \"echo web; sleep 1000\"\ndepends_on = { db = \"ready\" }\n",
    );
    let (code, lines) = Up::start(dir.path(), &[], &[]).finish();
    let all = lines.join("\n");
    let why = index_of_line(&lines, "db not ready yet: the check exited with status 3");
    let failed = index_of_line(&lines, "db failed: not ready within 1s (last check: the check exited with status 3)");
    let blocked = index_of_line(&lines, "web will not start: db failed (ready)");
    assert!(why < failed && failed < blocked, "{all}");
    assert_eq!(lines.iter().filter(|l| l.contains("db not ready yet")).count(), 1, "said once, not per check: {all}");
    assert!(!lines.iter().any(|l| l.contains("web started")), "{all}");
    // docs/up.md, exit codes: every service has ended by itself, so the first failed one in
    // start order gives its last status: db, stopped by its SIGTERM.
    assert_eq!(code, 128 + libc::SIGTERM, "{all}");
}

/// ENGINE BUG (reported, not fixed here): a service that failed its readiness deadline but
/// exits 0 on its stop signal (as most servers do on SIGTERM) makes `up` exit 0, "every
/// service ended well", though it failed and its dependent never started. The exit code is
/// taken from the failed unit's last status (machine/mod.rs `check_finished`), which can be
/// a success. The same holds for a unit that exits 0 too often under `restart = "always"`.
fn a_service_failed_by_its_deadline_never_makes_up_exit_0() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.db]\ncommand = \"trap 'exit 0' TERM; while :; do sleep 0.05; done\"\nready = { exec = \"exit 3\", interval = \"50ms\", deadline = \"500ms\" }\n\n[services.web]\ncommand = \"echo web; sleep 1000\"\ndepends_on = { db = \"ready\" }\n",
    );
    let (code, lines) = Up::start(dir.path(), &[], &[]).finish();
    let all = lines.join("\n");
    index_of_line(&lines, "web will not start: db failed (ready)");
    assert_ne!(code, 0, "db failed and web never started, yet up says all is well:\n{all}");
}

fn index_of_line(lines: &[String], text: &str) -> usize {
    up_support::index_of(lines, text)
}

// --- configuration ----------------------------------------------------------------------------------

fn dotenv_and_the_env_table_reach_the_service() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join(".env"),
        "QUOTED=\"a b\" # a comment\nFROM_HOME=${HOME}/sub\nMULTI=\"first\nsecond\"\nSHARED=from-dotenv\n",
    )
    .expect("write .env");
    write_config(
        dir.path(),
        r#"[env]
SHARED = "from-the-env-table"

[services.show]
command = 'printf "Q=[%s]\nH=[%s]\nM=[%s]\nS=[%s]\nP=[%s] D=[%s]\n" "$QUOTED" "$FROM_HOME" "$MULTI" "$SHARED" "$PORT" "$DEBUG"'
env = { PORT = 8080, DEBUG = true }
restart = "never"
"#,
    );
    let (code, lines) = Up::start(dir.path(), &[], &[("HOME", "/home/fy-test")]).finish();
    assert_eq!(code, 0, "{}", lines.join("\n"));
    let got: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("show     | ")).collect();
    assert_eq!(
        got,
        ["Q=[a b]", "H=[/home/fy-test/sub]", "M=[first", "second]", "S=[from-the-env-table]", "P=[8080] D=[true]"],
        "{}",
        lines.join("\n")
    );
}

fn check_verifies_programs_directories_and_users() {
    let dir = tempfile::tempdir().expect("tmp");
    let ran = dir.path().join("ran");
    let m = ran.display();
    for (toml, expect) in [
        (
            "[services.x]\ncommand = [\"/no/such/program\"]\n".to_string(),
            "forkyard.toml:2:11: service 'x': command: '/no/such/program' does not exist",
        ),
        (
            format!("[services.x]\ncommand = \"touch {m}\"\ncwd = \"/no/such/dir\"\n"),
            "forkyard.toml:3:7: service 'x': cwd '/no/such/dir'",
        ),
        (
            format!("[services.x]\ncommand = \"touch {m}\"\nuser = \"no-such-user\"\n"),
            "forkyard.toml:3:8: service 'x': user 'no-such-user' does not exist",
        ),
    ] {
        write_config(dir.path(), &toml);
        let out = Command::new(forkyard_bin()).args(["up", "--check"]).current_dir(dir.path()).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml}: {err}");
        assert!(err.contains(expect), "{toml}\nexpected {expect:?} in: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(out.stdout.is_empty(), "no start order printed: {}", String::from_utf8_lossy(&out.stdout));
        assert!(!ran.exists(), "something started");
    }
}

fn a_service_that_never_started_exits_127_126_or_1() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("not-executable"), "#!/bin/sh\necho hi\n").expect("write");
    std::fs::set_permissions(dir.path().join("not-executable"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    // As docs/up.md's table of exit codes says.
    for (command, extra, code, said) in [
        ("[\"/no/such/program\"]", "", 127, "x cannot start: /no/such/program: No such file or directory"),
        ("[\"./not-executable\"]", "", 126, "x cannot start: ./not-executable: Permission denied"),
        ("[\"true\"]", "cwd = \"/no/such/dir\"\n", 1, "x cannot start: "),
    ] {
        write_config(dir.path(), &format!("[services.x]\ncommand = {command}\n{extra}max_restarts = 0\n"));
        let (got, lines) = Up::start(dir.path(), &[], &[]).finish();
        assert!(lines.iter().any(|l| l.contains(said)), "{}", lines.join("\n"));
        assert_eq!(got, code, "{command} {extra}: {}", lines.join("\n"));
    }
}

fn exit_on_first_is_not_ended_by_a_completed_oneshot() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(
        dir.path(),
        "[services.setup]\ncommand = \"true\"\noneshot = true\n\n[services.app]\ncommand = [\"sleep\", \"1000571\"]\n",
    );
    let mut up = Up::start(dir.path(), &["--exit-on-first"], &[]);
    let (_, app) = up.started_after(0, "app");
    let done = up.wait_for("setup completed");
    // Proof that the loop went on after it: it answers a signal, and has not begun to exit.
    Signal::USR2.send(up.pid()).expect("SIGUSR2");
    up.wait_for_after(done, "SIGUSR2 received: ignored");
    assert!(up.is_running() && alive(app), "{}", up.seen.join("\n"));
    assert_eq!(up.count("everything stops") + up.count("exiting with"), 0, "{}", up.seen.join("\n"));
    let (code, lines) = up.stop_with(Signal::TERM);
    assert_eq!(code, 128 + libc::SIGTERM, "{}", lines.join("\n"));
}

fn a_procfile_port_past_65535_and_bad_env_keys_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ran = dir.path().join("ran");
    let m = ran.display();
    std::fs::write(dir.path().join("Procfile"), format!("web: touch {m}\nworker: touch {m}\n")).expect("write");
    let out = Command::new(forkyard_bin())
        .args(["up", "--port-base", "65500"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Procfile:2:") && err.contains("PORT=65600, past 65535"), "{err}");
    assert!(!ran.exists(), "something started");
    std::fs::remove_file(dir.path().join("Procfile")).expect("rm");
    for (env, expect) in [
        ("{ \"A=B\" = \"x\" }", "env: \"A=B\" cannot be a variable name: it contains '='"),
        ("{ \"\" = \"x\" }", "env: a variable needs a name"),
    ] {
        write_config(dir.path(), &format!("[services.web]\ncommand = \"touch {m}\"\nenv = {env}\n"));
        let out = Command::new(forkyard_bin()).args(["up"]).current_dir(dir.path()).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env}: {err}");
        assert!(err.contains("forkyard.toml:3:") && err.contains("service 'web'") && err.contains(expect), "{err}");
        assert!(!ran.exists(), "something started");
    }
}

// --- PID 1 ------------------------------------------------------------------------------------------

fn as_pid1_a_killed_service_is_restarted_and_no_zombie_stays() {
    let dir = tempfile::tempdir().expect("tmp");
    write_config(dir.path(), "[services.svc]\ncommand = [\"sleep\", \"1000581\"]\n");
    let mut child = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", forkyard_bin(), "up", "--no-color"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("unshare (util-linux) is needed, and root");
    let unshare = pid_of(&child);
    let up = support::wait_for("up, PID 1 of its namespace", support::PATIENCE, || {
        let snap = forkyard::procs::Snapshot::take().expect("snapshot");
        snap.children(unshare).find(|p| !p.is_zombie()).map(|p| p.pid)
    });
    let first = only_child_named(up, "sleep");
    Signal::KILL.send(first).expect("kill -9 the service");
    let second = support::wait_for("a new sleep", support::PATIENCE, || {
        let now = children_named(up, "sleep");
        let gone = !now.iter().any(|(p, _)| *p == first);
        now.iter().find(|(p, zombie)| *p != first && !zombie).filter(|_| gone).map(|(p, _)| *p)
    });
    assert!(alive(second));
    assert_eq!(zombies_of(up.as_raw()), 0, "a zombie stays with PID 1");
    Signal::TERM.send(up).expect("SIGTERM");
    let status = support::wait_for("up to exit", support::PATIENCE, || child.try_wait().expect("try_wait"));
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
}
