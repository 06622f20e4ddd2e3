//! Stopping a service means stopping everything it started.
//!
//! Why this module exists: a service `sh -c 'sleep A & sleep B; wait'` stopped by signalling
//! its main process leaves both sleeps running (supervisord with defaults, runit, s6 and
//! Horust all do). Signalling its process group is better but misses a grandchild that
//! called `setsid` or daemonized. Where the kernel lets us, each unit gets its own cgroup
//! (v2): every process it starts stays inside, whatever it does to its group or session, and
//! `cgroup.kill` ends them all at once. Elsewhere (no writable cgroup2, as in many
//! containers) the fallback is the unit's process group plus every descendant of its main
//! process found in `/proc`; whatever escapes both is re-parented to the supervisor (a
//! subreaper) and killed when `up` exits.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use forkyard::procs::{ScanOptions, Snapshot};
use forkyard::{Pid, Signal};

/// The supervisor's private cgroup subtree: `<cgroup2 mount><own cgroup>/forkyard-<pid>`.
#[derive(Debug)]
pub struct Cgroups {
    root: PathBuf,
    /// The root directory, open and `flock`ed for as long as we live: how another `up`
    /// tells a live subtree from one a killed `up` left behind (PIDs cannot tell: an `up`
    /// in a PID namespace is PID 1 there, and its name says `forkyard-1`).
    _lock: std::fs::File,
}

/// Where cgroup2 is mounted and which cgroup this process is in, from /proc.
fn own_cgroup_dir() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right.starts_with("cgroup2 ").then(|| left.split(' ').nth(4).map(str::to_string)).flatten()
    })?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(Path::new(&mount).join(path.trim_start_matches('/')))
}

impl Cgroups {
    /// Creates the subtree, or `None` where cgroup2 is missing or not writable by us (or
    /// `FORKYARD_CGROUPS=0` asks for the fallback).
    pub fn create() -> Option<Cgroups> {
        if std::env::var_os("FORKYARD_CGROUPS").is_some_and(|v| v == "0") {
            return None;
        }
        let parent = own_cgroup_dir()?;
        remove_stale(&parent);
        let me = Pid::this();
        let mut made = None;
        for n in 0..100 {
            let root = parent.join(if n == 0 { format!("forkyard-{me}") } else { format!("forkyard-{me}.{n}") });
            match std::fs::create_dir(&root) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(_) => return None,
            }
            let Some(lock) = lock_dir(&root) else { continue };
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
        Some(cg)
    }

    /// The cgroup of one unit (created if needed), ready for its processes to start in.
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

/// Opens `dir` and takes its `flock`; `None` if that fails or someone else holds it.
fn lock_dir(dir: &Path) -> Option<std::fs::File> {
    let file = std::fs::File::open(dir).ok()?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    (unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0).then_some(file)
}

/// Removes the subtrees that a `forkyard up` killed with SIGKILL (which cannot clean up)
/// left in `parent`: those whose lock nobody holds. Only empty cgroups can be removed, so a
/// process still running there keeps its cgroup.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with("forkyard-") {
            continue;
        }
        let Some(_lock) = lock_dir(&e.path()) else { continue };
        remove_subtree(&e.path());
    }
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

/// One unit's cgroup.
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
    pub fn dir_fd(&self) -> RawFd {
        self.handle.as_raw_fd()
    }

    /// The processes in it now.
    pub fn pids(&self) -> Vec<Pid> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok().and_then(Pid::new))
            .collect()
    }

    /// Sends `signal` to every process in it; SIGKILL goes through `cgroup.kill` where the
    /// kernel has it (5.14+), which also catches processes forking at that moment.
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

/// The fallback: sends `signal` to the process group that `main` leads and to every
/// descendant of `main` found in /proc (which catches those that left the group). Returns
/// how many.
pub fn signal_tree(main: Pid, signal: Signal) -> usize {
    let pgid = main;
    let mut n = usize::from(signal.send_group(pgid).is_ok());
    if let Ok(snap) = Snapshot::take_with(ScanOptions { cmdline: false, threads: 1 }) {
        for p in snap.tree(main).iter().skip(1).map(|e| e.process) {
            if p.pgid != pgid.as_raw() && !p.is_zombie() && signal.send(p.pid).is_ok() {
                n += 1;
            }
        }
    }
    n
}
