//! VirtualService and HTTPRoute routers through the real `kube::Client` against a real
//! kube-apiserver + etcd (`burst_testkit::kube`, one per test binary, a namespace per test)
//! with the vendored Istio and Gateway API CRDs installed, so every answer (the 422 of a
//! failed `test` op, 404, dry run, schema and CEL validation, an admission policy's refusal,
//! defaulting, managedFields) is the real server's.
//!
//! The routers go through `ApiProxy`, which records every write that reached the server and
//! injects only what a real server cannot be made to do on demand: 500s, a 409 for a JSON
//! patch, slow answers and dropped connections. Concurrent writers are real writers acting on
//! the server just before our patch (`Fault::before`). Objects written are also checked
//! against Istio's weight rules that istiod's webhook would apply (`schema::check`).
//!
//! Needs the control-plane binaries (`scripts/control-plane.sh build`); without them every
//! test fails with that command.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use burst_core::{Split, TrafficRouter};
use burst_istio::{
    BackendSelector, HttpRouteRouter, HttpRouteTarget, RouteCaches, RouterOptions,
    VirtualServiceRouter, VsTarget,
};
use burst_testkit::kube::{ControlPlane, Fault};
use burst_testkit::schema;
use common::{
    Cluster, HTTPROUTE_V1, NAME, V1, assert_only_weights_changed, assert_refused, fast, json_patch,
    managed_by, object_path, request, seed_vs, server_side_apply, vs_weight,
};
use http::Method;
use serde_json::{Value, json};

fn split(p: i64, b: i64) -> Split {
    Split::try_new(p, b).unwrap()
}

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().expect("the real control plane")
}

/// A namespace with VirtualService [`NAME`] (v1) holding `primary`/`burst`.
async fn cluster_with_vs(prefix: &str, primary: u64, burst: u64) -> Cluster<'static> {
    let c = Cluster::new(cp(), prefix).await;
    c.create(&seed_vs(V1, NAME, primary, burst)).await.unwrap();
    c
}

fn statuses(c: &Cluster<'_>) -> Vec<u16> {
    c.proxy.writes().iter().map(|w| w.status).collect()
}

/// A `Fault::before` hook: another writer's JSON patch of VirtualService [`NAME`] in `ns`.
fn other_writer(ns: &str, ops: Value) -> Fault {
    let path = object_path(V1, "virtualservices", ns, NAME);
    Fault::before(move |client| {
        let path = path.clone();
        let ops = ops.clone();
        async move {
            json_patch(&client, &path, ops).await.unwrap();
        }
    })
    .on(Method::PATCH)
}

