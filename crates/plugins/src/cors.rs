//! `cors`: answers CORS preflights and adds CORS headers to actual
//! responses, following the Fetch standard.
//!
//! Preflights are answered in the rewrite phase, before authentication
//! plugins run, because browsers never send credentials on a preflight.
//! For actual requests the rewrite phase decides which
//! `Access-Control-Allow-Origin` to send and stores it in the context; the
//! response_headers phase writes it, so gateway-made responses (a 401 from
//! `key-auth`, a 429) carry CORS headers too and the browser can read them.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use regex::RegexSet;
use schemars::JsonSchema;
use serde::Deserialize;

use gatehouse_core::{
    Ctx, Flow, Phase, Phases, Plugin, PluginError, Problem, ProblemType, Request, body,
};

use gatehouse_core::{Band, Capabilities, ProblemDef};

use crate::{TypedFactory, config};

/// Registry name.
pub const NAME: &str = "cors";
/// Default priority.
pub const PRIORITY: i32 = 2000;

const REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
const ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");

/// Configuration of `cors`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case", default)]
pub struct Config {
    /// Allowed origins: exact origins (`https://app.example.com`), `*` for
    /// any, or `~regex` matched against the whole origin.
    pub origins: Vec<String>,
    /// Allowed methods, answered in preflights.
    pub methods: Vec<String>,
    /// Allowed request headers. Empty: reflect the preflight's
    /// `Access-Control-Request-Headers`.
    pub headers: Vec<String>,
    /// Response headers the browser may expose to scripts.
    pub exposed_headers: Vec<String>,
    /// Allow credentials (cookies, `Authorization`). Refused together with
    /// `*` (or a pattern that matches any origin): list the origins.
    pub credentials: bool,
    /// How long (seconds) browsers may cache a preflight answer.
    pub max_age: Option<u64>,
    /// Pass preflights on to the upstream instead of answering them.
    pub preflight_continue: bool,
    /// Answer `Access-Control-Allow-Private-Network: true` to preflights
    /// that ask for it (Private Network Access).
    pub private_network: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            origins: vec!["*".to_owned()],
            methods: ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            headers: Vec::new(),
            exposed_headers: Vec::new(),
            credentials: false,
            max_age: None,
            preflight_continue: false,
            private_network: false,
        }
    }
}

/// Builds [`Cors`] instances from their `config`.
pub const FACTORY: TypedFactory<Config> =
    TypedFactory::new(NAME, PRIORITY, Band::Admission, |cfg, _cx| {
        Ok(Arc::new(Cors::new(cfg)?))
    })
    .problems(&[&CORS_REJECTED]);

/// A preflight from an origin, or for a method or headers, the policy does
/// not allow (403).
pub const CORS_REJECTED: ProblemDef = ProblemDef {
    slug: "cors-rejected",
    status: 403,
    title: "CORS request not allowed",
};

/// An origin no real deployment lists: a pattern that matches it matches
/// any origin, as far as `credentials` is concerned.
const ANY_ORIGIN_PROBE: &str = "https://any-origin.gatehouse.invalid";

/// Compiled origin policy.
#[derive(Debug)]
struct Origins {
    any: bool,
    /// Lowercased exact origins.
    exact: HashSet<String>,
    /// Anchored, case-insensitive patterns.
    patterns: Option<RegexSet>,
}

impl Origins {
    fn compile(list: &[String]) -> Result<Self, PluginError> {
        if list.is_empty() {
            return Err(PluginError::at(
                "origins",
                "expected at least one origin (an exact origin, \"*\" or \"~regex\")",
            ));
        }
        let mut any = false;
        let mut exact = HashSet::new();
        let mut patterns = Vec::new();
        for (i, origin) in list.iter().enumerate() {
            let path = format!("origins[{i}]");
            if origin == "*" {
                any = true;
            } else if let Some(pattern) = origin.strip_prefix('~') {
                let anchored = format!("(?i)^(?:{pattern})$");
                regex::Regex::new(&anchored)
                    .map_err(|e| PluginError::at(&path, format!("invalid origin regex: {e}")))?;
                patterns.push(anchored);
            } else {
                validate_origin(&path, origin)?;
                exact.insert(origin.to_ascii_lowercase());
            }
        }
        let patterns = if patterns.is_empty() {
            None
        } else {
            Some(RegexSet::new(&patterns).map_err(|e| PluginError::at("origins", e.to_string()))?)
        };
        Ok(Self {
            any,
            exact,
            patterns,
        })
    }

