//! Tenant isolation between workspaces, end to end: two workspaces written
//! through the admin API with workspace-scoped tokens (real SQLite store
//! files in a temp dir, and PostgreSQL), then the store assembled and
//! served by the real gateway in front of real upstreams. Each finding of
//! issue 8 part 3 is replayed as an attack that now fails:
//! (a) a key of A on B's `key-auth` route, (b) A's consumer-level
//! `headers` plugin on B's route, (c) a route of A on B's host with a
//! higher priority, (d) validator messages as an oracle for B's keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;

use gatehouse_config::Config;
use gatehouse_core::KeyHasher;
use gatehouse_store::{Role, Store};
use gatehouse_testkit::Upstream;
use gatehouse_testkit::pg::TestDb;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use common::{Resp, TestGateway, empty, req, send};

const SECRET: &str = "tenancy-test-key-hash-secret-0123";

/// B's keys: a plaintext credential key and an app key (hashed in the
/// store), and one revoked app key; A's key of its own.
const BOB_KEY: &str = "bob-plaintext-key-0001";
const BOB_APP_KEY: &str = "bob-app-key-0123456789";
const BOB_REVOKED_KEY: &str = "bob-revoked-key-012345";
const MALLORY_KEY: &str = "mallory-key-000000001";

#[allow(dead_code)]
enum Holder {
    Dir(tempfile::TempDir),
    Pg(TestDb),
}

/// An admin API over a fresh store, with a token per workspace.
struct World {
    base: String,
    store: Arc<dyn Store>,
    root: String,
    a: String,
    b: String,
    client: gatehouse_testkit::Client,
    _server: gatehouse_admin::Background,
    _db: Holder,
}

fn settings() -> Config {
    let mut c = Config::default();
    c.server.key_hash_secret = Some(SECRET.into());
    c.listeners = gatehouse_config::parse_str("listeners:\n  - address: 127.0.0.1:0\n", "node")
        .unwrap()
        .config
        .listeners;
    c
}

