//! Cost of the weight transforms and the renderer (`burst-istio`): per call on the seed's
//! VirtualService, on a large one (50 routes with matches and retries), on an HTTPRoute, and
//! the whole `burst vs set-weights` path (parse YAML, write, serialise).

#![allow(missing_docs)]

use burst_core::Split;
use burst_istio::render::{RenderOptions, render, to_yaml_stream};
use burst_istio::{BackendSelector, HttpRouteTarget, RouteSelector, VsTarget};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;

const SEED_YAML: &str = include_str!("../../burst-istio/tests/corpus/seed.yaml");

fn seed() -> Value {
    serde_saphyr::from_str(SEED_YAML).expect("seed parses")
}

/// 50 http routes with matches, retries and timeouts; the split lives in the last one.
fn large() -> Value {
    let mut routes: Vec<Value> = (0..49)
        .map(|i| {
            json!({
                "name": format!("route-{i}"),
                "match": [{"uri": {"prefix": format!("/api/v{i}")}, "headers": {"x-tenant": {"exact": format!("t{i}")}}}],
                "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx"},
                "timeout": "10s",
                "route": [{"destination": {"host": format!("svc-{i}"), "subset": "primary"}, "weight": 100}],
            })
        })
        .collect();
    routes.push(json!({
        "name": "split",
        "route": [
            {"destination": {"host": "worker-service", "subset": "primary"}, "weight": 100},
            {"destination": {"host": "worker-service", "subset": "burst"}, "weight": 0},
        ],
    }));
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "large", "namespace": "default"},
        "spec": {"hosts": ["worker-service"], "http": routes},
    })
}

fn httproute() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "worker", "namespace": "default"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [
            {"name": "worker-primary", "port": 8081, "weight": 100},
            {"name": "worker-burst", "port": 8081, "weight": 0}]}]}
    })
}

fn transforms(c: &mut Criterion) {
    let split = Split::try_new(30, 70).expect("split");
    let mut g = c.benchmark_group("vs_transform");
    g.throughput(Throughput::Elements(1));

    let t = VsTarget::default();
    let vs = seed();
    g.bench_function("seed/read", |b| b.iter(|| t.read(black_box(&vs))));
    g.bench_function("seed/write", |b| b.iter(|| t.write(black_box(&vs), split)));
    g.bench_function("seed/patch", |b| b.iter(|| t.patch(black_box(&vs), split)));

    let big = large();
    let named = VsTarget::default().route(RouteSelector::Name("split".into()));
    g.bench_function("large_50_routes/read_only_candidate", |b| {
        b.iter(|| t.read(black_box(&big)))
    });
    g.bench_function("large_50_routes/write_by_name", |b| {
        b.iter(|| named.write(black_box(&big), split))
    });
    g.bench_function("large_50_routes/patch_by_name", |b| {
        b.iter(|| named.patch(black_box(&big), split))
    });

    let hr = httproute();
    let ht = HttpRouteTarget::new(
        BackendSelector::new("worker-primary"),
        BackendSelector::new("worker-burst"),
    );
    g.bench_function("httproute/write", |b| {
        b.iter(|| ht.write(black_box(&hr), split))
    });

    g.bench_function("cli_path/parse_write_serialise_seed", |b| {
        b.iter(|| {
            let v: Value = serde_saphyr::from_str(black_box(SEED_YAML)).expect("parse");
            let out = t.write(&v, split).expect("write");
            to_yaml_stream(&[out]).expect("yaml")
        })
    });
    let opts = RenderOptions::default();
    g.bench_function("render/seed_pair_yaml", |b| {
        b.iter(|| to_yaml_stream(&render(black_box(&opts), split).expect("render")).expect("yaml"))
    });
    g.finish();
}

criterion_group!(benches, transforms);
criterion_main!(benches);
