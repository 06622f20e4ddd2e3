//! Stopping a service means stopping everything it started.
//!
//! Why this module exists: a service `sh -c 'sleep A & sleep B; wait'` stopped by signalling
//! its main process leaves both sleeps running (supervisord with defaults, runit, s6 and
//! Horust all do). Signalling its process group is better but misses a grandchild that
//! called `setsid` or daemonized. Where the kernel lets us, each run of a unit gets its own
//! cgroup (v2): every process it starts stays inside, whatever it does to its group or
//! session, and `cgroup.kill` ends them all at once.
//!
//! Elsewhere (no writable cgroup2, as in many containers, or `FORKYARD_CGROUPS=0`) the
//! fallback finds the tree in `/proc` *before* signalling anything (signalling the group
//! first would re-parent the escapees to the supervisor before the scan): the main process's
//! descendants, plus the supervisor's own adopted children that carry the unit's name in the
//! `FORKYARD_SERVICE` variable of their environment (a daemon's parent has exited, so only
//! that says whose it is), then the process group.
//!
//! The cgroup subtree of an `up` is named after its configuration and locked (`flock`) for
//! as long as it lives, so that the next `up` of the same configuration can tell that one was
//! killed (`kill -9`, the OOM killer) and kill what it left behind before starting anything.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use forkyard::procs::{ScanOptions, Snapshot};
use forkyard::{Pid, Signal};
use rustix::fs::FlockOperation;

/// The variable that names a process's unit in its environment (inherited by everything the
/// unit starts, unless it clears its environment).
pub const UNIT_VARIABLE: &str = "FORKYARD_SERVICE";

/// The supervisor's private cgroup subtree: `<own cgroup>/forkyard-<key>-<pid>`.
#[derive(Debug)]
pub struct Cgroups {
    root: PathBuf,
    /// The root directory, open and `flock`ed for as long as we live: how another `up`
    /// tells a live subtree from one a killed `up` left behind (PIDs cannot tell: an `up`
    /// in a PID namespace is PID 1 there).
    _lock: std::fs::File,
}

/// What a killed `up` of the same configuration had left running, and was killed now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    /// The stale subtree.
    pub cgroup: PathBuf,
    /// How many processes were in it.
    pub processes: usize,
}

/// A short, stable name for a configuration file (FNV-1a of its absolute path, in hex): the
/// same file gives the same key in every run, which is how a run finds its predecessor's
/// leftovers. Written out rather than taken from `std::hash`, whose algorithm may change
/// between Rust releases.
pub fn config_key(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in absolute.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

impl Cgroups {
    /// Creates the subtree for the configuration `key`, or `None` where cgroup2 is missing
    /// or not writable by us (or `FORKYARD_CGROUPS=0` asks for the fallback). First kills
    /// and removes what a killed `up` of the same configuration left (returned), and removes
    /// the empty leftovers of others.
    pub fn create(key: &str) -> Option<(Cgroups, Vec<Leftover>)> {
        if std::env::var_os("FORKYARD_CGROUPS").is_some_and(|v| v == "0") {
            return None;
        }
        let parent = forkyard::procs::own_cgroup()?;
        let leftovers = sweep_stale(&parent, key);
        let me = Pid::this();
        let mut made = None;
        for n in 0..100 {
            let name = if n == 0 { format!("forkyard-{key}-{me}") } else { format!("forkyard-{key}-{me}.{n}") };
            let root = parent.join(name);
            match std::fs::create_dir(&root) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(_) => return None,
            }
            let Some(lock) = lock_dir(&root, FlockOperation::NonBlockingLockExclusive) else { continue };
            // Another up's stale sweep may have removed it between mkdir and flock.
            if root.is_dir() {
                made = Some(Cgroups { root, _lock: lock });
                break;
            }
        }
        let cg = made?;
        // A cgroup we cannot put processes in is no use: try with a probe directory.
        let probe = cg.unit("probe").ok()?;
        drop(std::fs::OpenOptions::new().write(true).open(probe.dir.join("cgroup.procs")).ok()?);
        drop(probe);
        let _ = std::fs::remove_dir(cg.root.join("probe"));
        Some((cg, leftovers))
    }

    /// The subtree's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cgroup of one run of a unit (created if needed), ready for its processes to start
    /// in.
    pub fn unit(&self, name: &str) -> io::Result<UnitCgroup> {
        let dir = self.root.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        // The directory itself: clone3 starts a child in the cgroup it names.
        let handle = std::fs::File::open(&dir)?;
        Ok(UnitCgroup { dir, handle: OwnedFd::from(handle) })
    }
}

