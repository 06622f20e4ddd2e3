//! A view of processes from `/proc`: states, parents, zombies, trees, and the routines that
//! act on what it finds (signal every descendant, list open descriptors).
//!
//! Why this module exists: the seed *shows* its claims with `ps ax` (a child marked `Z+` and
//! `<defunct>`, an orphan re-parented to PID 1). forkyard turns those observations into
//! data: the tests assert a child's state is `Z` until reaped, and `forkyard ps` prints the
//! same snapshot as a table. A process that ends while we scan is skipped, not an error:
//! on a live system that is the normal case. The init and the supervisor both end by
//! signalling everything below them, which only `/proc` can list; that walk lives here once.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::time::{Duration, SystemTime};

use procfs::ProcError;
use procfs::process::Process as ProcfsProcess;

use crate::error::{Error, Result};
use crate::pid::Pid;
use crate::signal::{Signal, SignalSet};

/// The scheduler state of a process, as the letter in `/proc/PID/stat` and `ps` shows it.
///
/// ```
/// use forkyard::Pid;
/// use forkyard::procs::{State, state};
///
/// assert_eq!(state(Pid::this())?, Some(State::Running)); // reading its own stat, it runs
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum State {
    /// `R`: running or runnable.
    Running,
    /// `S`: sleeping, interruptible.
    Sleeping,
    /// `D`: sleeping, uninterruptible (usually I/O).
    DiskSleep,
    /// `Z`: ended, waiting for its parent to collect it.
    Zombie,
    /// `T`: stopped by a signal.
    Stopped,
    /// `t`: stopped by a debugger.
    TracingStop,
    /// `X`: being removed.
    Dead,
    /// `I`: an idle kernel thread.
    Idle,
    /// Any other letter (`P`, `K`, `W` on old kernels).
    Other(char),
}

impl State {
    /// The state for a `/proc` letter.
    ///
    /// ```
    /// use forkyard::procs::State;
    ///
    /// assert_eq!(State::from_char('Z'), State::Zombie);
    /// assert_eq!(State::from_char('W'), State::Other('W')); // paging, on kernels before 2.6
    /// ```
    pub fn from_char(c: char) -> State {
        match c {
            'R' => State::Running,
            'S' => State::Sleeping,
            'D' => State::DiskSleep,
            'Z' => State::Zombie,
            'T' => State::Stopped,
            't' => State::TracingStop,
            'X' | 'x' => State::Dead,
            'I' => State::Idle,
            other => State::Other(other),
        }
    }

    /// The letter `ps` prints.
    ///
    /// ```
    /// use forkyard::procs::State;
    ///
    /// assert_eq!(State::Sleeping.as_char(), 'S');
    /// assert_eq!(State::Zombie.to_string(), "Z"); // Display prints the letter too
    /// ```
    pub fn as_char(self) -> char {
        match self {
            State::Running => 'R',
            State::Sleeping => 'S',
            State::DiskSleep => 'D',
            State::Zombie => 'Z',
            State::Stopped => 'T',
            State::TracingStop => 't',
            State::Dead => 'X',
            State::Idle => 'I',
            State::Other(c) => c,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

impl serde::Serialize for State {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_char(self.as_char())
    }
}

/// One process, as read from `/proc/PID/stat`, its owner and its command line.
///
/// ```
/// use forkyard::Pid;
/// use forkyard::procs::Process;
///
/// let me = Process::read(Pid::this())?.expect("this process exists");
/// assert_eq!(me.ppid, Some(Pid::parent()));
/// assert!(!me.is_zombie());
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Debug, serde::Serialize)]
pub struct Process {
    /// Its PID.
    pub pid: Pid,
    /// Its parent's PID; `None` for PID 1 and kernel threads' parent (0 in `/proc`).
    pub ppid: Option<Pid>,
    /// Its process group.
    pub pgid: i32,
    /// Its session.
    pub sid: i32,
    /// Its state.
    pub state: State,
    /// The command name (`comm`, at most 15 bytes, kept by the kernel even for zombies).
    pub comm: String,
    /// The arguments it was started with; empty for zombies and kernel threads.
    pub cmdline: Vec<String>,
    /// The real user ID that owns it.
    pub uid: u32,
    /// The controlling terminal's device number (0 for none).
    pub tty_nr: i32,
    /// When it started, in clock ticks after boot.
    pub start_ticks: u64,
    /// CPU time it has used (user + system), in clock ticks.
    pub cpu_ticks: u64,
    /// Its thread count.
    pub threads: i64,
    /// Its resident set size, in pages.
    pub rss_pages: u64,
}

