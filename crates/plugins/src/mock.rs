//! `mock`: answers requests from its configuration, without an upstream —
//! the sandbox for APIs that have no backend yet.
//!
//! Runs last in the access phase (priority -1000), so authentication, limits
//! and CORS still apply to mocked routes. Everything is compiled at build
//! time: headers, bodies (split around `{capture}` placeholders) and method
//! and path matchers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;

use gatehouse_core::{Ctx, Flow, Phase, Phases, Plugin, PluginError, Request, body};

use gatehouse_core::Band;

use crate::{TypedFactory, config};

/// Registry name.
pub const NAME: &str = "mock";
/// Default priority: last in the access phase.
pub const PRIORITY: i32 = -1000;

fn default_status() -> u16 {
    200
}

/// Configuration of `mock`: a default response plus optional rules.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Config {
    /// Status of the default response.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Headers of the default response.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body of the default response, as text. `{name}` is replaced by the
    /// route's path capture `name`.
    pub body: Option<String>,
    /// Body of the default response, as JSON (sets
    /// `content-type: application/json`). Exclusive with `body`.
    pub json: Option<serde_json::Value>,
    /// Wait this many milliseconds before answering.
    pub delay_ms: Option<u64>,
    /// Rules tried in order; the first whose `method` and `path` match
    /// answers, else the default response does.
    #[serde(default)]
    pub responses: Vec<RuleConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            status: default_status(),
            headers: BTreeMap::new(),
            body: None,
            json: None,
            delay_ms: None,
            responses: Vec::new(),
        }
    }
}

/// One entry of `responses`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RuleConfig {
    /// Matches this method only (any method when absent).
    pub method: Option<String>,
    /// Matches this exact request path only, as the client sent it (any
    /// path when absent).
    pub path: Option<String>,
    /// Status of this response.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Headers of this response.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Text body.
    pub body: Option<String>,
    /// JSON body (exclusive with `body`).
    pub json: Option<serde_json::Value>,
    /// Delay for this response; the top-level `delay_ms` when absent.
    pub delay_ms: Option<u64>,
}

/// Builds [`Mock`] instances from their `config`.
pub const FACTORY: TypedFactory<Config> =
    TypedFactory::new(NAME, PRIORITY, Band::Respond, |cfg, _cx| {
        Ok(Arc::new(Mock::new(cfg)?))
    });

/// A piece of a body template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Capture(String),
}

/// How a capture is written into a body, by the body's content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// JSON (`application/json`, `*/*+json`, and every `json:` body): the
    /// inside of a JSON string, so a capture can never end the string.
    Json,
    /// HTML and XML (`text/html`, `*/xml`, `*/*+xml`): `& < > " '` as
    /// character references.
    Markup,
    /// Anything else (`text/plain`, ...): as the router captured it.
    Raw,
}

impl Escape {
    /// The escaping a `content-type` value calls for.
    fn for_content_type(value: &str) -> Self {
        let essence = value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let subtype = essence.split_once('/').map(|(_, s)| s).unwrap_or_default();
        if subtype == "json" || subtype.ends_with("+json") {
            Escape::Json
        } else if essence == "text/html" || subtype == "xml" || subtype.ends_with("+xml") {
            Escape::Markup
        } else {
            Escape::Raw
        }
    }

    fn push(self, out: &mut String, value: &str) {
        match self {
            Escape::Json => out.push_str(&json_escape(value)),
            Escape::Markup => {
                for c in value.chars() {
                    match c {
                        '&' => out.push_str("&amp;"),
                        '<' => out.push_str("&lt;"),
                        '>' => out.push_str("&gt;"),
                        '"' => out.push_str("&quot;"),
                        '\'' => out.push_str("&#39;"),
                        c => out.push(c),
                    }
                }
            }
            Escape::Raw => out.push_str(value),
        }
    }
}

/// A body, ready to send or to fill with captures.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Template {
    Static(Bytes),
    /// Parts to join; capture values are escaped for the content type.
    Dynamic {
        parts: Vec<Part>,
        escape: Escape,
    },
}

impl Template {
    fn compile(text: String, escape: Escape) -> Self {
        let parts = split_placeholders(&text);
        if parts.iter().all(|p| matches!(p, Part::Literal(_))) {
            Template::Static(Bytes::from(text))
        } else {
            Template::Dynamic { parts, escape }
        }
    }

