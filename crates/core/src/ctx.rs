//! Per-request context shared by every phase of the plugin chain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::Extensions;

/// An identified API consumer, set by an authentication plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// The consumer's unique name in the configuration.
    pub username: Arc<str>,
    /// Optional identifier of the consumer in an external system.
    pub custom_id: Option<Arc<str>>,
}

/// An identified app (a consumer's client application), set by an
/// authentication plugin that recognised one of the app's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// The app's unique name in the configuration.
    pub name: Arc<str>,
    /// Username of the consumer that owns the app.
    pub consumer: Arc<str>,
}

/// State that lives for one request and is visible to every plugin phase.
///
/// Plugins that need to hand data to later phases (or to other plugins) put
/// it in [`Ctx::extensions`], keyed by their own type.
#[derive(Debug)]
pub struct Ctx {
    /// The request id (kept from the client or generated), echoed back.
    pub request_id: Arc<str>,
    /// The TCP peer of the downstream connection.
    pub client_addr: SocketAddr,
    /// The client address after trusted-proxy resolution of X-Forwarded-For:
    /// `None` when the client is unknown (a trusted proxy sent a hop that is
    /// not an address). Plugins must fail closed on `None`: it is never the
    /// proxy's own address and matches no allow-list.
    pub client_ip: Option<std::net::IpAddr>,
    /// The TLS session of the downstream connection, on TLS listeners
    /// (`None` on plain-HTTP ones). Shared by every request of the
    /// connection; see docs/tls.md.
    pub tls: Option<Arc<crate::TlsInfo>>,
    /// When the gateway started handling the request.
    pub started: Instant,
    /// Name of the matched route, if any.
    pub route: Option<Arc<str>>,
    /// Name of the service the route points at, if any.
    pub service: Option<Arc<str>>,
    /// Path template captures (`/users/{id}` -> `("id", "42")`).
    pub captures: Vec<(Arc<str>, String)>,
    /// The consumer identified by an authentication plugin.
    pub consumer: Option<Consumer>,
    /// The app identified by an authentication plugin (with `consumer`
    /// set to the app's consumer). Subscriptions are checked against it.
    pub app: Option<App>,
    /// The plan of the app's approved subscription to the route's API, set
    /// after the access phase (its plugins run from then on).
    pub plan: Option<Arc<str>>,
    /// Free-form per-request data for plugins, keyed by type.
    pub extensions: Extensions,
}

impl Ctx {
    /// A fresh context for a request from `client_addr`.
    pub fn new(request_id: Arc<str>, client_addr: SocketAddr) -> Self {
        Self {
            request_id,
            client_addr,
            client_ip: Some(client_addr.ip()),
            tls: None,
            started: Instant::now(),
            route: None,
            service: None,
            captures: Vec::new(),
            consumer: None,
            app: None,
            plan: None,
            extensions: Extensions::new(),
        }
    }

    /// Answers the request with `problem`, carrying this request's id.
    pub fn reject(&self, problem: impl Into<crate::Problem>) -> crate::Flow {
        crate::Flow::Respond(problem.into().into_response(Some(&self.request_id)))
    }

    /// The value captured for a path template parameter.
    pub fn capture(&self, name: &str) -> Option<&str> {
        self.captures
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| v.as_str())
    }
}
