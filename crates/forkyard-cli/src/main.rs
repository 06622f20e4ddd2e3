//! The `forkyard` command: a thin layer over the `forkyard` library.
//!
//! Why this file exists: it picks the mode (its own subcommands, or a peer's command line by
//! the name it was invoked under) and maps every outcome to an exit code in one place. It
//! holds no process logic of its own; that lives in the library.
//!
//! The binary is `#![no_main]`: Rust's usual entry point sets SIGPIPE to "ignore" before
//! `main`, and an init must hand its command the SIGPIPE disposition *it* inherited. So the
//! C `main` below records what was inherited first, then dispatches; the non-init
//! subcommands then ignore SIGPIPE themselves, as Rust programs normally do.
// Unit-test builds keep libtest's main (and so do not use the entry point below).
#![cfg_attr(not(test), no_main)]
#![cfg_attr(test, allow(dead_code, unused_imports))]

mod cli;
mod cmd;
mod compat;

use std::ffi::{OsString, c_char, c_int};
use std::path::Path;

use clap::{FromArgMatches, Parser, Subcommand};
use forkyard::{Disposition, Inherited, Signal};

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
    /// Run the services of forkyard.toml (or a Procfile) until they end.
    Up(cmd::up::Args),
    /// Steer a running forkyard up: status, start, stop, restart, logs, reload...
    Ctl(cmd::ctl::Args),
    /// Run a command as a container's PID 1 (see forkyard init --help).
    #[command(disable_help_flag = true)]
    Init {
        /// Options and command, as described by forkyard init --help.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Print a shell's completion script for forkyard.
    Completions(cmd::completions::Args),
    /// Print forkyard's man page, or a subcommand's, in roff.
    Man(cmd::man::Args),
}

/// The process's entry point (see the module comment for why it is not Rust's `main`).
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // Before anything changes them.
    let inherited = Inherited::capture().unwrap_or(Inherited::pristine());
    let args = arguments(argc, argv);
    let invoked = args.first().and_then(|a| Path::new(a).file_name()).and_then(|n| n.to_str()).unwrap_or("forkyard");
    let code = match invoked {
        "tini" | "tini-static" | "docker-init" => compat::tini::main(&args, inherited),
        "dumb-init" => compat::dumb_init::main(&args, inherited),
        "catatonit" | "podman-init" => compat::catatonit::main(&args, inherited),
        _ if args.get(1).is_some_and(|a| a == "init") => cmd::init::main(&args[2..], inherited),
        _ => subcommand(args, inherited),
    };
    std::process::exit(code)
}

/// The command line, from what the C runtime passed to `main` (with `#![no_main]`, std's own
/// copy is only filled in by glibc, not by musl).
#[cfg(not(test))]
fn arguments(argc: c_int, argv: *const *const c_char) -> Vec<OsString> {
    use std::os::unix::ffi::OsStrExt;
    (0..usize::try_from(argc).unwrap_or(0))
        .filter_map(|i| {
            // SAFETY: the C runtime passes `argc` valid pointers in `argv`, each null or to a
            // NUL-terminated string that lives as long as the process.
            let arg = unsafe { *argv.add(i) };
            if arg.is_null() {
                return None;
            }
            // SAFETY: as above, and `arg` is not null.
            let bytes = unsafe { std::ffi::CStr::from_ptr(arg) }.to_bytes();
            Some(std::ffi::OsStr::from_bytes(bytes).to_os_string())
        })
        .collect()
}

fn subcommand(args: Vec<OsString>, inherited: Inherited) -> i32 {
    // `cli::parser()`: init's real options in `forkyard help init`, one name in version lines.
    let cli = match cli::parser().try_get_matches_from(args).and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    if let Command::Init { args } = cli.command {
        return cmd::init::main(&args, inherited);
    }
    // As Rust programs normally do (after `inherited` recorded the real disposition, which
    // the services get back): a closed pipe becomes an EPIPE error.
    let _ = Signal::PIPE.set_disposition(Disposition::Ignore);
    if let Command::Up(args) = &cli.command {
        return cmd::up::run(args, inherited);
    }
    if let Command::Ctl(args) = &cli.command {
        return cmd::ctl::run(args);
    }
    let outcome = match cli.command {
        Command::Ps(args) => cmd::ps::run(&args),
        Command::Completions(args) => cmd::completions::run(&args),
        Command::Man(args) => cmd::man::run(&args),
        Command::Init { .. } | Command::Up(_) | Command::Ctl(_) => Ok(std::process::ExitCode::SUCCESS),
    };
    match outcome {
        Ok(code) if code == std::process::ExitCode::SUCCESS => 0,
        Ok(_) => 1,
        Err(e) => {
            // `forkyard ps | head` closes the pipe early: that is success, not an error.
            if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
                return 0;
            }
            compat::err(&format!("forkyard: error: {e:#}{}\n", advice(&e)));
            1
        }
    }
}

/// What to do about an error, where the library's message cannot know: `/proc` missing is
/// usually a container started without it.
fn advice(e: &anyhow::Error) -> &'static str {
    let proc_missing =
        e.chain().any(|c| matches!(c.downcast_ref::<forkyard::Error>(), Some(forkyard::Error::Proc { .. })));
    if proc_missing {
        "\nforkyard: hint: in a container, mount /proc, or start under `unshare --pid --fork --mount-proc`"
    } else {
        ""
    }
}
