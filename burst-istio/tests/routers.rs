//! Routers through the real `kube::Client` against the in-process fake API server.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use burst_core::{Split, TrafficRouter};
use burst_fake_kube::{FakeKube, Fault, ObjectKey};
use burst_istio::{
    BackendSelector, HttpRouteRouter, HttpRouteTarget, MultiClusterRouter, RouterOptions,
    VirtualServiceRouter, VsTarget,
};
use burst_testkit::schema;
use http::Method;
use serde_json::{Value, json};

const NAME: &str = "worker-virtual-service";
const OBJECT: &str = "VirtualService default/worker-virtual-service";

fn seed_vs(api_version: &str, primary: u8, burst: u8) -> Value {
    json!({
        "apiVersion": api_version, "kind": "VirtualService",
        "metadata": {"name": NAME, "namespace": "default", "labels": {"app": "worker"}},
        "spec": {"hosts": ["worker-service"], "gateways": ["mesh"], "http": [{
            "retries": {"attempts": 3},
            "route": [
                {"destination": {"host": "worker-service.default.svc.cluster.local", "port": {"number": 80}, "subset": "primary"}, "weight": primary},
                {"destination": {"host": "worker-service.default.svc.cluster.local", "port": {"number": 80}, "subset": "burst"}, "weight": burst},
            ]}]}
    })
}

fn fast() -> RouterOptions {
    RouterOptions {
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        request_timeout: Duration::from_secs(5),
        ..RouterOptions::default()
    }
}

async fn fake_with_vs(primary: u8, burst: u8) -> FakeKube {
    let fake = FakeKube::start().await.unwrap();
    fake.insert(
        "virtualservices",
        seed_vs("networking.istio.io/v1", primary, burst),
    )
    .unwrap();
    fake
}

fn router(fake: &FakeKube, options: RouterOptions) -> VirtualServiceRouter {
    VirtualServiceRouter::new(
        fake.client().unwrap(),
        "default",
        NAME,
        VsTarget::default(),
        options,
    )
    .unwrap()
}

fn stored(fake: &FakeKube) -> Value {
    fake.object(
        "networking.istio.io",
        "virtualservices",
        Some("default"),
        NAME,
    )
    .unwrap()
}

fn key() -> ObjectKey {
    ObjectKey {
        group: "networking.istio.io".into(),
        plural: "virtualservices".into(),
        namespace: Some("default".into()),
        name: NAME.into(),
    }
}

fn split(p: i64, b: i64) -> Split {
    Split::try_new(p, b).unwrap()
}

#[tokio::test]
async fn apply_writes_a_guarded_json_patch_of_the_two_weights() {
    let fake = fake_with_vs(100, 0).await;
    let r = router(&fake, fast());
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
    let before = stored(&fake);

    r.apply(split(30, 70)).await.unwrap();
    assert_eq!(r.current().await.unwrap(), split(30, 70));

    let writes = fake.writes();
    assert_eq!(writes.len(), 1);
    let w = &writes[0];
    assert_eq!(w.method, Method::PATCH);
    assert_eq!(w.content_type, "application/json-patch+json");
    assert_eq!(w.field_manager.as_deref(), Some("burst"));
    assert_eq!(w.body[0]["op"], "test");
    assert_eq!(w.body[0]["path"], "/spec/http");
    assert_eq!(
        w.body[1],
        json!({"op": "add", "path": "/spec/http/0/route/0/weight", "value": 30})
    );
    assert_eq!(
        w.body[2],
        json!({"op": "add", "path": "/spec/http/0/route/1/weight", "value": 70})
    );

    let after = stored(&fake);
    schema::check(&after).unwrap();
    assert_eq!(
        after["spec"]["http"][0]["retries"],
        before["spec"]["http"][0]["retries"]
    );
    assert_eq!(after["metadata"]["labels"], before["metadata"]["labels"]);
    assert_eq!(after["metadata"]["generation"], 2);

    // Applying the split in effect writes nothing.
    r.apply(split(30, 70)).await.unwrap();
    assert_eq!(fake.writes().len(), 1);
    assert!(r.describe().contains(OBJECT));
}

#[tokio::test]
async fn another_writer_changing_the_routes_fails_the_test_op_and_is_retried() {
    let fake = fake_with_vs(100, 0).await;
    // Just before our first PATCH is served, someone adds a timeout to the route.
    fake.inject(
        Fault::mutate(|store| {
            store.modify(&key(), |o| o["spec"]["http"][0]["timeout"] = json!("7s"));
        })
        .on(Method::PATCH),
    );
    let r = router(&fake, fast());
    r.apply(Split::ALL_BURST).await.unwrap();

    let writes = fake.writes();
    assert_eq!(
        writes.iter().map(|w| w.status).collect::<Vec<_>>(),
        vec![422, 200]
    );
    let after = stored(&fake);
    assert_eq!(
        after["spec"]["http"][0]["timeout"], "7s",
        "the other writer's change is kept"
    );
    assert_eq!(r.current().await.unwrap(), Split::ALL_BURST);
    schema::check(&after).unwrap();
}

