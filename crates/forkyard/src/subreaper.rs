//! The child subreaper flag and the parent-death signal.
//!
//! Why this module exists: the seed says an orphan "is handed to PID 1". Since Linux 3.4 a
//! process can ask to be that adopter for its own descendants (`PR_SET_CHILD_SUBREAPER`),
//! which is how `forkyard init` works when it is not PID 1 and how `forkyard up` catches the
//! grandchildren of its services. The opposite direction, a child that must not outlive its
//! parent, is `PR_SET_PDEATHSIG`, which has a race that the helper here closes.

use crate::error::{Error, Result};
use crate::pid::Pid;
use crate::signal::Signal;
use crate::sys;

/// Makes the calling process (or stops it being) the subreaper of its descendants: orphans
/// below it are re-parented to it instead of to PID 1. A subreaper must reap them, or they
/// pile up as zombies; use a [`crate::Reaper`] with [`crate::Scope::All`].
///
/// ```
/// forkyard::subreaper::set_child_subreaper(true)?; // orphans of our descendants come to us
/// assert!(forkyard::subreaper::is_child_subreaper()?);
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn set_child_subreaper(on: bool) -> Result<()> {
    // SAFETY: prctl with an integer argument; no memory is passed.
    sys::cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, libc::c_ulong::from(on), 0, 0, 0) })
        .map_err(|e| Error::sys("prctl(PR_SET_CHILD_SUBREAPER)", "this process", e))?;
    Ok(())
}

/// Whether the calling process is a child subreaper.
///
/// ```
/// assert!(!forkyard::subreaper::is_child_subreaper()?); // until set_child_subreaper(true)
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn is_child_subreaper() -> Result<bool> {
    let mut flag: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the pointer, which is valid.
    sys::cvt(unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut flag as *mut libc::c_int, 0, 0, 0) })
        .map_err(|e| Error::sys("prctl(PR_GET_CHILD_SUBREAPER)", "this process", e))?;
    Ok(flag != 0)
}

/// Asks the kernel to send `signal` to the calling process when its parent dies (`None`
/// clears it). `parent` is the PID the caller believes is its parent, normally read before
/// the fork that created it.
///
/// The parent may already have died between that fork and this call, in which case the
/// kernel will never send the signal; the `getppid()` check after `prctl` catches that, and
/// the call then returns [`Error::Sys`] with `ESRCH` so the caller can exit.
///
/// Beware: the signal fires when the parent **thread** that forked us exits, not the whole
/// parent process; fork from a thread that lives as long as the child should.
///
/// ```
/// use forkyard::{Pid, Signal};
/// use forkyard::subreaper::{parent_death_signal, set_parent_death_signal};
///
/// set_parent_death_signal(Some(Signal::TERM), Pid::parent())?;
/// assert_eq!(parent_death_signal()?, Some(Signal::TERM));
/// set_parent_death_signal(None, Pid::parent())?;
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn set_parent_death_signal(signal: Option<Signal>, parent: Pid) -> Result<()> {
    let raw = signal.map_or(0, Signal::as_raw) as libc::c_ulong;
    // SAFETY: prctl with an integer argument; no memory is passed.
    sys::cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, raw, 0, 0, 0) })
        .map_err(|e| Error::sys("prctl(PR_SET_PDEATHSIG)", "this process", e))?;
    if signal.is_some() && Pid::parent() != parent {
        return Err(Error::sys(
            "getppid",
            format!("this process (its parent {parent} died before the parent-death signal was set)"),
            std::io::Error::from_raw_os_error(libc::ESRCH),
        ));
    }
    Ok(())
}

/// The parent-death signal of the calling process, if one is set.
///
/// ```
/// use forkyard::Signal;
/// use forkyard::subreaper::parent_death_signal;
///
/// assert_eq!(parent_death_signal()?, None); // not set unless asked for
/// // run_in_child asks for SIGKILL in its child.
/// assert_eq!(forkyard::run_in_child(|| parent_death_signal().ok().flatten())?, Some(Signal::KILL));
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn parent_death_signal() -> Result<Option<Signal>> {
    let mut raw: libc::c_int = 0;
    // SAFETY: PR_GET_PDEATHSIG writes one int through the pointer, which is valid.
    sys::cvt(unsafe { libc::prctl(libc::PR_GET_PDEATHSIG, &mut raw as *mut libc::c_int, 0, 0, 0) })
        .map_err(|e| Error::sys("prctl(PR_GET_PDEATHSIG)", "this process", e))?;
    Ok(Signal::new(raw))
}
