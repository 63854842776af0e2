#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Plugin state survives reloads (issue 9, "Done means"): a counting test
//! plugin keeps its count across 100 reloads of a file-backed gateway and
//! across admin writes on a store-backed node, keeps it when its config
//! changes compatibly, and starts from zero when it changes in a way the
//! plugin declares incompatible. Its background task starts with the
//! snapshot that asks for it and stops when no snapshot does.
//!
//! The store-backed node runs in-process (`gatehouse::node::serve_until`)
//! with the built-in registry plus the counting plugin, so the binary's
//! registry never carries a test plugin.

use crate::nodes;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::{
    Band, BuildCx, Ctx, Flow, Phase, Phases, Plugin, PluginError, PluginFactory, Registry, Request,
    body,
};
use gatehouse_proxy::Gateway;
use gatehouse_store::Kind;
use nodes::{free_port, http, put};
use serde_json::json;

/// Counts the requests it answers, in state kept by the gateway's
/// resources. Its config: `window` (the compat key: changing it resets the
/// count) and `note` (anything else: changing it keeps the count).
struct CountingFactory;

struct Counting {
    count: Arc<AtomicU64>,
}

impl PluginFactory for CountingFactory {
    fn name(&self) -> &'static str {
        "counting"
    }

    fn priority(&self) -> i32 {
        -10
    }

    fn band(&self) -> Band {
        Band::Respond
    }

    fn schema(&self) -> serde_json::Value {
        json!({"type": "object"})
    }

    fn build(
        &self,
        config: &serde_json::Value,
        cx: &BuildCx<'_>,
    ) -> Result<Arc<dyn Plugin>, PluginError> {
        let window = config["window"].as_str().unwrap_or("").to_owned();
        let count = cx.state(&window, || AtomicU64::new(0));
        let ticks = Arc::clone(&count);
        cx.resources
            .background(&format!("counting:{}", cx.scope), move |mut shutdown| {
                Box::pin(async move {
                    shutdown.stopped().await;
                    drop(ticks);
                })
            });
        Ok(Arc::new(Counting { count }))
    }
}

#[async_trait]
impl Plugin for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }

    fn phases(&self) -> Phases {
        Phases::of(&[Phase::Access])
    }

    async fn access(&self, _ctx: &mut Ctx, _req: &mut Request) -> Flow {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let resp = http::Response::builder()
            .header("x-count", n)
            .body(body::full(n.to_string()))
            .unwrap();
        Flow::Respond(resp)
    }
}

fn registry() -> Registry {
    let mut registry = gatehouse_plugins::registry();
    registry.register(Arc::new(CountingFactory));
    registry
}

#[test]
fn the_counting_plugin_declares_its_phases() {
    let (scope, resources) = (
        gatehouse_core::Scope::Other("t".into()),
        gatehouse_core::Resources::detached(),
    );
    let env = gatehouse_core::BuildEnv::default();
    let plugin = CountingFactory
        .build(
            &json!({}),
            &BuildCx::new("counting", &env, &scope, &resources),
        )
        .unwrap();
    gatehouse_core::plugin::testing::check_phases(&*plugin).unwrap();
}

/// A config whose route `/count` is answered by the counting plugin, plus
/// `extra` unrelated routes (so each reload really changes something).
fn file_config(window: &str, note: &str, extra: usize) -> String {
    let mut yaml = format!(
        "listeners:\n  - address: \"127.0.0.1:0\"\nroutes:\n  - name: count\n    paths: [\"/count\"]\n    plugins:\n      - name: counting\n        config: {{window: \"{window}\", note: \"{note}\"}}\n"
    );
    for i in 0..extra {
        yaml.push_str(&format!(
            "  - name: other-{i}\n    paths: [\"/other-{i}\"]\n    plugins:\n      - name: mock\n        config: {{body: \"{i}\"}}\n"
        ));
    }
    yaml
}

async fn count(addr: &str) -> u64 {
    let (status, body) = http(addr, "GET", "/count", None, None).await.unwrap();
    assert_eq!(status, 200, "{body}");
    body.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {body}"))
}

