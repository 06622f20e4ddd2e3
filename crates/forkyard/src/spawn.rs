//! Starting a program in a child process with a clean slate.
//!
//! Why this module exists: signal masks and ignored signals survive `fork` and `exec`, so a
//! supervisor that blocks signals for itself would start its services with SIGTERM blocked
//! unless it hands back what it inherited. An init must also put the child in its own process
//! group (or session), give it the terminal, and never let it outlive a dead parent.
//! [`Launch`] describes that setup; [`Launch::spawn`] applies it to a
//! `std::process::Command` (which keeps doing what it does well: arguments, environment,
//! working directory, standard streams, `PATH` search, and reporting a failed `exec` back to
//! the parent) and returns a pidfd-backed [`Child`].
//!
//! [`Launch::start`] does the same for a [`Program`] without `std::process`, because std
//! cannot start a child inside a cgroup: it can only move it there after the fork, by a
//! write to `cgroup.procs` that waits for an RCU grace period (about 6 ms here, on every
//! restart of a supervised service). `start` uses `clone3` with `CLONE_INTO_CGROUP`, so the
//! child is born in its cgroup, and gets its pidfd from the same call. On x86-64 a child
//! that keeps our user also shares our memory until its `exec` (CLONE_VM, on a stack of its
//! own, as `posix_spawn` does): no page table is copied and none torn down, which was most of a
//! restart's cost in a supervisor of a few megabytes.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::child::Child;
use crate::error::{Error, Result, StartStep};

mod child;
use crate::pid::Pid;
use crate::signal::{Disposition, Signal, SignalSet};
use crate::sys;

/// Where the child sits among process groups and sessions.
///
/// ```
/// use forkyard::Launch;
/// use forkyard::spawn::{Group, Program};
///
/// let mut child = Launch::new().group(Group::Own).start(Program::new(["true"]))?;
/// child.wait()?;
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Group {
    /// The parent's group (what `std::process` does).
    #[default]
    Inherit,
    /// A new process group led by the child, so a signal can reach it and everything it
    /// starts at once (`kill(-pid)`).
    Own,
    /// A new session (and group) led by the child; with [`Launch::foreground`] the terminal
    /// on standard input becomes its controlling terminal, as dumb-init does.
    Session,
}

// The identity a child runs as belongs with the user database (`users`, a floor below this
// one); `Credentials` keeps its path here, beside `Launch::credentials`.
pub use crate::users::Credentials;

/// How a child is set up between `fork` and `exec`.
///
/// Built with [`Launch::new`] and its builder methods (the fields can also be set one by
/// one; new ones may be added, so a struct literal is not offered). `'fd` is the lifetime of
/// the cgroup directory it may borrow.
///
/// ```
/// use std::process::Command;
/// use forkyard::{ExitStatus, Launch, Signal};
/// use forkyard::spawn::Group;
///
/// // `sh` in a process group of its own, killed if this process dies first.
/// let launch = Launch::new().group(Group::Own).parent_death_signal(Signal::KILL);
/// let mut child = launch.spawn(Command::new("sh").args(["-c", "exit 3"]))?;
/// assert_eq!(child.wait()?, ExitStatus::Exited(3));
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Launch<'fd> {
    /// Process group or session.
    pub group: Group,
    /// With [`Group::Own`]: make the child's group the foreground group of the terminal on
    /// standard input. With [`Group::Session`]: make that terminal the session's controlling
    /// terminal. No terminal is not an error.
    pub foreground: bool,
    /// The child's signal mask (`None`: whatever the calling thread has).
    pub signal_mask: Option<SignalSet>,
    /// Dispositions to set in the child, typically the ones the caller inherited for signals
    /// it changed for itself.
    pub dispositions: Vec<(Signal, Disposition)>,
    /// A signal the child receives if this process dies first.
    pub parent_death_signal: Option<Signal>,
    /// Run as this user (needs privilege); `None` keeps ours.
    pub credentials: Option<Credentials>,
    /// Bytes the child writes to standard error once its setup is done, just before `exec`.
    pub announce: Option<Vec<u8>>,
    /// An open directory of a cgroup v2 for the child, so that everything it starts stays
    /// in that cgroup. [`Launch::start`] has it born there (`clone3`, Linux 5.7+); otherwise
    /// the child joins it first thing by writing `0` to its `cgroup.procs`.
    pub cgroup: Option<BorrowedFd<'fd>>,
    /// If `LISTEN_PID` (socket activation) names this process, rename it to the child, which
    /// is the one that will use the sockets (catatonit does this). [`Launch::start`] writes
    /// the child's PID into an environment prepared before the fork, so it works in any
    /// process. [`Launch::spawn`] has to call `setenv` in the child, which takes the C
    /// library's environment lock: it refuses a process with other threads, and works only
    /// for a command without environment changes of its own (`Command::env`), whose `exec`
    /// reads the live environment.
    pub pass_listen_pid: bool,
}