    fn render(&self, ctx: &Ctx) -> Bytes {
        match self {
            Template::Static(bytes) => bytes.clone(),
            Template::Dynamic { parts, escape } => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Literal(text) => out.push_str(text),
                        Part::Capture(name) => match ctx.capture(name) {
                            Some(value) => escape.push(&mut out, value),
                            None => {
                                out.push('{');
                                out.push_str(name);
                                out.push('}');
                            }
                        },
                    }
                }
                Bytes::from(out)
            }
        }
    }
}

/// The inside of a JSON string literal for `value`, without the quotes.
fn json_escape(value: &str) -> String {
    let quoted = serde_json::Value::from(value).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Splits `text` around `{name}` placeholders, where `name` is an
/// identifier (letters, digits, `_`, not starting with a digit). Other
/// braces, such as those of a JSON document, stay literal.
fn split_placeholders(text: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let is_placeholder = after[name_len..].starts_with('}')
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if is_placeholder {
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Capture(name.to_owned()));
            rest = &after[name_len + 1..];
        } else {
            literal.push('{');
            rest = after;
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    parts
}

/// A compiled response.
#[derive(Debug)]
struct Canned {
    status: StatusCode,
    headers: HeaderMap,
    body: Template,
    delay: Option<Duration>,
}

impl Canned {
    fn compile(
        prefix: &str,
        status: u16,
        headers: &BTreeMap<String, String>,
        body: Option<&String>,
        json: Option<&serde_json::Value>,
        delay_ms: Option<u64>,
    ) -> Result<Self, PluginError> {
        let status = config::status(&config::join(prefix, "status"), status, 200..=599)?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let path = config::join(&config::join(prefix, "headers"), name);
            let name = config::header_name(&path, name)?;
            map.append(name, config::header_value(&path, value)?);
        }
        let body = match (body, json) {
            (Some(_), Some(_)) => {
                return Err(PluginError::at(
                    config::join(prefix, "json"),
                    "set either `body` or `json`, not both",
                ));
            }
            (Some(text), None) => {
                if !map.contains_key(header::CONTENT_TYPE) {
                    map.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                }
                // Captures are escaped for the declared content type: a
                // `body:` that says `application/json` gets JSON escaping.
                let escape = map
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map_or(Escape::Raw, Escape::for_content_type);
                Template::compile(text.clone(), escape)
            }
            (None, Some(value)) => {
                if !map.contains_key(header::CONTENT_TYPE) {
                    map.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                }
                Template::compile(value.to_string(), Escape::Json)
            }
            (None, None) => Template::Static(Bytes::new()),
        };
        Ok(Self {
            status,
            headers: map,
            body,
            delay: delay_ms.map(Duration::from_millis),
        })
    }

    fn respond(&self, ctx: &Ctx) -> http::Response<gatehouse_core::Body> {
        let mut resp = http::Response::new(body::full(self.body.render(ctx)));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers.clone();
        resp
    }
}

/// A compiled entry of `responses`.
#[derive(Debug)]
struct Rule {
    method: Option<Method>,
    path: Option<String>,
    response: Canned,
}

impl Rule {
    fn matches(&self, req: &Request) -> bool {
        self.method.as_ref().is_none_or(|m| m == req.method())
            && self.path.as_deref().is_none_or(|p| p == req.uri().path())
    }
}

/// The running plugin.
#[derive(Debug)]
pub struct Mock {
    rules: Vec<Rule>,
    fallback: Canned,
}

impl Mock {
    /// Validates `cfg` and builds the plugin.
    pub fn new(cfg: Config) -> Result<Self, PluginError> {
        let fallback = Canned::compile(
            "",
            cfg.status,
            &cfg.headers,
            cfg.body.as_ref(),
            cfg.json.as_ref(),
            cfg.delay_ms,
        )?;
        let mut rules = Vec::with_capacity(cfg.responses.len());
        for (i, rule) in cfg.responses.iter().enumerate() {
            let prefix = format!("responses[{i}]");
            let method = match &rule.method {
                Some(m) => Some(
                    Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                        PluginError::at(
                            format!("{prefix}.method"),
                            format!("invalid method {m:?}: expected a token such as \"GET\""),
                        )
                    })?,
                ),
                None => None,
            };
            if let Some(path) = &rule.path
                && !path.starts_with('/')
            {
                return Err(PluginError::at(
                    format!("{prefix}.path"),
                    format!(
                        "invalid path {path:?}: expected an absolute path such as \"/users/42\""
                    ),
                ));
            }
            let response = Canned::compile(
                &prefix,
                rule.status,
                &rule.headers,
                rule.body.as_ref(),
                rule.json.as_ref(),
                rule.delay_ms.or(cfg.delay_ms),
            )?;
            rules.push(Rule {
                method,
                path: rule.path.clone(),
                response,
            });
        }
        Ok(Self { rules, fallback })
    }
}

