//! The request path: limits, request id, client address, routing, the
//! plugin phases, forwarding upstream, and the response back through the
//! chain. `serve` runs named steps that return `Result<_, GatewayError>`;
//! every rejection becomes problem+json with the request id in one place
//! (`serve`, through `GatewayError::into_response`).

use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_core::{
    Body, Capabilities, Ctx, ErrorFlow, Flow, Phase, Phases, Problem, ProblemType, TlsInfo,
    UpstreamChoice, UpstreamFailure, body,
};
use gatehouse_router::{Match, RequestInfo};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::chain::Chain;
use crate::error::{ErrorSource, GatewayError};
use crate::forward::{self, Hop};
use crate::lifecycle::ApiRt;
use crate::outbound::{self, Outbound, PathSource};
use crate::snapshot::{HashOn, RouteRt, ServiceRt, Settings, Snapshot};
use crate::split::RequestView;
use crate::state::Shared;
use crate::{retry, retry_policy};

/// Facts about the downstream connection, computed once per connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The peer and listener port rendered for forwarding headers.
    pub text: forward::PeerText,
    /// The TLS session, on TLS listeners.
    pub tls: Option<Arc<TlsInfo>>,
    /// Set when a request switched the connection's protocol (a 101 was
    /// sent), so the framing guard stops following HTTP/1 framing.
    pub(crate) switched: crate::framing::Switched,
    /// The listener's position in the config (its `paths` options).
    pub listener: usize,
}

impl ConnInfo {
    /// Describes a connection from `peer` accepted on `port`, with its TLS
    /// session if the listener terminates TLS.
    pub fn new(peer: SocketAddr, port: u16, tls: Option<TlsInfo>) -> Self {
        Self {
            peer,
            text: forward::PeerText::new(peer.ip(), port),
            tls: tls.map(Arc::new),
            switched: crate::framing::Switched::default(),
            listener: 0,
        }
    }

    /// The same connection, accepted on listener `index`.
    pub fn on_listener(mut self, index: usize) -> Self {
        self.listener = index;
        self
    }

    /// The scheme the client used, for forwarding headers.
    fn proto(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// Handles one request. Never fails: errors become responses.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let snap = shared.snapshot();
    match shared.access_log() {
        None => Ok(serve(&snap, &conn, req).await),
        // Boxed: the entry's parts stay off the future of unlogged requests.
        Some(log) => Ok(Box::pin(serve_logged(&snap, &conn, req, log)).await),
    }
}

/// [`serve`], then one access log entry when the response body ends.
async fn serve_logged(
    snap: &Arc<Snapshot>,
    conn: &ConnInfo,
    req: Request<Incoming>,
    log: &crate::access::AccessLog,
) -> Response<Body> {
    let time = std::time::SystemTime::now();
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let version = req.version();
    let headers = req.headers();
    let host = uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .or_else(|| headers.get(header::HOST).cloned());
    let user_agent = headers.get(header::USER_AGENT).cloned();
    let referer = headers.get(header::REFERER).cloned();
    let bytes_in = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut seen = None;
    let resp = serve_inner(snap, conn, req, Some(&mut seen)).await;
    let (mut parts, body) = resp.into_parts();
    let upstream = parts.extensions.remove::<crate::access::UpstreamNote>();
    let problem = parts
        .extensions
        .get::<gatehouse_core::Answered>()
        .map(|a| a.0.slug());
    let status = parts.status.as_u16();
    let Seen {
        request_id,
        client_ip,
        route,
        service,
        consumer,
        app,
    } = seen.unwrap_or_default();
    let entry = Box::new(crate::access::Entry {
        time,
        started,
        request_id,
        client_ip,
        peer: conn.peer,
        method,
        uri,
        version,
        host,
        user_agent,
        referer,
        bytes_in,
        route,
        service,
        consumer,
        app,
        status,
        upstream,
        problem,
        bytes_out: 0,
        duration: std::time::Duration::ZERO,
        completed: false,
    });
    let log = log.clone();
    let body = crate::logbody::OnEnd::wrap(body, move |end: crate::logbody::End| {
        let mut entry = entry;
        entry.bytes_out = end.bytes;
        entry.duration = entry.started.elapsed();
        entry.completed = end.completed;
        log.push(entry);
    });
    Response::from_parts(parts, body)
}

/// What the access log takes from the request's context before the
/// response phases consume it.
#[derive(Default)]
struct Seen {
    request_id: Arc<str>,
    client_ip: Option<std::net::IpAddr>,
    route: Option<Arc<str>>,
    service: Option<Arc<str>>,
    consumer: Option<Arc<str>>,
    app: Option<Arc<str>>,
}

fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 200 && b.iter().all(|c| c.is_ascii_graphic())
}

fn new_request_id() -> Arc<str> {
    let mut buf = uuid::Uuid::encode_buffer();
    Arc::from(&*uuid::Uuid::new_v4().simple().encode_lower(&mut buf))
}

/// What a request reached, for the response phases: the chain in force
/// (none before routing) and the route's API (lifecycle headers).
#[derive(Default)]
struct Reached<'s> {
    chain: Option<Arc<Chain>>,
    api: Option<&'s ApiRt>,
}

async fn serve(snap: &Arc<Snapshot>, conn: &ConnInfo, req: Request<Incoming>) -> Response<Body> {
    serve_inner(snap, conn, req, None).await
}

