//! Certificate documents on store-backed nodes: each `certificate`
//! document of the store is written to `<data dir>/certs/` as two PEM files
//! (owner-only) and added to every TLS listener of the node settings, where
//! SNI picks it like a certificate from the settings file (exact names,
//! then wildcards, then the listener's first certificate as the default).
//! The listener machinery then reloads them like any certificate file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use gatehouse_config::{Config, ServerCertificate};
use gatehouse_store::{Document, Kind};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate document's body is refused.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The body is not a certificate document.
    #[error("{what}")]
    Body {
        /// Which document.
        what: String,
        /// The deserialisation error.
        #[source]
        source: serde_json::Error,
    },
    /// `cert` does not parse as PEM.
    #[error("{what}: `cert` is not PEM certificates")]
    CertPem {
        /// Which document.
        what: String,
        /// The PEM error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// `cert` holds no certificate.
    #[error("{what}: `cert` holds no PEM certificate")]
    NoCert {
        /// Which document.
        what: String,
    },
    /// `key` does not parse as a PEM private key.
    #[error("{what}: `key` is not a PEM private key")]
    KeyPem {
        /// Which document.
        what: String,
        /// The PEM error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
}

/// Checks a certificate document's body: PEM with at least one
/// certificate, and a private key.
pub fn check(doc: &Document) -> Result<gatehouse_admin::Certificate, CertificateError> {
    let what = format!(
        "certificate `{}` in workspace `{}`",
        doc.name, doc.workspace
    );
    let body: gatehouse_admin::Certificate = match serde_json::from_value(doc.body.clone()) {
        Ok(b) => b,
        Err(source) => return Err(CertificateError::Body { what, source }),
    };
    let certs =
        match CertificateDer::pem_slice_iter(body.cert.as_bytes()).collect::<Result<Vec<_>, _>>() {
            Ok(c) => c,
            Err(source) => return Err(CertificateError::CertPem { what, source }),
        };
    if certs.is_empty() {
        return Err(CertificateError::NoCert { what });
    }
    if let Err(source) = PrivateKeyDer::from_pem_slice(body.key.as_bytes()) {
        return Err(CertificateError::KeyPem { what, source });
    }
    Ok(body)
}

/// Every certificate document's body checked; the messages of the bad ones.
pub fn check_all(documents: &[Document]) -> Result<(), Vec<String>> {
    let errors: Vec<String> = documents
        .iter()
        .filter(|d| d.kind == Kind::Certificate)
        .filter_map(|d| check(d).err())
        .map(|e| crate::chain(&e))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The node settings with the store's certificates added to every TLS
/// listener; their files are written to `dir` (only when their content
/// changed) and files of certificates no longer in the store are removed.
pub fn with_store_certificates(
    settings: &Config,
    documents: &[Document],
    dir: &Path,
) -> Result<Config, Vec<String>> {
    let docs: Vec<&Document> = documents
        .iter()
        .filter(|d| d.kind == Kind::Certificate)
        .collect();
    let tls_listeners = settings.listeners.iter().any(|l| l.tls.is_some());
    if docs.is_empty() && !dir.exists() {
        return Ok(settings.clone());
    }
    let mut errors = Vec::new();
    let mut extra = Vec::new();
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for d in docs {
        let body = match check(d) {
            Ok(b) => b,
            Err(e) => {
                errors.push(crate::chain(&e));
                continue;
            }
        };
        if !tls_listeners {
            continue;
        }
        let stem = file_stem(&d.workspace, &d.name);
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        for (path, pem) in [(&cert, &body.cert), (&key, &body.key)] {
            if std::fs::read(path).ok().as_deref() != Some(pem.as_bytes())
                && let Err(e) = crate::datadir::write_private_file(path, pem.as_bytes())
            {
                errors.push(format!("cannot write {}: {e}", path.display()));
            }
            keep.insert(path.clone());
        }
        extra.push(ServerCertificate {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            hosts: body.hosts,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if !extra.is_empty() {
        tracing::debug!(
            count = extra.len(),
            "store certificates on the TLS listeners"
        );
    } else if !tls_listeners && documents.iter().any(|d| d.kind == Kind::Certificate) {
        tracing::warn!(
            "the store has certificates but this node has no TLS listener to serve them on"
        );
    }
    // Files of certificates that left the store.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if !keep.contains(&path) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let mut out = settings.clone();
    for l in &mut out.listeners {
        if let Some(tls) = &mut l.tls {
            tls.certificates.extend(extra.iter().cloned());
        }
    }
    Ok(out)
}

/// A file name for a document: the workspace (safe characters only) and
/// the name hex-encoded (names may hold `/` and anything printable).
fn file_stem(workspace: &str, name: &str) -> String {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{workspace}--{hex}")
}
