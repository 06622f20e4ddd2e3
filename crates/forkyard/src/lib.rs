//! Fork work into child processes, supervise them, and never leave a zombie or an orphan
//! behind.
//!
//! `forkyard` is the library under the `forkyard` command (a container init, a service
//! supervisor and a process lister), usable on its own. It is Linux-only: pidfds, signalfds,
//! the child subreaper flag and `/proc` are what make it correct.
//!
//! | you want to | use |
//! |---|---|
//! | run a closure in a child and get its result | [`run_in_child`] |
//! | map a function over inputs in worker processes | [`Pool`] |
//! | fork by hand | [`fork()`] (`unsafe`, read its rules) |
//! | wait for / signal a child without PID-reuse races | [`Child`] |
//! | collect dead children (SIGCHLD, polling, or pidfds) | [`Reaper`] |
//! | adopt your descendants' orphans | [`subreaper::set_child_subreaper`] |
//! | names, sets and masks of signals | [`Signal`], [`SignalSet`], [`SignalFd`] |
//! | how a process ended, in words and as `$?` | [`ExitStatus`] |
//! | process states, zombies and trees from `/proc` | [`procs::Snapshot`] |
//!
//! ```
//! // The seed's task(id) in a child: the child's memory is a copy, its result comes back.
//! let mut var = 10;
//! let doubled = forkyard::run_in_child(|| {
//!     var = 9; // changes the child's copy only
//!     var * 2
//! })
//! .expect("the child ran");
//! assert_eq!((doubled, var), (18, 10));
//! ```
#![cfg(target_os = "linux")]

pub mod child;
mod duration;
pub mod error;
pub mod fork;
mod pid;
pub mod pool;
pub mod procs;
pub mod reap;
pub mod signal;
pub mod spawn;
pub mod status;
pub mod subreaper;
mod sys;
pub mod users;

pub use child::Child;
pub use duration::parse_duration;
pub use error::{Error, Result};
pub use fork::{Fork, exit_child, fork, run_in_child, run_in_child_unchecked};
pub use pid::Pid;
pub use pool::{Pool, TaskError};
pub use reap::{Reaped, Reaper, Scope, Strategy};
pub use signal::{Disposition, Inherited, Signal, SignalFd, SignalSet};
pub use spawn::Launch;
pub use status::{ExitStatus, ResourceUsage, WaitEvent};

/// `CLOCK_MONOTONIC` as a duration since an unspecified fixed point. Unlike
/// `std::time::Instant` it can be sent to another process on the same machine and compared
/// there, which is how the benchmarks time a child's exit against its reaping.
pub fn monotonic_now() -> std::time::Duration {
    sys::monotonic_now()
}
