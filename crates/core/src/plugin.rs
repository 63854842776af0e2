//! The plugin trait, its phases, and the factory that builds plugins from
//! configuration.
//!
//! Phases run in this order for every request (see DESIGN.md):
//! `rewrite -> access -> upstream_request -> response_headers ->
//! response_body -> log`. Inside a phase, plugins run by descending
//! priority; ties are broken by name, so the order is deterministic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::body::Body;
use crate::ctx::{Consumer, Ctx};
use crate::problem::Problem;

/// A request as plugins see it: head plus streaming body.
pub type Request = http::Request<Body>;
/// A response as plugins see it.
pub type Response = http::Response<Body>;

/// What a request-side phase decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on with the next plugin, then the next phase.
    Continue,
    /// Stop here and answer the client with this response. Later request
    /// phases and the upstream are skipped; response phases still run.
    Respond(Response),
}

impl From<Problem> for Flow {
    fn from(problem: Problem) -> Self {
        // The proxy fills in the request id on every response it sends.
        Flow::Respond(problem.into_response(None))
    }
}

/// One phase of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Before routing-dependent work: may change the request.
    Rewrite = 1,
    /// Authentication, authorization, limits: may reject.
    Access = 2,
    /// Just before the request goes upstream.
    UpstreamRequest = 4,
    /// Response status and headers, before they are sent.
    ResponseHeaders = 8,
    /// Response body, as a stream.
    ResponseBody = 16,
    /// After the response was sent (or aborted). Must not block.
    Log = 32,
}

/// A set of phases a plugin takes part in. The pipeline only calls a plugin
/// in the phases it declares, so unused phases cost nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phases(u8);

impl Phases {
    /// No phase.
    pub const NONE: Phases = Phases(0);

    /// The set with exactly these phases.
    pub const fn of(phases: &[Phase]) -> Self {
        let mut bits = 0u8;
        let mut i = 0;
        while i < phases.len() {
            bits |= phases[i] as u8;
            i += 1;
        }
        Phases(bits)
    }

    /// Whether `phase` is in the set.
    pub const fn contains(self, phase: Phase) -> bool {
        self.0 & (phase as u8) != 0
    }
}

/// What the log phase sees about a finished exchange.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// The status sent to the client.
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes_sent: u64,
    /// Time from the start of the request to the end of the response.
    pub duration: Duration,
    /// Whether the response body completed (false if it was aborted).
    pub completed: bool,
}

/// A configured plugin instance. One instance serves every request of the
/// routes it is attached to, concurrently: keep per-request state in
/// [`Ctx`], not in `self`.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// The registry name (`cors`, `ip-restriction`, ...).
    fn name(&self) -> &'static str;

    /// The phases this instance takes part in.
    fn phases(&self) -> Phases;

    /// Rewrite phase: runs first, may change the request or answer it.
    async fn rewrite(&self, _ctx: &mut Ctx, _req: &mut Request) -> Flow {
        Flow::Continue
    }

    /// Access phase: authentication, authorization and limits.
    async fn access(&self, _ctx: &mut Ctx, _req: &mut Request) -> Flow {
        Flow::Continue
    }

    /// Runs just before the request is sent upstream.
    async fn upstream_request(&self, _ctx: &mut Ctx, _req: &mut Request) -> Flow {
        Flow::Continue
    }

    /// May change the response status and headers, for upstream responses
    /// and for responses made by the gateway or by plugins alike.
    fn response_headers(&self, _ctx: &mut Ctx, _resp: &mut http::response::Parts) {}

    /// May wrap the response body stream. Must not buffer it unless the
    /// plugin's purpose needs it, and then only up to a configured limit.
    fn response_body(&self, _ctx: &Ctx, body: Body) -> Body {
        body
    }

    /// Runs after the exchange ended. Must not block or do I/O inline: hand
    /// work to a bounded queue instead.
    fn log(&self, _ctx: &Ctx, _record: &LogRecord) {}
}

/// Why a plugin configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    /// Dotted path of the faulty field inside the plugin's `config`
    /// (`allow[2]`), empty for the whole config.
    pub path: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl PluginError {
    /// An error about the field at `path`.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Things a plugin may need at build time besides its own config: the
/// data of the workspace whose plugin is built (docs/security.md), that is
/// of the consumers its routes accept.
#[derive(Debug, Clone, Default)]
pub struct BuildEnv {
    /// The lookup indexes of the registered credential schemes, by scheme
    /// name (see [`crate::credentials`]); a plugin reads its own with
    /// [`BuildEnv::index`].
    pub credentials: crate::credentials::Indexes,
    /// Every configured consumer by username (to check references such as
    /// `key-auth`'s `anonymous`).
    pub consumers: Arc<HashMap<String, Consumer>>,
    /// Hashed API keys of the consumers' apps (see [`crate::keys`]).
    pub app_keys: Arc<crate::keys::AppKeys>,
}

impl BuildEnv {
    /// The lookup index credential scheme `scheme` built for this
    /// workspace, downcast to the scheme's index type `T`; `None` when the
    /// scheme is not registered (or `T` is not its type).
    pub fn index<T: std::any::Any + Send + Sync>(&self, scheme: &str) -> Option<Arc<T>> {
        self.credentials.get::<T>(scheme)
    }
}

/// Builds plugin instances of one kind from their configuration.
pub trait PluginFactory: Send + Sync + 'static {
    /// The registry name.
    fn name(&self) -> &'static str;

    /// The default priority: higher runs earlier within a phase.
    fn priority(&self) -> i32;

    /// JSON Schema of the `config` object.
    fn schema(&self) -> serde_json::Value;

    /// Builds an instance; rejects invalid configuration with the path of
    /// the faulty field.
    fn build(
        &self,
        config: &serde_json::Value,
        env: &BuildEnv,
    ) -> Result<Arc<dyn Plugin>, PluginError>;
}
