//! The OpenAPI 3.1 document, built from [`crate::ENDPOINTS`], with the
//! JSON Schema of every document kind's body (schemars, draft 2020-12 —
//! the dialect OpenAPI 3.1 uses) under `components.schemas`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use gatehouse_core::Schemes;
use gatehouse_store::Kind;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::entity::{self, KINDS};
use crate::{AppState, ENDPOINTS, Endpoint};

const SCHEMAS: &str = "#/components/schemas/";
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

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMAS}{name}") })
}

/// Points `#/$defs/...` references (schemars' default place) at
/// `#/components/schemas/...`, everywhere in `v`.
fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "$ref"
                    && let Value::String(r) = x
                    && let Some(rest) = r.strip_prefix("#/$defs/")
                {
                    *r = format!("{SCHEMAS}{rest}");
                } else {
                    rewrite_refs(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

/// The component schemas: every kind's body (and what those use), the
/// request and response envelopes per kind, and `Problem`. Returns them
/// with the body schema name of each kind the API serves.
fn schemas(schemes: &Schemes) -> (Map<String, Value>, Vec<(Kind, String)>) {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    let mut inline = Vec::new();
    let mut names = Vec::new();
    for kind in Kind::ALL {
        let value = entity::body_schema(kind, &mut generator).to_value();
        match value.get("$ref").and_then(Value::as_str).and_then(|r| {
            r.strip_prefix(SCHEMAS)
                .or_else(|| r.strip_prefix("#/$defs/"))
        }) {
            Some(name) => names.push((kind, name.to_owned())),
            None => {
                let name = format!("{kind:?}");
                inline.push((name.clone(), value));
                names.push((kind, name));
            }
        }
    }
    let mut schemas = generator.take_definitions(true);
    for (name, value) in inline {
        schemas.insert(name, value);
    }
    credential_schemas(schemes, &mut schemas);
    let mut secret_holders: Vec<(String, Vec<&str>)> = schemes
        .iter()
        .map(|s| {
            (
                credential_schema_name(s.field()),
                s.secret_fields().to_vec(),
            )
        })
        .collect();
    secret_holders.push(("Certificate".to_owned(), vec!["key"]));
    write_only_secrets(&mut schemas, &secret_holders);
    for (kind, name) in &names {
        // The API fills the name field in from the document name.
        if let Some(field) = entity::name_field(*kind)
            && let Some(Value::Object(s)) = schemas.get_mut(name)
        {
            if let Some(Value::Array(req)) = s.get_mut("required") {
                req.retain(|f| f != field);
            }
            if let Some(Value::Object(p)) = s.get_mut("properties").and_then(|p| p.get_mut(field)) {
                let d = p
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                p.insert(
                    "description".into(),
                    Value::String(
                        format!("{d} Must equal the document name; filled in when left out.")
                            .trim()
                            .to_owned(),
                    ),
                );
            }
        }
        // An API's name and version are filled in from `<name>@<version>`.
        if *kind == gatehouse_store::Kind::Api
            && let Some(Value::Object(s)) = schemas.get_mut(name)
            && let Some(Value::Array(req)) = s.get_mut("required")
        {
            req.retain(|f| f != "name" && f != "version");
        }
        schemas.insert(
            format!("{name}Input"),
            json!({
                "type": "object",
                "description": format!("What POST and PUT take: the `{name}` as `body`."),
                "additionalProperties": false,
                "properties": {
                    "name": {
                        "type": "string",
                        "description": "The document name. PUT takes it from the path, POST from the body's name field when left out."
                    },
                    "tags": {
                        "type": "array", "items": { "type": "string" },
                        "description": "Free-form labels the list endpoints filter on"
                    },
                    "body": schema_ref(name),
                }
            }),
        );
        schemas.insert(
            format!("{name}Document"),
            json!({
                "type": "object",
                "description": format!("A stored document whose body is a `{name}`."),
                "required": ["id", "workspace", "kind", "name", "tags", "version", "created_at", "updated_at", "body"],
                "properties": {
                    "id": { "type": "string", "format": "uuid" },
                    "workspace": { "type": "string" },
                    "kind": { "type": "string" },
                    "name": { "type": "string" },
                    "tags": { "type": "array", "items": { "type": "string" } },
                    "version": { "type": "integer", "description": "The store revision that last changed it; the ETag" },
                    "created_at": { "type": "integer", "description": "Unix milliseconds" },
                    "updated_at": { "type": "integer", "description": "Unix milliseconds" },
                    "body": schema_ref(name),
                }
            }),
        );
    }
    schemas.insert(
        "DocumentPatch".into(),
        json!({
            "type": "object",
            "description": "A JSON merge patch (RFC 7396) of the document's `tags` and `body`.",
            "additionalProperties": false,
            "properties": {
                "tags": { "type": "array", "items": { "type": "string" } },
                "body": { "type": "object", "description": "Merged into the body; `null` removes a field" },
            }
        }),
    );
    schemas.insert(
        "TokenInput".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "role"],
            "properties": {
                "name": { "type": "string", "description": "What the token is for" },
                "role": { "type": "string", "description": "super-admin, admin or read-only" },
                "workspace": { "type": "string", "description": "Limits the token to one workspace" },
            }
        }),
    );
    schemas.insert(
        "Problem".into(),
        json!({
            "type": "object",
            "description": "RFC 9457 problem details",
            "required": ["type", "title", "status"],
            "properties": {
                "type": { "type": "string" },
                "title": { "type": "string" },
                "status": { "type": "integer" },
                "detail": { "type": "string" },
            }
        }),
    );
    for v in schemas.values_mut() {
        rewrite_refs(v);
    }
    (schemas, names)
}