impl Process {
    /// Reads one process; `Ok(None)` if it does not exist (or vanished while being read).
    ///
    /// ```
    /// use forkyard::Pid;
    /// use forkyard::procs::Process;
    ///
    /// let me = Process::read(Pid::this())?.expect("we exist");
    /// assert_eq!(me.pid, Pid::this());
    /// assert!(me.threads >= 1);
    /// assert!(Process::read(Pid::new(i32::MAX).expect("positive"))?.is_none()); // no such process
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn read(pid: Pid) -> Result<Option<Process>> {
        let proc = match ProcfsProcess::new(pid.as_raw()) {
            Ok(p) => p,
            Err(e) if vanished(&e) => return Ok(None),
            Err(e) => return Err(proc_error(format!("/proc/{pid}"), e)),
        };
        read_one(&proc, true)
    }

    /// The command as `ps` shows it: the arguments joined by spaces, or `[comm]` when there
    /// are none (kernel threads, zombies).
    ///
    /// ```
    /// use forkyard::{Launch, Pid};
    /// use forkyard::procs::Process;
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["sleep", "60"]))?;
    /// let sleeper = Process::read(child.pid())?.expect("running");
    /// assert_eq!(sleeper.command(), "sleep 60");
    /// child.kill(forkyard::Signal::KILL)?;
    /// child.wait()?;
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn command(&self) -> String {
        if self.cmdline.is_empty() { format!("[{}]", self.comm) } else { self.cmdline.join(" ") }
    }

    /// Whether it is a zombie.
    ///
    /// ```
    /// use forkyard::Launch;
    /// use forkyard::procs::{Process, State, state};
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["true"]))?;
    /// while state(child.pid())? != Some(State::Zombie) {
    ///     std::thread::yield_now(); // it ends, and waits for us to collect it
    /// }
    /// assert!(Process::read(child.pid())?.expect("still listed").is_zombie());
    /// child.wait()?; // gone from /proc now
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn is_zombie(&self) -> bool {
        self.state == State::Zombie
    }

    /// CPU time used.
    ///
    /// ```
    /// use forkyard::Pid;
    /// use forkyard::procs::Process;
    ///
    /// // Reading /proc costs CPU: loop until the kernel has counted a tick of it.
    /// let mut me = Process::read(Pid::this())?.expect("we exist");
    /// while me.cpu_time().is_zero() {
    ///     me = Process::read(Pid::this())?.expect("we exist");
    /// }
    /// assert!(me.cpu_time() >= std::time::Duration::from_millis(1));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn cpu_time(&self) -> Duration {
        Duration::from_secs_f64(self.cpu_ticks as f64 / procfs::ticks_per_second() as f64)
    }

    /// When it started, given the boot time from [`boot_time`].
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use forkyard::Pid;
    /// use forkyard::procs::{Process, boot_time};
    ///
    /// let me = Process::read(Pid::this())?.expect("we exist");
    /// let started = me.started_at(boot_time()?);
    /// assert!(started <= SystemTime::now());
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn started_at(&self, boot: SystemTime) -> SystemTime {
        boot + Duration::from_secs_f64(self.start_ticks as f64 / procfs::ticks_per_second() as f64)
    }
}

/// When the machine booted (the `btime` line of `/proc/stat`).
///
/// ```
/// use std::time::SystemTime;
///
/// let booted = forkyard::procs::boot_time()?;
/// assert!(booted < SystemTime::now() && booted > SystemTime::UNIX_EPOCH);
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn boot_time() -> Result<SystemTime> {
    let secs = procfs::boot_time_secs().map_err(|e| proc_error("/proc/stat".into(), e))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// The state of one process, reading only `/proc/PID/stat`; `Ok(None)` once it is gone
/// (reaped, or never existed).
///
/// ```
/// use forkyard::{Launch, Signal};
/// use forkyard::procs::{State, state};
/// use forkyard::spawn::Program;
///
/// let mut child = Launch::new().start(Program::new(["sleep", "60"]))?;
/// child.kill(Signal::STOP)?;
/// while state(child.pid())? != Some(State::Stopped) {
///     std::thread::yield_now();
/// }
/// child.kill(Signal::KILL)?;
/// child.wait()?;
/// assert_eq!(state(child.pid())?, None); // collected: gone
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn state(pid: Pid) -> Result<Option<State>> {
    let text = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => text,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) => {
            return Ok(None);
        }
        Err(e) => return Err(Error::sys("read", format!("/proc/{pid}/stat"), e)),
    };
    // The command name is in parentheses and may itself contain ") "; the state follows the
    // last ')'.
    let state = text.rfind(')').and_then(|i| text[i + 1..].trim_start().chars().next()).ok_or_else(|| Error::Proc {
        on: format!("/proc/{pid}/stat"),
        reason: "no state after the command name".into(),
    })?;
    Ok(Some(State::from_char(state)))
}

