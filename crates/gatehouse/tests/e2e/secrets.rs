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
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::{Kind, Role, Store};
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

const WS: &str = "/workspaces/default";

/// A store-backed node (`gatehouse run --store`, role `both`, a plain and a
/// TLS listener) serving route `/k` guarded by `key-auth`, with consumer
/// `alice` and her credential document `alice-key` (KEY), which already
/// authenticates. Its store lives in a directory the store creates; its
/// data directory was open to others before it started.
struct Fixture {
    node: Node,
    admin: String,
    root: String,
    ca: TestCa,
    /// The TLS listener's certificate file.
    cert: PathBuf,
    db: PathBuf,
    data: PathBuf,
    /// The answer to the creation of `alice-key`.
    created: String,
    _store: Arc<dyn Store>,
    upstream: Upstream,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Fixture {
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
        let mut f = Fixture {
            node,
            admin,
            root,
            ca,
            cert,
            db,
            data,
            created: String::new(),
            _store: store,
            upstream,
            _dir: dir,
        };
        for (kind, body) in [
            (
                "services",
                json!({ "name": "app", "url": f.upstream.url() }),
            ),
            (
                "routes",
                json!({ "name": "r", "service": "app", "paths": ["/k"], "plugins": [{ "name": "key-auth" }] }),
            ),
            ("consumers", json!({ "username": "alice" })),
        ] {
            let (s, b) = f
                .call(
                    "POST",
                    &format!("{WS}/{kind}"),
                    Some(json!({ "body": body })),
                )
                .await;
            assert_eq!(s, 201, "{b}\n{}", f.node.log());
        }
        let (s, b) = f
            .call(
                "POST",
                &format!("{WS}/credentials"),
                Some(json!({ "name": "alice-key", "body": { "consumer": "alice", "key_auth": { "key": KEY } } })),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        until_key(&f.node, "/k", KEY, 200).await;
        f.created = b;
        f
    }

    /// A call to the admin API as the super-admin: status and body.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        http(&self.admin, method, path, Some(&self.root), body.as_ref())
            .await
            .unwrap()
    }

    /// GET of `alice-key` (no key shown), PUT back as read: nothing changes.
    async fn round_trip(&self) {
        let (s, b) = self
            .call("GET", &format!("{WS}/credentials/alice-key"), None)
            .await;
        assert_eq!(s, 200);
        assert!(!b.contains(KEY), "{b}");
        let view: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(view["body"]["key_auth"]["key"], Value::Null);
        let (s, b) = self
            .call(
                "PUT",
                &format!("{WS}/credentials/alice-key"),
                Some(json!({ "body": view["body"] })),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let after: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(after["version"], view["version"], "nothing changed");
    }

    /// PATCHes NEW_KEY into `alice-key` (answered without it) and waits
    /// until the data plane takes NEW_KEY and refuses KEY.
    async fn replace_key(&self) {
        let (s, b) = self
            .call(
                "PATCH",
                &format!("{WS}/credentials/alice-key"),
                Some(json!({ "body": { "key_auth": { "key": NEW_KEY } } })),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert!(!b.contains(NEW_KEY), "{b}");
        until_key(&self.node, "/k", NEW_KEY, 200).await;
        until_key(&self.node, "/k", KEY, 401).await;
    }

    /// Writes the real check refuses with 422 (a second credential with
    /// `key`, the key `alice-key` has; a certificate whose key is not PEM):
    /// the answers name no secret.
    async fn refusals_name_no_secret(&self, key: &str) {
        let pem_body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCsecret";
        for (path, body) in [
            (
                format!("{WS}/credentials"),
                json!({ "name": "dup", "body": { "consumer": "alice", "key_auth": { "key": key } } }),
            ),
            (
                format!("{WS}/certificates"),
                json!({ "name": "bad", "body": {
                    "cert": std::fs::read_to_string(&self.cert).unwrap(),
                    "key": format!("-----BEGIN PRIVATE KEY-----\n{pem_body}\n-----END PRIVATE KEY-----\n")
                } }),
            ),
        ] {
            let (s, b) = self.call("POST", &path, Some(body)).await;
            assert_eq!(s, 422, "{path}: {b}");
            for needle in [NEW_KEY, KEY, pem_body] {
                assert!(!b.contains(needle), "{path} leaks {needle}: {b}");
            }
        }
    }

    /// Stops the node; it exits with 0.
    fn stop(self) {
        self.node.stop();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_created_credential_is_answered_without_its_key_and_authenticates() {
    let f = Fixture::start().await;
    assert!(!f.created.contains(KEY), "{}", f.created);
    until_key(&f.node, "/k", KEY, 200).await;
    f.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_round_tripped_credential_is_unchanged_and_still_authenticates() {
    let f = Fixture::start().await;
    f.round_trip().await;
    until_key(&f.node, "/k", KEY, 200).await;
    f.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_key_replaces_the_old_one_on_the_data_plane() {
    let f = Fixture::start().await;
    f.replace_key().await;
    f.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_checks_422_answers_name_no_secret() {
    let f = Fixture::start().await;
    f.refusals_name_no_secret(KEY).await;
    f.stop();
}

/// After every kind of write: creation, a round trip, a new key and
/// refused writes.
#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_holds_no_key() {
    let f = Fixture::start().await;
    f.round_trip().await;
    f.replace_key().await;
    f.refusals_name_no_secret(NEW_KEY).await;
    let (s, b) = f.call("GET", "/audit?limit=1000", None).await;
    assert_eq!(s, 200);
    assert!(!b.contains(KEY) && !b.contains(NEW_KEY), "{b}");
    f.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_documents_files_are_owner_only() {
    let f = Fixture::start().await;
    let pair = f.ca.server_cert(&["store.test"]);
    let (s, b) = f
        .call(
            "POST",
            &format!("{WS}/certificates"),
            Some(json!({ "name": "c", "body": { "cert": pair.cert_pem, "key": pair.key_pem } })),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert!(!b.contains(&pair.key_pem[30..80]), "{b}");
    let certs = f.data.join("certs");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&certs).map_or(0, Iterator::count) < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", f.node.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for file in std::fs::read_dir(&certs).unwrap() {
        let file = file.unwrap().path();
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    for d in [&f.data, &certs] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    f.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_and_data_directory_files_are_owner_only() {
    let f = Fixture::start().await;
    let snapshot = f.data.join("snapshot.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !snapshot.exists() {
        assert!(std::time::Instant::now() < deadline, "{}", f.node.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let db = &f.db;
    for file in [
        db.clone(),
        db.with_extension("db-wal"),
        db.with_extension("db-shm"),
        snapshot,
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    for d in [
        db.parent().unwrap(),
        db.parent().unwrap().parent().unwrap(),
        &f.data,
    ] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    f.stop();
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
