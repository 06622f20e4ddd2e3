//! The PID-1 loop behind `forkyard init`: start one command, forward signals to it, collect
//! every zombie, and end with the command's status without losing the work of the processes
//! it leaves behind.
//!
//! Why this module exists: in a container the first process is PID 1. The kernel gives it
//! every orphan to collect, delivers it no signal it has not asked for, and kills the whole
//! namespace the moment it exits. A shell or an application is a poor PID 1; tini,
//! dumb-init and catatonit exist to be a good one, and each has gaps. [`Init`] is
//! configurable enough to behave as any of them (the binary's compatibility modes pick the
//! settings) and adds what they lack: a grace period for the processes left when the
//! command exits, or waiting for them.
//!
//! The loop is event-driven: one blocking signalfd for every catchable signal, SIGCHLD
//! included, read in batches (one `read` per wake-up, as catatonit does; `poll` only while a
//! grace period has a deadline), and a [`Reaper`] swept when SIGCHLD was among them. An idle
//! init never wakes up. What happens is reported as [`Event`]s, which an
//! [`Init::report`] function turns into lines on standard error (each compatibility mode
//! words them as its peer does).

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::procs::{ScanOptions, Snapshot};
use crate::spawn::{Group, Launch};
use crate::subreaper::{set_child_subreaper, set_parent_death_signal};
use crate::{Disposition, ExitStatus, Pid, Reaper, Scope, Signal, SignalFd, SignalSet, Strategy};

/// What init's process inherited, captured before it changes anything, so the command
/// starts with the same.
#[derive(Clone, Copy, Debug)]
pub struct Inherited {
    /// The signal mask.
    pub mask: SignalSet,
    /// SIGCHLD's disposition (init must not ignore it, or exit statuses are lost).
    pub sigchld: Disposition,
    /// SIGPIPE's disposition (`std::process::Command` resets it in its children).
    pub sigpipe: Disposition,
}

impl Inherited {
    /// Reads them now. Call this first: a Rust program's runtime sets SIGPIPE to "ignore"
    /// before `main`, so an exact picture needs a `#![no_main]` binary (as `forkyard` is).
    pub fn capture() -> Result<Inherited> {
        Ok(Inherited {
            mask: SignalSet::thread_mask()?,
            sigchld: Signal::CHLD.disposition()?,
            sigpipe: Signal::PIPE.disposition()?,
        })
    }

    /// The dispositions to hand a started command back: SIGPIPE's always (the Rust runtime
    /// and `std::process` change it), SIGCHLD's if it was ignored.
    pub fn dispositions(&self) -> Vec<(Signal, Disposition)> {
        let mut list = vec![(Signal::PIPE, self.sigpipe)];
        if self.sigchld == Disposition::Ignore {
            list.push((Signal::CHLD, Disposition::Ignore));
        }
        list
    }
}

/// Who receives the signals init forwards while the command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardTo {
    /// The command's process only.
    Child,
    /// The command's whole process group (or session).
    Group,
}

/// What init does when the command has exited and other processes remain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterExit {
    /// Exit at once (tini, catatonit). In a PID namespace the kernel then SIGKILLs the rest.
    Exit,
    /// Send SIGTERM to every remaining descendant, wait until they have all exited or this
    /// long has passed, SIGKILL what is left, collect everything, then exit.
    Grace(Duration),
    /// Keep collecting until every descendant has exited on its own.
    WaitAll,
}

/// What init does with SIGTSTP, SIGTTIN and SIGTTOU (unless [`Init::ignore`] drops them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobControl {
    /// Forward them like any other signal (init itself is not stopped).
    Forward,
    /// Forward them, then stop init too until SIGCONT (dumb-init). With `as_sigstop`, they
    /// are forwarded as SIGSTOP unless rewritten.
    StopWithChild {
        /// Forward SIGSTOP instead.
        as_sigstop: bool,
    },
}

/// Whether init becomes a child subreaper when it is not PID 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subreaper {
    /// Never.
    No,
    /// Yes; if the kernel refuses, warn and carry on.
    Try,
    /// Yes; if the kernel refuses, do not start the command.
    Require,
}

