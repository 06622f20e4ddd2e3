//! What `forkyard up` runs: `forkyard.toml`, or a `Procfile` with its `.env`.
//!
//! Why this module exists: a supervisor is only as good as its configuration errors. Every
//! mistake (an unknown key, a wrong type, a dependency cycle, a `depends_on` naming no
//! service, an unreadable env file) is reported with the file, line and column, and the
//! service, before anything starts. The result is a validated [`Plan`]: one [`Unit`] per
//! process to run (instances expanded), in a start order that respects every dependency.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use forkyard::{Signal, parse_duration};

/// A configuration error: where, which service, what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {}{message}", service.as_ref().map(|s| format!("service '{s}': ")).unwrap_or_default())]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The service concerned, when there is one.
    pub service: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// When a service is started again after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Whatever the exit.
    Always,
    /// Only when the exit status is not among `success_codes` (or a signal killed it).
    #[default]
    OnFailure,
    /// Never.
    Never,
}

/// What a dependency must reach before the dependent starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// It has been started.
    Started,
    /// Its readiness check has passed (or it has started, if it has none).
    Ready,
    /// It ran to completion with a success code (for `oneshot` tasks).
    CompletedSuccessfully,
}

/// How a service is run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandLine {
    /// Executed directly (`["nginx", "-g", "daemon off;"]`).
    Argv(Vec<String>),
    /// Run by `/bin/sh -c`.
    Shell(String),
}

/// A check: readiness (once, until it passes) or liveness (periodic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A command that exits 0.
    Exec(CommandLine),
    /// A TCP port that accepts a connection (`host:port`).
    Tcp(String),
    /// An HTTP(S) GET that answers with an expected status.
    Http(HttpCheck),
    /// A line of the service's output matching this regular expression (readiness only).
    Log(String),
    /// `READY=1` on the datagram socket named by `NOTIFY_SOCKET` (readiness only).
    Notify,
}

/// An HTTP(S) check: `GET url` with `headers`, passing on one of `status` (any 2xx when empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    /// `http://host:port/path` or `https://...`.
    pub url: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// The statuses that pass; empty means any 2xx.
    pub status: Vec<u16>,
}

/// A probe with its timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What is checked.
    pub probe: Probe,
    /// Time between attempts.
    pub interval: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// For liveness: consecutive failures before the service is restarted.
    pub failure_threshold: u32,
    /// For liveness: time after start before the first check.
    pub initial_delay: Duration,
    /// For readiness: past this time after start without passing, the service is marked
    /// failed and its dependents blocked (`None`: wait for ever).
    pub deadline: Option<Duration>,
}

/// One process to supervise (a service, or one instance of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// `web`, or `web.2` for an instance.
    pub name: String,
    /// The service it belongs to.
    pub service: String,
    /// 1-based instance number, if the service has `instances`.
    pub instance: Option<u32>,
    /// What to run.
    pub command: CommandLine,
    /// Working directory (absolute).
    pub cwd: PathBuf,
    /// Environment added to the supervisor's (env file first, then `env`, then
    /// `FORKYARD_INSTANCE`, `PORT`).
    pub env: Vec<(String, String)>,
    /// Run as this user (name or number).
    pub user: Option<String>,
    /// Run with this primary group (name or number).
    pub group: Option<String>,
    /// Restart policy.
    pub restart: Restart,
    /// Exit codes that count as success.
    pub success_codes: Vec<u8>,
    /// First restart delay after a quick exit; it doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Largest restart delay.
    pub backoff_max: Duration,
    /// A run at least this long resets the backoff (and restarts at once).
    pub stable_after: Duration,
    /// More restarts than this within `restart_window` mark the unit failed.
    pub max_restarts: u32,
    /// The window for `max_restarts`.
    pub restart_window: Duration,
    /// Units this one waits for, with the condition (units of a multi-instance service are
    /// all listed).
    pub depends_on: Vec<(String, Condition)>,
    /// Readiness check.
    pub ready: Option<Check>,
    /// Liveness check.
    pub liveness: Option<Check>,
    /// Signal that asks it to stop.
    pub stop_signal: Signal,
    /// How long a stop may take before SIGKILL.
    pub stop_timeout: Duration,
    /// Runs to completion; never restarted after a success.
    pub oneshot: bool,
    /// Its end ends `up`.
    pub critical: bool,
    /// Copy of its output, rotated by size.
    pub log_file: Option<PathBuf>,
    /// Rotate the log file past this many bytes.
    pub log_max_size: u64,
    /// Rotated files kept.
    pub log_keep: u32,
}

