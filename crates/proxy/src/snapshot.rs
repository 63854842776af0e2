//! Config becomes running parts here, in one visible place: a validated
//! [`Loaded`] config is compiled into an immutable [`Snapshot`] (route
//! table, plugin chains, upstream clients) that the request path reads
//! through an `ArcSwap`. Compiling never touches the network: DNS names of
//! targets become a `discovery::Spec`, resolved by the discovery tasks
//! `state.rs` starts with the snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::{
    BalancingAlgorithm, ConfigError, ConfigErrors, Loaded, OneOrMany, PluginRef, RequestKey,
    Source, UpstreamProtocol,
};
use gatehouse_core::{BuildCx, BuildEnv, Capabilities, KeyHasher, Registry, Resources, Scope};
use gatehouse_router::{RouteSpec, Router, ValueMatch, VersionSource, VersionSpec};
use gatehouse_upstream::Algorithm;
use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};

use crate::chain::{Chain, Entry};
use crate::client::{ClientCache, ClientKey, UpstreamClient};
use crate::discovery::{DnsSettings, Spec, TargetSource};
use crate::forward::TrustedProxies;
use crate::split::{Branch, RequestView, Split, StickyKey, When};
use crate::targets::{Recipe, Targets};
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
    /// Whether the access log was on at start (the handler then notes the
    /// upstream exchange in the response's extensions).
    pub access_log: bool,
    /// Connection limits, read when a connection is accepted.
    pub conn: ConnSettings,
}

/// The connection limits of `server` (see `server.rs`, `conns.rs`).
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    /// Close a connection with no request in flight after this long.
    pub idle_timeout: Duration,
    /// The global and per-address connection caps, resolved.
    pub caps: crate::conns::Caps,
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub h2_max_streams: u32,
    /// Requests of one connection served at once.
    pub max_requests: usize,
}

/// A listener's settings that follow reloads (its address and `http2`
/// are fixed at start).
pub struct ListenerRt {
    /// TLS termination, if the listener has a `tls` block.
    pub tls: Option<Arc<ListenerTls>>,
    /// How request paths are canonicalised (`paths`).
    pub paths: crate::canon::PathOptions,
}

/// A service ready to take requests.
pub struct ServiceRt {
    /// Name.
    pub name: Arc<str>,
    /// Workspace id (`Config::workspaces`; 0 for a file configuration).
    pub workspace: usize,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// TLS settings of an `https` service (also used by health checks).
    pub tls: Option<Arc<UpstreamTls>>,
    /// `host:port` of the URL: the default Host header; without `targets`,
    /// also where connections go (every address, for a DNS name).
    pub authority: Authority,
    /// The current target set (addresses, balancer, health bits, passive
    /// check); replaced by DNS discovery for services that name DNS names.
    /// Requests call `targets.load()` once.
    pub targets: Arc<Targets>,
    /// The request property `consistent-hash` hashes.
    pub hash_on: HashOn,
    /// Active health check, if configured.
    pub active_check: Option<crate::health::ProbeSpec>,
    /// Concurrency limit, if configured.
    pub limit: Option<Arc<crate::limit::Limit>>,
    /// Base path prepended to forwarded paths ("" for none).
    pub base_path: String,
    /// The Host header sent upstream unless the route says otherwise.
    pub host_header: HeaderValue,
    /// HTTP version used upstream.
    pub version: http::Version,
    /// Time allowed per try until response headers.
    pub timeout: Duration,
    /// Time allowed for all tries and backoff waits, if limited.
    pub total_timeout: Option<Duration>,
    /// Pooled client.
    pub client: UpstreamClient,
    /// The settings `client` was built with (routes that override the
    /// connect timeout derive their client's key from it).
    pub client_key: ClientKey,
    /// Whether requests go through the balancer even when the set has one
    /// target (health checks or per-target breakers track it); a set of one
    /// untracked target is used without bookkeeping.
    pub balanced: bool,
    /// Retry policy (routes may override fields).
    pub retry: crate::retry_policy::RetryPolicy,
    /// How many retries the service may add; state restarts on reload.
    pub budget: gatehouse_upstream::RetryBudget,
    /// Randomness for backoff jitter.
    pub jitter: gatehouse_upstream::AtomicRng,
    /// Circuit breakers, if configured; state restarts on reload.
    pub breakers: Option<Box<crate::circuit::Breakers>>,
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
    fn from_config(k: &RequestKey) -> Self {
        match k {
            RequestKey::ClientIp => HashOn::ClientIp,
            RequestKey::Consumer => HashOn::Consumer,
            RequestKey::Header(h) => HashOn::Header(h.clone()),
            RequestKey::Cookie(c) => HashOn::Cookie(c.clone()),
            RequestKey::Query(q) => HashOn::Query(q.clone()),
        }
    }
}

