//! Hostile path spellings and host forms against route protections
//! (issue 8, findings 1 and 2): `/admin/*` is protected by `ip-restriction`
//! (one gateway) or `key-auth` (another), a `/*` catch-all serves the rest,
//! and the upstream is a normalising server written for the test
//! (`gatehouse_testkit::normalize`: decodes every escape, `\` as `/`, drops
//! `;params`, merges slashes, removes dot segments) that reports what it
//! would serve. For every case: the answer is the expected one, and the
//! upstream never serves `/admin...` to an unauthorised request. Sent as
//! raw HTTP/1.1 bytes and, where the spelling is a valid URI, over h2c.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{TestGateway, empty, req, send_with};
use gatehouse_testkit::normalize::served_path;
use gatehouse_testkit::{Upstream, raw};

const KEY: &str = "alice-key-123";

/// What a case must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 400 problem+json with this slug.
    Refused(&'static str),
    /// The route protection answered: 403 `ip-forbidden` or 401
    /// `unauthorized`.
    Protected,
    /// 404 `no-route`.
    NoRoute,
    /// 200 from the upstream, which served this path.
    Serves(&'static str),
}

enum Protection {
    Ip,
    Key,
}

fn config(up: &Upstream, protection: &Protection, listener: &str) -> String {
    let plugin = match protection {
        Protection::Ip => {
            "      - name: ip-restriction\n        config:\n          deny: [\"127.0.0.1\"]\n"
        }
        Protection::Key => "      - name: key-auth\n",
    };
    format!(
        r#"{listener}services:
  - name: app
    url: "{url}"
  - name: based
    url: "{url}/public"
consumers:
  - username: alice
    credentials:
      key_auth:
        - key: {KEY}
routes:
  - name: admin
    service: app
    paths: ["/admin", "/admin/*"]
    plugins:
{plugin}  - name: internal
    service: app
    hosts: ["internal.example"]
    paths: ["/*"]
    preserve_host: true
    plugins:
{plugin}  - name: public
    service: app
    hosts: ["public.example"]
    paths: ["/*"]
    preserve_host: true
  - name: svc
    service: based
    paths: ["/svc/*"]
    strip_prefix: true
  - name: files
    service: app
    paths: ["/files/{{name}}"]
    rewrite: "/public/{{name}}"
  - name: all
    service: app
    paths: ["/*"]
    preserve_host: true
"#,
        url = up.url()
    )
}

struct Got {
    status: u16,
    slug: Option<String>,
    served: Option<String>,
}

fn slug_of(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("urn:gatehouse:problem:"))
        .map(str::to_owned)
}

/// Asserts `got` for case `case`, and that the upstream did not serve a
/// protected path to it (unless `authorised`).
fn check(case: &str, up: &Upstream, hits_before: usize, got: &Got, expect: Expect) {
    let ok = match expect {
        Expect::Refused(slug) => got.status == 400 && got.slug.as_deref() == Some(slug),
        Expect::Protected => {
            matches!(
                (got.status, got.slug.as_deref()),
                (403, Some("ip-forbidden")) | (401, Some("unauthorized"))
            )
        }
        Expect::NoRoute => got.status == 404 && got.slug.as_deref() == Some("no-route"),
        Expect::Serves(path) => got.status == 200 && got.served.as_deref() == Some(path),
    };
    assert!(
        ok,
        "case {case}: expected {expect:?}, got {} {:?} served {:?}",
        got.status, got.slug, got.served
    );
    if !matches!(expect, Expect::Serves(_)) {
        assert_eq!(up.hits(), hits_before, "case {case}: reached the upstream");
    }
    if let Some(last) = up.last_request().filter(|_| up.hits() > hits_before) {
        let served = served_path(last.uri.path());
        assert!(
            !served.starts_with("/admin"),
            "case {case}: the upstream served {served} (sent {})",
            last.uri
        );
    }
}

