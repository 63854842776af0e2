//! The request path: limits, request id, client address, routing, the
//! plugin phases, forwarding upstream, and the response back through the
//! chain. Every rejection leaves as problem+json with the request id.

use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_core::{Body, Capabilities, Ctx, Flow, Phase, Problem, ProblemType, TlsInfo, body};
use gatehouse_router::{Match, RequestInfo};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::chain::Chain;
use crate::forward::{self, Hop};
use crate::lifecycle::ApiRt;
use crate::retry;
use crate::snapshot::{HashOn, RouteRt, ServiceRt, Snapshot};
use crate::split::RequestView;
use crate::state::Shared;

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
    Ok(serve(&snap, &conn, req).await)
}

fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 200 && b.iter().all(|c| c.is_ascii_graphic())
}

fn new_request_id() -> Arc<str> {
    let mut buf = uuid::Uuid::encode_buffer();
    Arc::from(&*uuid::Uuid::new_v4().simple().encode_lower(&mut buf))
}

async fn serve(snap: &Arc<Snapshot>, conn: &ConnInfo, req: Request<Incoming>) -> Response<Body> {
    let settings = &snap.settings;
    let (mut parts, incoming) = req.into_parts();
    let request_id = match parts.headers.get(&settings.request_id_header) {
        Some(v) if valid_request_id(v) => Arc::from(v.to_str().unwrap_or_default()),
        _ => new_request_id(),
    };
    let mut ctx = Ctx::new(request_id, conn.peer);
    ctx.tls.clone_from(&conn.tls);
    if let Some(p) = refused_method(&parts.method).or_else(|| method_override(&parts)) {
        return finish_problem(snap, &ctx, p);
    }

    // Header limits: count and total size of names plus values.
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
        return finish_problem(
            snap,
            &ctx,
            Problem::new(ProblemType::HeadersTooLarge).detail(detail),
        );
    }

    // The effective host, decided once (RFC 9112 section 3.2.2): the
    // request target's authority (absolute-form, HTTP/2 `:authority`)
    // wins over Host. It is what routing, `preserve_host`,
    // X-Forwarded-Host and `Forwarded: host=` all use, in one spelling
    // (canon::host: lower case, no trailing dot, `host[:port]` only).
    let hop_host = match effective_host(&parts) {
        Ok(h) => h,
        Err(p) => return finish_problem(snap, &ctx, p),
    };
    if let Some(h) = &hop_host
        && parts.headers.get(header::HOST) != Some(h)
    {
        // Plugins see the one host too.
        parts.headers.insert(header::HOST, h.clone());
    }
    let host = hop_host.as_ref().and_then(|h| h.to_str().ok());

    // The canonical path, decided once: routing, plugins and forwarding
    // all see it (canon::path; borrowed, no allocation, when the path is
    // already canonical).
    let canonical = match crate::canon::path(parts.uri.path(), &snap.path_options(conn.listener)) {
        Ok(std::borrow::Cow::Borrowed(_)) => None,
        Ok(std::borrow::Cow::Owned(p)) => Some(p),
        Err(e) => {
            return finish_problem(
                snap,
                &ctx,
                Problem::new(ProblemType::BadPath).detail(e.to_string()),
            );
        }
    };
    if let Some(path) = canonical {
        let pq = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.path_and_query =
            http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq)).ok();
        match http::Uri::from_parts(uri) {
            Ok(u) => parts.uri = u,
            Err(_) => {
                return finish_problem(
                    snap,
                    &ctx,
                    Problem::new(ProblemType::BadPath)
                        .detail("the canonical path is not a valid URI"),
                );
            }
        }
    }

    let trusted = settings.trusted.contains(conn.peer.ip());
    ctx.client_ip = settings.trusted.client_ip(conn.peer.ip(), &parts.headers);

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
        Match::MethodNotAllowed { .. } if is_preflight(&parts) => {
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
    let m = match found {
        Match::Found(m) => m,
        Match::NotFound => {
            let detail = format!("no route for {} {}", parts.method, parts.uri.path());
            return finish_problem(
                snap,
                &ctx,
                Problem::new(ProblemType::NoRoute).detail(detail),
            );
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
            return finish_problem(snap, &ctx, p);
        }
    };
    let route = &snap.routes[m.route];
    // The service (a split route's branch) and its chain, chosen before
    // any plugin runs.
    let (service, route_chain) = route.target(&RequestView {
        headers: &parts.headers,
        query: parts.uri.query(),
        client_ip: ctx.client_ip,
    });
    ctx.route = Some(route.name.clone());
    ctx.service = service.map(|s| snap.services[s].name.clone());
    ctx.captures = m.captures;
    let mut req = Request::from_parts(parts, body::boxed(incoming));

    let mut chain = route_chain.clone();
    let api = route.api.as_deref();
    let resp = if let Some(p) = api.and_then(ApiRt::retired) {
        // A retired API answers 410 before any plugin runs; the response
        // phases still run (CORS headers reach browsers).
        ctx_problem(&ctx, p)
    } else {
        match request_phases(snap, &mut chain, &mut ctx, &mut req).await {
            Some(resp) => resp,
            // Subscriptions are checked after the access phase, which
            // identified the app.
            None => match api.map(|a| a.admit(&ctx)) {
                Some(Err(p)) => ctx_problem(&ctx, p),
                _ => {
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
                    // Boxed: the upstream exchange is the largest part of
                    // the request's state; keeping it off the handler future
                    // keeps the future hyper stores (and moves) per request
                    // small.
                    Box::pin(forward_upstream(
                        snap, &chain, &mut ctx, req, &upstream, &hop,
                    ))
                    .await
                }
            },
        }
    };
    let mut resp = resp;
    if let Some(api) = api {
        // Deprecation, Sunset and Link on every response of a deprecated
        // (or retired) API, errors included.
        api.decorate(resp.headers_mut());
    }
    finish(snap, &chain, ctx, resp)
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
    let field = METHOD_OVERRIDE_FIELDS.iter().find(|name| {
        parts
            .headers
            .get_all(*name)
            .iter()
            .any(|v| other(v.as_bytes()))
    });
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

/// Runs rewrite, access and upstream_request phases that happen before
/// the upstream is chosen. Returns a response if a plugin answered.
async fn request_phases(
    snap: &Snapshot,
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
    // the chain is re-merged with them. The consumer's access plugins that
    // sort at or before the identifying plugin run at once, in order (they
    // would otherwise never run: the access phase is past them); then the
    // rest of the phase runs on the merged chain.
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
                && let Some(extra) = snap.consumer_plugins.get(&c.username)
            {
                let merged = Arc::new(Chain::merge([current.entries(), &extra[..]]));
                for late in merged.catch_up(extra, e) {
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

struct Upstream<'a> {
    route: &'a RouteRt,
    /// The route's service, or the split branch chosen for this request.
    service: Option<usize>,
    matched_prefix: usize,
    version_prefix: usize,
    /// Set when this request switches the connection's protocol.
    switched: &'a crate::framing::Switched,
}

fn upstream_path(
    route: &RouteRt,
    svc: &ServiceRt,
    path: &str,
    m: &Upstream<'_>,
    ctx: &Ctx,
) -> String {
    let mut p: std::borrow::Cow<'_, str> = path.into();
    if let Some(template) = &route.rewrite {
        p = gatehouse_router::expand_template(template, &ctx.captures).into();
    } else {
        if route.strip_prefix && m.matched_prefix <= p.len() && p.is_char_boundary(m.matched_prefix)
        {
            p = p[m.matched_prefix..].to_string().into();
        } else if route.strip_version
            && m.version_prefix <= p.len()
            && p.is_char_boundary(m.version_prefix)
        {
            p = p[m.version_prefix..].to_string().into();
        }
        if !p.starts_with('/') {
            p = format!("/{p}").into();
        }
    }
    if svc.base_path.is_empty() {
        p.into_owned()
    } else {
        format!("{}{}", svc.base_path, p)
    }
}

async fn forward_upstream(
    snap: &Snapshot,
    chain: &Chain,
    ctx: &mut Ctx,
    mut req: Request<Body>,
    up: &Upstream<'_>,
    hop: &Hop<'_>,
) -> Response<Body> {
    let route = up.route;
    let Some(svc) = up.service.map(|i| &snap.services[i]) else {
        let detail = if route.split.is_some() {
            "no split branch takes this request (no `when` matched and every weight is 0)"
        } else {
            "the route has no service and no plugin answered"
        };
        return ctx_problem(ctx, Problem::new(ProblemType::NoService).detail(detail));
    };
    let settings = &snap.settings;
    let downstream_version = req.version();
    let upgrade =
        downstream_version == Version::HTTP_11 && forward::is_upgrade_request(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    // The common case forwards the path untouched: reuse the parsed
    // path-and-query (a reference-counted buffer) instead of re-parsing.
    let unchanged = route.rewrite.is_none()
        && !route.strip_prefix
        && !route.strip_version
        && svc.base_path.is_empty();
    let pq = match req.uri().path_and_query() {
        Some(pq) if unchanged => Ok(pq.clone()),
        _ => {
            let path = upstream_path(route, svc, req.uri().path(), up, ctx);
            // What the upstream receives must name what the route matched:
            // no dot segment (however spelled) may climb out of the base
            // path after strip_prefix or a rewrite template.
            if !crate::canon::upstream_path_ok(&path) {
                return ctx_problem(
                    ctx,
                    Problem::new(ProblemType::PathOutsideRoute)
                        .detail("the rewritten upstream path would leave the route's base path"),
                );
            }
            let pq = match req.uri().query() {
                // A rewrite template may bring its own query string.
                Some(q) if path.contains('?') => format!("{path}&{q}"),
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq))
        }
    };
    // The service's circuit breaker: fail fast, before waiting for a slot.
    let service_ticket = match &svc.breakers {
        None => None,
        Some(b) => match b.admit_service() {
            Ok(t) => Some(t),
            Err(p) => return ctx_problem(ctx, p),
        },
    };
    // Concurrency limit: hold a slot until the response body has been sent.
    let permit = match &svc.limit {
        None => None,
        Some(limit) => match limit.acquire().await {
            Ok(p) => Some(p),
            Err(why) => {
                let detail = match why {
                    crate::limit::Rejected::QueueFull => {
                        format!(
                            "`{}` is at its concurrency limit and its queue is full",
                            svc.name
                        )
                    }
                    crate::limit::Rejected::Timeout => format!(
                        "`{}` is at its concurrency limit; no slot within {:?}",
                        svc.name,
                        limit.queue_timeout()
                    ),
                };
                return ctx_problem(
                    ctx,
                    Problem::new(ProblemType::ServiceOverloaded)
                        .detail(detail)
                        .header(header::RETRY_AFTER, HeaderValue::from_static("1")),
                );
            }
        },
    };
    let started = std::time::Instant::now();
    let body_kind = retry::BodyKind::of(&req);
    // Choose the first target (health, per-target breakers, balancer)
    // from the current set: DNS discovery may replace it meanwhile, and
    // this request keeps reporting to the one it loaded.
    let set = svc.targets.load();
    let first = {
        let key = if retry::balanced(svc, &set) {
            hash_key(svc, &set.balancer, ctx, &req)
        } else {
            None
        };
        match retry::pick_target(svc, &set, key.as_deref(), &[], started) {
            Ok(a) => a,
            Err(p) => return ctx_problem(ctx, p),
        }
    };
    let mut uri_parts = http::uri::Parts::default();
    uri_parts.scheme = Some(svc.scheme.clone());
    uri_parts.authority = Some(first.authority().clone());
    uri_parts.path_and_query = pq.ok();
    let uri = match http::Uri::from_parts(uri_parts) {
        Ok(u) => u,
        Err(_) => {
            return ctx_problem(
                ctx,
                Problem::new(ProblemType::BadRequest)
                    .detail("the rewritten path is not a valid URI"),
            );
        }
    };

    // The effective host decided before routing, not whatever Host a
    // plugin left (the upstream_request phase below may still set one).
    let client_host = hop.host.clone();
    {
        let headers = req.headers_mut();
        // Room for Host, X-Forwarded-*, Forwarded, Via and the request id,
        // so the map grows at most once.
        headers.reserve(8);
        forward::strip_hop_by_hop(headers, upgrade, true);
        headers.remove(header::EXPECT);
        let host = if route.preserve_host {
            client_host.unwrap_or_else(|| svc.host_header.clone())
        } else if let Some(h) = &route.host_rewrite {
            h.clone()
        } else {
            svc.host_header.clone()
        };
        headers.insert(header::HOST, host);
        forward::set_forwarding_headers(headers, hop);
        if settings.via {
            forward::append_via(headers, downstream_version);
        }
        if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
            headers.insert(settings.request_id_header.clone(), v);
        }
    }
    *req.uri_mut() = uri;
    *req.version_mut() = svc.version;

    for e in chain.phase(Phase::UpstreamRequest) {
        if let Flow::Respond(r) = e.plugin.upstream_request(ctx, &mut req).await {
            first.cancel();
            return r;
        }
    }

    // Send, with retries, under the per-try and total timeouts (the
    // route's where it sets them).
    let timeouts = route.timeouts.as_deref();
    let exchange = retry::Exchange {
        svc,
        set: &set,
        client: up
            .service
            .zip(timeouts)
            .and_then(|(i, t)| t.client_for(i))
            .unwrap_or(&svc.client),
        policy: retry::Effective::new(&svc.retry, route.retry.as_deref()),
        per_try: timeouts.and_then(|t| t.per_try).unwrap_or(svc.timeout),
        total: timeouts.and_then(|t| t.total).or(svc.total_timeout),
        started,
        upgrade,
    };
    let (mut resp, target, sent_at) =
        match retry::send(&exchange, req, body_kind, first, service_ticket).await {
            retry::Sent::Response {
                resp,
                target,
                sent_at,
            } => (resp, target, sent_at),
            retry::Sent::Problem(p) => return ctx_problem(ctx, p),
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
        return Response::from_parts(parts, body::empty());
    }

    let (mut parts, incoming) = resp.into_parts();
    forward::strip_hop_by_hop(&mut parts.headers, false, false);
    if settings.via {
        forward::append_via(&mut parts.headers, parts.version);
    }
    parts.version = Version::HTTP_11;
    let mut out = body::boxed(incoming);
    if let Some(permit) = permit {
        out = crate::logbody::hold(out, permit);
    }
    if let Some(t) = target {
        // The request stays "in flight" for least-connections until its
        // body ends; the latency reported is the time to response headers.
        let ok = !parts.status.is_server_error();
        out = crate::logbody::finish_target(out, set.balancer.clone(), t, sent_at.elapsed(), ok);
    }
    Response::from_parts(parts, out)
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

fn ctx_problem(ctx: &Ctx, p: Problem) -> Response<Body> {
    p.into_response(Some(&ctx.request_id))
}

fn finish_problem(snap: &Snapshot, ctx: &Ctx, p: Problem) -> Response<Body> {
    let mut resp = ctx_problem(ctx, p);
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        resp.headers_mut()
            .insert(snap.settings.request_id_header.clone(), v);
    }
    resp
}

/// Response phases: request id echo, response_headers, response_body, and
/// the log phase attached to the end of the body stream.
fn finish(
    snap: &Snapshot,
    chain: &Arc<Chain>,
    mut ctx: Ctx,
    resp: Response<Body>,
) -> Response<Body> {
    let (mut parts, mut body) = resp.into_parts();
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        parts
            .headers
            .insert(snap.settings.request_id_header.clone(), v);
    }
    for e in chain.phase(Phase::ResponseHeaders) {
        e.plugin.response_headers(&mut ctx, &mut parts);
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