/// Builder methods: each sets one field and returns the setup.
impl<'fd> Launch<'fd> {
    /// The setup that changes nothing: the child inherits what `std::process` would give it.
    ///
    /// ```
    /// use forkyard::{ExitStatus, Launch};
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = Launch::new().start(Program::new(["sh", "-c", "exit 2"]))?;
    /// assert_eq!(child.wait()?, ExitStatus::Exited(2));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn new() -> Launch<'fd> {
        Launch::default()
    }

    /// Sets [`Launch::group`].
    ///
    /// ```
    /// use forkyard::{Launch, Signal};
    /// use forkyard::procs::Process;
    /// use forkyard::spawn::{Group, Program};
    ///
    /// let mut child = Launch::new().group(Group::Own).start(Program::new(["sleep", "60"]))?;
    /// let seen = Process::read(child.pid())?.expect("running");
    /// assert_eq!(seen.pgid, child.pid().as_raw()); // it leads its own group
    /// child.kill(Signal::KILL)?;
    /// child.wait()?;
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn group(mut self, group: Group) -> Launch<'fd> {
        self.group = group;
        self
    }

    /// Sets [`Launch::foreground`].
    ///
    /// ```
    /// use forkyard::Launch;
    /// use forkyard::spawn::{Group, Program};
    ///
    /// // As an init in a terminal does; with no terminal on standard input it just runs.
    /// let launch = Launch::new().group(Group::Own).foreground(true);
    /// let mut program = Program::new(["true"]);
    /// program.stdio[0] = Some(std::fs::File::open("/dev/null").expect("/dev/null").into());
    /// assert!(launch.start(program)?.wait()?.success());
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn foreground(mut self, on: bool) -> Launch<'fd> {
        self.foreground = on;
        self
    }

    /// Sets [`Launch::signal_mask`].
    ///
    /// ```
    /// use forkyard::{Launch, Signal, SignalSet};
    /// use forkyard::spawn::Program;
    ///
    /// // SIGUSR1 blocked in the child only: `grep` finds it in its own /proc/self/status
    /// // (bit 9 of SigBlk, 0x200, is signal 10). Not through `sh`: dash unblocks everything.
    /// let mask: SignalSet = [Signal::USR1].into_iter().collect();
    /// let check = Program::new(["grep", "-q", "^SigBlk:.*200$", "/proc/self/status"]);
    /// let mut child = Launch::new().signal_mask(mask).start(check)?;
    /// assert!(child.wait()?.success());
    /// assert!(!SignalSet::thread_mask()?.contains(Signal::USR1)); // ours is untouched
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn signal_mask(mut self, mask: SignalSet) -> Launch<'fd> {
        self.signal_mask = Some(mask);
        self
    }

    /// Sets [`Launch::dispositions`].
    ///
    /// ```
    /// use forkyard::{Disposition, Launch, Signal};
    /// use forkyard::spawn::Program;
    ///
    /// // Rust ignores SIGPIPE, and an ignored signal stays ignored through exec: undo it.
    /// let launch = Launch::new().dispositions(vec![(Signal::PIPE, Disposition::Default)]);
    /// let mut sh = launch.start(Program::new(["sh", "-c", "kill -PIPE $$"]))?;
    /// assert_eq!(sh.wait()?.signal(), Some(Signal::PIPE));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn dispositions(mut self, dispositions: Vec<(Signal, Disposition)>) -> Launch<'fd> {
        self.dispositions = dispositions;
        self
    }

    /// Sets [`Launch::parent_death_signal`].
    ///
    /// ```
    /// use forkyard::{Child, Launch, Signal};
    /// use forkyard::spawn::Program;
    ///
    /// forkyard::subreaper::set_child_subreaper(true)?; // orphans below us come back to us
    /// let launch = Launch::new().parent_death_signal(Signal::KILL);
    /// // A middle process starts `sleep` and ends at once: the parent that dies first.
    /// let pid = forkyard::run_in_child(move || launch.start(Program::new(["sleep", "60"])).map(|c| c.pid()).ok())?;
    /// let mut orphan = Child::from_pid(pid.expect("started"))?; // adopted by us
    /// assert_eq!(orphan.wait()?.signal(), Some(Signal::KILL));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn parent_death_signal(mut self, signal: Signal) -> Launch<'fd> {
        self.parent_death_signal = Some(signal);
        self
    }

    /// Sets [`Launch::credentials`].
    ///
    /// ```
    /// use forkyard::error::StartStep;
    /// use forkyard::spawn::Program;
    /// use forkyard::{Error, Launch};
    ///
    /// let nobody = forkyard::users::credentials(Some("nobody"), None)?;
    /// let check = format!("test \"$(id -u)\" = {}", nobody.uid);
    /// match Launch::new().credentials(nobody).start(Program::new(["sh", "-c", &check])) {
    ///     Ok(mut child) => assert!(child.wait()?.success()), // as root
    ///     Err(Error::Start { step: StartStep::Setup, source, .. }) => {
    ///         assert_eq!(source.raw_os_error(), Some(libc::EPERM)) // without the privilege
    ///     }
    ///     Err(other) => return Err(other.into()),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn credentials(mut self, credentials: Credentials) -> Launch<'fd> {
        self.credentials = Some(credentials);
        self
    }

    /// Sets [`Launch::announce`].
    ///
    /// ```
    /// use std::io::{Read, Seek};
    /// use forkyard::Launch;
    /// use forkyard::spawn::Program;
    ///
    /// let mut log = tempfile::tempfile()?;
    /// let mut program = Program::new(["sh", "-c", "echo running >&2"]);
    /// program.stdio[2] = Some(log.try_clone()?.into());
    /// Launch::new().announce(b"starting\n".to_vec()).start(program)?.wait()?;
    /// let mut said = String::new();
    /// log.rewind()?;
    /// log.read_to_string(&mut said)?;
    /// assert_eq!(said, "starting\nrunning\n"); // the announcement, just before exec
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn announce(mut self, text: Vec<u8>) -> Launch<'fd> {
        self.announce = Some(text);
        self
    }

    /// Sets [`Launch::cgroup`]: the child starts in the cgroup v2 whose directory is open as
    /// `dir`.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use forkyard::{Launch, Signal};
    /// use forkyard::spawn::Program;
    ///
    /// let name = format!("forkyard-doc-{}", std::process::id());
    /// let dir = forkyard::procs::own_cgroup().map(|ours| ours.join(&name));
    /// // Making a cgroup needs a writable cgroup2 (root, or a delegated subtree).
    /// if let Some(dir) = dir.filter(|d| std::fs::create_dir(d).is_ok()) {
    ///     let handle = std::fs::File::open(&dir)?;
    ///     let mut child = Launch::new().cgroup(handle.as_fd()).start(Program::new(["sleep", "60"]))?;
    ///     let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", child.pid()))?;
    ///     assert!(cgroup.trim_end().ends_with(&name), "{cgroup}");
    ///     child.kill(Signal::KILL)?;
    ///     child.wait()?;
    ///     std::fs::remove_dir(&dir)?; // empty again
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cgroup(mut self, dir: BorrowedFd<'fd>) -> Launch<'fd> {
        self.cgroup = Some(dir);
        self
    }

    /// Sets [`Launch::pass_listen_pid`].
    ///
    /// ```
    /// use forkyard::{ExitStatus, Launch, Pid};
    /// use forkyard::spawn::Program;
    ///
    /// // Sockets passed to us (systemd's socket activation) are for the child to use.
    /// // SAFETY: a doc-test has one thread, so no other thread reads the environment meanwhile.
    /// unsafe { std::env::set_var("LISTEN_PID", Pid::this().to_string()) };
    /// let launch = Launch::new().pass_listen_pid(true);
    /// let mut child = launch.start(Program::new(["sh", "-c", "test \"$LISTEN_PID\" = $$"]))?;
    /// assert_eq!(child.wait()?, ExitStatus::Exited(0)); // it names the child now
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn pass_listen_pid(mut self, on: bool) -> Launch<'fd> {
        self.pass_listen_pid = on;
        self
    }

    /// The same setup without the borrowed cgroup, for a closure that must be `'static`.
    fn detached(&self) -> Launch<'static> {
        Launch {
            group: self.group,
            foreground: self.foreground,
            signal_mask: self.signal_mask,
            dispositions: self.dispositions.clone(),
            parent_death_signal: self.parent_death_signal,
            credentials: self.credentials.clone(),
            announce: self.announce.clone(),
            cgroup: None,
            pass_listen_pid: self.pass_listen_pid,
        }
    }
}

