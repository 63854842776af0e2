#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `gatehouse config dump | diff | apply` as processes, against a fresh
//! SQLite file and a fresh PostgreSQL database (127.0.0.1:5432 as
//! `postgres`, or GATEHOUSE_TEST_POSTGRES; the postgres cases fail, they do
//! not skip, when it is not reachable).

use std::path::Path;
use std::process::{Command, Output};

use gatehouse_store::{Expect, Kind, NewDocument};
use gatehouse_testkit::pg::TestDb;

const CONFIG: &str = r#"
listeners:
  - address: 127.0.0.1:0
services:
  - name: users
    url: http://127.0.0.1:9001
    tags: [team-a]
  - name: orders
    url: http://127.0.0.1:9002
    timeout: 10s
routes:
  - name: users-route
    paths: [/users]
    service: users
  - name: orders-route
    paths: [/orders]
    service: orders
    strip_prefix: true
plugins:
  - name: cors
  - name: request-id
consumers:
  - username: alice
    credentials:
      key_auth:
        - key: alice-secret-key
  - username: bob
    tags: [partner]
"#;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A fresh store URL; a PostgreSQL database is dropped with it.
struct Fixture {
    url: String,
    _pg: Option<TestDb>,
}

impl Fixture {
    fn sqlite(dir: &Path) -> Fixture {
        Fixture {
            url: format!("sqlite://{}", dir.join("g.db").display()),
            _pg: None,
        }
    }

    fn postgres() -> Fixture {
        let db = TestDb::create("gh_sync");
        Fixture {
            url: db.url().to_owned(),
            _pg: Some(db),
        }
    }

    fn revision(&self) -> u64 {
        block_on(async {
            gatehouse_store::open(&self.url)
                .await
                .unwrap()
                .revision()
                .await
                .unwrap()
        })
    }
}

fn gatehouse(args: &[&str], store: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env("GATEHOUSE_STORE", store)
        .env("GATEHOUSE_LOG", "warn")
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The stored entities of a configuration, each list sorted by name.
fn entities(yaml: &str) -> gatehouse_config::Config {
    let mut c = gatehouse_config::parse_str(yaml, "x.yaml").unwrap().config;
    c.server = Default::default();
    c.listeners.clear();
    c.services.sort_by(|a, b| a.name.cmp(&b.name));
    c.routes.sort_by(|a, b| a.name.cmp(&b.name));
    c.plugins.sort_by(|a, b| a.name.cmp(&b.name));
    c.consumers.sort_by(|a, b| a.username.cmp(&b.username));
    c
}

fn sync_round_trip(fx: &Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gatehouse.yaml");
    std::fs::write(&file, CONFIG).unwrap();
    let file = file.to_str().unwrap();

    // Apply: everything is created, in one new revision.
    let before = fx.revision();
    let out = gatehouse(&["config", "apply", file], &fx.url);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("8 created, 0 updated, 0 deleted, 0 unchanged"),
        "{stdout}"
    );
    assert!(stderr.contains("not stored"), "{stderr}");
    let applied = fx.revision();
    assert_eq!(applied, before + 1);

    // Apply again: all unchanged, no new revision.
    let out = gatehouse(&["config", "apply", file], &fx.url);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("0 created, 0 updated, 0 deleted, 8 unchanged"),
        "{stdout}"
    );
    assert_eq!(fx.revision(), applied);

    // Dump: deterministic, valid, the same entities as the input.
    let dump = gatehouse(&["config", "dump"], &fx.url);
    assert_eq!(dump.status.code(), Some(0), "{:?}", text(&dump));
    let again = gatehouse(&["config", "dump", "--workspace", "default"], &fx.url);
    assert_eq!(dump.stdout, again.stdout);
    let dumped = String::from_utf8(dump.stdout).unwrap();
    // Secrets are never dumped: alice's key is left out (and kept by a
    // diff or apply of the dump, below).
    assert!(!dumped.contains("alice-secret-key"), "{dumped}");
    let mut expected = entities(CONFIG);
    for c in &mut expected.consumers {
        c.credentials.0.values_mut().for_each(Vec::clear);
    }
    assert_eq!(entities(&dumped), expected);
    let dump_file = dir.path().join("dump.yaml");
    let out = gatehouse(
        &["config", "dump", "-o", dump_file.to_str().unwrap()],
        &fx.url,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&dump_file).unwrap(), dumped);
    let out = gatehouse(&["validate", dump_file.to_str().unwrap()], &fx.url);
    assert_eq!(out.status.code(), Some(0), "{:?}\n{dumped}", text(&out));

    // Diff of the same file (and of the dump): no changes, exit 0.
    for f in [file, dump_file.to_str().unwrap()] {
        let out = gatehouse(&["config", "diff", f], &fx.url);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
        assert_eq!(
            stdout,
            "0 to create, 0 to update, 0 to delete, 8 unchanged\n"
        );
    }

    // Change a URL, remove a route: exactly those two lines, exit 1.
    let changed = CONFIG
        .replace("http://127.0.0.1:9001", "http://127.0.0.1:9009")
        .replace(
            "  - name: orders-route\n    paths: [/orders]\n    service: orders\n    strip_prefix: true\n",
            "",
        );
    assert_ne!(changed, CONFIG);
    let changed_file = dir.path().join("changed.yaml");
    std::fs::write(&changed_file, &changed).unwrap();
    let out = gatehouse(&["config", "diff", changed_file.to_str().unwrap()], &fx.url);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "~ service users: url: \"http://127.0.0.1:9001\" -> \"http://127.0.0.1:9009\"\n\
         - route orders-route\n\
         0 to create, 1 to update, 1 to delete, 6 unchanged\n"
    );
    assert_eq!(fx.revision(), applied, "diff changes nothing");

    // An invalid file: exit 2, the validate message, the store untouched.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "services:\n  - name: a\n    url: http://127.0.0.1:1\n    colour: red\n",
    )
    .unwrap();
    let validate = gatehouse(&["validate", bad.to_str().unwrap()], &fx.url);
    let (_, validate_err) = text(&validate);
    for cmd in ["apply", "diff"] {
        let out = gatehouse(&["config", cmd, bad.to_str().unwrap()], &fx.url);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("{}:4:5", bad.display())),
            "{cmd}: {stderr}"
        );
        assert!(stderr.contains("colour"), "{stderr}");
        assert_eq!(stderr.trim(), validate_err.trim());
    }
    assert_eq!(fx.revision(), applied);
    let still = gatehouse(&["config", "dump"], &fx.url);
    assert_eq!(still.stdout, dumped.as_bytes());

    // Apply the change: one update, one delete, one revision.
    let out = gatehouse(
        &["config", "apply", changed_file.to_str().unwrap()],
        &fx.url,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("0 created, 1 updated, 1 deleted, 6 unchanged"),
        "{stdout}"
    );
    assert_eq!(fx.revision(), applied + 1);
    let dump = gatehouse(&["config", "dump"], &fx.url);
    let mut expected = entities(&changed);
    for c in &mut expected.consumers {
        c.credentials.0.values_mut().for_each(Vec::clear);
    }
    assert_eq!(entities(&String::from_utf8(dump.stdout).unwrap()), expected);

    // A store failure (no such workspace) leaves everything as it was.
    let out = gatehouse(&["config", "apply", file, "--workspace", "nope"], &fx.url);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert_eq!(fx.revision(), applied + 1);
}