impl Unit {
    /// A unit with forkyard.toml's defaults: restart on failure, backoff from 100 ms to
    /// 30 s (reset after 1 s up), at most 10 restarts a minute, SIGTERM then SIGKILL after
    /// 10 s, logs rotated at 10 MB keeping 5.
    pub fn new(name: &str, command: CommandLine, cwd: PathBuf) -> Unit {
        Unit {
            name: name.to_string(),
            service: name.to_string(),
            instance: None,
            command,
            cwd,
            env: Vec::new(),
            user: None,
            group: None,
            restart: Restart::OnFailure,
            success_codes: vec![0],
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(1),
            max_restarts: 10,
            restart_window: Duration::from_secs(60),
            depends_on: Vec::new(),
            ready: None,
            liveness: None,
            stop_signal: Signal::TERM,
            stop_timeout: Duration::from_secs(10),
            oneshot: false,
            critical: false,
            log_file: None,
            log_max_size: 10 << 20,
            log_keep: 5,
        }
    }
}

/// A validated configuration, in start order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The file it came from.
    pub source: PathBuf,
    /// Units, every one after the units it depends on.
    pub units: Vec<Unit>,
    /// Whether any unit's end should end `up` (Procfile mode: every unit is critical, as in
    /// foreman).
    pub from_procfile: bool,
}

impl Plan {
    /// Keeps only the named services (a service name takes all its instances; `web.2`
    /// names one) and everything they depend on, directly or not, in start order. An
    /// unknown name is an error that lists the services there are.
    pub fn select(&mut self, names: &[String]) -> Result<(), String> {
        if names.is_empty() {
            return Ok(());
        }
        let mut keep: Vec<bool> = vec![false; self.units.len()];
        for name in names {
            let mut found = false;
            for (i, u) in self.units.iter().enumerate() {
                if &u.service == name || &u.name == name {
                    keep[i] = true;
                    found = true;
                }
            }
            if !found {
                let mut services: Vec<&str> = self.units.iter().map(|u| u.service.as_str()).collect();
                services.dedup();
                return Err(format!(
                    "no service named '{name}' in {}; it has: {}",
                    self.source.display(),
                    services.join(", ")
                ));
            }
        }
        // Units come after their dependencies, so one backward pass closes the set.
        for i in (0..self.units.len()).rev() {
            if keep[i] {
                for (dep, _) in &self.units[i].depends_on {
                    if let Some(j) = self.units.iter().position(|u| &u.name == dep) {
                        keep[j] = true;
                    }
                }
            }
        }
        let mut k = keep.into_iter();
        self.units.retain(|_| k.next().unwrap_or(false));
        Ok(())
    }
}

