//! A private directory for the supervisor's sockets: each service's notify socket
//! (`NOTIFY_SOCKET`, where it says `READY=1`), and later the control socket.
//!
//! Why this module exists: the notify sockets used to live in the predictable
//! `/tmp/forkyard-<pid>`, made without checking who owned it, so a local user who created it
//! first received the services' readiness messages (and could send their own); and each
//! socket was root's with mode 0755, so a service running as `nobody` could not send to it
//! and never became ready. Here the directory is fresh (a random name made with `mkdtemp`
//! semantics, inside a base directory checked to be ours), removed when dropped, and each
//! socket is reachable by the service's own user and root only.

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The longest socket path `bind` takes: `sun_path` is 108 bytes with its final NUL.
const SUN_PATH_MAX: usize = 107;

/// Where a notify socket is bound before it gets its owner and mode, then renamed into place:
/// no one but us can reach it there, whatever the process's umask.
const STAGING: &str = ".b";

/// The supervisor's private runtime directory, removed with its contents when dropped.
#[derive(Debug)]
pub struct RuntimeDir {
    dir: tempfile::TempDir,
    /// `.lock` inside it, `flock`ed for as long as we live: how the next `up` tells the
    /// directory of a killed one (which could not remove it) from a live one.
    _lock: fs::File,
    fallback: Option<String>,
    /// Numbers the sockets whose service name cannot be a file name as it is.
    next: AtomicU32,
}

impl RuntimeDir {
    /// Creates a fresh directory in the usual base: `/run/forkyard/` as root,
    /// `$XDG_RUNTIME_DIR/forkyard/` otherwise, or else the system temporary directory
    /// (`$TMPDIR`, `/tmp`). See [`RuntimeDir::create_in`].
    pub fn create() -> io::Result<RuntimeDir> {
        let root = rustix::process::geteuid().is_root();
        match base_for(root, std::env::var_os("XDG_RUNTIME_DIR").as_deref()) {
            Some(base) => RuntimeDir::create_in(&base),
            None => fresh(&std::env::temp_dir(), None),
        }
    }

    /// Creates a fresh directory `up-XXXXXX` inside `base`, making `base` if it is missing
    /// (mode 0711 as root, 0700 otherwise).
    ///
    /// An existing `base` is used only if it is a directory (not a link to one), ours, and
    /// writable by no one else; as root it is made traversable (`o+x`) so that services
    /// running as other users can reach their own sockets. Otherwise the directory is made in
    /// the system temporary directory instead (`mkdtemp` is safe there too), and
    /// [`RuntimeDir::fallback_reason`] says why.
    ///
    /// The directory is 0700, or 0711 as root: other users can reach a socket they are
    /// given inside, but neither list nor create anything.
    pub fn create_in(base: &Path) -> io::Result<RuntimeDir> {
        let root = rustix::process::geteuid().is_root();
        match prepare_base(base, root) {
            Ok(()) => fresh(base, None),
            Err(why) => fresh(&std::env::temp_dir(), Some(why)),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Why the base directory was not used, when the directory had to be made in the system
    /// temporary directory instead (for a warning: the directory is just as private).
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The path of `name` inside the directory (for a socket other than a notify socket);
    /// nothing is created.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// Binds the notify socket of the service `name` at `<dir>/<name>.notify` (a shorter,
    /// numbered name when `name` would not fit in a socket address or is not a plain file
    /// name), nonblocking, mode 0600, owned by `owner` (`(uid, gid)`) when the service runs
    /// as another user: only that user and root can send to it. A file already at that name
    /// (a stale socket) is replaced.
    ///
    /// Returns the socket to read and its path, for the service's `NOTIFY_SOCKET`.
    pub fn notify_socket(&self, name: &str, owner: Option<(u32, u32)>) -> io::Result<(UnixDatagram, PathBuf)> {
        let staging = self.path().join(STAGING);
        let wanted = format!("{name}.notify");
        let file = if is_plain(name) && fits(&staging.join(&wanted)) {
            wanted
        } else {
            // A leading dot: never the name of a service, which `is_plain` requires not to
            // start with one.
            format!(".{}.notify", self.next.fetch_add(1, Ordering::Relaxed))
        };
        let staged = staging.join(&file);
        if !fits(&staged) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the notify socket of {name} cannot be made in {}: its path would be {} bytes, more than the \
                     {SUN_PATH_MAX} a socket address holds; set TMPDIR (or XDG_RUNTIME_DIR) to a shorter directory",
                    self.path().display(),
                    staged.as_os_str().len()
                ),
            ));
        }
        let failed = |what: &str, e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("the notify socket of {name} ({}): {what}: {e}", self.path().join(&file).display()),
            )
        };
        match DirBuilder::new().mode(0o700).create(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(failed("cannot create a directory to prepare it in", e)),
        }
        match fs::remove_file(&staged) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed("cannot remove a stale one", e)),
        }
        let socket = UnixDatagram::bind(&staged).map_err(|e| failed("cannot bind", e))?;
        socket.set_nonblocking(true).map_err(|e| failed("cannot make it nonblocking", e))?;
        fs::set_permissions(&staged, Permissions::from_mode(0o600)).map_err(|e| failed("cannot set its mode", e))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&staged, Some(uid), Some(gid))
                .map_err(|e| failed(&format!("cannot give it to uid {uid} gid {gid}"), e))?;
        }
        let path = self.path().join(&file);
        // Atomic, and replaces a stale socket of the same name.
        fs::rename(&staged, &path).map_err(|e| failed("cannot move it into place", e))?;
        Ok((socket, path))
    }
}

