//! Typed values of the configuration ("parse, don't validate"): each type
//! is parsed once, when the file (or a store document) is deserialised,
//! with the message `gatehouse validate` prints, so that a value the model
//! holds is always usable and nothing downstream parses it again. Every
//! type serialises back to a spelling that means the same thing (the
//! user's own where the type keeps it) and appears in the JSON Schema as a
//! string, with a non-standard `format` naming what it holds (validators
//! ignore unknown formats, so the schema accepts what it accepted before).
//!
//! Range checks of plain numbers and durations (`must be greater than
//! zero`) are `deserialize_with` functions here too; the checks that need
//! more than one field stay in `validate.rs`.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Implements `Deserialize` (from a string, via `FromStr` whose error is the
/// message), `Serialize` (via `Display`) and `JsonSchema` (a string with
/// `format`) for a type.
macro_rules! string_type {
    ($ty:ty, $name:literal, $format:literal, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse::<$ty>().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "format": $format })
            }
        }
    };
}

/// Parses `1.2.3.4`, `::1`, `10.0.0.0/8` or `fd00::/8` (host bits are not
/// checked: see [`IpNetwork`] for the strict form).
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Some(net);
    }
    s.parse::<IpAddr>().ok().map(ipnet::IpNet::from)
}

/// An IP address or a CIDR network: `10.0.0.1`, `::1`, `10.0.0.0/8`,
/// `fd00::/8`. A CIDR with host bits set (`10.0.0.1/8`) is refused: it is
/// ambiguous (one host, or the network?). A bare address serialises as
/// itself, a network as `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork(pub ipnet::IpNet);

impl FromStr for IpNetwork {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let Some(net) = parse_net(s) else {
            return Err(format!(
                "`{s}` is not an IP address or CIDR (expected e.g. 10.0.0.0/8)"
            ));
        };
        if net.addr() != net.network() {
            return Err(format!(
                "`{s}` has host bits set (expected the network's first address, e.g. {})",
                net.trunc()
            ));
        }
        Ok(Self(net))
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

string_type!(
    IpNetwork,
    "IpNetwork",
    "ip-or-cidr",
    "an IP address or CIDR, e.g. 10.0.0.0/8"
);

/// Parses a name server: `IP:port`, `[IPv6]:port`, or a bare IP (port 53).
pub fn parse_nameserver(s: &str) -> Option<SocketAddr> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return (addr.port() != 0).then_some(addr);
    }
    s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
}

/// A DNS name server: `IP` (port 53), `IP:port` or `[IPv6]:port`; port 0
/// is refused. Serialises as `IP:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nameserver(pub SocketAddr);

impl FromStr for Nameserver {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_nameserver(s).map(Self).ok_or_else(|| {
            format!(
                "`{s}` is not an IP address with an optional port (expected e.g. 10.0.0.2 or 127.0.0.1:5353)"
            )
        })
    }
}

impl fmt::Display for Nameserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_type!(
    Nameserver,
    "Nameserver",
    "ip-port",
    "an IP address with an optional port"
);

/// The `IP:port` a listener binds (`0.0.0.0:8080`, `[::]:8080`; port 0
/// picks a free port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddress(pub SocketAddr);

impl FromStr for ListenAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<SocketAddr>().map(Self).map_err(|_| {
            format!("`{s}` is not an IP:port address (expected e.g. 0.0.0.0:8080 or [::]:8080)")
        })
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_type!(
    ListenAddress,
    "ListenAddress",
    "ip-port",
    "an IP:port address"
);

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

/// A service URL: `http://host:port` or `https://host:port` with an
/// optional base path; the host an IP literal or a DNS name. No query,
/// fragment or user information. Serialises as written.
#[derive(Debug, Clone)]
pub struct ServiceUrl {
    text: String,
    scheme: Scheme,
    authority: Authority,
    base_path: String,
}

impl ServiceUrl {
    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// `host[:port]` as written (IPv6 in brackets).
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The host (IPv6 in brackets).
    pub fn host(&self) -> &str {
        self.authority.host()
    }

    /// The explicit port, or the scheme's (80, 443).
    pub fn port(&self) -> u16 {
        self.authority
            .port_u16()
            .unwrap_or(if self.is_https() { 443 } else { 80 })
    }

