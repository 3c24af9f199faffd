//! The mesh proxy splits real HTTP traffic by weight and its Istio-shaped counters add up.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::routing::post;
use burst_core::{Split, TrafficRouter};
use burst_hashr::mesh::{Mesh, MeshConfig};

fn counting_upstream(hits: Arc<AtomicU64>, name: &'static str) -> Router {
    Router::new().route(
        "/",
        post(move |body: String| {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::Relaxed);
                assert!(body.contains("str"));
                format!("OK from {name}")
            }
        }),
    )
}

/// Sum of `istio_requests_total` samples whose labels contain every `needle`.
fn sum(metrics: &str, needles: &[&str]) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{") && needles.iter().all(|n| l.contains(n)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test]
async fn split_70_30_within_tolerance_and_counters_add_up() {
    let (p_hits, b_hits) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let primary = common::serve(counting_upstream(p_hits.clone(), "primary")).await;
    let burst = common::serve(counting_upstream(b_hits.clone(), "burst")).await;
    let mesh = Mesh::new(MeshConfig::new(
        url::Url::parse(&primary.url()).unwrap(),
        url::Url::parse(&burst.url()).unwrap(),
    ))
    .unwrap();
    let proxy = common::serve(mesh.proxy_router()).await;
    let admin = common::serve(mesh.admin_router()).await;
    mesh.router()
        .apply(Split::try_new(70, 30).unwrap())
        .await
        .unwrap();

    let http = common::client();
    const N: u64 = 1000;
    let mut tasks = Vec::new();
    for i in 0..N {
        let http = http.clone();
        let url = proxy.url();
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .json(&serde_json::json!({ "str": i.to_string() }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let subset = r.headers()["x-mesh-subset"].to_str().unwrap().to_owned();
            let body = r.text().await.unwrap();
            assert_eq!(body, format!("OK from {subset}"));
        }));
        if tasks.len() == 32 {
            for t in tasks.drain(..) {
                t.await.unwrap();
            }
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (p, b) = (
        p_hits.load(Ordering::Relaxed),
        b_hits.load(Ordering::Relaxed),
    );
    assert_eq!(p + b, N);
    let share = b as f64 / N as f64;
    assert!((share - 0.30).abs() <= 0.02, "burst share {share}");

    let metrics = http
        .get(format!("{}metrics", admin.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(sum(&metrics, &[r#"reporter="source""#]), N, "{metrics}");
    assert_eq!(sum(&metrics, &[r#"reporter="destination""#]), N);
    assert_eq!(
        sum(
            &metrics,
            &[
                r#"reporter="destination""#,
                r#"destination_subset="primary""#
            ]
        ),
        p
    );
    assert_eq!(
        sum(
            &metrics,
            &[r#"reporter="destination""#, r#"destination_subset="burst""#]
        ),
        b
    );
    assert_eq!(
        sum(
            &metrics,
            &[
                r#"source_workload="frontend-deployment""#,
                r#"destination_service="worker-service.default.svc.cluster.local""#,
                r#"response_code="200""#,
            ]
        ),
        2 * N
    );

    // All traffic back to primary.
    mesh.router().apply(Split::ALL_PRIMARY).await.unwrap();
    for _ in 0..20 {
        let r = http
            .post(proxy.url())
            .json(&serde_json::json!({"str": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-mesh-subset"], "primary");
    }
    assert_eq!(b_hits.load(Ordering::Relaxed), b);
    let split: serde_json::Value = http
        .get(format!("{}split", admin.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(split, serde_json::json!({"primary": 100, "burst": 0}));
}

#[tokio::test]
async fn unreachable_upstream_is_503_counted_by_the_source_only() {
    let dead = burst_testkit::free_port().unwrap();
    let mesh = Mesh::new(MeshConfig::new(
        url::Url::parse(&format!("http://127.0.0.1:{dead}/")).unwrap(),
        url::Url::parse(&format!("http://127.0.0.1:{dead}/")).unwrap(),
    ))
    .unwrap();
    let proxy = common::serve(mesh.proxy_router()).await;
    let admin = common::serve(mesh.admin_router()).await;
    let http = common::client();
    let r = http.post(proxy.url()).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 503);
    let metrics = http
        .get(format!("{}metrics", admin.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sum(
            &metrics,
            &[r#"reporter="source""#, r#"response_code="503""#]
        ),
        1
    );
    assert_eq!(sum(&metrics, &[r#"reporter="destination""#]), 0);
}

/// Value of the one histogram line starting with `prefix` and containing every `needle`.
fn bucket(metrics: &str, prefix: &str, needles: &[&str]) -> u64 {
    let lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with(prefix) && needles.iter().all(|n| l.contains(n)))
        .collect();
    assert_eq!(lines.len(), 1, "{prefix} {needles:?} in\n{metrics}");
    lines[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn durations_land_in_istio_buckets_and_a_slow_worker_shows_in_them() {
    use burst_hashr::pubsub::MemoryPubSub;
    use burst_hashr::worker::{Worker, WorkerConfig};
    let slow = Worker::new(WorkerConfig::default(), Arc::new(MemoryPubSub::new()));
    slow.faults()
        .set_delay(std::time::Duration::from_millis(120));
    let fast = Worker::new(
        WorkerConfig::with_prefix("bursty-"),
        Arc::new(MemoryPubSub::new()),
    );
    let primary = common::serve(slow.router()).await;
    let burst = common::serve(fast.router()).await;
    let mesh = Mesh::new(MeshConfig::new(
        url::Url::parse(&primary.url()).unwrap(),
        url::Url::parse(&burst.url()).unwrap(),
    ))
    .unwrap();
    let proxy = common::serve(mesh.proxy_router()).await;
    let admin = common::serve(mesh.admin_router()).await;
    mesh.router()
        .apply(Split::try_new(50, 50).unwrap())
        .await
        .unwrap();
    let http = common::client();
    for i in 0..10 {
        let r = http
            .post(proxy.url())
            .json(&serde_json::json!({ "str": i.to_string() }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let metrics = http
        .get(format!("{}metrics", admin.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let h = "istio_request_duration_milliseconds_bucket{";
    let dest = r#"reporter="destination""#;
    let (p, b) = (
        r#"destination_subset="primary""#,
        r#"destination_subset="burst""#,
    );
    // The slow primary: every request over 100 ms, all within 250 ms.
    assert_eq!(bucket(&metrics, h, &[dest, p, r#"le="100.0""#]), 0);
    assert_eq!(bucket(&metrics, h, &[dest, p, r#"le="250.0""#]), 5);
    // The fast burst side: every request within 100 ms.
    assert_eq!(bucket(&metrics, h, &[dest, b, r#"le="100.0""#]), 5);
    assert_eq!(
        bucket(
            &metrics,
            "istio_request_duration_milliseconds_count{",
            &[dest, p]
        ),
        5
    );
}
