#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Secrets are write-only (docs/security.md, "Secrets"), on both store
//! backends: for every role, every read path (GET, list, audit, the bodies
//! of POST/PUT/PATCH answers, 409/412/422 problems) is searched byte for
//! byte for each secret and its base64/PEM body; round trips (GET → PUT,
//! merge PATCH) keep the stored secret and a new one replaces it; the audit
//! table itself holds no secret, and entries written before redaction are
//! redacted when read.

use std::sync::Arc;

use gatehouse_admin::AppState;
use gatehouse_admin::secrets::{self, FINGERPRINT_PREFIX};
use gatehouse_core::keys::KeyHasher;
use gatehouse_store::{AuditQuery, Kind, Role, Store};
use gatehouse_testkit::pg::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CRED_KEY: &str = "cred-secret-9f8e7d6c5b4a";
const INLINE_KEY: &str = "inline-secret-1a2b3c4d5e";
const INLINE_KEY_2: &str = "inline-secret-second-77aa";
const LEGACY_KEY: &str = "legacy-secret-0a0b0c0d0e";
const NEW_KEY: &str = "rotated-secret-5566778899";
const PEM_BODY: &str = "MC4CAQAwBQYDK2VwBCIEIPRIVATEKEYBODYxyz0123456789abcdEFGH";

fn pem() -> String {
    format!("-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n")
}

const CERT: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBcertificatebodyispublic\n-----END CERTIFICATE-----\n";

/// Standard base64, for the needles.
fn b64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in s.as_bytes().chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every byte string that must never appear in an answer.
fn needles() -> Vec<String> {
    let mut n = Vec::new();
    for s in [CRED_KEY, INLINE_KEY, INLINE_KEY_2, LEGACY_KEY, NEW_KEY] {
        n.push(s.to_owned());
        n.push(b64(s).trim_end_matches('=').to_owned());
    }
    n.push(PEM_BODY.to_owned());
    n.push(PEM_BODY[10..40].to_owned());
    n.push(b64(&pem()).chars().take(40).collect());
    n
}

fn hasher() -> KeyHasher {
    KeyHasher::new(b"test node secret 0123456789")
}

#[allow(dead_code)] // The first fields live as long as the test.
enum Fixture {
    Sqlite(tempfile::TempDir, String),
    Postgres(TestDb, String),
}

impl Fixture {
    fn url(&self) -> &str {
        match self {
            Fixture::Sqlite(_, u) | Fixture::Postgres(_, u) => u,
        }
    }
}

struct Api {
    base: String,
    store: Arc<dyn Store>,
    /// The same database opened without a redactor: writes audited the way
    /// they were before this change.
    legacy: Arc<dyn Store>,
    root: String,
    http: reqwest::Client,
    _server: gatehouse_admin::Background,
    _fixture: Fixture,
}

/// One answer: what was asked, the status and the raw body.
struct Answer {
    what: String,
    status: StatusCode,
    etag: Option<String>,
    raw: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.raw).unwrap_or(Value::Null)
    }
}

impl Api {
    async fn start(fixture: Fixture) -> Api {
        let store = gatehouse_store::open_with(
            fixture.url(),
            Some(secrets::audit_redactor(
                gatehouse_plugins::registry().schemes().clone(),
                Some(hasher()),
            )),
        )
        .await
        .unwrap();
        let legacy = gatehouse_store::open(fixture.url()).await.unwrap();
        let root = store
            .create_token("test", "root", Role::SuperAdmin)
            .await
            .unwrap()
            .plaintext;
        let state = AppState::new(store.clone()).with_key_hasher(hasher());
        let server = gatehouse_admin::Background::start(state).await.unwrap();
        let base = server.base().to_string();
        Api {
            base,
            store,
            legacy,
            root,
            http: reqwest::Client::new(),
            _server: server,
            _fixture: fixture,
        }
    }

