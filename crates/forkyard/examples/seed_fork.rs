//! The seed, section 2: `fork` creates a child that runs `task(1)`.
//!
//! `fork` returns in both processes: in the child with nothing, in the parent with the
//! child. Which of them prints first varies from run to run. Unlike the seed's script, the
//! parent collects its child, so no zombie is left even for a moment after it exits.
//!
//! Run: `cargo run --example seed_fork`

use std::io::Write;

use forkyard::Fork;

fn task(id: u32) {
    println!("work {id}");
}

fn main() -> forkyard::Result<()> {
    std::io::stdout().flush().ok();
    // SAFETY: this program has one thread; the child prints, flushes and ends with _exit.
    match unsafe { forkyard::fork() }? {
        Fork::Child => {
            println!("I am a child");
            task(1);
            std::io::stdout().flush().ok();
            forkyard::exit_child(0)
        }
        Fork::Parent(mut child) => {
            println!("I am father child");
            child.wait()?;
        }
    }
    Ok(())
}
