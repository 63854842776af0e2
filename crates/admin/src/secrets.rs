//! Write-only secrets: which document fields hold secrets, how they are
//! shown (a keyed fingerprint, never the value), and how an update that
//! sends the redacted view back keeps the stored secret (docs/security.md,
//! "Secrets").
//!
//! The secret fields are those the registered credential schemes declare
//! (`CredentialScheme::secret_fields`: for key-auth, `credential`
//! documents' `key_auth.key` and `consumer` documents' inline
//! `credentials.key_auth[].key`; likewise `<field>.<secret>` and
//! `credentials.<field>[].<secret>` for any other scheme) and certificate
//! private keys (`certificate` documents' `key`). App documents hold only
//! `k1:` key hashes, which authenticate nothing, and stay visible.
//!
//! A redacted field reads `"key": null` with `"key_fingerprint":
//! "hmac-sha256:<16 hex>"` next to it: the first 64 bits of HMAC-SHA256
//! under the node secret (`server.key_hash_secret`, the same key the app
//! key hashes use) of a domain-separated message. Without the node secret a
//! fingerprint cannot be used to test guessed keys offline, unlike a plain
//! SHA-256 of a low-entropy key.

use gatehouse_core::Schemes;
use gatehouse_core::keys::KeyHasher;
use std::sync::Arc;

use gatehouse_store::{AuditRedactor, Kind};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// The prefix of every fingerprint.
pub const FINGERPRINT_PREFIX: &str = "hmac-sha256:";

/// The suffix of the field that carries a redacted field's fingerprint.
pub const FINGERPRINT_SUFFIX: &str = "_fingerprint";

/// Where a kind's secrets are: paths of object fields (`*` walks every
/// element of an array), the last element names the secret field.
fn paths(schemes: &Schemes, kind: Kind) -> Vec<Vec<&str>> {
    match kind {
        Kind::Credential => schemes
            .iter()
            .flat_map(|s| s.secret_fields().iter().map(|f| vec![s.field(), *f]))
            .collect(),
        Kind::Consumer => schemes
            .iter()
            .flat_map(|s| {
                s.secret_fields()
                    .iter()
                    .map(|f| vec!["credentials", s.field(), "*", *f])
            })
            .collect(),
        Kind::Certificate => vec![vec!["key"]],
        _ => Vec::new(),
    }
}

/// Whether documents of `kind` hold secrets.
pub fn has_secrets(schemes: &Schemes, kind: Kind) -> bool {
    !paths(schemes, kind).is_empty()
}

/// The fingerprint of a secret under `hasher`'s key.
pub fn fingerprint(hasher: &KeyHasher, secret: &str) -> String {
    let tag = hasher
        .hash(&format!("gatehouse secret fingerprint v1\0{secret}"))
        .to_string();
    let hex = tag
        .strip_prefix(gatehouse_core::keys::KEY_HASH_PREFIX)
        .unwrap_or(&tag);
    format!("{FINGERPRINT_PREFIX}{}", &hex[..16.min(hex.len())])
}

/// Calls `f` with every object holding a secret field of `kind` in
/// `body`, and the field's name.
fn each_holder(
    schemes: &Schemes,
    kind: Kind,
    body: &mut Value,
    f: &mut dyn FnMut(&mut Map<String, Value>, &str),
) {
    fn walk(v: &mut Value, path: &[&str], f: &mut dyn FnMut(&mut Map<String, Value>, &str)) {
        match path {
            [] => {}
            [field] => {
                if let Value::Object(m) = v {
                    f(m, field);
                }
            }
            ["*", rest @ ..] => {
                if let Value::Array(a) = v {
                    for x in a {
                        walk(x, rest, f);
                    }
                }
            }
            [seg, rest @ ..] => {
                if let Some(x) = v.get_mut(*seg) {
                    walk(x, rest, f);
                }
            }
        }
    }
    for path in paths(schemes, kind) {
        walk(body, &path, f);
    }
}

/// Replaces every secret of a `kind` body with `null` and, with a hasher,
/// puts its fingerprint next to it (`<field>_fingerprint`). Already
/// redacted fields (`null`) keep their fingerprint. Idempotent.
pub fn redact(schemes: &Schemes, kind: Kind, body: &mut Value, hasher: Option<&KeyHasher>) {
    // A private key pasted into a certificate's `cert` (a combined PEM, as
    // some tools write them) is refused on write (`entity::validate`);
    // one written past the API, or before that check, is never shown.
    if kind == Kind::Certificate
        && let Some(Value::String(cert)) = body.get_mut("cert")
        && let Some(stripped) = strip_private_keys(cert)
    {
        *cert = stripped;
    }
    hide_unknown_schemes(schemes, kind, body);
    each_holder(schemes, kind, body, &mut |m, field| {
        let fp_field = format!("{field}{FINGERPRINT_SUFFIX}");
        match m.get(field) {
            Some(Value::Null) => {}
            Some(Value::String(s)) => {
                let fp = hasher.map(|h| fingerprint(h, s));
                m.insert(field.to_owned(), Value::Null);
                match fp {
                    Some(fp) => {
                        m.insert(fp_field, Value::String(fp));
                    }
                    None => {
                        m.remove(&fp_field);
                    }
                }
            }
            // Not a string: not a valid secret, but never shown either.
            Some(_) => {
                m.insert(field.to_owned(), Value::Null);
                m.remove(&fp_field);
            }
            None => {}
        }
    });
}

