//! The PID-1 loop behind `forkyard init`: start one command, forward signals to it, collect
//! every zombie, and end with the command's status without losing the work of the processes
//! it leaves behind.
//!
//! Why this crate exists: in a container the first process is PID 1. The kernel gives it
//! every orphan to collect, delivers it no signal it has not asked for, and kills the whole
//! namespace the moment it exits. A shell or an application is a poor PID 1; tini,
//! dumb-init and catatonit exist to be a good one, and each has gaps. [`Init`] is
//! configurable enough to behave as any of them (the `forkyard` binary's compatibility modes
//! pick the settings) and adds what they lack: a grace period for the processes left when
//! the command exits, or waiting for them. It is a crate of its own so that a program that
//! only forks (the `forkyard` library) does not carry it, and so that its decisions can be
//! tested without processes.
//!
//! It prints nothing. What happens is reported as [`Event`]s to a [`Report`] the caller
//! gives; the `forkyard` binary words them (as forkyard, or as each peer does).
//!
//! The parts:
//! - [`Init`] (`options.rs`): what to do, and the pure choices made from it (which signal to
//!   forward for which).
//! - `setup.rs`: becoming a reaper, blocking signals, giving up the terminal, starting the
//!   command.
//! - [`phases`]: a pure step function for what happens after the command exits (grace,
//!   waiting for all, killing, the exit code), with time passed in.
//! - [`run`] (`run.rs`): the loop, a thin driver: one blocking signalfd read per wake-up,
//!   `waitpid` until nothing is left, and what [`phases::Phases`] decides.
//! - [`pause`] (`pause.rs`): catatonit's mode with no command.
//!
//! ```no_run
//! use forkyard_init::{Event, Init};
//!
//! let inherited = forkyard::Inherited::capture().unwrap_or(forkyard::Inherited::pristine());
//! let init = Init::new(vec!["sleep".into(), "1".into()], inherited);
//! let mut log = |event: &Event<'_>| eprintln!("{event:?}");
//! let code = forkyard_init::run(&init, &mut log).unwrap_or(1);
//! std::process::exit(code);
//! ```
#![cfg(target_os = "linux")]

mod event;
mod options;
mod pause;
pub mod phases;
mod run;
mod setup;

pub use event::{Event, Reaping, Report};
pub use options::{AfterExit, ForwardTo, Init, JobControl, Subreaper};
pub use pause::pause;
pub use run::{Failure, run};
