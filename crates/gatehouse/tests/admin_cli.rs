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

#[test]
fn token_create_then_serve() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("g.db").display());

    let out = gatehouse()
        .args(["admin", "token", "create", "--store", &store])
        .args(["--name", "bootstrap", "--role", "super-admin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
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

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let _child = Kill(
        gatehouse()
            .args(["admin", "serve", "--store", &store, "--listen", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        match get(&addr, "/workspaces", Some(&token)) {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("admin API never came up: {e}"),
        }
    };
    assert!(status.contains(" 200 "), "{status} {body}");
    assert!(body.contains("\"default\""), "{body}");
    let (status, _) = get(&addr, "/workspaces", Some("gha_nope")).unwrap();
    assert!(status.contains(" 401 "), "{status}");
}