/// Opens `dir` and takes its `flock` (`how`, never waiting); `None` if that fails or the lock
/// is held in a way that excludes it.
fn lock_dir(dir: &Path, how: FlockOperation) -> Option<std::fs::File> {
    let file = std::fs::File::open(dir).ok()?;
    rustix::fs::flock(&file, how).ok()?;
    Some(file)
}

/// Deals with the subtrees in `parent` whose `up` is gone (nobody holds their lock): those of
/// configuration `key` are killed and removed (and reported), the others removed if empty.
fn sweep_stale(parent: &Path, key: &str) -> Vec<Leftover> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(parent) else { return found };
    let ours = format!("forkyard-{key}-");
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !is_subtree_name(&name) || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // A shared lock: it fails only against the exclusive one a live `up` holds, not
        // against the sweep of another `up` starting at the same moment (every `up` sweeps
        // the whole parent). With an exclusive one here, an `up` that met another's sweep on
        // its killed predecessor's subtree took that subtree for alive and left what was in
        // it running (seen: the_next_up_kills_what_a_killed_up_left failed so 1 run in 15 of
        // the suite).
        let Some(_lock) = lock_dir(&e.path(), FlockOperation::NonBlockingLockShared) else { continue };
        if name.starts_with(&ours) {
            let processes = kill_subtree(&e.path());
            if processes > 0 {
                found.push(Leftover { cgroup: e.path(), processes });
            }
        }
        remove_subtree(&e.path());
    }
    found
}

/// Whether `name` is one an `up` gives its subtree: `forkyard-<16 hex digits>-<pid>`, maybe
/// followed by `.<n>`. Anything else beside it (a cgroup of the user's own, a test's) is not
/// ours to remove, even if its name starts with `forkyard-`.
fn is_subtree_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("forkyard-") else { return false };
    let Some((key, pid)) = rest.split_once('-') else { return false };
    let (pid, n) = pid.split_once('.').unwrap_or((pid, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit()) && digits(pid) && digits(n)
}

/// The processes in a subtree root and its unit cgroups.
fn subtree_pids(root: &Path) -> Vec<Pid> {
    let mut pids = read_pids(&root.join("cgroup.procs"));
    if let Ok(units) = std::fs::read_dir(root) {
        for u in units.flatten() {
            if u.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(read_pids(&u.path().join("cgroup.procs")));
            }
        }
    }
    pids
}

fn read_pids(procs: &Path) -> Vec<Pid> {
    std::fs::read_to_string(procs)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok().and_then(Pid::new))
        .collect()
}

/// SIGKILLs everything in a stale subtree and waits (a little) for it to empty; returns how
/// many processes there were.
fn kill_subtree(root: &Path) -> usize {
    let pids = subtree_pids(root);
    if pids.is_empty() {
        return 0;
    }
    let killed =
        std::fs::OpenOptions::new().write(true).open(root.join("cgroup.kill")).and_then(|mut f| f.write_all(b"1"));
    if killed.is_err() {
        for pid in &pids {
            let _ = Signal::KILL.send(*pid);
        }
    }
    // They are not our children (their parent was the killed up), so we cannot wait for
    // them; they leave the cgroup as the kernel tears them down, within milliseconds.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !subtree_pids(root).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    pids.len()
}

/// Removes a subtree root and its unit cgroups, as far as they are empty.
fn remove_subtree(root: &Path) {
    if let Ok(units) = std::fs::read_dir(root) {
        for u in units.flatten() {
            if u.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = std::fs::remove_dir(u.path());
            }
        }
    }
    let _ = std::fs::remove_dir(root);
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        remove_subtree(&self.root);
    }
}

/// One run's cgroup.
#[derive(Debug)]
pub struct UnitCgroup {
    dir: PathBuf,
    handle: OwnedFd,
}