/// CPU time and resident memory of one process.
///
/// ```
/// use forkyard::{Pid, procs};
///
/// let usage: procs::Usage = procs::usage(Pid::this())?.expect("we exist");
/// println!("{:?} of CPU, {} bytes resident", usage.cpu, usage.resident_bytes);
/// assert!(usage.resident_bytes >= 4096);
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used (user + system).
    pub cpu: Duration,
    /// Resident set size, in bytes.
    pub resident_bytes: u64,
}

/// CPU time and resident memory of one process, from `/proc/PID/stat` alone (one read: no
/// command line, no owner, which a monitor asking often does not need); `Ok(None)` once it
/// is gone.
///
/// ```
/// use forkyard::{Pid, procs};
/// let me = procs::usage(Pid::this())?.expect("we exist");
/// assert!(me.resident_bytes > 0);
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn usage(pid: Pid) -> Result<Option<Usage>> {
    let path = format!("/proc/{pid}/stat");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) => return Ok(None),
        Err(e) => return Err(Error::sys("read", path, e)),
    };
    let bad = |what: &str| Error::Proc { on: format!("/proc/{pid}/stat"), reason: format!("no {what} field") };
    // Fields after the command name (which may contain spaces and ')'), from `state`.
    let rest: Vec<&str> = text.rfind(')').map(|i| text[i + 1..].split_whitespace().collect()).unwrap_or_default();
    let field = |n: usize, what: &str| rest.get(n).and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| bad(what));
    let ticks = field(11, "utime")? + field(12, "stime")?;
    let pages = field(21, "rss")?;
    // SAFETY: sysconf has no preconditions; it reads a constant of the system.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    Ok(Some(Usage {
        cpu: Duration::from_secs_f64(ticks as f64 / procfs::ticks_per_second() as f64),
        resident_bytes: pages.saturating_mul(page),
    }))
}

/// The value of variable `name` in the environment a process started with (its
/// `/proc/PID/environ`: what it was given at `exec`, not later changes); `Ok(None)` when the
/// process is gone or does not have it. Reading another user's needs privilege.
///
/// ```
/// use forkyard::{Pid, procs};
/// // SAFETY: the variable is set before any thread is started.
/// unsafe { std::env::set_var("FORKYARD_DOC_EXAMPLE", "yes") };
/// // Our own environ is what we started with: a variable set since is not in it.
/// assert_eq!(procs::environ_var(Pid::this(), "FORKYARD_DOC_EXAMPLE")?, None);
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn environ_var(pid: Pid, name: &str) -> Result<Option<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let path = format!("/proc/{pid}/environ");
    let raw = match std::fs::read(&path) {
        Ok(raw) => raw,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) => return Ok(None),
        Err(e) => return Err(Error::sys("read", path, e)),
    };
    let name = name.as_bytes();
    Ok(raw.split(|&b| b == 0).find_map(|entry| {
        let value = entry.strip_prefix(name)?.strip_prefix(b"=")?;
        Some(std::ffi::OsStr::from_bytes(value).to_os_string())
    }))
}

/// The directory of this process's cgroup (v2) in the cgroup filesystem, from
/// `/proc/self/mountinfo` and `/proc/self/cgroup`; `None` where cgroup2 is not mounted (or
/// only v1 is).
///
/// ```
/// if let Some(dir) = forkyard::procs::own_cgroup() {
///     assert!(dir.join("cgroup.procs").exists());
/// }
/// ```
pub fn own_cgroup() -> Option<std::path::PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right.starts_with("cgroup2 ").then(|| left.split(' ').nth(4).map(str::to_string)).flatten()
    })?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(std::path::Path::new(&mount).join(path.trim_start_matches('/')))
}

/// Whether an error means "the process is gone", which a scan treats as "skip it".
fn vanished(e: &ProcError) -> bool {
    match e {
        ProcError::NotFound(_) | ProcError::Incomplete(_) => true,
        ProcError::Io(io, _) => matches!(io.raw_os_error(), Some(libc::ESRCH) | Some(libc::ENOENT)),
        _ => false,
    }
}

fn proc_error(on: String, e: ProcError) -> Error {
    Error::Proc { on, reason: e.to_string() }
}