/// The usual base directory: as root `/run/forkyard`, else `$XDG_RUNTIME_DIR/forkyard` when
/// that is set to an absolute path, else none (the system temporary directory is used).
fn base_for(root: bool, xdg_runtime_dir: Option<&OsStr>) -> Option<PathBuf> {
    if root {
        return Some(PathBuf::from("/run/forkyard"));
    }
    let xdg = Path::new(xdg_runtime_dir?);
    xdg.is_absolute().then(|| xdg.join("forkyard"))
}

/// Makes `base` if it is missing, then checks it; the error is why it cannot be used.
///
/// Not guarded against: someone able to write the base's parent could swap the base
/// between this check and the `mkdtemp` inside it. The parents used (`/run`, the user's own
/// `$XDG_RUNTIME_DIR`) are writable by their owner alone.
fn prepare_base(base: &Path, root: bool) -> Result<(), String> {
    let mode = if root { 0o711 } else { 0o700 };
    match DirBuilder::new().mode(mode).create(base) {
        // Exactly that mode, whatever the umask.
        Ok(()) => fs::set_permissions(base, Permissions::from_mode(mode))
            .map_err(|e| format!("{}: cannot set its mode: {e}", base.display()))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", base.display())),
    }
    let meta = fs::symlink_metadata(base).map_err(|e| format!("{}: {e}", base.display()))?;
    let refuse = |why: String| Err(format!("{} {why}", base.display()));
    if meta.file_type().is_symlink() {
        return refuse("is a symbolic link".into());
    }
    if !meta.is_dir() {
        return refuse("is not a directory".into());
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return refuse(format!("is owned by uid {}, not by forkyard's uid {euid}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!("is writable by others (mode {:o})", meta.mode() & 0o7777));
    }
    if root && meta.mode() & 0o011 != 0o011 {
        fs::set_permissions(base, Permissions::from_mode(meta.mode() & 0o7777 | 0o011))
            .map_err(|e| format!("{}: cannot make it traversable: {e}", base.display()))?;
    }
    Ok(())
}

/// The name of the lock file in each runtime directory.
const LOCK: &str = ".lock";

/// Removes the runtime directories in `base` that a killed `up` left: ours, named `up-*`,
/// whose lock nobody holds. A directory without a lock file is left alone (it may be one
/// being made at this moment).
fn sweep_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else { return };
    let euid = rustix::process::geteuid().as_raw();
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry.file_name().as_bytes().starts_with(b"up-")
            && fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == euid);
        if !ours {
            continue;
        }
        let lock = fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path.join(LOCK));
        let Ok(lock) = lock else { continue };
        // Shared, as the cgroup sweep's (tree.rs): it fails only against a live `up`'s
        // exclusive lock, not against another `up` sweeping at the same moment.
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockShared).is_ok() {
            // remove_dir_all does not follow symbolic links found inside.
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// `mkdtemp` in `base`: a new directory of a random name, 0700 (0711 as root), with its lock
/// taken; the stale directories of killed `up`s in `base` are removed first.
fn fresh(base: &Path, fallback: Option<String>) -> io::Result<RuntimeDir> {
    sweep_stale(base);
    let dir = tempfile::Builder::new().prefix("up-").tempdir_in(base).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot create forkyard's runtime directory in {}: {e}; set TMPDIR to a writable directory",
                base.display()
            ),
        )
    })?;
    if rustix::process::geteuid().is_root() {
        fs::set_permissions(dir.path(), Permissions::from_mode(0o711))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: cannot set its mode: {e}", dir.path().display())))?;
    }
    let lock_path = dir.path().join(LOCK);
    let lock = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&lock_path)
        .and_then(|f| {
            rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).map(|()| f).map_err(Into::into)
        })
        .map_err(|e| io::Error::new(e.kind(), format!("{}: cannot create and lock it: {e}", lock_path.display())))?;
    Ok(RuntimeDir { dir, _lock: lock, fallback, next: AtomicU32::new(0) })
}

