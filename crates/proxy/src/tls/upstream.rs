//! TLS to upstreams: the rustls `ClientConfig` of an `https://` service
//! ([`UpstreamTls`]), the [`Connector`] that plugs it into hyper-util's
//! pooled client (TCP through hyper-util's `HttpConnector`, then a
//! tokio-rustls handshake against the configured server name, never the
//! target's address), and the wording of handshake failures for the
//! `upstream-tls` problem.
//!
//! Plain `http://` services never come here: they keep the bare
//! `HttpConnector` client (see `client.rs`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use gatehouse_config::{Loaded, Service, UpstreamProtocol};
use gatehouse_core::BoxError;
use http::Uri;
use http::uri::Scheme;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;

use super::{ConfigFile, FieldError, provider};

/// The TLS settings of one `https://` service, ready to connect with.
pub struct UpstreamTls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    key: TlsKey,
}

/// What makes two services' TLS settings the same, for sharing a pooled
/// client: the server name, whether verification is off, and a digest of
/// the CA, certificate and key files' contents (so a reload after a CA
/// file changed builds a new client).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsKey {
    server_name: String,
    insecure: bool,
    files_sha256: Vec<u8>,
}

impl UpstreamTls {
    /// Builds service `index`'s TLS settings; `host` is the URL's host.
    pub fn load(
        svc: &Service,
        host: &str,
        loaded: &Loaded,
        index: usize,
    ) -> Result<Self, Vec<FieldError>> {
        let tls = svc.tls.clone().unwrap_or_default();
        let at = format!("services[{index}].tls");
        let mut errors = Vec::new();
        let (name, name_field) = match &tls.sni {
            Some(sni) => (sni.clone(), format!("{at}.sni")),
            None => (
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                format!("services[{index}].url"),
            ),
        };
        let server_name = ServerName::try_from(name.clone()).map_err(|e| {
            FieldError::new(
                &name_field,
                format!("`{name}` is not a TLS server name: {e}"),
            )
        });
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut hash_file = |tag: &[u8], bytes: &[u8]| {
            digest.update(tag);
            digest.update(&(bytes.len() as u64).to_be_bytes());
            digest.update(bytes);
        };
        let provider = provider();

        let verifier: Option<Arc<dyn ServerCertVerifier>> = if tls.insecure_skip_verify {
            tracing::warn!(
                service = %svc.name,
                "tls.insecure_skip_verify: the upstream's certificate is NOT verified; \
                 anyone on the network path can impersonate it"
            );
            Some(Arc::new(NoVerify(provider.clone())))
        } else {
            let roots = match &tls.ca {
                Some(ca) => {
                    let file = ConfigFile::new(loaded.resolve_path(ca), format!("{at}.ca"));
                    file.read()
                        .inspect(|pem| hash_file(b"ca", pem))
                        .and_then(|pem| file.roots(&pem))
                        .map(Arc::new)
                }
                None => Ok(system_roots()),
            };
            match roots {
                Ok(roots) => {
                    match WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                        .build()
                    {
                        Ok(v) => Some(v),
                        Err(e) => {
                            errors.push(FieldError::new(
                                format!("{at}.ca"),
                                format!("cannot verify upstreams with it: {e}"),
                            ));
                            None
                        }
                    }
                }
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        };

        let client_auth = match (&tls.client_cert, &tls.client_key) {
            (Some(cert), Some(key)) => {
                let cert = ConfigFile::new(loaded.resolve_path(cert), format!("{at}.client_cert"));
                let key = ConfigFile::new(loaded.resolve_path(key), format!("{at}.client_key"));
                let chain = cert
                    .read()
                    .inspect(|pem| hash_file(b"cert", pem))
                    .and_then(|pem| cert.certs(&pem));
                let private = key
                    .read()
                    .inspect(|pem| hash_file(b"key", pem))
                    .and_then(|pem| key.key(&pem));
                match (chain, private) {
                    (Ok(c), Ok(k)) => Some((c, k, key)),
                    (c, k) => {
                        errors.extend(c.err());
                        errors.extend(k.err());
                        None
                    }
                }
            }
            _ => None,
        };
        let server_name = match server_name {
            Ok(n) => Some(n),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let (Some(verifier), Some(server_name), true) = (verifier, server_name, errors.is_empty())
        else {
            return Err(errors);
        };

        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| vec![FieldError::new(&at, e.to_string())])?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match client_auth {
            Some((chain, private, key)) => {
                builder.with_client_auth_cert(chain, private).map_err(|e| {
                    let message = match e {
                        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                            format!(
                                "the key in `{}` does not match `client_cert`",
                                key.path.display()
                            )
                        }
                        other => {
                            format!("cannot use the key in `{}`: {other}", key.path.display())
                        }
                    };
                    vec![FieldError::new(&key.field, message)]
                })?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = match svc.protocol {
            UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
            UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
        };
        Ok(Self {
            config: Arc::new(config),
            server_name,
            key: TlsKey {
                server_name: name,
                insecure: tls.insecure_skip_verify,
                files_sha256: digest.finish().as_ref().to_vec(),
            },
        })
    }

    /// The client-sharing key.
    pub fn key(&self) -> &TlsKey {
        &self.key
    }
}

/// The system's root certificates, read once per process; the bundled
/// Mozilla roots (webpki-roots) if none could be loaded.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "while loading the system's root certificates");
            }
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::info!(
                    "no system root certificates found; using the bundled Mozilla roots"
                );
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Arc::new(roots)
        })
        .clone()
}

