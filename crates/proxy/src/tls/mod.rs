//! TLS with rustls (ring provider): termination on listeners
//! ([`listener`]) and TLS to upstreams ([`upstream`]). Config is turned
//! into rustls configs here, when a snapshot is compiled (files are read
//! then, so `gatehouse validate` reports unreadable or mismatched files);
//! the request path only ever sees finished configs and, per connection,
//! the [`gatehouse_core::TlsInfo`] computed once after the handshake.

pub mod listener;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The one crypto provider: ring (builds with a C compiler alone).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// A problem with a TLS setting, located by its config field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// E.g. `listeners[0].tls.certificates[1].key`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A file named in the config, with the field that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigFile {
    pub(crate) path: PathBuf,
    pub(crate) field: String,
}

impl ConfigFile {
    pub(crate) fn new(path: PathBuf, field: String) -> Self {
        Self { path, field }
    }

    pub(crate) fn read(&self) -> Result<Vec<u8>, FieldError> {
        std::fs::read(&self.path).map_err(|e| {
            FieldError::new(
                &self.field,
                format!("cannot read `{}`: {e}", self.path.display()),
            )
        })
    }

    /// Every certificate in the PEM file (at least one).
    pub(crate) fn certs(&self, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, FieldError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                FieldError::new(
                    &self.field,
                    format!("`{}` is not valid PEM: {e}", self.path.display()),
                )
            })?;
        if certs.is_empty() {
            return Err(FieldError::new(
                &self.field,
                format!("no PEM certificate found in `{}`", self.path.display()),
            ));
        }
        Ok(certs)
    }

    /// The first private key in the PEM file (PKCS#8, PKCS#1 or SEC1).
    pub(crate) fn key(&self, pem: &[u8]) -> Result<PrivateKeyDer<'static>, FieldError> {
        PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
            let why = match e {
                rustls_pki_types::pem::Error::NoItemsFound => {
                    "no private key (PKCS#8, PKCS#1 or SEC1 PEM) found in".to_string()
                }
                other => format!("cannot read a private key ({other}) from"),
            };
            FieldError::new(&self.field, format!("{why} `{}`", self.path.display()))
        })
    }

    /// A root store of every certificate in the PEM file.
    pub(crate) fn roots(&self, pem: &[u8]) -> Result<rustls::RootCertStore, FieldError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in self.certs(pem)? {
            roots.add(cert).map_err(|e| {
                FieldError::new(
                    &self.field,
                    format!(
                        "`{}` holds a certificate that cannot be a trust anchor: {e}",
                        self.path.display()
                    ),
                )
            })?;
        }
        Ok(roots)
    }

    /// What the file looks like on disk now, for change detection.
    pub(crate) fn stamp(&self) -> Option<FileStamp> {
        FileStamp::of(&self.path)
    }
}

/// Size, modification time and inode of a file: cheap to read (one
/// `stat`), and different after a rename over the file (new inode) or a
/// write that changes its size or time. File times are only as fine as the
/// kernel's clock tick, so an in-place rewrite of the same length within a
/// few milliseconds of the previous one could go unseen; certificate
/// renewals are never that close, and any config reload re-reads the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            len: m.len(),
            modified: m.modified().ok(),
            inode: m.ino(),
        })
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
