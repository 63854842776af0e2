//! `headers`: removes, sets and adds request and response headers, with
//! values that may use `$(request_id)`, `$(client_ip)`, `$(route)`,
//! `$(service)`, `$(consumer)` and `$(capture.NAME)`.
//!
//! Templates are parsed once at build time into literal and variable
//! segments; a request only concatenates. Request edits run in the
//! upstream_request phase (after authentication, so `$(consumer)` is known),
//! response edits in response_headers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;

use gatehouse_core::{Ctx, Flow, Phase, Phases, Plugin, PluginError, Request};

use gatehouse_core::Band;

use crate::{TypedFactory, config};

/// Registry name.
pub const NAME: &str = "headers";
/// Default priority.
pub const PRIORITY: i32 = 800;

/// Configuration of `headers`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case", default)]
pub struct Config {
    /// Edits of the request sent upstream.
    pub request: Operations,
    /// Edits of the response sent to the client.
    pub response: Operations,
}

/// Edits of one header map, applied in the order remove, set, add.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case", default)]
pub struct Operations {
    /// Headers appended (existing values are kept).
    pub add: BTreeMap<String, String>,
    /// Headers replaced (existing values are dropped).
    pub set: BTreeMap<String, String>,
    /// Headers deleted.
    pub remove: Vec<String>,
}

/// Builds [`Headers`] instances from their `config`.
pub const FACTORY: TypedFactory<Config> =
    TypedFactory::new(NAME, PRIORITY, Band::Transform, |cfg, _cx| {
        Ok(Arc::new(Headers::new(cfg)?))
    });

/// A value a template can refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    RequestId,
    ClientIp,
    Route,
    Service,
    Consumer,
    App,
    Capture(String),
}

const VARIABLES: &str = "request_id, client_ip, route, service, consumer, app, capture.NAME";

impl Var {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "request_id" => Var::RequestId,
            "client_ip" => Var::ClientIp,
            "route" => Var::Route,
            "service" => Var::Service,
            "consumer" => Var::Consumer,
            "app" => Var::App,
            _ => {
                let capture = name.strip_prefix("capture.")?;
                if capture.is_empty() {
                    return None;
                }
                Var::Capture(capture.to_owned())
            }
        })
    }

    fn push(&self, ctx: &Ctx, out: &mut String) {
        match self {
            Var::RequestId => out.push_str(&ctx.request_id),
            Var::ClientIp => match ctx.client_ip {
                Some(ip) => {
                    let _ = write!(out, "{ip}");
                }
                None => out.push_str("unknown"),
            },
            Var::Route => out.push_str(ctx.route.as_deref().unwrap_or_default()),
            Var::Service => out.push_str(ctx.service.as_deref().unwrap_or_default()),
            Var::Consumer => out.push_str(
                ctx.consumer
                    .as_ref()
                    .map(|c| &*c.username)
                    .unwrap_or_default(),
            ),
            Var::App => out.push_str(ctx.app.as_ref().map(|a| &*a.name).unwrap_or_default()),
            Var::Capture(name) => out.push_str(ctx.capture(name).unwrap_or_default()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Var(Var),
}

/// A header value: fixed, or segments expanded per request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Template {
    Static(HeaderValue),
    Dynamic(Vec<Segment>),
}

impl Template {
    fn compile(path: &str, text: &str) -> Result<Self, PluginError> {
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("$(") {
            if start > 0 {
                segments.push(Segment::Literal(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find(')').ok_or_else(|| {
                PluginError::at(
                    path,
                    format!("unterminated `$(` in {text:?}: expected `$(variable)`"),
                )
            })?;
            let name = after[..end].trim();
            let var = Var::parse(name).ok_or_else(|| {
                PluginError::at(
                    path,
                    format!("unknown variable `$({name})`: expected one of {VARIABLES}"),
                )
            })?;
            segments.push(Segment::Var(var));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_owned()));
        }
        let literal: String = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Literal(text) => Some(text.as_str()),
                Segment::Var(_) => None,
            })
            .collect();
        let value = config::header_value(path, &literal)?;
        if segments.iter().any(|s| matches!(s, Segment::Var(_))) {
            Ok(Template::Dynamic(segments))
        } else {
            Ok(Template::Static(value))
        }
    }

    /// The value for this request; `None` when it expanded to nothing or to
    /// something that is not a valid header value.
    fn expand(&self, ctx: &Ctx) -> Option<HeaderValue> {
        match self {
            Template::Static(value) => Some(value.clone()),
            Template::Dynamic(segments) => {
                let mut out = String::new();
                for segment in segments {
                    match segment {
                        Segment::Literal(text) => out.push_str(text),
                        Segment::Var(var) => var.push(ctx, &mut out),
                    }
                }
                if out.is_empty() {
                    return None;
                }
                match HeaderValue::from_str(&out) {
                    Ok(value) => Some(value),
                    Err(_) => {
                        tracing::debug!(
                            "headers: expanded value is not a valid header value, skipped"
                        );
                        None
                    }
                }
            }
        }
    }
}

