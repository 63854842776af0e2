//! Config becomes running parts here, in one visible place: a validated
//! [`Loaded`] config is compiled into an immutable [`Snapshot`] (route
//! table, plugin chains, upstream clients) that the request path reads
//! through an `ArcSwap`. Compiling never touches the network.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::{
    ConfigError, ConfigErrors, Loaded, OneOrMany, PluginRef, Source, UpstreamProtocol,
};
use gatehouse_core::{BuildEnv, Consumer};
use gatehouse_plugins::Registry;
use gatehouse_router::{RouteSpec, Router, ValueMatch, VersionSource, VersionSpec};
use gatehouse_upstream::{Algorithm, Balancer, HealthSet, Target};
use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};

use crate::chain::{Chain, Entry};
use crate::client::{ClientCache, ClientKey, UpstreamClient};
use crate::forward::TrustedProxies;
use crate::tls::FieldError;
use crate::tls::listener::ListenerTls;
use crate::tls::upstream::UpstreamTls;

/// Node settings the request path reads on every request.
pub struct Settings {
    /// Trusted proxy networks.
    pub trusted: TrustedProxies,
    /// Largest total header size.
    pub max_header_bytes: usize,
    /// Largest header count.
    pub max_header_count: usize,
    /// Whether to add Via.
    pub via: bool,
    /// The request id header.
    pub request_id_header: HeaderName,
    /// Slow-loris protection and idle keep-alive limit.
    pub header_read_timeout: Duration,
    /// Drain deadline on shutdown.
    pub shutdown_timeout: Duration,
    /// Whether TLS files are watched for changes.
    pub watch: bool,
    /// How often they are checked.
    pub watch_interval: Duration,
}

/// A listener's settings that follow reloads (its address and `http2`
/// are fixed at start).
pub struct ListenerRt {
    /// TLS termination, if the listener has a `tls` block.
    pub tls: Option<Arc<ListenerTls>>,
}

/// A service ready to take requests.
pub struct ServiceRt {
    /// Name.
    pub name: Arc<str>,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// TLS settings of an `https` service (also used by health checks).
    pub tls: Option<Arc<UpstreamTls>>,
    /// `host:port` of the URL (the target when `targets` is empty).
    pub authority: Authority,
    /// Where connections go, by balancer index.
    pub targets: Vec<Authority>,
    /// Chooses a target per request.
    pub balancer: Arc<Balancer>,
    /// Which targets may be picked (all, until health checks arrive).
    pub health: Arc<HealthSet>,
    /// The request property `consistent-hash` hashes.
    pub hash_on: HashOn,
    /// Active health check, if configured.
    pub active_check: Option<crate::health::ProbeSpec>,
    /// Passive health check, if configured.
    pub passive: Option<Arc<crate::health::Passive>>,
    /// Concurrency limit, if configured.
    pub limit: Option<Arc<crate::limit::Limit>>,
    /// Base path prepended to forwarded paths ("" for none).
    pub base_path: String,
    /// The Host header sent upstream unless the route says otherwise.
    pub host_header: HeaderValue,
    /// HTTP version used upstream.
    pub version: http::Version,
    /// Time allowed until response headers.
    pub timeout: Duration,
    /// Pooled client.
    pub client: UpstreamClient,
}

/// What `consistent-hash` hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// The resolved client address.
    ClientIp,
    /// The identified consumer's username (client address if none).
    Consumer,
    /// A request header's value.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(String),
    /// A query parameter's value.
    Query(String),
}

impl HashOn {
    fn parse(s: Option<&str>) -> Self {
        match s.and_then(|s| s.split_once(':').map(|(k, v)| (k, v.to_string()))) {
            Some(("header", v)) => HeaderName::from_bytes(v.as_bytes())
                .map(HashOn::Header)
                .unwrap_or(HashOn::ClientIp),
            Some(("cookie", v)) => HashOn::Cookie(v),
            Some(("query", v)) => HashOn::Query(v),
            _ if s == Some("consumer") => HashOn::Consumer,
            _ => HashOn::ClientIp,
        }
    }
}

