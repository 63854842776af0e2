//! The upstream request, built from the downstream one by pure functions
//! (parts in, parts out, no I/O, no snapshot): the forwarded path (route
//! rewrite, stripped prefix, service base path, query), hop-by-hop fields,
//! forwarding headers, Host, Via and the request id; and the framing
//! recomputed from the body the plugins left.

use std::borrow::Cow;

use gatehouse_core::{Body, Problem, ProblemType};
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Uri, Version};

use crate::forward::{self, Hop};

/// How the forwarded path is made from the (canonical) request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathSource<'a> {
    /// Forwarded as the client sent it (after canonicalisation): no
    /// rewrite, nothing stripped, no base path. The parsed path-and-query
    /// is reused.
    Unchanged,
    /// Joined from the route's and the service's settings.
    Joined {
        /// The route's `rewrite` template, already expanded.
        rewritten: Option<String>,
        /// Bytes of the request path to strip (the matched prefix, or the
        /// version segment); 0 for none.
        strip: usize,
        /// The service's base path (`""` or `/base`, no trailing slash).
        base: &'a str,
    },
    /// Exactly this path and query (an `upstream` plugin's URL).
    Exact(PathAndQuery),
}

/// The path and query the upstream receives. Refuses (`path-outside-route`)
/// a joined path in which a dot segment, however spelled, would climb out
/// of the base path, and (`bad-request`) one that is not a valid URI path.
pub(crate) fn path_and_query(uri: &Uri, source: &PathSource<'_>) -> Result<PathAndQuery, Problem> {
    let (rewritten, strip, base) = match source {
        PathSource::Exact(pq) => return Ok(pq.clone()),
        PathSource::Unchanged => match uri.path_and_query() {
            Some(pq) => return Ok(pq.clone()),
            None => (&None, 0, ""),
        },
        PathSource::Joined {
            rewritten,
            strip,
            base,
        } => (rewritten, *strip, *base),
    };
    let path = uri.path();
    let mut p: Cow<'_, str> = path.into();
    if let Some(template) = rewritten {
        p = template.as_str().into();
    } else {
        if strip > 0 && strip <= p.len() && p.is_char_boundary(strip) {
            p = p[strip..].to_string().into();
        }
        if !p.starts_with('/') {
            p = format!("/{p}").into();
        }
    }
    let joined = if base.is_empty() {
        p.into_owned()
    } else {
        format!("{base}{p}")
    };
    // What the upstream receives must name what the route matched: no dot
    // segment may climb out of the base path after strip_prefix or a
    // rewrite template.
    if !crate::canon::upstream_path_ok(&joined) {
        return Err(Problem::new(ProblemType::PathOutsideRoute)
            .detail("the rewritten upstream path would leave the route's base path"));
    }
    let pq = match uri.query() {
        // A rewrite template may bring its own query string.
        Some(q) if joined.contains('?') => format!("{joined}&{q}"),
        Some(q) => format!("{joined}?{q}"),
        None => joined,
    };
    PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq)).map_err(|_| invalid_uri())
}

fn invalid_uri() -> Problem {
    Problem::new(ProblemType::BadRequest).detail("the rewritten path is not a valid URI")
}

/// Which Host the upstream receives: the client's (`preserve_host`, when
/// it sent one), the route's `host_rewrite`, or the service's.
pub(crate) fn host(
    preserve_host: bool,
    host_rewrite: Option<&HeaderValue>,
    client: Option<&HeaderValue>,
    service: &HeaderValue,
) -> HeaderValue {
    match (preserve_host, client, host_rewrite) {
        (true, Some(c), _) => c.clone(),
        (true, None, _) => service.clone(),
        (false, _, Some(h)) => h.clone(),
        (false, _, None) => service.clone(),
    }
}

/// Everything the upstream request gets besides the downstream head.
pub(crate) struct Outbound<'a> {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Where the connection goes.
    pub authority: Authority,
    /// From [`path_and_query`].
    pub path_and_query: PathAndQuery,
    /// From [`host`].
    pub host: HeaderValue,
    /// The downstream hop, for X-Forwarded-* and Forwarded.
    pub hop: &'a Hop<'a>,
    /// Whether to append `Via`.
    pub via: bool,
    /// The request id field and value.
    pub request_id: (&'a HeaderName, &'a str),
    /// HTTP version spoken upstream.
    pub version: Version,
    /// The request is a protocol upgrade the gateway tunnels.
    pub upgrade: bool,
}

