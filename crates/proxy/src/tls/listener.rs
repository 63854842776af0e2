//! TLS termination on a listener: the rustls `ServerConfig` built from a
//! listener's `tls` block, SNI certificate selection ([`SniResolver`]),
//! mutual TLS, reloading certificates when their files change, and the
//! per-connection [`TlsInfo`] handed to plugins.
//!
//! A [`ListenerTls`] belongs to a compiled snapshot. It keeps its current
//! `ServerConfig` behind an `ArcSwap`: each new connection loads it once
//! (no lock), and the file watcher swaps in a rebuilt one when a
//! certificate, key or CA file changes on disk. A file that fails to load
//! leaves the previous config serving. Existing connections keep the
//! config they were accepted with.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use gatehouse_config::{ListenerTls as ListenerTlsConfig, Loaded, TlsVersion};
use gatehouse_core::{ClientCert, SubjectAltName, TlsInfo};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ProtocolVersion, ServerConfig, ServerConnection};
use rustls_pki_types::CertificateDer;

use super::{ConfigFile, FieldError, FileStamp, hex, provider};

/// The TLS side of one listener.
pub struct ListenerTls {
    spec: Spec,
    current: ArcSwap<ServerConfig>,
    /// The files as they were when `current` was built; only the file
    /// watcher touches this, never the request path.
    stamps: Mutex<Vec<Option<FileStamp>>>,
}

/// What changed when the files were checked.
#[derive(Debug)]
pub enum Refresh {
    /// No file changed.
    Unchanged,
    /// Files changed and the new certificates are serving.
    Reloaded,
    /// Files changed but do not load; the previous certificates keep
    /// serving until the files change again.
    Failed(Vec<FieldError>),
}

impl ListenerTls {
    /// Reads the files named in listener `index`'s `tls` block and builds
    /// its server config.
    pub fn load(
        cfg: &ListenerTlsConfig,
        http2: bool,
        loaded: &Loaded,
        index: usize,
    ) -> Result<Self, Vec<FieldError>> {
        let at = format!("listeners[{index}].tls");
        let spec = Spec {
            certificates: cfg
                .certificates
                .iter()
                .enumerate()
                .map(|(j, c)| CertSpec {
                    at: format!("{at}.certificates[{j}]"),
                    cert: ConfigFile::new(
                        loaded.resolve_path(&c.cert),
                        format!("{at}.certificates[{j}].cert"),
                    ),
                    key: ConfigFile::new(
                        loaded.resolve_path(&c.key),
                        format!("{at}.certificates[{j}].key"),
                    ),
                    hosts: c.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
                })
                .collect(),
            min_version: cfg.min_version,
            client_auth: cfg.client_auth.as_ref().map(|a| {
                (
                    ConfigFile::new(loaded.resolve_path(&a.ca), format!("{at}.client_auth.ca")),
                    a.required,
                )
            }),
            alpn: if http2 {
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            } else {
                vec![b"http/1.1".to_vec()]
            },
            at,
        };
        // Stamps first: a file that changes while it is read is seen as
        // changed on the next check and read again.
        let stamps = spec.files().map(ConfigFile::stamp).collect();
        let config = spec.build()?;
        Ok(Self {
            spec,
            current: ArcSwap::from_pointee(config),
            stamps: Mutex::new(stamps),
        })
    }

    /// The config for a new connection.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// The config path of this listener's `tls` block, for logs.
    pub fn field(&self) -> &str {
        &self.spec.at
    }

    /// Re-reads the files if any of them changed on disk since the last
    /// check and swaps in the new certificates if they load.
    pub fn refresh(&self) -> Refresh {
        let now: Vec<Option<FileStamp>> = self.spec.files().map(ConfigFile::stamp).collect();
        {
            let mut stamps = match self.stamps.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if *stamps == now {
                return Refresh::Unchanged;
            }
            // Remember the new state even if it fails to load, so a broken
            // file is reported once rather than on every check.
            *stamps = now;
        }
        match self.spec.build() {
            Ok(config) => {
                self.current.store(Arc::new(config));
                Refresh::Reloaded
            }
            Err(errors) => Refresh::Failed(errors),
        }
    }
}

/// Checks the files of `listeners` every `interval` until aborted.
pub async fn watch(listeners: Vec<Arc<ListenerTls>>, interval: Duration) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        for l in &listeners {
            match l.refresh() {
                Refresh::Unchanged => {}
                Refresh::Reloaded => {
                    tracing::info!(listener = l.field(), "TLS certificates reloaded from disk");
                }
                Refresh::Failed(errors) => {
                    for e in errors {
                        tracing::error!(
                            field = %e.field,
                            error = %e.message,
                            "changed TLS files do not load; the previous certificates keep serving"
                        );
                    }
                }
            }
        }
    }
}

struct Spec {
    at: String,
    certificates: Vec<CertSpec>,
    min_version: TlsVersion,
    client_auth: Option<(ConfigFile, bool)>,
    alpn: Vec<Vec<u8>>,
}

struct CertSpec {
    at: String,
    cert: ConfigFile,
    key: ConfigFile,
    hosts: Vec<String>,
}

impl Spec {
    fn files(&self) -> impl Iterator<Item = &ConfigFile> {
        self.certificates
            .iter()
            .flat_map(|c| [&c.cert, &c.key])
            .chain(self.client_auth.iter().map(|(ca, _)| ca))
    }