/// Refuses `pass_listen_pid` for [`Launch::spawn`] in a process with other threads: the
/// child's `setenv` would take the C library's environment lock, which another thread may
/// have held at the fork and which would then never be released in the child.
fn refuse_setenv_with_threads() -> Result<()> {
    let threads = crate::procs::thread_count()?;
    if threads > 1 {
        return Err(Error::Unsupported {
            what: "passing LISTEN_PID through Launch::spawn",
            why: format!(
                "this process has {threads} threads, and the child's setenv could deadlock on the \
                 environment lock another thread held at the fork; use Launch::start, which \
                 prepares the environment before the fork, or set it before starting threads"
            ),
        });
    }
    Ok(())
}

impl Launch<'_> {
    /// Starts `command` with this setup.
    ///
    /// A failed `exec` (no such program, not executable) is returned as [`Error::Sys`] with
    /// call `execve` and the kernel's `errno`, after the failed child has been collected.
    /// (`std` reports a setup step refused in the child the same way, so the two cannot be
    /// told apart here; [`Launch::start`] names each step.)
    ///
    /// The setup runs in the forked child before `exec`. It makes only system calls, except
    /// for `pass_listen_pid`, which edits the environment and so is refused (with
    /// [`Error::Unsupported`]) in a process with other threads.
    ///
    /// ```
    /// use std::process::Command;
    /// use forkyard::{ExitStatus, Launch, Signal};
    /// use forkyard::spawn::Group;
    ///
    /// let launch = Launch::new().group(Group::Own).parent_death_signal(Signal::TERM);
    /// let mut command = Command::new("sh");
    /// command.args(["-c", "exit \"$CODE\""]).env("CODE", "9").current_dir("/");
    /// let mut child = launch.spawn(&mut command)?; // a pidfd-backed Child, not std's
    /// assert_eq!(child.wait()?, ExitStatus::Exited(9));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn spawn(&self, command: &mut Command) -> Result<Child> {
        if self.pass_listen_pid {
            refuse_setenv_with_threads()?;
        }
        let setup = self.detached();
        let cgroup = self.cgroup.map(|dir| dir.as_raw_fd());
        let parent = Pid::this();
        let listen_pid = if setup.pass_listen_pid {
            std::env::var("LISTEN_PID").ok().filter(|v| v.trim() == parent.as_raw().to_string())
        } else {
            None
        };
        // SAFETY: the closure runs in the child between fork and exec. It makes system calls
        // only (setpgid, setsid, ioctl, tcsetpgrp, setgroups, setgid, setuid, prctl,
        // getppid, sigaction, pthread_sigmask), none of which allocates or takes a lock,
        // except the LISTEN_PID rewrite, documented above as single-threaded only.
        unsafe {
            command.pre_exec(move || setup.in_child(cgroup, parent, listen_pid.is_some()));
        }
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command.spawn().map_err(|e| Error::Start {
            step: StartStep::Exec,
            on: format!("'{program}'"),
            source: e,
        })?;
        let pid = Pid::new(child.id() as i32)
            .ok_or_else(|| Error::sys("fork", format!("'{program}'"), std::io::ErrorKind::InvalidData.into()))?;
        // std's handle is dropped without waiting; ours, with a pidfd, takes over.
        drop(child);
        Ok(Child::fresh(pid))
    }
}

