//! The serde types of the configuration file. Unknown keys are errors
//! everywhere (`deny_unknown_fields`); defaults are documented on each
//! field and in docs/configuration.md.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::{
    BalancingAlgorithm, HashOn, HeaderName, HostValue, IpNetwork, ListenAddress, Method,
    Nameserver, RetryCondition, ServiceUrl, SrvName, StickyOn, TargetAddress,
};

/// A whole gatehouse configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Node-level settings: threads, limits, trusted proxies, shutdown.
    #[serde(default)]
    pub server: Server,
    /// Addresses the proxy listens on.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Upstream services.
    #[serde(default)]
    pub services: Vec<Service>,
    /// Routes: request matchers pointing at a service.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Global plugins, run for every request.
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
    /// API consumers, their credentials and their apps.
    #[serde(default)]
    pub consumers: Vec<Consumer>,
    /// APIs: versioned sets of routes with a lifecycle state (draft,
    /// published, deprecated, retired). See docs/api-lifecycle.md.
    #[serde(default)]
    pub apis: Vec<Api>,
    /// Plans apps subscribe to APIs under. See
    /// docs/apps-and-subscriptions.md.
    #[serde(default)]
    pub plans: Vec<Plan>,
    /// Which app may call which API, under which plan, and whether that
    /// was approved.
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    /// The workspace of each entity when the config was assembled from the
    /// store; empty (everything `default`) for a file. Not in the file
    /// format.
    #[serde(skip)]
    #[schemars(skip)]
    pub workspaces: crate::Workspaces,
}

/// Node-level settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Tokio worker threads; 0 or absent means one per CPU core.
    /// Read at start only.
    pub worker_threads: usize,
    /// Peers (IPs or CIDRs) whose forwarding headers (X-Forwarded-*,
    /// Forwarded) are kept and extended rather than replaced. The client
    /// address is the right-most X-Forwarded-For hop that is not trusted.
    pub trusted_proxies: Vec<IpNetwork>,
    /// Largest total size of request header names and values, in bytes.
    /// Larger requests get 431.
    #[serde(deserialize_with = "crate::types::header_bytes")]
    pub max_header_bytes: usize,
    /// Largest number of request header fields. More get 431.
    #[serde(deserialize_with = "crate::types::at_least_one")]
    pub max_header_count: usize,
    /// How long a client may take to send a request head (slow-loris
    /// protection); an idle keep-alive connection is closed after this long.
    #[serde(
        deserialize_with = "crate::types::positive_duration",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub header_read_timeout: Duration,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    #[serde(
        deserialize_with = "crate::types::positive_duration",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub shutdown_timeout: Duration,
    /// Add a `Via: 1.1 gatehouse` header to requests and responses.
    pub via: bool,
    /// The request id header kept from clients (or generated) and echoed.
    pub request_id_header: HeaderName,
    /// Watch the config file and reload when it changes (SIGHUP always
    /// reloads), and watch the TLS certificate, key and CA files of TLS
    /// listeners, re-reading them when they change. The config-file watch
    /// is set up at start only (like `watch_interval`); the TLS file watch
    /// follows reloads.
    pub watch: bool,
    /// How often the config file (and TLS files) are checked for changes.
    #[serde(
        deserialize_with = "crate::types::positive_duration",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub watch_interval: Duration,
    /// How DNS names of service targets are resolved (name servers, TTL
    /// clamps, lookup timeout). See docs/discovery.md.
    pub dns: Dns,
    /// The secret app API keys are hashed with (HMAC-SHA256); at least 16
    /// characters. It must be the same on every node that shares the
    /// configuration, and kept secret: whoever knows it can test guessed
    /// keys against the stored hashes offline. Unset: a fixed built-in
    /// secret, with a warning at start when apps have keys.
    #[serde(deserialize_with = "crate::types::key_hash_secret")]
    pub key_hash_secret: Option<String>,
    /// How long a connection with no request in flight stays open. HTTP/2:
    /// a connection with no open stream for this long gets a GOAWAY and is
    /// closed; one with a stream in flight (a long download, SSE, a gRPC
    /// stream) is never cut by it. HTTP/1.1: a keep-alive connection waiting
    /// for its next request is closed after the shorter of this and
    /// `header_read_timeout`. Read when a connection is accepted.
    #[serde(
        deserialize_with = "crate::types::positive_duration",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub idle_timeout: Duration,
    /// Most client connections open at once, over all listeners; the
    /// connection over the cap is closed as soon as it is accepted. Absent:
    /// derived from the process's open-file limit (`RLIMIT_NOFILE`): half of
    /// what is left after 320 descriptors kept for the admin API, files and
    /// the store, between 64 and 10000. Read when a connection is accepted.
    #[serde(deserialize_with = "crate::types::max_connections")]
    pub max_connections: Option<usize>,
    /// Most connections open at once from one client address (the TCP peer,
    /// not X-Forwarded-For; IPv6 peers are counted per /64). Peers in
    /// `trusted_proxies` are exempt: a load balancer carries many clients.
    /// Absent: a quarter of `max_connections`; 0: no per-address cap.
    pub max_connections_per_ip: Option<usize>,
    /// Most HTTP/2 streams a client may have open on one connection
    /// (advertised in SETTINGS_MAX_CONCURRENT_STREAMS; streams over it are
    /// refused).
    #[serde(deserialize_with = "crate::types::at_least_one")]
    pub http2_max_concurrent_streams: u32,
    /// Most requests of one client connection served at once (an HTTP/2
    /// connection multiplexes many); each may hold an upstream connection.
    /// Requests over it wait on their stream until one finishes, so one
    /// client connection cannot open more upstream connections than this.
    #[serde(deserialize_with = "crate::types::at_least_one")]
    pub max_requests_per_connection: usize,
    /// The per-request access log (docs/logging.md). Read at start only.
    pub access_log: AccessLog,
    /// `IP:port` of the status listener: `/health/live`, `/health/ready`,
    /// `/status` and `/metrics` (docs/operations.md). Absent: none. Keep it
    /// off public networks. Read at start only.
    #[schemars(with = "Option<String>")]
    pub status_listen: Option<ListenAddress>,
}

