#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Secrets on a real store-backed node (`gatehouse run --store`, role
//! `both`) and through `gatehouse config`: a credential read back through
//! the admin API and PUT again keeps authenticating on the data plane, a new
//! key replaces it, 422 answers of the real cross-entity check name no
//! secret; the store file, its WAL and SHM, its directory, the data
//! directory, the certificate files and the snapshot file are owner-only;
//! `config dump` writes no secret and `diff` / `apply` of a dump neither
//! report a change nor wipe the stored keys (docs/security.md, "Secrets").

use crate::nodes;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use gatehouse_store::{Kind, Role};
use gatehouse_testkit::Upstream;
use gatehouse_testkit::tls::TestCa;
use nodes::{BIN, Node, free_port, http};
use serde_json::{Value, json};

const KEY: &str = "kept-secret-key-4f3e2d1c";
const NEW_KEY: &str = "replacement-key-8a9b0c1d";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Polls `GET path` with `apikey` until it answers `want`.
async fn until_key(node: &Node, path: &str, key: &str, want: u16) {
    node.until(
        &format!("{path}?apikey={key}"),
        want,
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_round_tripped_key_still_authenticates_and_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    // A data directory open to others is tightened at start.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The store in a directory the store creates.
    let db = dir.path().join("store/sub/g.db");
    let url = format!("sqlite://{}", db.display());
    let ca = TestCa::new("secrets-ca");
    let (cert, key) = ca
        .server_cert(&["default.test"])
        .write(dir.path(), "default");
    let settings = dir.path().join("node.yaml");
    std::fs::write(
        &settings,
        format!(
            "server:\n  shutdown_timeout: 2s\n  key_hash_secret: node-secret-0123456789abcdef\nlisteners:\n  - address: \"127.0.0.1:0\"\n  - address: \"127.0.0.1:0\"\n    tls:\n      certificates:\n        - cert: {}\n          key: {}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let store = gatehouse_store::open(&url).await.unwrap();
    let root = store
        .create_token("test", "root", Role::SuperAdmin)
        .await
        .unwrap()
        .plaintext;
    let admin = format!("127.0.0.1:{}", free_port());
    let node = Node::start(
        &url,
        &[
            "--config",
            settings.to_str().unwrap(),
            "--admin-listen",
            &admin,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        true,
    );
    let upstream = Upstream::builder().body("secret area").start().await;
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (admin, root) = (admin.clone(), root.clone());
        async move {
            let (s, b) = http(&admin, method, &path, Some(&root), body.as_ref())
                .await
                .unwrap();
            (s, b)
        }
    };
    let ws = "/workspaces/default";
    for (kind, body) in [
        ("services", json!({ "name": "app", "url": upstream.url() })),
        (
            "routes",
            json!({ "name": "r", "service": "app", "paths": ["/k"], "plugins": [{ "name": "key-auth" }] }),
        ),
        ("consumers", json!({ "username": "alice" })),
    ] {
        let (s, b) = call(
            "POST",
            format!("{ws}/{kind}"),
            Some(json!({ "body": body })),
        )
        .await;
        assert_eq!(s, 201, "{b}\n{}", node.log());
    }
    let (s, b) = call(
        "POST",
        format!("{ws}/credentials"),
        Some(json!({ "name": "alice-key", "body": { "consumer": "alice", "key_auth": { "key": KEY } } })),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert!(!b.contains(KEY), "{b}");
    until_key(&node, "/k", KEY, 200).await;

    // GET → PUT of the redacted view: unchanged, and the key still works.
    let (s, b) = call("GET", format!("{ws}/credentials/alice-key"), None).await;
    assert_eq!(s, 200);
    assert!(!b.contains(KEY), "{b}");
    let view: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(view["body"]["key_auth"]["key"], Value::Null);
    let (s, b) = call(
        "PUT",
        format!("{ws}/credentials/alice-key"),
        Some(json!({ "body": view["body"] })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let after: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(after["version"], view["version"], "nothing changed");
    until_key(&node, "/k", KEY, 200).await;

    // A new key replaces it on the data plane.
    let (s, b) = call(
        "PATCH",
        format!("{ws}/credentials/alice-key"),
        Some(json!({ "body": { "key_auth": { "key": NEW_KEY } } })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(!b.contains(NEW_KEY), "{b}");
    until_key(&node, "/k", NEW_KEY, 200).await;
    until_key(&node, "/k", KEY, 401).await;

    // The real check's 422 answers name no secret: a key another
    // credential already has, a certificate whose key is not PEM.
    let pem_body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCsecret";
    for (path, body) in [
        (
            format!("{ws}/credentials"),
            json!({ "name": "dup", "body": { "consumer": "alice", "key_auth": { "key": NEW_KEY } } }),
        ),
        (
            format!("{ws}/certificates"),
            json!({ "name": "bad", "body": {
                "cert": std::fs::read_to_string(&cert).unwrap(),
                "key": format!("-----BEGIN PRIVATE KEY-----\n{pem_body}\n-----END PRIVATE KEY-----\n")
            } }),
        ),
    ] {
        let (s, b) = call("POST", path.clone(), Some(body)).await;
        assert_eq!(s, 422, "{path}: {b}");
        for needle in [NEW_KEY, KEY, pem_body] {
            assert!(!b.contains(needle), "{path} leaks {needle}: {b}");
        }
    }
    // The audit log through the API holds neither key.
    let (s, b) = call("GET", "/audit?limit=1000".to_owned(), None).await;
    assert_eq!(s, 200);
    assert!(!b.contains(KEY) && !b.contains(NEW_KEY), "{b}");

    // A certificate document: its files are owner-only.
    let pair = ca.server_cert(&["store.test"]);
    let (s, b) = call(
        "POST",
        format!("{ws}/certificates"),
        Some(json!({ "name": "c", "body": { "cert": pair.cert_pem, "key": pair.key_pem } })),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert!(!b.contains(&pair.key_pem[30..80]), "{b}");
    let certs = data.join("certs");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&certs).map_or(0, Iterator::count) < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", node.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Every file the store and the node made is owner-only.
    let mut files = vec![
        db.clone(),
        db.with_extension("db-wal"),
        db.with_extension("db-shm"),
        data.join("snapshot.json"),
    ];
    files.extend(
        std::fs::read_dir(&certs)
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    for d in [
        db.parent().unwrap(),
        db.parent().unwrap().parent().unwrap(),
        &data,
        &certs,
    ] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    node.stop();
    drop(store);
}

#[tokio::test(flavor = "multi_thread")]
async fn loose_store_files_are_tightened() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    {
        let store = gatehouse_store::open(db.to_str().unwrap()).await.unwrap();
        nodes::put(
            store.as_ref(),
            Kind::Service,
            "s",
            nodes::service("s", "http://127.0.0.1:1"),
        )
        .await;
    }
    let wal = db.with_extension("db-wal");
    for f in [&db, &wal] {
        if f.exists() {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let store = gatehouse_store::open(db.to_str().unwrap()).await.unwrap();
    nodes::put(
        store.as_ref(),
        Kind::Service,
        "t",
        nodes::service("t", "http://127.0.0.1:1"),
    )
    .await;
    for f in [&db, &wal, &db.with_extension("db-shm")] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
}

fn gatehouse(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("GATEHOUSE_STORE")
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn dump_leaves_keys_out_and_apply_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let file = dir.path().join("in.yaml");
    std::fs::write(
        &file,
        format!("consumers:\n  - username: alice\n    credentials:\n      key_auth:\n        - key: {KEY}\n  - username: bob\n"),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (code, _, err) = gatehouse(&["config", "apply", f, "--store", &url]);
    assert_eq!(code, 0, "{err}");

    let dumped = dir.path().join("dump.yaml");
    let (code, _, err) = gatehouse(&[
        "config",
        "dump",
        "--store",
        &url,
        "-o",
        dumped.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let yaml = std::fs::read_to_string(&dumped).unwrap();
    assert!(!yaml.contains(KEY), "{yaml}");
    assert!(yaml.contains("alice"), "{yaml}");
    let (code, _, err) = gatehouse(&["validate", dumped.to_str().unwrap()]);
    assert_eq!(code, 0, "the dump is a valid file: {err}");

    // diff and apply of the dump: no change, the key kept.
    let d = dumped.to_str().unwrap();
    let (code, out, err) = gatehouse(&["config", "diff", d, "--store", &url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 to update"), "{out}");
    let (code, out, err) = gatehouse(&["config", "apply", d, "--store", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 updated"), "{out}");
    let store = gatehouse_store::open(&url).await.unwrap();
    let alice = store.get("default", Kind::Consumer, "alice").await.unwrap();
    assert_eq!(
        alice.body["credentials"]["key_auth"],
        json!([{ "key": KEY }])
    );

    // A file with a new key replaces it; diff says so without the values.
    std::fs::write(
        &file,
        format!("consumers:\n  - username: alice\n    credentials:\n      key_auth:\n        - key: {NEW_KEY}\n  - username: bob\n"),
    )
    .unwrap();
    let (code, out, err) = gatehouse(&["config", "diff", f, "--store", &url]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("secret values changed, not shown"), "{out}");
    assert!(!out.contains(KEY) && !out.contains(NEW_KEY), "{out}");
    let (code, _, err) = gatehouse(&["config", "apply", f, "--store", &url]);
    assert_eq!(code, 0, "{err}");
    let alice = store.get("default", Kind::Consumer, "alice").await.unwrap();
    assert_eq!(
        alice.body["credentials"]["key_auth"],
        json!([{ "key": NEW_KEY }])
    );
    // The audit rows `apply` wrote hold no key.
    let entries = store
        .audit(&gatehouse_store::AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let raw = serde_json::to_string(&entries).unwrap();
    assert!(!raw.contains(KEY) && !raw.contains(NEW_KEY), "{raw}");
}
