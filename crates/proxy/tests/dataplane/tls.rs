//! TLS: termination on listeners (SNI, versions, ALPN/h2, certificate
//! reload from disk and on config reload, mutual TLS and what plugins see
//! of it, handshake timeouts and garbage), TLS to upstreams (custom CA,
//! verification failures as `upstream-tls`, SNI vs target address,
//! insecure mode, client certificates, h2 over TLS, health checks), and
//! the validation errors for TLS files. Certificates are made per test
//! with rcgen (`gatehouse_testkit::tls`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::{common, table};

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Resp, TestGateway, empty, req, send_with};
use gatehouse_core::{Ctx, Phase, Phases, Plugin, PluginError, PluginFactory};
use gatehouse_testkit::body;
use gatehouse_testkit::tls::{CertPair, TestCa, TlsClient, server_config};
use gatehouse_testkit::{Upstream, raw};
use http::Version;
use http::header::HeaderValue;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `path` as a quoted YAML scalar.
fn q(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

/// A gateway config with one TLS listener (`tls` is the indented body of
/// its `tls:` block) routing everything to `up`.
fn tls_gateway(tls: &str, up: &Upstream, extra_server: &str) -> String {
    format!(
        "server:\n  header_read_timeout: 2s\n  watch_interval: 50ms\n{extra_server}\
         listeners:\n  - address: \"127.0.0.1:0\"\n    tls:\n{tls}\
         services:\n  - name: up\n    url: \"{}\"\nroutes:\n  - name: all\n    service: up\n",
        up.url()
    )
}

/// One certificate entry of a listener's `tls.certificates`.
fn cert_entry(cert: &Path, key: &Path) -> String {
    format!("        - cert: {}\n          key: {}\n", q(cert), q(key))
}

/// The `tls` block body for a list of certificates.
fn certs_block(entries: &[String]) -> String {
    format!("      certificates:\n{}", entries.concat())
}

// ---------------------------------------------------------------- SNI

#[tokio::test]
async fn sni_picks_exact_then_wildcard_then_the_first_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("sni test CA");
    let default = ca.server_cert(&["default.test", "127.0.0.1"]);
    let wildcard = ca.server_cert(&["*.example.com"]);
    let exact = ca.server_cert(&["api.example.com"]);
    let (dc, dk) = default.write(dir.path(), "default");
    let (wc, wk) = wildcard.write(dir.path(), "wildcard");
    let (ec, ek) = exact.write(dir.path(), "exact");
    let up = Upstream::echo().await;
    // The exact certificate comes after the wildcard one: exact names win
    // whatever the order.
    let yaml = tls_gateway(
        &certs_block(&[
            cert_entry(&dc, &dk),
            cert_entry(&wc, &wk),
            cert_entry(&ec, &ek),
        ]),
        &up,
        "",
    );
    let gw = TestGateway::start(&yaml).await;
    let client = TlsClient::trusting(&ca);
    let served = |name: &'static str| {
        let client = client.clone().accept_any_server_cert();
        let addr = gw.addr();
        async move {
            let r = client.get(addr, name, "/").await.unwrap();
            assert_eq!(r.status, 200, "{name}");
            r.session.server_names
        }
    };
    assert_eq!(served("api.example.com").await, ["api.example.com"]);
    assert_eq!(served("API.Example.COM").await, ["api.example.com"]);
    assert_eq!(served("www.example.com").await, ["*.example.com"]);
    // A wildcard covers exactly one label.
    assert_eq!(served("a.b.example.com").await, ["default.test"]);
    assert_eq!(served("example.com").await, ["default.test"]);
    assert_eq!(served("unknown.test").await, ["default.test"]);
    // No SNI at all (connecting to an IP address): the default.
    assert_eq!(served("127.0.0.1").await, ["default.test"]);

    // And with verification on, each name gets a certificate valid for it.
    for name in ["api.example.com", "www.example.com", "default.test"] {
        let r = client.get(gw.addr(), name, "/").await.unwrap();
        assert_eq!(r.status, 200, "{name}");
    }
}

#[tokio::test]
async fn hosts_override_the_certificate_names() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("hosts CA");
    let first = ca.server_cert(&["first.test"]);
    // This certificate's own SAN is `other.test`, but the config says it
    // serves `second.test`; SNI `other.test` then gets the default.
    let second = ca.server_cert(&["other.test", "second.test"]);
    let (c1, k1) = first.write(dir.path(), "first");
    let (c2, k2) = second.write(dir.path(), "second");
    let up = Upstream::echo().await;
    let entries = [
        cert_entry(&c1, &k1),
        format!(
            "{}          hosts: [\"second.test\"]\n",
            cert_entry(&c2, &k2)
        ),
    ];
    let gw = TestGateway::start(&tls_gateway(&certs_block(&entries), &up, "")).await;
    let client = TlsClient::trusting(&ca).accept_any_server_cert();
    let r = client.get(gw.addr(), "second.test", "/").await.unwrap();
    assert_eq!(r.session.server_names, ["other.test", "second.test"]);
    let r = client.get(gw.addr(), "other.test", "/").await.unwrap();
    assert_eq!(r.session.server_names, ["first.test"]);
}

