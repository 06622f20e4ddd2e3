//! The /proc view against real processes: a zombie seen as `Z` until reaped, a family's
//! tree, command lines, and snapshots that survive processes vanishing mid-scan.

mod support;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;

use forkyard::procs::{Process, ScanOptions, Snapshot, State};
use forkyard::subreaper::set_child_subreaper;
use forkyard::{Fork, Pid, Reaper, Scope, Signal, Strategy};

fn main() {
    support::run(&[
        ("a_zombie_is_z_until_reaped_then_gone", a_zombie_is_z_until_reaped_then_gone),
        ("a_family_is_seen_as_a_tree", a_family_is_seen_as_a_tree),
        ("command_lines_are_read", command_lines_are_read),
        ("processes_vanishing_mid_scan_are_skipped", processes_vanishing_mid_scan_are_skipped),
    ])
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: valid array for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are fresh and ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn a_zombie_is_z_until_reaped_then_gone() {
    // SAFETY: single-threaded test process; the child only calls _exit.
    let mut child = match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => forkyard::exit_child(0),
        Fork::Parent(child) => child,
    };
    let pid = child.pid();
    support::wait_zombie(pid);
    let snap = Snapshot::take().expect("snapshot");
    let zombie = snap.zombies().find(|p| p.pid == pid).expect("listed among the zombies");
    assert_eq!(zombie.ppid, Some(Pid::this()), "its parent is us, who have not collected it");
    assert!(zombie.cmdline.is_empty(), "a zombie has no command line");
    assert!(zombie.command().starts_with('['), "{}", zombie.command());
    // Still a zombie a moment later: nobody collects it but its parent.
    assert_eq!(support::state(pid), Some(State::Zombie));
    child.wait().expect("wait");
    assert_eq!(support::state(pid), None);
    assert!(Snapshot::take().expect("snapshot").get(pid).is_none());
}

/// Forks `a`, which forks `b` and `c`; `b` forks `d`. All sleep; the PIDs come back in
/// fork order.
fn family() -> Vec<Pid> {
    let (r, w) = pipe();
    // SAFETY: single-threaded test process; each child writes its PID, forks, and pauses.
    let a = match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => {
            let spawn = |then: &dyn Fn()| {
                // SAFETY: the children are single-threaded.
                match unsafe { forkyard::fork() }.expect("fork") {
                    Fork::Child => {
                        then();
                        loop {
                            // SAFETY: pause has no preconditions.
                            unsafe { libc::pause() };
                        }
                    }
                    Fork::Parent(c) => {
                        let pid = c.pid().as_raw().to_le_bytes();
                        // SAFETY: writing four bytes from a valid buffer.
                        unsafe { libc::write(w.as_raw_fd(), pid.as_ptr().cast(), 4) };
                        std::mem::forget(c);
                    }
                }
            };
            spawn(&|| spawn(&|| {}));
            spawn(&|| {});
            loop {
                // SAFETY: pause has no preconditions.
                unsafe { libc::pause() };
            }
        }
        Fork::Parent(a) => a,
    };
    drop(w);
    let mut pids = vec![a.pid()];
    std::mem::forget(a);
    let mut file = std::fs::File::from(r);
    for _ in 0..3 {
        let mut buf = [0u8; 4];
        std::io::Read::read_exact(&mut file, &mut buf).expect("a PID");
        pids.push(Pid::new(i32::from_le_bytes(buf)).expect("a PID"));
    }
    // The order of the three writes is not fixed; the test works the family out from /proc.
    pids
}

fn a_family_is_seen_as_a_tree() {
    set_child_subreaper(true).expect("subreaper");
    let mut reaper = Reaper::new(Strategy::Signal, Scope::All).expect("reaper");
    let pids = family();
    let a = pids[0];
    let snap = support::wait_for("all four to appear", support::PATIENCE, || {
        let snap = Snapshot::take().expect("snapshot");
        pids.iter().all(|p| snap.get(*p).is_some()).then_some(snap)
    });
    let get = |p: Pid| snap.get(p).expect("present");
    let kids: Vec<Pid> = snap.children(a).map(|p| p.pid).collect();
    assert_eq!(kids.len(), 2, "a has two children");
    let b = *kids.iter().find(|k| snap.children(**k).count() == 1).expect("one child has a child");
    let c = *kids.iter().find(|k| **k != b).expect("the other child");
    let d = snap.children(b).next().expect("b's child").pid;
    assert_eq!(get(d).ppid, Some(b));
    assert_eq!(get(c).ppid, Some(a));
    let tree: Vec<(Pid, usize)> = snap.tree(a).iter().map(|e| (e.process.pid, e.depth)).collect();
    let mut expected = vec![(a, 0), (b, 1), (d, 2), (c, 1)];
    if c < b {
        expected = vec![(a, 0), (c, 1), (b, 1), (d, 2)];
    }
    assert_eq!(tree, expected);
    assert_eq!(snap.descendants(a).len(), 3);
    assert!(snap.tree(Pid::this()).iter().any(|e| e.process.pid == d), "our tree contains the grandchildren");
    // Kill them all; as their subreaper we collect every one.
    for p in &pids {
        Signal::KILL.send(*p).expect("kill");
    }
    let mut gone = 0;
    while gone < 4 {
        gone += reaper.wait().expect("wait").len();
    }
    set_child_subreaper(false).expect("subreaper off");
}

fn command_lines_are_read() {
    let mut child = Command::new("sh")
        .args(["-c", "read x || true", "forkyard-probe", "two words"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let pid = Pid::new(child.id() as i32).expect("a PID");
    // exec renames the process before it sets up the new arguments, so for a moment the
    // command line reads empty: wait for it.
    let p = support::wait_for("sh to run with its arguments", support::PATIENCE, || {
        Process::read(pid).expect("read").filter(|p| p.comm == "sh" && !p.cmdline.is_empty())
    });
    assert_eq!(p.cmdline, ["sh", "-c", "read x || true", "forkyard-probe", "two words"]);
    assert_eq!(p.command(), "sh -c read x || true forkyard-probe two words");
    assert_eq!(p.ppid, Some(Pid::this()));
    let light = Snapshot::take_with(ScanOptions { cmdline: false, threads: 1 }).expect("snapshot");
    assert!(light.get(pid).expect("listed").cmdline.is_empty(), "command lines are skipped when not asked for");
    // A scan split across threads finds the same processes (every one alive throughout).
    let split = Snapshot::take_with(ScanOptions { cmdline: true, threads: 4 }).expect("snapshot");
    assert_eq!(split.get(pid).map(|p| p.cmdline.clone()), Some(p.cmdline.clone()));
    assert!(split.get(Pid::this()).is_some() && split.get(Pid::parent()).is_some());
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success());
}

fn processes_vanishing_mid_scan_are_skipped() {
    // A child that forks short-lived processes as fast as it can while we scan.
    // SAFETY: single-threaded test process; the churner forks and reaps in a loop until
    // killed.
    let mut churn = match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => loop {
            // SAFETY: the churner is single-threaded; its children _exit at once.
            unsafe {
                if libc::fork() == 0 {
                    libc::_exit(0);
                }
                libc::wait(std::ptr::null_mut());
            }
        },
        Fork::Parent(child) => child,
    };
    for _ in 0..50 {
        let snap = Snapshot::take().expect("a snapshot never fails because a process ended");
        assert!(snap.get(Pid::this()).is_some());
    }
    churn.kill(Signal::KILL).expect("kill");
    churn.wait().expect("wait");
    // The churner's last child may have been orphaned by the kill.
    support::reap_adopted();
}