/// A program for [`Launch::start`]: what to run, with what, where.
///
/// ```
/// use std::os::fd::OwnedFd;
/// use forkyard::{ExitStatus, Launch};
/// use forkyard::spawn::Program;
///
/// let mut program = Program::new(["sh", "-c", "test \"$GREETING\" = hello"]);
/// program.env.push(("GREETING".into(), "hello".into()));
/// program.stdio[1] = Some(OwnedFd::from(std::fs::File::create("/dev/null").expect("/dev/null")));
/// let mut child = Launch::new().start(program)?;
/// assert_eq!(child.wait()?, ExitStatus::Exited(0));
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Debug)]
pub struct Program {
    /// `argv`, the program first. A program without a `/` is searched in the `PATH` of the
    /// child's environment.
    pub argv: Vec<OsString>,
    /// Variables set in the child on top of this process's environment (later ones win).
    pub env: Vec<(OsString, OsString)>,
    /// The working directory (`None`: ours).
    pub cwd: Option<PathBuf>,
    /// Standard input, output and error (`None`: ours). Closed in this process once the
    /// child has its copies.
    pub stdio: [Option<OwnedFd>; 3],
}

impl Program {
    /// `argv` with our environment, directory and standard streams.
    ///
    /// ```
    /// use forkyard::Launch;
    /// use forkyard::spawn::Program;
    ///
    /// let mut program = Program::new(["sh", "-c", "test \"$PWD\" = /tmp"]);
    /// program.cwd = Some("/tmp".into());
    /// assert!(Launch::new().start(program)?.wait()?.success());
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn new<I, S>(argv: I) -> Program
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Program {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
            stdio: [None, None, None],
        }
    }
}

