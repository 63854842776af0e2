//! The admin REST API over the control-plane store (docs/admin-api.md):
//! CRUD of documents per workspace with ETags and `If-Match`, workspaces,
//! app API keys (created, rotated and revoked here, the plaintext shown
//! once), subscription approval, the audit log, admin tokens, bearer
//! authentication with roles, an optional cross-entity [`Validator`] run
//! before every write, and an OpenAPI 3.1 document generated from the same
//! endpoint table the router is built from, and an interactive docs page
//! over it at `/docs`.

mod apps;
mod auth;
mod check;
mod docs;
mod entity;
mod error;
mod handlers;
mod openapi;
pub mod secrets;
mod serve;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use gatehouse_core::Schemes;
use gatehouse_core::keys::KeyHasher;
use gatehouse_store::{Document, Store};

pub use auth::Caller;
pub use docs::CSP as DOCS_CSP;
pub use entity::{Certificate, KINDS, Workspace};
pub use error::ApiError;
pub use handlers::parse_role;
pub use openapi::{openapi, openapi_for};
pub use serve::ServeLimits;

/// Cross-entity checks run before every document write: `documents` is
/// the whole store as it would be after the write (a snapshot read just
/// before it, with the changed document replaced, added or removed).
/// `Err` lists what is wrong, one message each; the write is then refused
/// with `422 invalid-entity` and nothing changes. In the candidate, the
/// changed document carries version `revision + 1` and, when new, a nil
/// id: placeholders, not what the store will assign. It runs on the
/// blocking thread pool. See docs/admin-api.md.
pub trait Validator: Send + Sync + 'static {
    /// Checks the candidate state of the store.
    fn check(&self, documents: &[Document]) -> Result<(), Vec<String>>;

    /// Checks the candidate state of a write into `workspace`, with
    /// messages its caller may see: nothing that names or reveals another
    /// workspace's entities (docs/security.md, "Tenant isolation").
    /// Defaults to [`Validator::check`].
    fn check_in(&self, documents: &[Document], workspace: &str) -> Result<(), Vec<String>> {
        let _ = workspace;
        self.check(documents)
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The store every request reads and writes.
    pub store: Arc<dyn Store>,
    /// Hashes the app API keys the key endpoints create; must use the
    /// nodes' `server.key_hash_secret`.
    pub key_hasher: KeyHasher,
    /// Cross-entity checks before every write; `None`: only each body's
    /// own validation.
    pub validator: Option<Arc<dyn Validator>>,
    /// The credential schemes credential and consumer documents are
    /// checked, redacted and described with (the plugin registry's,
    /// `gatehouse_plugins::Registry::schemes`).
    pub schemes: Schemes,
    /// The last snapshot the cross-entity check read, reused while the
    /// store's revision has not moved (a cheap read) instead of reading
    /// every document again on each write.
    snapshot_cache: Arc<std::sync::Mutex<Option<Arc<gatehouse_store::StoreSnapshot>>>>,
    /// Held from the cross-entity check of a write to its commit, so two
    /// writes through this API never both pass a check against the same
    /// snapshot (see `check::cross_check`).
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

impl AppState {
    /// State over `store`, hashing keys with the built-in (public) secret,
    /// without a validator, with the built-in plugins' credential schemes.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            key_hasher: KeyHasher::default(),
            validator: None,
            schemes: gatehouse_plugins::registry().schemes().clone(),
            snapshot_cache: Arc::default(),
            write_lock: Arc::default(),
        }
    }

    /// Hashes new app keys with `hasher`.
    #[must_use]
    pub fn with_key_hasher(mut self, hasher: KeyHasher) -> Self {
        self.key_hasher = hasher;
        self
    }

    /// Accepts, checks and redacts the credentials of these schemes (a
    /// registry's: `registry.schemes().clone()`) instead of the built-in
    /// ones. Pair it with a validator that checks with the same registry.
    #[must_use]
    pub fn with_schemes(mut self, schemes: Schemes) -> Self {
        self.schemes = schemes;
        self
    }

    /// Runs `validator` before every write.
    #[must_use]
    pub fn with_validator(mut self, validator: Arc<dyn Validator>) -> Self {
        self.validator = Some(validator);
        self
    }
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
        "POST",
        "/workspaces/{ws}/apps/{app}/keys",
        "Create an API key of an app document (the key is returned once); optionally rotate the others out",
        true,
        true,
        || post(apps::create_app_key),
    ),
    ep(
        "DELETE",
        "/workspaces/{ws}/apps/{app}/keys/{hash}",
        "Revoke an API key of an app document at once",
        true,
        false,
        || delete(apps::revoke_app_key),
    ),
    ep(
        "POST",
        "/workspaces/{ws}/subscriptions/{name}/approve",
        "Approve a subscription",
        true,
        true,
        || post(apps::approve_subscription),
    ),
    ep(
        "POST",
        "/workspaces/{ws}/subscriptions/{name}/reject",
        "Reject a subscription",
        true,
        true,
        || post(apps::reject_subscription),
    ),
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

/// The admin API router over `store`, with [`AppState::new`] defaults.
pub fn router(store: Arc<dyn Store>) -> Router {
    router_with(AppState::new(store))
}

/// The admin API router with the given state.
pub fn router_with(state: AppState) -> Router {
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

/// Serves the admin API over `store` ([`AppState::new`] defaults) on
/// `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, AppState::new(store), shutdown).await
}

/// Serves the admin API with the given state on `listener` until
/// `shutdown` resolves, under the default [`ServeLimits`].
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_limits(listener, state, ServeLimits::default(), shutdown).await
}

/// The admin API served in a background task on a free loopback port,
/// until this value is dropped (then it drains like [`serve_with`]): for
/// tests and programs that embed the API next to their own work.
#[derive(Debug)]
pub struct Background {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Background {
    /// Binds `127.0.0.1:0` and starts serving `state` there.
    pub async fn start(state: AppState) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = serve_with(listener, state, shutdown).await {
                tracing::warn!(error = %e, "background admin API stopped");
            }
        });
        Ok(Self { base, _stop: stop })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }
}

/// Like [`serve_with`] under `limits`: a header-read timeout (also the
/// keep-alive idle limit) and a connection cap. After `shutdown` resolves
/// no connection is accepted and open ones finish their requests.
pub async fn serve_with_limits(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve::run(listener, router_with(state), limits, shutdown).await
}
