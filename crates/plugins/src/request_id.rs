//! `request-id`: chooses the header, generator and trust policy of the
//! request id on a route, and echoes it to the client.
//!
//! The proxy core always keeps or generates `x-request-id` before the chain
//! runs; this plugin runs first (priority 100000, rewrite phase) and may
//! replace `Ctx::request_id`, which the proxy then uses for problem
//! documents, logs and its own echo.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;

use gatehouse_core::{Ctx, Flow, Phase, Phases, Plugin, PluginError, Request};

use gatehouse_core::Band;

use crate::{TypedFactory, config};

/// Registry name.
pub const NAME: &str = "request-id";
/// Default priority: first of all plugins.
pub const PRIORITY: i32 = 100_000;
/// Longest incoming id that is kept.
pub const MAX_LEN: usize = 200;

/// How new ids are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Generator {
    /// A random UUID v4 (`9b2f...-...`), 36 characters.
    #[default]
    Uuid,
    /// A ULID: 48-bit millisecond timestamp + 80 random bits in Crockford
    /// base32, 26 characters, sorting by creation time.
    Ulid,
}

/// Configuration of `request-id`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case", default)]
pub struct Config {
    /// Header carrying the id, in both directions.
    pub header: String,
    /// How new ids are made.
    pub generator: Generator,
    /// Keep a well-formed incoming id (1 to 200 visible ASCII characters)
    /// instead of generating one.
    pub trust_incoming: bool,
    /// Send the id back to the client in `header`.
    pub echo_downstream: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            header: "x-request-id".to_owned(),
            generator: Generator::Uuid,
            trust_incoming: true,
            echo_downstream: true,
        }
    }
}

/// Builds [`RequestId`] instances from their `config`.
pub const FACTORY: TypedFactory<Config> =
    TypedFactory::new(NAME, PRIORITY, Band::Observe, |cfg, _cx| {
        Ok(Arc::new(RequestId::new(cfg)?))
    });

/// The running plugin.
#[derive(Debug)]
pub struct RequestId {
    header: HeaderName,
    generator: Generator,
    trust_incoming: bool,
    phases: Phases,
}

impl RequestId {
    /// Validates `cfg` and builds the plugin.
    pub fn new(cfg: Config) -> Result<Self, PluginError> {
        let header = config::header_name("header", &cfg.header)?;
        let phases = if cfg.echo_downstream {
            Phases::of(&[Phase::Rewrite, Phase::ResponseHeaders])
        } else {
            Phases::of(&[Phase::Rewrite])
        };
        Ok(Self {
            header,
            generator: cfg.generator,
            trust_incoming: cfg.trust_incoming,
            phases,
        })
    }
}

/// Whether an incoming id may be kept: 1 to [`MAX_LEN`] visible ASCII
/// characters (no spaces, no control characters).
pub fn is_well_formed(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
}

/// A new id from `generator`.
pub fn generate(generator: Generator) -> String {
    match generator {
        Generator::Uuid => uuid::Uuid::new_v4().to_string(),
        Generator::Ulid => ulid(),
    }
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A ULID string. The 80 random bits are taken from the fully random bytes
/// of a v4 UUID (its version and variant bits are skipped), so no extra
/// random number generator is needed.
fn ulid() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
        & ((1u128 << 48) - 1);
    let random = uuid::Uuid::new_v4().into_bytes();
    let mut value = millis << 80;
    for (i, byte) in random[0..6].iter().chain(&random[10..14]).enumerate() {
        value |= u128::from(*byte) << (72 - 8 * i);
    }
    (0..26)
        .map(|i| {
            let shift = 125 - 5 * i;
            char::from(CROCKFORD[((value >> shift) & 0x1f) as usize])
        })
        .collect()
}

