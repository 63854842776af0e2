#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Three store-backed nodes (`--role both`) on one PostgreSQL database: a
//! change through one node's admin API reaches the others within a second;
//! PostgreSQL is stopped and started again while they keep serving, and a
//! change after that reaches all of them.
//!
//! This is the only test in this binary on purpose: it stops the shared
//! PostgreSQL server (cargo runs test binaries one at a time), and it waits
//! until PostgreSQL accepts connections again before it ends.

#[path = "e2e/nodes.rs"]
mod nodes;

use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_testkit::Upstream;
use nodes::{Node, free_port, settings_file, status};
use serde_json::json;

/// `pg_ctlcluster <version> main <action>`; fails the test clearly when
/// the command is missing or fails.
fn pg_version() -> String {
    let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .unwrap_or_else(|e| {
            panic!("cannot list /etc/postgresql ({e}): this test needs a pg_ctlcluster-managed PostgreSQL")
        })
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    versions
        .into_iter()
        .max()
        .unwrap_or_else(|| panic!("no PostgreSQL version under /etc/postgresql"))
}

fn pg_ctl(action: &str) {
    let version = pg_version();
    let out = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run pg_ctlcluster ({e}): this test needs it to stop and start PostgreSQL"
            )
        });
    assert!(
        out.status.success(),
        "pg_ctlcluster {version} main {action} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn postgres_up() -> bool {
    tokio_postgres::connect(&gatehouse_testkit::pg::admin_url(), tokio_postgres::NoTls)
        .await
        .is_ok()
}

/// Starts PostgreSQL again (if this test stopped it) and waits until it
/// accepts connections, also when the test fails half-way.
struct RestoreOnDrop {
    stopped: bool,
}

impl Drop for RestoreOnDrop {
    fn drop(&mut self) {
        if self.stopped {
            let _ = Command::new("pg_ctlcluster")
                .args(["--skip-systemctl-redirect", &pg_version(), "main", "start"])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect("127.0.0.1:5432").is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// PUTs a route through an admin API, retrying while the API answers 5xx
/// or is unreachable (PostgreSQL reconnecting); returns when it succeeded.
async fn put_route(admin: &str, token: &str, path: &str, service: &str) {
    let body = json!({"body": {"name": "r", "service": service, "paths": [path]}});
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match nodes::http(
            admin,
            "PUT",
            "/workspaces/default/routes/r",
            Some(token),
            Some(&body),
        )
        .await
        {
            Ok((200 | 201, _)) => return,
            Ok((st, b)) if st < 500 => panic!("PUT route: {st} {b}"),
            other => {
                assert!(
                    Instant::now() < deadline,
                    "PUT route kept failing: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Polls every node until `path` answers 200; for each node, the time
/// from `since` until it did (nodes are polled in turn, so a later node's
/// figure is an upper bound).
async fn propagation(
    nodes: &[Node],
    path: &str,
    since: Instant,
    within: Duration,
) -> Vec<Duration> {
    let mut out = Vec::new();
    for n in nodes {
        n.until(path, 200, within).await;
        out.push(since.elapsed());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_follow_one_postgres_through_a_restart() {
    let upstream = Upstream::builder().body("hello").start().await;
    let db = gatehouse_testkit::pg::TestDb::create("cluster");
    let dir = tempfile::tempdir().unwrap();
    let config = settings_file(dir.path());
    let out = Command::new(nodes::BIN)
        .args(["admin", "token", "create", "--store", db.url()])
        .args(["--name", "t", "--role", "super-admin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let nodes: Vec<Node> = (0..3)
        .map(|i| {
            let admin = format!("127.0.0.1:{}", free_port());
            let data = dir.path().join(format!("node{i}"));
            Node::start(
                db.url(),
                &[
                    "--config",
                    &config,
                    "--admin-listen",
                    &admin,
                    "--data-dir",
                    data.to_str().unwrap(),
                ],
                true,
            )
        })
        .collect();
    let admin1 = nodes[0].admin.clone();
    // The admin API comes up with the store; wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes::http(&admin1, "GET", "/workspaces", Some(&token), None)
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "{}", nodes[0].log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let svc = json!({"body": {"name": "app", "url": upstream.url()}});
    let (st, body) = nodes::http(
        &admin1,
        "PUT",
        "/workspaces/default/services/app",
        Some(&token),
        Some(&svc),
    )
    .await
    .unwrap();
    assert_eq!(st, 201, "{body}");
    put_route(&admin1, &token, "/v1", "app").await;
    propagation(&nodes, "/v1", Instant::now(), Duration::from_secs(10)).await;

    // A change through node 1's admin API reaches every node within 1 s.
    put_route(&admin1, &token, "/v2", "app").await;
    let took = propagation(&nodes, "/v2", Instant::now(), Duration::from_secs(10)).await;
    eprintln!("change through node 1 visible on nodes 1-3 after {took:?}");
    for (i, t) in took.iter().enumerate() {
        assert!(
            *t < Duration::from_millis(1500),
            "node {} took {t:?}",
            i + 1
        );
    }

    // PostgreSQL goes away: every node keeps serving the last good config.
    let mut guard = RestoreOnDrop { stopped: true };
    pg_ctl("stop");
    assert!(!postgres_up().await, "PostgreSQL still answers after stop");
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(2) {
        for (i, n) in nodes.iter().enumerate() {
            let st = status(&n.proxy, "/v2").await;
            assert_eq!(st, 200, "node {} during the outage:\n{}", i + 1, n.log());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The admin API says the store is unavailable (503 problem+json) and
    // writes nothing.
    let (st, body) = nodes::http(
        &admin1,
        "PUT",
        "/workspaces/default/routes/r",
        Some(&token),
        Some(&json!({"body": {"name": "r", "service": "app", "paths": ["/never"]}})),
    )
    .await
    .unwrap();
    assert_eq!(st, 503, "{body}");
    assert!(
        body.contains("urn:gatehouse:problem:store-unavailable"),
        "{body}"
    );
    pg_ctl("start");
    guard.stopped = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !postgres_up().await {
        assert!(Instant::now() < deadline, "PostgreSQL did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = Instant::now();

    // A change after the restart reaches all three nodes.
    put_route(&admin1, &token, "/v3", "app").await;
    let accepted = back.elapsed();
    let took = propagation(&nodes, "/v3", Instant::now(), Duration::from_secs(15)).await;
    eprintln!(
        "after the restart: admin API accepted the change {accepted:?} after PostgreSQL was back; visible on nodes 1-3 after {took:?}"
    );
    for (i, t) in took.iter().enumerate() {
        assert!(*t < Duration::from_secs(5), "node {} took {t:?}", i + 1);
    }
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(status(&n.proxy, "/v2").await, 404, "node {}", i + 1);
    }
    for n in nodes {
        n.stop();
    }
    drop(guard);
}
