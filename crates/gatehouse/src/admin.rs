//! The admin API as the binary runs it (`gatehouse admin serve` and nodes
//! with `--role both` / `control-plane`): its state with the node secret,
//! the audit redactor, and the cross-entity check of every write.

use std::sync::Arc;

use gatehouse_config::Config;
use gatehouse_core::keys::KeyHasher;
use gatehouse_store::{Document, Store};

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
            .map(|e| crate::chain(&e))
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
