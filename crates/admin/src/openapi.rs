//! The OpenAPI 3.1 document, built from [`crate::ENDPOINTS`].

use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::ENDPOINTS;
use crate::entity::KINDS;

fn param(name: &str, location: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": location,
        "required": location == "path",
        "description": description,
        "schema": schema,
    })
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

/// The OpenAPI 3.1 document of the admin API.
pub fn openapi() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for e in ENDPOINTS {
        let mut params = Vec::new();
        for seg in e.path.split('/') {
            let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                continue;
            };
            let schema = if name == "kind" {
                json!({ "type": "string", "enum": KINDS.map(|(s, _)| s) })
            } else {
                json!({ "type": "string" })
            };
            params.push(param(name, "path", name, schema));
        }
        let is_list = e.method == "GET" && (e.path.ends_with("{kind}") || e.path == "/workspaces");
        if is_list {
            params.push(param(
                "tags",
                "query",
                "Only documents with all of these comma-separated tags",
                json!({"type": "string"}),
            ));
            params.push(param(
                "limit",
                "query",
                "Page size, 1-1000 (default 100)",
                json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            ));
            params.push(param(
                "after",
                "query",
                "The `next` cursor of the previous page",
                json!({"type": "string"}),
            ));
        }
        if e.path == "/audit" {
            for (n, d) in [
                ("workspace", "Only this workspace"),
                ("kind", "Only this kind"),
                ("name", "Only this entity name"),
                (
                    "before",
                    "Only entries older than this seq (the `next` cursor)",
                ),
                ("limit", "At most this many, 1-1000 (default 100)"),
            ] {
                params.push(param(n, "query", d, json!({"type": "string"})));
            }
        }
        if e.preconditions {
            params.push(param(
                "If-Match",
                "header",
                "`\"<version>\"`: only if the document is at this version (else 412)",
                json!({"type": "string"}),
            ));
            if e.method == "PUT" {
                params.push(param(
                    "If-None-Match",
                    "header",
                    "`*`: only create (else 412)",
                    json!({"type": "string"}),
                ));
            }
        }
        let mut responses = Map::new();
        let decision = e.path.ends_with("/approve") || e.path.ends_with("/reject");
        let ok = match e.method {
            "POST" if decision => "200",
            "POST" => "201",
            "DELETE" if e.path.ends_with("/keys/{hash}") => "200",
            "DELETE" if e.path.starts_with("/workspaces") => "204",
            _ => "200",
        };
        responses.insert(ok.into(), json!({ "description": "Success" }));
        if e.auth {
            responses.insert("401".into(), problem("Missing, unknown or revoked token"));
            responses.insert(
                "403".into(),
                problem("The token's role does not allow this"),
            );
        }
        responses.insert("400".into(), problem("Bad request or invalid entity"));
        responses.insert("404".into(), problem("Not found"));
        if e.method == "POST" {
            responses.insert("409".into(), problem("Already exists"));
        }
        if e.preconditions {
            responses.insert("412".into(), problem("Precondition failed"));
        }
        let mut op = json!({
            "operationId": format!("{} {}", e.method, e.path),
            "summary": e.summary,
            "parameters": params,
            "responses": responses,
        });
        if e.body {
            op["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": { "type": "object" } } }
            });
        }
        if !e.auth {
            op["security"] = json!([]);
        }
        let item = paths
            .entry(e.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        item[e.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Gatehouse admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "See docs/admin-api.md.",
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status"],
                    "properties": {
                        "type": { "type": "string" },
                        "title": { "type": "string" },
                        "status": { "type": "integer" },
                        "detail": { "type": "string" },
                    }
                }
            }
        }
    })
}

/// `GET /openapi.json`
pub async fn serve_openapi() -> Response {
    axum::Json(openapi()).into_response()
}