/// Polls `read` every 20 ms until it gives `want` (at most 60 s: a watch that failed
/// under load retries with backoff).
async fn until_reads(what: &str, want: Split, read: impl AsyncFn() -> Option<Split>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        last = read().await;
        if last == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: wanted {want}, last read {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_router_reads_the_watch_and_gets_only_when_the_copy_may_be_stale() {
    let c = cluster_with_vs("cached", 100, 0).await;
    let client = c.proxied_client().await;
    let caches = RouteCaches::new(client.clone());
    let r = VirtualServiceRouter::new(client, &c.ns, NAME, VsTarget::default(), fast())
        .unwrap()
        .with_cache(&caches);
    // Every GET of the object fails from here on (the watch's list and watch requests
    // are on the collection, so they pass): what reads succeed come from the watch.
    let object = object_path(V1, "virtualservices", &c.ns, NAME);
    c.proxy.inject(
        Fault::status(500)
            .on(Method::GET)
            .path(object.clone())
            .times(usize::MAX),
    );
    until_reads("synced copy", Split::ALL_PRIMARY, async || {
        r.current().await.ok()
    })
    .await;

    // Another writer changes the weights on the server: the watch brings the change.
    json_patch(
        &c.admin,
        &object,
        json!([{"op": "replace", "path": vs_weight(0, 0), "value": 40},
               {"op": "replace", "path": vs_weight(0, 1), "value": 60}]),
    )
    .await
    .unwrap();
    until_reads("another writer's change", split(40, 60), async || {
        r.current().await.ok()
    })
    .await;

    // A write computed from the copy, guarded as always, lands; the copy then shows it.
    r.apply(split(10, 90)).await.unwrap();
    assert_eq!(
        c.stored_vs(NAME).await["spec"]["http"][0]["route"][1]["weight"],
        90
    );
    until_reads("own write in the copy", split(10, 90), async || {
        r.current().await.ok()
    })
    .await;
    let writes = c.proxy.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].status, 200);

    // A deleted object leaves the copy; the miss is a GET, which gives the real 404.
    c.proxy.clear_faults();
    request(&c.admin, Method::DELETE, &object, None)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match r.current().await {
            Err(e) if e.kind() == "not_found" => break,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "still reads {other:?} after the delete"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_writes_a_guarded_json_patch_of_the_two_weights() {
    let c = cluster_with_vs("guarded", 100, 0).await;
    let r = c.vs_router(NAME, fast()).await;
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
    let before = c.stored_vs(NAME).await;

    r.apply(split(30, 70)).await.unwrap();
    assert_eq!(r.current().await.unwrap(), split(30, 70));

    let writes = c.proxy.writes();
    assert_eq!(writes.len(), 1);
    let w = &writes[0];
    assert_eq!(w.method, Method::PATCH);
    assert_eq!(w.path, object_path(V1, "virtualservices", &c.ns, NAME));
    assert_eq!(w.status, 200);
    assert!(!w.dry_run);
    assert_eq!(w.content_type, "application/json-patch+json");
    assert_eq!(w.field_manager.as_deref(), Some("burst"));
    assert_eq!(w.body[0]["op"], "test");
    assert_eq!(w.body[0]["path"], "/spec/http");
    assert_eq!(w.body[0]["value"], before["spec"]["http"]);
    assert_eq!(
        w.body[1],
        json!({"op": "add", "path": "/spec/http/0/route/0/weight", "value": 30})
    );
    assert_eq!(
        w.body[2],
        json!({"op": "add", "path": "/spec/http/0/route/1/weight", "value": 70})
    );

    let after = c.stored_vs(NAME).await;
    schema::check(&after).unwrap();
    assert_only_weights_changed(
        &before,
        &after,
        &[(&vs_weight(0, 0), 30), (&vs_weight(0, 1), 70)],
    );
    assert_eq!(
        after["metadata"]["generation"],
        before["metadata"]["generation"].as_i64().unwrap() + 1
    );
    assert_ne!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    // `spec.http` is an atomic list in Istio's CRD (no x-kubernetes-list-type), so the field
    // manager of a write inside it owns the whole list, not just the two weights.
    let ours = managed_by(&after, "burst").expect("burst in managedFields");
    assert_eq!(ours["operation"], "Update");
    assert_eq!(ours["fieldsV1"], json!({"f:spec": {"f:http": {}}}));

    // Applying the split in effect writes nothing.
    r.apply(split(30, 70)).await.unwrap();
    assert_eq!(c.proxy.writes().len(), 1);
    assert!(r.describe().contains(&c.vs_object(NAME)));
}

/// A VirtualService with most of what a real one holds besides the two weights, so a round
/// trip shows that none of it is touched.
fn rich_vs(api_version: &str, name: &str) -> Value {
    json!({
        "apiVersion": api_version, "kind": "VirtualService",
        "metadata": {
            "name": name,
            "labels": {"app": "worker", "team": "shop"},
            "annotations": {"argocd.argoproj.io/sync-wave": "2", "note": "keep me"}
        },
        "spec": {
            "hosts": ["worker-service", "worker.example.com"],
            "gateways": ["mesh", "istio-system/public"],
            "exportTo": ["."],
            "http": [
                {
                    "name": "canary-header",
                    "match": [{"headers": {"x-canary": {"exact": "1"}}}],
                    "route": [{"destination": {"host": "worker-canary"}}]
                },
                {
                    "name": "main",
                    "match": [{"uri": {"prefix": "/api"}, "ignoreUriCase": true}],
                    "rewrite": {"uri": "/"},
                    "timeout": "7s",
                    "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,reset"},
                    "fault": {"delay": {"percentage": {"value": 0.5}, "fixedDelay": "5s"}},
                    "mirror": {"host": "worker-shadow"},
                    "mirrorPercentage": {"value": 12.5},
                    "corsPolicy": {
                        "allowOrigins": [{"exact": "https://example.com"}],
                        "allowMethods": ["GET", "POST"],
                        "maxAge": "24h"
                    },
                    "headers": {
                        "request": {"set": {"x-burst": "true"}},
                        "response": {"remove": ["x-internal"]}
                    },
                    "route": [
                        {
                            "destination": {"host": "worker-service.default.svc.cluster.local", "port": {"number": 80}, "subset": "primary"},
                            "weight": 100,
                            "headers": {"response": {"add": {"x-served-by": "primary"}}}
                        },
                        {
                            "destination": {"host": "worker-service.default.svc.cluster.local", "port": {"number": 80}, "subset": "burst"},
                            "weight": 0
                        }
                    ]
                }
            ],
            "tcp": [{
                "match": [{"port": 9000}],
                "route": [{"destination": {"host": "worker-tcp", "port": {"number": 9000}}}]
            }]
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_version_round_trips_only_the_two_weights() {
    let c = Cluster::new(cp(), "versions").await;
    for version in ["v1", "v1beta1", "v1alpha3"] {
        let api_version = format!("networking.istio.io/{version}");
        let name = format!("worker-{version}");
        let created = c.create(&rich_vs(&api_version, &name)).await.unwrap();
        assert_eq!(created["apiVersion"], api_version.as_str());
        let before = c.get(&api_version, "virtualservices", &name).await;
        // Nothing of the rich object was pruned or defaulted away at create.
        let sent = rich_vs(&api_version, &name);
        assert_eq!(before["spec"], sent["spec"], "{version}: stored as sent");

        let options = RouterOptions {
            api_version: version.into(),
            ..fast()
        };
        let r = c.vs_router(&name, options).await;
        assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
        c.proxy.clear_writes();
        r.apply(split(25, 75)).await.unwrap();
        let writes = c.proxy.writes();
        assert_eq!(writes.len(), 1, "{version}");
        assert_eq!(
            writes[0].path,
            object_path(&api_version, "virtualservices", &c.ns, &name)
        );
        assert_eq!(writes[0].body[1]["path"], vs_weight(1, 0));

        let after = c.get(&api_version, "virtualservices", &name).await;
        assert_eq!(after["apiVersion"], api_version.as_str());
        assert_only_weights_changed(
            &before,
            &after,
            &[(&vs_weight(1, 0), 25), (&vs_weight(1, 1), 75)],
        );
        schema::check(&after).unwrap_or_else(|e| panic!("{version}: {e:?}"));
        assert_eq!(r.current().await.unwrap(), split(25, 75));
        // The same object read in v1 holds the same split.
        let as_v1 = c.stored_vs(&name).await;
        assert_eq!(as_v1["spec"], after["spec"], "{version} and v1 disagree");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writer_changing_the_routes_fails_the_test_op_and_is_retried() {
    let c = cluster_with_vs("concurrent", 100, 0).await;
    // Just before our first PATCH reaches the server, someone adds a timeout to the route.
    c.proxy.inject(other_writer(
        &c.ns,
        json!([{"op": "add", "path": "/spec/http/0/timeout", "value": "7s"}]),
    ));
    let r = c.vs_router(NAME, fast()).await;
    r.apply(Split::ALL_BURST).await.unwrap();

    // The real server refused the guarded patch (failed `test` op), the router re-read and
    // wrote again.
    assert_eq!(statuses(&c), vec![422, 200]);
    assert_eq!(c.proxy.fired().len(), 1);
    let after = c.stored_vs(NAME).await;
    assert_eq!(
        after["spec"]["http"][0]["timeout"], "7s",
        "the other writer's change is kept"
    );
    assert_eq!(r.current().await.unwrap(), Split::ALL_BURST);
    schema::check(&after).unwrap();

    // Another writer setting the weights themselves: ours is written on the re-read.
    c.proxy.clear_writes();
    c.proxy.inject(other_writer(
        &c.ns,
        json!([
            {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 50},
            {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 50}
        ]),
    ));
    r.apply(split(10, 90)).await.unwrap();
    assert_eq!(statuses(&c), vec![422, 200]);
    let after = c.stored_vs(NAME).await;
    assert_eq!(r.current().await.unwrap(), split(10, 90));
    assert_eq!(after["spec"]["http"][0]["timeout"], "7s");
    schema::check(&after).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_keeps_changing_the_routes_exhausts_the_attempts() {
    let c = cluster_with_vs("storm", 100, 0).await;
    let n = Arc::new(AtomicU32::new(0));
    let path = object_path(V1, "virtualservices", &c.ns, NAME);
    c.proxy.inject(
        Fault::before(move |client| {
            let path = path.clone();
            let timeout = format!("{}s", n.fetch_add(1, Ordering::SeqCst) + 1);
            async move {
                let ops = json!([{"op": "add", "path": "/spec/http/0/timeout", "value": timeout}]);
                json_patch(&client, &path, ops).await.unwrap();
            }
        })
        .on(Method::PATCH)
        .times(100),
    );
    let r = gives_up_after_3_attempts(&c).await;
    assert_eq!(statuses(&c), vec![422, 422, 422]);
    let after = c.stored_vs(NAME).await;
    assert_eq!(after["spec"]["http"][0]["timeout"], "3s");
    c.proxy.clear_faults();
    assert_eq!(
        r.current().await.unwrap(),
        Split::ALL_PRIMARY,
        "nothing half-applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrelated_changes_do_not_conflict() {
    let c = cluster_with_vs("unrelated", 100, 0).await;
    c.proxy.inject(other_writer(
        &c.ns,
        json!([{"op": "add", "path": "/metadata/annotations", "value": {"argocd": "synced"}}]),
    ));
    let r = c.vs_router(NAME, fast()).await;
    r.apply(split(50, 50)).await.unwrap();
    assert_eq!(c.proxy.fired().len(), 1, "the other writer wrote first");
    assert_eq!(statuses(&c), vec![200]);
    let after = c.stored_vs(NAME).await;
    assert_eq!(after["metadata"]["annotations"]["argocd"], "synced");
    assert_eq!(r.current().await.unwrap(), split(50, 50));
}

/// The real server answers a JSON patch without a resourceVersion with 422 (failed `test`)
/// rather than 409, so 409 is the proxy's: the router treats both as conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_are_retried_with_a_bound() {
    let c = cluster_with_vs("conflict", 100, 0).await;
    c.proxy
        .inject(Fault::status(409).on(Method::PATCH).times(2));
    let r = c.vs_router(NAME, fast()).await;
    r.apply(split(80, 20)).await.unwrap();
    assert_eq!(c.proxy.fired().len(), 2);
    assert_eq!(
        statuses(&c),
        vec![200],
        "only the third PATCH reached the server"
    );
    assert_eq!(r.current().await.unwrap(), split(80, 20));

    c.proxy
        .inject(Fault::status(409).on(Method::PATCH).times(100));
    let r = gives_up_after_3_attempts(&c).await;
    c.proxy.clear_faults();
    assert_eq!(
        r.current().await.unwrap(),
        split(80, 20),
        "nothing half-applied"
    );
}

/// A VirtualService router on [`NAME`] allowed 3 attempts, once its apply of all-burst gave
/// up with a conflict naming the object and the attempts.
async fn gives_up_after_3_attempts(c: &Cluster<'_>) -> VirtualServiceRouter {
    let r = c
        .vs_router(
            NAME,
            RouterOptions {
                max_attempts: 3,
                ..fast()
            },
        )
        .await;
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "conflict");
    let msg = e.to_string();
    assert!(
        msg.contains(&c.vs_object(NAME)) && msg.contains("3 attempts"),
        "{msg}"
    );
    r
}

/// A ValidatingAdmissionPolicy (CEL, run by kube-apiserver itself) that caps every weight
/// at 90 in namespace `ns`, and waits until the server enforces it.
async fn cap_weights_at_90(c: &Cluster<'_>) -> String {
    let name = format!("cap-weights-{}", c.ns);
    let policy = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["networking.istio.io"], "apiVersions": ["*"],
                "operations": ["UPDATE"], "resources": ["virtualservices"]
            }]},
            "validations": [{
                "expression": "object.spec.http.all(r, !has(r.route) || r.route.all(d, !has(d.weight) || d.weight <= 90))",
                "message": "no destination may take more than 90 percent of the traffic"
            }]
        }
    });
    let binding = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": c.ns}}}
        }
    });
    let base = "/apis/admissionregistration.k8s.io/v1";
    request(
        &c.admin,
        Method::POST,
        &format!("{base}/validatingadmissionpolicies"),
        Some(&policy),
    )
    .await
    .unwrap();
    request(
        &c.admin,
        Method::POST,
        &format!("{base}/validatingadmissionpolicybindings"),
        Some(&binding),
    )
    .await
    .unwrap();
    // The server loads policies asynchronously: probe with a dry-run write until refused.
    let probe = format!(
        "{}?dryRun=All",
        object_path(V1, "virtualservices", &c.ns, NAME)
    );
    for _ in 0..150 {
        let ops = json!([{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 100}]);
        match json_patch(&c.admin, &probe, ops).await {
            Err(kube::Error::Api(s)) if s.code == 422 => return name,
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("probe failed: {e}"),
        }
    }
    panic!("the admission policy {name} was not enforced within 15 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_cluster_refuses_is_invalid_and_not_retried() {
    let c = cluster_with_vs("refused", 90, 10).await;
    let policy = cap_weights_at_90(&c).await;
    let r = c.vs_router(NAME, fast()).await;

    let e = r.apply(split(5, 95)).await.unwrap_err();
    assert_eq!(e.kind(), "invalid");
    let msg = e.to_string();
    assert!(msg.contains(&c.vs_object(NAME)), "{msg}");
    assert!(
        msg.contains(&policy) && msg.contains("no destination may take more than 90 percent"),
        "the server's reason reaches the caller: {msg}"
    );
    assert_eq!(
        statuses(&c),
        vec![422],
        "a 422 with an unchanged object is not a conflict: not retried"
    );
    assert_eq!(r.current().await.unwrap(), split(90, 10));

    // Dry run is checked by the same policy and stores nothing either way.
    let dry = c
        .vs_router(
            NAME,
            RouterOptions {
                dry_run: true,
                ..fast()
            },
        )
        .await;
    assert_eq!(dry.apply(split(5, 95)).await.unwrap_err().kind(), "invalid");
    dry.apply(split(20, 80)).await.unwrap();
    assert_eq!(r.current().await.unwrap(), split(90, 10));

    // A split within the policy is written.
    r.apply(split(10, 90)).await.unwrap();
    assert_eq!(r.current().await.unwrap(), split(10, 90));
    let writes = c.proxy.writes();
    assert_eq!(
        writes
            .iter()
            .map(|w| (w.status, w.dry_run))
            .collect::<Vec<_>>(),
        vec![(422, false), (422, true), (200, true), (200, false)]
    );
    schema::check(&c.stored_vs(NAME).await).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_schema_decides_which_weights_can_exist() {
    let c = Cluster::new(cp(), "schema").await;
    // Istio's schema says int32: the largest is stored, one more is refused at create, and
    // the router's own limit for a VirtualService weight is the same.
    let mut vs = seed_vs(V1, "too-big", 0, 0);
    vs["spec"]["http"][0]["route"][0]["weight"] = json!(2_147_483_648_u64);
    assert_refused(
        c.create(&vs).await,
        422,
        &["spec.http[0].route[0].weight", "int32"],
        "an int32 overflow was stored",
    );
    let mut vs = seed_vs(V1, "largest", 0, 0);
    vs["spec"]["http"][0]["route"][0]["weight"] = json!(2_147_483_647_u64);
    c.create(&vs).await.unwrap();
    let r = c.vs_router("largest", fast()).await;
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);

    // The CRD's CEL rules run too: a timeout under 1 ms is refused.
    let mut vs = seed_vs(V1, "zero-timeout", 100, 0);
    vs["spec"]["http"][0]["timeout"] = json!("0s");
    assert_refused(
        c.create(&vs).await,
        422,
        &[
            "spec.http[0].timeout",
            "must be a valid duration greater than 1ms",
        ],
        "a 0s timeout was stored",
    );

    // A negative weight passes the schema (Istio leaves it to istiod's webhook, which does
    // not run here): the router refuses to read it, naming the field, and a split repairs it.
    let mut vs = seed_vs(V1, "negative", 100, 0);
    vs["spec"]["http"][0]["route"][1]["weight"] = json!(-1);
    c.create(&vs).await.unwrap();
    let stored = c.stored_vs("negative").await;
    assert!(schema::check(&stored).is_err(), "istiod would refuse it");
    let r = c.vs_router("negative", fast()).await;
    let e = r.current().await.unwrap_err();
    assert_eq!(e.kind(), "invalid_weight");
    let msg = e.to_string();
    assert!(
        msg.contains(&c.vs_object("negative")) && msg.contains(&vs_weight(0, 1)),
        "{msg}"
    );
    r.apply(split(20, 80)).await.unwrap();
    let after = c.stored_vs("negative").await;
    assert_only_weights_changed(
        &stored,
        &after,
        &[(&vs_weight(0, 0), 20), (&vs_weight(0, 1), 80)],
    );
    schema::check(&after).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_object_is_not_found_with_its_name() {
    let c = Cluster::new(cp(), "missing").await;
    let r = c.vs_router(NAME, fast()).await;
    let e = r.current().await.unwrap_err();
    assert_eq!(e.kind(), "not_found");
    assert!(e.to_string().contains(&c.vs_object(NAME)), "{e}");
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "not_found");
    assert!(c.proxy.writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_surfaced_with_the_name() {
    let c = cluster_with_vs("server-errors", 100, 0).await;
    c.proxy.inject(Fault::status(500).on(Method::GET));
    let r = c.vs_router(NAME, fast()).await;
    let e = r.current().await.unwrap_err();
    assert_eq!(e.kind(), "server");
    assert!(e.to_string().contains(&c.vs_object(NAME)), "{e}");

    c.proxy.inject(Fault::status(500).on(Method::PATCH));
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "server");
    assert!(e.to_string().contains(&c.vs_object(NAME)), "{e}");
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
    assert!(
        c.proxy.writes().is_empty(),
        "the proxy answered, not the server"
    );

    // Deleted between our read and our write: the real server's 404.
    let path = object_path(V1, "virtualservices", &c.ns, NAME);
    c.proxy.inject(
        Fault::before(move |client| {
            let path = path.clone();
            async move {
                request(&client, Method::DELETE, &path, None).await.unwrap();
            }
        })
        .on(Method::PATCH),
    );
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "not_found");
    assert!(e.to_string().contains(&c.vs_object(NAME)), "{e}");
    assert_eq!(statuses(&c), vec![404]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_time_out_with_the_name() {
    let c = cluster_with_vs("slow", 100, 0).await;
    c.proxy
        .inject(Fault::delay(Duration::from_secs(30)).on(Method::GET));
    let opts = RouterOptions {
        request_timeout: Duration::from_millis(200),
        ..fast()
    };
    let r = c.vs_router(NAME, opts).await;
    let e = r.current().await.unwrap_err();
    assert_eq!(e.kind(), "timeout");
    assert!(e.to_string().contains(&c.vs_object(NAME)), "{e}");

    c.proxy
        .inject(Fault::delay(Duration::from_secs(30)).on(Method::PATCH));
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "timeout");
    assert!(e.to_string().contains(&c.vs_object(NAME)), "{e}");
    assert!(
        c.proxy.writes().is_empty(),
        "the delayed PATCH is still held"
    );
    // Read back with the usual timeout: 200 ms is for the faults only.
    let r = c.vs_router(NAME, fast()).await;
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_surfaced_with_the_name() {
    let c = cluster_with_vs("dropped", 100, 0).await;
    c.proxy.inject(Fault::drop_connection().on(Method::PATCH));
    let r = c.vs_router(NAME, fast()).await;
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "connection");
    assert!(e.to_string().contains(&c.vs_object(NAME)), "{e}");
    assert!(c.proxy.writes().is_empty());
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing() {
    let c = cluster_with_vs("dry-run", 100, 0).await;
    let opts = RouterOptions {
        dry_run: true,
        ..fast()
    };
    let r = c.vs_router(NAME, opts).await;
    let before = c.stored_vs(NAME).await;
    r.apply(split(40, 60)).await.unwrap();
    // Not even resourceVersion or managedFields moved.
    assert_eq!(c.stored_vs(NAME).await, before);
    let writes = c.proxy.writes();
    assert_eq!(writes.len(), 1);
    assert!(writes[0].dry_run);
    assert_eq!(
        writes[0].status, 200,
        "the server accepted and validated it"
    );
    assert_eq!(writes[0].body[2]["value"], 60, "the patch is computed");
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
    assert!(r.describe().contains("dry run"));
    // The plan shows the same patch without sending anything.
    let plan = r.plan(split(40, 60)).await.unwrap().unwrap();
    assert_eq!(serde_json::to_value(plan).unwrap(), writes[0].body);
    assert_eq!(c.proxy.writes().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_errors_reach_the_caller_unchanged() {
    let c = Cluster::new(cp(), "transform").await;
    let mut vs = seed_vs(V1, NAME, 100, 0);
    vs["spec"]["http"][0]["route"][1]["destination"]["subset"] = json!("cloud");
    c.create(&vs).await.unwrap();
    let r = c.vs_router(NAME, fast()).await;
    let e = r.apply(Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "no_candidate_route");
    assert!(e.to_string().contains(&c.vs_object(NAME)), "{e}");
    assert!(c.proxy.writes().is_empty());
}

fn httproute(api_version: &str, name: &str) -> Value {
    json!({
        "apiVersion": api_version, "kind": "HTTPRoute",
        "metadata": {"name": name, "annotations": {"note": "keep me"}},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["shop.example.com"], "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}], "backendRefs": [{"name": "cdn", "port": 80}]},
            {"name": "split", "timeouts": {"request": "10s"},
             "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-burst", "value": "1"}]}}],
             "backendRefs": [{"name": "worker-primary", "port": 8081}, {"name": "worker-burst", "port": 8081}]}
        ]}
    })
}

