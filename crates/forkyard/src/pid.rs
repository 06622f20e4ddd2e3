//! Process IDs as their own type.
//!
//! A bare `i32` invites mixing up PIDs, process-group IDs, exit codes and signal numbers, and
//! `kill(-pid)` versus `kill(pid)` is a one-character bug. `Pid` is always a single, positive
//! process ID; group-wide operations take it explicitly and say so in their names.

use std::fmt;

/// The ID of one process (always greater than zero).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Pid(i32);

impl Pid {
    /// Wraps a raw PID, or returns `None` unless it is greater than zero (0 and negative
    /// numbers mean "my group" or "that group" to the kernel, never one process).
    pub fn new(raw: i32) -> Option<Pid> {
        (raw > 0).then_some(Pid(raw))
    }

    /// The PID of the calling process.
    pub fn this() -> Pid {
        // SAFETY: getpid has no preconditions and cannot fail.
        Pid(unsafe { libc::getpid() })
    }

    /// The PID of the calling process's parent, as the kernel sees it now (after the parent
    /// died this is the subreaper or PID 1 that adopted us).
    pub fn parent() -> Pid {
        // SAFETY: getppid has no preconditions and cannot fail.
        Pid(unsafe { libc::getppid() })
    }

    /// The raw number, for system calls and for printing.
    pub fn as_raw(self) -> i32 {
        self.0
    }

    /// `Pid(1)`: the init process of the current PID namespace.
    pub const INIT: Pid = Pid(1);
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pid({})", self.0)
    }
}

impl From<Pid> for i32 {
    fn from(pid: Pid) -> i32 {
        pid.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_numbers_are_pids() {
        assert_eq!(Pid::new(0), None);
        assert_eq!(Pid::new(-5), None);
        assert_eq!(Pid::new(42).map(Pid::as_raw), Some(42));
    }

    #[test]
    fn this_and_parent_match_the_kernel() {
        assert_eq!(Pid::this().as_raw(), std::process::id() as i32);
        assert_eq!(Pid::parent().as_raw(), std::os::unix::process::parent_id() as i32);
    }
}
