//! Criterion benchmarks for the canonical path and effective host
//! (`gatehouse_proxy::canon`): the common already-canonical case (no
//! allocation) and the slow path with escapes and dot segments.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_proxy::canon::{PathOptions, host, path};

fn bench(c: &mut Criterion) {
    let opts = PathOptions::default();
    c.bench_function("canon/path/canonical", |b| {
        b.iter(|| path(black_box("/api/v1/users/12345/orders/678"), &opts))
    });
    c.bench_function("canon/path/short", |b| {
        b.iter(|| path(black_box("/"), &opts))
    });
    c.bench_function("canon/path/escapes-and-dots", |b| {
        b.iter(|| {
            path(
                black_box("/api/v1/%75sers/./12345/../67%2d89//orders"),
                &opts,
            )
        })
    });
    c.bench_function("canon/host/canonical", |b| {
        b.iter(|| host(black_box("api.example.com:8080")))
    });
    c.bench_function("canon/host/upper-dot", |b| {
        b.iter(|| host(black_box("API.Example.com.:8080")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
