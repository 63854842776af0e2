//! The request handlers.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::ProblemType;
use gatehouse_store::{
    AdminToken, AuditQuery, Document, Expect, Kind, ListQuery, MAX_PAGE_SIZE, NewDocument, Outcome,
    Role, StoreError, WORKSPACE_SCOPE, Written,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::check;
use crate::entity::{self, kind_of, validate};
use crate::error::{ApiError, ApiResult};
use crate::secrets;

/// Query of the list endpoints.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    tags: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

/// Query of `GET /audit`.
#[derive(Debug, Deserialize)]
pub struct AuditParams {
    workspace: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// What `POST` / `PUT` take.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocInput {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default = "empty_object")]
    body: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// What `POST /tokens` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenInput {
    name: String,
    role: String,
    #[serde(default)]
    workspace: Option<String>,
}

type Q<T> = Result<Query<T>, QueryRejection>;
pub(crate) type B = Result<Bytes, BytesRejection>;

fn query<T>(q: Q<T>) -> ApiResult<T> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))
}

pub(crate) fn json_input<T: DeserializeOwned>(body: B) -> ApiResult<T> {
    let bytes = body.map_err(|e| {
        ApiError::new(
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ProblemType::PayloadTooLarge
            } else {
                ProblemType::BadRequest
            },
            e.body_text(),
        )
    })?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if e.inner().is_syntax() || e.inner().is_eof() || path == "." {
            ApiError::bad_request(format!("request body: {}", e.inner()))
        } else {
            ApiError::invalid(format!("{path}: {}", e.inner()))
        }
    })
}

/// Like [`json_input`], but an empty body is `T::default()`.
pub(crate) fn optional_json_input<T: DeserializeOwned + Default>(body: B) -> ApiResult<T> {
    match &body {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
        _ => json_input(body),
    }
}

fn parse_limit(limit: Option<&str>) -> ApiResult<usize> {
    match limit {
        None => Ok(100),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "limit: must be a number from 1 to {MAX_PAGE_SIZE}, got `{s}`"
            ))),
        },
    }
}

/// The JSON view of a document: its secrets redacted to fingerprints under
/// `hasher` (the node secret), see [`crate::secrets`].
pub fn doc_json(d: &Document, state: &AppState) -> Value {
    let mut body = d.body.clone();
    secrets::redact(&state.schemes, d.kind, &mut body, Some(&state.key_hasher));
    json!({
        "id": d.id,
        "workspace": d.workspace,
        "kind": d.kind,
        "name": d.name,
        "tags": d.tags,
        "version": d.version,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "body": body,
    })
}

pub(crate) fn etag(version: u64) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

pub(crate) fn doc_response(status: StatusCode, d: &Document, state: &AppState) -> Response {
    let mut resp = (status, axum::Json(doc_json(d, state))).into_response();
    resp.headers_mut().insert(header::ETAG, etag(d.version));
    resp
}

/// `If-Match` / `If-None-Match: *` as a store precondition.
pub(crate) fn precondition(headers: &HeaderMap) -> ApiResult<Expect> {
    let text = |name: header::HeaderName| {
        headers
            .get(&name)
            .map(|v: &HeaderValue| {
                v.to_str()
                    .map(str::trim)
                    .map_err(|_| ApiError::bad_request(format!("{name}: not ASCII")))
            })
            .transpose()
    };
    match (text(header::IF_MATCH)?, text(header::IF_NONE_MATCH)?) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "send either If-Match or If-None-Match, not both",
        )),
        (None, Some("*")) => Ok(Expect::Absent),
        (None, Some(other)) => Err(ApiError::bad_request(format!(
            "If-None-Match: only `*` is supported, got `{other}`"
        ))),
        (Some("*"), None) | (None, None) => Ok(Expect::Any),
        (Some(tag), None) => {
            let bare = tag.strip_prefix("W/").unwrap_or(tag);
            let bare = bare
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(bare);
            bare.parse::<u64>().map(Expect::Version).map_err(|_| {
                ApiError::new(
                    ProblemType::PreconditionFailed,
                    format!("If-Match `{tag}` is not a version ETag such as \"12\""),
                )
            })
        }
    }
}

// ---- generic document operations ----------------------------------------