/// How access log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// nginx's and Apache's `combined` format, for people who grep.
    Combined,
}

/// The access log: one line per request, written off the request path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLog {
    /// Write one line per request.
    pub enabled: bool,
    /// `stdout`, `stderr`, or the path of a file lines are appended to.
    pub output: String,
    /// `json` or `combined`.
    pub format: AccessLogFormat,
    /// Lines held for the writer; when it falls behind further, lines are
    /// dropped and counted, and requests never wait.
    #[serde(deserialize_with = "crate::types::at_least_one")]
    pub queue: usize,
    /// Files only: start a new file once this many bytes were written to
    /// the current one; 0 = never by size.
    pub max_size: u64,
    /// Files only: start a new file this often; absent = never by time.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub rotate_every: Option<Duration>,
    /// Files only: rotated files kept (`FILE.1` newest .. `FILE.N`).
    #[serde(deserialize_with = "crate::types::at_least_one")]
    pub keep: usize,
    /// Query parameters whose values are replaced by `REDACTED` in logged
    /// paths (matched without regard to case). Credentials in headers
    /// (Authorization, Cookie, API key headers) are never logged at all.
    pub redact_query: Vec<String>,
}

impl Default for AccessLog {
    fn default() -> Self {
        Self {
            enabled: false,
            output: "stdout".into(),
            format: AccessLogFormat::Json,
            queue: 8192,
            max_size: 0,
            rotate_every: None,
            keep: 5,
            redact_query: [
                "apikey",
                "api_key",
                "api-key",
                "key",
                "token",
                "access_token",
                "id_token",
                "password",
                "secret",
                "signature",
                "sig",
                "code",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}

/// Node-level resolver settings for DNS-based target discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// Name servers to query, as `IP` (port 53) or `IP:port`
    /// (`[IPv6]:port`). Empty: the system's (`/etc/resolv.conf`, with its
    /// search domains and the hosts file).
    pub nameservers: Vec<Nameserver>,
    /// Shortest time an answer is used before the name is resolved again;
    /// record TTLs below it are raised to it.
    #[serde(
        deserialize_with = "crate::types::positive_duration",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub min_ttl: Duration,
    /// Longest time an answer is used before the name is resolved again;
    /// record TTLs above it are lowered to it.
    #[serde(
        deserialize_with = "crate::types::positive_duration",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub max_ttl: Duration,
    /// After a failed lookup (NXDOMAIN, SERVFAIL, timeout, empty answer),
    /// how long until the name is tried again. The last good answer keeps
    /// serving meanwhile.
    #[serde(
        deserialize_with = "crate::types::positive_duration",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub error_ttl: Duration,
    /// Time allowed for one query. At start, the gateway waits at most this
    /// long for the first answers before accepting requests.
    #[serde(
        deserialize_with = "crate::types::positive_duration",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

impl Default for Dns {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(300),
            error_ttl: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
        }
    }
}

impl Default for Server {
    fn default() -> Self {
        Self {
            worker_threads: 0,
            trusted_proxies: Vec::new(),
            max_header_bytes: 32 * 1024,
            max_header_count: 100,
            header_read_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            via: true,
            request_id_header: HeaderName(http::HeaderName::from_static("x-request-id")),
            watch: true,
            watch_interval: Duration::from_secs(1),
            dns: Dns::default(),
            key_hash_secret: None,
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
            max_connections_per_ip: None,
            http2_max_concurrent_streams: 100,
            max_requests_per_connection: 100,
            access_log: AccessLog::default(),
            status_listen: None,
        }
    }
}

/// A listening socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Optional name, used in logs.
    #[serde(default)]
    pub name: Option<String>,
    /// `IP:port` to bind, e.g. `0.0.0.0:8080` or `[::]:8080`. Port 0 picks
    /// a free port (tests).
    pub address: ListenAddress,
    /// Accept HTTP/2 besides HTTP/1.1: with prior knowledge (h2c) on a
    /// plain listener; offered through ALPN (`h2`) on a TLS listener.
    /// Read at start only.
    #[serde(default = "yes")]
    pub http2: bool,
    /// Terminate TLS on this listener (HTTPS). Certificates, `min_version`
    /// and `client_auth` follow reloads; turning TLS on or off for a
    /// running listener needs a restart. See docs/tls.md.
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// How request paths are canonicalised before routing (docs/security.md,
    /// "Canonical path"). The defaults are the safe choice; each option
    /// exists for the rare upstream that needs another form.
    #[serde(default, skip_serializing_if = "ListenerPaths::is_default")]
    pub paths: ListenerPaths,
}