fn read_one(proc: &ProcfsProcess, with_cmdline: bool) -> Result<Option<Process>> {
    let stat = match proc.stat() {
        Ok(s) => s,
        Err(e) if vanished(&e) => return Ok(None),
        Err(e) => return Err(proc_error(format!("/proc/{}/stat", proc.pid), e)),
    };
    let uid = match proc.uid() {
        Ok(uid) => uid,
        Err(e) if vanished(&e) => return Ok(None),
        Err(e) => return Err(proc_error(format!("/proc/{}", proc.pid), e)),
    };
    let cmdline = if with_cmdline && stat.state != 'Z' { read_cmdline(proc) } else { Vec::new() };
    let Some(pid) = Pid::new(stat.pid) else {
        return Ok(None);
    };
    Ok(Some(Process {
        pid,
        ppid: Pid::new(stat.ppid),
        pgid: stat.pgrp,
        sid: stat.session,
        state: State::from_char(stat.state),
        comm: stat.comm,
        cmdline,
        uid,
        tty_nr: stat.tty_nr,
        start_ticks: stat.starttime,
        cpu_ticks: stat.utime + stat.stime,
        threads: stat.num_threads,
        rss_pages: stat.rss,
    }))
}

/// The arguments, read as bytes (they need not be UTF-8) and split on NUL. A process that
/// vanished or hides its arguments gets none.
fn read_cmdline(proc: &ProcfsProcess) -> Vec<String> {
    let mut raw = Vec::new();
    let Ok(mut file) = proc.open_relative("cmdline") else {
        return Vec::new();
    };
    if file.read_to_end(&mut raw).is_err() {
        return Vec::new();
    }
    raw.split(|&b| b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

/// The numeric entries of `/proc`: every process (in our PID namespace) at this moment.
fn list_pids() -> Result<Vec<i32>> {
    let dir = std::fs::read_dir("/proc").map_err(|e| Error::sys("opendir", "/proc", e))?;
    Ok(dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()).collect())
}

/// Reads these processes, skipping any that vanished (or that we may not read in full:
/// hidepid, races we did not foresee) rather than failing the whole snapshot.
fn scan(pids: &[i32], cmdline: bool) -> Vec<Process> {
    pids.iter()
        .filter_map(|&pid| {
            let proc = ProcfsProcess::new(pid).ok()?;
            read_one(&proc, cmdline).ok().flatten()
        })
        .collect()
}

/// What a [`Snapshot`] reads for each process, and how.
///
/// ```
/// use forkyard::procs::{ScanOptions, Snapshot};
///
/// // States only, no command lines: cheaper, enough to count zombies.
/// let snap = Snapshot::take_with(ScanOptions { cmdline: false, ..ScanOptions::default() })?;
/// println!("{} zombies", snap.zombies().count());
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ScanOptions {
    /// Read each command line (one more file per process).
    pub cmdline: bool,
    /// Scan with this many threads (1: on the calling thread only). More threads finish a
    /// large scan sooner, but they exist for its duration: a program that forks right after
    /// a snapshot (and checks it is single-threaded, as [`crate::run_in_child`] does) should
    /// keep 1.
    pub threads: usize,
}

impl Default for ScanOptions {
    fn default() -> ScanOptions {
        ScanOptions { cmdline: true, threads: 1 }
    }
}

/// Every process at (nearly) one moment, indexed by PID and by parent.
///
/// ```
/// use forkyard::Pid;
/// use forkyard::procs::Snapshot;
///
/// let snap = Snapshot::take()?;
/// let me = snap.get(Pid::this()).expect("this process is listed");
/// assert_eq!(me.pid, Pid::this());
/// // Every zombie, with the parent that should collect it.
/// for z in snap.zombies() {
///     println!("{} <defunct>, parent {:?}", z.pid, z.ppid);
/// }
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Debug)]
pub struct Snapshot {
    procs: Vec<Process>,
    by_pid: HashMap<Pid, usize>,
    children: HashMap<Pid, Vec<usize>>,
}

/// One line of a process tree walked in pre-order (a parent before its children).
///
/// ```
/// use forkyard::Pid;
/// use forkyard::procs::Snapshot;
///
/// let snap = Snapshot::take()?;
/// let tree = snap.tree(Pid::this());
/// assert_eq!((tree[0].process.pid, tree[0].depth), (Pid::this(), 0));
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TreeEntry<'a> {
    /// The process.
    pub process: &'a Process,
    /// 0 for the root of the walk, 1 for its children, and so on.
    pub depth: usize,
    /// Whether it is the last child of its parent (for drawing `└─` rather than `├─`).
    pub last: bool,
}