    async fn send(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> Answer {
        let mut r = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        if let Some(tag) = if_match {
            r = r.header("if-match", tag);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let etag = resp
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned());
        let raw = resp.text().await.unwrap();
        Answer {
            what: format!("{method} {path}"),
            status,
            etag,
            raw,
        }
    }

    async fn root(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(&self.root, method, path, body, None).await
    }
}

macro_rules! both {
    ($case:ident) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("g.db").display());
                let api = super::Api::start(super::Fixture::Sqlite(dir, url)).await;
                super::$case(api).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = gatehouse_testkit::pg::TestDb::create("gh_secrets");
                let url = db.url().to_owned();
                let api = super::Api::start(super::Fixture::Postgres(db, url)).await;
                super::$case(api).await;
            }
        }
    };
}

/// Fails naming the answer and the needle if any secret is in it.
fn check_clean(a: &Answer) {
    for n in needles() {
        assert!(
            !a.raw.contains(&n),
            "{} ({}) leaks `{n}`: {}",
            a.what,
            a.status,
            a.raw
        );
    }
}

const CONSUMER: &str = "/workspaces/a/consumers/alice";
const CREDENTIAL: &str = "/workspaces/a/credentials/alice-key";
const CERTIFICATE: &str = "/workspaces/a/certificates/c";