/// Per-listener path canonicalisation options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerPaths {
    /// `%2F`, `%5C` and a raw `\` in a path: `reject` (400 `bad-path`,
    /// default), `keep` (passed on as an opaque character of its segment)
    /// or `decode` (turned into `/`, then normalised).
    #[serde(default)]
    pub escaped_slashes: EscapedSlashes,
    /// Merge repeated slashes (`//a/b` is `/a/b`). Default `true`; `false`
    /// routes and forwards empty segments as they are.
    #[serde(default = "yes")]
    pub merge_slashes: bool,
    /// `;` path parameters (`/a;v=1/b`): `reject` (400 `bad-path`,
    /// default) or `keep`. A `.`/`..` segment with parameters (`..;x`) is
    /// refused either way.
    #[serde(default)]
    pub semicolons: Semicolons,
}

impl Default for ListenerPaths {
    fn default() -> Self {
        Self {
            escaped_slashes: EscapedSlashes::Reject,
            merge_slashes: true,
            semicolons: Semicolons::Reject,
        }
    }
}

impl ListenerPaths {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// What a listener does with encoded slashes and backslashes in paths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EscapedSlashes {
    /// Refuse the request (400).
    #[default]
    Reject,
    /// Keep the escape as an opaque character.
    Keep,
    /// Decode to `/` and normalise.
    Decode,
}

/// What a listener does with `;` path parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Semicolons {
    /// Refuse the request (400).
    #[default]
    Reject,
    /// Route and forward them as part of their segment.
    Keep,
}

/// TLS settings of a listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// Certificates with their keys, chosen per connection by the server
    /// name the client asks for (SNI): exact names first, then wildcards
    /// (`*.example.com`, one label), then the first certificate as the
    /// default. At least one.
    pub certificates: Vec<ServerCertificate>,
    /// Oldest TLS version accepted: `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Ask clients for a certificate signed by a given CA (mutual TLS).
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
}

/// A certificate chain and its private key, served for some host names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerCertificate {
    /// PEM file with the certificate chain, leaf first. Relative paths are
    /// relative to the config file's directory.
    pub cert: String,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1). Relative
    /// paths are relative to the config file's directory.
    pub key: String,
    /// Host names this certificate is served for (`api.example.com`,
    /// `*.example.com`). Empty: the certificate's own DNS names (SANs).
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// A TLS protocol version. Written as a string (`"1.3"`) or a number
/// (`1.3`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, JsonSchema)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // YAML reads an unquoted `1.2` as a number; accept both spellings.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TlsVersion;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a TLS version, \"1.2\" or \"1.3\"")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TlsVersion, E> {
                match v.trim() {
                    "1.2" => Ok(TlsVersion::Tls12),
                    "1.3" => Ok(TlsVersion::Tls13),
                    other => Err(E::custom(format!(
                        "unsupported TLS version `{other}` (expected \"1.2\" or \"1.3\")"
                    ))),
                }
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<TlsVersion, E> {
                self.visit_str(&format!("{v:?}"))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TlsVersion, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<TlsVersion, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Mutual TLS on a listener: clients present a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientAuth {
    /// PEM file with the CA certificate(s) client certificates must chain
    /// to. Relative paths are relative to the config file's directory.
    pub ca: String,
    /// Reject clients without a certificate (default). With `false` a
    /// certificate is requested but optional; one that is presented must
    /// still verify.
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// The protocol spoken to an upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2: with prior knowledge (h2c) over TCP, or negotiated with
    /// ALPN `h2` over TLS; required for gRPC.
    Http2,
}

/// An upstream service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Unique name; routes refer to it.
    pub name: String,
    /// Where to send requests: `http://host:port` or `https://host:port`
    /// (TLS, see `tls`) with an optional base path that is prepended to the
    /// forwarded path. With `targets`, the URL's host is the Host header
    /// (and the TLS server name) sent upstream unless the route preserves
    /// or rewrites it, and the targets are where connections go.
    pub url: ServiceUrl,
    /// TLS settings for an `https://` URL; without them the system's root
    /// certificates verify the upstream.
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// Instances to balance over: `target: host:port` with a weight, or
    /// `srv: _service._proto.name`. Host names are resolved with DNS and
    /// re-resolved when their TTL expires. Without it the URL's host and
    /// port are the one target (all its addresses, for a DNS name).
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// How a target is chosen for each request.
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    /// Health checks that take failing targets out of rotation.
    #[serde(default)]
    pub health_checks: HealthChecks,
    /// Cap on requests in flight to this service, with an optional queue.
    #[serde(default)]
    pub concurrency: Option<Concurrency>,
    /// HTTP/1.1 (default) or HTTP/2: prior knowledge (h2c) over plain
    /// TCP, ALPN `h2` over TLS.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Time allowed to open a TCP connection to the upstream.
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "crate::types::positive_duration",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub connect_timeout: Duration,
    /// Time allowed for one try, from sending the request to receiving
    /// response headers.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::types::positive_duration",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Time allowed for the whole request until response headers: every
    /// try plus the backoff waits between them. Absent: no overall limit
    /// (each try is still bounded by `timeout`).
    #[serde(
        default,
        deserialize_with = "crate::types::positive_duration_opt",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "Option<String>")]
    pub total_timeout: Option<Duration>,
    /// When and how failed requests are tried again.
    #[serde(default)]
    pub retries: Retries,
    /// Stop sending to a failing service (or target) for a while.
    /// Absent: no circuit breaker.
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Connection pool settings.
    #[serde(default)]
    pub pool: Pool,
    /// Plugins for every route of this service.
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Retry policy of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Retries {
    /// Retries after the first try (at most 10); 0 turns retries off.
    #[serde(deserialize_with = "crate::types::attempts")]
    pub attempts: u32,
    /// What is retried: `connect-failure` (the connection could not be
    /// opened), `reset` (the connection broke before response headers),
    /// `timeout` (a try hit its per-try timeout) and response statuses
    /// such as `502`, `503`, `504`.
    pub on: Vec<RetryCondition>,
    /// Methods that may be retried. Default: the idempotent ones (GET,
    /// HEAD, OPTIONS, PUT, DELETE, TRACE).
    pub methods: Vec<Method>,
    /// Wait before each retry.
    pub backoff: BackoffConfig,
    /// How many retries the service may add on top of its traffic.
    pub budget: RetryBudgetConfig,
    /// Request bodies with a Content-Length up to this many bytes are
    /// buffered so they can be sent again; 0: requests with a body are
    /// never retried. At most 67108864 (64 MiB).
    #[serde(deserialize_with = "crate::types::buffer_body")]
    pub buffer_body: u64,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            attempts: 1,
            on: vec![RetryCondition::ConnectFailure],
            methods: default_retry_methods(),
            backoff: BackoffConfig::default(),
            budget: RetryBudgetConfig::default(),
            buffer_body: 0,
        }
    }
}