/// How important a message is; [`Init::verbosity`] decides which are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Always shown.
    Error,
    /// Shown at verbosity 0 and above.
    Warn,
    /// Verbosity 1.
    Info,
    /// Verbosity 2.
    Debug,
    /// Verbosity 3.
    Trace,
}

/// Something init did or saw, for its log.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The command started.
    Started {
        /// Its PID.
        pid: Pid,
        /// Its command line.
        command: &'a [OsString],
    },
    /// Init could not become a subreaper (and carries on).
    NoSubreaper {
        /// Why.
        error: &'a Error,
    },
    /// Init is neither PID 1 nor a subreaper: orphans will escape it.
    NotAReaper,
    /// Init gave up its controlling terminal.
    DetachedTerminal {
        /// Whether it led the session (the kernel then sends the SIGHUP and SIGCONT that
        /// init ignores once).
        was_session_leader: bool,
    },
    /// Init could not give up a terminal (usually: it has none).
    DetachTerminalFailed {
        /// The error.
        error: &'a std::io::Error,
    },
    /// A signal arrived (SIGCHLD included).
    Received {
        /// The signal.
        signal: Signal,
    },
    /// A SIGHUP or SIGCONT caused by giving up the terminal was dropped.
    IgnoredHandoff {
        /// The signal.
        signal: Signal,
    },
    /// A signal on [`Init::ignore`] was dropped.
    Ignored {
        /// The signal.
        signal: Signal,
    },
    /// A signal is forwarded as another.
    Translated {
        /// What arrived.
        from: Signal,
        /// What is forwarded.
        to: Signal,
    },
    /// A signal rewritten to nothing was dropped.
    Dropped {
        /// The signal.
        signal: Signal,
    },
    /// A signal was sent to the command (and its group, with `group`).
    Forwarded {
        /// The signal sent.
        signal: Signal,
        /// The command.
        pid: Pid,
        /// Whether its whole group got it.
        group: bool,
    },
    /// A signal could not be sent to the command.
    ForwardFailed {
        /// The signal.
        signal: Signal,
        /// Why.
        error: &'a Error,
    },
    /// After the command exited, a signal went to everything it left behind.
    ForwardedToRemaining {
        /// The signal.
        signal: Signal,
        /// How many processes got it (as PID 1: 1 for "some").
        count: usize,
    },
    /// Init stops itself along with the command (job control).
    Suspending,
    /// A process was collected.
    Reaped {
        /// Its PID.
        pid: Pid,
        /// How it ended.
        status: ExitStatus,
        /// Whether it was the command.
        main: bool,
        /// Whether the user asked for a warning per collected process (tini's `-w`).
        warn: bool,
    },
    /// The command has exited: SIGTERM (or its rewrite) was sent on to its group or to the
    /// command itself (`sent`: whether anything received it).
    TermOnExit {
        /// The signal.
        signal: Signal,
        /// Whether a process received it.
        sent: bool,
    },
    /// The command has exited; init will exit with `code` (at once, or once the rest is done).
    MainExited {
        /// The command's status.
        status: ExitStatus,
        /// Init's exit code.
        code: i32,
    },
    /// The grace period started: SIGTERM went to `signalled` remaining processes.
    GraceStarted {
        /// How many.
        signalled: usize,
        /// How long they have.
        grace: Duration,
    },
    /// Waiting for the remaining processes to exit on their own.
    WaitingForAll,
    /// The grace period is over: SIGKILL went to `killed` processes.
    GraceOver {
        /// How many.
        killed: usize,
    },
    /// Everything has exited; init exits with `code`.
    Exiting {
        /// The code.
        code: i32,
    },
    /// Init could not set itself up (the command was not started); it exits with 1.
    SetupFailed {
        /// Why.
        error: &'a Error,
    },
}

