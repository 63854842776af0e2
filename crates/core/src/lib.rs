//! Types shared by everything on the gatehouse request path.
//!
//! This crate is deliberately small and free of I/O: the proxy, the router
//! and the plugins all depend on it, and it depends on none of them.

pub mod body;
pub mod credentials;
pub mod ctx;
pub mod keys;
pub mod plugin;
pub mod problem;
pub mod tls;

pub use body::{Body, BoxError};
pub use credentials::{CredentialScheme, Schemes};
pub use ctx::{App, Consumer, Ctx};
pub use keys::{AppKey, AppKeys, KeyHash, KeyHasher};
pub use plugin::{
    BuildEnv, Flow, LogRecord, Phase, Phases, Plugin, PluginError, PluginFactory, Request, Response,
};
pub use problem::{Problem, ProblemType};
pub use tls::{ClientCert, SubjectAltName, TlsInfo};
