//! Fork work into child processes, supervise them, and never leave a zombie or an orphan
//! behind.
//!
//! `forkyard` is the library under the `forkyard` command (a container init, a service
//! supervisor and a process lister), usable on its own. It is Linux-only: pidfds, signalfds,
//! the child subreaper flag and `/proc` are what make it correct.
//!
//! A short tour, from `fork` to the reaper:
//!
//! 1. **[`fork()`]** is the raw call (`unsafe`: read its rules), returning a [`Fork`] with a
//!    [`Child`] in the parent; a child ends with [`exit_child`].
//! 2. **[`Child`]** holds the child's pidfd, so [`Child::wait`] and [`Child::kill`] can never
//!    reach a recycled PID; [`ExitStatus`] says how it ended, in words and as `$?`.
//! 3. **[`run_in_child`]** runs a closure in a child and brings its typed result back (a
//!    panic, a signal, an early exit each become an [`Error`]); [`Pool`] maps a function
//!    over inputs in worker processes.
//! 4. **[`Launch`]** starts a program with a clean slate (signal mask, dispositions, process
//!    group, cgroup, user) and returns a [`Child`].
//! 5. **[`Signal`]**, [`SignalSet`] and [`SignalFd`] name, block and read signals.
//! 6. **[`Reaper`]** collects dead children (pidfds, SIGCHLD or polling), your own or, as
//!    PID 1 or a [`subreaper`], every orphan; [`procs::Snapshot`] shows zombies and trees.
//! 7. With the `tokio` feature, [`async_child`](crate#features) awaits children on their
//!    pidfds.
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
//!
//! # Features
//!
//! - `tokio`: the `async_child` module, `AsyncChild` and an async `run_in_child`, on tokio's
//!   reactor (no thread, no SIGCHLD handler).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap().block_on(async {
//! use forkyard::async_child::{AsyncChild, run_in_child};
//! use forkyard::spawn::Program;
//!
//! let answer = run_in_child(|| 6 * 7).await?; // other tasks run while the child works
//! let mut child = AsyncChild::new(forkyard::Launch::new().start(Program::new(["true"]))?)?;
//! assert!(child.wait().await?.success() && answer == 42);
//! # Ok::<(), forkyard::Error>(())
//! # }).unwrap();
//! ```
#![cfg(target_os = "linux")]
#![deny(missing_docs)]

#[cfg(feature = "tokio")]
pub mod async_child;

pub mod child;
pub mod error;
pub mod fork;
pub mod pid;
pub mod pool;
pub mod procs;
pub mod reap;
pub mod signal;
pub mod spawn;
pub mod status;
pub mod subreaper;
mod sys;
pub mod time;
pub mod users;

pub use child::Child;
pub use error::{Error, Result};
pub use fork::{Fork, exit_child, fork, run_in_child, run_in_child_unchecked};
pub use pid::Pid;
pub use pool::{Pool, TaskError};
pub use reap::{Reaped, Reaper, Scope, Strategy};
pub use signal::{Disposition, Inherited, Signal, SignalFd, SignalInfo, SignalSet};
pub use spawn::Launch;
pub use status::{ExitStatus, ResourceUsage, WaitEvent};
