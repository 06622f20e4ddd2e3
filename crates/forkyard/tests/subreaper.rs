//! The subreaper flag and the parent-death signal, on real processes.

mod support;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use forkyard::subreaper::{is_child_subreaper, parent_death_signal, set_child_subreaper, set_parent_death_signal};
use forkyard::{Child, ExitStatus, Fork, Pid, Signal};

fn main() {
    support::run(&[
        ("the_subreaper_flag_reads_back", the_subreaper_flag_reads_back),
        ("a_child_gets_its_parent_death_signal", a_child_gets_its_parent_death_signal),
        ("a_parent_already_gone_is_reported", a_parent_already_gone_is_reported),
    ])
}

fn the_subreaper_flag_reads_back() {
    // The harness made us a subreaper; switch it off and on again.
    assert!(is_child_subreaper().expect("read"));
    set_child_subreaper(false).expect("off");
    assert!(!is_child_subreaper().expect("read"));
    set_child_subreaper(true).expect("on");
    assert!(is_child_subreaper().expect("read"));
}

fn a_child_gets_its_parent_death_signal() {
    let (r, w) = {
        let mut fds = [0; 2];
        // SAFETY: valid array for two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors are fresh and ours.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    };
    // SAFETY: single-threaded test process; the middle process forks once, reports and
    // waits to be told to exit.
    let mut middle = match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => {
            let me = Pid::this();
            // SAFETY: the middle process is single-threaded.
            match unsafe { forkyard::fork() }.expect("fork") {
                Fork::Child => {
                    let code = match set_parent_death_signal(Some(Signal::USR1), me) {
                        Ok(()) if parent_death_signal().ok().flatten() == Some(Signal::USR1) => {
                            // Tell the test we are armed, then wait for the signal.
                            // SAFETY: one-byte write; pause has no preconditions.
                            unsafe {
                                libc::write(w.as_raw_fd(), b"!".as_ptr().cast(), 1);
                                libc::pause();
                            }
                            0
                        }
                        _ => 1,
                    };
                    forkyard::exit_child(code)
                }
                Fork::Parent(grandchild) => {
                    let mut b = [0u8; 1];
                    // SAFETY: reading one byte into a valid buffer: the grandchild is armed.
                    unsafe { libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
                    std::mem::forget(grandchild);
                    forkyard::exit_child(0)
                }
            }
        }
        Fork::Parent(child) => child,
    };
    drop(w);
    assert_eq!(middle.wait().expect("wait"), ExitStatus::Exited(0));
    // The grandchild was adopted by us (a subreaper) and killed by its parent-death signal.
    let orphan = forkyard::procs::Snapshot::take()
        .expect("snapshot")
        .children(Pid::this())
        .map(|p| p.pid)
        .next()
        .expect("the orphan is ours");
    let status = Child::from_pid(orphan).and_then(|mut c| c.wait()).expect("collect the orphan");
    assert_eq!(status.signal(), Some(Signal::USR1), "{status}");
}

fn a_parent_already_gone_is_reported() {
    // A process asks for the signal naming a parent that is not its parent: exactly what it
    // sees when its real parent died between fork and prctl.
    let err = set_parent_death_signal(Some(Signal::TERM), Pid::INIT).expect_err("our parent is not PID 1");
    assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    assert!(err.to_string().contains("died before the parent-death signal was set"), "{err}");
    set_parent_death_signal(None, Pid::parent()).expect("clearing it");
    assert_eq!(parent_death_signal().expect("read"), None);
}
