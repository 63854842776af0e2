#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Certificate documents on a store-backed node: a certificate put in the
//! store is served by the node's TLS listener for its host names (SNI),
//! a replacement is picked up, a deleted one stops being served (its files
//! are removed), and a broken one is refused while the node keeps serving.

use crate::nodes;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gatehouse_store::{Expect, Kind};
use gatehouse_testkit::tls::{TestCa, TlsClient};
use nodes::{Node, put};
use serde_json::json;

/// Whether a client trusting only `ca` completes a TLS request to `addr`
/// with SNI `name` (any HTTP status counts).
async fn handshakes(ca: &TestCa, addr: SocketAddr, name: &str) -> bool {
    TlsClient::trusting(ca).get(addr, name, "/").await.is_ok()
}

async fn until_handshake(ca: &TestCa, addr: SocketAddr, name: &str, want: bool, node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while handshakes(ca, addr, name).await != want {
        assert!(
            Instant::now() < deadline,
            "handshake for {name} never became {want}\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_documents_are_served_by_sni() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let (default_ca, store_ca, rotated_ca) = (
        TestCa::new("default-ca"),
        TestCa::new("store-ca"),
        TestCa::new("rotated-ca"),
    );
    let (cert, key) = default_ca
        .server_cert(&["default.test"])
        .write(dir.path(), "default");
    let settings = dir.path().join("node.yaml");
    std::fs::write(
        &settings,
        format!(
            "server:\n  shutdown_timeout: 2s\nlisteners:\n  - address: \"127.0.0.1:0\"\n    tls:\n      certificates:\n        - cert: {}\n          key: {}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let store = gatehouse_store::open(&url).await.unwrap();
    let pair = store_ca.server_cert(&["store.test"]);
    put(
        store.as_ref(),
        Kind::Certificate,
        "store-cert",
        json!({"cert": pair.cert_pem, "key": pair.key_pem}),
    )
    .await;
    let data = dir.path().join("data");
    let node = Node::start(
        &url,
        &[
            "--config",
            settings.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--role",
            "data-plane",
        ],
        true,
    );
    let addr: SocketAddr = node.proxy.parse().unwrap();

    // The store's certificate for its name, the file's for the rest.
    until_handshake(&store_ca, addr, "store.test", true, &node).await;
    assert!(handshakes(&default_ca, addr, "default.test").await);
    assert!(!handshakes(&store_ca, addr, "default.test").await);
    let files = std::fs::read_dir(data.join("certs")).unwrap().count();
    assert_eq!(files, 2, "one cert and one key file");

    // A broken certificate is refused; the node keeps the last good config.
    put(
        store.as_ref(),
        Kind::Certificate,
        "broken",
        json!({"cert": "not a certificate", "key": "not a key"}),
    )
    .await;
    let mut node = node;
    node.wait_for("certificate `broken`", Duration::from_secs(10));
    assert!(handshakes(&store_ca, addr, "store.test").await);
    store
        .delete("test", "default", Kind::Certificate, "broken", Expect::Any)
        .await
        .unwrap();

    // A replacement (another CA, explicit hosts) is picked up.
    let rotated = rotated_ca.server_cert(&["store.test", "other.test"]);
    put(
        store.as_ref(),
        Kind::Certificate,
        "store-cert",
        json!({"cert": rotated.cert_pem, "key": rotated.key_pem, "hosts": ["store.test"]}),
    )
    .await;
    until_handshake(&rotated_ca, addr, "store.test", true, &node).await;
    assert!(!handshakes(&store_ca, addr, "store.test").await);

    // Deleted: the default certificate answers that name again.
    store
        .delete(
            "test",
            "default",
            Kind::Certificate,
            "store-cert",
            Expect::Any,
        )
        .await
        .unwrap();
    until_handshake(&rotated_ca, addr, "store.test", false, &node).await;
    assert!(handshakes(&default_ca, addr, "default.test").await);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_dir(data.join("certs")).unwrap().count() != 0 {
        assert!(
            Instant::now() < deadline,
            "certificate files were not removed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
