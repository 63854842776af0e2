//! The document kinds the API serves under `/workspaces/{ws}/{kind}` and
//! the validation of their bodies against the configuration types.

use gatehouse_store::Kind;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use gatehouse_core::Schemes;
use gatehouse_core::credentials::join_path;

use crate::error::{ApiError, ApiResult};

/// The plural path segments and their kinds.
pub const KINDS: [(&str, Kind); 10] = [
    ("services", Kind::Service),
    ("routes", Kind::Route),
    ("plugins", Kind::Plugin),
    ("consumers", Kind::Consumer),
    ("apps", Kind::App),
    ("credentials", Kind::Credential),
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
    /// Host names it is served for (`api.example.com`, `*.example.com`);
    /// empty: the certificate's own DNS names. Store-backed nodes serve
    /// every certificate document on each of their TLS listeners, chosen
    /// by SNI (docs/cluster.md).
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// A workspace document's body.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    /// What the workspace is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Other workspaces whose consumers (their credentials, apps and
    /// consumer plugins) this workspace's routes also accept, tried in this
    /// order after its own. Empty: only its own (docs/security.md, "Tenant
    /// isolation"). Only a super-admin writes workspace documents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept_consumers_from: Vec<String>,
}

/// The body field that must equal the document name, if the kind has one.
pub(crate) fn name_field(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Service | Kind::Route | Kind::Plugin | Kind::Plan | Kind::App => Some("name"),
        Kind::Consumer => Some("username"),
        _ => None,
    }
}

fn check<T: DeserializeOwned>(body: &Value) -> ApiResult<()> {
    parse::<T>(body).map(drop)
}

fn parse<T: DeserializeOwned>(body: &Value) -> ApiResult<T> {
    serde_path_to_error::deserialize::<_, T>(body).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_owned()
        } else {
            format!("body.{path}")
        };
        ApiError::invalid(format!("{field}: {}", e.inner()))
    })
}

/// An API document is named `name@version` (as `gatehouse config apply`
/// stores it): the body's `name` and `version` must match those parts, and
/// are filled in when missing.
fn check_api_name(doc_name: &str, map: &mut serde_json::Map<String, Value>) -> ApiResult<()> {
    let Some((api, version)) = doc_name
        .rsplit_once('@')
        .filter(|(a, v)| !a.is_empty() && !v.is_empty())
    else {
        return Err(ApiError::invalid(format!(
            "name: an API document is named `<name>@<version>` (e.g. `orders@v2`), got `{doc_name}`"
        )));
    };
    for (field, want) in [("name", api), ("version", version)] {
        match map.get(field) {
            None => {
                map.insert(field.to_owned(), Value::String(want.to_owned()));
            }
            Some(Value::String(s)) if s == want => {}
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "body.{field}: must be `{want}` for the API document `{doc_name}` (`<name>@<version>`), found {other}"
                )));
            }
        }
    }
    Ok(())
}

/// An app document: its key hashes must be `k1:<64 hex>` (a plaintext key
/// is refused and not echoed) and unique within the app.
fn check_app(body: &Value) -> ApiResult<()> {
    let app = parse::<gatehouse_config::AppDocument>(body)?;
    let mut seen = std::collections::HashSet::new();
    for (i, key) in app.keys.iter().enumerate() {
        let Some(hash) = gatehouse_core::KeyHash::parse(&key.hash) else {
            return Err(ApiError::invalid(format!(
                "body.keys[{i}].hash: not a key hash `k1:<64 hex digits>` (store the hash, never the key; POST /workspaces/{{ws}}/apps/{{app}}/keys makes one)"
            )));
        };
        if !seen.insert(hash) {
            return Err(ApiError::invalid(format!(
                "body.keys[{i}].hash: the app already has this key"
            )));
        }
    }
    Ok(())
}

