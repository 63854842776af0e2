//! Malformed and hostile downstream input, sent through the real gateway to
//! a real echo upstream: request smuggling, header limits, Host rules,
//! hop-by-hop and forwarding headers, request ids, garbage request lines,
//! slow-loris and odd paths. Each test checks what a client sees and
//! whether the upstream received anything.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::{Resp, TestGateway, empty, get, req, send};
use gatehouse_testkit::Upstream;
use gatehouse_testkit::raw::{self, Conn, End, ParsedResponse, RawResponse};
use http::{HeaderName, HeaderValue};

/// One service `echo` and one catch-all route to it; `server` holds extra
/// lines of the `server:` block, each indented by two spaces.
fn config(up: &Upstream, server: &str) -> String {
    format!(
        "server:\n  shutdown_timeout: 1s\n{server}services:\n  - name: echo\n    url: \"{url}\"\nroutes:\n  - name: all\n    service: echo\n",
        url = up.url()
    )
}

async fn start(server: &str) -> (Upstream, TestGateway) {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config(&up, server)).await;
    (up, gw)
}

/// A raw response as a [`Resp`], so `assert_problem` works on it.
fn resp_of(p: &ParsedResponse) -> Resp {
    let mut headers = http::HeaderMap::new();
    for (k, v) in &p.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(k, v);
        }
    }
    Resp {
        status: p.status,
        headers,
        body: bytes::Bytes::from(p.body.clone()),
    }
}

/// The connection ended with `status` as its only response, or was closed
/// without one; either way it did not stay open for more requests.
fn assert_rejected_and_closed(what: &str, raw: &RawResponse, status: u16) {
    assert_ne!(
        raw.end,
        End::TimedOut,
        "{what}: the connection must be closed; got {:?}",
        raw.text()
    );
    assert!(
        raw.responses.len() <= 1,
        "{what}: more than one response: {:?}",
        raw.text()
    );
    if let Some(r) = raw.first() {
        assert_eq!(r.status, status, "{what}: {:?}", raw.text());
    }
}

/// hyper's own answer to a head it cannot parse: a bodiless 400 with
/// `connection: close`, then the connection closes.
fn assert_bare_400(what: &str, raw: &RawResponse) {
    assert_eq!(raw.statuses(), [400], "{what}: {:?}", raw.text());
    let r = &raw.responses[0];
    assert!(r.body.is_empty(), "{what}: {:?}", raw.text());
    assert_eq!(r.header("connection"), Some("close"), "{what}");
    assert_ne!(raw.end, End::TimedOut, "{what}: connection left open");
}

/// No request for a path containing `smuggled` ever reached the upstream.
fn assert_nothing_smuggled(up: &Upstream) {
    for r in up.requests() {
        assert!(
            !r.uri.path().contains("smuggled"),
            "a smuggled request reached the upstream: {} {}",
            r.method,
            r.uri
        );
    }
}

/// A normal request still gets through.
async fn assert_healthy(gw: &TestGateway) {
    let r = get(&gw.url("/still-alive")).await;
    assert_eq!(r.status, 200, "gateway unhealthy afterwards: {}", r.text());
    assert_eq!(r.json()["path"], "/still-alive");
}

fn echo_json(p: &ParsedResponse) -> serde_json::Value {
    serde_json::from_slice(&p.body)
        .unwrap_or_else(|e| panic!("not the echo JSON ({e}): {}", p.body_text()))
}

// ---------------------------------------------------------------------------
// Request smuggling and framing
// ---------------------------------------------------------------------------