/// Writes an event to the log through a [`LogSink`] (nothing, if it has nothing to say).
pub type Reporter = fn(&Event<'_>, &LogSink);

/// Where a [`Reporter`] writes: standard error, one line per call, filtered by verbosity
/// *before* anything is formatted (a busy init reports thousands of events it never shows).
/// Writing never fails: a closed stderr must not take PID 1 down.
#[derive(Debug)]
pub struct LogSink {
    verbosity: i32,
}

impl LogSink {
    /// Whether a message of this level is shown.
    pub fn shows(&self, level: Level) -> bool {
        let needed = match level {
            Level::Error => i32::MIN,
            Level::Warn => 0,
            Level::Info => 1,
            Level::Debug => 2,
            Level::Trace => 3,
        };
        self.verbosity >= needed
    }

    /// Writes one line, if `level` is shown.
    pub fn say(&self, level: Level, args: std::fmt::Arguments<'_>) {
        if self.shows(level) {
            let mut line = Vec::with_capacity(128);
            let _ = line.write_fmt(args);
            line.push(b'\n');
            let _ = std::io::stderr().write_all(&line);
        }
    }
}

/// forkyard's own wording: `forkyard init: ...`.
pub fn forkyard_report(event: &Event<'_>, out: &LogSink) {
    forkyard_words(event, out, "forkyard init")
}

/// forkyard's wording after another prefix (a compatibility mode's name).
pub fn forkyard_words(event: &Event<'_>, out: &LogSink, p: &str) {
    use Event::*;
    use Level::*;
    match event {
        Started { pid, command } if out.shows(Info) => {
            let cmd: Vec<_> = command.iter().map(|a| a.to_string_lossy()).collect();
            out.say(Info, format_args!("{p}: started {pid}: {}", cmd.join(" ")));
        }
        NoSubreaper { error } => {
            out.say(Warn, format_args!("{p}: warning: {error}; orphans will not be collected by this init"))
        }
        NotAReaper => out.say(
            Warn,
            format_args!(
                "{p}: warning: not PID 1 and not a child subreaper, so orphaned processes will not be collected here"
            ),
        ),
        DetachedTerminal { was_session_leader: true } => {
            out.say(Debug, format_args!("{p}: gave up the terminal; ignoring the first SIGHUP and SIGCONT"))
        }
        IgnoredHandoff { signal } => {
            out.say(Debug, format_args!("{p}: ignored {signal} (caused by giving up the terminal)"))
        }
        Ignored { signal } => out.say(Debug, format_args!("{p}: ignored {signal}")),
        Translated { from, to } => out.say(Debug, format_args!("{p}: {from} is forwarded as {to}")),
        Dropped { signal } => out.say(Info, format_args!("{p}: dropped {signal}")),
        Forwarded { signal, pid, group: false } => out.say(Info, format_args!("{p}: forwarded {signal} to {pid}")),
        Forwarded { signal, pid, group: true } => {
            out.say(Info, format_args!("{p}: forwarded {signal} to the group of {pid}"))
        }
        ForwardFailed { signal, error } => out.say(Info, format_args!("{p}: could not forward {signal}: {error}")),
        ForwardedToRemaining { signal, count } => {
            out.say(Info, format_args!("{p}: forwarded {signal} to {count} remaining process(es)"))
        }
        Suspending => out.say(Debug, format_args!("{p}: stopping until SIGCONT")),
        Reaped { pid, status, main: true, .. } => out.say(Info, format_args!("{p}: {pid} {status}")),
        Reaped { pid, status, warn: true, .. } => {
            out.say(Warn, format_args!("{p}: warning: collected zombie {pid} ({status})"))
        }
        Reaped { pid, status, .. } => out.say(Info, format_args!("{p}: collected zombie {pid} ({status})")),
        GraceStarted { signalled, grace } => out
            .say(Info, format_args!("{p}: sent SIGTERM to {signalled} remaining process(es); waiting up to {grace:?}")),
        WaitingForAll => out.say(Info, format_args!("{p}: waiting for the remaining processes to exit")),
        GraceOver { killed } => out
            .say(Warn, format_args!("{p}: warning: grace period over: sent SIGKILL to {killed} remaining process(es)")),
        Exiting { code } => out.say(Info, format_args!("{p}: every process has exited; exiting with {code}")),
        SetupFailed { error } => out.say(Error, format_args!("{p}: {error}")),
        _ => {}
    }
}

/// How init reports a command that could not be executed: the exit code, and the message,
/// for the program and the `exec` error.
pub type ExecFailure = fn(&str, &std::io::Error) -> (i32, String);

/// The shell's convention: 127 when the program does not exist, 126 when it exists but
/// cannot be run.
pub fn shell_exec_failure(program: &str, error: &std::io::Error) -> (i32, String) {
    let code = match error.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => 127,
        _ => 126,
    };
    let hint = if code == 127 { "is it installed and in PATH?" } else { "is it executable?" };
    (code, format!("forkyard init: cannot run '{program}': {} ({hint})", crate::error::strerror(error)))
}

