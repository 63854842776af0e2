//! The plugin trait, its phases, and the factory that builds plugins from
//! configuration.
//!
//! Phases run in this order for every request (see
//! docs/plugins/AUTHORING.md, "Phases"): `rewrite -> access -> upstream ->
//! request_body -> upstream_request -> (send, retries; upstream_error on
//! the final failure) -> response_headers -> response_body -> log`.
//! Inside a phase, plugins run by descending priority; ties are broken by
//! name, so the order is deterministic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::body::Body;
use crate::ctx::{Consumer, Ctx};
use crate::problem::{Problem, ProblemType};

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
#[repr(u16)]
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
    /// After access and `upstream`: may read, replace or wrap the request
    /// body.
    RequestBody = 64,
    /// After access: may choose where the request goes.
    Upstream = 128,
    /// After the last try failed: may answer, or try elsewhere once.
    UpstreamError = 256,
}

/// A set of phases a plugin takes part in. The pipeline only calls a plugin
/// in the phases it declares, so unused phases cost nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phases(u16);

impl Phases {
    /// No phase.
    pub const NONE: Phases = Phases(0);

    /// The set with exactly these phases.
    pub const fn of(phases: &[Phase]) -> Self {
        let mut bits = 0u16;
        let mut i = 0;
        while i < phases.len() {
            bits |= phases[i] as u16;
            i += 1;
        }
        Phases(bits)
    }

    /// Whether `phase` is in the set.
    pub const fn contains(self, phase: Phase) -> bool {
        self.0 & (phase as u16) != 0
    }
}

/// Where a request goes instead of its route's service (the `upstream`
/// phase, or [`ErrorFlow::Retry`]).
///
/// The value comes from plugin code, never straight from the client: a
/// plugin that builds a choice from request data (a header, a claim, a
/// model name) must map it through its own configuration (an allow-list,
/// a table), or it hands the client an open proxy to any host the gateway
/// can reach (SSRF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamChoice {
    /// Another service, by name, in the route's workspace. Its targets,
    /// balancer, breakers, retries, timeouts and TLS apply. A name the
    /// workspace does not have answers `503 no-service`.
    Service(Arc<str>),
    /// One `host:port` of the chosen service (the route's, or the one an
    /// earlier plugin chose), bypassing its balancer and health: the
    /// service's scheme, client, timeouts and retries apply.
    Target(http::uri::Authority),
    /// An absolute `http`/`https` URL: its scheme and authority replace
    /// the service's, its path and query replace the request's. Sent with
    /// the chosen service's client, timeouts and retry policy (retries go
    /// to the same URL).
    Url(http::Uri),
}

/// What the proxy tells `upstream_error` about the final failure.
#[derive(Debug, Clone)]
pub struct UpstreamFailure {
    /// The problem the gateway would answer (`upstream-timeout`,
    /// `upstream-unreachable`, `no-healthy-upstream`, ...).
    pub kind: ProblemType,
    /// The service the request was sent to.
    pub service: Arc<str>,
    /// Whether the request can be sent again ([`ErrorFlow::Retry`] is
    /// ignored when it cannot: its body was streamed and not kept).
    pub replayable: bool,
}

/// What `upstream_error` decided.
#[derive(Debug)]
pub enum ErrorFlow {
    /// Let the next plugin decide; in the end the gateway answers its
    /// problem.
    Default,
    /// Answer the client with this response (a fallback).
    Respond(Response),
    /// Send the request once more, somewhere else. Each plugin's retry is
    /// honoured at most once per request, and only when the request is
    /// replayable.
    Retry(UpstreamChoice),
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

    /// Upstream selection: runs after access (once the consumer, app and
    /// plan are known), in priority order; the first `Some` wins and later
    /// `upstream` plugins do not run. `None` keeps the route's service.
    /// See [`UpstreamChoice`] for what a choice may carry: never pass
    /// client input into it unchecked. The request is `&mut` because a
    /// shared reference to its body cannot cross an `await` (the body is
    /// not `Sync`), and so that a plugin that routes on the body (a model
    /// name in JSON) can read it with [`crate::body::collect`] and put it
    /// back; the head should be left as it is.
    async fn upstream(&self, _ctx: &mut Ctx, _req: &mut Request) -> Option<UpstreamChoice> {
        None
    }

    /// Request body: runs after `upstream`, before the upstream request is
    /// built. May replace the body (`*req.body_mut() = ...`), wrap it, or
    /// read it whole with [`crate::body::collect`] (always with a limit).
    /// The proxy recomputes framing from the body left here (exact length:
    /// `Content-Length`; otherwise chunked) and buffers it for retries
    /// only afterwards.
    async fn request_body(&self, _ctx: &mut Ctx, _req: &mut Request) -> Flow {
        Flow::Continue
    }

    /// Runs just before the request is sent upstream, once the URI, Host
    /// and forwarding headers are set. Framing is recomputed after it, too.
    async fn upstream_request(&self, _ctx: &mut Ctx, _req: &mut Request) -> Flow {
        Flow::Continue
    }

    /// After the last try failed (retries exhausted, no target, timeout):
    /// may answer with a fallback, or send the request elsewhere once.
    /// Not called when an upstream answered, whatever its status.
    async fn upstream_error(&self, _ctx: &mut Ctx, _failure: &UpstreamFailure) -> ErrorFlow {
        ErrorFlow::Default
    }

    /// May change the response status and headers, for upstream responses
    /// and for responses made by the gateway or by plugins alike. Async:
    /// may look something up, but the response waits for it.
    async fn response_headers(&self, _ctx: &mut Ctx, _resp: &mut http::response::Parts) {}

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

/// Things a plugin may need at build time besides its own config.
#[derive(Debug, Clone, Default)]
pub struct BuildEnv {
    /// API key -> consumer, from the consumers' `key-auth` credentials.
    /// Like the other maps, scoped to the workspace whose plugin is built:
    /// only the consumers its routes accept (docs/security.md).
    pub key_credentials: Arc<HashMap<String, Consumer>>,
    /// Every configured consumer by username (to check references such as
    /// `key-auth`'s `anonymous`).
    pub consumers: Arc<HashMap<String, Consumer>>,
    /// Hashed API keys of the consumers' apps (see [`crate::keys`]).
    pub app_keys: Arc<crate::keys::AppKeys>,
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
