//! Assembling store documents of several workspaces into one config:
//! naming, reference qualification, apps and credentials, workspace
//! plugins, host ownership across workspaces (a table of hostile
//! attempts), messages scoped to the writing workspace, and bad bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_config::Config;
use gatehouse_control::{Viewer, assemble, check_documents, check_documents_for};
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
    let config = check_documents(&docs, &node(), &gatehouse_plugins::registry()).unwrap();
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
            json!({"service": "orders", "hosts": ["b.example.com"], "paths": ["/b"]}),
        ),
    ];
    let errors = check_documents(&docs, &node(), &gatehouse_plugins::registry()).unwrap_err();
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
    let config = check_documents(&docs, &node(), &gatehouse_plugins::registry()).unwrap();
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
    let config = check_documents(&docs, &node(), &gatehouse_plugins::registry()).unwrap();
    let alice = &config.consumers[0];
    assert_eq!(alice.username, "team-a/alice");
    assert_eq!(alice.apps.len(), 1);
    assert_eq!(alice.apps[0].name, "team-a/mobile");
    assert_eq!(alice.apps[0].keys[0].hash, hash);
    assert_eq!(alice.credentials.of("key_auth")[0]["key"], "secret-1");
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
    let config = check_documents(&docs, &node(), &gatehouse_plugins::registry()).unwrap();
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
fn a_host_belongs_to_one_workspace() {
    let mut docs = orders(
        "team-a",
        "orders-v1",
        &["api.example.com"],
        &["GET", "POST"],
    );
    // Other methods, other paths: still the same host, still refused.
    docs.extend(orders(
        "team-b",
        "orders",
        &["other.example.com", "API.example.com."],
        &["DELETE"],
    ));
    let errors = assemble(&docs, &node()).unwrap_err();
    assert_eq!(
        errors,
        [
            "route `orders-v1` in workspace `team-a` claims host `api.example.com`, which overlaps host `api.example.com` of route `orders` in workspace `team-b`: a host belongs to one workspace"
        ]
    );
    // check_documents reports the same, in full.
    assert_eq!(
        check_documents(&docs, &node(), &gatehouse_plugins::registry()).unwrap_err(),
        errors
    );
    // A write into team-b sees its own side, without team-a's names.
    assert_eq!(
        check_documents_for(
            &docs,
            &node(),
            &gatehouse_plugins::registry(),
            Viewer::Workspace("team-b")
        )
        .unwrap_err(),
        [
            "route `orders` in workspace `team-b`: host `api.example.com` is taken by another workspace (a host belongs to one workspace; choose another host)"
        ]
    );
}

#[test]
fn routes_outside_default_name_their_hosts() {
    let mut docs = orders("default", "a", &[], &[]);
    docs.extend(orders("team-b", "b", &[], &["DELETE"]));
    let errors = assemble(&docs, &node()).unwrap_err();
    assert_eq!(
        errors,
        [
            "route `b` in workspace `team-b`: a route outside workspace `default` must name its hosts (without `hosts`, or with `*`, it would match every host, those of other workspaces too)"
        ]
    );
}

#[test]
fn distinct_hosts_and_host_less_default_routes_are_fine() {
    let mut docs = orders("team-a", "orders", &["a.example.com"], &["GET"]);
    docs.extend(orders("team-b", "orders", &["b.example.com"], &["GET"]));
    // default's catch-all at the same priority: team routes win their hosts.
    docs.extend(orders("default", "catch-all", &[], &[]));
    // A high priority only ranks a workspace's own routes.
    docs[1].body["priority"] = json!(1000);
    assert!(check_documents(&docs, &node(), &gatehouse_plugins::registry()).is_ok());
}

