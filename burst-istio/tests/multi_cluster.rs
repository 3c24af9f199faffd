//! `MultiClusterRouter` across two real control planes: the test binary's shared
//! kube-apiserver as the primary cluster and a second one (its own etcd and kube-apiserver,
//! started with `ControlPlane::start`) as the burst cluster, each with the Istio CRDs and
//! the same VirtualService in the same namespace.
//!
//! Drift is made by writing one cluster's weights directly on its server; a failing cluster is
//! a 500 from the fault proxy in front of it, or its kube-apiserver stopped for real.
//!
//! Needs the control-plane binaries (`scripts/control-plane.sh build`); without them every
//! test fails with that command.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use burst_core::{RouterError, Split, TrafficRouter};
use burst_istio::{MultiClusterRouter, VirtualServiceRouter, VsTarget};
use burst_testkit::kube::{ControlPlane, Fault};
use burst_testkit::schema;
use common::{Cluster, NAME, V1, fast, json_patch, object_path, seed_vs, vs_weight};
use http::Method;
use serde_json::json;

fn split(p: i64, b: i64) -> Split {
    Split::try_new(p, b).unwrap()
}

/// A second control plane, shared by the tests of this binary that leave it running.
async fn shared_burst_cluster() -> &'static ControlPlane {
    static BURST: tokio::sync::OnceCell<ControlPlane> = tokio::sync::OnceCell::const_new();
    BURST
        .get_or_init(|| async {
            tokio::task::spawn_blocking(ControlPlane::start)
                .await
                .unwrap()
                .expect("a second control plane")
        })
        .await
}

/// The same namespace and VirtualService (100/0) in both clusters, and the router over both,
/// each member going through its cluster's fault proxy.
async fn two_clusters<'a>(
    prefix: &str,
    burst_cp: &'a ControlPlane,
) -> (Cluster<'static>, Cluster<'a>, MultiClusterRouter) {
    let primary = Cluster::new(ControlPlane::shared().unwrap(), prefix).await;
    let burst = Cluster::named(burst_cp, &primary.ns).await;
    for c in [&primary, &burst] {
        c.create(&seed_vs(V1, NAME, 100, 0)).await.unwrap();
    }
    let m = MultiClusterRouter::new(vec![
        (
            "primary".into(),
            Box::new(primary.vs_router(NAME, fast()).await) as Box<dyn TrafficRouter>,
        ),
        (
            "burst".into(),
            Box::new(burst.vs_router(NAME, fast()).await),
        ),
    ])
    .unwrap();
    (primary, burst, m)
}

