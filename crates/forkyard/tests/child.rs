//! Child handles against real processes: waiting, polling, timeouts, signals through the
//! pidfd, adopting a `std::process` child, and dropped handles that still get reaped.

mod support;

use std::process::Command;
use std::time::Duration;

use forkyard::{Child, ExitStatus, Fork, Pid, Signal};

fn main() {
    support::run(&[
        ("wait_reports_the_exit_code", wait_reports_the_exit_code),
        ("try_wait_sees_running_then_ended", try_wait_sees_running_then_ended),
        (
            "expired_wait_timeout_leaves_the_child_running_and_waitable",
            expired_wait_timeout_leaves_the_child_running_and_waitable,
        ),
        ("kill_reaches_the_child_through_its_pidfd", kill_reaches_the_child_through_its_pidfd),
        ("kill_after_reaping_sends_nothing", kill_after_reaping_sends_nothing),
        ("adopts_a_std_process_child", adopts_a_std_process_child),
        ("refuses_to_adopt_a_stranger", refuses_to_adopt_a_stranger),
        ("a_dropped_running_child_is_reaped_later", a_dropped_running_child_is_reaped_later),
        ("resource_usage_is_recorded", resource_usage_is_recorded),
    ])
}

/// Forks a child that blocks until killed (it sleeps in `pause`).
fn sleeper() -> Child {
    // SAFETY: single-threaded test process; the child only calls pause and _exit.
    match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => loop {
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        },
        Fork::Parent(child) => child,
    }
}

fn exits_with(code: i32) -> Child {
    // SAFETY: single-threaded test process; the child only calls _exit.
    match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => forkyard::exit_child(code),
        Fork::Parent(child) => child,
    }
}

fn wait_reports_the_exit_code() {
    for code in [0, 1, 3, 127, 255] {
        let mut child = exits_with(code);
        let status = child.wait().expect("wait");
        assert_eq!(status, ExitStatus::Exited(code as u8));
        assert_eq!(child.status(), Some(status));
        // A second wait answers from the handle, without asking the kernel.
        assert_eq!(child.wait().expect("second wait"), status);
    }
}

fn try_wait_sees_running_then_ended() {
    let mut child = sleeper();
    assert_eq!(child.try_wait().expect("try_wait"), None);
    support::wait_for("the child to sleep", support::PATIENCE, || {
        (support::state(child.pid()).map(|s| s.as_char()) == Some('S')).then_some(())
    });
    child.kill(Signal::TERM).expect("kill");
    support::wait_zombie(child.pid());
    let status = child.try_wait().expect("try_wait").expect("a zombie is collected");
    assert_eq!(status.signal(), Some(Signal::TERM));
    assert_eq!(support::state(child.pid()), None, "collected means gone from /proc");
}

fn expired_wait_timeout_leaves_the_child_running_and_waitable() {
    let mut child = sleeper();
    assert_eq!(child.wait_timeout(Duration::from_millis(50)).expect("wait_timeout"), None);
    assert!(matches!(support::state(child.pid()).map(|s| s.as_char()), Some('S' | 'R')), "still running");
    child.kill(Signal::KILL).expect("kill");
    let status = child.wait_timeout(support::PATIENCE).expect("wait_timeout").expect("it ended");
    assert_eq!(status, ExitStatus::Signaled { signal: Signal::KILL, core_dumped: false });
}

fn kill_reaches_the_child_through_its_pidfd() {
    let mut child = sleeper();
    assert!(child.pidfd().is_some());
    let usr1 = Signal::USR1;
    child.kill(usr1).expect("kill");
    assert_eq!(child.wait().expect("wait").signal(), Some(usr1));
    let rt = Signal::rtmin();
    let mut child = sleeper();
    child.kill(rt).expect("real-time signals too");
    assert_eq!(child.wait().expect("wait").signal(), Some(rt));
}

fn kill_after_reaping_sends_nothing() {
    let mut child = exits_with(0);
    child.wait().expect("wait");
    // The PID may belong to a stranger by now; the handle must not signal it.
    child.kill(Signal::KILL).expect("a no-op, not an error");
}

fn adopts_a_std_process_child() {
    // The std handle is deliberately not waited on: the forkyard handle collects the child.
    #[allow(clippy::zombie_processes)]
    let std_child = Command::new("sh").args(["-c", "exit 4"]).spawn().expect("spawning sh");
    let pid = Pid::new(std_child.id() as i32).expect("a PID");
    let mut child = Child::from_pid(pid).expect("it is our child");
    assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(4));
}

fn refuses_to_adopt_a_stranger() {
    let err = Child::from_pid(Pid::parent()).expect_err("our parent is not our child");
    assert!(err.to_string().contains("is it a child of this process?"), "{err}");
}

fn a_dropped_running_child_is_reaped_later() {
    let child = sleeper();
    let pid = child.pid();
    drop(child);
    // Killed by someone else after its handle is gone: it must not stay a zombie once this
    // crate forks or waits again.
    Signal::KILL.send(pid).expect("kill by PID: the child is not collected, so the PID is still its own");
    support::wait_zombie(pid);
    let mut other = exits_with(0);
    other.wait().expect("wait");
    assert_eq!(support::state(pid), None, "the dropped child was collected by the next wait");
}

fn resource_usage_is_recorded() {
    let mut child = match forkyard::run_in_child(|| ()) {
        Ok(()) => exits_with(0),
        Err(e) => panic!("{e}"),
    };
    child.wait().expect("wait");
    let usage = child.resource_usage().expect("recorded on collection");
    // A process always has some resident memory; CPU times of a child that exits at once
    // may well be zero, so they are not asserted.
    assert!(usage.max_rss_kib > 0, "{usage:?}");
}