#[test]
fn sync_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    sync_round_trip(&Fixture::sqlite(dir.path()));
}

#[test]
fn sync_postgres() {
    sync_round_trip(&Fixture::postgres());
}

/// An apply keeps the documents a file cannot describe (an app and a
/// certificate made through the admin API), and refuses a file whose
/// routes would conflict with another workspace's, changing nothing.
fn apply_keeps_and_cross_checks(fx: &Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gatehouse.yaml");
    std::fs::write(&file, CONFIG).unwrap();
    let file = file.to_str().unwrap();
    let out = gatehouse(&["config", "apply", file], &fx.url);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));

    let pair = gatehouse_testkit::tls::TestCa::new("ca").server_cert(&["api.test"]);
    block_on(async {
        let store = gatehouse_store::open(&fx.url).await.unwrap();
        for (kind, name, body) in [
            (
                Kind::App,
                "mobile",
                serde_json::json!({"consumer": "alice", "name": "mobile"}),
            ),
            (
                Kind::Certificate,
                "api",
                serde_json::json!({"cert": pair.cert_pem, "key": pair.key_pem}),
            ),
            (Kind::Workspace, "team-b", serde_json::json!({})),
        ] {
            let workspace = if kind == Kind::Workspace {
                gatehouse_store::WORKSPACE_SCOPE
            } else {
                "default"
            };
            store
                .put(
                    "test",
                    NewDocument {
                        workspace: workspace.into(),
                        kind,
                        name: name.into(),
                        tags: vec![],
                        body,
                    },
                    Expect::Absent,
                )
                .await
                .unwrap();
        }
    });
    // The diff shows no change and the apply keeps both documents.
    let out = gatehouse(&["config", "diff", file], &fx.url);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("2 app, credential or certificate"),
        "{stderr}"
    );
    let out = gatehouse(&["config", "apply", file], &fx.url);
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains("0 created, 0 updated, 0 deleted, 10 unchanged"),
        "{stdout}{stderr}"
    );

    // team-b's file routes /users on every host, default's too: refused.
    let before = fx.revision();
    let other = dir.path().join("team-b.yaml");
    std::fs::write(
        &other,
        "services:\n  - name: users\n    url: http://127.0.0.1:9009\nroutes:\n  - name: mine\n    paths: [/users]\n    service: users\n",
    )
    .unwrap();
    let out = gatehouse(
        &[
            "config",
            "apply",
            other.to_str().unwrap(),
            "--workspace",
            "team-b",
        ],
        &fx.url,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "route `mine` in workspace `team-b`: a route outside workspace `default` must name its hosts"
        ),
        "{stderr}"
    );
    assert_eq!(fx.revision(), before, "a refused apply changed the store");
}

#[test]
fn apply_keeps_and_cross_checks_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    apply_keeps_and_cross_checks(&Fixture::sqlite(dir.path()));
}

#[test]
fn apply_keeps_and_cross_checks_postgres() {
    apply_keeps_and_cross_checks(&Fixture::postgres());
}
