#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The docs page at /docs: its three files answer without a token, with
//! the right content types and a strict Content-Security-Policy; and a real
//! chromium (Debian's `chromium`, driven by playwright-core from
//! `tests/browser/`) renders the endpoints and creates and reads a service
//! through "Try it", against the admin API on SQLite in a tempdir.
//!
//! The browser test needs `node` and `/usr/bin/chromium` (or `CHROMIUM`);
//! `.ci/run` installs chromium and runs `npm ci` in `tests/browser/`. When
//! `node_modules` is missing the test runs `npm ci` itself. It fails when
//! the browser is missing; set `GATEHOUSE_SKIP_BROWSER=1` to skip it
//! explicitly.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::{Role, Store};

struct Admin {
    base: String,
    token: String,
    _server: gatehouse_admin::Background,
    _dir: tempfile::TempDir,
}

async fn start() -> Admin {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
    let store: Arc<dyn Store> = gatehouse_store::open(&url).await.unwrap();
    let token = store
        .create_token("test", "root", Role::SuperAdmin)
        .await
        .unwrap()
        .plaintext;
    let server = gatehouse_admin::Background::start(gatehouse_admin::AppState::new(store))
        .await
        .unwrap();
    let base = server.base().to_string();
    Admin {
        base,
        token,
        _server: server,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_files_are_served_without_a_token() {
    let admin = start().await;
    let http = reqwest::Client::new();
    for (path, content_type, needle) in [
        (
            "/docs",
            "text/html; charset=utf-8",
            "<script src=\"docs/app.js\"",
        ),
        (
            "/docs/app.js",
            "text/javascript; charset=utf-8",
            "/openapi.json",
        ),
        ("/docs/app.css", "text/css; charset=utf-8", "details.op"),
    ] {
        let resp = http
            .get(format!("{}{path}", admin.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers().clone();
        assert_eq!(h["content-type"], content_type, "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert_eq!(csp, gatehouse_admin::DOCS_CSP, "{path}");
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(needle), "{path}: {needle} missing");
    }
    // The HTML has no inline script or style (the CSP would block them).
    let html = http
        .get(format!("{}/docs", admin.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>"), "inline script");
    assert!(!html.contains("<style"), "inline style");
    assert!(!html.contains(" style="), "inline style attribute");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "external URL"
    );
    // Only those files: anything else under /docs is the API's 404, and
    // the API itself still wants a token.
    let resp = http
        .get(format!("{}/docs/other.js", admin.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let resp = http
        .get(format!("{}/workspaces", admin.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_in_chromium() {
    if std::env::var_os("GATEHOUSE_SKIP_BROWSER").is_some_and(|v| v == "1") {
        eprintln!("GATEHOUSE_SKIP_BROWSER=1: skipping the browser test");
        return;
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: `apt-get install chromium` (.ci/run does), \
         or set GATEHOUSE_SKIP_BROWSER=1"
    );
    let dir = browser_dir();
    if !dir.join("node_modules/playwright-core").exists() {
        let status = tokio::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .await
            .expect("npm (Node.js) is needed for the browser test");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    let admin = start().await;
    let child = tokio::process::Command::new("node")
        .arg("docs.mjs")
        .arg(&admin.base)
        .arg(&admin.token)
        .env("CHROMIUM", &chromium)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node (Node.js) is needed for the browser test");
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the browser test did not finish in 90 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("ok: "), "{stdout}\n{stderr}");
    // What the page created is really in the store.
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/workspaces/default/services/web", admin.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["body"]["url"], "http://127.0.0.1:9/api", "{v}");
}
