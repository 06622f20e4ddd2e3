//! `forkyard init [OPTIONS] [--] COMMAND [ARGS...]`: forkyard's own init syntax.
//!
//! Why a hand-rolled parser (the getopt of the compatibility modes, in stop-at-the-command
//! mode) rather than clap: this is the path of a container's PID 1, timed by `init -- true`
//! benchmarks; it parses a dozen options and must not pay for building a clap command tree.
//! Bad input gets one error line naming the argument, the usage line, and exit 2; nothing
//! is started.
//!
//! This file also holds forkyard's wording of init's events (`forkyard init: ...`, which
//! catatonit's mode borrows under its own name) and the [`LogSink`] every mode writes through:
//! the `forkyard-init` library reports events and prints nothing.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use forkyard::spawn::Group;
use forkyard::{Inherited, Signal};
use forkyard_init::{AfterExit, Event, Failure, ForwardTo, Init, Subreaper};

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

/// Runs `forkyard init` with the arguments after `init`; returns the exit code.
pub fn main(args: &[OsString], inherited: Inherited) -> i32 {
    let parsed = SPEC.parse(args);
    if let Some(e) = parsed.error {
        return bad(e);
    }
    let mut init = Init::new(Vec::new(), inherited);
    let mut grace: Option<Duration> = None;
    let mut wait_all = false;
    let mut verbosity = 0;
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
            'v' => verbosity += 1,
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
    let sink = LogSink::new(verbosity);
    let result = forkyard_init::run(&init, &mut |event: &Event<'_>| forkyard_words(event, &sink, PREFIX));
    match result {
        Ok(code) => code,
        Err(Failure::Exec { program, error }) => {
            let (code, message) = shell_exec_failure(&program, &error);
            sink.say(Level::Error, format_args!("{message}"));
            code
        }
        Err(failure) => setup_failed(&sink, PREFIX, &failure),
    }
}

const PREFIX: &str = "forkyard init";

/// How important a message is; the verbosity decides which are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Always shown.
    Error,
    /// Shown at verbosity 0 and above.
    Warn,
    /// Verbosity 1.
    Info,
    /// Verbosity 2.
    Debug,
    /// Verbosity 3.
    Trace,
}

/// Where a mode's words go: standard error, one line per call, filtered by verbosity
/// *before* anything is formatted (a busy init reports thousands of events it never shows).
/// Writing never fails: a closed stderr must not take PID 1 down.
#[derive(Debug)]
pub struct LogSink {
    verbosity: i32,
}

impl LogSink {
    /// -1: errors only; 0: and warnings; 1: each start, exit, collected zombie and forwarded
    /// signal; 2 and 3: more detail.
    pub fn new(verbosity: i32) -> LogSink {
        LogSink { verbosity }
    }

    /// Whether a message of this level is shown.
    pub fn shows(&self, level: Level) -> bool {
        let needed = match level {
            Level::Error => i32::MIN,
            Level::Warn => 0,
            Level::Info => 1,
            Level::Debug => 2,
            Level::Trace => 3,
        };
        self.verbosity >= needed
    }

    /// Writes one line, if `level` is shown.
    pub fn say(&self, level: Level, args: std::fmt::Arguments<'_>) {
        if self.shows(level) {
            let mut line = Vec::with_capacity(128);
            let _ = line.write_fmt(args);
            line.push(b'\n');
            let _ = std::io::stderr().write_all(&line);
        }
    }
}

/// Init could not set itself up (or its loop failed): `PREFIX: why`, exit 1.
pub fn setup_failed(out: &LogSink, p: &str, failure: &Failure) -> i32 {
    out.say(Level::Error, format_args!("{p}: {failure}"));
    1
}

