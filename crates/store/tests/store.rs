#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One suite for both backends: every case is an async fn taking a
//! `Fixture` (a fresh SQLite file, or a fresh PostgreSQL database), and
//! `both!` runs it as `<case>::sqlite` and `<case>::postgres`.
//!
//! PostgreSQL must be reachable at 127.0.0.1:5432 as `postgres` with trust
//! auth (override with GATEHOUSE_TEST_POSTGRES); if it is not, the postgres
//! tests fail, they do not skip (`.ci/run` starts it).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::{
    ApplyDocument, AuditQuery, DEFAULT_WORKSPACE, Expect, Kind, ListQuery, NewDocument, Outcome,
    Role, Store, StoreError, WORKSPACE_SCOPE,
};
use gatehouse_testkit::pg::TestDb;
use serde_json::json;
use tokio_postgres::NoTls;

enum Fixture {
    Sqlite { dir: tempfile::TempDir, url: String },
    Postgres { db: TestDb, url: String },
}

impl Fixture {
    fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}",
            dir.path().join("data/gatehouse.db").display()
        );
        Fixture::Sqlite { dir, url }
    }

    async fn postgres() -> Fixture {
        let db = TestDb::create("gh_test");
        let url = db.url().to_owned();
        Fixture::Postgres { db, url }
    }

    fn url(&self) -> &str {
        match self {
            Fixture::Sqlite { url, .. } | Fixture::Postgres { url, .. } => url,
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        gatehouse_store::open(self.url()).await.unwrap()
    }

    /// Runs raw SQL statements that return nothing.
    async fn exec(&self, sql: &str) {
        match self {
            Fixture::Sqlite { dir, .. } => {
                let conn =
                    rusqlite::Connection::open(dir.path().join("data/gatehouse.db")).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            Fixture::Postgres { url, .. } => {
                let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
                tokio::spawn(conn);
                client.batch_execute(sql).await.unwrap();
            }
        }
    }

    /// Every value of every row of a table, as text.
    async fn dump(&self, table: &str) -> String {
        match self {
            Fixture::Sqlite { dir, .. } => {
                let conn =
                    rusqlite::Connection::open(dir.path().join("data/gatehouse.db")).unwrap();
                let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
                let cols = stmt.column_count();
                let mut rows = stmt.query([]).unwrap();
                let mut out = String::new();
                while let Some(row) = rows.next().unwrap() {
                    for i in 0..cols {
                        let v: rusqlite::types::Value = row.get(i).unwrap();
                        out.push_str(&format!("{v:?}|"));
                    }
                    out.push('\n');
                }
                out
            }
            Fixture::Postgres { url, .. } => {
                let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
                tokio::spawn(conn);
                client
                    .query(&format!("SELECT t::text FROM {table} t"), &[])
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<_, String>(0) + "\n")
                    .collect()
            }
        }
    }

    /// Every byte the database keeps on disk, where we can see it (SQLite).
    fn files(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        if let Fixture::Sqlite { dir, .. } = self {
            for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
                bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
            }
        }
        bytes
    }
}

macro_rules! both {
    ($case:ident) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(super::Fixture::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case(super::Fixture::postgres().await).await;
            }
        }
    };
}

fn service(name: &str, port: u16) -> NewDocument {
    NewDocument {
        workspace: DEFAULT_WORKSPACE.into(),
        kind: Kind::Service,
        name: name.into(),
        tags: vec!["team-a".into()],
        body: json!({ "name": name, "url": format!("http://127.0.0.1:{port}") }),
    }
}

