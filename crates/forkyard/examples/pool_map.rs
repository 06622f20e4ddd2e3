//! Map a function over inputs in worker processes, like Python's `Pool.map`.
//!
//! Two workers square 10,000 numbers; item 13 panics and item 77 kills its worker, and
//! each is reported for its own item while the rest complete.
//!
//! Run: `cargo run --example pool_map`

use forkyard::{Pool, TaskError};

fn main() -> forkyard::Result<()> {
    let mut pool = Pool::new(2, |x: u64| {
        if x == 13 {
            panic!("13 is unlucky");
        }
        if x == 77 {
            std::process::abort();
        }
        x * x
    })?;
    let inputs: Vec<u64> = (0..10_000).collect();
    let results = pool.map(&inputs)?;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    println!("{ok} of {} items squared by workers {:?}", inputs.len(), pool.worker_pids());
    for (i, r) in results.iter().enumerate() {
        if let Err(e @ (TaskError::Panicked(_) | TaskError::WorkerDied { .. })) = r {
            println!("item {i}: {e}");
        }
    }
    println!("sum of squares: {}", results.iter().filter_map(|r| r.as_ref().ok()).sum::<u64>());
    Ok(())
}
