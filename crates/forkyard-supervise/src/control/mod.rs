//! The control plane of a running `up`: an HTTP API on a Unix socket (what `forkyard ctl`
//! speaks), and read-only metrics and health endpoints on TCP for orchestrators.
//!
//! Why this module exists: a supervisor is steered while it runs (restart one service, read
//! its recent output, reload the file) without restarting the stack. The supervisor's loop
//! must never wait for a client, so the API runs on a thread of its own: it reads a snapshot
//! the loop publishes when something changes, and sends commands that the loop takes in
//! one bounded batch per turn, as it takes signals.
//!
//! Parts: [`api`] (the messages, shared with the client), [`hub`] (what the loop and the
//! server share), [`server`] (HTTP), [`socket`] (making the socket), [`usage`] (CPU and
//! memory of a unit).

pub mod api;
pub mod hub;
pub mod server;
pub mod socket;
pub mod usage;

/// Reads the configuration again, as `up` first read it (same file, same selection, same
/// checks as `up --check`); the error is what `up --check` would print.
pub type Reload = std::sync::Arc<dyn Fn() -> Result<crate::config::Plan, String> + Send + Sync>;

/// The most instances `scale` sets.
pub const MAX_INSTANCES: u32 = 1000;

use std::path::{Path, PathBuf};

/// The environment variable that names the control socket, on both sides.
pub const SOCKET_VARIABLE: &str = "FORKYARD_SOCKET";

/// Where the control socket of the configuration `config` is, unless `FORKYARD_SOCKET` or
/// `--socket` say otherwise: `<base>/ctl/<key>.sock`, where the base is `/run/forkyard` for
/// root, `$XDG_RUNTIME_DIR/forkyard` when that is set, else `/tmp/forkyard-<uid>`, and the
/// key is a hash of the configuration's absolute path (so `forkyard ctl` in the same
/// directory finds it with no flag).
///
/// ```
/// use std::path::Path;
/// let a = forkyard_supervise::control::default_socket(Path::new("/srv/app/forkyard.toml"));
/// let b = forkyard_supervise::control::default_socket(Path::new("/srv/other/forkyard.toml"));
/// assert!(a.to_string_lossy().ends_with(".sock"));
/// assert_ne!(a, b);
/// ```
pub fn default_socket(config: &Path) -> PathBuf {
    let root = rustix::process::geteuid().is_root();
    base_dir(root, std::env::var_os("XDG_RUNTIME_DIR").as_deref())
        .join("ctl")
        .join(format!("{}.sock", crate::tree::config_key(config)))
}

/// The socket to use: `explicit` (`--socket`), else `$FORKYARD_SOCKET`, else
/// [`default_socket`].
///
/// ```
/// use std::path::Path;
/// let s = forkyard_supervise::control::socket_for(Path::new("forkyard.toml"), Some(Path::new("/tmp/s.sock")));
/// assert_eq!(s, Path::new("/tmp/s.sock"));
/// ```
pub fn socket_for(config: &Path, explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    match std::env::var_os(SOCKET_VARIABLE) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => default_socket(config),
    }
}

fn base_dir(root: bool, xdg_runtime_dir: Option<&std::ffi::OsStr>) -> PathBuf {
    if root {
        return PathBuf::from("/run/forkyard");
    }
    match xdg_runtime_dir.map(Path::new) {
        Some(xdg) if xdg.is_absolute() => xdg.join("forkyard"),
        _ => std::env::temp_dir().join(format!("forkyard-{}", rustix::process::geteuid().as_raw())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_follows_the_user() {
        assert_eq!(base_dir(true, Some("/run/user/1000".as_ref())), Path::new("/run/forkyard"));
        assert_eq!(base_dir(false, Some("/run/user/1000".as_ref())), Path::new("/run/user/1000/forkyard"));
        let private = base_dir(false, Some("relative".as_ref()));
        assert!(private.to_string_lossy().contains("forkyard-"), "{}", private.display());
    }

    #[test]
    fn the_same_file_named_two_ways_has_one_socket() {
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(default_socket(Path::new("forkyard.toml")), default_socket(&cwd.join("forkyard.toml")));
    }
}
