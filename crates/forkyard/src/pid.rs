//! Process IDs as their own type.
//!
//! A bare `i32` invites mixing up PIDs, process-group IDs, exit codes and signal numbers, and
//! `kill(-pid)` versus `kill(pid)` is a one-character bug. `Pid` is always a single, positive
//! process ID; group-wide operations take it explicitly and say so in their names.

use std::fmt;
use std::str::FromStr;

/// The ID of one process (always greater than zero).
///
/// Every way in checks the number: [`Pid::new`], `TryFrom<i32>`, parsing a text, and serde
/// (a deserialized `-1` or `0` is an error naming the value, so it can never reach `kill`).
///
/// ```
/// use forkyard::Pid;
///
/// let pid: Pid = "1234".parse()?;
/// assert_eq!(pid.as_raw(), 1234);
/// assert!(Pid::try_from(-1).is_err()); // -1 means "every process" to kill(2)
/// let err = serde_json::from_str::<Pid>("0").unwrap_err();
/// assert!(err.to_string().contains("'0' is not a process ID"), "{err}");
/// # Ok::<(), forkyard::pid::InvalidPid>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "i32")]
pub struct Pid(i32);

/// A number or text that is not a process ID; names what was given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{input}' is not a process ID: a PID is a whole number greater than 0 (0 and negative \
     numbers name process groups or every process to the kernel)"
)]
///
/// ```
/// let err = "-1".parse::<forkyard::Pid>().unwrap_err();
/// assert_eq!(err.input, "-1");
/// ```
pub struct InvalidPid {
    /// What was given, as text.
    pub input: String,
}

impl TryFrom<i32> for Pid {
    type Error = InvalidPid;

    fn try_from(raw: i32) -> Result<Pid, InvalidPid> {
        Pid::new(raw).ok_or_else(|| InvalidPid { input: raw.to_string() })
    }
}

impl FromStr for Pid {
    type Err = InvalidPid;

    /// Reads a decimal PID (surrounding spaces allowed), refusing 0, negatives and non-numbers.
    fn from_str(input: &str) -> Result<Pid, InvalidPid> {
        let bad = || InvalidPid { input: input.to_string() };
        let raw: i32 = input.trim().parse().map_err(|_| bad())?;
        Pid::new(raw).ok_or_else(bad)
    }
}

impl Pid {
    /// Wraps a raw PID, or returns `None` unless it is greater than zero (0 and negative
    /// numbers mean "my group" or "that group" to the kernel, never one process).
    ///
    /// ```
    /// use forkyard::Pid;
    ///
    /// assert_eq!(Pid::new(1), Some(Pid::INIT));
    /// assert_eq!(Pid::new(0), None); // "my process group" to kill(2)
    /// assert_eq!(Pid::new(-1), None); // "every process" to kill(2)
    /// ```
    pub fn new(raw: i32) -> Option<Pid> {
        (raw > 0).then_some(Pid(raw))
    }

    /// The PID of the calling process.
    ///
    /// ```
    /// use forkyard::Pid;
    ///
    /// assert_eq!(Pid::this().as_raw() as u32, std::process::id());
    /// ```
    pub fn this() -> Pid {
        // SAFETY: getpid has no preconditions and cannot fail.
        Pid(unsafe { libc::getpid() })
    }

    /// The PID of the calling process's parent, as the kernel sees it now (after the parent
    /// died this is the subreaper or PID 1 that adopted us).
    ///
    /// ```
    /// use forkyard::Pid;
    ///
    /// let sent = forkyard::run_in_child(Pid::parent)?; // the child's parent is us
    /// assert_eq!(sent, Pid::this());
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn parent() -> Pid {
        // SAFETY: getppid has no preconditions and cannot fail.
        Pid(unsafe { libc::getppid() })
    }

    /// The raw number, for system calls and for printing.
    ///
    /// ```
    /// use forkyard::Pid;
    ///
    /// let pid = Pid::new(4321).expect("positive");
    /// assert_eq!(pid.as_raw(), 4321);
    /// ```
    pub fn as_raw(self) -> i32 {
        self.0
    }

    /// `Pid(1)`: the init process of the current PID namespace.
    ///
    /// ```
    /// use forkyard::Pid;
    ///
    /// assert_eq!(Pid::INIT.as_raw(), 1);
    /// assert_ne!(Pid::this(), Pid::INIT); // a doc-test is not the init of its namespace
    /// ```
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
    fn every_way_in_refuses_a_bad_pid_and_names_it() {
        for bad in [0, -1, i32::MIN] {
            let err = Pid::try_from(bad).expect_err("refused");
            assert!(err.to_string().starts_with(&format!("'{bad}' is not a process ID")), "{err}");
            let err = serde_json::from_str::<Pid>(&bad.to_string()).expect_err("refused");
            assert!(err.to_string().contains(&format!("'{bad}' is not a process ID")), "{err}");
            let err = postcard::from_bytes::<Pid>(&postcard::to_allocvec(&bad).expect("encode")).expect_err("refused");
            assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err}");
        }
        for bad in ["", "0", "-1", "abc", "12x", "99999999999"] {
            let err = bad.parse::<Pid>().expect_err(bad);
            assert_eq!(err.input, bad);
        }
        assert_eq!(" 42 ".parse::<Pid>().map(Pid::as_raw), Ok(42));
        assert_eq!(serde_json::from_str::<Pid>("42").map(Pid::as_raw).ok(), Some(42));
        let round = postcard::from_bytes::<Pid>(&postcard::to_allocvec(&Pid::INIT).expect("encode")).ok();
        assert_eq!(round, Some(Pid::INIT));
    }

    #[test]
    fn this_and_parent_match_the_kernel() {
        assert_eq!(Pid::this().as_raw(), std::process::id() as i32);
        assert_eq!(Pid::parent().as_raw(), std::os::unix::process::parent_id() as i32);
    }
}