/// The idempotent methods of RFC 9110 section 9.2.2.
pub fn default_retry_methods() -> Vec<Method> {
    [
        http::Method::GET,
        http::Method::HEAD,
        http::Method::OPTIONS,
        http::Method::PUT,
        http::Method::DELETE,
        http::Method::TRACE,
    ]
    .map(Method)
    .to_vec()
}

/// Exponential backoff with full jitter between retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "Backoff")]
pub struct BackoffConfig {
    /// Upper bound of the first retry's wait; it doubles with every retry.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub base: Duration,
    /// Largest upper bound of a wait. The actual wait is random between
    /// zero and the bound (full jitter).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(25),
            max: Duration::from_millis(250),
        }
    }
}

/// The retry budget of a service.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "RetryBudget")]
pub struct RetryBudgetConfig {
    /// Retries may add at most this share (0 < ratio ≤ 1) to the rate of
    /// first tries.
    #[serde(deserialize_with = "crate::types::ratio")]
    pub ratio: f64,
    /// Retries per second allowed on top of `ratio`, whatever the traffic.
    pub min_per_second: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_second: 10,
        }
    }
}

/// Circuit breaker settings of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Open when failures / requests in the window reach this (0 < ratio ≤ 1)...
    #[serde(
        default = "default_failure_ratio",
        deserialize_with = "crate::types::ratio"
    )]
    pub failure_ratio: f64,
    /// ...and the window holds at least this many requests.
    #[serde(
        default = "default_min_requests",
        deserialize_with = "crate::types::at_least_one"
    )]
    pub min_requests: u32,
    /// Length of the sliding window of outcomes (10 buckets).
    #[serde(
        default = "default_window",
        deserialize_with = "crate::types::breaker_window",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub window: Duration,
    /// How long the breaker stays open (requests fail fast with 503
    /// `circuit-open`) before letting probes through.
    #[serde(
        default = "default_open_for",
        deserialize_with = "crate::types::open_for",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub open_for: Duration,
    /// Probes let through when half-open; all must succeed to close the
    /// breaker, any failure opens it again.
    #[serde(
        default = "default_half_open_requests",
        deserialize_with = "crate::types::half_open"
    )]
    pub half_open_requests: u32,
    /// Response statuses that count as failures (besides connect
    /// failures, resets and timeouts).
    #[serde(
        default = "default_unhealthy_statuses",
        deserialize_with = "crate::types::statuses"
    )]
    pub failure_statuses: Vec<u16>,
    /// Also keep one breaker per target: the balancer skips targets whose
    /// breaker is open.
    #[serde(default)]
    pub per_target: bool,
}

fn default_failure_ratio() -> f64 {
    0.5
}

fn default_min_requests() -> u32 {
    20
}

fn default_window() -> Duration {
    Duration::from_secs(10)
}

fn default_open_for() -> Duration {
    Duration::from_secs(30)
}

