//! The three reapers against real processes: coalesced SIGCHLD, adopted orphans, polling
//! ticks, pidfds without signals, and scopes that leave other code's children alone.

mod support;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use forkyard::procs::Process;
use forkyard::subreaper::set_child_subreaper;
use forkyard::{Child, ExitStatus, Fork, Pid, Reaper, Scope, Signal, SignalFd, SignalSet, Strategy};

fn main() {
    support::run(&[
        ("many_exits_arrive_as_one_sigchld_and_all_are_reaped", many_exits_arrive_as_one_sigchld_and_all_are_reaped),
        ("signal_reaper_collects_a_coalesced_burst_in_one_wait", signal_reaper_collects_a_coalesced_burst_in_one_wait),
        ("own_children_scope_leaves_std_children_alone", own_children_scope_leaves_std_children_alone),
        ("subreaper_adopts_and_reaps_an_orphan", subreaper_adopts_and_reaps_an_orphan),
        ("polled_zombie_stays_until_the_next_tick", polled_zombie_stays_until_the_next_tick),
        ("pidfd_reaper_needs_no_signal", pidfd_reaper_needs_no_signal),
        ("pidfd_reaper_refuses_scope_all", pidfd_reaper_refuses_scope_all),
        (
            "signal_reaper_refuses_a_thread_that_would_swallow_sigchld",
            signal_reaper_refuses_a_thread_that_would_swallow_sigchld,
        ),
        ("every_strategy_times_out_and_then_reaps", every_strategy_times_out_and_then_reaps),
        ("nothing_watched_returns_at_once", nothing_watched_returns_at_once),
        ("reaped_carries_cpu_time", reaped_carries_cpu_time),
        ("an_ignored_sigchld_is_reset_so_statuses_survive", an_ignored_sigchld_is_reset_so_statuses_survive),
    ])
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: valid array for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are fresh and ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Forks a child that exits with `code` once `gate` reaches end of file.
fn exits_when_closed(gate: &OwnedFd, write_end: &OwnedFd, code: i32) -> Child {
    // SAFETY: single-threaded test process; the child only reads, closes and _exits.
    match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => {
            let mut b = [0u8; 1];
            // SAFETY: closing our copy of the write end, then a blocking read into a valid
            // buffer.
            unsafe {
                libc::close(write_end.as_raw_fd());
                libc::read(gate.as_raw_fd(), b.as_mut_ptr().cast(), 1);
            }
            forkyard::exit_child(code)
        }
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

fn sleeper() -> Child {
    // SAFETY: single-threaded test process; the child only calls pause.
    match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => loop {
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        },
        Fork::Parent(child) => child,
    }
}

const BURST: usize = 50;

/// Starts `BURST` children and makes them all exit at once; returns when all are zombies.
fn burst(reaper: &mut Reaper) -> Vec<Pid> {
    let (r, w) = pipe();
    let mut pids = Vec::new();
    for i in 0..BURST {
        pids.push(reaper.watch(exits_when_closed(&r, &w, i as i32)).expect("watch"));
    }
    drop(w);
    for &pid in &pids {
        support::wait_zombie(pid);
    }
    pids
}

fn many_exits_arrive_as_one_sigchld_and_all_are_reaped() {
    let mut reaper = Reaper::new(Strategy::Signal, Scope::All).expect("reaper");
    // A second reader of SIGCHLD, to count the signals the burst produced.
    let counter = SignalFd::new(&[Signal::CHLD].into_iter().collect()).expect("signalfd");
    let pids = burst(&mut reaper);
    let mut signals = 0;
    while counter.try_read().expect("read").is_some() {
        signals += 1;
    }
    assert_eq!(signals, 1, "{BURST} exits while SIGCHLD was pending must coalesce into one signal");
    // The seed's loop: waitpid(-1, WNOHANG) until nothing is left finds them all.
    let reaped = reaper.try_reap().expect("reap");
    assert_eq!(reaped.len(), BURST);
    for (i, pid) in pids.iter().enumerate() {
        let r = reaped.iter().find(|r| r.pid == *pid).expect("each child is reaped");
        assert_eq!(r.status, ExitStatus::Exited(i as u8));
        assert!(r.watched);
        assert_eq!(support::state(*pid), None);
    }
}

fn signal_reaper_collects_a_coalesced_burst_in_one_wait() {
    for scope in [Scope::All, Scope::OwnChildren] {
        let mut reaper = Reaper::new(Strategy::Signal, scope).expect("reaper");
        let pids = burst(&mut reaper);
        let reaped = reaper.wait().expect("wait");
        assert_eq!(reaped.len(), BURST, "{scope:?}: one wake-up, every exit");
        assert!(pids.iter().all(|p| support::state(*p).is_none()));
        assert_eq!(reaper.watched(), 0);
    }
}

fn own_children_scope_leaves_std_children_alone() {
    for strategy in [Strategy::Signal, Strategy::Pidfd, Strategy::Poll(Duration::from_millis(5))] {
        let mut reaper = Reaper::new(strategy, Scope::OwnChildren).expect("reaper");
        let mut std_child = Command::new("sh").args(["-c", "exit 5"]).spawn().expect("spawn sh");
        let ours = reaper.watch(exits_with(6)).expect("watch");
        let std_pid = Pid::new(std_child.id() as i32).expect("a PID");
        support::wait_zombie(std_pid);
        let reaped = reaper.wait().expect("wait");
        assert_eq!(reaped.len(), 1, "{strategy:?}");
        assert_eq!((reaped[0].pid, reaped[0].status), (ours, ExitStatus::Exited(6)));
        assert_eq!(support::state(std_pid).map(|s| s.as_char()), Some('Z'), "{strategy:?} must not steal std's child");
        let status = std_child.wait().expect("std can still wait for its own child");
        assert_eq!(status.code(), Some(5));
    }
}

fn subreaper_adopts_and_reaps_an_orphan() {
    set_child_subreaper(true).expect("subreaper");
    let mut reaper = Reaper::new(Strategy::Signal, Scope::All).expect("reaper");
    let (r, w) = pipe();
    let (report_r, report_w) = pipe();
    // SAFETY: single-threaded test process; the middle child forks once, writes and _exits.
    let middle = match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => {
            // SAFETY: the middle child is single-threaded.
            match unsafe { forkyard::fork() }.expect("fork") {
                Fork::Child => {
                    let mut b = [0u8; 1];
                    // SAFETY: closing our copy of the write end, then a blocking read.
                    unsafe {
                        libc::close(w.as_raw_fd());
                        libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                    }
                    forkyard::exit_child(9)
                }
                Fork::Parent(grandchild) => {
                    let pid = grandchild.pid().as_raw().to_le_bytes();
                    // SAFETY: writing four bytes from a valid buffer.
                    unsafe { libc::write(report_w.as_raw_fd(), pid.as_ptr().cast(), 4) };
                    std::mem::forget(grandchild);
                    forkyard::exit_child(0)
                }
            }
        }
        Fork::Parent(child) => child,
    };
    drop(report_w);
    let middle = reaper.watch(middle).expect("watch");
    let mut buf = [0u8; 4];
    let mut report = std::fs::File::from(report_r);
    std::io::Read::read_exact(&mut report, &mut buf).expect("the grandchild's PID");
    let orphan = Pid::new(i32::from_le_bytes(buf)).expect("a PID");
    let first = reaper.wait().expect("wait");
    assert_eq!(first.iter().map(|r| r.pid).collect::<Vec<_>>(), [middle]);
    // The orphan's parent is now us, the subreaper, not PID 1.
    let adopted = Process::read(orphan).expect("read").expect("the orphan is alive");
    assert_eq!(adopted.ppid, Some(Pid::this()));
    drop(w);
    let second = reaper.wait().expect("wait");
    assert_eq!(second.len(), 1);
    assert_eq!((second[0].pid, second[0].status, second[0].watched), (orphan, ExitStatus::Exited(9), false));
    set_child_subreaper(false).expect("subreaper off");
}

