//! `forkyard init` and its compatibility modes, run as a user (or Docker) would: in
//! subreaper mode, and as PID 1 of a real PID namespace (`unshare --pid --fork
//! --mount-proc`, which needs root, as CI has).
//!
//! The helper processes these tests start (a signal recorder, an orphan factory, a burst of
//! simultaneous exits) are this test binary itself, re-executed with `FORKYARD_TEST_HELPER`.

#[path = "../../forkyard/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use forkyard::procs::{Snapshot, State};
use forkyard::{Fork, Pid, Signal, SignalFd, SignalSet};

fn main() {
    if let Ok(helper) = std::env::var("FORKYARD_TEST_HELPER") {
        std::process::exit(run_helper(&helper));
    }
    support::run(&[
        ("forwards_every_catchable_signal", forwards_every_catchable_signal),
        ("podman_init_is_catatonit", podman_init_is_catatonit),
        ("forwards_to_the_group_only_with_pgroup", forwards_to_the_group_only_with_pgroup),
        ("rewrites_and_drops_signals", rewrites_and_drops_signals),
        ("exit_codes_pass_through", exit_codes_pass_through),
        ("death_by_signal_exits_128_plus_n", death_by_signal_exits_128_plus_n),
        ("exit_codes_are_remapped", exit_codes_are_remapped),
        ("a_hundred_orphans_are_reaped_as_pid1", a_hundred_orphans_are_reaped_as_pid1),
        ("main_exit_in_a_coalesced_sigchld_is_seen", main_exit_in_a_coalesced_sigchld_is_seen),
        ("grace_lets_a_term_trapping_writer_finish", grace_lets_a_term_trapping_writer_finish),
        ("zero_grace_exits_at_once_as_tini_does", zero_grace_exits_at_once_as_tini_does),
        ("grace_kills_what_ignores_term", grace_kills_what_ignores_term),
        ("wait_all_waits_for_the_rest", wait_all_waits_for_the_rest),
        ("the_command_inherits_the_mask_and_ignored_signals", the_command_inherits_the_mask_and_ignored_signals),
        ("the_command_starts_clean", the_command_starts_clean),
        ("exec_failures_exit_127_or_126", exec_failures_exit_127_or_126),
        ("bad_arguments_exit_2_and_start_nothing", bad_arguments_exit_2_and_start_nothing),
        ("pdeathsig_is_forwarded_when_inits_parent_dies", pdeathsig_is_forwarded_when_inits_parent_dies),
        ("tini_w_warns_about_each_collected_zombie", tini_w_warns_about_each_collected_zombie),
        ("the_command_owns_the_terminal", the_command_owns_the_terminal),
        ("setsid_gives_the_command_a_session_and_terminal", setsid_gives_the_command_a_session_and_terminal),
        ("tini_mode", tini_mode),
        ("tini_mode_permutes_and_reads_its_environment", tini_mode_permutes_and_reads_its_environment),
        ("dumb_init_mode", dumb_init_mode),
        (
            "dumb_init_mode_signals_the_session_and_terms_it_at_exit",
            dumb_init_mode_signals_the_session_and_terms_it_at_exit,
        ),
        ("dumb_init_mode_stops_with_its_child", dumb_init_mode_stops_with_its_child),
        ("dumb_init_mode_speaks_dumb_inits_words", dumb_init_mode_speaks_dumb_inits_words),
        ("tini_mode_keeps_the_signal_configuration", tini_mode_keeps_the_signal_configuration),
        ("catatonit_mode", catatonit_mode),
        ("catatonit_pause_mode", catatonit_pause_mode),
        ("inherited_subreaper_forkyard_init", inherited_subreaper_forkyard_init),
        ("inherited_subreaper_tini", inherited_subreaper_tini),
        ("inherited_subreaper_dumb_init", inherited_subreaper_dumb_init),
        ("inherited_subreaper_catatonit", inherited_subreaper_catatonit),
    ])
}

// --- helpers run as child processes ---------------------------------------------------

fn run_helper(which: &str) -> i32 {
    match which {
        "sigprobe" => sigprobe(),
        "orphans" => orphans(),
        "coalesce" => coalesce(),
        "adopted" => adopted(),
        other => {
            eprintln!("unknown helper {other}");
            100
        }
    }
}

/// Prints `ready PID`, then the name of every signal it receives, one per line, until its
/// standard input ends (or, with FORKYARD_PROBE_UNTIL=SIGNAME, until that signal comes).
/// With FORKYARD_PROBE_BUDDY=1 it first forks a second recorder in its process group, whose
/// lines start with `buddy `.
fn sigprobe() -> i32 {
    let set: SignalSet = Signal::all().filter(|s| s.is_catchable() && *s != Signal::CHLD).collect();
    if set.block().is_err() {
        return 101;
    }
    let mut prefix = "";
    if std::env::var_os("FORKYARD_PROBE_BUDDY").is_some() {
        // SAFETY: the helper is single-threaded; the buddy runs the same loop and exits.
        if let Ok(Fork::Child) = unsafe { forkyard::fork() } {
            prefix = "buddy ";
        }
    }
    let Ok(fd) = SignalFd::new(&set) else { return 102 };
    let until: Option<Signal> = std::env::var("FORKYARD_PROBE_UNTIL").ok().and_then(|s| s.parse().ok());
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{prefix}ready {}", Pid::this());
    let _ = out.flush();
    loop {
        let mut fds = [
            libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&fd)),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd { fd: if until.is_some() { -1 } else { 0 }, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: a valid array of two pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        while let Ok(Some(info)) = fd.try_read() {
            let _ = writeln!(out, "{prefix}{}", info.signal);
            let _ = out.flush();
            if until == Some(info.signal) {
                return 0;
            }
        }
        if until.is_none() && fds[1].revents != 0 {
            let mut b = [0u8; 64];
            // SAFETY: reading into a valid buffer from standard input.
            if unsafe { libc::read(0, b.as_mut_ptr().cast(), b.len()) } <= 0 {
                return 0;
            }
        }
    }
}