impl Snapshot {
    /// Reads every process in `/proc`, with command lines.
    ///
    /// ```
    /// use forkyard::Pid;
    /// use forkyard::procs::Snapshot;
    ///
    /// let snap = Snapshot::take()?;
    /// assert!(snap.get(Pid::this()).is_some_and(|me| !me.cmdline.is_empty()));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn take() -> Result<Snapshot> {
        Snapshot::take_with(ScanOptions::default())
    }

    /// Reads every process in `/proc`.
    ///
    /// ```
    /// use forkyard::Pid;
    /// use forkyard::procs::{ScanOptions, Snapshot};
    ///
    /// // Parents and states only, on 4 threads: a quick census of a big machine.
    /// let snap = Snapshot::take_with(ScanOptions { cmdline: false, threads: 4 })?;
    /// assert!(snap.get(Pid::this()).is_some_and(|me| me.cmdline.is_empty()));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn take_with(options: ScanOptions) -> Result<Snapshot> {
        let pids = list_pids()?;
        let threads = options.threads.clamp(1, 64).min(pids.len().div_ceil(256).max(1));
        let procs = if threads == 1 {
            scan(&pids, options.cmdline)
        } else {
            let share = pids.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let parts: Vec<_> =
                    pids.chunks(share).map(|part| scope.spawn(move || scan(part, options.cmdline))).collect();
                let mut all = Vec::with_capacity(pids.len());
                for part in parts {
                    // A scan thread only reads files; if it panicked, its share is missing
                    // rather than the whole snapshot.
                    all.extend(part.join().unwrap_or_default());
                }
                all
            })
        };
        Ok(Snapshot::from_processes(procs))
    }

    /// Builds a snapshot from processes read elsewhere (or made up, for tests).
    ///
    /// ```
    /// use forkyard::Pid;
    /// use forkyard::procs::{Process, Snapshot};
    ///
    /// // A snapshot of chosen processes, here this one and its parent.
    /// let mine: Vec<Process> = [Pid::this(), Pid::parent()]
    ///     .into_iter()
    ///     .filter_map(|pid| Process::read(pid).ok().flatten())
    ///     .collect();
    /// let snap = Snapshot::from_processes(mine);
    /// assert_eq!(snap.children(Pid::parent()).next().map(|p| p.pid), Some(Pid::this()));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn from_processes(mut procs: Vec<Process>) -> Snapshot {
        procs.sort_by_key(|p| p.pid);
        let by_pid = procs.iter().enumerate().map(|(i, p)| (p.pid, i)).collect();
        let mut children: HashMap<Pid, Vec<usize>> = HashMap::new();
        for (i, p) in procs.iter().enumerate() {
            if let Some(ppid) = p.ppid {
                children.entry(ppid).or_default().push(i);
            }
        }
        Snapshot { procs, by_pid, children }
    }

    /// All processes, by increasing PID.
    ///
    /// ```
    /// use forkyard::procs::Snapshot;
    ///
    /// let snap = Snapshot::take()?;
    /// let pids: Vec<_> = snap.processes().iter().map(|p| p.pid).collect();
    /// assert!(pids.windows(2).all(|w| w[0] < w[1])); // by increasing PID
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn processes(&self) -> &[Process] {
        &self.procs
    }

    /// One process.
    ///
    /// ```
    /// use forkyard::Pid;
    /// use forkyard::procs::Snapshot;
    ///
    /// let snap = Snapshot::take()?;
    /// assert_eq!(snap.get(Pid::this()).map(|me| me.ppid), Some(Some(Pid::parent())));
    /// assert!(snap.get(Pid::new(i32::MAX).expect("positive")).is_none());
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn get(&self, pid: Pid) -> Option<&Process> {
        self.by_pid.get(&pid).map(|&i| &self.procs[i])
    }

    /// The zombies: processes that have ended and whose parent has not collected them.
    ///
    /// ```
    /// use forkyard::{Launch, Pid};
    /// use forkyard::procs::{Snapshot, State, state};
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["true"]))?;
    /// while state(child.pid())? != Some(State::Zombie) {
    ///     std::thread::yield_now();
    /// }
    /// let snap = Snapshot::take()?;
    /// assert!(snap.zombies().any(|z| z.pid == child.pid() && z.ppid == Some(Pid::this())));
    /// child.wait()?;
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn zombies(&self) -> impl Iterator<Item = &Process> {
        self.procs.iter().filter(|p| p.is_zombie())
    }

    /// The direct children of `pid`, by increasing PID.
    ///
    /// ```
    /// use forkyard::{Launch, Pid, Signal};
    /// use forkyard::procs::Snapshot;
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["sleep", "60"]))?;
    /// let snap = Snapshot::take()?;
    /// assert!(snap.children(Pid::this()).any(|p| p.pid == child.pid()));
    /// child.kill(Signal::KILL)?;
    /// child.wait()?;
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn children(&self, pid: Pid) -> impl Iterator<Item = &Process> {
        self.children.get(&pid).into_iter().flatten().map(|&i| &self.procs[i])
    }

    /// Every descendant of `pid` (children, their children, ...), in pre-order.
    ///
    /// ```
    /// use forkyard::{Launch, Pid, Signal};
    /// use forkyard::procs::Snapshot;
    /// use forkyard::spawn::Program;
    ///
    /// // A shell and its own child: both are our descendants.
    /// let mut sh = Launch::new().start(Program::new(["sh", "-c", "sleep 60; exit 7"]))?;
    /// let mut snap = Snapshot::take()?;
    /// while snap.descendants(Pid::this()).len() < 2 {
    ///     snap = Snapshot::take()?; // until the shell has started `sleep`
    /// }
    /// let [shell, sleep] = snap.descendants(Pid::this())[..] else { panic!("two") };
    /// assert_eq!((shell.pid, sleep.ppid), (sh.pid(), Some(sh.pid()))); // pre-order
    /// Signal::TERM.send(sleep.pid)?; // the shell collects it and goes on
    /// assert_eq!(sh.wait()?, forkyard::ExitStatus::Exited(7));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn descendants(&self, pid: Pid) -> Vec<&Process> {
        self.tree(pid).into_iter().skip(1).map(|e| e.process).collect()
    }

    /// Sends `signal` to every live (not zombie) descendant of `pid` in this snapshot; returns
    /// how many received it. Processes started after the snapshot are not reached: call again
    /// (with a new snapshot) until nothing is left.
    ///
    /// ```
    /// use forkyard::{Launch, Pid, Signal};
    /// use forkyard::procs::Snapshot;
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["sleep", "60"]))?;
    /// let snap = Snapshot::take()?;
    /// assert_eq!(snap.signal_descendants(Pid::this(), Signal::TERM), 1);
    /// assert_eq!(child.wait()?.signal(), Some(Signal::TERM));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn signal_descendants(&self, pid: Pid, signal: Signal) -> usize {
        self.descendants(pid).iter().filter(|p| !p.is_zombie()).filter(|p| signal.send(p.pid).is_ok()).count()
    }

    /// The tree rooted at `pid`, in pre-order, the root first. Empty if `pid` is not in the
    /// snapshot.
    ///
    /// ```
    /// use forkyard::{Launch, Pid, Signal};
    /// use forkyard::procs::Snapshot;
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["sleep", "60"]))?;
    /// let snap = Snapshot::take()?;
    /// let tree = snap.tree(Pid::this());
    /// assert_eq!((tree[0].process.pid, tree[0].depth), (Pid::this(), 0));
    /// assert_eq!((tree[1].process.pid, tree[1].depth, tree[1].last), (child.pid(), 1, true));
    /// child.kill(Signal::KILL)?;
    /// child.wait()?;
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn tree(&self, pid: Pid) -> Vec<TreeEntry<'_>> {
        let mut out = Vec::new();
        if let Some(root) = self.get(pid) {
            self.walk(root, 0, true, &mut out);
        }
        out
    }

    /// Every tree of the system: one per process whose parent is not in the snapshot (PID 1,
    /// the kernel's thread parent, or processes outside our PID namespace).
    ///
    /// ```
    /// use forkyard::Pid;
    /// use forkyard::procs::Snapshot;
    ///
    /// // As `ps f` draws it.
    /// let snap = Snapshot::take()?;
    /// for entry in snap.forest() {
    ///     let branch = if entry.last { "└─" } else { "├─" };
    ///     println!("{:>7} {}{branch}{}", entry.process.pid, "  ".repeat(entry.depth), entry.process.comm);
    /// }
    /// assert!(snap.forest().iter().any(|e| e.process.pid == Pid::this()));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn forest(&self) -> Vec<TreeEntry<'_>> {
        let mut out = Vec::new();
        let roots: Vec<&Process> =
            self.procs.iter().filter(|p| p.ppid.is_none_or(|ppid| !self.by_pid.contains_key(&ppid))).collect();
        let n = roots.len();
        for (i, root) in roots.into_iter().enumerate() {
            self.walk(root, 0, i + 1 == n, &mut out);
        }
        out
    }

    /// Pre-order walk with an explicit stack: a chain of thousands of processes must not
    /// overflow ours. Each process is visited once: parent links read at different moments
    /// can form a loop (a PID reused mid-scan), and a loop must end the walk, not grow it.
    fn walk<'a>(&'a self, root: &'a Process, depth: usize, last: bool, out: &mut Vec<TreeEntry<'a>>) {
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![TreeEntry { process: root, depth, last }];
        while let Some(entry) = stack.pop() {
            if !seen.insert(entry.process.pid) {
                continue;
            }
            out.push(entry);
            if let Some(kids) = self.children.get(&entry.process.pid) {
                for (k, &i) in kids.iter().enumerate().rev() {
                    stack.push(TreeEntry {
                        process: &self.procs[i],
                        depth: entry.depth + 1,
                        last: k + 1 == kids.len(),
                    });
                }
            }
        }
    }
}

