//! `forkyard up`: run the services of `forkyard.toml` (or a `Procfile`) until they end.
//!
//! Why it exists here: the command parses its options, finds and validates the
//! configuration (errors exit 2, nothing started), and hands the plan to the engine
//! (`forkyard-supervise`), whose exit code it returns. The engine prints nothing of its own:
//! every message `up` shows is worded here, in [`words`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use forkyard::Inherited;
use forkyard_supervise::config::{self, Condition, Restart};
use forkyard_supervise::notice::{BlockedBecause, Notice, ProbeFailure, TreeMethod};

/// Options of `forkyard up`.
#[derive(clap::Args, Debug, Clone)]
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
    /// The control socket for forkyard ctl (default: one named after the configuration, in
    /// /run/forkyard/ctl as root, else $XDG_RUNTIME_DIR/forkyard/ctl; also FORKYARD_SOCKET).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Serve /metrics, /healthz and /readyz (read-only) on this TCP address, like
    /// 0.0.0.0:9090 (also [http] listen in the configuration).
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
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

/// The configuration file `up` (and `ctl`) use: `-f FILE`, else ./forkyard.toml, else
/// ./Procfile.
pub fn config_path(file: Option<&Path>) -> Result<PathBuf, String> {
    Ok(match file {
        Some(p) => p.to_path_buf(),
        None if Path::new("forkyard.toml").exists() => PathBuf::from("forkyard.toml"),
        None if Path::new("Procfile").exists() => PathBuf::from("Procfile"),
        None => {
            return Err("no forkyard.toml or Procfile in this directory; give one with -f FILE \
                        (see the README for the format)"
                .into());
        }
    })
}

/// Loads the plan, or prints why not.
fn load_plan(args: &Args) -> Result<config::Plan, String> {
    let path = config_path(args.file.as_deref())?;
    let loaded =
        if is_procfile(&path) { config::load_procfile(&path, args.port_base) } else { config::load_toml(&path) };
    let mut plan = loaded.map_err(|e| e.to_string())?;
    plan.select(&args.services)?;
    if args.check {
        // Beyond the file itself: the programs, directories, users and groups it names.
        config::verify(&plan).map_err(|e| e.to_string())?;
    }
    Ok(plan)
}

/// Runs `forkyard up`; returns the exit code.
pub fn run(args: &Args, inherited: Inherited) -> i32 {
    let plan = match load_plan(args) {
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
                    let c = match c {
                        Condition::Started => "started",
                        Condition::Ready => "ready",
                        Condition::CompletedSuccessfully => "completed_successfully",
                    };
                    format!("{d} ({c})")
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
    // A reload reads the same file with the same selection, and checks it as --check does.
    let reload_args = Args { check: true, file: Some(plan.source.clone()), ..args.clone() };
    let reload: forkyard_supervise::control::Reload = std::sync::Arc::new(move || load_plan(&reload_args));
    let socket = forkyard_supervise::control::socket_for(&plan.source, args.socket.as_deref());
    let default_location = socket == forkyard_supervise::control::default_socket(&plan.source);
    let options = forkyard_supervise::Options {
        inherited,
        exit_on_first: args.exit_on_first,
        colour,
        timestamps: args.timestamps,
        words,
        failure_words: failure,
        control: Some(forkyard_supervise::ControlOptions {
            socket,
            default_location,
            http: args.http.clone(),
            reload: Some(reload),
        }),
    };
    match forkyard_supervise::run(&plan, &options) {
        Ok(code) => code,
        Err(e) => {
            crate::compat::err(&format!("forkyard up: {e}\n"));
            1
        }
    }
}

fn condition(c: Condition) -> &'static str {
    match c {
        Condition::Started => "started",
        Condition::Ready => "ready",
        Condition::CompletedSuccessfully => "completed successfully",
    }
}

fn failure(f: &ProbeFailure) -> String {
    match f {
        ProbeFailure::TimedOut(d) => format!("timed out after {d:?}"),
        ProbeFailure::Exited(status) => format!("the check {status}"),
        ProbeFailure::CannotRun(e) => format!("the check cannot run: {e}"),
        ProbeFailure::Network(reason) => reason.clone(),
        ProbeFailure::StillRunning => "the previous attempt has not come back yet".into(),
    }
}

/// The names in a `waits for` line: all of them up to a few, then how many more.
fn some_of(on: &[(String, Condition)]) -> String {
    const SHOWN: usize = 8;
    let mut text: Vec<String> = on.iter().take(SHOWN).map(|(d, c)| format!("{d} ({})", condition(*c))).collect();
    if on.len() > SHOWN {
        text.push(format!("and {} more", on.len() - SHOWN));
    }
    text.join(", ")
}

fn duration(d: Duration) -> String {
    format!("{d:?}")
}