// ---------------------------------------------------- versions and ALPN

#[tokio::test]
async fn tls12_and_tls13_clients_work_and_min_version_13_rejects_12() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("versions CA");
    let (c, k) = ca.server_cert(&["gw.test"]).write(dir.path(), "gw");
    let up = Upstream::echo().await;
    let block = certs_block(&[cert_entry(&c, &k)]);
    let gw = TestGateway::start(&tls_gateway(&block, &up, "")).await;
    let client = TlsClient::trusting(&ca);

    let r = client
        .clone()
        .tls12_only()
        .get(gw.addr(), "gw.test", "/")
        .await
        .unwrap();
    assert_eq!((r.status, r.session.version.as_str()), (200, "TLSv1.2"));
    let r = client
        .clone()
        .tls13_only()
        .get(gw.addr(), "gw.test", "/")
        .await
        .unwrap();
    assert_eq!((r.status, r.session.version.as_str()), (200, "TLSv1.3"));

    // `min_version: 1.3` unquoted: YAML reads a number, accepted too.
    let block13 = format!("{block}      min_version: 1.3\n");
    let gw13 = TestGateway::start(&tls_gateway(&block13, &up, "")).await;
    let err = client
        .clone()
        .tls12_only()
        .connect(gw13.addr(), "gw.test")
        .await
        .expect_err("a TLS 1.2-only client must be refused");
    assert!(err.to_string().contains("ProtocolVersion"), "{err}");
    let r = client
        .clone()
        .get(gw13.addr(), "gw.test", "/")
        .await
        .unwrap();
    assert_eq!((r.status, r.session.version.as_str()), (200, "TLSv1.3"));
}

#[tokio::test]
async fn alpn_h2_serves_http2_and_http11_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("alpn CA");
    let (c, k) = ca.server_cert(&["gw.test"]).write(dir.path(), "gw");
    let up = Upstream::echo().await;
    let block = certs_block(&[cert_entry(&c, &k)]);
    let gw = TestGateway::start(&tls_gateway(&block, &up, "")).await;
    let client = TlsClient::trusting(&ca);

    let r = client
        .clone()
        .alpn(&["h2", "http/1.1"])
        .get(gw.addr(), "gw.test", "/h2")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.session.alpn.as_deref(), Some("h2"));
    assert_eq!(r.version, Version::HTTP_2);
    // The upstream (HTTP/1.1) was reached, with the https forwarding headers.
    let echo = r.json();
    assert_eq!(echo["path"], "/h2");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");
    assert!(
        echo["headers"]["forwarded"]
            .as_str()
            .unwrap()
            .contains("proto=https"),
        "{echo}"
    );

    let r = client
        .clone()
        .alpn(&["http/1.1"])
        .get(gw.addr(), "gw.test", "/h1")
        .await
        .unwrap();
    assert_eq!((r.status, r.version), (200, Version::HTTP_11));
    assert_eq!(r.session.alpn.as_deref(), Some("http/1.1"));
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "https");

    // A client that offers no ALPN at all gets HTTP/1.1.
    let r = client
        .clone()
        .alpn(&[])
        .get(gw.addr(), "gw.test", "/none")
        .await
        .unwrap();
    assert_eq!((r.status, r.version), (200, Version::HTTP_11));
    assert_eq!(r.session.alpn, None);

    // `http2: false`: h2 is not offered.
    let h1_only =
        tls_gateway(&block, &up, "").replace("    tls:\n", "    http2: false\n    tls:\n");
    let gw1 = TestGateway::start(&h1_only).await;
    let r = client
        .clone()
        .alpn(&["h2", "http/1.1"])
        .get(gw1.addr(), "gw.test", "/")
        .await
        .unwrap();
    assert_eq!((r.status, r.version), (200, Version::HTTP_11));
    assert_eq!(r.session.alpn.as_deref(), Some("http/1.1"));
}

// ------------------------------------------------------ certificate reload

