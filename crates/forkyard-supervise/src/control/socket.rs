//! Making the control socket: a private directory, a stale socket replaced, a live one
//! left to its owner, and mode 0600.
//!
//! Why this module exists: whoever can connect to the socket can stop every service, so it
//! is made where only `up`'s user can reach it, and every connection is checked again with
//! `SO_PEERCRED` by the server.

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Binds the control socket at `path`, mode 0600. For the default path, its directory
/// (`.../ctl`) is made 0700 and must be ours and a real directory. A socket left by a killed
/// `up` (nobody accepts on it) is replaced; one a live `up` serves is an error.
pub fn bind(path: &Path, default_location: bool) -> io::Result<UnixListener> {
    let fail = |what: String| io::Error::other(format!("{}: {what}", path.display()));
    if default_location {
        if let Some(dir) = path.parent() {
            if let Some(base) = dir.parent() {
                make_private(base, 0o700, true)?;
            }
            make_private(dir, 0o700, false)?;
        }
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(fail(
                    "another forkyard up already serves this configuration on it; forkyard ctl talks to that one \
                     (give this one --socket PATH to control it separately)"
                        .into(),
                ));
            }
            fs::remove_file(path).map_err(|e| fail(format!("cannot remove a stale socket: {e}")))?;
        }
        Ok(_) => return Err(fail("exists and is not a socket; remove it or give --socket another path".into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let listener = UnixListener::bind(path).map_err(|e| fail(format!("cannot bind: {e}")))?;
    fs::set_permissions(path, Permissions::from_mode(0o600)).map_err(|e| fail(format!("cannot set its mode: {e}")))?;
    listener.set_nonblocking(true).map_err(|e| fail(format!("cannot make it nonblocking: {e}")))?;
    Ok(listener)
}

/// Makes `dir` with `mode` if missing; an existing one must be a directory (not a link),
/// ours, and not writable by others. `keep_mode`: an existing directory keeps its mode (the
/// shared base, 0711 as root so services can reach their notify sockets).
fn make_private(dir: &Path, mode: u32, keep_mode: bool) -> io::Result<()> {
    let fail = |what: String| io::Error::other(format!("{}: {what}", dir.display()));
    match DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {
            fs::set_permissions(dir, Permissions::from_mode(mode))
                .map_err(|e| fail(format!("cannot set its mode: {e}")))?;
            return Ok(());
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(format!("cannot create it: {e}"))),
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| fail(e.to_string()))?;
    if !meta.is_dir() {
        return Err(fail("is not a directory (a symbolic link?); remove it".into()));
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(fail(format!("is owned by uid {}, not by forkyard's uid {euid}; remove it", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(fail(format!("is writable by others (mode {:o}); remove it", meta.mode() & 0o7777)));
    }
    if !keep_mode && meta.mode() & 0o777 != mode {
        fs::set_permissions(dir, Permissions::from_mode(mode))
            .map_err(|e| fail(format!("cannot set its mode: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_socket_a_stale_one_replaced_a_live_one_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("base").join("ctl").join("x.sock");
        let first = bind(&path, true).expect("bind");
        assert_eq!(fs::metadata(&path).expect("stat").mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(path.parent().expect("dir")).expect("stat").mode() & 0o777, 0o700);
        let err = bind(&path, true).expect_err("a live socket is not taken over");
        assert!(err.to_string().contains("already serves"), "{err}");
        drop(first);
        // The file stays (a killed up), nobody accepts: replaced.
        let again = bind(&path, true).expect("stale replaced");
        drop(again);
        let file = tmp.path().join("plain");
        fs::write(&file, "").expect("write");
        let err = bind(&file, false).expect_err("not a socket");
        assert!(err.to_string().contains("not a socket"), "{err}");
        // A link where the directory should be.
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).expect("mkdir");
        let base = tmp.path().join("linked");
        fs::create_dir(&base).expect("mkdir");
        std::os::unix::fs::symlink(&elsewhere, base.join("ctl")).expect("symlink");
        let err = bind(&base.join("ctl").join("y.sock"), true).expect_err("a link");
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
}
