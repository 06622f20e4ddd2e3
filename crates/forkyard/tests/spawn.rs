//! `Launch::start` against real programs: arguments, environment, directory and streams
//! reach the child; `PATH` is searched; every way the child can fail before or at `exec`
//! comes back as an error naming the step; the child starts in the process group and cgroup
//! asked for.

mod support;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use forkyard::procs::Process;
use forkyard::spawn::{Group, Program};
use forkyard::{Error, ExitStatus, Launch, Signal};

fn main() {
    support::run(&[
        (
            "arguments_environment_directory_and_output_reach_the_child",
            arguments_environment_directory_and_output_reach_the_child,
        ),
        (
            "a_missing_program_is_an_exec_error_after_searching_path",
            a_missing_program_is_an_exec_error_after_searching_path,
        ),
        ("a_file_that_cannot_be_run_is_eacces", a_file_that_cannot_be_run_is_eacces),
        ("a_missing_directory_is_a_chdir_error", a_missing_directory_is_a_chdir_error),
        ("the_child_leads_its_own_process_group", the_child_leads_its_own_process_group),
        ("the_child_is_born_in_the_cgroup_given", the_child_is_born_in_the_cgroup_given),
    ]);
}

fn pipe() -> (std::fs::File, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array we pass.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe2");
    // SAFETY: both descriptors are fresh and ours.
    unsafe {
        use std::os::fd::FromRawFd;
        (std::fs::File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

fn arguments_environment_directory_and_output_reach_the_child() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut out, w) = pipe();
    let err = w.try_clone().expect("dup");
    // `sh` is found through PATH; its arguments, a variable and the directory come through.
    let mut program = Program::new(["sh", "-c", "echo \"$1 $GREETING\"; pwd; echo oops >&2", "sh", "first"]);
    program.env.push(("GREETING".into(), "hello".into()));
    program.cwd = Some(dir.path().to_path_buf());
    program.stdio = [None, Some(w), Some(err)];
    let mut child = Launch::default().start(program).expect("start sh");
    let mut text = String::new();
    out.read_to_string(&mut text).expect("read the child's output");
    assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(0));
    let real = std::fs::canonicalize(dir.path()).expect("canonical");
    assert_eq!(text, format!("first hello\n{}\noops\n", real.display()));
}

fn expect_sys(result: forkyard::Result<forkyard::Child>, want_call: &str, want_errno: i32) -> String {
    match result {
        Err(e @ Error::Sys { .. }) => {
            let Error::Sys { call, source, .. } = &e else { unreachable!() };
            assert_eq!(*call, want_call, "{e}");
            assert_eq!(source.raw_os_error(), Some(want_errno), "{e}");
            e.to_string()
        }
        Err(other) => panic!("expected a {want_call} error, got {other}"),
        Ok(mut child) => {
            let status = child.wait();
            panic!("expected a {want_call} error, but the child ran ({status:?})")
        }
    }
}

fn a_missing_program_is_an_exec_error_after_searching_path() {
    let text = expect_sys(Launch::default().start(Program::new(["forkyard-no-such-program"])), "exec", libc::ENOENT);
    assert!(text.contains("forkyard-no-such-program"), "the message names the program: {text}");
    // The failed child was collected: the harness would report it otherwise.
}

fn a_file_that_cannot_be_run_is_eacces() {
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\necho no\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    expect_sys(Launch::default().start(Program::new([script.as_os_str()])), "exec", libc::EACCES);
    // The same through PATH: a directory where it is not runnable, then one where it is
    // missing, still ends in EACCES (as execvp reports it).
    let mut program = Program::new(["not-executable"]);
    program.env.push(("PATH".into(), format!("{}:/nonexistent", dir.path().display()).into()));
    expect_sys(Launch::default().start(program), "exec", libc::EACCES);
}

fn a_missing_directory_is_a_chdir_error() {
    let mut program = Program::new(["true"]);
    program.cwd = Some(PathBuf::from("/nonexistent/forkyard"));
    let text = expect_sys(Launch::default().start(program), "chdir", libc::ENOENT);
    assert!(text.contains("/nonexistent/forkyard"), "the message names the directory: {text}");
}

fn the_child_leads_its_own_process_group() {
    let launch = Launch { group: Group::Own, ..Launch::default() };
    let mut child = launch.start(Program::new(["sleep", "1000"])).expect("start sleep");
    let pid = child.pid();
    let me = support::wait_for("sleep to exec", support::PATIENCE, || {
        Process::read(pid).expect("read").filter(|p| p.comm == "sleep")
    });
    assert_eq!(me.pgid, pid.as_raw(), "the child leads a group of its own");
    assert_ne!(me.pgid, forkyard::Pid::this().as_raw());
    child.kill(Signal::KILL).expect("kill");
    assert_eq!(child.wait().expect("wait"), ExitStatus::Signaled { signal: Signal::KILL, core_dumped: false });
}

/// This process's cgroup v2 directory, if cgroup2 is mounted.
fn own_cgroup_dir() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right.starts_with("cgroup2 ").then(|| left.split(' ').nth(4).map(str::to_string)).flatten()
    })?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(Path::new(&mount).join(path.trim_start_matches('/')))
}

fn the_child_is_born_in_the_cgroup_given() {
    let name = format!("forkyard-spawn-test-{}", std::process::id());
    let Some(dir) = own_cgroup_dir().map(|d| d.join(&name)).filter(|d| std::fs::create_dir(d).is_ok()) else {
        eprintln!("SKIPPED: no writable cgroup2 here, so nothing to check");
        return;
    };
    let handle = std::fs::File::open(&dir).expect("open the cgroup directory");
    let launch = Launch { cgroup: Some(std::os::fd::AsRawFd::as_raw_fd(&handle)), ..Launch::default() };
    let (mut out, w) = pipe();
    let mut program = Program::new(["cat", "/proc/self/cgroup"]);
    program.stdio[1] = Some(w);
    let mut child = launch.start(program).expect("start cat");
    let mut text = String::new();
    out.read_to_string(&mut text).expect("read");
    assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(0));
    let removed = std::fs::remove_dir(&dir);
    let line = text.lines().find(|l| l.starts_with("0::")).unwrap_or_default().to_string();
    assert!(line.ends_with(&format!("/{name}")), "the child's cgroup: {text:?}");
    removed.expect("the cgroup is empty again and can be removed");
}
