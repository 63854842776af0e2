//! `gatehouse keys new` and `gatehouse keys hash`: how operators create app
//! API keys. The plaintext key is printed once and never stored; the config
//! holds its hash under the node secret (`server.key_hash_secret`).

use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

use gatehouse_core::KeyHasher;
use gatehouse_core::keys::DEFAULT_KEY_HASH_SECRET;

use crate::cli::KeysCommand;

/// Runs a `keys` subcommand.
pub fn main(command: KeysCommand) -> ExitCode {
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: KeysCommand) -> Result<(), String> {
    match command {
        KeysCommand::New { config } => {
            let hasher = hasher(config.as_deref())?;
            let key = gatehouse_core::keys::generate_key().map_err(|e| e.to_string())?;
            println!("key:  {key}");
            println!("hash: {}", hasher.hash(&key));
            Ok(())
        }
        KeysCommand::Hash { key, config } => {
            let hasher = hasher(config.as_deref())?;
            let key = if key == "-" {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| format!("cannot read the key from stdin: {e}"))?;
                line.trim_end_matches(['\r', '\n']).to_string()
            } else {
                key
            };
            if key.is_empty() {
                return Err("the key is empty".to_string());
            }
            println!("{}", hasher.hash(&key));
            Ok(())
        }
    }
}

/// The hasher of the config's `server.key_hash_secret`, or of the built-in
/// secret (with a warning) when there is no config or it sets none.
pub fn hasher(config: Option<&Path>) -> Result<KeyHasher, String> {
    let secret = match config {
        Some(path) => {
            gatehouse_config::load_file(path)
                .map_err(|e| e.to_string())?
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