/// A route ready to take requests.
pub struct RouteRt {
    /// Name.
    pub name: Arc<str>,
    /// Index into [`Snapshot::services`].
    pub service: Option<usize>,
    /// Merged global + service + route plugins.
    pub chain: Arc<Chain>,
    /// Remove the matched prefix before forwarding.
    pub strip_prefix: bool,
    /// Forwarded path template.
    pub rewrite: Option<String>,
    /// Keep the client's Host.
    pub preserve_host: bool,
    /// Host sent upstream instead of the service's.
    pub host_rewrite: Option<HeaderValue>,
    /// Remove a `/v2` version segment before forwarding.
    pub strip_version: bool,
}

/// One compiled, immutable configuration.
pub struct Snapshot {
    /// Monotonic version, for logs.
    pub version: u64,
    /// Route table.
    pub router: Router,
    /// Routes, in config order (router indices point here).
    pub routes: Vec<RouteRt>,
    /// Services, in config order.
    pub services: Vec<ServiceRt>,
    /// Plugins attached to consumers, by username.
    pub consumer_plugins: HashMap<Arc<str>, Vec<Entry>>,
    /// Node settings.
    pub settings: Settings,
    /// Listeners in config order (empty when the config names none and
    /// the default plain listener serves).
    pub listeners: Vec<ListenerRt>,
    /// Client settings in use (so the cache can drop the rest).
    pub client_keys: Vec<ClientKey>,
}

struct Errors<'a> {
    source: &'a Source,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.list.push(self.source.error(path, message));
    }

    fn extend(&mut self, errors: Vec<FieldError>) {
        for e in errors {
            self.push(&e.field, e.message);
        }
    }
}

impl Snapshot {
    /// The TLS config for a new connection on listener `index`, if that
    /// listener terminates TLS.
    pub fn listener_tls(&self, index: usize) -> Option<Arc<rustls::ServerConfig>> {
        self.listeners
            .get(index)
            .and_then(|l| l.tls.as_ref())
            .map(|t| t.config())
    }
}