#[test]
fn same_names_in_different_workspaces_are_fine() {
    let mut docs = orders("default", "orders", &["d.example.com"], &[]);
    docs.extend(orders("team-a", "orders", &["a.example.com"], &[]));
    docs.extend(orders("team-b", "orders", &["b.example.com"], &[]));
    let config = check_documents(&docs, &node(), &gatehouse_plugins::registry()).unwrap();
    let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["orders", "team-a/orders", "team-b/orders"]);
    // The workspace of each entity travels with the config.
    let ws = &config.workspaces;
    let of_routes: Vec<&str> = ws.routes.iter().map(|&w| ws.name(w)).collect();
    assert_eq!(of_routes, ["default", "team-a", "team-b"]);
}

#[test]
fn within_one_workspace_overlaps_are_left_to_validation() {
    let mut docs = orders("team-a", "one", &["a.example.com"], &[]);
    docs.push(route(
        "team-a",
        "two",
        json!({"service": "svc", "hosts": ["*.example.com"], "paths": ["/orders"], "priority": 9}),
    ));
    assert!(assemble(&docs, &node()).is_ok());
}

#[test]
fn validation_errors_name_the_entity() {
    let docs = vec![route(
        "team-a",
        "bad",
        json!({"service": "svc", "hosts": ["a.example.com"], "paths": ["/a"], "plugins": [{"name": "no-such-plugin"}]}),
    )];
    let errors = check_documents(&docs, &node(), &gatehouse_plugins::registry()).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("route `team-a/bad`") && e.contains("no service named")),
        "{errors:?}"
    );
}

/// Ownership is checked through host indexes, not by comparing every pair:
/// many routes with their own hosts, one planted clash among them.
#[test]
fn one_clash_among_thousands_of_routes() {
    let mut docs = vec![service("team-a", "svc"), service("team-b", "svc")];
    for i in 0..3000 {
        for ws in ["team-a", "team-b"] {
            docs.push(route(
                ws,
                &format!("r{i}"),
                json!({"service": "svc", "hosts": [format!("h{i}.{ws}.example")], "paths": ["/"]}),
            ));
        }
    }
    assert!(assemble(&docs, &node()).is_ok());
    docs.push(route(
        "team-b",
        "clash",
        json!({"service": "svc", "hosts": ["h1234.team-a.example"], "paths": ["/other"]}),
    ));
    assert_eq!(
        assemble(&docs, &node()).unwrap_err(),
        [
            "route `r1234` in workspace `team-a` claims host `h1234.team-a.example`, which overlaps host `h1234.team-a.example` of route `clash` in workspace `team-b`: a host belongs to one workspace"
        ]
    );
}

// ---- hostile attempts of workspace team-a against team-b ---------------------

/// team-b as it stands: routes on `b.example.com` and `*.b-apps.example`,
/// a certificate for `secure.b.example`, a consumer with a plaintext key
/// and an app key, and a catch-all of `default`.
fn victim() -> Vec<Document> {
    let mut docs = orders("team-b", "orders", &["b.example.com"], &[]);
    docs.push(route(
        "team-b",
        "wildcard",
        json!({"service": "svc", "hosts": ["*.b-apps.example"], "paths": ["/"]}),
    ));
    docs.push(doc(
        "team-b",
        Kind::Certificate,
        "secure-cert",
        json!({"cert": "", "key": "", "hosts": ["secure.b.example"]}),
    ));
    docs.push(doc(
        "team-b",
        Kind::Consumer,
        "bob",
        json!({"username": "bob", "credentials": {"key_auth": [{"key": "bobs-guessable-key"}]},
               "apps": [{"name": "bob-app", "keys": [{"hash": format!("k1:{}", "ab".repeat(32))}]}]}),
    ));
    docs.push(service("team-a", "svc"));
    docs.push(service("default", "fallback"));
    docs.push(route(
        "default",
        "catch-all",
        json!({"service": "fallback", "paths": ["/"]}),
    ));
    docs
}