fn default_half_open_requests() -> u32 {
    3
}

/// Timeouts a route sets instead of its service's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RouteTimeouts {
    /// Instead of the service's `connect_timeout`.
    #[serde(
        deserialize_with = "crate::types::positive_duration_opt",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "Option<String>")]
    pub connect: Option<Duration>,
    /// Instead of the service's `timeout` (per try, until response headers).
    #[serde(
        deserialize_with = "crate::types::positive_duration_opt",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "Option<String>")]
    pub per_try: Option<Duration>,
    /// Instead of the service's `total_timeout`.
    #[serde(
        deserialize_with = "crate::types::positive_duration_opt",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "Option<String>")]
    pub total: Option<Duration>,
}

/// Retry settings a route sets instead of its service's; fields not given
/// are inherited (the budget is always the service's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RouteRetries {
    /// Instead of the service's `retries.attempts`.
    #[serde(deserialize_with = "crate::types::attempts_opt")]
    pub attempts: Option<u32>,
    /// Instead of the service's `retries.on`.
    pub on: Option<Vec<RetryCondition>>,
    /// Instead of the service's `retries.methods` (e.g. to allow POST).
    pub methods: Option<Vec<Method>>,
    /// Instead of the service's `retries.backoff`; `base` and `max` are
    /// inherited separately.
    pub backoff: Option<RouteBackoff>,
    /// Instead of the service's `retries.buffer_body`.
    #[serde(deserialize_with = "crate::types::buffer_body_opt")]
    pub buffer_body: Option<u64>,
}

/// Backoff fields a route sets instead of its service's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RouteBackoff {
    /// Instead of the service's `retries.backoff.base`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub base: Option<Duration>,
    /// Instead of the service's `retries.backoff.max`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub max: Option<Duration>,
}

/// TLS to an upstream (only with an `https://` service URL). ALPN
/// follows `protocol`: `h2` for `http2`, `http/1.1` for `http1`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTls {
    /// PEM file with the CA certificate(s) that verify the upstream.
    /// Default: the system's root certificates (the bundled Mozilla roots
    /// if none can be loaded). Relative paths are relative to the config
    /// file's directory.
    pub ca: Option<String>,
    /// The server name sent (SNI) and verified against the upstream's
    /// certificate. Default: the URL's host (an IP address is verified as
    /// such and sends no SNI). Targets' addresses are never used for this.
    pub sni: Option<String>,
    /// PEM file with a client certificate chain for mutual TLS with the
    /// upstream; needs `client_key`.
    pub client_cert: Option<String>,
    /// PEM file with the private key of `client_cert`.
    pub client_key: Option<String>,
    /// Do not verify the upstream's certificate at all. For test setups
    /// only: anyone on the path can impersonate the upstream. Logged as a
    /// warning when the config is loaded.
    pub insecure_skip_verify: bool,
}

/// One entry of a service's targets: an address, or a DNS name that
/// stands for several. Exactly one of `target` and `srv` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `host:port`. An IP address is one target; a DNS name becomes one
    /// target per A/AAAA record, each with this port and weight.
    #[serde(default)]
    pub target: Option<TargetAddress>,
    /// An SRV name (`_service._proto.name`): each record of the
    /// lowest-priority group gives the host (resolved to its addresses),
    /// the port and the weight (0 counts as 1).
    #[serde(default)]
    pub srv: Option<SrvName>,
    /// Share of traffic relative to the other targets; 0 drains it. Default
    /// 100 (at most 65535). Not allowed with `srv` (the records carry the
    /// weights).
    #[serde(default, deserialize_with = "crate::types::weight_opt")]
    pub weight: Option<u32>,
}

impl TargetConfig {
    /// Weight of a `target` entry: [`TargetConfig::weight`] or 100.
    pub fn weight(&self) -> u32 {
        self.weight.unwrap_or(DEFAULT_WEIGHT)
    }
}

/// The weight of a `target` entry that sets none.
pub const DEFAULT_WEIGHT: u32 = 100;

/// Load-balancing settings of a service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LoadBalancing {
    /// `round-robin` (smooth weighted, the default), `least-connections`,
    /// `consistent-hash`, `random` or `p2c-ewma`.
    pub algorithm: Option<BalancingAlgorithm>,
    /// What `consistent-hash` hashes: `client_ip` (default), `consumer`,
    /// `header:NAME`, `cookie:NAME` or `query:NAME`.
    pub hash_on: Option<HashOn>,
}

/// Concurrency protection of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// Requests in flight to the service at most (until the response body
    /// has been sent).
    #[serde(deserialize_with = "crate::types::at_least_one")]
    pub max_in_flight: usize,
    /// Requests that may wait for a slot; 0 rejects at once when full.
    #[serde(default)]
    pub queue_size: usize,
    /// Longest wait in the queue.
    #[serde(default = "default_queue_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub queue_timeout: Duration,
}

fn default_queue_timeout() -> Duration {
    Duration::from_secs(1)
}

/// Health checking of a service's targets.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HealthChecks {
    /// Probe every target on a timer.
    pub active: Option<ActiveHealthCheck>,
    /// Eject targets whose live traffic keeps failing (outlier ejection).
    pub passive: Option<PassiveHealthCheck>,
}

