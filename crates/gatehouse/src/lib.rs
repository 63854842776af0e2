//! The `gatehouse` command: CLI, runtime setup, signals, hot reload.
//! The binary in `main.rs` is a thin shell around [`cli::main`].

pub mod admin;
pub mod certs;
pub mod cli;
pub mod keys;
pub mod node;
pub mod reload;
pub mod schema;
pub mod sync;

/// The demo configuration compiled into the binary; `gatehouse run`
/// without `--config` serves it.
pub const DEMO_CONFIG: &str = include_str!("../../../examples/gatehouse.yaml");
