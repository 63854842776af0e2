//! Checks that need more than one field: unique names, references between
//! entities, and the syntax of addresses, URLs, hosts and header names.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use crate::error::ConfigErrors;
use crate::locate::Source;
use crate::model::{Config, OneOrMany, PluginRef, RetryCondition, Route, Service};

pub(crate) struct Collector<'a> {
    source: &'a Source,
    errors: Vec<crate::ConfigError>,
}

impl Collector<'_> {
    pub(crate) fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(self.source.error(&field.into(), message));
    }
}

pub(crate) fn validate(config: &Config, source: &Source) -> Result<(), ConfigErrors> {
    let mut c = Collector {
        source,
        errors: Vec::new(),
    };
    server(config, &mut c);
    listeners(config, &mut c);
    services(config, &mut c);
    routes(config, &mut c);
    consumers(config, &mut c);
    crate::lifecycle::validate(config, &mut c);
    plugin_refs(&config.plugins, "plugins", &mut c);
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(c.errors))
    }
}

/// Parses `1.2.3.4`, `::1`, `10.0.0.0/8` or `fd00::/8`.
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Some(net);
    }
    s.parse::<IpAddr>().ok().map(ipnet::IpNet::from)
}

fn server(config: &Config, c: &mut Collector<'_>) {
    let s = &config.server;
    for (i, p) in s.trusted_proxies.iter().enumerate() {
        if parse_net(p).is_none() {
            c.error(
                format!("server.trusted_proxies[{i}]"),
                format!("`{p}` is not an IP address or CIDR (expected e.g. 10.0.0.0/8)"),
            );
        }
    }
    if s.max_header_bytes < 1024 {
        c.error("server.max_header_bytes", "must be at least 1024");
    }
    if s.max_header_count == 0 {
        c.error("server.max_header_count", "must be at least 1");
    }
    if http::HeaderName::from_bytes(s.request_id_header.as_bytes()).is_err() {
        c.error(
            "server.request_id_header",
            format!("`{}` is not a valid header name", s.request_id_header),
        );
    }
    if s.header_read_timeout.is_zero() {
        c.error("server.header_read_timeout", "must be greater than zero");
    }
    if s.shutdown_timeout.is_zero() {
        c.error("server.shutdown_timeout", "must be greater than zero");
    }
    if s.watch_interval.is_zero() {
        c.error("server.watch_interval", "must be greater than zero");
    }
    if s.idle_timeout.is_zero() {
        c.error("server.idle_timeout", "must be greater than zero");
    }
    if s.max_connections == Some(0) {
        c.error(
            "server.max_connections",
            "must be at least 1 (leave it out for the default)",
        );
    }
    if let (Some(all), Some(per_ip)) = (s.max_connections, s.max_connections_per_ip)
        && per_ip > all
        && all > 0
    {
        c.error(
            "server.max_connections_per_ip",
            format!("{per_ip} is more than server.max_connections ({all})"),
        );
    }
    if s.http2_max_concurrent_streams == 0 {
        c.error("server.http2_max_concurrent_streams", "must be at least 1");
    }
    if s.max_requests_per_connection == 0 {
        c.error("server.max_requests_per_connection", "must be at least 1");
    }
    dns(&s.dns, c);
    if let Some(secret) = &s.key_hash_secret
        && secret.chars().count() < 16
    {
        c.error(
            "server.key_hash_secret",
            "must be at least 16 characters (use a long random string, the same on every node)",
        );
    }
}

/// Parses a name server: `IP:port`, `[IPv6]:port`, or a bare IP (port 53).
pub fn parse_nameserver(s: &str) -> Option<SocketAddr> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return (addr.port() != 0).then_some(addr);
    }
    s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
}

