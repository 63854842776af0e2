//! The real `gatehouse` binary: --version, validate, schema, run with
//! SIGHUP and file-watch reloads, and graceful shutdown on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gatehouse_testkit::Upstream;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn gatehouse(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run gatehouse")
}

#[test]
fn version_and_help() {
    let out = gatehouse(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("gatehouse {}", env!("CARGO_PKG_VERSION"))
    );
    let out = gatehouse(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "validate", "schema"] {
        assert!(help.contains(cmd), "{help}");
    }
}

#[test]
fn validate_accepts_the_demo_and_reports_errors_with_locations() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/gatehouse.yaml");
    let out = gatehouse(&["validate", demo]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "routes:\n  - name: r\n    paths: [\"/a\"]\n    plugins:\n      - name: cors\n        config:\n          origins: 5\n      - name: nope\n",
    )
    .unwrap();
    let out = gatehouse(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = bad.display().to_string();
    assert!(
        err.contains(&format!(
            "{file}:7:11: routes[0].plugins[0].config.origins:"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("{file}:8:"),), "{err}");
    assert!(err.contains("unknown plugin `nope` (available: "), "{err}");

    std::fs::write(&bad, "servics: []\n").unwrap();
    let out = gatehouse(&["validate", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{file}:1:1: unknown field `servics`, expected one of"
        )),
        "{err}"
    );

    let out = gatehouse(&["validate", "/nonexistent/gw.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read file"));
}

#[test]
fn schema_is_json_schema_with_plugin_configs() {
    let out = gatehouse(&["schema"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("schema is JSON");
    assert!(v["$schema"].as_str().unwrap().contains("json-schema.org"));
    assert_eq!(v["properties"]["routes"]["type"], "array");
    let plugin_ref = &v["$defs"]["PluginRef"];
    let names = plugin_ref["properties"]["name"]["enum"].as_array().unwrap();
    for p in [
        "cors",
        "mock",
        "headers",
        "ip-restriction",
        "request-id",
        "request-size-limit",
        "key-auth",
    ] {
        assert!(names.iter().any(|n| n == p), "{p} missing from {names:?}");
    }
    let cors = plugin_ref["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["if"]["properties"]["name"]["const"] == "cors")
        .expect("cors condition");
    assert!(cors["then"]["properties"]["config"]["properties"]["origins"].is_object());
    // Every $ref resolves inside the document.
    let text = out.stdout;
    let text = String::from_utf8_lossy(&text);
    for r in text.split("\"$ref\": \"#/$defs/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(v["$defs"].get(name).is_some(), "dangling $ref {name}");
    }
}

/// A gatehouse process reading `config`, with its stderr lines in a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: String,
}

impl Proc {
    fn start(config: &Path) -> Self {
        Self::start_as(config, "json")
    }

    /// With `--log-format FORMAT` (`json` or `text`).
    fn start_as(config: &Path, format: &str) -> Self {
        let mut child = Command::new(BIN)
            .args(["--log-format", format, "run", "--config"])
            .arg(config)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Self {
            child,
            lines,
            addr: String::new(),
        };
        let line = p.wait_for("listening");
        p.addr = if format == "json" {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            v["fields"]["address"].as_str().unwrap().to_string()
        } else {
            let at = line
                .find("address=")
                .expect("address in the listening line")
                + 8;
            line[at..].split_whitespace().next().unwrap().to_string()
        };
        p
    }

    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("gatehouse never logged {needle:?}");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mock_config(message: &str, extra_server: &str) -> String {
    format!(
        "server:\n  watch_interval: 100ms\n{extra_server}listeners:\n  - address: \"127.0.0.1:0\"\nroutes:\n  - name: hello\n    paths: [\"/hello\"]\n    plugins:\n      - name: mock\n        config:\n          body: \"{message}\"\n"
    )
}

async fn body_of(url: &str) -> String {
    common::get(url).await.text()
}

#[tokio::test]
async fn sighup_and_file_changes_reload_and_bad_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(&path, mock_config("one", "  watch: false\n")).unwrap();
    let mut p = Proc::start(&path);
    assert_eq!(body_of(&p.url("/hello")).await, "one");

    // With watching off, only SIGHUP reloads.
    std::fs::write(&path, mock_config("two", "  watch: false\n")).unwrap();
    p.signal("-HUP");
    p.wait_for("config reloaded");
    assert_eq!(body_of(&p.url("/hello")).await, "two");

    // A broken file is logged with its location and the old config serves.
    std::fs::write(&path, "routes:\n  - name: hello\n    pathz: []\n").unwrap();
    p.signal("-HUP");
    let line = p.wait_for("config rejected");
    assert!(
        line.contains("gw.yaml:3:5: routes[0]: unknown field `pathz`"),
        "{line}"
    );
    assert_eq!(body_of(&p.url("/hello")).await, "two");
}

#[tokio::test]
async fn file_watch_reloads_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(&path, mock_config("first", "")).unwrap();
    let mut p = Proc::start(&path);
    assert_eq!(body_of(&p.url("/hello")).await, "first");
    std::fs::write(&path, mock_config("second", "")).unwrap();
    p.wait_for("config reloaded");
    assert_eq!(body_of(&p.url("/hello")).await, "second");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let slow = Upstream::builder()
        .delay(Duration::from_millis(800))
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(
        &path,
        format!(
            "server:\n  shutdown_timeout: 5s\nlisteners:\n  - address: \"127.0.0.1:0\"\nservices:\n  - name: slow\n    url: \"{}\"\nroutes:\n  - name: r\n    service: slow\n",
            slow.url()
        ),
    )
    .unwrap();
    let mut p = Proc::start(&path);
    let url = p.url("/slow");
    let pending = tokio::spawn(async move { common::get(&url).await });
    assert!(slow.wait_for_hits(1, Duration::from_secs(5)).await);
    p.signal("-TERM");
    p.wait_for("shutting down");
    let r = pending.await.unwrap();
    assert_eq!(
        r.status, 200,
        "in-flight request must complete during drain"
    );
    let status = p.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    // After exit nothing listens any more.
    assert!(tokio::net::TcpStream::connect(&p.addr).await.is_err());
}

#[tokio::test]
async fn shutdown_deadline_bounds_the_drain() {
    let hang = gatehouse_testkit::BlackholeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(
        &path,
        format!(
            "server:\n  shutdown_timeout: 300ms\nlisteners:\n  - address: \"127.0.0.1:0\"\nservices:\n  - name: hang\n    url: \"{}\"\n    timeout: 60s\nroutes:\n  - name: r\n    service: hang\n",
            hang.url()
        ),
    )
    .unwrap();
    let mut p = Proc::start(&path);
    let url = p.url("/hang");
    let _pending = tokio::spawn(async move { common::get(&url).await });
    while hang.hits() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    p.signal("-INT");
    let status = p.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "drain took {:?}",
        started.elapsed()
    );
}

