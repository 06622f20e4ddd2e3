//! `catatonit`: catatonit 0.1.7's command line.
//!
//! getopt_long `ghLPV` with permutation (so `catatonit sh -c x` is an error: `-c` is taken
//! as catatonit's, and the program needs `--`), `--version`. Always a subreaper when not
//! PID 1 (failing if the kernel refuses); `-g` signals the process group; `-P` pause mode
//! (no program; exit 0 on SIGTERM or SIGINT, ignore the rest, keep collecting). SIGTSTP,
//! SIGTTIN and SIGTTOU are neither forwarded nor acted on; the synchronous signals are left
//! unblocked; `LISTEN_PID` naming catatonit is passed to the program; init closes inherited
//! descriptors above 2 once the program runs; exec failure exits 1; nothing is sent to the
//! remaining processes at exit. Fixed: the program keeps the signal mask init inherited
//! (catatonit blocks SIGTSTP, SIGTTIN and SIGTTOU in it).

use std::ffi::OsString;

use forkyard::spawn::Group;
use forkyard::{Inherited, Signal};
use forkyard_init::{AfterExit, Event, Failure, ForwardTo, Init, JobControl, Subreaper};

use crate::cmd::init::{Level, LogSink, forkyard_words, setup_failed};

use super::getopt::{HasArg, Spec};
use super::{err, out};

const SPEC: Spec<'static> = Spec { short: "ghLPV", long: &[("version", HasArg::No, 'V')] };

fn usage(name: &str) -> String {
    format!("usage: {name} [-ghLPV] [--] <progname> [<arguments>...]\n")
}

fn help(name: &str) -> String {
    format!(
        "{}\nforkyard {version} (catatonit-compatible): runs the program under an init that \
         forwards signals to it and collects every zombie.\n\n\
         options:\n\
         \x20 -g              forward signals to the program's process group\n\
         \x20 -h              print this help\n\
         \x20 -L              print the licence\n\
         \x20 -P              pause mode: run no program, exit on SIGINT or SIGTERM\n\
         \x20 -V, --version   print the version\n\n\
         forkyard's own mode has more: forkyard init --help\n",
        usage(name).trim_end(),
        version = env!("CARGO_PKG_VERSION")
    )
}

fn line(level: Level, message: &str) -> String {
    let tag = match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Debug | Level::Trace => "DEBUG",
    };
    format!("{tag} (catatonit:{}): {message}", std::process::id())
}

/// forkyard's wording, after catatonit's name.
fn report(event: &Event<'_>, out: &LogSink) {
    forkyard_words(event, out, "catatonit")
}

fn exec_failure(error: &std::io::Error) -> (i32, String) {
    (1, line(Level::Error, &format!("failed to exec pid1: {}", super::strerror(error))))
}

/// Runs catatonit's command line; returns the exit code.
pub fn main(args: &[OsString], inherited: Inherited) -> i32 {
    let name = "catatonit";
    let parsed = SPEC.parse(args.get(1..).unwrap_or_default());
    let mut init = Init::new(Vec::new(), inherited);
    init.subreaper = Subreaper::Require;
    init.after_exit = AfterExit::Exit;
    init.job_control = JobControl::Forward;
    init.ignore = vec![Signal::TSTP, Signal::TTIN, Signal::TTOU];
    init.leave_unblocked =
        vec![Signal::FPE, Signal::ILL, Signal::SEGV, Signal::BUS, Signal::ABRT, Signal::TRAP, Signal::SYS];
    init.pass_listen_pid = true;
    init.group = Group::Own;
    let mut pause = false;
    for (opt, _) in parsed.options {
        match opt {
            'h' => {
                out(&help(name));
                return 0;
            }
            'L' => {
                out(&format!("{}\n", super::LICENCE));
                return 0;
            }
            'V' => {
                // Docker's `docker info` reads "tini version V".
                out(&format!("tini version forkyard-{}_catatonit\n", env!("CARGO_PKG_VERSION")));
                return 0;
            }
            'g' => init.forward_to = ForwardTo::Group,
            'P' => pause = true,
            _ => {}
        }
    }
    if let Some(e) = parsed.error {
        err(&format!("{name}: {e}\n{}", usage(name)));
        return 1;
    }
    let sink = LogSink::new(0);
    let mut log = |event: &Event<'_>| report(event, &sink);
    let result = if pause {
        forkyard_init::pause(&init, &mut log)
    } else {
        let Some(command) = super::command(parsed.operands) else {
            err(&format!("{}\n{}", line(Level::Error, "missing program name"), usage(name)));
            return 1;
        };
        init.command = command;
        // SAFETY: this runs in the binary's `main`, which owns no descriptor above 2: whatever
        // is open there was inherited from the launcher (catatonit closes them too).
        unsafe { init.close_inherited_fds() };
        forkyard_init::run(&init, &mut log)
    };
    match result {
        Ok(code) => code,
        Err(Failure::Exec { error, .. }) => {
            let (code, message) = exec_failure(&error);
            sink.say(Level::Error, format_args!("{message}"));
            code
        }
        Err(failure) => setup_failed(&sink, name, &failure),
    }
}