/// The balancer of a configured algorithm.
fn algorithm(a: BalancingAlgorithm) -> Algorithm {
    match a {
        BalancingAlgorithm::RoundRobin => Algorithm::RoundRobin,
        BalancingAlgorithm::LeastConnections => Algorithm::LeastConnections,
        BalancingAlgorithm::ConsistentHash => Algorithm::ConsistentHash,
        BalancingAlgorithm::Random => Algorithm::Random,
        BalancingAlgorithm::P2cEwma => Algorithm::P2cEwma,
    }
}

/// A route ready to take requests.
pub struct RouteRt {
    /// Name.
    pub name: Arc<str>,
    /// Workspace id: an `upstream` plugin's service choice is looked up
    /// among this workspace's services.
    pub workspace: usize,
    /// Index into [`Snapshot::services`] (`None` for split routes).
    pub service: Option<usize>,
    /// Merged global + service + route plugins. For a split route, global +
    /// route plugins: the chain of requests no branch takes.
    pub chain: Arc<Chain>,
    /// Traffic split between several services, each branch with its own
    /// merged chain.
    pub split: Option<Split>,
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
    /// Timeouts instead of the service's, if the route sets any.
    pub timeouts: Option<Box<RouteTimeouts>>,
    /// Retry fields instead of the service's, if the route sets any.
    pub retry: Option<Box<crate::retry_policy::RetryOverride>>,
    /// The API version the route belongs to, if any (never a draft: draft
    /// routes are left out of the snapshot).
    pub api: Option<Arc<crate::lifecycle::ApiRt>>,
}

/// Timeouts a route sets instead of its service's.
pub struct RouteTimeouts {
    /// Per try, until response headers.
    pub per_try: Option<Duration>,
    /// All tries and backoff waits.
    pub total: Option<Duration>,
    /// TCP connect (lives in the client: see `clients`).
    pub connect: Option<Duration>,
    /// With `connect`: a client like the service's but with that connect
    /// timeout, by service index (one entry per service the route reaches).
    pub clients: Vec<(usize, UpstreamClient)>,
}

impl RouteTimeouts {
    /// The client to use for service `svc`, if the route has its own.
    pub fn client_for(&self, svc: usize) -> Option<&UpstreamClient> {
        self.clients.iter().find(|(i, _)| *i == svc).map(|(_, c)| c)
    }
}

impl RouteRt {
    /// The service (index into [`Snapshot::services`]) and plugin chain
    /// for `req`: the route's own, or those of the split branch chosen for
    /// it. Chosen once, before any plugin phase.
    pub fn target(&self, req: &RequestView<'_>) -> (Option<usize>, &Arc<Chain>) {
        match &self.split {
            None => (self.service, &self.chain),
            Some(split) => match split.choose(req) {
                Some(b) => {
                    let b = &split.branches()[b];
                    (Some(b.service), &b.chain)
                }
                None => (None, &self.chain),
            },
        }
    }

    /// Whether a plugin with capability `cap` is in any chain of the route
    /// (its own or a split branch's).
    pub fn any(&self, cap: Capabilities) -> bool {
        let in_chain = |c: &Chain| c.any(cap);
        in_chain(&self.chain)
            || self
                .split
                .as_ref()
                .is_some_and(|s| s.branches().iter().any(|b| in_chain(&b.chain)))
    }
}