/// Compiles a validated config. Errors carry file, line and field.
pub fn compile(
    loaded: &Loaded,
    registry: &Registry,
    clients: &ClientCache,
    version: u64,
) -> Result<Snapshot, ConfigErrors> {
    let config = &loaded.config;
    let mut errs = Errors {
        source: &loaded.source,
        list: Vec::new(),
    };

    // Consumers and their keys, for authentication plugins.
    let mut keys = HashMap::new();
    let mut consumers = HashMap::new();
    for c in &config.consumers {
        let consumer = Consumer {
            username: c.username.as_str().into(),
            custom_id: c.custom_id.as_deref().map(Into::into),
        };
        for k in &c.credentials.key_auth {
            keys.insert(k.key.clone(), consumer.clone());
        }
        consumers.insert(c.username.clone(), consumer);
    }
    let env = BuildEnv {
        key_credentials: Arc::new(keys),
        consumers: Arc::new(consumers),
    };

    let global = build_plugins(&config.plugins, "plugins", registry, &env, &mut errs);

    // Listener TLS: certificate files are read here, so a config whose
    // files are missing or do not match fails validation.
    let mut listeners = Vec::with_capacity(config.listeners.len());
    for (i, l) in config.listeners.iter().enumerate() {
        let tls = match &l.tls {
            None => None,
            Some(t) => match ListenerTls::load(t, l.http2, loaded, i) {
                Ok(t) => Some(Arc::new(t)),
                Err(e) => {
                    errs.extend(e);
                    None
                }
            },
        };
        listeners.push(ListenerRt { tls });
    }

    let mut services = Vec::with_capacity(config.services.len());
    let mut service_plugins = Vec::with_capacity(config.services.len());
    let mut client_keys = Vec::new();
    for (i, s) in config.services.iter().enumerate() {
        service_plugins.push(build_plugins(
            &s.plugins,
            &format!("services[{i}].plugins"),
            registry,
            &env,
            &mut errs,
        ));
        let Ok(uri) = s.url.parse::<http::Uri>() else {
            continue; // reported by validation
        };
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            continue;
        };
        let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        let host_header = match authority.port_u16() {
            Some(p) if p == default_port => HeaderValue::from_str(authority.host()),
            _ => HeaderValue::from_str(authority.as_str()),
        };
        let Ok(host_header) = host_header else {
            errs.push(
                &format!("services[{i}].url"),
                "host is not a valid Host header",
            );
            continue;
        };
        let tls = if scheme == Scheme::HTTPS {
            match UpstreamTls::load(s, authority.host(), loaded, i) {
                Ok(t) => Some(Arc::new(t)),
                Err(e) => {
                    errs.extend(e);
                    continue;
                }
            }
        } else {
            None
        };
        let key = ClientKey {
            protocol: s.protocol,
            connect_timeout: s.connect_timeout,
            max_idle_per_host: s.pool.max_idle_per_host,
            idle_timeout: s.pool.idle_timeout,
            tls: tls.as_ref().map(|t| t.key().clone()),
        };
        if !client_keys.contains(&key) {
            client_keys.push(key.clone());
        }
        // Targets: the listed ones, or the URL's own host:port.
        let (targets, weights): (Vec<Authority>, Vec<u32>) = if s.targets.is_empty() {
            (vec![authority.clone()], vec![1])
        } else {
            s.targets
                .iter()
                .filter_map(|t| t.target.parse::<Authority>().ok().map(|a| (a, t.weight)))
                .unzip()
        };
        let algorithm = s
            .load_balancing
            .algorithm
            .as_deref()
            .and_then(|a| a.parse::<Algorithm>().ok())
            .unwrap_or_default();
        let lb_targets: Vec<Target> = weights
            .iter()
            .enumerate()
            .map(|(j, w)| Target::new(j, *w))
            .collect();
        let balancer = match Balancer::new(algorithm, &lb_targets) {
            Ok(b) => b,
            Err(e) => {
                errs.push(&format!("services[{i}].targets"), e.to_string());
                continue;
            }
        };
        let health = Arc::new(HealthSet::all_healthy(targets.len()));
        let passive = s.health_checks.passive.as_ref().map(|p| {
            Arc::new(crate::health::Passive::new(
                p,
                s.name.as_str().into(),
                targets.clone(),
                health.clone(),
            ))
        });
        services.push(ServiceRt {
            limit: s
                .concurrency
                .as_ref()
                .map(|c| Arc::new(crate::limit::Limit::new(c))),
            passive,
            health,
            targets,
            balancer: Arc::new(balancer),
            hash_on: HashOn::parse(s.load_balancing.hash_on.as_deref()),
            active_check: s
                .health_checks
                .active
                .as_ref()
                .map(crate::health::ProbeSpec::new),
            name: s.name.as_str().into(),
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_string(),
            host_header,
            version: match s.protocol {
                UpstreamProtocol::Http1 => http::Version::HTTP_11,
                UpstreamProtocol::Http2 => http::Version::HTTP_2,
            },
            timeout: s.timeout,
            client: clients.get(&key, tls.as_deref()),
            tls,
        });
    }
    let service_index: HashMap<&str, usize> = config
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();

    let mut specs = Vec::with_capacity(config.routes.len());
    let mut routes = Vec::with_capacity(config.routes.len());
    for (i, r) in config.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        let plugins = build_plugins(
            &r.plugins,
            &format!("{at}.plugins"),
            registry,
            &env,
            &mut errs,
        );
        let service = r
            .service
            .as_deref()
            .and_then(|s| service_index.get(s).copied());
        let empty: Vec<Entry> = Vec::new();
        let svc_plugins = service.map_or(&empty, |s| &service_plugins[s]);
        let chain = Chain::merge([&global[..], &svc_plugins[..], &plugins[..]]);

        let mut methods = Vec::with_capacity(r.methods.len());
        for (j, m) in r.methods.iter().enumerate() {
            match http::Method::from_bytes(m.as_bytes()) {
                Ok(m) => methods.push(m),
                Err(_) => errs.push(&format!("{at}.methods[{j}]"), "not an HTTP method"),
            }
        }
        let headers = matchers(&r.headers, &format!("{at}.headers"), &mut errs)
            .into_iter()
            .filter_map(|(k, v)| HeaderName::from_bytes(k.as_bytes()).ok().map(|k| (k, v)))
            .collect();
        let query = matchers(&r.query, &format!("{at}.query"), &mut errs);
        let version = r.version.as_ref().and_then(|v| {
            let source = if let Some(h) = &v.header {
                match HeaderName::from_bytes(h.as_bytes()) {
                    Ok(h) => VersionSource::Header(h),
                    Err(_) => {
                        errs.push(&format!("{at}.version.header"), "not a valid header name");
                        return None;
                    }
                }
            } else if let Some(q) = &v.query {
                VersionSource::Query(q.clone())
            } else {
                VersionSource::PathSegment
            };
            Some(VersionSpec {
                value: v.value.clone(),
                source,
                default: v.default,
            })
        });
        let spec = RouteSpec {
            hosts: r.hosts.clone(),
            paths: r.paths.clone(),
            methods,
            headers,
            query,
            version,
            priority: r.priority,
        };
        if let Some(t) = &r.rewrite
            && let Err(e) = gatehouse_router::validate_template(t, &spec)
        {
            errs.push(&format!("{at}.rewrite"), e);
        }
        specs.push(spec);
        routes.push(RouteRt {
            name: r.name.as_str().into(),
            service,
            chain: Arc::new(chain),
            strip_prefix: r.strip_prefix,
            rewrite: r.rewrite.clone(),
            preserve_host: r.preserve_host,
            host_rewrite: r
                .host_rewrite
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok()),
            strip_version: r.version.as_ref().is_some_and(|v| v.strip),
        });
    }

    let mut consumer_plugins = HashMap::new();
    for (i, c) in config.consumers.iter().enumerate() {
        let entries = build_plugins(
            &c.plugins,
            &format!("consumers[{i}].plugins"),
            registry,
            &env,
            &mut errs,
        );
        if !entries.is_empty() {
            consumer_plugins.insert(Arc::from(c.username.as_str()), entries);
        }
    }

    let router = match Router::build(specs) {
        Ok(r) => Some(r),
        Err(e) => {
            errs.push(&format!("routes[{}].{}", e.route, e.field), e.message);
            None
        }
    };

    let s = &config.server;
    let nets = s
        .trusted_proxies
        .iter()
        .filter_map(|p| gatehouse_config::parse_net(p))
        .collect();
    let request_id_header = HeaderName::from_bytes(s.request_id_header.as_bytes());

    match (router, request_id_header) {
        (Some(router), Ok(request_id_header)) if errs.list.is_empty() => Ok(Snapshot {
            version,
            router,
            routes,
            services,
            consumer_plugins,
            settings: Settings {
                trusted: TrustedProxies::new(nets),
                max_header_bytes: s.max_header_bytes,
                max_header_count: s.max_header_count,
                via: s.via,
                request_id_header,
                header_read_timeout: s.header_read_timeout,
                shutdown_timeout: s.shutdown_timeout,
                watch: s.watch,
                watch_interval: s.watch_interval,
            },
            listeners,
            client_keys,
        }),
        _ => {
            if errs.list.is_empty() {
                errs.push("server.request_id_header", "not a valid header name");
            }
            Err(ConfigErrors(errs.list))
        }
    }
}

