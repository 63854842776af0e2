//! Apps with hashed API keys and subscriptions through the real gateway:
//! key-auth identifies the app and its consumer, expired and revoked keys
//! are refused with a reason, rotation overlaps, and subscriptions gate
//! APIs that require them. Also the `gatehouse keys` CLI round trip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::process::Command;

use common::{Resp, TestGateway, empty, req, send};
use gatehouse_core::KeyHasher;
use gatehouse_testkit::Upstream;

const SECRET: &str = "integration-test-secret-0123456789";
const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn hash(key: &str) -> String {
    KeyHasher::new(SECRET.as_bytes()).hash(key).to_string()
}

/// Keys: `mobile-new` (no expiry), `mobile-old` (expires in an hour),
/// `mobile-expired` (expired), `mobile-revoked` (`revoked` as given) for
/// app `acme-mobile`; `web-key` for `acme-web`; `batch-key` for
/// `acme-batch`; `other-key` for `other-app`. `orders` requires a
/// subscription: `acme-mobile` approved, `acme-web` pending, `acme-batch`
/// rejected, `other-app` none.
fn config(up: &Upstream, revoked: bool) -> String {
    let in_an_hour = humantime_now_plus(3600);
    format!(
        r#"server:
  key_hash_secret: "{SECRET}"
services:
  - name: orders
    url: "{url}"
routes:
  - name: orders-list
    service: orders
    paths: ["/orders"]
    plugins:
      - name: key-auth
      - name: headers
        config:
          request:
            set:
              x-consumer: "$(consumer)"
              x-app: "$(app)"
  - name: open
    service: orders
    paths: ["/open"]
    plugins:
      - name: key-auth
consumers:
  - username: acme
    credentials:
      key_auth:
        - key: acme-plaintext-key
    apps:
      - name: acme-mobile
        keys:
          - hash: "{new}"
          - hash: "{old}"
            expires_at: {in_an_hour}
          - hash: "{expired}"
            expires_at: 2020-01-01T00:00:00Z
          - hash: "{rev}"
            revoked: {revoked}
      - name: acme-web
        keys:
          - hash: "{web}"
      - name: acme-batch
        keys:
          - hash: "{batch}"
  - username: globex
    plugins:
      - name: headers
        config:
          response:
            set:
              x-level: consumer
    apps:
      - name: other-app
        keys:
          - hash: "{other}"
apis:
  - name: orders
    version: v1
    routes: [orders-list]
    approval: true
    require_subscription: true
plans:
  - name: gold
subscriptions:
  - app: acme-mobile
    api: orders
    plan: gold
    status: approved
  - app: acme-web
    api: orders
    plan: gold
    status: pending
  - app: acme-batch
    api: orders
    version: v1
    plan: gold
    status: rejected
  - app: acme-batch
    api: orders
    plan: gold
    status: approved
"#,
        url = up.url(),
        new = hash("mobile-new"),
        old = hash("mobile-old"),
        expired = hash("mobile-expired"),
        rev = hash("mobile-revoked"),
        web = hash("web-key"),
        batch = hash("batch-key"),
        other = hash("other-key"),
    )
}

fn humantime_now_plus(secs: u64) -> String {
    let t = std::time::SystemTime::now() + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

async fn call(gw: &TestGateway, path: &str, key: &str) -> Resp {
    send(empty(req("GET", &gw.url(path)).header("x-api-key", key))).await
}

#[tokio::test]
async fn hashed_app_key_identifies_app_and_consumer_upstream() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config(&up, false)).await;
    let r = call(&gw, "/orders", "mobile-new").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let headers = &r.json()["headers"];
    assert_eq!(headers["x-consumer"], "acme");
    assert_eq!(headers["x-app"], "acme-mobile");
    assert_eq!(headers.get("x-api-key"), None, "key hidden from upstream");

    assert_eq!(r.header("x-level"), None);

    // Query parameter works too.
    let r = send(empty(req("GET", &gw.url("/open?apikey=web-key")))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["query"], serde_json::Value::Null, "key hidden");

    // The app's consumer is identified, so the consumer's plugins apply.
    let r = call(&gw, "/open", "other-key").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-level"), Some("consumer"));
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn wrong_expired_and_revoked_keys_are_401_with_a_reason() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config(&up, false)).await;
    let r = call(&gw, "/open", "mobile-nex").await;
    let doc = r.assert_problem(401, "unauthorized");
    assert_eq!(doc["detail"], "Invalid authentication credentials");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Key realm=\"gatehouse\"")
    );

    let doc = call(&gw, "/open", "mobile-expired")
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(doc["detail"], "The API key has expired");

    // The hash itself is not a key.
    let doc = call(&gw, "/open", &hash("mobile-new"))
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(doc["detail"], "Invalid authentication credentials");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn rotation_overlap_then_revocation_takes_effect_on_reload() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config(&up, false)).await;
    // Old key (expires in an hour) and new key both work meanwhile.
    for key in ["mobile-old", "mobile-new", "mobile-revoked"] {
        assert_eq!(call(&gw, "/orders", key).await.status, 200, "{key}");
    }
    gw.reload(&config(&up, true)).await.unwrap();
    let doc = call(&gw, "/orders", "mobile-revoked")
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(doc["detail"], "The API key has been revoked");
    assert_eq!(call(&gw, "/orders", "mobile-new").await.status, 200);
    assert_eq!(up.hits(), 4);
}

