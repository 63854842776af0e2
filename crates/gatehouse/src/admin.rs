//! `gatehouse admin serve` and `gatehouse admin token create`: the admin
//! REST API (crates/admin) as a process, and the bootstrap of the first
//! token straight in the store.

use std::process::ExitCode;

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
            let hasher = crate::keys::hasher(config.as_deref())?;
            let store = gatehouse_store::open(&store)
                .await
                .map_err(|e| format!("cannot open the store: {e}"))?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            tracing::info!(%listen, backend = store.backend(), "admin API listening");
            let state = gatehouse_admin::AppState::new(store).with_key_hasher(hasher);
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