/// The burst weight each cluster stores.
async fn burst_weights(clusters: [&Cluster<'_>; 2]) -> [serde_json::Value; 2] {
    let mut out = [json!(null), json!(null)];
    for (i, c) in clusters.iter().enumerate() {
        out[i] = c.stored_vs(NAME).await["spec"]["http"][0]["route"][1]["weight"].clone();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_to_both_control_planes() {
    let burst_cp = shared_burst_cluster().await;
    let (primary, burst, m) = two_clusters("multi-apply", burst_cp).await;
    assert_ne!(primary.cp.url(), burst.cp.url(), "two API servers");

    m.apply(split(20, 80)).await.unwrap();
    assert_eq!(
        burst_weights([&primary, &burst]).await,
        [json!(80), json!(80)]
    );
    for c in [&primary, &burst] {
        schema::check(&c.stored_vs(NAME).await).unwrap();
        let writes = c.proxy.writes();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].status, 200);
        assert_eq!(
            writes[0].path,
            object_path(V1, "virtualservices", &c.ns, NAME)
        );
    }
    assert_eq!(m.current().await.unwrap(), split(20, 80));

    let reports = m.apply_all(Split::ALL_PRIMARY).await;
    assert_eq!(
        reports
            .iter()
            .map(|r| r.member.as_str())
            .collect::<Vec<_>>(),
        ["primary", "burst"]
    );
    assert!(reports.iter().all(|r| r.result.is_ok()));
    assert_eq!(
        burst_weights([&primary, &burst]).await,
        [json!(0), json!(0)]
    );
    assert!(m.describe().contains("primary, burst"), "{}", m.describe());
    assert!(
        m.describe().contains(&primary.vs_object(NAME)),
        "{}",
        m.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_in_one_cluster_is_reported_and_repaired() {
    let burst_cp = shared_burst_cluster().await;
    let (primary, burst, m) = two_clusters("multi-drift", burst_cp).await;
    // Someone sets the burst cluster's weights directly on its server.
    json_patch(
        &burst.admin,
        &object_path(V1, "virtualservices", &burst.ns, NAME),
        json!([
            {"op": "replace", "path": vs_weight(0, 0), "value": 0},
            {"op": "replace", "path": vs_weight(0, 1), "value": 100}
        ]),
    )
    .await
    .unwrap();
    let e = m.current().await.unwrap_err();
    assert_eq!(e.kind(), "drift");
    let msg = e.to_string();
    assert!(
        msg.contains("primary=100/0") && msg.contains("burst=0/100"),
        "{msg}"
    );

    // The next apply converges both, whatever each held.
    m.apply(split(60, 40)).await.unwrap();
    assert_eq!(m.current().await.unwrap(), split(60, 40));
    assert_eq!(
        burst_weights([&primary, &burst]).await,
        [json!(40), json!(40)]
    );
    for c in [&primary, &burst] {
        schema::check(&c.stored_vs(NAME).await).unwrap();
    }
}

/// Asserts that `e` is the partial failure of a write that failed in the burst cluster
/// (`cause`, e.g. "burst (server)") on `burst`'s VirtualService and succeeded in primary.
fn assert_burst_cluster_failed(e: RouterError, cause: &str, burst: &Cluster<'_>) {
    assert_eq!(e.kind(), "cluster_failure");
    let msg = e.to_string();
    assert!(
        msg.contains(cause)
            && msg.contains(&burst.vs_object(NAME))
            && msg.contains("succeeded in primary"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_failing_the_write_is_a_partial_failure() {
    let burst_cp = shared_burst_cluster().await;
    let (primary, burst, m) = two_clusters("multi-partial", burst_cp).await;

    // The burst cluster's API server fails the write; the primary still gets the split.
    burst.proxy.inject(Fault::status(500).on(Method::PATCH));
    assert_burst_cluster_failed(
        m.apply(split(60, 40)).await.unwrap_err(),
        "burst (server)",
        &burst,
    );
    assert_eq!(
        burst_weights([&primary, &burst]).await,
        [json!(40), json!(0)]
    );
    assert_eq!(m.current().await.unwrap_err().kind(), "drift");

    // The next apply converges them.
    m.apply(split(60, 40)).await.unwrap();
    assert_eq!(m.current().await.unwrap(), split(60, 40));
    assert_eq!(
        burst_weights([&primary, &burst]).await,
        [json!(40), json!(40)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_whose_api_server_is_down_is_a_partial_failure() {
    // A control plane of its own, since this test stops its kube-apiserver.
    let burst_cp = Arc::new(
        tokio::task::spawn_blocking(ControlPlane::start)
            .await
            .unwrap()
            .expect("a second control plane"),
    );
    let (primary, burst, _) = two_clusters("multi-down", &burst_cp).await;
    // Straight to the burst server, so its clients see the server itself go away.
    let m = MultiClusterRouter::new(vec![
        (
            "primary".into(),
            Box::new(primary.vs_router(NAME, fast()).await) as Box<dyn TrafficRouter>,
        ),
        (
            "burst".into(),
            Box::new(
                VirtualServiceRouter::new(
                    burst.admin.clone(),
                    &burst.ns,
                    NAME,
                    VsTarget::default(),
                    fast(),
                )
                .unwrap(),
            ),
        ),
    ])
    .unwrap();
    m.apply(split(70, 30)).await.unwrap();

    let cp = burst_cp.clone();
    tokio::task::spawn_blocking(move || cp.stop_apiserver())
        .await
        .unwrap();
    assert_burst_cluster_failed(
        m.apply(split(40, 60)).await.unwrap_err(),
        "burst (connection)",
        &burst,
    );
    assert_eq!(
        primary.stored_vs(NAME).await["spec"]["http"][0]["route"][1]["weight"],
        60
    );
    let e = m.current().await.unwrap_err();
    assert_eq!(e.kind(), "cluster_failure");
    assert!(e.to_string().contains("read failed in 1 of 2"), "{e}");

    let cp = burst_cp.clone();
    tokio::task::spawn_blocking(move || cp.start_apiserver())
        .await
        .unwrap()
        .unwrap();
    m.apply(split(40, 60)).await.unwrap();
    assert_eq!(m.current().await.unwrap(), split(40, 60));
    assert_eq!(
        burst_weights([&primary, &burst]).await,
        [json!(60), json!(60)]
    );
}