/// Workspace `a` with a consumer holding inline keys, a credential and a
/// certificate (made through the API), and a consumer in `default` written
/// before audit redaction existed. Returns the write answers.
async fn seed(api: &Api) -> Vec<Answer> {
    let mut out = Vec::new();
    let a = api
        .root(Method::POST, "/workspaces", Some(json!({ "name": "a" })))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    for (path, body) in [
        (
            "/workspaces/a/consumers",
            json!({ "body": { "username": "alice", "credentials": { "key_auth": [
                { "key": INLINE_KEY }, { "key": INLINE_KEY_2 }
            ] } } }),
        ),
        (
            "/workspaces/a/credentials",
            json!({ "name": "alice-key", "body": { "consumer": "alice", "key_auth": { "key": CRED_KEY } } }),
        ),
        (
            "/workspaces/a/certificates",
            json!({ "name": "c", "body": { "cert": CERT, "key": pem(), "hosts": ["a.test"] } }),
        ),
    ] {
        let a = api.root(Method::POST, path, Some(body)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
        out.push(a);
    }
    api.legacy
        .put(
            "old-admin",
            gatehouse_store::NewDocument {
                workspace: "default".into(),
                kind: Kind::Consumer,
                name: "legacy".into(),
                tags: Vec::new(),
                body: json!({ "username": "legacy", "credentials": { "key_auth": [{ "key": LEGACY_KEY }] } }),
            },
            gatehouse_store::Expect::Any,
        )
        .await
        .unwrap();
    out
}

both!(no_role_reads_a_secret);
async fn no_role_reads_a_secret(api: Api) {
    let mut answers = seed(&api).await;
    let ro = api
        .store
        .create_token("test", "viewer", Role::ReadOnly)
        .await
        .unwrap()
        .plaintext;
    let auditor = api
        .store
        .create_token("test", "auditor", Role::Auditor)
        .await
        .unwrap()
        .plaintext;
    let wa = api
        .store
        .create_token(
            "test",
            "team-a",
            Role::WorkspaceAdmin {
                workspace: "a".into(),
            },
        )
        .await
        .unwrap()
        .plaintext;
    let roles = [
        ("super-admin", api.root.clone()),
        ("read-only", ro),
        ("auditor", auditor),
        ("workspace-admin", wa),
    ];
    let reads = [
        CONSUMER,
        CREDENTIAL,
        CERTIFICATE,
        "/workspaces/a/consumers",
        "/workspaces/a/credentials",
        "/workspaces/a/certificates",
        "/workspaces/default/consumers/legacy",
        "/workspaces/default/consumers",
        "/audit",
        "/audit?workspace=a",
        "/audit?workspace=default",
        "/audit?kind=credentials",
        "/audit?kind=certificate&name=c",
        "/audit?name=legacy",
    ];
    for (role, token) in &roles {
        for path in reads {
            let mut a = api.send(token, Method::GET, path, None, None).await;
            a.what = format!("{role}: {}", a.what);
            answers.push(a);
        }
        // Writes: round trip of each document's own view, a merge patch,
        // 409, 412 and 422, each answer searched too.
        for path in [CONSUMER, CREDENTIAL, CERTIFICATE] {
            let got = api.send(&api.root, Method::GET, path, None, None).await;
            let view = got.json();
            let put = json!({ "tags": view["tags"], "body": view["body"] });
            let etag = got.etag.clone().unwrap();
            for (method, p, body, tag) in [
                (
                    Method::PUT,
                    path.to_owned(),
                    Some(put.clone()),
                    Some(etag.as_str()),
                ),
                (
                    Method::PATCH,
                    path.to_owned(),
                    Some(json!({ "tags": ["x"] })),
                    None,
                ),
                (
                    Method::PATCH,
                    path.to_owned(),
                    Some(json!({ "tags": [] })),
                    None,
                ),
                (
                    Method::PUT,
                    path.to_owned(),
                    Some(put.clone()),
                    Some("\"1\""),
                ),
                (
                    Method::POST,
                    path.rsplit_once('/').unwrap().0.to_owned(),
                    Some(json!({ "name": path.rsplit_once('/').unwrap().1, "body": view["body"] })),
                    None,
                ),
                (
                    Method::PUT,
                    path.to_owned(),
                    Some(
                        json!({ "body": { "unknown": 1, "key": CRED_KEY, "key_auth": { "key": CRED_KEY } } }),
                    ),
                    None,
                ),
            ] {
                let mut a = api.send(token, method, &p, body, tag).await;
                a.what = format!("{role}: {}", a.what);
                answers.push(a);
            }
        }
    }
    for a in &answers {
        check_clean(a);
    }
    // The table covered the statuses it means to.
    let statuses: std::collections::BTreeSet<u16> =
        answers.iter().map(|a| a.status.as_u16()).collect();
    for s in [200, 201, 400, 403, 409, 412] {
        assert!(statuses.contains(&s), "no {s} answer in {statuses:?}");
    }
    // Reads show fingerprints that tell keys apart.
    let cred = api.root(Method::GET, CREDENTIAL, None).await.json();
    assert_eq!(cred["body"]["key_auth"]["key"], Value::Null);
    let fp = cred["body"]["key_auth"]["key_fingerprint"]
        .as_str()
        .unwrap();
    assert_eq!(fp, secrets::fingerprint(&hasher(), CRED_KEY));
    let cons = api.root(Method::GET, CONSUMER, None).await.json();
    let keys = cons["body"]["credentials"]["key_auth"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{cons}");
    assert_ne!(keys[0]["key_fingerprint"], keys[1]["key_fingerprint"]);
    let cert = api.root(Method::GET, CERTIFICATE, None).await.json();
    assert_eq!(cert["body"]["key"], Value::Null);
    assert!(
        cert["body"]["key_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with(FINGERPRINT_PREFIX)
    );
    assert_eq!(cert["body"]["cert"], CERT, "the certificate is public");

    // The audit table itself (read past the API) holds no secret, except
    // the entry written before redaction, which the API redacts on read.
    let entries = api
        .store
        .audit(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(entries.len() > 5);
    for e in entries.iter().filter(|e| e.name != "legacy") {
        let raw = serde_json::to_string(e).unwrap();
        for n in needles() {
            assert!(!raw.contains(&n), "audit row {} holds `{n}`: {raw}", e.seq);
        }
    }
    let legacy = entries.iter().find(|e| e.name == "legacy").unwrap();
    assert!(
        serde_json::to_string(legacy).unwrap().contains(LEGACY_KEY),
        "the legacy entry is the old kind"
    );
    // The stored documents still hold every secret the API accepted.
    let stored = api
        .store
        .get("a", Kind::Credential, "alice-key")
        .await
        .unwrap();
    assert_eq!(stored.body["key_auth"]["key"], CRED_KEY);
    let stored = api.store.get("a", Kind::Certificate, "c").await.unwrap();
    assert_eq!(stored.body["key"], pem());
}

both!(round_trips_keep_the_secret);
async fn round_trips_keep_the_secret(api: Api) {
    seed(&api).await;
    let stored = |kind, name: &'static str| {
        let store = api.store.clone();
        async move { store.get("a", kind, name).await.unwrap().body }
    };
    // GET → PUT of the redacted view: nothing changes, same ETag.
    for (path, kind, name) in [
        (CREDENTIAL, Kind::Credential, "alice-key"),
        (CONSUMER, Kind::Consumer, "alice"),
        (CERTIFICATE, Kind::Certificate, "c"),
    ] {
        let before = stored(kind, name).await;
        let got = api.root(Method::GET, path, None).await;
        let view = got.json();
        let put = api
            .send(
                &api.root,
                Method::PUT,
                path,
                Some(json!({ "tags": view["tags"], "body": view["body"] })),
                got.etag.as_deref(),
            )
            .await;
        assert_eq!(put.status, StatusCode::OK, "{path}: {}", put.raw);
        assert_eq!(put.etag, got.etag, "{path}: unchanged, same version");
        assert_eq!(put.json()["body"], view["body"], "{path}");
        assert_eq!(stored(kind, name).await, before, "{path}");
    }
    // A PUT that leaves the key out keeps it too (and may change the rest).
    let a = api
        .root(
            Method::PUT,
            CERTIFICATE,
            Some(json!({ "body": { "cert": CERT, "hosts": ["b.test"] } })),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.raw);
    let body = stored(Kind::Certificate, "c").await;
    assert_eq!(
        (body["key"].as_str(), &body["hosts"]),
        (Some(pem().as_str()), &json!(["b.test"]))
    );
    // Merge patches: `null` on the key keeps it; other fields change.
    let a = api
        .root(
            Method::PATCH,
            CREDENTIAL,
            Some(json!({ "body": { "key_auth": { "key": null } }, "tags": ["p"] })),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.raw);
    assert_eq!(
        stored(Kind::Credential, "alice-key").await["key_auth"]["key"],
        CRED_KEY
    );
    // A new value replaces the secret; the fingerprint changes.
    let before = api.root(Method::GET, CREDENTIAL, None).await.json();
    let a = api
        .root(
            Method::PATCH,
            CREDENTIAL,
            Some(json!({ "body": { "key_auth": { "key": NEW_KEY } } })),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.raw);
    check_clean(&a);
    assert_eq!(
        stored(Kind::Credential, "alice-key").await["key_auth"]["key"],
        NEW_KEY
    );
    assert_ne!(
        a.json()["body"]["key_auth"]["key_fingerprint"],
        before["body"]["key_auth"]["key_fingerprint"]
    );
    // Inline keys: edit the view (drop the first, add one): matched by
    // fingerprint, the kept one stays, the new one is added.
    let view = api.root(Method::GET, CONSUMER, None).await.json();
    let second = view["body"]["credentials"]["key_auth"][1].clone();
    let a = api
        .root(
            Method::PUT,
            CONSUMER,
            Some(
                json!({ "body": { "credentials": { "key_auth": [{ "key": NEW_KEY }, second] } } }),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.raw);
    assert_eq!(
        stored(Kind::Consumer, "alice").await["credentials"]["key_auth"],
        json!([{ "key": NEW_KEY }, { "key": INLINE_KEY_2 }])
    );
    // Refused, naming the field: a fingerprint that matches nothing, a
    // new document without its key.
    for (method, path, body) in [
        (
            Method::PUT,
            CREDENTIAL,
            json!({ "body": { "consumer": "alice", "key_auth": { "key": null, "key_fingerprint": "hmac-sha256:0000000000000000" } } }),
        ),
        (
            Method::POST,
            "/workspaces/a/credentials",
            json!({ "name": "other", "body": { "consumer": "alice", "key_auth": { "key": null } } }),
        ),
        (
            Method::POST,
            "/workspaces/a/certificates",
            json!({ "name": "d", "body": { "cert": CERT } }),
        ),
    ] {
        let a = api.root(method, path, Some(body)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {}", a.raw);
        assert_eq!(a.json()["type"], "urn:gatehouse:problem:invalid-entity");
        assert!(
            a.json()["detail"].as_str().unwrap().contains("key"),
            "{}",
            a.raw
        );
        check_clean(&a);
    }
}

// A private key pasted into a certificate's `cert` (a combined PEM, as
// certbot's `fullchain` + `privkey` or HAProxy's bundles are often
// concatenated) was stored and shown to every role, read-only and the
// audit log included. Reproduced against the binary: `GET` with a
// read-only token answered the `PRIVATE KEY` block. Now every way of
// putting it there is refused (naming the field, never the value), and
// one written past the API is never shown.
both!(a_private_key_in_cert_is_refused_and_never_shown);
async fn a_private_key_in_cert_is_refused_and_never_shown(api: Api) {
    let a = api
        .root(Method::POST, "/workspaces", Some(json!({ "name": "a" })))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    let combined = format!("{CERT}{}", pem());
    let rsa = pem().replace("PRIVATE KEY", "RSA PRIVATE KEY");
    let encrypted = pem().replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
    let attempts: [(&str, Method, &str, Value); 5] = [
        (
            "POST, chain then key",
            Method::POST,
            "/workspaces/a/certificates",
            json!({ "name": "c", "body": { "cert": combined, "key": pem() } }),
        ),
        (
            "PUT, key then chain",
            Method::PUT,
            CERTIFICATE,
            json!({ "body": { "cert": format!("{}{CERT}", pem()), "key": pem() } }),
        ),
        (
            "PUT, an RSA key",
            Method::PUT,
            CERTIFICATE,
            json!({ "body": { "cert": format!("{CERT}{rsa}"), "key": pem() } }),
        ),
        (
            "PUT, an encrypted key",
            Method::PUT,
            CERTIFICATE,
            json!({ "body": { "cert": format!("{CERT}{encrypted}"), "key": pem() } }),
        ),
        (
            "PUT, the key alone",
            Method::PUT,
            CERTIFICATE,
            json!({ "body": { "cert": pem(), "key": pem() } }),
        ),
    ];
    for (case, method, path, body) in attempts {
        let a = api.root(method, path, Some(body)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{case}: {}", a.raw);
        assert!(
            a.json()["detail"]
                .as_str()
                .unwrap()
                .starts_with("body.cert:"),
            "{case}: {}",
            a.raw
        );
        check_clean(&a);
    }
    // A good certificate, then a merge PATCH that adds the key to `cert`.
    let a = api
        .root(
            Method::PUT,
            CERTIFICATE,
            Some(json!({ "body": { "cert": CERT, "key": pem() } })),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    let a = api
        .root(
            Method::PATCH,
            CERTIFICATE,
            Some(json!({ "body": { "cert": combined } })),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.raw);
    check_clean(&a);
    // One written past the API (or before this check): never shown, to any
    // role, in documents, lists or the audit log.
    api.legacy
        .put(
            "old-admin",
            gatehouse_store::NewDocument {
                workspace: "a".into(),
                kind: Kind::Certificate,
                name: "bundle".into(),
                tags: Vec::new(),
                body: json!({ "cert": combined, "key": pem(), "hosts": [] }),
            },
            gatehouse_store::Expect::Any,
        )
        .await
        .unwrap();
    let ro = api
        .store
        .create_token("test", "viewer", Role::ReadOnly)
        .await
        .unwrap()
        .plaintext;
    let auditor = api
        .store
        .create_token("test", "auditor", Role::Auditor)
        .await
        .unwrap()
        .plaintext;
    for (who, token) in [("read-only", &ro), ("super-admin", &api.root)] {
        for path in [
            "/workspaces/a/certificates/bundle",
            "/workspaces/a/certificates",
        ] {
            let a = api.send(token, Method::GET, path, None, None).await;
            assert_eq!(a.status, StatusCode::OK, "{who} {path}: {}", a.raw);
            assert!(a.raw.contains("MIIBcertificatebodyispublic"), "{}", a.raw);
            check_clean(&a);
        }
    }
    let a = api
        .send(&auditor, Method::GET, "/audit?kind=certificate", None, None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.raw);
    check_clean(&a);
    // GET → PUT of the shown view drops the key from `cert` for good.
    let shown = api
        .root(Method::GET, "/workspaces/a/certificates/bundle", None)
        .await
        .json();
    let a = api
        .root(
            Method::PUT,
            "/workspaces/a/certificates/bundle",
            Some(json!({ "body": shown["body"] })),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.raw);
    let stored = api
        .store
        .get("a", Kind::Certificate, "bundle")
        .await
        .unwrap();
    assert!(!stored.body["cert"].as_str().unwrap().contains(PEM_BODY));
    assert!(stored.body["key"].as_str().unwrap().contains(PEM_BODY));
}
