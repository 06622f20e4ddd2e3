//! `Launch::start` against real programs: arguments, environment, directory and streams
//! reach the child; `PATH` is searched; every way the child can fail before or at `exec`
//! comes back as an error naming the step; the child starts in the process group and cgroup
//! asked for.

mod support;

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use forkyard::error::StartStep;
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
        ("the_child_gets_our_signal_mask_and_we_keep_it", the_child_gets_our_signal_mask_and_we_keep_it),
        ("clone3_answered_enosys_falls_back_to_fork", clone3_answered_enosys_falls_back_to_fork),
        ("before_exec_the_child_has_no_handler_of_ours", before_exec_the_child_has_no_handler_of_ours),
        ("clone3_answered_eperm_falls_back_to_fork", clone3_answered_eperm_falls_back_to_fork),
        ("the_child_is_born_in_the_cgroup_given", the_child_is_born_in_the_cgroup_given),
        (
            "a_user_switch_in_a_cgroup_from_a_process_with_threads_does_not_hang",
            a_user_switch_in_a_cgroup_from_a_process_with_threads_does_not_hang,
        ),
        ("a_user_switch_in_the_child_leaves_us_dumpable", a_user_switch_in_the_child_leaves_us_dumpable),
        ("a_thread_local_destructor_can_start_a_child", a_thread_local_destructor_can_start_a_child),
        ("start_passes_listen_pid_even_with_threads", start_passes_listen_pid_even_with_threads),
        ("spawn_refuses_listen_pid_with_threads", spawn_refuses_listen_pid_with_threads),
        ("a_nul_byte_or_no_program_is_invalid_input", a_nul_byte_or_no_program_is_invalid_input),
    ]);
}

fn arguments_environment_directory_and_output_reach_the_child() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut out, w) = support::pipe();
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

fn expect_start(result: forkyard::Result<forkyard::Child>, want_step: StartStep, want_errno: i32) -> String {
    match result {
        Err(e @ Error::Start { .. }) => {
            let Error::Start { step, source, .. } = &e else { unreachable!() };
            assert_eq!(*step, want_step, "{e}");
            assert_eq!(source.raw_os_error(), Some(want_errno), "{e}");
            e.to_string()
        }
        Err(other) => panic!("expected a {want_step} error, got {other}"),
        Ok(mut child) => {
            let status = child.wait();
            panic!("expected a {want_step} error, but the child ran ({status:?})")
        }
    }
}

fn a_missing_program_is_an_exec_error_after_searching_path() {
    let text = expect_start(
        Launch::default().start(Program::new(["forkyard-no-such-program"])),
        StartStep::Exec,
        libc::ENOENT,
    );
    assert!(text.contains("forkyard-no-such-program"), "the message names the program: {text}");
    // The failed child was collected: the harness would report it otherwise.
}

fn a_file_that_cannot_be_run_is_eacces() {
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\necho no\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    expect_start(Launch::default().start(Program::new([script.as_os_str()])), StartStep::Exec, libc::EACCES);
    // The same through PATH: a directory where it is not runnable, then one where it is
    // missing, still ends in EACCES (as execvp reports it).
    let mut program = Program::new(["not-executable"]);
    program.env.push(("PATH".into(), format!("{}:/nonexistent", dir.path().display()).into()));
    expect_start(Launch::default().start(program), StartStep::Exec, libc::EACCES);
}

fn a_missing_directory_is_a_chdir_error() {
    let mut program = Program::new(["true"]);
    program.cwd = Some(PathBuf::from("/nonexistent/forkyard"));
    let text = expect_start(Launch::default().start(program), StartStep::Chdir, libc::ENOENT);
    assert!(text.contains("/nonexistent/forkyard"), "the message names the directory: {text}");
}

