//! `tini` and `docker-init`: tini 0.19's command line.
//!
//! getopt with permutation (`p:hvwgle:s`), `--version` alone, `TINI_SUBREAPER` and
//! `TINI_KILL_PROCESS_GROUP` on presence, `TINI_VERBOSITY` as a number. Subreaper only when
//! asked; a warning when neither PID 1 nor subreaper; exit at once when the command exits
//! (128 + n for a signal), then `-e` remaps; exec failures 127 (not found), 126 (permission),
//! 1 (other). SIGTTIN and SIGTTOU are neither forwarded nor acted on, and the synchronous
//! signals are left unblocked, as tini does. Messages go to standard error (tini prints its
//! informational ones on standard output, mixing them with the program's).

use std::ffi::OsString;

use forkyard::spawn::Group;
use forkyard::{ExitStatus, Inherited, Signal};
use forkyard_init::{AfterExit, Event, Failure, ForwardTo, Init, JobControl, Reaping, Subreaper};

use crate::cmd::init::{Level, LogSink};

use super::getopt::Spec;
use super::{err, out};

pub(super) const SPEC: Spec<'static> = Spec { short: "p:hvwgle:s", long: &[] };

fn usage(name: &str) -> String {
    format!(
        "{name} (forkyard {version}, tini-compatible)\n\
         Usage: {name} [OPTIONS] PROGRAM -- [ARGS] | --version\n\n\
         Runs PROGRAM as the child of an init that forwards signals to it and collects every zombie.\n\n\
         Options:\n\
         \x20 --version      print the version and exit\n\
         \x20 -h             print this help and exit\n\
         \x20 -s             become a child subreaper (needed unless running as PID 1)\n\
         \x20 -p SIGNAL      receive SIGNAL when the parent dies, e.g. -p SIGKILL\n\
         \x20 -v             more messages (repeat up to 3 times)\n\
         \x20 -w             warn about each collected zombie\n\
         \x20 -g             send signals to the program's process group\n\
         \x20 -e EXIT_CODE   exit with 0 when the program exits with EXIT_CODE (0-255; repeatable)\n\
         \x20 -l             print the licence and exit\n\n\
         Environment: TINI_SUBREAPER (as -s), TINI_KILL_PROCESS_GROUP (as -g), TINI_VERBOSITY (default 1).\n\
         forkyard's own mode has more: forkyard init --help\n",
        version = env!("CARGO_PKG_VERSION")
    )
}

fn line(level: Level, message: &str) -> String {
    let tag = match level {
        Level::Error => "FATAL",
        Level::Warn => "WARN ",
        Level::Info => "INFO ",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    };
    format!("[{tag} tini ({})] {message}", std::process::id())
}

/// C's `strsignal`: "Terminated", "Hangup", ... (tini names signals this way).
fn strsignal(signal: forkyard::Signal) -> String {
    // SAFETY: strsignal returns a pointer to a NUL-terminated string valid until the next
    // call on this thread; it is copied at once.
    let text = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(signal.as_raw())) };
    text.to_string_lossy().into_owned()
}

/// tini's wording; `warn_reaped`: tini's `-w`, a warning per collected zombie.
fn report(event: &Event<'_>, out: &LogSink, warn_reaped: bool) {
    let say = |level: Level, args: std::fmt::Arguments<'_>| {
        if out.shows(level) {
            out.say(level, format_args!("{}", line(level, &args.to_string())));
        }
    };
    match event {
        Event::Started { pid, command } => {
            let name = command.first().map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
            say(Level::Info, format_args!("Spawned child process '{name}' with pid '{pid}'"))
        }
        // tini checks PR_GET_CHILD_SUBREAPER too: an inherited flag is not warned about.
        Event::Reaping(Reaping::No) => say(
            Level::Warn,
            format_args!(
                "Tini is not running as PID 1 and isn't registered as a child subreaper.\n\
                 Zombie processes will not be re-parented to Tini, so zombie reaping won't work.\n\
                 To fix the problem, use the -s option or set the environment variable TINI_SUBREAPER to register \
                 Tini as a child subreaper, or run Tini as PID 1."
            ),
        ),
        Event::Received { signal } if *signal == forkyard::Signal::CHLD => {
            say(Level::Debug, format_args!("Received SIGCHLD"))
        }
        Event::Received { signal } if out.shows(Level::Debug) => {
            say(Level::Debug, format_args!("Passing signal: '{}'", strsignal(*signal)))
        }
        Event::Reaped { pid, main: false, .. } if warn_reaped => {
            say(Level::Warn, format_args!("Reaped zombie process with pid={pid}"))
        }
        Event::Reaped { pid, main: false, .. } => say(Level::Debug, format_args!("Reaped child with pid: '{pid}'")),
        Event::Reaped { status: ExitStatus::Exited(code), main: true, .. } => {
            say(Level::Info, format_args!("Main child exited normally (with status '{code}')"))
        }
        Event::Reaped { status: ExitStatus::Signaled { signal, .. }, main: true, .. } if out.shows(Level::Info) => {
            say(Level::Info, format_args!("Main child exited with signal (with signal '{}')", strsignal(*signal)))
        }
        Event::MainExited { .. } => say(Level::Trace, format_args!("Exiting: child has exited")),
        Event::NoSubreaper { error } => {
            say(Level::Error, format_args!("Failed to register as child subreaper: {error}"))
        }
        _ => {}
    }
}

