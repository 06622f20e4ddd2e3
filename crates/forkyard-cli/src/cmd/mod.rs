//! One module per subcommand; each parses its own arguments and calls the library.

pub mod ctl;
pub mod init;
pub mod ps;
pub mod up;
