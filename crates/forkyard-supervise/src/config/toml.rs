//! `forkyard.toml`: services in TOML, read into a [`Plan`].
//!
//! Why this module exists: TOML is the format with every key (checks, dependencies,
//! instances, limits), and the one whose mistakes need the most care: serde's errors come
//! with a byte offset, which this module turns into a line, a column and a service, and
//! every value serde cannot judge (a duration, a signal, an env key, an HTTP status) is
//! checked here with an error at its place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::toml::{Spanned, Value};
use serde::Deserialize;

use forkyard::Signal;
use forkyard::time::parse_duration;

use super::model::{Check, CommandLine, Condition, HttpCheck, Origin, Position, Probe, Restart, Unit};
use super::{ConfigError, ControlSettings, MAX_LOG_LINES, Plan, base_dir, dotenv, order, valid_name};

// --- the file format ------------------------------------------------------------------

/// A table of environment variables, with the places of keys and values.
type EnvTable = BTreeMap<Spanned<String>, Spanned<Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    env: EnvTable,
    #[serde(default)]
    services: BTreeMap<String, Spanned<Service>>,
    /// Lines kept per service for `forkyard ctl logs`.
    log_lines: Option<Spanned<i64>>,
    http: Option<HttpTable>,
}

/// `[http]`: the read-only endpoints for orchestrators.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpTable {
    listen: Option<Spanned<String>>,
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
    exec: Option<Spanned<RawCommand>>,
    tcp: Option<String>,
    http: Option<Spanned<String>>,
    headers: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    status: Option<Spanned<Value>>,
    log: Option<String>,
    notify: Option<bool>,
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    failure_threshold: Option<u32>,
    initial_delay: Option<Spanned<String>>,
    deadline: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Service {
    command: Option<Spanned<RawCommand>>,
    cwd: Option<Spanned<String>>,
    #[serde(default)]
    env: EnvTable,
    env_file: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
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

// --- places in the text ---------------------------------------------------------------

/// The service whose table holds `offset`: the name in the last table header before it, if
/// that header is `[services.NAME]` (or a table below it).
fn service_at(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset.min(text.len())];
    let header = before.lines().rev().map(str::trim).find(|l| l.starts_with('['))?;
    let inner = header.trim_start_matches('[').split(']').next()?;
    let rest = inner.trim().strip_prefix("services.")?;
    let name = rest.split('.').next()?.trim().trim_matches('"');
    (!name.is_empty()).then(|| name.to_string())
}

/// The file being read: its name, text, and where its lines start.
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Ctx<'a> {
    fn new(path: &'a Path, text: &'a str) -> Ctx<'a> {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Ctx { path, text, line_starts }
    }

    /// Line and column (1-based; the column in characters) of a byte offset.
    fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let column = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1;
        Position { line, column }
    }

    fn at(&self, offset: usize, service: Option<&str>, message: impl Into<String>) -> ConfigError {
        let service = service.map(str::to_string).or_else(|| service_at(self.text, offset));
        ConfigError::at(self.path, self.position(offset), service.as_deref(), message)
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

    /// A duration that must be more than zero (`what` says why, for the error).
    fn positive(
        &self,
        value: &Option<Spanned<String>>,
        default: Duration,
        service: &str,
        key: &str,
        why: &str,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(value, default, service, key)?;
        match value {
            Some(v) if d.is_zero() => Err(self.at(
                v.span().start,
                Some(service),
                format!("{key} = \"{}\": it must be more than zero ({why})", v.get_ref()),
            )),
            _ => Ok(d),
        }
    }
}

// --- values ---------------------------------------------------------------------------

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