fn dns(d: &crate::model::Dns, c: &mut Collector<'_>) {
    for (i, ns) in d.nameservers.iter().enumerate() {
        if parse_nameserver(ns).is_none() {
            c.error(
                format!("server.dns.nameservers[{i}]"),
                format!(
                    "`{ns}` is not an IP address with an optional port (expected e.g. 10.0.0.2 or 127.0.0.1:5353)"
                ),
            );
        }
    }
    for (field, value) in [
        ("min_ttl", d.min_ttl),
        ("max_ttl", d.max_ttl),
        ("error_ttl", d.error_ttl),
        ("timeout", d.timeout),
    ] {
        if value.is_zero() {
            c.error(format!("server.dns.{field}"), "must be greater than zero");
        }
    }
    if d.min_ttl > d.max_ttl {
        c.error(
            "server.dns.max_ttl",
            format!("must not be less than min_ttl ({:?})", d.min_ttl),
        );
    }
}

/// Whether `name` is a DNS name: dot-separated labels of letters, digits,
/// `-` and `_`, at most 63 bytes each and 253 in all; one trailing dot
/// (fully qualified) is allowed.
pub fn valid_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Whether `host` (as written in a URL or `host:port`, IPv6 in brackets)
/// is an IP literal rather than a DNS name.
pub fn is_ip_literal(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>().is_ok()
}

fn listeners(config: &Config, c: &mut Collector<'_>) {
    let mut seen = HashMap::new();
    for (i, l) in config.listeners.iter().enumerate() {
        match l.address.parse::<SocketAddr>() {
            Ok(addr) => {
                if addr.port() != 0
                    && let Some(prev) = seen.insert(addr, i)
                {
                    c.error(
                        format!("listeners[{i}].address"),
                        format!("`{addr}` is already used by listeners[{prev}]"),
                    );
                }
            }
            Err(_) => c.error(
                format!("listeners[{i}].address"),
                format!(
                    "`{}` is not an IP:port address (expected e.g. 0.0.0.0:8080 or [::]:8080)",
                    l.address
                ),
            ),
        }
        if let Some(tls) = &l.tls {
            listener_tls(tls, &format!("listeners[{i}].tls"), c);
        }
    }
}

/// What can be checked without reading files; the files themselves are
/// read (and their errors reported) when the config is compiled.
fn listener_tls(tls: &crate::model::ListenerTls, at: &str, c: &mut Collector<'_>) {
    if tls.certificates.is_empty() {
        c.error(
            format!("{at}.certificates"),
            "at least one certificate is required",
        );
    }
    for (j, cert) in tls.certificates.iter().enumerate() {
        for (field, path) in [("cert", &cert.cert), ("key", &cert.key)] {
            if path.trim().is_empty() {
                c.error(
                    format!("{at}.certificates[{j}].{field}"),
                    "must not be empty",
                );
            }
        }
        for (k, h) in cert.hosts.iter().enumerate() {
            if h == "*" || !valid_host(h) || h.contains('_') {
                c.error(
                    format!("{at}.certificates[{j}].hosts[{k}]"),
                    format!("`{h}` is not a host name (expected api.example.com or *.example.com)"),
                );
            }
        }
    }
    if let Some(auth) = &tls.client_auth
        && auth.ca.trim().is_empty()
    {
        c.error(format!("{at}.client_auth.ca"), "must not be empty");
    }
}

fn unique_name<'a>(
    seen: &mut HashMap<&'a str, usize>,
    name: &'a str,
    i: usize,
    kind: &str,
    c: &mut Collector<'_>,
) {
    let field = format!(
        "{kind}[{i}].{}",
        if kind == "consumers" {
            "username"
        } else {
            "name"
        }
    );
    if name.trim().is_empty() {
        c.error(field, "must not be empty");
    } else if let Some(prev) = seen.insert(name, i) {
        c.error(field, format!("`{name}` is already used by {kind}[{prev}]"));
    }
}

