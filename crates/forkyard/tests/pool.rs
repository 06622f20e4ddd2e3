//! The process pool against real workers: order, the bound on workers, reuse, panics and
//! crashes reported for their item, and a clean shutdown.

mod support;

use std::collections::HashSet;

use forkyard::{ExitStatus, Pid, Pool, Signal, TaskError};

fn main() {
    support::run(&[
        ("results_come_back_in_input_order", results_come_back_in_input_order),
        ("workers_are_bounded_and_reused", workers_are_bounded_and_reused),
        (
            "a_panic_is_reported_for_its_item_and_the_worker_survives",
            a_panic_is_reported_for_its_item_and_the_worker_survives,
        ),
        (
            "a_crashed_worker_is_reported_for_its_item_and_replaced",
            a_crashed_worker_is_reported_for_its_item_and_replaced,
        ),
        ("every_item_crashing_still_ends", every_item_crashing_still_ends),
        ("large_inputs_and_outputs_do_not_deadlock", large_inputs_and_outputs_do_not_deadlock),
        ("empty_input_forks_nothing", empty_input_forks_nothing),
        ("dropping_the_pool_collects_its_workers", dropping_the_pool_collects_its_workers),
        ("zero_workers_is_refused", zero_workers_is_refused),
        ("results_come_back_when_sigchld_is_ignored", results_come_back_when_sigchld_is_ignored),
    ])
}

fn results_come_back_in_input_order() {
    let inputs: Vec<u64> = (0..10_000).collect();
    let out = forkyard::pool::map(2, &inputs, |x: u64| x * x).expect("map");
    assert_eq!(out.len(), inputs.len());
    for (x, r) in inputs.iter().zip(out) {
        assert_eq!(r, Ok(x * x));
    }
    // Several chunk sizes, including one item at a time.
    for chunk in [1, 7, 10_000] {
        let mut pool = Pool::new(3, |s: String| s.len()).expect("pool").with_chunk_size(chunk);
        let words: Vec<String> = (0..500).map(|i| "x".repeat(i % 13)).collect();
        let lens: Vec<usize> = pool.map(&words).expect("map").into_iter().map(|r| r.expect("ok")).collect();
        assert_eq!(lens, words.iter().map(String::len).collect::<Vec<_>>(), "chunk {chunk}");
    }
}

fn workers_are_bounded_and_reused() {
    let mut pool = Pool::new(3, |_: u32| Pid::this().as_raw()).expect("pool");
    let inputs: Vec<u32> = (0..1000).collect();
    let first: HashSet<i32> = pool.map(&inputs).expect("map").into_iter().map(|r| r.expect("ok")).collect();
    assert!(!first.is_empty() && first.len() <= 3, "at most 3 workers, got {first:?}");
    assert!(!first.contains(&Pid::this().as_raw()), "the work ran in other processes");
    let workers: HashSet<i32> = pool.worker_pids().iter().map(|p| p.as_raw()).collect();
    assert!(first.is_subset(&workers));
    let second: HashSet<i32> = pool.map(&inputs).expect("map").into_iter().map(|r| r.expect("ok")).collect();
    assert!(second.is_subset(&workers), "a second map reuses the same workers");
}

fn a_panic_is_reported_for_its_item_and_the_worker_survives() {
    let mut pool = Pool::new(2, |x: u32| {
        if x == 13 {
            panic!("unlucky {x}");
        }
        (x, Pid::this().as_raw())
    })
    .expect("pool");
    let workers_before = {
        let out = pool.map(&(0..100).collect::<Vec<u32>>()).expect("map");
        assert_eq!(out[13], Err(TaskError::Panicked("unlucky 13".into())));
        assert!(out.iter().enumerate().all(|(i, r)| i == 13 || r.as_ref().map(|v| v.0) == Ok(i as u32)));
        pool.worker_pids()
    };
    assert_eq!(workers_before.len(), 2);
    let _ = pool.map(&[1, 2, 3]).expect("map");
    assert_eq!(pool.worker_pids().iter().collect::<HashSet<_>>(), workers_before.iter().collect(), "no worker died");
}

