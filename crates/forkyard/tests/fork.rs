//! `fork` and closures in children, against real processes: results, independent memory,
//! and every way a child can fail to answer (panic, signal, early exit, a closed pipe, a
//! result that does not decode, death in the middle of writing), each leaving no zombie.

mod support;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use forkyard::{Error, ExitStatus, Fork, Pid, Signal, run_in_child};
use serde::{Deserialize, Serialize};

fn main() {
    support::run(&[
        ("typed_result_comes_back", typed_result_comes_back),
        ("child_memory_is_a_copy", child_memory_is_a_copy),
        (
            "raw_fork_returns_child_in_parent_and_nothing_in_child",
            raw_fork_returns_child_in_parent_and_nothing_in_child,
        ),
        ("exit_child_skips_destructors", exit_child_skips_destructors),
        ("panic_comes_back_with_its_message", panic_comes_back_with_its_message),
        ("death_by_signal_comes_back_as_the_signal", death_by_signal_comes_back_as_the_signal),
        ("early_exit_is_an_error", early_exit_is_an_error),
        ("child_closing_the_pipe_is_an_error", child_closing_the_pipe_is_an_error),
        ("undecodable_result_is_an_error", undecodable_result_is_an_error),
        ("killed_while_writing_is_an_error", killed_while_writing_is_an_error),
        ("large_result_is_streamed_whole", large_result_is_streamed_whole),
        ("grandchild_holding_the_pipe_does_not_hang", grandchild_holding_the_pipe_does_not_hang),
        ("refuses_a_multithreaded_process", refuses_a_multithreaded_process),
        ("fork_refused_by_the_process_limit_is_an_error", fork_refused_by_the_process_limit_is_an_error),
        ("results_come_back_when_sigchld_is_ignored", results_come_back_when_sigchld_is_ignored),
    ])
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Report {
    id: u32,
    pid: i32,
    words: Vec<String>,
}

fn typed_result_comes_back() {
    let me = Pid::this();
    let report = run_in_child(|| Report { id: 1, pid: Pid::this().as_raw(), words: vec!["work".into(), "1".into()] })
        .expect("the child answers");
    assert_eq!(report.id, 1);
    assert_eq!(report.words, ["work", "1"]);
    assert_ne!(report.pid, me.as_raw(), "the closure ran in another process");
}

fn child_memory_is_a_copy() {
    // The seed: var = 10; the child sets 9; the parent still has 10.
    let mut var = 10;
    let seen_in_child = run_in_child(|| {
        var = 9;
        var
    })
    .expect("the child answers");
    assert_eq!(seen_in_child, 9);
    assert_eq!(var, 10, "the parent's copy must be untouched");

    let mut list = vec![1, 2, 3];
    let len = run_in_child(|| {
        list.clear();
        list.len()
    })
    .expect("the child answers");
    assert_eq!((len, list), (0, vec![1, 2, 3]));
}

fn raw_fork_returns_child_in_parent_and_nothing_in_child() {
    let (r, w) = pipe();
    // SAFETY: this test process is single-threaded (the harness runs tests on the main
    // thread), and the child only writes and exits.
    match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => {
            let pid = Pid::this().as_raw().to_le_bytes();
            // SAFETY: writing four bytes from a valid buffer to an open descriptor.
            unsafe { libc::write(w.as_raw_fd(), pid.as_ptr().cast(), 4) };
            forkyard::exit_child(7)
        }
        Fork::Parent(mut child) => {
            drop(w);
            let mut buf = [0u8; 4];
            std::fs::File::from(r).read_exact(&mut buf).expect("the child's PID");
            assert_eq!(i32::from_le_bytes(buf), child.pid().as_raw(), "fork's PID in the parent is the child's own");
            assert!(child.pidfd().is_some(), "this kernel has pidfds");
            assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(7));
        }
    }
}

struct Announce(OwnedFd);

impl Drop for Announce {
    fn drop(&mut self) {
        // SAFETY: a one-byte write from a static buffer to an open descriptor.
        unsafe { libc::write(self.0.as_raw_fd(), b"D".as_ptr().cast(), 1) };
    }
}