/// Sends `signal` to every live descendant of `pid`, found in a fresh scan of `/proc`
/// (parent links only, no command lines); returns how many received it.
///
/// ```
/// use forkyard::{Launch, Pid, Signal, procs};
/// use forkyard::spawn::Program;
///
/// let mut child = Launch::new().start(Program::new(["sleep", "60"]))?;
/// assert_eq!(procs::signal_descendants(Pid::this(), Signal::TERM)?, 1);
/// assert_eq!(child.wait()?.signal(), Some(Signal::TERM));
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn signal_descendants(pid: Pid, signal: Signal) -> Result<usize> {
    let snap = Snapshot::take_with(ScanOptions { cmdline: false, threads: 1 })?;
    Ok(snap.signal_descendants(pid, signal))
}

/// Sends `signal` to every descendant of the calling process. As PID 1 of a namespace that is
/// every other process in it, reached with one `kill(-1)` and no scan; the kernel does not
/// say how many it reached, so the count is then 1 for "at least one" and 0 for none.
/// Otherwise as [`signal_descendants`].
///
/// ```
/// use forkyard::{Launch, Signal, procs};
/// use forkyard::spawn::Program;
///
/// let mut child = Launch::new().start(Program::new(["sleep", "60"]))?;
/// assert_eq!(procs::signal_own_descendants(Signal::TERM)?, 1); // we are not PID 1: counted
/// assert_eq!(child.wait()?.signal(), Some(Signal::TERM));
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn signal_own_descendants(signal: Signal) -> Result<usize> {
    if Pid::this() != Pid::INIT {
        return signal_descendants(Pid::this(), signal);
    }
    // SAFETY: kill(-1, sig) signals every process we may signal except ourselves; no memory
    // is passed.
    match unsafe { libc::kill(-1, signal.as_raw()) } {
        0 => Ok(1),
        _ => match std::io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ESRCH) => Ok(0),
            e => Err(Error::sys("kill", format!("every process of the namespace (-1, {signal})"), e)),
        },
    }
}

