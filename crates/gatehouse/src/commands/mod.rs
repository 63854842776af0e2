//! One module per subcommand, each owning its arguments (clap `Args` or
//! `Subcommand`) and an `exec` function; `cli` only dispatches.

pub mod admin;
pub mod config;
pub mod keys;
pub mod run;
pub mod schema;
pub mod validate;