    fn build(&self) -> Result<ServerConfig, Vec<FieldError>> {
        let provider = provider();
        let mut errors = Vec::new();
        let mut keys = Vec::with_capacity(self.certificates.len());
        for (j, c) in self.certificates.iter().enumerate() {
            match c.load(&provider) {
                Ok((key, names)) => {
                    if names.is_empty() && j > 0 {
                        errors.push(FieldError::new(
                            format!("{}.hosts", c.at),
                            "the certificate has no DNS names and is not the first (default) \
                             one, so it would never be served; list its names in `hosts`",
                        ));
                    }
                    keys.push((key, names));
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        let verifier = match &self.client_auth {
            None => None,
            Some((ca, required)) => match client_verifier(ca, *required, &provider) {
                Ok(v) => Some(v),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let Some(resolver) = SniResolver::new(keys) else {
            return Err(vec![FieldError::new(
                format!("{}.certificates", self.at),
                "at least one certificate is required",
            )]);
        };
        let versions: &[&rustls::SupportedProtocolVersion] = match self.min_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| {
                vec![FieldError::new(
                    format!("{}.min_version", self.at),
                    e.to_string(),
                )]
            })?;
        let builder = match verifier {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = self.alpn.clone();
        Ok(config)
    }
}

impl CertSpec {
    /// The certified key and the (lower-case) names it serves.
    fn load(
        &self,
        provider: &rustls::crypto::CryptoProvider,
    ) -> Result<(Arc<CertifiedKey>, Vec<String>), Vec<FieldError>> {
        let chain = self.cert.read().and_then(|pem| self.cert.certs(&pem));
        let key = self.key.read().and_then(|pem| self.key.key(&pem));
        let (chain, key) = match (chain, key) {
            (Ok(c), Ok(k)) => (c, k),
            (c, k) => return Err(c.err().into_iter().chain(k.err()).collect()),
        };
        let names = if self.hosts.is_empty() {
            chain.first().map(dns_sans).unwrap_or_default()
        } else {
            self.hosts.clone()
        };
        let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
            let message = match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => format!(
                    "the key in `{}` does not match the certificate in `{}`",
                    self.key.path.display(),
                    self.cert.path.display()
                ),
                other => format!(
                    "cannot use the key in `{}`: {other}",
                    self.key.path.display()
                ),
            };
            vec![FieldError::new(&self.key.field, message)]
        })?;
        Ok((Arc::new(certified), names))
    }
}

fn client_verifier(
    ca: &ConfigFile,
    required: bool,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, FieldError> {
    let roots = ca.read().and_then(|pem| ca.roots(&pem))?;
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = if required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder
        .build()
        .map_err(|e| FieldError::new(&ca.field, format!("cannot verify clients with it: {e}")))
}

/// The DNS names (SANs) of a certificate, lower case.
fn dns_sans(der: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Picks the certificate for a connection from the SNI name: an exact
/// name, else a one-label wildcard (`*.example.com` serves
/// `api.example.com`, not `example.com` or `a.b.example.com`), else the
/// first certificate of the listener.
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// From certified keys and the names each serves, in config order
    /// (an earlier certificate wins a name listed twice). `None` if empty.
    pub fn new(keys: Vec<(Arc<CertifiedKey>, Vec<String>)>) -> Option<Self> {
        let default = keys.first()?.0.clone();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (key, names) in keys {
            for name in names {
                let name = name.trim_end_matches('.').to_string();
                match name.strip_prefix("*.") {
                    Some(rest) => wildcard.entry(rest.to_string()),
                    None => exact.entry(name),
                }
                .or_insert_with(|| key.clone());
            }
        }
        Some(Self {
            exact,
            wildcard,
            default,
        })
    }

    /// The certificate for server name `sni`.
    pub fn pick(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = sni else {
            return &self.default;
        };
        let name = name.trim_end_matches('.');
        let name: Cow<'_, str> = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            name.to_ascii_lowercase().into()
        } else {
            name.into()
        };
        if let Some(k) = self.exact.get(&*name) {
            return k;
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.wildcard.get(parent)
        {
            return k;
        }
        &self.default
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()).clone())
    }
}

/// What plugins learn about a finished handshake. Computed once per
/// connection.
pub fn session_info(conn: &ServerConnection) -> TlsInfo {
    TlsInfo {
        sni: conn.server_name().map(str::to_ascii_lowercase),
        version: match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        },
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        cipher: conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown"),
        client_cert: conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(client_cert),
    }
}

/// Reads the parts of a (verified) client certificate plugins care about.
pub fn client_cert(der: &CertificateDer<'_>) -> ClientCert {
    let fingerprint_sha256 = hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return ClientCert {
            subject: String::new(),
            sans: Vec::new(),
            fingerprint_sha256,
            not_after: None,
        };
    };
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        use x509_parser::extensions::GeneralName;
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push(SubjectAltName::Dns((*d).to_string())),
                GeneralName::URI(u) => sans.push(SubjectAltName::Uri((*u).to_string())),
                GeneralName::RFC822Name(e) => sans.push(SubjectAltName::Email((*e).to_string())),
                GeneralName::IPAddress(ip) => {
                    let ip = match ip.len() {
                        4 => <[u8; 4]>::try_from(*ip).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*ip).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    sans.extend(ip.map(SubjectAltName::Ip));
                }
                _ => {}
            }
        }
    }
    let not_after = u64::try_from(cert.validity().not_after.timestamp())
        .ok()
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    ClientCert {
        subject: cert.subject().to_string(),
        sans,
        fingerprint_sha256,
        not_after,
    }
}
