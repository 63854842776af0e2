//! The `gatehouse` binary's end-to-end tests, as one test binary: the
//! commands run as child processes (`env!("CARGO_BIN_EXE_gatehouse")`),
//! store-backed nodes through `nodes`, and the binary's own library parts
//! (the admin API's write check) next to an in-process gateway. The data
//! plane's tests (in-process gateway only) live in `crates/proxy/tests/dataplane`.
//! `tests/cluster.rs` stays a binary of its own: it stops the shared
//! PostgreSQL server, which the tests here use concurrently.
//!
//! A new file: `tests/e2e/NAME.rs` with `use crate::common;` / `use
//! crate::nodes;` where a standalone test had `mod common;` / `mod nodes;`,
//! and `mod NAME;` below.

/// The in-process gateway harness, under the name the modules use.
mod common {
    pub use gatehouse_proxy::testing::*;
}
mod nodes;

mod admin_cli;
mod apps;
mod cli;
mod config_sync;
mod crash;
mod creds_scheme;
mod data_dir;
mod docs;
mod platform_state;
mod secrets;
mod store_certs;
mod store_node;
mod tenancy;
