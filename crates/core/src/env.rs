//! What a plugin is built with besides its own config and the gateway's
//! resources: the data of its workspace.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ctx::Consumer;

/// Things a plugin may need at build time besides its own config: the
/// data of the workspace whose plugin is built (docs/security.md), that is
/// of the consumers its routes accept.
#[derive(Debug, Clone, Default)]
pub struct BuildEnv {
    /// The lookup indexes of the registered credential schemes, by scheme
    /// name (see [`crate::credentials`]); a plugin reads its own with
    /// [`BuildEnv::index`].
    pub credentials: crate::credentials::Indexes,
    /// Every configured consumer by username (to check references such as
    /// `key-auth`'s `anonymous`).
    pub consumers: Arc<HashMap<String, Consumer>>,
    /// Hashed API keys of the consumers' apps (see [`crate::keys`]).
    pub app_keys: Arc<crate::keys::AppKeys>,
}

impl BuildEnv {
    /// The lookup index credential scheme `scheme` built for this
    /// workspace, downcast to the scheme's index type `T`; `None` when the
    /// scheme is not registered (or `T` is not its type).
    pub fn index<T: std::any::Any + Send + Sync>(&self, scheme: &str) -> Option<Arc<T>> {
        self.credentials.get::<T>(scheme)
    }
}
