#![allow(clippy::unwrap_used, clippy::expect_used)]
//! App and credential documents, app API keys (create, rotate, revoke),
//! subscription status and approval, and the cross-entity validator hook,
//! over real HTTP against the real router, on both store backends (each
//! case runs as `<case>::sqlite` and `<case>::postgres`; PostgreSQL comes
//! from `gatehouse_testkit::pg::TestDb`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use gatehouse_admin::{AppState, Validator};
use gatehouse_core::KeyHasher;
use gatehouse_store::{Document, Expect, Kind, NewDocument, Role, Store};
use gatehouse_testkit::pg::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &[u8] = b"admin-test-key-hash-secret";

#[derive(Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

/// Keeps the database alive as long as the API.
#[allow(dead_code)]
enum Holder {
    Dir(tempfile::TempDir),
    Pg(TestDb),
}

struct Api {
    base: String,
    store: Arc<dyn Store>,
    root: String,
    http: reqwest::Client,
    _server: gatehouse_admin::Background,
    _db: Holder,
}

type Resp = (StatusCode, reqwest::header::HeaderMap, Value);

impl Api {
    async fn start(db: Db, validator: Option<Arc<dyn Validator>>) -> Api {
        let (url, holder) = match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
                (url, Holder::Dir(dir))
            }
            Db::Postgres => {
                let pg = TestDb::create("gh_admin_apps");
                (pg.url().to_owned(), Holder::Pg(pg))
            }
        };
        let store = gatehouse_store::open(&url).await.unwrap();
        let root = store
            .create_token("test", "root", Role::SuperAdmin)
            .await
            .unwrap()
            .plaintext;
        let mut state = AppState::new(store.clone()).with_key_hasher(KeyHasher::new(SECRET));
        if let Some(v) = validator {
            state = state.with_validator(v);
        }
        let server = gatehouse_admin::Background::start(state).await.unwrap();
        let base = server.base().to_string();
        Api {
            base,
            store,
            root,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _server: server,
            _db: holder,
        }
    }

    async fn token(&self, name: &str, role: Role) -> String {
        self.store
            .create_token("test", name, role)
            .await
            .unwrap()
            .plaintext
    }

    fn req(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.send(self.req(method, path, &self.root), body).await
    }

    async fn send(&self, mut r: reqwest::RequestBuilder, body: Option<Value>) -> Resp {
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        (status, headers, v)
    }

    async fn put(&self, path: &str, body: Value) -> Value {
        let (s, _, v) = self
            .call(Method::PUT, path, Some(json!({ "body": body })))
            .await;
        assert!(s.is_success(), "PUT {path}: {s} {v}");
        v
    }

    async fn audit_len(&self) -> usize {
        let (_, _, v) = self.call(Method::GET, "/audit?limit=1000", None).await;
        v["data"].as_array().unwrap().len()
    }
}

macro_rules! both {
    ($case:ident) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(super::Db::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case(super::Db::Postgres).await;
            }
        }
    };
}

fn assert_problem(r: &Resp, status: StatusCode, slug: &str) {
    let (s, h, v) = r;
    assert_eq!(*s, status, "{v}");
    assert_eq!(h["content-type"], "application/problem+json", "{v}");
    assert_eq!(v["type"], format!("urn:gatehouse:problem:{slug}"), "{v}");
    assert_eq!(v["status"], status.as_u16(), "{v}");
}

fn detail(r: &Resp) -> &str {
    r.2["detail"].as_str().unwrap_or("")
}

fn etag(h: &reqwest::header::HeaderMap) -> String {
    h["etag"].to_str().unwrap().to_owned()
}

const APPS: &str = "/workspaces/default/apps";

// ---- apps and credentials as documents -------------------------------------