async fn list(
    state: &AppState,
    workspace: String,
    kind: Kind,
    p: ListParams,
) -> ApiResult<Response> {
    let tags = p
        .tags
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let page = state
        .store
        .list(&ListQuery {
            workspace,
            kind: Some(kind),
            tags,
            after: p.after.filter(|a| !a.is_empty()),
            limit: parse_limit(p.limit.as_deref())?,
        })
        .await?;
    let data: Vec<Value> = page.items.iter().map(|d| doc_json(d, state)).collect();
    Ok(axum::Json(json!({ "data": data, "next": page.next })).into_response())
}

async fn put(
    state: &AppState,
    caller: &Caller,
    mut doc: NewDocument,
    expect: Expect,
) -> ApiResult<Response> {
    if doc.kind == Kind::Subscription {
        fill_subscription_status(state, &mut doc).await?;
    }
    let expect = keep_secrets(state, &mut doc, expect).await?;
    validate(&state.schemes, doc.kind, &doc.name, &mut doc.body)?;
    let written = write(state, caller, doc, expect).await?;
    let status = match written.outcome {
        Outcome::Created => StatusCode::CREATED,
        Outcome::Updated | Outcome::Unchanged => StatusCode::OK,
    };
    Ok(doc_response(status, &written.document, state))
}

