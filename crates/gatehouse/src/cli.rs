//! Command-line interface: `run`, `validate`, `schema`, `keys`, `admin`,
//! `config`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use gatehouse_config::{ConfigErrors, Loaded};

/// Gatehouse: an API gateway and AI gateway in one binary.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about, long_about = None)]
pub struct Cli {
    /// Log level or filter (RUST_LOG syntax), e.g. `info` or `gatehouse=debug`.
    #[arg(long, global = true, env = "GATEHOUSE_LOG", default_value = "info")]
    pub log: String,
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Run {
        /// Configuration file (YAML). Without it, the embedded demo
        /// configuration is served. With `--store`, it may only hold node
        /// settings (`server`, `listeners`); without it a store-backed node
        /// listens where the demo configuration does (127.0.0.1:8080).
        #[arg(short, long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
        /// Serve the configuration of this control-plane store
        /// (`postgres://user@host:port/db` or `sqlite:///path.db`) and
        /// follow its changes (see docs/cluster.md).
        #[arg(long, env = "GATEHOUSE_STORE")]
        store: Option<String>,
        /// With `--store`: the proxy and the admin API (`both`), the proxy
        /// only (`data-plane`) or the admin API only (`control-plane`).
        #[arg(long, value_enum, default_value_t = crate::node::Role::Both, requires = "store")]
        role: crate::node::Role,
        /// With `--store`: where the admin API listens (roles `both` and
        /// `control-plane`).
        #[arg(long, default_value = "127.0.0.1:8001", requires = "store")]
        admin_listen: std::net::SocketAddr,
        /// With `--store`: the node's local data directory.
        #[arg(long, default_value = "./gatehouse-data", requires = "store")]
        data_dir: PathBuf,
        /// With `--store`: the last good store snapshot, written after
        /// every successful load and read at start when the store is
        /// unreachable. Default: `<data dir>/snapshot.json`.
        #[arg(long, requires = "store")]
        snapshot_file: Option<PathBuf>,
        /// With `--store`: how often the store's revision is compared with
        /// the one served (a safety net for missed notifications).
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, requires = "store")]
        resync_interval: std::time::Duration,
    },
    /// Check a configuration file and exit: 0 if valid, 1 with every error
    /// (file:line:column: field: message) if not.
    Validate {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the JSON Schema of the configuration file.
    Schema,
    /// Create API keys for apps and compute their hashes.
    Keys {
        /// What to do with keys.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Declarative sync of a workspace with a configuration file (GitOps):
    /// dump, diff, apply (see docs/gitops.md).
    Config {
        /// What to do.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The admin REST API over the control-plane store, and bootstrap
    /// tokens (see docs/admin-api.md).
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// `gatehouse config ...`. Exit codes: 0 success (`diff`: no changes),
/// 1 `diff` found changes, 2 error.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a workspace of the store as a configuration file (YAML).
    Dump {
        /// The store: `postgres://user@host:port/db` or `sqlite:///path.db`.
        #[arg(long, env = "GATEHOUSE_STORE")]
        store: String,
        /// The workspace.
        #[arg(long, default_value = gatehouse_store::DEFAULT_WORKSPACE)]
        workspace: String,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Show what `apply` would change: exit 0 if nothing, 1 if something.
    Diff {
        /// The configuration file.
        file: PathBuf,
        /// The store: `postgres://user@host:port/db` or `sqlite:///path.db`.
        #[arg(long, env = "GATEHOUSE_STORE")]
        store: String,
        /// The workspace.
        #[arg(long, default_value = gatehouse_store::DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// Make a workspace of the store equal to a configuration file, in one
    /// transaction.
    Apply {
        /// The configuration file.
        file: PathBuf,
        /// The store: `postgres://user@host:port/db` or `sqlite:///path.db`.
        #[arg(long, env = "GATEHOUSE_STORE")]
        store: String,
        /// The workspace.
        #[arg(long, default_value = gatehouse_store::DEFAULT_WORKSPACE)]
        workspace: String,
    },
}

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
        listen: std::net::SocketAddr,
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

/// `gatehouse keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random API key (32 bytes, base64url) and its hash. The
    /// key is shown only here: hand it to the developer and put the hash in
    /// the app's `keys`.
    New {
        /// Configuration file whose `server.key_hash_secret` hashes the key.
        /// Without it, the built-in secret is used (with a warning).
        #[arg(short, long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the hash (`k1:<hex>`) of an existing API key.
    Hash {
        /// The key; `-` reads it from the first line of stdin (keeps it out
        /// of the shell history and the process list). Keys are base64url
        /// and may start with `-`, so the argument takes hyphen values.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// Configuration file whose `server.key_hash_secret` hashes the key.
        /// Without it, the built-in secret is used (with a warning).
        #[arg(short, long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_format);
    match cli.command {
        Command::Run {
            config,
            store: Some(store),
            role,
            admin_listen,
            data_dir,
            snapshot_file,
            resync_interval,
        } => crate::node::run(crate::node::NodeOptions {
            store,
            config,
            role,
            admin_listen,
            snapshot_file: snapshot_file.unwrap_or_else(|| data_dir.join("snapshot.json")),
            certs_dir: data_dir.join("certs"),
            resync_interval,
            registry: gatehouse_plugins::registry(),
        }),
        Command::Run { config, .. } => run(config),
        Command::Validate { file } => match load_and_check(&file) {
            Ok(loaded) => {
                println!(
                    "{}: ok ({} services, {} routes, {} plugins, {} consumers)",
                    file.display(),
                    loaded.config.services.len(),
                    loaded.config.routes.len(),
                    loaded.config.plugins.len(),
                    loaded.config.consumers.len()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Keys { command } => crate::keys::main(command),
        Command::Admin { command } => crate::admin::main(command),
        Command::Config { command } => crate::sync::main(command),
        Command::Schema => {
            let schema = crate::schema::full_schema();
            match serde_json::to_string_pretty(&schema) {
                Ok(s) => {
                    println!("{s}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cannot render schema: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Parses, validates and compiles (without binding anything).
pub fn load_and_check(path: &std::path::Path) -> Result<Loaded, ConfigErrors> {
    let loaded = gatehouse_config::load_file(path)?;
    gatehouse_proxy::check(&loaded, &gatehouse_plugins::registry())?;
    Ok(loaded)
}

/// The gateway's runtime for `server.worker_threads`. One worker thread
/// means one event loop, like one nginx worker: a current-thread runtime
/// skips the work-stealing machinery entirely; 0 means one per core.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b
    };
    rt.enable_all().thread_name("gatehouse-worker").build()
}

fn run(config: Option<PathBuf>) -> ExitCode {
    // Fingerprint the file before reading it: if it changes in between, the
    // watcher sees a difference and reloads once more (harmless), instead
    // of missing a change made right after start.
    let fingerprint = config.as_deref().and_then(crate::reload::fingerprint);
    let loaded = match &config {
        Some(path) => load_and_check(path),
        None => gatehouse_config::parse_str(crate::DEMO_CONFIG, "<embedded demo config>")
            .and_then(|l| gatehouse_proxy::check(&l, &gatehouse_plugins::registry()).map(|()| l)),
    };
    let loaded = match loaded {
        Ok(l) => l,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match runtime(loaded.config.server.worker_threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let signals = match crate::reload::Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let gateway =
            match gatehouse_proxy::Gateway::start(&loaded, gatehouse_plugins::registry()).await {
                Ok(g) => g,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            config = config
                .as_ref()
                .map_or("<embedded demo config>".to_string(), |p| p
                    .display()
                    .to_string()),
            "gatehouse started"
        );
        crate::reload::serve_until_signal(gateway, signals, config, fingerprint, &loaded).await
    })
}
