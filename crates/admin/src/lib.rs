//! The admin REST API over the control-plane store (docs/admin-api.md):
//! CRUD of documents per workspace with ETags and `If-Match`, workspaces,
//! the audit log, admin tokens, bearer authentication with roles, and an
//! OpenAPI 3.1 document generated from the same endpoint table the router
//! is built from, and an interactive docs page over it at `/docs`.

mod auth;
mod docs;
mod entity;
mod error;
mod handlers;
mod openapi;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use gatehouse_store::Store;

pub use auth::Caller;
pub use docs::CSP as DOCS_CSP;
pub use entity::{Certificate, KINDS, Workspace};
pub use error::ApiError;
pub use handlers::parse_role;
pub use openapi::openapi;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The store every request reads and writes.
    pub store: Arc<dyn Store>,
}

/// One endpoint: the router and the OpenAPI document are both built from
/// [`ENDPOINTS`], so they cannot disagree.
pub struct Endpoint {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// The path, axum/OpenAPI style (`/workspaces/{ws}`).
    pub path: &'static str,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Whether it needs a bearer token.
    pub auth: bool,
    /// Honours `If-Match` / `If-None-Match`.
    pub preconditions: bool,
    /// Takes a JSON request body.
    pub body: bool,
    handler: fn() -> MethodRouter<AppState>,
}

const fn ep(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    preconditions: bool,
    body: bool,
    handler: fn() -> MethodRouter<AppState>,
) -> Endpoint {
    Endpoint {
        method,
        path,
        summary,
        auth: true,
        preconditions,
        body,
        handler,
    }
}

const DOCS: &str = "/workspaces/{ws}/{kind}";
const DOC: &str = "/workspaces/{ws}/{kind}/{name}";

/// Every endpoint the admin API serves.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "GET",
        path: "/openapi.json",
        summary: "This OpenAPI 3.1 document (no token needed)",
        auth: false,
        preconditions: false,
        body: false,
        handler: || get(openapi::serve_openapi),
    },
    ep(
        "GET",
        "/workspaces",
        "List workspaces",
        false,
        false,
        || get(handlers::list_workspaces),
    ),
    ep(
        "POST",
        "/workspaces",
        "Create a workspace",
        false,
        true,
        || post(handlers::create_workspace),
    ),
    ep(
        "GET",
        "/workspaces/{ws}",
        "Get a workspace",
        false,
        false,
        || get(handlers::get_workspace),
    ),
    ep(
        "PUT",
        "/workspaces/{ws}",
        "Create or replace a workspace",
        true,
        true,
        || put(handlers::put_workspace),
    ),
    ep(
        "DELETE",
        "/workspaces/{ws}",
        "Delete an empty workspace",
        true,
        false,
        || delete(handlers::delete_workspace),
    ),
    ep(
        "GET",
        DOCS,
        "List documents of a kind",
        false,
        false,
        || get(handlers::list_docs),
    ),
    ep(
        "POST",
        DOCS,
        "Create a document (409 if it exists)",
        false,
        true,
        || post(handlers::create_doc),
    ),
    ep("GET", DOC, "Get a document", false, false, || {
        get(handlers::get_doc)
    }),
    ep(
        "PUT",
        DOC,
        "Create or replace a document",
        true,
        true,
        || put(handlers::put_doc),
    ),
    ep(
        "PATCH",
        DOC,
        "Change a document with a JSON merge patch",
        true,
        true,
        || patch(handlers::patch_doc),
    ),
    ep("DELETE", DOC, "Delete a document", true, false, || {
        delete(handlers::delete_doc)
    }),
    ep(
        "GET",
        "/audit",
        "Read the audit log, newest first",
        false,
        false,
        || get(handlers::audit),
    ),
    ep("GET", "/tokens", "List admin tokens", false, false, || {
        get(handlers::list_tokens)
    }),
    ep(
        "POST",
        "/tokens",
        "Create an admin token (the secret is returned once)",
        false,
        true,
        || post(handlers::create_token),
    ),
    ep(
        "DELETE",
        "/tokens/{id}",
        "Revoke an admin token",
        false,
        false,
        || delete(handlers::revoke_token),
    ),
];

/// The admin API router.
pub fn router(store: Arc<dyn Store>) -> Router {
    let state = AppState { store };
    let mut authed = Router::new();
    // The docs page is not an API endpoint (not in ENDPOINTS or the
    // OpenAPI document); like /openapi.json it needs no token.
    let mut public = Router::new()
        .route("/docs", get(docs::page))
        .route("/docs/app.js", get(docs::script))
        .route("/docs/app.css", get(docs::style));
    for e in ENDPOINTS {
        if e.auth {
            authed = authed.route(e.path, (e.handler)());
        } else {
            public = public.route(e.path, (e.handler)());
        }
    }
    let authed = authed.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::authenticate,
    ));
    public
        .merge(authed)
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(state)
}

/// Serves the admin API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(store))
        .with_graceful_shutdown(shutdown)
        .await
}