fn apply_doc(kind: Kind, name: &str, tags: &[&str], body: serde_json::Value) -> ApplyDocument {
    ApplyDocument {
        kind,
        name: name.into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        body,
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

// ---------------------------------------------------------------- cases

both!(crud_and_versions);
async fn crud_and_versions(fx: Fixture) {
    let store = fx.open().await;
    let rev0 = store.revision().await.unwrap();

    let created = store
        .put("alice", service("billing", 9000), Expect::Absent)
        .await
        .unwrap();
    assert_eq!(created.outcome, Outcome::Created);
    let v1 = created.document.version;
    assert_eq!(v1, rev0 + 1, "a change bumps the revision once");
    assert_eq!(store.revision().await.unwrap(), v1);

    let got = store
        .get(DEFAULT_WORKSPACE, Kind::Service, "billing")
        .await
        .unwrap();
    assert_eq!(got, created.document);
    assert_eq!(store.get_by_id(got.id).await.unwrap(), got);
    // The body is the config model's entity.
    let svc: gatehouse_config::Service = got.decode().unwrap();
    assert_eq!(svc.url.as_str(), "http://127.0.0.1:9000");

    let updated = store
        .put("alice", service("billing", 9001), Expect::Any)
        .await
        .unwrap();
    assert_eq!(updated.outcome, Outcome::Updated);
    assert!(updated.document.version > v1);
    assert_eq!(updated.document.id, got.id, "the id survives updates");
    assert_eq!(updated.document.created_at, got.created_at);

    // Writing the same thing again changes nothing, not even the revision.
    let same = store
        .put("alice", service("billing", 9001), Expect::Any)
        .await
        .unwrap();
    assert_eq!(same.outcome, Outcome::Unchanged);
    assert_eq!(same.document, updated.document);
    assert_eq!(store.revision().await.unwrap(), updated.document.version);

    let deleted = store
        .delete(
            "alice",
            DEFAULT_WORKSPACE,
            Kind::Service,
            "billing",
            Expect::Version(updated.document.version),
        )
        .await
        .unwrap();
    assert_eq!(deleted, updated.document);
    assert!(matches!(
        store.get(DEFAULT_WORKSPACE, Kind::Service, "billing").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .delete(
                "alice",
                DEFAULT_WORKSPACE,
                Kind::Service,
                "billing",
                Expect::Any
            )
            .await,
        Err(StoreError::NotFound(_))
    ));

    // Re-created: a new id, and a version never used before (the ETag of
    // the old document cannot match the new one).
    let again = store
        .put("alice", service("billing", 9000), Expect::Absent)
        .await
        .unwrap();
    assert_ne!(again.document.id, got.id);
    assert!(again.document.version > updated.document.version);

    // Names are unique per workspace, not globally.
    let ws = NewDocument {
        workspace: WORKSPACE_SCOPE.into(),
        kind: Kind::Workspace,
        name: "team-b".into(),
        tags: vec![],
        body: json!({ "name": "team-b" }),
    };
    store.put("alice", ws, Expect::Absent).await.unwrap();
    let mut other = service("billing", 9100);
    other.workspace = "team-b".into();
    store.put("alice", other, Expect::Absent).await.unwrap();
    let a = store
        .get(DEFAULT_WORKSPACE, Kind::Service, "billing")
        .await
        .unwrap();
    let b = store.get("team-b", Kind::Service, "billing").await.unwrap();
    assert_ne!(a.id, b.id);

    // A workspace that still holds documents cannot go; an empty one can.
    let err = store
        .delete(
            "alice",
            WORKSPACE_SCOPE,
            Kind::Workspace,
            "team-b",
            Expect::Any,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("still holds 1")),
        "{err}"
    );
    store
        .delete("alice", "team-b", Kind::Service, "billing", Expect::Any)
        .await
        .unwrap();
    store
        .delete(
            "alice",
            WORKSPACE_SCOPE,
            Kind::Workspace,
            "team-b",
            Expect::Any,
        )
        .await
        .unwrap();

    // Bad input.
    let mut missing_ws = service("x", 1);
    missing_ws.workspace = "nope".into();
    assert!(
        matches!(store.put("a", missing_ws, Expect::Any).await, Err(StoreError::NotFound(m)) if m.contains("nope"))
    );
    let mut bad_name = service("", 1);
    bad_name.name = String::new();
    assert!(matches!(
        store.put("a", bad_name, Expect::Any).await,
        Err(StoreError::Invalid(_))
    ));
    let mut ctrl = service("x", 1);
    ctrl.name = "a\nb".into();
    assert!(matches!(
        store.put("a", ctrl, Expect::Any).await,
        Err(StoreError::Invalid(_))
    ));
    let mut not_object = service("x", 1);
    not_object.body = json!([1, 2]);
    assert!(matches!(
        store.put("a", not_object, Expect::Any).await,
        Err(StoreError::Invalid(_))
    ));
    let mut scoped = service("x", 1);
    scoped.workspace = WORKSPACE_SCOPE.into();
    assert!(matches!(
        store.put("a", scoped, Expect::Any).await,
        Err(StoreError::Invalid(_))
    ));
    let bad_ws = NewDocument {
        workspace: WORKSPACE_SCOPE.into(),
        kind: Kind::Workspace,
        name: "_hidden".into(),
        tags: vec![],
        body: json!({}),
    };
    assert!(matches!(
        store.put("a", bad_ws, Expect::Any).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .list(&ListQuery {
                workspace: DEFAULT_WORKSPACE.into(),
                ..Default::default()
            })
            .await,
        Err(StoreError::Invalid(_))
    ));
}

both!(if_match_conflicts);
async fn if_match_conflicts(fx: Fixture) {
    let store = fx.open().await;
    let v1 = store
        .put("a", service("svc", 1), Expect::Absent)
        .await
        .unwrap()
        .document
        .version;
    let v2 = store
        .put("a", service("svc", 2), Expect::Version(v1))
        .await
        .unwrap()
        .document
        .version;
    let rev = store.revision().await.unwrap();

    // A stale If-Match fails and reports the current version.
    match store.put("a", service("svc", 3), Expect::Version(v1)).await {
        Err(StoreError::Conflict { current }) => assert_eq!(current, Some(v2)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    match store
        .delete(
            "a",
            DEFAULT_WORKSPACE,
            Kind::Service,
            "svc",
            Expect::Version(v1),
        )
        .await
    {
        Err(StoreError::Conflict { current }) => assert_eq!(current, Some(v2)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // If-None-Match: * on an existing document.
    assert!(matches!(
        store.put("a", service("svc", 3), Expect::Absent).await,
        Err(StoreError::AlreadyExists(m)) if m.contains("svc")
    ));
    // If-Match on a document that does not exist.
    assert!(matches!(
        store
            .put("a", service("ghost", 3), Expect::Version(v2))
            .await,
        Err(StoreError::Conflict { current: None })
    ));
    assert!(matches!(
        store
            .delete(
                "a",
                DEFAULT_WORKSPACE,
                Kind::Service,
                "ghost",
                Expect::Version(v2)
            )
            .await,
        Err(StoreError::Conflict { current: None })
    ));
    assert!(matches!(
        store
            .delete("a", DEFAULT_WORKSPACE, Kind::Service, "svc", Expect::Absent)
            .await,
        Err(StoreError::Invalid(_))
    ));

    // Failed writes left no trace.
    assert_eq!(store.revision().await.unwrap(), rev);
    let doc = store
        .get(DEFAULT_WORKSPACE, Kind::Service, "svc")
        .await
        .unwrap();
    assert_eq!(doc.version, v2);
    assert_eq!(doc.body["url"], "http://127.0.0.1:2");
    assert!(
        store
            .get(DEFAULT_WORKSPACE, Kind::Service, "ghost")
            .await
            .is_err()
    );
}

both!(concurrent_writers);
async fn concurrent_writers(fx: Fixture) {
    let first = fx.open().await;
    let v0 = first
        .put("setup", service("hot", 0), Expect::Absent)
        .await
        .unwrap()
        .document
        .version;
    let mut handles = Vec::new();
    for _ in 0..20 {
        handles.push(fx.open().await);
    }

    // 20 writers, each on its own handle (connection), same If-Match.
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = handles
        .iter()
        .enumerate()
        .map(|(i, store)| {
            let store = Arc::clone(store);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                let port = u16::try_from(i).unwrap() + 1;
                (
                    port,
                    store
                        .put(
                            &format!("writer-{i}"),
                            service("hot", port),
                            Expect::Version(v0),
                        )
                        .await,
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            (port, Ok(w)) => winners.push((port, w.document)),
            (_, Err(StoreError::Conflict { current: Some(_) })) => conflicts += 1,
            (_, other) => panic!("unexpected result {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    assert_eq!(conflicts, 19);
    let (port, winner) = winners.pop().unwrap();
    let now = first
        .get(DEFAULT_WORKSPACE, Kind::Service, "hot")
        .await
        .unwrap();
    assert_eq!(now, winner);
    assert_eq!(now.body["url"], format!("http://127.0.0.1:{port}"));
    assert_eq!(first.revision().await.unwrap(), v0 + 1);
    let updates = first
        .audit(&AuditQuery {
            name: Some("hot".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(updates.iter().filter(|e| e.action == "update").count(), 1);

    // Nothing lost: 20 read-modify-write loops (retrying on conflict) on a
    // counter end at exactly 20.
    let counter = NewDocument {
        workspace: DEFAULT_WORKSPACE.into(),
        kind: Kind::Plan,
        name: "counter".into(),
        tags: vec![],
        body: json!({ "n": 0 }),
    };
    first
        .put("setup", counter.clone(), Expect::Absent)
        .await
        .unwrap();
    let tasks: Vec<_> = handles
        .iter()
        .map(|store| {
            let store = Arc::clone(store);
            let counter = counter.clone();
            tokio::spawn(async move {
                loop {
                    let cur = store
                        .get(DEFAULT_WORKSPACE, Kind::Plan, "counter")
                        .await
                        .unwrap();
                    let n = cur.body["n"].as_u64().unwrap();
                    let next = NewDocument {
                        body: json!({ "n": n + 1 }),
                        ..counter.clone()
                    };
                    match store.put("inc", next, Expect::Version(cur.version)).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        within("counter writers", t).await.unwrap();
    }
    let end = first
        .get(DEFAULT_WORKSPACE, Kind::Plan, "counter")
        .await
        .unwrap();
    assert_eq!(end.body["n"], 20);
}

both!(apply_is_one_transaction);
async fn apply_is_one_transaction(fx: Fixture) {
    let store = fx.open().await;
    let desired = vec![
        apply_doc(
            Kind::Service,
            "a",
            &[],
            json!({ "name": "a", "url": "http://a:80" }),
        ),
        apply_doc(
            Kind::Service,
            "b",
            &[],
            json!({ "name": "b", "url": "http://b:80" }),
        ),
        apply_doc(
            Kind::Service,
            "c",
            &[],
            json!({ "name": "c", "url": "http://c:80" }),
        ),
        apply_doc(
            Kind::Route,
            "r1",
            &[],
            json!({ "name": "r1", "service": "a", "paths": ["/a/*"] }),
        ),
        apply_doc(
            Kind::Route,
            "r2",
            &[],
            json!({ "name": "r2", "service": "b" }),
        ),
    ];
    let r = store
        .apply("gitops", DEFAULT_WORKSPACE, desired.clone())
        .await
        .unwrap();
    assert_eq!((r.created, r.updated, r.deleted, r.unchanged), (5, 0, 0, 0));
    assert_eq!(r.revision, store.revision().await.unwrap());
    // One apply is one revision: every document written carries it.
    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.revision, r.revision);
    let in_default: Vec<_> = snap
        .documents
        .iter()
        .filter(|d| d.workspace == DEFAULT_WORKSPACE)
        .collect();
    assert_eq!(in_default.len(), 5);
    assert!(in_default.iter().all(|d| d.version == r.revision));
    let route: gatehouse_config::Route = store
        .get(DEFAULT_WORKSPACE, Kind::Route, "r1")
        .await
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(route.paths, vec!["/a/*".to_owned()]);

    // The same input again: nothing changes, no new revision.
    let again = store
        .apply("gitops", DEFAULT_WORKSPACE, desired.clone())
        .await
        .unwrap();
    assert_eq!(
        (again.created, again.updated, again.deleted, again.unchanged),
        (0, 0, 0, 5)
    );
    assert_eq!(again.revision, r.revision);

    // Change one, drop one, add one.
    let mut next = desired.clone();
    next[0].body = json!({ "name": "a", "url": "http://a:81" });
    next.retain(|d| d.name != "r2");
    next.push(apply_doc(
        Kind::Consumer,
        "ann",
        &[],
        json!({ "username": "ann" }),
    ));
    let r2 = store
        .apply("gitops", DEFAULT_WORKSPACE, next.clone())
        .await
        .unwrap();
    assert_eq!(
        (r2.created, r2.updated, r2.deleted, r2.unchanged),
        (1, 1, 1, 3)
    );
    assert_eq!(r2.revision, r.revision + 1);

    // A failing apply: many changes, then a duplicate at the very end. The
    // earlier writes happened inside the transaction and must be undone.
    let before = store.snapshot().await.unwrap();
    let audit_before = store.audit(&AuditQuery::default()).await.unwrap();
    let mut bad: Vec<_> = (0..10)
        .map(|i| {
            apply_doc(
                Kind::Service,
                &format!("new-{i}"),
                &[],
                json!({ "name": format!("new-{i}"), "url": "http://n:1" }),
            )
        })
        .collect();
    bad.push(apply_doc(
        Kind::Service,
        "a",
        &[],
        json!({ "name": "a", "url": "http://changed:1" }),
    ));
    bad.push(apply_doc(
        Kind::Service,
        "new-3",
        &[],
        json!({ "name": "new-3", "url": "http://dup:1" }),
    ));
    let err = store
        .apply("gitops", DEFAULT_WORKSPACE, bad)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("new-3") && m.contains("twice")),
        "{err}"
    );
    let after = store.snapshot().await.unwrap();
    assert_eq!(after, before, "a failed apply leaves the old state whole");
    assert_eq!(
        store.audit(&AuditQuery::default()).await.unwrap(),
        audit_before
    );

    // Other failures: an unknown workspace, a workspace document inside.
    assert!(matches!(
        store.apply("g", "nope", vec![]).await,
        Err(StoreError::NotFound(_))
    ));
    let ws = apply_doc(Kind::Workspace, "x", &[], json!({}));
    assert!(matches!(
        store.apply("g", DEFAULT_WORKSPACE, vec![ws]).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.snapshot().await.unwrap(), before);

    // An empty apply empties the workspace (and only it).
    let emptied = store
        .apply("gitops", DEFAULT_WORKSPACE, vec![])
        .await
        .unwrap();
    assert_eq!(emptied.deleted, 5);
    let snap = store.snapshot().await.unwrap();
    assert!(
        snap.documents
            .iter()
            .all(|d| d.workspace == WORKSPACE_SCOPE)
    );
    assert_eq!(
        snap.documents.len(),
        1,
        "the default workspace itself stays"
    );
}

both!(audit_before_after);
async fn audit_before_after(fx: Fixture) {
    let store = fx.open().await;
    let created = store
        .put("alice", service("pay", 1), Expect::Absent)
        .await
        .unwrap()
        .document;
    let updated = store
        .put("bob", service("pay", 2), Expect::Any)
        .await
        .unwrap()
        .document;
    store
        .delete(
            "carol",
            DEFAULT_WORKSPACE,
            Kind::Service,
            "pay",
            Expect::Any,
        )
        .await
        .unwrap();

    let q = AuditQuery {
        workspace: Some(DEFAULT_WORKSPACE.into()),
        kind: Some("service".into()),
        name: Some("pay".into()),
        ..Default::default()
    };
    let log = store.audit(&q).await.unwrap();
    assert_eq!(log.len(), 3);
    let (del, upd, cre) = (&log[0], &log[1], &log[2]);
    assert!(del.seq > upd.seq && upd.seq > cre.seq, "newest first");
    assert_eq!(
        (cre.action.as_str(), cre.actor.as_str()),
        ("create", "alice")
    );
    assert_eq!((upd.action.as_str(), upd.actor.as_str()), ("update", "bob"));
    assert_eq!(
        (del.action.as_str(), del.actor.as_str()),
        ("delete", "carol")
    );
    assert_eq!(cre.before, None);
    assert_eq!(cre.after.as_ref().unwrap()["body"], created.body);
    assert_eq!(
        upd.before.as_ref().unwrap()["body"]["url"],
        "http://127.0.0.1:1"
    );
    assert_eq!(
        upd.after.as_ref().unwrap()["body"]["url"],
        "http://127.0.0.1:2"
    );
    assert_eq!(upd.after.as_ref().unwrap()["version"], updated.version);
    assert_eq!(del.before.as_ref().unwrap()["body"], updated.body);
    assert_eq!(del.after, None);
    assert_eq!(cre.revision, created.version);
    assert_eq!(upd.revision, updated.version);
    assert!(del.revision > upd.revision);
    assert!(del.at >= cre.at && cre.at > 1_700_000_000_000);

    // Limit and paging by seq.
    let first = store
        .audit(&AuditQuery {
            limit: 2,
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(first, log[..2]);
    let rest = store
        .audit(&AuditQuery {
            before_seq: Some(first[1].seq),
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(rest, log[2..]);
    // The seeded default workspace has its create entry too.
    let seeded = store
        .audit(&AuditQuery {
            kind: Some("workspace".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(seeded.len(), 1);
    assert_eq!(seeded[0].actor, "system");
}

both!(pagination_with_tags);
async fn pagination_with_tags(fx: Fixture) {
    let store = fx.open().await;
    let docs: Vec<_> = (0..250)
        .map(|i| {
            let mut tags = vec!["all"];
            if i % 2 == 0 {
                tags.push("even");
            }
            if i % 3 == 0 {
                tags.push("three");
            }
            let name = format!("svc-{i:03}");
            apply_doc(
                Kind::Service,
                &name,
                &tags,
                json!({ "name": name, "url": "http://x:1" }),
            )
        })
        .collect();
    store.apply("a", DEFAULT_WORKSPACE, docs).await.unwrap();

    let collect = |tags: Vec<&str>, limit: usize| {
        let store = Arc::clone(&store);
        let tags: Vec<String> = tags.into_iter().map(str::to_owned).collect();
        async move {
            let mut names = Vec::new();
            let mut pages = Vec::new();
            let mut after = None;
            loop {
                let page = store
                    .list(&ListQuery {
                        workspace: DEFAULT_WORKSPACE.into(),
                        kind: Some(Kind::Service),
                        tags: tags.clone(),
                        after: after.clone(),
                        limit,
                    })
                    .await
                    .unwrap();
                pages.push(page.items.len());
                names.extend(page.items.iter().map(|d| d.name.clone()));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            (names, pages)
        }
    };

    let (all, pages) = collect(vec![], 100).await;
    assert_eq!(pages, vec![100, 100, 50]);
    let expected: Vec<String> = (0..250).map(|i| format!("svc-{i:03}")).collect();
    assert_eq!(all, expected, "every document once, in name order");

    let (both_tags, _) = collect(vec!["even", "three"], 10).await;
    let expected: Vec<String> = (0..250)
        .filter(|i| i % 6 == 0)
        .map(|i| format!("svc-{i:03}"))
        .collect();
    assert_eq!(both_tags.len(), 42);
    assert_eq!(both_tags, expected, "tags are all-of");

    let (even, pages) = collect(vec!["even", "all"], 1000).await;
    assert_eq!((even.len(), pages), (125, vec![125]));
    let (none, pages) = collect(vec!["nope"], 10).await;
    assert_eq!((none.len(), pages), (0, vec![0]));

    // limit 0 is the default page size (100); an exact fit has no next page.
    let (_, pages) = collect(vec![], 0).await;
    assert_eq!(pages, vec![100, 100, 50]);
    let (_, pages) = collect(vec![], 125).await;
    assert_eq!(pages, vec![125, 125]);
    // Other kinds and workspaces are not mixed in.
    let routes = store
        .list(&ListQuery {
            workspace: DEFAULT_WORKSPACE.into(),
            kind: Some(Kind::Route),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(routes.items.is_empty() && routes.next.is_none());
    let workspaces = store
        .list(&ListQuery {
            workspace: WORKSPACE_SCOPE.into(),
            kind: Some(Kind::Workspace),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(workspaces.items.len(), 1);
    assert_eq!(workspaces.items[0].name, DEFAULT_WORKSPACE);
}

both!(admin_tokens);
async fn admin_tokens(fx: Fixture) {
    let store = fx.open().await;
    let root = store
        .create_token("bootstrap", "root", Role::SuperAdmin)
        .await
        .unwrap();
    assert!(root.plaintext.starts_with("gha_") && root.plaintext.len() == 68);
    let ws = store
        .create_token(
            "root",
            "team-a ci",
            Role::WorkspaceAdmin {
                workspace: DEFAULT_WORKSPACE.into(),
            },
        )
        .await
        .unwrap();
    assert_ne!(root.plaintext, ws.plaintext);

    let found = store.lookup_token(&root.plaintext).await.unwrap().unwrap();
    assert_eq!(found, root.token);
    assert_eq!(found.role, Role::SuperAdmin);
    assert_eq!(
        store
            .lookup_token(&ws.plaintext)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::WorkspaceAdmin {
            workspace: DEFAULT_WORKSPACE.into()
        }
    );
    assert_eq!(store.lookup_token("gha_0000").await.unwrap(), None);
    assert_eq!(store.lookup_token("").await.unwrap(), None);
    let mut almost = root.plaintext.clone();
    almost.pop();
    assert_eq!(store.lookup_token(&almost).await.unwrap(), None);

    assert!(matches!(
        store
            .create_token(
                "root",
                "x",
                Role::WorkspaceAdmin {
                    workspace: "nope".into()
                }
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.create_token("root", "", Role::Auditor).await,
        Err(StoreError::Invalid(_))
    ));
    store
        .create_token("root", "auditor", Role::Auditor)
        .await
        .unwrap();
    store
        .create_token("root", "reader", Role::ReadOnly)
        .await
        .unwrap();
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 4);

    // Revoked tokens stop matching at once.
    let revoked = store.revoke_token("root", ws.token.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(store.lookup_token(&ws.plaintext).await.unwrap(), None);
    assert!(store.lookup_token(&root.plaintext).await.unwrap().is_some());
    assert!(matches!(
        store.revoke_token("root", uuid::Uuid::new_v4()).await,
        Err(StoreError::NotFound(_))
    ));
    let log = store
        .audit(&AuditQuery {
            kind: Some("admin_token".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(log[0].action, "revoke");
    assert_eq!(log[0].name, "team-a ci");
    assert_eq!(log.len(), 5);

    // The plaintext is nowhere in the database: not in the token table,
    // not in the audit log, not in the SQLite files.
    for table in ["admin_tokens", "audit_log"] {
        let dump = fx.dump(table).await;
        for secret in [&root.plaintext, &ws.plaintext] {
            assert!(
                !dump.contains(secret.as_str()),
                "plaintext token found in {table}"
            );
            assert!(
                !dump.contains(&secret[4..]),
                "token digits found in {table}"
            );
        }
    }
    let tokens = fx.dump("admin_tokens").await;
    assert!(
        tokens.contains("root") && tokens.lines().count() == 4,
        "{tokens}"
    );
    let files = fx.files();
    for secret in [&root.plaintext, &ws.plaintext] {
        assert!(!files.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
}

both!(migrations);
async fn migrations(fx: Fixture) {
    let store = fx.open().await;
    let rev = store.revision().await.unwrap();
    let snap = store.snapshot().await.unwrap();
    drop(store);
    // Opening again is a no-op.
    let again = fx.open().await;
    assert_eq!(again.revision().await.unwrap(), rev);
    assert_eq!(again.snapshot().await.unwrap(), snap);
    let rows = fx.dump("schema_migrations").await;
    assert_eq!(rows.lines().count(), 1, "{rows}");
    drop(again);

    // A database migrated by a newer gatehouse is refused, clearly.
    fx.exec("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
        .await;
    let err = gatehouse_store::open(fx.url())
        .await
        .err()
        .expect("a newer schema must be refused");
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 1
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade gatehouse"), "{err}");
}

both!(subscribe_sees_other_handles);
async fn subscribe_sees_other_handles(fx: Fixture) {
    let watcher = fx.open().await;
    let writer = fx.open().await;
    let mut changes = watcher.subscribe();
    let written = writer
        .put("w", service("seen", 1), Expect::Absent)
        .await
        .unwrap()
        .document
        .version;
    within("the change notification", async {
        loop {
            if changes.next().await.unwrap() >= written {
                break;
            }
        }
    })
    .await;
    assert!(changes.current() >= written);
    // Writes through the watcher's own handle are seen too, and a whole
    // apply is one revision.
    let report = writer
        .apply(
            "w",
            DEFAULT_WORKSPACE,
            vec![apply_doc(Kind::Plan, "gold", &[], json!({}))],
        )
        .await
        .unwrap();
    assert_eq!(report.revision, written + 1);
    within("the apply notification", async {
        while changes.next().await.unwrap() < report.revision {}
    })
    .await;
    let stream = watcher.subscribe().into_stream();
    let own = watcher
        .put("w", service("own", 1), Expect::Absent)
        .await
        .unwrap()
        .document
        .version;
    futures_util::pin_mut!(stream);
    within("the own-handle notification", async {
        use futures_util::StreamExt;
        while stream.next().await.unwrap() < own {}
    })
    .await;
}

// --------------------------------------------------- backend-specific

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listen_survives_terminated_session() {
    let fx = Fixture::postgres().await;
    let Fixture::Postgres { db, .. } = &fx else {
        unreachable!()
    };
    let name = db.name().to_owned();
    let watcher = fx.open().await;
    let writer = fx.open().await;
    let mut changes = watcher.subscribe();
    // Prove the LISTEN session works before killing it.
    let v = writer
        .put("w", service("one", 1), Expect::Absent)
        .await
        .unwrap()
        .document
        .version;
    within("the first notification", async {
        while changes.next().await.unwrap() < v {}
    })
    .await;

    fx.exec(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = '{name}' AND application_name = 'gatehouse-listen'"
    ))
    .await;
    // After reconnecting, the listener announces the current revision (so
    // subscribers resync) ...
    let announced = within("the revision after reconnecting", changes.next())
        .await
        .unwrap();
    assert_eq!(announced, v);
    // ... and notifications flow again.
    let v2 = writer
        .put("w", service("two", 1), Expect::Absent)
        .await
        .unwrap()
        .document
        .version;
    within("a notification after reconnecting", async {
        while changes.next().await.unwrap() < v2 {}
    })
    .await;
    let sessions = fx.dump("pg_stat_activity").await;
    assert!(sessions.contains("gatehouse-listen"));
}

#[tokio::test]
async fn postgres_down_is_unavailable() {
    let err = gatehouse_store::open("postgres://postgres@127.0.0.1:1/none")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
}

#[tokio::test]
async fn sqlite_url_forms() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("a/b/plain.db");
    let store = gatehouse_store::open(plain.to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(store.backend(), "sqlite");
    store
        .put("a", service("x", 1), Expect::Absent)
        .await
        .unwrap();
    drop(store);
    // The same file through the URL form sees the same data.
    let url = format!("sqlite://{}", plain.display());
    let store = gatehouse_store::open(&url).await.unwrap();
    assert!(
        store
            .get(DEFAULT_WORKSPACE, Kind::Service, "x")
            .await
            .is_ok()
    );
    let conn = rusqlite::Connection::open(&plain).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(matches!(
        gatehouse_store::open("sqlite://").await,
        Err(StoreError::Invalid(_))
    ));
    let names: HashSet<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names.len(), Kind::ALL.len());
    for k in Kind::ALL {
        assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
        assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
    }
}
