//! The data plane's end-to-end tests, as one test binary: each module
//! starts the real gateway in-process (`gatehouse_proxy::testing`) in front
//! of real upstreams (`gatehouse-testkit`) and never spawns the binary.
//! Tests that run the `gatehouse` binary live in `crates/gatehouse/tests/e2e`.
//!
//! A new file: `tests/dataplane/NAME.rs` with `use crate::common;` where a
//! standalone test had `mod common;`, and `mod NAME;` below.

/// The shared harness, under the name the modules use.
mod common {
    pub use gatehouse_proxy::testing::*;
}

mod balancing;
mod concurrency;
mod discovery;
mod edges;
mod failures;
mod faults;
mod health;
mod hostile;
mod hostile_paths;
mod lifecycle;
mod limits;
mod plugins;
mod proxy;
mod reload;
mod resilience;
mod splitting;
mod streaming;
mod tls;
mod upload;