// --- the file format ------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    services: BTreeMap<String, Spanned<Service>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCommand {
    Argv(Vec<String>),
    Shell(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDepends {
    List(Vec<String>),
    Table(BTreeMap<String, Condition>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    exec: Option<RawCommand>,
    tcp: Option<String>,
    http: Option<String>,
    log: Option<String>,
    notify: Option<bool>,
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    failure_threshold: Option<u32>,
    initial_delay: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Service {
    command: Option<Spanned<RawCommand>>,
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    env_file: Option<Spanned<String>>,
    user: Option<String>,
    group: Option<String>,
    #[serde(default)]
    restart: Restart,
    success_codes: Option<Vec<u8>>,
    backoff_initial: Option<Spanned<String>>,
    backoff_max: Option<Spanned<String>>,
    stable_after: Option<Spanned<String>>,
    max_restarts: Option<u32>,
    restart_window: Option<Spanned<String>>,
    depends_on: Option<Spanned<RawDepends>>,
    ready: Option<Spanned<RawCheck>>,
    liveness: Option<Spanned<RawCheck>>,
    stop_signal: Option<Spanned<String>>,
    stop_timeout: Option<Spanned<String>>,
    instances: Option<Spanned<u32>>,
    #[serde(default)]
    oneshot: bool,
    #[serde(default)]
    critical: bool,
    log_file: Option<String>,
    log_max_size: Option<Spanned<String>>,
    log_keep: Option<u32>,
}

/// Line and column (1-based) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, column)
}

/// The service whose table holds `offset`: the last `[services.NAME]` header before it (or
/// `services.NAME.` / `NAME = {` forms on the same line).
fn service_at(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset.min(text.len())];
    before.lines().rev().find_map(|l| {
        let l = l.trim();
        let inner = l.strip_prefix('[')?.trim_start_matches('[').trim_end_matches(']').trim_end_matches(']');
        let rest = inner.trim().strip_prefix("services.")?;
        let name = rest.split('.').next()?.trim().trim_matches('"');
        (!name.is_empty()).then(|| name.to_string())
    })
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn at(&self, offset: usize, service: Option<&str>, message: impl Into<String>) -> ConfigError {
        let (line, column) = position(self.text, offset);
        ConfigError {
            file: self.file.to_string(),
            line,
            column,
            service: service.map(str::to_string).or_else(|| service_at(self.text, offset)),
            message: message.into(),
        }
    }

    fn duration(
        &self,
        value: &Option<Spanned<String>>,
        default: Duration,
        service: &str,
        key: &str,
    ) -> Result<Duration, ConfigError> {
        match value {
            None => Ok(default),
            Some(v) => {
                parse_duration(v.get_ref()).map_err(|e| self.at(v.span().start, Some(service), format!("{key}: {e}")))
            }
        }
    }
}

/// Bytes from `10MB`, `512KB`, `1GB` or a plain number.
fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits.parse().ok()?;
    let scale = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

fn command(raw: &RawCommand) -> CommandLine {
    match raw {
        RawCommand::Argv(v) => CommandLine::Argv(v.clone()),
        RawCommand::Shell(s) => CommandLine::Shell(s.clone()),
    }
}

/// Service and process names: letters, digits, `-` and `_`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The directory of the configuration file, absolute: what relative paths start from.
fn base_dir(path: &Path) -> PathBuf {
    let base =
        path.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::path::absolute(&base).unwrap_or(base)
}

/// An env file's variables, or the error naming its line.
fn read_env_file(path: &Path, content: &str, service: Option<&str>) -> Result<Vec<(String, String)>, ConfigError> {
    parse_env_file(content).map_err(|(line, message)| ConfigError {
        file: path.display().to_string(),
        line,
        column: 1,
        service: service.map(str::to_string),
        message,
    })
}

/// Reads a dotenv file: `KEY=VALUE` lines, `#` comments, an optional `export `, values
/// optionally in single or double quotes (double quotes understand `\n` and `\"`).
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err((i + 1, format!("expected KEY=VALUE, found '{line}'")));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((i + 1, format!("'{key}' is not a variable name")));
        }
        let value = value.trim();
        let value = if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            inner.replace("\\n", "\n").replace("\\\"", "\"")
        } else if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            inner.to_string()
        } else {
            // An unquoted value ends at a " #" comment.
            value.split(" #").next().unwrap_or("").trim_end().to_string()
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn check(ctx: &Ctx<'_>, raw: &Spanned<RawCheck>, service: &str, liveness: bool) -> Result<Check, ConfigError> {
    let r = raw.get_ref();
    let at = raw.span().start;
    let mut kinds = Vec::new();
    if let Some(c) = &r.exec {
        kinds.push(Probe::Exec(command(c)));
    }
    if let Some(t) = &r.tcp {
        if t.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
            return Err(ctx.at(at, Some(service), format!("tcp = \"{t}\": expected host:port, e.g. 127.0.0.1:8080")));
        }
        kinds.push(Probe::Tcp(t.clone()));
    }
    if let Some(h) = &r.http {
        if !h.starts_with("http://") {
            return Err(ctx.at(at, Some(service), format!("http = \"{h}\": expected http://host:port/path")));
        }
        kinds.push(Probe::Http(HttpCheck { url: h.clone(), headers: Vec::new(), status: Vec::new() }));
    }
    if let Some(l) = &r.log {
        if liveness {
            return Err(ctx.at(at, Some(service), "a log check can only be a readiness check"));
        }
        regex_lite::Regex::new(l).map_err(|e| ctx.at(at, Some(service), format!("log = \"{l}\": {e}")))?;
        kinds.push(Probe::Log(l.clone()));
    }
    if r.notify == Some(true) {
        if liveness {
            return Err(ctx.at(at, Some(service), "a notify check can only be a readiness check"));
        }
        kinds.push(Probe::Notify);
    }
    let what = if liveness { "liveness" } else { "ready" };
    let probe = match kinds.len() {
        1 => kinds.remove(0),
        0 => {
            return Err(ctx.at(
                at,
                Some(service),
                format!("{what}: give one of exec, tcp, http{}", if liveness { "" } else { ", log, notify = true" }),
            ));
        }
        _ => return Err(ctx.at(at, Some(service), format!("{what}: give only one of exec, tcp, http, log, notify"))),
    };
    Ok(Check {
        probe,
        interval: ctx.duration(
            &r.interval,
            Duration::from_millis(if liveness { 5000 } else { 250 }),
            service,
            "interval",
        )?,
        timeout: ctx.duration(&r.timeout, Duration::from_secs(if liveness { 5 } else { 2 }), service, "timeout")?,
        failure_threshold: r.failure_threshold.unwrap_or(3).max(1),
        initial_delay: ctx.duration(&r.initial_delay, Duration::ZERO, service, "initial_delay")?,
        deadline: None,
    })
}

