//! A credential scheme that exists only in this file (`test-token`:
//! consumers' `credentials: {test_token: [{token, label}]}` and credential
//! documents `{consumer, test_token: {token}}`, plus a plugin that
//! identifies the consumer from an `x-test-token` header), registered in a
//! test registry. It goes through everything a built-in scheme does: a
//! YAML config served by the real gateway, documents written through the
//! admin API (checked, redacted, fingerprinted, kept on round trips, never
//! in the audit log), the control plane's check with per-workspace
//! uniqueness, a gateway serving the assembled store, `config dump`, and
//! the OpenAPI document. Adding it needed no change outside this file
//! (docs/plugins/AUTHORING.md, "Credential schemes").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_config::Config;
use gatehouse_core::credentials::{CredentialScheme, Index, UniqueKey};
use gatehouse_core::{
    Band, BuildCx, Consumer, Ctx, Flow, KeyHasher, Phase, Phases, Plugin, PluginError,
    PluginFactory, Problem, ProblemType, Request,
};
use gatehouse_plugins::Registry;
use gatehouse_store::{Document, Kind, Role, Store};
use gatehouse_testkit::Upstream;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use common::{TestGateway, empty, req, send};

// ---- the scheme and its plugin ----------------------------------------------

const NAME: &str = "test-token";
const FIELD: &str = "test_token";
const HEADER: &str = "x-test-token";

/// `{token: <at least 12 characters>, label?: string}`; `token` is secret
/// and unique per workspace.
struct TokenScheme;

/// The index: token -> consumer.
#[derive(Default)]
struct Tokens(HashMap<String, Consumer>);

fn parse(credential: &Value) -> Result<String, PluginError> {
    let Value::Object(map) = credential else {
        return Err(PluginError::at("", "expected an object `{token, label}`"));
    };
    if let Some(other) = map.keys().find(|k| *k != "token" && *k != "label") {
        return Err(PluginError::at(
            "",
            format!("unknown field `{other}`, expected `token` or `label`"),
        ));
    }
    if map.get("label").is_some_and(|l| !l.is_string()) {
        return Err(PluginError::at("label", "expected a string"));
    }
    match map.get("token") {
        Some(Value::String(t)) if t.len() >= 12 => Ok(t.clone()),
        Some(Value::String(_)) => Err(PluginError::at(
            "token",
            "test tokens must be at least 12 characters long",
        )),
        Some(_) => Err(PluginError::at("token", "expected a string")),
        None => Err(PluginError::at("", "missing field `token`")),
    }
}

impl CredentialScheme for TokenScheme {
    fn name(&self) -> &'static str {
        NAME
    }
    fn field(&self) -> &'static str {
        FIELD
    }
    fn noun(&self) -> &'static str {
        "test token"
    }
    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["token"],
            "properties": {
                "token": {"type": "string", "minLength": 12, "description": "The token."},
                "label": {"type": "string"}
            }
        })
    }
    fn example(&self) -> Value {
        json!({"token": "example-token-0000"})
    }
    fn secret_fields(&self) -> &'static [&'static str] {
        &["token"]
    }
    fn check(&self, credential: &Value) -> Result<(), PluginError> {
        parse(credential).map(drop)
    }
    fn unique_key(&self, credential: &Value) -> Option<UniqueKey> {
        Some(UniqueKey {
            field: "token",
            value: parse(credential).ok()?,
        })
    }
    fn index(&self, credentials: &[(Consumer, &Value)]) -> Index {
        let mut tokens = HashMap::new();
        for (consumer, credential) in credentials {
            if let Ok(t) = parse(credential) {
                tokens.entry(t).or_insert_with(|| consumer.clone());
            }
        }
        Arc::new(Tokens(tokens))
    }
}

struct TokenAuth {
    tokens: Arc<Tokens>,
}

#[async_trait]
impl Plugin for TokenAuth {
    fn name(&self) -> &'static str {
        NAME
    }
    fn phases(&self) -> Phases {
        Phases::of(&[Phase::Access])
    }
    async fn access(&self, ctx: &mut Ctx, req: &mut Request) -> Flow {
        let consumer = req
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|t| self.tokens.0.get(t));
        match consumer {
            Some(c) => {
                ctx.consumer = Some(c.clone());
                Flow::Continue
            }
            None => Problem::new(ProblemType::Unauthorized)
                .detail("no known test token")
                .into(),
        }
    }
}

struct TokenFactory;

