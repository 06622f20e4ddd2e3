//! Checks a plan against this machine: are the programs installed and executable, do the
//! working directories, users and groups exist?
//!
//! Why this module exists: a configuration can be well-formed and still unable to start
//! (a typo in a program's name, a `cwd` that was never created, a user that only exists on
//! the production host). `up --check` should say so, at the key to fix, instead of `up`
//! finding out one failed start at a time. Loading stays free of the host (a plan can be
//! parsed anywhere); this is the separate step that looks at it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use forkyard::users::{Credentials, LookupError, credentials};

use super::model::{CommandLine, Position, Probe, Unit};
use super::{ConfigError, Plan};

/// What `exec` falls back to when no `PATH` is set at all (as `Launch::start` does).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Checks every unit of `plan` against this machine, and returns the first fault found, at
/// the key that causes it, with the service's name:
///
/// - the working directory exists and is a directory;
/// - `user` and `group` exist (names through the system's user database; numbers always
///   do), resolved as [`forkyard::users::credentials`] resolves them;
/// - the program exists and may be executed by that user: a name without `/` is searched
///   in the unit's `PATH` (its own `env` entry if it sets one, else forkyard's), a path
///   with `/` is taken from the unit's `cwd`, and a shell command needs `/bin/sh`; the
///   same for `exec` readiness and liveness checks.
///
/// "May be executed" is judged from the file's mode bits for the user the unit runs as
/// (any execute bit for root), as the kernel does, short of ACLs and `noexec` mounts.
pub fn verify(plan: &Plan) -> Result<(), ConfigError> {
    let own_path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from(DEFAULT_PATH));
    let mut identities: HashMap<(Option<&str>, Option<&str>), Credentials> = HashMap::new();
    let mut programs: HashMap<Key<'_>, Result<(), String>> = HashMap::new();
    let mut dirs: HashMap<&Path, Result<(), String>> = HashMap::new();
    for unit in &plan.units {
        let file = if unit.origin.file.as_os_str().is_empty() { &plan.source } else { &unit.origin.file };
        let fail = |key: Option<Position>, message: String| {
            ConfigError::at(file, unit.origin.at(key), Some(&unit.service), message)
        };
        dirs.entry(&unit.cwd).or_insert_with(|| directory(&unit.cwd)).clone().map_err(|m| fail(unit.origin.cwd, m))?;
        let id = (unit.user.as_deref(), unit.group.as_deref());
        let who = match identities.entry(id) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => slot.insert(credentials(id.0, id.1).map_err(|e| {
                let key = match &e {
                    LookupError::NoSuchGroup(_) | LookupError::Nul { what: "group", .. } => unit.origin.group,
                    _ if unit.user.is_none() => unit.origin.group,
                    _ => unit.origin.user,
                };
                fail(key, e.to_string())
            })?),
        };
        let path =
            unit.env.iter().rev().find(|(k, _)| k == "PATH").map_or(own_path.as_os_str(), |(_, v)| OsStr::new(v));
        let checks = [
            (Some(&unit.command), unit.origin.command, "command"),
            (exec_of(unit, false), unit.origin.ready_exec, "ready: exec"),
            (exec_of(unit, true), unit.origin.liveness_exec, "liveness: exec"),
        ];
        for (command, at, what) in checks {
            let Some(command) = command else { continue };
            let key = Key { command, cwd: &unit.cwd, path, user: id.0, group: id.1 };
            programs
                .entry(key)
                .or_insert_with(|| program(command, &unit.cwd, path, who))
                .clone()
                .map_err(|m| fail(at, format!("{what}: {m}")))?;
        }
    }
    Ok(())
}

/// What decides whether a program can be run: cached, so that 40,000 instances of a
/// service cost one search.
#[derive(PartialEq, Eq, Hash)]
struct Key<'a> {
    command: &'a CommandLine,
    cwd: &'a Path,
    path: &'a OsStr,
    user: Option<&'a str>,
    group: Option<&'a str>,
}

fn exec_of(unit: &Unit, liveness: bool) -> Option<&CommandLine> {
    let check = if liveness { &unit.liveness } else { &unit.ready };
    match check.as_ref().map(|c| &c.probe) {
        Some(Probe::Exec(command)) => Some(command),
        _ => None,
    }
}

