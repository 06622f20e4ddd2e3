//! Everything init does once, before its loop: become the reaper of what the command leaves
//! (or find that it already is), block the signals it will read, give up the terminal, start
//! the command, and close what it inherited if asked.
//!
//! Why this module exists: the order matters and each step has a peer that gets it slightly
//! wrong (a subreaper flag inherited across `execve` not noticed; a signal arriving between
//! the fork and the mask; a launcher's pipe held open by init for the container's whole
//! life). Kept apart from the loop, the order reads top to bottom.

use std::os::fd::RawFd;
use std::process::Command;

use forkyard::error::StartStep;
use forkyard::spawn::Launch;
use forkyard::subreaper::{is_child_subreaper, set_child_subreaper, set_parent_death_signal};
use forkyard::{Child, Disposition, Error, Pid, Signal, SignalFd};

use crate::event::{Event, Reaping, Report};
use crate::run::Failure;
use crate::{Init, Subreaper};

/// What the loop works with once the command runs.
pub(crate) struct Started {
    /// The command (a pidfd when the kernel has them, so signals never reach a recycled PID).
    pub main: Child,
    /// Every signal init takes, SIGCHLD included, read in blocking batches.
    pub signals: SignalFd,
    /// Signals the kernel sent init itself when it gave up its terminal, dropped once each.
    pub ignore_once: Vec<Signal>,
}

/// Whether the calling process is PID 1 of its namespace.
pub(crate) fn is_pid1() -> bool {
    Pid::this() == Pid::INIT
}

/// Finds out how orphans will reach init, becoming a subreaper if asked and needed. A flag
/// inherited from the launcher counts: the kernel keeps it across `execve`.
pub(crate) fn become_reaper(subreaper: Subreaper, report: &mut dyn Report) -> Result<Reaping, Failure> {
    if is_pid1() {
        return Ok(Reaping::AsPid1);
    }
    // Kernels before 3.4 know no such flag: then nobody set it.
    if is_child_subreaper().unwrap_or(false) {
        return Ok(Reaping::AsInheritedSubreaper);
    }
    match subreaper {
        Subreaper::No => Ok(Reaping::No),
        Subreaper::Try | Subreaper::Require => match set_child_subreaper(true) {
            Ok(()) => Ok(Reaping::AsSubreaper),
            Err(e) if subreaper == Subreaper::Require => Err(Failure::Setup(e)),
            Err(e) => {
                report.event(&Event::NoSubreaper { error: &e });
                Ok(Reaping::No)
            }
        },
    }
}

/// Blocks every signal init takes (SIGCHLD included) and opens the blocking signalfd it reads
/// them from. SIGCHLD must not be ignored, or the kernel discards the exit statuses.
pub(crate) fn take_signals(init: &Init) -> Result<SignalFd, Error> {
    if Signal::CHLD.disposition()? == Disposition::Ignore {
        Signal::CHLD.set_disposition(Disposition::Default)?;
    }
    let set = init.taken_signals();
    set.block()?;
    SignalFd::blocking(&set)
}

/// Runs the setup and starts the command.
pub(crate) fn start(init: &Init, report: &mut dyn Report) -> Result<Started, Failure> {
    let Some((program, args)) = init.command.split_first() else {
        return Err(Failure::NoCommand);
    };
    // The descriptors init inherited, listed before it opens any of its own.
    let inherited_fds = if init.closes_inherited_fds() { forkyard::procs::open_fds() } else { Vec::new() };
    let reaping = become_reaper(init.subreaper, report)?;
    report.event(&Event::Reaping(reaping));
    if let Some(signal) = init.parent_death_signal {
        set_parent_death_signal(Some(signal), Pid::parent()).map_err(Failure::Setup)?;
    }

    // Every signal is blocked and read from a descriptor; the command gets back the mask
    // (and the dispositions init touches) that init inherited.
    let signals = take_signals(init).map_err(Failure::Setup)?;

    let mut ignore_once = Vec::new();
    if init.detach_terminal {
        // SAFETY: TIOCNOTTY takes no argument; on a non-terminal it fails harmlessly.
        if unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCNOTTY) } == 0 {
            // SAFETY: getsid(0) and getpid have no preconditions.
            let leader = unsafe { libc::getsid(0) == libc::getpid() };
            if leader {
                ignore_once = vec![Signal::HUP, Signal::CONT];
            }
            report.event(&Event::DetachedTerminal { was_session_leader: leader });
        } else {
            report.event(&Event::DetachTerminalFailed { error: &std::io::Error::last_os_error() });
        }
    }

    let mut launch = Launch::new()
        .group(init.group)
        .foreground(true)
        .signal_mask(init.inherited.mask)
        .dispositions(init.inherited.dispositions())
        .pass_listen_pid(init.pass_listen_pid);
    launch.announce = init.child_announce.clone();
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
    let main = launch.spawn(&mut command).map_err(|e| match e {
        Error::Start { step: StartStep::Exec, source, .. } => {
            Failure::Exec { program: program.to_string_lossy().into_owned(), error: source }
        }
        other => Failure::Setup(other),
    })?;
    report.event(&Event::Started { pid: main.pid(), command: &init.command });
    close_all(&inherited_fds);
    Ok(Started { main, signals, ignore_once })
}

/// Closes what init inherited above standard error (the command has its own copies by now).
/// The list was taken while they were all open, so no number in it can be one of init's own.
fn close_all(fds: &[RawFd]) {
    for &fd in fds.iter().filter(|&&fd| fd > 2) {
        // SAFETY: the caller of `Init::close_inherited_fds` promised that nothing in this
        // process owns these descriptors.
        unsafe { libc::close(fd) };
    }
}
