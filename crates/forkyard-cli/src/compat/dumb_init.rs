//! `dumb-init`: dumb-init 1.2.5's command line.
//!
//! getopt_long `+hvVcr:` (stops at the first operand), `-r s:r` with numbers (s 1-31,
//! r 0-31, 0 drops), `DUMB_INIT_DEBUG=1`, `DUMB_INIT_SETSID=0`. In setsid mode (the
//! default) init gives up its terminal (ignoring the SIGHUP and SIGCONT that causes if it was
//! the session leader), the command gets a new session with the terminal as its controlling
//! terminal, signals go to its whole session, SIGTSTP/SIGTTIN/SIGTTOU become SIGSTOP unless
//! rewritten, and SIGTERM goes to the session when the command exits. Init stops itself
//! after forwarding a job-control signal, moves to `/`, and never becomes a subreaper. Exec
//! failure: `[dumb-init] CMD: error`, exit 2. Fixed: the command keeps the signal mask and
//! ignored signals init inherited, and real-time signals are forwarded.

use std::ffi::OsString;

use forkyard::spawn::Group;
use forkyard::{ExitStatus, Inherited, Signal};
use forkyard_init::{AfterExit, Event, Failure, ForwardTo, Init, JobControl, Subreaper};

use crate::cmd::init::{Level, LogSink};

use super::err;
use super::getopt::{HasArg, Spec};

pub(super) const SPEC: Spec<'static> = Spec {
    short: "+hvVcr:",
    long: &[
        ("help", HasArg::No, 'h'),
        ("single-child", HasArg::No, 'c'),
        ("rewrite", HasArg::Required, 'r'),
        ("verbose", HasArg::No, 'v'),
        ("version", HasArg::No, 'V'),
    ],
};

fn help(name: &str) -> String {
    format!(
        "forkyard {version} (dumb-init-compatible)\n\
         Usage: {name} [option] command [[arg] ...]\n\n\
         Runs the command as the child of an init that forwards signals to it (to its whole \
         session, unless -c) and collects every zombie.\n\n\
         Options:\n\
         \x20  -c, --single-child   signals go to the command only, not to its descendants;\n\
         \x20                       no new session\n\
         \x20  -r, --rewrite s:r    forward signal r when signal s arrives (numbers, 1-31);\n\
         \x20                       r = 0 drops s; repeatable\n\
         \x20  -v, --verbose        debugging messages on standard error\n\
         \x20  -h, --help           print this help and exit\n\
         \x20  -V, --version        print the version and exit\n\n\
         Environment: DUMB_INIT_DEBUG=1 (as -v), DUMB_INIT_SETSID=0 (as -c, for the session).\n\
         forkyard's own mode has more: forkyard init --help\n",
        version = env!("CARGO_PKG_VERSION")
    )
}

/// dumb-init 1.2.5's debug wording, word for word (its own tests match on these lines).
fn report(event: &Event<'_>, out: &LogSink) {
    use Level::Debug;
    let say = |args: std::fmt::Arguments<'_>| out.say(Debug, format_args!("[dumb-init] {args}"));
    if !out.shows(Debug) {
        return;
    }
    match event {
        Event::Started { pid, .. } => say(format_args!("Child spawned with PID {pid}.")),
        Event::DetachTerminalFailed { error } => say(format_args!(
            "Unable to detach from controlling tty (errno={} {}).",
            error.raw_os_error().unwrap_or(0),
            super::strerror(error)
        )),
        Event::DetachedTerminal { was_session_leader: true } => {
            say(format_args!("Detached from controlling tty, ignoring the first SIGHUP and SIGCONT we receive."))
        }
        Event::DetachedTerminal { was_session_leader: false } => {
            say(format_args!("Detached from controlling tty, but was not session leader."))
        }
        Event::Received { signal } => say(format_args!("Received signal {}.", signal.as_raw())),
        Event::IgnoredHandoff { signal } => say(format_args!("Ignoring tty hand-off signal {}.", signal.as_raw())),
        Event::Translated { from, to } => say(format_args!("Translating signal {} to {}.", from.as_raw(), to.as_raw())),
        Event::Dropped { signal } => {
            say(format_args!("Not forwarding signal {} to children (ignored).", signal.as_raw()))
        }
        Event::Forwarded { signal, .. } | Event::TermOnExit { signal, .. } => {
            say(format_args!("Forwarded signal {} to children.", signal.as_raw()))
        }
        Event::Suspending => say(format_args!("Suspending self due to TTY signal.")),
        Event::Reaped { pid, status: ExitStatus::Exited(code), .. } => {
            say(format_args!("A child with PID {pid} exited with exit status {code}."))
        }
        Event::Reaped { pid, status: ExitStatus::Signaled { signal, .. }, .. } => {
            say(format_args!("A child with PID {pid} was terminated by signal {}.", signal.as_raw()))
        }
        Event::MainExited { code, .. } => say(format_args!("Child exited with status {code}. Goodbye.")),
        _ => {}
    }
}