/// What `start` prepares before the fork, so that the child allocates nothing.
struct Prepared {
    /// The strings own the bytes that `argv_ptrs` and `envp_ptrs` point into (a CString's
    /// buffer stays put when the CString moves).
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    /// NULL-terminated arrays for execve, built before the fork.
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    /// Full paths to try, in order.
    candidates: Vec<CString>,
    cwd: Option<CString>,
    /// `LISTEN_PID=` and room for the child's PID, when it is passed on: the child writes
    /// its PID into this buffer (its own copy after a fork) before `exec` (envp points at it).
    _listen_pid: Option<Vec<u8>>,
    /// Where in that buffer the digits go.
    listen_pid_at: Option<*mut u8>,
}

/// The bytes before the PID in [`Prepared::listen_pid_at`]'s buffer.
const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";

fn cstring(bytes: &OsStr, what: &str) -> Result<CString> {
    CString::new(bytes.as_bytes()).map_err(|_| {
        Error::invalid(
            format!("{what} {:?}", bytes.to_string_lossy()),
            "it contains a NUL byte, which cannot pass through exec; remove it",
        )
    })
}

impl Prepared {
    /// Prepares `program`; with `pass_listen_pid`, a `LISTEN_PID` naming `parent` is left
    /// for the child to fill in.
    fn new(program: &Program, pass_listen_pid: bool, parent: Pid) -> Result<Prepared> {
        let Some(name) = program.argv.first() else {
            return Err(Error::invalid("an empty command", "give at least the program to run"));
        };
        let argv = program.argv.iter().map(|a| cstring(a, "argument")).collect::<Result<Vec<_>>>()?;
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        for (k, v) in &program.env {
            env.retain(|(old, _)| old != k);
            env.push((k.clone(), v.clone()));
        }
        let mut envp = Vec::with_capacity(env.len());
        let mut listen_pid = None;
        let ours = parent.as_raw().to_string();
        for (k, v) in &env {
            if pass_listen_pid && k == "LISTEN_PID" && v.to_str().is_some_and(|v| v.trim() == ours) {
                let mut slot = LISTEN_PID_PREFIX.to_vec();
                slot.extend_from_slice(&[0; 12]);
                listen_pid = Some(slot);
                continue;
            }
            let mut kv = k.clone();
            kv.push("=");
            kv.push(v);
            envp.push(cstring(&kv, "environment variable")?);
        }
        let candidates = if name.as_bytes().contains(&b'/') {
            vec![cstring(name, "program")?]
        } else {
            let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone());
            let path = path.unwrap_or_else(|| OsString::from("/bin:/usr/bin"));
            let mut list = Vec::new();
            for dir in path.as_bytes().split(|&b| b == b':') {
                let mut full = if dir.is_empty() { b".".to_vec() } else { dir.to_vec() };
                full.push(b'/');
                full.extend_from_slice(name.as_bytes());
                list.push(cstring(OsStr::from_bytes(&full), "program")?);
            }
            list
        };
        let cwd = program.cwd.as_ref().map(|c| cstring(c.as_os_str(), "directory")).transpose()?;
        let argv_ptrs = argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
        let listen_pid_at = listen_pid.as_mut().map(|slot: &mut Vec<u8>| {
            envp_ptrs.push(slot.as_ptr().cast());
            // The vector is never touched again, so the pointer stays valid and unaliased.
            slot[LISTEN_PID_PREFIX.len()..].as_mut_ptr()
        });
        envp_ptrs.push(std::ptr::null());
        Ok(Prepared {
            _argv: argv,
            _envp: envp,
            argv_ptrs,
            envp_ptrs,
            candidates,
            cwd,
            _listen_pid: listen_pid,
            listen_pid_at,
        })
    }
}