async fn serve_inner(
    snap: &Arc<Snapshot>,
    conn: &ConnInfo,
    req: Request<Incoming>,
    seen: Option<&mut Option<Seen>>,
) -> Response<Body> {
    let (parts, incoming) = req.into_parts();
    let request_id = match parts.headers.get(&snap.settings.request_id_header) {
        Some(v) if valid_request_id(v) => Arc::from(v.to_str().unwrap_or_default()),
        _ => new_request_id(),
    };
    let mut ctx = Ctx::new(request_id, conn.peer);
    ctx.tls.clone_from(&conn.tls);
    let mut reached = Reached::default();
    let result = run(snap, conn, &mut ctx, parts, incoming, &mut reached).await;
    // The one error edge: every gateway error becomes problem+json here,
    // then goes through the response phases like any other response.
    let mut resp = result.unwrap_or_else(|e| e.into_response(&ctx.request_id));
    if let Some(api) = reached.api {
        // Deprecation, Sunset and Link on every response of a deprecated
        // (or retired) API, errors included.
        api.decorate(resp.headers_mut());
    }
    if let Some(seen) = seen {
        *seen = Some(Seen {
            request_id: ctx.request_id.clone(),
            client_ip: ctx.client_ip,
            route: ctx.route.clone(),
            service: ctx.service.clone(),
            consumer: ctx.consumer.as_ref().map(|c| c.username.clone()),
            app: ctx.app.as_ref().map(|a| a.name.clone()),
        });
    }
    finish(snap, reached.chain.as_ref(), ctx, resp).await
}

/// The request path, step by step. `Ok` is the response to send (the
/// upstream's or a plugin's), `Err` the gateway's refusal.
async fn run<'s>(
    snap: &'s Snapshot,
    conn: &ConnInfo,
    ctx: &mut Ctx,
    mut parts: http::request::Parts,
    incoming: Incoming,
    reached: &mut Reached<'s>,
) -> Result<Response<Body>, GatewayError> {
    check_head(&snap.settings, &parts)?;
    let hop_host = decide_host(&mut parts)?;
    decide_path(snap, conn, &mut parts)?;
    let trusted = snap.settings.trusted.contains(conn.peer.ip());
    ctx.client_ip = snap
        .settings
        .trusted
        .client_ip(conn.peer.ip(), &parts.headers);

    let host = hop_host.as_ref().and_then(|h| h.to_str().ok());
    let m = find_route(snap, &parts, host)?;
    let route = &snap.routes[m.route];
    // The service (a split route's branch) and its chain, chosen before
    // any plugin runs.
    let (service, base) = route.target(&RequestView {
        headers: &parts.headers,
        query: parts.uri.query(),
        client_ip: ctx.client_ip,
    });
    ctx.route = Some(route.name.clone());
    ctx.service = service.map(|s| snap.services[s].name.clone());
    ctx.captures = m.captures;
    reached.api = route.api.as_deref();
    let chain = reached.chain.insert(base.clone());
    let mut req = Request::from_parts(parts, body::boxed(incoming));

    if let Some(p) = reached.api.and_then(ApiRt::retired) {
        // A retired API answers 410 before any plugin runs; the response
        // phases still run (CORS headers reach browsers).
        return Err(GatewayError::client(p));
    }
    if let Some(resp) = request_phases(snap, base, chain, ctx, &mut req).await {
        return Ok(resp);
    }
    // Subscriptions are checked after the access phase, which identified
    // the app; the plan of its subscription brings its plugins.
    if let Some(api) = reached.api
        && let Some(plan) = api.admit(ctx).map_err(GatewayError::client)?
        && let Some(resp) = plan_phase(snap, base, chain, ctx, &mut req, plan).await
    {
        return Ok(resp);
    }
    let choice = choose_upstream(chain, ctx, &mut req).await;
    for e in chain.phase(Phase::RequestBody) {
        if let Flow::Respond(r) = e.plugin.request_body(ctx, &mut req).await {
            return Ok(r);
        }
    }
    let hop = Hop {
        peer: &conn.text,
        trusted,
        proto: conn.proto(),
        host: hop_host,
        client: ctx.client_ip,
    };
    let upstream = Upstream {
        route,
        service,
        matched_prefix: m.matched_prefix,
        version_prefix: m.version_prefix,
        switched: &conn.switched,
    };
    // Boxed: the upstream exchange is the largest part of the request's
    // state; keeping it off the handler future keeps the future hyper
    // stores (and moves) per request small.
    let chain = chain.clone();
    Box::pin(forward_upstream(
        snap, &chain, ctx, req, &upstream, &hop, choice,
    ))
    .await
}

/// Refuses methods the gateway never forwards, method overrides, and heads
/// over the header limits (count and total size of names plus values).
fn check_head(settings: &Settings, parts: &http::request::Parts) -> Result<(), GatewayError> {
    if let Some(p) = refused_method(&parts.method).or_else(|| method_override(parts)) {
        return Err(GatewayError::client(p));
    }
    let count = parts.headers.len();
    let bytes: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if count > settings.max_header_count || bytes > settings.max_header_bytes {
        let detail = format!(
            "{count} header fields, {bytes} bytes; limits are {} fields and {} bytes",
            settings.max_header_count, settings.max_header_bytes
        );
        return Err(GatewayError::client(
            Problem::new(ProblemType::HeadersTooLarge).detail(detail),
        ));
    }
    Ok(())
}

/// The effective host, decided once (RFC 9112 section 3.2.2): the request
/// target's authority (absolute-form, HTTP/2 `:authority`) wins over Host.
/// It is what routing, `preserve_host`, X-Forwarded-Host and `Forwarded:
/// host=` all use, in one spelling (canon::host: lower case, no trailing
/// dot, `host[:port]` only); plugins see it as Host too.
fn decide_host(parts: &mut http::request::Parts) -> Result<Option<HeaderValue>, GatewayError> {
    let hop_host = effective_host(parts).map_err(GatewayError::client)?;
    if let Some(h) = &hop_host
        && parts.headers.get(header::HOST) != Some(h)
    {
        parts.headers.insert(header::HOST, h.clone());
    }
    Ok(hop_host)
}