/// Everything `forkyard init` (or one of its compatibility modes) is asked to do.
#[derive(Clone, Debug)]
pub struct Init {
    /// The command and its arguments; `argv[0]` is searched in `PATH`.
    pub command: Vec<OsString>,
    /// What init inherited ([`Inherited::capture`]).
    pub inherited: Inherited,
    /// Who gets forwarded signals.
    pub forward_to: ForwardTo,
    /// The command's own process group (default) or its own session.
    pub group: Group,
    /// Signal rewrites: `(from, Some(to))` forwards `to` instead, `(from, None)` drops it.
    pub rewrite: Vec<(Signal, Option<Signal>)>,
    /// Exit-code rewrites applied to the final status: `(from, to)`.
    pub remap_exit: Vec<(u8, u8)>,
    /// A signal init receives when its own parent dies.
    pub parent_death_signal: Option<Signal>,
    /// Become a subreaper when not PID 1.
    pub subreaper: Subreaper,
    /// Report when neither PID 1 nor a subreaper (tini does).
    pub warn_not_reaper: bool,
    /// Warn about each collected process other than the command (tini's `-w`).
    pub warn_reaped: bool,
    /// -1: errors only; 0: and warnings; 1: each start, exit, collected zombie and forwarded
    /// signal; 2 and 3: more detail.
    pub verbosity: i32,
    /// Words the events for the log (always on standard error).
    pub report: Reporter,
    /// A line the command's process writes to standard error once its setup is done, before
    /// `exec` (dumb-init's `setsid complete.` in debug mode).
    pub child_announce: Option<Vec<u8>>,
    /// Signals init takes and drops: neither forwarded nor acted on.
    pub ignore: Vec<Signal>,
    /// Signals init leaves unblocked, so their default action applies to init itself (tini
    /// and catatonit do this for SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS).
    pub leave_unblocked: Vec<Signal>,
    /// What happens when the command exits.
    pub after_exit: AfterExit,
    /// What happens with the terminal-stop signals.
    pub job_control: JobControl,
    /// When the command exits, send SIGTERM (through the rewrites) to where forwarded signals
    /// go (dumb-init), before anything else.
    pub term_on_exit: bool,
    /// Give up init's controlling terminal before starting the command, and if init was the
    /// session leader, ignore the SIGHUP and SIGCONT that this sends (dumb-init).
    pub detach_terminal: bool,
    /// Move init (not the command) to `/` (dumb-init), so it keeps no directory busy.
    pub chdir_root: bool,
    /// Rewrite `LISTEN_PID` from init's PID to the command's (catatonit).
    pub pass_listen_pid: bool,
    /// Close every inherited descriptor above standard error in init once the command has
    /// started (catatonit).
    pub close_inherited_fds: bool,
    /// The exit code and message for a command that could not be executed.
    pub exec_failure: ExecFailure,
}

impl Init {
    /// The defaults of `forkyard init`: own process group, signals to the command,
    /// subreaper when not PID 1, a 5 s grace period, 127/126 for exec failures.
    pub fn new(command: Vec<OsString>, inherited: Inherited) -> Init {
        Init {
            command,
            inherited,
            forward_to: ForwardTo::Child,
            group: Group::Own,
            rewrite: Vec::new(),
            remap_exit: Vec::new(),
            parent_death_signal: None,
            subreaper: Subreaper::Try,
            warn_not_reaper: false,
            warn_reaped: false,
            verbosity: 0,
            report: forkyard_report,
            child_announce: None,
            ignore: Vec::new(),
            leave_unblocked: Vec::new(),
            after_exit: AfterExit::Grace(Duration::from_secs(5)),
            job_control: JobControl::Forward,
            term_on_exit: false,
            detach_terminal: false,
            chdir_root: false,
            pass_listen_pid: false,
            close_inherited_fds: false,
            exec_failure: shell_exec_failure,
        }
    }
}

