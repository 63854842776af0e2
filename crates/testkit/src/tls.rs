//! TLS test support: a throw-away certificate authority ([`TestCa`]) that
//! issues server and client certificates with rcgen, PEM files in a test's
//! temporary directory, rustls server configs for a TLS [`crate::Upstream`]
//! ([`server_config`]), and an HTTPS client ([`TlsClient`]) that reports
//! what the handshake negotiated (version, ALPN, the server certificate's
//! names) next to the response.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, Version, header};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::body::BoxBody;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert: rcgen::Certificate,
}

impl TestCa {
    /// A new self-signed CA whose subject is `CN=<name>`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        Self {
            issuer: Issuer::new(params, key),
            cert,
        }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// Writes the CA certificate to `dir/<name>` and returns the path.
    pub fn write_pem(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.cert_pem()).expect("write CA PEM");
        path
    }

    /// A server certificate for `names` (DNS names, `*.wildcards` or IP
    /// addresses); its subject is `CN=<first name>`.
    pub fn server_cert(&self, names: &[&str]) -> CertPair {
        let cn = names.first().copied().unwrap_or("server");
        self.issue(cn, names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with subject `CN=<common_name>` and these
    /// subject alternative names: `x://...` becomes a URI, `a@b` an e-mail
    /// address, an IP address an IP, anything else a DNS name.
    pub fn client_cert(&self, common_name: &str, sans: &[&str]) -> CertPair {
        self.issue(common_name, sans, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, cn: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> CertPair {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans.iter().map(|s| san(s)).collect();
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

fn san(s: &str) -> SanType {
    if let Ok(ip) = s.parse() {
        SanType::IpAddress(ip)
    } else if s.contains("://") {
        SanType::URI(s.try_into().expect("URI SAN"))
    } else if s.contains('@') {
        SanType::Rfc822Name(s.try_into().expect("email SAN"))
    } else {
        SanType::DnsName(s.try_into().expect("DNS SAN"))
    }
}

/// A leaf certificate and its private key (PKCS#8).
#[derive(Clone)]
pub struct CertPair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl CertPair {
    /// The private key, DER.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// Writes `dir/<stem>.pem` and `dir/<stem>.key`; returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert PEM");
        std::fs::write(&key, &self.key_pem).expect("write key PEM");
        (cert, key)
    }
}

/// A server config for a TLS test upstream serving `pair`, offering
/// `alpn` (e.g. `&["h2", "http/1.1"]`), and requiring a client
/// certificate from `client_ca` when given.
pub fn server_config(
    pair: &CertPair,
    alpn: &[&str],
    client_ca: Option<&TestCa>,
) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.cert_der()).expect("client CA");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(vec![pair.cert_der.clone()], pair.key_der())
        .expect("server cert");
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// What a handshake negotiated, seen from the client.
#[derive(Debug, Clone)]
pub struct Session {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: String,
    /// The ALPN protocol the server chose.
    pub alpn: Option<String>,
    /// The DNS names (SANs) of the certificate the server presented.
    pub server_names: Vec<String>,
}

/// A collected HTTPS response plus the session it came over.
#[derive(Debug)]
pub struct TlsResponse {
    /// Status code.
    pub status: u16,
    /// HTTP version of the response (HTTP/1.1 or HTTP/2).
    pub version: Version,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The TLS session.
    pub session: Session,
}

impl TlsResponse {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// An HTTPS client for tests: trusts the given CAs, offers the chosen
/// ALPN protocols and TLS versions, optionally presents a client
/// certificate. Every request uses a new connection.
#[derive(Clone)]
pub struct TlsClient {
    roots: RootCertStore,
    alpn: Vec<Vec<u8>>,
    versions: Vec<&'static SupportedProtocolVersion>,
    client_cert: Option<CertPair>,
    verify: bool,
}

impl TlsClient {
    /// A client that trusts `ca`, offers TLS 1.2 and 1.3 and ALPN
    /// `http/1.1`.
    pub fn trusting(ca: &TestCa) -> Self {
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert_der()).expect("CA root");
        Self {
            roots,
            alpn: vec![b"http/1.1".to_vec()],
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            client_cert: None,
            verify: true,
        }
    }

    /// Accepts any server certificate (the session still reports which
    /// one was served), to see what a server sends for a name its
    /// certificates do not cover.
    pub fn accept_any_server_cert(mut self) -> Self {
        self.verify = false;
        self
    }

    /// Offers these ALPN protocols instead (empty: offer none).
    pub fn alpn(mut self, protocols: &[&str]) -> Self {
        self.alpn = protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
        self
    }

    /// Speaks TLS 1.2 only.
    pub fn tls12_only(mut self) -> Self {
        self.versions = vec![&rustls::version::TLS12];
        self
    }

    /// Speaks TLS 1.3 only.
    pub fn tls13_only(mut self) -> Self {
        self.versions = vec![&rustls::version::TLS13];
        self
    }

    /// Presents `pair` when the server asks for a certificate.
    pub fn client_cert(mut self, pair: &CertPair) -> Self {
        self.client_cert = Some(pair.clone());
        self
    }

    /// The rustls config these settings make.
    pub fn config(&self) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&self.versions)
            .expect("protocol versions");
        let builder = if self.verify {
            builder.with_root_certificates(self.roots.clone())
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
        };
        let mut config = match &self.client_cert {
            Some(pair) => builder
                .with_client_auth_cert(vec![pair.cert_der.clone()], pair.key_der())
                .expect("client cert"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        Arc::new(config)
    }

    /// Connects to `addr` and does the handshake, sending `server_name`
    /// as SNI (an IP address sends none).
    pub async fn connect(
        &self,
        addr: SocketAddr,
        server_name: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        tokio_rustls::TlsConnector::from(self.config())
            .connect(name, tcp)
            .await
    }

    /// GET `path` on a new connection to `addr` (see [`TlsClient::send`]).
    pub async fn get(
        &self,
        addr: SocketAddr,
        server_name: &str,
        path: &str,
    ) -> Result<TlsResponse, BoxError> {
        let req = Request::get(path)
            .body(crate::body::empty())
            .expect("request");
        self.send(addr, server_name, req).await
    }

    /// Sends `req` (its URI a path) on a new connection to `addr`, over
    /// HTTP/2 if ALPN chose `h2`, else HTTP/1.1 with `Host: server_name`,
    /// and collects the response.
    pub async fn send(
        &self,
        addr: SocketAddr,
        server_name: &str,
        mut req: Request<BoxBody>,
    ) -> Result<TlsResponse, BoxError> {
        let stream = self.connect(addr, server_name).await?;
        let conn = stream.get_ref().1;
        let session = Session {
            version: match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
                other => format!("{other:?}"),
            },
            alpn: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            server_names: conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(dns_names)
                .unwrap_or_default(),
        };
        let io = TokioIo::new(stream);
        let resp = if session.alpn.as_deref() == Some("h2") {
            let uri = format!(
                "https://{server_name}{}",
                req.uri().path_and_query().map_or("/", |p| p.as_str())
            );
            *req.uri_mut() = uri.parse()?;
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            sender.send_request(req).await?
        } else {
            if !req.headers().contains_key(header::HOST) {
                req.headers_mut().insert(header::HOST, server_name.parse()?);
            }
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            sender.send_request(req).await?
        };
        collect(resp, session).await
    }
}

async fn collect(
    resp: Response<hyper::body::Incoming>,
    session: Session,
) -> Result<TlsResponse, BoxError> {
    let status = resp.status().as_u16();
    let version = resp.version();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(TlsResponse {
        status,
        version,
        headers,
        body,
        session,
    })
}

/// A verifier that accepts every certificate but checks handshake
/// signatures.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The DNS names (SANs) of a certificate.
pub fn dns_names(der: &CertificateDer<'_>) -> Vec<String> {
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
            x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_string()),
            _ => None,
        })
        .collect()
}