/// Secrets are write-only: a body that leaves a secret out (or sends the
/// redacted view, `null` and a fingerprint) keeps the stored one
/// ([`secrets::restore`]). When a stored secret is used and the caller gave
/// no `If-Match`, the write is pinned to the version it was read from, so
/// a concurrent change of the secret is never silently undone (412).
async fn keep_secrets(
    state: &AppState,
    doc: &mut NewDocument,
    expect: Expect,
) -> ApiResult<Expect> {
    if !secrets::has_secrets(&state.schemes, doc.kind) {
        return Ok(expect);
    }
    let current = match state.store.get(&doc.workspace, doc.kind, &doc.name).await {
        Ok(d) => Some(d),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if expect == Expect::Absent {
        if current.is_some() {
            // What the store would answer: 409 before any body check.
            return Err(StoreError::AlreadyExists(format!(
                "{} `{}` in workspace `{}`",
                doc.kind, doc.name, doc.workspace
            ))
            .into());
        }
        secrets::restore(
            &state.schemes,
            doc.kind,
            &mut doc.body,
            None,
            &state.key_hasher,
        )?;
        return Ok(expect);
    }
    let used = secrets::restore(
        &state.schemes,
        doc.kind,
        &mut doc.body,
        current.as_ref().map(|d| &d.body),
        &state.key_hasher,
    )?;
    Ok(match (&current, expect) {
        (Some(d), Expect::Any) if used => Expect::Version(d.version),
        _ => expect,
    })
}

/// Writes a validated document: the cross-entity check on the state after
/// the write, then the store (audited with the caller as actor).
pub(crate) async fn write(
    state: &AppState,
    caller: &Caller,
    doc: NewDocument,
    expect: Expect,
) -> ApiResult<Written> {
    // Check and write under one lock: two writes that each pass against
    // the same snapshot (a delete of a service and a route to it) would
    // otherwise leave a store every node rejects and that refuses every
    // workspace's writes (docs/admin-api.md, "Cross-entity checks").
    let _serial = check::serialize(state).await;
    let checked = check::cross_check(state, check::Change::Put(&doc)).await?;
    let written = state.store.put(caller.actor(), doc, expect).await?;
    check::remember_write(state, checked, &written.document);
    Ok(written)
}

/// A subscription written without `status`: an existing one keeps its
/// status; a new one starts `pending` when any version of its API in the
/// workspace has `approval: true`, `approved` otherwise.
async fn fill_subscription_status(state: &AppState, doc: &mut NewDocument) -> ApiResult<()> {
    let Value::Object(map) = &mut doc.body else {
        return Ok(());
    };
    if map.contains_key("status") {
        return Ok(());
    }
    let existing = match state
        .store
        .get(&doc.workspace, Kind::Subscription, &doc.name)
        .await
    {
        Ok(d) => d.body.get("status").filter(|s| s.is_string()).cloned(),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let status = match existing {
        Some(s) => s,
        None => {
            let Some(api) = map.get("api").and_then(Value::as_str) else {
                // Validation names the missing field.
                return Ok(());
            };
            let pending = api_needs_approval(state, &doc.workspace, api).await?;
            Value::String(if pending { "pending" } else { "approved" }.to_owned())
        }
    };
    map.insert("status".to_owned(), status);
    Ok(())
}

/// Whether any version of API `api` in `workspace` has `approval: true`.
async fn api_needs_approval(state: &AppState, workspace: &str, api: &str) -> ApiResult<bool> {
    let mut after = None;
    loop {
        let page = state
            .store
            .list(&ListQuery {
                workspace: workspace.to_owned(),
                kind: Some(Kind::Api),
                tags: Vec::new(),
                after,
                limit: MAX_PAGE_SIZE,
            })
            .await?;
        if page.items.iter().any(|d| {
            d.body.get("name").and_then(Value::as_str) == Some(api)
                && d.body.get("approval").and_then(Value::as_bool) == Some(true)
        }) {
            return Ok(true);
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(false),
        }
    }
}

fn name_from_input(kind: Kind, input: &DocInput) -> ApiResult<String> {
    if let Some(n) = &input.name {
        return Ok(n.clone());
    }
    if kind == Kind::Api {
        let part = |f: &str| input.body.get(f).and_then(Value::as_str);
        return match (part("name"), part("version")) {
            (Some(n), Some(v)) => Ok(format!("{n}@{v}")),
            _ => Err(ApiError::invalid(
                "name: required (or give body.name and body.version: the document is `<name>@<version>`)",
            )),
        };
    }
    let field = match kind {
        Kind::Consumer => "username",
        _ => "name",
    };
    input
        .body
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::invalid("name: required (or give it as body.name)"))
}

async fn create(
    state: &AppState,
    caller: &Caller,
    workspace: String,
    kind: Kind,
    body: B,
) -> ApiResult<Response> {
    let input: DocInput = json_input(body)?;
    let name = name_from_input(kind, &input)?;
    put(
        state,
        caller,
        NewDocument {
            workspace,
            kind,
            name,
            tags: input.tags,
            body: input.body,
        },
        Expect::Absent,
    )
    .await
}

async fn replace(
    state: &AppState,
    caller: &Caller,
    workspace: String,
    kind: Kind,
    name: String,
    headers: &HeaderMap,
    body: B,
) -> ApiResult<Response> {
    let expect = precondition(headers)?;
    let input: DocInput = json_input(body)?;
    if let Some(n) = &input.name
        && *n != name
    {
        return Err(ApiError::invalid(format!(
            "name: `{n}` differs from the name in the path `{name}`"
        )));
    }
    put(
        state,
        caller,
        NewDocument {
            workspace,
            kind,
            name,
            tags: input.tags,
            body: input.body,
        },
        expect,
    )
    .await
}

/// RFC 7396 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = empty_object();
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

async fn patch(
    state: &AppState,
    caller: &Caller,
    workspace: String,
    kind: Kind,
    name: String,
    headers: &HeaderMap,
    body: B,
) -> ApiResult<Response> {
    let expect = precondition(headers)?;
    if expect == Expect::Absent {
        return Err(ApiError::bad_request(
            "PATCH cannot create: If-None-Match is not allowed",
        ));
    }
    let patch: Value = json_input(body)?;
    if let Value::Object(m) = &patch
        && let Some(k) = m.keys().find(|k| *k != "tags" && *k != "body")
    {
        return Err(ApiError::invalid(format!(
            "{k}: unknown field, expected `tags` or `body`"
        )));
    }
    let current = state.store.get(&workspace, kind, &name).await?;
    let mut doc = json!({ "tags": current.tags, "body": current.body });
    merge_patch(&mut doc, &patch);
    let input: DocInput = serde_path_to_error::deserialize(&doc)
        .map_err(|e| ApiError::invalid(format!("{}: {}", e.path(), e.inner())))?;
    // Without If-Match, the patch applies to the version it was merged into.
    let expect = match expect {
        Expect::Any => Expect::Version(current.version),
        other => other,
    };
    put(
        state,
        caller,
        NewDocument {
            workspace,
            kind,
            name,
            tags: input.tags,
            body: input.body,
        },
        expect,
    )
    .await
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    workspace: &str,
    kind: Kind,
    name: &str,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let expect = precondition(headers)?;
    if expect == Expect::Absent {
        return Err(ApiError::bad_request("DELETE does not take If-None-Match"));
    }
    let _serial = check::serialize(state).await;
    check::cross_check(
        state,
        check::Change::Delete {
            workspace,
            kind,
            name,
        },
    )
    .await?;
    state
        .store
        .delete(caller.actor(), workspace, kind, name, expect)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- /workspaces/{ws}/{kind} -------------------------------------------

/// `GET /workspaces/{ws}/{kind}`
pub async fn list_docs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, kind)): Path<(String, String)>,
    q: Q<ListParams>,
) -> ApiResult<Response> {
    let kind = kind_of(&kind)?;
    caller.read_docs(&ws)?;
    list(&state, ws, kind, query(q)?).await
}

