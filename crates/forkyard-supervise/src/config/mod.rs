//! What `forkyard up` runs: `forkyard.toml`, or a `Procfile` with its `.env`.
//!
//! Why this module exists: a supervisor is only as good as its configuration errors. Every
//! mistake (an unknown key, a wrong type, a dependency cycle, a `depends_on` naming no
//! service, an unreadable env file) is reported with the file, line and column, and the
//! service, before anything starts. The result is a validated [`Plan`]: one [`Unit`] per
//! process to run (instances expanded), in a start order that respects every dependency.
//! [`verify`] then checks it against this machine (programs, directories, users), for
//! `up --check` and before a start.
//!
//! Parts: `model` (the types the engine reads), `toml` and `procfile` (the two formats),
//! `dotenv` (`.env` files), `order` (dependencies and start order), `verify` (host checks).

mod dotenv;
mod model;
mod order;
mod procfile;
mod toml;
mod verify;

use std::path::{Path, PathBuf};

pub use dotenv::{DotenvError, parse_env_file};

pub use model::{Check, CommandLine, Condition, HttpCheck, Origin, Position, Probe, Restart, Unit};
pub use procfile::load_procfile;
pub use toml::{load_toml, parse_toml};
pub use verify::verify;

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

impl ConfigError {
    /// An error at `at` in `file`, about `service` if there is one.
    fn at(file: &Path, at: Position, service: Option<&str>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.display().to_string(),
            line: at.line,
            column: at.column,
            service: service.map(str::to_string),
            message: message.into(),
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
    /// The control plane's settings.
    pub control: ControlSettings,
}

/// The most lines `log_lines` keeps per service.
pub const MAX_LOG_LINES: usize = 100_000;

/// How the control plane runs: top-level `log_lines` and `[http] listen`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlSettings {
    /// Lines kept per service for `forkyard ctl logs` (default 1,000).
    pub log_lines: usize,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` (`IP:PORT`), if anywhere.
    pub http_listen: Option<String>,
}

impl Default for ControlSettings {
    fn default() -> ControlSettings {
        ControlSettings { log_lines: 1000, http_listen: None }
    }
}

impl Plan {
    /// Keeps only the named services (a service name takes all its instances; `web.2`
    /// names one) and everything they depend on, directly or not, in start order. An
    /// unknown name is an error that lists the services there are.
    pub fn select(&mut self, names: &[String]) -> Result<(), String> {
        if names.is_empty() {
            return Ok(());
        }
        let index = order::Index::new(&self.units);
        let mut roots = Vec::new();
        for name in names {
            let found = index.named(name);
            if found.is_empty() {
                let mut services: Vec<&str> = self.units.iter().map(|u| u.service.as_str()).collect();
                services.dedup();
                return Err(format!(
                    "no service named '{name}' in {}; it has: {}",
                    self.source.display(),
                    services.join(", ")
                ));
            }
            roots.extend_from_slice(found);
        }
        let mut keep = order::needed(&self.units, &index, &roots).into_iter();
        self.units.retain(|_| keep.next().unwrap_or(false));
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Plan, ConfigError> {
        parse_toml(text, Path::new("forkyard.toml"))
    }

    fn names(plan: &Plan) -> Vec<String> {
        plan.units.iter().map(|u| u.name.clone()).collect()
    }

    #[test]
    fn selecting_services_keeps_their_dependencies() {
        let text = "[services.db]\ncommand = \"x\"\n[services.cache]\ncommand = \"x\"\n[services.api]\ncommand = \"x\"\ndepends_on = [\"db\"]\n[services.web]\ncommand = \"x\"\ndepends_on = [\"api\"]\n[services.worker]\ncommand = \"x\"\ninstances = 2\n";
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
    fn selecting_follows_dependencies_through_instances() {
        // web.* need every instance of db, which needs base; nothing else is kept.
        let text = "[services.base]\ncommand = \"x\"\n[services.db]\ncommand = \"x\"\ninstances = 2\ndepends_on = [\"base\"]\n[services.web]\ncommand = \"x\"\ninstances = 3\ndepends_on = [\"db\"]\n[services.other]\ncommand = \"x\"\ninstances = 2\n";
        let mut plan = parse(text).expect("valid");
        plan.select(&["web.3".into()]).expect("known");
        assert_eq!(names(&plan), ["base", "db.1", "db.2", "web.3"]);
    }
}