/// One compiled, immutable configuration.
pub struct Snapshot {
    /// Monotonic version, for logs.
    pub version: u64,
    /// Route table.
    pub router: Router,
    /// Served routes, in config order (router indices point here); routes
    /// of draft APIs are left out.
    pub routes: Vec<RouteRt>,
    /// Services, in config order.
    pub services: Vec<ServiceRt>,
    /// Plugins attached to consumers, by username.
    pub consumer_plugins: HashMap<Arc<str>, Vec<Entry>>,
    /// Plugins attached to plans, by plan name.
    pub plan_plugins: HashMap<Arc<str>, Vec<Entry>>,
    /// Route and branch chains merged with consumer and plan plugins,
    /// computed once per combination that requests reach.
    pub merged: crate::chain::Merged,
    /// Service index by workspace and name (for `upstream` plugins).
    pub service_names: HashMap<(usize, Arc<str>), usize>,
    /// Node settings.
    pub settings: Settings,
    /// Listeners in config order (empty when the config names none and
    /// the default plain listener serves).
    pub listeners: Vec<ListenerRt>,
    /// Client settings in use (so the cache can drop the rest).
    pub client_keys: Vec<ClientKey>,
    /// Resolver settings for the services' DNS names.
    pub dns: DnsSettings,
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
    /// The path canonicalisation options of listener `index` (the defaults
    /// when the config names no listeners).
    pub fn path_options(&self, index: usize) -> crate::canon::PathOptions {
        self.listeners
            .get(index)
            .map(|l| l.paths)
            .unwrap_or_default()
    }

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
/// Plugins are built with `resources` (a build view of the gateway's, or
/// detached ones for a check).
/// Test support: `loaded` compiled with the built-in plugins, detached
/// resources and a fresh client cache; panics on a config error.
#[cfg(test)]
pub(crate) fn compile_for_test(loaded: &Loaded) -> Snapshot {
    let compiled = compile(
        loaded,
        &gatehouse_plugins::registry(),
        &Resources::detached(),
        &ClientCache::default(),
        1,
    );
    match compiled {
        Ok(snap) => snap,
        Err(e) => panic!("test config does not compile: {e}"),
    }
}

pub fn compile(
    loaded: &Loaded,
    registry: &Registry,
    resources: &Resources,
    clients: &ClientCache,
    version: u64,
) -> Result<Snapshot, ConfigErrors> {
    let plugins = Plugins {
        registry,
        resources,
    };
    let config = &loaded.config;
    let mut errs = Errors {
        source: &loaded.source,
        list: Vec::new(),
    };

    // Consumers and their keys, for authentication plugins: one set per
    // workspace, holding only the consumers its routes accept (its own,
    // then those of the workspaces it opted into), so a key of another
    // workspace is not found at all. Lookups stay one hash and one map get.
    let hasher = match &config.server.key_hash_secret {
        Some(secret) => KeyHasher::new(secret.as_bytes()),
        None => KeyHasher::default(),
    };
    for e in gatehouse_config::check_credentials(loaded, registry.schemes()) {
        errs.list.push(e);
    }
    let envs = gatehouse_config::BuildEnvs::build(config, registry.schemes(), &hasher);

    // API versions: lifecycle headers, retired answers, subscriptions. The
    // OpenAPI document is only checked to exist for now.
    let mut api_errors = Vec::new();
    let api_of_route = crate::lifecycle::compile(config, &mut api_errors);
    for (field, message) in api_errors {
        errs.push(&field, message);
    }
    for (i, api) in config.apis.iter().enumerate() {
        if let Some(p) = api.openapi.as_deref().filter(|p| !p.trim().is_empty()) {
            let path = loaded.resolve_path(p);
            if !path.is_file() {
                errs.push(
                    &format!("apis[{i}].openapi"),
                    format!("no file at `{}`", path.display()),
                );
            }
        }
    }

    // Global plugins (workspace `default`'s) apply to the routes of every
    // workspace, so they are built once per workspace, with its keys.
    let global: Vec<Vec<Entry>> = (0..envs.global.len())
        .map(|w| {
            let mut ws_errs = Errors {
                source: errs.source,
                list: Vec::new(),
            };
            let built = plugins.build(
                &config.plugins,
                "plugins",
                &Scope::Global,
                &envs.global[w],
                &mut ws_errs,
            );
            for e in ws_errs.list {
                if !errs
                    .list
                    .iter()
                    .any(|x| x.field == e.field && x.message == e.message)
                {
                    errs.list.push(e);
                }
            }
            built
        })
        .collect();
    let tenancy = &config.workspaces;

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
        listeners.push(ListenerRt {
            tls,
            paths: crate::canon::PathOptions::from_config(&l.paths),
        });
    }