/// Every message of `forkyard up`, in its words (after `forkyard | `).
pub fn words(notice: &Notice) -> String {
    match notice {
        Notice::Starting { units, trees } => {
            let how = match trees {
                TreeMethod::Cgroups => "cgroups",
                TreeMethod::ProcessGroups => "process groups and /proc",
            };
            format!("starting {units} service(s); stopping trees with {how}")
        }
        Notice::LeftoversKilled { processes, cgroup } => format!(
            "killed {processes} process(es) that a previous forkyard up of this configuration left running \
             (it was killed; cgroup {})",
            cgroup.display()
        ),
        Notice::Waiting { unit, on } => format!("{unit} waits for {}", some_of(on)),
        Notice::Blocked { unit, dependency, condition: c, because } => {
            let why = match because {
                BlockedBecause::Failed => "failed",
                BlockedBecause::Blocked => "cannot start",
                _ => "ended without reaching it",
            };
            format!("{unit} will not start: {dependency} {why} ({})", condition(*c))
        }
        Notice::Started { unit, pid } => format!("{unit} started (pid {pid})"),
        Notice::CannotStart { unit, error } => format!("{unit} cannot start: {error}"),
        Notice::Ready { unit } => format!("{unit} is ready"),
        Notice::NotReady { unit, reason } => format!("{unit} not ready yet: {}", failure(reason)),
        Notice::ReadyDeadline { unit, deadline, last } => {
            let last = match last {
                Some(f) => format!("last check: {}", failure(f)),
                None => "no check came back".into(),
            };
            format!("{unit} failed: not ready within {} ({last}); stopping it", duration(*deadline))
        }
        Notice::LivenessFailed { unit, count, threshold, reason } => {
            format!("{unit} failed its liveness check ({count}/{threshold}): {}", failure(reason))
        }
        Notice::LivenessRestart { unit, count } => {
            format!("{unit} restarting: its liveness check failed {count} times")
        }
        Notice::Exited { unit, status } => format!("{unit} {status}"),
        Notice::Stopped { unit, status } => format!("{unit} stopped ({status})"),
        Notice::Stopping { unit, signal, timeout } => {
            format!("stopping {unit} ({signal}, then SIGKILL after {})", duration(*timeout))
        }
        Notice::StopTimeout { unit, timeout } => {
            format!("{unit} did not stop within {}: sending SIGKILL to its whole tree", duration(*timeout))
        }
        Notice::EndsAll { unit } => format!("{unit} has ended, so everything stops"),
        Notice::Restarting { unit, delay } if delay.is_zero() => format!("{unit} restarting"),
        Notice::Restarting { unit, delay } => format!("{unit} restarting in {}", duration(*delay)),
        Notice::Completed { unit } => format!("{unit} completed"),
        Notice::NotRestarted { unit, restart } => {
            let policy = match restart {
                Restart::Always => "always",
                Restart::OnFailure => "on-failure",
                Restart::Never => "never",
            };
            format!("{unit} will not be restarted (restart = \"{policy}\")")
        }
        Notice::GaveUp { unit, restarts, window, max } => format!(
            "{unit} failed: restarted {restarts} times within {} (max_restarts = {max}); giving up",
            duration(*window)
        ),
        Notice::ShutdownRequested { signal, can_force: true } => {
            format!("{signal} received: stopping every service (Ctrl-C again to kill them at once)")
        }
        Notice::ShutdownRequested { signal, .. } => format!("{signal} received: stopping every service"),
        Notice::ForceRequested { signal } => format!("{signal} received again: killing every service now"),
        Notice::SignalIgnored { signal } => {
            format!(
                "{signal} received: ignored (SIGTERM or SIGINT stop everything, SIGHUP reloads the \
                 configuration, SIGUSR1 reopens log files)"
            )
        }
        Notice::ReloadRequested => "reloading the configuration".into(),
        Notice::Reloaded { added, changed, removed } => {
            let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
            format!(
                "configuration reloaded: added {}; restarting with new settings {}; removed {}",
                list(added),
                list(changed),
                list(removed)
            )
        }
        Notice::ReloadFailed { error } => {
            format!("the configuration was not reloaded, nothing changed: {error}")
        }
        Notice::Held { unit } => format!("{unit} stopped on request; it stays down until started"),
        Notice::Requested { what, units } if units.is_empty() => format!("{what} (through the control socket)"),
        Notice::Requested { what, units } => format!("{what} {} (through the control socket)", units.join(", ")),
        Notice::ControlListening { path } => format!("control socket: {} (forkyard ctl)", path.display()),
        Notice::HttpListening { address } => {
            format!("serving /metrics, /healthz and /readyz on http://{address} (read-only)")
        }
        Notice::ControlUnavailable { error } => {
            format!("no control socket: {error}; the services run without forkyard ctl")
        }
        Notice::ControlRefused { uid, pid, more } => {
            let more = if *more > 0 { format!(" ({more} more refused since the last report)") } else { String::new() };
            format!(
                "refused a control connection from uid {uid} (pid {pid}): only root and forkyard's own user \
                 may use the control socket{more}"
            )
        }
        Notice::ReopeningLogs => "SIGUSR1 received: reopening the log files".into(),
        Notice::LogFile { unit, path, error } => {
            format!("{unit}: its log file {} failed: {error}; its output still comes here", path.display())
        }
        Notice::OutputDropped { count } => {
            format!("{count} message(s) of forkyard were dropped while its output was not being read")
        }
        Notice::Fatal { error } => format!("error: {error}; killing every service"),
        Notice::Exiting { code } => format!("exiting with {code}"),
        other => format!("{other:?}"),
    }
}