/// `POST /workspaces/{ws}/{kind}`
pub async fn create_doc(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, kind)): Path<(String, String)>,
    body: B,
) -> ApiResult<Response> {
    let kind = kind_of(&kind)?;
    caller.write_docs(&ws)?;
    create(&state, &caller, ws, kind, body).await
}

/// `GET /workspaces/{ws}/{kind}/{name}`
pub async fn get_doc(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, kind, name)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let kind = kind_of(&kind)?;
    caller.read_docs(&ws)?;
    let d = state.store.get(&ws, kind, &name).await?;
    Ok(doc_response(StatusCode::OK, &d, &state))
}

/// `PUT /workspaces/{ws}/{kind}/{name}`
pub async fn put_doc(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, kind, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: B,
) -> ApiResult<Response> {
    let kind = kind_of(&kind)?;
    caller.write_docs(&ws)?;
    replace(&state, &caller, ws, kind, name, &headers, body).await
}

/// `PATCH /workspaces/{ws}/{kind}/{name}`
pub async fn patch_doc(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, kind, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: B,
) -> ApiResult<Response> {
    let kind = kind_of(&kind)?;
    caller.write_docs(&ws)?;
    patch(&state, &caller, ws, kind, name, &headers, body).await
}

/// `DELETE /workspaces/{ws}/{kind}/{name}`
pub async fn delete_doc(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, kind, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let kind = kind_of(&kind)?;
    caller.write_docs(&ws)?;
    delete(&state, &caller, &ws, kind, &name, &headers).await
}

// ---- /workspaces ---------------------------------------------------------

/// `GET /workspaces`
pub async fn list_workspaces(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: Q<ListParams>,
) -> ApiResult<Response> {
    caller.list_workspaces()?;
    list(
        &state,
        WORKSPACE_SCOPE.to_owned(),
        Kind::Workspace,
        query(q)?,
    )
    .await
}

/// `POST /workspaces`
pub async fn create_workspace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: B,
) -> ApiResult<Response> {
    caller.write_workspaces()?;
    create(
        &state,
        &caller,
        WORKSPACE_SCOPE.to_owned(),
        Kind::Workspace,
        body,
    )
    .await
}

/// `GET /workspaces/{ws}`
pub async fn get_workspace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
) -> ApiResult<Response> {
    caller.read_docs(&ws)?;
    let d = state
        .store
        .get(WORKSPACE_SCOPE, Kind::Workspace, &ws)
        .await?;
    Ok(doc_response(StatusCode::OK, &d, &state))
}

/// `PUT /workspaces/{ws}`
pub async fn put_workspace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
    headers: HeaderMap,
    body: B,
) -> ApiResult<Response> {
    caller.write_workspaces()?;
    replace(
        &state,
        &caller,
        WORKSPACE_SCOPE.to_owned(),
        Kind::Workspace,
        ws,
        &headers,
        body,
    )
    .await
}

/// `DELETE /workspaces/{ws}`
pub async fn delete_workspace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.write_workspaces()?;
    delete(
        &state,
        &caller,
        WORKSPACE_SCOPE,
        Kind::Workspace,
        &ws,
        &headers,
    )
    .await
}

// ---- /audit ----------------------------------------------------------------

