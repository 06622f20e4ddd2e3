//! The seed, section 2 end: a child that has exited stays a zombie until its parent
//! collects it.
//!
//! The child prints its PID and exits; the parent does not wait for it, and looks at it
//! through /proc the way the seed looks with `ps ax`: state `Z`, `<defunct>`. It looks again
//! after a pause (the seed sleeps 100 s; here 100 s × `FORKYARD_SEED_SCALE`, default 0.01):
//! still a zombie. Then it collects the child, which disappears.
//!
//! Run: `cargo run --example seed_zombie`

use std::io::Write;
use std::time::Duration;

use forkyard::Fork;
use forkyard::procs::{self, Process, State};

fn seconds(n: f64) -> Duration {
    let scale = std::env::var("FORKYARD_SEED_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(0.01);
    Duration::from_secs_f64(n * scale)
}

fn show(pid: forkyard::Pid) -> forkyard::Result<()> {
    match Process::read(pid)? {
        Some(p) if p.is_zombie() => println!("{:>7} {}+   [{}] <defunct>", p.pid, p.state, p.comm),
        Some(p) => println!("{:>7} {}    {}", p.pid, p.state, p.command()),
        None => println!("{pid:>7} is gone"),
    }
    Ok(())
}

fn main() -> forkyard::Result<()> {
    std::io::stdout().flush().ok();
    // SAFETY: this program has one thread; the child prints, flushes and ends with _exit.
    let mut child = match unsafe { forkyard::fork() }? {
        Fork::Child => {
            println!("I am a child {}", forkyard::Pid::this());
            std::io::stdout().flush().ok();
            forkyard::exit_child(0)
        }
        Fork::Parent(child) => child,
    };
    // Wait for the exit to happen (an event, not a guess at a delay).
    while procs::state(child.pid())? != Some(State::Zombie) {
        std::thread::sleep(Duration::from_millis(1));
    }
    show(child.pid())?;
    std::thread::sleep(seconds(100.0));
    show(child.pid())?;
    child.wait()?;
    println!("done");
    show(child.pid())?;
    Ok(())
}