    let mut services = Vec::with_capacity(config.services.len());
    let mut service_plugins = Vec::with_capacity(config.services.len());
    let mut client_keys = Vec::new();
    for (i, s) in config.services.iter().enumerate() {
        service_plugins.push(plugins.build(
            &s.plugins,
            &format!("services[{i}].plugins"),
            &Scope::Service(s.name.as_str().into()),
            &envs.own[tenancy.of("services", i)],
            &mut errs,
        ));
        let scheme = s.url.scheme().clone();
        let authority = s.url.authority().clone();
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
        // Targets: the listed ones, or the URL's own host:port. IP
        // literals are fixed; DNS names are resolved later by discovery.
        let algorithm = algorithm(s.load_balancing.algorithm.unwrap_or_default());
        // Every breaker of the service reads one clock.
        let epoch = std::time::Instant::now();
        let breakers = s.circuit_breaker.as_ref().map(|c| {
            Box::new(crate::circuit::Breakers::new(
                c,
                s.name.as_str().into(),
                epoch,
            ))
        });
        let recipe = Recipe {
            service: s.name.as_str().into(),
            algorithm,
            passive: s.health_checks.passive.clone(),
            breaker: s
                .circuit_breaker
                .as_ref()
                .filter(|c| c.per_target)
                .map(|c| (crate::circuit::breaker_config(c), epoch)),
        };
        let spec = match target_sources(s, &authority) {
            Ok(sources) => Spec::new(sources),
            Err((field, message)) => {
                errs.push(&format!("services[{i}].{field}"), message);
                continue;
            }
        };
        let targets = if spec.needs_dns() {
            Targets::discovered(recipe, spec)
        } else if s.targets.is_empty() {
            Targets::fixed(recipe, vec![(authority.clone(), 1)])
        } else {
            // No DNS needed: every entry is a `target` (an `srv` entry
            // always needs DNS).
            let listed = s
                .targets
                .iter()
                .filter_map(|t| Some((t.target.as_ref()?.0.clone(), t.weight())))
                .collect();
            Targets::fixed(recipe, listed)
        };
        let targets = match targets {
            Ok(t) => t,
            Err(e) => {
                errs.push(&format!("services[{i}].targets"), e.to_string());
                continue;
            }
        };
        // One target still goes through the balancer when something tracks
        // it (see `retry::balanced`).
        let balanced = s.health_checks.active.is_some()
            || s.health_checks.passive.is_some()
            || breakers.as_ref().is_some_and(|b| b.per_target);
        services.push(ServiceRt {
            balanced,
            breakers,
            retry: crate::retry_policy::RetryPolicy::compile(&s.retries),
            budget: gatehouse_upstream::RetryBudget::new(
                s.retries.budget.ratio,
                s.retries.budget.min_per_second,
            ),
            jitter: gatehouse_upstream::AtomicRng::new(
                gatehouse_upstream::AtomicRng::entropy_seed(),
            ),
            total_timeout: s.total_timeout,
            limit: s
                .concurrency
                .as_ref()
                .map(|c| Arc::new(crate::limit::Limit::new(c))),
            targets,
            hash_on: s
                .load_balancing
                .hash_on
                .as_ref()
                .map_or(HashOn::ClientIp, |h| HashOn::from_config(&h.0)),
            active_check: s
                .health_checks
                .active
                .as_ref()
                .map(crate::health::ProbeSpec::new),
            name: s.name.as_str().into(),
            workspace: tenancy.of("services", i),
            scheme,
            authority,
            base_path: s.url.base_path().to_string(),
            host_header,
            version: match s.protocol {
                UpstreamProtocol::Http1 => http::Version::HTTP_11,
                UpstreamProtocol::Http2 => http::Version::HTTP_2,
            },
            timeout: s.timeout,
            client: clients.get(&key, tls.as_deref()),
            client_key: key,
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
    // Config index of each served route (router errors name routes by it).
    let mut config_index = Vec::with_capacity(config.routes.len());
    for (i, r) in config.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        let ws = tenancy.of("routes", i);
        let global = &global[ws];
        let route_plugins = plugins.build(
            &r.plugins,
            &format!("{at}.plugins"),
            &Scope::Route(r.name.as_str().into()),
            &envs.own[ws],
            &mut errs,
        );
        let service = r
            .service
            .as_deref()
            .and_then(|s| service_index.get(s).copied());
        let empty: Vec<Entry> = Vec::new();
        let svc_plugins = service.map_or(&empty, |s| &service_plugins[s]);
        let chain = Chain::merge([&global[..], &svc_plugins[..], &route_plugins[..]]);
        let split = compile_split(
            r,
            &at,
            &service_index,
            (global, &service_plugins, &route_plugins),
            &mut errs,
        );

        let methods = r.methods.iter().map(|m| m.0.clone()).collect();
        let headers = header_matchers(&r.headers, &format!("{at}.headers"), &mut errs);
        let query = matchers(&r.query, &format!("{at}.query"), &mut errs);
        let version = r.version.as_ref().map(|v| {
            // Exactly one source is set (validation).
            let source = if let Some(h) = &v.header {
                VersionSource::Header(h.0.clone())
            } else if let Some(q) = &v.query {
                VersionSource::Query(q.clone())
            } else {
                VersionSource::PathSegment
            };
            VersionSpec {
                value: v.value.clone(),
                source,
                default: v.default,
            }
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
        let api = api_of_route.get(&r.name).cloned();
        if api
            .as_ref()
            .is_some_and(|a| a.state == gatehouse_config::ApiState::Draft)
        {
            // A draft API's routes are compiled (so their errors show) but
            // not served: requests get the 404 they would get without them.
            continue;
        }
        specs.push(spec);
        config_index.push(i);
        let timeouts = r.timeouts.map(|t| {
            // A connect timeout of its own needs a client of its own, for
            // each service the route reaches (its split branches too).
            let reach = service.into_iter().chain(
                r.split
                    .iter()
                    .flatten()
                    .filter_map(|b| service_index.get(b.service.as_str()).copied()),
            );
            let clients = match t.connect {
                Some(connect) => reach
                    .filter_map(|i| services.get(i).map(|s| (i, s)))
                    .map(|(i, svc)| {
                        let key = ClientKey {
                            connect_timeout: connect,
                            ..svc.client_key.clone()
                        };
                        if !client_keys.contains(&key) {
                            client_keys.push(key.clone());
                        }
                        (i, clients.get(&key, svc.tls.as_deref()))
                    })
                    .collect(),
                None => Vec::new(),
            };
            Box::new(RouteTimeouts {
                per_try: t.per_try,
                total: t.total,
                connect: t.connect,
                clients,
            })
        });
        let route = RouteRt {
            timeouts,
            retry: r
                .retries
                .as_ref()
                .map(|rr| Box::new(crate::retry_policy::RetryOverride::compile(rr))),
            name: r.name.as_str().into(),
            workspace: ws,
            service,
            chain: Arc::new(chain),
            split,
            strip_prefix: r.strip_prefix,
            rewrite: r.rewrite.clone(),
            preserve_host: r.preserve_host,
            host_rewrite: r.host_rewrite.as_ref().map(|h| h.0.clone()),
            strip_version: r.version.as_ref().is_some_and(|v| v.strip),
            api,
        };
        if let Some(api) = &route.api
            && api.require_subscription
            && !route.any(Capabilities::IDENTIFIES)
        {
            // Not an error (the check cannot know every way a request may
            // be identified), but today every request would get 401.
            tracing::warn!(
                route = %r.name,
                api = %api.name,
                "the API requires a subscription but no plugin that identifies apps (such as key-auth) runs on this route; every request will be refused with 401"
            );
        }
        routes.push(route);
    }

    let mut consumer_plugins = HashMap::new();
    for (i, c) in config.consumers.iter().enumerate() {
        let entries = plugins.build(
            &c.plugins,
            &format!("consumers[{i}].plugins"),
            &Scope::Consumer(c.username.as_str().into()),
            &envs.own[tenancy.of("consumers", i)],
            &mut errs,
        );
        // A plugin that could not run at consumer level is refused, never
        // accepted and silently skipped.
        for (j, r) in c.plugins.iter().enumerate() {
            if let Some(e) = entries.iter().find(|e| *e.name == *r.name)
                && let Some(why) = Chain::consumer_level_problem(e)
            {
                errs.push(
                    &format!("consumers[{i}].plugins[{j}].name"),
                    format!(
                        "consumer `{}`: plugin `{}` cannot be attached to a consumer: {why}",
                        c.username, r.name
                    ),
                );
            }
        }
        if !entries.is_empty() {
            consumer_plugins.insert(Arc::from(c.username.as_str()), entries);
        }
    }

    let mut plan_plugins = HashMap::new();
    for (i, p) in config.plans.iter().enumerate() {
        let entries = plugins.build(
            &p.plugins,
            &format!("plans[{i}].plugins"),
            &Scope::Plan(p.name.as_str().into()),
            &envs.own[tenancy.of("plans", i)],
            &mut errs,
        );
        // Like a consumer's: the plan is known only after the access
        // phase, so a plugin that could not run there is refused.
        for (j, r) in p.plugins.iter().enumerate() {
            if let Some(e) = entries.iter().find(|e| *e.name == *r.name)
                && let Some(why) = Chain::consumer_level_problem(e)
            {
                errs.push(
                    &format!("plans[{i}].plugins[{j}].name"),
                    format!(
                        "plan `{}`: plugin `{}` cannot be attached to a plan: {}",
                        p.name,
                        r.name,
                        why.replace("consumer or plan", "plan")
                    ),
                );
            }
        }
        if !entries.is_empty() {
            plan_plugins.insert(Arc::from(p.name.as_str()), entries);
        }
    }
    let service_names: HashMap<(usize, Arc<str>), usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.workspace, s.name.clone()), i))
        .collect();

    let router = match Router::build(specs) {
        Ok(r) => Some(r),
        Err(e) => {
            let route = config_index.get(e.route).copied().unwrap_or(e.route);
            errs.push(&format!("routes[{route}].{}", e.field), e.message);
            None
        }
    };

    let s = &config.server;
    let nets = s.trusted_proxies.iter().map(|p| p.0).collect();

    match router {
        Some(router) if errs.list.is_empty() => Ok(Snapshot {
            version,
            router,
            routes,
            services,
            consumer_plugins,
            plan_plugins,
            merged: crate::chain::Merged::default(),
            service_names,
            settings: Settings {
                trusted: TrustedProxies::new(nets),
                max_header_bytes: s.max_header_bytes,
                max_header_count: s.max_header_count,
                via: s.via,
                request_id_header: s.request_id_header.0.clone(),
                header_read_timeout: s.header_read_timeout,
                shutdown_timeout: s.shutdown_timeout,
                watch: s.watch,
                watch_interval: s.watch_interval,
                access_log: s.access_log.enabled,
                conn: ConnSettings {
                    idle_timeout: s.idle_timeout,
                    caps: crate::conns::Caps::resolve(s.max_connections, s.max_connections_per_ip),
                    h2_max_streams: s.http2_max_concurrent_streams,
                    max_requests: s.max_requests_per_connection,
                },
            },
            listeners,
            client_keys,
            dns: DnsSettings::new(&s.dns),
        }),
        // A router error is in the list.
        _ => Err(ConfigErrors(errs.list)),
    }
}

/// A route's split: one branch per entry, each with its own chain (global
/// + that branch's service plugins + route plugins).
fn compile_split(
    r: &gatehouse_config::Route,
    at: &str,
    service_index: &HashMap<&str, usize>,
    (global, service_plugins, route_plugins): (&[Entry], &[Vec<Entry>], &[Entry]),
    errs: &mut Errors<'_>,
) -> Option<Split> {
    let branches = r.split.as_ref()?;
    let mut out = Vec::with_capacity(branches.len());
    for (j, b) in branches.iter().enumerate() {
        let bat = format!("{at}.split[{j}]");
        let Some(&svc) = service_index.get(b.service.as_str()) else {
            errs.push(
                &format!("{bat}.service"),
                format!("no service named `{}`", b.service),
            );
            continue;
        };
        let when = b.when.as_ref().map(|w| When {
            headers: header_matchers(&w.headers, &format!("{bat}.when.headers"), errs),
            cookies: w
                .cookies
                .iter()
                .filter_map(|(name, v)| match value_match(v) {
                    Ok(m) => Some((name.clone(), m)),
                    Err(e) => {
                        errs.push(&format!("{bat}.when.cookies.{name}"), e);
                        None
                    }
                })
                .collect(),
        });
        let chain = Chain::merge([global, &service_plugins[svc][..], route_plugins]);
        out.push(Branch::new(
            svc,
            &b.service,
            b.weight,
            when,
            Arc::new(chain),
        ));
    }
    let sticky = match r
        .sticky
        .as_ref()
        .map(|s| StickyKey::from_config(&s.hash_on.0))
    {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => {
            errs.push(&format!("{at}.sticky.hash_on"), e);
            return None;
        }
    };
    match Split::new(out, sticky) {
        Ok(s) => Some(s),
        Err(e) => {
            errs.push(&format!("{at}.split"), e.to_string());
            None
        }
    }
}

fn value_match(v: &OneOrMany) -> Result<ValueMatch, String> {
    match v {
        OneOrMany::One(s) => ValueMatch::parse(s).map_err(|e| e.to_string()),
        OneOrMany::Many(list) => Ok(ValueMatch::OneOf(list.clone())),
    }
}

/// Where a service's targets come from: each listed entry, or the URL's
/// host and port (80 by default) when none are listed.
fn target_sources(
    s: &gatehouse_config::Service,
    url: &Authority,
) -> Result<Vec<TargetSource>, (String, String)> {
    fn host_port(host: &str, port: u16, weight: u32, text: &str) -> Option<TargetSource> {
        // `localhost` never changes: it stays a fixed target that the
        // connector resolves when it connects (trying ::1 and 127.0.0.1 in
        // turn), as before discovery existed.
        if gatehouse_config::is_ip_literal(host) || host.eq_ignore_ascii_case("localhost") {
            let target = text.parse::<Authority>().ok()?;
            Some(TargetSource::Static { target, weight })
        } else {
            Some(TargetSource::Host {
                name: host.to_string(),
                port,
                weight,
            })
        }
    }
    if s.targets.is_empty() {
        let port = url.port_u16().unwrap_or(80);
        let text = format!("{}:{port}", url.host());
        return Ok(host_port(url.host(), port, 1, &text).into_iter().collect());
    }
    s.targets
        .iter()
        .enumerate()
        .map(|(j, t)| match (&t.target, &t.srv) {
            (Some(target), None) => {
                host_port(target.host(), target.port(), t.weight(), target.as_str()).ok_or_else(
                    || {
                        (
                            format!("targets[{j}].target"),
                            format!("`{target}` is not host:port"),
                        )
                    },
                )
            }
            (None, Some(srv)) => Ok(TargetSource::Srv {
                name: srv.as_str().to_string(),
            }),
            _ => Err((
                format!("targets[{j}]"),
                "set exactly one of `target` and `srv`".to_string(),
            )),
        })
        .collect()
}

/// Header matchers: names checked here (a map key is not a typed value
/// yet), values compiled.
fn header_matchers(
    map: &std::collections::BTreeMap<String, OneOrMany>,
    at: &str,
    errs: &mut Errors<'_>,
) -> Vec<(HeaderName, ValueMatch)> {
    let mut out = Vec::with_capacity(map.len());
    for (name, m) in matchers(map, at, errs) {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => out.push((h, m)),
            Err(_) => errs.push(
                &format!("{at}.{name}"),
                format!("`{name}` is not a valid header name"),
            ),
        }
    }
    out
}

