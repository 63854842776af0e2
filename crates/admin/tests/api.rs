#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The admin API over real HTTP (reqwest against the real router on
//! 127.0.0.1:0), on both store backends: every case is an async fn taking
//! an `Api` (server + super-admin token), run as `<case>::sqlite` and
//! `<case>::postgres`.
//!
//! PostgreSQL must be reachable at 127.0.0.1:5432 as `postgres` with trust
//! auth (override with GATEHOUSE_TEST_POSTGRES); the postgres tests fail if
//! it is not (`.ci/run` starts it).

use std::collections::BTreeSet;
use std::sync::Arc;

use gatehouse_store::{Role, Store};
use gatehouse_testkit::pg::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

enum Fixture {
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        _db: TestDb,
        url: String,
    },
}

impl Fixture {
    fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
        Fixture::Sqlite { _dir: dir, url }
    }

    async fn postgres() -> Fixture {
        let db = TestDb::create("gh_admin");
        let url = db.url().to_owned();
        Fixture::Postgres { _db: db, url }
    }

    fn url(&self) -> &str {
        match self {
            Fixture::Sqlite { url, .. } | Fixture::Postgres { url, .. } => url,
        }
    }
}

/// A running admin API and a super-admin token.
struct Api {
    base: String,
    store: Arc<dyn Store>,
    root: String,
    http: reqwest::Client,
    _server: gatehouse_admin::Background,
    _fixture: Fixture,
}

impl Api {
    async fn start(fixture: Fixture) -> Api {
        let store = gatehouse_store::open(fixture.url()).await.unwrap();
        let root = store
            .create_token("test", "root", Role::SuperAdmin)
            .await
            .unwrap()
            .plaintext;
        let server =
            gatehouse_admin::Background::start(gatehouse_admin::AppState::new(store.clone()))
                .await
                .unwrap();
        let base = server.base().to_string();
        Api {
            base,
            store,
            root,
            http: reqwest::Client::new(),
            _server: server,
            _fixture: fixture,
        }
    }

    async fn token(&self, name: &str, role: Role) -> String {
        self.store
            .create_token("test", name, role)
            .await
            .unwrap()
            .plaintext
    }

    fn req(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends as root; returns status, headers and JSON (Null if empty).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.send(self.req(method, path, Some(&self.root)), body)
            .await
    }

    async fn send(
        &self,
        mut r: reqwest::RequestBuilder,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
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
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, headers, v)
    }
}

macro_rules! both {
    ($case:ident) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(super::Api::start(super::Fixture::sqlite()).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case(super::Api::start(super::Fixture::postgres().await).await).await;
            }
        }
    };
}

fn assert_problem(headers: &reqwest::header::HeaderMap, v: &Value, slug: &str) {
    assert_eq!(headers["content-type"], "application/problem+json", "{v}");
    assert_eq!(v["type"], format!("urn:gatehouse:problem:{slug}"), "{v}");
}

fn etag(h: &reqwest::header::HeaderMap) -> String {
    h["etag"].to_str().unwrap().to_owned()
}

const SVC: &str = "/workspaces/default/services";