/// Steps of the child's start, reported back with the errno when one fails.
const STEP_CGROUP: u8 = 1;
const STEP_STDIO: u8 = 2;
const STEP_CWD: u8 = 3;
const STEP_SETUP: u8 = 4;
const STEP_EXEC: u8 = 5;

/// Set once `clone3` turned out not to support CLONE_INTO_CGROUP here.
static NO_CLONE_INTO_CGROUP: AtomicBool = AtomicBool::new(false);

/// Set once `clone3` turned out not to be usable with CLONE_VM and a stack here.
#[cfg(target_arch = "x86_64")]
static NO_CLONE_VM: AtomicBool = AtomicBool::new(false);

/// Whether a `clone3` error says that this kernel lacks the call or one of its flags, or
/// that a seccomp filter refuses it: Docker's default profile answers ENOSYS, so that C
/// libraries fall back to `clone`, but profiles before Docker 20.10 answered EPERM.
fn unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EINVAL | libc::E2BIG | libc::EPERM))
}

/// What a child that shares our memory reads from the parent's frame (see
/// `Launch::start_shared`).
#[cfg(target_arch = "x86_64")]
pub(crate) struct Shared<'a> {
    launch: &'a Launch<'a>,
    prepared: &'a Prepared,
    stdio: [Option<RawFd>; 3],
    join: Option<RawFd>,
    parent: Pid,
    report: RawFd,
    /// The parent thread's mask (the kernel's 64-bit set) before it blocked every signal for
    /// the clone.
    mask: u64,
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// The stack of the children this thread starts, made once: a child uses it only until
    /// its exec, during which this thread sleeps.
    static CHILD_STACK: std::cell::RefCell<Option<sys::ChildStack>> = const { std::cell::RefCell::new(None) };
}