    /// The path prefixed to forwarded paths, without a trailing `/` (""
    /// for none).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }
}

impl PartialEq for ServiceUrl {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for ServiceUrl {}

impl FromStr for ServiceUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let uri = s
            .parse::<http::Uri>()
            .map_err(|e| format!("`{s}` is not a valid URL: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some("http" | "https") => uri.scheme().cloned().unwrap_or(Scheme::HTTP),
            _ => {
                return Err(format!(
                    "`{s}` must start with http:// or https:// (expected http://host:port)"
                ));
            }
        };
        let Some(authority) = uri.authority().cloned().filter(|a| !a.host().is_empty()) else {
            return Err(format!("missing host (expected {scheme}://host:port)"));
        };
        if authority.as_str().contains('@') {
            return Err(format!(
                "`{s}` must not contain user information (`user@`): credentials for an upstream belong in a plugin, not the URL"
            ));
        }
        let host = authority.host();
        if !is_ip_literal(host) && !valid_dns_name(host) {
            return Err(format!("`{host}` is neither an IP address nor a DNS name"));
        }
        // `http` accepts an out-of-range port and reports none: refuse it
        // rather than silently use the scheme's.
        let port = &authority.as_str()[host.len()..];
        if !port.is_empty()
            && port
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .is_none_or(|p| p == 0)
        {
            return Err(format!(
                "`{s}` has no usable port (expected a port from 1 to 65535)"
            ));
        }
        if uri.query().is_some() {
            return Err("must not contain a query string".to_string());
        }
        if s.contains('#') {
            return Err("must not contain a fragment (`#...`)".to_string());
        }
        Ok(Self {
            text: s.to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
            scheme,
            authority,
        })
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

string_type!(
    ServiceUrl,
    "ServiceUrl",
    "http-url",
    "an http:// or https:// URL"
);

/// A target `host:port`: an IP literal or a DNS name, a port from 1 to
/// 65535. Serialises as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAddress(pub Authority);

impl TargetAddress {
    /// The text as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host (IPv6 in brackets).
    pub fn host(&self) -> &str {
        self.0.host()
    }

    /// The port (never 0).
    pub fn port(&self) -> u16 {
        self.0.port_u16().unwrap_or_default()
    }
}

impl FromStr for TargetAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<Authority>() {
            Ok(a) if !a.host().is_empty() && !s.contains('@') => {
                if !is_ip_literal(a.host()) && !valid_dns_name(a.host()) {
                    Err(format!(
                        "`{}` is neither an IP address nor a DNS name",
                        a.host()
                    ))
                } else if a.port_u16().is_none_or(|p| p == 0) {
                    Err(format!(
                        "`{s}` is not host:port with a port from 1 to 65535 (expected e.g. 10.0.0.1:8080 or api.internal:8080)"
                    ))
                } else {
                    Ok(Self(a))
                }
            }
            _ => Err(format!(
                "`{s}` is not host:port (expected e.g. 10.0.0.1:8080 or api.internal:8080)"
            )),
        }
    }
}

impl fmt::Display for TargetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

string_type!(
    TargetAddress,
    "TargetAddress",
    "host-port",
    "host:port, e.g. 10.0.0.1:8080"
);

/// An SRV name, `_service._proto.name`. Serialises as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SrvName(String);

impl SrvName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SrvName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut labels = s.split('.');
        let conventional = labels.next().is_some_and(|l| l.starts_with('_'))
            && labels.next().is_some_and(|l| l.starts_with('_'))
            && labels.next().is_some();
        if valid_dns_name(s) && conventional {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not an SRV name (expected _service._proto.name, e.g. _http._tcp.api.internal; the port comes from the records)"
            ))
        }
    }
}

impl fmt::Display for SrvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_type!(
    SrvName,
    "SrvName",
    "srv-name",
    "an SRV name, _service._proto.name"
);

/// An HTTP method: an RFC 9110 token in upper case (`GET`, `M-SEARCH`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Method(pub http::Method);

impl Method {
    /// The method's name.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl FromStr for Method {
    type Err = String;