/// The canonical path, decided once: routing, plugins and forwarding all
/// see it (canon::path; borrowed, no allocation, when the path is already
/// canonical).
fn decide_path(
    snap: &Snapshot,
    conn: &ConnInfo,
    parts: &mut http::request::Parts,
) -> Result<(), GatewayError> {
    let bad =
        |detail: String| GatewayError::client(Problem::new(ProblemType::BadPath).detail(detail));
    let path = match crate::canon::path(parts.uri.path(), &snap.path_options(conn.listener)) {
        Ok(std::borrow::Cow::Borrowed(_)) => return Ok(()),
        Ok(std::borrow::Cow::Owned(p)) => p,
        Err(e) => return Err(bad(e.to_string())),
    };
    let pq = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq)).ok();
    parts.uri = http::Uri::from_parts(uri)
        .map_err(|_| bad("the canonical path is not a valid URI".into()))?;
    Ok(())
}

/// The route for the request, or why there is none (404, 405 with Allow).
fn find_route(
    snap: &Snapshot,
    parts: &http::request::Parts,
    host: Option<&str>,
) -> Result<gatehouse_router::RouteMatch, GatewayError> {
    let found = snap.router.find(&RequestInfo {
        host,
        path: parts.uri.path(),
        method: &parts.method,
        headers: &parts.headers,
        query: parts.uri.query(),
    });
    // A CORS preflight is an OPTIONS request for another method: route it
    // as that method, so a route's `cors` plugin can answer it without the
    // route having to list OPTIONS.
    let found = match found {
        Match::MethodNotAllowed { .. } if is_preflight(parts) => {
            let asked = parts
                .headers
                .get(header::ACCESS_CONTROL_REQUEST_METHOD)
                .and_then(|v| http::Method::from_bytes(v.as_bytes()).ok());
            match asked.map(|method| {
                snap.router.find(&RequestInfo {
                    host,
                    path: parts.uri.path(),
                    method: &method,
                    headers: &parts.headers,
                    query: parts.uri.query(),
                })
            }) {
                Some(Match::Found(m))
                    if snap.routes[m.route].any(Capabilities::ANSWERS_PREFLIGHT) =>
                {
                    Match::Found(m)
                }
                _ => found,
            }
        }
        other => other,
    };
    match found {
        Match::Found(m) => Ok(m),
        Match::NotFound => {
            let detail = format!("no route for {} {}", parts.method, parts.uri.path());
            Err(GatewayError::client(
                Problem::new(ProblemType::NoRoute).detail(detail),
            ))
        }
        Match::MethodNotAllowed { allowed } => {
            let allow = allowed
                .iter()
                .map(http::Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let mut p = Problem::new(ProblemType::MethodNotAllowed).detail(format!(
                "{} is not allowed here; allowed: {allow}",
                parts.method
            ));
            if let Ok(v) = HeaderValue::from_str(&allow) {
                p = p.header(header::ALLOW, v);
            }
            Err(GatewayError::client(p))
        }
    }
}

/// Methods the gateway never forwards, whatever the route: `CONNECT`
/// (it would open a raw tunnel through the gateway to wherever the
/// upstream connects) and `TRACE` (the upstream reflects the request,
/// credentials and cookies the gateway added or kept included).
///
/// A method with a lower-case letter (`get`, `Delete`) is refused too, as
/// nginx does: route `methods` are upper case and compared exactly, so
/// `get` skips a route that lists `GET` and falls through to a less
/// specific one, while upstreams such as Werkzeug (Flask) upper-case the
/// method and serve it as `GET`.
fn refused_method(method: &http::Method) -> Option<Problem> {
    if *method == http::Method::CONNECT || *method == http::Method::TRACE {
        return Some(
            Problem::new(ProblemType::MethodNotImplemented)
                .detail(format!("the gateway does not forward {method} requests")),
        );
    }
    method
        .as_str()
        .bytes()
        .any(|b| b.is_ascii_lowercase())
        .then(|| {
            Problem::new(ProblemType::BadRequest).detail(format!(
                "method {:?} has lower-case letters; methods are upper case",
                method.as_str().chars().take(32).collect::<String>()
            ))
        })
}

/// Header fields through which frameworks let a client replace the request
/// method (Flask's documented middleware, Express `method-override`,
/// Symfony and Laravel with overrides on).
/// Parsed names, so the per-request lookups hash without re-parsing.
static METHOD_OVERRIDE_FIELDS: [header::HeaderName; 3] = [
    header::HeaderName::from_static("x-http-method-override"),
    header::HeaderName::from_static("x-http-method"),
    header::HeaderName::from_static("x-method-override"),
];

/// A request that asks the upstream for another method than the one the
/// gateway routes and authorises: a method-override field, or a `_method`
/// query parameter, that names a different method. Refused (`400`), like a
/// `:authority` that disagrees with `host`: `PUT /admin/x` with
/// `X-HTTP-Method-Override: GET` skipped a route listing `GET` for a less
/// specific one, and an upstream honouring the override served the GET.
fn method_override(parts: &http::request::Parts) -> Option<Problem> {
    let method = parts.method.as_str().as_bytes();
    let other = |v: &[u8]| !v.trim_ascii().eq_ignore_ascii_case(method);
    // One pass over the fields, comparing names (no hashing): cheaper than
    // three lookups for the few fields a request carries, and most carry
    // none of these.
    let field = parts
        .headers
        .iter()
        .find(|(name, v)| METHOD_OVERRIDE_FIELDS.contains(name) && other(v.as_bytes()))
        .map(|(name, _)| name);
    let query =
        || gatehouse_router::decoded_query_values(parts.uri.query(), "_method").any(|v| other(&v));
    let via = match field {
        Some(name) => name.as_str(),
        None if query() => "the `_method` query parameter",
        None => return None,
    };
    Some(Problem::new(ProblemType::BadRequest).detail(format!(
        "{via} asks for another method than {}; send that method instead",
        parts.method
    )))
}

/// The effective host of a request, canonical, as a header value: the
/// target's authority when there is one, else the Host header. HTTP/1.1
/// needs exactly one Host unless the target is in absolute-form; more
/// than one is refused everywhere; in HTTP/2 `:authority` and `host` must
/// agree. `Ok(None)`: an HTTP/1.0 request without a host.
fn effective_host(parts: &http::request::Parts) -> Result<Option<HeaderValue>, Problem> {
    use crate::canon;
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let header = match (hosts.next(), hosts.next()) {
        (_, Some(_)) => {
            return Err(
                Problem::new(ProblemType::BadRequest).detail("exactly one Host header is required")
            );
        }
        (Some(h), None) => Some(
            h.to_str()
                .map_err(|_| Problem::new(ProblemType::BadHost).detail("invalid Host header"))?,
        ),
        (None, None) => None,
    };
    let bad = |e: canon::HostError| Problem::new(ProblemType::BadHost).detail(e.to_string());
    let raw = match (parts.uri.authority(), header) {
        (Some(a), Some(h)) if parts.version == Version::HTTP_2 => {
            let (a, h) = (
                canon::host(a.as_str()).map_err(bad)?,
                canon::host(h).map_err(bad)?,
            );
            if a != h {
                return Err(bad(canon::HostError::Disagree(
                    a.into_owned(),
                    h.into_owned(),
                )));
            }
            return Ok(header_value(&a, parts.headers.get(header::HOST)));
        }
        // Absolute-form: the target's authority wins, Host is replaced.
        (Some(a), _) => a.as_str(),
        (None, Some(h)) => h,
        (None, None) if parts.version == Version::HTTP_11 => {
            return Err(
                Problem::new(ProblemType::BadRequest).detail("exactly one Host header is required")
            );
        }
        (None, None) => return Ok(None),
    };
    let canonical = canon::host(raw).map_err(bad)?;
    Ok(header_value(&canonical, parts.headers.get(header::HOST)))
}

/// `host` as a header value, reusing the client's Host value when it is
/// already spelled that way (no copy in the common case).
fn header_value(host: &str, client: Option<&HeaderValue>) -> Option<HeaderValue> {
    match client {
        Some(v) if v.as_bytes() == host.as_bytes() => Some(v.clone()),
        _ => HeaderValue::from_str(host).ok(),
    }
}

fn is_preflight(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::OPTIONS
        && parts.headers.contains_key(header::ORIGIN)
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Runs the rewrite and access phases. Returns a response if a plugin
/// answered. `chain` starts as `base` (the route's or the branch's chain)
/// and is replaced by the merged chain when a consumer is identified.
async fn request_phases(
    snap: &Snapshot,
    base: &Arc<Chain>,
    chain: &mut Arc<Chain>,
    ctx: &mut Ctx,
    req: &mut Request<Body>,
) -> Option<Response<Body>> {
    for e in chain.phase(Phase::Rewrite) {
        if let Flow::Respond(r) = e.plugin.rewrite(ctx, req).await {
            return Some(r);
        }
    }
    // Access: when a plugin identifies a consumer with plugins of its own,
    // the chain is switched to the base merged with them (computed once
    // per snapshot, see `chain::Merged`). The consumer's access plugins
    // that sort at or before the identifying plugin run at once, in order
    // (they would otherwise never run: the access phase is past them);
    // then the rest of the phase runs on the merged chain.
    let mut last: Option<crate::chain::Entry> = None;
    loop {
        let current = chain.clone();
        let mut switched = None;
        for e in current.phase(Phase::Access) {
            if let Some(prev) = &last
                && !Chain::runs_after(e, prev)
            {
                continue;
            }
            let had_consumer = ctx.consumer.is_some();
            if let Flow::Respond(r) = e.plugin.access(ctx, req).await {
                return Some(r);
            }
            last = Some(e.clone());
            if !had_consumer
                && let Some(c) = &ctx.consumer
                && let Some((name, extra)) = snap.consumer_plugins.get_key_value(&c.username)
            {
                let merged = snap.merged.get(base, Some((name, extra)), None);
                for late in merged.catch_up(extra, Some(e)) {
                    if let Flow::Respond(r) = late.plugin.access(ctx, req).await {
                        *chain = merged.clone();
                        return Some(r);
                    }
                }
                switched = Some(merged);
                break;
            }
        }
        match switched {
            Some(next) => *chain = next,
            None => return None,
        }
    }
}

/// The plan is known (the app's approved subscription): its plugins join
/// the chain, between the route's and the consumer's, and its access
/// plugins run now, in order, since the access phase is past.
async fn plan_phase(
    snap: &Snapshot,
    base: &Arc<Chain>,
    chain: &mut Arc<Chain>,
    ctx: &mut Ctx,
    req: &mut Request<Body>,
    plan: Arc<str>,
) -> Option<Response<Body>> {
    ctx.plan = Some(plan.clone());
    let (plan, extra) = snap.plan_plugins.get_key_value(&plan)?;
    let consumer = ctx
        .consumer
        .as_ref()
        .and_then(|c| snap.consumer_plugins.get_key_value(&c.username))
        .map(|(k, v)| (k, &v[..]));
    let merged = snap.merged.get(base, consumer, Some((plan, extra)));
    *chain = merged.clone();
    for e in merged.catch_up(extra, None) {
        if let Flow::Respond(r) = e.plugin.access(ctx, req).await {
            return Some(r);
        }
    }
    None
}

/// The `upstream` phase: the first plugin that chooses wins.
async fn choose_upstream(
    chain: &Chain,
    ctx: &mut Ctx,
    req: &mut Request<Body>,
) -> Option<UpstreamChoice> {
    for e in chain.phase(Phase::Upstream) {
        if let Some(choice) = e.plugin.upstream(ctx, req).await {
            return Some(choice);
        }
    }
    None
}

struct Upstream<'a> {
    route: &'a RouteRt,
    /// The route's service, or the split branch chosen for this request.
    service: Option<usize>,
    matched_prefix: usize,
    version_prefix: usize,
    /// Set when this request switches the connection's protocol.
    switched: &'a crate::framing::Switched,
}

/// Where a request goes: a service, and where a plugin chose one, a fixed
/// target or URL instead of the service's balancer and path.
struct Dest<'s> {
    index: usize,
    svc: &'s ServiceRt,
    /// A target (or a URL's authority) chosen by a plugin.
    fixed: Option<http::uri::Authority>,
    /// A URL chosen by a plugin: its path and query, and its Host.
    url: Option<(http::uri::PathAndQuery, HeaderValue)>,
}

