//! `Procfile`s, as foreman and Heroku read them: `name: command` per line.
//!
//! Why this module exists: a Procfile is the smallest way to say "run these together", and
//! projects already have one; `forkyard up` runs it as foreman would (a `PORT` per process
//! type, every process critical, `.env` beside it), so that it can replace foreman without
//! a new file.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use super::model::{CommandLine, Origin, Position, Restart, Unit};
use super::{ConfigError, Plan, base_dir, dotenv, valid_name};

/// The step of `PORT` between process types, as foreman counts.
const PORT_STEP: u32 = 100;

/// Reads a `Procfile` (`name: command` per line) and, next to it, `.env` if present.
/// As with foreman: each process gets `PORT`, from `port_base` stepping by 100 per process
/// type in file order (a port past 65535 is an error naming the line); commands run through
/// `/bin/sh -c`; when one process ends, `up` stops the others and exits with its status.
pub fn load_procfile(path: &Path, port_base: u16) -> Result<Plan, ConfigError> {
    let err =
        |line: usize, column: usize, message: String| ConfigError::at(path, Position { line, column }, None, message);
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(1, 1, format!("cannot read it: {} (check the path and permissions)", forkyard::error::strerror(&e)))
    })?;
    let base = base_dir(path);
    let env = dotenv::read_beside(path, &base)?;
    let mut units: Vec<Unit> = Vec::new();
    let mut seen = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        let indent = raw.len() - raw.trim_start().len();
        let Some(colon) = line.find(':') else {
            return Err(err(n, indent + 1, format!("expected 'name: command', found '{line}'")));
        };
        let (name, cmd) = (line[..colon].trim(), &line[colon + 1..]);
        if !valid_name(name) {
            return Err(err(n, indent + 1, format!("'{name}' is not a process name (letters, digits, '-' and '_')")));
        }
        if !seen.insert(name.to_string()) {
            return Err(err(n, indent + 1, format!("process '{name}' is defined twice")));
        }
        let command_at = indent + colon + 1 + (cmd.len() - cmd.trim_start().len());
        let cmd = cmd.trim();
        if cmd.is_empty() {
            return Err(err(n, indent + 1, format!("process '{name}' has no command")));
        }
        let port = u32::from(port_base) + PORT_STEP * units.len() as u32;
        if port > u32::from(u16::MAX) {
            let last = u32::from(u16::MAX).saturating_sub(PORT_STEP * units.len() as u32);
            return Err(err(
                n,
                indent + 1,
                format!(
                    "process '{name}' would get PORT={port}, past 65535 (--port-base {port_base}, plus {PORT_STEP} \
                     for each process type above it): give --port-base {last} or lower"
                ),
            ));
        }
        let mut unit_env = env.clone();
        unit_env.push(("PORT".into(), port.to_string()));
        let column = raw.get(..command_at).map_or(1, |before| before.chars().count() + 1);
        let at = |column| Some(Position { line: n, column });
        let origin =
            Origin { file: path.to_path_buf(), unit: at(indent + 1), command: at(column), ..Origin::default() };
        // As with foreman: nothing restarts, every process is critical, 5 s to stop.
        units.push(Unit {
            env: unit_env,
            restart: Restart::Never,
            stop_timeout: Duration::from_secs(5),
            critical: true,
            origin,
            ..Unit::new(name, CommandLine::Shell(cmd.to_string()), base.clone())
        });
    }
    if units.is_empty() {
        return Err(err(1, 1, "no processes: add lines like 'web: python -m http.server $PORT'".into()));
    }
    Ok(Plan { source: path.to_path_buf(), units, from_procfile: true, control: Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn procfile(text: &str, dotenv: Option<&str>) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("Procfile");
        std::fs::write(&path, text).expect("write the Procfile");
        if let Some(env) = dotenv {
            std::fs::write(dir.path().join(".env"), env).expect("write .env");
        }
        (dir, path)
    }

    #[test]
    fn each_process_type_gets_a_port_and_the_env() {
        let (_dir, path) = procfile("web: serve $PORT\n  worker:  work\n", Some("A=\"a b\" # note\n"));
        let plan = load_procfile(&path, 5000).expect("valid");
        let env: Vec<Vec<(&str, &str)>> =
            plan.units.iter().map(|u| u.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()).collect();
        assert_eq!(env, [vec![("A", "a b"), ("PORT", "5000")], vec![("A", "a b"), ("PORT", "5100")]]);
        assert!(plan.units.iter().all(|u| u.critical && u.restart == Restart::Never));
        assert_eq!(plan.units[1].origin.command, Some(Position { line: 2, column: 12 }));
        assert_eq!(plan.units[1].origin.unit, Some(Position { line: 2, column: 3 }));
    }

    #[test]
    fn a_port_past_65535_names_the_line() {
        let (_dir, path) = procfile("web: a\n\nworker: b\nclock: c\n", None);
        assert!(load_procfile(&path, 65335).is_ok(), "65335 + 200 = 65535 fits");
        let err = load_procfile(&path, 65336).expect_err("65336 + 200 is past 65535");
        assert_eq!((err.line, err.column), (4, 1), "{err}");
        assert!(err.message.contains("PORT=65536") && err.message.contains("--port-base 65335"), "{err}");
    }

    #[test]
    fn an_env_error_names_the_env_file_and_line() {
        let (dir, path) = procfile("web: a\n", Some("A=1\nB=two words\n"));
        let err = load_procfile(&path, 5000).expect_err("bad .env");
        assert_eq!((err.file.clone(), err.line), (dir.path().join(".env").display().to_string(), 2), "{err}");
    }
}