/// The variables of an `env` table, in key order. Values may be strings, or numbers,
/// booleans and dates, which are written as TOML writes them (`8080`, `true`, `1.5`).
fn env_table(ctx: &Ctx<'_>, table: &EnvTable, service: Option<&str>) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::with_capacity(table.len());
    for (key, value) in table {
        let at = key.span().start;
        let name = key.get_ref();
        if name.is_empty() {
            return Err(ctx.at(at, service, "env: a variable needs a name (the key is empty)"));
        }
        if name.contains('=') {
            return Err(ctx.at(at, service, format!("env: {name:?} cannot be a variable name: it contains '='")));
        }
        if name.contains('\0') {
            return Err(ctx.at(
                at,
                service,
                format!("env: {name:?} cannot be a variable name: it contains a NUL byte"),
            ));
        }
        let text = match value.get_ref() {
            Value::String(s) => s.clone(),
            Value::Integer(_) | Value::Float(_) | Value::Boolean(_) | Value::Datetime(_) => value.get_ref().to_string(),
            other => {
                return Err(ctx.at(
                    at,
                    service,
                    format!(
                        "env: {name} is {} {}; a variable's value is a string, a number or a boolean \
                         (write it as a string: {name} = \"...\")",
                        if other.is_table() { "a" } else { "an" },
                        other.type_str()
                    ),
                ));
            }
        };
        if text.contains('\0') {
            return Err(ctx.at(at, service, format!("env: the value of {name} contains a NUL byte")));
        }
        out.push((name.clone(), text));
    }
    Ok(out)
}

/// The expected statuses of an HTTP check: a number or a list of numbers, each a status
/// code (100 to 599).
fn statuses(ctx: &Ctx<'_>, raw: &Spanned<Value>, service: &str) -> Result<Vec<u16>, ConfigError> {
    let at = raw.span().start;
    let bad = |what: String| {
        ctx.at(
            at,
            Some(service),
            format!("status: {what}; give a status code (status = 204) or a list (status = [200, 204])"),
        )
    };
    let items: Vec<&Value> = match raw.get_ref() {
        Value::Array(list) if list.is_empty() => return Err(bad("the list is empty".into())),
        Value::Array(list) => list.iter().collect(),
        one => vec![one],
    };
    items
        .into_iter()
        .map(|v| match v {
            Value::Integer(n) => u16::try_from(*n)
                .ok()
                .filter(|n| (100..=599).contains(n))
                .ok_or_else(|| bad(format!("{n} is not an HTTP status (100 to 599)"))),
            other => Err(bad(format!("{other} is not a number"))),
        })
        .collect()
}

