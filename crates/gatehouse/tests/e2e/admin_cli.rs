#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `gatehouse admin token create` and `gatehouse admin serve` as processes:
//! the bootstrap token works against the served API; bad input fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn gatehouse() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request; returns the status line and the body.
fn get(addr: &str, path: &str, token: Option<&str>) -> std::io::Result<(String, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Ok((
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    ))
}

/// Creates a super-admin token straight in `store`; returns the secret.
fn root_token(store: &str) -> String {
    let out = gatehouse()
        .args(["admin", "token", "create", "--store", store])
        .args(["--name", "root", "--role", "super-admin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Starts `gatehouse admin serve` on `store` (plus `extra` arguments) on a
/// free port, its stderr piped when `stderr` says so, and waits until it
/// answers `GET /workspaces` with `token`. Returns the process and address.
fn serve(store: &str, token: &str, extra: &[&str], stderr: Stdio) -> (Kill, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Kill(
        gatehouse()
            .args(["admin", "serve", "--store", store, "--listen", &addr])
            .args(extra)
            .env_remove("GATEHOUSE_CONFIG")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = get(&addr, "/workspaces", Some(token)) {
        assert!(Instant::now() < deadline, "admin API never came up: {e}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, addr)
}

#[test]
fn token_create_then_serve() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("g.db").display());

    let token = root_token(&store);
    assert!(token.starts_with("gha_"), "{token}");

    // A workspace-admin needs its workspace; unknown roles fail.
    for args in [
        &["--role", "workspace-admin"][..],
        &["--role", "emperor"][..],
    ] {
        let out = gatehouse()
            .args(["admin", "token", "create", "--store", &store, "--name", "x"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(!out.stderr.is_empty());
    }

    let (_child, addr) = serve(&store, &token, &[], Stdio::null());
    let (status, body) = get(&addr, "/workspaces", Some(&token)).unwrap();
    assert!(status.contains(" 200 "), "{status} {body}");
    assert!(body.contains("\"default\""), "{body}");
    let (status, _) = get(&addr, "/workspaces", Some("gha_nope")).unwrap();
    assert!(status.contains(" 401 "), "{status}");
}

/// One HTTP/1.1 request with an optional JSON body; returns the status
/// line and the body.
fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> std::io::Result<(String, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Ok((
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    ))
}

/// `admin serve --config FILE` hashes the app keys it creates with the
/// file's `server.key_hash_secret`; without it, with the built-in secret
/// and a warning.
#[test]
fn serve_hashes_app_keys_with_the_config_secret() {
    const SECRET: &str = "admin-cli-test-secret-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.yaml");
    std::fs::write(
        &config,
        format!("server:\n  key_hash_secret: \"{SECRET}\"\n"),
    )
    .unwrap();
    for with_config in [true, false] {
        let store = format!(
            "sqlite://{}",
            dir.path().join(format!("g-{with_config}.db")).display()
        );
        let token = root_token(&store);
        let config_arg = config.to_str().unwrap();
        let extra: &[&str] = if with_config {
            &["--config", config_arg]
        } else {
            &[]
        };
        let (mut child, addr) = serve(&store, &token, extra, Stdio::piped());
        // The served API runs the same cross-entity checks as `validate`:
        // an app of a consumer that does not exist is refused ...
        let (status, body) = call(
            &addr,
            "PUT",
            "/workspaces/default/apps/mobile",
            &token,
            Some(r#"{"body": {"consumer": "acme"}}"#),
        )
        .unwrap();
        assert!(status.contains(" 422 "), "{status} {body}");
        assert!(
            body.contains("refers to consumer `acme`, which does not exist"),
            "{body}"
        );
        // ... and accepted once the consumer is there.
        let (status, body) = call(
            &addr,
            "PUT",
            "/workspaces/default/consumers/acme",
            &token,
            Some(r#"{"body": {}}"#),
        )
        .unwrap();
        assert!(status.contains(" 201 "), "{status} {body}");
        let (status, body) = call(
            &addr,
            "PUT",
            "/workspaces/default/apps/mobile",
            &token,
            Some(r#"{"body": {"consumer": "acme"}}"#),
        )
        .unwrap();
        assert!(status.contains(" 201 "), "{status} {body}");
        let (status, body) = call(
            &addr,
            "POST",
            "/workspaces/default/apps/mobile/keys",
            &token,
            None,
        )
        .unwrap();
        assert!(status.contains(" 201 "), "{status} {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let key = v["key"].as_str().unwrap();
        let expected = if with_config {
            gatehouse_core::KeyHasher::new(SECRET.as_bytes())
        } else {
            gatehouse_core::KeyHasher::default()
        };
        assert_eq!(v["hash"], expected.hash(key).to_string(), "{body}");
        // Stop it and read what it said at start.
        let _ = child.0.kill();
        let mut stderr = String::new();
        child
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(
            stderr.contains("no server.key_hash_secret"),
            !with_config,
            "{stderr}"
        );
    }

    // A broken config file is refused before serving.
    std::fs::write(&config, "server:\n  key_hash_secret: 12\n  colour: red\n").unwrap();
    let out = gatehouse()
        .args(["admin", "serve", "--store"])
        .arg(format!("sqlite://{}", dir.path().join("x.db").display()))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!out.stderr.is_empty());
}

/// The served admin API refuses a route on a host another workspace routes,
/// without naming the other workspace, and keeps the store unchanged; a
/// route on another host is fine.
#[test]
fn serve_rejects_route_conflicts_across_workspaces() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("g.db").display());
    let token = root_token(&store);
    let (_child, addr) = serve(&store, &token, &[], Stdio::null());
    let put = |path: &str, body: &str| call(&addr, "PUT", path, &token, Some(body)).unwrap();
    for ws in ["team-a", "team-b"] {
        let (status, body) = put(&format!("/workspaces/{ws}"), r#"{"body": {}}"#);
        assert!(status.contains(" 201 "), "{status} {body}");
        let (status, body) = put(
            &format!("/workspaces/{ws}/services/orders"),
            r#"{"body": {"url": "http://127.0.0.1:9001"}}"#,
        );
        assert!(status.contains(" 201 "), "{status} {body}");
    }
    let route = r#"{"body": {"service": "orders", "hosts": ["api.example.com"], "paths": ["/orders"], "methods": ["GET"]}}"#;
    let (status, body) = put("/workspaces/team-a/routes/orders", route);
    assert!(status.contains(" 201 "), "{status} {body}");
    let (_, before) = get(&addr, "/audit", Some(&token)).unwrap();
    let (status, body) = put("/workspaces/team-b/routes/orders-v1", route);
    assert!(status.contains(" 422 "), "{status} {body}");
    // The caller learns that the host is taken, not by whom.
    assert!(
        body.contains("host `api.example.com` is taken by another workspace"),
        "{body}"
    );
    assert!(!body.contains("team-a"), "{body}");
    let (_, after) = get(&addr, "/audit", Some(&token)).unwrap();
    assert_eq!(before, after, "a refused write must not reach the store");
    // A certificate document that is not PEM is refused the same way.
    let (status, body) = put(
        "/workspaces/team-a/certificates/api",
        r#"{"body": {"cert": "not PEM", "key": "not PEM"}}"#,
    );
    assert!(status.contains(" 422 "), "{status} {body}");
    assert!(body.contains("holds no PEM certificate"), "{body}");
    // Another host does not conflict.
    let (status, body) = put(
        "/workspaces/team-b/routes/orders-v1",
        r#"{"body": {"service": "orders", "hosts": ["b.example.com"], "paths": ["/orders"], "methods": ["GET"]}}"#,
    );
    assert!(status.contains(" 201 "), "{status} {body}");
}
