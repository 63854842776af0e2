#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Nothing is lost when `gatehouse config apply` dies in the middle: the
//! process is aborted inside the apply's transaction (the store's crash
//! failpoint, which calls `abort()`: no unwinding, no rollback) or killed
//! with SIGKILL at varied moments, on SQLite and on PostgreSQL. Afterwards
//! the store holds exactly the old configuration or exactly the new one,
//! never a mix, and it accepts the next apply.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use gatehouse_testkit::pg::TestDb;

const FAILPOINT: &str = "GATEHOUSE_FAILPOINT_APPLY_CRASH_AFTER";

fn gatehouse(args: &[&str], store: &str, env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(args)
        .env("GATEHOUSE_STORE", store)
        .env("GATEHOUSE_LOG", "warn")
        .env_remove(FAILPOINT);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "gatehouse failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A configuration with `n` services and `n` routes whose names and
/// upstreams are marked with `tag`, so two of them share no document.
fn config(tag: &str, n: usize) -> String {
    let mut y = String::from("services:\n");
    for i in 0..n {
        y.push_str(&format!(
            "  - name: {tag}-svc-{i}\n    url: http://127.0.0.1:{}\n",
            10000 + i
        ));
    }
    y.push_str("routes:\n");
    for i in 0..n {
        y.push_str(&format!(
            "  - name: {tag}-route-{i}\n    paths: [/{tag}/{i}]\n    service: {tag}-svc-{i}\n"
        ));
    }
    y
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn dump(store: &str) -> String {
    ok(&gatehouse(&["config", "dump"], store, &[]))
}

/// Aborts an apply of `new` over `old` after half of its documents, then
/// checks the old config is whole and the next apply works.
fn abort_mid_apply_keeps_old_config(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.yaml", &config("old", 20));
    let new = write(dir.path(), "new.yaml", &config("new", 100));
    ok(&gatehouse(&["config", "apply", &old], store, &[]));
    let before = dump(store);
    assert!(before.contains("old-route-19"), "{before}");

    // 100 services + 100 routes: crash after 150 documents are written.
    let out = gatehouse(
        &["config", "apply", &new],
        store,
        &[(FAILPOINT, "150".to_owned())],
    );
    assert_eq!(
        out.status.signal(),
        Some(6),
        "the apply should have aborted (SIGABRT) mid-transaction: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("aborting in the middle of an apply"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = dump(store);
    assert_eq!(after, before, "the crashed apply left a partial config");

    // The store is healthy: the same apply now goes through completely.
    let report = ok(&gatehouse(&["config", "apply", &new], store, &[]));
    assert!(
        report.contains("200 created, 0 updated, 40 deleted"),
        "{report}"
    );
    let done = dump(store);
    assert!(done.contains("new-route-99") && !done.contains("old-route-0"));
}

/// Kills applies with SIGKILL at spread-out moments: each time the store is
/// exactly the old or exactly the new config.
fn sigkill_apply_is_all_or_nothing(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.yaml", &config("a", 10));
    let b = write(dir.path(), "b.yaml", &config("b", 250));
    ok(&gatehouse(&["config", "apply", &a], store, &[]));
    let state_a = dump(store);
    // How long a whole apply of b takes here (then back to a).
    let t = Instant::now();
    ok(&gatehouse(&["config", "apply", &b], store, &[]));
    let full = t.elapsed();
    let state_b = dump(store);
    ok(&gatehouse(&["config", "apply", &a], store, &[]));
    assert_eq!(dump(store), state_a);

    let (mut old, mut new) = (0, 0);
    for step in 1..=6u32 {
        let delay = full.mul_f64(f64::from(step) / 7.0);
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["config", "apply", &b])
            .env("GATEHOUSE_STORE", store)
            .env("GATEHOUSE_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
        let now = dump(store);
        if now == state_a {
            old += 1;
        } else if now == state_b {
            new += 1;
            ok(&gatehouse(&["config", "apply", &a], store, &[]));
        } else {
            panic!(
                "after a kill at {delay:?} (full apply {full:?}) the store is neither the old nor the new config"
            );
        }
    }
    eprintln!("sigkill: full apply {full:?}; {old} kills left the old config, {new} the new");
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("g.db").display())
}

#[test]
fn abort_mid_apply_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    abort_mid_apply_keeps_old_config(&sqlite_url(dir.path()));
}

#[test]
fn abort_mid_apply_postgres() {
    let db = TestDb::create("gh_crash");
    abort_mid_apply_keeps_old_config(db.url());
}

#[test]
fn sigkill_apply_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    sigkill_apply_is_all_or_nothing(&sqlite_url(dir.path()));
}

#[test]
fn sigkill_apply_postgres() {
    let db = TestDb::create("gh_crash");
    sigkill_apply_is_all_or_nothing(db.url());
}

/// The failpoint is inert without the variable and with a count past the
/// end of the input: an apply then completes normally.
#[test]
fn failpoint_past_the_end_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_url(dir.path());
    let cfg = write(dir.path(), "c.yaml", &config("c", 3));
    let out = gatehouse(
        &["config", "apply", &cfg],
        &store,
        &[(FAILPOINT, "1000".to_owned())],
    );
    assert!(ok(&out).contains("6 created"));
}
