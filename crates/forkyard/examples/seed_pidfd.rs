//! The third way, which the seed could not know: wait on the child's pidfd.
//!
//! Since Linux 5.3 a process can hold a file descriptor that names one child. It becomes
//! readable when the child ends, so the parent can sleep on it (alone or among many, with
//! epoll) with no signal and no polling, and `kill` through it can never hit a recycled PID.
//!
//! Run: `cargo run --example seed_pidfd`

use std::io::Write;
use std::time::Duration;

use forkyard::{Fork, Pid, Reaper, Scope, Strategy};

fn seconds(n: f64) -> Duration {
    let scale = std::env::var("FORKYARD_SEED_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(0.01);
    Duration::from_secs_f64(n * scale)
}

fn main() -> forkyard::Result<()> {
    let mut reaper = Reaper::new(Strategy::Pidfd, Scope::OwnChildren)?;
    println!("Before the fork my PID is {}", Pid::this());
    std::io::stdout().flush().ok();
    // SAFETY: this program has one thread; the child prints, sleeps and ends with _exit.
    match unsafe { forkyard::fork() }? {
        Fork::Child => {
            println!("Child sleeping 5 seconds");
            std::io::stdout().flush().ok();
            std::thread::sleep(seconds(5.0));
            forkyard::exit_child(3)
        }
        Fork::Parent(child) => {
            println!("Hello from the parent. The child will be PID {}", child.pid());
            println!("Waiting on its pidfd (no signal, no polling)...");
            std::io::stdout().flush().ok();
            reaper.watch(child)?;
        }
    }
    for r in reaper.wait()? {
        println!(
            "Reaped child process {} ({}; {:?} user, {:?} system, {} KiB peak)",
            r.pid, r.status, r.usage.user, r.usage.system, r.usage.max_rss_kib
        );
    }
    Ok(())
}
