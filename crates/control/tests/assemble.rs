//! Assembling store documents of several workspaces into one config:
//! naming, reference qualification, apps and credentials, workspace
//! plugins, route conflicts across workspaces, and bad bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_config::Config;
use gatehouse_control::{assemble, check_documents};
use gatehouse_store::{Document, Kind};
use serde_json::{Value, json};

fn doc(workspace: &str, kind: Kind, name: &str, body: Value) -> Document {
    Document {
        id: uuid::Uuid::new_v4(),
        workspace: workspace.to_string(),
        kind,
        name: name.to_string(),
        tags: Vec::new(),
        body,
        version: 1,
        created_at: 0,
        updated_at: 0,
    }
}

fn service(ws: &str, name: &str) -> Document {
    doc(
        ws,
        Kind::Service,
        name,
        json!({"name": name, "url": "http://127.0.0.1:9"}),
    )
}

fn route(ws: &str, name: &str, body: Value) -> Document {
    let mut body = body;
    body["name"] = json!(name);
    doc(ws, Kind::Route, name, body)
}

fn node() -> Config {
    gatehouse_config::parse_str(
        "server:\n  via: false\nlisteners:\n  - address: 127.0.0.1:0\n",
        "node",
    )
    .unwrap()
    .config
}

#[test]
fn default_names_stay_and_other_workspaces_are_qualified_with_references() {
    let docs = vec![
        service("default", "orders"),
        route(
            "default",
            "orders",
            json!({"service": "orders", "paths": ["/orders"]}),
        ),
        service("team-a", "orders"),
        service("team-a", "orders-canary"),
        route(
            "team-a",
            "orders",
            json!({"service": "orders", "hosts": ["a.example.com"], "paths": ["/orders"]}),
        ),
        route(
            "team-a",
            "split",
            json!({"hosts": ["a.example.com"], "paths": ["/split"], "split": [
                {"service": "orders", "weight": 90},
                {"service": "orders-canary", "weight": 10}
            ]}),
        ),
        doc(
            "team-a",
            Kind::Consumer,
            "alice",
            json!({"username": "alice", "apps": [{"name": "mobile"}]}),
        ),
        doc(
            "team-a",
            Kind::Api,
            "orders@v1",
            json!({"name": "orders", "version": "v1", "routes": ["orders"]}),
        ),
        doc("team-a", Kind::Plan, "gold", json!({"name": "gold"})),
        doc(
            "team-a",
            Kind::Subscription,
            "mobile/orders",
            json!({"app": "mobile", "api": "orders", "plan": "gold", "status": "approved"}),
        ),
    ];
    let config = check_documents(&docs, &node()).unwrap();
    // Node settings come from the node.
    assert!(!config.server.via);
    assert_eq!(config.listeners.len(), 1);

    let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["orders", "team-a/orders", "team-a/orders-canary"]);
    let routes: Vec<(&str, Option<&str>)> = config
        .routes
        .iter()
        .map(|r| (r.name.as_str(), r.service.as_deref()))
        .collect();
    assert_eq!(
        routes,
        [
            ("orders", Some("orders")),
            ("team-a/orders", Some("team-a/orders")),
            ("team-a/split", None)
        ]
    );
    let split: Vec<&str> = config.routes[2]
        .split
        .as_ref()
        .unwrap()
        .iter()
        .map(|b| b.service.as_str())
        .collect();
    assert_eq!(split, ["team-a/orders", "team-a/orders-canary"]);
    assert_eq!(config.consumers[0].username, "team-a/alice");
    assert_eq!(config.consumers[0].apps[0].name, "team-a/mobile");
    assert_eq!(config.apis[0].name, "team-a/orders");
    assert_eq!(config.apis[0].routes, ["team-a/orders"]);
    assert_eq!(config.plans[0].name, "team-a/gold");
    let s = &config.subscriptions[0];
    assert_eq!(
        (s.app.as_str(), s.api.as_str(), s.plan.as_str()),
        ("team-a/mobile", "team-a/orders", "team-a/gold")
    );
}

#[test]
fn a_reference_stays_inside_its_workspace() {
    // team-b's route names `orders`, which only exists in `default`: it
    // means team-b/orders, which does not exist.
    let docs = vec![
        service("default", "orders"),
        route(
            "team-b",
            "orders",
            json!({"service": "orders", "paths": ["/b"]}),
        ),
    ];
    let errors = check_documents(&docs, &node()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("route `team-b/orders`")
            && errors[0].contains("no service named `team-b/orders`"),
        "{errors:?}"
    );
}

