//! The status listener (`server.status_listen`): health and status for
//! orchestrators and monitoring, on an address of its own so that none of
//! it is reachable through the proxy's listeners.
//!
//! - `GET /health/live`: 200 while the process serves at all.
//! - `GET /health/ready`: 200 once the configuration is loaded and every
//!   listener is up; 503 while draining for shutdown (so a load balancer
//!   stops sending before the listeners close).
//! - `GET /status`: JSON with the version, configuration version, uptime,
//!   open connections and readiness.
//! - `GET /metrics`: Prometheus text format: the gateway's own gauges and
//!   whatever plugins registered through the metrics facade.
//!
//! Anything else is 404; methods other than GET and HEAD are 405.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::conns::Conns;
use crate::state::Shared;

/// What the status endpoints report besides the shared state.
#[derive(Debug)]
pub(crate) struct Status {
    started: Instant,
    ready: AtomicBool,
    draining: AtomicBool,
}

impl Status {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    /// Every listener is up.
    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Shutdown began: not ready any more.
    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }
}

/// Serves the status endpoints on `listener` until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    conns: Arc<Conns>,
    status: Arc<Status>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let (shared, conns, status) = (shared.clone(), conns.clone(), status.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let answer = answer(&req, &shared, &conns, &status);
                async move { Ok::<_, Infallible>(answer) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(
    req: &Request<Incoming>,
    shared: &Shared,
    conns: &Conns,
    status: &Status,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET or HEAD\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/health/live" => reply(
            StatusCode::OK,
            "application/json",
            "{\"status\":\"live\"}\n".into(),
        ),
        "/health/ready" if status.is_ready() => reply(
            StatusCode::OK,
            "application/json",
            "{\"status\":\"ready\"}\n".into(),
        ),
        "/health/ready" => {
            let why = if status.draining.load(Ordering::Acquire) {
                "draining"
            } else {
                "starting"
            };
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/json",
                format!("{{\"status\":\"{why}\"}}\n"),
            )
        }
        "/status" => {
            let doc = serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "config_version": shared.version(),
                "uptime_seconds": status.started.elapsed().as_secs(),
                "open_connections": conns.open(),
                "ready": status.is_ready(),
                "draining": status.draining.load(Ordering::Acquire),
                "access_log_dropped": shared.access_log().map(crate::access::AccessLog::dropped),
            });
            reply(StatusCode::OK, "application/json", format!("{doc}\n"))
        }
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(shared, conns, status),
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// The gateway's own gauges, then the facade's registry.
fn metrics(shared: &Shared, conns: &Conns, status: &Status) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    gauge(
        "gatehouse_config_version",
        "Version of the configuration in force (1 at start, +1 per reload).",
        "gauge",
        shared.version().to_string(),
    );
    gauge(
        "gatehouse_uptime_seconds",
        "Seconds since the gateway started.",
        "gauge",
        format!("{:.3}", status.started.elapsed().as_secs_f64()),
    );
    gauge(
        "gatehouse_open_connections",
        "Client connections open on the proxy listeners.",
        "gauge",
        conns.open().to_string(),
    );
    gauge(
        "gatehouse_ready",
        "1 when the gateway is ready for traffic, 0 while starting or draining.",
        "gauge",
        u8::from(status.is_ready()).to_string(),
    );
    if let Some(log) = shared.access_log() {
        gauge(
            "gatehouse_access_log_dropped_total",
            "Access log lines dropped because the writer fell behind.",
            "counter",
            log.dropped().to_string(),
        );
    }
    out.push_str(&shared.resources().metrics().render_prometheus());
    out
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}