/// The upstream request head made from the downstream one.
pub(crate) fn build(mut parts: Parts, out: &Outbound<'_>) -> Result<Parts, Problem> {
    let downstream_version = parts.version;
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(out.scheme.clone());
    uri.authority = Some(out.authority.clone());
    uri.path_and_query = Some(out.path_and_query.clone());
    let uri = Uri::from_parts(uri).map_err(|_| invalid_uri())?;
    let headers = &mut parts.headers;
    // Room for Host, X-Forwarded-*, Forwarded, Via and the request id, so
    // the map grows at most once.
    headers.reserve(8);
    forward::strip_hop_by_hop(headers, out.upgrade, true);
    headers.remove(header::EXPECT);
    headers.insert(header::HOST, out.host.clone());
    forward::set_forwarding_headers(headers, out.hop);
    if out.via {
        forward::append_via(headers, downstream_version);
    }
    if let Ok(v) = HeaderValue::from_str(out.request_id.1) {
        headers.insert(out.request_id.0.clone(), v);
    }
    parts.uri = uri;
    parts.version = out.version;
    Ok(parts)
}

/// Makes the request's framing follow its body, as plugins left it: an
/// exact length is sent as `Content-Length` (kept absent for a bodyless
/// request that had none), anything else without (hyper chunks it).
/// `Transfer-Encoding` is hyper's to write, never a plugin's: [`build`]
/// removed the client's, and `after_build` says a plugin had the head
/// since (the `upstream_request` phase), so one it set is removed too.
pub(crate) fn reframe(req: &mut http::Request<Body>, after_build: bool) {
    use http_body::Body as _;
    let exact = req.body().size_hint().exact();
    let headers = req.headers_mut();
    if after_build {
        headers.remove(header::TRANSFER_ENCODING);
    }
    match exact {
        Some(0) if !headers.contains_key(header::CONTENT_LENGTH) => {}
        Some(n) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        None => {
            headers.remove(header::CONTENT_LENGTH);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::forward::PeerText;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn paths_join_route_and_service_settings() {
        fn check(path: &str, source: PathSource<'_>, expect: Result<&str, ProblemType>) {
            let got = path_and_query(&uri(path), &source);
            match (&got, expect) {
                (Ok(pq), Ok(e)) => assert_eq!(pq.as_str(), e, "{path} {source:?}"),
                (Err(p), Err(k)) => assert_eq!(p.kind(), k, "{path} {source:?}"),
                _ => panic!("{path} {source:?}: got {got:?}, expected {expect:?}"),
            }
        }
        let joined = |rewritten: Option<&str>, strip, base| PathSource::Joined {
            rewritten: rewritten.map(String::from),
            strip,
            base,
        };
        check("/a/b?x=1", PathSource::Unchanged, Ok("/a/b?x=1"));
        check("/api/users", joined(None, 4, ""), Ok("/users"));
        check("/api", joined(None, 4, ""), Ok("/"));
        check(
            "/api/users?q=1",
            joined(None, 4, "/base"),
            Ok("/base/users?q=1"),
        );
        check("/users", joined(None, 0, "/base"), Ok("/base/users"));
        check("/x?q=1", joined(Some("/y?z=2"), 0, ""), Ok("/y?z=2&q=1"));
        check("/x", joined(Some("/y/7"), 0, "/b"), Ok("/b/y/7"));
        // A strip past the path or inside a character is ignored.
        check("/ab", joined(None, 9, ""), Ok("/ab"));
        check("/é", joined(None, 2, ""), Ok("/é"));
        let exact = PathAndQuery::from_static("/chosen?by=plugin");
        check("/x?q=1", PathSource::Exact(exact), Ok("/chosen?by=plugin"));
        // Hostile: a rewrite that climbs out of the base path, in any
        // spelling, is refused, never forwarded.
        for t in [
            "/../admin",
            "/a/%2e%2e/admin",
            "/a/%2E%2e/admin",
            "/a/.%2e/x",
        ] {
            check(
                "/x",
                joined(Some(t), 0, "/base"),
                Err(ProblemType::PathOutsideRoute),
            );
        }
        check(
            "/x",
            joined(Some("/a b"), 0, ""),
            Err(ProblemType::BadRequest),
        );
    }

    #[test]
    fn host_follows_preserve_then_rewrite_then_service() {
        let (c, r, s) = (
            HeaderValue::from_static("client.test"),
            HeaderValue::from_static("rewrite.test"),
            HeaderValue::from_static("svc.internal"),
        );
        assert_eq!(host(true, Some(&r), Some(&c), &s), c);
        assert_eq!(host(true, Some(&r), None, &s), s);
        assert_eq!(host(false, Some(&r), Some(&c), &s), r);
        assert_eq!(host(false, None, Some(&c), &s), s);
    }

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder()
            .uri("/p?q=1")
            .version(Version::HTTP_11);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_upstream_head_is_built_from_the_downstream_one() {
        let peer = PeerText::new("203.0.113.7".parse().unwrap(), 8080);
        let hop = Hop {
            peer: &peer,
            trusted: false,
            proto: "https",
            host: Some(HeaderValue::from_static("api.test")),
            client: Some("203.0.113.7".parse().unwrap()),
        };
        let rid = HeaderName::from_static("x-request-id");
        let out = Outbound {
            scheme: Scheme::HTTP,
            authority: Authority::from_static("10.0.0.1:9000"),
            path_and_query: PathAndQuery::from_static("/base/p?q=1"),
            host: HeaderValue::from_static("svc.internal"),
            hop: &hop,
            via: true,
            request_id: (&rid, "abc123"),
            version: Version::HTTP_2,
            upgrade: false,
        };
        // Hostile head: hop-by-hop fields and fields named by Connection,
        // a forged client address and path override, a forged request id
        // and Host, Expect, a smuggling Transfer-Encoding.
        let p = build(
            parts(&[
                ("host", "evil.test"),
                ("connection", "keep-alive, x-secret"),
                ("x-secret", "s"),
                ("keep-alive", "1"),
                ("proxy-authorization", "Basic eA=="),
                ("transfer-encoding", "chunked"),
                ("te", "trailers"),
                ("upgrade", "websocket"),
                ("expect", "100-continue"),
                ("x-forwarded-for", "6.6.6.6"),
                ("x-real-ip", "6.6.6.6"),
                ("x-original-url", "/admin"),
                ("x-request-id", "forged"),
                ("via", "1.1 edge"),
                ("x-kept", "yes"),
            ]),
            &out,
        )
        .unwrap();
        assert_eq!(p.uri, "http://10.0.0.1:9000/base/p?q=1");
        assert_eq!(p.version, Version::HTTP_2);
        let h = &p.headers;
        assert_eq!(h["host"], "svc.internal");
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "proxy-authorization",
            "transfer-encoding",
            "upgrade",
            "expect",
            "x-original-url",
        ] {
            assert!(!h.contains_key(gone), "{gone} kept");
        }
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["x-forwarded-for"], "203.0.113.7");
        assert_eq!(h["x-real-ip"], "203.0.113.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "api.test");
        assert_eq!(h["x-request-id"], "abc123");
        assert_eq!(h["via"], "1.1 edge, 1.1 gatehouse");
        assert_eq!(h["x-kept"], "yes");

        // An upgrade keeps Upgrade and `Connection: upgrade`, nothing else.
        let up = Outbound {
            upgrade: true,
            via: false,
            ..out
        };
        let p = build(
            parts(&[
                ("connection", "Upgrade, x-secret"),
                ("upgrade", "websocket"),
                ("x-secret", "s"),
            ]),
            &up,
        )
        .unwrap();
        assert_eq!(p.headers["upgrade"], "websocket");
        assert_eq!(p.headers["connection"], "upgrade");
        assert!(!p.headers.contains_key("x-secret"));
        assert!(!p.headers.contains_key("via"));
    }

    #[test]
    fn framing_follows_the_body_left_by_plugins() {
        fn check(cl: Option<&str>, body: Body, expect: Option<&str>) {
            let mut req = http::Request::new(body);
            req.headers_mut()
                .insert("transfer-encoding", HeaderValue::from_static("chunked"));
            if let Some(cl) = cl {
                req.headers_mut()
                    .insert("content-length", HeaderValue::from_str(cl).unwrap());
            }
            reframe(&mut req, true);
            assert!(!req.headers().contains_key("transfer-encoding"));
            assert_eq!(
                req.headers()
                    .get("content-length")
                    .map(|v| v.to_str().unwrap()),
                expect,
                "{cl:?}"
            );
        }
        use gatehouse_core::body;
        // Replaced with a longer or shorter body: the length follows.
        check(Some("3"), body::full("hello world"), Some("11"));
        check(Some("999"), body::full(""), Some("0"));
        // A bodyless request gets no Content-Length it did not have.
        check(None, body::empty(), None);
        // A stream of unknown length loses a stale Content-Length.
        let stream = body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            [Ok::<_, std::convert::Infallible>(http_body::Frame::data(
                bytes::Bytes::from_static(b"x"),
            ))],
        )));
        check(Some("1"), stream, None);
    }
}