/// forkyard's wording of init's events, after a prefix (`forkyard init`, or a compatibility
/// mode's name).
pub fn forkyard_words(event: &Event<'_>, out: &LogSink, p: &str) {
    use Event::*;
    use Level::*;
    match event {
        Started { pid, command } if out.shows(Info) => {
            let cmd: Vec<_> = command.iter().map(|a| a.to_string_lossy()).collect();
            out.say(Info, format_args!("{p}: started {pid}: {}", cmd.join(" ")));
        }
        NoSubreaper { error } => {
            out.say(Warn, format_args!("{p}: warning: {error}; orphans will not be collected by this init"))
        }
        Reaping(forkyard_init::Reaping::AsInheritedSubreaper) => {
            out.say(Debug, format_args!("{p}: already a child subreaper (set by the program that started it)"))
        }
        DetachedTerminal { was_session_leader: true } => {
            out.say(Debug, format_args!("{p}: gave up the terminal; ignoring the first SIGHUP and SIGCONT"))
        }
        IgnoredHandoff { signal } => {
            out.say(Debug, format_args!("{p}: ignored {signal} (caused by giving up the terminal)"))
        }
        Ignored { signal } => out.say(Debug, format_args!("{p}: ignored {signal}")),
        Translated { from, to } => out.say(Debug, format_args!("{p}: {from} is forwarded as {to}")),
        Dropped { signal } => out.say(Info, format_args!("{p}: dropped {signal}")),
        Forwarded { signal, pid, group: false } => out.say(Info, format_args!("{p}: forwarded {signal} to {pid}")),
        Forwarded { signal, pid, group: true } => {
            out.say(Info, format_args!("{p}: forwarded {signal} to the group of {pid}"))
        }
        ForwardFailed { signal, error } => out.say(Info, format_args!("{p}: could not forward {signal}: {error}")),
        ForwardedToRemaining { signal, count } => {
            out.say(Info, format_args!("{p}: forwarded {signal} to {count} remaining process(es)"))
        }
        Suspending => out.say(Debug, format_args!("{p}: stopping until SIGCONT")),
        Reaped { pid, status, main: true } => out.say(Info, format_args!("{p}: {pid} {status}")),
        Reaped { pid, status, .. } => out.say(Info, format_args!("{p}: collected zombie {pid} ({status})")),
        GraceStarted { signalled, grace } => out
            .say(Info, format_args!("{p}: sent SIGTERM to {signalled} remaining process(es); waiting up to {grace:?}")),
        WaitingForAll => out.say(Info, format_args!("{p}: waiting for the remaining processes to exit")),
        GraceOver { killed } => out
            .say(Warn, format_args!("{p}: warning: grace period over: sent SIGKILL to {killed} remaining process(es)")),
        Exiting { code } => out.say(Info, format_args!("{p}: every process has exited; exiting with {code}")),
        _ => {}
    }
}

/// A command that could not be run: the shell's codes (127 when there is nothing to run,
/// 126 when it cannot be run) and the message, with a hint that fits how it was named. PATH
/// is searched only for a name without a slash; for a path, either nothing is there, or the
/// file is there and what it needs to start (the interpreter of its `#!` line, or its loader)
/// is not.
pub fn shell_exec_failure(program: &str, error: &std::io::Error) -> (i32, String) {
    let code = match error.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => 127,
        _ => 126,
    };
    let hint = match (code, program.contains('/')) {
        (127, false) => "is it installed and in PATH?",
        (127, true) if std::path::Path::new(program).exists() => {
            "the file is there: is the interpreter on its #! line, or its loader, installed?"
        }
        (127, true) => "check the path",
        _ => "is it executable?",
    };
    (code, format!("forkyard init: cannot run '{program}': {} ({hint})", forkyard::error::strerror(error)))
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
    fn exec_failures_use_the_shell_codes() {
        let errno = std::io::Error::from_raw_os_error;
        assert_eq!(shell_exec_failure("x", &errno(libc::ENOENT)).0, 127);
        assert_eq!(shell_exec_failure("x", &errno(libc::EACCES)).0, 126);
        let (_, message) = shell_exec_failure("nope", &errno(libc::ENOENT));
        assert!(message.starts_with("forkyard init: cannot run 'nope': No such file or directory"), "{message}");
    }

    #[test]
    fn remaps_take_statuses() {
        assert_eq!(parse_remap("143:0"), Ok((143, 0)));
        assert!(parse_remap("256:0").is_err());
        assert!(parse_remap("1").is_err());
    }
}