fn matchers(
    map: &std::collections::BTreeMap<String, OneOrMany>,
    at: &str,
    errs: &mut Errors<'_>,
) -> Vec<(String, ValueMatch)> {
    let mut out = Vec::with_capacity(map.len());
    for (name, v) in map {
        match value_match(v) {
            Ok(m) => out.push((name.to_ascii_lowercase(), m)),
            Err(e) => errs.push(&format!("{at}.{name}"), e),
        }
    }
    out
}

/// What plugins are built with: the registry and the resources.
struct Plugins<'a> {
    registry: &'a Registry,
    resources: &'a Resources,
}

impl Plugins<'_> {
    /// Builds the plugins of one attachment point (`scope`).
    fn build(
        &self,
        refs: &[PluginRef],
        at: &str,
        scope: &Scope,
        env: &BuildEnv,
        errs: &mut Errors<'_>,
    ) -> Vec<Entry> {
        build_plugins(refs, at, self.registry, (scope, self.resources), env, errs)
    }
}

fn build_plugins(
    refs: &[PluginRef],
    at: &str,
    registry: &Registry,
    (scope, resources): (&Scope, &Resources),
    env: &BuildEnv,
    errs: &mut Errors<'_>,
) -> Vec<Entry> {
    let mut out = Vec::with_capacity(refs.len());
    for (i, r) in refs.iter().enumerate() {
        let Some(factory) = registry.get(&r.name) else {
            errs.push(&format!("{at}[{i}].name"), registry.unknown_plugin(&r.name));
            continue;
        };
        let config = r.config.clone().unwrap_or(serde_json::Value::Null);
        let cx = BuildCx::new(factory.name(), env, scope, resources);
        match factory.build(&config, &cx) {
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
                let path = e.field_under(&format!("{at}[{i}].config"));
                errs.push(&path, e.message);
            }
        }
    }
    out
}
