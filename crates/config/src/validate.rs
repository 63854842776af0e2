//! Checks that need more than one field: unique names, references between
//! entities, and the syntax of addresses, URLs, hosts and header names.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use crate::error::ConfigErrors;
use crate::locate::Source;
use crate::model::{Config, OneOrMany, PluginRef, Route};

struct Collector<'a> {
    source: &'a Source,
    errors: Vec<crate::ConfigError>,
}

impl Collector<'_> {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
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
        let field = format!("services[{i}].targets[{j}].target");
        match t.target.parse::<http::uri::Authority>() {
            Ok(a) if a.port_u16().is_some() && !a.host().is_empty() && !t.target.contains('@') => {
                if let Some(prev) = seen.insert(t.target.as_str(), j) {
                    c.error(
                        field,
                        format!("`{}` is already listed at targets[{prev}]", t.target),
                    );
                }
            }
            _ => c.error(
                field,
                format!(
                    "`{}` is not host:port (expected e.g. 10.0.0.1:8080)",
                    t.target
                ),
            ),
        }
        if t.weight > 65_535 {
            c.error(
                format!("services[{i}].targets[{j}].weight"),
                "must be at most 65535",
            );
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
            let ok = !m.is_empty()
                && m.bytes().any(|b| b.is_ascii_uppercase())
                && m.bytes().all(|b| {
                    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
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
        plugin_refs(&r.plugins, &format!("routes[{i}].plugins"), c);
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
    let mut keys: HashMap<&str, (usize, usize)> = HashMap::new();
    for (i, consumer) in config.consumers.iter().enumerate() {
        unique_name(&mut seen, &consumer.username, i, "consumers", c);
        for (j, k) in consumer.credentials.key_auth.iter().enumerate() {
            let field = format!("consumers[{i}].credentials.key_auth[{j}].key");
            if k.key.len() < 8 {
                c.error(field, "API keys must be at least 8 characters long");
            } else if let Some((pi, pj)) = keys.insert(&k.key, (i, j)) {
                c.error(
                    field,
                    format!(
                        "duplicate API key (also used by consumers[{pi}].credentials.key_auth[{pj}])"
                    ),
                );
            }
        }
        plugin_refs(&consumer.plugins, &format!("consumers[{i}].plugins"), c);
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

fn list(names: &HashSet<&str>) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    let mut v: Vec<&str> = names.iter().copied().collect();
    v.sort_unstable();
    v.join(", ")
}
