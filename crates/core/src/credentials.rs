//! Credential schemes: what one kind of consumer credential (`key-auth`'s
//! API keys, a future `basic-auth` password, ...) looks like, which of its
//! fields are secret, what must be unique in a workspace, and the lookup
//! index its plugin gets at build time.
//!
//! A scheme is registered by its plugin next to its factory
//! (`gatehouse_plugins::Registry::register_scheme`). Everything else holds
//! credentials generically — the config model and the store documents as
//! scheme field name -> raw JSON values (`credentials: {key_auth: [...]}`,
//! `{consumer, key_auth: {...}}`) — and asks the [`Schemes`] it was given:
//! the data plane's compile (checks and indexes, [`crate::BuildEnv`]), the
//! control plane's check, the admin API (body checks, secret redaction,
//! OpenAPI schemas) and `gatehouse config dump/diff/apply`. Adding a scheme
//! therefore touches only the crate that defines it
//! (docs/plugins/AUTHORING.md, "Credential schemes").

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::ctx::Consumer;
use crate::error::PluginError;

/// A scheme's lookup index, built once per workspace and compile; its
/// plugin gets it back with [`crate::BuildEnv::index`] and downcasts it to
/// its own type.
pub type Index = Arc<dyn Any + Send + Sync>;

/// The value a credential must not share with another credential of the
/// same scheme in the same workspace (an API key, a username).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueKey {
    /// Path of the field it comes from inside the credential (`key`):
    /// where a duplicate is reported.
    pub field: &'static str,
    /// The value compared. Never shown in messages (it may be a secret).
    pub value: String,
}

/// One kind of consumer credential. Object-safe; implementations are
/// registered as `Arc<dyn CredentialScheme>`.
///
/// Every method that takes a credential gets one element of a consumer's
/// `credentials.<field>` list (or the `<field>` object of a `credential`
/// document), as raw JSON. [`CredentialScheme::unique_key`] and
/// [`CredentialScheme::index`] only ever see credentials that passed
/// [`CredentialScheme::check`].
pub trait CredentialScheme: Send + Sync + 'static {
    /// Registry name, the name of the plugin that uses it (`key-auth`).
    fn name(&self) -> &'static str;

    /// The field that holds its credentials in config and documents
    /// (`key_auth`): `consumers[].credentials.<field>[]` and a credential
    /// document's `<field>`.
    fn field(&self) -> &'static str;

    /// What one credential is called in messages (`API key`).
    fn noun(&self) -> &'static str;

    /// JSON Schema of one credential (an object schema).
    fn schema(&self) -> Value;

    /// A small valid credential, for the admin API's examples. Its secret
    /// fields hold obviously fake values.
    fn example(&self) -> Value;

    /// The top-level fields of a credential that are secret (string
    /// valued): write-only in the admin API (a fingerprint is shown
    /// instead), never in an audit entry or a dump.
    fn secret_fields(&self) -> &'static [&'static str];

    /// Parses and checks one credential. The error's path is the faulty
    /// field inside the credential (`key`), empty for the whole value.
    fn check(&self, credential: &Value) -> Result<(), PluginError>;

    /// What must be unique per workspace, if anything. Uniqueness is
    /// checked per workspace only, so that a write never tells a tenant
    /// that another workspace uses a value (docs/security.md).
    fn unique_key(&self, credential: &Value) -> Option<UniqueKey>;

    /// Builds the lookup index of one workspace from its credentials, in
    /// lookup order: the workspace's own consumers first, then those of
    /// the workspaces it accepts consumers from, in their order. When two
    /// entries collide (possible only across workspaces), the first wins.
    fn index(&self, credentials: &[(Consumer, &Value)]) -> Index;
}

/// The registered credential schemes, by name (and findable by field).
#[derive(Clone, Default)]
pub struct Schemes {
    by_name: BTreeMap<&'static str, Arc<dyn CredentialScheme>>,
}

impl Schemes {
    /// No scheme.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `scheme`, replacing a scheme of the same name or of the same
    /// field (a field names exactly one scheme).
    pub fn register(&mut self, scheme: Arc<dyn CredentialScheme>) {
        let field = scheme.field();
        self.by_name.retain(|_, s| s.field() != field);
        self.by_name.insert(scheme.name(), scheme);
    }

