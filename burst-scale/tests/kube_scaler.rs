//! `KubeScaler` through the real `kube::Client` against a real kube-apiserver + etcd
//! (`burst_testkit::kube`, one per test binary, a namespace per test), so every answer (the
//! 409 of a stale resourceVersion, 404, 403 from RBAC, the HPA's validation) is the real
//! server's. There is no controller-manager: objects are stored, not acted on, which is all
//! the scaler depends on.
//!
//! The scaler goes through `ApiProxy`, which records every write that reached the server.
//! Concurrent writers are real writers acting on the server just before our patch
//! (`Fault::before`), so the conflicts are the server's own.
//!
//! Needs the control-plane binaries (`scripts/control-plane.sh build`); without them every
//! test fails with that command.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use burst_core::CapacityScaler;
use burst_core::scaler::PrewarmReason;
use burst_scale::{ANNOTATION, ApiCallError, Error, KubeScaler, Restored, ScalerOptions};
use burst_testkit::kube::{ApiProxy, ControlPlane, Fault};
use http::Method;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

const DEPLOY: &str = "worker";

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().expect("the real control plane")
}

/// One test's namespace, an admin client straight to the server, and the proxy the
/// scaler goes through.
struct Burst {
    ns: String,
    admin: kube::Client,
    proxy: ApiProxy,
}

impl Burst {
    /// A namespace with Deployment [`DEPLOY`] at `replicas`, and an HPA of the same name
    /// with `min`/`max` when given.
    async fn new(prefix: &str, replicas: i32, hpa: Option<(i32, i32)>) -> Burst {
        let cp = cp();
        let ns = cp.create_namespace(prefix).await.unwrap();
        let b = Burst {
            admin: cp.admin_client().await.unwrap(),
            proxy: ApiProxy::start(cp).await.unwrap(),
            ns,
        };
        b.deployments()
            .create(&PostParams::default(), &deployment(DEPLOY, replicas))
            .await
            .unwrap();
        if let Some((min, max)) = hpa {
            b.hpas()
                .create(&PostParams::default(), &hpa_for(DEPLOY, DEPLOY, min, max))
                .await
                .unwrap();
        }
        b
    }

    fn hpas(&self) -> Api<HorizontalPodAutoscaler> {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    async fn scaler_as(&self, token: &str, options: ScalerOptions) -> KubeScaler {
        KubeScaler::new(
            self.proxy.client(token).await.unwrap(),
            &self.ns,
            DEPLOY,
            options,
        )
        .unwrap()
    }

    async fn scaler(&self, replicas: i32) -> KubeScaler {
        self.scaler_as(cp().admin_token(), fast(replicas)).await
    }

    /// HPA `(minReplicas, annotation)` as stored.
    async fn hpa_state(&self) -> (Option<i32>, Option<String>) {
        let h = self.hpas().get(DEPLOY).await.unwrap();
        (
            h.spec.min_replicas,
            h.metadata
                .annotations
                .and_then(|mut a| a.remove(ANNOTATION)),
        )
    }

    /// Deployment `(replicas, annotation)` as stored.
    async fn deployment_state(&self) -> (Option<i32>, Option<String>) {
        let d = self.deployments().get(DEPLOY).await.unwrap();
        (
            d.spec.replicas,
            d.metadata
                .annotations
                .and_then(|mut a| a.remove(ANNOTATION)),
        )
    }

    fn write_statuses(&self) -> Vec<(String, u16)> {
        self.proxy
            .writes()
            .iter()
            .map(|w| (w.method.to_string(), w.status))
            .collect()
    }
}

fn fast(replicas: i32) -> ScalerOptions {
    ScalerOptions {
        replicas,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        request_timeout: Duration::from_secs(5),
        ..ScalerOptions::default()
    }
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "worker", "image": "registry.example/worker:1"}]}
            }
        }
    }))
    .unwrap()
}

fn hpa_for(name: &str, target: &str, min: i32, max: i32) -> HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": min,
            "maxReplicas": max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
        }
    }))
    .unwrap()
}