fn matchers(
    map: &std::collections::BTreeMap<String, OneOrMany>,
    at: &str,
    errs: &mut Errors<'_>,
) -> Vec<(String, ValueMatch)> {
    let mut out = Vec::with_capacity(map.len());
    for (name, v) in map {
        let m = match v {
            OneOrMany::One(s) => ValueMatch::parse(s).map_err(|e| e.to_string()),
            OneOrMany::Many(list) => Ok(ValueMatch::OneOf(list.clone())),
        };
        match m {
            Ok(m) => out.push((name.to_ascii_lowercase(), m)),
            Err(e) => errs.push(&format!("{at}.{name}"), e),
        }
    }
    out
}

fn build_plugins(
    refs: &[PluginRef],
    at: &str,
    registry: &Registry,
    env: &BuildEnv,
    errs: &mut Errors<'_>,
) -> Vec<Entry> {
    let mut out = Vec::with_capacity(refs.len());
    for (i, r) in refs.iter().enumerate() {
        let Some(factory) = registry.get(&r.name) else {
            errs.push(
                &format!("{at}[{i}].name"),
                format!(
                    "unknown plugin `{}` (available: {})",
                    r.name,
                    registry.names().collect::<Vec<_>>().join(", ")
                ),
            );
            continue;
        };
        let config = r.config.clone().unwrap_or(serde_json::Value::Null);
        match factory.build(&config, env) {
            Ok(plugin) => {
                if r.enabled {
                    out.push(Entry {
                        name: factory.name().into(),
                        priority: r.priority.unwrap_or_else(|| factory.priority()),
                        plugin,
                    });
                }
            }
            Err(e) => {
                let path = if e.path.is_empty() {
                    format!("{at}[{i}].config")
                } else if e.path.starts_with('[') {
                    format!("{at}[{i}].config{}", e.path)
                } else {
                    format!("{at}[{i}].config.{}", e.path)
                };
                errs.push(&path, e.message);
            }
        }
    }
    out
}
