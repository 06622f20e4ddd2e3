//! The engine of `forkyard up`: supervise many services, event-driven, and leave nothing
//! behind.
//!
//! Why this crate exists: the supervisors people run today restart a crashed service after a
//! second of polling, leave a stopped service's children running, cannot prefix log lines with
//! the service's name or exit with a failed service's code, and make poor PID 1s. This one is
//! split in two so that its policy can be tested without a single process:
//!
//! - a pure [`machine`]: events in (a death, a probe's result, a timer, a signal), actions out
//!   (spawn, signal a tree, arm a timer, report, exit); no system call, no clock, no recursion;
//! - a [`driver`] that turns the kernel's news into events and carries the actions out, over
//!   one epoll, with bounded reads and an output that never blocks the loop.
//!
//! Parts: [`config`] (what to run), [`policy`] (when to restart), `logs` (the prefixed output
//! and log files), `probe` (readiness and liveness checks), `tree` (stopping a whole process
//! tree).

pub mod config;
pub mod control;
pub mod driver;
pub mod logs;
pub mod machine;
pub mod notice;
pub mod output;
pub mod policy;
pub mod probe;
pub mod runtime;
pub mod tree;

pub use driver::{ControlOptions, Options, SetupError, run};
