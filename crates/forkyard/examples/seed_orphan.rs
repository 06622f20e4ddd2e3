//! The seed, section 2 end: if the parent exits first, its child is handed to PID 1,
//! which collects it.
//!
//! This program plays PID 1's part by becoming a child subreaper: orphans below it are
//! re-parented to it. It starts a parent, the parent starts a child and exits at once; the
//! child sees its parent change to this program, which reaps the parent and then the orphan.
//! (Run it as PID 1 of a fresh PID namespace and the adopter is PID 1 itself:
//! `unshare --pid --fork --mount-proc target/debug/examples/seed_orphan`.)
//!
//! Run: `cargo run --example seed_orphan`

use std::io::Write;
use std::time::Duration;

use forkyard::subreaper::set_child_subreaper;
use forkyard::{Fork, Pid, Reaper, Scope, Strategy};

fn main() -> forkyard::Result<()> {
    let adopter = Pid::this();
    set_child_subreaper(true)?;
    let mut reaper = Reaper::new(Strategy::Signal, Scope::All)?;
    println!("I am the adopter {adopter}");
    std::io::stdout().flush().ok();
    // SAFETY: this program has one thread; the parent forks once and _exits, the child
    // prints and _exits.
    match unsafe { forkyard::fork() }? {
        Fork::Child => {
            let parent = Pid::this();
            // SAFETY: the parent process is single-threaded too.
            match unsafe { forkyard::fork() }? {
                Fork::Child => {
                    println!("I am a child {}, my parent is {parent}", Pid::this());
                    std::io::stdout().flush().ok();
                    while Pid::parent() == parent {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    println!("my parent exited; I was adopted by {}", Pid::parent());
                    std::io::stdout().flush().ok();
                    forkyard::exit_child(0)
                }
                Fork::Parent(child) => {
                    println!("I am the parent {parent}, exiting before my child");
                    std::io::stdout().flush().ok();
                    std::mem::forget(child);
                    forkyard::exit_child(0)
                }
            }
        }
        Fork::Parent(parent) => {
            reaper.watch(parent)?;
        }
    }
    let mut reaped = 0;
    while reaped < 2 {
        for r in reaper.wait()? {
            let who = if r.watched { "my child" } else { "an orphan" };
            println!("Reaped {who} {} ({})", r.pid, r.status);
            reaped += 1;
        }
    }
    Ok(())
}