impl PluginFactory for TokenFactory {
    fn name(&self) -> &'static str {
        NAME
    }
    fn priority(&self) -> i32 {
        1250
    }
    fn schema(&self) -> Value {
        json!({"type": "object", "additionalProperties": false})
    }
    fn band(&self) -> Band {
        Band::Authentication
    }
    fn build(&self, _config: &Value, cx: &BuildCx<'_>) -> Result<Arc<dyn Plugin>, PluginError> {
        Ok(Arc::new(TokenAuth {
            tokens: cx.env.index::<Tokens>(NAME).unwrap_or_default(),
        }))
    }
}

/// The built-in plugins plus `test-token` and its scheme.
fn registry() -> Registry {
    let mut r = gatehouse_plugins::registry();
    r.register(Arc::new(TokenFactory));
    r.register_scheme(Arc::new(TokenScheme));
    r
}

// ---- YAML config -------------------------------------------------------------

const ALICE_TOKEN: &str = "alice-token-000001";
const BOB_TOKEN: &str = "bob-token-00000002";

fn yaml(up: &Upstream, consumers: &str) -> String {
    format!(
        r#"services:
  - name: up
    url: "{url}"
routes:
  - name: token
    service: up
    paths: ["/token"]
    plugins:
      - name: test-token
      - name: headers
        config:
          request:
            set:
              x-consumer: "$(consumer)"
  - name: keyed
    service: up
    paths: ["/keyed"]
    plugins:
      - name: key-auth
      - name: headers
        config:
          request:
            set:
              x-consumer: "$(consumer)"
consumers:
{consumers}"#,
        url = up.url()
    )
}

const CONSUMERS: &str = r#"  - username: alice
    credentials:
      test_token:
        - token: alice-token-000001
          label: laptop
  - username: bob
    credentials:
      key_auth:
        - key: bob-api-key-0001
      test_token:
        - token: bob-token-00000002
"#;

async fn consumer_of(gw: &TestGateway, path: &str, header: (&str, &str)) -> (u16, Value) {
    let r = send(empty(req("GET", &gw.url(path)).header(header.0, header.1))).await;
    let status = r.status;
    let consumer = if status == 200 {
        r.json()["headers"]["x-consumer"].clone()
    } else {
        Value::Null
    };
    (status, consumer)
}

#[tokio::test]
async fn a_yaml_config_identifies_consumers_with_the_test_scheme() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start_with_registry(&yaml(&up, CONSUMERS), registry()).await;
    let cases = [
        ("/token", (HEADER, ALICE_TOKEN), 200, json!("alice")),
        ("/token", (HEADER, BOB_TOKEN), 200, json!("bob")),
        ("/token", (HEADER, "unknown-token-0000"), 401, Value::Null),
        ("/token", ("x-other", ALICE_TOKEN), 401, Value::Null),
        // A key-auth key is not a test token, and the other way round.
        ("/token", (HEADER, "bob-api-key-0001"), 401, Value::Null),
        (
            "/keyed",
            ("x-api-key", "bob-api-key-0001"),
            200,
            json!("bob"),
        ),
        ("/keyed", ("x-api-key", ALICE_TOKEN), 401, Value::Null),
    ];
    for (path, header, status, consumer) in cases {
        assert_eq!(
            consumer_of(&gw, path, header).await,
            (status, consumer),
            "{path} {header:?}"
        );
    }
}