    /// The scheme called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn CredentialScheme>> {
        self.by_name.get(name)
    }

    /// The scheme whose credentials are written under `field`.
    pub fn by_field(&self, field: &str) -> Option<&Arc<dyn CredentialScheme>> {
        self.by_name.values().find(|s| s.field() == field)
    }

    /// Every scheme, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn CredentialScheme>> + '_ {
        self.by_name.values()
    }

    /// Whether no scheme is registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The message for a credential field no scheme uses.
    pub fn unknown(&self, field: &str) -> String {
        let mut fields: Vec<&str> = self.iter().map(|s| s.field()).collect();
        fields.sort_unstable();
        if fields.is_empty() {
            format!("unknown credential scheme `{field}` (no credential scheme is registered)")
        } else {
            format!(
                "unknown credential scheme `{field}` (registered: {})",
                fields
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }

    /// Checks one credential written under `field`: `Err((path, message))`
    /// with the path below `field`'s value (empty: the field itself is
    /// unknown).
    pub fn check(&self, field: &str, credential: &Value) -> Result<(), (String, String)> {
        let Some(scheme) = self.by_field(field) else {
            return Err((String::new(), self.unknown(field)));
        };
        scheme.check(credential).map_err(|e| (e.path, e.message))
    }
}

impl fmt::Debug for Schemes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

/// `prefix` followed by a path inside it: `prefix.key`, `prefix[0]`, or
/// `prefix` for an empty path.
pub fn join_path(prefix: &str, path: &str) -> String {
    if path.is_empty() {
        prefix.to_owned()
    } else if prefix.is_empty() {
        path.to_owned()
    } else if path.starts_with('[') {
        format!("{prefix}{path}")
    } else {
        format!("{prefix}.{path}")
    }
}

/// The credential indexes of one [`crate::BuildEnv`], by scheme name.
#[derive(Clone, Default)]
pub struct Indexes(BTreeMap<&'static str, Index>);

impl Indexes {
    /// Sets the index of scheme `name`.
    pub fn insert(&mut self, name: &'static str, index: Index) {
        self.0.insert(name, index);
    }

    /// The index of scheme `name`, if it is one of type `T`.
    pub fn get<T: Any + Send + Sync>(&self, name: &str) -> Option<Arc<T>> {
        self.0.get(name).cloned()?.downcast::<T>().ok()
    }
}

impl fmt::Debug for Indexes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    struct Tag(&'static str, &'static str);

    impl CredentialScheme for Tag {
        fn name(&self) -> &'static str {
            self.0
        }
        fn field(&self) -> &'static str {
            self.1
        }
        fn noun(&self) -> &'static str {
            "tag"
        }
        fn schema(&self) -> Value {
            json!({"type": "string"})
        }
        fn example(&self) -> Value {
            json!("t")
        }
        fn secret_fields(&self) -> &'static [&'static str] {
            &[]
        }
        fn check(&self, credential: &Value) -> Result<(), PluginError> {
            match credential {
                Value::String(_) => Ok(()),
                _ => Err(PluginError::at("", "expected a string")),
            }
        }
        fn unique_key(&self, credential: &Value) -> Option<UniqueKey> {
            Some(UniqueKey {
                field: "",
                value: credential.as_str()?.to_owned(),
            })
        }
        fn index(&self, credentials: &[(Consumer, &Value)]) -> Index {
            Arc::new(credentials.len())
        }
    }

    #[test]
    fn schemes_are_found_by_name_and_field_and_replaced() {
        let mut s = Schemes::new();
        assert_eq!(
            s.unknown("x"),
            "unknown credential scheme `x` (no credential scheme is registered)"
        );
        s.register(Arc::new(Tag("a", "a_f")));
        s.register(Arc::new(Tag("b", "b_f")));
        assert_eq!(s.get("a").map(|x| x.field()), Some("a_f"));
        assert_eq!(s.by_field("b_f").map(|x| x.name()), Some("b"));
        assert!(s.by_field("b").is_none());
        assert_eq!(
            s.unknown("c_f"),
            "unknown credential scheme `c_f` (registered: `a_f`, `b_f`)"
        );
        // Same field, another name: the field names one scheme only.
        s.register(Arc::new(Tag("c", "b_f")));
        assert!(s.get("b").is_none());
        assert_eq!(s.by_field("b_f").map(|x| x.name()), Some("c"));
        assert_eq!(format!("{s:?}"), r#"{"a", "c"}"#);
        assert_eq!(s.check("a_f", &json!("x")), Ok(()));
        assert_eq!(
            s.check("a_f", &json!(1)),
            Err((String::new(), "expected a string".to_owned()))
        );
        assert!(s.check("zz", &json!("x")).unwrap_err().1.contains("`zz`"));
    }

    #[test]
    fn indexes_downcast_to_their_type_only() {
        let mut i = Indexes::default();
        i.insert("a", Arc::new(7usize));
        assert_eq!(i.get::<usize>("a").as_deref(), Some(&7));
        assert!(i.get::<String>("a").is_none());
        assert!(i.get::<usize>("b").is_none());
        assert_eq!(format!("{i:?}"), r#"{"a"}"#);
    }

    #[test]
    fn paths_join() {
        assert_eq!(join_path("a", ""), "a");
        assert_eq!(join_path("a", "b"), "a.b");
        assert_eq!(join_path("a", "[1]"), "a[1]");
        assert_eq!(join_path("", "b"), "b");
    }
}