both!(service_crud);
async fn service_crud(api: Api) {
    let (s, h, v) = api
        .call(
            Method::POST,
            SVC,
            Some(json!({ "tags": ["t1"], "body": { "name": "billing", "url": "http://127.0.0.1:9000" } })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["name"], "billing");
    assert_eq!(v["workspace"], "default");
    assert_eq!(v["tags"], json!(["t1"]));
    assert_eq!(v["body"]["url"], "http://127.0.0.1:9000");
    let version = v["version"].as_u64().unwrap();
    assert_eq!(etag(&h), format!("\"{version}\""));
    for key in ["id", "created_at", "updated_at"] {
        assert!(v.get(key).is_some(), "{key} missing in {v}");
    }

    let (s, h, got) = api.call(Method::GET, &format!("{SVC}/billing"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(etag(&h), format!("\"{version}\""));
    assert_eq!(got["id"], v["id"]);

    let (s, _, list) = api.call(Method::GET, SVC, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["next"], Value::Null);

    // PUT replaces; the name in the body may be left out (filled from the path).
    let (s, h, up) = api
        .call(
            Method::PUT,
            &format!("{SVC}/billing"),
            Some(json!({ "body": { "url": "http://127.0.0.1:9001" } })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{up}");
    assert_eq!(up["body"]["url"], "http://127.0.0.1:9001");
    assert_eq!(up["body"]["name"], "billing");
    assert_eq!(up["tags"], json!([]));
    assert!(up["version"].as_u64().unwrap() > version);
    assert_eq!(etag(&h), format!("\"{}\"", up["version"]));

    // PUT of a new name creates (201).
    let (s, _, _) = api
        .call(
            Method::PUT,
            &format!("{SVC}/other"),
            Some(json!({ "body": { "url": "http://127.0.0.1:9002" } })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // PATCH merges into the body.
    let (s, _, p) = api
        .call(
            Method::PATCH,
            &format!("{SVC}/other"),
            Some(json!({ "tags": ["x"], "body": { "url": "http://127.0.0.1:9003" } })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["body"]["url"], "http://127.0.0.1:9003");
    assert_eq!(p["tags"], json!(["x"]));

    let (s, _, _) = api
        .call(Method::DELETE, &format!("{SVC}/billing"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, h, v) = api.call(Method::GET, &format!("{SVC}/billing"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_problem(&h, &v, "not-found");
    let (s, h, v) = api
        .call(Method::DELETE, &format!("{SVC}/billing"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_problem(&h, &v, "not-found");

    // Unknown kinds and endpoints are problem+json 404s.
    let (s, h, v) = api
        .call(Method::GET, "/workspaces/default/widgets", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_problem(&h, &v, "not-found");
    let (s, h, v) = api.call(Method::GET, "/nope", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_problem(&h, &v, "not-found");
    let (s, h, v) = api.call(Method::DELETE, "/audit", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_problem(&h, &v, "method-not-allowed");
}

both!(etags_and_preconditions);
async fn etags_and_preconditions(api: Api) {
    let path = format!("{SVC}/s");
    let body = |port: u16| json!({ "body": { "url": format!("http://127.0.0.1:{port}") } });
    let (_, h, _) = api.call(Method::PUT, &path, Some(body(1))).await;
    let v1 = etag(&h);

    // If-None-Match: * on an existing document: 409 (already exists).
    let (s, h, v) = api
        .send(
            api.req(Method::PUT, &path, Some(&api.root))
                .header("if-none-match", "*"),
            Some(body(2)),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_problem(&h, &v, "conflict");

    // If-Match with the current version succeeds.
    let (s, h, _) = api
        .send(
            api.req(Method::PUT, &path, Some(&api.root))
                .header("if-match", &v1),
            Some(body(3)),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let v2 = etag(&h);
    assert_ne!(v1, v2);

    // The stale version: 412, nothing changes.
    let (s, h, v) = api
        .send(
            api.req(Method::PUT, &path, Some(&api.root))
                .header("if-match", &v1),
            Some(body(4)),
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{v}");
    assert_problem(&h, &v, "precondition-failed");
    let (_, _, cur) = api.call(Method::GET, &path, None).await;
    assert_eq!(cur["body"]["url"], "http://127.0.0.1:3");

    // DELETE honours If-Match too.
    let (s, _, _) = api
        .send(
            api.req(Method::DELETE, &path, Some(&api.root))
                .header("if-match", &v1),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);
    // PATCH with a stale If-Match: 412.
    let (s, _, _) = api
        .send(
            api.req(Method::PATCH, &path, Some(&api.root))
                .header("if-match", &v1),
            Some(json!({ "tags": ["z"] })),
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);

    // Two concurrent PUTs with the same If-Match: exactly one wins.
    let a = api.send(
        api.req(Method::PUT, &path, Some(&api.root))
            .header("if-match", &v2),
        Some(body(5)),
    );
    let b = api.send(
        api.req(Method::PUT, &path, Some(&api.root))
            .header("if-match", &v2),
        Some(body(6)),
    );
    let ((sa, _, _), (sb, _, _)) = tokio::join!(a, b);
    let mut got = vec![sa, sb];
    got.sort();
    assert_eq!(got, vec![StatusCode::OK, StatusCode::PRECONDITION_FAILED]);

    let (_, h, _) = api.call(Method::GET, &path, None).await;
    let (s, _, _) = api
        .send(
            api.req(Method::DELETE, &path, Some(&api.root))
                .header("if-match", etag(&h)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

both!(duplicates_and_validation);
async fn duplicates_and_validation(api: Api) {
    let svc = json!({ "body": { "name": "dup", "url": "http://127.0.0.1:1" } });
    let (s, _, _) = api.call(Method::POST, SVC, Some(svc.clone())).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, h, v) = api.call(Method::POST, SVC, Some(svc)).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_problem(&h, &v, "conflict");

    // Unknown key in the entity: 400 naming it.
    let (s, h, v) = api
        .call(
            Method::PUT,
            &format!("{SVC}/bad"),
            Some(json!({ "body": { "url": "http://127.0.0.1:1", "colour": "red" } })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_problem(&h, &v, "invalid-entity");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.starts_with("body"), "{detail}");
    assert!(detail.contains("colour"), "{detail}");

    // Wrong type: the field path is named.
    let (s, h, v) = api
        .call(
            Method::PUT,
            &format!("{SVC}/bad"),
            Some(json!({ "body": { "url": 42 } })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_problem(&h, &v, "invalid-entity");
    assert!(
        v["detail"].as_str().unwrap().starts_with("body.url: "),
        "{v}"
    );

    // Nested: a route's priority must be a number.
    let (s, _, v) = api
        .call(
            Method::PUT,
            "/workspaces/default/routes/r",
            Some(json!({ "body": { "paths": ["/"], "priority": "high" } })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["detail"].as_str().unwrap().starts_with("body.priority: "),
        "{v}"
    );

    // The body's name must equal the document name.
    let (s, _, v) = api
        .call(
            Method::PUT,
            &format!("{SVC}/one"),
            Some(json!({ "body": { "name": "two", "url": "http://127.0.0.1:1" } })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["detail"].as_str().unwrap().starts_with("body.name: "),
        "{v}"
    );
    // A consumer's is `username`.
    let (s, _, v) = api
        .call(
            Method::PUT,
            "/workspaces/default/consumers/alice",
            Some(json!({ "body": { "username": "bob" } })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["detail"].as_str().unwrap().starts_with("body.username: "),
        "{v}"
    );

    // Unknown key in the envelope; not JSON at all.
    let (s, _, v) = api
        .call(Method::PUT, &format!("{SVC}/x"), Some(json!({ "bdy": {} })))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["detail"].as_str().unwrap().contains("bdy"), "{v}");
    let (s, h, v) = api
        .send(
            api.req(Method::PUT, &format!("{SVC}/x"), Some(&api.root))
                .body("{not json"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_problem(&h, &v, "bad-request");

    // Other kinds validate against their types.
    let (s, _, v) = api
        .call(
            Method::PUT,
            "/workspaces/default/subscriptions/s1",
            Some(
                json!({ "body": { "app": "a", "api": "p", "plan": "gold", "status": "approved" } }),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _, v) = api
        .call(
            Method::PUT,
            "/workspaces/default/subscriptions/s2",
            Some(json!({ "body": { "app": "a", "api": "p", "plan": "gold", "status": "maybe" } })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["detail"].as_str().unwrap().starts_with("body.status: "),
        "{v}"
    );
    let (s, _, v) = api
        .call(
            Method::PUT,
            "/workspaces/default/certificates/c",
            Some(json!({ "body": { "cert": "PEM" } })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["detail"].as_str().unwrap().contains("key"), "{v}");

    // A document in a workspace that does not exist.
    let (s, _, v) = api
        .call(
            Method::PUT,
            "/workspaces/nowhere/services/s",
            Some(json!({ "body": { "url": "http://127.0.0.1:1" } })),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("nowhere"), "{v}");

    // Limits out of range.
    let (s, _, _) = api
        .call(Method::GET, &format!("{SVC}?limit=1001"), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = api.call(Method::GET, &format!("{SVC}?limit=0"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

both!(pagination_with_tags);
async fn pagination_with_tags(api: Api) {
    for i in 0..150 {
        let tags = if i % 3 == 0 {
            json!(["blue", "x"])
        } else {
            json!(["red"])
        };
        let (s, _, v) = api
            .call(
                Method::PUT,
                &format!("/workspaces/default/routes/r{i:03}"),
                Some(json!({ "tags": tags, "body": { "paths": [format!("/r{i}")] } })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/workspaces/default/routes?limit=40".to_owned();
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let (s, _, v) = api.call(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        pages += 1;
        seen.extend(
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_owned()),
        );
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    let expected: Vec<String> = (0..150).map(|i| format!("r{i:03}")).collect();
    assert_eq!(seen, expected);

    // Default page size is 100.
    let (_, _, v) = api
        .call(Method::GET, "/workspaces/default/routes", None)
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 100);
    assert!(v["next"].is_string());

    // Tags: all of them must match.
    let (_, _, v) = api
        .call(
            Method::GET,
            "/workspaces/default/routes?tags=blue,x&limit=1000",
            None,
        )
        .await;
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 50);
    assert!(
        names
            .iter()
            .all(|n| n[1..].parse::<u32>().unwrap() % 3 == 0)
    );
    let (_, _, v) = api
        .call(
            Method::GET,
            "/workspaces/default/routes?tags=blue,red",
            None,
        )
        .await;
    assert_eq!(v["data"], json!([]));
}

both!(authentication);
async fn authentication(api: Api) {
    for token in [None, Some("gha_wrong"), Some("")] {
        let (s, h, v) = api.send(api.req(Method::GET, SVC, token), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_problem(&h, &v, "unauthorized");
        assert!(
            h["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    let (s, _, _) = api
        .send(
            api.req(Method::GET, SVC, None)
                .header("authorization", format!("Basic {}", api.root)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // /openapi.json needs no token.
    let (s, _, _) = api
        .send(api.req(Method::GET, "/openapi.json", None), None)
        .await;
    assert_eq!(s, StatusCode::OK);
}

both!(roles);
async fn roles(api: Api) {
    let (s, _, _) = api
        .call(Method::POST, "/workspaces", Some(json!({ "name": "a" })))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = api
        .call(
            Method::POST,
            "/workspaces",
            Some(json!({ "name": "b", "body": { "description": "team b" } })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let svc = json!({ "body": { "url": "http://127.0.0.1:1" } });
    let (s, _, _) = api
        .call(Method::PUT, "/workspaces/b/services/s", Some(svc.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED);

    let ro = api.token("viewer", Role::ReadOnly).await;
    let (s, _, _) = api
        .send(
            api.req(Method::GET, "/workspaces/b/services/s", Some(&ro)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, h, v) = api
        .send(
            api.req(Method::PUT, "/workspaces/b/services/s", Some(&ro)),
            Some(svc.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_problem(&h, &v, "forbidden");
    let (s, _, _) = api
        .send(
            api.req(Method::DELETE, "/workspaces/b/services/s", Some(&ro)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = api
        .send(api.req(Method::GET, "/tokens", Some(&ro)), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let wa = api
        .token(
            "team-a",
            Role::WorkspaceAdmin {
                workspace: "a".into(),
            },
        )
        .await;
    let (s, _, v) = api
        .send(
            api.req(Method::PUT, "/workspaces/a/services/s", Some(&wa)),
            Some(svc.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _, _) = api
        .send(
            api.req(Method::GET, "/workspaces/a/services", Some(&wa)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for (m, p) in [
        (Method::PUT, "/workspaces/b/services/s"),
        (Method::GET, "/workspaces/b/services/s"),
        (Method::GET, "/workspaces/b/services"),
        (Method::DELETE, "/workspaces/b/services/s"),
        (Method::POST, "/workspaces"),
        (Method::GET, "/audit?workspace=b"),
        (Method::POST, "/tokens"),
    ] {
        let (s, h, v) = api
            .send(api.req(m.clone(), p, Some(&wa)), Some(svc.clone()))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{m} {p}: {v}");
        assert_problem(&h, &v, "forbidden");
    }
    // Its audit view is its workspace only.
    let (s, _, v) = api
        .send(api.req(Method::GET, "/audit", Some(&wa)), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["workspace"] == "a"),
        "{v}"
    );
    assert!(!v["data"].as_array().unwrap().is_empty());

    let auditor = api.token("auditor", Role::Auditor).await;
    let (s, _, _) = api
        .send(api.req(Method::GET, "/audit", Some(&auditor)), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = api
        .send(
            api.req(Method::GET, "/workspaces/a/services", Some(&auditor)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A non-empty workspace cannot be deleted; an empty one can.
    let (s, h, v) = api.call(Method::DELETE, "/workspaces/a", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_problem(&h, &v, "invalid-entity");
    let (s, _, _) = api
        .call(Method::DELETE, "/workspaces/a/services/s", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = api.call(Method::DELETE, "/workspaces/a", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, _, v) = api.call(Method::GET, "/workspaces", None).await;
    let names: BTreeSet<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["b", "default"]));
}

both!(audit_log);
async fn audit_log(api: Api) {
    let ops = api.token("ops-bot", Role::SuperAdmin).await;
    let path = format!("{SVC}/audited");
    let (s, _, _) = api
        .send(
            api.req(Method::PUT, &path, Some(&ops)),
            Some(json!({ "body": { "url": "http://127.0.0.1:1" } })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = api
        .call(
            Method::PUT,
            &path,
            Some(json!({ "body": { "url": "http://127.0.0.1:2" } })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = api
        .send(api.req(Method::DELETE, &path, Some(&ops)), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let (s, _, v) = api
        .call(
            Method::GET,
            "/audit?workspace=default&kind=services&name=audited",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let e = v["data"].as_array().unwrap();
    assert_eq!(e.len(), 3, "{v}");
    // Newest first.
    assert_eq!(
        (e[0]["actor"].as_str(), e[0]["action"].as_str()),
        (Some("ops-bot"), Some("delete"))
    );
    assert_eq!(
        (e[1]["actor"].as_str(), e[1]["action"].as_str()),
        (Some("root"), Some("update"))
    );
    assert_eq!(
        (e[2]["actor"].as_str(), e[2]["action"].as_str()),
        (Some("ops-bot"), Some("create"))
    );
    assert_eq!(e[2]["before"], Value::Null);
    assert_eq!(e[0]["after"], Value::Null);
    let url_of = |v: &Value| {
        v.pointer("/body/url")
            .or_else(|| v.get("url"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        url_of(&e[1]["before"]),
        json!("http://127.0.0.1:1"),
        "{}",
        e[1]
    );
    assert_eq!(
        url_of(&e[1]["after"]),
        json!("http://127.0.0.1:2"),
        "{}",
        e[1]
    );

    // Paging with before/limit.
    let (_, _, p1) = api
        .call(Method::GET, "/audit?name=audited&limit=2", None)
        .await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 2);
    let next = p1["next"].as_str().unwrap().to_owned();
    let (_, _, p2) = api
        .call(
            Method::GET,
            &format!("/audit?name=audited&limit=2&before={next}"),
            None,
        )
        .await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 1);
    assert_eq!(p2["data"][0]["action"], "create");
    let (s, _, _) = api.call(Method::GET, "/audit?before=soon", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

both!(tokens);
async fn tokens(api: Api) {
    let (s, _, v) = api
        .call(
            Method::POST,
            "/tokens",
            Some(json!({ "name": "ci", "role": "read-only" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let secret = v["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("gha_"));
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["role"], "read-only");
    assert_eq!(v["created_by"], "root");

    let (s, _, _) = api
        .send(api.req(Method::GET, SVC, Some(&secret)), None)
        .await;
    assert_eq!(s, StatusCode::OK);

    // The listing never shows secrets.
    let (_, _, list) = api.call(Method::GET, "/tokens", None).await;
    assert!(!list.to_string().contains(&secret));
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id.as_str())
    );

    let (s, _, v) = api
        .call(Method::DELETE, &format!("/tokens/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["revoked_at"].is_i64(), "{v}");
    let (s, h, v) = api
        .send(api.req(Method::GET, SVC, Some(&secret)), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_problem(&h, &v, "unauthorized");

    let (s, _, _) = api.call(Method::DELETE, "/tokens/not-a-uuid", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = api
        .call(
            Method::DELETE,
            &format!("/tokens/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Bad roles.
    for body in [
        json!({ "name": "x", "role": "god" }),
        json!({ "name": "x", "role": "workspace-admin" }),
        json!({ "name": "x", "role": "workspace-admin", "workspace": "missing" }),
        json!({ "name": "x", "role": "read-only", "workspace": "default" }),
    ] {
        let (s, h, v) = api.call(Method::POST, "/tokens", Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_problem(&h, &v, "invalid-entity");
    }
    // Token changes are audited with the actor.
    let (_, _, v) = api.call(Method::GET, "/audit?kind=admin_token", None).await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "revoke" && e["actor"] == "root"),
        "{v}"
    );
}

both!(openapi_lists_every_route);
async fn openapi_lists_every_route(api: Api) {
    let (s, _, doc) = api
        .send(api.req(Method::GET, "/openapi.json", None), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(|m| (m.to_uppercase(), p.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let served: BTreeSet<(String, String)> = gatehouse_admin::ENDPOINTS
        .iter()
        .map(|e| (e.method.to_owned(), e.path.to_owned()))
        .collect();
    // The document lists `{kind}` paths once per kind.
    let expanded: BTreeSet<(String, String)> = served
        .iter()
        .flat_map(|(m, p)| {
            if p.contains("{kind}") {
                gatehouse_admin::KINDS
                    .iter()
                    .map(|(seg, _)| (m.clone(), p.replace("{kind}", seg)))
                    .collect()
            } else {
                vec![(m.clone(), p.clone())]
            }
        })
        .collect();
    assert_eq!(documented, expanded);
    // Every endpoint of the table is really routed: a request to it never
    // gets the router's 404/405 for "no such endpoint".
    for (m, p) in &served {
        let concrete = p
            .replace("{ws}", "default")
            .replace("{kind}", "services")
            .replace("{name}", "nothing")
            .replace("{app}", "nothing")
            .replace("{hash}", "k1:00")
            .replace("{id}", &uuid::Uuid::new_v4().to_string());
        let (s, _, v) = api
            .call(
                Method::from_bytes(m.as_bytes()).unwrap(),
                &concrete,
                Some(json!({})),
            )
            .await;
        assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{m} {p}");
        if s == StatusCode::NOT_FOUND {
            assert_ne!(
                v["detail"], "no such endpoint (see GET /openapi.json)",
                "{m} {p}"
            );
        }
    }
    // Every kind has its own paths.
    for (seg, _) in gatehouse_admin::KINDS {
        assert!(
            doc["paths"][format!("/workspaces/{{ws}}/{seg}/{{name}}")]["put"].is_object(),
            "{seg}"
        );
    }
    assert_eq!(gatehouse_admin::KINDS.len(), 10);
}