/// Polls until a new connection is served a certificate for `name`.
async fn wait_for_cert(client: &TlsClient, gw: &TestGateway, name: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(gw.addr(), "localhost", "/").await
            && r.session.server_names.iter().any(|n| n == name)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Replaces `cert` and `key` by writing new files and renaming them over
/// the old ones (as deployment tools and cert-manager do).
fn replace(pair: &CertPair, cert: &Path, key: &Path) {
    let dir = cert.parent().unwrap();
    let (tc, tk) = pair.write(dir, "incoming");
    std::fs::rename(tk, key).unwrap();
    std::fs::rename(tc, cert).unwrap();
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("reload CA");
    let (c, k) = ca
        .server_cert(&["localhost", "v1.test"])
        .write(dir.path(), "gw");
    let up = Upstream::echo().await;
    let block = certs_block(&[cert_entry(&c, &k)]);
    let gw = TestGateway::start(&tls_gateway(&block, &up, "")).await;
    let client = TlsClient::trusting(&ca);
    assert!(wait_for_cert(&client, &gw, "v1.test").await);

    // A connection opened now keeps working across the swap.
    let before = client.connect(gw.addr(), "localhost").await.unwrap();

    replace(&ca.server_cert(&["localhost", "v2.test"]), &c, &k);
    assert!(
        wait_for_cert(&client, &gw, "v2.test").await,
        "the new certificate was not picked up"
    );

    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(before))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            http::Request::get("/old-connection")
                .header("host", "localhost")
                .body(body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A broken replacement (not PEM) is refused: the old one keeps serving.
    std::fs::write(&c, "this is not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = client.get(gw.addr(), "localhost", "/").await.unwrap();
    assert!(r.session.server_names.iter().any(|n| n == "v2.test"));

    // So is a certificate whose key does not match.
    let v3 = ca.server_cert(&["localhost", "v3.test"]);
    let stranger = ca.server_cert(&["localhost"]);
    std::fs::write(&k, &stranger.key_pem).unwrap();
    std::fs::write(&c, &v3.cert_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = client.get(gw.addr(), "localhost", "/").await.unwrap();
    assert!(
        r.session.server_names.iter().any(|n| n == "v2.test"),
        "{:?}",
        r.session.server_names
    );

    // Once the key matches, v3 serves: the watch survived the failures.
    std::fs::write(&k, &v3.key_pem).unwrap();
    assert!(wait_for_cert(&client, &gw, "v3.test").await);
}

#[tokio::test]
async fn a_config_reload_rereads_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("config reload CA");
    let (c, k) = ca
        .server_cert(&["localhost", "v1.test"])
        .write(dir.path(), "gw");
    let up = Upstream::echo().await;
    let block = certs_block(&[cert_entry(&c, &k)]);
    // No file watch: only a reload re-reads the files.
    let yaml = tls_gateway(&block, &up, "  watch: false\n");
    let gw = TestGateway::start(&yaml).await;
    let client = TlsClient::trusting(&ca);

    replace(&ca.server_cert(&["localhost", "v2.test"]), &c, &k);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client.get(gw.addr(), "localhost", "/").await.unwrap();
    assert_eq!(r.session.server_names, ["localhost", "v1.test"]);

    gw.reload(&yaml).await.unwrap();
    let r = client.get(gw.addr(), "localhost", "/").await.unwrap();
    assert_eq!(r.session.server_names, ["localhost", "v2.test"]);

    // A reload may change TLS settings: now TLS 1.3 only.
    let strict = tls_gateway(
        &format!("{block}      min_version: \"1.3\"\n"),
        &up,
        "  watch: false\n",
    );
    gw.reload(&strict).await.unwrap();
    assert!(
        client
            .clone()
            .tls12_only()
            .connect(gw.addr(), "localhost")
            .await
            .is_err()
    );

    // A reload with a broken certificate is refused as a whole.
    std::fs::write(&k, "garbage").unwrap();
    let err = gw.reload(&yaml).await.unwrap_err();
    assert!(
        err.contains("listeners[0].tls.certificates[0].key"),
        "{err}"
    );
    let r = client.get(gw.addr(), "localhost", "/").await.unwrap();
    assert_eq!(r.status, 200);

    // Turning TLS off for the running listener needs a restart.
    let plain = format!(
        "listeners:\n  - address: \"127.0.0.1:0\"\nservices:\n  - name: up\n    url: \"{}\"\n",
        up.url()
    );
    let err = gw.reload(&plain).await.unwrap_err();
    assert!(
        err.contains("listeners[0].tls") && err.contains("restart"),
        "{err}"
    );
}

// ------------------------------------------------------------- mutual TLS

/// A test-only plugin that shows what `Ctx::tls` holds in response
/// headers.
struct TlsEcho;

#[async_trait::async_trait]
impl Plugin for TlsEcho {
    fn name(&self) -> &'static str {
        "tls-echo"
    }

    fn phases(&self) -> Phases {
        Phases::of(&[Phase::ResponseHeaders])
    }

    async fn response_headers(&self, ctx: &mut Ctx, resp: &mut http::response::Parts) {
        let h = &mut resp.headers;
        let mut set = |name: &'static str, value: String| {
            h.insert(name, HeaderValue::from_str(&value).unwrap());
        };
        let Some(tls) = &ctx.tls else {
            set("x-tls", "none".into());
            return;
        };
        set("x-tls", "yes".into());
        set("x-tls-version", tls.version.into());
        set("x-tls-sni", tls.sni.clone().unwrap_or_default());
        set("x-tls-alpn", tls.alpn.clone().unwrap_or_default());
        set("x-tls-cipher", tls.cipher.into());
        match &tls.client_cert {
            None => set("x-client-cert", "none".into()),
            Some(cert) => {
                set("x-client-cert", "yes".into());
                set("x-client-subject", cert.subject.clone());
                let sans: Vec<String> = cert.sans.iter().map(ToString::to_string).collect();
                set("x-client-sans", sans.join(", "));
                set("x-client-fingerprint", cert.fingerprint_sha256.clone());
                let valid = cert
                    .not_after
                    .is_some_and(|t| t > std::time::SystemTime::now());
                set("x-client-valid", valid.to_string());
            }
        }
    }
}

