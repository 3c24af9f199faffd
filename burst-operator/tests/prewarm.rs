//! Pre-warming through burstd against a real kube-apiserver: a BurstPolicy with
//! `spec.prewarm` raises the burst Deployment's HorizontalPodAutoscaler `minReplicas` ahead
//! of a rising rate (before the route moves), restores it `hold` after the burst, and shows
//! it in status, Events and metrics. See `kube_env` for the setup.

#![allow(clippy::unwrap_used)]

mod kube_env;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube_env::{Demand, Env, Instance, call_of, eventually};
use serde_json::json;

async fn create_worker(env: &Env, replicas: i32, hpa_min: Option<i32>) {
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "worker", "namespace": env.ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "worker"}},
            "template": {
                "metadata": {"labels": {"app": "worker"}},
                "spec": {"containers": [{"name": "worker", "image": "worker:1"}]}
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(env.admin.clone(), &env.ns)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    if let Some(min) = hpa_min {
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "worker", "namespace": env.ns},
            "spec": {
                "minReplicas": min, "maxReplicas": 10,
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"}
            }
        }))
        .unwrap();
        Api::<HorizontalPodAutoscaler>::namespaced(env.admin.clone(), &env.ns)
            .create(&PostParams::default(), &hpa)
            .await
            .unwrap();
    }
}

async fn min_replicas(env: &Env) -> (i32, bool) {
    let hpa = Api::<HorizontalPodAutoscaler>::namespaced(env.admin.clone(), &env.ns)
        .get("worker")
        .await
        .unwrap();
    let annotated = hpa
        .metadata
        .annotations
        .is_some_and(|a| a.contains_key(burst_scale::ANNOTATION));
    (hpa.spec.min_replicas.unwrap_or(1), annotated)
}

async fn replicas(env: &Env) -> (i32, bool) {
    let d = Api::<Deployment>::namespaced(env.admin.clone(), &env.ns)
        .get("worker")
        .await
        .unwrap();
    let annotated = d
        .metadata
        .annotations
        .is_some_and(|a| a.contains_key(burst_scale::ANNOTATION));
    (d.spec.replicas.unwrap_or(1), annotated)
}

fn prewarm_policy(env: &Env, demand: &Demand) -> burst_operator::api::BurstPolicy {
    env.policy(
        "worker",
        demand,
        json!({
            "policy": {"high": 15, "low": 10, "prewarm": {"lead": "30s", "hold": "2s"}},
            "prewarm": {"scaler": {"kubernetes": {"deployment": "worker", "replicas": 5}}},
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prewarm_raises_the_hpa_ahead_of_a_rising_rate_and_restores_it_after_hold() {
    let env = Env::new("op-prewarm").await;
    create_worker(&env, 1, Some(2)).await;
    let demand = Demand::start(5.0).await;
    let op = Instance::start(&env, "a", false).await;
    env.create(&prewarm_policy(&env, &demand)).await;
    eventually("status shows the pre-warm outlook", || async {
        env.status("worker")
            .await
            .and_then(|s| s.prewarm)
            .is_some_and(|p| p.outlook.is_some() && !p.prepared)
    })
    .await;
    assert_eq!(min_replicas(&env).await, (2, false));

    // Rising towards the trigger (15), still below it: prepared ahead, the route unmoved.
    for rps in [7.0, 9.0, 11.0, 13.0] {
        demand.set(rps);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    eventually("HPA minReplicas raised ahead of the crossing", || async {
        min_replicas(&env).await == (5, true)
    })
    .await;
    assert_eq!(env.burst_weight().await, 0, "prepared before traffic moved");
    eventually("status shows prepared", || async {
        env.status("worker")
            .await
            .and_then(|s| s.prewarm)
            .is_some_and(|p| p.prepared && p.last_action.is_some_and(|a| a.starts_with("prewarm")))
    })
    .await;
    assert!(env.event_reasons().await.contains(&"Prewarm".to_owned()));
    let policy = format!("{}/worker", env.ns);
    assert!(op.metrics.encode().contains(&format!(
        r#"burstd_prewarm_prepared{{policy="{policy}"}} 1"#
    )));

    // The burst: traffic moves, the pre-warm stays.
    demand.set(25.0);
    eventually("route moved to burst", || async {
        env.burst_weight().await == 100
    })
    .await;
    assert_eq!(min_replicas(&env).await, (5, true), "held while on burst");

    // Back down: primary again, then released `hold` later to the original value.
    demand.set(2.0);
    eventually("route back to primary", || async {
        env.burst_weight().await == 0
    })
    .await;
    eventually("HPA minReplicas restored", || async {
        min_replicas(&env).await == (2, false)
    })
    .await;
    eventually("status and Events show the release", || async {
        env.status("worker")
            .await
            .and_then(|s| s.prewarm)
            .is_some_and(|p| !p.prepared)
            && env
                .event_reasons()
                .await
                .contains(&"PrewarmReleased".to_owned())
    })
    .await;
    assert!(op.metrics.encode().contains(&format!(
        r#"burstd_prewarm_prepared{{policy="{policy}"}} 0"#
    )));
    // Every write burstd made is in the list the chart's RBAC is tested against, and the
    // HPA patches are among them.
    let calls: Vec<(String, String, String)> = env.operator_writes().iter().map(call_of).collect();
    for (g, r, v) in &calls {
        assert!(
            burst_operator::api_calls::is_listed(g, r, v),
            "{g}/{r} {v} is not in api_calls.rs"
        );
    }
    assert!(
        calls.contains(&(
            "autoscaling".into(),
            "horizontalpodautoscalers".into(),
            "patch".into()
        )),
        "{calls:?}"
    );
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_hpa_the_deployment_is_scaled_and_a_left_prewarm_is_recovered_at_start() {
    let env = Env::new("op-prewarm-deploy").await;
    create_worker(&env, 1, None).await;
    let demand = Demand::start(25.0).await;
    let op = Instance::start(&env, "a", false).await;
    env.create(&prewarm_policy(&env, &demand)).await;
    eventually("Deployment replicas raised on burst", || async {
        replicas(&env).await == (5, true)
    })
    .await;
    // burstd stops while pre-warmed (a crash or a rollout): the annotation stays...
    op.stop().await;
    assert_eq!(replicas(&env).await, (5, true));
    // ...and the next run restores it at start, before it decides anything. (The route is
    // put back to the primary and the demand is calm, so nothing prepares it again, and
    // a fresh loop owes no release: only `recover` can restore it.)
    demand.set(2.0);
    let http = kube_env::vs_object(&env.ns)["spec"]["http"].clone();
    Api::<DynamicObject>::namespaced_with(env.admin.clone(), &env.ns, &kube_env::vs_resource())
        .patch(
            kube_env::VS,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"http": http}})),
        )
        .await
        .unwrap();
    assert_eq!(env.burst_weight().await, 0);
    let op = Instance::start(&env, "b", false).await;
    eventually("Deployment replicas restored by recover", || async {
        replicas(&env).await == (1, false)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(replicas(&env).await, (1, false), "not prepared again");
    op.stop().await;
}