#[test]
fn workspace_plugins_attach_to_that_workspaces_services() {
    let plugin = |ws: &str, header: &str| {
        doc(
            ws,
            Kind::Plugin,
            "request-id",
            json!({"name": "request-id", "config": {"header": header}}),
        )
    };
    let mut own = service("team-a", "own");
    own.body["plugins"] = json!([{"name": "request-id", "config": {"header": "x-own"}}]);
    let docs = vec![
        plugin("default", "x-global"),
        service("default", "plain"),
        plugin("team-a", "x-team-a"),
        service("team-a", "bare"),
        own,
    ];
    let config = check_documents(&docs, &node()).unwrap();
    assert_eq!(config.plugins.len(), 1, "only default's plugins are global");
    assert_eq!(
        config.plugins[0].config,
        Some(json!({"header": "x-global"}))
    );
    let plugins = |name: &str| {
        config
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .plugins
            .iter()
            .map(|p| p.config.clone().unwrap()["header"].clone())
            .collect::<Vec<_>>()
    };
    assert!(plugins("plain").is_empty());
    assert_eq!(plugins("team-a/bare"), [json!("x-team-a")]);
    assert_eq!(
        plugins("team-a/own"),
        [json!("x-own")],
        "the service's own wins"
    );
}

#[test]
fn app_and_credential_documents_join_their_consumer() {
    let hash = format!("k1:{}", "ab".repeat(32));
    let docs = vec![
        doc(
            "team-a",
            Kind::Consumer,
            "alice",
            json!({"username": "alice"}),
        ),
        doc(
            "team-a",
            Kind::App,
            "mobile",
            json!({"consumer": "alice", "name": "mobile", "keys": [{"hash": hash}]}),
        ),
        doc(
            "team-a",
            Kind::Credential,
            "alice-key",
            json!({"consumer": "alice", "key_auth": {"key": "secret-1"}}),
        ),
    ];
    let config = check_documents(&docs, &node()).unwrap();
    let alice = &config.consumers[0];
    assert_eq!(alice.username, "team-a/alice");
    assert_eq!(alice.apps.len(), 1);
    assert_eq!(alice.apps[0].name, "team-a/mobile");
    assert_eq!(alice.apps[0].keys[0].hash, hash);
    assert_eq!(alice.credentials.key_auth[0].key, "secret-1");
}

#[test]
fn app_or_credential_of_an_unknown_consumer_is_an_error() {
    let docs = vec![
        // alice exists, but in another workspace.
        doc(
            "default",
            Kind::Consumer,
            "alice",
            json!({"username": "alice"}),
        ),
        doc(
            "team-a",
            Kind::App,
            "mobile",
            json!({"consumer": "alice", "name": "mobile"}),
        ),
        doc(
            "team-a",
            Kind::Credential,
            "k",
            json!({"consumer": "bob", "key_auth": {"key": "x"}}),
        ),
    ];
    let errors = assemble(&docs, &node()).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("app document `mobile` in workspace `team-a`")
            && errors[0].contains("consumer `alice`"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("credential document `k` in workspace `team-a`")
            && errors[1].contains("consumer `bob`"),
        "{errors:?}"
    );
}

#[test]
fn bodies_that_do_not_decode_name_workspace_kind_and_document() {
    let docs = vec![
        doc(
            "team-a",
            Kind::Service,
            "broken",
            json!({"name": "broken", "url": "http://x", "colour": "blue"}),
        ),
        doc("default", Kind::Route, "r", json!({"name": 42})),
        doc("team-b", Kind::Consumer, "c", json!("not an object")),
    ];
    let errors = assemble(&docs, &node()).unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].starts_with("service document `broken` in workspace `team-a` does not decode")
            && errors[0].contains("colour"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("route document `r` in workspace `default` does not decode")
            && errors[1].contains("name"),
        "{errors:?}"
    );
    assert!(
        errors[2].starts_with("consumer document `c` in workspace `team-b` does not decode"),
        "{errors:?}"
    );
}

#[test]
fn workspace_and_certificate_documents_are_ignored() {
    let docs = vec![
        doc(
            gatehouse_store::WORKSPACE_SCOPE,
            Kind::Workspace,
            "team-a",
            json!({"anything": true}),
        ),
        doc("team-a", Kind::Certificate, "c", json!({"pem": "..."})),
    ];
    let config = check_documents(&docs, &node()).unwrap();
    assert!(config.services.is_empty() && config.routes.is_empty());
}

fn orders(ws: &str, name: &str, hosts: &[&str], methods: &[&str]) -> Vec<Document> {
    vec![
        service(ws, "svc"),
        route(
            ws,
            name,
            json!({"service": "svc", "hosts": hosts, "paths": ["/orders", "/x"], "methods": methods}),
        ),
    ]
}

