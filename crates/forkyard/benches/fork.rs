//! Forking benchmarks: a closure in a child against a bare `fork` + `_exit` + `waitpid`,
//! and the process pool against the same work done in-process.
//!
//! Run: `cargo bench -p forkyard --bench fork`. Python's `multiprocessing.Pool` and the
//! other peers are compared side by side by `compare.rs` (`bench/run.sh library`); see
//! docs/benchmarks.md.

#[path = "../../../bench/common.rs"]
mod common;

use forkyard::Pool;

fn main() {
    divan::main();
}

/// The floor: what any fork-based call costs at least.
#[divan::bench]
fn bare_fork_exit_waitpid() {
    // divan runs each benchmark on one thread by default, so the process forks with one.
    common::bare_fork();
}

/// `run_in_child` returning a small value (the seed's `task(id)`, answered).
#[divan::bench]
fn run_in_child_small_result() -> u64 {
    forkyard::run_in_child(|| 42u64).expect("the child answers")
}

/// `run_in_child` returning 64 KiB.
#[divan::bench]
fn run_in_child_64k_result() -> usize {
    forkyard::run_in_child(|| vec![7u8; 64 * 1024]).expect("the child answers").len()
}

/// Pool start-up, a map of 10,000 tiny items on 2 workers, and shut-down.
#[divan::bench(sample_count = 30)]
fn pool_map_10k_tiny_items() -> usize {
    let inputs: Vec<u64> = (0..10_000).collect();
    let mut pool = Pool::new(2, |x: u64| x * x).expect("pool");
    pool.map(&inputs).expect("map").len()
}