/// Compiled edits of one header map.
#[derive(Debug, Default)]
struct Edits {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, Template)>,
    add: Vec<(HeaderName, Template)>,
}

/// Headers that carry message framing: editing them would corrupt the
/// stream, so the gateway keeps them to itself.
fn managed(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING
}

fn name_at(path: &str, name: &str) -> Result<HeaderName, PluginError> {
    let parsed = config::header_name(path, name)?;
    if managed(&parsed) {
        return Err(PluginError::at(
            path,
            format!(
                "header {name:?} is managed by the gateway (message framing) and cannot be changed"
            ),
        ));
    }
    Ok(parsed)
}

impl Edits {
    fn compile(prefix: &str, ops: &Operations) -> Result<Self, PluginError> {
        let mut edits = Edits::default();
        for (i, name) in ops.remove.iter().enumerate() {
            edits
                .remove
                .push(name_at(&format!("{prefix}.remove[{i}]"), name)?);
        }
        for (field, map, out) in [
            ("set", &ops.set, &mut edits.set),
            ("add", &ops.add, &mut edits.add),
        ] {
            for (name, value) in map {
                let path = format!("{prefix}.{field}.{name}");
                out.push((name_at(&path, name)?, Template::compile(&path, value)?));
            }
        }
        Ok(edits)
    }

    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    fn apply(&self, ctx: &Ctx, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, template) in &self.set {
            match template.expand(ctx) {
                Some(value) => {
                    headers.insert(name.clone(), value);
                }
                None => {
                    headers.remove(name);
                }
            }
        }
        for (name, template) in &self.add {
            if let Some(value) = template.expand(ctx) {
                headers.append(name.clone(), value);
            }
        }
    }
}

/// The running plugin.
#[derive(Debug)]
pub struct Headers {
    request: Edits,
    response: Edits,
    phases: Phases,
}

impl Headers {
    /// Validates `cfg` and builds the plugin.
    pub fn new(cfg: Config) -> Result<Self, PluginError> {
        let request = Edits::compile("request", &cfg.request)?;
        let response = Edits::compile("response", &cfg.response)?;
        let phases = match (request.is_empty(), response.is_empty()) {
            (false, false) => Phases::of(&[Phase::UpstreamRequest, Phase::ResponseHeaders]),
            (false, true) => Phases::of(&[Phase::UpstreamRequest]),
            (true, false) => Phases::of(&[Phase::ResponseHeaders]),
            (true, true) => Phases::NONE,
        };
        Ok(Self {
            request,
            response,
            phases,
        })
    }
}