/// Init's log: the mode's reporter and the sink it writes to.
struct Log {
    report: Reporter,
    sink: LogSink,
}

impl Log {
    fn new(init: &Init) -> Log {
        Log { report: init.report, sink: LogSink { verbosity: init.verbosity } }
    }

    fn event(&self, event: Event<'_>) {
        (self.report)(&event, &self.sink);
    }
}

/// Every signal init takes through its signalfd: all that can be blocked except SIGCHLD,
/// which the reaper reads, and `leave_unblocked`. The synchronous ones (SIGSEGV, SIGBUS,
/// ...) are blocked by default: a real fault in init is delivered regardless of the mask,
/// and one sent with `kill` is then forwarded like any other.
fn forwarded_set(leave_unblocked: &[Signal]) -> SignalSet {
    let mut set: SignalSet = Signal::all().filter(|s| s.is_catchable() && !leave_unblocked.contains(s)).collect();
    set.remove(Signal::CHLD);
    set
}

/// Blocks every signal init handles (SIGCHLD included) and opens the reaper and the
/// blocking signalfd it reads them from.
fn take_signals(init: &Init) -> Result<(Reaper, SignalFd)> {
    let mut all = forwarded_set(&init.leave_unblocked);
    all.insert(Signal::CHLD);
    all.block()?;
    Ok((Reaper::new(Strategy::Manual, Scope::All)?, SignalFd::blocking(&all)?))
}

/// Is the process init (PID 1 of its namespace)?
fn is_pid1() -> bool {
    Pid::this() == Pid::INIT
}

/// Sends `signal` to every descendant of init: `kill(-1)` as PID 1 (every process in the
/// namespace but init), otherwise each process below init in `/proc`. Returns how many were
/// signalled (as PID 1: whether any was).
fn signal_descendants(signal: Signal) -> usize {
    if is_pid1() {
        // SAFETY: kill(-1, sig) signals every process we may signal except ourselves.
        let ret = unsafe { libc::kill(-1, signal.as_raw()) };
        return usize::from(ret == 0);
    }
    let Ok(snap) = Snapshot::take_with(ScanOptions { cmdline: false, threads: 1 }) else { return 0 };
    snap.descendants(Pid::this()).iter().filter(|p| !p.is_zombie()).filter(|p| signal.send(p.pid).is_ok()).count()
}