async fn h1(gw: &TestGateway, target: &str, headers: &str) -> Got {
    let bytes = format!("GET {target} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n");
    let resp = raw::send(gw.addr(), bytes.as_bytes()).await.unwrap();
    let first = resp.first().unwrap_or_else(|| {
        panic!("no response to {target:?}: {:?}", resp.text());
    });
    Got {
        status: first.status,
        slug: slug_of(&first.body_text()),
        served: first.header("x-served").map(str::to_owned),
    }
}

async fn h2(uri: &str, headers: &[(&str, &str)]) -> Option<Got> {
    let uri: http::Uri = uri.parse().ok()?;
    let mut b = req("GET", &uri.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let client = gatehouse_testkit::h2c_client();
    let r = send_with(&client, empty(b)).await;
    Some(Got {
        status: r.status,
        slug: slug_of(&r.text()),
        served: r
            .headers
            .get("x-served")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
    })
}

/// The path table: (path, expectation without a key, with a key).
fn path_cases() -> Vec<(&'static str, Expect)> {
    use Expect::*;
    vec![
        // Legitimate spellings keep working.
        ("/public/x", Serves("/public/x")),
        ("/public/a/b/", Serves("/public/a/b/")),
        ("/public/x?q=../admin", Serves("/public/x")),
        ("/%70ublic/x", Serves("/public/x")),
        ("/public/%C3%BC", Serves("/public/ü")),
        // Spellings of /admin: routed to the protected route or refused.
        ("/admin/secret", Protected),
        ("/admin", Protected),
        ("/public/../admin/secret", Protected),
        ("//admin/secret", Protected),
        ("///admin//secret", Protected),
        ("/%61dmin/secret", Protected),
        ("/%2e%2e/admin", Refused("bad-path")),
        ("/public/%2e%2e/admin", Protected),
        ("/public/%2E%2E/admin/secret", Protected),
        ("/./admin", Protected),
        ("/public/./../admin/", Protected),
        ("/admin%2fsecret", Refused("bad-path")),
        ("/admin%2Fsecret", Refused("bad-path")),
        ("/admin%5Csecret", Refused("bad-path")),
        ("/admin\\secret", Refused("bad-path")),
        ("/public/..%2fadmin", Refused("bad-path")),
        ("/public/..%5cadmin", Refused("bad-path")),
        ("/admin;x/secret", Refused("bad-path")),
        ("/public/..;/admin/secret", Refused("bad-path")),
        ("/public/.;/admin", Refused("bad-path")),
        // Paths are case-sensitive: /ADMIN is another resource (the
        // normalising upstream, like nginx, is case-sensitive too).
        ("/ADMIN/secret", Serves("/ADMIN/secret")),
        // Double encoding is decoded once: %25 stays an escape.
        ("/%2561dmin/secret", Serves("/%61dmin/secret")),
        ("/%252e%252e/admin", Serves("/%2e%2e/admin")),
        // Overlong UTF-8 for '.' and '/', NUL, controls, bad escapes.
        ("/public/%c0%ae%c0%ae/admin", Refused("bad-path")),
        ("/public/%c0%af..%c0%afadmin", Refused("bad-path")),
        ("/public/%e0%80%ae%e0%80%ae/admin", Refused("bad-path")),
        ("/admin%00/secret", Refused("bad-path")),
        ("/public/%00/../admin", Refused("bad-path")),
        ("/public/%0a", Refused("bad-path")),
        ("/public/%zz", Refused("bad-path")),
        ("/public/%4", Refused("bad-path")),
        ("/..", Refused("bad-path")),
        ("/public/../../admin", Refused("bad-path")),
        // strip_prefix with a service base path (/public): no climbing.
        ("/svc/x", Serves("/public/x")),
        ("/svc/../admin/secret", Protected),
        ("/svc/%2e%2e/admin/secret", Protected),
        ("/svc/..%2f..%2fadmin", Refused("bad-path")),
        ("/svc/..;/admin", Refused("bad-path")),
        // rewrite captures: `/files/{name}` → `/public/{name}`.
        ("/files/a", Serves("/public/a")),
        ("/files/..", Serves("/")),
        ("/files/%2e%2e/admin", Protected),
        ("/files/..%2Fadmin", Refused("bad-path")),
    ]
}

async fn run_paths(protection: Protection) {
    let up = Upstream::builder().normalizing().start().await;
    let gw = TestGateway::start(&config(&up, &protection, "")).await;
    for (path, expect) in path_cases() {
        let before = up.hits();
        let got = h1(&gw, path, "Host: gw.test\r\n").await;
        check(&format!("h1 {path}"), &up, before, &got, expect);
        let before = up.hits();
        if let Some(got) = h2(&gw.url(path), &[]).await {
            check(&format!("h2c {path}"), &up, before, &got, expect);
        }
    }
    // An authorised client reaches /admin under every accepted spelling.
    if let Protection::Key = protection {
        for path in [
            "/admin/secret",
            "/public/../admin/secret",
            "//%61dmin/secret",
        ] {
            let got = h1(&gw, path, &format!("Host: gw.test\r\napikey: {KEY}\r\n")).await;
            assert_eq!(got.status, 200, "authorised {path}");
            assert_eq!(got.served.as_deref(), Some("/admin/secret"), "{path}");
        }
    }
}

#[tokio::test]
async fn path_spellings_cannot_skip_ip_restriction() {
    run_paths(Protection::Ip).await;
}

#[tokio::test]
async fn path_spellings_cannot_skip_key_auth() {
    run_paths(Protection::Key).await;
}

/// `escaped_slashes: keep` forwards `%2F` as an opaque character but
/// still refuses a dot segment hidden between encoded slashes, which a
/// decoding upstream would climb with; a rewrite capture holding `%2F`
/// stays inside the base.
#[tokio::test]
async fn kept_escaped_slashes_cannot_climb() {
    let up = Upstream::builder().normalizing().start().await;
    let listener =
        "listeners:\n  - address: \"127.0.0.1:0\"\n    paths:\n      escaped_slashes: keep\n";
    let gw = TestGateway::start(&config(&up, &Protection::Ip, listener)).await;
    use Expect::*;
    for (path, expect) in [
        ("/files/a%2fb", Serves("/public/a/b")),
        ("/files/..%2Fadmin", Refused("bad-path")),
        ("/svc/..%2F..%2Fadmin", Refused("bad-path")),
        ("/public/..%5Cadmin", Refused("bad-path")),
        ("/public/x\\..\\..\\admin", Refused("bad-path")),
    ] {
        let before = up.hits();
        let got = h1(&gw, path, "Host: gw.test\r\n").await;
        check(&format!("keep {path}"), &up, before, &got, expect);
    }
}

/// The effective host: the absolute-form authority wins over Host, and
/// that one host is what routing, the upstream Host (`preserve_host`),
/// X-Forwarded-Host and Forwarded carry. Non-`host[:port]` values are
/// refused.
#[tokio::test]
async fn host_forms_over_http1() {
    let up = Upstream::builder().normalizing().start().await;
    let gw = TestGateway::start(&config(&up, &Protection::Ip, "")).await;
    use Expect::*;
    let cases: &[(&str, &str, &str, Expect, Option<&str>)] = &[
        // (case, target, headers, expect, upstream Host when served)
        (
            "plain",
            "/x",
            "Host: public.example\r\n",
            Serves("/x"),
            Some("public.example"),
        ),
        (
            "internal",
            "/x",
            "Host: internal.example\r\n",
            Protected,
            None,
        ),
        (
            "upper and dot",
            "/x",
            "Host: INTERNAL.EXAMPLE.\r\n",
            Protected,
            None,
        ),
        (
            "dot with port",
            "/x",
            "Host: internal.example.:80\r\n",
            Protected,
            None,
        ),
        (
            "absolute-form wins",
            "http://public.example/x",
            "Host: internal.example\r\n",
            Serves("/x"),
            Some("public.example"),
        ),
        (
            "absolute-form internal",
            "http://internal.example/x",
            "Host: public.example\r\n",
            Protected,
            None,
        ),
        (
            "absolute-form upper",
            "http://Internal.Example./x",
            "Host: public.example\r\n",
            Protected,
            None,
        ),
        (
            "bad port",
            "/x",
            "Host: internal.example:x\r\n",
            Refused("bad-host"),
            None,
        ),
        (
            "empty port",
            "/x",
            "Host: internal.example:\r\n",
            Refused("bad-host"),
            None,
        ),
        (
            "big port",
            "/x",
            "Host: internal.example:65536\r\n",
            Refused("bad-host"),
            None,
        ),
        (
            "userinfo",
            "/x",
            "Host: public.example@internal.example\r\n",
            Refused("bad-host"),
            None,
        ),
        (
            "two hosts in one",
            "/x",
            "Host: public.example, internal.example\r\n",
            Refused("bad-host"),
            None,
        ),
        (
            "space",
            "/x",
            "Host: public .example\r\n",
            Refused("bad-host"),
            None,
        ),
        (
            "escape",
            "/x",
            "Host: internal%2eexample\r\n",
            Refused("bad-host"),
            None,
        ),
        (
            "two Host fields",
            "/x",
            "Host: public.example\r\nHost: internal.example\r\n",
            Refused("bad-request"),
            None,
        ),
        (
            "absolute-form userinfo",
            "http://public.example@internal.example/x",
            "Host: public.example\r\n",
            Refused("bad-host"),
            None,
        ),
        (
            "ipv6",
            "/x",
            "Host: [::1]:8080\r\n",
            Serves("/x"),
            Some("[::1]:8080"),
        ),
        (
            "bad ipv6",
            "/x",
            "Host: [::zz]\r\n",
            Refused("bad-host"),
            None,
        ),
    ];
    for (case, target, headers, expect, host) in cases {
        let before = up.hits();
        let got = h1(&gw, target, headers).await;
        check(case, &up, before, &got, *expect);
        if let Some(host) = host {
            let last = up.last_request().unwrap();
            assert_eq!(last.header("host"), Some(*host), "case {case}: Host");
            assert_eq!(
                last.header("x-forwarded-host"),
                Some(*host),
                "case {case}: X-Forwarded-Host"
            );
            let fwd = last.header("forwarded").unwrap_or_default();
            assert!(
                fwd.contains(&format!("host=\"{host}\"")),
                "case {case}: Forwarded {fwd}"
            );
        }
    }
}

/// HTTP/2: `:authority` is the host; a `host` field that disagrees is
/// refused, one that agrees (in another spelling) is fine.
#[tokio::test]
async fn host_forms_over_h2c() {
    let up = Upstream::builder().normalizing().start().await;
    let gw = TestGateway::start(&config(&up, &Protection::Ip, "")).await;
    let port = gw.addr().port();
    use Expect::*;
    let public = format!("http://public.example:{port}/x");
    let internal = format!("http://INTERNAL.example.:{port}/x");
    let internal_host = format!("internal.example:{port}");
    let public_host = format!("public.example:{port}");
    let cases: Vec<H2Case<'_>> = vec![
        ("authority only", &public, vec![], Serves("/x")),
        ("authority internal", &internal, vec![], Protected),
        (
            "host disagrees",
            &public,
            vec![("host", &internal_host)],
            Refused("bad-host"),
        ),
        (
            "host agrees",
            &public,
            vec![("host", &public_host)],
            Serves("/x"),
        ),
    ];
    // The h2c client connects to the authority: point it at the gateway.
    for (case, uri, headers, expect) in cases {
        let before = up.hits();
        let got = h2_to(&gw, uri, &headers).await;
        check(case, &up, before, &got, expect);
        if let Serves(_) = expect {
            let last = up.last_request().unwrap();
            assert_eq!(
                last.header("x-forwarded-host"),
                Some(public_host.as_str()),
                "{case}"
            );
        }
    }
}

