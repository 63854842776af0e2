//! `key-auth`: identifies the consumer by an API key sent in a header or a
//! query parameter, and hides the key from the upstream.
//!
//! Two kinds of keys, tried in this order:
//! - plaintext keys of the consumers' `key_auth` credentials: the
//!   credential scheme [`SCHEME`] (`credentials: {key_auth: [{key}]}`,
//!   credential documents `{consumer, key_auth: {key}}`) checks them and
//!   builds the [`Keys`] index the plugin reads from
//!   [`BuildEnv::index`]; a `HashMap` whose per-process random SipHash key
//!   keeps lookup time from telling an attacker how close a guess was
//!   (kept for compatibility);
//! - hashed keys of the consumers' apps ([`BuildEnv::app_keys`]): the
//!   presented key is hashed once (HMAC-SHA256 under the node secret) and
//!   looked up by hash. These also identify the app (`Ctx::app`), which
//!   subscriptions are checked against; expired and revoked keys are
//!   refused with a detail that says so.
//!
//! Both maps are those of the route's workspace (`BuildEnv` is built per
//! workspace in `gatehouse_proxy::snapshot`): a key of another workspace is
//! not in them and gets the answer of an unknown key.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use http::header::{HeaderName, HeaderValue, WWW_AUTHENTICATE};
use http::uri::{PathAndQuery, Uri};
use schemars::JsonSchema;
use serde::Deserialize;

use gatehouse_core::credentials::{CredentialScheme, Index, UniqueKey};
use gatehouse_core::{
    AppKeys, BuildEnv, Consumer, Ctx, Flow, Phase, Phases, Plugin, PluginError, Problem,
    ProblemType, Request,
};

use gatehouse_core::{Band, Capabilities};

use crate::{TypedFactory, config};

/// Registry name.
pub const NAME: &str = "key-auth";
/// Default priority.
pub const PRIORITY: i32 = 1250;

const CHALLENGE: &str = "Key realm=\"gatehouse\"";

/// Configuration of `key-auth`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case", default)]
pub struct Config {
    /// Names under which the key is looked for: as a header first (any
    /// case), then as a query parameter (exact case).
    pub key_names: Vec<String>,
    /// Remove the key headers and query parameters before proxying.
    pub hide_credentials: bool,
    /// Username of the consumer to use when the request carries no key.
    /// Without it, a request with no key is rejected.
    pub anonymous: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            key_names: vec!["apikey".to_owned(), "x-api-key".to_owned()],
            hide_credentials: true,
            anonymous: None,
        }
    }
}

/// Builds [`KeyAuth`] instances from their `config`.
pub const FACTORY: TypedFactory<Config> =
    TypedFactory::new(NAME, PRIORITY, Band::Authentication, |cfg, cx| {
        Ok(Arc::new(KeyAuth::new(cfg, cx.env)?))
    });

/// One `key_auth` credential: `{key: "..."}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// The API key itself, at least 8 characters. Secret: the admin API
    /// shows a fingerprint instead.
    pub key: String,
}

/// Shortest accepted API key.
pub const MIN_KEY_LEN: usize = 8;

/// The `key_auth` credential scheme (registered as `key-auth`).
pub const SCHEME: KeyAuthScheme = KeyAuthScheme;

/// The credential scheme of `key-auth`: consumers'
/// `credentials.key_auth[]` and credential documents' `key_auth`, each
/// `{key}`; `key` is secret and unique per workspace; the index is
/// [`Keys`].
#[derive(Debug, Clone, Copy)]
pub struct KeyAuthScheme;

/// `key-auth`'s lookup index: API key -> consumer, for one workspace.
#[derive(Debug, Default)]
pub struct Keys(HashMap<String, Consumer>);

impl Keys {
    /// The consumer holding `key`.
    pub fn get(&self, key: &str) -> Option<&Consumer> {
        self.0.get(key)
    }
}