fn services(config: &Config, c: &mut Collector<'_>) {
    let mut seen = HashMap::new();
    for (i, s) in config.services.iter().enumerate() {
        unique_name(&mut seen, &s.name, i, "services", c);
        let field = format!("services[{i}].url");
        match s.url.parse::<http::Uri>() {
            Ok(uri) => match uri.scheme_str() {
                Some(scheme @ ("http" | "https")) => {
                    if uri.host().is_none_or(str::is_empty) {
                        c.error(
                            field,
                            format!("missing host (expected {scheme}://host:port)"),
                        );
                    } else if let Some(host) = uri.host()
                        && !is_ip_literal(host)
                        && !valid_dns_name(host)
                    {
                        c.error(
                            field,
                            format!("`{host}` is neither an IP address nor a DNS name"),
                        );
                    } else if uri.query().is_some() {
                        c.error(field, "must not contain a query string");
                    }
                    if scheme == "http" && s.tls.is_some() {
                        c.error(
                            format!("services[{i}].tls"),
                            "only used with an https:// URL",
                        );
                    }
                }
                _ => c.error(
                    field,
                    format!(
                        "`{}` must start with http:// or https:// (expected http://host:port)",
                        s.url
                    ),
                ),
            },
            Err(e) => c.error(field, format!("`{}` is not a valid URL: {e}", s.url)),
        }
        if let Some(tls) = &s.tls {
            let at = format!("services[{i}].tls");
            match (&tls.client_cert, &tls.client_key) {
                (Some(_), None) => {
                    c.error(format!("{at}.client_key"), "required with `client_cert`")
                }
                (None, Some(_)) => {
                    c.error(format!("{at}.client_cert"), "required with `client_key`")
                }
                _ => {}
            }
            if let Some(sni) = &tls.sni
                && (sni.starts_with("*.") || !valid_host(sni) || sni.contains('_'))
            {
                c.error(
                    format!("{at}.sni"),
                    format!("`{sni}` is not a host name (expected e.g. backend.internal)"),
                );
            }
        }
        targets(s, i, c);
        if s.connect_timeout.is_zero() {
            c.error(
                format!("services[{i}].connect_timeout"),
                "must be greater than zero",
            );
        }
        if s.timeout.is_zero() {
            c.error(
                format!("services[{i}].timeout"),
                "must be greater than zero",
            );
        }
        if s.total_timeout.is_some_and(|t| t.is_zero()) {
            c.error(
                format!("services[{i}].total_timeout"),
                "must be greater than zero",
            );
        }
        resilience(s, i, c);
        plugin_refs(&s.plugins, &format!("services[{i}].plugins"), c);
    }
}

/// The algorithms `load_balancing.algorithm` accepts.
pub const ALGORITHMS: [&str; 5] = [
    "round-robin",
    "least-connections",
    "consistent-hash",
    "random",
    "p2c-ewma",
];

