//! `forkyard completions SHELL`: the shell's completion script, generated from the same clap
//! definitions the command parses (init's options included), so it never drifts from them.

use std::io::Write;
use std::process::ExitCode;

/// `forkyard completions`'s arguments.
#[derive(clap::Args, Debug)]
#[command(after_long_help = "\
Install, for example:
  bash: forkyard completions bash > ~/.local/share/bash-completion/completions/forkyard
  zsh:  forkyard completions zsh > ~/.zfunc/_forkyard   (with fpath+=(~/.zfunc) in ~/.zshrc)
  fish: forkyard completions fish > ~/.config/fish/completions/forkyard.fish")]
pub struct Args {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Prints the completion script for `args.shell`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut crate::cli::described(), "forkyard", &mut script);
    // Written in one piece, so a closed pipe is an error `main` can recognise, not a panic.
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
