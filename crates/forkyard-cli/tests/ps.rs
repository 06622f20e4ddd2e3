//! `forkyard ps` run as a user would: tables, zombies with their guilty parent, trees,
//! JSON, and its errors and exit codes.

#[path = "../../forkyard/tests/support/mod.rs"]
mod support;

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Output, Stdio};

use forkyard::{Fork, Pid};

fn main() {
    support::run(&[
        ("table_lists_this_process_with_its_command_line", table_lists_this_process_with_its_command_line),
        (
            "zombies_are_listed_with_the_parent_that_should_collect_them",
            zombies_are_listed_with_the_parent_that_should_collect_them,
        ),
        ("tree_of_a_pid_draws_its_descendants", tree_of_a_pid_draws_its_descendants),
        ("json_is_parseable", json_is_parseable),
        ("unknown_pid_exits_1_and_bad_options_exit_2", unknown_pid_exits_1_and_bad_options_exit_2),
        ("a_closed_pipe_is_not_an_error", a_closed_pipe_is_not_an_error),
        ("control_characters_in_names_are_escaped", control_characters_in_names_are_escaped),
    ])
}

fn forkyard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forkyard")).args(args).output().expect("running forkyard")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "forkyard failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn zombie_child() -> forkyard::Child {
    // SAFETY: single-threaded test process; the child only calls _exit.
    let child = match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => forkyard::exit_child(0),
        Fork::Parent(child) => child,
    };
    support::wait_zombie(child.pid());
    child
}

fn table_lists_this_process_with_its_command_line() {
    let text = stdout(&forkyard(&["ps"]));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(header, ["PID", "PPID", "PGID", "SID", "TTY", "S", "USER", "TIME", "COMMAND"]);
    let me = Pid::this().to_string();
    let row = lines.find(|l| l.split_whitespace().next() == Some(me.as_str())).expect("a row for this test process");
    let exe = std::env::current_exe().expect("exe");
    assert!(row.contains(&*exe.to_string_lossy()), "{row}");
    // Columns are aligned: every line has its PID right-aligned to the same width.
    let widths: std::collections::HashSet<usize> =
        text.lines().map(|l| l.find(|c: char| c != ' ').unwrap_or(0) + l.trim_start().find(' ').unwrap_or(0)).collect();
    assert_eq!(widths.len(), 1, "PID column not aligned");
}

fn zombies_are_listed_with_the_parent_that_should_collect_them() {
    let mut child = zombie_child();
    let text = stdout(&forkyard(&["ps", "--zombies"]));
    let me = Pid::this();
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(child.pid().to_string().as_str()))
        .unwrap_or_else(|| panic!("zombie {} not listed:\n{text}", child.pid()));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[1], me.to_string(), "{line}");
    assert!(line.contains("<defunct>"), "{line}");
    assert!(line.contains(&*std::env::current_exe().expect("exe").to_string_lossy()), "the parent's command: {line}");
    child.wait().expect("wait");
    let text = stdout(&forkyard(&["ps", "--zombies", "--no-header"]));
    assert!(
        !text.lines().any(|l| l.split_whitespace().next() == Some(child.pid().to_string().as_str())),
        "gone once collected"
    );
}

fn tree_of_a_pid_draws_its_descendants() {
    let mut child = zombie_child();
    let me = Pid::this().to_string();
    let text = stdout(&forkyard(&["ps", "--pid", &me]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].starts_with(&format!("{me:>w$}", w = lines[1].find(&me).expect("root row") + me.len())));
    let child_row = lines.iter().find(|l| l.trim_start().starts_with(&child.pid().to_string())).expect("child row");
    assert!(child_row.contains("└─ [") || child_row.contains("├─ ["), "{child_row}");
    // The forkyard process running this command is our child too.
    assert!(lines.iter().any(|l| l.contains("forkyard ps --pid")), "{text}");
    child.wait().expect("wait");
}

