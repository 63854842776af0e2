//! Criterion benchmarks for `Router::find` on a 10,000-route table.
//!
//! The table spreads exact, templated and prefix paths over 100 hosts (90 exact,
//! 10 wildcard), with methods on some routes and a few regex routes on any host.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_router::{Match, RequestInfo, RouteSpec, Router};
use http::{HeaderMap, Method};

fn table() -> Vec<RouteSpec> {
    let mut specs = Vec::with_capacity(10_000);
    for h in 0..100 {
        let host = if h < 90 {
            format!("svc{h}.example.com")
        } else {
            format!("*.tenant{h}.example.net")
        };
        for i in 0..100 {
            if specs.len() >= 9_995 {
                break;
            }
            let path = match i % 3 {
                0 => format!("/api/r{i}/items"),
                1 => format!("/api/r{i}/items/{{id}}/parts/{{part}}"),
                _ => format!("/static/r{i}/*"),
            };
            specs.push(RouteSpec {
                hosts: vec![host.clone()],
                paths: vec![path],
                methods: if i % 2 == 0 {
                    vec![Method::GET, Method::HEAD]
                } else {
                    vec![]
                },
                ..Default::default()
            });
        }
    }
    for i in 0..5 {
        specs.push(RouteSpec {
            paths: vec![format!(r"~^/legacy{i}/(?P<id>\d+)$")],
            ..Default::default()
        });
    }
    specs
}

fn bench_find(c: &mut Criterion) {
    let specs = table();
    let router = match Router::build(specs) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(router.len(), 10_000);
    let headers = HeaderMap::new();
    let cases: [(&str, &str, &str, bool); 6] = [
        ("exact", "svc42.example.com", "/api/r30/items", true),
        (
            "template",
            "svc42.example.com",
            "/api/r31/items/12345/parts/abc",
            true,
        ),
        (
            "prefix",
            "svc42.example.com:8080",
            "/static/r32/css/site.css",
            true,
        ),
        (
            "wildcard_host",
            "eu.a.tenant95.example.net",
            "/api/r30/items",
            true,
        ),
        ("regex", "nohost.example.org", "/legacy3/77", true),
        (
            "miss_404",
            "svc42.example.com",
            "/api/r30/nothing/here",
            false,
        ),
    ];
    let mut group = c.benchmark_group("find_10k");
    for (name, host, path, hit) in cases {
        let req = RequestInfo {
            host: Some(host),
            path,
            method: &Method::GET,
            headers: &headers,
            query: None,
        };
        assert_eq!(matches!(router.find(&req), Match::Found(_)), hit, "{name}");
        group.bench_function(name, |b| b.iter(|| router.find(black_box(&req))));
    }
    group.finish();
}

criterion_group!(benches, bench_find);
criterion_main!(benches);
