//! Types shared by everything on the gatehouse request path.
//!
//! This crate is deliberately small and free of I/O: the proxy, the router
//! and the plugins all depend on it, and it depends on none of them.

pub mod body;
pub mod credentials;
pub mod ctx;
pub mod env;
pub mod error;
pub mod export;
#[cfg(any(test, feature = "testing"))]
pub mod harness;
pub mod keys;
pub mod metrics;
pub mod plugin;
pub mod problem;
pub mod registry;
pub mod resources;
mod stream;
pub mod tls;

pub use body::{Body, BodyRejected, BoxError};
pub use credentials::{CredentialScheme, Schemes};
pub use ctx::{App, Consumer, Ctx};
pub use env::BuildEnv;
pub use error::PluginError;
pub use keys::{AppKey, AppKeys, KeyHash, KeyHasher};
pub use metrics::Metrics;
pub use plugin::{
    Band, Capabilities, ErrorFlow, Flow, LogRecord, Phase, Phases, Plugin, PluginFactory, Request,
    Response, UpstreamChoice, UpstreamFailure,
};
pub use problem::{Answered, Problem, ProblemDef, ProblemType};
pub use registry::Registry;
pub use resources::{BuildCx, Resources, Scope, Shutdown};
pub use tls::{ClientCert, SubjectAltName, TlsInfo};