/// Reads and validates `forkyard.toml` (or any file in that format).
pub fn load_toml(path: &Path) -> Result<Plan, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 1,
        column: 1,
        service: None,
        message: format!("cannot read it: {} (check the path and permissions)", forkyard::error::strerror(&e)),
    })?;
    parse_toml(&text, path)
}

/// Validates the text of a `forkyard.toml` read from `path` (which sets the directory that
/// relative paths are resolved against, and the name in errors).
pub fn parse_toml(text: &str, path: &Path) -> Result<Plan, ConfigError> {
    let file = path.display().to_string();
    let ctx = Ctx { file: &file, text };
    let base = base_dir(path);
    let parsed: File = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        ctx.at(offset, None, e.message().trim().to_string())
    })?;
    if parsed.services.is_empty() {
        return Err(ctx.at(0, None, "no services: add a [services.NAME] table with a command"));
    }
    let names: Vec<&String> = parsed.services.keys().collect();
    let mut units = Vec::new();
    for (name, spanned) in &parsed.services {
        let at = spanned.span().start;
        let s = spanned.get_ref();
        if !valid_name(name) {
            return Err(ctx.at(at, Some(name), "service names may use letters, digits, '-' and '_'"));
        }
        let Some(cmd) = &s.command else {
            return Err(ctx.at(at, Some(name), "no command: add command = \"...\" or command = [\"prog\", \"arg\"]"));
        };
        let empty = match cmd.get_ref() {
            RawCommand::Argv(v) => v.is_empty(),
            RawCommand::Shell(s) => s.trim().is_empty(),
        };
        if empty {
            return Err(ctx.at(cmd.span().start, Some(name), "command is empty"));
        }
        // The defaults, and the command and directory.
        let d = Unit::new(name, command(cmd.get_ref()), s.cwd.as_ref().map_or_else(|| base.clone(), |c| base.join(c)));
        let mut env = Vec::new();
        if let Some(env_file) = &s.env_file {
            let p = base.join(env_file.get_ref());
            let content = std::fs::read_to_string(&p).map_err(|e| {
                ctx.at(
                    env_file.span().start,
                    Some(name),
                    format!("env_file '{}' cannot be read: {}", p.display(), forkyard::error::strerror(&e)),
                )
            })?;
            env.extend(read_env_file(&p, &content, Some(name))?);
        }
        env.extend(s.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let depends_on: Vec<(String, Condition)> = match &s.depends_on {
            None => Vec::new(),
            Some(d) => {
                let list: Vec<(String, Condition)> = match d.get_ref() {
                    RawDepends::List(l) => l.iter().map(|n| (n.clone(), Condition::Started)).collect(),
                    RawDepends::Table(t) => t.iter().map(|(n, c)| (n.clone(), *c)).collect(),
                };
                for (dep, _) in &list {
                    if !names.contains(&dep) {
                        return Err(ctx.at(
                            d.span().start,
                            Some(name),
                            format!("depends_on names '{dep}', but there is no such service"),
                        ));
                    }
                    if dep == name {
                        return Err(ctx.at(d.span().start, Some(name), "a service cannot depend on itself"));
                    }
                }
                list
            }
        };
        let stop_signal = match &s.stop_signal {
            None => Signal::TERM,
            Some(v) => v
                .get_ref()
                .parse::<Signal>()
                .map_err(|e| ctx.at(v.span().start, Some(name), format!("stop_signal: {e}")))?,
        };
        let instances = match &s.instances {
            None => None,
            Some(n) if *n.get_ref() == 0 => {
                return Err(ctx.at(n.span().start, Some(name), "instances must be at least 1"));
            }
            Some(n) => Some(*n.get_ref()),
        };
        let log_max_size = match &s.log_max_size {
            None => d.log_max_size,
            Some(v) => parse_size(v.get_ref()).ok_or_else(|| {
                ctx.at(v.span().start, Some(name), format!("log_max_size '{}': write e.g. 10MB or 512KB", v.get_ref()))
            })?,
        };
        let ready = s.ready.as_ref().map(|r| check(&ctx, r, name, false)).transpose()?;
        let liveness = s.liveness.as_ref().map(|r| check(&ctx, r, name, true)).transpose()?;
        let template = Unit {
            env,
            user: s.user.clone(),
            group: s.group.clone(),
            restart: s.restart,
            success_codes: s.success_codes.clone().unwrap_or_else(|| d.success_codes.clone()),
            backoff_initial: ctx.duration(&s.backoff_initial, d.backoff_initial, name, "backoff_initial")?,
            backoff_max: ctx.duration(&s.backoff_max, d.backoff_max, name, "backoff_max")?,
            stable_after: ctx.duration(&s.stable_after, d.stable_after, name, "stable_after")?,
            max_restarts: s.max_restarts.unwrap_or(d.max_restarts),
            restart_window: ctx.duration(&s.restart_window, d.restart_window, name, "restart_window")?,
            depends_on,
            ready,
            liveness,
            stop_signal,
            stop_timeout: ctx.duration(&s.stop_timeout, d.stop_timeout, name, "stop_timeout")?,
            oneshot: s.oneshot,
            critical: s.critical,
            log_file: s.log_file.as_ref().map(|f| base.join(f)),
            log_max_size,
            log_keep: s.log_keep.unwrap_or(d.log_keep),
            ..d
        };
        match instances {
            None => units.push(template),
            Some(n) => {
                for i in 1..=n {
                    let mut u = template.clone();
                    u.name = format!("{name}.{i}");
                    u.instance = Some(i);
                    u.env.push(("FORKYARD_INSTANCE".into(), i.to_string()));
                    u.log_file = u.log_file.map(|f| {
                        f.with_file_name(format!(
                            "{}.{i}",
                            f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                        ))
                    });
                    units.push(u);
                }
            }
        }
    }
    let units = expand_and_order(units).map_err(|cycle| {
        let first = cycle.first().cloned().unwrap_or_default();
        let at = parsed.services.get(&first).map_or(0, |s| s.span().start);
        ctx.at(at, Some(&first), format!("dependency cycle: {}", cycle.join(" -> ")))
    })?;
    Ok(Plan { source: path.to_path_buf(), units, from_procfile: false })
}

