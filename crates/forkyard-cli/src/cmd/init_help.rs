//! `forkyard init`'s options as clap describes them: the one text behind `forkyard init
//! --help`, `forkyard help init`, init's man page and the shell completions.
//!
//! Why not parse with it too: init is a container's PID 1 and parses its command line with
//! the getopt of the compatibility modes (`cmd/init.rs`), without building a clap command
//! tree. So this description is used only to *show* the options; a test below keeps it in
//! step with the getopt table, option by option.

use std::ffi::OsString;

use clap::{Arg, ArgAction, Command, value_parser};

/// What init does, for the long help and the man page's DESCRIPTION.
const LONG_ABOUT: &str = "\
Run COMMAND as the child of an init (PID 1 of a container, or a subreaper) that forwards
every signal to it, collects every zombie, and exits with COMMAND's status (128+n if signal
n killed it) once the other processes have had their chance to finish.";

/// Said after the options.
const AFTER: &str = "\
Messages go to standard error, prefixed \"forkyard init:\".
Invoked as tini, docker-init, dumb-init or catatonit, forkyard takes that program's options.";

/// `forkyard init` as a clap command: every option `cmd/init.rs` accepts, and the command
/// to run. Named `init`, so it can stand in for the passthrough subcommand of the parser.
pub fn command() -> Command {
    Command::new("init")
        .about("Run a command as a container's PID 1 (or a subreaper): forward signals, collect zombies")
        .long_about(LONG_ABOUT)
        .override_usage("forkyard init [OPTIONS] [--] COMMAND [ARGS...]")
        .after_long_help(AFTER)
        .version(env!("CARGO_PKG_VERSION"))
        // Said as they are: `-h` and `--help` both print this whole text.
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(flag("pgroup", Some('g'), "Send forwarded signals to COMMAND's whole process group"))
        .arg(flag("setsid", None, "Run COMMAND in a new session, with the terminal as its controlling terminal"))
        .arg(
            value("rewrite", Some('r'), "FROM:TO", "Forward TO when FROM arrives; TO = 0 drops FROM; repeatable")
                .long_help(
                    "Forward TO when FROM arrives (names or numbers: TERM:QUIT, 15:3, SIGRTMIN+1:USR1);\n\
                     TO = 0 drops FROM. Repeatable; a later rewrite of the same FROM wins.",
                )
                .action(ArgAction::Append),
        )
        .arg(
            value("remap-exit", Some('e'), "FROM:TO", "Exit with TO when the status is FROM (143:0); repeatable")
                .action(ArgAction::Append),
        )
        .arg(value("pdeathsig", Some('p'), "SIG", "Receive SIG when init's own parent dies"))
        .arg(flag("no-subreaper", None, "Do not become a child subreaper when not PID 1"))
        .arg(
            value("grace", None, "DURATION", "When COMMAND exits, TERM the rest, wait up to DURATION, then KILL (5s)")
                .long_help(
                    "When COMMAND exits, send SIGTERM to every remaining process, wait up to DURATION,\n\
                     then SIGKILL what is left (default 5s; 0 exits at once, as tini does).",
                )
                .conflicts_with("wait-all"),
        )
        .arg(flag("wait-all", None, "When COMMAND exits, wait for every remaining process to exit on its own"))
        .arg(
            Arg::new("verbose")
                .short('v')
                .long("verbose")
                .action(ArgAction::Count)
                .help("Log each start, exit, collected zombie and forwarded signal (repeat for more)"),
        )
        .arg(Arg::new("help").short('h').long("help").action(ArgAction::HelpLong).help("Print this help"))
        .arg(Arg::new("version").short('V').long("version").action(ArgAction::Version).help("Print the version"))
        .arg(
            // The id `args` is the passthrough subcommand's field (see `cli.rs`).
            Arg::new("args")
                .value_name("COMMAND")
                .help("The command to run, and its arguments")
                .num_args(1..)
                .required(true)
                .trailing_var_arg(true)
                .allow_hyphen_values(true)
                .value_parser(value_parser!(OsString))
                .value_hint(clap::ValueHint::CommandWithArguments),
        )
}

fn flag(long: &'static str, short: Option<char>, help: &'static str) -> Arg {
    Arg::new(long).long(long).short(short).action(ArgAction::SetTrue).help(help)
}

fn value(long: &'static str, short: Option<char>, name: &'static str, help: &'static str) -> Arg {
    Arg::new(long).long(long).short(short).value_name(name).action(ArgAction::Set).help(help)
}

/// The text `forkyard init --help` prints (the same as `forkyard help init`).
pub fn help() -> String {
    let mut text = command().bin_name("forkyard init").render_long_help().to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::getopt::HasArg;

    /// Every option the getopt table parses is described, with the same short letter and
    /// the same need for a value; and nothing is described that it does not parse.
    #[test]
    fn the_description_matches_what_init_parses() {
        let mut cmd = command();
        cmd.build();
        let spec = &crate::cmd::init::SPEC;
        let shorts = spec.short.trim_start_matches('+');
        for &(long, has_arg, letter) in spec.long {
            let arg = cmd.get_arguments().find(|a| a.get_long() == Some(long));
            let arg = arg.unwrap_or_else(|| panic!("--{long} is parsed but not described"));
            let short = shorts.contains(letter).then_some(letter);
            assert_eq!(arg.get_short(), short, "--{long}'s short option");
            assert_eq!(arg.get_action().takes_values(), has_arg == HasArg::Required, "whether --{long} takes a value");
        }
        for arg in cmd.get_arguments().filter(|a| a.get_long().is_some()) {
            let long = arg.get_long().unwrap_or_default();
            assert!(spec.long.iter().any(|&(l, ..)| l == long), "--{long} is described but not parsed");
        }
    }

    #[test]
    fn the_help_names_every_option_and_the_usage() {
        let text = help();
        assert!(text.contains("Usage: forkyard init [OPTIONS] [--] COMMAND [ARGS...]"), "{text}");
        for long in crate::cmd::init::SPEC.long.iter().map(|&(l, ..)| l) {
            assert!(text.contains(&format!("--{long}")), "--{long} missing from:\n{text}");
        }
        assert!(text.contains("--grace <DURATION>"), "{text}");
    }
}
