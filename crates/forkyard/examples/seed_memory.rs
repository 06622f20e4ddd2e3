//! The seed, section 2 continued: parent and child have independent memory.
//!
//! The child starts with a copy of every variable; it sets `var = 9`, and the parent still
//! prints 10. The seed makes the parent `sleep(3)` so that it prints after the child; here
//! the parent waits for the child to end, which orders the output without guessing a time.
//!
//! Run: `cargo run --example seed_memory`

use forkyard::run_in_child;

fn task(id: u32) {
    println!("work {id}");
}

fn main() -> forkyard::Result<()> {
    let mut var = 10;
    println!("I am father child");
    // run_in_child forks, runs the closure in the child and waits for it.
    let var_in_child = run_in_child(|| {
        println!("I am a child");
        var = 9;
        task(1);
        var
    })?;
    assert_eq!(var_in_child, 9);
    println!("{var}");
    Ok(())
}
