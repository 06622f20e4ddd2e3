//! The command line as a whole, as clap sees it: what `main` parses, and what help, man pages
//! and completions describe.
//!
//! Why a module of its own: `forkyard init` is parsed by hand (see `cmd/init.rs`), so the
//! derived `Cli` only knows it as a passthrough. Here its stand-in is replaced by the real
//! description (`cmd/init_help.rs`), so `forkyard help init`, `forkyard man init` and the
//! completions show init's options; and every subcommand's version line reads `forkyard
//! VERSION`, as `forkyard -V` and `forkyard init -V` do, instead of clap's `forkyard-up VERSION`.

use clap::CommandFactory;

/// Every subcommand, with init's real options: the source of the man pages and completions.
pub fn described() -> clap::Command {
    crate::Cli::command()
        .mut_subcommand("init", |stub| crate::cmd::init_help::command().display_order(stub.get_display_order()))
}

/// What `main` parses: [`described`], with one program name in every version line.
pub fn parser() -> clap::Command {
    fn one_name(cmd: clap::Command) -> clap::Command {
        cmd.mut_subcommands(|sub| one_name(sub.display_name("forkyard")))
    }
    one_name(described())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        // clap's own consistency checks (run when a command is built, in debug builds).
        described().debug_assert();
        parser().debug_assert();
    }

    #[test]
    fn every_version_line_names_forkyard() {
        for args in [&["forkyard", "-V"][..], &["forkyard", "up", "-V"], &["forkyard", "ctl", "status", "-V"]] {
            let e = parser().try_get_matches_from(args).expect_err("-V prints the version");
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion, "{args:?}");
            assert_eq!(e.to_string(), format!("forkyard {}\n", env!("CARGO_PKG_VERSION")), "{args:?}");
        }
    }
}