/// A header name: an HTTP token (letters, digits and `!#$%&'*+-.^_`|~`).
fn header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn http_check(ctx: &Ctx<'_>, r: &RawCheck, url: &Spanned<String>, service: &str) -> Result<HttpCheck, ConfigError> {
    let at = url.span().start;
    let h = url.get_ref();
    let host = h.strip_prefix("http://").or_else(|| h.strip_prefix("https://"));
    let Some(host) = host.map(|rest| rest.split(['/', '?', '#']).next().unwrap_or("")) else {
        return Err(ctx.at(
            at,
            Some(service),
            format!("http = \"{h}\": expected http://host:port/path or https://host:port/path"),
        ));
    };
    if host.is_empty() {
        return Err(ctx.at(
            at,
            Some(service),
            format!("http = \"{h}\": the address has no host (http://127.0.0.1:8080/)"),
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in r.headers.as_ref().map(|h| h.get_ref().iter()).into_iter().flatten() {
        if !header_name(name.get_ref()) {
            return Err(ctx.at(
                name.span().start,
                Some(service),
                format!("headers: {:?} is not a header name (letters, digits and -)", name.get_ref()),
            ));
        }
        if value.get_ref().contains(['\r', '\n', '\0']) {
            return Err(ctx.at(
                value.span().start,
                Some(service),
                format!("headers: the value of {} cannot hold a line break or a NUL byte", name.get_ref()),
            ));
        }
        headers.push((name.get_ref().clone(), value.get_ref().clone()));
    }
    let status = r.status.as_ref().map(|s| statuses(ctx, s, service)).transpose()?.unwrap_or_default();
    Ok(HttpCheck { url: h.clone(), headers, status })
}

fn check(ctx: &Ctx<'_>, raw: &Spanned<RawCheck>, service: &str, liveness: bool) -> Result<Check, ConfigError> {
    let r = raw.get_ref();
    let at = raw.span().start;
    let what = if liveness { "liveness" } else { "ready" };
    let mut kinds = Vec::new();
    if let Some(c) = &r.exec {
        kinds.push(Probe::Exec(command(c.get_ref())));
    }
    if let Some(t) = &r.tcp {
        if t.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
            return Err(ctx.at(at, Some(service), format!("tcp = \"{t}\": expected host:port, e.g. 127.0.0.1:8080")));
        }
        kinds.push(Probe::Tcp(t.clone()));
    }
    if let Some(h) = &r.http {
        kinds.push(Probe::Http(http_check(ctx, r, h, service)?));
    } else {
        let misplaced = [
            ("headers", r.headers.as_ref().map(|h| h.span().start)),
            ("status", r.status.as_ref().map(|s| s.span().start)),
        ];
        if let Some((key, Some(offset))) = misplaced.into_iter().find(|(_, offset)| offset.is_some()) {
            return Err(ctx.at(offset, Some(service), format!("{what}: {key} is for http checks only")));
        }
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
    let deadline = match &r.deadline {
        None => None,
        Some(d) if liveness => {
            return Err(ctx.at(
                d.span().start,
                Some(service),
                "liveness: deadline is for readiness checks only (a liveness check restarts the service \
                 after failure_threshold failures instead)",
            ));
        }
        Some(_) => {
            Some(ctx.positive(&r.deadline, Duration::ZERO, service, "deadline", "a zero deadline fails at once")?)
        }
    };
    Ok(Check {
        probe,
        interval: ctx.positive(
            &r.interval,
            Duration::from_millis(if liveness { 5000 } else { 250 }),
            service,
            "interval",
            "a zero interval would check without pause",
        )?,
        timeout: ctx.positive(
            &r.timeout,
            Duration::from_secs(if liveness { 5 } else { 2 }),
            service,
            "timeout",
            "a zero timeout fails every check",
        )?,
        failure_threshold: r.failure_threshold.unwrap_or(3).max(1),
        initial_delay: ctx.duration(&r.initial_delay, Duration::ZERO, service, "initial_delay")?,
        deadline,
    })
}

// --- loading --------------------------------------------------------------------------

/// Reads and validates `forkyard.toml` (or any file in that format).
pub fn load_toml(path: &Path) -> Result<Plan, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::at(
            path,
            Position { line: 1, column: 1 },
            None,
            format!("cannot read it: {} (check the path and permissions)", forkyard::error::strerror(&e)),
        )
    })?;
    parse_toml(&text, path)
}