/// Whether init has any child left, running or zombie (no child means no descendant).
fn has_children() -> bool {
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: WNOWAIT leaves any child waitable; `info` is valid for writes.
    let ret = unsafe { libc::waitid(libc::P_ALL, 0, info.as_mut_ptr(), libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    !(ret == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
}

/// Where the loop is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// The command runs.
    Running,
    /// The command has exited; the others are being waited for (until the deadline, if any).
    Draining { deadline: Option<Instant> },
    /// The grace period is over; everything left has been sent SIGKILL.
    Killing,
}

/// Runs init to the end and returns its exit code. Never panics: every failure is logged
/// and becomes an exit code (1 for a setup failure, [`Init::exec_failure`] for a command that
/// cannot be executed).
pub fn run(init: &Init) -> i32 {
    let log = Log::new(init);
    match run_inner(init, &log) {
        Ok(code) => code,
        Err(Failure::Exec(program, e)) => {
            let (code, message) = (init.exec_failure)(&program, &e);
            log.sink.say(Level::Error, format_args!("{message}"));
            code
        }
        Err(Failure::Setup(e)) => {
            log.event(Event::SetupFailed { error: &e });
            1
        }
    }
}

enum Failure {
    Setup(Error),
    Exec(String, std::io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Setup(e)
    }
}

fn run_inner(init: &Init, log: &Log) -> std::result::Result<i32, Failure> {
    let Some((program, args)) = init.command.split_first() else {
        return Err(Failure::Setup(Error::Unsupported {
            what: "starting nothing",
            why: "give a command to run".into(),
        }));
    };
    // The descriptors init inherited, listed before it opens any of its own.
    let inherited_fds = if init.close_inherited_fds { open_fds() } else { Vec::new() };
    let pid1 = is_pid1();
    let mut reaping = pid1;
    if !pid1 && init.subreaper != Subreaper::No {
        match set_child_subreaper(true) {
            Ok(()) => reaping = true,
            Err(e) if init.subreaper == Subreaper::Require => return Err(e.into()),
            Err(e) => log.event(Event::NoSubreaper { error: &e }),
        }
    }
    if !reaping && init.warn_not_reaper {
        log.event(Event::NotAReaper);
    }
    if let Some(signal) = init.parent_death_signal {
        set_parent_death_signal(Some(signal), Pid::parent())?;
    }

    // Every signal is blocked and read from descriptors; the command gets back the mask
    // (and the dispositions we touch) that init inherited.
    let (mut reaper, signals) = take_signals(init)?;

    // Signals the kernel sends init itself when it gives up its terminal.
    let mut ignore_once: Vec<Signal> = Vec::new();
    if init.detach_terminal {
        // SAFETY: TIOCNOTTY takes no argument; on a non-terminal it fails harmlessly.
        if unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCNOTTY) } == 0 {
            // SAFETY: getsid(0) and getpid have no preconditions.
            let leader = unsafe { libc::getsid(0) == libc::getpid() };
            if leader {
                ignore_once = vec![Signal::HUP, Signal::CONT];
            }
            log.event(Event::DetachedTerminal { was_session_leader: leader });
        } else {
            log.event(Event::DetachTerminalFailed { error: &std::io::Error::last_os_error() });
        }
    }

    let launch = Launch {
        group: init.group,
        foreground: true,
        signal_mask: Some(init.inherited.mask),
        dispositions: init.inherited.dispositions(),
        parent_death_signal: None,
        credentials: None,
        pass_listen_pid: init.pass_listen_pid,
        announce: init.child_announce.clone(),
        cgroup: None,
    };
    let mut command = Command::new(program);
    command.args(args);
    if init.chdir_root {
        // Move first and send the command back to where init started, so that nothing can
        // see init in its old directory once the command runs.
        if let Ok(cwd) = std::env::current_dir() {
            command.current_dir(cwd);
            // SAFETY: chdir with a valid NUL-terminated path.
            unsafe { libc::chdir(c"/".as_ptr()) };
        }
    }
    let child = launch.spawn(&mut command).map_err(|e| match e {
        Error::Sys { source, .. } => Failure::Exec(program.to_string_lossy().into_owned(), source),
        other => Failure::Setup(other),
    })?;
    let main = reaper.watch(child)?;
    log.event(Event::Started { pid: main, command: &init.command });
    for fd in inherited_fds.into_iter().filter(|fd| *fd > 2) {
        // SAFETY: a descriptor init inherited and never wrapped in an owner; the command has
        // its own copy by now.
        unsafe { libc::close(fd) };
    }

    let mut phase = Phase::Running;
    let mut exit: Option<(ExitStatus, i32)> = None;
    let mut batch = [crate::signal::SignalInfo::default(); 16];
    loop {
        let timeout = match phase {
            Phase::Running | Phase::Draining { deadline: None } => None,
            Phase::Draining { deadline: Some(d) } => Some(d.saturating_duration_since(Instant::now())),
            // While killing, look again now and then for processes forked after the sweep.
            Phase::Killing => Some(Duration::from_millis(100)),
        };
        // With no deadline, block in read; otherwise wait for readiness first.
        let ready = match timeout {
            None => true,
            Some(t) => {
                let mut fds = [libc::pollfd { fd: signals.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 }];
                crate::sys::poll(&mut fds, Some(t)).map_err(|e| Error::sys("poll", "init's signalfd", e))? > 0
            }
        };
        let n = if ready { signals.read_batch(&mut batch)? } else { 0 };
        let mut chld = false;
        for info in &batch[..n] {
            let signal = info.signal;
            log.event(Event::Received { signal });
            if signal == Signal::CHLD {
                chld = true;
                continue;
            }
            if let Some(i) = ignore_once.iter().position(|s| *s == signal) {
                ignore_once.remove(i);
                log.event(Event::IgnoredHandoff { signal });
                continue;
            }
            if init.ignore.contains(&signal) {
                log.event(Event::Ignored { signal });
                continue;
            }
            forward(init, log, signal, main, phase, &reaper);
        }
        // Without a SIGCHLD nothing can have ended (timeouts sweep anyway, to be sure).
        if chld || !ready {
            for reaped in reaper.try_reap()? {
                let is_main = reaped.pid == main;
                log.event(Event::Reaped {
                    pid: reaped.pid,
                    status: reaped.status,
                    main: is_main,
                    warn: init.warn_reaped,
                });
                if is_main {
                    exit = Some((reaped.status, exit_code(init, reaped.status)));
                }
            }
        }

        let Some((status, code)) = exit else { continue };
        match phase {
            Phase::Running => {
                if init.term_on_exit {
                    if let Some(Some(signal)) = rewrite(init, Signal::TERM) {
                        let sent = match init.forward_to {
                            ForwardTo::Group => signal.send_group(main).is_ok(),
                            // The command itself is collected already: nothing to reach.
                            ForwardTo::Child => false,
                        };
                        log.event(Event::TermOnExit { signal, sent });
                    }
                }
                log.event(Event::MainExited { status, code });
                match init.after_exit {
                    AfterExit::Exit | AfterExit::Grace(Duration::ZERO) => return Ok(code),
                    AfterExit::Grace(grace) => {
                        if !has_children() {
                            return Ok(code);
                        }
                        let signalled = signal_descendants(Signal::TERM);
                        log.event(Event::GraceStarted { signalled, grace });
                        phase = Phase::Draining { deadline: Some(Instant::now() + grace) };
                    }
                    AfterExit::WaitAll => {
                        log.event(Event::WaitingForAll);
                        phase = Phase::Draining { deadline: None };
                    }
                }
            }
            Phase::Draining { deadline } => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    let killed = signal_descendants(Signal::KILL);
                    log.event(Event::GraceOver { killed });
                    phase = Phase::Killing;
                }
            }
            Phase::Killing => {
                signal_descendants(Signal::KILL);
            }
        }
        if phase != Phase::Running && !has_children() {
            log.event(Event::Exiting { code });
            return Ok(code);
        }
    }
}

