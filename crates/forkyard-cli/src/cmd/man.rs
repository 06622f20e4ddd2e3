//! `forkyard man [SUBCOMMAND]`: a man page in roff, generated from the same clap definitions
//! the command parses (init's options included), so that `cargo install` users get the pages
//! too: `forkyard man up > forkyard-up.1`.

use std::io::Write;
use std::process::ExitCode;

/// The subcommands that have a page (checked against the command line by a test).
pub const PAGES: [&str; 6] = ["init", "up", "ctl", "ps", "completions", "man"];

/// `forkyard man`'s arguments.
#[derive(clap::Args, Debug)]
#[command(after_long_help = "\
Install, for example:
  forkyard man > /usr/local/share/man/man1/forkyard.1
  for s in init up ctl ps completions man; do
    forkyard man $s > /usr/local/share/man/man1/forkyard-$s.1
  done")]
pub struct Args {
    /// The subcommand whose page to print; forkyard's own page without one.
    #[arg(value_parser = PAGES)]
    subcommand: Option<String>,
}

/// The roff source of the page for `subcommand` (forkyard's own page for `None`).
pub fn page(subcommand: Option<&str>) -> anyhow::Result<Vec<u8>> {
    // Built, so each subcommand carries its full name (`forkyard-up`, `forkyard up`) and the
    // version; without `help`, which is no page of its own.
    let mut top = crate::cli::described().disable_help_subcommand(true);
    top.build();
    let cmd = match subcommand {
        None => top,
        Some(name) => top
            .find_subcommand(name)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no man page for '{name}': try one of {}", PAGES.join(", ")))?,
    };
    let nested = subcommand.is_some() && cmd.get_subcommands().any(|s| s.get_name() != "help");
    let man = |cmd: clap::Command| {
        clap_mangen::Man::new(cmd).source(format!("forkyard {}", env!("CARGO_PKG_VERSION"))).manual("forkyard manual")
    };
    let mut roff = Vec::new();
    if !nested {
        man(cmd).render(&mut roff)?;
        return Ok(roff);
    }
    // A subcommand with commands of its own (ctl): one page with each command's options,
    // rather than a list of pages (forkyard-ctl-status(1), ...) that are not there.
    let page = man(cmd.clone());
    page.render_title(&mut roff)?;
    page.render_name_section(&mut roff)?;
    page.render_synopsis_section(&mut roff)?;
    page.render_description_section(&mut roff)?;
    page.render_options_section(&mut roff)?;
    roff.extend_from_slice(b".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help" && !s.is_hide_set()) {
        command_section(&mut roff, sub)?;
    }
    if cmd.get_after_long_help().is_some() || cmd.get_after_help().is_some() {
        page.render_extra_section(&mut roff)?;
    }
    page.render_version_section(&mut roff)?;
    Ok(without_repeated_preambles(roff))
}

/// One command of a nested page: its usage, what it does, and its own options (the options
/// it shares with its parent are described once, in OPTIONS).
fn command_section(roff: &mut Vec<u8>, sub: &clap::Command) -> std::io::Result<()> {
    let usage = sub.clone().render_usage().to_string();
    let usage = usage.trim().trim_start_matches("Usage:").trim();
    let mut text = clap_mangen::roff::Roff::new();
    text.control("SS", [usage]);
    if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
        text.text([clap_mangen::roff::roman(about.to_string())]);
    }
    text.to_writer(roff)?;
    let own = sub.clone().mut_args(|a| {
        let shared = a.is_global_set() || matches!(a.get_id().as_str(), "help" | "version");
        if shared { a.hide(true) } else { a }
    });
    if own.get_arguments().any(|a| !a.is_hide_set()) {
        let mut options = Vec::new();
        clap_mangen::Man::new(own).render_options_section(&mut options)?;
        let options = String::from_utf8_lossy(&options).replace(".SH OPTIONS\n", "");
        roff.extend_from_slice(options.as_bytes());
    }
    Ok(())
}

/// Each rendered part starts with roff's apostrophe set-up; once, at the top, is enough.
fn without_repeated_preambles(roff: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8_lossy(&roff);
    let mut lines = text.lines();
    let mut out: Vec<&str> = lines.by_ref().take(2).collect();
    out.extend(lines.filter(|l| !l.starts_with(".ie \\n(.g .ds Aq") && !l.starts_with(".el .ds Aq")));
    (out.join("\n") + "\n").into_bytes()
}

/// Prints the page.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let roff = page(args.subcommand.as_deref())?;
    let mut out = std::io::stdout().lock();
    out.write_all(&roff)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_has_a_page_and_every_page_a_subcommand() {
        let mut names: Vec<String> = crate::cli::described()
            .disable_help_subcommand(true)
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        let mut pages: Vec<String> = PAGES.iter().map(|s| s.to_string()).collect();
        names.sort();
        pages.sort();
        assert_eq!(names, pages);
    }
}