#[tokio::test]
async fn subscriptions_gate_the_api() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&config(&up, false)).await;
    for (key, detail) in [
        ("other-key", "app `other-app` is not subscribed to `orders`"),
        (
            "web-key",
            "subscription of app `acme-web` to `orders` awaits approval",
        ),
        // The subscription to v1 overrides the one to every version.
        (
            "batch-key",
            "subscription of app `acme-batch` to `orders` was rejected",
        ),
    ] {
        let doc = call(&gw, "/orders", key)
            .await
            .assert_problem(403, "forbidden");
        assert_eq!(doc["detail"], detail, "{key}");
    }
    // A plaintext consumer key identifies the consumer but no app.
    let r = call(&gw, "/orders", "acme-plaintext-key").await;
    let doc = r.assert_problem(401, "unauthorized");
    assert_eq!(
        doc["detail"],
        "`orders` requires a subscription: call it with an API key of a subscribed app"
    );
    assert_eq!(up.hits(), 0);

    // Routes outside the API need no subscription.
    assert_eq!(call(&gw, "/open", "other-key").await.status, 200);
    assert_eq!(call(&gw, "/orders", "mobile-new").await.status, 200);
    assert_eq!(up.hits(), 2);

    // Approving the pending subscription (a reload here; the admin API
    // later) lets the app in.
    gw.reload(&config(&up, false).replace("status: pending", "status: approved"))
        .await
        .unwrap();
    assert_eq!(call(&gw, "/orders", "web-key").await.status, 200);
}

#[tokio::test]
async fn the_secret_is_part_of_the_hash() {
    let up = Upstream::echo().await;
    let yaml = config(&up, false).replace(SECRET, "another-secret-0123456789");
    let gw = TestGateway::start(&yaml).await;
    let doc = call(&gw, "/open", "mobile-new")
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(doc["detail"], "Invalid authentication credentials");
}

#[tokio::test]
async fn cli_keys_new_and_hash_round_trip_into_a_working_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.yaml");
    std::fs::write(&file, format!("server:\n  key_hash_secret: \"{SECRET}\"\n")).unwrap();
    let out = Command::new(BIN)
        .args(["keys", "new", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("key:  "))
        .expect("key line")
        .to_string();
    let printed = text
        .lines()
        .find_map(|l| l.strip_prefix("hash: "))
        .expect("hash line")
        .to_string();
    assert_eq!(key.len(), 43, "32 bytes base64url without padding: {key}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(printed, hash(&key));
    assert!(out.stderr.is_empty(), "no warning with a secret");

    // A key may start with `-` (base64url): it is still the key, not a flag.
    let dashed = "-abcDEF_0123456789-abcDEF_0123456789-abcdef";
    let out = Command::new(BIN)
        .args(["keys", "hash", dashed, "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), hash(dashed));

    // `keys hash` gives the same hash, from the argument or from stdin.
    let out = Command::new(BIN)
        .args(["keys", "hash", &key, "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), printed);
    let mut child = Command::new(BIN)
        .args(["keys", "hash", "-", "--config", file.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{key}").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), printed);

    // Without a config: the built-in secret, with a warning.
    let out = Command::new(BIN)
        .args(["keys", "hash", &key])
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: no server.key_hash_secret"));
    assert_ne!(String::from_utf8(out.stdout).unwrap().trim(), printed);

    // The printed key works against the printed hash.
    let up = Upstream::echo().await;
    let yaml = format!(
        "server:\n  key_hash_secret: \"{SECRET}\"\nservices:\n  - name: s\n    url: \"{}\"\nroutes:\n  - name: r\n    service: s\n    paths: [\"/r\"]\n    plugins:\n      - name: key-auth\nconsumers:\n  - username: c\n    apps:\n      - name: a\n        keys:\n          - hash: \"{printed}\"\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(call(&gw, "/r", &key).await.status, 200);
    assert_eq!(call(&gw, "/r", &key[1..]).await.status, 401);
}
