//! The world of the operator tests on a real kube-apiserver: the shared control plane with
//! the Istio and BurstPolicy CRDs installed, a namespace per test holding a VirtualService,
//! a fault proxy in front of the server for the operator, a demand endpoint, and operator
//! instances started in-process.
//!
//! The operator talks to the server through the proxy, which records every write it makes
//! and injects the failures a real server cannot be made to produce on demand; the test
//! itself reads and writes the server directly as the admin.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::routing::get;
use burst_operator::api::{BurstPolicy, BurstPolicyStatus};
use burst_operator::events::EventRecorder;
use burst_operator::leader::{LeaderElector, LeaderHandle, LeaseSettings};
use burst_operator::metrics::Metrics;
use burst_operator::operator::{OperatorSettings, run_operator};
use burst_operator::runner::RunContext;
use burst_operator::server::Readiness;
use burst_testkit::kube::{ApiProxy, ControlPlane, RecordedWrite};
use http::Method;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const VS: &str = "worker-virtual-service";
/// The CRDs every test installs (server-side apply: idempotent).
pub const CRDS: &[&str] = &[
    "schemas/istio/crd-all.gen.yaml",
    "deploy/crd/burstpolicies.bursting.dev.yaml",
];

/// A `/metrics` endpoint serving `demand_rps <value>` (a gauge the test sets).
pub struct Demand {
    value: Arc<AtomicU64>,
    pub url: String,
    _task: JoinHandle<()>,
}

impl Demand {
    pub async fn start(rps: f64) -> Demand {
        let value = Arc::new(AtomicU64::new(rps.to_bits()));
        let v = value.clone();
        let app = axum::Router::new().route(
            "/metrics",
            get(move || {
                let v = f64::from_bits(v.load(Ordering::SeqCst));
                async move { format!("# TYPE demand_rps gauge\ndemand_rps {v}\n") }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/metrics", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Demand {
            value,
            url,
            _task: task,
        }
    }

    pub fn set(&self, rps: f64) {
        self.value.store(rps.to_bits(), Ordering::SeqCst);
    }
}

pub use burst_testkit::kube::virtual_services as vs_resource;

/// The test's VirtualService: 100/0 between subsets `primary` and `burst`, with retries
/// (a field burstd must leave alone).
pub fn vs_object(ns: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": VS, "namespace": ns},
        "spec": {"hosts": ["worker-service"], "gateways": ["mesh"], "http": [{
            "retries": {"attempts": 3},
            "route": [
                {"destination": {"host": "worker-service", "subset": "primary"}, "weight": 100},
                {"destination": {"host": "worker-service", "subset": "burst"}, "weight": 0}
            ]}]}
    })
}

pub async fn create_vs(client: kube::Client, ns: &str) {
    let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &vs_resource());
    let obj: DynamicObject = serde_json::from_value(vs_object(ns)).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

pub async fn read_vs(client: kube::Client, ns: &str) -> Value {
    let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &vs_resource());
    serde_json::to_value(api.get(VS).await.unwrap()).unwrap()
}

pub fn weights(vs: &Value) -> (i64, i64) {
    let route = &vs["spec"]["http"][0]["route"];
    (
        route[0]["weight"].as_i64().unwrap_or(0),
        route[1]["weight"].as_i64().unwrap_or(0),
    )
}

/// One test's world: the shared control plane, a namespace of its own holding the
/// VirtualService, an admin client for the test, a proxy for the operator.
pub struct Env {
    pub cp: &'static ControlPlane,
    pub ns: String,
    pub admin: kube::Client,
    pub proxy: ApiProxy,
}

impl Env {
    pub async fn new(prefix: &str) -> Env {
        let cp = ControlPlane::shared().unwrap();
        cp.install_crd_files(CRDS).await.unwrap();
        let ns = cp.create_namespace(prefix).await.unwrap();
        let admin = cp.admin_client().await.unwrap();
        create_vs(admin.clone(), &ns).await;
        let proxy = ApiProxy::start(cp).await.unwrap();
        Env {
            cp,
            ns,
            admin,
            proxy,
        }
    }

