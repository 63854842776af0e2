//! What a proxy must do to headers on the way through: drop hop-by-hop
//! fields, add X-Forwarded-* / Forwarded (RFC 7239) / Via, and resolve the
//! real client address behind trusted proxies.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The hop-by-hop fields of RFC 9110 section 7.6.1 plus the legacy ones
/// proxies still see in the wild.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    // RFC 9113 section 3.2.1 (h2c upgrade), connection-specific.
    HeaderName::from_static("http2-settings"),
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

// Values the request path sends as they are: built at compile time, so a
// request clones a static buffer instead of checking bytes.
static PROTO_HTTP: HeaderValue = HeaderValue::from_static("http");
static PROTO_HTTPS: HeaderValue = HeaderValue::from_static("https");
static VIA_2: HeaderValue = HeaderValue::from_static("2 gatehouse");
static VIA_10: HeaderValue = HeaderValue::from_static("1.0 gatehouse");
static VIA_11: HeaderValue = HeaderValue::from_static("1.1 gatehouse");

/// Fields in which proxies, CDNs and load balancers name the original
/// client. Like X-Forwarded-For they are only believed from trusted
/// proxies: from anyone else they are removed, so an upstream that reads
/// one cannot be told a forged address. `x-real-ip` is always set by the
/// gateway itself (see [`set_forwarding_headers`]).
const CLIENT_ADDRESS_FIELDS: [HeaderName; 19] = [
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("client-ip"),
    HeaderName::from_static("cf-connecting-ip"),
    HeaderName::from_static("cf-connecting-ipv6"),
    HeaderName::from_static("fastly-client-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
    HeaderName::from_static("x-original-forwarded-for"),
    HeaderName::from_static("x-originating-ip"),
    HeaderName::from_static("x-remote-ip"),
    HeaderName::from_static("x-remote-addr"),
    HeaderName::from_static("x-forwarded"),
    HeaderName::from_static("forwarded-for"),
    HeaderName::from_static("x-envoy-external-address"),
    HeaderName::from_static("x-appengine-user-ip"),
    HeaderName::from_static("x-azure-clientip"),
    HeaderName::from_static("wl-proxy-client-ip"),
    HeaderName::from_static("proxy-client-ip"),
];

/// Fields through which some upstreams let a request name another path
/// than its own (IIS URL Rewrite's `X-Original-URL`, `X-Rewrite-URL`, which
/// Symfony before 4.1, Zend/Laminas and others honoured): the upstream
/// would serve another resource than the route matched and its plugins
/// authorised. Removed from every request, whoever sent them.
const PATH_OVERRIDE_FIELDS: [HeaderName; 3] = [
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-override-url"),
];

/// Removes hop-by-hop headers, including every field named in
/// `Connection`. With `keep_upgrade`, `Connection: upgrade` and `Upgrade`
/// survive so that WebSocket and other upgrades can pass. `TE: trailers`
/// is kept on requests because gRPC needs it end to end.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool, keep_te_trailers: bool) {
    // Fast path: most messages carry no hop-by-hop field at all. One pass
    // over the names (no hashing) proves it.
    if !keep_upgrade
        && !headers
            .keys()
            .any(|k| HOP_BY_HOP.contains(k) || k == header::UPGRADE)
    {
        return;
    }
    // Fields named by Connection are hop-by-hop too.
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|n| !(keep_upgrade && n == header::UPGRADE))
            .collect();
        for name in named {
            headers.remove(&name);
        }
    }
    let te_trailers = keep_te_trailers
        && headers
            .get_all(header::TE)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Whether the request asks for a protocol upgrade the gateway tunnels
/// (WebSocket and the like). `Upgrade: h2c` is never tunnelled: an h2c
/// tunnel through the gateway would carry requests the gateway never
/// routes or checks (the h2c smuggling of BishopFox's h2csmuggler). Such a
/// request is forwarded as plain HTTP/1.1 with `Upgrade` and
/// `HTTP2-Settings` removed, which RFC 9110 section 7.8 allows (a server
/// may ignore an upgrade) and RFC 9113 section 3.1 expects (h2c upgrade is
/// deprecated).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && !headers
            .get_all(header::UPGRADE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .any(|t| {
                let t = t.trim_ascii();
                // `h2c` and any version of it (`h2c/1`).
                t.len() >= 3 && t[..3].eq_ignore_ascii_case(b"h2c")
            })
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// A set of trusted proxy networks.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<ipnet::IpNet>,
}