impl KeyAuthScheme {
    fn parse(credential: &serde_json::Value) -> Result<Credential, PluginError> {
        let c: Credential = config::parse(credential)?;
        // Bytes, as before schemes existed: a stored key stays valid.
        if c.key.len() < MIN_KEY_LEN {
            return Err(PluginError::at(
                "key",
                format!("API keys must be at least {MIN_KEY_LEN} characters long"),
            ));
        }
        Ok(c)
    }
}

impl CredentialScheme for KeyAuthScheme {
    fn name(&self) -> &'static str {
        NAME
    }

    fn field(&self) -> &'static str {
        "key_auth"
    }

    fn noun(&self) -> &'static str {
        "API key"
    }

    fn schema(&self) -> serde_json::Value {
        config::schema_of::<Credential>()
    }

    fn example(&self) -> serde_json::Value {
        serde_json::json!({ "key": "example-key" })
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["key"]
    }

    fn check(&self, credential: &serde_json::Value) -> Result<(), PluginError> {
        Self::parse(credential).map(drop)
    }

    fn unique_key(&self, credential: &serde_json::Value) -> Option<UniqueKey> {
        Some(UniqueKey {
            field: "key",
            value: credential.get("key")?.as_str()?.to_owned(),
        })
    }

    fn index(&self, credentials: &[(Consumer, &serde_json::Value)]) -> Index {
        let mut keys = HashMap::with_capacity(credentials.len());
        for (consumer, credential) in credentials {
            if let Ok(c) = Self::parse(credential) {
                keys.entry(c.key).or_insert_with(|| consumer.clone());
            }
        }
        Arc::new(Keys(keys))
    }
}

/// The running plugin.
#[derive(Debug)]
pub struct KeyAuth {
    /// Lowercased header names, same order as `query_names`.
    header_names: Vec<HeaderName>,
    /// Query parameter names as configured.
    query_names: Vec<String>,
    hide_credentials: bool,
    anonymous: Option<Consumer>,
    keys: Arc<Keys>,
    app_keys: Arc<AppKeys>,
}

/// Where a key was found.
enum Found<'a> {
    None,
    Key(Cow<'a, str>),
    /// A key header that is not valid UTF-8: never a known key.
    Unreadable,
}

impl KeyAuth {
    /// Validates `cfg` and builds the plugin over `keys`.
    pub fn new(cfg: Config, env: &BuildEnv) -> Result<Self, PluginError> {
        if cfg.key_names.is_empty() {
            return Err(PluginError::at(
                "key_names",
                "expected at least one key name",
            ));
        }
        let mut header_names = Vec::with_capacity(cfg.key_names.len());
        for (i, name) in cfg.key_names.iter().enumerate() {
            header_names.push(config::header_name(&format!("key_names[{i}]"), name)?);
        }
        let anonymous = match cfg.anonymous {
            Some(name) if name.trim().is_empty() => {
                return Err(PluginError::at(
                    "anonymous",
                    "expected a consumer username, got an empty string",
                ));
            }
            Some(name) => match env.consumers.get(&name) {
                Some(consumer) => Some(consumer.clone()),
                None => {
                    return Err(PluginError::at(
                        "anonymous",
                        format!("no consumer named `{name}` (add it under `consumers`)"),
                    ));
                }
            },
            None => None,
        };
        Ok(Self {
            header_names,
            query_names: cfg.key_names,
            hide_credentials: cfg.hide_credentials,
            anonymous,
            keys: env.index::<Keys>(NAME).unwrap_or_default(),
            app_keys: env.app_keys.clone(),
        })
    }