fn targets(s: &crate::model::Service, i: usize, c: &mut Collector<'_>) {
    let mut seen = HashMap::new();
    for (j, t) in s.targets.iter().enumerate() {
        let at = format!("services[{i}].targets[{j}]");
        match (&t.target, &t.srv) {
            (Some(target), None) => {
                let field = format!("{at}.target");
                match target.parse::<http::uri::Authority>() {
                    Ok(a) if !a.host().is_empty() && !target.contains('@') => {
                        if !is_ip_literal(a.host()) && !valid_dns_name(a.host()) {
                            c.error(
                                field,
                                format!(
                                    "`{}` is neither an IP address nor a DNS name",
                                    a.host()
                                ),
                            );
                        } else if a.port_u16().is_none_or(|p| p == 0) {
                            c.error(
                                field,
                                format!(
                                    "`{target}` is not host:port with a port from 1 to 65535 (expected e.g. 10.0.0.1:8080 or api.internal:8080)"
                                ),
                            );
                        } else if let Some(prev) = seen.insert(target.to_ascii_lowercase(), j) {
                            c.error(
                                field,
                                format!("`{target}` is already listed at targets[{prev}]"),
                            );
                        }
                    }
                    _ => c.error(
                        field,
                        format!(
                            "`{target}` is not host:port (expected e.g. 10.0.0.1:8080 or api.internal:8080)"
                        ),
                    ),
                }
            }
            (None, Some(srv)) => {
                let field = format!("{at}.srv");
                let mut labels = srv.split('.');
                let conventional = labels.next().is_some_and(|l| l.starts_with('_'))
                    && labels.next().is_some_and(|l| l.starts_with('_'))
                    && labels.next().is_some();
                if !valid_dns_name(srv) || !conventional {
                    c.error(
                        field,
                        format!(
                            "`{srv}` is not an SRV name (expected _service._proto.name, e.g. _http._tcp.api.internal; the port comes from the records)"
                        ),
                    );
                } else if let Some(prev) =
                    seen.insert(format!("srv:{}", srv.to_ascii_lowercase()), j)
                {
                    c.error(
                        field,
                        format!("`{srv}` is already listed at targets[{prev}]"),
                    );
                }
                if t.weight.is_some() {
                    c.error(
                        format!("{at}.weight"),
                        "not allowed with `srv`: the SRV records carry the weights",
                    );
                }
            }
            (Some(_), Some(_)) => c.error(
                format!("{at}.srv"),
                "set either `target` or `srv`, not both",
            ),
            (None, None) => c.error(
                at.clone(),
                "needs `target: host:port` or `srv: _service._proto.name`",
            ),
        }
        if t.weight.is_some_and(|w| w > 65_535) {
            c.error(format!("{at}.weight"), "must be at most 65535");
        }
    }
    if let Some(a) = &s.health_checks.active {
        let at = format!("services[{i}].health_checks.active");
        if a.interval.is_zero() {
            c.error(format!("{at}.interval"), "must be greater than zero");
        }
        if a.timeout.is_zero() {
            c.error(format!("{at}.timeout"), "must be greater than zero");
        }
        if a.healthy_threshold == 0 {
            c.error(format!("{at}.healthy_threshold"), "must be at least 1");
        }
        if a.unhealthy_threshold == 0 {
            c.error(format!("{at}.unhealthy_threshold"), "must be at least 1");
        }
        if !a.path.starts_with('/') || a.path.parse::<http::uri::PathAndQuery>().is_err() {
            c.error(format!("{at}.path"), "must be a path starting with `/`");
        }
        for (k, st) in a.expected_statuses.iter().enumerate() {
            if !(100..=599).contains(st) {
                c.error(
                    format!("{at}.expected_statuses[{k}]"),
                    "must be an HTTP status (100-599)",
                );
            }
        }
    }
    if let Some(cc) = &s.concurrency {
        if cc.max_in_flight == 0 {
            c.error(
                format!("services[{i}].concurrency.max_in_flight"),
                "must be at least 1",
            );
        }
        if cc.queue_size > 0 && cc.queue_timeout.is_zero() {
            c.error(
                format!("services[{i}].concurrency.queue_timeout"),
                "must be greater than zero",
            );
        }
    }
    if let Some(p) = &s.health_checks.passive {
        let at = format!("services[{i}].health_checks.passive");
        if p.consecutive_failures == 0 {
            c.error(format!("{at}.consecutive_failures"), "must be at least 1");
        }
        if p.cool_down.is_zero() {
            c.error(format!("{at}.cool_down"), "must be greater than zero");
        }
        for (k, st) in p.unhealthy_statuses.iter().enumerate() {
            if !(100..=599).contains(st) {
                c.error(
                    format!("{at}.unhealthy_statuses[{k}]"),
                    "must be an HTTP status (100-599)",
                );
            }
        }
    }
    let lb = &s.load_balancing;
    if let Some(a) = &lb.algorithm
        && !ALGORITHMS.contains(&a.as_str())
    {
        c.error(
            format!("services[{i}].load_balancing.algorithm"),
            format!(
                "unknown algorithm `{a}` (expected one of {})",
                ALGORITHMS.join(", ")
            ),
        );
    }
    if let Some(h) = &lb.hash_on {
        let ok = match h.split_once(':') {
            Some(("header", n)) => http::HeaderName::from_bytes(n.as_bytes()).is_ok(),
            Some(("cookie" | "query", n)) => !n.is_empty(),
            None => h == "client_ip" || h == "consumer",
            _ => false,
        };
        if !ok {
            c.error(
                format!("services[{i}].load_balancing.hash_on"),
                format!(
                    "`{h}` is not a hash key (expected client_ip, consumer, header:NAME, cookie:NAME or query:NAME)"
                ),
            );
        } else if lb.algorithm.as_deref() != Some("consistent-hash") {
            c.error(
                format!("services[{i}].load_balancing.hash_on"),
                "only used with `algorithm: consistent-hash`",
            );
        }
    }
}

