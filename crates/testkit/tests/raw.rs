//! The raw TCP client against real upstreams: exact bytes out, parsed responses back.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use gatehouse_testkit::Upstream;
use gatehouse_testkit::raw::{self, End};

#[tokio::test]
async fn send_parses_a_content_length_response() {
    let upstream = Upstream::builder().name("raw").start().await;
    let raw = raw::send(
        upstream.addr(),
        b"POST /p?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    .await
    .unwrap();
    assert_eq!(raw.end, End::Closed);
    assert_eq!(raw.statuses(), [200]);
    let resp = raw.first().unwrap();
    assert!(resp.complete);
    assert_eq!(resp.header("X-Upstream"), Some("raw"));
    let echo: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["path"], "/p");
    assert_eq!(echo["body_len"], 3);
}

#[tokio::test]
async fn send_parses_a_chunked_response() {
    let upstream = Upstream::builder()
        .sse(2, Duration::from_millis(10))
        .start()
        .await;
    let raw = raw::send(
        upstream.addr(),
        b"GET /e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let resp = raw.first().unwrap();
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert!(resp.complete);
    assert_eq!(resp.body_text(), "data: event 1\n\ndata: event 2\n\n");
    assert!(
        raw.text().contains("\r\n0\r\n\r\n"),
        "the wire form was chunked"
    );
}

#[tokio::test]
async fn chunked_trailers_are_parsed() {
    let upstream = Upstream::builder().grpc_like().start().await;
    let raw = raw::send(
        upstream.addr(),
        b"POST /s HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nx-trailer-echo: t1\r\n\
Content-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .await
    .unwrap();
    let resp = raw.first().unwrap();
    assert_eq!(resp.body, b"hi", "{}", raw.text());
    assert_eq!(resp.trailer("grpc-status"), Some("0"), "{}", raw.text());
    assert_eq!(resp.trailer("x-trailer-echo"), Some("t1"));
}

#[tokio::test]
async fn conn_reads_pipelined_keep_alive_responses_stepwise() {
    let upstream = Upstream::echo().await;
    let mut conn = raw::Conn::connect(upstream.addr()).await.unwrap();
    conn.write(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    for path in ["/1", "/2"] {
        let resp = conn.read_response().await.unwrap();
        assert_eq!(resp.status, 200);
        let echo: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(echo["path"], path);
    }
    conn.write(b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(conn.read_response().await.unwrap().status, 200);
    assert_eq!(upstream.connections(), 1);
    assert_eq!(upstream.hits(), 3);
}

#[tokio::test]
async fn a_malformed_request_gets_a_400() {
    let upstream = Upstream::echo().await;
    let raw = raw::send(
        upstream.addr(),
        b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(raw.statuses(), [400]);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_reset_mid_body_shows_as_an_incomplete_response() {
    let upstream = Upstream::builder().reset_mid_body().start().await;
    let raw = raw::send(upstream.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_ne!(raw.end, End::TimedOut);
    let resp = raw.first().unwrap();
    assert_eq!(resp.status, 200);
    assert!(!resp.complete);
    assert_eq!(resp.body.len(), 16 * 1024);

    let mut conn = raw::Conn::connect(upstream.addr()).await.unwrap();
    conn.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let error = conn.read_response().await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn read_response_times_out_on_silence() {
    let upstream = Upstream::builder().never_respond().start().await;
    let mut conn = raw::Conn::connect_with_timeout(upstream.addr(), Duration::from_millis(100))
        .await
        .unwrap();
    conn.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let error = conn.read_response().await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
}