async fn reload_file(gw: &Gateway, path: &Path, yaml: &str) {
    std::fs::write(path, yaml).unwrap();
    let loaded = gatehouse_config::load_file(path).unwrap();
    gw.reload(&loaded).await.unwrap();
}

#[tokio::test]
async fn a_counter_keeps_counting_across_100_reloads_of_a_file_backed_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.yaml");
    std::fs::write(&path, file_config("1m", "a", 0)).unwrap();
    let loaded = gatehouse_config::load_file(&path).unwrap();
    let gw = Gateway::start(&loaded, registry()).await.unwrap();
    let addr = gw.addr().to_string();
    let task = "counting:route:count";
    assert_eq!(gw.resources().running_tasks(), [Arc::from(task)]);

    let mut want = 0;
    for round in 0..100 {
        want += 1;
        assert_eq!(count(&addr).await, want, "before reload {round}");
        // Unrelated changes (routes come and go), and a compatible change
        // of the plugin's own config (`note`).
        let yaml = file_config("1m", &format!("note {}", round % 3), round % 4);
        reload_file(&gw, &path, &yaml).await;
        if round % 4 > 0 {
            let (status, _) = http(
                &addr,
                "GET",
                &format!("/other-{}", round % 4 - 1),
                None,
                None,
            )
            .await
            .unwrap();
            assert_eq!(status, 200, "reload {round} is served");
        }
        // The task was not restarted by any reload.
        assert_eq!(gw.resources().running_tasks(), [Arc::from(task)]);
    }
    want += 1;
    assert_eq!(count(&addr).await, want, "after 100 reloads");
    assert_eq!(want, 101);

    // A reload that fails changes nothing.
    std::fs::write(&path, "routes: [nope\n").unwrap();
    assert!(gatehouse_config::load_file(&path).is_err());
    let bad = file_config("1m", "a", 0).replace("name: counting", "name: no-such-plugin");
    std::fs::write(&path, &bad).unwrap();
    let loaded = gatehouse_config::load_file(&path).unwrap();
    assert!(gw.reload(&loaded).await.is_err());
    assert_eq!(count(&addr).await, 102);

    // An incompatible change (another `window`) starts from zero.
    reload_file(&gw, &path, &file_config("5m", "a", 0)).await;
    assert_eq!(count(&addr).await, 1);
    assert_eq!(count(&addr).await, 2);

    // Going back finds no old state either: it was dropped after the swap.
    reload_file(&gw, &path, &file_config("1m", "a", 0)).await;
    assert_eq!(count(&addr).await, 1);

    // Without the plugin, its state and its task go away.
    let without = "listeners:\n  - address: \"127.0.0.1:0\"\nroutes:\n  - name: m\n    paths: [\"/m\"]\n    plugins:\n      - name: mock\n";
    reload_file(&gw, &path, without).await;
    assert!(gw.resources().running_tasks().is_empty());
    reload_file(&gw, &path, &file_config("1m", "a", 0)).await;
    assert_eq!(count(&addr).await, 1);
    assert!(gw.shutdown_within(Duration::from_secs(5)).await);
}

/// Polls until `GET path` on `addr` answers `want`.
async fn until(addr: &str, path: &str, want: u16) {
    nodes::until_status(addr, path, want, Duration::from_secs(10)).await;
}

/// Route `count` answered by the counting plugin with this config.
fn counting(window: &str, note: &str) -> serde_json::Value {
    json!({"name": "count", "paths": ["/count"], "plugins": [
        {"name": "counting", "config": {"window": window, "note": note}}
    ]})
}

