//! The pooled upstream client: one hyper-util client per distinct
//! (protocol, connect timeout, pool settings), shared by every service that
//! uses the same settings and kept across reloads so warm connections
//! survive a config change.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use gatehouse_config::UpstreamProtocol;
use gatehouse_core::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// A pooled HTTP client to upstreams.
pub type UpstreamClient = Client<HttpConnector, Body>;

/// What makes two services able to share one client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// HTTP/1.1 or h2c.
    pub protocol: UpstreamProtocol,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Idle connections kept per host.
    pub max_idle_per_host: usize,
    /// How long idle connections are kept.
    pub idle_timeout: Duration,
}

/// Clients by settings. Only touched when a config is compiled, never on
/// the request path.
#[derive(Default)]
pub struct ClientCache {
    clients: Mutex<HashMap<ClientKey, UpstreamClient>>,
}

impl ClientCache {
    /// The client for `key`, created on first use.
    pub fn get(&self, key: &ClientKey) -> UpstreamClient {
        let mut clients = match self.clients.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        clients
            .entry(key.clone())
            .or_insert_with(|| build(key))
            .clone()
    }

    /// Drops clients no longer used by the current config.
    pub fn retain(&self, keep: &[ClientKey]) {
        let mut clients = match self.clients.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        clients.retain(|k, _| keep.contains(k));
    }
}

fn build(key: &ClientKey) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(key.connect_timeout));
    connector.enforce_http(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(key.idle_timeout)
        .pool_max_idle_per_host(key.max_idle_per_host)
        // The gateway sets Host itself (preserve_host / host_rewrite).
        .set_host(false);
    if key.protocol == UpstreamProtocol::Http2 {
        builder
            .http2_only(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_while_idle(true);
    }
    builder.build(connector)
}

/// Why a request to an upstream failed, seen from the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Could not connect, or the connection broke before a response.
    Unreachable,
    /// Connect or response-header timeout.
    Timeout,
    /// The request body stream failed (client went away or a limit hit).
    RequestBody,
}

/// `e` and every error it was caused by, outermost first.
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |err| err.source())
}

/// Classifies a client error.
pub fn classify(e: &hyper_util::client::legacy::Error) -> UpstreamFailure {
    for err in chain(e) {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return UpstreamFailure::Timeout;
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && h.is_user()
        {
            return UpstreamFailure::RequestBody;
        }
    }
    // hyper-util reports a connect timeout as a plain message.
    if e.is_connect() && format!("{e:?}").contains("timed out") {
        return UpstreamFailure::Timeout;
    }
    UpstreamFailure::Unreachable
}

/// Whether an error of type `E` is somewhere in `e`'s causes.
pub fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    chain(e).any(|err| err.is::<E>())
}