#[tokio::test]
async fn unrelated_changes_do_not_conflict() {
    let fake = fake_with_vs(100, 0).await;
    fake.inject(
        Fault::mutate(|store| {
            store.modify(&key(), |o| {
                o["metadata"]["annotations"] = json!({"argocd": "synced"})
            });
        })
        .on(Method::PATCH),
    );
    let r = router(&fake, fast());
    r.apply(split(50, 50)).await.unwrap();
    assert_eq!(
        fake.writes().iter().map(|w| w.status).collect::<Vec<_>>(),
        vec![200]
    );
    assert_eq!(stored(&fake)["metadata"]["annotations"]["argocd"], "synced");
}

#[tokio::test]
async fn conflicts_are_retried_with_a_bound() {
    let fake = fake_with_vs(100, 0).await;
    fake.inject(Fault::status(409).on(Method::PATCH).times(2));
    let r = router(&fake, fast());
    r.apply(split(80, 20)).await.unwrap();
    assert_eq!(fake.fired().len(), 2);
    assert_eq!(r.current().await.unwrap(), split(80, 20));

    fake.inject(Fault::status(409).on(Method::PATCH).times(100));
    let opts = RouterOptions {
        max_attempts: 3,
        ..fast()
    };
    let r = router(&fake, opts);
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "conflict");
    let msg = e.to_string();
    assert!(msg.contains(OBJECT) && msg.contains("3 attempts"), "{msg}");
    assert_eq!(
        r.current().await.unwrap(),
        split(80, 20),
        "nothing half-applied"
    );
}

#[tokio::test]
async fn an_invalid_patch_is_not_retried() {
    let fake = fake_with_vs(100, 0).await;
    fake.inject(Fault::status(422).on(Method::PATCH).times(5));
    let r = router(&fake, fast());
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "invalid");
    assert!(e.to_string().contains(OBJECT), "{e}");
    assert_eq!(
        fake.fired().len(),
        1,
        "a 422 with an unchanged object is not a conflict"
    );
}

#[tokio::test]
async fn missing_object_is_not_found_with_its_name() {
    let fake = FakeKube::start().await.unwrap();
    let r = router(&fake, fast());
    let e = r.current().await.unwrap_err();
    assert_eq!(e.kind(), "not_found");
    assert!(e.to_string().contains(OBJECT), "{e}");
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "not_found");
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn server_errors_are_surfaced_with_the_name() {
    let fake = fake_with_vs(100, 0).await;
    fake.inject(Fault::status(500).on(Method::GET));
    let r = router(&fake, fast());
    let e = r.current().await.unwrap_err();
    assert_eq!(e.kind(), "server");
    assert!(e.to_string().contains(OBJECT), "{e}");

    fake.inject(Fault::status(500).on(Method::PATCH));
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "server");
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);

    fake.inject(Fault::status(404).on(Method::PATCH));
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "not_found");
}

#[tokio::test]
async fn slow_answers_time_out_with_the_name() {
    let fake = fake_with_vs(100, 0).await;
    fake.inject(Fault::delay(Duration::from_secs(30)).on(Method::GET));
    let opts = RouterOptions {
        request_timeout: Duration::from_millis(200),
        ..fast()
    };
    let r = router(&fake, opts);
    let e = r.current().await.unwrap_err();
    assert_eq!(e.kind(), "timeout");
    assert!(e.to_string().contains(OBJECT), "{e}");

    fake.inject(Fault::delay(Duration::from_secs(30)).on(Method::PATCH));
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "timeout");
}

#[tokio::test]
async fn dropped_connections_are_surfaced_with_the_name() {
    let fake = fake_with_vs(100, 0).await;
    fake.inject(Fault::drop_connection().on(Method::PATCH));
    let r = router(&fake, fast());
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "connection");
    assert!(e.to_string().contains(OBJECT), "{e}");
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let fake = fake_with_vs(100, 0).await;
    let opts = RouterOptions {
        dry_run: true,
        ..fast()
    };
    let r = router(&fake, opts);
    let before = stored(&fake);
    r.apply(split(40, 60)).await.unwrap();
    assert_eq!(stored(&fake), before);
    let writes = fake.writes();
    assert_eq!(writes.len(), 1);
    assert!(writes[0].dry_run);
    assert_eq!(writes[0].body[2]["value"], 60, "the patch is computed");
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
    assert!(r.describe().contains("dry run"));
    // The plan shows the same patch without sending anything.
    let plan = r.plan(split(40, 60)).await.unwrap().unwrap();
    assert_eq!(serde_json::to_value(plan).unwrap(), writes[0].body);
}

