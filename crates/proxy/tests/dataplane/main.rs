//! The data plane's end-to-end tests, as one test binary: each module
//! starts the real gateway in-process (`gatehouse_proxy::testing`) in front
//! of real upstreams (`gatehouse-testkit`) and never spawns the binary.
//! Tests that run the `gatehouse` binary live in `crates/gatehouse/tests/e2e`.
//!
//! `tests/{faults,failures,limits,upload}.rs` are binaries of their own:
//! they measure the process (RSS before and after, latency bounds under
//! load), which the many tests of this binary running beside them would move.
//!
//! A new file: `tests/dataplane/NAME.rs` with `use crate::common;` where a
//! standalone test had `mod common;`, and `mod NAME;` below. Tables of
//! hostile configs name their rows through `table`.

/// The shared harness, under the name the modules use.
mod common {
    pub use gatehouse_proxy::testing::*;
}
mod table;

mod access_log;
mod balancing;
mod concurrency;
mod discovery;
mod edges;
mod health;
mod hostile;
mod hostile_paths;
mod lifecycle;
mod path_phases;
mod path_plans;
mod plugins;
mod proxy;
mod reload;
mod resilience;
mod splitting;
mod status;
mod streaming;
mod tls;
