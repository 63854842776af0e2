//! App API keys (create, rotate, revoke) on `apps` documents, and the
//! approval of subscriptions. Every change is an ordinary document write:
//! the cross-entity check, then `Store::put` with the caller as actor, so
//! it is audited with the document before and after.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_config::{AppDocument, AppKey, Timestamp};
use gatehouse_core::{KeyHash, ProblemType};
use gatehouse_store::{Document, Expect, Kind, NewDocument, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::entity::validate;
use crate::error::{ApiError, ApiResult};
use crate::handlers::{B, doc_json, doc_response, etag, optional_json_input, precondition, write};

/// The longest rotation overlap.
const MAX_OVERLAP: Duration = Duration::from_secs(90 * 24 * 3600);

/// What `POST .../apps/{app}/keys` takes (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyInput {
    /// The new key stops working at this time.
    #[serde(default)]
    expires_at: Option<Timestamp>,
    /// Rotate the app's other keys out.
    #[serde(default)]
    rotate: Option<Rotate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotate {
    /// How long the other keys keep working (`24h`, `7d`, ...).
    overlap: String,
}

/// What approve / reject take (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionInput {
    #[serde(default)]
    reason: Option<String>,
}

fn parse_overlap(text: &str) -> ApiResult<Duration> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        ApiError::unprocessable(format!(
            "rotate.overlap: `{text}` is not a duration such as `24h` or `7d` ({e})"
        ))
    })?;
    if d.is_zero() {
        return Err(ApiError::unprocessable(
            "rotate.overlap: must be more than zero (to revoke the other keys at once, DELETE them)",
        ));
    }
    if d > MAX_OVERLAP {
        return Err(ApiError::unprocessable(format!(
            "rotate.overlap: `{text}` is longer than the maximum of 90 days"
        )));
    }
    Ok(d)
}

/// `t` rounded down to a whole second (keeps stored times short).
fn whole_seconds(t: SystemTime) -> SystemTime {
    t.duration_since(UNIX_EPOCH)
        .map_or(t, |d| UNIX_EPOCH + Duration::from_secs(d.as_secs()))
}

/// A PATCH-like precondition: `If-None-Match` is refused; `If-Match` must
/// name the current version (checked here too, so a stale tag is a 412
/// before any other work); no `If-Match` means "the version just read".
fn expect_for(headers: &HeaderMap, current: &Document) -> ApiResult<Expect> {
    match precondition(headers)? {
        Expect::Absent => Err(ApiError::bad_request(
            "this endpoint changes an existing document: If-None-Match is not allowed",
        )),
        Expect::Any => Ok(Expect::Version(current.version)),
        Expect::Version(v) if v == current.version => Ok(Expect::Version(v)),
        Expect::Version(v) => Err(ApiError::new(
            ProblemType::PreconditionFailed,
            format!(
                "{} `{}` is at version {}, not {v}",
                current.kind, current.name, current.version
            ),
        )),
    }
}

/// The read-modify-write attempts of one request. Without `If-Match`, an
/// attempt that lost a race to a concurrent writer (the store's version
/// check failed) is made again on the new version, a few times; with
/// `If-Match`, the `412` is the answer.
struct Attempts {
    pinned: bool,
    left: u32,
}

impl Attempts {
    fn new(headers: &HeaderMap) -> ApiResult<Self> {
        Ok(Self {
            pinned: matches!(precondition(headers)?, Expect::Version(_)),
            left: 4,
        })
    }

    /// Whether to make the attempt that ended with `result` again.
    fn again<T>(&mut self, result: &ApiResult<T>) -> bool {
        match result {
            Err(e)
                if !self.pinned
                    && self.left > 0
                    && e.0.kind() == ProblemType::PreconditionFailed =>
            {
                self.left -= 1;
                true
            }
            _ => false,
        }
    }
}