struct TlsEchoFactory;

impl PluginFactory for TlsEchoFactory {
    fn name(&self) -> &'static str {
        "tls-echo"
    }

    fn priority(&self) -> i32 {
        0
    }

    fn band(&self) -> gatehouse_core::Band {
        gatehouse_core::Band::Transform
    }

    fn schema(&self) -> serde_json::Value {
        serde_json::json!({})
    }

    fn build(
        &self,
        _config: &serde_json::Value,
        _cx: &gatehouse_core::BuildCx<'_>,
    ) -> Result<Arc<dyn Plugin>, PluginError> {
        Ok(Arc::new(TlsEcho))
    }
}

fn registry_with_tls_echo() -> gatehouse_plugins::Registry {
    let mut registry = gatehouse_plugins::registry();
    registry.register(Arc::new(TlsEchoFactory));
    registry
}

fn mtls_gateway(
    dir: &Path,
    server: &CertPair,
    ca_file: &Path,
    up: &Upstream,
    required: bool,
) -> String {
    let (c, k) = server.write(dir, "gw");
    let block = format!(
        "{}      client_auth:\n        ca: {}\n        required: {required}\n",
        certs_block(&[cert_entry(&c, &k)]),
        q(ca_file)
    );
    format!(
        "{}plugins:\n  - name: tls-echo\n",
        tls_gateway(&block, up, "")
    )
}

fn header(r: &gatehouse_testkit::tls::TlsResponse, name: &str) -> String {
    r.headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn mtls_required_rejects_missing_and_foreign_certs_and_shows_the_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("server CA");
    let client_ca = TestCa::new("clients CA");
    let other_ca = TestCa::new("someone else's CA");
    let ca_file = client_ca.write_pem(dir.path(), "clients-ca.pem");
    let up = Upstream::echo().await;
    let yaml = mtls_gateway(
        dir.path(),
        &server_ca.server_cert(&["gw.test"]),
        &ca_file,
        &up,
        true,
    );
    let gw = TestGateway::start_with_registry(&yaml, registry_with_tls_echo()).await;
    let client = TlsClient::trusting(&server_ca);

    // No certificate: the handshake fails (with TLS 1.3 the client learns
    // it when it reads the server's alert, so look at the request).
    let err = client.get(gw.addr(), "gw.test", "/").await.unwrap_err();
    assert!(
        format!("{err:?}").contains("CertificateRequired"),
        "{err:?}"
    );
    // A certificate from another CA: refused too.
    let foreign = other_ca.client_cert("intruder", &["intruder.test"]);
    let err = client
        .clone()
        .client_cert(&foreign)
        .get(gw.addr(), "gw.test", "/")
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("UnknownCA"), "{err:?}");
    assert_eq!(up.hits(), 0);

    // A good certificate: 200, and a plugin sees who the client is.
    let good = client_ca.client_cert(
        "billing",
        &[
            "billing.internal",
            "spiffe://example.org/billing",
            "ops@example.org",
            "10.1.2.3",
        ],
    );
    for alpn in [&["http/1.1"][..], &["h2"][..]] {
        let r = client
            .clone()
            .client_cert(&good)
            .alpn(alpn)
            .get(gw.addr(), "gw.test", "/")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "x-client-cert"), "yes");
        assert_eq!(header(&r, "x-client-subject"), "CN=billing");
        assert_eq!(
            header(&r, "x-client-sans"),
            "DNS:billing.internal, URI:spiffe://example.org/billing, email:ops@example.org, IP:10.1.2.3"
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, &good.cert_der);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(header(&r, "x-client-fingerprint"), hex);
        assert_eq!(header(&r, "x-client-valid"), "true");
        assert_eq!(header(&r, "x-tls-sni"), "gw.test");
        assert_eq!(header(&r, "x-tls-version"), "TLSv1.3");
        assert_eq!(header(&r, "x-tls-alpn"), alpn[0]);
        assert!(header(&r, "x-tls-cipher").starts_with("TLS13_"), "{r:?}");
    }
}

