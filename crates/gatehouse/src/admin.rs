//! `gatehouse admin serve` and `gatehouse admin token create`: the admin
//! REST API (crates/admin) as a process, and the bootstrap of the first
//! token straight in the store.

use std::process::ExitCode;
use std::sync::Arc;

use gatehouse_config::Config;
use gatehouse_core::keys::KeyHasher;
use gatehouse_store::{Document, Store};

use crate::cli::{AdminCommand, AdminTokenCommand};

/// The actor recorded for tokens created from the command line.
const CLI_ACTOR: &str = "cli";

/// Runs an `admin` subcommand.
pub fn main(command: AdminCommand) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gatehouse-admin")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: AdminCommand) -> Result<(), String> {
    match command {
        AdminCommand::Serve {
            store,
            listen,
            config,
        } => {
            let settings = match config.as_deref() {
                Some(path) => {
                    crate::cli::load_and_check(path)
                        .map_err(|e| e.to_string())?
                        .config
                }
                None => gatehouse_config::Config::default(),
            };
            let store = gatehouse_store::open_with(&store, Some(audit_redactor(&settings)))
                .await
                .map_err(|e| format!("cannot open the store: {e}"))?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            tracing::info!(%listen, backend = store.backend(), "admin API listening");
            let state = state(store, &settings, gatehouse_plugins::registry());
            gatehouse_admin::serve_with(listener, state, shutdown_signal())
                .await
                .map_err(|e| format!("admin API: {e}"))
        }
        AdminCommand::Token {
            command:
                AdminTokenCommand::Create {
                    store,
                    name,
                    role,
                    workspace,
                },
        } => {
            let role = gatehouse_admin::parse_role(&role, workspace)?;
            let store = gatehouse_store::open(&store)
                .await
                .map_err(|e| format!("cannot open the store: {e}"))?;
            let issued = store
                .create_token(CLI_ACTOR, &name, role)
                .await
                .map_err(|e| format!("cannot create the token: {e}"))?;
            eprintln!(
                "created token `{}` (id {}); the secret is shown only now:",
                issued.token.name, issued.token.id
            );
            println!("{}", issued.plaintext);
            Ok(())
        }
    }
}

/// The admin API's state for a node with these settings: app keys hashed
/// under `server.key_hash_secret` (the built-in secret, with a warning, when
/// it is unset) and every write checked by [`StoreValidator`].
pub fn state(
    store: Arc<dyn Store>,
    settings: &Config,
    registry: gatehouse_core::Registry,
) -> gatehouse_admin::AppState {
    let hasher = match &settings.server.key_hash_secret {
        Some(secret) => KeyHasher::new(secret.as_bytes()),
        None => {
            tracing::warn!(
                "no server.key_hash_secret: the admin API hashes app keys with the built-in secret, which is public"
            );
            KeyHasher::default()
        }
    };
    gatehouse_admin::AppState::new(store)
        .with_key_hasher(hasher)
        .with_validator(Arc::new(StoreValidator {
            settings: settings_only(settings),
            registry,
        }))
}

/// What the store writes into its audit log instead of secrets:
/// fingerprints under the node secret (`server.key_hash_secret`), the same
/// the admin API shows (docs/security.md, "Secrets").
pub fn audit_redactor(settings: &Config) -> gatehouse_store::AuditRedactor {
    let hasher = settings
        .server
        .key_hash_secret
        .as_deref()
        .map_or_else(KeyHasher::default, |s| KeyHasher::new(s.as_bytes()));
    gatehouse_admin::secrets::audit_redactor(
        gatehouse_plugins::registry().schemes().clone(),
        Some(hasher),
    )
}

/// Only the node settings of a config: what the store's documents are
/// assembled with.
fn settings_only(settings: &Config) -> Config {
    Config {
        server: settings.server.clone(),
        listeners: settings.listeners.clone(),
        ..Config::default()
    }
}

/// The admin API's cross-entity check: the store as it would be after a
/// write must pass what `gatehouse validate` checks (references, route
/// conflicts across workspaces, plugin configs, the compile), with the
/// messages a node would log. See docs/admin-api.md.
pub struct StoreValidator {
    settings: Config,
    registry: gatehouse_core::Registry,
}

impl gatehouse_admin::Validator for StoreValidator {
    fn check(&self, documents: &[Document]) -> Result<(), Vec<String>> {
        crate::certs::check_all(documents)?;
        gatehouse_control::check_documents(documents, &self.settings, &self.registry).map(drop)
    }

    fn check_in(&self, documents: &[Document], workspace: &str) -> Result<(), Vec<String>> {
        // Certificate bodies of other workspaces are not the writer's to
        // see (docs/security.md, "Tenant isolation").
        let (own, other): (Vec<&Document>, Vec<&Document>) = documents
            .iter()
            .filter(|d| d.kind == gatehouse_store::Kind::Certificate)
            .partition(|d| d.workspace == workspace);
        let mut errors: Vec<String> = own
            .into_iter()
            .filter_map(|d| crate::certs::check(d).err())
            .collect();
        if errors.is_empty() && other.iter().any(|d| crate::certs::check(d).is_err()) {
            errors.push(format!(
                "the store has problems outside workspace `{workspace}`, which only a token for every workspace may see; no change is accepted until they are fixed"
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        gatehouse_control::check_documents_for(
            documents,
            &self.settings,
            &self.registry,
            gatehouse_control::Viewer::Workspace(workspace),
        )
        .map(drop)
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("admin API shutting down");
}