/// The descriptors the calling process has open now, from `/proc/self/fd`, in increasing
/// order (the one used to read the directory, closed by the time this returns, is left out).
/// Empty if `/proc` is not mounted.
///
/// ```
/// use std::os::fd::AsRawFd;
///
/// let file = std::fs::File::open("/dev/null")?;
/// let open = forkyard::procs::open_fds();
/// assert!(open.contains(&file.as_raw_fd()));
/// drop(file);
/// assert_eq!(forkyard::procs::open_fds().len(), open.len() - 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn open_fds() -> Vec<std::os::fd::RawFd> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    let mut fds: Vec<std::os::fd::RawFd> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    // The directory being read was listed too; keep only what is still open.
    // SAFETY: F_GETFD on any number only reads the descriptor table.
    fds.retain(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1);
    fds.sort_unstable();
    fds
}

/// How many threads this process has.
///
/// The link count of `/proc/self/task` is the thread count plus two (one `stat`, cheaper
/// than rendering `/proc/self/status`); the `Threads:` line of `/proc/self/status` is the
/// fallback should a kernel ever count differently.
pub(crate) fn thread_count() -> Result<usize> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::metadata("/proc/self/task") {
        if meta.nlink() > 2 {
            return Ok(meta.nlink() as usize - 2);
        }
    }
    const STATUS: &str = "/proc/self/status";
    let status = std::fs::read_to_string(STATUS).map_err(|e| Error::sys("read", STATUS, e))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::Proc { on: STATUS.into(), reason: "no Threads: line".into() })
}