/// Passive health check (outlier ejection) settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PassiveHealthCheck {
    /// Consecutive failed requests (connect failures, timeouts, resets, or a
    /// status in `unhealthy_statuses`) that eject a target.
    #[serde(
        default = "default_consecutive_failures",
        deserialize_with = "crate::types::at_least_one"
    )]
    pub consecutive_failures: u32,
    /// Response statuses that count as failures.
    #[serde(
        default = "default_unhealthy_statuses",
        deserialize_with = "crate::types::statuses"
    )]
    pub unhealthy_statuses: Vec<u16>,
    /// How long an ejected target stays out before it gets traffic again.
    #[serde(
        default = "default_cool_down",
        deserialize_with = "crate::types::positive_duration",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub cool_down: Duration,
}

fn default_consecutive_failures() -> u32 {
    5
}

fn default_unhealthy_statuses() -> Vec<u16> {
    vec![500, 502, 503, 504]
}

fn default_cool_down() -> Duration {
    Duration::from_secs(30)
}

/// What an active probe does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// `GET path`; healthy when the status is expected.
    #[default]
    Http,
    /// A TCP connect; healthy when it succeeds.
    Tcp,
}

/// Active health check settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveHealthCheck {
    /// `http` (default) or `tcp`.
    #[serde(default, rename = "type")]
    pub kind: ProbeKind,
    /// Path probed with GET (`http` only).
    #[serde(
        default = "default_probe_path",
        deserialize_with = "crate::types::probe_path"
    )]
    pub path: String,
    /// Statuses that count as healthy; empty means 200-399.
    #[serde(default, deserialize_with = "crate::types::statuses")]
    pub expected_statuses: Vec<u16>,
    /// Time between probes of a target.
    #[serde(
        default = "default_probe_interval",
        deserialize_with = "crate::types::positive_duration",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub interval: Duration,
    /// Time a probe may take.
    #[serde(
        default = "default_probe_timeout",
        deserialize_with = "crate::types::positive_duration",
        serialize_with = "humantime_serde::serialize"
    )]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Consecutive successes that bring an unhealthy target back.
    #[serde(
        default = "default_healthy_threshold",
        deserialize_with = "crate::types::at_least_one"
    )]
    pub healthy_threshold: u32,
    /// Consecutive failures that take a healthy target out.
    #[serde(
        default = "default_unhealthy_threshold",
        deserialize_with = "crate::types::at_least_one"
    )]
    pub unhealthy_threshold: u32,
}

fn default_probe_path() -> String {
    "/".to_string()
}

fn default_probe_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_probe_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_healthy_threshold() -> u32 {
    2
}

fn default_unhealthy_threshold() -> u32 {
    3
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Upstream connection pool settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Pool {
    /// Idle keep-alive connections kept per upstream host.
    pub max_idle_per_host: usize,
    /// Idle connections are closed after this long.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub idle_timeout: Duration,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            max_idle_per_host: 256,
            idle_timeout: Duration::from_secs(90),
        }
    }
}

/// One value or a list of accepted values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value (`"*"`: present; `"~re"`: regex; else exact).
    One(String),
    /// Any of these exact values.
    Many(Vec<String>),
}

/// Where a route reads the API version from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// The version this route serves, e.g. `v2` or `2024-06-01`.
    pub value: String,
    /// Read the version from this request header.
    #[serde(default)]
    pub header: Option<HeaderName>,
    /// Read the version from this query parameter.
    #[serde(default)]
    pub query: Option<String>,
    /// Read the version from the first path segment (`/v2/users`).
    #[serde(default)]
    pub path: bool,
    /// Also serve requests that carry no version at all.
    #[serde(default)]
    pub default: bool,
    /// With `path: true`, remove the version segment before forwarding.
    #[serde(default)]
    pub strip: bool,
}