fn json_is_parseable() {
    let mut child = zombie_child();
    let text = stdout(&forkyard(&["ps", "--json"]));
    let all: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let me = all
        .as_array()
        .expect("an array")
        .iter()
        .find(|p| p["pid"] == Pid::this().as_raw())
        .expect("this process is listed");
    assert_eq!(me["ppid"], Pid::parent().as_raw());
    assert!(me["cmdline"].as_array().is_some_and(|a| !a.is_empty()));
    let zombies: serde_json::Value =
        serde_json::from_str(&stdout(&forkyard(&["ps", "--zombies", "--json"]))).expect("valid JSON");
    let z = zombies.as_array().expect("an array").iter().find(|z| z["pid"] == child.pid().as_raw()).expect("listed");
    assert_eq!(z["state"], "Z");
    assert!(z["parent_command"].as_str().is_some_and(|c| !c.is_empty()));
    child.wait().expect("wait");
}

fn unknown_pid_exits_1_and_bad_options_exit_2() {
    let out = forkyard(&["ps", "--pid", "2147483647"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no process with PID 2147483647"));
    let out = forkyard(&["ps", "--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
    let out = forkyard(&["ps", "--pid", "abc"]);
    assert_eq!(out.status.code(), Some(2));
}

fn a_closed_pipe_is_not_an_error() {
    // `forkyard ps | head -1`: the reader goes away. Here the read end is closed before
    // forkyard writes anything, so its very first write fails with EPIPE.
    let mut fds = [0; 2];
    // SAFETY: valid array for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are fresh and ours.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(r);
    // More than forkyard's 64 kB output buffer, so some write fails during the listing, not
    // only at the final flush: 24 shells (waiting on a builtin, so their command line stays) with
    // 4 kB each.
    let long = "x".repeat(4096);
    let mut fillers: Vec<std::process::Child> =
        (0..24).map(|_| Command::new("sh").args(["-c", "exec sleep 3600", &long]).spawn().expect("sh")).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_forkyard"))
        .args(["ps", "--json"])
        .stdout(Stdio::from(w))
        .stderr(Stdio::piped())
        .output()
        .expect("running forkyard");
    for filler in &mut fillers {
        let _ = filler.kill();
        let _ = filler.wait();
    }
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A name that would colour the terminal and split its row: procps shows each control
/// character as `?` (a newline in a command line as a space), and so must we.
fn control_characters_in_names_are_escaped() {
    use std::os::unix::process::CommandExt;
    const NAME: &str = "\x1b[31mred\n)(";
    let mut sleeper = Command::new("sleep").arg0(NAME).arg("60").spawn().expect("sleep");
    let sleeper_pid = sleeper.id().to_string();
    support::wait_for("sleep's new argv[0]", std::time::Duration::from_secs(20), || {
        let cmdline = std::fs::read(format!("/proc/{sleeper_pid}/cmdline")).ok()?;
        cmdline.starts_with(NAME.as_bytes()).then_some(())
    });
    // SAFETY: single-threaded test process; the child renames itself and calls _exit.
    let mut zombie = match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => {
            let name = std::ffi::CString::new(NAME).expect("no NUL");
            // SAFETY: PR_SET_NAME reads a NUL-terminated string of up to 16 bytes.
            unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
            forkyard::exit_child(0)
        }
        Fork::Parent(child) => child,
    };
    support::wait_zombie(zombie.pid());
    let zombie_pid = zombie.pid().to_string();
    let row = |text: &str, pid: &str| -> String {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(pid))
            .unwrap_or_else(|| panic!("no row for {pid}:\n{text}"))
            .to_string()
    };
    for args in [&["ps"][..], &["ps", "--tree"], &["ps", "--zombies"]] {
        let text = stdout(&forkyard(args));
        assert!(!text.contains('\x1b'), "{args:?} printed an escape character:\n{text}");
        assert!(!text.lines().any(|l| l.starts_with(")(")), "{args:?} split a row:\n{text}");
        assert!(row(&text, &zombie_pid).contains("[?[31mred?)(]"), "{args:?}:\n{text}");
        if args.len() == 1 {
            assert!(row(&text, &sleeper_pid).ends_with("?[31mred )( 60"), "{args:?}:\n{text}");
        }
    }
    sleeper.kill().expect("kill sleep");
    sleeper.wait().expect("reap sleep");
    zombie.wait().expect("reap the zombie");
}