#[tokio::test]
async fn mtls_optional_serves_clients_with_and_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("server CA");
    let client_ca = TestCa::new("clients CA");
    let ca_file = client_ca.write_pem(dir.path(), "clients-ca.pem");
    let up = Upstream::echo().await;
    let yaml = mtls_gateway(
        dir.path(),
        &server_ca.server_cert(&["gw.test"]),
        &ca_file,
        &up,
        false,
    );
    let gw = TestGateway::start_with_registry(&yaml, registry_with_tls_echo()).await;
    let client = TlsClient::trusting(&server_ca).tls12_only();

    let r = client.get(gw.addr(), "gw.test", "/").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "x-tls"), "yes");
    assert_eq!(header(&r, "x-tls-version"), "TLSv1.2");
    assert_eq!(header(&r, "x-client-cert"), "none");

    let good = client_ca.client_cert("reporting", &["reporting.internal"]);
    let r = client
        .clone()
        .client_cert(&good)
        .get(gw.addr(), "gw.test", "/")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "x-client-subject"), "CN=reporting");
    assert_eq!(header(&r, "x-client-sans"), "DNS:reporting.internal");

    // Optional does not mean unchecked: a foreign certificate still fails.
    let foreign = TestCa::new("other").client_cert("x", &["x.test"]);
    assert!(
        client
            .clone()
            .client_cert(&foreign)
            .get(gw.addr(), "gw.test", "/")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn plain_listeners_leave_ctx_tls_empty() {
    let up = Upstream::echo().await;
    let yaml = format!(
        "services:\n  - name: up\n    url: \"{}\"\nroutes:\n  - name: all\n    service: up\nplugins:\n  - name: tls-echo\n",
        up.url()
    );
    let gw = TestGateway::start_with_registry(&yaml, registry_with_tls_echo()).await;
    let r: Resp = common::get(&gw.url("/")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-tls"), Some("none"));
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "http");
}

// ------------------------------------------------ hostile downstream peers

#[tokio::test]
async fn a_client_that_never_handshakes_is_closed_after_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("timeout CA");
    let (c, k) = ca.server_cert(&["gw.test"]).write(dir.path(), "gw");
    let up = Upstream::echo().await;
    let yaml = tls_gateway(&certs_block(&[cert_entry(&c, &k)]), &up, "")
        .replace("header_read_timeout: 2s", "header_read_timeout: 300ms");
    let gw = TestGateway::start(&yaml).await;

    let started = Instant::now();
    let mut idle = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("the gateway must close the connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "nothing is sent to a client that never said hello");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}"
    );

    // The listener is fine afterwards.
    let r = TlsClient::trusting(&ca)
        .get(gw.addr(), "gw.test", "/")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn plain_http_and_garbage_on_a_tls_port_do_not_break_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("garbage CA");
    let (c, k) = ca.server_cert(&["gw.test"]).write(dir.path(), "gw");
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&tls_gateway(&certs_block(&[cert_entry(&c, &k)]), &up, "")).await;

    // Plain HTTP to the TLS port: no HTTP response, the connection closes.
    let resp = raw::send(gw.addr(), b"GET / HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await
        .unwrap();
    assert!(resp.responses.is_empty(), "{}", resp.text());
    assert_ne!(resp.end, raw::End::TimedOut);
    // Random bytes, and a connection that sends half a record and leaves.
    let mut s = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x02])
        .await
        .unwrap();
    drop(s);
    let resp = raw::send(gw.addr(), &[0u8, 1, 2, 3, 250, 251, 252, 253, 254, 255])
        .await
        .unwrap();
    assert_ne!(resp.end, raw::End::TimedOut);

    for _ in 0..3 {
        let r = TlsClient::trusting(&ca)
            .get(gw.addr(), "gw.test", "/")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    assert_eq!(up.hits(), 3);
}

// ------------------------------------------------------------ upstream TLS