/// What the check answers a write into team-a.
#[derive(Debug)]
enum Expect {
    /// Accepted.
    Ok,
    /// Refused with a message containing this.
    Refused(&'static str),
}

/// Adds `attempt` (documents of team-a) to [`victim`] and checks the answer
/// team-a gets: accepted or refused as expected, and never a word that
/// names or confirms anything of team-b.
fn check(attempt: Vec<Document>, expect: &Expect) -> Result<(), String> {
    let mut docs = victim();
    docs.extend(attempt);
    let answer = check_documents_for(
        &docs,
        &node(),
        &gatehouse_plugins::registry(),
        Viewer::Workspace("team-a"),
    );
    match (expect, &answer) {
        (Expect::Ok, Ok(_)) => Ok(()),
        (Expect::Refused(text), Err(errors)) => {
            if !errors.iter().any(|e| e.contains(text)) {
                return Err(format!("expected a message with {text:?}, got {errors:?}"));
            }
            for e in errors {
                for secret in [
                    "team-b",
                    "bob",
                    "orders",
                    "wildcard",
                    "secure-cert",
                    "k1:",
                    "catch-all",
                    // Index paths count the entities of every workspace.
                    "routes[",
                    "consumers[",
                    "services[",
                ] {
                    if e.contains(secret) {
                        return Err(format!("{e:?} reveals {secret:?}"));
                    }
                }
            }
            Ok(())
        }
        (Expect::Ok, Err(errors)) => Err(format!("expected it accepted, got {errors:?}")),
        (Expect::Refused(text), Ok(_)) => Err(format!(
            "expected a refusal with {text:?}, but it was accepted"
        )),
    }
}

/// Runs [`check`] on every named attempt, then fails naming each attempt
/// that was answered wrongly.
fn check_all(attempts: Vec<(&str, Vec<Document>, Expect)>) {
    assert!(!attempts.is_empty(), "no attempts");
    let failures: Vec<String> = attempts
        .into_iter()
        .filter_map(|(case, attempt, expect)| {
            check(attempt, &expect)
                .err()
                .map(|e| format!("{case}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} attempt(s) answered wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn a_route(name: &str, body: Value) -> Document {
    let mut body = body;
    body["service"] = json!("svc");
    if body.get("paths").is_none() {
        body["paths"] = json!(["/"]);
    }
    route("team-a", name, body)
}

const TAKEN: &str = "is taken by another workspace";

#[test]
fn a_route_cannot_claim_a_host_of_another_workspace() {
    check_all(vec![
        (
            "the same host",
            vec![a_route("grab", json!({"hosts": ["b.example.com"]}))],
            Expect::Refused(TAKEN),
        ),
        (
            "the same host in another spelling",
            vec![a_route("grab", json!({"hosts": ["B.Example.COM."]}))],
            Expect::Refused(TAKEN),
        ),
        (
            "the same host, higher priority, another path",
            vec![a_route(
                "grab",
                json!({"hosts": ["b.example.com"], "priority": 1000, "paths": ["/keys/*"]}),
            )],
            Expect::Refused(TAKEN),
        ),
        (
            "a wildcard over the host",
            vec![a_route("grab", json!({"hosts": ["*.example.com"]}))],
            Expect::Refused(TAKEN),
        ),
        (
            "a host under the other's wildcard",
            vec![a_route("grab", json!({"hosts": ["x.b-apps.example"]}))],
            Expect::Refused(TAKEN),
        ),
        (
            "a wildcard under the other's wildcard",
            vec![a_route("grab", json!({"hosts": ["*.deep.b-apps.example"]}))],
            Expect::Refused(TAKEN),
        ),
        (
            "a route on the other's certificate name",
            vec![a_route("grab", json!({"hosts": ["secure.b.example"]}))],
            Expect::Refused(TAKEN),
        ),
    ]);
}

#[test]
fn a_certificate_cannot_claim_a_route_host_of_another_workspace() {
    check_all(vec![(
        "a certificate for the other's route host",
        vec![doc(
            "team-a",
            Kind::Certificate,
            "mitm",
            json!({"cert": "", "key": "", "hosts": ["b.example.com"]}),
        )],
        Expect::Refused(TAKEN),
    )]);
}

#[test]
fn a_route_without_hosts_is_refused_at_any_priority() {
    check_all(vec![
        (
            "a host-less route with a high priority",
            vec![a_route("grab", json!({"priority": 1000}))],
            Expect::Refused("must name its hosts"),
        ),
        (
            "the any-host pattern",
            vec![a_route("grab", json!({"hosts": ["*"], "priority": 1000}))],
            Expect::Refused("must name its hosts"),
        ),
    ]);
}

#[test]
fn a_route_cannot_rank_below_the_catch_all_of_default() {
    check_all(vec![(
        "a route out-ranked by default's catch-all",
        vec![a_route(
            "low",
            json!({"hosts": ["a.example.com"], "priority": -1}),
        )],
        Expect::Refused("use at least 0"),
    )]);
}

#[test]
fn the_check_is_no_oracle_for_keys_of_another_workspace() {
    check_all(vec![
        (
            "a guessed plaintext key of the other workspace",
            vec![doc(
                "team-a",
                Kind::Consumer,
                "mallory",
                json!({"username": "mallory", "credentials": {"key_auth": [{"key": "bobs-guessable-key"}]}}),
            )],
            Expect::Ok,
        ),
        (
            "a guessed app key hash of the other workspace",
            vec![doc(
                "team-a",
                Kind::Consumer,
                "mallory",
                json!({"username": "mallory", "apps": [{"name": "m", "keys": [{"hash": format!("k1:{}", "ab".repeat(32))}]}]}),
            )],
            Expect::Ok,
        ),
    ]);
}

#[test]
fn refusals_name_only_entities_of_the_writing_workspace() {
    check_all(vec![
        (
            "a reference to the other's service lists no names",
            vec![route(
                "team-a",
                "r",
                json!({"service": "nope", "hosts": ["a.example.com"], "paths": ["/"]}),
            )],
            Expect::Refused("no service named `team-a/nope`"),
        ),
        (
            "a duplicate key within its own workspace names its own consumer",
            vec![
                doc(
                    "team-a",
                    Kind::Consumer,
                    "m1",
                    json!({"username": "m1", "credentials": {"key_auth": [{"key": "same-key-0001"}]}}),
                ),
                doc(
                    "team-a",
                    Kind::Consumer,
                    "m2",
                    json!({"username": "m2", "credentials": {"key_auth": [{"key": "same-key-0001"}]}}),
                ),
            ],
            Expect::Refused("duplicate API key (also used by consumer `team-a/m1`"),
        ),
    ]);
}

/// Node files are shared by every workspace: a path would use another
/// workspace's (or the node's) private key, probe for files, or break every
/// node's store later by naming a file that goes away. Refused alike
/// whether the file exists or not.
#[test]
fn node_files_cannot_be_named_outside_default() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let service = |tls: Value| {
        vec![doc(
            "team-a",
            Kind::Service,
            "files",
            json!({"name": "files", "url": "https://127.0.0.1:9", "tls": tls}),
        )]
    };
    check_all(vec![
        (
            "an upstream CA file that exists",
            service(json!({"ca": manifest})),
            Expect::Refused("names a file on the node"),
        ),
        (
            "an upstream CA file that does not exist",
            service(json!({"ca": "/nonexistent/ca.pem"})),
            Expect::Refused("names a file on the node"),
        ),
        (
            "another workspace's certificate key as the client identity",
            service(
                json!({"client_cert": "gatehouse-data/certs/team-b--7365637572652d63657274.crt",
                       "client_key": "gatehouse-data/certs/team-b--7365637572652d63657274.key"}),
            ),
            Expect::Refused("names a file on the node"),
        ),
        (
            "an OpenAPI file",
            vec![doc(
                "team-a",
                Kind::Api,
                "spec@v1",
                json!({"name": "spec", "version": "v1", "openapi": manifest}),
            )],
            Expect::Refused("`openapi` names a file on the node"),
        ),
    ]);
}

#[test]
fn its_own_hosts_are_accepted_at_any_priority() {
    check_all(vec![(
        "its own host and wildcard, priority 1000",
        vec![a_route(
            "mine",
            json!({"hosts": ["a.example.com", "*.a-apps.example"], "priority": 1000}),
        )],
        Expect::Ok,
    )]);
}

#[test]
fn duplicate_keys_within_one_workspace_are_still_refused() {
    let mut docs = victim();
    docs.push(doc(
        "team-b",
        Kind::Consumer,
        "carol",
        json!({"username": "carol", "credentials": {"key_auth": [{"key": "bobs-guessable-key"}]}}),
    ));
    let errors = check_documents_for(
        &docs,
        &node(),
        &gatehouse_plugins::registry(),
        Viewer::Workspace("team-b"),
    )
    .unwrap_err();
    assert!(
        errors.iter().any(|e| e.contains("duplicate API key")),
        "{errors:?}"
    );
}

#[test]
fn problems_of_another_workspace_are_not_shown() {
    // team-b's store is broken (a route naming a missing service); a write
    // into team-a learns only that there are problems elsewhere.
    let mut docs = victim();
    docs.push(route(
        "team-b",
        "broken",
        json!({"service": "missing", "hosts": ["b.example.com"], "paths": ["/"]}),
    ));
    let errors = check_documents_for(
        &docs,
        &node(),
        &gatehouse_plugins::registry(),
        Viewer::Workspace("team-a"),
    )
    .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("the store has problems outside workspace `team-a`"),
        "{errors:?}"
    );
    assert!(!errors[0].contains("team-b") && !errors[0].contains("broken"));
    // In full for a node.
    let full = check_documents(&docs, &node(), &gatehouse_plugins::registry()).unwrap_err();
    assert!(
        full.iter().any(|e| e.contains("route `team-b/broken`")),
        "{full:?}"
    );
}

#[test]
fn accept_consumers_from_names_existing_other_workspaces() {
    let ws = |name: &str, body: Value| {
        doc(
            gatehouse_store::WORKSPACE_SCOPE,
            Kind::Workspace,
            name,
            body,
        )
    };
    let mut docs = victim();
    docs.push(ws(
        "team-b",
        json!({"accept_consumers_from": ["default", "team-a"]}),
    ));
    docs.push(ws("team-a", json!({})));
    let config = check_documents(&docs, &node(), &gatehouse_plugins::registry()).unwrap();
    let w = &config.workspaces;
    let b = w.names.iter().position(|n| n == "team-b").unwrap();
    let accepted: Vec<&str> = w.accepted_by(b).map(|i| w.name(i)).collect();
    assert_eq!(accepted, ["team-b", "default", "team-a"]);
    let a = w.names.iter().position(|n| n == "team-a").unwrap();
    assert_eq!(w.accepted_by(a).count(), 1, "sharing is one-way");

    for (list, message) in [
        (
            json!(["nowhere"]),
            "names `nowhere`, which is not a workspace",
        ),
        (json!(["team-b"]), "names the workspace itself"),
        (json!(["default", "default"]), "names `default` twice"),
    ] {
        let mut docs = victim();
        docs.push(ws("team-b", json!({"accept_consumers_from": list})));
        let errors = check_documents(&docs, &node(), &gatehouse_plugins::registry()).unwrap_err();
        assert!(errors.iter().any(|e| e.contains(message)), "{errors:?}");
    }
}

#[test]
fn default_may_name_node_files() {
    // The global admins' workspace keeps naming node files (it is global);
    // the check above is for other workspaces only.
    let mut docs = victim();
    docs.push(doc(
        "default",
        Kind::Api,
        "spec@v1",
        json!({"name": "spec", "version": "v1", "openapi": concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")}),
    ));
    check_documents(&docs, &node(), &gatehouse_plugins::registry()).unwrap();
}