    /// [`Env::new`], a demand of 20 rps, and operator `a` running without a Lease.
    pub async fn with_operator(prefix: &str) -> (Env, Demand, Instance) {
        let env = Env::new(prefix).await;
        let demand = Demand::start(20.0).await;
        let op = Instance::start(&env, "a", false).await;
        (env, demand, op)
    }

    pub fn policies(&self) -> Api<BurstPolicy> {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    pub fn policy(&self, name: &str, demand: &Demand, extra: Value) -> BurstPolicy {
        let mut spec = json!({
            "source": {"scrape": {"targets": [demand.url], "metric": "demand_rps", "mode": "gauge"}},
            "policy": {"tick": "100ms", "window": "1s"},
            "target": {"kind": "VirtualService", "name": VS},
        });
        json_patch::merge(&mut spec, &extra);
        serde_json::from_value(json!({
            "apiVersion": "bursting.dev/v1alpha1", "kind": "BurstPolicy",
            "metadata": {"name": name, "namespace": self.ns}, "spec": spec
        }))
        .unwrap()
    }

    /// Raises the policy's thresholds above the demand (high 40, low 30): a spec change.
    pub async fn raise_thresholds(&self, name: &str) -> BurstPolicy {
        self.policies()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"policy": {"high": 40, "low": 30}}})),
            )
            .await
            .unwrap()
    }

    pub async fn create(&self, p: &BurstPolicy) {
        self.policies()
            .create(&PostParams::default(), p)
            .await
            .unwrap();
    }

    pub async fn vs(&self) -> Value {
        read_vs(self.admin.clone(), &self.ns).await
    }

    pub async fn burst_weight(&self) -> i64 {
        weights(&self.vs().await).1
    }

    pub async fn status(&self, name: &str) -> Option<BurstPolicyStatus> {
        self.policies().get(name).await.ok().and_then(|p| p.status)
    }

    pub async fn events(&self) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.admin.clone(), &self.ns);
        api.list(&Default::default()).await.unwrap().items
    }

    pub async fn event_reasons(&self) -> Vec<String> {
        self.events()
            .await
            .into_iter()
            .filter_map(|e| e.reason)
            .collect()
    }

    pub async fn secret(&self, name: &str, key: &str, value: &str) {
        use base64::Engine;
        let s: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": self.ns},
            "data": {key: base64::engine::general_purpose::STANDARD.encode(value)}}))
        .unwrap();
        Api::<Secret>::namespaced(self.admin.clone(), &self.ns)
            .create(&PostParams::default(), &s)
            .await
            .unwrap();
    }

    /// Every write the operator made that reached the server (the test's own writes do
    /// not go through the proxy).
    pub fn operator_writes(&self) -> Vec<RecordedWrite> {
        self.proxy.writes()
    }

    /// Field managers of route and status writes since the last `clear_writes`.
    pub fn writers(&self) -> Vec<String> {
        self.operator_writes()
            .into_iter()
            .filter(|w| w.path.contains("virtualservices") || w.path.ends_with("/status"))
            .filter_map(|w| w.field_manager)
            .collect()
    }

    pub async fn lease_holder(&self) -> Option<String> {
        let api: Api<Lease> = Api::namespaced(self.admin.clone(), &self.ns);
        api.get_opt("burstd")
            .await
            .unwrap()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .filter(|h| !h.is_empty())
    }
}

/// Polls `check` every 50 ms for up to 30 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

pub struct Instance {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
}

impl Instance {
    /// An operator watching the test's namespace through the proxy; with `lease`, elected
    /// on a Lease in that namespace, else always leader.
    pub async fn start(env: &Env, identity: &str, lease: bool) -> Instance {
        Instance::start_with_grace(env, identity, lease, Duration::from_secs(5)).await
    }

    pub async fn start_with_grace(
        env: &Env,
        identity: &str,
        lease: bool,
        grace: Duration,
    ) -> Instance {
        Instance::start_configured(env, identity, lease, grace, |_| {}).await
    }

