//! Test support for store-backed nodes: `gatehouse run --store` as a child
//! process with its JSON log lines collected, a raw HTTP/1.1 client, and
//! helpers to write documents straight into the store.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_store::{Expect, Kind, NewDocument, Store};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `gatehouse run --store` process.
pub struct Node {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// The proxy's address (empty for a control-plane node).
    pub proxy: String,
    /// The admin API's address.
    pub admin: String,
    /// The node's data directory when the test gave none: a temporary one,
    /// so no node ever writes `./gatehouse-data` into the source tree.
    _data_dir: Option<tempfile::TempDir>,
}

impl Node {
    /// [`until_status`] on this node's proxy, with the node's log on failure.
    pub async fn until(&self, path: &str, want: u16, within: Duration) -> Duration {
        match try_until_status(&self.proxy, path, want, within).await {
            Ok(d) => d,
            Err(e) => panic!("{e}\n{}", self.log()),
        }
    }

    /// Starts `gatehouse --log-format json run --store <store> <args>` and
    /// waits until the proxy listens (unless `proxy` is false).
    pub fn start(store: &str, args: &[&str], proxy: bool) -> Node {
        let mut node = Self::spawn(store, args);
        if proxy {
            let line = node.wait_for("\"listening\"", Duration::from_secs(20));
            let v: Value = serde_json::from_str(&line).unwrap();
            node.proxy = v["fields"]["address"].as_str().unwrap().to_string();
        }
        node
    }

    /// Spawns without waiting for anything.
    pub fn spawn(store: &str, args: &[&str]) -> Node {
        let admin = args
            .iter()
            .position(|a| *a == "--admin-listen")
            .map(|i| args[i + 1].to_string())
            .unwrap_or_default();
        let data_dir = (!args.contains(&"--data-dir")).then(|| tempfile::tempdir().unwrap());
        let mut command = Command::new(BIN);
        command
            .args(["--log-format", "json", "run", "--store", store])
            .args(args);
        if let Some(dir) = &data_dir {
            command.arg("--data-dir").arg(dir.path());
        }
        let mut child = command
            .env_remove("GATEHOUSE_STORE")
            .env_remove("GATEHOUSE_CONFIG")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Node {
            child,
            lines,
            proxy: String::new(),
            admin,
            _data_dir: data_dir,
        }
    }

    /// Every stderr line so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Number of stderr lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits for a log line containing `needle`, returning it.
    pub fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "gatehouse exited ({status}) before logging {needle:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse never logged {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`-TERM`, `-HUP`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, then waits for the exit; asserts exit code 0.
    pub fn stop(mut self) {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit {status}:\n{}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit on its own; returns success and log.
    pub fn wait_exit(mut self, within: Duration) -> (bool, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (status.success(), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request: status and body (`Connection: close`).
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let body = body.map(Value::to_string).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        let out = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((status, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("timed out")))
}

/// Status of `GET path` on `addr` (0 when the request failed).
pub async fn status(addr: &str, path: &str) -> u16 {
    http(addr, "GET", path, None, None)
        .await
        .map_or(0, |(s, _)| s)
}

/// Polls until `GET path` answers `want`; returns how long that took.
pub async fn until_status(addr: &str, path: &str, want: u16, within: Duration) -> Duration {
    try_until_status(addr, path, want, within)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls until `GET path` answers `want`: how long that took, or what it
/// answered instead.
pub async fn try_until_status(
    addr: &str,
    path: &str,
    want: u16,
    within: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let got = status(addr, path).await;
        if got == want {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= within {
            return Err(format!(
                "GET {path} on {addr} still answers {got}, not {want}, after {within:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls until the snapshot file holds `revision`.
pub async fn until_file_revision(path: &Path, revision: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["revision"].as_u64());
        if got == Some(revision) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "snapshot file {} at revision {got:?}, not {revision}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A service document body.
pub fn service(name: &str, url: &str) -> Value {
    json!({"name": name, "url": url})
}

/// A route document body.
pub fn route(name: &str, service: &str, path: &str) -> Value {
    json!({"name": name, "service": service, "paths": [path]})
}

/// Writes a document of `default` straight into the store.
pub async fn put(store: &dyn Store, kind: Kind, name: &str, body: Value) {
    store
        .put(
            "test",
            NewDocument {
                workspace: gatehouse_store::DEFAULT_WORKSPACE.to_string(),
                kind,
                name: name.to_string(),
                tags: Vec::new(),
                body,
            },
            Expect::Any,
        )
        .await
        .unwrap();
}

/// A node-settings file with one `127.0.0.1:0` listener.
pub fn settings_file(dir: &Path) -> String {
    let path = dir.join("node.yaml");
    std::fs::write(
        &path,
        "server:\n  shutdown_timeout: 2s\nlisteners:\n  - address: \"127.0.0.1:0\"\n",
    )
    .unwrap();
    path.display().to_string()
}
