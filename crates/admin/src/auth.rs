//! Bearer-token authentication and the role checks.
//!
//! | role              | documents                    | workspaces          | audit            | tokens |
//! |-------------------|------------------------------|---------------------|------------------|--------|
//! | `super-admin`     | read, write (all)            | read, write         | read             | all    |
//! | `workspace-admin` | read, write (its workspace)  | read its own        | its workspace    | none   |
//! | `read-only`       | read (all)                   | read                | read             | none   |
//! | `auditor`         | none                         | none                | read             | none   |

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use gatehouse_store::{AdminToken, Role};
use http::header;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The authenticated caller, put into the request extensions.
#[derive(Debug, Clone)]
pub struct Caller(pub AdminToken);

impl Caller {
    /// The actor recorded in the audit log: the token's name.
    pub fn actor(&self) -> &str {
        &self.0.name
    }

    fn role(&self) -> &Role {
        &self.0.role
    }

    /// May read the documents of `workspace`.
    pub fn read_docs(&self, workspace: &str) -> ApiResult<()> {
        match self.role() {
            Role::SuperAdmin | Role::ReadOnly => Ok(()),
            Role::WorkspaceAdmin { workspace: own } if own == workspace => Ok(()),
            _ => Err(self.deny(&format!("read documents in workspace `{workspace}`"))),
        }
    }

    /// May change the documents of `workspace`.
    pub fn write_docs(&self, workspace: &str) -> ApiResult<()> {
        match self.role() {
            Role::SuperAdmin => Ok(()),
            Role::WorkspaceAdmin { workspace: own } if own == workspace => Ok(()),
            _ => Err(self.deny(&format!("change documents in workspace `{workspace}`"))),
        }
    }

    /// May list workspaces (all of them).
    pub fn list_workspaces(&self) -> ApiResult<()> {
        match self.role() {
            Role::SuperAdmin | Role::ReadOnly => Ok(()),
            _ => Err(self.deny("list workspaces")),
        }
    }

    /// May create, replace or delete workspaces.
    pub fn write_workspaces(&self) -> ApiResult<()> {
        match self.role() {
            Role::SuperAdmin => Ok(()),
            _ => Err(self.deny("change workspaces")),
        }
    }

    /// May read the audit log; `Some(ws)` when only that workspace's part.
    pub fn audit_scope(&self) -> ApiResult<Option<&str>> {
        match self.role() {
            Role::SuperAdmin | Role::ReadOnly | Role::Auditor => Ok(None),
            Role::WorkspaceAdmin { workspace } => Ok(Some(workspace)),
        }
    }

    /// May manage admin tokens.
    pub fn manage_tokens(&self) -> ApiResult<()> {
        match self.role() {
            Role::SuperAdmin => Ok(()),
            _ => Err(self.deny("manage admin tokens")),
        }
    }

    fn deny(&self, what: &str) -> ApiError {
        let role = match self.role() {
            Role::SuperAdmin => "super-admin".to_owned(),
            Role::WorkspaceAdmin { workspace } => format!("workspace-admin of `{workspace}`"),
            Role::ReadOnly => "read-only".to_owned(),
            Role::Auditor => "auditor".to_owned(),
        };
        ApiError::forbidden(format!("token `{}` ({role}) may not {what}", self.0.name))
    }
}

/// Middleware: resolves `Authorization: Bearer <token>` into a [`Caller`].
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>`"))?
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header is not `Bearer <token>`")
        })?;
    let token = state
        .store
        .lookup_token(&presented)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
    req.extensions_mut().insert(Caller(token));
    Ok(next.run(req).await)
}