impl UnitCgroup {
    /// Removes the cgroup if it is empty; says whether it is gone.
    pub fn remove(&self) -> bool {
        match std::fs::remove_dir(&self.dir) {
            Ok(()) => true,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }

    /// The open directory, for [`forkyard::spawn::Launch::cgroup`].
    pub fn dir_fd(&self) -> BorrowedFd<'_> {
        self.handle.as_fd()
    }

    /// The processes in it now.
    pub fn pids(&self) -> Vec<Pid> {
        read_pids(&self.dir.join("cgroup.procs"))
    }

    /// Its directory in the cgroup filesystem.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// SIGKILL to everything in it, through `cgroup.kill` (Linux 5.14+), else one by one.
    pub fn kill(&self) {
        let written = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.kill"))
            .and_then(|mut f| f.write_all(b"1"));
        if written.is_err() {
            for pid in self.pids() {
                let _ = Signal::KILL.send(pid);
            }
        }
    }

    /// Sends `signal` to every process in it; SIGKILL goes through `cgroup.kill` where the
    /// kernel has it (5.14+), which also catches processes forking at that moment. Returns
    /// how many processes were signalled.
    pub fn signal(&self, signal: Signal) -> usize {
        let pids = self.pids();
        if signal == Signal::KILL {
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(self.dir.join("cgroup.kill")) {
                if f.write_all(b"1").is_ok() {
                    return pids.len();
                }
            }
        }
        pids.iter().filter(|p| signal.send(**p).is_ok()).count()
    }
}

/// The fallback without cgroups: sends `signal` once to every process of a unit's tree, found
/// before anything is signalled: the descendants of `main` (if it still runs), the
/// supervisor's adopted children (and their descendants) whose environment names `unit`,
/// and then the process group `group` that the unit's main process led. Returns how many
/// processes (the group counting as one).
pub fn signal_fallback(main: Option<Pid>, group: Option<Pid>, unit: &str, signal: Signal) -> usize {
    let me = Pid::this();
    let mut targets: Vec<Pid> = Vec::new();
    if let Ok(snap) = Snapshot::take_with(ScanOptions { cmdline: false, threads: 1 }) {
        if let Some(main) = main {
            if snap.get(main).is_some_and(|p| !p.is_zombie()) {
                targets.push(main);
            }
            targets.extend(snap.descendants(main).iter().filter(|p| !p.is_zombie()).map(|p| p.pid));
        }
        for child in snap.children(me) {
            if child.is_zombie() || Some(child.pid) == main {
                continue;
            }
            let named = forkyard::procs::environ_var(child.pid, UNIT_VARIABLE).ok().flatten();
            if named.is_some_and(|v| v == unit) {
                targets.push(child.pid);
                targets.extend(snap.descendants(child.pid).iter().filter(|p| !p.is_zombie()).map(|p| p.pid));
            }
        }
        // Members of the group get the group's signal below: once each.
        if let Some(group) = group {
            targets.retain(|pid| snap.get(*pid).is_none_or(|p| p.pgid != group.as_raw()));
        }
    }
    targets.sort_unstable();
    targets.dedup();
    let mut n = targets.iter().filter(|pid| signal.send(**pid).is_ok()).count();
    if let Some(group) = group {
        n += usize::from(signal.send_group(group).is_ok());
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_ups_own_subtree_names_are_swept() {
        assert!(is_subtree_name("forkyard-bcc00031cb6f03f6-10968"));
        assert!(is_subtree_name("forkyard-bcc00031cb6f03f6-10968.2"));
        for other in [
            "forkyard-setxid-test-4242",
            "forkyard-bcc00031cb6f03f6-",
            "forkyard-bcc00031cb6f03f6-12x",
            "forkyard-bcc00031cb6f03f6-1.",
            "forkyard-bcc0-1",
            "forkyard-",
            "my-app",
        ] {
            assert!(!is_subtree_name(other), "{other}");
        }
    }

    #[test]
    fn the_key_is_stable_and_tells_files_apart() {
        assert_eq!(config_key(Path::new("/srv/app/forkyard.toml")), config_key(Path::new("/srv/app/forkyard.toml")));
        assert_ne!(config_key(Path::new("/srv/app/forkyard.toml")), config_key(Path::new("/srv/other/forkyard.toml")));
        assert_eq!(config_key(Path::new("/x")).len(), 16);
    }
}