fn exec_failure(program: &str, error: &std::io::Error) -> (i32, String) {
    let code = match error.raw_os_error() {
        Some(libc::ENOENT) => 127,
        Some(libc::EACCES) => 126,
        _ => 1,
    };
    (code, line(Level::Error, &format!("exec {program} failed: {}", super::strerror(error))))
}

fn fatal(message: &str) -> i32 {
    err(&format!("{}\n", line(Level::Error, message)));
    1
}

/// tini's `-p` takes the names SIGHUP..SIGSYS, with the `SIG` prefix, and nothing else.
fn pdeath_signal(text: &str) -> Option<Signal> {
    let signal: Signal = text
        .strip_prefix("SIG")
        .filter(|rest| rest.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))?
        .parse()
        .ok()?;
    (1..=31).contains(&signal.as_raw()).then_some(signal)
}

/// Runs tini's command line; returns the exit code.
pub fn main(args: &[OsString], inherited: Inherited) -> i32 {
    let name = "tini";
    let rest = args.get(1..).unwrap_or_default();
    if rest.len() == 1 && rest[0] == "--version" {
        // Docker's `docker info` reads this line as "tini version V - git.C".
        out(&format!("tini version forkyard-{} - git.forkyard\n", env!("CARGO_PKG_VERSION")));
        return 0;
    }
    let parsed = SPEC.parse(rest);
    let mut init = Init::new(Vec::new(), inherited);
    init.subreaper = Subreaper::No;
    init.after_exit = AfterExit::Exit;
    init.job_control = JobControl::Forward;
    init.ignore = vec![Signal::TTIN, Signal::TTOU];
    init.leave_unblocked =
        vec![Signal::FPE, Signal::ILL, Signal::SEGV, Signal::BUS, Signal::ABRT, Signal::TRAP, Signal::SYS];
    init.group = Group::Own;
    let mut warn_reaped = false;
    let mut verbosity = 1;
    for (opt, value) in parsed.options {
        let value = value.unwrap_or_default();
        match opt {
            'h' => {
                out(&usage(name));
                return 0;
            }
            'l' => {
                out(&format!("{}\n", super::LICENCE));
                return 0;
            }
            's' => init.subreaper = Subreaper::Require,
            'v' => verbosity += 1,
            'w' => warn_reaped = true,
            'g' => init.forward_to = ForwardTo::Group,
            'e' => match value.parse::<u16>() {
                Ok(code) if code <= 255 => init.remap_exit.push((code as u8, 0)),
                _ => return fatal(&format!("Not a valid option for -e: {value}")),
            },
            'p' => match pdeath_signal(&value) {
                Some(signal) => init.parent_death_signal = Some(signal),
                None => return fatal(&format!("Not a valid option for -p: {value}")),
            },
            _ => {}
        }
    }
    if let Some(e) = parsed.error {
        err(&format!("{name}: {e}\n{}", usage(name)));
        return 1;
    }
    if std::env::var_os("TINI_SUBREAPER").is_some() {
        init.subreaper = Subreaper::Require;
    }
    if std::env::var_os("TINI_KILL_PROCESS_GROUP").is_some() {
        init.forward_to = ForwardTo::Group;
    }
    if let Some(v) = std::env::var_os("TINI_VERBOSITY") {
        verbosity = atoi(&v.to_string_lossy());
    }
    // tini's levels: 1 warnings, 2 info, 3 debug, 4 trace; ours start one lower.
    let sink = LogSink::new(verbosity - 1);
    let Some(command) = super::command(parsed.operands) else {
        err(&usage(name));
        return 1;
    };
    init.command = command;
    match forkyard_init::run(&init, &mut |event: &Event<'_>| report(event, &sink, warn_reaped)) {
        Ok(code) => code,
        Err(Failure::Exec { program, error }) => {
            let (code, message) = exec_failure(&program, &error);
            sink.say(Level::Error, format_args!("{message}"));
            code
        }
        Err(failure) => fatal(&failure.to_string()),
    }
}

/// C's `atoi`: leading whitespace, an optional sign, digits; anything else ends it; 0 if
/// there are no digits.
fn atoi(text: &str) -> i32 {
    let t = text.trim_start();
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let n: i64 = digits
        .chars()
        .take_while(char::is_ascii_digit)
        .fold(0i64, |n, c| (n * 10 + i64::from(c as u8 - b'0')).min(i64::from(i32::MAX) + 1));
    (sign * n).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdeathsig_takes_only_sig_names() {
        assert_eq!(pdeath_signal("SIGKILL"), Some(Signal::KILL));
        assert_eq!(pdeath_signal("SIGUSR1"), Some(Signal::USR1));
        assert_eq!(pdeath_signal("KILL"), None);
        assert_eq!(pdeath_signal("9"), None);
        assert_eq!(pdeath_signal("SIGRTMIN"), None);
        assert_eq!(pdeath_signal("SIGkill"), None);
    }

    #[test]
    fn atoi_reads_like_c() {
        assert_eq!(atoi("3"), 3);
        assert_eq!(atoi(" 2x"), 2);
        assert_eq!(atoi("x"), 0);
        assert_eq!(atoi("-1"), -1);
        assert_eq!(atoi(""), 0);
    }
}
