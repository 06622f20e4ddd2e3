//! Drop-in modes: invoked as `tini`/`docker-init`, `dumb-init` or `catatonit`, forkyard
//! reads that program's command line and environment and behaves as it does.
//!
//! Why: switching an image to forkyard should be a symlink, not an edit of every
//! `ENTRYPOINT`. Each mode maps its peer's options onto the `forkyard-init` library's
//! [`forkyard_init::Init`] and words its events as the peer does;
//! behaviour and exit codes follow the peer (facts in `../shared/peers/inits.md`, each pinned
//! by a test), except its documented defects, and the help and version texts are
//! forkyard's own.

pub mod catatonit;
pub mod dumb_init;
pub mod getopt;
pub mod tini;

use std::ffi::OsString;

pub use forkyard::error::strerror;

/// The licence notice shown by `-l`/`-L`.
pub const LICENCE: &str = "forkyard is dual-licensed under the MIT licence and the Apache License, \
version 2.0, at your option.\nSee https://opensource.org/license/mit and \
https://www.apache.org/licenses/LICENSE-2.0 for the texts.";

/// Writes `text` to standard error, ignoring failures (nothing useful can be done).
pub fn err(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Writes `text` to standard output, ignoring failures.
pub fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
    let _ = std::io::stdout().flush();
}

/// The operands, or `None` if there is no program to run.
pub fn command(operands: Vec<OsString>) -> Option<Vec<OsString>> {
    (!operands.is_empty()).then_some(operands)
}