fn polled_zombie_stays_until_the_next_tick() {
    let interval = Duration::from_millis(300);
    let start = Instant::now();
    let mut reaper = Reaper::new(Strategy::Poll(interval), Scope::OwnChildren).expect("reaper");
    let pid = reaper.watch(exits_with(0)).expect("watch");
    support::wait_zombie(pid);
    let reaped = reaper.wait().expect("wait");
    assert_eq!(reaped.len(), 1);
    assert!(reaped[0].at >= start + interval, "a polling reaper cannot collect before its first tick");
    assert_eq!(support::state(pid), None, "gone after the tick");
}

fn pidfd_reaper_needs_no_signal() {
    let mask_before = SignalSet::thread_mask().expect("mask");
    let mut reaper = Reaper::new(Strategy::Pidfd, Scope::OwnChildren).expect("reaper");
    assert!(reaper.as_fd().is_some());
    let pids: Vec<Pid> = (0..3).map(|c| reaper.watch(exits_with(c)).expect("watch")).collect();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.extend(reaper.wait().expect("wait"));
    }
    for (code, pid) in pids.iter().enumerate() {
        let r = seen.iter().find(|r| r.pid == *pid).expect("reaped");
        assert_eq!(r.status, ExitStatus::Exited(code as u8));
    }
    assert_eq!(SignalSet::thread_mask().expect("mask"), mask_before, "the pidfd reaper must not touch the mask");
    assert!(!mask_before.contains(Signal::CHLD));
}

