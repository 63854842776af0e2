#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The OpenAPI document's schemas: every `$ref` resolves, every kind has a
//! body schema that accepts what the API accepts and rejects what it
//! rejects, and every example in the document is a body the real API (on
//! SQLite in a tempdir) takes.

use gatehouse_store::Role;
use serde_json::{Value, json};

/// Every `$ref` in `v`, with the JSON path where it sits.
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push((
                        at.to_owned(),
                        x.as_str().unwrap_or("<not a string>").to_owned(),
                    ));
                } else {
                    refs(x, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A validator for `#/components/schemas/<name>` of `doc` (refs resolve
/// inside the document).
fn validator(doc: &Value, name: &str) -> jsonschema::Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"].clone(),
    });
    jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn body_schema_name(doc: &Value, seg: &str) -> String {
    let r = doc["paths"][format!("/workspaces/{{ws}}/{seg}")]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("POST {seg}: no schema $ref"));
    let input = r.strip_prefix("#/components/schemas/").unwrap();
    let r = doc["components"]["schemas"][input]["properties"]["body"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{input}: no body $ref"));
    r.strip_prefix("#/components/schemas/").unwrap().to_owned()
}

#[test]
fn every_ref_resolves() {
    let doc = gatehouse_admin::openapi();
    let mut all = Vec::new();
    refs(&doc, "#", &mut all);
    assert!(all.len() > 50, "suspiciously few refs: {}", all.len());
    for (at, r) in &all {
        let ptr = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{at}: $ref {r} is not into #/components/schemas"));
        assert!(
            doc["components"]["schemas"].get(ptr).is_some(),
            "{at}: $ref {r} does not resolve"
        );
    }
    // And no `$defs` left anywhere (they would not be where the refs point).
    assert!(!doc.to_string().contains("$defs"));
}

#[test]
fn every_kind_has_a_body_schema() {
    let doc = gatehouse_admin::openapi();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Service",
        "Route",
        "PluginRef",
        "Consumer",
        "Plan",
        "Subscription",
        "Api",
        "AppDocument",
        "CredentialDocument",
        "Certificate",
        "Workspace",
    ] {
        assert!(schemas[name].is_object(), "{name} missing");
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
    }
    for (seg, _) in gatehouse_admin::KINDS {
        let name = body_schema_name(&doc, seg);
        assert!(schemas.contains_key(&name), "{seg}: {name}");
        for (path, method) in [
            (format!("/workspaces/{{ws}}/{seg}/{{name}}"), "put"),
            (format!("/workspaces/{{ws}}/{seg}/{{name}}"), "get"),
            (format!("/workspaces/{{ws}}/{seg}"), "get"),
        ] {
            assert!(doc["paths"][&path][method].is_object(), "{method} {path}");
        }
        // The generic path is not in the document.
        assert!(doc["paths"].get("/workspaces/{ws}/{kind}").is_none());
    }
    assert_eq!(
        doc["paths"]["/workspaces"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/WorkspaceInput"
    );
}

#[test]
fn bodies_validate_against_their_schemas() {
    let doc = gatehouse_admin::openapi();
    let service = validator(&doc, "Service");
    let ok =
        json!({ "name": "billing", "url": "http://10.0.0.5:8080", "retries": { "attempts": 2 } });
    assert!(service.is_valid(&ok), "{:?}", service.validate(&ok).err());
    // The name is filled in by the API, so the schema does not require it.
    assert!(service.is_valid(&json!({ "url": "http://10.0.0.5:8080" })));
    for bad in [
        json!({ "name": "billing", "url": "http://10.0.0.5:8080", "colour": "red" }),
        json!({ "name": "billing", "url": 42 }),
        json!({ "name": "billing", "url": "http://x", "retries": { "attempts": 2, "nope": 1 } }),
        json!("billing"),
    ] {
        assert!(!service.is_valid(&bad), "accepted {bad}");
    }
    let input = validator(&doc, "ServiceInput");
    assert!(input.is_valid(&json!({ "tags": ["a"], "body": { "url": "http://x:1" } })));
    assert!(!input.is_valid(&json!({ "tags": ["a"], "extra": 1 })));
    assert!(!input.is_valid(&json!({ "body": { "url": "http://x:1", "extra": 1 } })));

    let sub = validator(&doc, "Subscription");
    assert!(sub.is_valid(&json!({ "app": "a", "api": "b", "plan": "c", "status": "approved" })));
    assert!(!sub.is_valid(&json!({ "app": "a", "api": "b", "plan": "c", "status": "maybe" })));
    assert!(!sub.is_valid(&json!({ "app": "a", "plan": "c", "status": "approved" })));

    let cert = validator(&doc, "Certificate");
    assert!(cert.is_valid(&json!({ "cert": "x", "key": "y" })));
    // Secrets are write-only: reads show `null` and a fingerprint, and an
    // update may leave the key out to keep it.
    assert!(cert.is_valid(&json!({ "cert": "x" })));
    let read =
        json!({ "cert": "x", "key": null, "key_fingerprint": "hmac-sha256:0123456789abcdef" });
    assert!(cert.is_valid(&read), "{:?}", cert.validate(&read).err());
    assert!(!cert.is_valid(&json!({ "cert": "x", "key_fingerprint": "sha256:x" })));
    assert!(!cert.is_valid(&json!({ "cert": "x", "key": "y", "chain": "z" })));
    let key = validator(&doc, "KeyAuthCredential");
    assert!(
        key.is_valid(&json!({ "key": null, "key_fingerprint": "hmac-sha256:00112233aabbccdd" }))
    );
    assert!(!key.is_valid(&json!({ "key": 5 })));

    let app = validator(&doc, "AppDocument");
    assert!(app.is_valid(&json!({ "consumer": "c", "name": "a" })));
    assert!(!app.is_valid(&json!({ "consumer": "c", "name": "a", "secret": "s" })));
    let cred = validator(&doc, "CredentialDocument");
    assert!(cred.is_valid(&json!({ "consumer": "c", "key_auth": { "key": "k-1234567" } })));
    assert!(cred.is_valid(
        &json!({ "consumer": "c", "key_auth": { "key": null, "key_fingerprint": "hmac-sha256:00112233aabbccdd" } })
    ));
    // Exactly one registered scheme.
    assert!(!cred.is_valid(&json!({ "consumer": "c" })));
    assert!(!cred.is_valid(&json!({ "consumer": "c", "password": "p" })));
    assert!(
        !cred.is_valid(&json!({ "consumer": "c", "key_auth": { "key": "k-1234567", "x": 1 } }))
    );
}

/// The examples of the document validate against their schemas, and the
/// real API creates a document from each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_are_valid_and_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
    let store = gatehouse_store::open(&url).await.unwrap();
    let token = store
        .create_token("test", "root", Role::SuperAdmin)
        .await
        .unwrap()
        .plaintext;
    let server = gatehouse_admin::Background::start(gatehouse_admin::AppState::new(store.clone()))
        .await
        .unwrap();
    let base = server.base().to_string();
    let http = reqwest::Client::new();
    let doc: Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc, gatehouse_admin::openapi());
    // Every example validates against its schema.
    let mut examples = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let media = &op["requestBody"]["content"]["application/json"];
            let Some(example) = media.get("example") else {
                continue;
            };
            let r = media["schema"]["$ref"].as_str().unwrap();
            let v = validator(&doc, r.strip_prefix("#/components/schemas/").unwrap());
            assert!(
                v.is_valid(example),
                "{method} {path}: example {example} is invalid: {:?}",
                v.validate(example).err()
            );
            examples += 1;
        }
    }
    // POST + PUT per kind, POST + PUT of workspaces, POST /tokens.
    assert!(
        examples > 2 * gatehouse_admin::KINDS.len() + 2,
        "{examples}"
    );
    // And the API creates each kind's POST example (in the order of KINDS,
    // so what one refers to by name, such as a consumer, may come first).
    let mut posted = 0;
    for (seg, _) in gatehouse_admin::KINDS {
        let path = format!("/workspaces/{{ws}}/{seg}");
        let example =
            &doc["paths"][&path]["post"]["requestBody"]["content"]["application/json"]["example"];
        assert!(example.is_object(), "POST {path}: no example");
        let resp = http
            .post(format!("{base}{}", path.replace("{ws}", "default")))
            .bearer_auth(&token)
            .json(example)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 201, "POST {path} {example}: {text}");
        // The answer has the shape the document describes (for secrets:
        // `null` and a fingerprint).
        let answer = &doc["paths"][&path]["post"]["responses"]["201"]["content"]["application/json"]
            ["schema"]["$ref"];
        let v = validator(
            &doc,
            answer
                .as_str()
                .unwrap()
                .strip_prefix("#/components/schemas/")
                .unwrap(),
        );
        let got: Value = serde_json::from_str(&text).unwrap();
        assert!(
            v.is_valid(&got),
            "POST {path}: answer {got} does not match its schema: {:?}",
            v.validate(&got).err()
        );
        // The PUT example leaves the name to the path.
        let one = format!("{path}/{{name}}");
        let example =
            &doc["paths"][&one]["put"]["requestBody"]["content"]["application/json"]["example"];
        let resp = http
            .put(format!(
                "{base}{}",
                one.replace("{ws}", "default").replace(
                    "{name}",
                    if seg == "apis" {
                        "put-example@v2"
                    } else {
                        "put-example"
                    }
                )
            ))
            .bearer_auth(&token)
            .json(example)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 201, "PUT {one} {example}: {text}");
        posted += 1;
    }
    assert_eq!(posted, gatehouse_admin::KINDS.len());
    drop(server);
}