#[async_trait]
impl Plugin for Mock {
    fn name(&self) -> &'static str {
        NAME
    }

    fn phases(&self) -> Phases {
        Phases::of(&[Phase::Access])
    }

    async fn access(&self, ctx: &mut Ctx, req: &mut Request) -> Flow {
        let canned = self
            .rules
            .iter()
            .find(|rule| rule.matches(req))
            .map_or(&self.fallback, |rule| &rule.response);
        if let Some(delay) = canned.delay {
            tokio::time::sleep(delay).await;
        }
        Flow::Respond(canned.respond(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use serde_json::json;

    async fn answer(
        config: serde_json::Value,
        mut ctx: Ctx,
        method: &str,
        uri: &str,
    ) -> (u16, HeaderMap, Bytes) {
        let plugin = build(&FACTORY, config).unwrap();
        let resp = responded(plugin.access(&mut ctx, &mut request(method, uri)).await);
        let (parts, body) = resp.into_parts();
        (parts.status.as_u16(), parts.headers, bytes(body).await)
    }

    #[tokio::test]
    async fn empty_config_answers_200_with_no_body() {
        let (status, headers, body) = answer(serde_json::Value::Null, ctx(), "GET", "/").await;
        assert_eq!(status, 200);
        assert!(headers.is_empty());
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn text_body_status_and_headers() {
        let cfg = json!({"status": 201, "headers": {"X-Mock": "yes"}, "body": "created"});
        let (status, headers, body) = answer(cfg, ctx(), "POST", "/things").await;
        assert_eq!(status, 201);
        assert_eq!(headers["x-mock"], "yes");
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        assert_eq!(&body[..], b"created");
    }

    #[tokio::test]
    async fn json_body_sets_content_type_unless_given() {
        let (_, headers, body) = answer(
            json!({"json": {"ok": true, "n": [1, 2]}}),
            ctx(),
            "GET",
            "/",
        )
        .await;
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, json!({"ok": true, "n": [1, 2]}));

        let cfg = json!({"json": [], "headers": {"content-type": "application/vnd.api+json"}});
        let (_, headers, _) = answer(cfg, ctx(), "GET", "/").await;
        assert_eq!(headers[header::CONTENT_TYPE], "application/vnd.api+json");
    }

    #[tokio::test]
    async fn rules_match_by_method_and_exact_path_in_order() {
        let cfg = json!({
            "status": 404,
            "json": {"error": "not mocked"},
            "responses": [
                {"method": "get", "path": "/users/1", "json": {"id": 1}},
                {"method": "POST", "status": 201, "body": "made"},
                {"path": "/health", "status": 204},
            ],
        });
        let (s, _, b) = answer(cfg.clone(), ctx(), "GET", "/users/1?verbose=1").await;
        assert_eq!((s, &b[..]), (200, &br#"{"id":1}"#[..]));
        let (s, _, b) = answer(cfg.clone(), ctx(), "POST", "/users/1").await;
        assert_eq!((s, &b[..]), (201, &b"made"[..]));
        let (s, _, _) = answer(cfg.clone(), ctx(), "DELETE", "/health").await;
        assert_eq!(s, 204);
        let (s, _, b) = answer(cfg.clone(), ctx(), "GET", "/users/2").await;
        assert_eq!((s, &b[..]), (404, &br#"{"error":"not mocked"}"#[..]));
        let (s, _, _) = answer(cfg, ctx(), "GET", "/users/1/").await;
        assert_eq!(s, 404, "paths match exactly");
    }

    #[tokio::test]
    async fn captures_fill_placeholders() {
        let mut c = ctx();
        c.captures.push((Arc::from("id"), "42".to_owned()));
        c.captures.push((Arc::from("name"), "a\"b".to_owned()));
        let cfg = json!({"body": "user {id} of {org}; {not a placeholder} {{id}}"});
        let (_, _, body) = answer(cfg, c, "GET", "/").await;
        assert_eq!(&body[..], b"user 42 of {org}; {not a placeholder} {42}");

        let mut c = ctx();
        c.captures.push((Arc::from("id"), "42".to_owned()));
        c.captures.push((Arc::from("name"), "a\"b".to_owned()));
        let (_, _, body) = answer(
            json!({"json": {"id": "{id}", "name": "{name}"}}),
            c,
            "GET",
            "/",
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"id": "42", "name": "a\"b"}),
            "capture values are JSON-escaped"
        );
    }

    /// A capture that tries to close the JSON string and add a field, as
    /// the path `/api/users/x%22,%22admin%22:true,%22y%22:%22` would give
    /// a router that decodes `%22`, plus backslashes and control bytes.
    #[tokio::test]
    async fn hostile_captures_cannot_break_out_of_the_declared_content_type() {
        const HOSTILE: &str = "x\",\"admin\":true,\"y\":\"\\<b>'&\u{1}";
        async fn check(cfg: serde_json::Value, expect: &str) {
            let mut c = ctx();
            c.captures.push((Arc::from("id"), HOSTILE.to_owned()));
            let (_, _, body) = answer(cfg.clone(), c, "GET", "/").await;
            assert_eq!(String::from_utf8_lossy(&body), expect, "{cfg}");
        }
        let json_body = r#"{"id": "{id}", "name": "Ada Lovelace"}"#;
        let escaped = r#"x\",\"admin\":true,\"y\":\"\\<b>'&\u0001"#;
        // The demo's form: a `body:` declared as JSON.
        check(
            json!({"headers": {"content-type": "application/json"}, "body": json_body}),
            &format!(r#"{{"id": "{escaped}", "name": "Ada Lovelace"}}"#),
        )
        .await;
        check(
            json!({"headers": {"Content-Type": "application/problem+json; charset=utf-8"}, "body": json_body}),
            &format!(r#"{{"id": "{escaped}", "name": "Ada Lovelace"}}"#),
        )
        .await;
        check(
            json!({"json": {"id": "{id}"}}),
            &format!(r#"{{"id":"{escaped}"}}"#),
        )
        .await;
        check(
            json!({"headers": {"content-type": "text/html"}, "body": "<p>{id}</p>"}),
            "<p>x&quot;,&quot;admin&quot;:true,&quot;y&quot;:&quot;\\&lt;b&gt;&#39;&amp;\u{1}</p>",
        )
        .await;
        // Plain text is documented as raw.
        check(json!({"body": "{id}"}), HOSTILE).await;
        // The JSON answers stay one object with exactly its own fields.
        let mut c = ctx();
        c.captures.push((Arc::from("id"), HOSTILE.to_owned()));
        let cfg = json!({"headers": {"content-type": "application/json"}, "body": json_body});
        let (_, _, body) = answer(cfg, c, "GET", "/").await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, json!({"id": HOSTILE, "name": "Ada Lovelace"}));
    }

    #[test]
    fn templates_without_placeholders_are_static() {
        assert_eq!(
            Template::compile(r#"{"a":{"b":1}}"#.into(), Escape::Json),
            Template::Static(Bytes::from_static(br#"{"a":{"b":1}}"#))
        );
        assert_eq!(
            split_placeholders("{1x}{_y}"),
            [Part::Literal("{1x}".into()), Part::Capture("_y".into())]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn delay_waits_before_answering() {
        let cfg = json!({"delay_ms": 50, "responses": [{"path": "/slow", "delay_ms": 500}, {"path": "/inherit"}]});
        for (path, expected) in [("/", 50), ("/slow", 500), ("/inherit", 50)] {
            let started = tokio::time::Instant::now();
            let _ = answer(cfg.clone(), ctx(), "GET", path).await;
            assert_eq!(started.elapsed(), Duration::from_millis(expected), "{path}");
        }
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (json!({"status": 99}), "status"),
            (json!({"status": 700}), "status"),
            (json!({"body": "a", "json": {}}), "json"),
            (json!({"headers": {"bad name": "x"}}), "headers.bad name"),
            (json!({"headers": {"x-ok": "line\nbreak"}}), "headers.x-ok"),
            (json!({"delay_ms": "50ms"}), "delay_ms"),
            (
                json!({"responses": [{}, {"method": "G T"}]}),
                "responses[1].method",
            ),
            (
                json!({"responses": [{"path": "users"}]}),
                "responses[0].path",
            ),
            (
                json!({"responses": [{"status": 42}]}),
                "responses[0].status",
            ),
            (
                json!({"responses": [{"body": "x", "json": 1}]}),
                "responses[0].json",
            ),
            (
                json!({"responses": [{"headers": {"x": 1}}]}),
                "responses[0].headers.x",
            ),
            (
                json!({"responses": [{"paths": ["/"]}]}),
                "responses[0].paths",
            ),
        ];
        for (cfg, path) in cases {
            let err = build_err(&FACTORY, cfg.clone());
            assert_eq!(err.path, path, "{cfg}: {}", err.message);
        }
    }
}