fn directory(cwd: &Path) -> Result<(), String> {
    match std::fs::metadata(cwd) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("cwd '{}' is not a directory: give a directory", cwd.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "cwd '{}' does not exist: create it, or fix cwd (relative to the file's directory)",
            cwd.display()
        )),
        Err(e) => Err(format!(
            "cwd '{}' cannot be examined: {} (check the permissions of the directories above it)",
            cwd.display(),
            forkyard::error::strerror(&e)
        )),
    }
}

/// Whether the kernel would let `who` execute a file with this metadata.
fn executable_by(meta: &Metadata, who: &Credentials) -> bool {
    let bits = if who.uid == 0 {
        0o111
    } else if meta.uid() == who.uid {
        0o100
    } else if meta.gid() == who.gid || who.groups.contains(&meta.gid()) {
        0o010
    } else {
        0o001
    };
    meta.is_file() && meta.mode() & bits != 0
}

fn program(command: &CommandLine, cwd: &Path, path: &OsStr, who: &Credentials) -> Result<(), String> {
    let name = match command {
        CommandLine::Shell(_) => {
            return file(Path::new("/bin/sh"), who).map_err(|m| {
                format!("{m}; a command given as a string runs through /bin/sh (give it as a list instead)")
            });
        }
        CommandLine::Argv(argv) => argv.first().map(String::as_str).unwrap_or_default(),
    };
    if name.is_empty() {
        return Err("the program's name is empty".into());
    }
    if name.contains('/') {
        return file(&cwd.join(name), who);
    }
    let mut denied: Option<PathBuf> = None;
    for dir in path.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() { Path::new(".") } else { Path::new(OsStr::from_bytes(dir)) };
        let candidate = cwd.join(dir).join(name);
        match std::fs::metadata(&candidate) {
            Ok(m) if executable_by(&m, who) => return Ok(()),
            Ok(m) if m.is_file() => {
                denied.get_or_insert(candidate);
            }
            _ => {}
        }
    }
    Err(match denied {
        Some(found) => format!(
            "'{name}' is {}, which uid {} may not execute: chmod +x it, or put the right one first in PATH",
            found.display(),
            who.uid
        ),
        None => format!(
            "'{name}' is not installed: it is in no directory of PATH ({}); install it, give its full path, \
             or set PATH in the service's env",
            path.to_string_lossy()
        ),
    })
}