fn the_child_leads_its_own_process_group() {
    let launch = Launch::new().group(Group::Own);
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

/// `start` blocks every signal in the calling thread across the clone (its child shares our
/// memory until exec): the child must still end up with our mask, not everything blocked,
/// and our own mask must be as it was.
fn the_child_gets_our_signal_mask_and_we_keep_it() {
    let usr2: forkyard::SignalSet = [Signal::USR2].into_iter().collect();
    let before = usr2.block().expect("block SIGUSR2");
    let mine = forkyard::SignalSet::thread_mask().expect("our mask");
    // `sleep` itself, not through a shell: dash resets the mask when it starts.
    let mut child = Launch::new().start(Program::new(["sleep", "1000"])).expect("start sleep");
    let pid = child.pid();
    support::wait_for("sleep to exec", support::PATIENCE, || {
        Process::read(pid).expect("read").filter(|p| p.comm == "sleep")
    });
    let blocked = status_mask(pid.as_raw(), "SigBlk:").expect("the child's SigBlk");
    let after = forkyard::SignalSet::thread_mask().expect("our mask after start");
    child.kill(Signal::KILL).expect("kill");
    child.wait().expect("wait");
    before.set_thread_mask().expect("restore our mask");
    let bit = |s: Signal| 1u64 << (s.as_raw() - 1);
    assert_ne!(blocked & bit(Signal::USR2), 0, "the child has our SIGUSR2 blocked: {blocked:x}");
    assert_eq!(blocked & bit(Signal::TERM), 0, "and only what we block: {blocked:x}");
    assert!(after.contains(Signal::USR2) && !after.contains(Signal::TERM), "our mask is unchanged");
    assert_eq!(after.iter().collect::<Vec<_>>(), mine.iter().collect::<Vec<_>>(), "our mask is unchanged");
}

extern "C" fn count_usr1(_: libc::c_int) {
    USR1_SEEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

static USR1_SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A field of `/proc/PID/status` as a hexadecimal mask.
fn status_mask(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix(field))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The child of `start` may share our memory until its exec: no handler of ours may be in
/// it, and every signal (the C library's own too) stays blocked until its last step. The
/// child is held before its exec by its `announce` write into a full pipe, and looked at
/// from another thread (ours sleeps in the clone meanwhile).
fn before_exec_the_child_has_no_handler_of_ours() {
    // SAFETY: a handler that only bumps an atomic.
    unsafe { libc::signal(libc::SIGUSR1, count_usr1 as *const () as libc::sighandler_t) };
    let (mut out, w) = support::pipe();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&w);
    // SAFETY: fcntl with plain flags on a descriptor we hold, and writes from a valid buffer.
    unsafe {
        libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
        while libc::write(fd, [0u8; 4096].as_ptr().cast(), 4096) > 0 {}
        libc::fcntl(fd, libc::F_SETFL, 0);
    }
    let me = std::process::id() as i32;
    let watcher = std::thread::spawn(move || {
        let child = support::wait_for("the child, held in its announce", support::PATIENCE, || {
            std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
                let pid: i32 = e.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let ppid: i32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
                (ppid == me).then_some(pid)
            })
        });
        let seen = (status_mask(child, "SigCgt:"), status_mask(child, "SigBlk:"));
        // Let it go on to its exec.
        std::io::copy(&mut out, &mut std::io::sink()).expect("drain the pipe");
        seen
    });
    let mut program = Program::new(["true"]);
    program.stdio[2] = Some(w);
    let mut child = Launch::new().announce(b"held\n".to_vec()).start(program).expect("start true");
    assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(0));
    let (caught, blocked) = watcher.join().expect("the watcher");
    // SAFETY: back to the default action.
    unsafe { libc::signal(libc::SIGUSR1, libc::SIG_DFL) };
    let (caught, blocked) = (caught.expect("SigCgt"), blocked.expect("SigBlk"));
    let bit = |n: i32| 1u64 << (n - 1);
    assert_eq!(caught & bit(libc::SIGUSR1), 0, "our SIGUSR1 handler is not in the child: SigCgt {caught:x}");
    assert_eq!(caught, 0, "no handler at all is in the child: SigCgt {caught:x}");
    for n in [libc::SIGTERM, libc::SIGUSR1, 32, 33] {
        assert_ne!(blocked & bit(n), 0, "signal {n} is blocked until the child's last step: SigBlk {blocked:x}");
    }
}