fn exec_failure(program: &str, error: &std::io::Error) -> (i32, String) {
    (2, format!("[dumb-init] {program}: {}", super::strerror(error)))
}

/// `sscanf("%d:%d")` then the ranges dumb-init checks: s in 1..=31, r in 0..=31.
fn parse_rewrite(text: &str) -> Option<(i32, i32)> {
    let (a, b) = text.split_once(':')?;
    let number = |s: &str| -> Option<i32> {
        let s = s.trim_start();
        let (neg, digits) = match s.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let d: String = digits.chars().take_while(char::is_ascii_digit).collect();
        let n: i32 = d.parse().ok()?;
        Some(if neg { -n } else { n })
    };
    // The first number must end exactly at the ':' (sscanf would stop at anything else and
    // then fail to match the ':').
    let first = a.trim_start();
    let first_ok = first.strip_prefix(['-', '+']).unwrap_or(first);
    if first_ok.is_empty() || !first_ok.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (s, r) = (number(a)?, number(b)?);
    ((1..=31).contains(&s) && (0..=31).contains(&r)).then_some((s, r))
}

/// Runs dumb-init's command line; returns the exit code.
pub fn main(args: &[OsString], inherited: Inherited) -> i32 {
    let name = "dumb-init";
    let parsed = SPEC.parse(args.get(1..).unwrap_or_default());
    let mut debug = false;
    let mut setsid = true;
    let mut rewrites: Vec<(i32, i32)> = Vec::new();
    for (opt, value) in parsed.options {
        match opt {
            'h' => {
                err(&help(name));
                return 0;
            }
            'V' => {
                err(&format!("forkyard {} (dumb-init-compatible)\n", env!("CARGO_PKG_VERSION")));
                return 0;
            }
            'v' => debug = true,
            'c' => setsid = false,
            'r' => match value.as_deref().and_then(parse_rewrite) {
                Some(pair) => rewrites.push(pair),
                None => {
                    err("Usage: -r option takes <signum>:<signum>, where <signum> is between 1 and 31.\n\
                         This option can be specified multiple times.\n\
                         Use --help for full usage.\n");
                    return 1;
                }
            },
            _ => {}
        }
    }
    if let Some(e) = parsed.error {
        err(&format!("{name}: {e}\n"));
        return 1;
    }
    let Some(command) = super::command(parsed.operands) else {
        err(&format!("Usage: {name} [option] program [args]\nTry {name} --help for full usage.\n"));
        return 1;
    };
    if std::env::var("DUMB_INIT_DEBUG").is_ok_and(|v| v == "1") {
        debug = true;
    }
    if std::env::var("DUMB_INIT_SETSID").is_ok_and(|v| v == "0") {
        setsid = false;
    }
    let mut init = Init::new(command, inherited);
    init.subreaper = Subreaper::No;
    init.after_exit = AfterExit::Exit;
    init.chdir_root = true;
    let sink = LogSink::new(if debug { 3 } else { -1 });
    init.job_control = JobControl::StopWithChild { as_sigstop: setsid };
    // dumb-init sends SIGTERM on when the command exits, in both modes (with -c, to the
    // command alone, which has exited by then).
    init.term_on_exit = true;
    // Later rewrites of the same signal win, as in dumb-init's table.
    for (s, r) in rewrites {
        let (Some(from), to) = (Signal::new(s), Signal::new(r)) else { continue };
        init.rewrite.retain(|(f, _)| *f != from);
        init.rewrite.push((from, to));
    }
    if setsid {
        init.group = Group::Session;
        init.forward_to = ForwardTo::Group;
        init.detach_terminal = true;
        if debug {
            init.child_announce = Some(b"[dumb-init] setsid complete.\n".to_vec());
        }
    } else {
        init.group = Group::Inherit;
        init.forward_to = ForwardTo::Child;
    }
    match forkyard_init::run(&init, &mut |event: &Event<'_>| report(event, &sink)) {
        Ok(code) => code,
        Err(Failure::Exec { program, error }) => {
            let (code, message) = exec_failure(&program, &error);
            sink.say(Level::Error, format_args!("{message}"));
            code
        }
        Err(failure) => {
            sink.say(Level::Error, format_args!("[dumb-init] {failure}"));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_parse_like_sscanf_with_dumb_inits_ranges() {
        assert_eq!(parse_rewrite("15:3"), Some((15, 3)));
        assert_eq!(parse_rewrite("1:0"), Some((1, 0)));
        assert_eq!(parse_rewrite("31:31"), Some((31, 31)));
        assert_eq!(parse_rewrite("15:3abc"), Some((15, 3)));
        for bad in ["0:1", "32:1", "15:32", "15:-1", "TERM:1", "15", ":3", "15:", "15x:3"] {
            assert_eq!(parse_rewrite(bad), None, "{bad}");
        }
    }
}
