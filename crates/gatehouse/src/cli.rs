//! Command-line interface: `run`, `validate`, `schema`, `keys`, `admin`,
//! `config`. Only the top level lives here (global flags, logging, the
//! dispatch); each command's arguments live in its module under
//! `commands/`, and no module imports this one.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands::{admin, config, keys, run, schema, validate};

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
    Run(run::RunArgs),
    /// Check a configuration file and exit: 0 if valid, 1 with every error
    /// (file:line:column: field: message) if not.
    Validate(validate::ValidateArgs),
    /// Print the JSON Schema of the configuration file.
    Schema,
    /// Create API keys for apps and compute their hashes.
    Keys {
        /// What to do with keys.
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Declarative sync of a workspace with a configuration file (GitOps):
    /// dump, diff, apply (see docs/gitops.md).
    Config {
        /// What to do.
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
    /// The admin REST API over the control-plane store, and bootstrap
    /// tokens (see docs/admin-api.md).
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
}

/// Entry point of the binary. A command's error is printed with its causes
/// (`context: cause: root cause`) and exits 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_format);
    let result = match cli.command {
        Command::Run(args) => run::exec(args),
        Command::Validate(args) => validate::exec(args),
        Command::Schema => schema::exec(),
        Command::Keys { command } => keys::exec(command),
        Command::Admin { command } => admin::exec(command),
        // `config` exits 2 on errors: it prints them itself.
        Command::Config { command } => Ok(config::exec(command)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Colour codes only on a terminal, and not when `NO_COLOR` is set to
/// anything non-empty (no-color.org): a file or a pipe gets plain text.
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let cases: [(bool, Option<&OsStr>, bool); 5] = [
            (true, None, true),
            (true, Some(OsStr::new("")), true),
            (true, Some(OsStr::new("1")), false),
            (false, None, false),
            (false, Some(OsStr::new("1")), false),
        ];
        for (terminal, no_color, want) in cases {
            assert_eq!(colour(terminal, no_color), want, "{terminal} {no_color:?}");
        }
    }
}