/// Makes every later `clone3` of this process (and its children) fail with `errno`, as a
/// container's seccomp profile does: Docker's default answers ENOSYS, profiles before Docker
/// 20.10 answered EPERM. For good: each test runs in a process of its own.
fn refuse_clone3(errno: u32) {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
    const ERRNO: u32 = 0x0005_0000; // SECCOMP_RET_ERRNO
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let filter = [
        op(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        op(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        op(RET_K, 0, 0, ALLOW),
        op(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        op(JEQ_K, 0, 1, libc::SYS_clone3 as u32),
        op(RET_K, 0, 0, ERRNO | errno),
        op(RET_K, 0, 0, ALLOW),
    ];
    let program = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
    // SAFETY: prctl with plain numbers, then with a filter program that outlives the call.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0, "no_new_privs");
        assert_eq!(
            libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &program as *const libc::sock_fprog),
            0,
            "the seccomp filter: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// `start` (and `start` into a cgroup) still starts the program when `clone3` is refused.
fn clone3_refused_then_start(errno: u32) {
    refuse_clone3(errno);
    // SAFETY: a direct clone3 with no arguments, only to see the filter answer.
    let raw = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
    assert_eq!((raw, std::io::Error::last_os_error().raw_os_error()), (-1, Some(errno as i32)), "the filter works");
    let mut child = Launch::new().start(Program::new(["sh", "-c", "exit 7"])).expect("start without clone3");
    assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(7));
    let name = format!("forkyard-spawn-noclone3-{}", std::process::id());
    if let Some(dir) = forkyard::procs::own_cgroup().map(|d| d.join(&name)).filter(|d| std::fs::create_dir(d).is_ok()) {
        let fd = std::fs::File::open(&dir).expect("open the cgroup");
        let launch = Launch::new().cgroup(fd.as_fd());
        let mut child = launch.start(Program::new(["sh", "-c", "grep -q noclone3 /proc/self/cgroup"])).expect("start");
        assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(0), "the child joined the cgroup itself");
        drop(fd);
        let _ = std::fs::remove_dir(&dir);
    }
}

fn clone3_answered_enosys_falls_back_to_fork() {
    clone3_refused_then_start(libc::ENOSYS as u32);
}

fn clone3_answered_eperm_falls_back_to_fork() {
    clone3_refused_then_start(libc::EPERM as u32);
}

fn the_child_is_born_in_the_cgroup_given() {
    let name = format!("forkyard-spawn-test-{}", std::process::id());
    let Some(dir) = forkyard::procs::own_cgroup().map(|d| d.join(&name)).filter(|d| std::fs::create_dir(d).is_ok())
    else {
        eprintln!("SKIPPED: no writable cgroup2 here, so nothing to check");
        return;
    };
    let handle = std::fs::File::open(&dir).expect("open the cgroup directory");
    let launch = Launch::new().cgroup(handle.as_fd());
    let (mut out, w) = support::pipe();
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

/// Regression: glibc's `setgroups`/`setgid`/`setuid` in a process with threads make every
/// thread change too, and a child started by `clone3` (which `start` uses to be born in a
/// cgroup) still has the parent's view of its threads: when one of them was still being
/// created at the moment of the clone, the child waited for it for ever. `forkyard up`,
/// which starts its output thread just before its first service, hung one time in ten
/// starting a service with a `user`.
fn a_user_switch_in_a_cgroup_from_a_process_with_threads_does_not_hang() {
    let name = format!("forkyard-setxid-test-{}", std::process::id());
    let Some(dir) = forkyard::procs::own_cgroup().map(|d| d.join(&name)).filter(|d| std::fs::create_dir(d).is_ok())
    else {
        eprintln!("SKIPPED: no writable cgroup2 here, so start forks without clone3");
        return;
    };
    let handle = std::fs::File::open(&dir).expect("open the cgroup directory");
    let nobody = forkyard::users::credentials(Some("nobody"), None).expect("nobody exists");
    // A hung child keeps `start` (a vfork) from returning: start from a thread, and fail by
    // a time limit.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let starter = std::thread::spawn(move || {
        let launch = Launch::new().cgroup(handle.as_fd()).credentials(nobody);
        for _ in 0..100 {
            // A thread just created, as the start happens: the moment the hang needed.
            let fresh = std::thread::spawn(|| ());
            let mut child = launch.start(Program::new(["true"])).expect("start true as nobody");
            assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(0));
            let _ = fresh.join();
        }
        let _ = done_tx.send(());
    });
    let finished = done_rx.recv_timeout(support::PATIENCE).is_ok();
    if !finished {
        // A child stuck in glibc: kill it (and so free the starter), then fail.
        for p in forkyard::procs::Snapshot::take().expect("snapshot").children(forkyard::Pid::this()) {
            let _ = Signal::KILL.send(p.pid);
        }
    }
    let _ = starter.join();
    let _ = std::fs::remove_dir(&dir);
    assert!(finished, "starting a program as nobody from a process with threads hung");
}

/// The kernel marks the memory of a process whose user changes as not dumpable: when the
/// child shared our memory (CLONE_VM) as it switched to its user, that was our memory, and
/// this process lost its core dumps (PR_GET_DUMPABLE read 0 after the start).
fn a_user_switch_in_the_child_leaves_us_dumpable() {
    // SAFETY: prctl with plain numbers.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) }, 0, "make us dumpable");
    let nobody = forkyard::users::credentials(Some("nobody"), None).expect("nobody exists");
    let mut child = Launch::new().credentials(nobody).start(Program::new(["true"])).expect("start true as nobody");
    assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(0));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 1, "we are still dumpable");
}

/// Starts `true` when dropped, and sends how that went.
struct StartsOnDrop(std::sync::mpsc::Sender<String>);