    fn from_str(m: &str) -> Result<Self, String> {
        let upper_token = !m.is_empty()
            && m.bytes().any(|b| b.is_ascii_uppercase())
            && m.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        match http::Method::from_bytes(m.as_bytes()) {
            Ok(method) if upper_token => Ok(Self(method)),
            _ => Err(format!(
                "`{m}` is not an HTTP method (expected upper case, e.g. GET)"
            )),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl From<http::Method> for Method {
    fn from(m: http::Method) -> Self {
        Self(m)
    }
}

string_type!(
    Method,
    "Method",
    "http-method",
    "an HTTP method in upper case, e.g. GET"
);

/// An HTTP header name. Header names are case-insensitive; it serialises
/// in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderName(pub http::HeaderName);

impl HeaderName {
    /// The name, lower case.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl FromStr for HeaderName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        http::HeaderName::from_bytes(s.as_bytes())
            .map(Self)
            .map_err(|_| format!("`{s}` is not a valid header name"))
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

string_type!(
    HeaderName,
    "HeaderName",
    "http-header-name",
    "an HTTP header name"
);

/// A `Host` header value (`api.example.com`, `api.example.com:8443`).
/// Serialises as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostValue(pub http::HeaderValue);

impl FromStr for HostValue {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match http::HeaderValue::from_str(s) {
            Ok(v) if !s.trim().is_empty() => Ok(Self(v)),
            _ => Err(format!("`{s}` is not a valid Host value")),
        }
    }
}

impl fmt::Display for HostValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Built from a `&str`, so always visible ASCII.
        f.write_str(self.0.to_str().unwrap_or_default())
    }
}

string_type!(HostValue, "HostValue", "host", "a Host header value");

/// How a service's target is chosen for each request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum BalancingAlgorithm {
    /// Smooth weighted round-robin.
    #[default]
    RoundRobin,
    /// Fewest requests in flight.
    LeastConnections,
    /// A hash of `hash_on` picks the target (ketama ring).
    ConsistentHash,
    /// Weighted random.
    Random,
    /// Power of two choices over an EWMA of latency.
    P2cEwma,
}

impl BalancingAlgorithm {
    /// Every algorithm, in documentation order.
    pub const ALL: [Self; 5] = [
        Self::RoundRobin,
        Self::LeastConnections,
        Self::ConsistentHash,
        Self::Random,
        Self::P2cEwma,
    ];

    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
            Self::LeastConnections => "least-connections",
            Self::ConsistentHash => "consistent-hash",
            Self::Random => "random",
            Self::P2cEwma => "p2c-ewma",
        }
    }
}

impl FromStr for BalancingAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown algorithm `{s}` (expected one of {})",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }
}

impl fmt::Display for BalancingAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for BalancingAlgorithm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = BalancingAlgorithm;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a load-balancing algorithm")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BalancingAlgorithm, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for BalancingAlgorithm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl JsonSchema for BalancingAlgorithm {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("BalancingAlgorithm")
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "enum": Self::ALL.map(Self::as_str),
        })
    }
}

/// A request property that keys a hash: the client address, the
/// identified consumer, or a header, cookie or query parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestKey {
    /// `client_ip`: the resolved client address.
    ClientIp,
    /// `consumer`: the identified consumer's username.
    Consumer,
    /// `header:NAME`.
    Header(http::HeaderName),
    /// `cookie:NAME`.
    Cookie(String),
    /// `query:NAME`.
    Query(String),
}

impl RequestKey {
    fn parse(s: &str) -> Option<Self> {
        match s.split_once(':') {
            Some(("header", n)) => http::HeaderName::from_bytes(n.as_bytes())
                .ok()
                .map(Self::Header),
            Some(("cookie", n)) if !n.is_empty() => Some(Self::Cookie(n.to_string())),
            Some(("query", n)) if !n.is_empty() => Some(Self::Query(n.to_string())),
            None if s == "client_ip" => Some(Self::ClientIp),
            None if s == "consumer" => Some(Self::Consumer),
            _ => None,
        }
    }
}

impl fmt::Display for RequestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientIp => f.write_str("client_ip"),
            Self::Consumer => f.write_str("consumer"),
            Self::Header(h) => write!(f, "header:{h}"),
            Self::Cookie(c) => write!(f, "cookie:{c}"),
            Self::Query(q) => write!(f, "query:{q}"),
        }
    }
}

