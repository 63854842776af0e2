//! The `gatehouse` command: CLI, runtime setup, signals, hot reload.
//! The binary in `main.rs` is a thin shell around [`cli::main`].
//!
//! Layers (a module only uses the ones below it; nothing imports `cli`):
//! `cli` parses the arguments and dispatches to `commands::*`, each of
//! which owns its arguments (like cargo's `src/bin/cargo/commands`); the
//! commands use `node` (store-backed nodes), `admin` (the admin API's
//! state and write check), `reload`, `certs` and `datadir`, and the helpers
//! of this file.

pub mod admin;
pub mod certs;
pub mod cli;
pub mod commands;
pub mod datadir;
pub mod node;
pub mod reload;

use gatehouse_config::{ConfigErrors, Loaded};

/// The demo configuration compiled into the binary; `gatehouse run`
/// without `--config` serves it.
pub const DEMO_CONFIG: &str = include_str!("../../../examples/gatehouse.yaml");

/// Parses, validates and compiles (without binding anything).
pub fn load_and_check(path: &std::path::Path) -> Result<Loaded, ConfigErrors> {
    let loaded = gatehouse_config::load_file(path)?;
    gatehouse_proxy::check(&loaded, &gatehouse_plugins::registry())?;
    Ok(loaded)
}

/// The gateway's runtime for `server.worker_threads`. One worker thread
/// means one event loop, like one nginx worker: a current-thread runtime
/// skips the work-stealing machinery entirely; 0 means one per core.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b
    };
    rt.enable_all().thread_name("gatehouse-worker").build()
}

/// An error and its causes on one line (`outer: cause: root cause`), for
/// messages that end up in a list of issues or a log field.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