/// The component name of one credential of the scheme written under
/// `field`: `key_auth` -> `KeyAuthCredential`.
fn credential_schema_name(field: &str) -> String {
    let mut name: String = field
        .split(['_', '-'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect();
    name.push_str("Credential");
    name
}

/// The registered credential schemes in the schemas: one component per
/// scheme (its own JSON Schema), consumers' `Credentials` as an object of
/// lists of them, and `CredentialDocument` as `consumer` plus exactly one
/// scheme field. The config types hold credentials as raw values (the
/// schemes are the plugins'), so schemars alone cannot say this.
fn credential_schemas(schemes: &Schemes, schemas: &mut Map<String, Value>) {
    let mut fields = Map::new();
    let mut document = Map::new();
    let mut one_of = Vec::new();
    for scheme in schemes.iter() {
        let name = credential_schema_name(scheme.field());
        let mut schema = scheme.schema();
        if let Value::Object(m) = &mut schema {
            m.remove("$schema");
            if let Some(Value::Object(defs)) = m.remove("$defs") {
                for (k, mut v) in defs {
                    rewrite_refs(&mut v);
                    schemas.entry(k).or_insert(v);
                }
            }
            m.entry("description").or_insert_with(|| {
                json!(format!(
                    "One credential of the `{}` scheme ({}).",
                    scheme.name(),
                    scheme.noun()
                ))
            });
        }
        rewrite_refs(&mut schema);
        schemas.insert(name.clone(), schema);
        fields.insert(
            scheme.field().to_owned(),
            json!({
                "type": "array",
                "items": schema_ref(&name),
                "description": format!("Credentials of the `{}` scheme.", scheme.name()),
            }),
        );
        document.insert(scheme.field().to_owned(), schema_ref(&name));
        one_of.push(json!({ "required": [scheme.field()] }));
    }
    schemas.insert(
        "Credentials".to_owned(),
        json!({
            "type": "object",
            "description": "A consumer's credentials, per registered credential scheme.",
            "properties": fields,
            "additionalProperties": false,
        }),
    );
    if let Some(Value::Object(doc)) = schemas.get_mut("CredentialDocument") {
        let mut properties = match doc.remove("properties") {
            Some(Value::Object(p)) => p,
            _ => Map::new(),
        };
        properties.extend(document);
        doc.insert("properties".into(), Value::Object(properties));
        doc.insert("additionalProperties".into(), json!(false));
        if !one_of.is_empty() {
            doc.insert("oneOf".into(), Value::Array(one_of));
        }
    }
}

/// The schemas holding secret fields: reads show `null` and a fingerprint
/// instead (`crate::secrets`); a write may send `null` or leave the field
/// out to keep the stored secret.
fn write_only_secrets(schemas: &mut Map<String, Value>, holders: &[(String, Vec<&str>)]) {
    for (name, fields) in holders {
        let Some(Value::Object(s)) = schemas.get_mut(name) else {
            continue;
        };
        if let Some(Value::Array(req)) = s.get_mut("required") {
            req.retain(|f| !fields.iter().any(|x| f == *x));
        }
        let Some(Value::Object(props)) = s.get_mut("properties") else {
            continue;
        };
        for field in fields {
            if let Some(Value::Object(key)) = props.get_mut(*field) {
                let d = key
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                key.insert("type".into(), json!(["string", "null"]));
                key.insert(
                    "description".into(),
                    Value::String(format!(
                        "{d} Write-only: reads return `null` (see `{field}_fingerprint`); on a write, `null` or leaving it out keeps the stored value (an update only; a new document needs it), a new value replaces it."
                    )),
                );
            }
            props.insert(
                format!("{field}_fingerprint"),
                json!({
                    "type": "string",
                    "readOnly": true,
                    "pattern": "^hmac-sha256:[0-9a-f]{16}$",
                    "description": "Fingerprint of the stored secret: the first 64 bits of HMAC-SHA256 under the node secret, hex. Tells secrets apart without revealing them; ignored on writes except to pick which stored secret a `null` keeps."
                }),
            );
        }
    }
}

/// The tag an endpoint is listed under: the kind (or other segment) after
/// `/workspaces/{ws}/`, else the first path segment.
fn tag_of(path: &str) -> String {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["workspaces", _, kind, ..] => (*kind).to_owned(),
        ["openapi.json"] => "meta".to_owned(),
        [first, ..] => (*first).to_owned(),
        [] => String::new(),
    }
}

/// The document kind an endpoint works on, with its body schema name.
struct Target<'a> {
    kind: Kind,
    schema: &'a str,
}

