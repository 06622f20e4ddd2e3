//! `forkyard init [OPTIONS] [--] COMMAND [ARGS...]`: forkyard's own init syntax.
//!
//! Why a hand-rolled parser (the getopt of the compatibility modes, in stop-at-the-command
//! mode) rather than clap: this is the path of a container's PID 1, timed by `init -- true`
//! benchmarks; it parses a dozen options and must not pay for building a clap command tree.
//! Bad input gets one error line naming the argument, the usage line, and exit 2; nothing
//! is started.

use std::ffi::OsString;
use std::time::Duration;

use forkyard::Signal;
use forkyard::init::{AfterExit, ForwardTo, Inherited, Init, Subreaper};
use forkyard::spawn::Group;

use crate::compat::err;
use crate::compat::getopt::{HasArg, Spec};

/// init's options, as getopt parses them (`init_help.rs` describes them, in step).
pub(crate) const SPEC: Spec<'static> = Spec {
    short: "+gr:e:p:vhV",
    long: &[
        ("pgroup", HasArg::No, 'g'),
        ("setsid", HasArg::No, 'S'),
        ("rewrite", HasArg::Required, 'r'),
        ("remap-exit", HasArg::Required, 'e'),
        ("pdeathsig", HasArg::Required, 'p'),
        ("no-subreaper", HasArg::No, 'N'),
        ("grace", HasArg::Required, 'G'),
        ("wait-all", HasArg::No, 'W'),
        ("verbose", HasArg::No, 'v'),
        ("help", HasArg::No, 'h'),
        ("version", HasArg::No, 'V'),
    ],
};

const USAGE: &str = "usage: forkyard init [OPTIONS] [--] COMMAND [ARGS...]  (forkyard init --help for more)";

/// A bad argument: the message, then the usage line; exit 2.
fn bad(message: String) -> i32 {
    err(&format!("forkyard init: {message}\n{USAGE}\n"));
    2
}

fn parse_rewrite(text: &str) -> Result<(Signal, Option<Signal>), String> {
    let (from, to) =
        text.split_once(':').ok_or_else(|| format!("--rewrite '{text}': expected FROM:TO, e.g. TERM:QUIT"))?;
    let from: Signal = from.parse().map_err(|e| format!("--rewrite '{text}': {e}"))?;
    if !from.is_catchable() {
        return Err(format!("--rewrite '{text}': {from} cannot be caught, so it cannot be rewritten"));
    }
    let to = if to.trim() == "0" {
        None
    } else {
        Some(to.parse::<Signal>().map_err(|e| format!("--rewrite '{text}': {e}"))?)
    };
    Ok((from, to))
}

fn parse_remap(text: &str) -> Result<(u8, u8), String> {
    let parse = |s: &str| {
        s.trim().parse::<u8>().map_err(|_| format!("--remap-exit '{text}': '{s}' is not an exit status (0-255)"))
    };
    let (from, to) =
        text.split_once(':').ok_or_else(|| format!("--remap-exit '{text}': expected FROM:TO, e.g. 143:0"))?;
    Ok((parse(from)?, parse(to)?))
}

/// A command that could not be run: the shell's codes (127 when there is nothing to run,
/// 126 when it cannot be run), with a hint that fits how it was named. PATH is searched only
/// for a name without a slash; for a path, either nothing is there, or the file is there and
/// what it needs to start (the interpreter of its `#!` line, or its loader) is not.
fn exec_failure(program: &str, error: &std::io::Error) -> (i32, String) {
    let (code, _) = forkyard::init::shell_exec_failure(program, error);
    let hint = match (code, program.contains('/')) {
        (127, false) => "is it installed and in PATH?",
        (127, true) if std::path::Path::new(program).exists() => {
            "the file is there: is the interpreter on its #! line, or its loader, installed?"
        }
        (127, true) => "check the path",
        _ => "is it executable?",
    };
    (code, format!("forkyard init: cannot run '{program}': {} ({hint})", crate::compat::strerror(error)))
}

/// Runs `forkyard init` with the arguments after `init`; returns the exit code.
pub fn main(args: &[OsString], inherited: Inherited) -> i32 {
    let parsed = SPEC.parse(args);
    if let Some(e) = parsed.error {
        return bad(e);
    }
    let mut init = Init::new(Vec::new(), inherited);
    init.exec_failure = exec_failure;
    let mut grace: Option<Duration> = None;
    let mut wait_all = false;
    for (opt, value) in parsed.options {
        let value = value.unwrap_or_default();
        match opt {
            'h' => {
                // Built only when asked for: the description lives in `init_help.rs`.
                crate::compat::out(&super::init_help::help());
                return 0;
            }
            'V' => {
                crate::compat::out(&format!("forkyard {}\n", env!("CARGO_PKG_VERSION")));
                return 0;
            }
            'g' => init.forward_to = ForwardTo::Group,
            'S' => {
                init.group = Group::Session;
                init.detach_terminal = true;
            }
            'r' => match parse_rewrite(&value) {
                Ok(pair) => {
                    init.rewrite.retain(|(from, _)| *from != pair.0);
                    init.rewrite.push(pair);
                }
                Err(e) => return bad(e),
            },
            'e' => match parse_remap(&value) {
                Ok(pair) => init.remap_exit.push(pair),
                Err(e) => return bad(e),
            },
            'p' => match value.parse::<Signal>() {
                Ok(signal) => init.parent_death_signal = Some(signal),
                Err(e) => return bad(format!("--pdeathsig: {e}")),
            },
            'N' => init.subreaper = Subreaper::No,
            'G' => match forkyard::time::parse_duration(&value) {
                Ok(d) => grace = Some(d),
                Err(e) => return bad(format!("--grace: {e}")),
            },
            'W' => wait_all = true,
            'v' => init.verbosity += 1,
            _ => {}
        }
    }
    init.after_exit = match (grace, wait_all) {
        (Some(_), true) => return bad("--grace and --wait-all cannot be used together: pick one".into()),
        (_, true) => AfterExit::WaitAll,
        (Some(d), false) => AfterExit::Grace(d),
        (None, false) => AfterExit::Grace(Duration::from_secs(5)),
    };
    let Some(command) = crate::compat::command(parsed.operands) else {
        return bad("no command given".into());
    };
    init.command = command;
    forkyard::init::run(&init)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_take_names_numbers_and_zero() {
        assert_eq!(parse_rewrite("TERM:QUIT"), Ok((Signal::TERM, Some(Signal::QUIT))));
        assert_eq!(parse_rewrite("15:3"), Ok((Signal::TERM, Some(Signal::QUIT))));
        assert_eq!(parse_rewrite("HUP:0"), Ok((Signal::HUP, None)));
        assert!(parse_rewrite("TERM").is_err());
        assert!(parse_rewrite("KILL:TERM").is_err_and(|e| e.contains("cannot be caught")));
        assert!(parse_rewrite("TERM:NOPE").is_err_and(|e| e.contains("'NOPE' is not a signal")));
    }

    #[test]
    fn remaps_take_statuses() {
        assert_eq!(parse_remap("143:0"), Ok((143, 0)));
        assert!(parse_remap("256:0").is_err());
        assert!(parse_remap("1").is_err());
    }
}
