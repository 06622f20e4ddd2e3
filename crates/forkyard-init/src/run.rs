//! The loop: a thin driver between the kernel and [`Phases`]. It blocks in one `read` of a
//! signalfd per wake-up (`poll` first only while a deadline runs), forwards what arrived,
//! collects every ended child with `waitpid` (no resource usage, no clock, no allocation per
//! process), and carries out what [`Phases`] decides once the command has exited.
//!
//! Why this module exists: as PID 1 this loop runs for the container's whole life and
//! collects every orphan of it, so it is kept small and does only what is used: an idle init
//! never wakes up, and a storm of orphans costs one read and one `waitpid` per process plus
//! one that finds nothing.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

use forkyard::signal::SignalInfo;
use forkyard::status::WaitEvent;
use forkyard::{Child, Error, ExitStatus, Pid, Signal, SignalFd};

use crate::event::{Event, Report};
use crate::phases::{Act, Phases, exit_code};
use crate::setup::{self, Started};
use crate::{ForwardTo, Init};

/// Why init could not run its command to the end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// [`Init::command`] is empty.
    #[error("starting nothing: give a command to run")]
    NoCommand,
    /// Init could not set itself up (the command was not started), or its loop failed.
    #[error("{0}")]
    Setup(Error),
    /// A system call of init's loop failed.
    #[error("{call} failed in init's loop: {source}")]
    Sys {
        /// The call.
        call: &'static str,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// The command could not be executed (`exec` failed, or the program is missing).
    #[error("cannot run '{program}': {}", forkyard::error::strerror(error))]
    Exec {
        /// The program, as given.
        program: String,
        /// Why `exec` failed.
        #[source]
        error: std::io::Error,
    },
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Setup(e)
    }
}

/// Runs init to the end: starts the command, forwards signals, collects every process, and
/// returns init's exit code (the command's, after the grace period or the wait if
/// [`Init::after_exit`] asks for one). Everything that happens is reported to `report`;
/// nothing is printed.
///
/// Blocks every signal init takes in the calling thread; call it from a single-threaded
/// program (an init is one).
pub fn run(init: &Init, report: &mut dyn Report) -> Result<i32, Failure> {
    let Started { main, signals, mut ignore_once } = setup::start(init, report)?;
    let main_pid = main.pid();
    // The command's handle, until it is collected (by `waitpid(-1)`, which its handle does not
    // see: it is then forgotten rather than dropped, so that its drop does not wait again).
    let mut main = Some(main);
    let mut phases = Phases::new(init.after_exit);
    let mut batch = [SignalInfo::default(); 16];
    loop {
        // With no deadline, block in read; otherwise wait for readiness first. No clock is
        // read while the command runs.
        let timeout = if phases.running() { None } else { phases.timeout(Instant::now()) };
        let ready = match timeout {
            None => true,
            Some(t) => poll_readable(&signals, t)?,
        };
        let n = if ready { signals.read_batch(&mut batch)? } else { 0 };
        let mut chld = false;
        for info in &batch[..n] {
            let signal = info.signal;
            report.event(&Event::Received { signal });
            if signal == Signal::CHLD {
                chld = true;
            } else if let Some(i) = ignore_once.iter().position(|s| *s == signal) {
                ignore_once.swap_remove(i);
                report.event(&Event::IgnoredHandoff { signal });
            } else if init.ignore.contains(&signal) {
                report.event(&Event::Ignored { signal });
            } else {
                forward(init, report, signal, main.as_ref().filter(|_| phases.running()));
            }
        }
        // Without a SIGCHLD nothing can have ended (a timeout sweeps anyway, to be sure).
        let mut exited = None;
        if chld || !ready {
            while let Some((pid, status)) = reap_one()? {
                let is_main = pid == main_pid;
                report.event(&Event::Reaped { pid, status, main: is_main });
                if is_main {
                    std::mem::forget(main.take());
                    exited = Some(status);
                }
            }
        }

        let decision = match exited {
            Some(status) => {
                let code = exit_code(status, &init.remap_exit);
                if init.term_on_exit {
                    term_on_exit(init, report, main_pid);
                }
                report.event(&Event::MainExited { status, code });
                phases.main_exited(code, has_children()?, Instant::now())
            }
            None if phases.running() => continue,
            None => phases.woke(has_children()?, Instant::now()),
        };
        match decision.act {
            Some(Act::StartGrace { grace }) => {
                let signalled = signal_remaining(Signal::TERM);
                report.event(&Event::GraceStarted { signalled, grace });
            }
            Some(Act::WaitForAll) => report.event(&Event::WaitingForAll),
            Some(Act::Kill) => {
                let killed = signal_remaining(Signal::KILL);
                report.event(&Event::GraceOver { killed });
            }
            Some(Act::KillAgain) => {
                signal_remaining(Signal::KILL);
            }
            None => {}
        }
        if let Some(exit) = decision.exit {
            if exit.drained {
                report.event(&Event::Exiting { code: exit.code });
            }
            return Ok(exit.code);
        }
    }
}