fn exit_child_skips_destructors() {
    let (r, w) = pipe();
    let guard = Announce(w);
    let value = run_in_child(|| 5).expect("the child answers");
    assert_eq!(value, 5);
    drop(guard); // exactly one "D": ours
    let mut seen = String::new();
    std::fs::File::from(r).read_to_string(&mut seen).expect("reading the pipe");
    assert_eq!(seen, "D", "the child must not run the parent's destructors");
}

fn panic_comes_back_with_its_message() {
    let err = run_in_child(|| -> u32 { panic!("task {} failed", 3) }).expect_err("a panic is an error");
    match &err {
        Error::ChildPanicked { message, .. } => assert_eq!(message, "task 3 failed"),
        other => panic!("expected ChildPanicked, got {other:?}"),
    }
    assert!(err.to_string().contains("panicked: task 3 failed"), "{err}");
}

fn death_by_signal_comes_back_as_the_signal() {
    let err = run_in_child(|| -> u32 {
        // SAFETY: raising a signal on ourselves.
        unsafe { libc::raise(libc::SIGTERM) };
        0
    })
    .expect_err("death is an error");
    match err {
        Error::ChildKilled { signal, status, .. } => {
            assert_eq!(signal, Signal::TERM);
            assert_eq!(status.shell_code(), 143);
        }
        other => panic!("expected ChildKilled, got {other:?}"),
    }
}

fn early_exit_is_an_error() {
    let err = run_in_child(|| -> u32 { std::process::exit(3) }).expect_err("no result");
    match err {
        Error::ChildExitedEarly { status, .. } => assert_eq!(status, ExitStatus::Exited(3)),
        other => panic!("expected ChildExitedEarly, got {other:?}"),
    }
}

fn child_closing_the_pipe_is_an_error() {
    let err = run_in_child(|| -> u32 {
        // Close every descriptor above stderr, the result pipe among them.
        // SAFETY: close_range on our own descriptor table; nothing below uses them.
        unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
        1
    })
    .expect_err("no result can arrive");
    assert!(matches!(err, Error::ChildExitedEarly { .. }), "{err:?}");
}

/// Serializes as any number, but only decodes from an even one.
#[derive(Serialize, Deserialize, Debug)]
#[serde(try_from = "u32")]
struct Even(u32);

impl TryFrom<u32> for Even {
    type Error = String;
    fn try_from(n: u32) -> Result<Even, String> {
        if n % 2 == 0 { Ok(Even(n)) } else { Err(format!("{n} is odd")) }
    }
}

fn undecodable_result_is_an_error() {
    assert_eq!(run_in_child(|| Even(4)).expect("even decodes").0, 4);
    let err = run_in_child(|| Even(3)).expect_err("odd does not decode");
    match &err {
        // postcard reports a refused value without the type's own message.
        Error::BadResult { reason, .. } => assert!(reason.contains("Deserialization"), "{reason}"),
        other => panic!("expected BadResult, got {other:?}"),
    }
}

/// Sends a megabyte, then dies before the rest.
#[derive(Debug)]
struct DiesHalfway;

impl Serialize for DiesHalfway {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&vec![7u8; 1 << 20])?;
        // SAFETY: raising a signal on ourselves.
        unsafe { libc::raise(libc::SIGKILL) };
        t.serialize_element(&0u8)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for DiesHalfway {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DiesHalfway, D::Error> {
        <(Vec<u8>, u8)>::deserialize(d).map(|_| DiesHalfway)
    }
}

fn killed_while_writing_is_an_error() {
    let err = run_in_child(|| DiesHalfway).expect_err("a cut result is an error");
    match err {
        Error::ChildKilled { signal, .. } => assert_eq!(signal, Signal::KILL),
        other => panic!("expected ChildKilled, got {other:?}"),
    }
}