fn httproute_router(
    c: &Cluster<'_>,
    client: kube::Client,
    name: &str,
    options: RouterOptions,
) -> HttpRouteRouter {
    let target = HttpRouteTarget::new(
        BackendSelector::new("worker-primary"),
        BackendSelector::new("worker-burst"),
    );
    HttpRouteRouter::new(client, &c.ns, name, target, options).unwrap()
}

fn rule_weight(rule: usize, backend: usize) -> String {
    format!("/spec/rules/{rule}/backendRefs/{backend}/weight")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httproute_router_round_trip() {
    let c = Cluster::new(cp(), "httproute").await;
    for version in ["v1", "v1beta1"] {
        let api_version = format!("gateway.networking.k8s.io/{version}");
        let name = format!("worker-{version}");
        c.create(&httproute(&api_version, &name)).await.unwrap();
        let before = c.get(&api_version, "httproutes", &name).await;
        // The server applies the CRD's defaults at create: every omitted weight is 1.
        for (rule, backend) in [(0, 0), (1, 0), (1, 1)] {
            assert_eq!(before.pointer(&rule_weight(rule, backend)), Some(&json!(1)));
        }
        let options = RouterOptions {
            api_version: version.into(),
            ..fast()
        };
        let r = httproute_router(&c, c.proxied_client().await, &name, options);
        assert_eq!(
            r.current().await.unwrap(),
            split(50, 50),
            "defaulted weights are 1:1"
        );
        c.proxy.clear_writes();
        r.apply(split(90, 10)).await.unwrap();
        assert_eq!(r.current().await.unwrap(), split(90, 10));
        let writes = c.proxy.writes();
        assert_eq!(writes.len(), 1);
        assert_eq!(
            writes[0].path,
            object_path(&api_version, "httproutes", &c.ns, &name)
        );
        assert_eq!(writes[0].body[0]["path"], "/spec/rules");

        let after = c.get(&api_version, "httproutes", &name).await;
        assert_only_weights_changed(
            &before,
            &after,
            &[(&rule_weight(1, 0), 90), (&rule_weight(1, 1), 10)],
        );
        schema::check(&after).unwrap_or_else(|e| panic!("{version}: {e:?}"));
        // Like Istio's `spec.http`, `spec.rules` is atomic: the field manager owns all of it.
        let ours = managed_by(&after, "burst").expect("burst in managedFields");
        assert_eq!(ours["fieldsV1"], json!({"f:spec": {"f:rules": {}}}));
    }

    // The schema's range is the router's: 1,000,000 is stored and read, one more is refused.
    let mut heavy = httproute(HTTPROUTE_V1, "heavy");
    heavy["spec"]["rules"][1]["backendRefs"][0]["weight"] = json!(1_000_000);
    heavy["spec"]["rules"][1]["backendRefs"][1]["weight"] = json!(0);
    c.create(&heavy).await.unwrap();
    let r = httproute_router(&c, c.proxied_client().await, "heavy", fast());
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
    heavy["metadata"]["name"] = json!("too-heavy");
    heavy["spec"]["rules"][1]["backendRefs"][0]["weight"] = json!(1_000_001);
    assert_refused(
        c.create(&heavy).await,
        422,
        &["spec.rules[1].backendRefs[0].weight"],
        "a weight above the schema's maximum was stored",
    );

    let e = httproute_router(&c, c.proxied_client().await, "missing", fast())
        .current()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "not_found");
    assert!(
        e.to_string()
            .contains(&format!("HTTPRoute {}/missing", c.ns)),
        "{e}"
    );
}