/// The app document `app` of `ws`, decoded.
async fn load_app(state: &AppState, ws: &str, app: &str) -> ApiResult<(Document, AppDocument)> {
    let current = match state.store.get(ws, Kind::App, app).await {
        Ok(d) => d,
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::not_found(format!(
                "no app document `{app}` in workspace `{ws}`: keys are managed here only for \
                 `apps` documents; an app defined inside a consumer document is changed by \
                 editing the consumer"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let decoded = current.decode::<AppDocument>().map_err(|e| {
        ApiError::invalid(format!(
            "the stored app document does not parse, fix it with PUT first: {e}"
        ))
    })?;
    Ok((current, decoded))
}

/// Writes the changed app document over `current`.
async fn save_app(
    state: &AppState,
    caller: &Caller,
    current: &Document,
    app: &AppDocument,
    expect: Expect,
) -> ApiResult<Document> {
    let mut body = serde_json::to_value(app)
        .map_err(|e| ApiError::new(ProblemType::Internal, format!("app document: {e}")))?;
    validate(&state.schemes, Kind::App, &current.name, &mut body)?;
    let doc = NewDocument {
        workspace: current.workspace.clone(),
        kind: Kind::App,
        name: current.name.clone(),
        tags: current.tags.clone(),
        body,
    };
    Ok(write(state, caller, doc, expect).await?.document)
}

/// `POST /workspaces/{ws}/apps/{app}/keys`
pub async fn create_app_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, app)): Path<(String, String)>,
    headers: HeaderMap,
    body: B,
) -> ApiResult<Response> {
    caller.write_docs(&ws)?;
    let mut attempts = Attempts::new(&headers)?;
    let input: KeyInput = optional_json_input(body)?;
    let now = SystemTime::now();
    if let Some(t) = input.expires_at
        && t.0 <= now
    {
        return Err(ApiError::unprocessable(format!(
            "expires_at: {} is not in the future",
            humantime::format_rfc3339_seconds(t.0)
        )));
    }
    let overlap = input
        .rotate
        .as_ref()
        .map(|r| parse_overlap(&r.overlap))
        .transpose()?;
    let (written, key, hash, rotated) = loop {
        let result: ApiResult<_> = async {
            let (current, mut doc) = load_app(&state, &ws, &app).await?;
            let expect = expect_for(&headers, &current)?;
            let key = gatehouse_core::keys::generate_key()
                .map_err(|e| ApiError::new(ProblemType::Internal, e.to_string()))?;
            let hash = state.key_hasher.hash(&key).to_string();
            let mut rotated = Vec::new();
            if let Some(overlap) = overlap {
                let until = Timestamp(whole_seconds(now + overlap));
                for k in &mut doc.keys {
                    if !k.revoked && k.expires_at.is_none_or(|e| e > until) {
                        k.expires_at = Some(until);
                        rotated.push(json!({ "hash": k.hash, "expires_at": until }));
                    }
                }
            }
            doc.keys.push(AppKey {
                hash: hash.clone(),
                expires_at: input.expires_at,
                revoked: false,
            });
            let written = save_app(&state, &caller, &current, &doc, expect).await?;
            Ok((written, key, hash, rotated))
        }
        .await;
        if !attempts.again(&result) {
            break result?;
        }
    };
    tracing::info!(
        actor = caller.actor(),
        workspace = %ws,
        app = %app,
        %hash,
        rotated = rotated.len(),
        "admin API: app key created"
    );
    let mut resp = (
        StatusCode::CREATED,
        axum::Json(json!({
            "key": key,
            "hash": hash,
            "expires_at": input.expires_at,
            "rotated": rotated,
            "app": app,
            "version": written.version,
        })),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::ETAG, etag(written.version));
    Ok(resp)
}

/// `DELETE /workspaces/{ws}/apps/{app}/keys/{hash}`
pub async fn revoke_app_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, app, hash)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.write_docs(&ws)?;
    let mut attempts = Attempts::new(&headers)?;
    let wanted = KeyHash::parse(&hash);
    let written = loop {
        let result: ApiResult<_> = async {
            let (current, mut doc) = load_app(&state, &ws, &app).await?;
            let expect = expect_for(&headers, &current)?;
            let key = doc
                .keys
                .iter_mut()
                .find(|k| wanted.is_some() && KeyHash::parse(&k.hash) == wanted)
                .ok_or_else(|| ApiError::not_found(format!("app `{app}` has no key `{hash}`")))?;
            key.revoked = true;
            save_app(&state, &caller, &current, &doc, expect).await
        }
        .await;
        if !attempts.again(&result) {
            break result?;
        }
    };
    tracing::info!(
        actor = caller.actor(),
        workspace = %ws,
        app = %app,
        %hash,
        "admin API: app key revoked"
    );
    Ok(doc_response(StatusCode::OK, &written, &state))
}

async fn decide(
    state: AppState,
    caller: Caller,
    ws: String,
    name: String,
    headers: HeaderMap,
    body: B,
    status: &'static str,
) -> ApiResult<Response> {
    caller.write_docs(&ws)?;
    let mut attempts = Attempts::new(&headers)?;
    let input: DecisionInput = optional_json_input(body)?;
    let (written, previous) = loop {
        let result: ApiResult<_> = async {
            let current = match state.store.get(&ws, Kind::Subscription, &name).await {
                Ok(d) => d,
                Err(StoreError::NotFound(_)) => {
                    return Err(ApiError::not_found(format!(
                        "no subscription `{name}` in workspace `{ws}`"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            let expect = expect_for(&headers, &current)?;
            let previous = current.body.get("status").cloned().unwrap_or(Value::Null);
            let mut body = current.body.clone();
            let Value::Object(map) = &mut body else {
                return Err(ApiError::invalid(format!(
                    "the stored subscription `{name}` is not a JSON object, fix it with PUT first"
                )));
            };
            map.insert("status".to_owned(), Value::String(status.to_owned()));
            validate(&state.schemes, Kind::Subscription, &name, &mut body)?;
            let doc = NewDocument {
                workspace: ws.clone(),
                kind: Kind::Subscription,
                name: name.clone(),
                tags: current.tags.clone(),
                body,
            };
            Ok((write(&state, &caller, doc, expect).await?, previous))
        }
        .await;
        if !attempts.again(&result) {
            break result?;
        }
    };
    tracing::info!(
        actor = caller.actor(),
        workspace = %ws,
        subscription = %name,
        %previous,
        status,
        reason = input.reason.as_deref().unwrap_or(""),
        "admin API: subscription {status}"
    );
    let mut v = doc_json(&written.document, &state);
    v["previous_status"] = previous;
    v["reason"] = input.reason.map_or(Value::Null, Value::String);
    let mut resp = axum::Json(v).into_response();
    resp.headers_mut()
        .insert(header::ETAG, etag(written.document.version));
    Ok(resp)
}

/// `POST /workspaces/{ws}/subscriptions/{name}/approve`
pub async fn approve_subscription(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: B,
) -> ApiResult<Response> {
    decide(state, caller, ws, name, headers, body, "approved").await
}

/// `POST /workspaces/{ws}/subscriptions/{name}/reject`
pub async fn reject_subscription(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: B,
) -> ApiResult<Response> {
    decide(state, caller, ws, name, headers, body, "rejected").await
}