#[async_trait]
impl Plugin for RequestId {
    fn name(&self) -> &'static str {
        NAME
    }

    fn phases(&self) -> Phases {
        self.phases
    }

    async fn rewrite(&self, ctx: &mut Ctx, req: &mut Request) -> Flow {
        let incoming = req
            .headers()
            .get(&self.header)
            .filter(|v| self.trust_incoming && is_well_formed(v.as_bytes()))
            .cloned();
        let value = match incoming {
            Some(value) => value,
            None => {
                let id = generate(self.generator);
                match HeaderValue::from_str(&id) {
                    Ok(value) => value,
                    // Generated ids are always plain ASCII.
                    Err(_) => return Flow::Continue,
                }
            }
        };
        // `value` is visible ASCII, checked above or generated.
        if let Ok(id) = value.to_str() {
            ctx.request_id = Arc::from(id);
        }
        req.headers_mut().insert(self.header.clone(), value);
        Flow::Continue
    }

    async fn response_headers(&self, ctx: &mut Ctx, resp: &mut http::response::Parts) {
        if let Ok(value) = HeaderValue::from_str(&ctx.request_id) {
            resp.headers.insert(self.header.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use serde_json::json;

    async fn run(config: serde_json::Value, req: &mut Request) -> Ctx {
        let plugin = build(&FACTORY, config).unwrap();
        let mut ctx = ctx();
        assert!(continues(&plugin.rewrite(&mut ctx, req).await));
        ctx
    }

    #[tokio::test]
    async fn keeps_a_well_formed_incoming_id_and_echoes_it() {
        let plugin = build(&FACTORY, serde_json::Value::Null).unwrap();
        assert!(plugin.phases().contains(Phase::ResponseHeaders));
        let mut req = request("GET", "/");
        req.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("abc-123"));
        let mut ctx = ctx();
        plugin.rewrite(&mut ctx, &mut req).await;
        assert_eq!(&*ctx.request_id, "abc-123");
        assert_eq!(req.headers()["x-request-id"], "abc-123");
        let mut parts = response_parts();
        plugin.response_headers(&mut ctx, &mut parts).await;
        assert_eq!(parts.headers["x-request-id"], "abc-123");
    }

    #[tokio::test]
    async fn replaces_malformed_or_oversized_ids() {
        for bad in ["has space", "", &"a".repeat(201)] {
            let mut req = request("GET", "/");
            req.headers_mut()
                .insert("x-request-id", HeaderValue::from_str(bad).unwrap());
            let ctx = run(json!({}), &mut req).await;
            assert_ne!(&*ctx.request_id, bad);
            assert_eq!(ctx.request_id.len(), 36, "uuid expected");
            assert_eq!(req.headers()["x-request-id"], &*ctx.request_id);
        }
        let long_ok = "a".repeat(200);
        let mut req = request("GET", "/");
        req.headers_mut()
            .insert("x-request-id", HeaderValue::from_str(&long_ok).unwrap());
        assert_eq!(&*run(json!({}), &mut req).await.request_id, long_ok);
    }

    #[tokio::test]
    async fn untrusted_incoming_ids_are_always_replaced() {
        let mut req = request("GET", "/");
        req.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("client-chosen"));
        let ctx = run(json!({"trust_incoming": false}), &mut req).await;
        assert_ne!(&*ctx.request_id, "client-chosen");
        assert_eq!(req.headers()["x-request-id"], &*ctx.request_id);
    }

    #[tokio::test]
    async fn custom_header_and_ulid_generator() {
        let mut req = request("GET", "/");
        let ctx = run(
            json!({"header": "X-Correlation-ID", "generator": "ulid"}),
            &mut req,
        )
        .await;
        let id = &*ctx.request_id;
        assert_eq!(id.len(), 26);
        assert!(id.bytes().all(|b| CROCKFORD.contains(&b)), "{id}");
        assert_eq!(req.headers()["x-correlation-id"], id);
    }

    #[test]
    fn ulids_sort_by_time() {
        let a = ulid();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = ulid();
        assert!(a < b, "{a} !< {b}");
        assert!(a.as_bytes()[0] <= b'7');
    }

    #[test]
    fn echo_can_be_turned_off() {
        let plugin = build(&FACTORY, json!({"echo_downstream": false})).unwrap();
        assert!(!plugin.phases().contains(Phase::ResponseHeaders));
        assert!(plugin.phases().contains(Phase::Rewrite));
    }

    #[test]
    fn config_errors_name_the_field() {
        let err = build_err(&FACTORY, json!({"header": "bad header"}));
        assert_eq!(err.path, "header");
        let err = build_err(&FACTORY, json!({"generator": "snowflake"}));
        assert_eq!(err.path, "generator");
        assert!(err.message.contains("uuid"), "{}", err.message);
        let err = build_err(&FACTORY, json!({"trust_incoming": "yes"}));
        assert_eq!(err.path, "trust_incoming");
    }
}