/// Sends SIGTERM (through the rewrites) where forwarded signals go, as the command exits.
fn term_on_exit(init: &Init, report: &mut dyn Report, main: Pid) {
    if let Some(signal) = init.rewritten(Signal::TERM) {
        let sent = match init.forward_to {
            ForwardTo::Group => signal.send_group(main).is_ok(),
            // The command itself is collected already: nothing to reach.
            ForwardTo::Child => false,
        };
        report.event(&Event::TermOnExit { signal, sent });
    }
}

/// Forwards `signal` to the command while it runs (`main`), or else to everything it left.
fn forward(init: &Init, report: &mut dyn Report, signal: Signal, main: Option<&Child>) {
    let target = init.forward_target(signal);
    match target {
        None => report.event(&Event::Dropped { signal }),
        Some(to) if to != signal => report.event(&Event::Translated { from: signal, to }),
        Some(_) => {}
    }
    if let Some(target) = target {
        match main {
            Some(main) => {
                let group = init.forward_to == ForwardTo::Group;
                let sent = if group { target.send_group(main.pid()) } else { main.kill(target) };
                match sent {
                    Ok(()) => report.event(&Event::Forwarded { signal: target, pid: main.pid(), group }),
                    Err(e) => report.event(&Event::ForwardFailed { signal: target, error: &e }),
                }
            }
            None => {
                let count = signal_remaining(target);
                report.event(&Event::ForwardedToRemaining { signal: target, count });
            }
        }
    }
    if init.suspends_on(signal) {
        report.event(&Event::Suspending);
        // SAFETY: raising SIGSTOP on ourselves; it cannot be blocked or caught.
        unsafe { libc::raise(libc::SIGSTOP) };
    }
}

/// Sends `signal` to every descendant of init; how many got it (as PID 1: 1 for "some").
fn signal_remaining(signal: Signal) -> usize {
    forkyard::procs::signal_own_descendants(signal).unwrap_or(0)
}

/// Waits up to `timeout` for the signalfd to become readable.
fn poll_readable(signals: &SignalFd, timeout: std::time::Duration) -> Result<bool, Failure> {
    let mut fd = libc::pollfd { fd: signals.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // Rounded up, so that a deadline 0.3 ms away is not polled as 0 ms again and again.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut fd, 1, ms) } {
            -1 if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => continue,
            -1 => return Err(Failure::Sys { call: "poll", source: std::io::Error::last_os_error() }),
            n => return Ok(n > 0),
        }
    }
}

/// Collects one ended child, if any: `waitpid(-1, WNOHANG)`, asking the kernel for no
/// resource usage (nothing here would read it).
pub(crate) fn reap_one() -> Result<Option<(Pid, ExitStatus)>, Failure> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: one valid out-pointer.
        let ret = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if ret > 0 {
            let (Some(pid), Some(status)) = (Pid::new(ret), WaitEvent::from_wait_status(status).exit_status()) else {
                continue;
            };
            return Ok(Some((pid, status)));
        }
        if ret == 0 {
            return Ok(None);
        }
        match std::io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ECHILD) => return Ok(None),
            e if e.raw_os_error() == Some(libc::EINTR) => continue,
            e => return Err(Failure::Sys { call: "waitpid", source: e }),
        }
    }
}

/// Whether init has any child left, running or not yet collected (no child means no
/// descendant: orphans are re-parented to init).
pub(crate) fn has_children() -> Result<bool, Failure> {
    // SAFETY: a zeroed siginfo_t is a valid value of the plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: WNOWAIT leaves any child waitable; `info` is valid for writes.
    let ret = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    if ret == 0 {
        return Ok(true);
    }
    match std::io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::ECHILD) => Ok(false),
        e if e.raw_os_error() == Some(libc::EINTR) => has_children(),
        e => Err(Failure::Sys { call: "waitid", source: e }),
    }
}