fn pidfd_reaper_refuses_scope_all() {
    let err = Reaper::new(Strategy::Pidfd, Scope::All).expect_err("pidfds cannot see orphans");
    assert!(err.to_string().contains("use Strategy::Signal"), "{err}");
}

fn signal_reaper_refuses_a_thread_that_would_swallow_sigchld() {
    // std blocks every signal while a thread starts; wait until it runs with its own mask.
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        started_tx.send(()).ok();
        rx.recv().ok()
    });
    started.recv().expect("the thread started");
    let err = Reaper::new(Strategy::Signal, Scope::OwnChildren).expect_err("the other thread lets SIGCHLD through");
    assert!(err.to_string().contains("block_sigchld"), "{err}");
    drop(tx);
    thread.join().expect("join");
    // With SIGCHLD blocked before the thread starts, the thread inherits the block.
    forkyard::reap::block_sigchld().expect("block");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || rx.recv().ok());
    Reaper::new(Strategy::Signal, Scope::OwnChildren).expect("every thread blocks SIGCHLD now");
    drop(tx);
    thread.join().expect("join");
}

fn every_strategy_times_out_and_then_reaps() {
    for strategy in [Strategy::Signal, Strategy::Pidfd, Strategy::Poll(Duration::from_millis(10))] {
        let mut reaper = Reaper::new(strategy, Scope::OwnChildren).expect("reaper");
        let pid = reaper.watch(sleeper()).expect("watch");
        assert!(reaper.wait_timeout(Duration::from_millis(30)).expect("wait").is_empty(), "{strategy:?}");
        assert!(reaper.is_watching(pid));
        reaper.kill(pid, Signal::TERM).expect("kill through the reaper");
        let reaped = reaper.wait_timeout(support::PATIENCE).expect("wait");
        assert_eq!(reaped.len(), 1, "{strategy:?}");
        assert_eq!(reaped[0].status.signal(), Some(Signal::TERM));
        assert!(reaper.kill(pid, Signal::TERM).is_err(), "no longer watched");
    }
}

fn nothing_watched_returns_at_once() {
    for strategy in [Strategy::Signal, Strategy::Pidfd, Strategy::Poll(Duration::from_secs(3600))] {
        let mut reaper = Reaper::new(strategy, Scope::OwnChildren).expect("reaper");
        assert!(reaper.wait().expect("wait").is_empty(), "{strategy:?} must not wait forever for nothing");
    }
}

fn reaped_carries_cpu_time() {
    let mut reaper = Reaper::new(Strategy::Signal, Scope::All).expect("reaper");
    // SAFETY: single-threaded test process; the child spins on clock_gettime and _exits.
    let child = match unsafe { forkyard::fork() }.expect("fork") {
        Fork::Child => {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // Burn 30 ms of this process's own CPU time: an amount of work, not a delay.
            while ts.tv_nsec < 30_000_000 && ts.tv_sec == 0 {
                // SAFETY: valid timespec to write.
                unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
            }
            forkyard::exit_child(0)
        }
        Fork::Parent(child) => child,
    };
    reaper.watch(child).expect("watch");
    let reaped = reaper.wait().expect("wait");
    let usage = reaped[0].usage;
    assert!(usage.user + usage.system >= Duration::from_millis(25), "{usage:?}");
    assert!(usage.max_rss_kib > 0);
}

fn an_ignored_sigchld_is_reset_so_statuses_survive() {
    Signal::CHLD.set_disposition(forkyard::Disposition::Ignore).expect("ignore");
    let mut reaper = Reaper::new(Strategy::Pidfd, Scope::OwnChildren).expect("reaper");
    assert_eq!(Signal::CHLD.disposition().expect("disposition"), forkyard::Disposition::Default);
    reaper.watch(exits_with(3)).expect("watch");
    assert_eq!(reaper.wait().expect("wait")[0].status, ExitStatus::Exited(3));
}