#[test]
fn same_matchers_in_two_workspaces_conflict() {
    let mut docs = orders(
        "team-a",
        "orders-v1",
        &["api.example.com"],
        &["GET", "POST"],
    );
    docs.extend(orders(
        "team-b",
        "orders",
        &["other.example.com", "API.example.com"],
        &["get"],
    ));
    let errors = assemble(&docs, &node()).unwrap_err();
    assert_eq!(
        errors,
        [
            "route `orders` in workspace `team-b` conflicts with route `orders-v1` in workspace `team-a`: both match host API.example.com, path /orders, methods GET"
        ]
    );
    // check_documents reports the same.
    assert_eq!(check_documents(&docs, &node()).unwrap_err(), errors);
}

#[test]
fn routes_without_hosts_or_methods_conflict_too() {
    let mut docs = orders("default", "a", &[], &[]);
    docs.extend(orders("team-b", "b", &[], &["DELETE"]));
    let errors = assemble(&docs, &node()).unwrap_err();
    assert_eq!(
        errors,
        [
            "route `b` in workspace `team-b` conflicts with route `a` in workspace `default`: both match any host, path /orders, methods DELETE"
        ]
    );
}

#[test]
fn routes_the_router_can_tell_apart_do_not_conflict() {
    // Different host.
    let mut docs = orders("team-a", "orders", &["a.example.com"], &["GET"]);
    docs.extend(orders("team-b", "orders", &["b.example.com"], &["GET"]));
    assert!(check_documents(&docs, &node()).is_ok());
    // Different methods.
    let mut docs = orders("team-a", "orders", &["api.example.com"], &["GET"]);
    docs.extend(orders("team-b", "orders", &["api.example.com"], &["POST"]));
    assert!(check_documents(&docs, &node()).is_ok());
    // Different priority.
    let mut docs = orders("team-a", "orders", &[], &[]);
    let mut other = orders("team-b", "orders", &[], &[]);
    other[1].body["priority"] = json!(5);
    docs.extend(other);
    assert!(check_documents(&docs, &node()).is_ok());
    // Different header matcher.
    let mut docs = orders("team-a", "orders", &[], &[]);
    let mut other = orders("team-b", "orders", &[], &[]);
    other[1].body["headers"] = json!({"x-team": "b"});
    docs.extend(other);
    assert!(check_documents(&docs, &node()).is_ok());
    // No shared path.
    let mut docs = orders("team-a", "orders", &[], &[]);
    let mut other = orders("team-b", "orders", &[], &[]);
    other[1].body["paths"] = json!(["/orders/*"]);
    docs.extend(other);
    assert!(check_documents(&docs, &node()).is_ok());
}

#[test]
fn same_names_in_different_workspaces_are_fine() {
    let mut docs = orders("default", "orders", &["d.example.com"], &[]);
    docs.extend(orders("team-a", "orders", &["a.example.com"], &[]));
    docs.extend(orders("team-b", "orders", &["b.example.com"], &[]));
    let config = check_documents(&docs, &node()).unwrap();
    let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["orders", "team-a/orders", "team-b/orders"]);
}

#[test]
fn within_one_workspace_conflicts_are_left_to_validation() {
    let mut docs = orders("team-a", "one", &[], &[]);
    docs.push(route(
        "team-a",
        "two",
        json!({"service": "svc", "paths": ["/orders"]}),
    ));
    assert!(assemble(&docs, &node()).is_ok());
}

#[test]
fn validation_errors_name_the_entity() {
    let docs = vec![route(
        "team-a",
        "bad",
        json!({"service": "svc", "paths": ["/a"], "plugins": [{"name": "no-such-plugin"}]}),
    )];
    let errors = check_documents(&docs, &node()).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("route `team-a/bad`") && e.contains("no service named")),
        "{errors:?}"
    );
}

/// Conflicts are found by path groups, not by comparing every pair: many
/// routes with their own paths, one planted clash among them.
#[test]
fn one_conflict_among_thousands_of_routes() {
    let mut docs = vec![service("team-a", "svc"), service("team-b", "svc")];
    for i in 0..3000 {
        for ws in ["team-a", "team-b"] {
            docs.push(route(
                ws,
                &format!("r{i}"),
                json!({"service": "svc", "paths": [format!("/{ws}/{i}")]}),
            ));
        }
    }
    assert!(assemble(&docs, &node()).is_ok());
    docs.push(route(
        "team-b",
        "clash",
        json!({"service": "svc", "paths": ["/team-a/1234"]}),
    ));
    assert_eq!(
        assemble(&docs, &node()).unwrap_err(),
        [
            "route `clash` in workspace `team-b` conflicts with route `r1234` in workspace `team-a`: both match any host, path /team-a/1234, any method"
        ]
    );
}