fn file(path: &Path, who: &Credentials) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(format!("'{}' is a directory, not a program", path.display())),
        Ok(m) if !m.is_file() => Err(format!("'{}' is not a regular file, so not a program", path.display())),
        Ok(m) if !executable_by(&m, who) => {
            Err(format!("'{}' may not be executed by uid {}: chmod +x it", path.display(), who.uid))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("'{}' does not exist: check the path (a relative one starts from cwd)", path.display()))
        }
        Err(e) => Err(format!("'{}' cannot be examined: {}", path.display(), forkyard::error::strerror(&e))),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::{Origin, parse_toml};

    /// A directory with `bin/tool` (executable), `bin/data` (not) and `work/`.
    fn host() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        std::fs::create_dir_all(dir.path().join("work")).expect("work");
        for (name, mode) in [("tool", 0o755), ("data", 0o644)] {
            std::fs::write(bin.join(name), "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        dir
    }

    fn check(dir: &tempfile::TempDir, text: &str) -> Result<(), ConfigError> {
        let plan = parse_toml(text, &dir.path().join("forkyard.toml")).expect("a valid file");
        verify(&plan)
    }

    #[test]
    fn installed_programs_directories_and_users_pass() {
        let dir = host();
        let bin = dir.path().join("bin");
        let text = format!(
            "[services.a]\ncommand = [\"tool\"]\nenv = {{ PATH = \"/nowhere:{}\" }}\n\
             [services.b]\ncommand = [\"../bin/tool\"]\ncwd = \"work\"\nuser = \"nobody\"\ngroup = \"nogroup\"\n\
             [services.c]\ncommand = \"echo hi\"\nready = {{ exec = [\"sh\", \"-c\", \"true\"] }}\n",
            bin.display()
        );
        assert_eq!(check(&dir, &text), Ok(()));
    }

    #[test]
    fn a_program_not_in_path_is_reported_at_the_command() {
        let dir = host();
        let err =
            check(&dir, "[services.web]\ncwd = \"work\"\ncommand = [\"no-such-program-x\"]\n").expect_err("missing");
        assert_eq!((err.line, err.column, err.service.as_deref()), (3, 11, Some("web")), "{err}");
        assert!(err.message.starts_with("command: 'no-such-program-x' is not installed"), "{err}");
        // The unit's own PATH is the one searched: `tool` is only in bin/.
        let err =
            check(&dir, "[services.web]\ncommand = [\"tool\"]\nenv = { PATH = \"/nowhere\" }\n").expect_err("missing");
        assert!(err.message.contains("(/nowhere)"), "{err}");
    }

    #[test]
    fn a_file_without_execute_permission_is_refused() {
        let dir = host();
        let err = check(&dir, "[services.web]\ncommand = [\"bin/data\"]\n").expect_err("not executable");
        assert!(err.message.contains("may not be executed") && err.message.contains("chmod +x"), "{err}");
        let path = format!(
            "[services.web]\ncommand = [\"data\"]\nenv = {{ PATH = \"{}\" }}\n",
            dir.path().join("bin").display()
        );
        let err = check(&dir, &path).expect_err("not executable");
        assert!(err.message.contains("may not execute"), "{err}");
        let err =
            check(&dir, "[services.web]\ncommand = [\"bin\"]\nenv = { PATH = \".\" }\n").expect_err("a directory");
        assert!(err.message.contains("not installed"), "{err}");
    }

    #[test]
    fn relative_programs_start_from_cwd() {
        let dir = host();
        assert_eq!(check(&dir, "[services.web]\ncwd = \"bin\"\ncommand = [\"./tool\"]\n"), Ok(()));
        let err = check(&dir, "[services.web]\ncwd = \"work\"\ncommand = [\"./tool\"]\n").expect_err("not in work/");
        assert!(err.message.contains("work/./tool' does not exist"), "{err}");
    }

    #[test]
    fn a_missing_cwd_user_or_group_is_reported_at_its_key() {
        let dir = host();
        let err = check(&dir, "[services.web]\ncommand = \"x\"\ncwd = \"nope\"\n").expect_err("no cwd");
        assert_eq!((err.line, err.column), (3, 7), "{err}");
        assert!(err.message.contains("does not exist"), "{err}");
        let err = check(&dir, "[services.web]\ncommand = \"x\"\ncwd = \"bin/tool\"\n").expect_err("a file");
        assert!(err.message.contains("is not a directory"), "{err}");
        let err = check(&dir, "[services.web]\ncommand = \"x\"\nuser = \"no-such-user\"\n").expect_err("no user");
        assert_eq!((err.line, err.column), (3, 8), "{err}");
        assert!(err.message.starts_with("user 'no-such-user' does not exist"), "{err}");
        let err = check(&dir, "[services.web]\ncommand = \"x\"\nuser = \"nobody\"\ngroup = \"no-such-group\"\n")
            .expect_err("no group");
        assert_eq!(err.line, 4, "{err}");
        let err = check(&dir, "[services.web]\ncommand = \"x\"\ngroup = \"no-such-group\"\n").expect_err("no group");
        assert_eq!(err.line, 3, "{err}");
    }

    #[test]
    fn exec_checks_are_verified_too() {
        let dir = host();
        let err =
            check(&dir, "[services.web]\ncommand = \"x\"\n\n[services.web.liveness]\nexec = [\"no-such-probe-x\"]\n")
                .expect_err("missing probe program");
        assert_eq!((err.line, err.column), (5, 8), "{err}");
        assert!(err.message.starts_with("liveness: exec: 'no-such-probe-x'"), "{err}");
    }

    #[test]
    fn a_procfile_unit_points_at_its_line() {
        let dir = host();
        let path = dir.path().join("Procfile");
        std::fs::write(&path, "web: echo\nworker:  ./missing\n").expect("write");
        let mut plan = crate::config::load_procfile(&path, 5000).expect("valid");
        // A shell command needs only /bin/sh; make the second an argv one to look for it.
        plan.units[1].command = CommandLine::Argv(vec!["./missing".into()]);
        let err = verify(&plan).expect_err("missing");
        assert_eq!((err.line, err.column, err.service.as_deref()), (2, 10, Some("worker")), "{err}");
        assert_eq!(err.file, path.display().to_string());
    }

    #[test]
    fn a_unit_built_in_code_is_reported_against_the_plan() {
        let unit = Unit::new("x", CommandLine::Argv(vec!["no-such-program-x".into()]), "/".into());
        assert_eq!(unit.origin, Origin::default());
        let plan =
            Plan { source: "plan.toml".into(), units: vec![unit], from_procfile: false, control: Default::default() };
        let err = verify(&plan).expect_err("missing");
        assert!(err.to_string().starts_with("plan.toml:1:1: service 'x': command: "), "{err}");
    }
}