/// Rewrites service-level dependencies to unit names (every instance of a multi-instance
/// service), then orders units so that each comes after what it depends on (Kahn's
/// algorithm, stable by name). On a cycle, returns it as a list of service names.
fn expand_and_order(mut units: Vec<Unit>) -> Result<Vec<Unit>, Vec<String>> {
    let by_service: BTreeMap<String, Vec<String>> = units.iter().fold(BTreeMap::new(), |mut m, u| {
        m.entry(u.service.clone()).or_insert_with(Vec::new).push(u.name.clone());
        m
    });
    for u in &mut units {
        u.depends_on = u
            .depends_on
            .iter()
            .flat_map(|(svc, c)| by_service.get(svc).into_iter().flatten().map(move |n| (n.clone(), *c)))
            .collect();
    }
    let mut remaining: Vec<Unit> = units;
    let mut ordered: Vec<Unit> = Vec::new();
    while !remaining.is_empty() {
        let pos = remaining.iter().position(|u| u.depends_on.iter().all(|(d, _)| ordered.iter().any(|o| &o.name == d)));
        match pos {
            Some(i) => ordered.push(remaining.remove(i)),
            None => return Err(find_cycle(&remaining)),
        }
    }
    Ok(ordered)
}

/// A cycle among units none of which can start, as service names.
fn find_cycle(stuck: &[Unit]) -> Vec<String> {
    let mut path: Vec<&Unit> = vec![&stuck[0]];
    loop {
        let last = path[path.len() - 1];
        let Some(next) = last.depends_on.iter().find_map(|(d, _)| stuck.iter().find(|u| &u.name == d)) else {
            return path.iter().map(|u| u.service.clone()).collect();
        };
        if let Some(i) = path.iter().position(|u| u.name == next.name) {
            let mut cycle: Vec<String> = path[i..].iter().map(|u| u.service.clone()).collect();
            cycle.push(next.service.clone());
            cycle.dedup();
            return cycle;
        }
        path.push(next);
    }
}