/// Accepts any certificate (`insecure_skip_verify`), but still checks the
/// handshake signatures so the session itself is sound.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects to upstreams: plain TCP for `http://` URIs, TCP plus a TLS
/// handshake (under the connect timeout) for `https://` ones.
#[derive(Clone)]
pub struct Connector {
    http: HttpConnector,
    tls: Option<Handshake>,
}

#[derive(Clone)]
struct Handshake {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    timeout: Duration,
}

impl Connector {
    /// Wraps `http` (which must not enforce `http://`); `tls` is required
    /// for `https://` URIs. The handshake gets `handshake_timeout`.
    pub fn new(
        http: HttpConnector,
        tls: Option<&UpstreamTls>,
        handshake_timeout: Duration,
    ) -> Self {
        Self {
            http,
            tls: tls.map(|t| Handshake {
                connector: tokio_rustls::TlsConnector::from(t.config.clone()),
                server_name: t.server_name.clone(),
                timeout: handshake_timeout,
            }),
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        let tls = self.tls.clone();
        let connecting = self.http.call(uri);
        Box::pin(async move {
            let tcp = connecting.await?;
            if !https {
                return Ok(Stream::Plain(tcp));
            }
            let Some(tls) = tls else {
                return Err("an https:// upstream without TLS settings".into());
            };
            let handshake = tls.connector.connect(tls.server_name, tcp.into_inner());
            match tokio::time::timeout(tls.timeout, handshake).await {
                Ok(Ok(stream)) => {
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    Ok(Stream::Tls(Box::new(TokioIo::new(stream)), h2))
                }
                Ok(Err(e)) => Err(e.into()),
                Err(_) => {
                    Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out").into())
                }
            }
        })
    }
}

/// A connection to an upstream, plain or TLS.
pub enum Stream {
    /// `http://`.
    Plain(TokioIo<TcpStream>),
    /// `https://` (boxed: the session state is large); the flag says
    /// whether ALPN chose `h2`.
    Tls(
        Box<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>,
        bool,
    ),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Self::Plain(s) => s.connected(),
            Self::Tls(s, h2) => {
                let connected = s.inner().get_ref().0.connected();
                if *h2 {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}

/// The rustls error somewhere in `e`'s causes, if the failure was TLS.
/// tokio-rustls reports rustls errors inside `io::Error`s, whose
/// `source()` skips the wrapped error, so each one is opened explicitly.
pub fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    std::iter::successors(Some(e), |err| err.source()).find_map(|err| {
        err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        })
    })
}

/// A short reason for the client, e.g. `certificate verify failed:
/// UnknownIssuer`. Names the kind of failure, never certificate contents.
pub fn describe(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => format!("certificate verify failed: {}", short(c)),
        E::AlertReceived(a) => format!("the upstream refused the handshake: {}", short(a)),
        E::NoCertificatesPresented => "the upstream presented no certificate".to_string(),
        E::NoApplicationProtocol => "no common ALPN protocol".to_string(),
        E::InvalidMessage(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. } => {
            "the upstream does not speak TLS (unexpected or malformed message)".to_string()
        }
        E::PeerIncompatible(p) => format!("incompatible TLS settings: {}", short(p)),
        E::PeerMisbehaved(p) => format!("the upstream broke the TLS protocol: {}", short(p)),
        other => format!("TLS error: {}", short(other)),
    }
}

/// The variant name of an error enum, without its details (which may
/// carry names and times from certificates).
fn short(d: &impl std::fmt::Debug) -> String {
    let text = format!("{d:?}");
    let head = text.split(['{', '(']).next().unwrap_or_default().trim();
    head.strip_suffix("Context").unwrap_or(head).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn reasons_name_the_failure_without_details() {
        let e = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert_eq!(describe(&e), "certificate verify failed: UnknownIssuer");
        let e =
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("secret.internal").unwrap(),
                presented: vec!["other.internal".into()],
            });
        let reason = describe(&e);
        assert_eq!(reason, "certificate verify failed: NotValidForName");
        assert!(!reason.contains("internal"));
        let e = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        assert_eq!(
            describe(&e),
            "the upstream refused the handshake: CertificateRequired"
        );
    }

    #[test]
    fn tls_errors_are_found_inside_io_errors() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        let io = io::Error::new(io::ErrorKind::InvalidData, inner);
        let boxed: BoxError = io.into();
        let found = tls_error(&*boxed).expect("found");
        assert_eq!(describe(found), "certificate verify failed: Expired");
        let plain: BoxError = io::Error::other("nope").into();
        assert!(tls_error(&*plain).is_none());
    }
}
