//! `forkyard up`: run the services of `forkyard.toml` (or a `Procfile`) until they end.
//!
//! Why it exists here: the command parses its options, finds and validates the
//! configuration (errors exit 2, nothing started), and hands the plan to the library's
//! supervisor, whose exit code it returns.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use forkyard::init::Inherited;
use forkyard::supervise::{self, config};

/// Options of `forkyard up`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration: a forkyard.toml, or a Procfile (default: ./forkyard.toml, else
    /// ./Procfile with ./.env).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Validate the configuration and print the start order; start nothing.
    #[arg(long)]
    check: bool,
    /// End when any service ends (stopping the others), with its exit status.
    #[arg(long)]
    exit_on_first: bool,
    /// No colours (also with NO_COLOR set, or when the output is not a terminal).
    #[arg(long)]
    no_color: bool,
    /// Start every line with the time of day (UTC, to the millisecond).
    #[arg(long)]
    timestamps: bool,
    /// Procfile mode: the first PORT (then +100 per process type).
    #[arg(long, value_name = "N", default_value_t = 5000)]
    port_base: u16,
    /// Run only these services (and what they depend on); `web.2` names one instance.
    #[arg(value_name = "SERVICE")]
    services: Vec<String>,
}

fn is_procfile(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("Procfile"))
}

/// Loads the plan, or prints why not.
fn plan(args: &Args) -> Result<config::Plan, String> {
    let path = match &args.file {
        Some(p) => p.clone(),
        None if Path::new("forkyard.toml").exists() => PathBuf::from("forkyard.toml"),
        None if Path::new("Procfile").exists() => PathBuf::from("Procfile"),
        None => {
            return Err("no forkyard.toml or Procfile in this directory; give one with -f FILE \
                        (see the README for the format)"
                .into());
        }
    };
    let loaded =
        if is_procfile(&path) { config::load_procfile(&path, args.port_base) } else { config::load_toml(&path) };
    let mut plan = loaded.map_err(|e| e.to_string())?;
    plan.select(&args.services)?;
    Ok(plan)
}

/// Runs `forkyard up`; returns the exit code.
pub fn run(args: &Args, inherited: Inherited) -> i32 {
    let plan = match plan(args) {
        Ok(p) => p,
        Err(e) => {
            crate::compat::err(&format!("forkyard up: {e}\n"));
            return 2;
        }
    };
    if args.check {
        let mut text = format!("{}: {} unit(s), in start order:\n", plan.source.display(), plan.units.len());
        for u in &plan.units {
            let deps: Vec<String> = u
                .depends_on
                .iter()
                .map(|(d, c)| {
                    format!(
                        "{d} ({})",
                        format!("{c:?}").to_lowercase().replace("completedsuccessfully", "completed_successfully")
                    )
                })
                .collect();
            let after = if deps.is_empty() { String::new() } else { format!("  after {}", deps.join(", ")) };
            text.push_str(&format!("  {}{after}\n", u.name));
        }
        crate::compat::out(&text);
        return 0;
    }
    let colour =
        !args.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal();
    let options =
        supervise::Options { inherited, exit_on_first: args.exit_on_first, colour, timestamps: args.timestamps };
    supervise::run(&plan, &options)
}