    /// [`Instance::start_with_grace`] with `configure` applied to the loops' context.
    pub async fn start_configured(
        env: &Env,
        identity: &str,
        lease: bool,
        grace: Duration,
        configure: impl FnOnce(&mut RunContext),
    ) -> Instance {
        let client = env.proxy.client(env.cp.admin_token()).await.unwrap();
        let metrics = Arc::new(Metrics::new());
        let readiness = Arc::new(Readiness::new());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (leader, elector) = if lease {
            let settings = LeaseSettings {
                lease_duration: Duration::from_secs(2),
                renew_deadline: Duration::from_millis(1500),
                retry_period: Duration::from_millis(200),
                ..LeaseSettings::new(env.ns.clone(), identity)
            };
            let (e, h) = LeaderElector::new(client.clone(), settings).unwrap();
            (h, Some(e))
        } else {
            readiness.set_leader_known();
            (LeaderHandle::always(), None)
        };
        let mut ctx = RunContext::new(client.clone(), metrics.clone(), leader);
        // As burstd: routers read their VirtualService from one shared watch.
        ctx.route_caches = Some(burst_istio::RouteCaches::new(client.clone()));
        ctx.events = Some(EventRecorder::new(client, identity));
        ctx.field_manager = format!("burstd-{identity}");
        ctx.status_interval = Duration::from_millis(200);
        ctx.rebuild_after = Duration::from_millis(500);
        ctx.controller.backoff_initial = Duration::from_millis(100);
        ctx.controller.backoff_max = Duration::from_millis(400);
        configure(&mut ctx);
        let ctx = Arc::new(ctx);
        // Other tests' policies live in other namespaces of the same server.
        let settings = OperatorSettings {
            namespace: Some(env.ns.clone()),
            shutdown_grace: grace,
        };
        let r = readiness.clone();
        let task = tokio::spawn(async move {
            let (el_tx, el_rx) = oneshot::channel::<()>();
            let elector = elector.map(|e| {
                tokio::spawn(e.run(async {
                    let _ = el_rx.await;
                }))
            });
            run_operator(ctx, settings, r, async {
                let _ = stop_rx.await;
            })
            .await;
            let _ = el_tx.send(());
            if let Some(e) = elector {
                e.await.unwrap();
            }
        });
        Instance {
            stop: Some(stop_tx),
            task,
            metrics,
            readiness,
        }
    }

    /// Status writes and Events the real server refused (counted by burstd's metrics).
    pub fn refused_writes(&self) -> Vec<String> {
        self.metrics
            .encode()
            .lines()
            .filter(|l| {
                l.starts_with("burstd_status_write_errors_total{")
                    || l.starts_with("burstd_event_errors_total{")
            })
            .map(str::to_owned)
            .collect()
    }

    /// Fails if the server refused any status write or Event, then stops.
    pub async fn stop_clean(self) {
        assert!(
            self.refused_writes().is_empty(),
            "{:?}",
            self.refused_writes()
        );
        self.stop().await;
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("operator stops in time")
            .unwrap();
    }
}

/// `(group, resource, verb)` of a recorded write, from its path
/// (`/api/v1/namespaces/ns/events`, `/apis/group/version/namespaces/ns/plural/name/status`).
pub fn call_of(w: &RecordedWrite) -> (String, String, String) {
    let parts: Vec<&str> = w.path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.first() {
        Some(&"api") => ("", &parts[2..]),
        Some(&"apis") => (parts[1], &parts[3..]),
        _ => panic!("not an API path: {}", w.path),
    };
    let rest = if rest.first() == Some(&"namespaces") && rest.len() > 2 {
        &rest[2..]
    } else {
        rest
    };
    let resource = match rest {
        [plural, _, sub] => format!("{plural}/{sub}"),
        [plural, ..] => (*plural).to_owned(),
        [] => panic!("no resource in {}", w.path),
    };
    let verb = match w.method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    };
    (group.to_owned(), resource, verb.to_owned())
}

pub fn condition(s: &BurstPolicyStatus, t: &str) -> Option<(String, String)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone()))
}