/// The signal to forward for `signal`: `None` to leave it alone, `Some(None)` to drop it.
fn rewrite(init: &Init, signal: Signal) -> Option<Option<Signal>> {
    init.rewrite.iter().find(|(from, _)| *from == signal).map(|(_, to)| *to).or(Some(Some(signal)))
}

fn forward(init: &Init, log: &Log, signal: Signal, main: Pid, phase: Phase, reaper: &Reaper) {
    let stop = [Signal::TSTP, Signal::TTIN, Signal::TTOU].contains(&signal);
    let rewritten = init.rewrite.iter().any(|(from, _)| *from == signal);
    let target = match (stop, init.job_control) {
        (true, JobControl::StopWithChild { as_sigstop: true }) if !rewritten => Some(Signal::STOP),
        _ => rewrite(init, signal).flatten(),
    };
    match target {
        None => log.event(Event::Dropped { signal }),
        Some(to) if to != signal => log.event(Event::Translated { from: signal, to }),
        Some(_) => {}
    }
    if let Some(target) = target {
        if phase == Phase::Running {
            let group = init.forward_to == ForwardTo::Group;
            let sent = if group { target.send_group(main) } else { reaper.kill(main, target) };
            match sent {
                Ok(()) => log.event(Event::Forwarded { signal: target, pid: main, group }),
                Err(e) => log.event(Event::ForwardFailed { signal: target, error: &e }),
            }
        } else {
            // The command has exited: signals go to whatever it left behind.
            let count = signal_descendants(target);
            log.event(Event::ForwardedToRemaining { signal: target, count });
        }
    }
    if stop && matches!(init.job_control, JobControl::StopWithChild { .. }) {
        log.event(Event::Suspending);
        // SAFETY: raising SIGSTOP on ourselves; it cannot be blocked or caught.
        unsafe { libc::raise(libc::SIGSTOP) };
    }
}