/// A TLS echo upstream serving a certificate for `names` from `ca`.
async fn tls_upstream(ca: &TestCa, names: &[&str], client_ca: Option<&TestCa>) -> Upstream {
    let pair = ca.server_cert(names);
    Upstream::builder()
        .tls(server_config(&pair, &["h2", "http/1.1"], client_ca))
        .start()
        .await
}

/// A plain-listener gateway with one https service (`service` is the
/// service's YAML body after `name`, indented four spaces).
async fn upstream_gateway(service: &str) -> TestGateway {
    TestGateway::start(&format!(
        "services:\n  - name: secure\n{service}routes:\n  - name: all\n    service: secure\n"
    ))
    .await
}

/// `url` plus `targets` pointing at `up`, and a `tls:` block body.
fn secure_service(url: &str, up: &Upstream, tls: &str) -> String {
    let tls = if tls.is_empty() {
        String::new()
    } else {
        format!("    tls:\n{tls}")
    };
    format!(
        "    url: {url}\n    targets:\n      - target: \"{}\"\n{tls}",
        up.addr()
    )
}

async fn get_plain(gw: &TestGateway, path: &str) -> Resp {
    send_with(
        &gatehouse_testkit::http1_client(),
        empty(req("GET", &gw.url(path))),
    )
    .await
}

#[tokio::test]
async fn https_upstream_with_a_custom_ca_is_verified_against_the_url_host() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("backend CA");
    let ca_file = ca.write_pem(dir.path(), "backend-ca.pem");
    let up = tls_upstream(&ca, &["backend.internal"], None).await;

    // Connections go to the target (127.0.0.1:PORT); SNI and verification
    // use the URL's host.
    let gw = upstream_gateway(&secure_service(
        "https://backend.internal:8443/base",
        &up,
        &format!("      ca: {}\n", q(&ca_file)),
    ))
    .await;
    let r = get_plain(&gw, "/hello").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/base/hello");
    let seen = up.last_request().unwrap();
    assert_eq!(seen.header("host"), Some("backend.internal:8443"));
    assert_eq!(seen.version, Version::HTTP_11);

    // An IP URL with `sni` set: the name comes from `sni`.
    let gw = upstream_gateway(&format!(
        "    url: \"{}\"\n    tls:\n      ca: {}\n      sni: backend.internal\n",
        up.url(),
        q(&ca_file)
    ))
    .await;
    let r = get_plain(&gw, "/").await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_is_a_502_upstream_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("backend CA");
    let wrong_ca = TestCa::new("not the backend's CA");
    let wrong_file = wrong_ca.write_pem(dir.path(), "wrong-ca.pem");
    let right_file = ca.write_pem(dir.path(), "ca.pem");
    let up = tls_upstream(&ca, &["backend.internal"], None).await;

    let gw = upstream_gateway(&secure_service(
        "https://backend.internal",
        &up,
        &format!("      ca: {}\n", q(&wrong_file)),
    ))
    .await;
    let r = get_plain(&gw, "/").await;
    let p = r.assert_problem(502, "upstream-tls");
    assert_eq!(
        p["detail"],
        "TLS with `secure` failed: certificate verify failed: UnknownIssuer"
    );
    // The system roots do not know a test CA either.
    let gw = upstream_gateway(&secure_service("https://backend.internal", &up, "")).await;
    let p = get_plain(&gw, "/")
        .await
        .assert_problem(502, "upstream-tls");
    assert!(
        p["detail"].as_str().unwrap().contains("UnknownIssuer"),
        "{p}"
    );

    // The right CA but the wrong name: also upstream-tls, naming no names.
    let gw = upstream_gateway(&secure_service(
        "https://other.internal",
        &up,
        &format!("      ca: {}\n", q(&right_file)),
    ))
    .await;
    let p = get_plain(&gw, "/")
        .await
        .assert_problem(502, "upstream-tls");
    assert_eq!(
        p["detail"],
        "TLS with `secure` failed: certificate verify failed: NotValidForName"
    );
    assert_eq!(up.hits(), 0);

    // insecure_skip_verify accepts both.
    let gw = upstream_gateway(&secure_service(
        "https://other.internal",
        &up,
        "      insecure_skip_verify: true\n",
    ))
    .await;
    let r = get_plain(&gw, "/").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn a_plain_http_upstream_behind_an_https_url_is_upstream_tls() {
    let up = Upstream::echo().await;
    let gw = upstream_gateway(&secure_service(
        "https://backend.internal",
        &up,
        "      insecure_skip_verify: true\n",
    ))
    .await;
    let p = get_plain(&gw, "/")
        .await
        .assert_problem(502, "upstream-tls");
    assert!(
        p["detail"].as_str().unwrap().contains("does not speak TLS"),
        "{p}"
    );
}