/// Credentials of a scheme `schemes` does not know (written by a program
/// with another registry, or of a scheme since removed): which of their
/// fields are secret is unknown, so none is shown — the whole value reads
/// `null`. Such bodies are refused on write, so this view never has to
/// round-trip.
fn hide_unknown_schemes(schemes: &Schemes, kind: Kind, body: &mut Value) {
    let holder = match kind {
        Kind::Credential => Some(body),
        Kind::Consumer => body.get_mut("credentials"),
        _ => None,
    };
    if let Some(Value::Object(m)) = holder {
        for (field, value) in m.iter_mut() {
            let shown = schemes.by_field(field).is_some()
                || (kind == Kind::Credential && field == "consumer");
            if !shown {
                *value = Value::Null;
            }
        }
    }
}

/// Whether `pem` holds a private key block (`-----BEGIN ... PRIVATE
/// KEY-----`, whatever the algorithm or encryption).
pub fn has_private_key(pem: &str) -> bool {
    strip_private_keys(pem).is_some()
}

/// `pem` without its private key blocks (each replaced by nothing; an
/// unterminated one runs to the end); `None` when it has none.
fn strip_private_keys(pem: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = pem;
    let mut found = false;
    while let Some(start) = rest.find("-----BEGIN ") {
        let label_end = rest[start + 11..].find("-----").map(|e| start + 11 + e);
        let Some(label_end) = label_end else { break };
        let label = &rest[start + 11..label_end];
        if !label.ends_with("PRIVATE KEY") {
            out.push_str(&rest[..label_end + 5]);
            rest = &rest[label_end + 5..];
            continue;
        }
        found = true;
        out.push_str(&rest[..start]);
        let end_marker = format!("-----END {label}-----");
        rest = match rest[label_end..].find(&end_marker) {
            Some(e) => rest[label_end + e + end_marker.len()..].trim_start_matches(['\r', '\n']),
            None => "",
        };
    }
    out.push_str(rest);
    found.then_some(out)
}

/// The redacted view of an audit entry's `before` / `after`
/// (`{"id", "version", "tags", "body"}`) for an entry of `kind` (a kind
/// name; other audit entries are left alone).
pub fn redact_audit_value(
    schemes: &Schemes,
    kind: &str,
    value: &mut Value,
    hasher: Option<&KeyHasher>,
) {
    if let Ok(kind) = kind.parse::<Kind>()
        && let Some(body) = value.get_mut("body")
    {
        redact(schemes, kind, body, hasher);
    }
}

/// The store's audit redactor for this policy: every document body the
/// store writes into its audit log has its secrets replaced by fingerprints
/// under `hasher` (without one: by `null` only); the secrets of
/// credentials are those `schemes` declare. Pass it to
/// `gatehouse_store::open_with`.
pub fn audit_redactor(schemes: Schemes, hasher: Option<KeyHasher>) -> AuditRedactor {
    Arc::new(move |kind, body: &mut Value| redact(&schemes, kind, body, hasher.as_ref()))
}

/// Whether a body holds a secret value (anything but `null` in a secret
/// field): false for every redacted view.
pub fn holds_secret(schemes: &Schemes, kind: Kind, body: &Value) -> bool {
    let mut found = false;
    let mut copy = body.clone();
    each_holder(schemes, kind, &mut copy, &mut |m, field| {
        if m.get(field).is_some_and(|v| !v.is_null()) {
            found = true;
        }
    });
    found
}