/// Resolves a plugin's choice (or none: the route's service) against the
/// snapshot. `current` is the service chosen so far.
fn resolve<'s>(
    snap: &'s Snapshot,
    up: &Upstream<'_>,
    current: Option<usize>,
    choice: Option<&UpstreamChoice>,
) -> Result<Dest<'s>, GatewayError> {
    let dest = |index: usize| Dest {
        index,
        svc: &snap.services[index],
        fixed: None,
        url: None,
    };
    let route = up.route;
    let no_service = || {
        let detail = if route.split.is_some() {
            "no split branch takes this request (no `when` matched and every weight is 0)"
        } else {
            "the route has no service and no plugin answered"
        };
        GatewayError::upstream(Problem::new(ProblemType::NoService).detail(detail))
    };
    let chosen_by_plugin = |detail: String| {
        GatewayError::internal(Problem::new(ProblemType::NoService).detail(detail))
    };
    match choice {
        None => current.map(dest).ok_or_else(no_service),
        Some(UpstreamChoice::Service(name)) => {
            // The route's workspace only, or a service the route itself
            // reaches (the config allowed that one): a plugin cannot send
            // requests to another tenant's service.
            let own = snap
                .service_names
                .get(&(route.workspace, name.clone()))
                .copied();
            let reached = || {
                let named = |i: &usize| *snap.services[*i].name == **name;
                route.service.filter(named).or_else(|| {
                    route
                        .split
                        .as_ref()
                        .and_then(|s| s.branches().iter().map(|b| b.service).find(named))
                })
            };
            own.or_else(reached).map(dest).ok_or_else(|| {
                chosen_by_plugin(format!(
                    "an `upstream` plugin chose service `{name}`, which this route's workspace does not have"
                ))
            })
        }
        Some(UpstreamChoice::Target(authority)) => {
            let mut d = current.map(dest).ok_or_else(no_service)?;
            d.fixed = Some(authority.clone());
            Ok(d)
        }
        Some(UpstreamChoice::Url(uri)) => {
            let mut d = current.map(dest).ok_or_else(no_service)?;
            let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
                return Err(chosen_by_plugin(
                    "an `upstream` plugin chose a URL that is not absolute".into(),
                ));
            };
            if *scheme != d.svc.scheme {
                return Err(chosen_by_plugin(format!(
                    "an `upstream` plugin chose a `{scheme}` URL for `{}`, a `{}` service",
                    d.svc.name, d.svc.scheme
                )));
            }
            let default_port = if *scheme == http::uri::Scheme::HTTPS {
                443
            } else {
                80
            };
            let host = match authority.port_u16() {
                Some(p) if p != default_port => authority.as_str(),
                _ => authority.host(),
            };
            let host = HeaderValue::from_str(host).map_err(|_| {
                chosen_by_plugin("the chosen URL's host is not a valid Host".into())
            })?;
            let pq = uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
            d.fixed = Some(authority.clone());
            d.url = Some((pq, host));
            Ok(d)
        }
    }
}