/// A credential document: `consumer` plus exactly one field of a
/// registered credential scheme, whose value that scheme checks.
fn check_credential(schemes: &Schemes, body: &Value) -> ApiResult<()> {
    let c = parse::<gatehouse_config::CredentialDocument>(body)?;
    let registered = || {
        let mut fields: Vec<String> = schemes.iter().map(|s| format!("`{}`", s.field())).collect();
        fields.sort();
        fields.join(", ")
    };
    let mut fields = c.schemes.iter();
    let Some((field, credential)) = fields.next() else {
        return Err(ApiError::invalid(format!(
            "body: set exactly one credential scheme ({}), found none",
            registered()
        )));
    };
    if let Some((other, _)) = fields.next() {
        return Err(ApiError::invalid(format!(
            "body: set exactly one credential scheme, found several (`{field}` and `{other}`)"
        )));
    }
    schemes.check(field, credential).map_err(|(path, message)| {
        ApiError::invalid(format!(
            "{}: {message}",
            join_path(&format!("body.{field}"), &path)
        ))
    })
}

/// A consumer document: the configuration type, then each inline
/// credential (`credentials.<field>[i]`) checked by its scheme.
fn check_consumer(schemes: &Schemes, body: &Value) -> ApiResult<()> {
    let c = parse::<gatehouse_config::Consumer>(body)?;
    for (field, list) in &c.credentials.0 {
        for (i, credential) in list.iter().enumerate() {
            schemes
                .check(field, credential)
                .map_err(|(path, message)| {
                    let at = if path.is_empty() && schemes.by_field(field).is_none() {
                        format!("body.credentials.{field}")
                    } else {
                        join_path(&format!("body.credentials.{field}[{i}]"), &path)
                    };
                    ApiError::invalid(format!("{at}: {message}"))
                })?;
        }
        if list.is_empty() && schemes.by_field(field).is_none() {
            return Err(ApiError::invalid(format!(
                "body.credentials.{field}: {}",
                schemes.unknown(field)
            )));
        }
    }
    Ok(())
}

/// Checks a document body: a JSON object that deserializes into the kind's
/// configuration type, whose name field (if any) equals `name`. A missing
/// name field is filled in from `name`.
pub fn validate(schemes: &Schemes, kind: Kind, name: &str, body: &mut Value) -> ApiResult<()> {
    let Value::Object(map) = body else {
        return Err(ApiError::invalid("body: must be a JSON object"));
    };
    if kind == Kind::Api {
        check_api_name(name, map)?;
    } else if let Some(field) = name_field(kind) {
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
        Kind::Consumer => check_consumer(schemes, body),
        Kind::App => check_app(body),
        Kind::Credential => check_credential(schemes, body),
        Kind::Plan => check::<c::Plan>(body),
        Kind::Subscription => check::<c::Subscription>(body),
        Kind::Api => check::<c::Api>(body),
        Kind::Certificate => {
            check::<Certificate>(body)?;
            // `cert` is readable by every role: a combined PEM (chain and
            // key in one file, as some tools write them) would publish the
            // key. Refused, naming the field, never a value.
            match body.get("cert") {
                Some(Value::String(cert)) if crate::secrets::has_private_key(cert) => {
                    Err(ApiError::invalid(
                        "body.cert: holds a private key (a `PRIVATE KEY` PEM block); `cert` is readable by every role, put the key in `key` only",
                    ))
                }
                _ => Ok(()),
            }
        }
        Kind::Workspace => check::<Workspace>(body),
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
/// what the docs page pre-fills); a credential's is the first registered
/// scheme's example.
pub fn example(schemes: &Schemes, kind: Kind) -> Value {
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
        Kind::Credential => {
            let mut body = json!({ "consumer": "example" });
            if let Some(s) = schemes.iter().next() {
                body[s.field()] = s.example();
            }
            body
        }
        Kind::Certificate => json!({
            "cert": "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
            "key": "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n"
        }),
        Kind::Workspace => json!({ "description": "An example workspace" }),
    }
}
