//! One module per subcommand; each parses its own arguments and calls the library.

pub mod completions;
pub mod ctl;
pub mod init;
pub mod init_help;
pub mod man;
pub mod ps;
pub mod up;
