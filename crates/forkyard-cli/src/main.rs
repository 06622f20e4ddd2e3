//! The `forkyard` command: a thin layer over the `forkyard` library.
//!
//! Why this file exists: it picks the mode from the command line and maps every error to a
//! message and an exit code in one place. It holds no process logic of its own; that lives
//! in the library.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Fork work into child processes, supervise them, and never leave a zombie or an orphan
/// behind.
#[derive(Parser, Debug)]
#[command(name = "forkyard", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List processes, zombies and trees from /proc.
    Ps(cmd::ps::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Ps(args) => cmd::ps::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            // `forkyard ps | head` closes the pipe early: that is success, not an error.
            if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
                return ExitCode::SUCCESS;
            }
            eprintln!("forkyard: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
