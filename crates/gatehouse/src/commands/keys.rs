//! `gatehouse keys new` and `gatehouse keys hash`: how operators create app
//! API keys. The plaintext key is printed once and never stored; the config
//! holds its hash under the node secret (`server.key_hash_secret`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use gatehouse_core::KeyHasher;
use gatehouse_core::keys::DEFAULT_KEY_HASH_SECRET;

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

/// Runs a `keys` subcommand.
pub fn exec(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::New { config } => {
            let hasher = hasher(config.as_deref())?;
            let key = gatehouse_core::keys::generate_key()?;
            println!("key:  {key}");
            println!("hash: {}", hasher.hash(&key));
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Hash { key, config } => {
            let hasher = hasher(config.as_deref())?;
            let key = if key == "-" {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("cannot read the key from stdin")?;
                line.trim_end_matches(['\r', '\n']).to_string()
            } else {
                key
            };
            if key.is_empty() {
                bail!("the key is empty");
            }
            println!("{}", hasher.hash(&key));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The hasher of the config's `server.key_hash_secret`, or of the built-in
/// secret (with a warning) when there is no config or it sets none.
pub fn hasher(config: Option<&Path>) -> anyhow::Result<KeyHasher> {
    let secret = match config {
        Some(path) => {
            gatehouse_config::load_file(path)?
                .config
                .server
                .key_hash_secret
        }
        None => None,
    };
    Ok(match secret {
        Some(s) => KeyHasher::new(s.as_bytes()),
        None => {
            eprintln!(
                "warning: no server.key_hash_secret (pass --config FILE); hashing with the built-in secret, which is public"
            );
            KeyHasher::new(DEFAULT_KEY_HASH_SECRET.as_bytes())
        }
    })
}