/// A request kept so that an `upstream_error` plugin may send it again:
/// its head, and its body if it has one (of known length, within the
/// retry policy's `buffer_body`).
struct Kept {
    method: http::Method,
    uri: http::Uri,
    version: Version,
    headers: http::HeaderMap,
    body: Option<bytes::Bytes>,
}

impl Kept {
    async fn of(req: &mut Request<Body>, limit: u64) -> Result<Option<Self>, GatewayError> {
        let body = match retry::BodyKind::of(req) {
            retry::BodyKind::Empty => None,
            retry::BodyKind::Sized(n) if n <= limit => {
                let taken = std::mem::replace(req.body_mut(), body::empty());
                let bytes = body::collect(taken, n)
                    .await
                    .map_err(|r| GatewayError::client(r.0))?;
                *req.body_mut() = body::full(bytes.clone());
                Some(bytes)
            }
            retry::BodyKind::Sized(_) | retry::BodyKind::Unknown => return Ok(None),
        };
        Ok(Some(Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
            body,
        }))
    }

    fn request(&self) -> Request<Body> {
        let mut req = Request::new(self.body.clone().map_or_else(body::empty, body::full));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Sends the request to its destination (the route's service, or where an
/// `upstream` plugin sent it); on a final upstream failure the
/// `upstream_error` plugins may answer or send it elsewhere (each plugin at
/// most once per request).
async fn forward_upstream(
    snap: &Snapshot,
    chain: &Chain,
    ctx: &mut Ctx,
    mut req: Request<Body>,
    up: &Upstream<'_>,
    hop: &Hop<'_>,
    mut choice: Option<UpstreamChoice>,
) -> Result<Response<Body>, GatewayError> {
    let mut current = up.service;
    let mut kept: Option<Kept> = None;
    let mut retried: Vec<usize> = Vec::new();
    loop {
        let dest = resolve(snap, up, current, choice.as_ref())?;
        if current != Some(dest.index) {
            ctx.service = Some(dest.svc.name.clone());
        }
        current = Some(dest.index);
        let handles_errors = chain.has(Phase::UpstreamError);
        if handles_errors
            && kept.is_none()
            && !(req.version() == Version::HTTP_11 && forward::is_upgrade_request(req.headers()))
        {
            let limit = retry_policy::Effective::new(&dest.svc.retry, up.route.retry.as_deref())
                .buffer_body();
            kept = Kept::of(&mut req, limit).await?;
        }
        let err = match send(snap, chain, ctx, req, up, hop, &dest).await {
            Ok(resp) => return Ok(resp),
            Err(e) if e.source == ErrorSource::Upstream && handles_errors => e,
            Err(e) => return Err(e),
        };
        let failure = UpstreamFailure {
            kind: err.kind(),
            service: dest.svc.name.clone(),
            replayable: kept.is_some(),
        };
        match upstream_error_phase(chain, ctx, &failure, &mut retried).await {
            ErrorFlow::Respond(r) => return Ok(r),
            ErrorFlow::Retry(next) => match &kept {
                Some(k) => {
                    tracing::debug!(problem = err.kind().slug(), choice = ?next, "an upstream_error plugin sends the request again");
                    req = k.request();
                    choice = Some(next);
                }
                None => return Err(err),
            },
            ErrorFlow::Default => return Err(err),
        }
    }
}

/// The `upstream_error` phase: the first plugin that does not leave it to
/// the default decides. A plugin's `Retry` is honoured once per request,
/// and only for a request that can be sent again.
async fn upstream_error_phase(
    chain: &Chain,
    ctx: &mut Ctx,
    failure: &UpstreamFailure,
    retried: &mut Vec<usize>,
) -> ErrorFlow {
    for (i, e) in chain.phase(Phase::UpstreamError).enumerate() {
        match e.plugin.upstream_error(ctx, failure).await {
            ErrorFlow::Default => {}
            ErrorFlow::Respond(r) => return ErrorFlow::Respond(r),
            ErrorFlow::Retry(c) if failure.replayable && !retried.contains(&i) => {
                retried.push(i);
                return ErrorFlow::Retry(c);
            }
            ErrorFlow::Retry(_) => {}
        }
    }
    ErrorFlow::Default
}

/// One trip to `dest`: path, service breaker, concurrency slot, first
/// target, the upstream request built and handed to `upstream_request`,
/// framing, then send with retries; the response back.
async fn send(
    snap: &Snapshot,
    chain: &Chain,
    ctx: &mut Ctx,
    mut req: Request<Body>,
    up: &Upstream<'_>,
    hop: &Hop<'_>,
    dest: &Dest<'_>,
) -> Result<Response<Body>, GatewayError> {
    let route = up.route;
    let svc = dest.svc;
    let settings = &snap.settings;
    let downstream_version = req.version();
    let upgrade =
        downstream_version == Version::HTTP_11 && forward::is_upgrade_request(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let source = match &dest.url {
        Some((pq, _)) => PathSource::Exact(pq.clone()),
        // The common case forwards the path untouched: the parsed
        // path-and-query (a reference-counted buffer) is reused.
        None if route.rewrite.is_none()
            && !route.strip_prefix
            && !route.strip_version
            && svc.base_path.is_empty() =>
        {
            PathSource::Unchanged
        }
        None => PathSource::Joined {
            rewritten: route
                .rewrite
                .as_ref()
                .map(|t| gatehouse_router::expand_template(t, &ctx.captures)),
            strip: if route.strip_prefix {
                up.matched_prefix
            } else if route.strip_version {
                up.version_prefix
            } else {
                0
            },
            base: &svc.base_path,
        },
    };
    let pq = outbound::path_and_query(req.uri(), &source).map_err(GatewayError::client)?;
    // The service's circuit breaker: fail fast, before waiting for a slot.
    let service_ticket = match &svc.breakers {
        None => None,
        Some(b) => Some(b.admit_service().map_err(GatewayError::upstream)?),
    };
    // Concurrency limit: hold a slot until the response body has been sent.
    let permit = match &svc.limit {
        None => None,
        Some(limit) => Some(limit.acquire().await.map_err(|why| {
            let detail = match why {
                crate::limit::Rejected::QueueFull => format!(
                    "`{}` is at its concurrency limit and its queue is full",
                    svc.name
                ),
                crate::limit::Rejected::Timeout => format!(
                    "`{}` is at its concurrency limit; no slot within {:?}",
                    svc.name,
                    limit.queue_timeout()
                ),
            };
            GatewayError::upstream(
                Problem::new(ProblemType::ServiceOverloaded)
                    .detail(detail)
                    .header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            )
        })?),
    };
    let started = std::time::Instant::now();
    // Choose the first target (health, per-target breakers, balancer)
    // from the current set: DNS discovery may replace it meanwhile, and
    // this request keeps reporting to the one it loaded. A target chosen
    // by a plugin bypasses the balancer.
    let set = svc.targets.load();
    let first = match &dest.fixed {
        Some(a) => retry::fixed_attempt(svc, &set, a, started),
        None => {
            let key = if retry::balanced(svc, &set) {
                hash_key(svc, &set.balancer, ctx, &req)
            } else {
                None
            };
            retry::pick_target(svc, &set, key.as_deref(), &[], started)
                .map_err(GatewayError::upstream)?
        }
    };

    // The effective host decided before routing, not whatever Host a
    // plugin left (the upstream_request phase below may still set one).
    let host = match &dest.url {
        Some((_, host)) => host.clone(),
        None => outbound::host(
            route.preserve_host,
            route.host_rewrite.as_ref(),
            hop.host.as_ref(),
            &svc.host_header,
        ),
    };
    let out = Outbound {
        scheme: svc.scheme.clone(),
        authority: first.authority().clone(),
        path_and_query: pq,
        host,
        hop,
        via: settings.via,
        request_id: (&settings.request_id_header, &ctx.request_id),
        version: svc.version,
        upgrade,
    };
    let (parts, body) = req.into_parts();
    let parts = match outbound::build(parts, &out) {
        Ok(p) => p,
        Err(p) => {
            first.cancel();
            return Err(GatewayError::client(p));
        }
    };
    let mut req = Request::from_parts(parts, body);

    for e in chain.phase(Phase::UpstreamRequest) {
        if let Flow::Respond(r) = e.plugin.upstream_request(ctx, &mut req).await {
            first.cancel();
            return Ok(r);
        }
    }
    // The body is final now (request_body and upstream_request are past):
    // framing follows it, and only then is it sized for a replay. Without
    // a plugin that had the request, the body is the client's and its
    // framing (Transfer-Encoding already stripped as hop-by-hop) stands.
    if chain.has_any(Phases::REQUEST) {
        outbound::reframe(&mut req, chain.has(Phase::UpstreamRequest));
    }
    let body_kind = retry::BodyKind::of(&req);

    // Send, with retries, under the per-try and total timeouts (the
    // route's where it sets them).
    let timeouts = route.timeouts.as_deref();
    let exchange = retry::Exchange {
        svc,
        set: &set,
        client: timeouts
            .and_then(|t| t.client_for(dest.index))
            .unwrap_or(&svc.client),
        policy: retry_policy::Effective::new(&svc.retry, route.retry.as_deref()),
        per_try: timeouts.and_then(|t| t.per_try).unwrap_or(svc.timeout),
        total: timeouts.and_then(|t| t.total).or(svc.total_timeout),
        started,
        upgrade,
        fixed: dest.fixed.as_ref(),
        note_target: snap.settings.access_log,
    };
    let (mut resp, target, sent_at) =
        match retry::send(&exchange, req, body_kind, first, service_ticket).await {
            retry::Sent::Response {
                mut resp,
                target,
                sent_at,
                authority,
                retries,
                first_sent_at,
            } => {
                if let Some(target) = authority {
                    resp.extensions_mut().insert(crate::access::UpstreamNote {
                        target,
                        latency: first_sent_at.elapsed(),
                        retries,
                    });
                }
                (resp, target, sent_at)
            }
            retry::Sent::Problem(p) => return Err(GatewayError::from_send(p)),
        };

    if let Some(client_upgrade) = client_upgrade
        && resp.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        if let Some(t) = target {
            set.balancer.on_finish(t, sent_at.elapsed(), true);
        }
        // Before hyper writes the 101: from here on the client connection
        // carries another protocol, and the framing guard lets it pass.
        up.switched.set();
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((down, up)) => {
                    let mut down = TokioIo::new(down);
                    let mut up = TokioIo::new(up);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                        tracing::debug!(error = %e, "upgraded connection ended");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        let (mut parts, _) = resp.into_parts();
        forward::strip_hop_by_hop(&mut parts.headers, true, false);
        if settings.via {
            forward::append_via(&mut parts.headers, Version::HTTP_11);
        }
        return Ok(Response::from_parts(parts, body::empty()));
    }

    let (mut parts, upstream_body) = resp.into_parts();
    forward::strip_hop_by_hop(&mut parts.headers, false, false);
    if settings.via {
        forward::append_via(&mut parts.headers, parts.version);
    }
    parts.version = Version::HTTP_11;
    let mut out = upstream_body;
    if let Some(permit) = permit {
        out = crate::logbody::hold(out, permit);
    }
    if let Some(t) = target {
        // The request stays "in flight" for least-connections until its
        // body ends; the latency reported is the time to response headers.
        let ok = !parts.status.is_server_error();
        out = crate::logbody::finish_target(out, set.balancer.clone(), t, sent_at.elapsed(), ok);
    }
    Ok(Response::from_parts(parts, out))
}

/// The bytes `consistent-hash` hashes for this request, if it uses it.
/// Header, cookie and query keys are borrowed from the request.
fn hash_key<'r>(
    svc: &ServiceRt,
    balancer: &gatehouse_upstream::Balancer,
    ctx: &'r Ctx,
    req: &'r Request<Body>,
) -> Option<std::borrow::Cow<'r, [u8]>> {
    use std::borrow::Cow;
    if balancer.algorithm() != gatehouse_upstream::Algorithm::ConsistentHash {
        return None;
    }
    // An unknown client has no key: the balancer picks as if unhashed.
    let ip = || {
        ctx.client_ip.map(|ip| {
            Cow::Owned(match ip {
                std::net::IpAddr::V4(a) => a.octets().to_vec(),
                std::net::IpAddr::V6(a) => a.octets().to_vec(),
            })
        })
    };
    match &svc.hash_on {
        HashOn::ClientIp => ip(),
        HashOn::Consumer => match &ctx.consumer {
            Some(c) => Some(Cow::Borrowed(c.username.as_bytes())),
            None => ip(),
        },
        HashOn::Header(name) => req.headers().get(name).map(|v| Cow::Borrowed(v.as_bytes())),
        HashOn::Cookie(name) => gatehouse_router::cookie_values(req.headers(), name)
            .next()
            .map(|v| Cow::Borrowed(v.as_bytes())),
        HashOn::Query(name) => gatehouse_router::query_values(req.uri().query(), name)
            .next()
            .map(|v| Cow::Borrowed(v.as_bytes())),
    }
}

/// Response phases: request id echo, response_headers, response_body, and
/// the log phase attached to the end of the body stream. `chain` is `None`
/// for requests refused before routing: only the request id is added.
async fn finish(
    snap: &Snapshot,
    chain: Option<&Arc<Chain>>,
    mut ctx: Ctx,
    resp: Response<Body>,
) -> Response<Body> {
    let (mut parts, mut body) = resp.into_parts();
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        parts
            .headers
            .insert(snap.settings.request_id_header.clone(), v);
    }
    let Some(chain) = chain else {
        return Response::from_parts(parts, body);
    };
    for e in chain.phase(Phase::ResponseHeaders) {
        e.plugin.response_headers(&mut ctx, &mut parts).await;
    }
    for e in chain.phase(Phase::ResponseBody) {
        body = e.plugin.response_body(&ctx, body);
    }
    if chain.has(Phase::Log) {
        body = crate::logbody::log_phase(body, chain.clone(), ctx, parts.status.as_u16());
    }
    Response::from_parts(parts, body)
}