/// Orphans FORKYARD_ORPHANS processes (each exits at once), then waits until no zombie is
/// left in this PID namespace: exit 0, or 1 after 20 s.
fn orphans() -> i32 {
    let n: usize = std::env::var("FORKYARD_ORPHANS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    for _ in 0..n {
        // SAFETY: single-threaded helper; the middle child forks once and _exits; the
        // grandchild _exits at once.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: as above.
                unsafe {
                    if libc::fork() == 0 {
                        libc::_exit(0);
                    }
                    libc::_exit(0);
                }
            }
            pid if pid > 0 => {
                let mut status = 0;
                // SAFETY: collecting the middle child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
            }
            _ => return 2,
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let Ok(snap) = Snapshot::take() else { return 3 };
        let zombies = snap.zombies().count();
        let others = snap.processes().iter().filter(|p| p.pid != Pid::this() && p.pid != Pid::INIT).count();
        if zombies == 0 && others == 0 {
            println!("no zombies among {} processes", snap.processes().len());
            return 0;
        }
        if std::time::Instant::now() > deadline {
            println!("{zombies} zombies left");
            return 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Orphans 50 processes that, like this one, wait for standard input to end, so that all
/// 51 exit together; then exits 7.
fn coalesce() -> i32 {
    let wait_stdin = || {
        let mut b = [0u8; 1];
        // SAFETY: a blocking read into a valid buffer.
        while unsafe { libc::read(0, b.as_mut_ptr().cast(), 1) } > 0 {}
    };
    for _ in 0..50 {
        // SAFETY: single-threaded helper; the grandchild reads stdin and _exits.
        match unsafe { libc::fork() } {
            // SAFETY: the middle child forks once and _exits; the grandchild reads and _exits.
            0 => unsafe {
                if libc::fork() == 0 {
                    wait_stdin();
                    libc::_exit(0);
                }
                libc::_exit(0)
            },
            pid if pid > 0 => {
                let mut status = 0;
                // SAFETY: collecting the middle child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
            }
            _ => return 2,
        }
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    wait_stdin();
    7
}

/// Run by an init that is not PID 1: makes 10 orphans and checks that each was re-parented
/// to the init (its parent, whose PID it knows) and, once they exit, collected by it. Prints
/// `adopted and reaped 10` and exits 0, or prints what went wrong and exits 1.
fn adopted() -> i32 {
    // SAFETY: getppid has no preconditions.
    let init = unsafe { libc::getppid() };
    let mut hold = [0; 2];
    // SAFETY: a valid array of two ints; the grandchildren block reading `hold[0]` until this
    // process closes `hold[1]`.
    if unsafe { libc::pipe(hold.as_mut_ptr()) } != 0 {
        return 2;
    }
    let mut orphans = Vec::new();
    for _ in 0..10 {
        let mut back = [0; 2];
        // SAFETY: as above; the middle child sends the grandchild's PID back through it.
        if unsafe { libc::pipe(back.as_mut_ptr()) } != 0 {
            return 2;
        }
        // SAFETY: single-threaded helper; the children make system calls only, then _exit.
        match unsafe { libc::fork() } {
            // SAFETY: the middle child forks once, reports the PID and _exits; the grandchild
            // reads until the pipe's end and _exits.
            0 => unsafe {
                match libc::fork() {
                    0 => {
                        libc::close(hold[1]);
                        let mut b = [0u8; 1];
                        while libc::read(hold[0], b.as_mut_ptr().cast(), 1) > 0 {}
                        libc::_exit(0)
                    }
                    grandchild => {
                        let bytes = grandchild.to_ne_bytes();
                        libc::write(back[1], bytes.as_ptr().cast(), bytes.len());
                        libc::_exit(0)
                    }
                }
            },
            middle if middle > 0 => {
                let mut bytes = [0u8; 4];
                // SAFETY: reading 4 bytes into a valid buffer; collecting the middle child;
                // closing the pipe's two ends, which are ours.
                unsafe {
                    libc::read(back[0], bytes.as_mut_ptr().cast(), 4);
                    libc::waitpid(middle, std::ptr::null_mut(), 0);
                    libc::close(back[0]);
                    libc::close(back[1]);
                }
                orphans.push(i32::from_ne_bytes(bytes));
            }
            _ => return 2,
        }
    }
    let ppid_of = |pid: i32| -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat[stat.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
    };
    for &pid in &orphans {
        if ppid_of(pid) != Some(init) {
            println!("orphan {pid} went to {:?}, not to the init {init}", ppid_of(pid));
            return 1;
        }
    }
    // SAFETY: closing our write end: every orphan's read ends and it exits.
    unsafe { libc::close(hold[1]) };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while orphans.iter().any(|&pid| ppid_of(pid).is_some()) {
        if std::time::Instant::now() > deadline {
            println!(
                "orphans not collected: {:?}",
                orphans.iter().filter(|&&p| ppid_of(p).is_some()).collect::<Vec<_>>()
            );
            return 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("adopted and reaped {}", orphans.len());
    0
}

// --- tools -------------------------------------------------------------------------------

fn forkyard_bin() -> &'static str {
    env!("CARGO_BIN_EXE_forkyard")
}

/// A directory holding `tini`, `docker-init`, `dumb-init`, `catatonit` and `podman-init`
/// links to forkyard.
fn compat_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["tini", "docker-init", "dumb-init", "catatonit", "podman-init"] {
        std::os::unix::fs::symlink(forkyard_bin(), dir.path().join(name)).expect("symlink");
    }
    dir
}

fn me() -> PathBuf {
    std::env::current_exe().expect("the test binary")
}

/// `program args...` with the helper `which` as the command, stdin and stdout piped.
fn start_with_helper(program: &Path, args: &[&str], which: &str, envs: &[(&str, &str)]) -> (Child, Lines) {
    let mut cmd = Command::new(program);
    cmd.args(args).arg(me()).env("FORKYARD_TEST_HELPER", which).stdin(Stdio::piped()).stdout(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let lines = Lines::new(child.stdout.take().expect("stdout"));
    (child, lines)
}

/// Lines from a child's stdout, read on a thread so waits can have an upper bound.
struct Lines(mpsc::Receiver<String>);

impl Lines {
    fn new(out: ChildStdout) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    fn next(&self, what: &str) -> String {
        self.0.recv_timeout(support::PATIENCE).unwrap_or_else(|_| panic!("no line while waiting for {what}"))
    }
}

/// Waits (with a generous bound) for the child to exit; returns its exit code.
fn finish(mut child: Child) -> i32 {
    let pid = Pid::new(child.id() as i32).expect("pid");
    drop(child.stdin.take());
    let status = support::wait_for("the init to exit", support::PATIENCE, || child.try_wait().expect("try_wait"));
    let _ = pid;
    status.code().unwrap_or_else(|| panic!("init was killed: {status}"))
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program).args(args).stdin(Stdio::null()).output().expect("run")
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or_else(|| panic!("killed: {}", out.status))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `forkyard init ARGS` as PID 1 of a new PID namespace (with its own /proc).
fn in_namespace(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", forkyard_bin(), "init"]).args(args).stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("unshare (util-linux) must be installed, and the tests run as root")
}

// --- signals -------------------------------------------------------------------------------

fn forwards_every_catchable_signal() {
    let (child, lines) = start_with_helper(Path::new(forkyard_bin()), &["init", "--"], "sigprobe", &[]);
    assert!(lines.next("ready").starts_with("ready "));
    let init = Pid::new(child.id() as i32).expect("pid");
    let mut count = 0;
    for signal in Signal::all().filter(|s| s.is_catchable() && *s != Signal::CHLD) {
        signal.send(init).expect("kill init");
        assert_eq!(lines.next(&signal.to_string()), signal.to_string(), "{signal} must reach the command");
        count += 1;
    }
    let realtime = (Signal::rtmax().as_raw() - Signal::rtmin().as_raw() + 1) as usize;
    assert_eq!(count, 28 + realtime, "31 standard signals but KILL, STOP and CHLD, and every real-time one");
    assert_eq!(finish(child), 0);
}

fn forwards_to_the_group_only_with_pgroup() {
    for pgroup in [true, false] {
        let args: &[&str] = if pgroup { &["init", "--pgroup", "--"] } else { &["init", "--"] };
        let (child, lines) =
            start_with_helper(Path::new(forkyard_bin()), args, "sigprobe", &[("FORKYARD_PROBE_BUDDY", "1")]);
        let mut ready = vec![lines.next("ready"), lines.next("ready")];
        ready.sort();
        assert!(ready[0].starts_with("buddy ready") && ready[1].starts_with("ready"), "{ready:?}");
        let init = Pid::new(child.id() as i32).expect("pid");
        Signal::USR1.send(init).expect("kill");
        Signal::USR2.send(init).expect("kill");
        let mut got = Vec::new();
        let expected = if pgroup { 4 } else { 2 };
        for _ in 0..expected {
            got.push(lines.next("a forwarded signal"));
        }
        got.sort();
        if pgroup {
            assert_eq!(got, ["SIGUSR1", "SIGUSR2", "buddy SIGUSR1", "buddy SIGUSR2"]);
        } else {
            assert_eq!(got, ["SIGUSR1", "SIGUSR2"], "without --pgroup only the command is signalled");
        }
        assert_eq!(finish(child), 0);
    }
}

fn rewrites_and_drops_signals() {
    let args = ["init", "--rewrite", "TERM:QUIT", "-r", "1:0", "--rewrite=SIGRTMIN+1:USR1", "--"];
    let (child, lines) = start_with_helper(Path::new(forkyard_bin()), &args, "sigprobe", &[]);
    lines.next("ready");
    let init = Pid::new(child.id() as i32).expect("pid");
    Signal::TERM.send(init).expect("kill");
    assert_eq!(lines.next("QUIT"), "SIGQUIT");
    Signal::HUP.send(init).expect("kill");
    Signal::USR2.send(init).expect("kill");
    assert_eq!(lines.next("USR2"), "SIGUSR2", "HUP was dropped");
    Signal::new(Signal::rtmin().as_raw() + 1).expect("rt").send(init).expect("kill");
    assert_eq!(lines.next("USR1"), "SIGUSR1");
    assert_eq!(finish(child), 0);
}

// --- exit codes ------------------------------------------------------------------------------

fn exit_codes_pass_through() {
    let f = Path::new(forkyard_bin());
    for n in 0..=255 {
        let out = run(f, &["init", "--", "sh", "-c", &format!("exit {n}")]);
        assert_eq!(code(&out), n, "exit {n}");
    }
}

fn death_by_signal_exits_128_plus_n() {
    let f = Path::new(forkyard_bin());
    for signal in [Signal::HUP, Signal::INT, Signal::QUIT, Signal::KILL, Signal::USR1, Signal::SEGV, Signal::TERM] {
        let out = run(f, &["init", "--", "sh", "-c", &format!("kill -{} $$", signal.as_raw())]);
        assert_eq!(code(&out), 128 + signal.as_raw(), "{signal}");
    }
    // A real-time signal too: 128 + its number.
    let rt = Signal::rtmin().as_raw() + 2;
    let out = run(f, &["init", "--", "sh", "-c", &format!("kill -{rt} $$")]);
    assert_eq!(code(&out), 128 + rt);
}

fn exit_codes_are_remapped() {
    let f = Path::new(forkyard_bin());
    let out = run(f, &["init", "--remap-exit", "143:0", "-e", "3:7", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(code(&out), 0);
    let out = run(f, &["init", "--remap-exit", "143:0", "-e", "3:7", "--", "sh", "-c", "exit 3"]);
    assert_eq!(code(&out), 7);
    let out = run(f, &["init", "-e", "3:7", "--", "sh", "-c", "exit 4"]);
    assert_eq!(code(&out), 4);
}

// --- orphans, zombies, coalescing ------------------------------------------------------------

fn a_hundred_orphans_are_reaped_as_pid1() {
    let me = me();
    let out = in_namespace(
        &["--", me.to_str().expect("utf-8 path")],
        &[("FORKYARD_TEST_HELPER", "orphans"), ("FORKYARD_ORPHANS", "100")],
    );
    assert_eq!(code(&out), 0, "{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("no zombies"));
}

fn main_exit_in_a_coalesced_sigchld_is_seen() {
    // As a subreaper and as PID 1: the command and 50 orphans all exit when stdin closes.
    for pid1 in [false, true] {
        let mut cmd = if pid1 {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc", forkyard_bin(), "init", "--"]);
            c
        } else {
            let mut c = Command::new(forkyard_bin());
            c.args(["init", "--"]);
            c
        };
        let mut child = cmd
            .arg(me())
            .env("FORKYARD_TEST_HELPER", "coalesce")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let lines = Lines::new(child.stdout.take().expect("stdout"));
        assert_eq!(lines.next("ready"), "ready");
        assert_eq!(finish(child), 7, "pid1: {pid1}");
    }
}

// --- after the command exits ------------------------------------------------------------------

/// A shell script for the command: start a background process that writes "ready" when its
/// TERM handling is in place, wait for that, and exit 3.
fn leave_behind(dir: &Path, trap: &str) -> String {
    let done = dir.join("done");
    let ready = dir.join("ready");
    format!(
        "sh -c 'trap \"{trap}\" TERM; echo ready > {ready}; while :; do sleep 0.05; done' & \
         while [ ! -s {ready} ]; do sleep 0.01; done; exit 3",
        ready = ready.display(),
        trap = trap.replace("$DONE", &done.display().to_string()),
    )
}

fn grace_lets_a_term_trapping_writer_finish() {
    let dir = tempfile::tempdir().expect("tmp");
    let script = leave_behind(dir.path(), "sleep 0.2; echo finished > $DONE; exit 0");
    let out = in_namespace(&["--grace", "10s", "--", "sh", "-c", &script], &[]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let done = std::fs::read_to_string(dir.path().join("done")).unwrap_or_default();
    assert_eq!(done.trim(), "finished", "the background writer got to finish its file");
}

fn zero_grace_exits_at_once_as_tini_does() {
    let dir = tempfile::tempdir().expect("tmp");
    let script = leave_behind(dir.path(), "sleep 0.2; echo finished > $DONE; exit 0");
    let out = in_namespace(&["--grace", "0", "--", "sh", "-c", &script], &[]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // PID 1 left at once; the kernel killed the writer before it could write.
    assert!(!dir.path().join("done").exists(), "the writer must not have finished");
}

fn grace_kills_what_ignores_term() {
    let dir = tempfile::tempdir().expect("tmp");
    let script = leave_behind(dir.path(), "");
    // As PID 1, and as a subreaper where nothing but init can clean up.
    let out = in_namespace(&["-v", "--grace", "300ms", "--", "sh", "-c", &script], &[]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("grace period over: sent SIGKILL"), "{}", stderr(&out));
    let _ = std::fs::remove_file(dir.path().join("ready"));
    let out = run(Path::new(forkyard_bin()), &["init", "--grace", "300ms", "--", "sh", "-c", &script]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // Nothing of it is left: the harness would also fail the test on a leftover child.
    let snap = Snapshot::take().expect("snapshot");
    let ready = dir.path().join("ready").display().to_string();
    assert!(!snap.processes().iter().any(|p| p.command().contains(&ready)), "the TERM-ignoring process survived");
}

fn wait_all_waits_for_the_rest() {
    let dir = tempfile::tempdir().expect("tmp");
    let late = dir.path().join("late");
    let script = format!("(sleep 0.3; echo late > {}) & exit 5", late.display());
    let out = in_namespace(&["--wait-all", "--", "sh", "-c", &script], &[]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&late).unwrap_or_default().trim(), "late");
}

// --- how the command starts ---------------------------------------------------------------------

fn status_bits(status: &str, field: &str) -> u64 {
    let hex = status.lines().find_map(|l| l.strip_prefix(field)).expect("field").trim();
    u64::from_str_radix(hex, 16).expect("hex")
}

/// Runs `prefix... cat /proc/self/status` from a child that first blocks `mask` and ignores
/// `ignored`; returns cat's (SigBlk, SigIgn).
fn cat_status(prefix: &[&str], mask: &[Signal], ignored: &[Signal]) -> (u64, u64) {
    let (program, args) = prefix.split_first().expect("a program");
    let mut cmd = Command::new(program);
    cmd.args(args).args(["cat", "/proc/self/status"]).stdin(Stdio::null());
    let (m, ig) = (mask.to_vec(), ignored.to_vec());
    // SAFETY: between fork and exec: sigprocmask and signal only.
    unsafe {
        cmd.pre_exec(move || {
            let set: SignalSet = m.iter().copied().collect();
            let _ = set.set_thread_mask();
            for s in &ig {
                libc::signal(s.as_raw(), libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let status = String::from_utf8_lossy(&out.stdout);
    (status_bits(&status, "SigBlk:"), status_bits(&status, "SigIgn:"))
}

fn the_command_inherits_the_mask_and_ignored_signals() {
    let bit = |s: Signal| 1u64 << (s.as_raw() - 1);
    for (mask, ignored) in [(vec![Signal::USR1, Signal::rtmin()], vec![Signal::USR2, Signal::PIPE]), (vec![], vec![])] {
        // What a program started directly would have: whatever this test process passes on
        // (its runner may ignore some signals), plus the setup above.
        let direct = cat_status(&["env"], &mask, &ignored);
        let through_init = cat_status(&[forkyard_bin(), "init", "--"], &mask, &ignored);
        assert_eq!(through_init, direct, "through init, the command has exactly what init inherited");
        for s in &mask {
            assert_ne!(through_init.0 & bit(*s), 0, "{s} blocked");
        }
        for s in &ignored {
            assert_ne!(through_init.1 & bit(*s), 0, "{s} ignored");
        }
    }
}

fn the_command_starts_clean() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cmd = Command::new(forkyard_bin());
    cmd.args(["init", "--", "sh", "-c", "pwd; ls /proc/$$/fd; cat /proc/$$/stat"])
        .current_dir(dir.path())
        .stdin(Stdio::null());
    // Init starts with standard streams only (the test runner hands this process others).
    // SAFETY: close_range between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    let out = cmd.output().expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(
        Path::new(lines.next().expect("pwd")).canonicalize().ok(),
        dir.path().canonicalize().ok(),
        "init's working directory"
    );
    let fds: Vec<&str> = lines.by_ref().take_while(|l| l.chars().all(|c| c.is_ascii_digit())).collect();
    assert_eq!(fds, ["0", "1", "2"], "none of init's descriptors (signalfds, pidfds) leak into the command");
    let stat = text.lines().last().expect("stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect(")") + 2..].split(' ').collect();
    let (pid, pgrp) = (stat.split(' ').next().expect("pid"), fields[2]);
    assert_eq!(pid, pgrp, "the command leads its own process group");
}

fn exec_failures_exit_127_or_126() {
    let f = Path::new(forkyard_bin());
    let out = run(f, &["init", "--", "/no/such/program"]);
    assert_eq!(code(&out), 127);
    assert!(
        stderr(&out).starts_with("forkyard init: cannot run '/no/such/program': No such file or directory"),
        "{}",
        stderr(&out)
    );
    let out = run(f, &["init", "--", "no-such-program-in-path"]);
    assert_eq!(code(&out), 127);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("not-executable");
    std::fs::write(&file, "#!/bin/sh\n").expect("write");
    let out = run(f, &["init", "--", file.to_str().expect("utf-8")]);
    assert_eq!(code(&out), 126);
    assert!(stderr(&out).contains("Permission denied"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "one clear line");
}

fn bad_arguments_exit_2_and_start_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let marker = dir.path().join("ran");
    let m = marker.to_str().expect("utf-8");
    let f = Path::new(forkyard_bin());
    for (args, names) in [
        (vec!["init", "--bogus", "--", "touch", m], "--bogus"),
        (vec!["init", "--rewrite", "TERM", "--", "touch", m], "TERM"),
        (vec!["init", "--rewrite", "TERM:NOPE", "--", "touch", m], "NOPE"),
        (vec!["init", "--remap-exit", "300:0", "--", "touch", m], "300"),
        (vec!["init", "--pdeathsig", "SIGFOO", "--", "touch", m], "SIGFOO"),
        (vec!["init", "--grace", "5", "--", "touch", m], "'5'"),
        (vec!["init", "--grace", "1s", "--wait-all", "--", "touch", m], "--wait-all"),
        (vec!["init", "--rewrite"], "--rewrite"),
        (vec!["init"], "no command"),
    ] {
        let out = run(f, &args);
        assert_eq!(code(&out), 2, "{args:?}");
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "one error line and the usage: {err}");
        assert!(lines[0].starts_with("forkyard init: ") && lines[0].contains(names), "{args:?}: {err}");
        assert!(lines[1].starts_with("usage: forkyard init"), "{err}");
        assert!(!marker.exists(), "nothing may start on bad input: {args:?}");
    }
    let out = run(f, &["init", "--help"]);
    assert_eq!(code(&out), 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--grace <DURATION>"));
}

fn pdeathsig_is_forwarded_when_inits_parent_dies() {
    // sh starts init in the background and waits for its stdin to close; when sh exits,
    // init receives USR1 (its parent-death signal), forwards it, and the command dies of it.
    // Init, orphaned, comes to this test process (a subreaper), which reads its status.
    let script = format!("{} init --pdeathsig USR1 -- sleep 1000 & read x || true", forkyard_bin());
    let mut sh = Command::new("sh").args(["-c", &script]).stdin(Stdio::piped()).spawn().expect("sh");
    let sh_pid = Pid::new(sh.id() as i32).expect("pid");
    let init = support::wait_for("init and its command", support::PATIENCE, || {
        let snap = Snapshot::take().expect("snapshot");
        let init = snap.children(sh_pid).find(|p| p.comm == "forkyard")?.pid;
        snap.children(init).any(|p| p.comm == "sleep").then_some(init)
    });
    drop(sh.stdin.take());
    assert!(sh.wait().expect("sh").success());
    let status = forkyard::Child::from_pid(init).and_then(|mut c| c.wait()).expect("init, adopted by this test");
    assert_eq!(
        status.code(),
        Some((128 + libc::SIGUSR1) as u8),
        "the command died of the forwarded parent-death signal"
    );
}

fn tini_w_warns_about_each_collected_zombie() {
    let dir = compat_dir();
    let out = run(&dir.path().join("tini"), &["-s", "-w", "--", "sh", "-c", "(true &) ; sleep 0.2"]);
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("Reaped zombie process with pid="), "{}", stderr(&out));
    let out = run(&dir.path().join("tini"), &["-s", "--", "sh", "-c", "(true &) ; sleep 0.2"]);
    assert!(!stderr(&out).contains("Reaped zombie"), "only with -w");
}

// --- terminals -------------------------------------------------------------------------------------

/// Runs `command` under a pseudo-terminal (util-linux `script`) and returns what it printed.
fn under_pty(command: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .stdin(Stdio::piped())
        .output()
        .expect("script (bsdutils) must be installed");
    assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

/// (pid, pgrp, session, tty_nr, tpgid) from a /proc/PID/stat line.
fn stat_ids(line: &str) -> (i64, i64, i64, i64, i64) {
    let pid = line.split(' ').next().and_then(|p| p.parse().ok()).expect("pid");
    let f: Vec<i64> =
        line[line.rfind(')').expect(")") + 4..].split(' ').take(5).map(|v| v.parse().unwrap_or(-1)).collect();
    (pid, f[1], f[2], f[3], f[4])
}

fn the_command_owns_the_terminal() {
    let text = under_pty(&format!("{} init -- cat /proc/self/stat", forkyard_bin()));
    let line = text.lines().find(|l| l.contains("(cat)")).expect("cat's stat line");
    let (pid, pgrp, _, tty, tpgid) = stat_ids(line);
    assert_ne!(tty, 0, "it has the terminal");
    assert_eq!(pgrp, pid, "in its own group");
    assert_eq!(tpgid, pgrp, "which is the terminal's foreground group");
}

fn setsid_gives_the_command_a_session_and_terminal() {
    // script makes a session whose leader is a shell; init is not the leader, so the command
    // cannot take the terminal from that session: it gets a session of its own without one.
    // As PID 1 of a namespace under `script -c 'exec ...'`, init leads the session and hands
    // the terminal over.
    let text = under_pty(&format!("exec {} init --setsid -- cat /proc/self/stat", forkyard_bin()));
    let line = text.lines().find(|l| l.contains("(cat)")).expect("cat's stat line");
    let (pid, pgrp, session, tty, tpgid) = stat_ids(line);
    assert_eq!((pgrp, session), (pid, pid), "the command leads a new session");
    assert_ne!(tty, 0, "with the terminal as its controlling terminal");
    assert_eq!(tpgid, pid);
}

// --- compatibility modes -------------------------------------------------------------------------

fn tini_mode() {
    let dir = compat_dir();
    let tini = dir.path().join("tini");
    let out = run(&tini, &["-s", "--", "sh", "-c", "exit 3"]);
    assert_eq!(code(&out), 3);
    assert_eq!(code(&run(&tini, &["-s", "-e", "3", "--", "sh", "-c", "exit 3"])), 0);
    assert_eq!(code(&run(&tini, &["-s", "--", "sh", "-c", "kill -TERM $$"])), 143);
    let out = run(&tini, &["-s", "/does/not/exist"]);
    assert_eq!(code(&out), 127);
    assert!(stderr(&out).contains("exec /does/not/exist failed: No such file or directory"), "{}", stderr(&out));
    assert_eq!(code(&run(&tini, &["-s", "/etc/passwd"])), 126);
    for bad in
        [vec!["-p", "KILL", "true"], vec!["-p", "9", "true"], vec!["-e", "300", "true"], vec!["-x", "true"], vec![]]
    {
        let out = run(&tini, &bad);
        assert_eq!(code(&out), 1, "{bad:?}: {}", stderr(&out));
    }
    let out = run(&tini, &["-s", "-p", "SIGKILL", "true"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(&tini, &["--version"]);
    assert_eq!(code(&out), 0);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tini version "), "docker info reads this line");
    assert_eq!(code(&run(&tini, &["--version", "true"])), 1, "--version only alone");
    let out = run(&tini, &["-h"]);
    assert_eq!(code(&out), 0);
    assert!(!out.stdout.is_empty());
    // Not PID 1, no -s: tini warns that orphans will not be collected.
    let out = run(&tini, &["true"]);
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("[WARN  tini"), "{}", stderr(&out));
    let docker_init = dir.path().join("docker-init");
    assert_eq!(code(&run(&docker_init, &["-s", "--", "sh", "-c", "exit 9"])), 9);
}

fn tini_mode_permutes_and_reads_its_environment() {
    let dir = compat_dir();
    let tini = dir.path().join("tini");
    // Options after the program are tini's (`-w` here), until "--".
    let out = run(&tini, &["-s", "echo", "hi", "-w"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out = run(&tini, &["-s", "--", "echo", "hi", "-w"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi -w\n");
    // POSIXLY_CORRECT stops at the program.
    let out = Command::new(&tini).args(["-s", "echo", "hi", "-w"]).env("POSIXLY_CORRECT", "1").output().expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi -w\n");
    // TINI_SUBREAPER on presence, even "0": no warning.
    let out = Command::new(&tini).arg("true").env("TINI_SUBREAPER", "0").output().expect("run");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // TINI_VERBOSITY=0 silences the warning.
    let out = Command::new(&tini).arg("true").env("TINI_VERBOSITY", "0").output().expect("run");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // TINI_KILL_PROCESS_GROUP on presence: a signal reaches the command's group.
    let (child, lines) = start_with_helper(
        &tini,
        &["-s", "--"],
        "sigprobe",
        &[("FORKYARD_PROBE_BUDDY", "1"), ("TINI_KILL_PROCESS_GROUP", "")],
    );
    lines.next("ready");
    lines.next("ready");
    Signal::USR1.send(Pid::new(child.id() as i32).expect("pid")).expect("kill");
    let mut got = vec![lines.next("USR1"), lines.next("USR1")];
    got.sort();
    assert_eq!(got, ["SIGUSR1", "buddy SIGUSR1"]);
    assert_eq!(finish(child), 0);
    // tini exits as soon as its command does: the buddy recorder may be left, re-parented to
    // this test process (a subreaper); it ends on its own at the end of its input.
    support::reap_adopted();
}

fn dumb_init_mode() {
    let dir = compat_dir();
    let di = dir.path().join("dumb-init");
    for n in [0, 1, 2, 32, 64, 127, 254, 255] {
        assert_eq!(code(&run(&di, &["sh", "-c", &format!("exit {n}")])), n);
    }
    for s in [15, 2, 3, 9] {
        assert_eq!(code(&run(&di, &["sh", "-c", &format!("kill -{s} $$")])), 128 + s);
    }
    for args in [
        vec!["/doesnotexist"],
        vec!["--", "/doesnotexist"],
        vec!["-c", "/doesnotexist"],
        vec!["--single-child", "--", "/doesnotexist"],
    ] {
        let out = run(&di, &args);
        assert_eq!(code(&out), 2);
        assert!(stderr(&out).contains("[dumb-init] /doesnotexist: No such file or directory\n"), "{}", stderr(&out));
    }
    // Stops at the first operand: "-v" belongs to echo.
    assert_eq!(String::from_utf8_lossy(&run(&di, &["echo", "hi", "-v"]).stdout), "hi -v\n");
    let out = run(&di, &[]);
    assert_eq!(code(&out), 1);
    assert_eq!(stderr(&out), "Usage: dumb-init [option] program [args]\nTry dumb-init --help for full usage.\n");
    for bad in [
        vec!["-r", "0:1", "true"],
        vec!["-r", "TERM:1", "true"],
        vec!["--rewrite", "15:32", "true"],
        vec!["-x", "true"],
    ] {
        assert_eq!(code(&run(&di, &bad)), 1, "{bad:?}");
    }
    for flag in ["-h", "--help", "-V", "--version"] {
        let out = run(&di, &[flag]);
        assert_eq!(code(&out), 0);
        assert!(out.stdout.is_empty() && !out.stderr.is_empty(), "dumb-init prints {flag} on stderr");
    }
    // The command keeps its directory; init moves to /.
    let tmp = tempfile::tempdir().expect("tmp");
    let out = Command::new(&di)
        .args(["sh", "-c", "pwd; readlink /proc/$PPID/cwd"])
        .current_dir(tmp.path())
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(Path::new(lines[0]).canonicalize().ok(), tmp.path().canonicalize().ok());
    assert_eq!(lines[1], "/");
}

fn dumb_init_mode_signals_the_session_and_terms_it_at_exit() {
    let dir = compat_dir();
    let di = dir.path().join("dumb-init");
    // Setsid mode: forwarded signals reach the whole session; rewrites apply.
    let (child, lines) = start_with_helper(&di, &["-r", "10:12"], "sigprobe", &[("FORKYARD_PROBE_BUDDY", "1")]);
    lines.next("ready");
    lines.next("ready");
    let init = Pid::new(child.id() as i32).expect("pid");
    Signal::USR1.send(init).expect("kill");
    let mut got = vec![lines.next("USR2"), lines.next("USR2")];
    got.sort();
    assert_eq!(got, ["SIGUSR2", "buddy SIGUSR2"], "10:12 rewrites USR1 to USR2, for the whole session");
    // Real-time signals, which dumb-init itself cannot forward, get through.
    Signal::rtmin().send(init).expect("kill");
    let mut got = vec![lines.next("RTMIN"), lines.next("RTMIN")];
    got.sort();
    assert_eq!(got, ["SIGRTMIN", "buddy SIGRTMIN"]);
    assert_eq!(finish(child), 0);
    // When the command exits, the rest of its session gets SIGTERM: a recorder started in
    // the background (it runs until SIGTERM) records it.
    let tmp = tempfile::tempdir().expect("tmp");
    let log = tmp.path().join("log");
    let script = format!(
        "{me} > {log} & while [ ! -s {log} ]; do sleep 0.01; done; exit 0",
        me = me().display(),
        log = log.display()
    );
    let out = Command::new(&di)
        .args(["sh", "-c", &script])
        .env("FORKYARD_TEST_HELPER", "sigprobe")
        .env("FORKYARD_PROBE_UNTIL", "TERM")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // dumb-init has no subreaper: the recorder may outlive it, adopted by this test process.
    support::reap_adopted();
    let text = std::fs::read_to_string(&log).expect("the recorder's log");
    assert_eq!(text.lines().nth(1), Some("SIGTERM"), "the orphaned recorder got SIGTERM: {text}");
}

fn dumb_init_mode_stops_with_its_child() {
    let dir = compat_dir();
    let di = dir.path().join("dumb-init");
    let (child, lines) = start_with_helper(&di, &[], "sigprobe", &[]);
    let probe = Pid::new(lines.next("ready").trim_start_matches("ready ").parse().expect("pid")).expect("pid");
    let init = Pid::new(child.id() as i32).expect("pid");
    Signal::TSTP.send(init).expect("kill");
    // The recorder cannot catch SIGSTOP: both it and init end up stopped.
    for pid in [probe, init] {
        support::wait_for("a stopped process", support::PATIENCE, || {
            (support::state(pid) == Some(State::Stopped)).then_some(())
        });
    }
    Signal::CONT.send(init).expect("kill");
    assert_eq!(lines.next("CONT"), "SIGCONT");
    assert!(matches!(support::state(init), Some(State::Sleeping | State::Running)));
    assert_eq!(finish(child), 0);
}

fn dumb_init_mode_speaks_dumb_inits_words() {
    let dir = compat_dir();
    let di = dir.path().join("dumb-init");
    // dumb-init 1.2.5's debug lines, in its order (its own tests match them). Setsid mode:
    // the child announces itself; the parent's lines end the output.
    let out = Command::new(&di).args(["-v", "echo", "oh,", "hi"]).stdin(Stdio::null()).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "oh, hi\n");
    let err = stderr(&out);
    assert!(err.lines().any(|l| l == "[dumb-init] setsid complete."), "{err}");
    let parent: Vec<&str> =
        err.lines().filter(|l| !l.contains("setsid complete") && !l.contains("controlling tty")).collect();
    let want = [
        "[dumb-init] Child spawned with PID #.",
        "[dumb-init] Received signal #.",
        "[dumb-init] A child with PID # exited with exit status #.",
        "[dumb-init] Forwarded signal # to children.",
        "[dumb-init] Child exited with status #. Goodbye.",
    ];
    assert_eq!(parent.iter().map(|l| collapse_digits(l)).collect::<Vec<_>>(), want, "{err}");
    assert!(parent[1].ends_with(" 17.") && parent[3].contains(" 15 "), "{err}");
    // Single-child mode: exactly these lines, nothing else.
    let out =
        Command::new(&di).args(["--verbose", "-c", "echo", "oh,", "hi"]).stdin(Stdio::null()).output().expect("run");
    let lines: Vec<String> = stderr(&out).lines().map(collapse_digits).collect();
    assert_eq!(lines, want, "{}", stderr(&out));
    // Rewrite errors: dumb-init's usage message and exit 1.
    let usage = "Usage: -r option takes <signum>:<signum>, where <signum> is between 1 and 31.\n\
                 This option can be specified multiple times.\nUse --help for full usage.\n";
    for extra in [
        vec!["-r"],
        vec!["-r", ""],
        vec!["-r", "herp"],
        vec!["-r", "herp:derp"],
        vec!["-r", "15"],
        vec!["-r", "15::12"],
        vec!["-r", "15:derp"],
        vec!["-r", "15:12", "-r", "0"],
        vec!["-r", "15:12", "-r", "1:32"],
    ] {
        let mut args = extra.clone();
        args.extend(["echo", "oh,", "hi"]);
        let out = run(&di, &args);
        assert_eq!(code(&out), 1, "{extra:?}");
        assert_eq!(stderr(&out), usage, "{extra:?}");
    }
    // "-r" with nothing after it is getopt's error, as glibc words it.
    let out = run(&di, &["-r"]);
    assert_eq!((code(&out), stderr(&out)), (1, "dumb-init: option requires an argument -- 'r'\n".to_string()));
    let out = run(&di, &["--yolo", "/bin/true"]);
    assert_eq!((code(&out), stderr(&out)), (1, "dumb-init: unrecognized option '--yolo'\n".to_string()));
}

fn collapse_digits(line: &str) -> String {
    let mut out = String::new();
    for c in line.chars() {
        let c = if c.is_ascii_digit() { '#' } else { c };
        if !(c == '#' && out.ends_with('#')) {
            out.push(c);
        }
    }
    out
}

fn tini_mode_keeps_the_signal_configuration() {
    // tini's own test: with TTOU, SEGV and INT ignored and TTIN, ILL and TERM blocked
    // before tini starts, the command has exactly that, although tini changes the same
    // signals for itself.
    let dir = compat_dir();
    let tini = dir.path().join("tini");
    let mut cmd = Command::new(&tini);
    cmd.args(["-s", "cat", "/proc/self/status"]).stdin(Stdio::null());
    // SAFETY: between fork and exec of tini: signal and sigprocmask only.
    unsafe {
        cmd.pre_exec(|| {
            for s in [libc::SIGTTOU, libc::SIGSEGV, libc::SIGINT] {
                libc::signal(s, libc::SIG_IGN);
            }
            let set: SignalSet = [Signal::TTIN, Signal::ILL, Signal::TERM].into_iter().collect();
            let _ = set.block();
            Ok(())
        });
    }
    let out = cmd.output().expect("run");
    let status = String::from_utf8_lossy(&out.stdout);
    let (ign, blk) = (status_bits(&status, "SigIgn:"), status_bits(&status, "SigBlk:"));
    for s in [Signal::TTOU, Signal::SEGV, Signal::INT] {
        assert_ne!(ign & (1 << (s.as_raw() - 1)), 0, "{s} must stay ignored");
    }
    for s in [Signal::TTIN, Signal::ILL, Signal::TERM] {
        assert_ne!(blk & (1 << (s.as_raw() - 1)), 0, "{s} must stay blocked");
    }
}

fn catatonit_mode() {
    let dir = compat_dir();
    let cat = dir.path().join("catatonit");
    assert_eq!(code(&run(&cat, &["--", "sh", "-c", "exit 5"])), 5);
    assert_eq!(code(&run(&cat, &["--", "sh", "-c", "kill -TERM $$"])), 143);
    // Permutation: "-c" is taken as catatonit's own option, and refused.
    let out = run(&cat, &["sh", "-c", "exit 5"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("invalid option -- 'c'"));
    let out = run(&cat, &["/doesnotexist"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("failed to exec pid1: No such file or directory"), "{}", stderr(&out));
    assert_eq!(code(&run(&cat, &[])), 1);
    let out = run(&cat, &["-V"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tini version "));
    // Inherited descriptors are closed in init once the program runs; the program keeps them.
    let file = std::fs::File::open("/etc/hostname").or_else(|_| std::fs::File::open("/etc/passwd")).expect("a file");
    let out = Command::new(&cat)
        .args(["--", "sh", "-c", "ls /proc/$PPID/fd | tr '\\n' ' '; echo; ls /proc/$$/fd | tr '\\n' ' '"])
        .stdin(Stdio::from(file))
        .stderr(Stdio::inherit())
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.is_empty());
    // LISTEN_PID naming catatonit is rewritten to the program's PID.
    let script = "exec %CAT% -- sh -c 'echo $LISTEN_PID $$'";
    let out = Command::new("sh")
        .args(["-c", &format!("LISTEN_PID=$$ {}", script.replace("%CAT%", &cat.display().to_string()))])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(v.len(), 2, "{text}");
    assert_eq!(v[0], v[1], "LISTEN_PID names the program: {text}");
}

/// `podman run --init --init-path forkyard` runs it as `/run/podman-init -- CMD`.
fn podman_init_is_catatonit() {
    let dir = compat_dir();
    let podman = dir.path().join("podman-init");
    assert_eq!(code(&run(&podman, &["--", "sh", "-c", "exit 5"])), 5);
    let out = run(&podman, &["/doesnotexist"]);
    assert!(stderr(&out).contains("failed to exec pid1"), "catatonit's wording: {}", stderr(&out));
}

fn catatonit_pause_mode() {
    let dir = compat_dir();
    let mut child = Command::new(dir.path().join("catatonit")).arg("-P").stdin(Stdio::null()).spawn().expect("spawn");
    let pid = Pid::new(child.id() as i32).expect("pid");
    support::wait_for("catatonit to block its signals", support::PATIENCE, || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        (status_bits(&status, "SigBlk:") & (1 << 14) != 0).then_some(())
    });
    Signal::USR1.send(pid).expect("kill");
    Signal::TERM.send(pid).expect("kill");
    let status = support::wait_for("pause mode to end", support::PATIENCE, || child.try_wait().expect("try_wait"));
    assert_eq!(status.code(), Some(0), "SIGUSR1 ignored, SIGTERM ends it with 0");
    let _ = std::io::stdin().read(&mut []);
}

// --- started already a child subreaper ---------------------------------------------------------

/// Runs `program args... HELPER` as a launcher would that made it a child subreaper before
/// `execve` (the flag survives it), with the `adopted` helper as the command.
fn launched_as_subreaper(program: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).arg(me()).env("FORKYARD_TEST_HELPER", "adopted").stdin(Stdio::null());
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("run the init")
}

/// The command's orphans went to the init and were collected; it exited 0.
fn assert_adopted_and_reaped(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("adopted and reaped 10"), "stdout: {stdout}\nstderr: {}", stderr(out));
    assert_eq!(code(out), 0, "{}", stderr(out));
}

fn inherited_subreaper_forkyard_init() {
    // With --no-subreaper init sets nothing itself: the inherited flag is what adopts.
    let out = launched_as_subreaper(Path::new(forkyard_bin()), &["init", "--no-subreaper", "-vv", "--"]);
    assert_adopted_and_reaped(&out);
    let err = stderr(&out);
    assert!(err.contains("forkyard init: already a child subreaper"), "{err}");
    assert!(!err.contains("warning"), "{err}");
}

fn inherited_subreaper_tini() {
    let dir = compat_dir();
    // No -s and not PID 1, but started a subreaper: tini checks the flag and keeps quiet.
    let out = launched_as_subreaper(&dir.path().join("tini"), &["--"]);
    assert_adopted_and_reaped(&out);
    let err = stderr(&out);
    assert!(!err.contains("WARN") && !err.contains("isn't registered as a child subreaper"), "{err}");
    // The control: the same start without the flag warns.
    let out = run(&dir.path().join("tini"), &["true"]);
    assert!(stderr(&out).contains("isn't registered as a child subreaper"), "{}", stderr(&out));
}

fn inherited_subreaper_dumb_init() {
    let dir = compat_dir();
    // dumb-init never asks for the flag; started with it, it collects what it is given.
    for args in [&["-c"][..], &[][..]] {
        let out = launched_as_subreaper(&dir.path().join("dumb-init"), args);
        assert_adopted_and_reaped(&out);
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

fn inherited_subreaper_catatonit() {
    let dir = compat_dir();
    let out = launched_as_subreaper(&dir.path().join("catatonit"), &["--"]);
    assert_adopted_and_reaped(&out);
    assert_eq!(stderr(&out), "");
}