/// Validates the text of a `forkyard.toml` read from `path` (which sets the directory that
/// relative paths are resolved against, and the name in errors).
///
/// Besides the text, it reads `.env` in that directory (if there is one) and the services'
/// `env_file`s. Each service's environment is, later entries winning: `.env`, the
/// top-level `[env]`, its `env_file`, its `env`, then `FORKYARD_INSTANCE` for instances.
pub fn parse_toml(text: &str, path: &Path) -> Result<Plan, ConfigError> {
    let ctx = Ctx::new(path, text);
    let base = base_dir(path);
    let parsed: File = ::toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        ctx.at(offset, None, e.message().trim().to_string())
    })?;
    if parsed.services.is_empty() {
        return Err(ctx.at(0, None, "no services: add a [services.NAME] table with a command"));
    }
    let mut shared = dotenv::read_beside(path, &base)?;
    shared.extend(env_table(&ctx, &parsed.env, None)?);
    let mut units = Vec::new();
    for (name, spanned) in &parsed.services {
        service(&ctx, &base, &parsed, &shared, name, spanned, &mut units)?;
    }
    let units = order::expand_and_order(units).map_err(|cycle| {
        let first = cycle.first().cloned().unwrap_or_default();
        let at = parsed.services.get(&first).map_or(0, |s| s.span().start);
        ctx.at(at, Some(&first), format!("dependency cycle: {}", cycle.join(" -> ")))
    })?;
    let mut control = ControlSettings::default();
    if let Some(n) = &parsed.log_lines {
        match usize::try_from(*n.get_ref()) {
            Ok(lines) if lines <= MAX_LOG_LINES => control.log_lines = lines,
            _ => {
                return Err(ctx.at(
                    n.span().start,
                    None,
                    format!(
                        "log_lines must be from 0 to {MAX_LOG_LINES} (lines kept per service for forkyard ctl logs)"
                    ),
                ));
            }
        }
    }
    if let Some(listen) = parsed.http.as_ref().and_then(|h| h.listen.as_ref()) {
        if listen.get_ref().parse::<std::net::SocketAddr>().is_err() {
            return Err(ctx.at(
                listen.span().start,
                None,
                format!(
                    "[http] listen = \"{}\" is not an address: write IP:PORT, like \"0.0.0.0:9090\"",
                    listen.get_ref()
                ),
            ));
        }
        control.http_listen = Some(listen.get_ref().clone());
    }
    Ok(Plan { source: path.to_path_buf(), units, from_procfile: false, control })
}

