//! The seed, section 4: collect zombies by polling.
//!
//! No signal is involved: the parent sleeps, then sweeps with `waitpid(..., WNOHANG)`. Until
//! the sweep the dead child stays a zombie; this program shows it in /proc before the tick.
//! Times are the seed's × `FORKYARD_SEED_SCALE` (default 0.01): the parent's tick is "60 s",
//! the child lives "5 s".
//!
//! Run: `cargo run --example seed_poll`

use std::io::Write;
use std::time::Duration;

use forkyard::procs::{self, State};
use forkyard::{Fork, Pid, Reaper, Scope, Strategy};

fn seconds(n: f64) -> Duration {
    let scale = std::env::var("FORKYARD_SEED_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(0.01);
    Duration::from_secs_f64(n * scale)
}

fn main() -> forkyard::Result<()> {
    println!("Before the fork, my PID is {}", Pid::this());
    let mut reaper = Reaper::new(Strategy::Poll(seconds(60.0)), Scope::OwnChildren)?;
    std::io::stdout().flush().ok();
    // SAFETY: this program has one thread; the child prints, sleeps and ends with _exit.
    let pid = match unsafe { forkyard::fork() }? {
        Fork::Child => {
            println!("Child sleeping 5 seconds...");
            std::io::stdout().flush().ok();
            std::thread::sleep(seconds(5.0));
            println!("Child terminating");
            std::io::stdout().flush().ok();
            forkyard::exit_child(0)
        }
        Fork::Parent(child) => {
            println!("Hello from the parent. The child will be PID {}", child.pid());
            println!("Parent sleeping 60 seconds");
            std::io::stdout().flush().ok();
            reaper.watch(child)?
        }
    };
    // Wait for the child to have exited, then show it is a zombie until the tick.
    while procs::state(pid)? != Some(State::Zombie) {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("(child {pid} has exited and is a zombie until the next sweep)");
    std::io::stdout().flush().ok();
    let reaped = reaper.wait()?;
    println!("Parent sleep done");
    for r in reaped {
        println!("Reaped child process {}", r.pid);
    }
    Ok(())
}
