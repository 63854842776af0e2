//! Hashed API keys of apps: the keyed hash that stores them and the map
//! `key-auth` looks them up in.
//!
//! A presented key is hashed once with HMAC-SHA256 under the node secret
//! (`server.key_hash_secret`) and the 32-byte result is looked up in a
//! `HashMap`, so lookup stays O(1) however many keys exist and plaintext
//! keys are never held by the gateway. The stored form is `k1:<64 hex>`;
//! `k1` names this scheme so another can follow without ambiguity.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::ctx::{App, Consumer};

/// The prefix of the stored form of a key hash.
pub const KEY_HASH_PREFIX: &str = "k1:";

/// The secret used when `server.key_hash_secret` is not set. Anyone who
/// knows it (it is in the source) can compute key hashes, so production
/// nodes must set their own; the gateway warns at start when it is unset.
pub const DEFAULT_KEY_HASH_SECRET: &str =
    "gatehouse default key hash secret: set server.key_hash_secret";

/// Computes key hashes under one secret.
#[derive(Clone)]
pub struct KeyHasher {
    key: ring::hmac::Key,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.write_str("KeyHasher(..)")
    }
}

impl Default for KeyHasher {
    fn default() -> Self {
        Self::new(DEFAULT_KEY_HASH_SECRET.as_bytes())
    }
}

impl KeyHasher {
    /// A hasher keyed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        }
    }

    /// The hash of a presented key.
    pub fn hash(&self, key: &str) -> KeyHash {
        let tag = ring::hmac::sign(&self.key, key.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        KeyHash(out)
    }
}

/// Why [`generate_key`] failed: the system random number generator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomFailed;

impl fmt::Display for RandomFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the system random number generator failed")
    }
}

impl std::error::Error for RandomFailed {}

/// A fresh app API key: 32 random bytes from the operating system
/// (`ring`'s `SystemRandom`), base64url without padding: 43 characters,
/// safe in headers and query strings. `gatehouse keys new` and the admin
/// API's key endpoint both use it.
pub fn generate_key() -> Result<String, RandomFailed> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomFailed)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// An HMAC-SHA256 key hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// Parses the stored form `k1:<64 lowercase or uppercase hex digits>`.
    pub fn parse(stored: &str) -> Option<Self> {
        let hex = stored.strip_prefix(KEY_HASH_PREFIX)?.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16);
            *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for KeyHash {
    /// The stored form, `k1:<hex>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(KEY_HASH_PREFIX)?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One app key as the data plane holds it.
#[derive(Debug, Clone)]
pub struct AppKey {
    /// The app the key belongs to.
    pub app: App,
    /// The app's consumer.
    pub consumer: Consumer,
    /// After this instant the key is refused as expired.
    pub expires_at: Option<SystemTime>,
    /// Refused as revoked.
    pub revoked: bool,
}

/// Every app key of a configuration, by hash.
#[derive(Debug, Clone, Default)]
pub struct AppKeys {
    hasher: KeyHasher,
    keys: HashMap<KeyHash, AppKey>,
}

impl AppKeys {
    /// An empty map whose lookups hash with `hasher`.
    pub fn new(hasher: KeyHasher) -> Self {
        Self {
            hasher,
            keys: HashMap::new(),
        }
    }

    /// Adds a key by its hash.
    pub fn insert(&mut self, hash: KeyHash, key: AppKey) {
        self.keys.insert(hash, key);
    }

    /// Whether there are no app keys (then lookups need not hash at all).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The entry of a presented plaintext key: one hash, one map lookup.
    pub fn lookup(&self, presented: &str) -> Option<&AppKey> {
        if self.keys.is_empty() {
            return None;
        }
        self.keys.get(&self.hasher.hash(presented))
    }
}

/// Shared, immutable app keys (one per snapshot).
pub type SharedAppKeys = Arc<AppKeys>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn same_secret_same_hash_different_secret_different_hash() {
        let a = KeyHasher::new(b"secret-one-0123456789");
        let b = KeyHasher::new(b"secret-one-0123456789");
        let c = KeyHasher::new(b"secret-two-0123456789");
        assert_eq!(a.hash("my-key"), b.hash("my-key"));
        assert_ne!(a.hash("my-key"), c.hash("my-key"));
        assert_ne!(a.hash("my-key"), a.hash("my-kez"));
    }

    #[test]
    fn known_vector_and_stored_form_round_trip() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let h = KeyHasher::new(b"Jefe").hash("what do ya want for nothing?");
        let stored = h.to_string();
        assert_eq!(
            stored,
            "k1:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(KeyHash::parse(&stored), Some(h));
        assert_eq!(
            KeyHash::parse(&stored.to_uppercase().replace("K1", "k1")),
            Some(h)
        );
    }

    #[test]
    fn parse_rejects_malformed_hashes() {
        let ok = format!("k1:{}", "ab".repeat(32));
        assert!(KeyHash::parse(&ok).is_some());
        for bad in [
            "ab".repeat(32),
            format!("k2:{}", "ab".repeat(32)),
            format!("k1:{}", "ab".repeat(31)),
            format!("k1:{}", "ab".repeat(33)),
            format!("k1:{}zz", "ab".repeat(31)),
            format!("k1:{}é", "a".repeat(62)),
        ] {
            assert!(KeyHash::parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn generated_keys_are_43_base64url_characters_and_differ() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{a}"
        );
        assert_ne!(a, b);
    }

    #[test]
    fn lookup_hashes_the_presented_key() {
        let hasher = KeyHasher::new(b"node-secret-0123456789");
        let mut keys = AppKeys::new(hasher.clone());
        assert!(keys.lookup("k").is_none());
        keys.insert(
            hasher.hash("the-key"),
            AppKey {
                app: App {
                    name: "mobile".into(),
                    consumer: "acme".into(),
                },
                consumer: Consumer {
                    username: "acme".into(),
                    custom_id: None,
                },
                expires_at: None,
                revoked: false,
            },
        );
        assert_eq!(&*keys.lookup("the-key").unwrap().app.name, "mobile");
        assert!(keys.lookup("the-kez").is_none());
        assert_eq!(keys.len(), 1);
    }
}