#[async_trait]
impl Plugin for Headers {
    fn name(&self) -> &'static str {
        NAME
    }

    fn phases(&self) -> Phases {
        self.phases
    }

    async fn upstream_request(&self, ctx: &mut Ctx, req: &mut Request) -> Flow {
        self.request.apply(ctx, req.headers_mut());
        Flow::Continue
    }

    async fn response_headers(&self, ctx: &mut Ctx, resp: &mut http::response::Parts) {
        self.response.apply(ctx, &mut resp.headers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use gatehouse_core::Consumer;
    use serde_json::json;

    fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn request_edits_run_remove_then_set_then_add() {
        let plugin = build(
            &FACTORY,
            json!({"request": {
                "remove": ["X-Internal", "x-set-me"],
                "set": {"x-set-me": "new", "x-replace": "only"},
                "add": {"x-set-me": "extra", "x-multi": "two"},
            }}),
        )
        .unwrap();
        assert_eq!(plugin.phases(), Phases::of(&[Phase::UpstreamRequest]));
        let mut req = request("GET", "/");
        let h = req.headers_mut();
        h.insert("x-internal", HeaderValue::from_static("secret"));
        h.insert("x-set-me", HeaderValue::from_static("old"));
        h.append("x-replace", HeaderValue::from_static("a"));
        h.append("x-replace", HeaderValue::from_static("b"));
        h.insert("x-multi", HeaderValue::from_static("one"));
        assert!(continues(
            &plugin.upstream_request(&mut ctx(), &mut req).await
        ));
        let h = req.headers();
        assert!(h.get("x-internal").is_none());
        assert_eq!(values(h, "x-set-me"), ["new", "extra"]);
        assert_eq!(values(h, "x-replace"), ["only"]);
        assert_eq!(values(h, "x-multi"), ["one", "two"]);
    }

    #[tokio::test]
    async fn templates_expand_from_the_context() {
        let plugin = build(
            &FACTORY,
            json!({"request": {"set": {
                "x-request-id": "$(request_id)",
                "x-client": "ip=$(client_ip)",
                "x-where": "$(route)/$(service)",
                "x-consumer": "$(consumer)",
                "x-user": "user-$( capture.id )",
            }}}),
        )
        .unwrap();
        let mut ctx = ctx();
        ctx.route = Some(Arc::from("users"));
        ctx.service = Some(Arc::from("echo"));
        ctx.consumer = Some(Consumer {
            username: Arc::from("alice"),
            custom_id: None,
        });
        ctx.captures.push((Arc::from("id"), "42".to_owned()));
        let mut req = request("GET", "/");
        plugin.upstream_request(&mut ctx, &mut req).await;
        let h = req.headers();
        assert_eq!(h["x-request-id"], "rid-1");
        assert_eq!(h["x-client"], "ip=203.0.113.7");
        assert_eq!(h["x-where"], "users/echo");
        assert_eq!(h["x-consumer"], "alice");
        assert_eq!(h["x-user"], "user-42");
    }

    #[tokio::test]
    async fn empty_expansions_remove_on_set_and_skip_on_add() {
        let plugin = build(
            &FACTORY,
            json!({"request": {"set": {"x-consumer": "$(consumer)"}, "add": {"x-route": "$(route)"}}}),
        )
        .unwrap();
        let mut req = request("GET", "/");
        req.headers_mut()
            .insert("x-consumer", HeaderValue::from_static("spoofed"));
        plugin.upstream_request(&mut ctx(), &mut req).await;
        assert!(
            req.headers().get("x-consumer").is_none(),
            "client cannot spoof it"
        );
        assert!(req.headers().get("x-route").is_none());
    }

    #[tokio::test]
    async fn response_edits_apply_to_response_parts() {
        let plugin = build(
            &FACTORY,
            json!({"response": {"remove": ["server"], "set": {"x-request": "$(request_id)"}, "add": {"cache-control": "no-store"}}}),
        )
        .unwrap();
        assert_eq!(plugin.phases(), Phases::of(&[Phase::ResponseHeaders]));
        let mut parts = response_parts();
        parts
            .headers
            .insert("server", HeaderValue::from_static("nginx/1.2.3"));
        plugin.response_headers(&mut ctx(), &mut parts).await;
        assert!(parts.headers.get("server").is_none());
        assert_eq!(parts.headers["x-request"], "rid-1");
        assert_eq!(parts.headers["cache-control"], "no-store");
    }

    #[test]
    fn empty_config_joins_no_phase() {
        let plugin = build(&FACTORY, serde_json::Value::Null).unwrap();
        assert_eq!(plugin.phases(), Phases::NONE);
        let both = build(
            &FACTORY,
            json!({"request": {"remove": ["a"]}, "response": {"remove": ["b"]}}),
        )
        .unwrap();
        assert!(both.phases().contains(Phase::UpstreamRequest));
        assert!(both.phases().contains(Phase::ResponseHeaders));
    }

    #[test]
    fn static_values_are_precompiled() {
        assert_eq!(
            Template::compile("p", "plain").unwrap(),
            Template::Static(HeaderValue::from_static("plain"))
        );
        assert_eq!(
            Template::compile("p", "a$(route)b").unwrap(),
            Template::Dynamic(vec![
                Segment::Literal("a".into()),
                Segment::Var(Var::Route),
                Segment::Literal("b".into())
            ])
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (
                json!({"request": {"add": {"bad name": "x"}}}),
                "request.add.bad name",
            ),
            (
                json!({"request": {"set": {"x-a": "line\u{7f}"}}}),
                "request.set.x-a",
            ),
            (
                json!({"response": {"remove": ["ok", "no way"]}}),
                "response.remove[1]",
            ),
            (
                json!({"response": {"set": {"x-a": "$(nope)"}}}),
                "response.set.x-a",
            ),
            (
                json!({"response": {"set": {"x-a": "$(capture.)"}}}),
                "response.set.x-a",
            ),
            (
                json!({"request": {"add": {"x-a": "$(route"}}}),
                "request.add.x-a",
            ),
            (
                json!({"request": {"set": {"content-length": "5"}}}),
                "request.set.content-length",
            ),
            (
                json!({"response": {"remove": ["Transfer-Encoding"]}}),
                "response.remove[0]",
            ),
            (json!({"request": {"add": {"x-a": 5}}}), "request.add.x-a"),
            (json!({"request": {"append": {}}}), "request.append"),
            (json!({"requests": {}}), "requests"),
        ];
        for (cfg, path) in cases {
            let err = build_err(&FACTORY, cfg.clone());
            assert_eq!(err.path, path, "{cfg}: {}", err.message);
        }
        let err = build_err(&FACTORY, json!({"request": {"set": {"x": "$(nope)"}}}));
        assert!(
            err.message.contains("expected one of request_id"),
            "{}",
            err.message
        );
    }
}
