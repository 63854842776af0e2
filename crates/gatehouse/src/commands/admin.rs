//! `gatehouse admin serve` and `gatehouse admin token create`: the admin
//! REST API (crates/admin) as a process, and the bootstrap of the first
//! token straight in the store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::Subcommand;

/// The actor recorded for tokens created from the command line.
const CLI_ACTOR: &str = "cli";

/// `gatehouse admin ...`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Serve the admin API until SIGINT/SIGTERM.
    Serve {
        /// The store: `postgres://user@host:port/db` or `sqlite:///path.db`.
        #[arg(long, env = "GATEHOUSE_STORE")]
        store: String,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8001")]
        listen: SocketAddr,
        /// Configuration file whose `server.key_hash_secret` hashes the app
        /// keys the API creates (must be the nodes' secret). Without it,
        /// the built-in secret is used (with a warning).
        #[arg(short, long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Admin tokens.
    Token {
        /// What to do with tokens.
        #[command(subcommand)]
        command: AdminTokenCommand,
    },
}

/// `gatehouse admin token ...`.
#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Create a token directly in the store (no token needed: this is how
    /// the first super-admin token is made). Prints the secret once.
    Create {
        /// The store: `postgres://user@host:port/db` or `sqlite:///path.db`.
        #[arg(long, env = "GATEHOUSE_STORE")]
        store: String,
        /// The token's name (the actor in the audit log).
        #[arg(long)]
        name: String,
        /// `super-admin`, `workspace-admin`, `read-only` or `auditor`.
        #[arg(long)]
        role: String,
        /// The workspace of a `workspace-admin` token.
        #[arg(long)]
        workspace: Option<String>,
    },
}

/// Runs an `admin` subcommand.
pub fn exec(command: AdminCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gatehouse-admin")
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(run(command))?;
    Ok(ExitCode::SUCCESS)
}

async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Serve {
            store,
            listen,
            config,
        } => {
            let settings = match config.as_deref() {
                Some(path) => crate::load_and_check(path)?.config,
                None => gatehouse_config::Config::default(),
            };
            let store =
                gatehouse_store::open_with(&store, Some(crate::admin::audit_redactor(&settings)))
                    .await
                    .context("cannot open the store")?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            tracing::info!(%listen, backend = store.backend(), "admin API listening");
            let state = crate::admin::state(store, &settings, gatehouse_plugins::registry());
            gatehouse_admin::serve_with(listener, state, shutdown_signal())
                .await
                .context("admin API")
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
            let role = gatehouse_admin::parse_role(&role, workspace).map_err(|e| anyhow!(e))?;
            let store = gatehouse_store::open(&store)
                .await
                .context("cannot open the store")?;
            let issued = store
                .create_token(CLI_ACTOR, &name, role)
                .await
                .context("cannot create the token")?;
            eprintln!(
                "created token `{}` (id {}); the secret is shown only now:",
                issued.token.name, issued.token.id
            );
            println!("{}", issued.plaintext);
            Ok(())
        }
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