/// A store-backed node (role `both`, in-process, the built-in registry plus
/// `counting`) serving route `count` with window `1m`, note `a`; its
/// counter is at 1.
struct StoreNode {
    proxy: String,
    admin: String,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    node: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl StoreNode {
    async fn start() -> StoreNode {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = gatehouse_store::open(&url).await.unwrap();
        let role = gatehouse_admin::parse_role("super-admin", None).unwrap();
        let token = store
            .create_token("test", "t", role)
            .await
            .unwrap()
            .plaintext;
        put(store.as_ref(), Kind::Route, "count", counting("1m", "a")).await;

        let proxy = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let settings = dir.path().join("node.yaml");
        std::fs::write(
            &settings,
            format!("server:\n  shutdown_timeout: 2s\nlisteners:\n  - address: \"{proxy}\"\n"),
        )
        .unwrap();
        let opts = gatehouse::node::NodeOptions {
            store: url.clone(),
            config: Some(settings.clone()),
            role: gatehouse::node::Role::Both,
            admin_listen: admin.parse().unwrap(),
            snapshot_file: dir.path().join("snapshot.json"),
            certs_dir: dir.path().join("certs"),
            resync_interval: Duration::from_secs(30),
            registry: registry(),
        };
        let (node_settings, base) = gatehouse::node::node_settings(Some(&settings)).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let hup = Arc::new(tokio::sync::Notify::new());
        let node = tokio::spawn(gatehouse::node::serve_until(
            opts,
            node_settings,
            base,
            hup,
            async move {
                let _ = stop_rx.await;
            },
        ));
        // The request that finds the node ready is the count's first.
        until(&proxy, "/count", 200).await;
        StoreNode {
            proxy,
            admin,
            token,
            stop: stop_tx,
            node,
            _dir: dir,
        }
    }

    /// `PUT path` on the admin API; asserts 200 or 201.
    async fn write(&self, path: &str, body: serde_json::Value) {
        let (status, text) = http(&self.admin, "PUT", path, Some(&self.token), Some(&body))
            .await
            .unwrap();
        assert!(
            status == 200 || status == 201,
            "PUT {path}: {status} {text}"
        );
    }

    /// Writes route `name` on `/name`, answered by `mock`, and waits until
    /// the proxy serves it (so every earlier write is in too).
    async fn write_marker(&self, name: &str) {
        let route = json!({"body": {"name": name, "paths": [format!("/{name}")],
            "plugins": [{"name": "mock", "config": {"body": "m"}}]}});
        self.write(&format!("/workspaces/default/routes/{name}"), route)
            .await;
        until(&self.proxy, &format!("/{name}"), 200).await;
    }

    /// Stops the node; it stops within 10 s, without an error.
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.node)
            .await
            .expect("the node stops")
            .unwrap()
            .unwrap();
    }
}

/// Admin writes of unrelated entities each make the node reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_keeps_counting_across_admin_writes_on_a_store_backed_node() {
    let node = StoreNode::start().await;
    let mut want = 1;
    for i in 0..10 {
        let route = json!({"body": {"name": format!("other-{i}"), "paths": [format!("/other-{i}")],
            "plugins": [{"name": "mock", "config": {"body": "x"}}]}});
        node.write(&format!("/workspaces/default/routes/other-{i}"), route)
            .await;
        let consumer = json!({"body": {"username": format!("user-{i}")}});
        node.write(&format!("/workspaces/default/consumers/user-{i}"), consumer)
            .await;
        until(&node.proxy, &format!("/other-{i}"), 200).await;
        want += 1;
        assert_eq!(count(&node.proxy).await, want, "after admin write {i}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compatible_change_of_its_config_keeps_the_count_on_a_store_backed_node() {
    let node = StoreNode::start().await;
    node.write(
        "/workspaces/default/routes/count",
        json!({"body": counting("1m", "b")}),
    )
    .await;
    // Wait for it with a change next to it that the proxy shows.
    node.write_marker("marker").await;
    assert_eq!(count(&node.proxy).await, 2, "after a compatible change");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_change_of_its_config_resets_the_count_on_a_store_backed_node() {
    let node = StoreNode::start().await;
    // A count above 1 first, so that a reset shows.
    assert_eq!(count(&node.proxy).await, 2);
    node.write(
        "/workspaces/default/routes/count",
        json!({"body": counting("5m", "b")}),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        // The old snapshot keeps counting until the new one is in.
        let n = count(&node.proxy).await;
        if n == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the count never reset (still {n})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(&node.proxy).await, 2);
    node.stop().await;
}
