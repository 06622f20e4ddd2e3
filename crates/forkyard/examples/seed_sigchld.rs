//! The seed, section 3: collect zombies when SIGCHLD arrives.
//!
//! The seed installs a handler that loops `waitpid(-1, WNOHANG)` (several exits can arrive
//! as one signal) and re-installs itself. Here SIGCHLD is read from a signalfd by a
//! [`forkyard::Reaper`] with the `Signal` strategy, which runs the same loop outside signal
//! context, so nothing needs re-installing. As in the seed, the child's exit cuts the
//! parent's long sleep short: the parent sleeps "1000 s" and wakes when the child has been
//! reaped. Times are the seed's × `FORKYARD_SEED_SCALE` (default 0.01).
//!
//! Run: `cargo run --example seed_sigchld`

use std::io::Write;
use std::time::Duration;

use forkyard::{Fork, Pid, Reaper, Scope, Strategy};

fn seconds(n: f64) -> Duration {
    let scale = std::env::var("FORKYARD_SEED_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(0.01);
    Duration::from_secs_f64(n * scale)
}

fn main() -> forkyard::Result<()> {
    // Before any fork, so no exit can be missed.
    let mut reaper = Reaper::new(Strategy::Signal, Scope::All)?;
    println!("Before the fork my PID is {}", Pid::this());
    std::io::stdout().flush().ok();
    // SAFETY: this program has one thread; the child prints, sleeps and ends with _exit.
    match unsafe { forkyard::fork() }? {
        Fork::Child => {
            println!("Child sleeping 5 seconds");
            std::io::stdout().flush().ok();
            std::thread::sleep(seconds(5.0));
            forkyard::exit_child(0)
        }
        Fork::Parent(child) => {
            println!("hello from the parent the child will be PID {}", child.pid());
            println!("Sleeping 1000 seconds.....");
            std::io::stdout().flush().ok();
            reaper.watch(child)?;
        }
    }
    // The "sleep": it ends early, when SIGCHLD arrives and the child has been collected.
    for reaped in reaper.wait_timeout(seconds(1000.0))? {
        println!("Reaped child process {}", reaped.pid);
    }
    println!("sleep done");
    Ok(())
}