impl Drop for StartsOnDrop {
    fn drop(&mut self) {
        let outcome =
            std::panic::catch_unwind(|| Launch::new().start(Program::new(["true"])).and_then(|mut c| c.wait()));
        let _ = self.0.send(match outcome {
            Ok(status) => format!("{status:?}"),
            Err(_) => "start panicked".to_string(),
        });
    }
}

thread_local! {
    static STARTS_ON_DROP: std::cell::RefCell<Option<StartsOnDrop>> = const { std::cell::RefCell::new(None) };
}

/// `start` keeps its child's stack in a thread-local, which a thread's exit destroys: a
/// thread-local destructor that starts a child after that (a clean-up hook) must still
/// work, not panic (which aborts the process there).
fn a_thread_local_destructor_can_start_a_child() {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        // Ours is made first, so destroyed after `start`'s own (the reverse order).
        STARTS_ON_DROP.with(|slot| *slot.borrow_mut() = Some(StartsOnDrop(tx)));
        let mut child = Launch::new().start(Program::new(["true"])).expect("start true");
        assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(0));
    });
    thread.join().expect("the thread ends");
    let outcome = rx.recv_timeout(support::PATIENCE).expect("the destructor ran");
    assert_eq!(outcome, format!("{:?}", Ok::<_, forkyard::Error>(ExitStatus::Exited(0))));
}

/// Runs `sh` to print `$LISTEN_PID $$` through `start` and returns the two numbers.
fn listen_pid_seen_by(launch: &Launch<'_>) -> (String, String) {
    let (mut out, w) = support::pipe();
    let mut program = Program::new(["sh", "-c", "echo $LISTEN_PID $$"]);
    program.stdio[1] = Some(w);
    let mut child = launch.start(program).expect("start sh");
    let mut text = String::new();
    out.read_to_string(&mut text).expect("read");
    assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(0));
    let mut words = text.split_whitespace().map(str::to_owned);
    (words.next().unwrap_or_default(), words.next().unwrap_or_default())
}

/// Socket activation: LISTEN_PID naming this process is renamed to the child, which will use
/// the sockets. `start` fills the child's PID into an environment built before the fork, so
/// other threads do not matter.
fn start_passes_listen_pid_even_with_threads() {
    let me = forkyard::Pid::this().to_string();
    // SAFETY: no other thread exists yet to read the environment concurrently.
    unsafe { std::env::set_var("LISTEN_PID", &me) };
    let (listen_pid, child) = listen_pid_seen_by(&Launch::new().pass_listen_pid(true));
    assert_eq!(listen_pid, child, "LISTEN_PID names the child");
    let (listen_pid, _) = listen_pid_seen_by(&Launch::new());
    assert_eq!(listen_pid, me, "left alone unless asked");
    let (park_tx, park_rx) = std::sync::mpsc::channel::<()>();
    let parked = std::thread::spawn(move || park_rx.recv());
    let (listen_pid, child) = listen_pid_seen_by(&Launch::new().pass_listen_pid(true));
    assert_eq!(listen_pid, child, "LISTEN_PID names the child, from a process with threads");
    drop(park_tx);
    let _ = parked.join();
}

/// `spawn` would call setenv in the child, which may deadlock when another thread held the
/// environment lock at the fork: with threads, it refuses, and says why.
fn spawn_refuses_listen_pid_with_threads() {
    let (park_tx, park_rx) = std::sync::mpsc::channel::<()>();
    let parked = std::thread::spawn(move || park_rx.recv());
    let refused = Launch::new().pass_listen_pid(true).spawn(&mut std::process::Command::new("true"));
    drop(park_tx);
    let _ = parked.join();
    // A joined thread can still be counted in /proc/self/task for a moment after it ended:
    // wait until the kernel has let it go.
    support::wait_for("the parked thread to be gone", support::PATIENCE, || {
        (std::fs::read_dir("/proc/self/task").ok()?.count() == 1).then_some(())
    });
    match refused {
        Err(e @ Error::Unsupported { .. }) => assert!(e.to_string().contains("2 threads"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut child =
        Launch::new().pass_listen_pid(true).spawn(&mut std::process::Command::new("true")).expect("one thread");
    assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(0));
}

/// Input that can never run is the caller's mistake, told apart from a kernel refusal.
fn a_nul_byte_or_no_program_is_invalid_input() {
    for program in [Program::new(["sh", "-c", "echo a\0b"]), Program::new(Vec::<String>::new())] {
        match Launch::new().start(program) {
            Err(e @ Error::InvalidInput { .. }) => assert_eq!(e.raw_os_error(), None, "{e}"),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }
}