/// Reads a `Procfile` (`name: command` per line) and, next to it, `.env` if present.
/// As with foreman: each process gets `PORT`, from `port_base` stepping by 100 per process
/// type in file order; commands run through `/bin/sh -c`; when one process ends, `up`
/// stops the others and exits with its status.
pub fn load_procfile(path: &Path, port_base: u16) -> Result<Plan, ConfigError> {
    let file = path.display().to_string();
    let err =
        |line: usize, message: String| ConfigError { file: file.clone(), line, column: 1, service: None, message };
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(1, format!("cannot read it: {} (check the path and permissions)", forkyard::error::strerror(&e)))
    })?;
    let base = base_dir(path);
    let env_path = base.join(".env");
    let env = match std::fs::read_to_string(&env_path) {
        Ok(t) => read_env_file(&env_path, &t, None)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(err(1, format!("{} cannot be read: {}", env_path.display(), forkyard::error::strerror(&e)))),
    };
    let mut units = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, cmd)) = line.split_once(':') else {
            return Err(err(i + 1, format!("expected 'name: command', found '{line}'")));
        };
        let name = name.trim();
        if !valid_name(name) {
            return Err(err(i + 1, format!("'{name}' is not a process name (letters, digits, '-' and '_')")));
        }
        if units.iter().any(|u: &Unit| u.name == name) {
            return Err(err(i + 1, format!("process '{name}' is defined twice")));
        }
        let cmd = cmd.trim();
        if cmd.is_empty() {
            return Err(err(i + 1, format!("process '{name}' has no command")));
        }
        let port = u32::from(port_base) + 100 * units.len() as u32;
        let mut unit_env = env.clone();
        unit_env.push(("PORT".into(), port.to_string()));
        // As with foreman: nothing restarts, every process is critical, 5 s to stop.
        units.push(Unit {
            env: unit_env,
            restart: Restart::Never,
            stop_timeout: Duration::from_secs(5),
            critical: true,
            ..Unit::new(name, CommandLine::Shell(cmd.to_string()), base.clone())
        });
    }
    if units.is_empty() {
        return Err(err(1, "no processes: add lines like 'web: python -m http.server $PORT'".into()));
    }
    Ok(Plan { source: path.to_path_buf(), units, from_procfile: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Plan, ConfigError> {
        parse_toml(text, Path::new("forkyard.toml"))
    }

    #[test]
    fn selecting_services_keeps_their_dependencies() {
        let text = "[services.db]\ncommand = \"x\"\n[services.cache]\ncommand = \"x\"\n[services.api]\ncommand = \"x\"\ndepends_on = [\"db\"]\n[services.web]\ncommand = \"x\"\ndepends_on = [\"api\"]\n[services.worker]\ncommand = \"x\"\ninstances = 2\n";
        let names = |plan: &Plan| plan.units.iter().map(|u| u.name.clone()).collect::<Vec<_>>();
        let mut plan = parse(text).expect("valid");
        plan.select(&["web".into()]).expect("known");
        assert_eq!(names(&plan), ["db", "api", "web"]);
        let mut plan = parse(text).expect("valid");
        plan.select(&["worker".into(), "cache".into()]).expect("known");
        assert_eq!(names(&plan), ["cache", "worker.1", "worker.2"]);
        let mut plan = parse(text).expect("valid");
        plan.select(&["worker.2".into()]).expect("known");
        assert_eq!(names(&plan), ["worker.2"]);
        let mut plan = parse(text).expect("valid");
        let err = plan.select(&["nope".into()]).expect_err("unknown");
        assert!(err.contains("no service named 'nope'") && err.contains("cache, db, api, web, worker"), "{err}");
    }

    #[test]
    fn a_full_service_parses() {
        let plan = parse(
            r#"
[services.db]
command = ["postgres", "-D", "/data"]
ready = { tcp = "127.0.0.1:5432", interval = "100ms" }
stop_signal = "INT"

[services.web]
command = "python -m http.server $PORT"
env = { PORT = "8000" }
depends_on = { db = "ready" }
restart = "always"
instances = 2
liveness = { http = "http://127.0.0.1:8000/", failure_threshold = 2 }

[services.migrate]
command = "true"
oneshot = true
depends_on = ["db"]
"#,
        )
        .expect("valid");
        let names: Vec<&str> = plan.units.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["db", "migrate", "web.1", "web.2"]);
        let web = &plan.units[2];
        assert_eq!(web.depends_on, [("db".to_string(), Condition::Ready)]);
        assert_eq!(web.restart, Restart::Always);
        assert!(web.env.contains(&("FORKYARD_INSTANCE".into(), "1".into())));
        assert_eq!(web.liveness.as_ref().map(|c| c.failure_threshold), Some(2));
        assert_eq!(plan.units[0].stop_signal, Signal::INT);
        assert_eq!(plan.units[0].ready.as_ref().map(|c| c.interval), Some(Duration::from_millis(100)));
        assert_eq!(plan.units[1].command, CommandLine::Shell("true".into()));
    }

    #[test]
    fn errors_name_file_line_column_and_service() {
        let err = parse("[services.web]\ncommand = \"x\"\ncomand = \"y\"\n").expect_err("unknown key");
        assert_eq!((err.line, err.service.as_deref()), (3, Some("web")), "{err}");
        assert!(err.to_string().starts_with("forkyard.toml:3:1: service 'web': unknown field `comand`"), "{err}");

        let err = parse("[services.web]\ncommand = \"x\"\ninstances = \"two\"\n").expect_err("wrong type");
        assert_eq!(err.line, 3, "{err}");

        let err = parse("[services.web]\nrestart = \"always\"\n").expect_err("no command");
        assert!(err.message.contains("no command"), "{err}");
        assert_eq!(err.service.as_deref(), Some("web"));

        let err = parse("[services.web]\ncommand = \"x\"\ndepends_on = [\"dbb\"]\n").expect_err("unknown dependency");
        assert_eq!((err.line, err.message.as_str()), (3, "depends_on names 'dbb', but there is no such service"));

        let err = parse("[services.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n[services.b]\ncommand = \"x\"\ndepends_on = [\"a\"]\n")
            .expect_err("cycle");
        assert!(err.message.starts_with("dependency cycle: a -> b -> a"), "{err}");

        let err = parse("[services.web]\ncommand = \"x\"\nstop_timeout = \"10\"\n").expect_err("duration without unit");
        assert!(err.message.contains("stop_timeout") && err.message.contains("unit"), "{err}");

        let err = parse("[services.web]\ncommand = \"x\"\nstop_signal = \"SIGNOPE\"\n").expect_err("bad signal");
        assert!(err.message.contains("not a signal"), "{err}");

        let err = parse("[services.web]\ncommand = \"x\"\nready = { tcp = \"x:1\", http = \"http://x:1/\" }\n")
            .expect_err("two probes");
        assert!(err.message.contains("only one"), "{err}");

        let err = parse("[services.web]\ncommand = \"x\"\nenv_file = \"/no/such/.env\"\n").expect_err("env file");
        assert!(err.message.contains("cannot be read"), "{err}");
        assert_eq!(err.line, 3);
    }

    #[test]
    fn dotenv_files_parse() {
        let env =
            parse_env_file("# c\nA=1\nexport B=\"two words\\n\"\nC='x # y'\nD=plain # comment\n\nE=\n").expect("valid");
        assert_eq!(
            env,
            [("A", "1"), ("B", "two words\n"), ("C", "x # y"), ("D", "plain"), ("E", "")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(parse_env_file("A=1\nnot a pair\n"), Err((2, "expected KEY=VALUE, found 'not a pair'".into())));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10MB"), Some(10 << 20));
        assert_eq!(parse_size("512kb"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("ten"), None);
    }
}
