//! What a plugin can learn about the TLS session of the downstream
//! connection: [`TlsInfo`] in [`crate::Ctx::tls`]. The proxy computes it
//! once per connection, right after the handshake, and shares it (one
//! `Arc`) with every request of that connection.

use std::net::IpAddr;
use std::time::SystemTime;

/// The TLS session of a downstream connection accepted on a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// The server name the client asked for (SNI), lower case; `None` when
    /// the client sent none (for example when connecting to an IP address).
    pub sni: Option<String>,
    /// The negotiated protocol version: `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// The application protocol chosen by ALPN (`h2`, `http/1.1`), if the
    /// client offered any.
    pub alpn: Option<String>,
    /// The negotiated cipher suite in IANA notation, e.g.
    /// `TLS13_AES_128_GCM_SHA256`.
    pub cipher: &'static str,
    /// The client certificate, when the listener has `client_auth` and the
    /// client presented one. It has been verified against the configured
    /// CA: a certificate that fails verification fails the handshake.
    pub client_cert: Option<ClientCert>,
}

/// The end-entity certificate a client presented (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The subject distinguished name in RFC 4514 style, most specific
    /// attribute first as the certificate lists it, e.g.
    /// `CN=billing-service, O=Example Corp`.
    pub subject: String,
    /// The subject alternative names, in certificate order.
    pub sans: Vec<SubjectAltName>,
    /// SHA-256 of the certificate's DER encoding, lower-case hex (64
    /// characters) — the usual "certificate fingerprint" for pinning.
    pub fingerprint_sha256: String,
    /// The end of the certificate's validity, if it could be read.
    pub not_after: Option<SystemTime>,
}

impl ClientCert {
    /// The certificate's DNS names.
    pub fn dns_names(&self) -> impl Iterator<Item = &str> {
        self.sans.iter().filter_map(|s| match s {
            SubjectAltName::Dns(d) => Some(d.as_str()),
            _ => None,
        })
    }

    /// The certificate's URIs (for example SPIFFE IDs).
    pub fn uris(&self) -> impl Iterator<Item = &str> {
        self.sans.iter().filter_map(|s| match s {
            SubjectAltName::Uri(u) => Some(u.as_str()),
            _ => None,
        })
    }
}

/// One subject alternative name of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectAltName {
    /// `dNSName`, e.g. `client.example.com`.
    Dns(String),
    /// `iPAddress`.
    Ip(IpAddr),
    /// `uniformResourceIdentifier`, e.g. `spiffe://example.org/billing`.
    Uri(String),
    /// `rfc822Name`, an e-mail address.
    Email(String),
}

impl std::fmt::Display for SubjectAltName {
    /// `DNS:name`, `IP:addr`, `URI:uri` or `email:addr` (OpenSSL's notation).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(d) => write!(f, "DNS:{d}"),
            Self::Ip(ip) => write!(f, "IP:{ip}"),
            Self::Uri(u) => write!(f, "URI:{u}"),
            Self::Email(e) => write!(f, "email:{e}"),
        }
    }
}