fn a_crashed_worker_is_reported_for_its_item_and_replaced() {
    let mut pool = Pool::new(2, |x: u32| {
        if x == 7 {
            // SAFETY: raising a signal on ourselves.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        if x == 50 {
            std::process::exit(3);
        }
        x + 1
    })
    .expect("pool")
    .with_chunk_size(10);
    let out = pool.map(&(0..100).collect::<Vec<u32>>()).expect("map");
    match &out[7] {
        Err(TaskError::WorkerDied { status, .. }) => {
            assert_eq!(*status, ExitStatus::Signaled { signal: Signal::KILL, core_dumped: false })
        }
        other => panic!("item 7: expected WorkerDied, got {other:?}"),
    }
    match &out[50] {
        Err(TaskError::WorkerDied { status, .. }) => assert_eq!(*status, ExitStatus::Exited(3)),
        other => panic!("item 50: expected WorkerDied, got {other:?}"),
    }
    for (i, r) in out.iter().enumerate().filter(|(i, _)| *i != 7 && *i != 50) {
        assert_eq!(r, &Ok(i as u32 + 1), "item {i}");
    }
    assert_eq!(pool.worker_pids().len(), 2, "dead workers are replaced");
}

fn every_item_crashing_still_ends() {
    let out =
        forkyard::pool::map(2, &(0..20).collect::<Vec<u32>>(), |_: u32| -> u32 { std::process::abort() }).expect("map");
    assert_eq!(out.len(), 20);
    assert!(
        out.iter()
            .all(|r| matches!(r, Err(TaskError::WorkerDied { status, .. }) if status.signal() == Some(Signal::ABRT)))
    );
}

fn large_inputs_and_outputs_do_not_deadlock() {
    // Each input and each output is larger than a pipe's buffer.
    let inputs: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; 200_000]).collect();
    let out = forkyard::pool::map(2, &inputs, |v: Vec<u8>| {
        let mut w = v.clone();
        w.extend_from_slice(&v);
        w
    })
    .expect("map");
    for (i, r) in out.into_iter().enumerate() {
        let w = r.expect("ok");
        assert_eq!(w.len(), 400_000);
        assert!(w.iter().all(|&b| b == i as u8));
    }
}

fn empty_input_forks_nothing() {
    let mut pool = Pool::new(4, |x: u8| x).expect("pool");
    assert!(pool.map(&[]).expect("map").is_empty());
    assert!(pool.worker_pids().is_empty());
}

fn dropping_the_pool_collects_its_workers() {
    let mut pool = Pool::new(3, |x: u8| x).expect("pool");
    pool.map(&(0..30).collect::<Vec<u8>>()).expect("map");
    let workers = pool.worker_pids();
    assert_eq!(workers.len(), 3);
    drop(pool);
    for pid in workers {
        assert_eq!(support::state(pid), None, "worker {pid} must be collected, not left a zombie");
    }
}

fn zero_workers_is_refused() {
    let err = Pool::new(0, |x: u8| x).err().expect("refused");
    assert!(matches!(err, forkyard::Error::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("at least one"), "{err}");
}

/// With SIGCHLD ignored the kernel reaps workers itself: results still arrive, a crash is
/// still reported for its item (without the status the kernel discarded), and the pool still
/// shuts down.
fn results_come_back_when_sigchld_is_ignored() {
    use forkyard::Disposition;
    let before = Signal::CHLD.set_disposition(Disposition::Ignore).expect("ignore SIGCHLD");
    let mut pool = Pool::new(2, |x: u32| {
        if x == 5 {
            std::process::abort();
        }
        x + 1
    })
    .expect("pool")
    .with_chunk_size(1);
    let inputs: Vec<u32> = (0..20).collect();
    let out = pool.map(&inputs).expect("map");
    for (x, r) in inputs.iter().zip(&out) {
        if *x == 5 {
            assert!(matches!(r, Err(TaskError::WorkerLost { .. })), "{r:?}");
        } else {
            assert_eq!(r, &Ok(x + 1));
        }
    }
    let workers = pool.worker_pids();
    drop(pool);
    for pid in workers {
        assert_eq!(support::state(pid), None, "worker {pid} was left behind");
    }
    Signal::CHLD.set_disposition(before).expect("restore SIGCHLD");
}
