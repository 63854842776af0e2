//! Flat memory: a large streamed upload through the echo upstream does not
//! grow this process's peak resident set. Alone in its own test binary so no
//! other test's allocations muddy the reading.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_testkit::{StreamingBody, Upstream, body, current_peak_rss_kb, http1_client};
use http::Request;

#[tokio::test]
async fn a_1_gib_upload_uses_flat_memory() {
    const TOTAL: u64 = 1024 * 1024 * 1024;
    let upstream = Upstream::echo().await;
    let client = http1_client();
    // Warm up the connection and allocator before the baseline.
    let warm = Request::post(upstream.uri("/warm"))
        .body(StreamingBody::zeros(1024 * 1024, 64 * 1024).boxed())
        .unwrap();
    body::to_bytes(client.request(warm).await.unwrap().into_body())
        .await
        .unwrap();
    let before = current_peak_rss_kb().unwrap();

    let req = Request::post(upstream.uri("/upload"))
        .body(StreamingBody::zeros(TOTAL, 256 * 1024).boxed())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let echo: serde_json::Value =
        serde_json::from_slice(&body::to_bytes(resp.into_body()).await.unwrap()).unwrap();
    assert_eq!(echo["body_len"], TOTAL);
    assert_eq!(echo["headers"]["content-length"], TOTAL.to_string());

    let grown_kb = current_peak_rss_kb().unwrap().saturating_sub(before);
    assert!(
        grown_kb < 64 * 1024,
        "peak RSS grew by {grown_kb} KiB for a {TOTAL}-byte upload"
    );
}