impl Launch<'_> {
    /// Starts `program` with this setup, in [`Launch::cgroup`] from birth where the kernel
    /// allows it; returns a pidfd-backed [`Child`].
    ///
    /// A failure in the child (no such program, not executable, a bad directory, a setup
    /// call refused) comes back as [`Error::Start`] naming the [`StartStep`] and
    /// the kernel's `errno`, after the failed child has been collected. `pass_listen_pid` is
    /// honoured: the child writes its PID into an environment built before the fork.
    ///
    /// Like [`Launch::spawn`], the child makes only system calls before `exec`: everything
    /// it needs (arguments, environment, the paths to try, execve's pointer arrays) is
    /// prepared before the fork, so it is safe in a multi-threaded process.
    ///
    /// The calling thread sleeps until the child has called `exec` (or failed), as with
    /// `posix_spawn`: whatever holds the child up before its exec holds the caller too (an
    /// [`Launch::announce`] into a full pipe, a `chdir` into a hung network mount). On x86-64
    /// the child shares the caller's memory until then, unless it changes its user (then it
    /// is forked, so that the caller's memory is not marked undumpable).
    ///
    /// ```
    /// use std::io::Read;
    /// use std::os::fd::OwnedFd;
    /// use forkyard::{ExitStatus, Launch};
    /// use forkyard::spawn::Program;
    ///
    /// let mut out = tempfile::tempfile()?;
    /// let mut program = Program::new(["echo", "hello"]); // found in PATH
    /// program.stdio[1] = Some(OwnedFd::from(out.try_clone()?));
    /// let mut child = Launch::new().start(program)?;
    /// assert_eq!(child.wait()?, ExitStatus::Exited(0));
    /// let mut said = String::new();
    /// std::io::Seek::rewind(&mut out)?;
    /// out.read_to_string(&mut said)?;
    /// assert_eq!(said, "hello\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(&self, program: Program) -> Result<Child> {
        let parent = Pid::this();
        let prepared = Prepared::new(&program, self.pass_listen_pid, parent)?;
        let name = program.argv[0].to_string_lossy().into_owned();
        let (report_r, report_w) = sys::pipe().map_err(|e| Error::sys("pipe2", format!("starting '{name}'"), e))?;
        let stdio: [Option<RawFd>; 3] = std::array::from_fn(|i| program.stdio[i].as_ref().map(|f| f.as_raw_fd()));
        crate::child::reap_dropped_children();
        let cgroup = self.cgroup.map(|dir| dir.as_raw_fd());
        let mut forked = None;
        // Not for a child that changes its user: the kernel marks the memory of a process
        // whose user changes as not dumpable, and a child sharing ours would mark ours: no
        // core dump of ours any more, and ptrace's stricter rules. Rust std's posix_spawn
        // path steps aside for the same setups.
        #[cfg(target_arch = "x86_64")]
        if !NO_CLONE_VM.load(Ordering::Relaxed) && self.credentials.is_none() {
            match self.start_shared(&prepared, stdio, cgroup, parent, report_w.as_raw_fd()) {
                Ok(child) => forked = Some(child),
                // This kernel cannot: fork below.
                Err(e) if unsupported(&e) => NO_CLONE_VM.store(true, Ordering::Relaxed),
                Err(e) => return Err(Error::sys("clone3", format!("starting '{name}'"), e)),
            }
        }
        let mut join = None;
        if let (None, Some(dir)) = (&forked, cgroup) {
            if !NO_CLONE_INTO_CGROUP.load(Ordering::Relaxed) {
                // SAFETY: the child runs only `exec_child`, which makes system calls on
                // memory prepared above and ends in execve or _exit.
                match unsafe { sys::clone_into_cgroup(dir) } {
                    Ok(sys::Cloned::Child) => {
                        self.exec_child(&prepared, stdio, None, parent, report_w.as_raw_fd(), None)
                    }
                    Ok(sys::Cloned::Parent(pid, pidfd)) => forked = Some(Child::with_pidfd(pid, pidfd)),
                    Err(e) if unsupported(&e) => NO_CLONE_INTO_CGROUP.store(true, Ordering::Relaxed),
                    Err(e) => return Err(Error::sys("clone3", format!("starting '{name}'"), e)),
                }
            }
            join = Some(dir);
        }
        let child = match forked {
            Some(child) => child,
            None => {
                // SAFETY: as above; the child also joins the cgroup itself.
                let pid = unsafe { libc::fork() };
                match pid {
                    -1 => return Err(Error::last_os("fork", format!("starting '{name}'"))),
                    0 => self.exec_child(&prepared, stdio, join, parent, report_w.as_raw_fd(), None),
                    pid => Child::fresh(Pid::new(pid).ok_or_else(|| {
                        Error::sys("fork", format!("starting '{name}'"), std::io::ErrorKind::InvalidData.into())
                    })?),
                }
            }
        };
        drop(report_w);
        drop(program);
        let mut report = [0u8; 5];
        let mut got = 0;
        while got < report.len() {
            match sys::read(std::os::fd::AsFd::as_fd(&report_r), &mut report[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        if got == 0 {
            return Ok(child);
        }
        // The child failed before or at exec and has ended: collect it, report why.
        let mut child = child;
        let _ = child.wait();
        let errno = i32::from_le_bytes([report[1], report[2], report[3], report[4]]);
        let err = std::io::Error::from_raw_os_error(errno);
        let (step, on) = match report[0] {
            STEP_CGROUP => (StartStep::JoinCgroup, format!("'{name}'")),
            STEP_STDIO => (StartStep::Stdio, format!("the standard streams of '{name}'")),
            STEP_CWD => (StartStep::Chdir, format!("{} for '{name}'", program_cwd(&prepared).unwrap_or_default())),
            STEP_SETUP => (StartStep::Setup, format!("'{name}'")),
            _ => (StartStep::Exec, format!("'{name}'")),
        };
        Err(Error::Start { step, on, source: err })
    }
}

#[cfg(target_arch = "x86_64")]
impl Launch<'_> {
    /// `start`'s child made as `posix_spawn` makes one: sharing our memory, on a stack of its
    /// own, in `cgroup` from birth where the kernel allows (else it joins the cgroup itself).
    /// `Err` that [`unsupported`] accepts: this kernel (or a seccomp filter) will not; fork
    /// instead.
    fn start_shared(
        &self,
        prepared: &Prepared,
        stdio: [Option<RawFd>; 3],
        cgroup: Option<RawFd>,
        parent: Pid,
        report: RawFd,
    ) -> std::io::Result<Child> {
        // `try_with`: a thread-local destructor may start a child after the thread's cache
        // is gone; it gets a stack of its own, unmapped at the end.
        let stack = match CHILD_STACK.try_with(|s| s.borrow_mut().take()).ok().flatten() {
            Some(stack) => stack,
            None => sys::ChildStack::new()?,
        };
        let mut into = cgroup.filter(|_| !NO_CLONE_INTO_CGROUP.load(Ordering::Relaxed));
        let result = loop {
            // Every signal blocked across the clone, the C library's own too: the child is
            // born with no handler of ours (CLONE_CLEAR_SIGHAND) and sets its mask last.
            let mask = match sys::block_every_signal() {
                Ok(mask) => mask,
                Err(e) => break Err(e),
            };
            let shared = Shared {
                launch: self,
                prepared,
                stdio,
                join: if into.is_none() { cgroup } else { None },
                parent,
                report,
                mask,
            };
            // SAFETY: the child runs `shared_entry`, which follows spawn/child.rs's rules
            // (system calls only, on `shared`, `prepared` and its own stack) and ends in
            // execve or _exit; `shared` lives in this frame until clone_vm returns, which is
            // after the child has exec'd or exited; every signal is blocked until then.
            let cloned = unsafe {
                sys::clone_vm(into, &stack, child::shared_entry, (&shared as *const Shared<'_>).cast_mut().cast())
            };
            let _ = sys::set_signal_mask(mask);
            match cloned {
                Err(e) if unsupported(&e) && into.is_some() => {
                    // Perhaps only CLONE_INTO_CGROUP is missing: try without it.
                    NO_CLONE_INTO_CGROUP.store(true, Ordering::Relaxed);
                    into = None;
                }
                other => break other.map(|(pid, pidfd)| Child::with_pidfd(pid, pidfd)),
            }
        };
        let _ = CHILD_STACK.try_with(|s| *s.borrow_mut() = Some(stack));
        result
    }
}

fn program_cwd(prepared: &Prepared) -> Option<String> {
    prepared.cwd.as_ref().map(|c| c.to_string_lossy().into_owned())
}