fn operation(schemes: &Schemes, e: &Endpoint, path: &str, target: Option<&Target>) -> Value {
    let mut params = Vec::new();
    for seg in path.split('/') {
        let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            continue;
        };
        let description = match name {
            "ws" => "Workspace name",
            "name" => "Document name",
            "id" => "Token id",
            other => other,
        };
        params.push(param(
            name,
            "path",
            description,
            json!({ "type": "string" }),
        ));
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
    let ok = match e.method {
        "POST" if e.path.ends_with("/approve") || e.path.ends_with("/reject") => "200",
        "POST" => "201",
        "DELETE" if e.path.ends_with("/keys/{hash}") => "200",
        "DELETE" if e.path.starts_with("/workspaces") => "204",
        _ => "200",
    };
    let mut success = json!({ "description": "Success" });
    if let Some(t) = target
        && e.method != "DELETE"
    {
        let schema = if is_list {
            json!({
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": { "type": "array", "items": schema_ref(&format!("{}Document", t.schema)) },
                    "next": { "type": ["string", "null"], "description": "Cursor of the next page (`after`)" },
                }
            })
        } else {
            success["headers"] = json!({
                "ETag": {
                    "description": "`\"<version>\"` of the document",
                    "schema": { "type": "string" }
                }
            });
            schema_ref(&format!("{}Document", t.schema))
        };
        success["content"] = json!({ "application/json": { "schema": schema } });
    }
    if e.method == "PUT" && target.is_some() {
        let mut created = success.clone();
        created["description"] = json!("Created");
        responses.insert("201".into(), created);
        success["description"] = json!("Replaced");
    }
    responses.insert(ok.into(), success);
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
        "operationId": format!("{} {}", e.method, path),
        "summary": e.summary,
        "tags": [tag_of(path)],
        "parameters": params,
        "responses": responses,
    });
    if e.body {
        let media = match (e.method, target) {
            ("PATCH", Some(_)) => json!({
                "schema": schema_ref("DocumentPatch"),
                "example": { "tags": ["example"] },
            }),
            ("POST" | "PUT", Some(t)) => {
                let mut media = json!({ "schema": schema_ref(&format!("{}Input", t.schema)) });
                let mut body = entity::example(schemes, t.kind);
                // PUT takes the name from the path.
                if e.method == "PUT"
                    && let (Some(f), Value::Object(b)) = (entity::name_field(t.kind), &mut body)
                {
                    b.remove(f);
                }
                // An API's name and version come from its `<name>@<version>`.
                if e.method == "PUT"
                    && t.kind == gatehouse_store::Kind::Api
                    && let Value::Object(b) = &mut body
                {
                    b.remove("name");
                    b.remove("version");
                }
                let mut ex = json!({ "tags": [], "body": body });
                if e.method == "POST" && entity::name_field(t.kind).is_none() {
                    // API documents are named `<name>@<version>`.
                    ex["name"] = if t.kind == gatehouse_store::Kind::Api {
                        json!("example@v1")
                    } else {
                        json!("example")
                    };
                }
                media["example"] = ex;
                media
            }
            ("POST", None) if e.path == "/tokens" => json!({
                "schema": schema_ref("TokenInput"),
                "example": { "name": "ci", "role": "read-only" },
            }),
            _ => json!({ "schema": { "type": "object" } }),
        };
        op["requestBody"] = json!({
            "required": true,
            "content": { "application/json": media }
        });
    }
    if !e.auth {
        op["security"] = json!([]);
    }
    op
}

