//! The pooled upstream client: one client per distinct (protocol, connect
//! timeout, pool settings, TLS settings), shared by every service that uses
//! the same settings and kept across reloads so warm connections survive a
//! config change. Plain `http://` HTTP/1.1 services, the common case, use
//! the gateway's own [`Http1Pool`]; HTTP/2 (h2c) ones use hyper-util's
//! client over its bare `HttpConnector`, and `https://` ones hyper-util's
//! client over the TLS [`Connector`](crate::tls::upstream::Connector).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use gatehouse_config::UpstreamProtocol;
use gatehouse_core::Body;
use http::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::pool::{Http1Pool, PoolConfig, PoolError, Unsent};
use crate::tls::upstream::{Connector, TlsKey, UpstreamTls};

/// A pooled HTTP client to upstreams: plain, or TLS for `https://`
/// services. Cloning is cheap (the pool is shared).
#[derive(Clone)]
pub enum UpstreamClient {
    /// `http://` over HTTP/1.1: the gateway's own pool.
    Http1(Http1Pool),
    /// `http://` over HTTP/2 (h2c): hyper-util's `HttpConnector`.
    Plain(Client<HttpConnector, Body>),
    /// `https://`: TCP plus a rustls handshake.
    Tls(Client<Connector, Body>),
}

/// Why a request to an upstream failed.
#[derive(Debug)]
pub enum SendError {
    /// From the own HTTP/1.1 pool.
    Pool(PoolError),
    /// From hyper-util's client.
    Legacy(hyper_util::client::legacy::Error),
}

impl SendError {
    /// No connection could be made: the request never left.
    pub fn is_connect(&self) -> bool {
        match self {
            Self::Pool(e) => matches!(e, PoolError::Connect(_)),
            Self::Legacy(e) => e.is_connect(),
        }
    }

    /// As a standard error, to walk its sources.
    pub fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            Self::Pool(e) => e,
            Self::Legacy(e) => e,
        }
    }
}

/// A failed request: why, and the request itself when it never left.
#[derive(Debug)]
pub struct Failed {
    /// What went wrong.
    pub error: SendError,
    /// The untouched request, when no connection could be made (only the
    /// own HTTP/1.1 pool gives it back).
    pub unsent: Option<Request<Body>>,
}

impl UpstreamClient {
    /// Sends `req` (its URI names the target) over a pooled connection.
    pub async fn request(&self, req: Request<Body>) -> Result<Response<Body>, Failed> {
        let legacy = |error| Failed {
            error: SendError::Legacy(error),
            unsent: None,
        };
        match self {
            Self::Http1(p) => p.request(req).await.map_err(|u: Unsent| Failed {
                error: SendError::Pool(u.error),
                unsent: u.request,
            }),
            Self::Plain(c) => c
                .request(req)
                .await
                .map(|r| r.map(gatehouse_core::body::boxed))
                .map_err(legacy),
            Self::Tls(c) => c
                .request(req)
                .await
                .map(|r| r.map(gatehouse_core::body::boxed))
                .map_err(legacy),
        }
    }

    /// Whether a request that could not be sent for want of a connection
    /// comes back (see [`Failed::unsent`]), so that retrying connect
    /// failures needs no copy of it.
    pub fn gives_back_unsent(&self) -> bool {
        matches!(self, Self::Http1(_))
    }
}

/// What makes two services able to share one client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// HTTP/1.1 or HTTP/2.
    pub protocol: UpstreamProtocol,
    /// TCP connect timeout (also the TLS handshake's).
    pub connect_timeout: Duration,
    /// Idle connections kept per host.
    pub max_idle_per_host: usize,
    /// How long idle connections are kept.
    pub idle_timeout: Duration,
    /// TLS settings of an `https://` service.
    pub tls: Option<TlsKey>,
}

/// Clients by settings. Only touched when a config is compiled, never on
/// the request path.
#[derive(Default)]
pub struct ClientCache {
    clients: Mutex<HashMap<ClientKey, UpstreamClient>>,
}

impl ClientCache {
    /// The client for `key`, created on first use. `tls` holds the
    /// settings `key.tls` was made from.
    pub fn get(&self, key: &ClientKey, tls: Option<&UpstreamTls>) -> UpstreamClient {
        let mut clients = match self.clients.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        clients
            .entry(key.clone())
            .or_insert_with(|| build(key, tls))
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

/// The TCP side of every upstream connection. `enforce_http` is off for
/// the TLS connector, which takes `https://` URIs.
pub fn http_connector(connect_timeout: Duration, enforce_http: bool) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.enforce_http(enforce_http);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector
}

fn build(key: &ClientKey, tls: Option<&UpstreamTls>) -> UpstreamClient {
    if key.tls.is_none() && key.protocol != UpstreamProtocol::Http2 {
        return UpstreamClient::Http1(Http1Pool::new(PoolConfig {
            connect_timeout: key.connect_timeout,
            max_idle_per_host: key.max_idle_per_host,
            idle_timeout: key.idle_timeout,
        }));
    }
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
    match (&key.tls, tls) {
        (Some(_), Some(tls)) => UpstreamClient::Tls(builder.build(Connector::new(
            http_connector(key.connect_timeout, false),
            Some(tls),
            key.connect_timeout,
        ))),
        _ => UpstreamClient::Plain(builder.build(http_connector(key.connect_timeout, true))),
    }
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
    /// The TLS handshake failed (see [`crate::tls::upstream::describe`]).
    Tls,
}

/// `e` and every error it was caused by, outermost first.
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |err| err.source())
}

/// Classifies a client error.
pub fn classify(e: &SendError) -> UpstreamFailure {
    if crate::tls::upstream::tls_error(e.as_error()).is_some() {
        return UpstreamFailure::Tls;
    }
    for err in chain(e.as_error()) {
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
    if let SendError::Legacy(e) = e
        && e.is_connect()
        && format!("{e:?}").contains("timed out")
    {
        return UpstreamFailure::Timeout;
    }
    UpstreamFailure::Unreachable
}