#[tokio::test]
async fn older_api_versions_are_served_the_same_way() {
    let fake = FakeKube::start().await.unwrap();
    fake.insert(
        "virtualservices",
        seed_vs("networking.istio.io/v1alpha3", 100, 0),
    )
    .unwrap();
    let opts = RouterOptions {
        api_version: "v1alpha3".into(),
        ..fast()
    };
    let r = router(&fake, opts);
    r.apply(split(50, 50)).await.unwrap();
    assert!(
        fake.writes()[0]
            .path
            .starts_with("/apis/networking.istio.io/v1alpha3/")
    );
    assert_eq!(r.current().await.unwrap(), split(50, 50));
    schema::check(&stored(&fake)).unwrap();
}

#[tokio::test]
async fn transform_errors_reach_the_caller_unchanged() {
    let fake = FakeKube::start().await.unwrap();
    let mut vs = seed_vs("networking.istio.io/v1", 100, 0);
    vs["spec"]["http"][0]["route"][1]["destination"]["subset"] = json!("cloud");
    fake.insert("virtualservices", vs).unwrap();
    let r = router(&fake, fast());
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "no_candidate_route");
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn httproute_router_round_trip() {
    let fake = FakeKube::start().await.unwrap();
    fake.insert(
        "httproutes",
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "worker", "namespace": "shop"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}], "backendRefs": [{"name": "cdn", "port": 80}]},
                {"backendRefs": [{"name": "worker-primary", "port": 8081}, {"name": "worker-burst", "port": 8081}]}
            ]}
        }),
    )
    .unwrap();
    let target = HttpRouteTarget::new(
        BackendSelector::new("worker-primary"),
        BackendSelector::new("worker-burst"),
    );
    let r = HttpRouteRouter::new(fake.client().unwrap(), "shop", "worker", target, fast()).unwrap();
    assert_eq!(
        r.current().await.unwrap(),
        split(50, 50),
        "omitted weights are 1:1"
    );
    r.apply(split(90, 10)).await.unwrap();
    assert_eq!(r.current().await.unwrap(), split(90, 10));
    let obj = fake
        .object(
            "gateway.networking.k8s.io",
            "httproutes",
            Some("shop"),
            "worker",
        )
        .unwrap();
    assert_eq!(obj["spec"]["rules"][1]["backendRefs"][0]["weight"], 90);
    assert!(
        obj["spec"]["rules"][0]["backendRefs"][0]
            .get("weight")
            .is_none()
    );
    schema::check(&obj).unwrap();
    let e = HttpRouteRouter::new(
        fake.client().unwrap(),
        "shop",
        "missing",
        HttpRouteTarget::new(BackendSelector::new("a"), BackendSelector::new("b")),
        fast(),
    )
    .unwrap()
    .current()
    .await
    .unwrap_err();
    assert!(e.to_string().contains("HTTPRoute shop/missing"), "{e}");
}

async fn two_clusters() -> (FakeKube, FakeKube, MultiClusterRouter) {
    let east = fake_with_vs(100, 0).await;
    let west = fake_with_vs(100, 0).await;
    let m = MultiClusterRouter::new(vec![
        (
            "east".into(),
            Box::new(router(&east, fast())) as Box<dyn TrafficRouter>,
        ),
        ("west".into(), Box::new(router(&west, fast()))),
    ])
    .unwrap();
    (east, west, m)
}

#[tokio::test]
async fn multi_cluster_applies_to_every_cluster() {
    let (east, west, m) = two_clusters().await;
    m.apply(split(20, 80)).await.unwrap();
    for fake in [&east, &west] {
        assert_eq!(stored(fake)["spec"]["http"][0]["route"][1]["weight"], 80);
    }
    assert_eq!(m.current().await.unwrap(), split(20, 80));
    let reports = m.apply_all(Split::ALL_PRIMARY).await;
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.result.is_ok()));
    assert!(m.describe().contains("east, west"));
}

#[tokio::test]
async fn multi_cluster_reports_drift_and_partial_failure() {
    let (east, west, m) = two_clusters().await;
    west.with_store(|s| {
        s.modify(&key(), |o| {
            o["spec"]["http"][0]["route"][0]["weight"] = json!(0);
            o["spec"]["http"][0]["route"][1]["weight"] = json!(100);
        })
    });
    let e = m.current().await.unwrap_err();
    assert_eq!(e.kind(), "drift");
    let msg = e.to_string();
    assert!(
        msg.contains("east=100/0") && msg.contains("west=0/100"),
        "{msg}"
    );

    // West's API server fails the write; east still gets the split.
    west.inject(Fault::status(500).on(Method::PATCH));
    let e = m.apply(split(60, 40)).await.unwrap_err();
    assert_eq!(e.kind(), "cluster_failure");
    let msg = e.to_string();
    assert!(
        msg.contains("west (server)") && msg.contains("succeeded in east"),
        "{msg}"
    );
    assert_eq!(stored(&east)["spec"]["http"][0]["route"][1]["weight"], 40);

    // The next apply converges them.
    m.apply(split(60, 40)).await.unwrap();
    assert_eq!(m.current().await.unwrap(), split(60, 40));
}