/// hyper needs the request future to be `Send`. When it is not, this fails
/// to compile with a clearer message than the listener code would give.
#[cfg(test)]
#[allow(dead_code)]
fn handler_future_is_send(shared: Arc<Shared>, conn: Arc<ConnInfo>, req: Request<Incoming>) {
    fn is_send<T: Send>(_: T) {}
    is_send(handle(shared, conn, req));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Services `mine` (workspace 0) and `theirs` (workspace 1, which the
    /// route `cross` reaches through its own `service`); routes `r` and
    /// `cross` of workspace 0.
    fn snapshot() -> Snapshot {
        let yaml = "services:\n  - name: mine\n    url: http://mine.internal\n  - name: theirs\n    url: http://theirs.internal\nroutes:\n  - name: r\n    service: mine\n    paths: [/r]\n  - name: cross\n    service: theirs\n    paths: [/cross]\n";
        let mut loaded = gatehouse_config::parse_str(yaml, "t.yaml").unwrap();
        loaded.config.workspaces = gatehouse_config::Workspaces {
            names: vec!["default".into(), "tenant".into()],
            accepts: vec![vec![], vec![]],
            services: vec![0, 1],
            routes: vec![0, 0],
            ..Default::default()
        };
        crate::snapshot::compile_for_test(&loaded)
    }

    #[test]
    fn plugin_choices_stay_in_the_routes_workspace() {
        let snap = snapshot();
        let switched = crate::framing::Switched::default();
        let up = |route: usize| Upstream {
            route: &snap.routes[route],
            service: snap.routes[route].service,
            matched_prefix: 0,
            version_prefix: 0,
            switched: &switched,
        };
        let name = |c: Option<UpstreamChoice>, route: usize| {
            let u = up(route);
            resolve(&snap, &u, u.service, c.as_ref())
                .map(|d| (d.svc.name.to_string(), d.fixed.map(|a| a.to_string())))
                .map_err(|e| (e.kind(), e.source))
        };
        let service = |n: &str| Some(UpstreamChoice::Service(n.into()));
        assert_eq!(name(None, 0), Ok(("mine".into(), None)));
        assert_eq!(name(service("mine"), 0), Ok(("mine".into(), None)));
        // Another tenant's service: refused, as if it did not exist.
        let refused = Err((ProblemType::NoService, ErrorSource::Internal));
        assert_eq!(name(service("theirs"), 0), refused);
        assert_eq!(name(service("nope"), 0), refused);
        assert_eq!(name(service(""), 0), refused);
        // ...unless the configuration lets the route reach it.
        assert_eq!(name(service("theirs"), 1), Ok(("theirs".into(), None)));
        // Target: the current service, at that address.
        let target = Some(UpstreamChoice::Target("10.0.0.9:81".parse().unwrap()));
        assert_eq!(
            name(target, 0),
            Ok(("mine".into(), Some("10.0.0.9:81".into())))
        );
        // URL: absolute, with the service's scheme only.
        let url = |u: &str| Some(UpstreamChoice::Url(u.parse().unwrap()));
        assert_eq!(
            name(url("http://other.internal:8080/x?y=1"), 0),
            Ok(("mine".into(), Some("other.internal:8080".into())))
        );
        assert_eq!(name(url("https://other.internal/x"), 0), refused);
        assert_eq!(name(url("/relative"), 0), refused);
        assert_eq!(name(url("https://other.internal/x"), 1), refused);
    }
}
