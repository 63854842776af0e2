//! The document kinds the API serves under `/workspaces/{ws}/{kind}` and
//! the validation of their bodies against the configuration types.

use gatehouse_store::Kind;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

/// The plural path segments and their kinds.
pub const KINDS: [(&str, Kind); 8] = [
    ("services", Kind::Service),
    ("routes", Kind::Route),
    ("plugins", Kind::Plugin),
    ("consumers", Kind::Consumer),
    ("plans", Kind::Plan),
    ("subscriptions", Kind::Subscription),
    ("apis", Kind::Api),
    ("certificates", Kind::Certificate),
];

/// The kind of a plural path segment; 404 for anything else.
pub fn kind_of(segment: &str) -> ApiResult<Kind> {
    KINDS
        .iter()
        .find(|(s, _)| *s == segment)
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no document kind `{segment}` (one of: {})",
                KINDS.map(|(s, _)| s).join(", ")
            ))
        })
}

/// A TLS certificate document's body.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// The certificate chain, PEM.
    pub cert: String,
    /// The private key, PEM.
    pub key: String,
}

/// A workspace document's body.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    /// What the workspace is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// The body field that must equal the document name, if the kind has one.
pub(crate) fn name_field(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Service | Kind::Route | Kind::Plugin | Kind::Plan | Kind::Api => Some("name"),
        Kind::Consumer => Some("username"),
        _ => None,
    }
}

fn check<T: DeserializeOwned>(body: &Value) -> ApiResult<()> {
    serde_path_to_error::deserialize::<_, T>(body)
        .map(drop)
        .map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "body".to_owned()
            } else {
                format!("body.{path}")
            };
            ApiError::invalid(format!("{field}: {}", e.inner()))
        })
}

/// Checks a document body: a JSON object that deserializes into the kind's
/// configuration type, whose name field (if any) equals `name`. A missing
/// name field is filled in from `name`.
pub fn validate(kind: Kind, name: &str, body: &mut Value) -> ApiResult<()> {
    let Value::Object(map) = body else {
        return Err(ApiError::invalid("body: must be a JSON object"));
    };
    if let Some(field) = name_field(kind) {
        match map.get(field) {
            None => {
                map.insert(field.to_owned(), Value::String(name.to_owned()));
            }
            Some(Value::String(s)) if s == name => {}
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "body.{field}: must equal the document name `{name}`, found {other}"
                )));
            }
        }
    }
    use gatehouse_config as c;
    match kind {
        Kind::Service => check::<c::Service>(body),
        Kind::Route => check::<c::Route>(body),
        Kind::Plugin => check::<c::PluginRef>(body),
        Kind::Consumer => check::<c::Consumer>(body),
        Kind::Plan => check::<c::Plan>(body),
        Kind::Subscription => check::<c::Subscription>(body),
        Kind::Api => check::<c::Api>(body),
        Kind::Certificate => check::<Certificate>(body),
        Kind::Workspace => check::<Workspace>(body),
        other => Err(ApiError::invalid(format!(
            "documents of kind `{other}` are not served by the admin API"
        ))),
    }
}

/// The JSON Schema of a kind's document body: the `$ref` to it, its
/// definition (and those it uses) added to `generator`. The same types as
/// [`validate`] uses.
pub fn body_schema(kind: Kind, generator: &mut SchemaGenerator) -> Schema {
    use gatehouse_config as c;
    match kind {
        Kind::Service => generator.subschema_for::<c::Service>(),
        Kind::Route => generator.subschema_for::<c::Route>(),
        Kind::Plugin => generator.subschema_for::<c::PluginRef>(),
        Kind::Consumer => generator.subschema_for::<c::Consumer>(),
        Kind::Plan => generator.subschema_for::<c::Plan>(),
        Kind::Subscription => generator.subschema_for::<c::Subscription>(),
        Kind::Api => generator.subschema_for::<c::Api>(),
        Kind::App => generator.subschema_for::<c::AppDocument>(),
        Kind::Credential => generator.subschema_for::<c::CredentialDocument>(),
        Kind::Certificate => generator.subschema_for::<Certificate>(),
        Kind::Workspace => generator.subschema_for::<Workspace>(),
    }
}

/// A small valid body of a kind, the example of the OpenAPI document (and
/// what the docs page pre-fills).
pub fn example(kind: Kind) -> Value {
    match kind {
        Kind::Service => json!({ "name": "example", "url": "http://127.0.0.1:8080" }),
        Kind::Route => json!({ "name": "example", "paths": ["/example"] }),
        Kind::Plugin => json!({ "name": "request-id" }),
        Kind::Consumer => json!({ "username": "example" }),
        Kind::Plan => json!({ "name": "example" }),
        Kind::Subscription => json!({
            "app": "example", "api": "example", "plan": "example", "status": "pending"
        }),
        Kind::Api => json!({ "name": "example", "version": "v1" }),
        Kind::App => json!({ "consumer": "example", "name": "example" }),
        Kind::Credential => json!({ "consumer": "example" }),
        Kind::Certificate => json!({
            "cert": "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
            "key": "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n"
        }),
        Kind::Workspace => json!({ "description": "An example workspace" }),
    }
}