/// (case, URI with the `:authority`, extra headers, expectation).
type H2Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Expect);

/// Sends an h2c request whose `:authority` is taken from `uri` over a
/// connection to the gateway.
async fn h2_to(gw: &TestGateway, uri: &str, headers: &[(&str, &str)]) -> Got {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut b = http::Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = sender
        .send_request(
            b.body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let served = resp
        .headers()
        .get("x-served")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        slug: slug_of(&String::from_utf8_lossy(&body)),
        served,
    }
}

/// A rewrite template that would climb out of the service base path is
/// refused per request with `path-outside-route`, and nothing is sent.
#[tokio::test]
async fn rewrite_leaving_the_base_is_refused() {
    let up = Upstream::builder().normalizing().start().await;
    let yaml = format!(
        r#"services:
  - name: based
    url: "{url}/public"
routes:
  - name: climb
    service: based
    paths: ["/climb/{{name}}"]
    rewrite: "/{{name}}/../../admin"
  - name: fine
    service: based
    paths: ["/fine/{{name}}"]
    rewrite: "/v2/{{name}}"
"#,
        url = up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    use Expect::*;
    for (path, expect) in [
        ("/climb/x", Refused("path-outside-route")),
        ("/fine/x", Serves("/public/v2/x")),
        ("/fine/..", NoRoute),
        ("/fine/%2e%2e/..", Refused("bad-path")),
    ] {
        let before = up.hits();
        let got = h1(&gw, path, "Host: gw.test\r\n").await;
        check(path, &up, before, &got, expect);
    }
}

/// Method and query spellings (attack on issue 8's fixes): a route that
/// lists its methods, or selects by query parameter, cannot be skipped for
/// a less specific route by another spelling the upstream reads the same
/// way. `get` (Werkzeug upper-cases methods) is refused; `HEAD` matches a
/// `GET` route (nginx and most frameworks run HEAD as GET); `?%61dmin=%31`
/// is `admin=1` for routing as it is for the upstream; a rewrite capture in
/// the template's query part cannot add parameters.
#[tokio::test]
async fn method_and_query_spellings_cannot_skip_a_protected_route() {
    let up = Upstream::builder().normalizing().start().await;
    let yaml = format!(
        r#"services:
  - name: app
    url: "{url}"
routes:
  - name: admin
    service: app
    paths: ["/admin/*"]
    methods: [GET, POST]
    plugins:
      - name: ip-restriction
        config:
          deny: ["127.0.0.1"]
  - name: by-query
    service: app
    paths: ["/q"]
    query:
      admin: "1"
    plugins:
      - name: ip-restriction
        config:
          deny: ["127.0.0.1"]
  - name: search
    service: app
    paths: ["/search/{{term}}"]
    rewrite: "/public/s?q={{term}}"
  - name: all
    service: app
    paths: ["/*"]
"#,
        url = up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    // (method, target, expected status; 0: reaches the upstream)
    let cases: &[(&str, &str, u16)] = &[
        ("GET", "/admin/secret", 403),
        ("get", "/admin/secret", 400),
        ("Get", "/admin/secret", 400),
        ("gEt", "/public/x", 400),
        ("HEAD", "/admin/secret", 403),
        ("GET", "/public/x", 0),
        ("HEAD", "/public/x", 0),
        ("GET", "/q?admin=1", 403),
        ("GET", "/q?%61dmin=1", 403),
        ("GET", "/q?admin=%31", 403),
        ("GET", "/q?x=0&ad%6Din=%31", 403),
        ("GET", "/q?admin=0", 0),
        ("GET", "/q?admin=1+", 0),
    ];
    for (method, target, expect) in cases {
        let before = up.hits();
        let bytes =
            format!("{method} {target} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n");
        let resp = raw::send(gw.addr(), bytes.as_bytes()).await.unwrap();
        let status = resp.statuses().first().copied().unwrap_or(0);
        if *expect == 0 {
            assert_eq!(status, 200, "{method} {target}");
            assert_eq!(up.hits(), before + 1, "{method} {target}");
        } else {
            assert_eq!(status, *expect, "{method} {target}");
            assert_eq!(up.hits(), before, "{method} {target}: reached the upstream");
        }
    }
    // The same over h2c: the method is not re-cased on the way.
    let client = gatehouse_testkit::h2c_client();
    let before = up.hits();
    let r = send_with(&client, empty(req("get", &gw.url("/admin/secret")))).await;
    assert_eq!(r.status, 400, "h2c get");
    assert_eq!(up.hits(), before, "h2c get reached the upstream");
    // A capture in the template's query part stays one value.
    let got = h1(&gw, "/search/a&admin=1", "Host: gw.test\r\n").await;
    assert_eq!(got.status, 200);
    let last = up.last_request().unwrap();
    assert_eq!(
        last.uri.query(),
        Some("q=a%26admin%3D1"),
        "upstream query {:?}",
        last.uri
    );
}

/// Method overrides: a field or `_method` parameter that asks the upstream
/// for another method than the routed one is refused, so `PUT` plus
/// `X-HTTP-Method-Override: GET` cannot skip a GET-only protected route for
/// the catch-all and be served as GET by an upstream that honours it.
#[tokio::test]
async fn method_overrides_cannot_skip_a_protected_route() {
    let up = Upstream::builder().normalizing().start().await;
    let yaml = format!(
        r#"services:
  - name: app
    url: "{url}"
routes:
  - name: admin
    service: app
    paths: ["/admin/*"]
    methods: [GET]
    plugins:
      - name: ip-restriction
        config:
          deny: ["127.0.0.1"]
  - name: all
    service: app
    paths: ["/*"]
"#,
        url = up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    // (method, target, extra headers, expected status; 0: reaches the upstream)
    let cases: &[(&str, &str, &str, u16)] = &[
        ("PUT", "/admin/x", "", 0),
        ("PUT", "/admin/x", "X-HTTP-Method-Override: GET\r\n", 400),
        ("PUT", "/admin/x", "x-http-method: GET\r\n", 400),
        ("POST", "/admin/x", "X-Method-Override: get\r\n", 400),
        ("POST", "/admin/x?_method=GET", "", 400),
        ("POST", "/admin/x?_m%65thod=GET", "", 400),
        // A second value of the field asks for another method.
        (
            "PUT",
            "/admin/x",
            "X-HTTP-Method-Override: PUT\r\nX-HTTP-Method-Override: GET\r\n",
            400,
        ),
        // Late among other fields, in mixed case.
        (
            "PUT",
            "/admin/x",
            "A: 1\r\nB: 2\r\nAccept: */*\r\nx-HTTP-METHOD-override: GET\r\n",
            400,
        ),
        ("PUT", "/public/x", "X-HTTP-Method-Override: PUT\r\n", 0),
        ("PUT", "/public/x", "X-HTTP-Method-Override:  put \r\n", 0),
        ("POST", "/public/x?_method=POST", "", 0),
    ];
    for (method, target, headers, expect) in cases {
        let before = up.hits();
        let bytes = format!(
            "{method} {target} HTTP/1.1\r\nHost: gw.test\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let resp = raw::send(gw.addr(), bytes.as_bytes()).await.unwrap();
        let first = resp.first().unwrap();
        if *expect == 0 {
            assert_eq!(first.status, 200, "{method} {target} {headers:?}");
            assert_eq!(up.hits(), before + 1, "{method} {target} {headers:?}");
        } else {
            assert_eq!(first.status, *expect, "{method} {target} {headers:?}");
            assert_eq!(
                slug_of(&first.body_text()).as_deref(),
                Some("bad-request"),
                "{method} {target}"
            );
            assert_eq!(up.hits(), before, "{method} {target}: reached the upstream");
        }
    }
}