    fn allows(&self, origin: &str) -> bool {
        self.any
            || self.exact.contains(&origin.to_ascii_lowercase())
            || self
                .patterns
                .as_ref()
                .is_some_and(|set| set.is_match(origin))
    }
}

/// An exact origin is `scheme://host[:port]` (no path, no trailing slash),
/// or the opaque origin `null`.
fn validate_origin(path: &str, origin: &str) -> Result<(), PluginError> {
    let bad = || {
        PluginError::at(
            path,
            format!(
                "invalid origin {origin:?}: expected \"scheme://host[:port]\" without a path, \"*\", \"null\" or \"~regex\""
            ),
        )
    };
    if origin == "null" {
        return Ok(());
    }
    let (scheme, rest) = origin.split_once("://").ok_or_else(bad)?;
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let rest_ok = !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@'])
        && !rest.contains(char::is_whitespace);
    if scheme_ok && rest_ok && HeaderValue::from_str(origin).is_ok() {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Comma-joins validated header names.
fn header_list(field: &str, names: &[String]) -> Result<Option<HeaderValue>, PluginError> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut joined = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let name = config::header_name(&format!("{field}[{i}]"), name)?;
        joined.push(name.as_str().to_owned());
    }
    config::header_value(field, &joined.join(", ")).map(Some)
}

/// The running plugin.
#[derive(Debug)]
pub struct Cors {
    origins: Origins,
    methods: Vec<Method>,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
    preflight_continue: bool,
    private_network: bool,
}

/// What the rewrite phase decided for an actual request, written by the
/// response_headers phase.
#[derive(Debug, Clone)]
struct AllowOrigin(HeaderValue);

impl Cors {
    /// Validates `cfg` and builds the plugin.
    pub fn new(cfg: Config) -> Result<Self, PluginError> {
        let origins = Origins::compile(&cfg.origins)?;
        if cfg.credentials {
            // Reflecting every origin with credentials lets any web page
            // read the user's authenticated responses; browsers refuse `*`
            // with credentials for that reason. Refuse the config instead
            // of quietly reflecting.
            let wide = if origins.any {
                cfg.origins.iter().position(|o| o == "*")
            } else {
                cfg.origins.iter().position(|o| {
                    o.starts_with('~')
                        && origins.allows(ANY_ORIGIN_PROBE)
                        && Origins::compile(std::slice::from_ref(o))
                            .is_ok_and(|one| one.allows(ANY_ORIGIN_PROBE))
                })
            };
            if let Some(i) = wide {
                return Err(PluginError::at(
                    "credentials",
                    format!(
                        "`credentials: true` cannot be combined with origins[{i}] {:?}, which allows any origin: every web page could then read responses made with the user's cookies; list the trusted origins (exact or `~regex`) instead",
                        cfg.origins[i]
                    ),
                ));
            }
        }
        if cfg.methods.is_empty() {
            return Err(PluginError::at("methods", "expected at least one method"));
        }
        let mut methods = Vec::with_capacity(cfg.methods.len());
        for (i, m) in cfg.methods.iter().enumerate() {
            let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                PluginError::at(
                    format!("methods[{i}]"),
                    format!("invalid method {m:?}: expected a token such as \"GET\""),
                )
            })?;
            if !methods.contains(&method) {
                methods.push(method);
            }
        }
        let joined: Vec<&str> = methods.iter().map(Method::as_str).collect();
        let allow_methods = config::header_value("methods", &joined.join(", "))?;
        let allow_headers = header_list("headers", &cfg.headers)?;
        let expose_headers = header_list("exposed_headers", &cfg.exposed_headers)?;
        let max_age = cfg.max_age.map(HeaderValue::from);
        Ok(Self {
            origins,
            methods,
            allow_methods,
            allow_headers,
            expose_headers,
            credentials: cfg.credentials,
            max_age,
            preflight_continue: cfg.preflight_continue,
            private_network: cfg.private_network,
        })
    }

    /// The `Access-Control-Allow-Origin` value for an allowed `origin`: `*`
    /// when any origin is allowed without credentials, the origin itself
    /// otherwise (the Fetch standard forbids `*` with credentials).
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        let text = origin.to_str().ok()?;
        if !self.origins.allows(text) {
            return None;
        }
        if self.origins.any && !self.credentials {
            Some(HeaderValue::from_static("*"))
        } else {
            Some(origin.clone())
        }
    }

    fn preflight(
        &self,
        ctx: &Ctx,
        req: &Request,
        origin: &HeaderValue,
        requested: &HeaderValue,
    ) -> Flow {
        let Some(allow_origin) = self.allow_origin(origin) else {
            return reject(ctx, "origin not allowed");
        };
        let method = requested
            .to_str()
            .ok()
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
        let Some(method) = method.filter(|m| self.methods.contains(m)) else {
            return reject(ctx, "method not allowed");
        };
        let mut resp = http::Response::new(body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let headers = resp.headers_mut();
        let reflected = allow_origin != "*";
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods.clone(),
        );
        let mut vary = Vec::new();
        if reflected {
            vary.push("Origin");
        }
        match (
            &self.allow_headers,
            req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS),
        ) {
            (Some(list), _) => {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, list.clone());
            }
            (None, Some(asked)) => {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
                vary.push("Access-Control-Request-Headers");
            }
            (None, None) => {}
        }
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(max_age) = &self.max_age {
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, max_age.clone());
        }
        let asks_private_network = req
            .headers()
            .get(REQUEST_PRIVATE_NETWORK)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        if self.private_network && asks_private_network {
            headers.insert(ALLOW_PRIVATE_NETWORK, HeaderValue::from_static("true"));
        }
        if !vary.is_empty()
            && let Ok(value) = HeaderValue::from_str(&vary.join(", "))
        {
            headers.append(header::VARY, value);
        }
        tracing::trace!(method = %method, "cors preflight answered");
        Flow::Respond(resp)
    }
}

