//! What a user who installs forkyard gets besides the command, run as they would run it:
//! shell completions and man pages generated from the command line (init's real options
//! included), `forkyard help init`, one version line for every subcommand, and init's words
//! for a command it cannot run.

#[path = "../../forkyard/tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

/// forkyard's subcommands, each of which must be completed and have a man page.
const SUBCOMMANDS: [&str; 6] = ["init", "up", "ctl", "ps", "completions", "man"];

/// Every option `forkyard init` parses (its getopt table, in cmd/init.rs).
const INIT_OPTIONS: [&str; 11] = [
    "--pgroup",
    "--setsid",
    "--rewrite",
    "--remap-exit",
    "--pdeathsig",
    "--no-subreaper",
    "--grace",
    "--wait-all",
    "--verbose",
    "--help",
    "--version",
];

fn main() {
    support::run(&[
        ("completions_name_every_subcommand_and_inits_options", completions_name_every_subcommand_and_inits_options),
        ("bash_completes_inits_options", bash_completes_inits_options),
        ("every_subcommand_has_a_man_page", every_subcommand_has_a_man_page),
        ("a_man_page_for_nothing_exits_2_naming_it", a_man_page_for_nothing_exits_2_naming_it),
        ("help_init_prints_inits_real_help", help_init_prints_inits_real_help),
        ("help_lists_the_subcommands_in_order", help_lists_the_subcommands_in_order),
        ("every_version_line_says_forkyard", every_version_line_says_forkyard),
        ("a_path_that_is_not_there_is_not_a_path_search", a_path_that_is_not_there_is_not_a_path_search),
    ])
}

fn forkyard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forkyard")).args(args).output().expect("running forkyard")
}

/// Standard output of a run that must succeed.
fn stdout(args: &[&str]) -> String {
    let out = forkyard(args);
    assert!(
        out.status.success(),
        "forkyard {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn completions_name_every_subcommand_and_inits_options() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&["completions", shell]);
        assert!(script.len() > 1000, "{shell}: a script of {} bytes", script.len());
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: no {sub}");
        }
        // init is parsed by hand; its options come from its own description.
        for option in ["grace", "wait-all", "remap-exit", "no-subreaper"] {
            assert!(script.contains(option), "{shell}: no init --{option}");
        }
    }
}

/// The bash script, loaded into bash, completes as a user typing Tab would see.
fn bash_completes_inits_options() {
    let script = stdout(&["completions", "bash"]);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("forkyard.bash");
    std::fs::write(&file, script).expect("write");
    let complete = |words: &[&str]| -> Vec<String> {
        let words_list = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ");
        let current = words.len() - 1;
        let program = format!(
            "source '{}'; COMP_WORDS=({words_list}); COMP_CWORD={current}; \
             _forkyard forkyard '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display(),
            words[current],
            words[current - 1],
        );
        let out = Command::new("bash").args(["--norc", "-c", &program]).output().expect("bash");
        assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    };
    assert_eq!(complete(&["forkyard", "init", "--gr"]), ["--grace"]);
    assert_eq!(complete(&["forkyard", "init", "--no-s"]), ["--no-subreaper"]);
    assert_eq!(complete(&["forkyard", "ctl", "lo"]), ["logs"]);
    let top = complete(&["forkyard", ""]);
    for sub in SUBCOMMANDS {
        assert!(top.iter().any(|w| w == sub), "{sub} not offered: {top:?}");
    }
}