both!(app_and_credential_documents);
async fn app_and_credential_documents(db: Db) {
    let api = Api::start(db, None).await;
    api.put("/workspaces/default/consumers/acme", json!({}))
        .await;

    // PUT fills the name from the path; POST takes it from body.name.
    let (s, _, v) = api
        .call(
            Method::PUT,
            &format!("{APPS}/mobile"),
            Some(json!({ "tags": ["t"], "body": { "consumer": "acme", "description": "iOS" } })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["kind"], "app");
    assert_eq!(v["body"]["name"], "mobile");
    assert_eq!(v["body"]["consumer"], "acme");
    let (s, _, v) = api
        .call(
            Method::POST,
            APPS,
            Some(json!({ "body": { "name": "web", "consumer": "acme" } })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["name"], "web");
    let (s, _, v) = api.call(Method::GET, APPS, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");

    // Bad app bodies.
    let hash = KeyHasher::new(SECRET).hash("some-key").to_string();
    for (body, starts) in [
        (
            json!({ "name": "other", "consumer": "acme" }),
            "body.name: ",
        ),
        (json!({ "name": "x" }), "body: "),
        (
            json!({ "consumer": "acme", "colour": "red" }),
            "body.colour: ",
        ),
        (
            json!({ "consumer": "acme", "keys": [{ "hash": "plaintext-key-123" }] }),
            "body.keys[0].hash: ",
        ),
        (
            json!({ "consumer": "acme", "keys": [{ "hash": hash }, { "hash": hash }] }),
            "body.keys[1].hash: ",
        ),
        (
            json!({ "consumer": "acme", "keys": [{ "hash": hash, "expires_at": "tomorrow" }] }),
            "body.keys[0].expires_at: ",
        ),
    ] {
        let r = api
            .call(
                Method::PUT,
                &format!("{APPS}/x"),
                Some(json!({ "body": body })),
            )
            .await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-entity");
        assert!(detail(&r).starts_with(starts), "{body}: {}", r.2);
        // A plaintext key is never echoed.
        assert!(!detail(&r).contains("plaintext-key-123"), "{}", r.2);
    }
    let (s, _, _) = api.call(Method::GET, &format!("{APPS}/x"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Credentials: exactly one scheme.
    let creds = "/workspaces/default/credentials";
    let (s, _, v) = api
        .call(
            Method::PUT,
            &format!("{creds}/acme-1"),
            Some(json!({ "body": { "consumer": "acme", "key_auth": { "key": "k-1234567" } } })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["kind"], "credential");
    // No name field is added to a credential.
    assert_eq!(v["body"].as_object().unwrap().len(), 2, "{v}");
    for (body, needle) in [
        (json!({ "consumer": "acme" }), "exactly one"),
        (
            json!({ "consumer": "acme", "basic_auth": { "user": "u" } }),
            "basic_auth",
        ),
        (json!({ "key_auth": { "key": "k" } }), "consumer"),
        (json!({ "consumer": "acme", "key_auth": {} }), "key"),
    ] {
        let r = api
            .call(
                Method::PUT,
                &format!("{creds}/bad"),
                Some(json!({ "body": body })),
            )
            .await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-entity");
        assert!(detail(&r).contains(needle), "{body}: {}", r.2);
    }
    // POST needs the name in the envelope (a credential has no name field).
    let r = api
        .call(
            Method::POST,
            creds,
            Some(json!({ "body": { "consumer": "acme", "key_auth": { "key": "k-2000000" } } })),
        )
        .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-entity");
    let (s, _, _) = api
        .call(
            Method::POST,
            creds,
            Some(json!({ "name": "acme-2", "body": { "consumer": "acme", "key_auth": { "key": "k-2000000" } } })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, _, v) = api.call(Method::GET, creds, None).await;
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme-1", "acme-2"]);
    let (s, _, _) = api
        .call(Method::DELETE, &format!("{creds}/acme-1"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // Without a validator, references are not checked here.
    let (s, _, v) = api
        .call(
            Method::PUT,
            "/workspaces/default/routes/r",
            Some(json!({ "body": { "paths": ["/"], "service": "nowhere" } })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

// ---- app keys ----------------------------------------------------------------

fn keys_of(doc: &Value) -> Vec<Value> {
    doc["body"]["keys"].as_array().unwrap().clone()
}

fn key_by_hash<'a>(keys: &'a [Value], hash: &str) -> &'a Value {
    keys.iter()
        .find(|k| k["hash"] == hash)
        .unwrap_or_else(|| panic!("no key {hash} in {keys:?}"))
}

fn time(v: &Value) -> SystemTime {
    humantime::parse_rfc3339(v.as_str().unwrap()).unwrap()
}

fn near(t: SystemTime, want: SystemTime) -> bool {
    let d = t
        .duration_since(want)
        .or_else(|_| want.duration_since(t))
        .unwrap();
    d < Duration::from_secs(300)
}

both!(app_keys);
async fn app_keys(db: Db) {
    let api = Api::start(db, None).await;
    let keys = format!("{APPS}/mobile/keys");

    // No app document: 404 that says why.
    let r = api.call(Method::POST, &keys, None).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert!(detail(&r).contains("consumer"), "{}", r.2);
    let r = api
        .call(Method::DELETE, &format!("{keys}/k1:00"), None)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");

    api.put(&format!("{APPS}/mobile"), json!({ "consumer": "acme" }))
        .await;

    // A key without a body: plaintext once, hash under the API's secret.
    let (s, h, created) = api.call(Method::POST, &keys, None).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let key1 = created["key"].as_str().unwrap().to_owned();
    let hash1 = created["hash"].as_str().unwrap().to_owned();
    assert_eq!(key1.len(), 43, "{key1}");
    assert_eq!(hash1, KeyHasher::new(SECRET).hash(&key1).to_string());
    assert_ne!(hash1, KeyHasher::default().hash(&key1).to_string());
    assert_eq!(created["expires_at"], Value::Null);
    let (_, gh, doc) = api.call(Method::GET, &format!("{APPS}/mobile"), None).await;
    assert_eq!(etag(&h), etag(&gh));
    assert_eq!(
        keys_of(&doc),
        vec![json!({ "hash": hash1, "expires_at": null, "revoked": false })]
    );
    // The plaintext is nowhere: not in the document, not in the audit log.
    assert!(!doc.to_string().contains(&key1));
    let (_, _, audit) = api
        .call(Method::GET, "/audit?kind=apps&name=mobile", None)
        .await;
    assert!(!audit.to_string().contains(&key1));
    assert_eq!(audit["data"][0]["action"], "update", "{audit}");
    assert_eq!(audit["data"][0]["actor"], "root", "{audit}");

    // Concurrent key requests without If-Match all land: one that loses
    // the race to another is retried on the new version.
    let results = futures_util::future::join_all(
        (0..4).map(|_| api.call(Method::POST, &keys, Some(json!({})))),
    )
    .await;
    for r in &results {
        assert_eq!(r.0, StatusCode::CREATED, "{}", r.2);
    }
    let (_, _, doc) = api.call(Method::GET, &format!("{APPS}/mobile"), None).await;
    assert_eq!(keys_of(&doc).len(), 5, "{doc}");

    // An expiry in the future is kept; one in the past is refused.
    let until = "2099-01-01T00:00:00Z";
    let (s, _, v) = api
        .call(Method::POST, &keys, Some(json!({ "expires_at": until })))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let far = v["hash"].as_str().unwrap().to_owned();
    assert_eq!(v["expires_at"], until);
    let soon = SystemTime::now() + Duration::from_secs(3600);
    let (s, _, v) = api
        .call(
            Method::POST,
            &keys,
            Some(json!({ "expires_at": humantime::format_rfc3339_seconds(soon).to_string() })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let soon_hash = v["hash"].as_str().unwrap().to_owned();
    let r = api
        .call(
            Method::POST,
            &keys,
            Some(json!({ "expires_at": "2020-01-01T00:00:00Z" })),
        )
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-entity");
    assert!(detail(&r).starts_with("expires_at: "), "{}", r.2);

    // Revoke one; revoking again is fine; an unknown hash is 404.
    let (s, _, v) = api
        .call(Method::DELETE, &format!("{keys}/{hash1}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(key_by_hash(&keys_of(&v), &hash1)["revoked"], true);
    let (s, _, _) = api
        .call(Method::DELETE, &format!("{keys}/{hash1}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let other = KeyHasher::new(SECRET)
        .hash("not-a-key-of-this-app")
        .to_string();
    for bad in [other.as_str(), "garbage", "k1:zz"] {
        let r = api
            .call(Method::DELETE, &format!("{keys}/{bad}"), None)
            .await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    }

    // Rotation: every other live key without an earlier expiry gets
    // now + overlap; revoked keys and keys expiring sooner keep theirs.
    let (_, _, before) = api.call(Method::GET, &format!("{APPS}/mobile"), None).await;
    let (s, _, rot) = api
        .call(
            Method::POST,
            &keys,
            Some(json!({ "rotate": { "overlap": "24h" } })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{rot}");
    let new_hash = rot["hash"].as_str().unwrap().to_owned();
    let (_, _, after) = api.call(Method::GET, &format!("{APPS}/mobile"), None).await;
    let after_keys = keys_of(&after);
    assert_eq!(after_keys.len(), keys_of(&before).len() + 1);
    let cutoff = SystemTime::now() + Duration::from_secs(24 * 3600);
    let mut rotated = BTreeSet::new();
    for k in &after_keys {
        let hash = k["hash"].as_str().unwrap();
        let old = keys_of(&before).into_iter().find(|o| o["hash"] == hash);
        if hash == new_hash {
            assert_eq!(k["expires_at"], Value::Null, "{k}");
            assert_eq!(k["revoked"], false);
        } else if hash == hash1 {
            assert_eq!(k["revoked"], true);
            assert_eq!(
                k["expires_at"],
                Value::Null,
                "revoked keys are left alone: {k}"
            );
        } else if hash == soon_hash {
            assert_eq!(k, &old.unwrap(), "an earlier expiry is kept");
        } else {
            assert!(near(time(&k["expires_at"]), cutoff), "{k}");
            rotated.insert(hash.to_owned());
        }
    }
    assert!(rotated.contains(&far), "{after}");
    let reported: BTreeSet<String> = rot["rotated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["hash"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reported, rotated);
    let (_, h, _) = api.call(Method::GET, &format!("{APPS}/mobile"), None).await;
    let version = etag(&h);

    // Bad rotations and bodies: nothing changes.
    for (body, status, slug) in [
        (
            json!({ "rotate": { "overlap": "0s" } }),
            422,
            "invalid-entity",
        ),
        (
            json!({ "rotate": { "overlap": "91d" } }),
            422,
            "invalid-entity",
        ),
        (
            json!({ "rotate": { "overlap": "soon" } }),
            422,
            "invalid-entity",
        ),
        (json!({ "rotate": {} }), 400, "invalid-entity"),
        (
            json!({ "rotate": { "overlap": "1h", "x": 1 } }),
            400,
            "invalid-entity",
        ),
        (
            json!({ "expires": "2099-01-01T00:00:00Z" }),
            400,
            "invalid-entity",
        ),
        (json!({ "expires_at": "next week" }), 400, "invalid-entity"),
    ] {
        let r = api.call(Method::POST, &keys, Some(body.clone())).await;
        assert_problem(&r, StatusCode::from_u16(status).unwrap(), slug);
        if status == 422 {
            assert!(
                detail(&r).starts_with("rotate.overlap: "),
                "{body}: {}",
                r.2
            );
        }
    }
    let r = api
        .send(
            api.req(Method::POST, &keys, &api.root).body("{not json"),
            None,
        )
        .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "bad-request");
    // The maximum is allowed.
    let (s, _, v) = api
        .call(
            Method::POST,
            &keys,
            Some(json!({ "rotate": { "overlap": "90days" } })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, h, _) = api.call(Method::GET, &format!("{APPS}/mobile"), None).await;
    assert_ne!(etag(&h), version);
    let version = etag(&h);

    // If-Match: stale is 412 (nothing written), current works; If-None-Match is refused.
    let r = api
        .send(
            api.req(Method::POST, &keys, &api.root)
                .header("if-match", "\"1\""),
            None,
        )
        .await;
    assert_problem(&r, StatusCode::PRECONDITION_FAILED, "precondition-failed");
    let r = api
        .send(
            api.req(Method::DELETE, &format!("{keys}/{new_hash}"), &api.root)
                .header("if-match", "\"1\""),
            None,
        )
        .await;
    assert_problem(&r, StatusCode::PRECONDITION_FAILED, "precondition-failed");
    let r = api
        .send(
            api.req(Method::POST, &keys, &api.root)
                .header("if-none-match", "*"),
            None,
        )
        .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "bad-request");
    let (_, h, _) = api.call(Method::GET, &format!("{APPS}/mobile"), None).await;
    assert_eq!(etag(&h), version, "refused requests changed nothing");
    let (s, h, v) = api
        .send(
            api.req(Method::POST, &keys, &api.root)
                .header("if-match", &version),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let version2 = etag(&h);
    let (s, _, _) = api
        .send(
            api.req(Method::DELETE, &format!("{keys}/{new_hash}"), &api.root)
                .header("if-match", &version2),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // Roles: read-only, auditor and another workspace's admin may not.
    api.call(
        Method::POST,
        "/workspaces",
        Some(json!({ "name": "other" })),
    )
    .await;
    let ro = api.token("viewer", Role::ReadOnly).await;
    let aud = api.token("auditor", Role::Auditor).await;
    let wa_other = api
        .token(
            "other-admin",
            Role::WorkspaceAdmin {
                workspace: "other".into(),
            },
        )
        .await;
    for t in [&ro, &aud, &wa_other] {
        let r = api.send(api.req(Method::POST, &keys, t), None).await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
        let r = api
            .send(api.req(Method::DELETE, &format!("{keys}/{far}"), t), None)
            .await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
    }
    let wa = api
        .token(
            "default-admin",
            Role::WorkspaceAdmin {
                workspace: "default".into(),
            },
        )
        .await;
    let (s, _, _) = api.send(api.req(Method::POST, &keys, &wa), None).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, _, audit) = api
        .call(Method::GET, "/audit?kind=app&name=mobile&limit=1", None)
        .await;
    assert_eq!(audit["data"][0]["actor"], "default-admin", "{audit}");
}

// ---- subscriptions -------------------------------------------------------------

const SUBS: &str = "/workspaces/default/subscriptions";

fn sub(api: &str) -> Value {
    json!({ "app": "mobile", "api": api, "plan": "gold" })
}

both!(subscription_status_and_approval);
async fn subscription_status_and_approval(db: Db) {
    let api = Api::start(db, None).await;
    let apis = "/workspaces/default/apis";
    // One version of `orders` needs approval: every subscription to `orders` does.
    api.put(
        &format!("{apis}/orders@v1"),
        json!({ "name": "orders", "version": "v1", "approval": true }),
    )
    .await;
    api.put(
        &format!("{apis}/orders@v2"),
        json!({ "name": "orders", "version": "v2" }),
    )
    .await;
    api.put(
        &format!("{apis}/free@v1"),
        json!({ "name": "free", "version": "v1", "approval": false }),
    )
    .await;

    // API documents are named `<name>@<version>` (as `config apply` stores them).
    let (s, _, v) = api
        .call(
            Method::POST,
            apis,
            Some(json!({ "body": { "name": "free", "version": "v2" } })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["name"], "free@v2");
    let filled = api.put(&format!("{apis}/misc@2.0"), json!({})).await;
    assert_eq!(filled["body"]["name"], "misc");
    assert_eq!(filled["body"]["version"], "2.0");
    for (path, body, starts) in [
        ("orders@v3", json!({ "name": "other" }), "body.name: "),
        ("orders@v3", json!({ "version": "v4" }), "body.version: "),
        (
            "orders",
            json!({ "name": "orders", "version": "v3" }),
            "name: ",
        ),
        ("orders@", json!({}), "name: "),
    ] {
        let r = api
            .call(
                Method::PUT,
                &format!("{apis}/{path}"),
                Some(json!({ "body": body })),
            )
            .await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-entity");
        assert!(detail(&r).starts_with(starts), "{path}: {}", r.2);
    }

    let (s, _, v) = api
        .call(
            Method::POST,
            SUBS,
            Some(json!({ "name": "s1", "body": sub("orders") })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["body"]["status"], "pending");
    let mut v2 = sub("orders");
    v2["version"] = json!("v2");
    assert_eq!(
        api.put(&format!("{SUBS}/s1v2"), v2).await["body"]["status"],
        "pending"
    );
    assert_eq!(
        api.put(&format!("{SUBS}/s2"), sub("free")).await["body"]["status"],
        "approved"
    );
    assert_eq!(
        api.put(&format!("{SUBS}/s3"), sub("unknown")).await["body"]["status"],
        "approved"
    );
    let mut explicit = sub("orders");
    explicit["status"] = json!("approved");
    assert_eq!(
        api.put(&format!("{SUBS}/s4"), explicit).await["body"]["status"],
        "approved"
    );
    // Replacing an existing subscription without status keeps its status.
    let mut gold = sub("free");
    gold["plan"] = json!("silver");
    api.put(
        &format!("{SUBS}/s2"),
        json!({ "app": "mobile", "api": "free", "plan": "silver", "status": "rejected" }),
    )
    .await;
    assert_eq!(
        api.put(&format!("{SUBS}/s2"), gold).await["body"]["status"],
        "rejected"
    );
    // A subscription without status or api is still a validation error.
    let r = api
        .call(
            Method::PUT,
            &format!("{SUBS}/bad"),
            Some(json!({ "body": { "app": "mobile", "plan": "gold" } })),
        )
        .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-entity");

    // Approve as a workspace admin, with a reason.
    let lead = api
        .token(
            "team-lead",
            Role::WorkspaceAdmin {
                workspace: "default".into(),
            },
        )
        .await;
    let (s, h, v) = api
        .send(
            api.req(Method::POST, &format!("{SUBS}/s1/approve"), &lead),
            Some(json!({ "reason": "contract signed" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"]["status"], "approved");
    assert_eq!(v["previous_status"], "pending");
    assert_eq!(v["reason"], "contract signed");
    assert_eq!(etag(&h), format!("\"{}\"", v["version"]));
    let (_, _, got) = api.call(Method::GET, &format!("{SUBS}/s1"), None).await;
    assert_eq!(got["body"]["status"], "approved");
    assert!(got["body"].get("reason").is_none(), "{got}");

    // The audit log shows who approved, with the status before and after.
    let (_, _, audit) = api
        .call(Method::GET, "/audit?kind=subscriptions&name=s1", None)
        .await;
    let e = &audit["data"][0];
    assert_eq!(e["actor"], "team-lead", "{e}");
    assert_eq!(e["action"], "update", "{e}");
    assert_eq!(e["before"]["body"]["status"], "pending", "{e}");
    assert_eq!(e["after"]["body"]["status"], "approved", "{e}");

    // Reject (no body), as root.
    let (s, _, v) = api
        .call(Method::POST, &format!("{SUBS}/s1/reject"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"]["status"], "rejected");
    assert_eq!(v["previous_status"], "approved");
    assert_eq!(v["reason"], Value::Null);
    let (_, _, audit) = api
        .call(
            Method::GET,
            "/audit?kind=subscription&name=s1&limit=1",
            None,
        )
        .await;
    assert_eq!(audit["data"][0]["actor"], "root");
    assert_eq!(audit["data"][0]["after"]["body"]["status"], "rejected");

    // Who may not.
    api.call(
        Method::POST,
        "/workspaces",
        Some(json!({ "name": "other" })),
    )
    .await;
    let ro = api.token("viewer", Role::ReadOnly).await;
    let aud = api.token("auditor", Role::Auditor).await;
    let wa_other = api
        .token(
            "other-admin",
            Role::WorkspaceAdmin {
                workspace: "other".into(),
            },
        )
        .await;
    for t in [&ro, &aud, &wa_other] {
        for action in ["approve", "reject"] {
            let r = api
                .send(
                    api.req(Method::POST, &format!("{SUBS}/s1v2/{action}"), t),
                    None,
                )
                .await;
            assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
        }
    }
    let (_, _, got) = api.call(Method::GET, &format!("{SUBS}/s1v2"), None).await;
    assert_eq!(got["body"]["status"], "pending");

    // Missing subscription, bad bodies, stale If-Match.
    let r = api
        .call(Method::POST, &format!("{SUBS}/nope/approve"), None)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not-found");
    assert!(detail(&r).contains("nope"), "{}", r.2);
    let r = api
        .call(
            Method::POST,
            &format!("{SUBS}/s1v2/approve"),
            Some(json!({ "why": "x" })),
        )
        .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-entity");
    let r = api
        .send(
            api.req(Method::POST, &format!("{SUBS}/s1v2/approve"), &api.root)
                .body("{"),
            None,
        )
        .await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "bad-request");
    let r = api
        .send(
            api.req(Method::POST, &format!("{SUBS}/s1v2/approve"), &api.root)
                .header("if-match", "\"1\""),
            None,
        )
        .await;
    assert_problem(&r, StatusCode::PRECONDITION_FAILED, "precondition-failed");
    let (_, h, got) = api.call(Method::GET, &format!("{SUBS}/s1v2"), None).await;
    assert_eq!(got["body"]["status"], "pending");
    let (s, _, v) = api
        .send(
            api.req(Method::POST, &format!("{SUBS}/s1v2/approve"), &api.root)
                .header("if-match", etag(&h)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"]["status"], "approved");
    // Not a subscription path: the approve endpoint exists for subscriptions only.
    let (s, _, _) = api
        .call(Method::POST, "/workspaces/default/services/x/approve", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

// ---- the validator hook ----------------------------------------------------------

/// Rejects routes whose `service` names no service document in the same
/// workspace, apps with more than three live keys, and everything while
/// frozen (with two messages).
#[derive(Default)]
struct TestValidator {
    frozen: AtomicBool,
}

impl Validator for TestValidator {
    fn check(&self, documents: &[Document]) -> Result<(), Vec<String>> {
        if self.frozen.load(Ordering::SeqCst) {
            return Err(vec!["frozen".into(), "no changes allowed".into()]);
        }
        let services: BTreeSet<(&str, &str)> = documents
            .iter()
            .filter(|d| d.kind == Kind::Service)
            .map(|d| (d.workspace.as_str(), d.name.as_str()))
            .collect();
        let mut errors = Vec::new();
        for d in documents {
            if d.kind == Kind::Route
                && let Some(s) = d.body.get("service").and_then(Value::as_str)
                && !services.contains(&(d.workspace.as_str(), s))
            {
                errors.push(format!(
                    "route `{}`: no service `{s}` in workspace `{}`",
                    d.name, d.workspace
                ));
            }
            if d.kind == Kind::App {
                let live = d.body["keys"]
                    .as_array()
                    .map_or(0, |k| k.iter().filter(|k| k["revoked"] != true).count());
                if live > 3 {
                    errors.push(format!("app `{}`: more than 3 live keys", d.name));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

fn assert_rejected(r: &Resp, errors: &[&str]) {
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-entity");
    assert_eq!(r.2["errors"], json!(errors), "{}", r.2);
    assert_eq!(detail(r), errors.join("; "));
}

both!(validator_hook);
async fn validator_hook(db: Db) {
    let validator = Arc::new(TestValidator::default());
    let api = Api::start(db, Some(validator.clone())).await;
    let routes = "/workspaces/default/routes";
    let svcs = "/workspaces/default/services";

    // A route naming a missing service: 422, nothing written.
    let r = api
        .call(
            Method::PUT,
            &format!("{routes}/r"),
            Some(json!({ "body": { "paths": ["/"], "service": "svc" } })),
        )
        .await;
    assert_rejected(&r, &["route `r`: no service `svc` in workspace `default`"]);
    let (s, _, _) = api.call(Method::GET, &format!("{routes}/r"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A service of the same name in another workspace does not count.
    api.call(
        Method::POST,
        "/workspaces",
        Some(json!({ "name": "other" })),
    )
    .await;
    api.put(
        "/workspaces/other/services/svc",
        json!({ "url": "http://127.0.0.1:1" }),
    )
    .await;
    let r = api
        .call(
            Method::POST,
            routes,
            Some(json!({ "body": { "name": "r", "paths": ["/"], "service": "svc" } })),
        )
        .await;
    assert_rejected(&r, &["route `r`: no service `svc` in workspace `default`"]);

    // With the service (a new document in the candidate), the route is fine.
    api.put(
        &format!("{svcs}/svc"),
        json!({ "url": "http://127.0.0.1:1" }),
    )
    .await;
    api.put(
        &format!("{routes}/r"),
        json!({ "paths": ["/"], "service": "svc" }),
    )
    .await;
    // A replaced body is what is checked (PUT and PATCH).
    let r = api
        .call(
            Method::PUT,
            &format!("{routes}/r"),
            Some(json!({ "body": { "paths": ["/"], "service": "gone" } })),
        )
        .await;
    assert_rejected(&r, &["route `r`: no service `gone` in workspace `default`"]);
    let r = api
        .call(
            Method::PATCH,
            &format!("{routes}/r"),
            Some(json!({ "body": { "service": "gone" } })),
        )
        .await;
    assert_rejected(&r, &["route `r`: no service `gone` in workspace `default`"]);
    // A delete is checked on the state without the document.
    let r = api.call(Method::DELETE, &format!("{svcs}/svc"), None).await;
    assert_rejected(&r, &["route `r`: no service `svc` in workspace `default`"]);
    let (s, _, _) = api.call(Method::GET, &format!("{svcs}/svc"), None).await;
    assert_eq!(s, StatusCode::OK);

    // The key endpoint is checked on the app with the new key.
    api.put(&format!("{APPS}/mobile"), json!({ "consumer": "acme" }))
        .await;
    let keys = format!("{APPS}/mobile/keys");
    let mut hashes = Vec::new();
    for _ in 0..3 {
        let (s, _, v) = api.call(Method::POST, &keys, None).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        hashes.push(v["hash"].as_str().unwrap().to_owned());
    }
    let r = api.call(Method::POST, &keys, None).await;
    assert_rejected(&r, &["app `mobile`: more than 3 live keys"]);
    let (_, _, doc) = api.call(Method::GET, &format!("{APPS}/mobile"), None).await;
    assert_eq!(keys_of(&doc).len(), 3);
    // Revoking one makes room.
    let (s, _, _) = api
        .call(Method::DELETE, &format!("{keys}/{}", hashes[0]), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = api.call(Method::POST, &keys, None).await;
    assert_eq!(s, StatusCode::CREATED);

    api.put(
        &format!("{SUBS}/s"),
        json!({ "app": "mobile", "api": "a", "plan": "p" }),
    )
    .await;

    // Frozen: every write endpoint runs the check; nothing changes.
    validator.frozen.store(true, Ordering::SeqCst);
    let revision = api.store.revision().await.unwrap();
    let audit = api.audit_len().await;
    let svc = json!({ "body": { "url": "http://127.0.0.1:2" } });
    for (m, p, body) in [
        (
            Method::POST,
            svcs.to_owned(),
            Some(json!({ "name": "n", "body": { "url": "http://127.0.0.1:2" } })),
        ),
        (Method::PUT, format!("{svcs}/svc"), Some(svc.clone())),
        (Method::PUT, format!("{svcs}/new"), Some(svc.clone())),
        (
            Method::PATCH,
            format!("{svcs}/svc"),
            Some(json!({ "tags": ["x"] })),
        ),
        (Method::DELETE, format!("{routes}/r"), None),
        (
            Method::POST,
            "/workspaces".to_owned(),
            Some(json!({ "name": "third" })),
        ),
        (
            Method::PUT,
            "/workspaces/other".to_owned(),
            Some(json!({ "body": { "description": "d" } })),
        ),
        (Method::POST, keys.clone(), None),
        (Method::DELETE, format!("{keys}/{}", hashes[1]), None),
        (Method::POST, format!("{SUBS}/s/approve"), None),
        (
            Method::POST,
            format!("{SUBS}/s/reject"),
            Some(json!({ "reason": "r" })),
        ),
    ] {
        let r = api.call(m.clone(), &p, body).await;
        assert_eq!(r.0, StatusCode::UNPROCESSABLE_ENTITY, "{m} {p}: {}", r.2);
        assert_rejected(&r, &["frozen", "no changes allowed"]);
    }
    assert_eq!(api.store.revision().await.unwrap(), revision);
    assert_eq!(api.audit_len().await, audit);
    // Reads are not checked.
    let (s, _, _) = api.call(Method::GET, &format!("{svcs}/svc"), None).await;
    assert_eq!(s, StatusCode::OK);

    validator.frozen.store(false, Ordering::SeqCst);
    let (s, _, v) = api.call(Method::DELETE, &format!("{routes}/r"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _, v) = api.call(Method::DELETE, &format!("{svcs}/svc"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
}

// The check reuses the state it validated after the API's own writes; a
// write through another handle (another node, `config apply`) moves the
// revision, and the next check must see it, both ways.
both!(validator_sees_writes_made_elsewhere);
async fn validator_sees_writes_made_elsewhere(db: Db) {
    let api = Api::start(db, Some(Arc::new(TestValidator::default()))).await;
    let svc = |name: &str| NewDocument {
        workspace: "default".into(),
        kind: Kind::Service,
        name: name.into(),
        tags: vec![],
        body: json!({ "name": name, "url": "http://127.0.0.1:1" }),
    };
    // Prime the cache with the API's own writes.
    api.put(
        "/workspaces/default/services/mine",
        json!({ "url": "http://127.0.0.1:1" }),
    )
    .await;
    api.put(
        "/workspaces/default/routes/r0",
        json!({ "paths": ["/0"], "service": "mine" }),
    )
    .await;
    // A service written past the API: a route to it is accepted ...
    let url = match &api._db {
        Holder::Dir(d) => format!("sqlite://{}", d.path().join("gatehouse.db").display()),
        Holder::Pg(pg) => pg.url().to_owned(),
    };
    let other = gatehouse_store::open(&url).await.unwrap();
    other
        .put("elsewhere", svc("theirs"), Expect::Absent)
        .await
        .unwrap();
    api.put(
        "/workspaces/default/routes/r1",
        json!({ "paths": ["/1"], "service": "theirs" }),
    )
    .await;
    // ... and a service deleted past the API is gone for the next check.
    api.put(
        "/workspaces/default/services/doomed",
        json!({ "url": "http://127.0.0.1:1" }),
    )
    .await;
    other
        .delete("elsewhere", "default", Kind::Service, "doomed", Expect::Any)
        .await
        .unwrap();
    let r = api
        .call(
            Method::PUT,
            "/workspaces/default/routes/r2",
            Some(json!({ "body": { "paths": ["/2"], "service": "doomed" } })),
        )
        .await;
    assert_rejected(
        &r,
        &["route `r2`: no service `doomed` in workspace `default`"],
    );
}