/// Every component schema is a valid draft 2020-12 schema (the dialect of
/// OpenAPI 3.1), and the operations are well formed: unique operation ids,
/// path parameters exactly those of the path, a success response each,
/// request bodies with a schema.
#[test]
fn document_is_well_formed() {
    let doc = gatehouse_admin::openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let mut s = schema.clone();
        s["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        if let Err(e) = jsonschema::meta::validate(&s) {
            panic!("{name}: not a valid 2020-12 schema: {e}");
        }
    }
    // The meta-schema check does look inside: a broken schema fails it.
    assert!(!jsonschema::meta::is_valid(&json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "properties": { "a": { "type": 42 } }
    })));
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let in_path: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            assert!(
                ["get", "post", "put", "patch", "delete"].contains(&method.as_str()),
                "{at}"
            );
            assert!(
                ids.insert(op["operationId"].as_str().unwrap().to_owned()),
                "{at}: duplicate operationId"
            );
            assert!(op["summary"].is_string(), "{at}");
            assert_eq!(op["tags"].as_array().unwrap().len(), 1, "{at}");
            let params = op["parameters"].as_array().unwrap();
            let mut declared = Vec::new();
            for p in params {
                let loc = p["in"].as_str().unwrap();
                assert!(["path", "query", "header"].contains(&loc), "{at}: {p}");
                assert!(
                    p["name"].is_string() && p["schema"].is_object(),
                    "{at}: {p}"
                );
                if loc == "path" {
                    assert_eq!(p["required"], true, "{at}: {p}");
                    declared.push(p["name"].as_str().unwrap());
                }
            }
            assert_eq!(declared, in_path, "{at}: path parameters");
            let codes: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(codes.iter().any(|c| c.starts_with('2')), "{at}: {codes:?}");
            for (code, r) in op["responses"].as_object().unwrap() {
                assert!(r["description"].is_string(), "{at} {code}");
            }
            if let Some(body) = op.get("requestBody") {
                assert!(
                    body["content"]["application/json"]["schema"].is_object(),
                    "{at}"
                );
            }
        }
    }
}