/// Heads whose framing is ambiguous or invalid. All are rejected by hyper's
/// HTTP/1 parser (`proto::h1::role::Server::parse`, via httparse) before the
/// gateway's handler runs: hyper writes a bare `400 Bad Request` without a
/// body and closes the connection.
const BAD_FRAMING: &[(&str, &str)] = &[
    (
        // hyper: differing Content-Length values -> content_length_invalid.
        "two conflicting Content-Length fields",
        "POST /smuggled HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ),
    (
        // hyper: content_length_parse rejects a list of differing values.
        "Content-Length: 5, 6",
        "POST /smuggled HTTP/1.1\r\nHost: gw\r\nContent-Length: 5, 6\r\n\r\nhello!",
    ),
    (
        // hyper: only digits are a length.
        "Content-Length: +5",
        "POST /smuggled HTTP/1.1\r\nHost: gw\r\nContent-Length: +5\r\n\r\nhello",
    ),
    (
        "Content-Length: -1",
        "POST /smuggled HTTP/1.1\r\nHost: gw\r\nContent-Length: -1\r\n\r\nhello",
    ),
    (
        // hyper: chunked must be the final coding of a request.
        "Transfer-Encoding: chunked, identity",
        "POST /smuggled HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    ),
    (
        // hyper: `xchunked` is not `chunked`, and nothing else is allowed.
        "Transfer-Encoding: xchunked",
        "POST /smuggled HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        // hyper: the last Transfer-Encoding field decides; it is not chunked.
        "Transfer-Encoding: chunked then Transfer-Encoding: identity",
        "POST /smuggled HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    ),
    (
        // httparse: whitespace between field name and colon is invalid
        // (RFC 9112 section 5.1).
        "Transfer-Encoding : chunked",
        "POST /smuggled HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        // httparse: a vertical tab is not a field-value character.
        "Transfer-Encoding:<VT>chunked",
        "POST /smuggled HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        // httparse: obs-fold (a line starting with whitespace) is refused in
        // requests, so the hidden field cannot be folded into Host.
        "obs-fold continuation line",
        "POST /smuggled HTTP/1.1\r\nHost: gw\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
    ),
    (
        // hyper: HTTP/1.0 cannot carry Transfer-Encoding.
        "Transfer-Encoding on HTTP/1.0",
        "POST /smuggled HTTP/1.0\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
];

#[tokio::test]
async fn ambiguous_framing_is_a_bare_400_and_nothing_reaches_the_upstream() {
    let (up, gw) = start("").await;
    for (what, head) in BAD_FRAMING {
        let raw = raw::send(gw.addr(), head.as_bytes()).await.unwrap();
        assert_bare_400(what, &raw);
    }
    assert_eq!(up.hits(), 0, "the upstream received {:?}", up.requests());
    assert_healthy(&gw).await;
    assert_nothing_smuggled(&up);
}

/// Bodies whose chunked framing breaks after the head was accepted. hyper's
/// chunked decoder fails the request body stream; the gateway's upstream
/// send fails with a body error, which `handler::forward_upstream` answers
/// as a 400 `bad-request` problem (or the connection just closes). The
/// upstream may have seen the head, but never a second request.
const BAD_CHUNKS: &[(&str, &str)] = &[
    (
        "invalid chunk size `zz`",
        "POST /chunks HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n",
    ),
    (
        "chunk size overflow",
        "POST /chunks HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n",
    ),
    (
        "chunk data not followed by CRLF",
        "POST /chunks HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloGET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n0\r\n\r\n",
    ),
];

#[tokio::test]
async fn broken_chunked_bodies_end_in_400_and_nothing_is_smuggled() {
    let (up, gw) = start("").await;
    for (what, request) in BAD_CHUNKS {
        let before = up.hits();
        let raw = raw::send(gw.addr(), request.as_bytes()).await.unwrap();
        assert_rejected_and_closed(what, &raw, 400);
        let r = raw
            .first()
            .unwrap_or_else(|| panic!("{what}: closed without an answer"));
        resp_of(r).assert_problem(400, "bad-request");
        assert!(up.hits() - before <= 1, "{what}: {:?}", up.requests());
    }
    assert_nothing_smuggled(&up);
    assert_healthy(&gw).await;
}

#[tokio::test]
async fn chunked_body_cut_before_the_final_crlf_ends_in_400_or_close() {
    let (up, gw) = start("").await;
    let mut conn = Conn::connect(gw.addr()).await.unwrap();
    // The last-chunk line arrives, but the CRLF that ends the (empty)
    // trailer section never does: the client half-closes instead.
    conn.write(b"POST /chunks HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")
        .await
        .unwrap();
    conn.shutdown_write().await.unwrap();
    let raw = conn.read_to_end().await.unwrap();
    assert_rejected_and_closed("missing final CRLF", &raw, 400);
    let r = raw.first().expect("an answer before the close");
    resp_of(r).assert_problem(400, "bad-request");
    assert!(up.hits() <= 1, "{:?}", up.requests());
    assert_healthy(&gw).await;
}

/// RFC 9112 section 6.3 lets an intermediary read a request with both
/// Transfer-Encoding and Content-Length as chunked, and hyper does; the
/// gateway refuses it instead, like nginx: a front end that trusted the
/// length would disagree about where the next request starts.
/// `framing::FramingGuard` poisons such a head before hyper parses it, so
/// hyper answers its bare 400 and closes, whatever the values.
const CL_WITH_TE: &[(&str, &str)] = &[
    (
        "CL before TE",
        "POST /cl-te HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "TE before CL",
        "POST /cl-te HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "TE chunked with Content-Length: 0",
        "POST /cl-te HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "bare LF line ends",
        "POST /cl-te HTTP/1.1\nHost: gw\nContent-Length: 5\nTransfer-Encoding: gzip, chunked\n\n0\r\n\r\n",
    ),
];

#[tokio::test]
async fn content_length_with_transfer_encoding_is_a_bare_400() {
    let (up, gw) = start("").await;
    for (what, request) in CL_WITH_TE {
        let raw = raw::send(gw.addr(), request.as_bytes()).await.unwrap();
        assert_bare_400(what, &raw);
    }
    assert_eq!(up.hits(), 0, "the upstream received {:?}", up.requests());
    assert_healthy(&gw).await;
}

/// A valid request first, then one with both fields on the same
/// connection: the first is served, the second refused.
#[tokio::test]
async fn content_length_with_transfer_encoding_in_a_pipelined_request_is_a_400() {
    let (up, gw) = start("").await;
    let request = "POST /first HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
POST /smuggled HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let raw = raw::send(gw.addr(), request.as_bytes()).await.unwrap();
    assert_eq!(raw.statuses(), [200, 400], "{}", raw.text());
    let first = echo_json(&raw.responses[0]);
    assert_eq!(first["path"], "/first");
    assert_eq!(first["body_len"], 5);
    let second = &raw.responses[1];
    assert!(second.body.is_empty(), "{}", raw.text());
    assert_eq!(second.header("connection"), Some("close"));
    assert_ne!(raw.end, End::TimedOut, "connection left open");
    assert_eq!(up.hits(), 1, "{:?}", up.requests());
    assert_nothing_smuggled(&up);
}

/// CL.TE: a front end that trusts Content-Length would forward the whole
/// thing as one body, and a chunked back end would see `GET /smuggled` as a
/// second request. The gateway refuses the head with a bare 400 and closes,
/// so neither request is served.
#[tokio::test]
async fn cl_te_smuggle_never_reaches_the_upstream() {
    let (up, gw) = start("").await;
    let body = "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n";
    let request = format!(
        "POST /cl-te HTTP/1.1\r\nHost: gw\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        body.len()
    );
    let raw = raw::send(gw.addr(), request.as_bytes()).await.unwrap();
    assert_bare_400("CL.TE", &raw);
    assert_eq!(up.hits(), 0, "{:?}", up.requests());
    assert_healthy(&gw).await;
    assert_eq!(up.hits(), 1);
    assert_nothing_smuggled(&up);
}

/// TE.CL: a length-trusting back end would read four bytes of the chunked
/// body and take the rest as `GET /smuggled`. The gateway refuses the head
/// with a bare 400 and closes, so nothing reaches the upstream.
#[tokio::test]
async fn te_cl_smuggle_never_reaches_the_upstream() {
    let (up, gw) = start("").await;
    let hidden = "GET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n";
    let request = format!(
        "POST /te-cl HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{hidden}\r\n0\r\n\r\n",
        hidden.len()
    );
    let raw = raw::send(gw.addr(), request.as_bytes()).await.unwrap();
    assert_bare_400("TE.CL", &raw);
    assert_eq!(up.hits(), 0, "{:?}", up.requests());
    assert_healthy(&gw).await;
    assert_eq!(up.hits(), 1);
    assert_nothing_smuggled(&up);
}

// ---------------------------------------------------------------------------
// Header limits
// ---------------------------------------------------------------------------

fn head_with_fields(fields: usize) -> String {
    let mut head = String::from("GET /fields HTTP/1.1\r\nHost: gw\r\n");
    for i in 1..fields {
        head.push_str(&format!("x-field-{i}: {i}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Counted by the handler (`serve`, "Header limits"): hyper's own limit is
/// set to at least 100 fields, so 21 fields reach the gateway, which answers
/// its own 431 problem.
#[tokio::test]
async fn more_header_fields_than_the_limit_is_431() {
    let (up, gw) = start("  max_header_count: 20\n").await;
    let mut conn = Conn::connect(gw.addr()).await.unwrap();
    conn.write(head_with_fields(20).as_bytes()).await.unwrap();
    let ok = conn.read_response().await.unwrap();
    assert_eq!(ok.status, 200, "20 fields are within the limit");
    assert_eq!(up.hits(), 1);

    conn.write(head_with_fields(21).as_bytes()).await.unwrap();
    let r = resp_of(&conn.read_response().await.unwrap());
    let doc = r.assert_problem(431, "headers-too-large");
    assert!(
        doc["detail"].as_str().unwrap().contains("21 header fields"),
        "{doc}"
    );
    assert_eq!(
        up.hits(),
        1,
        "the upstream must not see the rejected request"
    );
}

#[tokio::test]
async fn header_bytes_over_the_limit_is_431() {
    let (up, gw) = start("  max_header_bytes: 4096\n").await;
    let r = send(empty(
        req("GET", &gw.url("/big")).header("x-big", "a".repeat(5000)),
    ))
    .await;
    r.assert_problem(431, "headers-too-large");
    // Many small fields add up too.
    let mut b = req("GET", &gw.url("/many"));
    for i in 0..50 {
        b = b.header(format!("x-h-{i}"), "v".repeat(100));
    }
    send(empty(b))
        .await
        .assert_problem(431, "headers-too-large");
    assert_eq!(up.hits(), 0);
    assert_healthy(&gw).await;
}

/// A 1 MiB field is far above hyper's read buffer (`max_buf_size`, at least
/// 400 KiB in `server.rs`): hyper answers a bare 431 and closes, or the
/// connection is reset while the client is still writing. Nothing crashes.
#[tokio::test]
async fn a_one_mebibyte_header_is_431_or_closed_and_the_gateway_survives() {
    let (up, gw) = start("").await;
    let mut request = String::from("GET /huge HTTP/1.1\r\nHost: gw\r\nx-huge: ");
    request.push_str(&"a".repeat(1024 * 1024));
    request.push_str("\r\n\r\n");
    match raw::send(gw.addr(), request.as_bytes()).await {
        Ok(raw) => assert_rejected_and_closed("1 MiB header", &raw, 431),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            ),
            "{e}"
        ),
    }
    assert_eq!(up.hits(), 0);
    assert_healthy(&gw).await;
}

// ---------------------------------------------------------------------------
// Host
// ---------------------------------------------------------------------------

async fn one_response(gw: &TestGateway, request: &[u8]) -> ParsedResponse {
    let mut conn = Conn::connect(gw.addr()).await.unwrap();
    conn.write(request).await.unwrap();
    conn.read_response().await.unwrap()
}

#[tokio::test]
async fn http11_without_host_is_400() {
    let (up, gw) = start("").await;
    let r = resp_of(&one_response(&gw, b"GET /no-host HTTP/1.1\r\n\r\n").await);
    let doc = r.assert_problem(400, "bad-request");
    assert!(doc["detail"].as_str().unwrap().contains("Host"), "{doc}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn two_host_headers_are_400() {
    let (up, gw) = start("").await;
    let r = resp_of(
        &one_response(
            &gw,
            b"GET /two-hosts HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        )
        .await,
    );
    r.assert_problem(400, "bad-request");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn http10_without_host_is_served() {
    let (up, gw) = start("").await;
    let raw = raw::send(gw.addr(), b"GET /old HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw.statuses(), [200], "{}", raw.text());
    assert_eq!(echo_json(raw.first().unwrap())["path"], "/old");
    assert_eq!(up.hits(), 1);
}

// ---------------------------------------------------------------------------
// Hop-by-hop and forwarding headers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hop_by_hop_headers_do_not_reach_the_upstream() {
    let (up, gw) = start("").await;
    let raw = raw::send(
        gw.addr(),
        b"GET /hop HTTP/1.1\r\nHost: gw\r\nConnection: close, x-secret\r\nx-secret: 1\r\n\
Keep-Alive: timeout=5\r\nProxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\n\
TE: gzip\r\nUpgrade: h2c\r\nx-kept: yes\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(raw.statuses(), [200], "{}", raw.text());
    let seen = up.last_request().unwrap();
    for name in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "upgrade",
    ] {
        assert!(
            seen.headers.get(name).is_none(),
            "{name} reached the upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header("x-kept"), Some("yes"));
}

#[tokio::test]
async fn te_trailers_survives() {
    let (up, gw) = start("").await;
    let r = send(empty(
        req("GET", &gw.url("/grpc-ish")).header("te", "trailers"),
    ))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.last_request().unwrap().header("te"), Some("trailers"));
}

fn spoofed() -> http::request::Builder {
    http::Request::builder()
        .header("x-forwarded-for", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-port", "1")
}

#[tokio::test]
async fn spoofed_forwarding_headers_from_an_untrusted_peer_are_replaced() {
    let (up, gw) = start("").await;
    let host = gw.addr().to_string();
    let r = send(empty(spoofed().uri(gw.url("/fwd")))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("via"), Some("1.1 gatehouse"));
    let seen = up.last_request().unwrap();
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        seen.header("forwarded"),
        Some(format!("for=127.0.0.1;proto=http;host=\"{host}\"").as_str())
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some(host.as_str()));
    assert_eq!(
        seen.header("x-forwarded-port"),
        Some(gw.addr().port().to_string().as_str())
    );
    assert_eq!(seen.header("via"), Some("1.1 gatehouse"));
    assert_eq!(seen.headers.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(seen.headers.get_all("forwarded").iter().count(), 1);
}

#[tokio::test]
async fn a_trusted_proxy_gets_its_chain_extended() {
    let (up, gw) = start("  trusted_proxies: [\"127.0.0.1/32\"]\n").await;
    let host = gw.addr().to_string();
    let r = send(empty(spoofed().uri(gw.url("/fwd")))).await;
    assert_eq!(r.status, 200);
    let seen = up.last_request().unwrap();
    assert_eq!(seen.header("x-forwarded-for"), Some("6.6.6.6, 127.0.0.1"));
    assert_eq!(
        seen.header("forwarded"),
        Some(format!("for=6.6.6.6, for=127.0.0.1;proto=http;host=\"{host}\"").as_str())
    );
    // What the trusted proxy said about the original hop is kept.
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-host"), Some("evil.example"));
    assert_eq!(seen.header("x-forwarded-port"), Some("1"));
    assert_eq!(seen.header("via"), Some("1.1 gatehouse"));
}

#[tokio::test]
async fn via_false_adds_no_via() {
    let (up, gw) = start("  via: false\n").await;
    let r = get(&gw.url("/no-via")).await;
    assert_eq!(r.status, 200);
    assert!(r.header("via").is_none(), "{:?}", r.headers);
    assert!(up.last_request().unwrap().header("via").is_none());
}

// ---------------------------------------------------------------------------
// Request id
// ---------------------------------------------------------------------------

fn is_generated_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn a_client_request_id_is_kept_and_echoed() {
    let (up, gw) = start("").await;
    let r = send(empty(
        req("GET", &gw.url("/rid")).header("x-request-id", "abc-123"),
    ))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    assert_eq!(
        up.last_request().unwrap().header("x-request-id"),
        Some("abc-123")
    );
}

#[tokio::test]
async fn hostile_request_ids_are_replaced_with_generated_ones() {
    let (up, gw) = start("").await;
    let long = "a".repeat(300);
    let hostile: [&[u8]; 4] = [long.as_bytes(), b"abc 123", b"abc\t123", b"caf\xc3\xa9"];
    for value in hostile {
        let r = send(empty(
            req("GET", &gw.url("/rid"))
                .header("x-request-id", HeaderValue::from_bytes(value).unwrap()),
        ))
        .await;
        assert_eq!(r.status, 200);
        let id = r.header("x-request-id").unwrap().to_owned();
        let shown = String::from_utf8_lossy(value);
        assert!(is_generated_id(&id), "{shown:?} became {id:?}");
        assert_eq!(
            up.last_request().unwrap().header("x-request-id"),
            Some(id.as_str()),
            "{shown:?}"
        );
    }
}

#[tokio::test]
async fn a_control_character_in_a_request_id_is_a_bare_400() {
    // httparse refuses control characters in field values before the
    // handler sees them.
    let (up, gw) = start("").await;
    let raw = raw::send(
        gw.addr(),
        b"GET /rid HTTP/1.1\r\nHost: gw\r\nx-request-id: abc\x01def\r\n\r\n",
    )
    .await
    .unwrap();
    assert_bare_400("control character", &raw);
    assert_eq!(up.hits(), 0);
    assert_healthy(&gw).await;
}

// ---------------------------------------------------------------------------
// Garbage request lines
// ---------------------------------------------------------------------------

/// All rejected by httparse/hyper with a bare 400 before the handler runs.
const BAD_REQUEST_LINES: &[(&str, &[u8])] = &[
    (
        "invalid method token",
        b"G(T /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n",
    ),
    ("missing version", b"GET /smuggled\r\nHost: gw\r\n\r\n"),
    ("HTTP/0.9-style request", b"GET /smuggled\r\n\r\n"),
    (
        "unknown version",
        b"GET /smuggled HTTP/9.9\r\nHost: gw\r\n\r\n",
    ),
    (
        "space in target",
        b"GET /smug gled HTTP/1.1\r\nHost: gw\r\n\r\n",
    ),
    (
        "non-ASCII garbage",
        b"\xff\xfe\x00\x01garbage\x80\x81\r\n\r\n",
    ),
    ("bare LF only line", b"\n\n\n\x00\x00\x00\r\n\r\n"),
];

#[tokio::test]
async fn garbage_request_lines_get_a_bare_400_and_the_gateway_survives() {
    let (up, gw) = start("").await;
    for (what, bytes) in BAD_REQUEST_LINES {
        let raw = raw::send(gw.addr(), bytes).await.unwrap();
        assert_bare_400(what, &raw);
    }
    assert_eq!(up.hits(), 0, "{:?}", up.requests());
    assert_healthy(&gw).await;
}

/// An absolute-form target names the authority (RFC 9112 section 3.2.2):
/// the gateway routes on it like a Host header, but only ever sends the
/// request to the configured service, never to the named host.
#[tokio::test]
async fn absolute_form_targets_are_routed_by_the_gateway_not_proxied() {
    let up = Upstream::echo().await;
    let yaml = format!(
        "services:\n  - name: echo\n    url: \"{url}\"\nroutes:\n  - name: api\n    service: echo\n    hosts: [\"api.test\"]\n  - name: any\n    service: echo\n    paths: [\"/open/*\"]\n",
        url = up.url()
    );
    let gw = TestGateway::start(&yaml).await;

    // The named host has no route: 404, not a request to evil.example.
    let r = resp_of(
        &one_response(
            &gw,
            b"GET http://evil.example/private HTTP/1.1\r\nHost: api.test\r\n\r\n",
        )
        .await,
    );
    r.assert_problem(404, "no-route");
    assert_eq!(up.hits(), 0);

    // A route that accepts any host forwards to the configured upstream,
    // with its own Host, not evil.example.
    let p = one_response(
        &gw,
        b"GET http://evil.example/open/x HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body_text());
    let seen = up.last_request().unwrap();
    assert_eq!(seen.uri.path(), "/open/x");
    assert_eq!(seen.header("host"), Some(up.addr().to_string().as_str()));
    assert_eq!(seen.header("x-forwarded-host"), Some("evil.example"));

    // The authority in the target wins over the Host header.
    let p = one_response(
        &gw,
        b"GET http://api.test/anything HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body_text());
    assert_eq!(up.hits(), 2);
}

// ---------------------------------------------------------------------------
// Slow clients
// ---------------------------------------------------------------------------

const SLOW: &str = "  header_read_timeout: 300ms\n";

/// Waits for the gateway to close `conn`; returns how long it took.
async fn closed_within(mut conn: Conn, what: &str) -> Duration {
    let started = Instant::now();
    let end = conn.wait_closed(Duration::from_secs(5)).await.unwrap();
    let took = started.elapsed();
    assert!(end.is_some(), "{what}: still open after 5 s");
    let rest = raw::parse_responses(conn.buffered(), true);
    assert!(
        rest.iter().all(|r| r.status == 408),
        "{what}: unexpected response {:?}",
        String::from_utf8_lossy(conn.buffered())
    );
    took
}

#[tokio::test]
async fn a_stalled_partial_head_is_closed_after_header_read_timeout() {
    let (up, gw) = start(SLOW).await;
    let mut conn = Conn::connect(gw.addr()).await.unwrap();
    conn.write(b"GET /slow HTTP/1.1\r\nHost: gw\r\nx-slow: ")
        .await
        .unwrap();
    let took = closed_within(conn, "partial head").await;
    assert!(took < Duration::from_millis(1500), "closed after {took:?}");
    assert_eq!(up.hits(), 0);
    assert_healthy(&gw).await;
}

#[tokio::test]
async fn a_head_dripped_byte_by_byte_is_closed_after_header_read_timeout() {
    let (up, gw) = start(SLOW).await;
    let mut conn = Conn::connect(gw.addr()).await.unwrap();
    let started = Instant::now();
    let head = b"GET /slow HTTP/1.1\r\nHost: gw\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = false;
    for byte in head.iter() {
        if conn.write(std::slice::from_ref(byte)).await.is_err() {
            closed = true;
            break;
        }
        // Progress does not extend the deadline.
        if conn
            .wait_closed(Duration::from_millis(50))
            .await
            .unwrap()
            .is_some()
        {
            closed = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(closed, "the whole head was accepted over {took:?}");
    assert!(took < Duration::from_millis(1500), "closed after {took:?}");
    assert_eq!(up.hits(), 0);
    assert_healthy(&gw).await;
}

// The three tests below fail: `server::serve_connection` hands every
// connection to hyper-util's `serve_connection_with_upgrades`, which first
// sniffs for the h2c preface (`auto::ReadVersion`, up to 24 bytes) with no
// timeout, even with `http2: false`. hyper's `header_read_timeout` only
// starts once the HTTP/1 dispatcher runs, so a connection that sends
// nothing, or a prefix of the preface, is held open for as long as the
// client likes.

/// A connection that never sends a byte is a slow-loris too: it must not
/// be held open for ever.
#[tokio::test]
async fn a_silent_connection_is_closed_after_header_read_timeout() {
    let (_up, gw) = start(SLOW).await;
    let conn = Conn::connect(gw.addr()).await.unwrap();
    let took = closed_within(conn, "silent connection").await;
    assert!(took < Duration::from_millis(1500), "closed after {took:?}");
    assert_healthy(&gw).await;
}

/// The same on a listener with `http2: false`, where no preface is
/// expected at all.
#[tokio::test]
async fn a_silent_connection_on_an_http1_only_listener_is_closed() {
    let up = Upstream::echo().await;
    let yaml = format!(
        "listeners:\n  - address: \"127.0.0.1:0\"\n    http2: false\n{}",
        config(&up, SLOW)
    );
    let gw = TestGateway::start(&yaml).await;
    let conn = Conn::connect(gw.addr()).await.unwrap();
    let took = closed_within(conn, "silent connection, http1 only").await;
    assert!(took < Duration::from_millis(1500), "closed after {took:?}");
    assert_healthy(&gw).await;
}

/// The start of the HTTP/2 preface, then nothing.
#[tokio::test]
async fn a_stalled_h2_preface_is_closed_after_header_read_timeout() {
    let (_up, gw) = start(SLOW).await;
    let mut conn = Conn::connect(gw.addr()).await.unwrap();
    conn.write(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let took = closed_within(conn, "partial h2 preface").await;
    assert!(took < Duration::from_millis(1500), "closed after {took:?}");
    assert_healthy(&gw).await;
}

// ---------------------------------------------------------------------------
// Path oddities
// ---------------------------------------------------------------------------

/// Paths are canonicalised before matching (docs/security.md, "Canonical
/// path"; the full table is in hostile_paths.rs): dot segments removed,
/// slashes merged, unreserved escapes decoded; a climb above the root and
/// an encoded slash are refused. What is forwarded is the canonical path.
#[tokio::test]
async fn odd_paths_are_canonicalised_before_matching() {
    let up = Upstream::echo().await;
    let yaml = format!(
        "services:\n  - name: echo\n    url: \"{url}\"\nroutes:\n  - name: api\n    service: echo\n    paths: [\"/api/*\"]\n",
        url = up.url()
    );
    let gw = TestGateway::start(&yaml).await;

    for (path, status, slug) in [
        ("/../etc/passwd", 400, "bad-path"),
        ("/%2e%2e/etc/passwd", 400, "bad-path"),
        ("/api/%2e%2e/%2e%2e/etc/passwd", 400, "bad-path"),
        ("/api/a%2Fb", 400, "bad-path"),
        ("//double", 404, "no-route"),
        ("/api/../etc/passwd", 404, "no-route"),
        ("/API/x", 404, "no-route"),
    ] {
        let r = send(empty(req("GET", &gw.url(path)))).await;
        r.assert_problem(status, slug);
    }
    assert_eq!(up.hits(), 0);

    for (path, canonical) in [
        ("//api/x", "/api/x"),
        ("/%61pi/x", "/api/x"),
        ("/api//double", "/api/double"),
        ("/api/./x/../y", "/api/y"),
    ] {
        let r = send(empty(req("GET", &gw.url(path)))).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json()["path"], canonical, "{path}");
    }

    let long = format!("/api/{}", "a".repeat(8 * 1024));
    let r = send(empty(req("GET", &gw.url(&long)))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], long.as_str());
    let long_miss = format!("/{}", "b".repeat(8 * 1024));
    send(empty(req("GET", &gw.url(&long_miss))))
        .await
        .assert_problem(404, "no-route");
}