/// Before a write: fills in secrets the client left out from `old` (the
/// stored body, `None` when creating), so a GET → edit → PUT round trip
/// (or a merge patch) keeps them, and drops the fingerprint fields.
///
/// A secret field that is missing or `null` keeps the stored secret: the
/// one whose fingerprint the entry carries, else (without a fingerprint)
/// the stored one at the same place. A new value replaces it. A
/// fingerprint that matches no stored secret, or a missing secret with
/// nothing stored, is refused with a message that names the field.
/// Returns whether a stored secret was used.
pub fn restore(
    schemes: &Schemes,
    kind: Kind,
    body: &mut Value,
    old: Option<&Value>,
    hasher: &KeyHasher,
) -> ApiResult<bool> {
    if !has_secrets(schemes, kind) {
        return Ok(false);
    }
    // The stored secrets, by their place and fingerprint.
    let mut stored: Vec<String> = Vec::new();
    if let Some(old) = old {
        let mut old = old.clone();
        each_holder(schemes, kind, &mut old, &mut |m, field| {
            if let Some(Value::String(s)) = m.get(field) {
                stored.push(s.clone());
            } else {
                stored.push(String::new());
            }
        });
    }
    let prints: Vec<String> = stored.iter().map(|s| fingerprint(hasher, s)).collect();
    let mut used = false;
    let mut error: Option<String> = None;
    let mut index = 0usize;
    each_holder(schemes, kind, body, &mut |m, field| {
        let at = index;
        index += 1;
        let fp_field = format!("{field}{FINGERPRINT_SUFFIX}");
        let fp = m.remove(&fp_field);
        let secret_given = matches!(m.get(field), Some(v) if !v.is_null());
        if secret_given || error.is_some() {
            return;
        }
        let found = match &fp {
            Some(Value::String(fp)) => prints
                .iter()
                .position(|p| p == fp)
                .map(|i| stored[i].clone())
                .filter(|s| !s.is_empty()),
            Some(Value::Null) | None => stored.get(at).cloned().filter(|s| !s.is_empty()),
            Some(_) => None,
        };
        match found {
            Some(s) => {
                m.insert(field.to_owned(), Value::String(s));
                used = true;
            }
            None => {
                error = Some(match fp {
                    Some(Value::String(fp)) => format!(
                        "{field}: the fingerprint `{fp}` matches no stored secret of this document; send the secret itself"
                    ),
                    _ => format!(
                        "{field}: required; `null` keeps the stored secret only when updating a document that has one"
                    ),
                });
            }
        }
    });
    match error {
        Some(e) => Err(ApiError::invalid(format!("body: {e}"))),
        None => Ok(used),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn s() -> Schemes {
        gatehouse_plugins::registry().schemes().clone()
    }

    fn hasher() -> KeyHasher {
        KeyHasher::new(b"unit-test-node-secret-0123")
    }

    #[test]
    fn credentials_of_unknown_schemes_are_never_shown() {
        let mut cred = json!({"consumer": "a", "other_scheme": {"secret": "s-1", "name": "n"}});
        redact(&s(), Kind::Credential, &mut cred, Some(&hasher()));
        assert_eq!(cred, json!({"consumer": "a", "other_scheme": null}));
        let mut consumer = json!({"username": "a", "credentials": {
            "other_scheme": [{"secret": "s-1"}], "key_auth": [{"key": "k-1"}]
        }});
        redact(&s(), Kind::Consumer, &mut consumer, None);
        assert_eq!(
            consumer,
            json!({"username": "a", "credentials": {"other_scheme": null, "key_auth": [{"key": null}]}})
        );
        // Without any scheme, no credential value is shown at all.
        let mut cred = json!({"consumer": "a", "key_auth": {"key": "k-1"}});
        redact(&Schemes::new(), Kind::Credential, &mut cred, None);
        assert_eq!(cred, json!({"consumer": "a", "key_auth": null}));
    }

    #[test]
    fn fingerprints_are_keyed_short_and_stable() {
        let a = fingerprint(&hasher(), "alice-key");
        assert_eq!(a, fingerprint(&hasher(), "alice-key"));
        assert!(a.starts_with(FINGERPRINT_PREFIX));
        assert_eq!(a.len(), FINGERPRINT_PREFIX.len() + 16);
        assert_ne!(a, fingerprint(&hasher(), "bob-key"));
        // Another node secret, another fingerprint: not guessable without it.
        assert_ne!(
            a,
            fingerprint(&KeyHasher::new(b"another-secret-0123456"), "alice-key")
        );
        // Not the app key hash of the same string.
        assert!(
            !hasher()
                .hash("alice-key")
                .to_string()
                .contains(&a[FINGERPRINT_PREFIX.len()..])
        );
    }

    #[test]
    fn redact_every_secret_field() {
        fn check(kind: Kind, mut body: Value, expect: Value) {
            redact(&s(), kind, &mut body, Some(&hasher()));
            assert_eq!(body, expect, "{kind}");
            assert!(!holds_secret(&s(), kind, &body), "{kind}");
            let again = body.clone();
            redact(&s(), kind, &mut body, Some(&hasher()));
            assert_eq!(body, again, "{kind}: idempotent");
        }
        let fp = |s: &str| fingerprint(&hasher(), s);
        check(
            Kind::Credential,
            json!({"consumer": "a", "key_auth": {"key": "k-1"}}),
            json!({"consumer": "a", "key_auth": {"key": null, "key_fingerprint": fp("k-1")}}),
        );
        check(
            Kind::Consumer,
            json!({"username": "a", "credentials": {"key_auth": [{"key": "k-1"}, {"key": "k-2"}]}}),
            json!({"username": "a", "credentials": {"key_auth": [
                {"key": null, "key_fingerprint": fp("k-1")},
                {"key": null, "key_fingerprint": fp("k-2")}
            ]}}),
        );
        check(
            Kind::Certificate,
            json!({"cert": "C", "key": "PEM", "hosts": []}),
            json!({"cert": "C", "key": null, "key_fingerprint": fp("PEM"), "hosts": []}),
        );
        check(
            Kind::Consumer,
            json!({"username": "a"}),
            json!({"username": "a"}),
        );
        check(
            Kind::Service,
            json!({"name": "s", "key": "not a secret here"}),
            json!({"name": "s", "key": "not a secret here"}),
        );
        let mut body = json!({"consumer": "a", "key_auth": {"key": "k-1"}});
        redact(&s(), Kind::Credential, &mut body, None);
        assert_eq!(body, json!({"consumer": "a", "key_auth": {"key": null}}));
    }

    #[test]
    fn private_keys_pasted_into_cert_are_never_shown() {
        let cert = "-----BEGIN CERTIFICATE-----\nPUBLIC\n-----END CERTIFICATE-----\n";
        for label in [
            "PRIVATE KEY",
            "RSA PRIVATE KEY",
            "EC PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
        ] {
            let key = format!("-----BEGIN {label}-----\nSECRETBODY\n-----END {label}-----\n");
            for combined in [
                format!("{cert}{key}"),
                format!("{key}{cert}"),
                format!("{cert}{key}{cert}"),
                // Unterminated: everything after the BEGIN line goes.
                format!("{cert}-----BEGIN {label}-----\nSECRETBODY"),
            ] {
                assert!(has_private_key(&combined), "{label}");
                let mut body = json!({"cert": combined, "key": "K", "hosts": []});
                redact(&s(), Kind::Certificate, &mut body, Some(&hasher()));
                let shown = body["cert"].as_str().unwrap();
                assert!(!shown.contains("SECRETBODY"), "{label}: {shown}");
                assert!(!shown.contains("PRIVATE"), "{label}: {shown}");
                assert!(shown.contains("PUBLIC"), "{label}: {shown}");
            }
        }
        assert!(!has_private_key(cert));
        let mut body = json!({"cert": cert, "key": "K"});
        redact(&s(), Kind::Certificate, &mut body, Some(&hasher()));
        assert_eq!(body["cert"], cert);
    }

    #[test]
    fn restore_keeps_replaces_and_refuses() {
        let h = hasher();
        let old =
            json!({"username": "a", "credentials": {"key_auth": [{"key": "k-1"}, {"key": "k-2"}]}});
        let mut view = old.clone();
        redact(&s(), Kind::Consumer, &mut view, Some(&h));
        // Round trip: the redacted view restores to the stored body.
        let mut back = view.clone();
        assert!(restore(&s(), Kind::Consumer, &mut back, Some(&old), &h).unwrap());
        assert_eq!(back, old);
        // Reordered, one dropped, one new: matched by fingerprint.
        let mut edit = json!({"username": "a", "credentials": {"key_auth": [
            {"key": "k-new"},
            view["credentials"]["key_auth"][1].clone(),
        ]}});
        restore(&s(), Kind::Consumer, &mut edit, Some(&old), &h).unwrap();
        assert_eq!(
            edit,
            json!({"username": "a", "credentials": {"key_auth": [{"key": "k-new"}, {"key": "k-2"}]}})
        );
        // Omitted key, no fingerprint: the stored one at the same place.
        let mut omitted = json!({"consumer": "a", "key_auth": {}});
        let stored = json!({"consumer": "a", "key_auth": {"key": "k-1"}});
        restore(&s(), Kind::Credential, &mut omitted, Some(&stored), &h).unwrap();
        assert_eq!(omitted, stored);
        // Unknown fingerprint, or nothing stored: refused, naming no secret.
        let mut bad = json!({"consumer": "a", "key_auth": {"key": null, "key_fingerprint": "hmac-sha256:0000000000000000"}});
        let e = restore(&s(), Kind::Credential, &mut bad, Some(&stored), &h).unwrap_err();
        assert!(!format!("{e:?}").contains("k-1"));
        let mut new = json!({"cert": "C", "key": null});
        assert!(restore(&s(), Kind::Certificate, &mut new, None, &h).is_err());
    }
}