impl World {
    async fn start(url: String, holder: Holder) -> World {
        let store = gatehouse_store::open(&url).await.unwrap();
        let token = |name: &'static str, role: Role| {
            let store = store.clone();
            async move {
                store
                    .create_token("test", name, role)
                    .await
                    .unwrap()
                    .plaintext
            }
        };
        let root = token("root", Role::SuperAdmin).await;
        let state =
            gatehouse::admin::state(store.clone(), &settings(), gatehouse_plugins::registry());
        let server = gatehouse_admin::Background::start(state).await.unwrap();
        let base = server.base().to_string();
        let mut world = World {
            base,
            store: store.clone(),
            root,
            a: String::new(),
            b: String::new(),
            client: gatehouse_testkit::http1_client(),
            _server: server,
            _db: holder,
        };
        for ws in ["team-a", "team-b"] {
            let (status, body) = world
                .call("PUT", &format!("/workspaces/{ws}"), &world.root, json!({}))
                .await;
            assert_eq!(status, 201, "{body}");
        }
        // Tokens scoped to a workspace need the workspace first.
        world.a = token(
            "a-admin",
            Role::WorkspaceAdmin {
                workspace: "team-a".into(),
            },
        )
        .await;
        world.b = token(
            "b-admin",
            Role::WorkspaceAdmin {
                workspace: "team-b".into(),
            },
        )
        .await;
        world
    }

    /// `method path` with `{"body": body}` (or no body for GET/DELETE).
    async fn call(&self, method: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
        let builder = req(method, &format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        let request = if body.is_null() {
            empty(builder)
        } else {
            builder
                .body(gatehouse_testkit::body::full(
                    json!({ "body": body }).to_string(),
                ))
                .unwrap()
        };
        let resp = self.client.request(request).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    async fn put(
        &self,
        token: &str,
        ws: &str,
        kind: &str,
        name: &str,
        body: Value,
    ) -> (u16, Value) {
        self.call(
            "PUT",
            &format!("/workspaces/{ws}/{kind}/{name}"),
            token,
            body,
        )
        .await
    }

    /// The store as a node assembles and serves it.
    async fn serve(&self) -> TestGateway {
        let snapshot = self.store.snapshot().await.unwrap();
        let loaded = gatehouse_control::prepare(&snapshot.documents, &settings())
            .unwrap_or_else(|e| panic!("the store does not assemble: {e:?}"));
        TestGateway {
            gateway: gatehouse_proxy::Gateway::start(&loaded, gatehouse_plugins::registry())
                .await
                .unwrap(),
        }
    }
}

fn hash(key: &str) -> String {
    KeyHasher::new(SECRET.as_bytes()).hash(key).to_string()
}

/// Both workspaces as their own admins write them: B routes `b.example`
/// behind `key-auth` and strips `x-admin` before its upstream; A has a
/// consumer whose consumer-level `headers` plugin sets `x-admin`.
async fn set_up(w: &World, a_up: &Upstream, b_up: &Upstream) {
    let ok =
        |(status, body): (u16, Value)| assert!(status == 201 || status == 200, "{status} {body}");
    // team-b
    ok(w.put(
        &w.b,
        "team-b",
        "services",
        "api",
        json!({"url": b_up.url()}),
    )
    .await);
    ok(w.put(
        &w.b,
        "team-b",
        "routes",
        "orders",
        json!({"service": "api", "hosts": ["b.example"], "paths": ["/*"], "plugins": [
            {"name": "key-auth"},
            {"name": "headers", "config": {"request": {"remove": ["x-admin"]}}}
        ]}),
    )
    .await);
    ok(w.put(&w.b, "team-b", "consumers", "bob", json!({})).await);
    ok(w.put(
        &w.b,
        "team-b",
        "credentials",
        "bob-key",
        json!({"consumer": "bob", "key_auth": {"key": BOB_KEY}}),
    )
    .await);
    ok(w.put(
        &w.b,
        "team-b",
        "apps",
        "bob-app",
        json!({"consumer": "bob", "keys": [
            {"hash": hash(BOB_APP_KEY)},
            {"hash": hash(BOB_REVOKED_KEY), "revoked": true}
        ]}),
    )
    .await);
    // team-a
    ok(w.put(
        &w.a,
        "team-a",
        "services",
        "api",
        json!({"url": a_up.url()}),
    )
    .await);
    ok(w.put(
        &w.a,
        "team-a",
        "routes",
        "mine",
        json!({"service": "api", "hosts": ["a.example"], "paths": ["/*"], "plugins": [{"name": "key-auth"}]}),
    )
    .await);
    ok(w.put(
        &w.a,
        "team-a",
        "consumers",
        "mallory",
        json!({"plugins": [{"name": "headers", "config": {"request": {"set": {"x-admin": "true"}}}}]}),
    )
    .await);
    ok(w.put(
        &w.a,
        "team-a",
        "credentials",
        "mallory-key",
        json!({"consumer": "mallory", "key_auth": {"key": MALLORY_KEY}}),
    )
    .await);
}

async fn get(gw: &TestGateway, host: &str, key: Option<&str>) -> Resp {
    let mut b = req("GET", &gw.url("/orders")).header("host", host);
    if let Some(k) = key {
        b = b.header("x-api-key", k);
    }
    b = b.header("x-admin", "sent-by-client");
    send(empty(b)).await
}

/// What a request with `key` on B's route must get: exactly the answer of
/// an unknown key (status, problem type, detail), and no upstream hit.
async fn assert_like_unknown(gw: &TestGateway, b_up: &Upstream, case: &str, key: &str) {
    let hits = b_up.hits();
    let unknown = get(gw, "b.example", Some("no-such-key-at-all-000")).await;
    let r = get(gw, "b.example", Some(key)).await;
    assert_eq!(r.status, 401, "{case}: {}", r.text());
    let (mut got, mut want) = (r.json(), unknown.json());
    for v in [&mut got, &mut want] {
        v.as_object_mut().unwrap().remove("request_id");
    }
    assert_eq!(got, want, "{case}: differs from an unknown key");
    assert_eq!(
        r.header("www-authenticate"),
        unknown.header("www-authenticate")
    );
    assert_eq!(b_up.hits(), hits, "{case}: reached B's upstream");
}

async fn tenant_isolation(w: World) {
    let a_up = Upstream::builder().name("team-a").echo().start().await;
    let b_up = Upstream::builder()
        .name("team-b")
        .echo()
        .record(8)
        .start()
        .await;
    set_up(&w, &a_up, &b_up).await;

    // (c) A claims B's host, out-ranks it, or catches every host: refused
    // with a message that names nothing of B; nothing is written.
    let revision = w.store.revision().await.unwrap();
    let attempts = [
        (
            "B's host",
            json!({"hosts": ["b.example"], "priority": 1000}),
        ),
        (
            "B's host, another spelling",
            json!({"hosts": ["B.Example."]}),
        ),
        ("a wildcard over B's host", json!({"hosts": ["*.example"]})),
        ("every host", json!({"priority": 1000})),
        (
            "the any-host pattern",
            json!({"hosts": ["*"], "priority": 1000}),
        ),
    ];
    for (case, mut body) in attempts {
        body["service"] = json!("api");
        body["paths"] = json!(["/*"]);
        let (status, problem) = w.put(&w.a, "team-a", "routes", "grab", body).await;
        assert_eq!(status, 422, "{case}: {problem}");
        let text = problem.to_string();
        for secret in ["team-b", "orders", "bob"] {
            assert!(!text.contains(secret), "{case}: {text} reveals {secret}");
        }
    }
    let (status, problem) = w
        .put(
            &w.a,
            "team-a",
            "certificates",
            "mitm",
            json!({"cert": "x", "key": "y", "hosts": ["b.example"]}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(!problem.to_string().contains("team-b"), "{problem}");
    assert_eq!(
        w.store.revision().await.unwrap(),
        revision,
        "a refused write landed"
    );

    // (d) A guesses B's keys: the writes are accepted like any new key, so
    // a guess is neither confirmed nor attributed.
    let (status, body) = w
        .put(
            &w.a,
            "team-a",
            "credentials",
            "guess",
            json!({"consumer": "mallory", "key_auth": {"key": BOB_KEY}}),
        )
        .await;
    assert_eq!(status, 201, "a guessed key of B is an oracle: {body}");
    let (status, body) = w
        .put(
            &w.a,
            "team-a",
            "apps",
            "guess",
            json!({"consumer": "mallory", "keys": [{"hash": hash(BOB_APP_KEY)}]}),
        )
        .await;
    assert_eq!(status, 201, "a guessed app key of B is an oracle: {body}");
    // A duplicate inside one workspace is still refused, within it.
    let (status, body) = w
        .put(
            &w.a,
            "team-a",
            "credentials",
            "dup",
            json!({"consumer": "mallory", "key_auth": {"key": MALLORY_KEY}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("duplicate API key"), "{body}");
    // A's token cannot read B's documents either.
    let (status, _) = w
        .call("GET", "/workspaces/team-b/credentials", &w.a, Value::Null)
        .await;
    assert_eq!(status, 403);

    let gw = w.serve().await;
    // B's own users are served by B, with B's header policy.
    let r = get(&gw, "b.example", Some(BOB_KEY)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["upstream"], "team-b");
    let r = get(&gw, "b.example", Some(BOB_APP_KEY)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(b_up.last_request().unwrap().header("x-admin"), None);
    // A's guessed copy of B's key identifies A's consumer on A's route only.
    let r = get(&gw, "a.example", Some(BOB_KEY)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["upstream"], "team-a");

    // (a) and (b): A's key on B's route is an unknown key; A's consumer is
    // never identified there, so its `headers` plugin never replaces B's.
    assert_like_unknown(&gw, &b_up, "A's key on B's route", MALLORY_KEY).await;
    // A revoked key of B is refused as revoked on B's route…
    let r = get(&gw, "b.example", Some(BOB_REVOKED_KEY)).await;
    assert_eq!(r.json()["detail"], "The API key has been revoked");
    // …and as unknown on A's route (no oracle for B's keys either way).
    let r = get(&gw, "a.example", Some(BOB_REVOKED_KEY)).await;
    assert_eq!(r.json()["detail"], "Invalid authentication credentials");
    // (c) B's host is still B's.
    assert_eq!(a_up.hits(), 1, "only A's own request reached A's upstream");

    // Sharing is explicit, in B's workspace document, which only a
    // super-admin writes: A's token cannot opt B in.
    let (status, _) = w
        .call(
            "PUT",
            "/workspaces/team-b",
            &w.a,
            json!({"accept_consumers_from": ["team-a"]}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = w
        .call(
            "PUT",
            "/workspaces/team-b",
            &w.root,
            json!({"accept_consumers_from": ["team-a"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    drop(gw);
    let gw = w.serve().await;
    let r = get(&gw, "b.example", Some(MALLORY_KEY)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Accepting a workspace's consumers accepts them whole: their
    // consumer-level plugins too (docs/security.md).
    assert_eq!(b_up.last_request().unwrap().header("x-admin"), Some("true"));
    // B's own key still wins over A's copy of it on B's route.
    let r = get(&gw, "b.example", Some(BOB_KEY)).await;
    assert_eq!(r.status, 200);
    assert_eq!(b_up.last_request().unwrap().header("x-admin"), None);
}

#[tokio::test]
async fn tenant_isolation_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
    tenant_isolation(World::start(url, Holder::Dir(dir)).await).await;
}

#[tokio::test]
async fn tenant_isolation_postgres() {
    let pg = TestDb::create("gh_tenancy");
    let url = pg.url().to_owned();
    tenant_isolation(World::start(url, Holder::Pg(pg)).await).await;
}

fn doc(
    workspace: &str,
    kind: gatehouse_store::Kind,
    name: &str,
    body: Value,
) -> gatehouse_store::Document {
    gatehouse_store::Document {
        id: uuid::Uuid::new_v4(),
        workspace: workspace.into(),
        kind,
        name: name.into(),
        tags: Vec::new(),
        body,
        version: 1,
        created_at: 0,
        updated_at: 0,
    }
}

/// Two workspaces with a route each on their own host, a consumer and a
/// key each, and a global `key-auth` of `default` over all of them.
fn two_teams(upstream: &str) -> Vec<gatehouse_store::Document> {
    use gatehouse_store::Kind;
    let mut docs = vec![doc(
        "default",
        Kind::Plugin,
        "key-auth",
        json!({"name": "key-auth"}),
    )];
    for ws in ["team-a", "team-b"] {
        let host = format!("{}.example", &ws[5..]);
        docs.extend([
            doc(
                ws,
                Kind::Service,
                "svc",
                json!({"name": "svc", "url": upstream}),
            ),
            doc(
                ws,
                Kind::Route,
                "r",
                json!({"name": "r", "service": "svc", "hosts": [host], "paths": ["/*"]}),
            ),
            doc(ws, Kind::Consumer, "user", json!({"username": "user"})),
            doc(
                ws,
                Kind::Credential,
                "key",
                json!({"consumer": "user", "key_auth": {"key": format!("{ws}-key-000001")}}),
            ),
        ]);
    }
    docs
}

/// Global plugins of `default` run on every workspace's routes, each built
/// with the keys of the route's own workspace.
#[tokio::test]
async fn a_global_key_auth_checks_each_workspaces_own_keys() {
    let up = Upstream::builder().name("up").echo().start().await;
    let loaded = gatehouse_control::prepare(&two_teams(&up.url()), &settings()).unwrap();
    let gw = TestGateway {
        gateway: gatehouse_proxy::Gateway::start(&loaded, gatehouse_plugins::registry())
            .await
            .unwrap(),
    };
    let check = async |host: &str, key: &str, want: u16| {
        let r = send(empty(
            req("GET", &gw.url("/x"))
                .header("host", host)
                .header("x-api-key", key),
        ))
        .await;
        assert_eq!(r.status, want, "{host} with {key}: {}", r.text());
    };
    check("a.example", "team-a-key-000001", 200).await;
    check("a.example", "team-b-key-000001", 401).await;
    check("b.example", "team-b-key-000001", 200).await;
    check("b.example", "team-a-key-000001", 401).await;
    assert_eq!(up.hits(), 2);
}

/// `key-auth`'s `anonymous` names a consumer of the route's own workspace:
/// another workspace's consumer is not found (and not confirmed).
#[tokio::test]
async fn anonymous_names_a_consumer_of_the_routes_workspace() {
    use gatehouse_store::Kind;
    let check = |ws: &str, anonymous: &str, ok: bool| {
        let mut docs = two_teams("http://127.0.0.1:9");
        docs.push(doc(
            ws,
            Kind::Route,
            "anon",
            json!({"name": "anon", "service": "svc", "hosts": [format!("{}.example", &ws[5..])],
                   "paths": ["/anon"], "plugins": [{"name": "key-auth", "config": {"anonymous": anonymous}}]}),
        ));
        let answer = gatehouse_control::check_documents_for(
            &docs,
            &settings(),
            &gatehouse_plugins::registry(),
            gatehouse_control::Viewer::Workspace(ws),
        );
        match answer {
            Ok(_) => assert!(ok, "{ws} / {anonymous}: accepted"),
            Err(e) => {
                assert!(!ok, "{ws} / {anonymous}: {e:?}");
                assert!(e.iter().any(|m| m.contains("no consumer named")), "{e:?}");
            }
        }
    };
    check("team-a", "user", true);
    check("team-a", "team-b/user", false);
    check("team-b", "team-a/user", false);
}

/// A certificate document without `hosts` claims the DNS names in the
/// certificate: workspace A cannot take B's SNI name with it, and a
/// certificate for A's own name is fine.
#[tokio::test]
async fn a_certificate_claims_its_own_dns_names() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
    let w = World::start(url, Holder::Dir(dir)).await;
    let (status, body) = w
        .put(
            &w.b,
            "team-b",
            "services",
            "api",
            json!({"url": "http://127.0.0.1:9"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = w
        .put(
            &w.b,
            "team-b",
            "routes",
            "r",
            json!({"service": "api", "hosts": ["b.example"], "paths": ["/"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let ca = gatehouse_testkit::tls::TestCa::new("tenancy");
    let cert = |names: &[&str]| {
        let pair = ca.server_cert(names);
        json!({"cert": pair.cert_pem, "key": pair.key_pem})
    };
    let (status, body) = w
        .put(&w.a, "team-a", "certificates", "mitm", cert(&["b.example"]))
        .await;
    assert_eq!(status, 422, "{body}");
    let text = body.to_string();
    assert!(
        text.contains("host `b.example` is taken by another workspace"),
        "{text}"
    );
    assert!(!text.contains("team-b"), "{text}");
    let (status, body) = w
        .put(&w.a, "team-a", "certificates", "own", cert(&["a.example"]))
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Files on the node are shared by every workspace: another workspace's
/// certificate keys (written to the data directory), the node's listener
/// keys, key files placed for `default`'s services. A workspace admin
/// naming them could use B's private key as A's upstream client identity
/// (reproduced against the binary: A's upstream saw `CN=b.example`),
/// probe which files exist (`cannot read` vs `no PEM certificate`), and
/// freeze every workspace by naming a file that later disappears (its own
/// certificate's file, then deleting the certificate: every node rejects
/// the store and every write of every workspace is refused). Refused for
/// every workspace but `default`, with one message whatever the file.
async fn node_files(w: World) {
    let dir = tempfile::tempdir().unwrap();
    let ca = gatehouse_testkit::tls::TestCa::new("ca");
    let (b_cert, b_key) = ca
        .client_cert("b.example", &["b.example"])
        .write(dir.path(), "b");
    let ca_file = ca.write_pem(dir.path(), "ca");
    let (status, body) = w
        .put(
            &w.b,
            "team-b",
            "services",
            "api",
            json!({"url": "http://127.0.0.1:9"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let path = |p: &std::path::Path| p.display().to_string();
    let attempts = [
        ("a CA file that exists", json!({"ca": path(&ca_file)})),
        (
            "a CA file that does not exist",
            json!({"ca": "/nonexistent/ca.pem"}),
        ),
        ("a file that is not PEM", json!({"ca": "/etc/hostname"})),
        (
            "B's key as A's client identity",
            json!({"client_cert": path(&b_cert), "client_key": path(&b_key)}),
        ),
        (
            "a relative path into the data directory",
            json!({"client_cert": "gatehouse-data/certs/x.crt", "client_key": "gatehouse-data/certs/x.key"}),
        ),
    ];
    let revision = w.store.revision().await.unwrap();
    let mut answers = Vec::new();
    for (case, tls) in attempts {
        let (status, problem) = w
            .put(
                &w.a,
                "team-a",
                "services",
                "files",
                json!({"url": "https://127.0.0.1:9", "tls": tls}),
            )
            .await;
        assert_eq!(status, 422, "{case}: {problem}");
        let text = problem["detail"].as_str().unwrap().to_owned();
        assert!(text.contains("names a file on the node"), "{case}: {text}");
        for leak in ["cannot read", "PEM", "/nonexistent", "hostname", "team-b"] {
            assert!(!text.contains(leak), "{case}: {text} reveals {leak:?}");
        }
        answers.push(text.replace("tls.client_cert", "tls.ca"));
    }
    // The same answer whether the file exists, is PEM or not: no oracle.
    assert!(answers[..3].iter().all(|a| *a == answers[0]), "{answers:?}");
    let (status, problem) = w
        .put(
            &w.a,
            "team-a",
            "apis",
            "spec@v1",
            json!({"openapi": path(&ca_file)}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem
            .to_string()
            .contains("`openapi` names a file on the node"),
        "{problem}"
    );
    assert_eq!(
        w.store.revision().await.unwrap(),
        revision,
        "a refused write landed"
    );
    // B is not held hostage: its writes go through.
    let (status, body) = w
        .put(
            &w.b,
            "team-b",
            "services",
            "api",
            json!({"url": "http://127.0.0.1:10"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The global admins' workspace still names node files.
    let (status, body) = w
        .put(
            &w.root,
            "default",
            "services",
            "mtls",
            json!({"url": "https://127.0.0.1:9", "tls": {"ca": path(&ca_file)}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    w.serve().await;
}

#[tokio::test]
async fn node_files_belong_to_default_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
    node_files(World::start(url, Holder::Dir(dir)).await).await;
}

#[tokio::test]
async fn node_files_belong_to_default_postgres() {
    let pg = TestDb::create("gh_node_files");
    let url = pg.url().to_owned();
    node_files(World::start(url, Holder::Pg(pg)).await).await;
}

/// Reproduced against the binary: workspace A's admin alone, with two
/// concurrent requests (DELETE of a service, PUT of a route to it), got
/// both past the cross-entity check (each against the same snapshot), left
/// a store every node rejects, and from then on every write of workspace B
/// was refused (`the store has problems outside workspace b`) and no node
/// loaded a new revision: B could not even rotate a key. Checks and writes
/// through one admin API are now serialized; the store stays valid.
async fn racing_writes(w: World) {
    let mut pairs = 0;
    for i in 0..25 {
        let (status, body) = w
            .put(
                &w.a,
                "team-a",
                "services",
                &format!("s{i}"),
                json!({"url": "http://127.0.0.1:9"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (svc_path, route_name) = (format!("/workspaces/team-a/services/s{i}"), format!("r{i}"));
        let delete = w.call("DELETE", &svc_path, &w.a, Value::Null);
        let route = w.put(
            &w.a,
            "team-a",
            "routes",
            &route_name,
            json!({"service": format!("s{i}"), "hosts": [format!("r{i}.a.example")], "paths": ["/*"]}),
        );
        let ((d, _), (r, _)) = tokio::join!(delete, route);
        // Exactly one of the two goes through (whichever came first).
        assert!(
            (d == 204) != (r == 201),
            "round {i}: delete {d}, route {r}: both or neither landed"
        );
        pairs += 1;
        let snapshot = w.store.snapshot().await.unwrap();
        gatehouse_control::check_documents(
            &snapshot.documents,
            &settings(),
            &gatehouse_plugins::registry(),
        )
        .unwrap_or_else(|e| panic!("round {i}: the store is broken: {e:?}"));
    }
    assert_eq!(pairs, 25);
    let (status, body) = w
        .put(
            &w.b,
            "team-b",
            "services",
            "still-writable",
            json!({"url": "http://127.0.0.1:9"}),
        )
        .await;
    assert_eq!(status, 201, "B is held hostage: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writes_cannot_break_the_store_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
    racing_writes(World::start(url, Holder::Dir(dir)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writes_cannot_break_the_store_postgres() {
    let pg = TestDb::create("gh_racing_writes");
    let url = pg.url().to_owned();
    racing_writes(World::start(url, Holder::Pg(pg)).await).await;
}