    fn find_key<'r>(&self, req: &'r Request) -> Found<'r> {
        for name in &self.header_names {
            if let Some(value) = req.headers().get(name) {
                return match value.to_str() {
                    Ok("") => continue,
                    Ok(key) => Found::Key(Cow::Borrowed(key)),
                    Err(_) => Found::Unreadable,
                };
            }
        }
        let Some(query) = req.uri().query() else {
            return Found::None;
        };
        for name in &self.query_names {
            for (param, value) in query_pairs(query) {
                if param == name.as_str() && !value.is_empty() {
                    return Found::Key(value);
                }
            }
        }
        Found::None
    }

    /// Removes every key header and key query parameter.
    fn hide(&self, req: &mut Request) -> Result<(), http::Error> {
        for name in &self.header_names {
            req.headers_mut().remove(name);
        }
        let Some(query) = req.uri().query() else {
            return Ok(());
        };
        let is_key = |pair: &str| {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            self.query_names.iter().any(|k| decode(name) == k.as_str())
        };
        if !query.split('&').any(is_key) {
            return Ok(());
        }
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !is_key(p))
            .collect();
        let path = req.uri().path();
        let path_and_query = if kept.is_empty() {
            PathAndQuery::try_from(path)?
        } else {
            PathAndQuery::try_from(format!("{path}?{}", kept.join("&")))?
        };
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = Some(path_and_query);
        *req.uri_mut() = Uri::from_parts(parts)?;
        Ok(())
    }
}

/// `name=value` pairs of a query string, form-decoded.
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(name), decode(value))
    })
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space and
/// `%XX` a byte. Malformed escapes are kept as they are.
fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn unauthorized(ctx: &Ctx, detail: &str) -> Flow {
    config::reject(
        ctx,
        Problem::new(ProblemType::Unauthorized)
            .detail(detail)
            .header(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE)),
    )
}