impl TrustedProxies {
    /// From parsed networks.
    pub fn new(nets: Vec<ipnet::IpNet>) -> Self {
        Self { nets }
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client address: the right-most address of X-Forwarded-For that
    /// is not a trusted proxy, when the peer itself is trusted; otherwise
    /// the peer. `None` when the client is unknown: a hop that is not an
    /// address (`unknown`, an obfuscated or quoted identifier, garbage, a
    /// value that is not ASCII) stops the walk there, and the client is
    /// never taken to be the trusted proxy the walk stopped at. Without
    /// X-Forwarded-For a trusted peer is its own client.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        if self.nets.is_empty() || !self.contains(peer) {
            return Some(peer);
        }
        let mut hops: Vec<&str> = Vec::new();
        for v in headers.get_all(&X_FORWARDED_FOR) {
            hops.extend(v.to_str().ok()?.split(','));
        }
        let mut client = peer;
        for hop in hops.iter().rev() {
            client = parse_hop(hop)?;
            if !self.contains(client) {
                break;
            }
        }
        Some(canonical(client))
    }
}

/// One X-Forwarded-For hop as an address: `IP`, `IPv4:port`, `[IPv6]` or
/// `[IPv6]:port`, with optional surrounding whitespace. Anything else
/// (`unknown`, quoted values, obfuscated identifiers, zone ids, an empty
/// hop) is `None`. IPv4-mapped IPv6 addresses are returned as IPv4.
pub fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim_matches([' ', '\t']);
    let port_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok()
    };
    let ip = if let Some(rest) = hop.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(port) if port_ok(port) => {}
            None if after.is_empty() => {}
            _ => return None,
        }
        IpAddr::V6(inside.parse().ok()?)
    } else if let Ok(ip) = hop.parse::<IpAddr>() {
        ip
    } else {
        // `IPv4:port`; a bare IPv6 address has more than one colon and
        // parsed above.
        let (addr, port) = hop.split_once(':')?;
        if !port_ok(port) {
            return None;
        }
        IpAddr::V4(addr.parse().ok()?)
    };
    Some(canonical(ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The downstream peer rendered once per connection, so requests on a
/// keep-alive connection do not format the same address again and again.
#[derive(Debug, Clone)]
pub struct PeerText {
    /// The address (IPv4-mapped IPv6 as IPv4).
    ip: IpAddr,
    /// The address as X-Forwarded-For (and X-Real-IP) writes it.
    text: HeaderValue,
    /// The address as a Forwarded `for=` node (IPv6 quoted and bracketed).
    node: String,
    /// The listener port as X-Forwarded-Port writes it.
    port: HeaderValue,
}

impl PeerText {
    fn node_text(&self) -> &str {
        self.text.to_str().unwrap_or("unknown")
    }

    /// Renders `peer` (IPv4-mapped IPv6 shown as IPv4) and `port`.
    pub fn new(peer: IpAddr, port: u16) -> Self {
        let ip = canonical(peer);
        let text = ip.to_string();
        // RFC 7239: IPv6 addresses are quoted and bracketed.
        let node = match ip {
            IpAddr::V4(_) => text.clone(),
            IpAddr::V6(_) => format!("\"[{text}]\""),
        };
        Self {
            ip,
            text: owned_value(text).unwrap_or_else(|| HeaderValue::from_static("unknown")),
            node,
            port: HeaderValue::from(port),
        }
    }
}

/// What the forwarding headers describe about the downstream hop.
pub struct Hop<'a> {
    /// The TCP peer, pre-rendered.
    pub peer: &'a PeerText,
    /// Whether the peer is a trusted proxy (its headers are kept).
    pub trusted: bool,
    /// `http` or `https`.
    pub proto: &'static str,
    /// The effective host, canonical (`handler::effective_host`): the
    /// request target's authority, else `Host`. X-Forwarded-Host,
    /// `Forwarded: host=` and `preserve_host` all use it.
    pub host: Option<HeaderValue>,
    /// The resolved client address (`None`: unknown), sent as X-Real-IP.
    pub client: Option<IpAddr>,
}

/// Sets X-Forwarded-For/-Proto/-Host/-Port and Forwarded. Headers from an
/// untrusted peer are replaced, never extended, so clients cannot forge
/// their address to the upstream.
pub fn set_forwarding_headers(headers: &mut HeaderMap, hop: &Hop<'_>) {
    if !hop.trusted && headers.keys().any(|k| CLIENT_ADDRESS_FIELDS.contains(k)) {
        for name in &CLIENT_ADDRESS_FIELDS {
            headers.remove(name);
        }
    }
    if headers.keys().any(|k| PATH_OVERRIDE_FIELDS.contains(k)) {
        for name in &PATH_OVERRIDE_FIELDS {
            headers.remove(name);
        }
    }
    // The client is usually the peer, whose address is rendered once per
    // connection.
    let real_ip = match hop.client {
        Some(ip) if ip == hop.peer.ip => Some(hop.peer.text.clone()),
        Some(ip) => owned_value(ip.to_string()),
        None => None,
    };
    match real_ip {
        Some(v) => {
            headers.insert(X_REAL_IP.clone(), v);
        }
        None => {
            headers.remove(&X_REAL_IP);
        }
    }
    let prior_xff = if hop.trusted {
        join_values(headers, &X_FORWARDED_FOR)
    } else {
        None
    };
    let xff = match prior_xff {
        Some(prev) => owned_value(format!("{prev}, {}", hop.peer.node_text())),
        None => Some(hop.peer.text.clone()),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    let keep = |headers: &HeaderMap, name: &HeaderName| hop.trusted && headers.contains_key(name);
    if !keep(headers, &X_FORWARDED_PROTO) {
        let proto = if hop.proto == "https" {
            PROTO_HTTPS.clone()
        } else {
            PROTO_HTTP.clone()
        };
        headers.insert(X_FORWARDED_PROTO.clone(), proto);
    }
    if !keep(headers, &X_FORWARDED_HOST) {
        match &hop.host {
            Some(v) => {
                headers.insert(X_FORWARDED_HOST.clone(), v.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
    if !keep(headers, &X_FORWARDED_PORT) {
        headers.insert(X_FORWARDED_PORT.clone(), hop.peer.port.clone());
    }

    let mut element = String::with_capacity(64);
    element.push_str("for=");
    element.push_str(&hop.peer.node);
    element.push_str(";proto=");
    element.push_str(hop.proto);
    if let Some(host) = hop.host.as_ref().and_then(|h| h.to_str().ok())
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        element.push_str(";host=\"");
        element.push_str(host);
        element.push('"');
    }
    let prior = if hop.trusted {
        join_values(headers, &FORWARDED)
    } else {
        None
    };
    let forwarded = match prior {
        Some(prev) => format!("{prev}, {element}"),
        None => element,
    };
    if let Some(v) = owned_value(forwarded) {
        headers.insert(FORWARDED.clone(), v);
    }
}

/// A header value that takes ownership of `s` instead of copying it.
fn owned_value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(s)).ok()
}

/// Appends `1.1 gatehouse` (or `2 gatehouse`) to Via.
pub fn append_via(headers: &mut HeaderMap, version: http::Version) {
    let me = match version {
        http::Version::HTTP_2 => &VIA_2,
        http::Version::HTTP_10 => &VIA_10,
        _ => &VIA_11,
    };
    // One lookup: most messages carry no Via yet.
    match headers.entry(header::VIA) {
        header::Entry::Vacant(slot) => {
            slot.insert(me.clone());
        }
        header::Entry::Occupied(mut prior) => {
            let mut joined = String::new();
            for v in prior.iter() {
                // An unreadable prior value is replaced by ours alone.
                let Ok(text) = v.to_str() else {
                    prior.insert(me.clone());
                    return;
                };
                joined.push_str(text);
                joined.push_str(", ");
            }
            joined.push_str(me.to_str().unwrap_or_default());
            if let Ok(v) = HeaderValue::from_str(&joined) {
                prior.insert(v);
            }
        }
    }
}

/// All values of a field joined by ", ", if it is present and readable.
fn join_values(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for v in headers.get_all(name) {
        let s = v.to_str().ok()?;
        match &mut out {
            Some(o) => {
                o.push_str(", ");
                o.push_str(s);
            }
            None => out = Some(s.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_fields() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "gzip"),
            ("upgrade", "websocket"),
            ("x-kept", "1"),
        ]);
        strip_hop_by_hop(&mut h, false, true);
        assert!(h.get("x-secret").is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get("connection").is_none());
        assert!(h.get("te").is_none());
        assert!(h.get("upgrade").is_none());
        assert_eq!(h["x-kept"], "1");
    }

    #[test]
    fn keeps_te_trailers_and_upgrade_when_asked() {
        let mut h = map(&[
            ("te", "trailers"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
        ]);
        strip_hop_by_hop(&mut h, true, true);
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn hops_parse_in_every_address_form_and_nothing_else() {
        fn check(hop: &str, expect: Option<&str>) {
            let want = expect.map(|e| e.parse::<IpAddr>().unwrap());
            assert_eq!(parse_hop(hop), want, "hop {hop:?}");
        }
        let cases: &[(&str, Option<&str>)] = &[
            ("203.0.113.9", Some("203.0.113.9")),
            ("  203.0.113.9\t", Some("203.0.113.9")),
            ("203.0.113.9:51234", Some("203.0.113.9")),
            ("203.0.113.9:0", Some("203.0.113.9")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("[2001:db8::1]:443", Some("2001:db8::1")),
            (" [2001:db8::1]:443 ", Some("2001:db8::1")),
            ("::ffff:10.1.2.3", Some("10.1.2.3")),
            ("[::ffff:10.1.2.3]:80", Some("10.1.2.3")),
            // Everything else is unknown.
            ("", None),
            ("unknown", None),
            ("_hidden", None),
            ("\"203.0.113.9\"", None),
            ("\"[2001:db8::1]\"", None),
            ("203.0.113.9:", None),
            ("203.0.113.9:65536", None),
            ("203.0.113.9:80:80", None),
            ("203.0.113.9:+80", None),
            ("203.0.113.9:_x", None),
            ("[2001:db8::1]443", None),
            ("[2001:db8::1]:", None),
            ("[203.0.113.9]", None),
            ("[2001:db8::1", None),
            ("fe80::1%eth0", None),
            ("2001:db8::1:443x", None),
            ("1.2.3", None),
            ("for=1.2.3.4", None),
        ];
        for (hop, expect) in cases {
            check(hop, *expect);
        }
    }

    #[test]
    fn client_ip_walks_trusted_hops_and_fails_closed() {
        let t = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        fn check(t: &TrustedProxies, peer: IpAddr, xff: &[&str], expect: Option<&str>) {
            let pairs: Vec<(&str, &str)> = xff.iter().map(|v| ("x-forwarded-for", *v)).collect();
            let want = expect.map(|e| e.parse::<IpAddr>().unwrap());
            assert_eq!(
                t.client_ip(peer, &map(&pairs)),
                want,
                "peer {peer}, {xff:?}"
            );
        }
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["6.6.6.6, 1.2.3.4, 10.0.0.2"], Some("1.2.3.4")),
            (&["6.6.6.6", "1.2.3.4:5678, 10.0.0.2"], Some("1.2.3.4")),
            (&["[2001:db8::1]:443"], Some("2001:db8::1")),
            (&["203.0.113.9:51234"], Some("203.0.113.9")),
            // Only trusted hops: the left-most one.
            (&["10.0.0.3, 10.0.0.2"], Some("10.0.0.3")),
            // No header: the trusted peer is its own client.
            (&[], Some("10.0.0.1")),
            // An unparsable hop before an untrusted one: unknown, never
            // the trusted hop or the proxy itself.
            (&["1.2.3.4, junk, 10.0.0.3"], None),
            (&["unknown"], None),
            (&["\"1.2.3.4\""], None),
            (&[""], None),
            (&["1.2.3.4, "], None),
            // Garbage beyond the first untrusted hop is not looked at.
            (&["junk, 1.2.3.4"], Some("1.2.3.4")),
        ];
        for (xff, expect) in cases {
            check(&t, proxy, xff, *expect);
        }
        // An untrusted peer's header is ignored.
        check(
            &t,
            "9.9.9.9".parse().unwrap(),
            &["unknown"],
            Some("9.9.9.9"),
        );
        // A value that is not visible ASCII makes the client unknown.
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"1.2.3.4\xff").unwrap(),
        );
        assert_eq!(t.client_ip(proxy, &h), None);
    }

    #[test]
    fn client_address_fields_are_dropped_from_untrusted_peers_and_x_real_ip_is_ours() {
        let fields = [
            ("x-real-ip", "6.6.6.6"),
            ("true-client-ip", "6.6.6.6"),
            ("x-client-ip", "6.6.6.6"),
            ("cf-connecting-ip", "6.6.6.6"),
            ("fastly-client-ip", "6.6.6.6"),
            ("x-cluster-client-ip", "6.6.6.6"),
            ("client-ip", "6.6.6.6"),
        ];
        let peer = PeerText::new("1.2.3.4".parse().unwrap(), 80);
        for trusted in [false, true] {
            let mut h = map(&fields);
            let hop = Hop {
                peer: &peer,
                trusted,
                proto: "http",
                host: None,
                client: Some("1.2.3.4".parse().unwrap()),
            };
            set_forwarding_headers(&mut h, &hop);
            assert_eq!(h["x-real-ip"], "1.2.3.4", "trusted: {trusted}");
            for (name, _) in &fields[1..] {
                assert_eq!(h.contains_key(*name), trusted, "{name}, trusted: {trusted}");
            }
        }
        // An unknown client: no X-Real-IP at all.
        let mut h = map(&fields);
        let hop = Hop {
            peer: &peer,
            trusted: true,
            proto: "http",
            host: None,
            client: None,
        };
        set_forwarding_headers(&mut h, &hop);
        assert!(!h.contains_key("x-real-ip"));
    }

    #[test]
    fn forwarding_headers_replace_for_untrusted_and_append_for_trusted() {
        let mut h = map(&[("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6")]);
        let peer = PeerText::new("1.2.3.4".parse().unwrap(), 8080);
        let hop = Hop {
            peer: &peer,
            trusted: false,
            proto: "http",
            host: Some(HeaderValue::from_static("api.test")),
            client: None,
        };
        set_forwarding_headers(&mut h, &hop);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4");
        assert_eq!(h["forwarded"], "for=1.2.3.4;proto=http;host=\"api.test\"");
        assert_eq!(h["x-forwarded-host"], "api.test");
        assert_eq!(h["x-forwarded-port"], "8080");

        let mut h = map(&[("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6")]);
        let peer = PeerText::new("::1".parse().unwrap(), 80);
        let hop = Hop {
            peer: &peer,
            trusted: true,
            proto: "http",
            host: None,
            client: None,
        };
        set_forwarding_headers(&mut h, &hop);
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, ::1");
        assert_eq!(h["forwarded"], "for=6.6.6.6, for=\"[::1]\";proto=http");
    }

    #[test]
    fn h2c_is_never_an_upgrade() {
        fn check(upgrade: &str, expect: bool) {
            let h = map(&[
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", upgrade),
            ]);
            assert_eq!(is_upgrade_request(&h), expect, "Upgrade: {upgrade}");
        }
        check("websocket", true);
        check("foo/2", true);
        check("h2c", false);
        check("H2C", false);
        check("websocket, h2c", false);
        check(" h2c ", false);
        let mut h = map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ]);
        let upgrade = is_upgrade_request(&h);
        strip_hop_by_hop(&mut h, upgrade, true);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn via_is_appended() {
        let mut h = map(&[("via", "1.1 edge")]);
        append_via(&mut h, http::Version::HTTP_11);
        assert_eq!(h["via"], "1.1 edge, 1.1 gatehouse");
        // (prior values, version, expected single value)
        let cases: [(&[&[u8]], http::Version, &str); 5] = [
            (&[], http::Version::HTTP_11, "1.1 gatehouse"),
            (&[], http::Version::HTTP_2, "2 gatehouse"),
            (&[], http::Version::HTTP_10, "1.0 gatehouse"),
            (
                &[b"1.0 a", b"1.1 b"],
                http::Version::HTTP_2,
                "1.0 a, 1.1 b, 2 gatehouse",
            ),
            // An unreadable prior value is replaced, not joined.
            (&[b"1.1 \xff"], http::Version::HTTP_11, "1.1 gatehouse"),
        ];
        for (prior, version, want) in cases {
            let mut h = HeaderMap::new();
            for v in prior {
                h.append(header::VIA, HeaderValue::from_bytes(v).unwrap());
            }
            append_via(&mut h, version);
            let got: Vec<_> = h.get_all(header::VIA).iter().collect();
            assert_eq!(got, [want], "{prior:?} {version:?}");
        }
    }

    #[test]
    fn x_real_ip_is_the_client_whether_or_not_it_is_the_peer() {
        let peer = PeerText::new("10.0.0.1".parse().unwrap(), 8080);
        let mapped = PeerText::new("::ffff:10.0.0.2".parse().unwrap(), 8080);
        let cases: [(&PeerText, Option<IpAddr>, Option<&str>); 4] = [
            (&peer, Some("10.0.0.1".parse().unwrap()), Some("10.0.0.1")),
            (&peer, Some("192.0.2.7".parse().unwrap()), Some("192.0.2.7")),
            (&peer, None, None),
            (&mapped, Some("10.0.0.2".parse().unwrap()), Some("10.0.0.2")),
        ];
        for (peer, client, want) in cases {
            let mut h = map(&[("x-real-ip", "6.6.6.6")]);
            let hop = Hop {
                peer,
                trusted: false,
                proto: "https",
                host: None,
                client,
            };
            set_forwarding_headers(&mut h, &hop);
            assert_eq!(
                h.get("x-real-ip").map(|v| v.to_str().unwrap()),
                want,
                "{client:?}"
            );
            assert_eq!(h["x-forwarded-proto"], "https");
        }
    }
}
