#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `gatehouse run --store`: a node serving the store's configuration on
//! SQLite and PostgreSQL, following changes (timed), keeping the last good
//! config on a bad change, the snapshot file (start without the store,
//! corrupt file), node-settings files, and the roles.

use crate::nodes;

use std::time::Duration;

use gatehouse_store::Kind;
use gatehouse_testkit::Upstream;
use nodes::{Node, free_port, put, route, service, settings_file, status, until_file_revision};
use serde_json::json;

/// Creates a service + route, starts a node, changes the route (timed),
/// then writes a bad route straight into the store. Returns the
/// propagation time of the change.
async fn single_node(store_url: &str, dir: &std::path::Path) -> Duration {
    let upstream = Upstream::builder().body("hello").start().await;
    let store = gatehouse_store::open(store_url).await.unwrap();
    put(
        store.as_ref(),
        Kind::Service,
        "app",
        service("app", &upstream.url()),
    )
    .await;
    put(store.as_ref(), Kind::Route, "r", route("r", "app", "/one")).await;

    let config = settings_file(dir);
    let snapshot = dir.join("snap.json");
    let mut node = Node::start(
        store_url,
        &[
            "--config",
            &config,
            "--role",
            "data-plane",
            "--snapshot-file",
            snapshot.to_str().unwrap(),
        ],
        true,
    );
    let addr = node.proxy.clone();
    assert_eq!(status(&addr, "/one").await, 200, "{}", node.log());
    assert_eq!(status(&addr, "/two").await, 404);
    // The snapshot file holds what is served.
    until_file_revision(&snapshot, store.revision().await.unwrap()).await;
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&snapshot).unwrap()).unwrap();
    assert_eq!(file["documents"].as_array().unwrap().len(), 3, "{file}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&snapshot).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "snapshot file mode {mode:o}");
    }

    // A change is served within a second.
    put(store.as_ref(), Kind::Route, "r", route("r", "app", "/two")).await;
    let took = node.until("/two", 200, Duration::from_secs(10)).await;
    assert_eq!(status(&addr, "/one").await, 404);
    until_file_revision(&snapshot, store.revision().await.unwrap()).await;

    // A route to a missing service, written straight into the store: the
    // node logs it and keeps serving the last good config.
    put(
        store.as_ref(),
        Kind::Route,
        "r",
        route("r", "nope", "/three"),
    )
    .await;
    let line = node.wait_for("store config rejected", Duration::from_secs(10));
    assert!(line.contains("no service named `nope`"), "{line}");
    assert_eq!(status(&addr, "/two").await, 200);
    assert_eq!(status(&addr, "/three").await, 404);
    // The snapshot file still holds the good revision.
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&snapshot).unwrap()).unwrap();
    assert_eq!(file["revision"], store.revision().await.unwrap() - 1);

    // A plugin that does not exist fails compilation, not validation: also
    // rejected, and /two still served.
    let mut bad = route("r", "app", "/three");
    bad["plugins"] = json!([{"name": "no-such-plugin"}]);
    put(store.as_ref(), Kind::Route, "r", bad).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.count("store config rejected") < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", node.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = node.log();
    let line = log
        .lines()
        .rfind(|l| l.contains("store config rejected"))
        .unwrap();
    assert!(
        line.contains("no-such-plugin") && line.contains("route `r`"),
        "{line}"
    );
    assert_eq!(status(&addr, "/two").await, 200);

    // Fixed again: served again.
    put(store.as_ref(), Kind::Route, "r", route("r", "app", "/four")).await;
    node.until("/four", 200, Duration::from_secs(10)).await;
    node.stop();
    took
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_node_serves_and_follows_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let took = single_node(&url, dir.path()).await;
    eprintln!("sqlite: change visible after {took:?}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_node_serves_and_follows_the_store() {
    let db = gatehouse_testkit::pg::TestDb::create("node");
    let dir = tempfile::tempdir().unwrap();
    let took = single_node(db.url(), dir.path()).await;
    eprintln!("postgres: change visible after {took:?}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn starts_from_the_snapshot_file_when_the_store_is_unreachable() {
    let upstream = Upstream::builder().body("hello").start().await;
    let db = gatehouse_testkit::pg::TestDb::create("node_snap");
    let dir = tempfile::tempdir().unwrap();
    let config = settings_file(dir.path());
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let args = [
        "--config",
        &config,
        "--data-dir",
        data_arg,
        "--role",
        "data-plane",
    ];
    let store = gatehouse_store::open(db.url()).await.unwrap();
    put(
        store.as_ref(),
        Kind::Service,
        "app",
        service("app", &upstream.url()),
    )
    .await;
    put(store.as_ref(), Kind::Route, "r", route("r", "app", "/snap")).await;

    let node = Node::start(db.url(), &args, true);
    assert_eq!(status(&node.proxy, "/snap").await, 200, "{}", node.log());
    node.stop();
    assert!(data.join("snapshot.json").exists(), "default snapshot file");

    // No PostgreSQL on port 1, and a database that does not exist: the
    // node starts from the file and serves the old config.
    let closed = format!("postgres://postgres@127.0.0.1:{}/nope", free_port());
    let missing_db = {
        let base = db.url().rsplit_once('/').unwrap().0;
        format!("{base}/gatehouse_no_such_db")
    };
    for url in [&closed, &missing_db] {
        let mut node = Node::start(url, &args, true);
        node.wait_for("starting from the snapshot file", Duration::from_secs(5));
        assert_eq!(status(&node.proxy, "/snap").await, 200, "{}", node.log());
        // Still retrying in the background, still serving.
        node.wait_for("store still unreachable", Duration::from_secs(10));
        assert_eq!(status(&node.proxy, "/snap").await, 200);
        node.stop();
    }

    // A corrupt snapshot file and no store: a clear error, exit non-zero.
    std::fs::write(data.join("snapshot.json"), b"{\"format\": 1, \"revis").unwrap();
    let (ok, log) = Node::spawn(&closed, &args).wait_exit(Duration::from_secs(20));
    assert!(!ok);
    assert!(log.contains("is corrupt"), "{log}");

    // A corrupt file with the store up: ignored and overwritten.
    let node = Node::start(db.url(), &args, true);
    assert_eq!(status(&node.proxy, "/snap").await, 200);
    assert!(node.log().contains("ignoring the snapshot file"));
    until_file_revision(&data.join("snapshot.json"), store.revision().await.unwrap()).await;
    node.stop();

    // No file and no store: a clear error, exit non-zero.
    std::fs::remove_file(data.join("snapshot.json")).unwrap();
    let (ok, log) = Node::spawn(&closed, &args).wait_exit(Duration::from_secs(20));
    assert!(!ok);
    assert!(log.contains("cannot open the store"), "{log}");
    assert!(log.contains("no snapshot file"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_started_from_the_file_catches_up_when_the_store_appears() {
    // SQLite file that does not exist yet as a directory: opening fails
    // until the directory is made.
    let upstream = Upstream::builder().body("hello").start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = settings_file(dir.path());
    let good = format!("sqlite://{}", dir.path().join("g.db").display());
    let store = gatehouse_store::open(&good).await.unwrap();
    put(
        store.as_ref(),
        Kind::Service,
        "app",
        service("app", &upstream.url()),
    )
    .await;
    put(store.as_ref(), Kind::Route, "r", route("r", "app", "/old")).await;
    let snap = dir.path().join("snap.json");
    let snap_arg = snap.to_str().unwrap();
    let node = Node::start(
        &good,
        &[
            "--config",
            &config,
            "--snapshot-file",
            snap_arg,
            "--role",
            "data-plane",
        ],
        true,
    );
    node.stop();

    // A PostgreSQL database that is created only after the node started.
    let admin = gatehouse_testkit::pg::admin_url();
    let base = admin.rsplit_once('/').unwrap().0.to_string();
    let db = gatehouse_testkit::pg::TestDb::create("node_late");
    let late_url = db.url().to_string();
    drop(db); // dropped: unreachable now
    let mut node = Node::start(
        &late_url,
        &[
            "--config",
            &config,
            "--snapshot-file",
            snap_arg,
            "--role",
            "data-plane",
        ],
        true,
    );
    node.wait_for("starting from the snapshot file", Duration::from_secs(5));
    assert_eq!(status(&node.proxy, "/old").await, 200);

    // Create that database again, with a new config in it.
    let name = late_url.rsplit_once('/').unwrap().1.to_string();
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let pg = gatehouse_store::open(&format!("{base}/{name}"))
        .await
        .unwrap();
    put(
        pg.as_ref(),
        Kind::Service,
        "app",
        service("app", &upstream.url()),
    )
    .await;
    put(pg.as_ref(), Kind::Route, "r", route("r", "app", "/new")).await;
    let took = node.until("/new", 200, Duration::from_secs(15)).await;
    eprintln!("store back: new config served after {took:?}");
    node.wait_for("the store is reachable again", Duration::from_secs(1));
    // And it follows changes from now on.
    put(pg.as_ref(), Kind::Route, "r", route("r", "app", "/newer")).await;
    node.until("/newer", 200, Duration::from_secs(5)).await;
    node.stop();
    drop(pg);
    client
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}

#[test]
fn entity_sections_in_the_settings_file_are_an_error_with_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.yaml");
    std::fs::write(
        &path,
        "listeners:\n  - address: \"127.0.0.1:0\"\nservices:\n  - name: a\n    url: http://127.0.0.1:9\nroutes:\n  - name: r\n    service: a\n",
    )
    .unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let (ok, log) =
        Node::spawn(&url, &["--config", path.to_str().unwrap()]).wait_exit(Duration::from_secs(20));
    assert!(!ok);
    assert!(
        log.contains("may only hold node settings") && log.contains("`services`, `routes`"),
        "{log}"
    );
    // --role without --store is refused by the command line.
    let out = std::process::Command::new(nodes::BIN)
        .args(["run", "--role", "data-plane"])
        .env_remove("GATEHOUSE_STORE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--store"));
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_decide_what_runs_and_sighup_resyncs() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let config = settings_file(dir.path());
    let token = {
        let out = std::process::Command::new(nodes::BIN)
            .args(["admin", "token", "create", "--store", &url])
            .args(["--name", "t", "--role", "super-admin"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let mock = json!({"body": {"name": "m", "paths": ["/m"], "plugins": [
        {"name": "mock", "config": {"body": "mocked"}}
    ]}});

    // control-plane: the admin API, no proxy.
    let admin = format!("127.0.0.1:{}", free_port());
    let cp = Node::start(
        &url,
        &[
            "--role",
            "control-plane",
            "--admin-listen",
            &admin,
            "--config",
            &config,
        ],
        false,
    );
    let (st, body) = loop {
        match nodes::http(
            &admin,
            "PUT",
            "/workspaces/default/routes/m",
            Some(&token),
            Some(&mock),
        )
        .await
        {
            Ok(r) => break r,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert_eq!(st, 201, "{body}");
    assert_eq!(cp.count("\"listening\""), 0, "{}", cp.log());

    // data-plane: the proxy, no admin API.
    let admin2 = format!("127.0.0.1:{}", free_port());
    let dp = Node::start(
        &url,
        &[
            "--role",
            "data-plane",
            "--admin-listen",
            &admin2,
            "--config",
            &config,
        ],
        true,
    );
    assert_eq!(status(&dp.proxy, "/m").await, 200, "{}", dp.log());
    assert!(
        nodes::http(&admin2, "GET", "/workspaces", Some(&token), None)
            .await
            .is_err()
    );

    // both: a change through its own admin API is served by itself; SIGHUP
    // resyncs (reloads even at the same revision).
    let admin3 = format!("127.0.0.1:{}", free_port());
    let mut both = Node::start(
        &url,
        &["--admin-listen", &admin3, "--config", &config],
        true,
    );
    let moved = json!({"body": {"name": "m", "paths": ["/moved"], "plugins": [
        {"name": "mock", "config": {"body": "mocked"}}
    ]}});
    let (st, body) = nodes::http(
        &admin3,
        "PUT",
        "/workspaces/default/routes/m",
        Some(&token),
        Some(&moved),
    )
    .await
    .unwrap();
    assert_eq!(st, 200, "{body}");
    let took = both.until("/moved", 200, Duration::from_secs(5)).await;
    eprintln!("both: own admin change served after {took:?}");
    // The data-plane node (another process, SQLite) sees it too.
    let took = dp.until("/moved", 200, Duration::from_secs(5)).await;
    eprintln!("data-plane on shared SQLite: change served after {took:?}");
    let before = both.count("config reloaded from the store");
    both.signal("-HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while both.count("config reloaded from the store") == before {
        assert!(std::time::Instant::now() < deadline, "{}", both.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    both.wait_for("SIGHUP", Duration::from_secs(1));
    both.stop();
    dp.stop();
    cp.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_periodic_resync_catches_a_change_without_notification() {
    let upstream = Upstream::builder().body("hello").start().await;
    let db = gatehouse_testkit::pg::TestDb::create("node_resync");
    let dir = tempfile::tempdir().unwrap();
    let config = settings_file(dir.path());
    let store = gatehouse_store::open(db.url()).await.unwrap();
    put(
        store.as_ref(),
        Kind::Service,
        "app",
        service("app", &upstream.url()),
    )
    .await;
    put(
        store.as_ref(),
        Kind::Route,
        "r",
        route("r", "app", "/before"),
    )
    .await;
    let snap = dir.path().join("snap.json");
    let node = Node::start(
        db.url(),
        &[
            "--config",
            &config,
            "--role",
            "data-plane",
            "--snapshot-file",
            snap.to_str().unwrap(),
            "--resync-interval",
            "500ms",
        ],
        true,
    );
    assert_eq!(status(&node.proxy, "/before").await, 200);

    // Change the route and the revision behind the store's back: no NOTIFY
    // is sent, so only the periodic revision check can see it.
    let (client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "BEGIN;
             UPDATE store_revision SET revision = revision + 1 WHERE id = 1;
             UPDATE documents SET body = jsonb_set(body, '{paths}', '[\"/after\"]'),
                    version = (SELECT revision FROM store_revision WHERE id = 1)
              WHERE kind = 'route' AND name = 'r';
             COMMIT;",
        )
        .await
        .unwrap();
    let took = node.until("/after", 200, Duration::from_secs(10)).await;
    eprintln!("unnotified change served after {took:?} (resync interval 500ms)");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    node.stop();
}