/// Retry conditions that are names rather than statuses.
pub const RETRY_CONDITIONS: [&str; 3] = ["connect-failure", "reset", "timeout"];

/// Largest `retries.attempts`.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;

/// Largest `retries.buffer_body` (64 MiB).
pub const MAX_BUFFER_BODY: u64 = 64 * 1024 * 1024;

/// Whether `m` is an upper-case RFC 9110 method token (M-SEARCH too).
fn valid_method(m: &str) -> bool {
    !m.is_empty()
        && m.bytes().any(|b| b.is_ascii_uppercase())
        && m.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn status_ok(st: i64) -> bool {
    (100..=599).contains(&st)
}

/// Checks the retry fields at `at` (a service's `retries` or a route's).
/// Fields not set at this level are `None` and were checked where they
/// are set.
fn retry_fields(
    at: &str,
    attempts: Option<u32>,
    on: Option<&[RetryCondition]>,
    methods: Option<&[String]>,
    buffer_body: Option<u64>,
    c: &mut Collector<'_>,
) {
    if let Some(n) = attempts
        && n > MAX_RETRY_ATTEMPTS
    {
        c.error(
            format!("{at}.attempts"),
            format!("must be at most {MAX_RETRY_ATTEMPTS}"),
        );
    }
    for (k, cond) in on.unwrap_or_default().iter().enumerate() {
        match cond {
            RetryCondition::Status(st) if !status_ok(*st) => {
                c.error(format!("{at}.on[{k}]"), "must be an HTTP status (100-599)")
            }
            RetryCondition::Name(n)
                if !RETRY_CONDITIONS.contains(&n.as_str())
                    && !n.parse::<i64>().is_ok_and(status_ok) =>
            {
                c.error(
                    format!("{at}.on[{k}]"),
                    format!(
                        "unknown retry condition `{n}` (expected {}, or a status such as 503)",
                        RETRY_CONDITIONS.join(", ")
                    ),
                )
            }
            _ => {}
        }
    }
    for (k, m) in methods.unwrap_or_default().iter().enumerate() {
        if !valid_method(m) {
            c.error(
                format!("{at}.methods[{k}]"),
                format!("`{m}` is not an HTTP method (expected upper case, e.g. GET)"),
            );
        }
    }
    if let Some(b) = buffer_body
        && b > MAX_BUFFER_BODY
    {
        c.error(
            format!("{at}.buffer_body"),
            format!("must be at most {MAX_BUFFER_BODY} bytes (64 MiB)"),
        );
    }
}

fn backoff(at: &str, base: std::time::Duration, max: std::time::Duration, c: &mut Collector<'_>) {
    if base > max {
        c.error(
            format!("{at}.backoff.base"),
            format!("must not be greater than `max` (base {base:?}, max {max:?})"),
        );
    }
}

/// Retries, budget and circuit breaker of service `i`.
fn resilience(s: &Service, i: usize, c: &mut Collector<'_>) {
    let at = format!("services[{i}].retries");
    let r = &s.retries;
    retry_fields(
        &at,
        Some(r.attempts),
        Some(&r.on),
        Some(&r.methods),
        Some(r.buffer_body),
        c,
    );
    backoff(&at, r.backoff.base, r.backoff.max, c);
    if !(r.budget.ratio > 0.0 && r.budget.ratio <= 1.0) {
        c.error(
            format!("{at}.budget.ratio"),
            "must be greater than 0 and at most 1",
        );
    }
    let Some(cb) = &s.circuit_breaker else {
        return;
    };
    let at = format!("services[{i}].circuit_breaker");
    if !(cb.failure_ratio > 0.0 && cb.failure_ratio <= 1.0) {
        c.error(
            format!("{at}.failure_ratio"),
            "must be greater than 0 and at most 1",
        );
    }
    if cb.min_requests == 0 {
        c.error(format!("{at}.min_requests"), "must be at least 1");
    }
    if cb.window < std::time::Duration::from_millis(10) {
        c.error(format!("{at}.window"), "must be at least 10ms");
    }
    if cb.open_for.is_zero() {
        c.error(format!("{at}.open_for"), "must be greater than zero");
    } else if cb.open_for > std::time::Duration::from_secs(86_400) {
        c.error(format!("{at}.open_for"), "must be at most 24h");
    }
    if !(1..=1000).contains(&cb.half_open_requests) {
        c.error(
            format!("{at}.half_open_requests"),
            "must be between 1 and 1000",
        );
    }
    for (k, st) in cb.failure_statuses.iter().enumerate() {
        if !status_ok(i64::from(*st)) {
            c.error(
                format!("{at}.failure_statuses[{k}]"),
                "must be an HTTP status (100-599)",
            );
        }
    }
}

/// A route's `timeouts` and `retries` (checked against its service's
/// values where they combine).
fn route_resilience(r: &Route, i: usize, service: Option<&Service>, c: &mut Collector<'_>) {
    if r.service.is_none() {
        for (set, field) in [
            (r.timeouts.is_some(), "timeouts"),
            (r.retries.is_some(), "retries"),
        ] {
            if set {
                c.error(
                    format!("routes[{i}].{field}"),
                    "only valid on a route with a `service`",
                );
            }
        }
    }
    if let Some(t) = &r.timeouts {
        for (v, name) in [
            (t.connect, "connect"),
            (t.per_try, "per_try"),
            (t.total, "total"),
        ] {
            if v.is_some_and(|d| d.is_zero()) {
                c.error(
                    format!("routes[{i}].timeouts.{name}"),
                    "must be greater than zero",
                );
            }
        }
    }
    if let Some(rr) = &r.retries {
        let at = format!("routes[{i}].retries");
        retry_fields(
            &at,
            rr.attempts,
            rr.on.as_deref(),
            rr.methods.as_deref(),
            rr.buffer_body,
            c,
        );
        if let Some(b) = &rr.backoff {
            let inherited = service.map(|s| s.retries.backoff).unwrap_or_default();
            backoff(
                &at,
                b.base.unwrap_or(inherited.base),
                b.max.unwrap_or(inherited.max),
                c,
            );
        }
    }
}

fn valid_host(h: &str) -> bool {
    if h == "*" {
        return true;
    }
    let h = h.strip_prefix("*.").unwrap_or(h);
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn routes(config: &Config, c: &mut Collector<'_>) {
    let services: HashSet<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
    // First definition wins, as a linear `find` would (duplicates are
    // reported by the service checks).
    let mut by_name: HashMap<&str, &crate::Service> = HashMap::new();
    for s in &config.services {
        by_name.entry(s.name.as_str()).or_insert(s);
    }
    let mut seen = HashMap::new();
    for (i, r) in config.routes.iter().enumerate() {
        unique_name(&mut seen, &r.name, i, "routes", c);
        if let Some(s) = &r.service
            && !services.contains(s.as_str())
        {
            c.error(
                format!("routes[{i}].service"),
                format!(
                    "no service named `{s}` (defined services: {})",
                    list(&services)
                ),
            );
        }
        split(r, i, &services, c);
        for (j, h) in r.hosts.iter().enumerate() {
            if !valid_host(h) {
                c.error(
                    format!("routes[{i}].hosts[{j}]"),
                    format!("`{h}` is not a host name (expected api.example.com or *.example.com)"),
                );
            }
        }
        for (j, m) in r.methods.iter().enumerate() {
            // RFC 9110 method tokens, upper case by convention (M-SEARCH).
            if !valid_method(m) {
                c.error(
                    format!("routes[{i}].methods[{j}]"),
                    format!("`{m}` is not an HTTP method (expected upper case, e.g. GET)"),
                );
            }
        }
        for name in r.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                c.error(
                    format!("routes[{i}].headers.{name}"),
                    format!("`{name}` is not a valid header name"),
                );
            }
        }
        matchers(r, i, c);
        if let Some(v) = &r.version {
            let sources = usize::from(v.header.is_some())
                + usize::from(v.query.is_some())
                + usize::from(v.path);
            if sources != 1 {
                c.error(
                    format!("routes[{i}].version"),
                    "set exactly one of `header`, `query` or `path: true`",
                );
            }
            if v.strip && !v.path {
                c.error(
                    format!("routes[{i}].version.strip"),
                    "only valid with `path: true`",
                );
            }
            if v.value.is_empty() || v.value.contains('/') {
                c.error(
                    format!("routes[{i}].version.value"),
                    "must be a non-empty version without `/`",
                );
            }
        }
        if let Some(rw) = &r.rewrite
            && !rw.starts_with('/')
        {
            c.error(format!("routes[{i}].rewrite"), "must start with `/`");
        }
        if let Some(h) = &r.host_rewrite
            && http::HeaderValue::from_str(h).is_err()
        {
            c.error(
                format!("routes[{i}].host_rewrite"),
                "is not a valid Host value",
            );
        }
        if r.preserve_host && r.host_rewrite.is_some() {
            c.error(
                format!("routes[{i}].host_rewrite"),
                "cannot be combined with `preserve_host: true`",
            );
        }
        let service = r
            .service
            .as_deref()
            .and_then(|name| by_name.get(name).copied());
        route_resilience(r, i, service, c);
        plugin_refs(&r.plugins, &format!("routes[{i}].plugins"), c);
    }
}