/// The OpenAPI 3.1 document of the admin API. Endpoints on
/// `/workspaces/{ws}/{kind}` are listed once per kind with the kind's
/// schemas (the router itself stays generic over `{kind}`). Credentials
/// are described with the built-in plugins' credential schemes.
pub fn openapi() -> Value {
    openapi_for(gatehouse_plugins::registry().schemes())
}

/// [`openapi`] with these credential schemes (what an [`crate::AppState`]
/// with [`crate::AppState::with_schemes`] serves).
pub fn openapi_for(schemes: &Schemes) -> Value {
    let (schemas, names) = schemas(schemes);
    let schema_of = |kind: Kind| {
        names
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, n)| n.as_str())
    };
    let mut paths: Map<String, Value> = Map::new();
    let mut tags: Vec<String> = Vec::new();
    let mut add = |path: String, e: &Endpoint, target: Option<Target>| {
        let op = operation(schemes, e, &path, target.as_ref());
        let tag = tag_of(&path);
        if !tags.contains(&tag) {
            tags.push(tag);
        }
        let item = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[e.method.to_ascii_lowercase()] = op;
    };
    for e in ENDPOINTS {
        if e.path.contains("{kind}") {
            for (segment, kind) in KINDS {
                let target = schema_of(kind).map(|schema| Target { kind, schema });
                add(e.path.replace("{kind}", segment), e, target);
            }
        } else if e.path == "/workspaces" || e.path == "/workspaces/{ws}" {
            let target = schema_of(Kind::Workspace).map(|schema| Target {
                kind: Kind::Workspace,
                schema,
            });
            add(e.path.to_owned(), e, target);
        } else {
            add(e.path.to_owned(), e, None);
        }
    }
    let tags: Vec<Value> = tags.into_iter().map(|t| json!({ "name": t })).collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Gatehouse admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "See docs/admin-api.md. An interactive page is at /docs.",
        },
        "security": [{ "bearer": [] }],
        "tags": tags,
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas,
        }
    })
}

/// `GET /openapi.json`
pub async fn serve_openapi(State(state): State<AppState>) -> Response {
    axum::Json(openapi_for(&state.schemes)).into_response()
}
