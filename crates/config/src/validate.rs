//! Checks that need more than one field: unique names, references between
//! entities, fields that exclude or bound each other. The syntax of single
//! values (addresses, URLs, methods, durations, ranges) is checked when
//! they are deserialised (`types.rs`), so it is not repeated here.

use std::collections::{HashMap, HashSet};

use crate::collect::{Collector, list};
use crate::error::ConfigErrors;
use crate::locate::Source;
use crate::model::{Config, OneOrMany, PluginRef, Route, Service};

pub(crate) fn validate(config: &Config, source: &Source) -> Result<(), ConfigErrors> {
    let mut c = Collector::new(source);
    server(config, &mut c);
    listeners(config, &mut c);
    services(config, &mut c);
    routes(config, &mut c);
    consumers(config, &mut c);
    crate::lifecycle::validate(config, &mut c);
    plugin_refs(&config.plugins, "plugins", &mut c);
    c.finish()
}

fn server(config: &Config, c: &mut Collector<'_>) {
    let s = &config.server;
    if let (Some(all), Some(per_ip)) = (s.max_connections, s.max_connections_per_ip)
        && per_ip > all
        && all > 0
    {
        c.error(
            "server.max_connections_per_ip",
            format!("{per_ip} is more than server.max_connections ({all})"),
        );
    }
    dns(&s.dns, c);
}

fn dns(d: &crate::model::Dns, c: &mut Collector<'_>) {
    if d.min_ttl > d.max_ttl {
        c.error(
            "server.dns.max_ttl",
            format!("must not be less than min_ttl ({:?})", d.min_ttl),
        );
    }
}

fn listeners(config: &Config, c: &mut Collector<'_>) {
    let mut seen = HashMap::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let addr = l.address.0;
        if addr.port() != 0
            && let Some(prev) = seen.insert(addr, i)
        {
            c.error(
                format!("listeners[{i}].address"),
                format!("`{addr}` is already used by listeners[{prev}]"),
            );
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
        if !s.url.is_https() && s.tls.is_some() {
            c.error(
                format!("services[{i}].tls"),
                "only used with an https:// URL",
            );
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
        resilience(s, i, c);
        plugin_refs(&s.plugins, &format!("services[{i}].plugins"), c);
    }
}

fn targets(s: &crate::model::Service, i: usize, c: &mut Collector<'_>) {
    let mut seen = HashMap::new();
    for (j, t) in s.targets.iter().enumerate() {
        let at = format!("services[{i}].targets[{j}]");
        match (&t.target, &t.srv) {
            (Some(target), None) => {
                let key = target.as_str().to_ascii_lowercase();
                if let Some(prev) = seen.insert(key, j) {
                    c.error(
                        format!("{at}.target"),
                        format!("`{target}` is already listed at targets[{prev}]"),
                    );
                }
            }
            (None, Some(srv)) => {
                let key = format!("srv:{}", srv.as_str().to_ascii_lowercase());
                if let Some(prev) = seen.insert(key, j) {
                    c.error(
                        format!("{at}.srv"),
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
    }
    if let Some(cc) = &s.concurrency
        && cc.queue_size > 0
        && cc.queue_timeout.is_zero()
    {
        c.error(
            format!("services[{i}].concurrency.queue_timeout"),
            "must be greater than zero",
        );
    }
    let lb = &s.load_balancing;
    if lb.hash_on.is_some() && lb.algorithm != Some(crate::BalancingAlgorithm::ConsistentHash) {
        c.error(
            format!("services[{i}].load_balancing.hash_on"),
            "only used with `algorithm: consistent-hash`",
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

/// The backoff of service `i`'s retries.
fn resilience(s: &Service, i: usize, c: &mut Collector<'_>) {
    let at = format!("services[{i}].retries");
    backoff(&at, s.retries.backoff.base, s.retries.backoff.max, c);
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
    if let Some(rr) = &r.retries {
        let at = format!("routes[{i}].retries");
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