/// Largest weight of one split branch.
pub const MAX_SPLIT_WEIGHT: u32 = 65_535;

/// Largest sum of a route's split weights (the weighted round-robin cycle
/// is precomputed, one entry per unit of weight).
pub const MAX_SPLIT_TOTAL: u64 = 1 << 16;

fn split(r: &Route, i: usize, services: &HashSet<&str>, c: &mut Collector<'_>) {
    let at = format!("routes[{i}]");
    let Some(branches) = &r.split else {
        if r.sticky.is_some() {
            c.error(format!("{at}.sticky"), "only used with `split`");
        }
        return;
    };
    if r.service.is_some() {
        c.error(
            format!("{at}.split"),
            "cannot be combined with `service` (a route forwards to one service or splits between several)",
        );
    }
    if branches.is_empty() {
        c.error(format!("{at}.split"), "must list at least one branch");
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (j, b) in branches.iter().enumerate() {
        let bat = format!("{at}.split[{j}]");
        if !services.contains(b.service.as_str()) {
            c.error(
                format!("{bat}.service"),
                format!(
                    "no service named `{}` (defined services: {})",
                    b.service,
                    list(services)
                ),
            );
        } else if let Some(prev) = seen.insert(b.service.as_str(), j) {
            c.error(
                format!("{bat}.service"),
                format!(
                    "`{}` is already used by {at}.split[{prev}] (one branch per service)",
                    b.service
                ),
            );
        }
        if b.weight > MAX_SPLIT_WEIGHT {
            c.error(
                format!("{bat}.weight"),
                format!("must be at most {MAX_SPLIT_WEIGHT}"),
            );
        }
        if let Some(w) = &b.when {
            if w.headers.is_empty() && w.cookies.is_empty() {
                c.error(
                    format!("{bat}.when"),
                    "must list at least one of `headers` or `cookies`",
                );
            }
            for (name, v) in &w.headers {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    c.error(
                        format!("{bat}.when.headers.{name}"),
                        format!("`{name}` is not a valid header name"),
                    );
                }
                empty_list(v, &format!("{bat}.when.headers.{name}"), c);
            }
            for (name, v) in &w.cookies {
                let ok = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
                if !ok {
                    c.error(
                        format!("{bat}.when.cookies.{name}"),
                        format!("`{name}` is not a valid cookie name"),
                    );
                }
                empty_list(v, &format!("{bat}.when.cookies.{name}"), c);
            }
        }
    }
    let total: u64 = branches.iter().map(|b| u64::from(b.weight)).sum();
    if total > MAX_SPLIT_TOTAL {
        c.error(
            format!("{at}.split"),
            format!("weights add up to {total}, more than the maximum of {MAX_SPLIT_TOTAL}"),
        );
    }
    if !branches.is_empty() && total == 0 && branches.iter().all(|b| b.when.is_none()) {
        c.error(
            format!("{at}.split"),
            "every weight is 0 and no branch has `when`: no request could be forwarded",
        );
    }
    if let Some(st) = &r.sticky {
        let h = st.hash_on.as_str();
        let ok = match h.split_once(':') {
            Some(("header", n)) => http::HeaderName::from_bytes(n.as_bytes()).is_ok(),
            Some(("cookie" | "query", n)) => !n.is_empty(),
            None => h == "client_ip",
            _ => false,
        };
        if h == "consumer" {
            c.error(
                format!("{at}.sticky.hash_on"),
                "`consumer` cannot be a sticky key: the branch is chosen before plugins identify a consumer (use header:NAME or cookie:NAME)",
            );
        } else if !ok {
            c.error(
                format!("{at}.sticky.hash_on"),
                format!(
                    "`{h}` is not a sticky key (expected client_ip, header:NAME, cookie:NAME or query:NAME)"
                ),
            );
        }
    }
}

