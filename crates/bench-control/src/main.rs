//! Control-plane benchmarks (driven by bench/control.sh, see bench/README.md):
//!
//! - `admin-writes`: document writes per second through the admin API of a
//!   real `gatehouse admin serve` process, against the same writes made
//!   straight through the store in-process (the reference, same run);
//! - `reload`: the cost of reloading a gateway that has N routes, with
//!   traffic running, and how many requests fail during the reloads;
//! - `propagation`: the time for a change made through one node's admin API
//!   to be served by every node of a cluster on one PostgreSQL.
//!
//! Every subcommand prints readable lines and, last, one JSON line with the
//! figures (`{"bench": ...}`).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use gatehouse_testkit::body::{empty, full};
use gatehouse_testkit::client::{Client, http1_client};
use http_body_util::BodyExt;
use serde_json::json;

type Res<T> = Result<T, String>;

#[derive(Debug, Parser)]
#[command(name = "bench-control", about = "Gatehouse control-plane benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Admin API writes per second vs direct store writes.
    AdminWrites {
        /// The store URL (sqlite:///path.db or postgres://...).
        #[arg(long)]
        store: String,
        /// The gatehouse binary.
        #[arg(long, default_value = "target/release/gatehouse")]
        gatehouse: String,
        /// How long each measurement runs.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Concurrent writers.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Interleaved rounds (medians are reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Reload cost with many routes, under traffic.
    Reload {
        /// Routes in the config.
        #[arg(long, default_value_t = 10_000)]
        routes: usize,
        /// Reloads to time.
        #[arg(long, default_value_t = 20)]
        reloads: usize,
        /// Concurrent clients sending traffic during the reloads.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Cost of the admin API's per-write check (assemble, validate,
    /// compile) for a store of N services and N routes.
    CheckCost {
        /// Services (and as many routes).
        #[arg(long, default_value_t = 1000)]
        entities: usize,
        /// Repetitions (the median is reported).
        #[arg(long, default_value_t = 10)]
        repeat: usize,
    },
    /// Change propagation to every node of a cluster.
    Propagation {
        /// The PostgreSQL store URL shared by the nodes.
        #[arg(long)]
        store: String,
        /// The gatehouse binary.
        #[arg(long, default_value = "target/release/gatehouse")]
        gatehouse: String,
        /// Nodes to start.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Changes to time.
        #[arg(long, default_value_t = 100)]
        changes: usize,
        /// Routes (and one service) put in the store first, so every change
        /// reloads a config of this size on every node.
        #[arg(long, default_value_t = 0)]
        routes: usize,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Cmd::AdminWrites {
                store,
                gatehouse,
                duration,
                concurrency,
                rounds,
            } => admin_writes(&store, &gatehouse, duration, concurrency, rounds).await,
            Cmd::Reload {
                routes,
                reloads,
                concurrency,
            } => reload(routes, reloads, concurrency).await,
            Cmd::CheckCost { entities, repeat } => {
                check_cost(entities, repeat);
                Ok(())
            }
            Cmd::Propagation {
                store,
                gatehouse,
                nodes,
                changes,
                routes,
            } => propagation(&store, &gatehouse, nodes, changes, routes).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-control: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

// ------------------------------------------------------------ helpers

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Res<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn median(v: &mut [f64]) -> f64 {
    percentile(v, 0.5)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((v.len() as f64) * p).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn create_token(gatehouse: &str, store: &str) -> Res<String> {
    let out = Command::new(gatehouse)
        .args([
            "admin",
            "token",
            "create",
            "--store",
            store,
            "--name",
            "bench",
            "--role",
            "super-admin",
        ])
        .env("GATEHOUSE_LOG", "warn")
        .output()
        .map_err(|e| format!("cannot run {gatehouse}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Sends one request; returns the status and body.
async fn call(
    client: &Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
    host: Option<&str>,
) -> Res<(u16, Bytes)> {
    let mut b = http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if let Some(h) = host {
        b = b.header("host", h);
    }
    let req = match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(full(v.to_string())),
        None => b.body(empty()),
    }
    .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

async fn wait_ready(client: &Client, url: &str, deadline: Duration) -> Res<()> {
    let until = Instant::now() + deadline;
    loop {
        if let Ok((200, _)) = call(client, "GET", url, None, None, None).await {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!("{url} did not answer 200 within {deadline:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ------------------------------------------------------- admin-writes

async fn admin_writes(
    store_url: &str,
    gatehouse: &str,
    duration: Duration,
    concurrency: usize,
    rounds: usize,
) -> Res<()> {
    let token = create_token(gatehouse, store_url)?;
    let port = free_port()?;
    let _admin = Proc(
        Command::new(gatehouse)
            .args([
                "admin",
                "serve",
                "--store",
                store_url,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("GATEHOUSE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {gatehouse}: {e}"))?,
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = http1_client();
    wait_ready(
        &client,
        &format!("{base}/openapi.json"),
        Duration::from_secs(20),
    )
    .await?;
    let store = gatehouse_store::open(store_url)
        .await
        .map_err(|e| format!("cannot open the store: {e}"))?;

    let (mut api_rates, mut direct_rates, mut p50s, mut p99s) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        // Reference: the same writes straight through the store.
        let count = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + duration;
        let mut tasks = Vec::new();
        for w in 0..concurrency {
            let (store, count) = (store.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < until {
                    let doc = gatehouse_store::NewDocument {
                        workspace: gatehouse_store::DEFAULT_WORKSPACE.to_owned(),
                        kind: gatehouse_store::Kind::Service,
                        name: format!("direct-{w}-{}", i % 64),
                        tags: vec![],
                        body: json!({"name": format!("direct-{w}-{}", i % 64),
                                     "url": format!("http://127.0.0.1:{}", 1000 + (round as u64 * 7 + i) % 60000)}),
                    };
                    if store
                        .put("bench", doc, gatehouse_store::Expect::Any)
                        .await
                        .is_ok()
                    {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let direct = count.load(Ordering::Relaxed) as f64 / duration.as_secs_f64();

        // The admin API.
        let count = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + duration;
        let mut tasks = Vec::new();
        for w in 0..concurrency {
            let (client, count, failed, base, token) = (
                client.clone(),
                count.clone(),
                failed.clone(),
                base.clone(),
                token.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0u64;
                while Instant::now() < until {
                    let name = format!("api-{w}-{}", i % 64);
                    let body = json!({"body": {"name": name,
                                      "url": format!("http://127.0.0.1:{}", 1000 + (round as u64 * 7 + i) % 60000)}});
                    let t = Instant::now();
                    match call(
                        &client,
                        "PUT",
                        &format!("{base}/workspaces/default/services/{name}"),
                        Some(&token),
                        Some(&body),
                        None,
                    )
                    .await
                    {
                        Ok((200 | 201, _)) => {
                            count.fetch_add(1, Ordering::Relaxed);
                            lat.push(ms(t.elapsed()));
                        }
                        other => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("first failed admin write: {other:?}");
                            }
                            break;
                        }
                    }
                    i += 1;
                }
                lat
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap_or_default());
        }
        let api = count.load(Ordering::Relaxed) as f64 / duration.as_secs_f64();
        let (p50, p99) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99));
        println!(
            "round {}: direct store {direct:.0} writes/s; admin API {api:.0} writes/s (p50 {p50:.2} ms, p99 {p99:.2} ms, {} failed)",
            round + 1,
            failed.load(Ordering::Relaxed)
        );
        if failed.load(Ordering::Relaxed) > 0 {
            return Err("admin API writes failed".into());
        }
        api_rates.push(api);
        direct_rates.push(direct);
        p50s.push(p50);
        p99s.push(p99);
    }
    let (api, direct) = (median(&mut api_rates), median(&mut direct_rates));
    let summary = json!({
        "bench": "admin-writes",
        "backend": store.backend(),
        "concurrency": concurrency,
        "duration_s": duration.as_secs_f64(),
        "rounds": rounds,
        "api_writes_per_s_median": api.round(),
        "direct_writes_per_s_median": direct.round(),
        "api_over_direct": (api / direct * 100.0).round() / 100.0,
        "api_p50_ms_median": (median(&mut p50s) * 100.0).round() / 100.0,
        "api_p99_ms_median": (median(&mut p99s) * 100.0).round() / 100.0,
    });
    println!("{summary}");
    Ok(())
}

// -------------------------------------------------------------- reload

fn routes_config(listen: &str, upstream: &str, routes: usize, variant: usize) -> String {
    let mut y = format!(
        "listeners:\n  - address: \"{listen}\"\nservices:\n  - name: backend\n    url: {upstream}\nroutes:\n"
    );
    for i in 0..routes {
        // A mix of matchers: hosts on every fourth route, a template path,
        // methods on odd routes. The variant changes route 0 only.
        let path = if i == 0 {
            format!("/r0/v{variant}/{{id}}")
        } else {
            format!("/r{i}/items/{{id}}")
        };
        y.push_str(&format!(
            "  - name: r{i}\n    service: backend\n    paths: [\"{path}\"]\n"
        ));
        if i.is_multiple_of(4) {
            y.push_str(&format!("    hosts: [\"h{}.example.com\"]\n", i % 100));
        }
        if !i.is_multiple_of(2) {
            y.push_str("    methods: [GET, HEAD]\n");
        }
    }
    y
}

async fn reload(routes: usize, reloads: usize, concurrency: usize) -> Res<()> {
    let upstream = gatehouse_testkit::upstream::Upstream::builder()
        .body("ok")
        .start()
        .await;
    let text = routes_config("127.0.0.1:0", &upstream.url(), routes, 0);
    let loaded = gatehouse_config::parse_str(&text, "bench.yaml").map_err(|e| e.to_string())?;
    let t = Instant::now();
    let gateway = gatehouse_proxy::Gateway::start(&loaded, gatehouse_plugins::registry())
        .await
        .map_err(|e| e.to_string())?;
    let start_ms = ms(t.elapsed());
    let addr: SocketAddr = gateway.addr();
    println!("started with {routes} routes in {start_ms:.1} ms");

    // Traffic: random routes (stable across variants), every response
    // must be the upstream's 200.
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = http1_client();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let (client, ok, failed, stop) = (client.clone(), ok.clone(), failed.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut k = c as u64 * 7919 + 1;
            while !stop.load(Ordering::Relaxed) {
                k = k
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = 1 + (k >> 33) as usize % (routes.max(2) - 1);
                let host = if i.is_multiple_of(4) {
                    format!("h{}.example.com", i % 100)
                } else {
                    "any.example.com".to_owned()
                };
                let url = format!("http://{addr}/r{i}/items/7");
                match call(&client, "GET", &url, None, None, Some(&host)).await {
                    Ok((200, body)) if body.as_ref() == b"ok" => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (mut parse, mut swap, mut total) = (vec![], vec![], vec![]);
    for n in 1..=reloads {
        let text = routes_config("127.0.0.1:0", &upstream.url(), routes, n);
        let t = Instant::now();
        let loaded = gatehouse_config::parse_str(&text, "bench.yaml").map_err(|e| e.to_string())?;
        let p = t.elapsed();
        let t2 = Instant::now();
        gateway.reload(&loaded).await.map_err(|e| e.to_string())?;
        let s = t2.elapsed();
        parse.push(ms(p));
        swap.push(ms(s));
        total.push(ms(p + s));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let (okn, failn) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let summary = json!({
        "bench": "reload",
        "routes": routes,
        "reloads": reloads,
        "parse_ms_median": (median(&mut parse) * 10.0).round() / 10.0,
        "reload_ms_median": (median(&mut swap) * 10.0).round() / 10.0,
        "reload_ms_p99": (percentile(&mut swap, 0.99) * 10.0).round() / 10.0,
        "total_ms_median": (median(&mut total) * 10.0).round() / 10.0,
        "total_ms_max": (percentile(&mut total, 1.0) * 10.0).round() / 10.0,
        "requests_ok": okn,
        "requests_failed": failn,
    });
    println!(
        "{reloads} reloads of {routes} routes: parse median {:.1} ms, compile+swap median {:.1} ms (max total {:.1} ms); {okn} requests ok, {failn} failed",
        median(&mut parse),
        median(&mut swap),
        percentile(&mut total, 1.0)
    );
    println!("{summary}");
    drop(gateway);
    if failn > 0 {
        return Err(format!("{failn} requests failed during the reloads"));
    }
    Ok(())
}

// ---------------------------------------------------------- check-cost

fn check_cost(entities: usize, repeat: usize) {
    let mut docs = Vec::new();
    let doc = |kind, name: String, body: serde_json::Value| gatehouse_store::Document {
        id: Default::default(),
        workspace: gatehouse_store::DEFAULT_WORKSPACE.to_owned(),
        kind,
        name,
        tags: vec![],
        body,
        version: 1,
        created_at: 0,
        updated_at: 0,
    };
    for i in 0..entities {
        docs.push(doc(
            gatehouse_store::Kind::Service,
            format!("s{i}"),
            json!({"name": format!("s{i}"), "url": format!("http://127.0.0.1:{}", 1000 + i % 60000)}),
        ));
        docs.push(doc(
            gatehouse_store::Kind::Route,
            format!("r{i}"),
            json!({"name": format!("r{i}"), "service": format!("s{i}"), "paths": [format!("/r{i}/{{id}}")]}),
        ));
    }
    let node = gatehouse_config::Config::default();
    let (mut assemble, mut prepare, mut check) = (vec![], vec![], vec![]);
    let registry = gatehouse_plugins::registry();
    for _ in 0..repeat {
        let t = Instant::now();
        let _ = gatehouse_control::assemble(&docs, &node);
        assemble.push(ms(t.elapsed()));
        let t = Instant::now();
        let _ = gatehouse_control::prepare(&docs, &node);
        prepare.push(ms(t.elapsed()));
        let t = Instant::now();
        let r = gatehouse_control::check_documents(&docs, &node, &registry);
        check.push(ms(t.elapsed()));
        if let Err(e) = r {
            eprintln!("check failed: {e:?}");
        }
    }
    println!(
        "{}",
        json!({"bench": "check-cost", "services": entities, "routes": entities,
               "assemble_ms_median": median(&mut assemble),
               "assemble_and_validate_ms_median": median(&mut prepare),
               "full_check_ms_median": median(&mut check)})
    );
}

// --------------------------------------------------------- propagation

async fn propagation(
    store: &str,
    gatehouse: &str,
    nodes: usize,
    changes: usize,
    routes: usize,
) -> Res<()> {
    let token = create_token(gatehouse, store)?;
    if routes > 0 {
        let handle = gatehouse_store::open(store)
            .await
            .map_err(|e| format!("cannot open the store: {e}"))?;
        let mut docs = vec![gatehouse_store::ApplyDocument {
            kind: gatehouse_store::Kind::Service,
            name: "backend".into(),
            tags: vec![],
            body: json!({"name": "backend", "url": "http://127.0.0.1:9"}),
        }];
        for i in 0..routes {
            docs.push(gatehouse_store::ApplyDocument {
                kind: gatehouse_store::Kind::Route,
                name: format!("r{i}"),
                tags: vec![],
                body: json!({"name": format!("r{i}"), "service": "backend",
                             "paths": [format!("/r{i}/items/{{id}}")]}),
            });
        }
        handle
            .apply("bench", gatehouse_store::DEFAULT_WORKSPACE, docs)
            .await
            .map_err(|e| format!("cannot load {routes} routes: {e}"))?;
        println!("the store holds {routes} routes");
    }
    let dir = std::env::temp_dir().join(format!("bench-control-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut procs = Vec::new();
    let mut proxies = Vec::new();
    let mut admins = Vec::new();
    for n in 0..nodes {
        let (pp, ap) = (free_port()?, free_port()?);
        let node_cfg = dir.join(format!("node{n}.yaml"));
        std::fs::write(
            &node_cfg,
            format!("listeners:\n  - address: \"127.0.0.1:{pp}\"\n"),
        )
        .map_err(|e| e.to_string())?;
        procs.push(Proc(
            Command::new(gatehouse)
                .args(["run", "--store", store, "--role", "both", "--admin-listen"])
                .arg(format!("127.0.0.1:{ap}"))
                .arg("--config")
                .arg(&node_cfg)
                .arg("--data-dir")
                .arg(dir.join(format!("data{n}")))
                .env("GATEHOUSE_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {gatehouse}: {e}"))?,
        ));
        proxies.push(format!("http://127.0.0.1:{pp}"));
        admins.push(format!("http://127.0.0.1:{ap}"));
    }
    let client = http1_client();
    for a in &admins {
        wait_ready(
            &client,
            &format!("{a}/openapi.json"),
            Duration::from_secs(30),
        )
        .await?;
    }
    // A mock route whose body carries the change number.
    let route = |i: usize| {
        json!({"body": {"name": "probe", "paths": ["/probe"],
               "plugins": [{"name": "mock", "config": {"status": 200, "body": format!("change-{i}")}}]}})
    };
    let url = format!("{}/workspaces/default/routes/probe", admins[0]);
    call(&client, "PUT", &url, Some(&token), Some(&route(0)), None).await?;
    for p in &proxies {
        wait_body(
            &client,
            &format!("{p}/probe"),
            "change-0",
            Duration::from_secs(30),
        )
        .await?;
    }
    let mut all = Vec::new();
    let mut slowest = Vec::new();
    for i in 1..=changes {
        let (status, body) =
            call(&client, "PUT", &url, Some(&token), Some(&route(i)), None).await?;
        if status != 200 && status != 201 {
            return Err(format!(
                "admin PUT answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let t = Instant::now();
        let want = format!("change-{i}");
        let mut waits = Vec::new();
        for p in &proxies {
            let (c, u, w) = (client.clone(), format!("{p}/probe"), want.clone());
            waits.push(tokio::spawn(async move {
                wait_body(&c, &u, &w, Duration::from_secs(10)).await?;
                Ok::<_, String>(t.elapsed())
            }));
        }
        let mut worst = Duration::ZERO;
        for w in waits {
            let d = w.await.map_err(|e| e.to_string())??;
            all.push(ms(d));
            worst = worst.max(d);
        }
        slowest.push(ms(worst));
    }
    let summary = json!({
        "bench": "propagation",
        "routes": routes,
        "nodes": nodes,
        "changes": changes,
        "all_nodes_ms_median": (median(&mut slowest) * 10.0).round() / 10.0,
        "all_nodes_ms_p99": (percentile(&mut slowest, 0.99) * 10.0).round() / 10.0,
        "all_nodes_ms_max": (percentile(&mut slowest, 1.0) * 10.0).round() / 10.0,
        "per_node_ms_median": (median(&mut all) * 10.0).round() / 10.0,
    });
    println!(
        "{changes} changes to {nodes} nodes: every node serves a change after {:.1} ms median, {:.1} ms p99",
        median(&mut slowest),
        percentile(&mut slowest, 0.99)
    );
    println!("{summary}");
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Polls `url` (every 2 ms) until its body is `want`.
async fn wait_body(client: &Client, url: &str, want: &str, deadline: Duration) -> Res<()> {
    let until = Instant::now() + deadline;
    loop {
        if let Ok((_, body)) = call(client, "GET", url, None, None, None).await
            && body.as_ref() == want.as_bytes()
        {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!("{url} did not serve `{want}` within {deadline:?}"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