/// A name that can be used as a file name as it is.
fn is_plain(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\0'])
}

/// Whether `path` fits in a socket address.
fn fits(path: &Path) -> bool {
    path.as_os_str().as_bytes().len() <= SUN_PATH_MAX
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn is_root() -> bool {
        let root = rustix::process::geteuid().is_root();
        if !root {
            eprintln!("skipped: needs root");
        }
        root
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).expect("lstat").mode() & 0o7777
    }

    #[test]
    fn a_fresh_private_directory_removed_on_drop() {
        let base = tempfile::tempdir().expect("tmp");
        let base = base.path().join("forkyard");
        let root = rustix::process::geteuid().is_root();
        let rd = RuntimeDir::create_in(&base).expect("create");
        assert_eq!(rd.fallback_reason(), None);
        assert_eq!(rd.path().parent(), Some(base.as_path()));
        assert!(rd.path().file_name().is_some_and(|n| n.to_string_lossy().starts_with("up-")));
        let meta = fs::symlink_metadata(rd.path()).expect("lstat");
        assert!(meta.is_dir());
        assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());
        assert_eq!(mode(rd.path()), if root { 0o711 } else { 0o700 });
        assert_eq!(mode(&base), if root { 0o711 } else { 0o700 });
        // Fresh each time.
        let other = RuntimeDir::create_in(&base).expect("create");
        assert_ne!(other.path(), rd.path());
        let path = rd.path().to_path_buf();
        rd.notify_socket("web", None).expect("socket");
        drop(rd);
        assert!(!path.exists(), "{} was left behind", path.display());
        assert!(other.path().exists());
    }

    #[test]
    fn the_directory_of_a_killed_up_is_removed_by_the_next_and_a_live_one_is_not() {
        let base = tempfile::tempdir().expect("tmp");
        let base = base.path().join("forkyard");
        let live = RuntimeDir::create_in(&base).expect("create");
        // A killed up's directory: its lock file is there, and nobody holds it.
        let stale = base.join("up-killed");
        fs::create_dir(&stale).expect("mkdir");
        fs::write(stale.join(LOCK), "").expect("lock file");
        fs::write(stale.join("web.notify"), "").expect("a socket's name");
        // One being made right now: no lock file yet.
        let young = base.join("up-young");
        fs::create_dir(&young).expect("mkdir");
        let next = RuntimeDir::create_in(&base).expect("create");
        assert!(!stale.exists(), "the killed up's directory is gone");
        assert!(live.path().exists(), "a live up's directory stays");
        assert!(young.exists(), "a directory without a lock file stays");
        drop((live, next));
    }

    #[test]
    fn a_base_that_is_a_symbolic_link_is_not_used() {
        let tmp = tempfile::tempdir().expect("tmp");
        let real = tmp.path().join("real");
        fs::create_dir(&real).expect("mkdir");
        let base = tmp.path().join("forkyard");
        std::os::unix::fs::symlink(&real, &base).expect("symlink");
        let rd = RuntimeDir::create_in(&base).expect("create");
        let why = rd.fallback_reason().expect("a link was used as the base");
        assert!(why.contains("symbolic link"), "{why}");
        assert_eq!(rd.path().parent(), Some(std::env::temp_dir().as_path()));
        assert_eq!(fs::read_dir(&real).expect("ls").count(), 0, "something was made through the link");
    }

    #[test]
    fn a_base_writable_by_others_is_not_used() {
        let tmp = tempfile::tempdir().expect("tmp");
        let base = tmp.path().join("forkyard");
        fs::create_dir(&base).expect("mkdir");
        fs::set_permissions(&base, Permissions::from_mode(0o777)).expect("chmod");
        let rd = RuntimeDir::create_in(&base).expect("create");
        let why = rd.fallback_reason().expect("a world-writable base was used");
        assert!(why.contains("writable by others (mode 777)"), "{why}");
        assert_eq!(rd.path().parent(), Some(std::env::temp_dir().as_path()));
        assert_eq!(fs::read_dir(&base).expect("ls").count(), 0);
    }

    #[test]
    fn a_base_owned_by_someone_else_is_not_used() {
        if !is_root() {
            return;
        }
        let tmp = tempfile::tempdir().expect("tmp");
        let base = tmp.path().join("forkyard");
        fs::create_dir(&base).expect("mkdir");
        fs::set_permissions(&base, Permissions::from_mode(0o700)).expect("chmod");
        std::os::unix::fs::chown(&base, Some(12345), Some(12345)).expect("chown");
        let rd = RuntimeDir::create_in(&base).expect("create");
        let why = rd.fallback_reason().expect("someone else's base was used");
        assert!(why.contains("owned by uid 12345"), "{why}");
        assert_eq!(fs::read_dir(&base).expect("ls").count(), 0);
    }

    #[test]
    fn the_usual_base() {
        assert_eq!(base_for(true, Some(OsStr::new("/run/user/0"))), Some(PathBuf::from("/run/forkyard")));
        assert_eq!(base_for(false, Some(OsStr::new("/run/user/1000"))), Some(PathBuf::from("/run/user/1000/forkyard")));
        assert_eq!(base_for(false, Some(OsStr::new("relative"))), None);
        assert_eq!(base_for(false, None), None);
    }

    #[test]
    fn a_notify_socket_receives_and_does_not_block() {
        let tmp = tempfile::tempdir().expect("tmp");
        let rd = RuntimeDir::create_in(&tmp.path().join("f")).expect("create");
        let (socket, path) = rd.notify_socket("web", None).expect("socket");
        assert_eq!(path, rd.path().join("web.notify"));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(socket.recv(&mut [0u8; 16]).map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));
        UnixDatagram::unbound().expect("client").send_to(b"READY=1", &path).expect("send");
        let mut buf = [0u8; 64];
        let n = socket.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");
        // Again for the same service (a restart): the stale socket is replaced.
        let (again, path2) = rd.notify_socket("web", None).expect("socket again");
        assert_eq!(path2, path);
        UnixDatagram::unbound().expect("client").send_to(b"READY=1", &path).expect("send");
        assert!(again.recv(&mut buf).is_ok());
        assert_eq!(socket.recv(&mut buf).map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));
    }

    #[test]
    fn odd_or_long_names_get_short_paths_inside_the_directory() {
        let tmp = tempfile::tempdir().expect("tmp");
        let rd = RuntimeDir::create_in(&tmp.path().join("f")).expect("create");
        for name in ["x".repeat(200), "../escape".to_string(), ".hidden".to_string(), String::new()] {
            let (_socket, path) = rd.notify_socket(&name, None).expect("socket");
            assert_eq!(path.parent(), Some(rd.path()), "{name:?}");
            assert!(fits(&path), "{}", path.display());
            assert!(path.exists());
        }
        assert!(!rd.path().parent().expect("base").join("escape.notify").exists());
    }

    #[test]
    fn a_directory_too_deep_for_a_socket_fails_clearly() {
        let tmp = tempfile::tempdir().expect("tmp");
        let base = tmp.path().join("d".repeat(120));
        let rd = RuntimeDir::create_in(&base).expect("create");
        let e = rd.notify_socket("web", None).expect_err("bound beyond sun_path");
        assert!(e.to_string().contains("set TMPDIR"), "{e}");
    }

    /// Runs python3 as `uid` to send `READY=1` to `path`; `Some(true)` if sent, `Some(false)`
    /// on EACCES, `None` if python3 cannot be run.
    fn send_as(uid: u32, path: &Path) -> Option<bool> {
        use std::os::unix::process::CommandExt;
        const SCRIPT: &str = "import socket, sys\n\
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
            try:\n    s.sendto(b'READY=1', sys.argv[1])\n\
            except PermissionError:\n    sys.exit(13)\n";
        let python = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let status = Command::new(python)
            .args(["-I", "-c", SCRIPT])
            .arg(path)
            .uid(uid)
            .gid(uid)
            .env_clear()
            .current_dir("/")
            .status()
            .ok()?;
        match status.code() {
            Some(0) => Some(true),
            Some(13) => Some(false),
            _ => panic!("python3 as uid {uid}: {status}"),
        }
    }

    #[test]
    fn only_the_service_user_can_send_to_its_socket() {
        if !is_root() {
            return;
        }
        // An existing private base (as /run/forkyard might be left by hand): it is made
        // traversable for the service's user.
        let base = tempfile::tempdir().expect("tmp");
        fs::set_permissions(base.path(), Permissions::from_mode(0o700)).expect("chmod");
        let rd = RuntimeDir::create_in(base.path()).expect("create");
        assert_eq!(rd.fallback_reason(), None);
        assert_eq!(mode(base.path()), 0o711);
        let (socket, path) = rd.notify_socket("web", Some((65534, 65534))).expect("socket");
        let meta = fs::symlink_metadata(&path).expect("lstat");
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (65534, 65534, 0o600));
        let Some(sent) = send_as(65534, &path) else {
            eprintln!("skipped: no python3 to send as another user");
            return;
        };
        assert!(sent, "nobody could not send to its own socket");
        let mut buf = [0u8; 64];
        let n = socket.recv(&mut buf).expect("READY=1 did not arrive");
        assert_eq!(&buf[..n], b"READY=1");
        assert_eq!(send_as(12345, &path), Some(false), "another user could send");
        assert_eq!(socket.recv(&mut buf).map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));
    }
}