fn empty_list(v: &OneOrMany, field: &str, c: &mut Collector<'_>) {
    if let OneOrMany::Many(list) = v
        && list.is_empty()
    {
        c.error(field, "must list at least one value");
    }
}

fn matchers(r: &Route, i: usize, c: &mut Collector<'_>) {
    for (kind, map) in [("headers", &r.headers), ("query", &r.query)] {
        for (name, v) in map {
            if let OneOrMany::Many(list) = v
                && list.is_empty()
            {
                c.error(
                    format!("routes[{i}].{kind}.{name}"),
                    "must list at least one value",
                );
            }
        }
    }
}

fn consumers(config: &Config, c: &mut Collector<'_>) {
    let mut seen = HashMap::new();
    // Credentials are checked with the registered schemes by the caller
    // that has them (`crate::check_credentials`).
    for (i, consumer) in config.consumers.iter().enumerate() {
        unique_name(&mut seen, &consumer.username, i, "consumers", c);
        plugin_refs(&consumer.plugins, &format!("consumers[{i}].plugins"), c);
    }
    for (i, plan) in config.plans.iter().enumerate() {
        plugin_refs(&plan.plugins, &format!("plans[{i}].plugins"), c);
    }
}

fn plugin_refs(plugins: &[PluginRef], at: &str, c: &mut Collector<'_>) {
    let mut seen = HashMap::new();
    for (i, p) in plugins.iter().enumerate() {
        if let Some(prev) = seen.insert(p.name.as_str(), i) {
            c.error(
                format!("{at}[{i}].name"),
                format!(
                    "plugin `{}` is already attached here at {at}[{prev}]",
                    p.name
                ),
            );
        }
    }
}

pub(crate) fn list(names: &HashSet<&str>) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    let mut v: Vec<&str> = names.iter().copied().collect();
    v.sort_unstable();
    v.join(", ")
}