/// Every error of `yaml` compiled with `registry`, as text.
fn errors(yaml: &str, registry: &Registry) -> String {
    let yaml = format!("listeners:\n  - address: \"127.0.0.1:0\"\n{yaml}");
    let loaded = gatehouse_config::parse_str(&yaml, "test.yaml").unwrap();
    match gatehouse_proxy::check(&loaded, registry) {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn hostile_yaml_credentials_are_refused_with_field_paths() {
    let up = Upstream::echo().await;
    let check = |consumers: &str, expect: &str| {
        let text = errors(&yaml(&up, consumers), &registry());
        assert!(text.contains(expect), "expected {expect:?} in:\n{text}");
        text
    };
    check(
        "  - username: a\n    credentials:\n      test_token:\n        - token: short\n",
        "consumers[0].credentials.test_token[0].token: test tokens must be at least 12 characters long",
    );
    check(
        "  - username: a\n    credentials:\n      test_token:\n        - token: long-enough-token\n          extra: 1\n",
        "consumers[0].credentials.test_token[0]: unknown field `extra`",
    );
    check(
        "  - username: a\n    credentials:\n      test_token:\n        - just-a-string\n",
        "consumers[0].credentials.test_token[0]: expected an object",
    );
    check(
        "  - username: a\n    credentials:\n      test_token:\n        - token: long-enough-token\n          label: 5\n",
        "consumers[0].credentials.test_token[0].label: expected a string",
    );
    check(
        "  - username: a\n    credentials:\n      nope_token:\n        - token: long-enough-token\n",
        "consumers[0].credentials.nope_token: unknown credential scheme `nope_token` (registered: `key_auth`, `test_token`)",
    );
    // Duplicates within a workspace name the other credential, never the
    // token itself.
    let text = check(
        "  - username: a\n    credentials:\n      test_token:\n        - token: shared-token-0001\n  - username: b\n    credentials:\n      test_token:\n        - token: shared-token-0001\n",
        "consumers[1].credentials.test_token[0].token: duplicate test token (also used by consumers[0].credentials.test_token[0])",
    );
    assert!(!text.contains("shared-token-0001"), "{text}");
    // The same value under two schemes is no duplicate.
    assert_eq!(
        errors(
            &yaml(
                &up,
                "  - username: a\n    credentials:\n      test_token:\n        - token: same-value-00001\n      key_auth:\n        - key: same-value-00001\n"
            ),
            &registry()
        ),
        ""
    );
    // Without the scheme in the registry, its credentials are unknown.
    let text = errors(&yaml(&up, CONSUMERS), &gatehouse_plugins::registry());
    assert!(
        text.contains("consumers[0].credentials.test_token: unknown credential scheme `test_token` (registered: `key_auth`)"),
        "{text}"
    );
    assert!(!text.contains(ALICE_TOKEN), "{text}");
}

// ---- store documents through the admin API ----------------------------------

const SECRET: &str = "creds-scheme-test-node-secret-0123";
const A_TOKEN: &str = "team-a-token-000001";
const B_TOKEN: &str = "team-b-token-000002";

fn settings() -> Config {
    let mut c = Config::default();
    c.server.key_hash_secret = Some(SECRET.into());
    c.listeners = gatehouse_config::parse_str("listeners:\n  - address: 127.0.0.1:0\n", "node")
        .unwrap()
        .config
        .listeners;
    c
}

/// The node's cross-entity check, with the test registry.
struct Check {
    registry: Registry,
    settings: Config,
}

impl gatehouse_admin::Validator for Check {
    fn check(&self, documents: &[Document]) -> Result<(), Vec<String>> {
        gatehouse_control::check_documents_for(
            documents,
            &self.settings,
            &self.registry,
            gatehouse_control::Viewer::All,
        )
        .map(drop)
    }
    fn check_in(&self, documents: &[Document], workspace: &str) -> Result<(), Vec<String>> {
        gatehouse_control::check_documents_for(
            documents,
            &self.settings,
            &self.registry,
            gatehouse_control::Viewer::Workspace(workspace),
        )
        .map(drop)
    }
}

struct Admin {
    base: String,
    token: String,
    client: gatehouse_testkit::Client,
    _server: gatehouse_admin::Background,
}

impl Admin {
    async fn start(store: Arc<dyn Store>, state: gatehouse_admin::AppState) -> Admin {
        let token = store
            .create_token(
                "test",
                &format!("root-{}", uuid::Uuid::new_v4()),
                Role::SuperAdmin,
            )
            .await
            .unwrap()
            .plaintext;
        let server = gatehouse_admin::Background::start(state).await.unwrap();
        Admin {
            base: server.base().to_string(),
            token,
            client: gatehouse_testkit::http1_client(),
            _server: server,
        }
    }

    /// `method path`, with `{"body": body}` unless it is null; the status
    /// and the answer as text.
    async fn call(&self, method: &str, path: &str, body: Value) -> (u16, String) {
        let builder = req(method, &format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
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
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn put(&self, ws: &str, kind: &str, name: &str, body: Value) -> (u16, String) {
        self.call("PUT", &format!("/workspaces/{ws}/{kind}/{name}"), body)
            .await
    }
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Asserts that a write succeeded (200 or 201); its answer.
fn ok((status, body): (u16, String)) -> String {
    assert!(status == 200 || status == 201, "{status} {body}");
    body
}

/// The `token_fingerprint` of a written credential document.
fn fingerprint(answer: &str) -> String {
    json_of(answer)["body"]["test_token"]["token_fingerprint"]
        .as_str()
        .unwrap_or_else(|| panic!("no fingerprint in {answer}"))
        .to_owned()
}

/// A store (SQLite in a temporary directory) behind an admin API that
/// knows the scheme, holding workspaces `team-a` and `team-b`, each with
/// service `api`, route `mine` on `a.example` / `b.example` guarded by
/// `test-token`, and a consumer `alice` without credentials.
struct Fixture {
    url: String,
    registry: Registry,
    store: Arc<dyn Store>,
    admin: Admin,
    _up: Upstream,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let registry = registry();
        let hasher = KeyHasher::new(SECRET.as_bytes());
        let store = gatehouse_store::open_with(
            &url,
            Some(gatehouse_admin::secrets::audit_redactor(
                registry.schemes().clone(),
                Some(hasher.clone()),
            )),
        )
        .await
        .unwrap();
        let state = gatehouse_admin::AppState::new(store.clone())
            .with_key_hasher(hasher)
            .with_schemes(registry.schemes().clone())
            .with_validator(Arc::new(Check {
                registry: registry.clone(),
                settings: settings(),
            }));
        let admin = Admin::start(store.clone(), state).await;
        let up = Upstream::echo().await;
        for ws in ["team-a", "team-b"] {
            ok(admin
                .call("PUT", &format!("/workspaces/{ws}"), json!({}))
                .await);
            ok(admin
                .put(ws, "services", "api", json!({"url": up.url()}))
                .await);
            let host = format!("{}.example", &ws[5..]);
            ok(admin
                .put(
                    ws,
                    "routes",
                    "mine",
                    json!({"service": "api", "hosts": [host], "paths": ["/*"], "plugins": [
                        {"name": "test-token"},
                        {"name": "headers", "config": {"request": {"set": {"x-consumer": "$(consumer)"}}}}
                    ]}),
                )
                .await);
            ok(admin.put(ws, "consumers", "alice", json!({})).await);
        }
        Fixture {
            url,
            registry,
            store,
            admin,
            _up: up,
            _dir: dir,
        }
    }

    /// [`Fixture::start`], then alice's credential document `alice-token`
    /// in team-a, bob's inline token in team-a and the same `alice-token`
    /// in team-b; with the fingerprint team-a's write answered.
    async fn with_credentials() -> (Fixture, String) {
        let f = Fixture::start().await;
        let written = f.put_alice_token("team-a").await;
        f.put_bob_inline().await;
        f.put_alice_token("team-b").await;
        (f, fingerprint(&written))
    }

    /// Writes credential document `alice-token` (A_TOKEN, label `ci`) for
    /// `alice` of `ws`; the answer.
    async fn put_alice_token(&self, ws: &str) -> String {
        ok(self
            .admin
            .put(
                ws,
                "credentials",
                "alice-token",
                json!({"consumer": "alice", "test_token": {"token": A_TOKEN, "label": "ci"}}),
            )
            .await)
    }

    /// Writes consumer `bob` of team-a with B_TOKEN inline; the answer.
    async fn put_bob_inline(&self) -> String {
        ok(self
            .admin
            .put(
                "team-a",
                "consumers",
                "bob",
                json!({"credentials": {"test_token": [{"token": B_TOKEN}]}}),
            )
            .await)
    }

    /// GET of team-a's `alice-token` (which shows no token), PUT back as read.
    async fn put_back_redacted_view(&self) {
        let (_, read) = self
            .admin
            .call(
                "GET",
                "/workspaces/team-a/credentials/alice-token",
                Value::Null,
            )
            .await;
        assert!(!read.contains(A_TOKEN), "{read}");
        let view = json_of(&read)["body"].clone();
        ok(self
            .admin
            .put("team-a", "credentials", "alice-token", view)
            .await);
    }

    /// A second admin API on the same store whose registry lacks the scheme.
    async fn plain_admin(&self) -> Admin {
        Admin::start(
            self.store.clone(),
            gatehouse_admin::AppState::new(self.store.clone()),
        )
        .await
    }

    /// Writes `body` as `kind/name` of team-a and checks that it is refused
    /// with `code` and a message containing `expect`, echoing no token.
    async fn refused(
        &self,
        kind: &str,
        name: &str,
        body: Value,
        expect: &str,
        code: u16,
    ) -> Result<(), String> {
        let (status, answer) = self.admin.put("team-a", kind, name, body.clone()).await;
        if status != code {
            return Err(format!("{body}: status {status}, not {code}: {answer}"));
        }
        if !answer.contains(expect) {
            return Err(format!("{body}: no {expect:?} in {answer}"));
        }
        for token in [A_TOKEN, "long-enough"] {
            if answer.contains(token) {
                return Err(format!("{body}: the answer echoes {token:?}: {answer}"));
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_credential_document_is_answered_redacted_with_a_fingerprint() {
    let f = Fixture::start().await;
    let written = f.put_alice_token("team-a").await;
    assert!(!written.contains(A_TOKEN), "{written}");
    let body = &json_of(&written)["body"]["test_token"];
    assert_eq!(body["token"], Value::Null, "{written}");
    assert_eq!(body["label"], "ci");
    let fingerprint = fingerprint(&written);
    assert!(fingerprint.starts_with("hmac-sha256:"), "{fingerprint}");
}

#[tokio::test]
async fn an_inline_credential_of_a_consumer_is_answered_redacted() {
    let f = Fixture::start().await;
    let written = f.put_bob_inline().await;
    assert!(!written.contains(B_TOKEN), "{written}");
    assert!(
        json_of(&written)["body"]["credentials"]["test_token"][0]["token_fingerprint"].is_string(),
        "{written}"
    );
}

/// The body's own check answers 400 naming the field, never the token,
/// with the scheme's tokens already in the store.
#[tokio::test]
async fn malformed_credentials_are_refused_with_400_naming_the_field() {
    let (f, _) = Fixture::with_credentials().await;
    let cases = [
        (
            "a token too short",
            "credentials",
            json!({"consumer": "alice", "test_token": {"token": "short"}}),
            "body.test_token.token: test tokens must be at least 12 characters long",
        ),
        (
            "a bare string",
            "credentials",
            json!({"consumer": "alice", "test_token": "a-bare-string-token"}),
            "body.test_token: expected an object",
        ),
        (
            "an unknown field",
            "credentials",
            json!({"consumer": "alice", "test_token": {"token": "long-enough-token", "x": 1}}),
            "body.test_token: unknown field `x`",
        ),
        (
            "an unknown scheme",
            "credentials",
            json!({"consumer": "alice", "nope_token": {"token": "long-enough-token"}}),
            "body.nope_token: unknown credential scheme `nope_token` (registered: `key_auth`, `test_token`)",
        ),
        (
            "no scheme",
            "credentials",
            json!({"consumer": "alice"}),
            "set exactly one credential scheme (`key_auth`, `test_token`), found none",
        ),
        (
            "two schemes",
            "credentials",
            json!({"consumer": "alice", "test_token": {"token": "long-enough-token"}, "key_auth": {"key": "long-enough-key"}}),
            "set exactly one credential scheme, found several",
        ),
        (
            "a token too short inline on a consumer",
            "consumers",
            json!({"credentials": {"test_token": [{"token": "short"}]}}),
            "body.credentials.test_token[0].token: test tokens must be",
        ),
    ];
    let mut failures = Vec::new();
    for (case, kind, body, expect) in cases {
        let name = if kind == "consumers" { "carol" } else { "bad" };
        if let Err(e) = f.refused(kind, name, body, expect, 400).await {
            failures.push(format!("{case}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The cross-entity check answers 422; the answer names the other
/// credential, never the token.
#[tokio::test]
async fn a_token_used_twice_in_one_workspace_is_refused_with_422() {
    let (f, _) = Fixture::with_credentials().await;
    f.refused(
        "credentials",
        "bad",
        json!({"consumer": "bob", "test_token": {"token": A_TOKEN}}),
        "duplicate test token",
        422,
    )
    .await
    .unwrap();
}

/// Uniqueness is per workspace, so a write never tells whether another
/// tenant uses a token.
#[tokio::test]
async fn another_workspace_may_use_the_same_token() {
    let f = Fixture::start().await;
    f.put_alice_token("team-a").await;
    f.put_alice_token("team-b").await;
    let stored = f
        .store
        .get("team-b", Kind::Credential, "alice-token")
        .await
        .unwrap();
    assert_eq!(stored.body["test_token"]["token"], A_TOKEN);
}

#[tokio::test]
async fn a_redacted_view_put_back_keeps_the_stored_token() {
    let (f, _) = Fixture::with_credentials().await;
    f.put_back_redacted_view().await;
    let stored = f
        .store
        .get("team-a", Kind::Credential, "alice-token")
        .await
        .unwrap();
    assert_eq!(stored.body["test_token"]["token"], A_TOKEN);
}

/// After writes of documents and inline tokens, a refused duplicate and a
/// round trip of the redacted view.
#[tokio::test]
async fn the_audit_log_holds_fingerprints_only() {
    let (f, fingerprint) = Fixture::with_credentials().await;
    f.refused(
        "credentials",
        "bad",
        json!({"consumer": "bob", "test_token": {"token": A_TOKEN}}),
        "duplicate test token",
        422,
    )
    .await
    .unwrap();
    f.put_back_redacted_view().await;
    let (status, audit) = f.admin.call("GET", "/audit?limit=500", Value::Null).await;
    assert_eq!(status, 200, "{audit}");
    assert!(audit.contains(&fingerprint), "{audit}");
    for secret in [A_TOKEN, B_TOKEN] {
        assert!(!audit.contains(secret), "{audit}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_the_scheme_with_its_secret_write_only() {
    let f = Fixture::start().await;
    let (_, doc) = f.admin.call("GET", "/openapi.json", Value::Null).await;
    let doc = json_of(&doc);
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["TestTokenCredential"]["properties"]["token"]["type"],
        json!(["string", "null"])
    );
    assert!(schemas["TestTokenCredential"]["properties"]["token_fingerprint"].is_object());
    assert_eq!(
        schemas["CredentialDocument"]["properties"]["test_token"]["$ref"],
        "#/components/schemas/TestTokenCredential"
    );
    assert!(schemas["Credentials"]["properties"]["test_token"].is_object());
}

#[tokio::test]
async fn an_admin_api_without_the_scheme_refuses_its_credentials() {
    let f = Fixture::start().await;
    let plain = f.plain_admin().await;
    let (status, answer) = plain
        .put(
            "team-a",
            "credentials",
            "other",
            json!({"consumer": "alice", "test_token": {"token": "another-token-0003"}}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("unknown credential scheme `test_token`"),
        "{answer}"
    );
}

/// It cannot know which of their fields are secret, so it shows none of
/// the scheme's credentials, on reads or in the audit log.
#[tokio::test]
async fn an_admin_api_without_the_scheme_shows_none_of_its_secrets() {
    let (f, _) = Fixture::with_credentials().await;
    f.put_back_redacted_view().await;
    let plain = f.plain_admin().await;
    for path in [
        "/workspaces/team-a/credentials/alice-token",
        "/workspaces/team-a/consumers/bob",
        "/audit?limit=500",
    ] {
        let (status, read) = plain.call("GET", path, Value::Null).await;
        assert_eq!(status, 200, "{read}");
        for secret in [A_TOKEN, B_TOKEN] {
            assert!(!read.contains(secret), "{path}: {read}");
        }
    }
}

#[tokio::test]
async fn a_node_serving_the_store_knows_each_workspaces_own_tokens_only() {
    let (f, _) = Fixture::with_credentials().await;
    let snapshot = f.store.snapshot().await.unwrap();
    let loaded = gatehouse_control::prepare(&snapshot.documents, &settings()).unwrap();
    let gw = TestGateway {
        gateway: gatehouse_proxy::Gateway::start(&loaded, f.registry.clone())
            .await
            .unwrap(),
    };
    let cases = [
        ("a.example", A_TOKEN, 200, json!("team-a/alice")),
        ("a.example", B_TOKEN, 200, json!("team-a/bob")),
        ("b.example", A_TOKEN, 200, json!("team-b/alice")),
        // team-a's inline token on team-b's host: unknown there.
        ("b.example", B_TOKEN, 401, Value::Null),
        ("b.example", "no-such-token-0000", 401, Value::Null),
    ];
    for (host, token, status, consumer) in cases {
        let r = send(empty(
            req("GET", &gw.url("/x"))
                .header("host", host)
                .header(HEADER, token),
        ))
        .await;
        assert_eq!(r.status, status, "{host} {token}: {}", r.text());
        if status == 200 {
            assert_eq!(
                r.json()["headers"]["x-consumer"],
                consumer,
                "{host} {token}"
            );
            // The plugin leaves the header; nothing else of the scheme leaks.
        }
    }
}

/// `config dump` is the binary, whose registry has no such scheme.
#[tokio::test]
async fn config_dump_writes_none_of_the_schemes_secrets() {
    let (f, _) = Fixture::with_credentials().await;
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["config", "dump", "--workspace", "team-a"])
        .env("GATEHOUSE_STORE", &f.url)
        .env("GATEHOUSE_LOG", "warn")
        .output()
        .unwrap();
    let dumped = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dumped.contains("username: bob"), "{dumped}");
    assert!(!dumped.contains(B_TOKEN), "{dumped}");
    assert!(!dumped.contains(A_TOKEN), "{dumped}");
}