/// What `consistent-hash` hashes: `client_ip`, `consumer`, `header:NAME`,
/// `cookie:NAME` or `query:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HashOn(pub RequestKey);

impl FromStr for HashOn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        RequestKey::parse(s).map(Self).ok_or_else(|| {
            format!(
                "`{s}` is not a hash key (expected client_ip, consumer, header:NAME, cookie:NAME or query:NAME)"
            )
        })
    }
}

impl fmt::Display for HashOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_type!(
    HashOn,
    "HashOn",
    "request-key",
    "client_ip, consumer, header:NAME, cookie:NAME or query:NAME"
);

/// What keeps a client on one split branch: `client_ip`, `header:NAME`,
/// `cookie:NAME` or `query:NAME` (never `consumer`: the branch is chosen
/// before plugins identify one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StickyOn(pub RequestKey);

impl FromStr for StickyOn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match RequestKey::parse(s) {
            Some(RequestKey::Consumer) => Err(
                "`consumer` cannot be a sticky key: the branch is chosen before plugins identify a consumer (use header:NAME or cookie:NAME)".to_string(),
            ),
            Some(k) => Ok(Self(k)),
            None => Err(format!(
                "`{s}` is not a sticky key (expected client_ip, header:NAME, cookie:NAME or query:NAME)"
            )),
        }
    }
}

impl fmt::Display for StickyOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_type!(
    StickyOn,
    "StickyOn",
    "request-key",
    "client_ip, header:NAME, cookie:NAME or query:NAME"
);

/// The retry conditions that are names rather than statuses.
pub const RETRY_CONDITIONS: [&str; 3] = ["connect-failure", "reset", "timeout"];

/// One retry condition: a failure kind or a response status. Written as a
/// name, a number (`503`) or a quoted number (`"503"`); a status
/// serialises as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryCondition {
    /// `connect-failure`: the connection could not be opened.
    ConnectFailure,
    /// `reset`: the connection broke before response headers.
    Reset,
    /// `timeout`: a try hit its per-try timeout.
    Timeout,
    /// A response status (100-599).
    Status(u16),
}

fn retry_status(n: i128) -> Result<RetryCondition, String> {
    u16::try_from(n)
        .ok()
        .filter(|s| (100..=599).contains(s))
        .map(RetryCondition::Status)
        .ok_or_else(|| "must be an HTTP status (100-599)".to_string())
}

impl FromStr for RetryCondition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "connect-failure" => Ok(Self::ConnectFailure),
            "reset" => Ok(Self::Reset),
            "timeout" => Ok(Self::Timeout),
            _ => match s.parse::<i64>() {
                Ok(n) => retry_status(i128::from(n)),
                Err(_) => Err(format!(
                    "unknown retry condition `{s}` (expected {}, or a status such as 503)",
                    RETRY_CONDITIONS.join(", ")
                )),
            },
        }
    }
}

impl<'de> Deserialize<'de> for RetryCondition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RetryCondition;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("connect-failure, reset, timeout or an HTTP status")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RetryCondition, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RetryCondition, E> {
                retry_status(i128::from(v)).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RetryCondition, E> {
                retry_status(i128::from(v)).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for RetryCondition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::ConnectFailure => s.serialize_str("connect-failure"),
            Self::Reset => s.serialize_str("reset"),
            Self::Timeout => s.serialize_str("timeout"),
            Self::Status(st) => s.serialize_u16(*st),
        }
    }
}

impl JsonSchema for RetryCondition {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("RetryCondition")
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "`connect-failure`, `reset`, `timeout`, or a response status (100-599).",
            "anyOf": [
                { "type": "integer", "format": "int64" },
                { "type": "string" }
            ]
        })
    }
}

// Range checks at deserialisation (`deserialize_with`), with the messages
// `validate` used to give. The checks run inside the visitors, while the
// deserialiser still points at the value: the error then carries the
// field's path and the value's line and column.

/// An integer between `min` and `max`.
#[derive(Clone, Copy)]
struct Int {
    min: i128,
    max: i128,
    /// The message below `min` (default "must be at least MIN").
    below: Option<&'static str>,
    /// The message above `max` (default "must be at most MAX").
    above: Option<&'static str>,
}