fn reject(ctx: &Ctx, detail: &str) -> Flow {
    config::reject(
        ctx,
        Problem::new(ProblemType::Plugin(&CORS_REJECTED)).detail(detail),
    )
}

/// Adds `token` to the Vary header unless already listed (or `*`).
fn add_vary(headers: &mut http::HeaderMap, token: &'static str) {
    let listed = headers.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case(token))
        })
    });
    if !listed {
        headers.append(header::VARY, HeaderValue::from_static(token));
    }
}

#[async_trait]
impl Plugin for Cors {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ANSWERS_PREFLIGHT
    }

    fn phases(&self) -> Phases {
        Phases::of(&[Phase::Rewrite, Phase::ResponseHeaders])
    }

    async fn rewrite(&self, ctx: &mut Ctx, req: &mut Request) -> Flow {
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return Flow::Continue;
        };
        let requested = req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD);
        if req.method() == Method::OPTIONS
            && let Some(requested) = requested
            && !self.preflight_continue
        {
            return self.preflight(ctx, req, origin, requested);
        }
        if let Some(allow) = self.allow_origin(origin) {
            ctx.extensions.insert(AllowOrigin(allow));
        }
        Flow::Continue
    }

    async fn response_headers(&self, ctx: &mut Ctx, resp: &mut http::response::Parts) {
        let Some(AllowOrigin(origin)) = ctx.extensions.get::<AllowOrigin>() else {
            return;
        };
        let reflected = origin != "*";
        let headers = &mut resp.headers;
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose_headers {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
        if reflected {
            add_vary(headers, "Origin");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use serde_json::json;

    fn preflight_req(origin: &str, method: &str) -> Request {
        let mut req = request("OPTIONS", "/users/1");
        req.headers_mut()
            .insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        req.headers_mut().insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_str(method).unwrap(),
        );
        req
    }

    fn actual_req(origin: &str) -> Request {
        let mut req = request("GET", "/users/1");
        req.headers_mut()
            .insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        req
    }

    /// Runs rewrite then response_headers for an actual request.
    async fn actual(config: serde_json::Value, origin: &str) -> http::HeaderMap {
        let plugin = build(&FACTORY, config).unwrap();
        let mut ctx = ctx();
        let mut req = actual_req(origin);
        assert!(continues(&plugin.rewrite(&mut ctx, &mut req).await));
        let mut parts = response_parts();
        plugin.response_headers(&mut ctx, &mut parts).await;
        parts.headers
    }

    #[tokio::test]
    async fn preflight_is_answered_with_204_and_the_policy() {
        let plugin = build(
            &FACTORY,
            json!({
                "origins": ["https://app.example.com"],
                "methods": ["get", "POST"],
                "headers": ["Content-Type", "X-Api-Key"],
                "max_age": 600,
                "credentials": true,
            }),
        )
        .unwrap();
        let mut ctx = ctx();
        let mut req = preflight_req("https://app.example.com", "POST");
        let resp = responded(plugin.rewrite(&mut ctx, &mut req).await);
        assert_eq!(resp.status(), 204);
        let h = resp.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, POST");
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "content-type, x-api-key"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(h[header::VARY], "Origin");
        assert!(ctx.extensions.get::<AllowOrigin>().is_none());
    }

    #[tokio::test]
    async fn preflight_reflects_requested_headers_when_none_configured() {
        let plugin = build(&FACTORY, json!({})).unwrap();
        let mut req = preflight_req("https://any.example", "PUT");
        req.headers_mut().insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("x-custom, content-type"),
        );
        let resp = responded(plugin.rewrite(&mut ctx(), &mut req).await);
        let h = resp.headers();
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "x-custom, content-type"
        );
        assert_eq!(h[header::VARY], "Access-Control-Request-Headers");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        assert!(h.get(header::ACCESS_CONTROL_MAX_AGE).is_none());
    }

    #[tokio::test]
    async fn preflight_from_unknown_origin_or_with_bad_method_is_403() {
        let plugin = build(&FACTORY, json!({"origins": ["https://app.example.com"]})).unwrap();
        let mut req = preflight_req("https://evil.example", "GET");
        let (status, doc, _) = problem(plugin.rewrite(&mut ctx(), &mut req).await).await;
        assert_eq!(status, 403);
        assert_eq!(doc["type"], "urn:gatehouse:problem:cors-rejected");
        assert_eq!(doc["detail"], "origin not allowed");

        let mut req = preflight_req("https://app.example.com", "TRACE");
        let (status, doc, _) = problem(plugin.rewrite(&mut ctx(), &mut req).await).await;
        assert_eq!(status, 403);
        assert_eq!(doc["detail"], "method not allowed");
    }

    #[tokio::test]
    async fn plain_options_without_request_method_is_not_a_preflight() {
        let plugin = build(&FACTORY, json!({})).unwrap();
        let mut req = request("OPTIONS", "/");
        req.headers_mut().insert(
            header::ORIGIN,
            HeaderValue::from_static("https://a.example"),
        );
        assert!(continues(&plugin.rewrite(&mut ctx(), &mut req).await));
    }

    #[tokio::test]
    async fn preflight_continue_passes_the_preflight_on() {
        let plugin = build(&FACTORY, json!({"preflight_continue": true})).unwrap();
        let mut ctx = ctx();
        let mut req = preflight_req("https://a.example", "GET");
        assert!(continues(&plugin.rewrite(&mut ctx, &mut req).await));
        let mut parts = response_parts();
        plugin.response_headers(&mut ctx, &mut parts).await;
        assert_eq!(parts.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }

    #[tokio::test]
    async fn private_network_access_is_answered_only_when_enabled() {
        for (enabled, expected) in [(true, Some("true")), (false, None)] {
            let plugin = build(&FACTORY, json!({"private_network": enabled})).unwrap();
            let mut req = preflight_req("https://a.example", "GET");
            req.headers_mut()
                .insert(REQUEST_PRIVATE_NETWORK, HeaderValue::from_static("true"));
            let resp = responded(plugin.rewrite(&mut ctx(), &mut req).await);
            let got = resp
                .headers()
                .get(ALLOW_PRIVATE_NETWORK)
                .map(|v| v.to_str().unwrap());
            assert_eq!(got, expected);
        }
    }

    #[tokio::test]
    async fn actual_request_with_wildcard_gets_star_and_no_vary() {
        let h = actual(
            json!({"exposed_headers": ["X-Total-Count"]}),
            "https://a.example",
        )
        .await;
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(h[header::ACCESS_CONTROL_EXPOSE_HEADERS], "x-total-count");
        assert!(h.get(header::VARY).is_none());
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    }

    #[tokio::test]
    async fn credentials_with_a_listed_origin_reflect_it() {
        let h = actual(
            json!({"origins": ["https://a.example"], "credentials": true}),
            "https://a.example",
        )
        .await;
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://a.example");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[header::VARY], "Origin");
    }

    #[test]
    fn credentials_with_any_origin_are_refused() {
        fn check(cfg: serde_json::Value, refused: bool) {
            match build(&FACTORY, cfg.clone()) {
                Ok(_) => assert!(!refused, "{cfg} was accepted"),
                Err(e) => {
                    assert!(refused, "{cfg}: {}", e.message);
                    assert_eq!(e.path, "credentials", "{cfg}");
                    assert!(e.message.contains("any origin"), "{}", e.message);
                }
            }
        }
        check(json!({"origins": ["*"], "credentials": true}), true);
        // `*` is the default.
        check(json!({"credentials": true}), true);
        check(
            json!({"origins": ["https://a.example", "*"], "credentials": true}),
            true,
        );
        check(json!({"origins": ["~.*"], "credentials": true}), true);
        check(
            json!({"origins": ["~https://.+"], "credentials": true}),
            true,
        );
        check(json!({"origins": ["*"]}), false);
        check(
            json!({"origins": ["https://a.example"], "credentials": true}),
            false,
        );
        check(
            json!({"origins": ["~https://[a-z]+\\.example\\.com"], "credentials": true}),
            false,
        );
    }

    #[tokio::test]
    async fn exact_and_regex_origins_match_case_insensitively_and_whole() {
        let cfg =
            json!({"origins": ["https://App.Example.com", "~https://[a-z]+\\.example\\.org"]});
        let h = actual(cfg.clone(), "https://app.example.com").await;
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        let h = actual(cfg.clone(), "https://shop.example.org").await;
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://shop.example.org"
        );
        // The regex is anchored: a suffix does not sneak through.
        let h = actual(cfg, "https://shop.example.org.evil.net").await;
        assert!(h.is_empty(), "{h:?}");
    }

    #[tokio::test]
    async fn disallowed_origin_gets_no_cors_headers() {
        let h = actual(
            json!({"origins": ["https://app.example.com"]}),
            "https://evil.example",
        )
        .await;
        assert!(h.is_empty(), "{h:?}");
    }

    #[tokio::test]
    async fn vary_is_merged_not_duplicated() {
        let plugin = build(&FACTORY, json!({"origins": ["https://a.example"]})).unwrap();
        let mut ctx = ctx();
        plugin
            .rewrite(&mut ctx, &mut actual_req("https://a.example"))
            .await;
        let mut parts = response_parts();
        parts.headers.insert(
            header::VARY,
            HeaderValue::from_static("accept-encoding, origin"),
        );
        plugin.response_headers(&mut ctx, &mut parts).await;
        assert_eq!(parts.headers.get_all(header::VARY).iter().count(), 1);
        let mut parts = response_parts();
        parts
            .headers
            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        plugin.response_headers(&mut ctx, &mut parts).await;
        assert_eq!(parts.headers.get_all(header::VARY).iter().count(), 2);
    }

    #[tokio::test]
    async fn requests_without_origin_are_untouched() {
        let plugin = build(&FACTORY, json!({})).unwrap();
        let mut ctx = ctx();
        assert!(continues(
            &plugin.rewrite(&mut ctx, &mut request("GET", "/")).await
        ));
        let mut parts = response_parts();
        plugin.response_headers(&mut ctx, &mut parts).await;
        assert!(parts.headers.is_empty());
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (
                json!({"origins": ["https://ok.example", "https://bad.example/path"]}),
                "origins[1]",
            ),
            (json!({"origins": ["ftp//nope"]}), "origins[0]"),
            (json!({"origins": ["~(unclosed"]}), "origins[0]"),
            (json!({"origins": []}), "origins"),
            (json!({"origins": "https://a.example"}), "origins"),
            (json!({"methods": ["GET", "BAD METHOD"]}), "methods[1]"),
            (json!({"headers": ["ok", "not ok"]}), "headers[1]"),
            (json!({"exposed_headers": ["x:y"]}), "exposed_headers[0]"),
            (json!({"max_age": -1}), "max_age"),
            (json!({"credential": true}), "credential"),
        ];
        for (cfg, path) in cases {
            let err = build_err(&FACTORY, cfg.clone());
            assert_eq!(err.path, path, "{cfg}: {}", err.message);
            assert!(!err.message.is_empty());
        }
    }
}
