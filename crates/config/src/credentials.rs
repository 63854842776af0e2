//! Consumer credentials checked against the registered credential schemes
//! (`gatehouse_core::credentials`): each credential by its scheme, unknown
//! scheme fields refused, and each scheme's unique value unique per
//! workspace. The config crate does not know the plugins: the caller that
//! has the registry passes its schemes (the data plane's compile, hence
//! `gatehouse validate`, nodes and the control plane's check).

use std::collections::HashMap;

use gatehouse_core::credentials::{Schemes, join_path};

use crate::{ConfigError, Loaded};

/// Every problem with the consumers' credentials of `loaded`, with the
/// path of the faulty field (`consumers[2].credentials.key_auth[0].key`).
///
/// Uniqueness is per workspace only (as for app keys, see
/// `lifecycle::apps`): a duplicate names the other consumer of the same
/// workspace and nothing else, so a write cannot probe another tenant's
/// credentials.
pub fn check_credentials(loaded: &Loaded, schemes: &Schemes) -> Vec<ConfigError> {
    let config = &loaded.config;
    let mut errors = Vec::new();
    // (workspace, scheme field, unique value) -> where it was first seen.
    let mut seen: HashMap<(usize, &str, String), String> = HashMap::new();
    for (i, consumer) in config.consumers.iter().enumerate() {
        let ws = config.workspaces.of("consumers", i);
        for (field, list) in &consumer.credentials.0 {
            let at = format!("consumers[{i}].credentials.{field}");
            let Some(scheme) = schemes.by_field(field) else {
                errors.push(loaded.source.error(&at, schemes.unknown(field)));
                continue;
            };
            for (j, credential) in list.iter().enumerate() {
                let at = format!("{at}[{j}]");
                if let Err(e) = scheme.check(credential) {
                    errors.push(loaded.source.error(&join_path(&at, &e.path), e.message));
                    continue;
                }
                let Some(unique) = scheme.unique_key(credential) else {
                    continue;
                };
                let here = join_path(&at, unique.field);
                match seen.entry((ws, scheme.field(), unique.value)) {
                    std::collections::hash_map::Entry::Occupied(first) => {
                        // The first one's path without the field, as
                        // before schemes: `consumers[1].credentials.key_auth[0]`.
                        let first = first.get().clone();
                        errors.push(loaded.source.error(
                            &here,
                            format!("duplicate {} (also used by {first})", scheme.noun()),
                        ));
                    }
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(at);
                    }
                }
            }
        }
    }
    errors
}