fn record(field: &str, original: i32, set: i32) -> String {
    format!(r#"{{"field":"{field}","original":{original},"set":{set}}}"#)
}

/// A `Fault::before` hook: another writer merge-patching the HPA just before our PATCH,
/// with a new value of label `writer` each time (a patch that changes nothing would not
/// change the resourceVersion, and so would not conflict).
fn other_writer_on_hpa(ns: &str) -> Fault {
    let ns = ns.to_owned();
    static WRITES: AtomicU32 = AtomicU32::new(0);
    Fault::before(move |client| {
        let ns = ns.clone();
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        async move {
            let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client, &ns);
            let patch = json!({"metadata": {"labels": {"writer": format!("w{n}")}}});
            api.patch(DEPLOY, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    })
    .on(Method::PATCH)
    .path("horizontalpodautoscalers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_raises_hpa_min_replicas_and_release_restores_it() {
    let b = Burst::new("hpa", 2, Some((2, 10))).await;
    let s = b.scaler(5).await;
    assert!(!s.is_prepared().await.unwrap());

    s.prepare(&PrewarmReason::OnBurst).await.unwrap();
    assert_eq!(
        b.hpa_state().await,
        (Some(5), Some(record("minReplicas", 2, 5)))
    );
    // The Deployment is the HPA's to scale: untouched.
    assert_eq!(b.deployment_state().await, (Some(2), None));
    assert!(s.is_prepared().await.unwrap());

    // Idempotent: a second prepare writes nothing.
    let writes = b.proxy.writes().len();
    s.prepare(&PrewarmReason::OnBurst).await.unwrap();
    assert_eq!(b.proxy.writes().len(), writes);

    s.release().await.unwrap();
    assert_eq!(b.hpa_state().await, (Some(2), None));
    assert_eq!(b.deployment_state().await, (Some(2), None));
    // Release of nothing writes nothing.
    let writes = b.proxy.writes().len();
    s.release().await.unwrap();
    assert_eq!(b.proxy.writes().len(), writes);
    assert_eq!(
        b.write_statuses(),
        vec![("PATCH".to_owned(), 200), ("PATCH".to_owned(), 200)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_is_capped_at_max_replicas_and_never_lowers() {
    let b = Burst::new("cap", 1, Some((1, 3))).await;
    b.scaler(8)
        .await
        .prepare(&PrewarmReason::OnBurst)
        .await
        .unwrap();
    assert_eq!(
        b.hpa_state().await,
        (Some(3), Some(record("minReplicas", 1, 3)))
    );

    let b = Burst::new("nolower", 1, Some((6, 10))).await;
    let s = b.scaler(4).await;
    s.prepare(&PrewarmReason::OnBurst).await.unwrap();
    assert_eq!(b.hpa_state().await.0, Some(6));
    s.release().await.unwrap();
    assert_eq!(b.hpa_state().await, (Some(6), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_is_recovered() {
    let b = Burst::new("restart", 2, Some((2, 10))).await;
    {
        let s = b.scaler(6).await;
        s.prepare(&PrewarmReason::OnBurst).await.unwrap();
        // The process dies here: no release.
    }
    assert_eq!(
        b.hpa_state().await,
        (Some(6), Some(record("minReplicas", 2, 6)))
    );

    let again = b.scaler(6).await;
    assert!(again.is_prepared().await.unwrap());
    let restored = again.recover().await.unwrap();
    assert_eq!(
        restored,
        vec![Restored {
            object: format!("HorizontalPodAutoscaler {}/{DEPLOY}", b.ns),
            found: 6,
            now: 2,
        }]
    );
    assert_eq!(b.hpa_state().await, (Some(2), None));
    // Nothing left: recover again finds nothing.
    assert_eq!(again.recover().await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_hpa_the_deployment_replicas_are_changed() {
    let b = Burst::new("nohpa", 1, None).await;
    let s = b.scaler(4).await;
    s.prepare(&PrewarmReason::OnBurst).await.unwrap();
    assert_eq!(
        b.deployment_state().await,
        (Some(4), Some(record("replicas", 1, 4)))
    );

    // Restart in the middle on this path too.
    drop(s);
    let restored = b.scaler(4).await.recover().await.unwrap();
    assert_eq!(
        restored,
        vec![Restored {
            object: format!("Deployment {}/{DEPLOY}", b.ns),
            found: 4,
            now: 1,
        }]
    );
    assert_eq!(b.deployment_state().await, (Some(1), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_changed_by_someone_else_is_kept_on_release() {
    let b = Burst::new("theirs", 3, None).await;
    let s = b.scaler(5).await;
    s.prepare(&PrewarmReason::OnBurst).await.unwrap();
    // An operator scales by hand while pre-warmed.
    b.deployments()
        .patch(
            DEPLOY,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    s.release().await.unwrap();
    assert_eq!(b.deployment_state().await, (Some(9), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_is_read_again_and_retried() {
    let b = Burst::new("conflict", 2, Some((2, 10))).await;
    // Another writer changes the HPA (a label) between our read and our patch: the server
    // refuses our stale resourceVersion with 409; the scaler reads again and succeeds.
    b.proxy.inject(other_writer_on_hpa(&b.ns));
    let s = b.scaler(5).await;
    s.prepare(&PrewarmReason::OnBurst).await.unwrap();
    assert_eq!(
        b.write_statuses(),
        vec![("PATCH".to_owned(), 409), ("PATCH".to_owned(), 200)]
    );
    assert_eq!(
        b.hpa_state().await,
        (Some(5), Some(record("minReplicas", 2, 5)))
    );
    let stored = b.hpas().get(DEPLOY).await.unwrap();
    assert_eq!(
        stored
            .metadata
            .labels
            .unwrap()
            .get("writer")
            .map(String::as_str),
        Some("w0")
    );

    // A writer that never stops: bounded attempts, then a typed Conflict error.
    b.proxy.clear_writes();
    b.proxy.inject(other_writer_on_hpa(&b.ns).times(3));
    let s = b
        .scaler_as(
            cp().admin_token(),
            ScalerOptions {
                max_attempts: 3,
                ..fast(5)
            },
        )
        .await;
    let e = s.release().await.unwrap_err();
    assert_eq!(e.kind(), "conflict");
    assert!(
        matches!(
            Error::of(&e),
            Some(Error::Kube(ApiCallError::Conflict { attempts: 3, .. }))
        ),
        "{e}"
    );
    assert_eq!(b.write_statuses().iter().filter(|w| w.1 == 409).count(), 3);
    // Nothing half-done: still prepared, original still recorded.
    assert_eq!(
        b.hpa_state().await,
        (Some(5), Some(record("minReplicas", 2, 5)))
    );
    s.release().await.unwrap();
    assert_eq!(b.hpa_state().await, (Some(2), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_objects_and_a_foreign_hpa_are_errors_that_say_what_to_do() {
    let cp = cp();
    let ns = cp.create_namespace("missing").await.unwrap();
    let s = KubeScaler::new(cp.admin_client().await.unwrap(), &ns, DEPLOY, fast(3)).unwrap();
    let e = s.prepare(&PrewarmReason::OnBurst).await.unwrap_err();
    assert_eq!(e.kind(), "not_found");
    assert!(
        e.to_string().contains("create the burst Deployment first"),
        "{e}"
    );

    // An HPA of that name that scales another Deployment.
    let b = Burst::new("foreign", 1, None).await;
    b.hpas()
        .create(&PostParams::default(), &hpa_for(DEPLOY, "other", 1, 4))
        .await
        .unwrap();
    let e = b
        .scaler(3)
        .await
        .prepare(&PrewarmReason::OnBurst)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "wrong_target");
    assert!(e.to_string().contains("scaleTargetRef"), "{e}");
    assert!(b.proxy.writes().is_empty());

    assert!(matches!(
        KubeScaler::new(cp.admin_client().await.unwrap(), &ns, DEPLOY, fast(0)),
        Err(Error::InvalidOption { .. })
    ));
}

/// The documented Role (`rbac.yaml`) is enough for both paths, and without it the server's
/// 403 comes back as a typed `forbidden` error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_role_is_enough_and_needed() {
    let b = Burst::new("rbac", 1, Some((1, 5))).await;
    let mut role: Role = serde_saphyr::from_str(burst_scale::ROLE_YAML).unwrap();
    role.metadata.namespace = Some(b.ns.clone());
    Api::<Role>::namespaced(b.admin.clone(), &b.ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "burst-prewarm"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "burst-prewarm"},
        "subjects": [{"kind": "ServiceAccount", "name": "burstd", "namespace": b.ns}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(b.admin.clone(), &b.ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let burstd = cp().service_account_token(&b.ns, "burstd").await.unwrap();
    let nobody = cp().service_account_token(&b.ns, "nobody").await.unwrap();

    let s = b.scaler_as(&burstd, fast(4)).await;
    s.prepare(&PrewarmReason::OnBurst).await.unwrap();
    assert_eq!(b.hpa_state().await.0, Some(4));
    s.release().await.unwrap();
    assert_eq!(b.hpa_state().await, (Some(1), None));
    // The Deployment path with the same Role.
    b.hpas().delete(DEPLOY, &Default::default()).await.unwrap();
    s.prepare(&PrewarmReason::OnBurst).await.unwrap();
    assert_eq!(b.deployment_state().await.0, Some(4));
    s.recover().await.unwrap();
    assert_eq!(b.deployment_state().await, (Some(1), None));

    let e = b
        .scaler_as(&nobody, fast(4))
        .await
        .prepare(&PrewarmReason::OnBurst)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "forbidden");
}
