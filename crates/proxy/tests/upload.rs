//! A 1 GiB upload streams through the gateway at flat memory. Its own test
//! binary, so no other test skews the memory reading.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common {
    pub use gatehouse_proxy::testing::*;
}

use common::{TestGateway, req, send};
use gatehouse_testkit::{StreamingBody, Upstream, current_rss_kb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_upload_streams_at_flat_memory() {
    let up = Upstream::echo().await;
    let yaml = format!(
        "services:\n  - name: up\n    url: \"{}\"\nroutes:\n  - name: r\n    service: up\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    // Warm up so allocator pools and connections exist before measuring.
    let warm = send(
        req("POST", &gw.url("/up"))
            .body(StreamingBody::zeros(8 << 20, 64 << 10).boxed())
            .unwrap(),
    )
    .await;
    assert_eq!(warm.status, 200);
    let before = current_rss_kb().unwrap();

    const GIB: u64 = 1 << 30;
    for chunked in [false, true] {
        let body = StreamingBody::zeros(GIB, 64 << 10);
        let body = if chunked {
            body.chunked().boxed()
        } else {
            body.boxed()
        };
        let r = send(req("POST", &gw.url("/upload")).body(body).unwrap()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["body_len"], GIB, "chunked={chunked}");
    }
    let after = current_rss_kb().unwrap();
    // Client, gateway and upstream share this process: if any of them
    // buffered the body, RSS would grow by about 1 GiB.
    let grown_mb = after.saturating_sub(before) / 1024;
    assert!(
        grown_mb < 64,
        "RSS grew by {grown_mb} MiB while uploading 2 GiB"
    );
}