impl Int {
    const fn new(min: i128, max: i128) -> Self {
        Self {
            min,
            max,
            below: None,
            above: None,
        }
    }

    const fn both(min: i128, max: i128, message: &'static str) -> Self {
        Self {
            min,
            max,
            below: Some(message),
            above: Some(message),
        }
    }

    fn check<E: de::Error>(self, v: i128) -> Result<i128, E> {
        if v < self.min {
            Err(match self.below {
                Some(m) => E::custom(m),
                None => E::custom(format!("must be at least {}", self.min)),
            })
        } else if v > self.max {
            Err(match self.above {
                Some(m) => E::custom(m),
                None => E::custom(format!("must be at most {}", self.max)),
            })
        } else {
            Ok(v)
        }
    }
}

impl Visitor<'_> for Int {
    type Value = i128;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer from {} to {}", self.min, self.max)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i128, E> {
        self.check(i128::from(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i128, E> {
        self.check(i128::from(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<i128, E> {
        self.check(i128::try_from(v).unwrap_or(i128::MAX))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<i128, E> {
        self.check(v)
    }
}

impl<'de> de::DeserializeSeed<'de> for Int {
    type Value = i128;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<i128, D::Error> {
        d.deserialize_any(self)
    }
}

/// A duration (humantime: `250ms`, `5s`, `1h 30m`) of at least `min` and
/// at most `max`.
#[derive(Clone, Copy)]
struct Dur {
    min: Duration,
    below: &'static str,
    max: Option<(Duration, &'static str)>,
}

const POSITIVE: Dur = Dur {
    min: Duration::from_nanos(1),
    below: "must be greater than zero",
    max: None,
};

impl Visitor<'_> for Dur {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 250ms, 5s or 1h 30m")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        let d = humantime::parse_duration(v).map_err(|e| {
            E::custom(format!(
                "`{v}` is not a duration ({e}; expected e.g. 250ms, 5s or 1h 30m)"
            ))
        })?;
        if d < self.min {
            return Err(E::custom(self.below));
        }
        if let Some((max, message)) = self.max
            && d > max
        {
            return Err(E::custom(message));
        }
        Ok(d)
    }
}

impl<'de> de::DeserializeSeed<'de> for Dur {
    type Value = Duration;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Duration, D::Error> {
        d.deserialize_str(self)
    }
}

/// A string that `check` accepts.
#[derive(Clone, Copy)]
struct Text(fn(&str) -> Result<(), String>);

impl Visitor<'_> for Text {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        (self.0)(v).map_err(E::custom)?;
        Ok(v.to_string())
    }
}

impl<'de> de::DeserializeSeed<'de> for Text {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

/// `null`/absent or a value of the seed.
struct Opt<S>(S);

impl<'de, S: de::DeserializeSeed<'de>> Visitor<'de> for Opt<S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d).map(Some)
    }
}

/// A list of values of the seed.
struct Seq<S>(S);

impl<'de, S: de::DeserializeSeed<'de> + Copy> Visitor<'de> for Seq<S> {
    type Value = Vec<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.0)? {
            out.push(v);
        }
        Ok(out)
    }
}

fn int<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D, range: Int) -> Result<T, D::Error> {
    let v = d.deserialize_any(range)?;
    // In range, so it fits: the ranges below are within T's.
    T::try_from(v).map_err(|_| de::Error::custom("out of range"))
}

fn int_opt<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
    d: D,
    range: Int,
) -> Result<Option<T>, D::Error> {
    d.deserialize_option(Opt(range))?
        .map(|v| T::try_from(v).map_err(|_| de::Error::custom("out of range")))
        .transpose()
}

/// A duration greater than zero (humantime: `250ms`, `5s`, `1h 30m`).
pub(crate) fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_str(POSITIVE)
}

/// An optional duration, greater than zero when given.
pub(crate) fn positive_duration_opt<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    d.deserialize_option(Opt(POSITIVE))
}

/// `circuit_breaker.window`: at least 10ms.
pub(crate) fn breaker_window<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_str(Dur {
        min: Duration::from_millis(10),
        below: "must be at least 10ms",
        max: None,
    })
}

/// `circuit_breaker.open_for`: more than zero, at most 24h.
pub(crate) fn open_for<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_str(Dur {
        max: Some((Duration::from_secs(86_400), "must be at most 24h")),
        ..POSITIVE
    })
}