#[async_trait]
impl Plugin for KeyAuth {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::IDENTIFIES
    }

    fn phases(&self) -> Phases {
        Phases::of(&[Phase::Access])
    }

    async fn access(&self, ctx: &mut Ctx, req: &mut Request) -> Flow {
        let (consumer, app) = match self.find_key(req) {
            Found::Key(key) => match self.keys.get(key.as_ref()) {
                Some(consumer) => (consumer.clone(), None),
                None => match self.app_keys.lookup(key.as_ref()) {
                    Some(k) if k.revoked => {
                        return unauthorized(ctx, "The API key has been revoked");
                    }
                    Some(k) if k.expires_at.is_some_and(|t| SystemTime::now() >= t) => {
                        return unauthorized(ctx, "The API key has expired");
                    }
                    Some(k) => (k.consumer.clone(), Some(k.app.clone())),
                    None => return unauthorized(ctx, "Invalid authentication credentials"),
                },
            },
            Found::Unreadable => {
                return unauthorized(ctx, "Invalid authentication credentials");
            }
            Found::None => match &self.anonymous {
                Some(anonymous) => {
                    ctx.consumer = Some(anonymous.clone());
                    return Flow::Continue;
                }
                None => return unauthorized(ctx, "No API key found in request"),
            },
        };
        if self.hide_credentials
            && let Err(err) = self.hide(req)
        {
            // Never forward a request that may still carry the key.
            tracing::warn!(error = %err, "key-auth could not remove the key from the request");
            return config::reject(ctx, Problem::new(ProblemType::Internal));
        }
        tracing::trace!(
            consumer = %consumer.username,
            app = app.as_ref().map_or("", |a| &*a.name),
            "key-auth identified the consumer"
        );
        ctx.consumer = Some(consumer);
        ctx.app = app;
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use serde_json::json;

    fn env() -> BuildEnv {
        let keys: Vec<(Consumer, serde_json::Value)> =
            [("alice-secret-key", "alice"), ("b0b key/+", "bob")]
                .into_iter()
                .map(|(key, user)| {
                    let consumer = Consumer {
                        username: Arc::from(user),
                        custom_id: None,
                    };
                    (consumer, json!({ "key": key }))
                })
                .collect();
        let keys: Vec<(Consumer, &serde_json::Value)> =
            keys.iter().map(|(c, v)| (c.clone(), v)).collect();
        let mut credentials = gatehouse_core::credentials::Indexes::default();
        credentials.insert(NAME, SCHEME.index(&keys));
        let consumers = ["alice", "bob", "guest"]
            .into_iter()
            .map(|u| {
                (
                    u.to_owned(),
                    Consumer {
                        username: Arc::from(u),
                        custom_id: (u == "guest").then(|| Arc::from("guest-42")),
                    },
                )
            })
            .collect();
        BuildEnv {
            credentials,
            consumers: Arc::new(consumers),
            app_keys: Arc::new(app_keys()),
        }
    }

    const SECRET: &[u8] = b"unit-test-secret-0123456789";

    /// `fresh-key` and `old-key` (expired) and `gone-key` (revoked), all of
    /// app `alice-cli`.
    fn app_keys() -> AppKeys {
        let hasher = gatehouse_core::KeyHasher::new(SECRET);
        let mut keys = AppKeys::new(hasher.clone());
        for (key, expires_at, revoked) in [
            ("fresh-key", None, false),
            (
                "later-key",
                Some(SystemTime::now() + std::time::Duration::from_secs(3600)),
                false,
            ),
            ("old-key", Some(SystemTime::UNIX_EPOCH), false),
            ("gone-key", None, true),
        ] {
            keys.insert(
                hasher.hash(key),
                gatehouse_core::AppKey {
                    app: gatehouse_core::App {
                        name: Arc::from("alice-cli"),
                        consumer: Arc::from("alice"),
                    },
                    consumer: Consumer {
                        username: Arc::from("alice"),
                        custom_id: None,
                    },
                    expires_at,
                    revoked,
                },
            );
        }
        keys
    }

    #[tokio::test]
    async fn hashed_app_keys_identify_app_and_consumer() {
        for key in ["fresh-key", "later-key"] {
            let mut req = request("GET", "/x");
            req.headers_mut()
                .insert("x-api-key", HeaderValue::from_static(key));
            let (ctx, flow) = run(json!({}), &mut req).await;
            assert!(continues(&flow), "{key}");
            assert_eq!(consumer(&ctx), Some("alice"));
            let app = ctx.app.as_ref().unwrap();
            assert_eq!((&*app.name, &*app.consumer), ("alice-cli", "alice"));
            assert!(req.headers().get("x-api-key").is_none());
        }
        // A plaintext consumer key identifies no app.
        let mut req = request("GET", "/x?apikey=alice-secret-key");
        let (ctx, _) = run(json!({}), &mut req).await;
        assert_eq!(consumer(&ctx), Some("alice"));
        assert!(ctx.app.is_none());
    }

    #[tokio::test]
    async fn expired_and_revoked_app_keys_say_so() {
        for (key, detail) in [
            ("old-key", "The API key has expired"),
            ("gone-key", "The API key has been revoked"),
            ("other-key", "Invalid authentication credentials"),
        ] {
            let mut req = request("GET", "/x");
            req.headers_mut()
                .insert("x-api-key", HeaderValue::from_static(key));
            let (ctx, flow) = run(json!({}), &mut req).await;
            assert!(ctx.consumer.is_none() && ctx.app.is_none());
            let (status, doc, headers) = problem(flow).await;
            assert_eq!(status, 401, "{key}");
            assert_eq!(doc["detail"], detail, "{key}");
            assert_eq!(headers[WWW_AUTHENTICATE], CHALLENGE);
        }
    }

    fn plugin(config: serde_json::Value) -> Arc<dyn Plugin> {
        build_in(&FACTORY, &config, &env()).unwrap()
    }

    async fn run(config: serde_json::Value, req: &mut Request) -> (Ctx, Flow) {
        let mut ctx = ctx();
        let flow = plugin(config).access(&mut ctx, req).await;
        (ctx, flow)
    }

    fn consumer(ctx: &Ctx) -> Option<&str> {
        ctx.consumer.as_ref().map(|c| &*c.username)
    }

    #[tokio::test]
    async fn key_in_header_identifies_and_is_hidden() {
        let mut req = request("GET", "/users?page=2");
        req.headers_mut()
            .insert("X-API-Key", HeaderValue::from_static("alice-secret-key"));
        let (ctx, flow) = run(json!({}), &mut req).await;
        assert!(continues(&flow));
        assert_eq!(consumer(&ctx), Some("alice"));
        assert!(req.headers().get("x-api-key").is_none());
        assert_eq!(req.uri(), "/users?page=2");
    }

    #[tokio::test]
    async fn key_in_query_identifies_and_is_hidden() {
        let mut req = request("GET", "/users?page=2&apikey=b0b+key%2F%2B&sort=asc");
        let (ctx, flow) = run(json!({}), &mut req).await;
        assert!(continues(&flow));
        assert_eq!(consumer(&ctx), Some("bob"));
        assert_eq!(req.uri(), "/users?page=2&sort=asc");

        let mut req = request("GET", "http://api.example/users?apikey=alice-secret-key");
        let (ctx, _) = run(json!({}), &mut req).await;
        assert_eq!(consumer(&ctx), Some("alice"));
        assert_eq!(req.uri(), "http://api.example/users");
    }

    #[tokio::test]
    async fn header_wins_over_query_and_both_are_hidden() {
        let mut req = request("GET", "/x?apikey=wrong");
        req.headers_mut()
            .insert("apikey", HeaderValue::from_static("alice-secret-key"));
        let (ctx, flow) = run(json!({}), &mut req).await;
        assert!(continues(&flow));
        assert_eq!(consumer(&ctx), Some("alice"));
        assert_eq!(req.uri(), "/x");
    }

    #[tokio::test]
    async fn hide_credentials_false_forwards_the_key() {
        let mut req = request("GET", "/x?apikey=alice-secret-key");
        req.headers_mut()
            .insert("x-api-key", HeaderValue::from_static("alice-secret-key"));
        let (_, flow) = run(json!({"hide_credentials": false}), &mut req).await;
        assert!(continues(&flow));
        assert_eq!(req.uri(), "/x?apikey=alice-secret-key");
        assert!(req.headers().contains_key("x-api-key"));
    }

    #[tokio::test]
    async fn missing_key_is_401_with_a_challenge() {
        let (_, flow) = run(json!({}), &mut request("GET", "/x?other=1")).await;
        let (status, doc, headers) = problem(flow).await;
        assert_eq!(status, 401);
        assert_eq!(doc["type"], "urn:gatehouse:problem:unauthorized");
        assert_eq!(doc["detail"], "No API key found in request");
        assert_eq!(doc["request_id"], "rid-1");
        assert_eq!(headers[WWW_AUTHENTICATE], "Key realm=\"gatehouse\"");
    }

    #[tokio::test]
    async fn wrong_or_unreadable_key_is_401_without_details() {
        let mut req = request("GET", "/x");
        req.headers_mut()
            .insert("x-api-key", HeaderValue::from_static("alice-secret-kex"));
        let (ctx, flow) = run(json!({}), &mut req).await;
        assert!(ctx.consumer.is_none());
        let (status, doc, headers) = problem(flow).await;
        assert_eq!(status, 401);
        assert_eq!(doc["detail"], "Invalid authentication credentials");
        assert!(!doc.to_string().contains("alice"));
        assert_eq!(headers[WWW_AUTHENTICATE], CHALLENGE);

        let mut req = request("GET", "/x");
        req.headers_mut()
            .insert("x-api-key", HeaderValue::from_bytes(b"\xffkey").unwrap());
        let (_, flow) = run(json!({}), &mut req).await;
        assert_eq!(
            problem(flow).await.1["detail"],
            "Invalid authentication credentials"
        );
    }

    #[tokio::test]
    async fn empty_key_counts_as_missing() {
        let mut req = request("GET", "/x?apikey=");
        req.headers_mut()
            .insert("x-api-key", HeaderValue::from_static(""));
        let (_, flow) = run(json!({}), &mut req).await;
        assert_eq!(
            problem(flow).await.1["detail"],
            "No API key found in request"
        );
    }

    #[tokio::test]
    async fn anonymous_applies_to_missing_keys_only() {
        let cfg = json!({"anonymous": "guest"});
        let (ctx, flow) = run(cfg.clone(), &mut request("GET", "/x")).await;
        assert!(continues(&flow));
        assert_eq!(consumer(&ctx), Some("guest"));

        let mut req = request("GET", "/x?apikey=nope");
        let (ctx, flow) = run(cfg, &mut req).await;
        assert!(ctx.consumer.is_none());
        assert_eq!(problem(flow).await.0, 401);
    }

    #[test]
    fn anonymous_must_name_a_configured_consumer() {
        let err = build_in(&FACTORY, &json!({"anonymous": "nobody"}), &env())
            .err()
            .unwrap();
        assert_eq!(err.path, "anonymous");
        assert!(
            err.message.contains("no consumer named `nobody`"),
            "{}",
            err.message
        );
        // The configured consumer is used as is, custom_id included.
        let plugin = build_in(&FACTORY, &json!({"anonymous": "guest"}), &env());
        assert!(plugin.is_ok());
    }

    #[tokio::test]
    async fn custom_key_names() {
        let cfg = json!({"key_names": ["X-Token", "token"]});
        let mut req = request("GET", "/x?token=alice-secret-key");
        let (ctx, _) = run(cfg.clone(), &mut req).await;
        assert_eq!(consumer(&ctx), Some("alice"));
        // Default names are no longer looked at.
        let mut req = request("GET", "/x?apikey=alice-secret-key");
        let (_, flow) = run(cfg, &mut req).await;
        assert_eq!(
            problem(flow).await.1["detail"],
            "No API key found in request"
        );
    }

    #[test]
    fn the_scheme_checks_credentials_with_field_paths() {
        let cases = [
            (json!({"key": "long-enough"}), None),
            (json!({"key": "short"}), Some("key")),
            (json!({"key": ""}), Some("key")),
            (json!({"key": 5}), Some("key")),
            (json!({}), Some("")),
            (json!({"key": "long-enough", "extra": 1}), Some("extra")),
            (json!("long-enough"), Some("")),
            (json!(null), Some("")),
        ];
        for (credential, path) in cases {
            let got = SCHEME.check(&credential).err().map(|e| e.path);
            assert_eq!(got.as_deref(), path, "{credential}");
        }
        assert_eq!(
            SCHEME.unique_key(&json!({"key": "k-1234567"})),
            Some(UniqueKey {
                field: "key",
                value: "k-1234567".into()
            })
        );
        assert!(SCHEME.check(&SCHEME.example()).is_ok());
        assert_eq!(SCHEME.schema()["additionalProperties"], false);
    }

    #[test]
    fn the_index_keeps_the_first_consumer_of_a_key() {
        let first = Consumer {
            username: Arc::from("own"),
            custom_id: None,
        };
        let second = Consumer {
            username: Arc::from("accepted"),
            custom_id: None,
        };
        let key = json!({"key": "shared-key-1"});
        let bad = json!({"key": "short"});
        let index = SCHEME.index(&[(first, &key), (second.clone(), &key), (second, &bad)]);
        let keys = index.downcast::<Keys>().unwrap();
        assert_eq!(keys.get("shared-key-1").map(|c| &*c.username), Some("own"));
        assert!(keys.get("short").is_none());
    }

    #[test]
    fn form_decoding() {
        assert_eq!(decode("a+b%2Fc"), "a b/c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert!(matches!(decode("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (json!({"key_names": []}), "key_names"),
            (json!({"key_names": ["ok", "not ok"]}), "key_names[1]"),
            (json!({"key_names": "apikey"}), "key_names"),
            (json!({"hide_credentials": "no"}), "hide_credentials"),
            (json!({"anonymous": ""}), "anonymous"),
            (json!({"anonymous": 5}), "anonymous"),
            (json!({"keys": []}), "keys"),
        ];
        for (cfg, path) in cases {
            let err = build_in(&FACTORY, &cfg, &env()).err().unwrap();
            assert_eq!(err.path, path, "{cfg}: {}", err.message);
        }
    }
}