fn every_subcommand_has_a_man_page() {
    let top = stdout(&["man"]);
    assert!(top.starts_with(".TH") || top.starts_with(".ie"), "roff: {}", &top[..top.len().min(200)]);
    assert!(top.contains(".TH forkyard 1"), "{top}");
    for sub in SUBCOMMANDS {
        let page = stdout(&["man", sub]);
        assert!(page.starts_with(".TH") || page.starts_with(".ie"), "{sub}: {}", &page[..page.len().min(200)]);
        assert!(page.contains(&format!(".TH forkyard-{sub} 1")), "{sub}: {page}");
        assert!(page.contains(".SH SYNOPSIS") && page.contains(".SH DESCRIPTION"), "{sub}: {page}");
        assert!(top.contains(&format!("forkyard\\-{sub}(1)")), "forkyard(1) does not point to forkyard-{sub}(1)");
    }
    // init's page describes what init parses, not the passthrough the parser sees.
    let init = stdout(&["man", "init"]);
    for option in INIT_OPTIONS {
        let roff = option.replace('-', "\\-");
        assert!(init.contains(&roff), "{option} missing from forkyard-init(1)");
    }
    // ctl's page describes each of its commands with their own options, in one page.
    let ctl = stdout(&["man", "ctl"]);
    assert!(ctl.contains(".SS \"forkyard ctl logs") || ctl.contains(".SS forkyard ctl logs"), "{ctl}");
    assert!(ctl.contains("\\-\\-follow") && ctl.contains("\\-\\-with\\-dependents"), "{ctl}");
    assert!(!ctl.contains("forkyard\\-ctl\\-status(1)"), "points to a page that does not exist");
    assert_eq!(ctl.matches(".ds Aq").count(), 2, "one apostrophe set-up (.ie/.el): {ctl}");
}

fn a_man_page_for_nothing_exits_2_naming_it() {
    let out = forkyard(&["man", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'nonsense'"), "{err}");
    assert!(out.stdout.is_empty(), "nothing printed on standard output");
    let out = forkyard(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'tcsh'"));
}

fn help_init_prints_inits_real_help() {
    let help = stdout(&["help", "init"]);
    assert!(help.contains("Usage: forkyard init [OPTIONS] [--] COMMAND [ARGS...]"), "{help}");
    for option in INIT_OPTIONS {
        assert!(help.contains(option), "{option} missing from forkyard help init:\n{help}");
    }
    assert!(
        help.contains("--grace <DURATION>") && help.contains("tini, docker-init, dumb-init or catatonit"),
        "{help}"
    );
    assert_eq!(stdout(&["init", "--help"]), help, "forkyard init --help and forkyard help init say the same");
    assert_eq!(stdout(&["init", "-h"]), help);
}

/// `forkyard --help` lists init in its place, though its description is put in after.
fn help_lists_the_subcommands_in_order() {
    let help = stdout(&["--help"]);
    let at = |sub: &str| help.find(&format!("\n  {sub} ")).unwrap_or_else(|| panic!("{sub} not listed:\n{help}"));
    let order = ["ps", "up", "ctl", "init", "completions", "man", "help"].map(at);
    assert!(order.is_sorted(), "out of order ({order:?}):\n{help}");
}

fn every_version_line_says_forkyard() {
    let want = format!("forkyard {}\n", env!("CARGO_PKG_VERSION"));
    for args in [
        &["-V"][..],
        &["--version"],
        &["up", "-V"],
        &["ps", "--version"],
        &["ctl", "-V"],
        &["ctl", "status", "-V"],
        &["init", "-V"],
        &["completions", "-V"],
        &["man", "-V"],
    ] {
        assert_eq!(stdout(args), want, "forkyard {args:?}");
    }
}

fn a_path_that_is_not_there_is_not_a_path_search() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = |program: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_forkyard"))
            .args(["init", "--", program])
            .current_dir(dir.path())
            .output()
            .expect("forkyard init");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // A name with a slash is a path: PATH plays no part.
    let (code, err) = run("./no-such-program");
    assert_eq!(code, Some(127));
    assert!(err.starts_with("forkyard init: cannot run './no-such-program': No such file or directory"), "{err}");
    assert!(err.contains("check the path") && !err.contains("PATH"), "{err}");
    // There, but what it needs to start is not.
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/no/such/interpreter\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (code, err) = run("./script");
    assert_eq!(code, Some(127));
    assert!(err.contains("interpreter") && !err.contains("PATH"), "{err}");
    // A bare name is searched for in PATH.
    let (code, err) = run("no-such-program-in-any-path");
    assert_eq!(code, Some(127));
    assert!(err.contains("is it installed and in PATH?"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}