/// A count of at least one (`usize` or `u32`).
pub(crate) fn at_least_one<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128> + Bounded,
{
    int(d, Int::new(1, T::MAX))
}

/// The largest value of an unsigned integer type.
pub(crate) trait Bounded {
    /// The largest value, widened.
    const MAX: i128;
}

impl Bounded for u32 {
    const MAX: i128 = u32::MAX as i128;
}

impl Bounded for usize {
    const MAX: i128 = usize::MAX as i128;
}

const STATUS: Int = Int::both(100, 599, "must be an HTTP status (100-599)");

/// HTTP statuses (100-599).
pub(crate) fn statuses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    Ok(d.deserialize_seq(Seq(STATUS))?
        .into_iter()
        .filter_map(|v| u16::try_from(v).ok())
        .collect())
}

/// A share greater than 0 and at most 1.
pub(crate) fn ratio<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number greater than 0 and at most 1")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            if v > 0.0 && v <= 1.0 {
                Ok(v)
            } else {
                Err(E::custom("must be greater than 0 and at most 1"))
            }
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            self.visit_f64(if v == 1 { 1.0 } else { 0.0 })
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            self.visit_f64(if v == 1 { 1.0 } else { 0.0 })
        }
    }
    d.deserialize_any(V)
}

/// `server.max_header_bytes`: at least 1024.
pub(crate) fn header_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    int(d, Int::new(1024, usize::MAX as i128))
}

/// `server.max_connections`: at least 1 when given.
pub(crate) fn max_connections<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    int_opt(
        d,
        Int {
            below: Some("must be at least 1 (leave it out for the default)"),
            ..Int::new(1, usize::MAX as i128)
        },
    )
}

/// `server.key_hash_secret`: at least 16 characters.
pub(crate) fn key_hash_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_option(Opt(Text(|s| {
        if s.chars().count() < 16 {
            Err(
                "must be at least 16 characters (use a long random string, the same on every node)"
                    .to_string(),
            )
        } else {
            Ok(())
        }
    })))
}

/// Largest `retries.attempts`.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;

/// Largest `retries.buffer_body` (64 MiB).
pub const MAX_BUFFER_BODY: u64 = 64 * 1024 * 1024;

/// Largest weight of a target or a split branch.
pub const MAX_WEIGHT: u32 = 65_535;

const ATTEMPTS: Int = Int::new(0, MAX_RETRY_ATTEMPTS as i128);
const BUFFER_BODY: Int = Int {
    above: Some("must be at most 67108864 bytes (64 MiB)"),
    ..Int::new(0, MAX_BUFFER_BODY as i128)
};
const WEIGHT: Int = Int::new(0, MAX_WEIGHT as i128);

/// `retries.attempts`: at most 10.
pub(crate) fn attempts<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int(d, ATTEMPTS)
}

/// A route's `retries.attempts`.
pub(crate) fn attempts_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    int_opt(d, ATTEMPTS)
}

/// `retries.buffer_body`: at most 64 MiB.
pub(crate) fn buffer_body<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    int(d, BUFFER_BODY)
}

/// A route's `retries.buffer_body`.
pub(crate) fn buffer_body_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    int_opt(d, BUFFER_BODY)
}

/// A split branch's weight: at most 65535.
pub(crate) fn weight<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int(d, WEIGHT)
}

/// A target's weight: at most 65535.
pub(crate) fn weight_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    int_opt(d, WEIGHT)
}

/// `circuit_breaker.half_open_requests`: 1 to 1000.
pub(crate) fn half_open<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    int(d, Int::both(1, 1000, "must be between 1 and 1000"))
}

/// An active health check's `path`: an origin-form path.
pub(crate) fn probe_path<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_str(Text(|v| {
        if !v.starts_with('/') || v.parse::<http::uri::PathAndQuery>().is_err() {
            Err("must be a path starting with `/`".to_string())
        } else {
            Ok(())
        }
    }))
}

/// A route's `rewrite`: a path template starting with `/`.
pub(crate) fn rewrite<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_option(Opt(Text(|v| {
        if v.starts_with('/') {
            Ok(())
        } else {
            Err("must start with `/`".to_string())
        }
    })))
}
