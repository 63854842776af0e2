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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use gatehouse_testkit::tls::{CertPair, TestCa};

    fn certified(pair: &CertPair) -> Arc<CertifiedKey> {
        Arc::new(
            CertifiedKey::from_der(vec![pair.cert_der.clone()], pair.key_der(), &provider())
                .unwrap(),
        )
    }

    #[test]
    fn sni_prefers_exact_then_one_label_wildcards_then_the_first() {
        let ca = TestCa::new("unit CA");
        let default = certified(&ca.server_cert(&["default.test"]));
        let wild = certified(&ca.server_cert(&["*.example.com"]));
        let exact = certified(&ca.server_cert(&["api.example.com"]));
        let other = certified(&ca.server_cert(&["api.example.com"]));
        let r = SniResolver::new(vec![
            (default.clone(), vec!["default.test".into()]),
            (wild.clone(), vec!["*.example.com".into()]),
            (exact.clone(), vec!["api.example.com".into()]),
            // Listed twice: the earlier certificate keeps the name.
            (other, vec!["api.example.com".into()]),
        ])
        .unwrap();
        let is = |sni: Option<&str>, want: &Arc<CertifiedKey>| {
            assert!(Arc::ptr_eq(r.pick(sni), want), "{sni:?}");
        };
        is(Some("api.example.com"), &exact);
        is(Some("API.EXAMPLE.COM."), &exact);
        is(Some("www.example.com"), &wild);
        is(Some("a.b.example.com"), &default);
        is(Some("example.com"), &default);
        is(Some("default.test"), &default);
        is(Some("nope.test"), &default);
        is(None, &default);
        assert!(SniResolver::new(Vec::new()).is_none());
    }

    #[test]
    fn client_certificates_are_read_once_into_tls_info_parts() {
        let ca = TestCa::new("clients");
        let pair = ca.client_cert(
            "svc-a",
            &["a.internal", "spiffe://t/a", "me@example.org", "::1"],
        );
        let c = client_cert(&pair.cert_der);
        assert_eq!(c.subject, "CN=svc-a");
        assert_eq!(
            c.sans,
            vec![
                SubjectAltName::Dns("a.internal".into()),
                SubjectAltName::Uri("spiffe://t/a".into()),
                SubjectAltName::Email("me@example.org".into()),
                SubjectAltName::Ip("::1".parse().unwrap()),
            ]
        );
        assert_eq!(c.dns_names().collect::<Vec<_>>(), ["a.internal"]);
        assert_eq!(c.uris().collect::<Vec<_>>(), ["spiffe://t/a"]);
        assert_eq!(c.fingerprint_sha256.len(), 64);
        assert!(c.not_after.unwrap() > SystemTime::now());
        // Not a certificate: the fingerprint still identifies the bytes.
        let junk = client_cert(&CertificateDer::from(vec![1u8, 2, 3]));
        assert_eq!(junk.subject, "");
        assert_eq!(
            junk.fingerprint_sha256,
            "039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81"
        );
    }

    fn load(dir: &std::path::Path) -> Result<ListenerTls, Vec<FieldError>> {
        let yaml = "listeners:\n  - address: 127.0.0.1:0\n    tls:\n      certificates:\n        - cert: gw.pem\n          key: gw.key\n";
        let loaded = gatehouse_config::parse_str(yaml, "t.yaml")
            .unwrap()
            .with_base_dir(dir);
        let cfg = loaded.config.listeners[0].tls.clone().unwrap();
        ListenerTls::load(&cfg, true, &loaded, 0)
    }

    #[test]
    fn refresh_swaps_only_certificates_that_load() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("refresh");
        ca.server_cert(&["v1.test"]).write(dir.path(), "gw");
        let tls = load(dir.path()).unwrap();
        let first = tls.config();
        assert_eq!(first.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(matches!(tls.refresh(), Refresh::Unchanged));
        assert!(Arc::ptr_eq(&first, &tls.config()));

        // A longer name: the file's length changes even if its mtime does
        // not (timestamps are as coarse as the kernel tick).
        ca.server_cert(&["version-two.test"])
            .write(dir.path(), "gw");
        assert!(matches!(tls.refresh(), Refresh::Reloaded));
        let second = tls.config();
        assert!(!Arc::ptr_eq(&first, &second));

        std::fs::write(dir.path().join("gw.key"), "not a key").unwrap();
        match tls.refresh() {
            Refresh::Failed(e) => {
                assert_eq!(e[0].field, "listeners[0].tls.certificates[0].key", "{e:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(Arc::ptr_eq(&second, &tls.config()));
        // Reported once, not on every check.
        assert!(matches!(tls.refresh(), Refresh::Unchanged));

        std::fs::remove_file(dir.path().join("gw.pem")).unwrap();
        let errors = load(dir.path()).err().unwrap();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "listeners[0].tls.certificates[0].cert",
                "listeners[0].tls.certificates[0].key"
            ]
        );
    }
}