/// What an operator sees when upstreams fail: one structured warning per
/// failed try, naming the service, the target and the reason (a dead
/// target, a per-try timeout), and an info line for each retry. Before,
/// nothing at all was logged for a 502 or a 504, even at debug level.
fn trouble_config(dead: &str, hole: &str, live: &str) -> String {
    format!(
        "listeners:\n  - address: \"127.0.0.1:0\"\nservices:\n  - name: dead\n    url: \"http://{dead}\"\n    retries: {{ attempts: 0 }}\n  - name: slow\n    url: \"http://{hole}\"\n    timeout: 300ms\n    retries: {{ attempts: 0 }}\n  - name: pair\n    url: \"http://pair.internal\"\n    targets:\n      - target: \"{dead}\"\n      - target: \"{live}\"\n    load_balancing: {{ algorithm: round-robin }}\nroutes:\n  - {{ name: dead, service: dead, paths: [\"/dead\"] }}\n  - {{ name: slow, service: slow, paths: [\"/slow\"] }}\n  - {{ name: pair, service: pair, paths: [\"/pair\"] }}\n"
    )
}

#[tokio::test]
async fn upstream_failures_are_logged_as_structured_warnings() {
    let dead = gatehouse_testkit::RefusingAddr::new();
    let hole = gatehouse_testkit::BlackholeServer::start().await;
    let live = Upstream::builder().name("live").start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    let yaml = trouble_config(
        &dead.addr().to_string(),
        &hole.addr().to_string(),
        &live.addr().to_string(),
    );
    std::fs::write(&path, yaml).unwrap();
    let mut p = Proc::start(&path);
    let field = |line: &str, name: &str| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["fields"][name].clone()
    };

    assert_eq!(common::get(&p.url("/dead")).await.status, 502);
    let line = p.wait_for("upstream request failed");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "WARN", "{line}");
    assert_eq!(field(&line, "service"), "dead", "{line}");
    assert_eq!(field(&line, "target"), dead.addr().to_string(), "{line}");
    assert_eq!(field(&line, "failure"), "connect-failure", "{line}");
    let error = field(&line, "error").as_str().unwrap().to_lowercase();
    assert!(error.contains("refused"), "{line}");

    assert_eq!(common::get(&p.url("/slow")).await.status, 504);
    let line = p.wait_for("upstream request timed out");
    assert_eq!(field(&line, "service"), "slow", "{line}");
    assert_eq!(field(&line, "target"), hole.addr().to_string(), "{line}");
    assert_eq!(field(&line, "limit"), "per_try", "{line}");
    assert!(field(&line, "after_ms").as_u64().unwrap() >= 250, "{line}");

    // Two requests: round-robin sends one of them to the dead target
    // first; the default policy retries it on the live one.
    for _ in 0..2 {
        assert_eq!(common::get(&p.url("/pair")).await.status, 200);
    }
    let line = p.wait_for("retrying upstream request");
    assert_eq!(field(&line, "service"), "pair", "{line}");
    assert_eq!(field(&line, "failure"), "connect-failure", "{line}");
    assert_eq!(field(&line, "from"), dead.addr().to_string(), "{line}");
    assert_eq!(field(&line, "to"), live.addr().to_string(), "{line}");
}

/// Logs to a pipe (or a file) are plain text: no colour codes.
#[tokio::test]
async fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let dead = gatehouse_testkit::RefusingAddr::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    let yaml = trouble_config(&dead.addr().to_string(), "127.0.0.1:9", "127.0.0.1:9");
    std::fs::write(&path, yaml).unwrap();
    let mut p = Proc::start_as(&path, "text");
    assert_eq!(common::get(&p.url("/dead")).await.status, 502);
    let line = p.wait_for("upstream request failed");
    assert!(!line.contains('\u{1b}'), "colour codes in {line:?}");
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("failure=\"connect-failure\"") || line.contains("failure=connect-failure"),
        "{line}"
    );
}