/// Validates one service and adds its units (one, or one per instance) to `units`.
fn service(
    ctx: &Ctx<'_>,
    base: &Path,
    parsed: &File,
    shared: &[(String, String)],
    name: &str,
    spanned: &Spanned<Service>,
    units: &mut Vec<Unit>,
) -> Result<(), ConfigError> {
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
    let cwd = s.cwd.as_ref().map_or_else(|| base.to_path_buf(), |c| base.join(c.get_ref()));
    let d = Unit::new(name, command(cmd.get_ref()), cwd);
    let mut env = shared.to_vec();
    if let Some(env_file) = &s.env_file {
        let p = base.join(env_file.get_ref());
        let content = std::fs::read_to_string(&p).map_err(|e| {
            ctx.at(
                env_file.span().start,
                Some(name),
                format!("env_file '{}' cannot be read: {}", p.display(), forkyard::error::strerror(&e)),
            )
        })?;
        env.extend(dotenv::parse_env_at(&p, &content, Some(name))?);
    }
    env.extend(env_table(ctx, &s.env, Some(name))?);
    let depends_on: Vec<(String, Condition)> = match &s.depends_on {
        None => Vec::new(),
        Some(d) => {
            let list: Vec<(String, Condition)> = match d.get_ref() {
                RawDepends::List(l) => l.iter().map(|n| (n.clone(), Condition::Started)).collect(),
                RawDepends::Table(t) => t.iter().map(|(n, c)| (n.clone(), *c)).collect(),
            };
            for (dep, _) in &list {
                if !parsed.services.contains_key(dep) {
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
    let ready = s.ready.as_ref().map(|r| check(ctx, r, name, false)).transpose()?;
    let liveness = s.liveness.as_ref().map(|r| check(ctx, r, name, true)).transpose()?;
    let place = |o: Option<usize>| o.map(|offset| ctx.position(offset));
    let exec_at = |c: &Option<Spanned<RawCheck>>| {
        place(c.as_ref().and_then(|c| c.get_ref().exec.as_ref()).map(|e| e.span().start))
    };
    let origin = Origin {
        file: ctx.path.to_path_buf(),
        unit: place(Some(at)),
        command: place(Some(cmd.span().start)),
        cwd: place(s.cwd.as_ref().map(|c| c.span().start)),
        user: place(s.user.as_ref().map(|u| u.span().start)),
        group: place(s.group.as_ref().map(|g| g.span().start)),
        ready_exec: exec_at(&s.ready),
        liveness_exec: exec_at(&s.liveness),
    };
    let template = Unit {
        env,
        user: s.user.as_ref().map(|u| u.get_ref().clone()),
        group: s.group.as_ref().map(|g| g.get_ref().clone()),
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
        origin,
        ..d
    };
    match instances {
        None => units.push(template),
        Some(n) => {
            units.reserve(n as usize);
            for i in 1..=n {
                let mut u = template.clone();
                u.name = format!("{name}.{i}");
                u.instance = Some(i);
                u.env.push(("FORKYARD_INSTANCE".into(), i.to_string()));
                u.log_file = u.log_file.map(|f| instance_log(f, i));
                units.push(u);
            }
        }
    }
    Ok(())
}

/// `web.log` becomes `web.log.2` for instance 2.
fn instance_log(file: PathBuf, instance: u32) -> PathBuf {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    file.with_file_name(format!("{name}.{instance}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Plan, ConfigError> {
        parse_toml(text, Path::new("forkyard.toml"))
    }

    fn env_of<'a>(plan: &'a Plan, unit: &str) -> Vec<(&'a str, &'a str)> {
        let u = plan.units.iter().find(|u| u.name == unit).expect("the unit exists");
        u.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
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
    fn an_error_after_the_services_is_not_blamed_on_the_last_one() {
        let err = parse("[services.web]\ncommand = \"x\"\n[env]\nA = [1]\n").expect_err("array");
        assert_eq!((err.line, err.service.as_deref()), (4, None), "{err}");
    }

    /// Writes `files` (name, text) in a fresh directory and parses its forkyard.toml.
    fn parse_in(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Plan, ConfigError>) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        let path = dir.path().join("forkyard.toml");
        let plan = load_toml(&path);
        (dir, plan)
    }

    #[test]
    fn the_environment_comes_from_five_places_in_order() {
        let toml = r#"
[env]
B = "top"
C = "top"
D = "top"

[services.web]
command = "x"
instances = 2
env_file = "web.env"
env = { D = "service" }
"#;
        let (_dir, plan) = parse_in(&[
            ("forkyard.toml", toml),
            (".env", "A=dotenv\nB=dotenv\nQ=\"a b\" # comment\n"),
            ("web.env", "C=file\nD=file\n"),
        ]);
        let plan = plan.expect("valid");
        assert_eq!(
            env_of(&plan, "web.2"),
            [
                ("A", "dotenv"),
                ("B", "dotenv"),
                ("Q", "a b"),
                ("B", "top"),
                ("C", "top"),
                ("D", "top"),
                ("C", "file"),
                ("D", "file"),
                ("D", "service"),
                ("FORKYARD_INSTANCE", "2"),
            ]
        );
    }

    #[test]
    fn an_unreadable_dotenv_beside_the_file_is_an_error() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(dir.path().join(".env")).expect("a directory where .env should be");
        let path = dir.path().join("forkyard.toml");
        std::fs::write(&path, "[services.web]\ncommand = \"x\"\n").expect("write");
        let err = load_toml(&path).expect_err(".env is a directory");
        assert_eq!((err.file.clone(), err.line), (path.display().to_string(), 1), "{err}");
        assert!(err.message.contains(".env cannot be read"), "{err}");
        // And a fault inside it names its own line.
        std::fs::remove_dir(dir.path().join(".env")).expect("remove");
        std::fs::write(dir.path().join(".env"), "A=1\nB=two words\n").expect("write");
        let err = load_toml(&path).expect_err("bad .env");
        assert!(err.file.ends_with(".env") && err.line == 2, "{err}");
    }

    #[test]
    fn env_values_may_be_numbers_and_booleans() {
        let plan = parse(
            "[env]\nWORKERS = 4\n[services.web]\ncommand = \"x\"\nenv = { PORT = 8080, DEBUG = true, RATIO = 1.5, NAME = \"n\" }\n",
        )
        .expect("valid");
        assert_eq!(
            env_of(&plan, "web"),
            [("WORKERS", "4"), ("DEBUG", "true"), ("NAME", "n"), ("PORT", "8080"), ("RATIO", "1.5")]
        );
        let err = parse("[services.web]\ncommand = \"x\"\nenv = { OK = 1, LIST = [1, 2] }\n").expect_err("array");
        assert_eq!((err.line, err.column, err.service.as_deref()), (3, 17, Some("web")), "{err}");
        assert!(err.message.starts_with("env: LIST is an array;"), "{err}");
        let err = parse("[env]\nSUB.KEY = 1\n[services.web]\ncommand = \"x\"\n").expect_err("table");
        assert_eq!((err.line, err.column, err.service.as_deref()), (2, 1, None), "{err}");
        assert!(err.message.starts_with("env: SUB is a table;"), "{err}");
    }

    #[test]
    fn env_keys_and_values_that_no_process_can_hold_are_refused() {
        let cases = [
            ("{ \"\" = \"x\" }", "the key is empty"),
            ("{ \"A=B\" = \"x\" }", "contains '='"),
            ("{ \"A\\u0000\" = \"x\" }", "contains a NUL byte"),
            ("{ A = \"x\\u0000y\" }", "the value of A contains a NUL byte"),
        ];
        for (table, why) in cases {
            let err = parse(&format!("[services.web]\ncommand = \"x\"\nenv = {table}\n")).expect_err(why);
            assert_eq!((err.line, err.column, err.service.as_deref()), (3, 9, Some("web")), "{err}");
            assert!(err.message.contains(why), "{why}: {err}");
        }
        let err = parse("[env]\n\"K=V\" = 1\n[services.web]\ncommand = \"x\"\n").expect_err("= in [env]");
        assert_eq!((err.line, err.column, err.service.as_deref()), (2, 1, None), "{err}");
    }

    #[test]
    fn http_checks_take_headers_and_statuses() {
        let plan = parse(
            r#"
[services.web]
command = "x"
ready = { http = "https://127.0.0.1:8443/health", headers = { Authorization = "Bearer x" }, status = 204 }
liveness = { http = "http://127.0.0.1:8080/", status = [200, 204] }
"#,
        )
        .expect("valid");
        let http = |c: &Option<Check>| match c.as_ref().map(|c| &c.probe) {
            Some(Probe::Http(h)) => h.clone(),
            other => panic!("not an http check: {other:?}"),
        };
        let ready = http(&plan.units[0].ready);
        assert_eq!(ready.url, "https://127.0.0.1:8443/health");
        assert_eq!(ready.headers, [("Authorization".to_string(), "Bearer x".to_string())]);
        assert_eq!(ready.status, [204]);
        assert_eq!(http(&plan.units[0].liveness).status, [200, 204]);
        let plain = parse("[services.web]\ncommand = \"x\"\nready = { http = \"http://h:1/\" }\n").expect("valid");
        assert_eq!(http(&plain.units[0].ready).status, Vec::<u16>::new());
    }

    #[test]
    fn http_checks_refuse_other_schemes_statuses_and_misplaced_keys() {
        // Each error points at the value concerned: the first place `at` occurs in the line.
        let cases = [
            ("{ http = \"ftp://h:1/\" }", "\"ftp", "expected http://"),
            ("{ http = \"http:///x\" }", "\"http", "no host"),
            ("{ http = \"http://h:1/\", status = 600 }", "600", "600 is not an HTTP status"),
            ("{ http = \"http://h:1/\", status = [200, 99] }", "[", "99 is not an HTTP status"),
            ("{ http = \"http://h:1/\", status = \"ok\" }", "\"ok", "is not a number"),
            ("{ http = \"http://h:1/\", status = [] }", "[", "the list is empty"),
            ("{ http = \"http://h:1/\", headers = { \"Bad Name\" = \"x\" } }", "\"Bad", "not a header name"),
            ("{ http = \"http://h:1/\", headers = { X = \"a\\nb\" } }", "\"a", "line break"),
            ("{ tcp = \"h:1\", headers = { X = \"y\" } }", "{ X", "headers is for http checks only"),
            ("{ exec = \"true\", status = 200 }", "200", "status is for http checks only"),
        ];
        for (check, at, why) in cases {
            let line = format!("ready = {check}");
            let column = line.find(at).expect("the marker is in the line") + 1;
            let err = parse(&format!("[services.web]\ncommand = \"x\"\n{line}\n")).expect_err(why);
            assert_eq!((err.line, err.column, err.service.as_deref()), (3, column, Some("web")), "{why}: {err}");
            assert!(err.message.contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn a_readiness_deadline_is_read_and_refused_on_liveness() {
        let plan =
            parse("[services.web]\ncommand = \"x\"\nready = { tcp = \"h:1\", deadline = \"30s\" }\n").expect("valid");
        assert_eq!(plan.units[0].ready.as_ref().and_then(|c| c.deadline), Some(Duration::from_secs(30)));
        let plan = parse("[services.web]\ncommand = \"x\"\nready = { tcp = \"h:1\" }\n").expect("valid");
        assert_eq!(plan.units[0].ready.as_ref().map(|c| c.deadline), Some(None));
        let err = parse("[services.web]\ncommand = \"x\"\nliveness = { tcp = \"h:1\", deadline = \"30s\" }\n")
            .expect_err("deadline on liveness");
        assert_eq!((err.line, err.column), (3, 38), "{err}"); // the value "30s"
        assert!(err.message.contains("deadline is for readiness checks only"), "{err}");
    }

    #[test]
    fn check_intervals_and_timeouts_must_be_more_than_zero() {
        for (key, value) in [("interval", "0s"), ("interval", "0"), ("timeout", "0ms"), ("deadline", "0s")] {
            let text =
                format!("[services.web]\ncommand = \"x\"\n[services.web.ready]\ntcp = \"h:1\"\n{key} = \"{value}\"\n");
            let err = parse(&text).expect_err("zero");
            assert_eq!((err.line, err.column, err.service.as_deref()), (5, key.len() + 4, Some("web")), "{err}");
            assert!(err.message.starts_with(&format!("{key} = \"{value}\": it must be more than zero")), "{err}");
        }
        let err = parse("[services.web]\ncommand = \"x\"\nliveness = { exec = \"true\", interval = \"0s\" }\n")
            .expect_err("zero liveness interval");
        assert!(err.message.contains("must be more than zero"), "{err}");
    }

    #[test]
    fn positions_of_keys_are_recorded_for_later_checks() {
        let plan = parse(
            "[services.web]\ncommand = [\"a\"]\ncwd = \"w\"\nuser = \"u\"\ngroup = \"g\"\nready = { exec = \"r\" }\nliveness = { exec = [\"l\"] }\n",
        )
        .expect("valid");
        let o = &plan.units[0].origin;
        let p = |line, column| Some(Position { line, column });
        assert_eq!(o.file, Path::new("forkyard.toml"));
        assert_eq!((o.unit, o.command, o.cwd, o.user, o.group), (p(1, 1), p(2, 11), p(3, 7), p(4, 8), p(5, 9)));
        assert_eq!((o.ready_exec, o.liveness_exec), (p(6, 18), p(7, 21)));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10MB"), Some(10 << 20));
        assert_eq!(parse_size("512kb"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("ten"), None);
    }

    #[test]
    fn positions_count_characters_from_one() {
        let ctx = Ctx::new(Path::new("f"), "ab\né = 1\n");
        assert_eq!(ctx.position(0), Position { line: 1, column: 1 });
        assert_eq!(ctx.position(3), Position { line: 2, column: 1 });
        assert_eq!(ctx.position(5), Position { line: 2, column: 2 }); // after the 2-byte é
        assert_eq!(ctx.position(100), Position { line: 3, column: 1 });
    }
}