/// A route: matchers plus what to do with a matching request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Unique name.
    pub name: String,
    /// The service to forward to. A route without a service (and without
    /// `split`) must answer through a plugin (for example `mock`).
    #[serde(default)]
    pub service: Option<String>,
    /// Split traffic between several services (canary, blue/green) instead
    /// of forwarding to one `service`. See docs/traffic-splitting.md.
    #[serde(default)]
    pub split: Option<Vec<SplitBranch>>,
    /// With `split`: the same key always lands on the same branch for the
    /// weighted part of the split.
    #[serde(default)]
    pub sticky: Option<Sticky>,
    /// Hosts: `api.example.com` or `*.example.com`. Empty: any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Paths: `/exact`, `/prefix/*`, `/users/{id}`, `~regex`. Empty: any.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Methods (upper case). Empty: any.
    #[serde(default)]
    pub methods: Vec<Method>,
    /// Request headers that must match (`"*"` present, `"~re"` regex).
    #[serde(default)]
    pub headers: BTreeMap<String, OneOrMany>,
    /// Query parameters that must match (same syntax as `headers`).
    #[serde(default)]
    pub query: BTreeMap<String, OneOrMany>,
    /// API version selection.
    #[serde(default)]
    pub version: Option<Version>,
    /// Explicit priority: higher wins. Ties go to the most specific route.
    #[serde(default)]
    pub priority: i32,
    /// Remove the matched prefix of a `/prefix/*` path before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Replace the forwarded path; `{name}` inserts a template capture.
    #[serde(default, deserialize_with = "crate::types::rewrite")]
    pub rewrite: Option<String>,
    /// Forward the client's Host header instead of the upstream's.
    #[serde(default)]
    pub preserve_host: bool,
    /// Send this Host header upstream.
    #[serde(default)]
    pub host_rewrite: Option<HostValue>,
    /// Timeouts for this route instead of the service's.
    #[serde(default)]
    pub timeouts: Option<RouteTimeouts>,
    /// Retry settings for this route instead of the service's.
    #[serde(default)]
    pub retries: Option<RouteRetries>,
    /// Plugins for this route.
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// One branch of a route's traffic split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitBranch {
    /// The service this branch forwards to.
    pub service: String,
    /// Share of the weighted traffic relative to the other branches
    /// (0-65535). 0 takes no weighted traffic; requests matching `when`
    /// still come here.
    #[serde(deserialize_with = "crate::types::weight")]
    pub weight: u32,
    /// Requests matching all of these conditions go to this branch whatever
    /// the weights (the first matching branch, in list order, wins).
    #[serde(default)]
    pub when: Option<SplitWhen>,
}

/// Conditions that send a request to one split branch. All must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitWhen {
    /// Request headers that must match (`"*"` present, `"~re"` regex, a
    /// list of exact values, else exact), like route `headers`.
    #[serde(default)]
    pub headers: BTreeMap<String, OneOrMany>,
    /// Cookies that must match, by cookie name (same value syntax).
    #[serde(default)]
    pub cookies: BTreeMap<String, OneOrMany>,
}

/// Sticky assignment of requests to split branches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sticky {
    /// The request property that keeps a client on one branch:
    /// `header:NAME`, `cookie:NAME`, `query:NAME` or `client_ip`.
    pub hash_on: StickyOn,
}

/// A plugin attached globally, to a service, a route or a consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// Registry name, e.g. `cors`.
    pub name: String,
    /// Disabled plugins are validated but not run.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Overrides the plugin's default priority (higher runs first).
    #[serde(default)]
    pub priority: Option<i32>,
    /// The plugin's own settings; see docs/plugins/NAME.md.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

/// An API consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// Unique name.
    pub username: String,
    /// Identifier in an external system.
    #[serde(default)]
    pub custom_id: Option<String>,
    /// Credentials that identify this consumer.
    #[serde(default)]
    pub credentials: Credentials,
    /// The consumer's apps, each with its own hashed API keys.
    #[serde(default)]
    pub apps: Vec<App>,
    /// Plugins that apply when this consumer is identified; they override
    /// route, service and global plugins of the same name.
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A consumer's credentials: per credential scheme field (`key_auth`), a
/// list of credentials in the shape that scheme defines
/// (`{key: "..."}` for `key_auth`). Held as raw values: the schemes are
/// registered by plugins (`gatehouse_core::credentials`), so they are
/// checked where the plugin registry is known — the data plane's compile
/// (and through it `gatehouse validate`), the control plane's check and the
/// admin API — see [`crate::check_credentials`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Credentials(pub BTreeMap<String, Vec<serde_json::Value>>);

impl Credentials {
    /// The credentials of the scheme written under `field`.
    pub fn of(&self, field: &str) -> &[serde_json::Value] {
        self.0.get(field).map_or(&[], Vec::as_slice)
    }

    /// Adds a credential under `field`.
    pub fn push(&mut self, field: &str, credential: serde_json::Value) {
        self.0.entry(field.to_owned()).or_default().push(credential);
    }

    /// Whether no credential of any scheme is listed.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(Vec::is_empty)
    }
}

/// A point in time, written as an RFC 3339 UTC timestamp
/// (`2026-06-01T00:00:00Z`, optional fractional seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[schemars(with = "String")]
pub struct Timestamp(pub std::time::SystemTime);

