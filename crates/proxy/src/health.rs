//! Active health checks: one task per service that configures them. Each
//! interval it probes every target of the service's *current* target set
//! (an HTTP GET or a TCP connect; DNS discovery may have replaced the set)
//! and flips the target's bit in the set's lock-free `HealthSet` after
//! `unhealthy_threshold` consecutive failures or `healthy_threshold`
//! consecutive successes. The request path only reads the bits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_config::{ActiveHealthCheck, ProbeKind};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, header};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;

use crate::targets::Targets;
use crate::tls::upstream::Connector;

/// A compiled active check.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    kind: ProbeKind,
    path: PathAndQuery,
    statuses: Vec<u16>,
    interval: Duration,
    timeout: Duration,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
}

impl ProbeSpec {
    /// From validated config.
    pub fn new(c: &ActiveHealthCheck) -> Self {
        Self {
            kind: c.kind,
            path: c
                .path
                .parse()
                .unwrap_or_else(|_| PathAndQuery::from_static("/")),
            statuses: c.expected_statuses.clone(),
            interval: c.interval,
            timeout: c.timeout,
            healthy_threshold: c.healthy_threshold,
            unhealthy_threshold: c.unhealthy_threshold,
        }
    }

    fn expected(&self, status: u16) -> bool {
        if self.statuses.is_empty() {
            (200..400).contains(&status)
        } else {
            self.statuses.contains(&status)
        }
    }
}

/// What the checker of one service needs.
pub struct CheckTarget {
    /// Service name, for logs.
    pub service: Arc<str>,
    /// Scheme of the service URL.
    pub scheme: Scheme,
    /// TLS settings of an `https` service: probes verify and present
    /// certificates exactly like requests do.
    pub tls: Option<Arc<crate::tls::upstream::UpstreamTls>>,
    /// Host header to send with HTTP probes.
    pub host: HeaderValue,
    /// The HTTP version the service speaks (HTTP/2 services are probed
    /// over HTTP/2, like their requests).
    pub version: http::Version,
    /// The service's targets; each round probes the current set and flips
    /// the bits the request path reads.
    pub targets: Arc<Targets>,
    /// The probe.
    pub spec: ProbeSpec,
}

/// Consecutive probe outcomes of one address.
#[derive(Default, Clone, Copy)]
struct Streak {
    successes: u32,
    failures: u32,
}

/// Starts the checker task for one service.
pub fn spawn(check: CheckTarget) -> JoinHandle<()> {
    tokio::spawn(run(check))
}

async fn run(c: CheckTarget) {
    let connector = Connector::new(
        crate::client::http_connector(c.spec.timeout, false),
        c.tls.as_deref(),
        c.spec.timeout,
    );
    // No pooling: every probe opens a connection (and does the TLS
    // handshake), as a new client would.
    let client: Client<Connector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .set_host(false)
        .http2_only(c.version == http::Version::HTTP_2)
        .build(connector);
    // Streaks are kept by address, so they survive the target set being
    // replaced by DNS discovery; addresses that left are forgotten.
    let mut streaks: HashMap<Authority, Streak> = HashMap::new();
    let mut tick = tokio::time::interval(c.spec.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let set = c.targets.load();
        let probes = set.targets.iter().map(|t| probe(&client, &c, t.clone()));
        let results = futures_util::future::join_all(probes).await;
        streaks.retain(|a, _| set.targets.contains(a));
        for (i, ok) in results.into_iter().enumerate() {
            let target = &set.targets[i];
            let s = streaks.entry(target.clone()).or_default();
            if ok {
                s.successes = s.successes.saturating_add(1);
                s.failures = 0;
            } else {
                s.failures = s.failures.saturating_add(1);
                s.successes = 0;
            }
            // A set swapped in while probing got its bits from this one;
            // the next round writes to it.
            let healthy = set.health.is_healthy(i);
            if healthy && s.failures >= c.spec.unhealthy_threshold {
                set.health.set(i, false);
                tracing::warn!(service = %c.service, %target, failures = s.failures, "target unhealthy: out of rotation");
            } else if !healthy && s.successes >= c.spec.healthy_threshold {
                set.health.set(i, true);
                tracing::info!(service = %c.service, %target, "target healthy again: back in rotation");
            }
        }
    }
}

async fn probe(
    client: &Client<Connector, Empty<Bytes>>,
    c: &CheckTarget,
    target: Authority,
) -> bool {
    let spec = &c.spec;
    match spec.kind {
        ProbeKind::Tcp => matches!(
            tokio::time::timeout(
                spec.timeout,
                tokio::net::TcpStream::connect(target.as_str())
            )
            .await,
            Ok(Ok(_))
        ),
        ProbeKind::Http => {
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(c.scheme.clone());
            parts.authority = Some(target);
            parts.path_and_query = Some(spec.path.clone());
            let Ok(uri) = http::Uri::from_parts(parts) else {
                return false;
            };
            let Ok(req) = Request::get(uri)
                .version(c.version)
                .header(header::HOST, c.host.clone())
                .header(header::USER_AGENT, "gatehouse-health-check")
                .body(Empty::new())
            else {
                return false;
            };
            match tokio::time::timeout(spec.timeout, client.request(req)).await {
                Ok(Ok(resp)) => spec.expected(resp.status().as_u16()),
                _ => false,
            }
        }
    }
}
