//! The gatehouse configuration model.
//!
//! One entity model serves the YAML file, the admin API and the store (see
//! DESIGN.md): `services`, `routes`, `plugins` and `consumers`, plus the
//! node-level `server` and `listeners` sections. This crate turns YAML text
//! into [`Config`] and checks everything it can check on its own; errors
//! always carry the file, line, column and field. Compiling plugins and the
//! route table happens in `gatehouse-proxy`, which reports its errors
//! through the same [`Source::locate`].

mod collect;
mod credentials;
mod envs;
mod error;
mod lifecycle;
mod locate;
mod model;
mod tenancy;
mod types;
mod validate;

pub use lifecycle::valid_key_hash;
pub use types::{
    BalancingAlgorithm, HashOn, HeaderName, HostValue, IpNetwork, ListenAddress, MAX_BUFFER_BODY,
    MAX_RETRY_ATTEMPTS, MAX_WEIGHT, Method, Nameserver, RETRY_CONDITIONS, RequestKey,
    RetryCondition, ServiceUrl, SrvName, StickyOn, TargetAddress, is_ip_literal, parse_nameserver,
    parse_net, valid_dns_name,
};

pub use credentials::check_credentials;
pub use envs::BuildEnvs;
pub use error::{ConfigError, ConfigErrors};
pub use locate::Source;
pub use model::*;
pub use tenancy::Workspaces;

use std::path::{Path, PathBuf};

/// A parsed, validated configuration together with the text it came from,
/// so that later compile steps can still point at lines.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The text and name it was read from.
    pub source: Source,
    /// The directory relative file paths in the config (TLS certificates
    /// and keys) are resolved against: the config file's directory, or
    /// `None` for text not read from a file (paths are then used as given,
    /// relative to the working directory).
    pub base_dir: Option<PathBuf>,
}

impl Loaded {
    /// Resolves relative file paths against `dir` instead.
    #[must_use]
    pub fn with_base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// `path` from the config, resolved against [`Loaded::base_dir`].
    pub fn resolve_path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        match &self.base_dir {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }
}

/// Reads and validates a YAML file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::one(ConfigError {
            file: name.clone(),
            line: None,
            column: None,
            field: String::new(),
            message: format!("cannot read file: {e}"),
        })
    })?;
    let loaded = parse_str(&text, &name)?;
    Ok(match path.parent() {
        Some(dir) => loaded.with_base_dir(dir),
        None => loaded,
    })
}

/// Parses and validates YAML text; `name` is used in error messages.
pub fn parse_str(text: &str, name: &str) -> Result<Loaded, ConfigErrors> {
    let source = Source::new(name, text);
    let config: Config = if text.trim().is_empty() {
        Config::default()
    } else {
        serde_norway::from_str(text)
            .map_err(|e| ConfigErrors::one(error::from_yaml(&source, &e)))?
    };
    validate::validate(&config, &source)?;
    Ok(Loaded {
        config,
        source,
        base_dir: None,
    })
}

/// Validates a configuration that was not read from YAML text (for
/// example one assembled from control-plane documents); `name` is used in
/// error messages, which carry field paths but no lines.
pub fn from_config(config: Config, name: &str) -> Result<Loaded, ConfigErrors> {
    let source = Source::new(name, "");
    validate::validate(&config, &source)?;
    Ok(Loaded {
        config,
        source,
        base_dir: None,
    })
}

/// The JSON Schema of the configuration file, generated from the types.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default()
}
