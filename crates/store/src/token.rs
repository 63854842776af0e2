//! Admin token secrets: generation and the hash that is stored.
//!
//! A token is 32 bytes from the operating system's CSPRNG (256 bits), shown
//! as `gha_` + 64 hex digits. Only its SHA-256 is stored. A slow password
//! hash (argon2, bcrypt) exists to make guessing *low-entropy* secrets
//! expensive; nobody can enumerate 2^256 candidates, so a fast hash loses
//! nothing here and lets a lookup be one indexed equality on the hash. A
//! leaked database copy therefore yields no usable token. Comparison timing
//! leaks nothing useful either: the index compares hashes, and learning a
//! prefix of a hash does not help find a preimage.

use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::StoreError;

const PREFIX: &str = "gha_";

/// A new random token (plaintext).
pub(crate) fn generate() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| StoreError::backend("no randomness for a token", e))?;
    Ok(format!("{PREFIX}{}", hex(&bytes)))
}

/// The stored form of a token: lowercase hex SHA-256 of its bytes.
pub(crate) fn hash(plaintext: &str) -> String {
    hex(&Sha256::digest(plaintext.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}