/// What a GitOps tool that applies server-side (Argo CD with `ServerSideApply=true`, Flux)
/// meets on the real server: Istio's `spec.http` is an atomic list, so whoever writes inside
/// it owns all of it. The router's first write takes `spec.http` from the applier; the
/// applier's next apply conflicts on `.spec.http` with `burst`, and a forced apply puts
/// back Git's whole list, weights included, or without weights if Git has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_appliers_and_the_router_share_the_atomic_route_list() {
    let c = Cluster::new(cp(), "gitops").await;
    let path = object_path(V1, "virtualservices", &c.ns, NAME);
    let mut git = seed_vs(V1, NAME, 100, 0);
    git["metadata"]["namespace"] = json!(c.ns);
    server_side_apply(&c.admin, &path, "argocd-controller", true, &git)
        .await
        .unwrap();
    let applied = c.stored_vs(NAME).await;
    let theirs = managed_by(&applied, "argocd-controller").unwrap();
    assert!(theirs["fieldsV1"]["f:spec"].get("f:http").is_some());

    let r = c.vs_router(NAME, fast()).await;
    r.apply(split(30, 70)).await.unwrap();
    let after = c.stored_vs(NAME).await;
    let ours = managed_by(&after, "burst").unwrap();
    assert_eq!(ours["fieldsV1"], json!({"f:spec": {"f:http": {}}}));
    let theirs = managed_by(&after, "argocd-controller").unwrap();
    assert!(
        theirs["fieldsV1"]["f:spec"].get("f:http").is_none(),
        "the applier no longer owns spec.http: {theirs}"
    );
    assert!(theirs["fieldsV1"]["f:spec"].get("f:hosts").is_some());

    // Re-applying Git unchanged conflicts with burst on the whole list.
    assert_refused(
        server_side_apply(&c.admin, &path, "argocd-controller", false, &git).await,
        409,
        &[".spec.http", "burst"],
        "re-applying Git's weights did not conflict",
    );
    assert_eq!(r.current().await.unwrap(), split(30, 70));

    // Forced, Git's list wins, and with it Git's weights.
    server_side_apply(&c.admin, &path, "argocd-controller", true, &git)
        .await
        .unwrap();
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);

    // Leaving the weights out of Git does not leave them to burst: the forced apply of the
    // atomic list removes them.
    r.apply(split(30, 70)).await.unwrap();
    for d in 0..2 {
        git["spec"]["http"][0]["route"][d]
            .as_object_mut()
            .unwrap()
            .remove("weight");
    }
    server_side_apply(&c.admin, &path, "argocd-controller", true, &git)
        .await
        .unwrap();
    let stripped = c.stored_vs(NAME).await;
    assert!(
        stripped
            .pointer(&vs_weight(0, 0))
            .or(stripped.pointer(&vs_weight(0, 1)))
            .is_none(),
        "{stripped}"
    );
    assert_eq!(r.current().await.unwrap_err().kind(), "zero_total_weight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_refusals_are_forbidden_with_the_name() {
    let c = cluster_with_vs("rbac", 100, 0).await;
    // A service account that may read VirtualServices but not patch them.
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "vs-reader"},
        "rules": [{"apiGroups": ["networking.istio.io"], "resources": ["virtualservices"], "verbs": ["get"]}]
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "vs-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vs-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": c.ns}]
    });
    let rbac = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{}", c.ns);
    request(
        &c.admin,
        Method::POST,
        &format!("{rbac}/roles"),
        Some(&role),
    )
    .await
    .unwrap();
    request(
        &c.admin,
        Method::POST,
        &format!("{rbac}/rolebindings"),
        Some(&binding),
    )
    .await
    .unwrap();
    let reader = c.cp.service_account_token(&c.ns, "reader").await.unwrap();
    let nobody = c.cp.service_account_token(&c.ns, "nobody").await.unwrap();

    let router_as = |token: String, dry_run: bool| {
        let c = &c;
        async move {
            VirtualServiceRouter::new(
                c.proxy.client(&token).await.unwrap(),
                &c.ns,
                NAME,
                VsTarget::default(),
                RouterOptions { dry_run, ..fast() },
            )
            .unwrap()
        }
    };
    let r = router_as(reader.clone(), false).await;
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
    for r in [r, router_as(reader, true).await] {
        let e = r.apply(Split::ALL_BURST).await.unwrap_err();
        assert_eq!(e.kind(), "forbidden");
        let msg = e.to_string();
        assert!(
            msg.contains(&c.vs_object(NAME))
                && msg.contains(&format!("system:serviceaccount:{}:reader", c.ns))
                && msg.contains("cannot patch"),
            "{msg}"
        );
    }
    assert_eq!(statuses(&c), vec![403, 403], "not retried");

    let e = router_as(nobody, false).await.current().await.unwrap_err();
    assert_eq!(e.kind(), "forbidden");
    assert!(e.to_string().contains("cannot get"), "{e}");
    assert_eq!(
        c.stored_vs(NAME).await["spec"]["http"][0]["route"][1]["weight"],
        0
    );
}
