//! Validation of APIs, apps, key hashes, plans and subscriptions: every
//! mistake is reported with the field path, line and column.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_config::{ApiState, SubscriptionStatus, parse_str};

fn errors(yaml: &str) -> String {
    parse_str(yaml, "gw.yaml")
        .expect_err("config should be rejected")
        .0
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

const HASH_A: &str = "k1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn base() -> String {
    format!(
        r#"routes:
  - name: v1-list
    paths: ["/v1/orders"]
  - name: v2-list
    paths: ["/v2/orders"]
consumers:
  - username: acme
    apps:
      - name: acme-mobile
        keys:
          - hash: "{HASH_A}"
            expires_at: 2027-01-01T00:00:00Z
plans:
  - name: gold
"#
    )
}

#[test]
fn a_complete_valid_document_parses_with_timestamps() {
    let yaml = format!(
        "{}apis:\n  - name: orders\n    version: v1\n    routes: [v1-list]\n    state: deprecated\n    deprecated_at: 2026-06-01T00:00:00Z\n    sunset: \"2027-01-01T00:00:00Z\"\n    successor: /v2/orders\n  - name: orders\n    version: v2\n    routes: [v2-list]\nsubscriptions:\n  - app: acme-mobile\n    api: orders\n    plan: gold\n    status: pending\n",
        base()
    );
    let loaded = parse_str(&yaml, "gw.yaml").unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config;
    assert_eq!(c.apis[0].state, ApiState::Deprecated);
    assert_eq!(
        c.apis[1].state,
        ApiState::Published,
        "published is the default"
    );
    assert_eq!(
        c.apis[0].deprecated_at.unwrap().unix_seconds(),
        1_780_272_000
    );
    assert_eq!(c.apis[0].sunset.unwrap().unix_seconds(), 1_798_761_600);
    assert_eq!(c.subscriptions[0].status, SubscriptionStatus::Pending);
    let key = &c.consumers[0].apps[0].keys[0];
    assert_eq!(key.expires_at.unwrap().unix_seconds(), 1_798_761_600);
    // Round trip through serde keeps the timestamp text.
    let json = serde_json::to_value(&c.apis[0]).unwrap();
    assert_eq!(json["deprecated_at"], "2026-06-01T00:00:00Z");
}

#[test]
fn api_mistakes_name_their_fields() {
    let yaml = format!(
        "{}apis:\n  - name: orders\n    version: v1\n    routes: [v1-list, nope]\n    state: deprecated\n  - name: orders\n    version: v1\n    routes: [v1-list]\n    sunset: 2020-01-01T00:00:00Z\n    deprecated_at: 2021-01-01T00:00:00Z\n    successor: \"<bad>\"\n  - name: \"\"\n    version: \"\"\n    openapi: \"\"\n",
        base()
    );
    let e = errors(&yaml);
    for needle in [
        "apis[0].routes[1]: no route named `nope` (defined routes: v1-list, v2-list)",
        "apis[0].deprecated_at: required with `state: deprecated`",
        "apis[1].version: `orders` version `v1` is already defined at apis[0]",
        "apis[1].routes[0]: route `v1-list` already belongs to apis[0] (`orders` v1)",
        "apis[1].sunset: must not be earlier than `deprecated_at`",
        "apis[1].successor: `<bad>` is not a URI",
        "apis[2].name: must not be empty",
        "apis[2].version: must not be empty",
        "apis[2].openapi: must not be empty",
    ] {
        assert!(e.contains(needle), "missing `{needle}` in:\n{e}");
    }
    // Located: the unknown route is on line 22 of the file.
    assert!(e.contains("gw.yaml:22:"), "{e}");
}

#[test]
fn bad_timestamp_and_state_are_located() {
    let yaml = format!(
        "{}apis:\n  - name: orders\n    version: v1\n    deprecated_at: 2026-13-01\n",
        base()
    );
    let e = errors(&yaml);
    assert!(
        e.contains("apis[0].deprecated_at: `2026-13-01` is not an RFC 3339 UTC time"),
        "{e}"
    );
    let yaml = format!(
        "{}apis:\n  - name: orders\n    version: v1\n    state: gone\n",
        base()
    );
    let e = errors(&yaml);
    assert!(e.contains("apis[0].state: unknown variant `gone`"), "{e}");
}

#[test]
fn app_key_and_subscription_mistakes_name_their_fields() {
    let yaml = format!(
        r#"{}  - username: other
    apps:
      - name: acme-mobile
        keys:
          - hash: "{HASH_A}"
          - hash: "plaintext-key-123"
          - hash: "k1:abc"
apis:
  - name: orders
    version: v1
    routes: [v1-list]
plans:
  - name: gold
subscriptions:
  - app: ghost
    api: billing
    plan: silver
    status: approved
  - app: acme-mobile
    api: orders
    version: v9
    plan: gold
    status: approved
  - app: acme-mobile
    api: orders
    plan: gold
    status: approved
  - app: acme-mobile
    api: orders
    plan: gold
    status: rejected
"#,
        base().replace("plans:\n  - name: gold\n", "")
    );
    let e = errors(&yaml);
    for needle in [
        "consumers[1].apps[0].name: `acme-mobile` is already used by consumers[0].apps[0]",
        "consumers[1].apps[0].keys[0].hash: duplicate key hash (also at consumers[0].apps[0].keys[0])",
        "consumers[1].apps[0].keys[1].hash: expected `k1:` and 64 hex digits",
        "consumers[1].apps[0].keys[2].hash: expected `k1:` and 64 hex digits",
        "subscriptions[0].app: no app named `ghost` (defined apps: acme-mobile)",
        "subscriptions[0].api: no API named `billing` (defined APIs: orders)",
        "subscriptions[0].plan: no plan named `silver` (defined plans: gold)",
        "subscriptions[1].version: API `orders` has no version `v9` (defined versions: v1)",
        "subscriptions[3]: app `acme-mobile` is already subscribed to `orders` at subscriptions[2]",
    ] {
        assert!(e.contains(needle), "missing `{needle}` in:\n{e}");
    }
    // A value's own syntax is checked as it is read (the first one stops
    // the read), the rest above after.
    let e = errors(&format!("{}server:\n  key_hash_secret: short\n", base()));
    assert!(
        e.contains("server.key_hash_secret: must be at least 16 characters"),
        "{e}"
    );
    assert!(
        !e.contains("plaintext-key-123"),
        "never echo what may be a key:\n{e}"
    );
}

#[test]
fn subscription_status_is_required_and_checked() {
    let yaml = format!(
        "{}apis:\n  - name: orders\n    version: v1\nsubscriptions:\n  - app: acme-mobile\n    api: orders\n    plan: gold\n    status: maybe\n",
        base()
    );
    let e = errors(&yaml);
    assert!(
        e.contains("subscriptions[0].status: unknown variant `maybe`"),
        "{e}"
    );
}