/// `GET /audit`
pub async fn audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: Q<AuditParams>,
) -> ApiResult<Response> {
    let p = query(q)?;
    let mut workspace = p.workspace.filter(|w| !w.is_empty());
    if let Some(own) = caller.audit_scope()? {
        match &workspace {
            Some(w) if w != own => {
                return Err(ApiError::forbidden(format!(
                    "token `{}` may only read the audit log of workspace `{own}`",
                    caller.actor()
                )));
            }
            _ => workspace = Some(own.to_owned()),
        }
    }
    // Accept the plural path names too (`services` for `service`).
    let kind = p.kind.filter(|k| !k.is_empty()).map(|k| {
        entity::KINDS
            .iter()
            .find(|(s, _)| *s == k)
            .map_or(k, |(_, kind)| kind.as_str().to_owned())
    });
    let before_seq = p
        .before
        .filter(|b| !b.is_empty())
        .map(|b| {
            b.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("before: must be a sequence number, got `{b}`"))
            })
        })
        .transpose()?;
    let limit = parse_limit(p.limit.as_deref())?;
    let entries = state
        .store
        .audit(&AuditQuery {
            workspace,
            kind,
            name: p.name.filter(|n| !n.is_empty()),
            before_seq,
            limit,
        })
        .await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq.to_string()))
        .flatten();
    // Redacted when written (see `secrets::audit_redactor`) and again here,
    // for entries written before secrets were redacted.
    let mut entries = entries;
    for e in &mut entries {
        for v in [&mut e.before, &mut e.after].into_iter().flatten() {
            secrets::redact_audit_value(&state.schemes, &e.kind, v, Some(&state.key_hasher));
        }
    }
    Ok(axum::Json(json!({ "data": entries, "next": next })).into_response())
}

// ---- /tokens ---------------------------------------------------------------

/// The JSON view of a token (never its secret).
pub fn token_json(t: &AdminToken) -> Value {
    let (role, workspace) = match &t.role {
        Role::SuperAdmin => ("super-admin", None),
        Role::WorkspaceAdmin { workspace } => ("workspace-admin", Some(workspace.as_str())),
        Role::ReadOnly => ("read-only", None),
        Role::Auditor => ("auditor", None),
    };
    json!({
        "id": t.id,
        "name": t.name,
        "role": role,
        "workspace": workspace,
        "created_at": t.created_at,
        "created_by": t.created_by,
        "revoked_at": t.revoked_at,
    })
}

/// A role from its name and, for `workspace-admin`, the workspace.
pub fn parse_role(role: &str, workspace: Option<String>) -> Result<Role, String> {
    match (role, workspace) {
        ("super-admin", None) => Ok(Role::SuperAdmin),
        ("read-only", None) => Ok(Role::ReadOnly),
        ("auditor", None) => Ok(Role::Auditor),
        ("workspace-admin", Some(workspace)) => Ok(Role::WorkspaceAdmin { workspace }),
        ("workspace-admin", None) => Err("workspace: required for the workspace-admin role".into()),
        ("super-admin" | "read-only" | "auditor", Some(_)) => Err(format!(
            "workspace: only the workspace-admin role takes one, not {role}"
        )),
        (other, _) => Err(format!(
            "role: unknown role `{other}` (super-admin, workspace-admin, read-only, auditor)"
        )),
    }
}

/// `POST /tokens`
pub async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: B,
) -> ApiResult<Response> {
    caller.manage_tokens()?;
    let input: TokenInput = json_input(body)?;
    let role = parse_role(&input.role, input.workspace).map_err(ApiError::invalid)?;
    if let Role::WorkspaceAdmin { workspace } = &role {
        state
            .store
            .get(WORKSPACE_SCOPE, Kind::Workspace, workspace)
            .await
            .map_err(|_| ApiError::invalid(format!("workspace: no workspace `{workspace}`")))?;
    }
    let issued = state
        .store
        .create_token(caller.actor(), &input.name, role)
        .await?;
    let mut v = token_json(&issued.token);
    v["token"] = Value::String(issued.plaintext);
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

/// `GET /tokens`
pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    caller.manage_tokens()?;
    let tokens = state.store.list_tokens().await?;
    let data: Vec<Value> = tokens.iter().map(token_json).collect();
    Ok(axum::Json(json!({ "data": data })).into_response())
}

/// `DELETE /tokens/{id}`
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.manage_tokens()?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found(format!("token {id}")))?;
    let t = state.store.revoke_token(caller.actor(), id).await?;
    Ok(axum::Json(token_json(&t)).into_response())
}

/// Fallback: 404 problem+json.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint (see GET /openapi.json)")
}

/// 405 problem+json.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ProblemType::MethodNotAllowed,
        "method not allowed on this endpoint (see GET /openapi.json)",
    )
}