fn large_result_is_streamed_whole() {
    let data = run_in_child(|| (0..8_000_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>()).expect("answers");
    assert_eq!(data.len(), 8_000_000);
    assert!(data.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
}

fn grandchild_holding_the_pipe_does_not_hang() {
    let (r, w) = pipe();
    let w_raw = w.as_raw_fd();
    // The closure leaves a grandchild that inherited the result pipe and waits on our
    // pipe; the parent must not wait for it to close the result pipe.
    let grandchild = run_in_child(move || {
        // SAFETY: single-threaded child; the grandchild only blocks in read, then _exits.
        match unsafe { forkyard::fork() }.expect("fork") {
            Fork::Child => {
                let mut b = [0u8; 1];
                // SAFETY: closing our inherited copy of the write end, so that the test's
                // close is the last; then reading into a valid one-byte buffer.
                unsafe {
                    libc::close(w_raw);
                    libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1)
                };
                forkyard::exit_child(0)
            }
            Fork::Parent(child) => {
                let pid = child.pid().as_raw();
                std::mem::forget(child);
                pid
            }
        }
    })
    .expect("the child answers although its grandchild holds the pipe");
    // Release the grandchild; it was orphaned when its parent ended, so it is ours (the
    // test process is a subreaper) to collect.
    drop(w);
    let mut orphan = forkyard::Child::from_pid(Pid::new(grandchild).expect("a PID")).expect("adopted by us");
    assert_eq!(orphan.wait().expect("wait"), ExitStatus::Exited(0));
}

fn refuses_a_multithreaded_process() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || rx.recv().ok());
    let err = run_in_child(|| 1).expect_err("two threads");
    match &err {
        Error::MultiThreaded { threads } => assert_eq!(*threads, 2),
        other => panic!("expected MultiThreaded, got {other:?}"),
    }
    assert!(err.to_string().contains("unsafe"), "{err}");
    // The other thread is parked on a channel and holds no lock: the unchecked variant is
    // fine here.
    // SAFETY: see above.
    let value = unsafe { forkyard::run_in_child_unchecked(|| 2) }.expect("answers");
    assert_eq!(value, 2);
    drop(tx);
    thread.join().expect("the thread ends");
}

fn fork_refused_by_the_process_limit_is_an_error() {
    // Root ignores RLIMIT_NPROC, so the check runs in a child that becomes `nobody` with a
    // limit of zero processes; its exit code carries the verdict.
    // SAFETY: single-threaded test process; the child makes ordinary calls and _exits.
    let mut child = match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => {
            let limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: valid rlimit struct; setuid with a plain number.
            unsafe {
                libc::setrlimit(libc::RLIMIT_NPROC, &limit);
                if libc::geteuid() == 0 {
                    libc::setgid(65534);
                    libc::setuid(65534);
                }
            }
            let code = match run_in_child(|| 1) {
                Err(e @ Error::Sys { call: "fork", .. })
                    if e.raw_os_error() == Some(libc::EAGAIN) && e.to_string().contains("ulimit -u") =>
                {
                    0
                }
                Err(e) => {
                    eprintln!("unexpected error: {e}");
                    1
                }
                Ok(_) => 2,
            };
            forkyard::exit_child(code)
        }
        Fork::Parent(child) => child,
    };
    assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(0), "fork under RLIMIT_NPROC=0 must fail with EAGAIN");
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: valid array for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are fresh and ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Servers often set SIGCHLD to SIG_IGN; the kernel then reaps children itself and keeps no
/// exit status, but the result travels through the pipe and must still arrive.
fn results_come_back_when_sigchld_is_ignored() {
    use forkyard::Disposition;
    let before = Signal::CHLD.set_disposition(Disposition::Ignore).expect("ignore SIGCHLD");
    assert_eq!(run_in_child(|| 42).expect("the result arrives"), 42);
    let big = run_in_child(|| vec![7u8; 1 << 20]).expect("a streamed result arrives");
    assert_eq!(big.len(), 1 << 20);
    match run_in_child(|| -> u32 { panic!("boom") }) {
        Err(Error::ChildPanicked { message, .. }) => assert_eq!(message, "boom"),
        other => panic!("expected ChildPanicked, got {other:?}"),
    }
    match run_in_child(|| -> u32 { std::process::exit(3) }) {
        Err(e @ Error::ChildLost { .. }) => assert!(e.to_string().contains("ignores SIGCHLD"), "{e}"),
        other => panic!("expected ChildLost, got {other:?}"),
    }
    Signal::CHLD.set_disposition(before).expect("restore SIGCHLD");
}