#[tokio::test]
async fn client_certificates_to_an_upstream_that_requires_them() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("backend CA");
    let gw_ca = TestCa::new("gateway clients CA");
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let (cert, key) = gw_ca
        .client_cert("gatehouse", &["gateway.internal"])
        .write(dir.path(), "gw");
    let up = tls_upstream(&ca, &["backend.internal"], Some(&gw_ca)).await;

    let with_cert = format!(
        "      ca: {}\n      client_cert: {}\n      client_key: {}\n",
        q(&ca_file),
        q(&cert),
        q(&key)
    );
    let gw = upstream_gateway(&secure_service("https://backend.internal", &up, &with_cert)).await;
    let r = get_plain(&gw, "/").await;
    assert_eq!(r.status, 200, "{}", r.text());

    let without = format!("      ca: {}\n", q(&ca_file));
    let gw = upstream_gateway(&secure_service("https://backend.internal", &up, &without)).await;
    let p = get_plain(&gw, "/")
        .await
        .assert_problem(502, "upstream-tls");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("CertificateRequired"),
        "{p}"
    );
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn grpc_style_h2_over_tls_to_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("grpc CA");
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let pair = ca.server_cert(&["grpc.internal"]);
    let up = Upstream::builder()
        .grpc_like()
        .tls(server_config(&pair, &["h2"], None))
        .start()
        .await;
    let gw = upstream_gateway(&format!(
        "{}    protocol: http2\n",
        secure_service(
            "https://grpc.internal",
            &up,
            &format!("      ca: {}\n", q(&ca_file))
        )
    ))
    .await;
    let payload = b"\x00\x00\x00\x00\x05hello".to_vec();
    let resp = gatehouse_testkit::h2c_client()
        .request(
            req("POST", &gw.url("/pkg.Service/Method"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .header("x-trailer-echo", "over-tls")
                .body(body::full(payload.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-trailer-echo"], "over-tls");
    assert_eq!(collected.to_bytes().as_ref(), payload.as_slice());
    assert_eq!(up.last_request().unwrap().version, Version::HTTP_2);
}

#[tokio::test]
async fn active_health_checks_probe_https_targets_with_the_service_tls_settings() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("health CA");
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let good = tls_upstream(&ca, &["backend.internal"], None).await;
    // Same name, but signed by a CA the gateway does not trust.
    let bad = tls_upstream(&TestCa::new("rogue CA"), &["backend.internal"], None).await;
    let gw = upstream_gateway(&format!(
        "    url: https://backend.internal\n    targets:\n      - target: \"{}\"\n      - target: \"{}\"\n    tls:\n      ca: {}\n    health_checks:\n      active:\n        path: /health\n        interval: 50ms\n        timeout: 1s\n        unhealthy_threshold: 1\n",
        good.addr(),
        bad.addr(),
        q(&ca_file)
    ))
    .await;
    // Probes reach the good target over TLS...
    assert!(good.wait_for_hits(2, Duration::from_secs(5)).await);
    let probe = good.last_request().unwrap();
    assert_eq!(probe.header("user-agent"), Some("gatehouse-health-check"));
    assert_eq!(probe.uri.path(), "/health");
    assert!(bad.tls_failures() >= 1);
    // ...and took the untrusted one out: every request succeeds.
    for _ in 0..6 {
        let r = get_plain(&gw, "/").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(bad.hits(), 0);
}

// -------------------------------------------------------------- validation

fn check(yaml: &str) -> Result<(), String> {
    gatehouse_config::parse_str(yaml, "tls.yaml")
        .and_then(|l| gatehouse_proxy::check(&l, &gatehouse_plugins::registry()))
        .map_err(|e| e.to_string())
}

#[test]
fn validation_names_the_field_of_each_broken_tls_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("validation CA");
    let (c, k) = ca.server_cert(&["gw.test"]).write(dir.path(), "gw");
    let (_, other_key) = ca.server_cert(&["other.test"]).write(dir.path(), "other");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let empty_file = dir.path().join("empty.pem");
    std::fs::write(&empty_file, "").unwrap();
    let missing = dir.path().join("missing.pem");
    let listener = |tls: &str| format!("listeners:\n  - address: \"127.0.0.1:0\"\n    tls:\n{tls}");
    let certs = |cert: &Path, key: &Path| certs_block(&[cert_entry(cert, key)]);
    let service = |tls: &str| {
        format!("services:\n  - name: s\n    url: https://backend.internal\n    tls:\n{tls}")
    };

    // (case, config, the texts its error has; none: valid)
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("a good certificate and key", listener(&certs(&c, &k)), &[]),
        (
            "a missing certificate file",
            listener(&certs(&missing, &k)),
            &[
                "listeners[0].tls.certificates[0].cert: cannot read",
                "missing.pem",
            ],
        ),
        (
            "a certificate file that is not PEM",
            listener(&certs(&garbage, &k)),
            &["listeners[0].tls.certificates[0].cert: ", "not valid PEM"],
        ),
        (
            "an empty certificate file",
            listener(&certs(&empty_file, &k)),
            &["no PEM certificate found"],
        ),
        (
            "a certificate as the key",
            listener(&certs(&c, &c)),
            &["listeners[0].tls.certificates[0].key: no private key"],
        ),
        (
            "the key of another certificate",
            listener(&certs(&c, &other_key)),
            &[
                "listeners[0].tls.certificates[0].key: the key in",
                "does not match",
            ],
        ),
        (
            "no certificate",
            listener("      certificates: []\n"),
            &["listeners[0].tls.certificates: at least one"],
        ),
        (
            "TLS 1.1 as minimum version",
            listener(&format!("{}      min_version: \"1.1\"\n", certs(&c, &k))),
            &["min_version", "unsupported TLS version `1.1`"],
        ),
        (
            "a missing client CA file",
            listener(&format!(
                "{}      client_auth:\n        ca: {}\n",
                certs(&c, &k),
                q(&missing)
            )),
            // Errors carry the file (and line) of the field.
            &["tls.yaml:", "listeners[0].tls.client_auth.ca: cannot read"],
        ),
        (
            "a missing upstream CA file",
            service(&format!("      ca: {}\n", q(&missing))),
            &["services[0].tls.ca: cannot read"],
        ),
        (
            "a client certificate without its key",
            service(&format!("      client_cert: {}\n", q(&c))),
            &["services[0].tls.client_key: required"],
        ),
        (
            "a client certificate with another certificate's key",
            service(&format!(
                "      client_cert: {}\n      client_key: {}\n",
                q(&c),
                q(&other_key)
            )),
            &["services[0].tls.client_key: the key in"],
        ),
        (
            "an SNI that is no name",
            service("      sni: \"not a name\"\n"),
            &["services[0].tls.sni"],
        ),
        (
            "tls on an http:// service",
            "services:\n  - name: s\n    url: http://backend.internal\n    tls:\n      insecure_skip_verify: true\n".to_owned(),
            &["services[0].tls: only used with an https:// URL"],
        ),
    ];
    table::assert_rows(cases.iter().map(|(name, yaml, needles)| {
        let result = match (check(yaml), needles.is_empty()) {
            (Ok(()), true) => Ok(()),
            (Ok(()), false) => Err(format!("accepted, expected {needles:?}")),
            (Err(e), true) => Err(format!("refused: {e}")),
            (Err(e), false) if !e.starts_with("tls.yaml:") => {
                Err(format!("the error does not start with the file: {e}"))
            }
            (Err(e), false) => table::contains_all(&e, needles),
        };
        (*name, result)
    }));
}

#[test]
fn relative_tls_paths_resolve_against_the_config_file_directory() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("relative CA");
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    ca.server_cert(&["gw.test"])
        .write(&dir.path().join("certs"), "gw");
    let config = dir.path().join("gatehouse.yaml");
    std::fs::write(
        &config,
        "listeners:\n  - address: \"127.0.0.1:0\"\n    tls:\n      certificates:\n        - cert: certs/gw.pem\n          key: certs/gw.key\n",
    )
    .unwrap();
    common::load_and_check(&config).unwrap();

    std::fs::remove_file(dir.path().join("certs/gw.key")).unwrap();
    let err = common::load_and_check(&config).unwrap_err().to_string();
    assert!(err.contains("gatehouse.yaml:6:"), "{err}");
    assert!(
        err.contains("listeners[0].tls.certificates[0].key: cannot read"),
        "{err}"
    );
    assert!(err.contains("certs/gw.key"), "{err}");
}

/// Writes the demo-only certificates under `examples/certs/` that the
/// examples in docs/tls.md point at. Run by hand when they need to change:
/// `cargo test -p gatehouse --test tls -- --ignored regenerate_demo_certificates`.
#[test]
#[ignore = "writes files into the repository"]
fn regenerate_demo_certificates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/certs");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = TestCa::new("Gatehouse demo CA (do not trust)");
    ca.write_pem(&dir, "demo-ca.pem");
    ca.server_cert(&["localhost", "api.example.com", "*.example.com", "127.0.0.1"])
        .write(&dir, "server");
    ca.server_cert(&["admin.example.com"]).write(&dir, "admin");
    ca.client_cert("demo-client", &["demo-client.example.com"])
        .write(&dir, "client");
}