impl Timestamp {
    /// Whole seconds since the Unix epoch (0 for earlier times).
    pub fn unix_seconds(self) -> u64 {
        self.0
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339(self.0))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an RFC 3339 UTC time such as 2026-06-01T00:00:00Z")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
                humantime::parse_rfc3339(text.trim())
                    .map(Timestamp)
                    .map_err(|e| {
                        E::custom(format!(
                            "`{text}` is not an RFC 3339 UTC time ({e}; expected e.g. 2026-06-01T00:00:00Z)"
                        ))
                    })
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// A version of an API: the routes that serve it and where it is in its
/// lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// The API's name; several versions of one API share it.
    pub name: String,
    /// The version, e.g. `v2`. `name` and `version` together are unique.
    pub version: String,
    /// Names of the routes that make up this API version. A route belongs
    /// to at most one API.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Path of the OpenAPI document describing this version (relative
    /// paths are relative to the config file's directory). Checked to
    /// exist; not parsed yet.
    #[serde(default)]
    pub openapi: Option<String>,
    /// Where the API is in its lifecycle: `draft` (routes not served),
    /// `published` (default), `deprecated` (served with Deprecation,
    /// Sunset and Link headers) or `retired` (answers 410).
    #[serde(default)]
    pub state: ApiState,
    /// When the API was (or will be) deprecated; required with
    /// `state: deprecated`. Sent as `Deprecation: @<unix seconds>`
    /// (RFC 9745).
    #[serde(default)]
    pub deprecated_at: Option<Timestamp>,
    /// When the API stops being served. Sent as `Sunset: <HTTP-date>`
    /// (RFC 8594) on deprecated and retired APIs.
    #[serde(default)]
    pub sunset: Option<Timestamp>,
    /// URI of the version that replaces this one, sent as
    /// `Link: <URI>; rel="successor-version"` on deprecated and retired
    /// APIs.
    #[serde(default)]
    pub successor: Option<String>,
    /// Subscriptions to this API need an administrator's approval. The
    /// data plane only looks at each subscription's `status`; the admin
    /// API uses this flag to decide whether new subscriptions start out
    /// `pending` or `approved`.
    #[serde(default)]
    pub approval: bool,
    /// Callers must be an identified app (key-auth with an app key) with
    /// an approved subscription to this API; others get 401 or 403.
    #[serde(default)]
    pub require_subscription: bool,
    /// Description shown to developers.
    #[serde(default)]
    pub description: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The lifecycle state of an API version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiState {
    /// Being designed: its routes are not served (404, as if absent).
    Draft,
    /// Served normally.
    #[default]
    Published,
    /// Served, with Deprecation (and Sunset, Link) headers on every
    /// response.
    Deprecated,
    /// No longer served: 410 problem+json with a Link to the successor.
    Retired,
}

/// A client application of a consumer, identified by its API keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Unique name among all apps (subscriptions refer to it).
    pub name: String,
    /// Description shown to developers.
    #[serde(default)]
    pub description: Option<String>,
    /// The app's API keys, stored hashed. Several keys may be valid at once
    /// (rotation with an overlap period).
    #[serde(default)]
    pub keys: Vec<AppKey>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// One API key of an app, as its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppKey {
    /// `k1:<64 hex digits>`: HMAC-SHA256 of the key under
    /// `server.key_hash_secret` (`gatehouse keys new` prints a key and its
    /// hash). The plaintext key is never stored.
    pub hash: String,
    /// The key is refused (401, "expired") from this time on. Set it on the
    /// old key when rotating, so both keys work until then.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// The key is refused (401, "revoked") as soon as this config is
    /// loaded.
    #[serde(default)]
    pub revoked: bool,
}

/// A plan: the terms an app subscribes to an API under, and the plugins
/// (limits, quotas, ...) that apply to calls made under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Unique name.
    pub name: String,
    /// Description shown to developers.
    #[serde(default)]
    pub description: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Plugins for calls of apps subscribed under this plan (approved
    /// subscriptions only). They run once the access phase identified the
    /// app, and override route, service and global plugins of the same
    /// name; a consumer's plugins override them in turn.
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
}

/// An app's subscription to an API (every version, or one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Name of the subscribing app.
    pub app: String,
    /// Name of the API.
    pub api: String,
    /// One version of the API; absent: every version. A subscription to a
    /// version takes precedence over one to every version.
    #[serde(default)]
    pub version: Option<String>,
    /// Name of the plan.
    pub plan: String,
    /// `pending`, `approved` or `rejected`; only `approved` lets calls
    /// through.
    pub status: SubscriptionStatus,
}

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatus {
    /// Waiting for approval: calls answer 403.
    Pending,
    /// Calls go through.
    Approved,
    /// Refused: calls answer 403.
    Rejected,
}

/// An app kept as its own control-plane document (kind `app`) rather than
/// inside its consumer. When a node compiles the store, the app joins the
/// named consumer's `apps`; the admin API's key endpoints (create, rotate,
/// revoke) work on these documents. See docs/admin-api.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppDocument {
    /// Username of the consumer that owns the app (same workspace).
    pub consumer: String,
    /// Unique name among all apps; equals the document name.
    pub name: String,
    /// Description shown to developers.
    #[serde(default)]
    pub description: Option<String>,
    /// The app's API keys, stored hashed.
    #[serde(default)]
    pub keys: Vec<AppKey>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl AppDocument {
    /// The app as it sits inside its consumer.
    pub fn app(&self) -> App {
        App {
            name: self.name.clone(),
            description: self.description.clone(),
            keys: self.keys.clone(),
            tags: self.tags.clone(),
        }
    }
}

/// A consumer credential kept as its own control-plane document (kind
/// `credential`): `{consumer, <scheme field>: {...}}`, for example
/// `{consumer: alice, key_auth: {key: ...}}`. Exactly one scheme field is
/// set (checked with the registered schemes by the admin API and the
/// control plane); when a node compiles the store, it joins the named
/// consumer's `credentials.<field>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CredentialDocument {
    /// Username of the consumer it identifies (same workspace).
    pub consumer: String,
    /// The credential, under its scheme's field (`key_auth`).
    #[serde(flatten)]
    pub schemes: BTreeMap<String, serde_json::Value>,
}