/// The threads of this process (their IDs) with the signals each blocks, from the `SigBlk:`
/// line of `/proc/self/task/TID/status`. A thread that ends while the list is read is left
/// out; so is one whose status has no readable mask.
pub(crate) fn thread_masks() -> Result<Vec<(i32, SignalSet)>> {
    const TASKS: &str = "/proc/self/task";
    let tasks = std::fs::read_dir(TASKS).map_err(|e| Error::sys("opendir", TASKS, e))?;
    let mut threads = Vec::new();
    for entry in tasks.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let bits = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
        if let Some(bits) = bits {
            // Bit n-1 stands for signal n.
            let mask = (1..=64).filter(|n| bits & (1u64 << (n - 1)) != 0).filter_map(Signal::new).collect();
            threads.push((tid, mask));
        }
    }
    Ok(threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(pid: i32, ppid: i32, state: char) -> Process {
        Process {
            pid: Pid::new(pid).expect("test PIDs are positive"),
            ppid: Pid::new(ppid),
            pgid: pid,
            sid: pid,
            state: State::from_char(state),
            comm: format!("p{pid}"),
            cmdline: Vec::new(),
            uid: 0,
            tty_nr: 0,
            start_ticks: 0,
            cpu_ticks: 0,
            threads: 1,
            rss_pages: 0,
        }
    }

    fn pid(n: i32) -> Pid {
        Pid::new(n).expect("test PIDs are positive")
    }

    #[test]
    fn a_loop_of_parent_links_ends_the_walk() {
        // 10's parent is 12 and 12's is 10: possible when a PID is reused during a scan.
        let snap = Snapshot::from_processes(vec![fake(1, 0, 'S'), fake(10, 12, 'S'), fake(12, 10, 'S')]);
        let found: Vec<i32> = snap.descendants(pid(10)).iter().map(|p| p.pid.as_raw()).collect();
        assert_eq!(found, [12]);
    }

    #[test]
    fn trees_children_and_zombies() {
        //  1 ─┬─ 10 ─┬─ 11 (Z)
        //     │      └─ 12 ── 13
        //     └─ 20
        let snap = Snapshot::from_processes(vec![
            fake(13, 12, 'S'),
            fake(1, 0, 'S'),
            fake(12, 10, 'S'),
            fake(10, 1, 'S'),
            fake(11, 10, 'Z'),
            fake(20, 1, 'R'),
        ]);
        let kids: Vec<i32> = snap.children(pid(10)).map(|p| p.pid.as_raw()).collect();
        assert_eq!(kids, [11, 12]);
        let desc: Vec<i32> = snap.descendants(pid(10)).iter().map(|p| p.pid.as_raw()).collect();
        assert_eq!(desc, [11, 12, 13]);
        let tree: Vec<(i32, usize, bool)> =
            snap.forest().iter().map(|e| (e.process.pid.as_raw(), e.depth, e.last)).collect();
        assert_eq!(tree, [(1, 0, true), (10, 1, false), (11, 2, false), (12, 2, true), (13, 3, true), (20, 1, true)]);
        let zombies: Vec<i32> = snap.zombies().map(|p| p.pid.as_raw()).collect();
        assert_eq!(zombies, [11]);
        assert!(snap.tree(pid(99)).is_empty());
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let chain: Vec<Process> = (1..=50_000).map(|n| fake(n, n - 1, 'S')).collect();
        let snap = Snapshot::from_processes(chain);
        let tree = snap.tree(pid(1));
        assert_eq!(tree.len(), 50_000);
        assert_eq!(tree.last().map(|e| e.depth), Some(49_999));
    }

    #[test]
    fn state_letters_round_trip() {
        for c in ['R', 'S', 'D', 'Z', 'T', 't', 'X', 'I', 'P'] {
            assert_eq!(State::from_char(c).as_char(), c);
        }
    }

    #[test]
    fn reads_this_process() {
        let me = Process::read(Pid::this()).expect("reading /proc/self").expect("we exist");
        assert_eq!(me.pid, Pid::this());
        assert_eq!(me.ppid, Some(Pid::parent()));
        assert!(matches!(me.state, State::Running | State::Sleeping));
        assert!(!me.cmdline.is_empty());
        // The state in /proc/PID/stat is the main thread's; a test runs on another thread.
        assert!(matches!(state(Pid::this()), Ok(Some(State::Running | State::Sleeping))));
        assert_eq!(state(Pid::new(i32::MAX).expect("positive")).ok(), Some(None));
    }
}