/// The command's status as init's exit code: the shell's number (128 + signal for a signal),
/// then the first matching remap.
fn exit_code(init: &Init, status: ExitStatus) -> i32 {
    let code = (status.shell_code() & 0xff) as u8;
    let code = init.remap_exit.iter().find(|(from, _)| *from == code).map_or(code, |(_, to)| *to);
    i32::from(code)
}

/// The descriptors open now (the directory's own, closed by the time this returns, is
/// left out).
fn open_fds() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    let mut fds: Vec<i32> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    // The last one listed was the directory being read; check each is still open.
    // SAFETY: F_GETFD on any number only reads the descriptor table.
    fds.retain(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1);
    fds
}

/// catatonit's pause mode: no command; collect orphans; exit 0 on SIGTERM or SIGINT and
/// ignore every other signal.
pub fn pause(init: &Init) -> i32 {
    let log = Log::new(init);
    match pause_inner(init, &log) {
        Ok(code) => code,
        Err(e) => {
            log.event(Event::SetupFailed { error: &e });
            1
        }
    }
}

fn pause_inner(init: &Init, log: &Log) -> Result<i32> {
    if !is_pid1() && init.subreaper != Subreaper::No {
        set_child_subreaper(true)?;
    }
    let (mut reaper, signals) = take_signals(init)?;
    let mut batch = [crate::signal::SignalInfo::default(); 16];
    loop {
        let n = signals.read_batch(&mut batch)?;
        for info in &batch[..n] {
            log.event(Event::Received { signal: info.signal });
            if info.signal == Signal::TERM || info.signal == Signal::INT {
                log.event(Event::Exiting { code: 0 });
                return Ok(0);
            }
            if info.signal == Signal::CHLD {
                for reaped in reaper.try_reap()? {
                    log.event(Event::Reaped { pid: reaped.pid, status: reaped.status, main: false, warn: false });
                }
            } else {
                log.event(Event::Ignored { signal: info.signal });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() -> Init {
        let inherited =
            Inherited { mask: SignalSet::empty(), sigchld: Disposition::Default, sigpipe: Disposition::Default };
        Init::new(vec!["true".into()], inherited)
    }

    #[test]
    fn exit_codes_follow_the_shell_and_the_remaps() {
        let mut i = init();
        assert_eq!(exit_code(&i, ExitStatus::Exited(3)), 3);
        let term = ExitStatus::Signaled { signal: Signal::TERM, core_dumped: false };
        assert_eq!(exit_code(&i, term), 143);
        i.remap_exit = vec![(143, 0), (3, 7)];
        assert_eq!(exit_code(&i, term), 0);
        assert_eq!(exit_code(&i, ExitStatus::Exited(3)), 7);
        assert_eq!(exit_code(&i, ExitStatus::Exited(4)), 4);
    }

    #[test]
    fn rewrites_replace_or_drop() {
        let mut i = init();
        i.rewrite = vec![(Signal::TERM, Some(Signal::QUIT)), (Signal::HUP, None)];
        assert_eq!(rewrite(&i, Signal::TERM), Some(Some(Signal::QUIT)));
        assert_eq!(rewrite(&i, Signal::HUP), Some(None));
        assert_eq!(rewrite(&i, Signal::INT), Some(Some(Signal::INT)));
    }

    #[test]
    fn exec_failures_use_the_shell_codes() {
        let errno = std::io::Error::from_raw_os_error;
        assert_eq!(shell_exec_failure("x", &errno(libc::ENOENT)).0, 127);
        assert_eq!(shell_exec_failure("x", &errno(libc::EACCES)).0, 126);
        let (_, message) = shell_exec_failure("nope", &errno(libc::ENOENT));
        assert!(message.starts_with("forkyard init: cannot run 'nope': No such file or directory"), "{message}");
    }

    #[test]
    fn every_catchable_signal_but_sigchld_is_forwarded() {
        let set = forwarded_set(&[]);
        assert!(!forwarded_set(&[Signal::SEGV]).contains(Signal::SEGV));
        assert!(!set.contains(Signal::CHLD));
        for s in [Signal::TERM, Signal::HUP, Signal::SEGV, Signal::TSTP, Signal::rtmin(), Signal::rtmax()] {
            assert!(set.contains(s), "{s}");
        }
    }
}
