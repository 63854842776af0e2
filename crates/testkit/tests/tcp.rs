//! TCP-level peers: refused, blackholed and accept-then-close connections.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::time::Duration;

use gatehouse_testkit::raw::{self, End};
use gatehouse_testkit::{AcceptThenCloseServer, BlackholeServer, RefusingAddr, http1_client};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn refusing_addr_refuses_connections() {
    let refusing = RefusingAddr::new();
    let error = tokio::net::TcpStream::connect(refusing.addr())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);

    let uri: http::Uri = refusing.url().parse().unwrap();
    let error = http1_client().get(uri).await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
}

#[tokio::test]
async fn blackhole_accepts_but_never_answers() {
    let blackhole = BlackholeServer::start().await;
    let uri: http::Uri = blackhole.url().parse().unwrap();
    let result = tokio::time::timeout(Duration::from_millis(200), http1_client().get(uri)).await;
    assert!(result.is_err(), "no response should arrive");
    assert_eq!(blackhole.hits(), 1);

    let raw = raw::send_with_timeout(blackhole.addr(), REQUEST, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(raw.end, End::TimedOut);
    assert!(raw.bytes.is_empty());
}

#[tokio::test]
async fn accept_then_close_resets_connections() {
    let server = AcceptThenCloseServer::start().await;
    let mut conn = raw::Conn::connect(server.addr()).await.unwrap();
    assert_eq!(
        conn.wait_closed(Duration::from_secs(5)).await.unwrap(),
        Some(End::Reset)
    );

    let uri: http::Uri = server.url().parse().unwrap();
    assert!(http1_client().get(uri).await.is_err());
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn accept_then_close_with_fin_closes_cleanly() {
    let server = AcceptThenCloseServer::start_fin().await;
    let mut conn = raw::Conn::connect(server.addr()).await.unwrap();
    assert_eq!(
        conn.wait_closed(Duration::from_secs(5)).await.unwrap(),
        Some(End::Closed)
    );
    assert!(conn.buffered().is_empty());

    let uri: http::Uri = server.url().parse().unwrap();
    assert!(http1_client().get(uri).await.is_err());
}
