//! The operator through the real `kube::Client` against the in-process fake API server:
//! policies start, change and stop loops; routes and statuses are written; only the
//! leader writes; API errors degrade a policy without crashing anything.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::routing::get;
use burst_fake_kube::{FakeKube, Fault, RecordedWrite, router::parse_path};
use burst_operator::crd::{BurstPolicy, BurstPolicyStatus, StatusMode};
use burst_operator::leader::{LeaderElector, LeaderHandle, LeaseSettings};
use burst_operator::metrics::Metrics;
use burst_operator::operator::{OperatorSettings, run_operator};
use burst_operator::runner::RunContext;
use burst_operator::server::Readiness;
use burst_operator::{api_calls, events::EventRecorder};
use http::Method;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const NS: &str = "default";
const VS: &str = "worker-virtual-service";

/// A `/metrics` endpoint serving `demand_rps <value>` (a gauge the test sets).
struct Demand {
    value: Arc<AtomicU64>,
    url: String,
    _task: JoinHandle<()>,
}

impl Demand {
    async fn start(rps: f64) -> Demand {
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

    fn set(&self, rps: f64) {
        self.value.store(rps.to_bits(), Ordering::SeqCst);
    }
}

async fn fake() -> FakeKube {
    let fake = FakeKube::start().await.unwrap();
    let crd = serde_json::to_value(burst_operator::crd::crd()).unwrap();
    assert!(fake.install_crd(&crd).unwrap());
    fake.insert(
        "virtualservices",
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": VS, "namespace": NS},
            "spec": {"hosts": ["worker-service"], "gateways": ["mesh"], "http": [{
                "retries": {"attempts": 3},
                "route": [
                    {"destination": {"host": "worker-service", "subset": "primary"}, "weight": 100},
                    {"destination": {"host": "worker-service", "subset": "burst"}, "weight": 0}
                ]}]}
        }),
    )
    .unwrap();
    fake
}

fn policy(name: &str, demand: &Demand, extra: Value) -> BurstPolicy {
    let mut spec = json!({
        "source": {"scrape": {"targets": [demand.url], "metric": "demand_rps", "mode": "gauge"}},
        "policy": {"tick": "100ms", "window": "1s"},
        "target": {"kind": "VirtualService", "name": VS},
    });
    json_patch::merge(&mut spec, &extra);
    serde_json::from_value(json!({
        "apiVersion": "bursting.dev/v1alpha1", "kind": "BurstPolicy",
        "metadata": {"name": name, "namespace": NS}, "spec": spec
    }))
    .unwrap()
}

fn burst_weight(fake: &FakeKube) -> i64 {
    let vs = fake
        .object("networking.istio.io", "virtualservices", Some(NS), VS)
        .unwrap();
    vs["spec"]["http"][0]["route"][1]["weight"]
        .as_i64()
        .unwrap()
}

async fn status(fake: &FakeKube, name: &str) -> Option<BurstPolicyStatus> {
    let api: Api<BurstPolicy> = Api::namespaced(fake.client().unwrap(), NS);
    api.get(name).await.ok().and_then(|p| p.status)
}

/// Polls `check` every 50 ms for up to 15 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

struct Instance {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

impl Instance {
    /// An operator; with `lease`, elected on a Lease, else always leader.
    fn start(fake: &FakeKube, identity: &str, lease: bool) -> Instance {
        Instance::start_with_grace(fake, identity, lease, Duration::from_secs(5))
    }

    fn start_with_grace(fake: &FakeKube, identity: &str, lease: bool, grace: Duration) -> Instance {
        let client = fake.client().unwrap();
        let metrics = Arc::new(Metrics::new());
        let readiness = Arc::new(Readiness::new());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (leader, elector) = if lease {
            let settings = LeaseSettings {
                lease_duration: Duration::from_secs(2),
                renew_deadline: Duration::from_millis(1500),
                retry_period: Duration::from_millis(200),
                ..LeaseSettings::new("burst-system", identity)
            };
            let (e, h) = LeaderElector::new(client.clone(), settings).unwrap();
            (h, Some(e))
        } else {
            readiness.set_leader_known();
            (LeaderHandle::always(), None)
        };
        let mut ctx = RunContext::new(client.clone(), metrics.clone(), leader);
        ctx.events = Some(EventRecorder::new(client, identity));
        ctx.wiring.field_manager = format!("burstd-{identity}");
        ctx.status_interval = Duration::from_millis(200);
        ctx.rebuild_after = Duration::from_millis(500);
        ctx.controller.backoff_initial = Duration::from_millis(100);
        ctx.controller.backoff_max = Duration::from_millis(400);
        let ctx = Arc::new(ctx);
        let settings = OperatorSettings {
            namespace: None,
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

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("operator stops in time")
            .unwrap();
    }
}

/// `(group, resource, verb)` of a recorded write.
fn call_of(w: &RecordedWrite) -> (String, String, String) {
    let r = parse_path(&w.path).unwrap();
    let resource = match &r.subresource {
        Some(s) => format!("{}/{s}", r.plural),
        None => r.plural.clone(),
    };
    let verb = match w.method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    };
    (r.group, resource, verb.to_owned())
}

fn operator_writes(fake: &FakeKube) -> Vec<RecordedWrite> {
    // The test itself only writes BurstPolicies (main resource); burstd never does.
    fake.writes()
        .into_iter()
        .filter(|w| {
            let (_, resource, _) = call_of(w);
            resource != "burstpolicies"
        })
        .collect()
}

fn condition(s: &BurstPolicyStatus, t: &str) -> Option<(String, String)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

async fn event_reasons(fake: &FakeKube) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(fake.client().unwrap(), NS);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_policy_runs_patches_the_route_and_reports_status() {
    let fake = fake().await;
    let demand = Demand::start(20.0).await;
    let op = Instance::start(&fake, "a", false);
    eventually("readyz", || async { op.readiness.check().is_ok() }).await;
    let api: Api<BurstPolicy> = Api::namespaced(fake.client().unwrap(), NS);
    api.create(
        &PostParams::default(),
        &policy("worker", &demand, json!({})),
    )
    .await
    .unwrap();

    eventually("route moved to burst", || async {
        burst_weight(&fake) == 100
    })
    .await;
    eventually("status shows burst", || async {
        status(&fake, "worker").await.is_some_and(|s| {
            s.mode == Some(StatusMode::Burst)
                && s.burst_weight == Some(100)
                && s.observed_rps == Some(20.0)
                && condition(&s, "Ready") == Some(("True".into(), "Controlling".into()))
                && condition(&s, "Degraded").is_some_and(|c| c.0 == "False")
                && s.observed_generation == Some(1)
                && s.last_transition_reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("above_high"))
        })
    })
    .await;
    assert!(
        event_reasons(&fake)
            .await
            .contains(&"SplitChanged".to_owned())
    );
    // Other fields of the VirtualService are untouched.
    let vs = fake
        .object("networking.istio.io", "virtualservices", Some(NS), VS)
        .unwrap();
    assert_eq!(vs["spec"]["http"][0]["retries"]["attempts"], 3);
    let text = op.metrics.encode();
    assert!(text.contains(r#"burstd_burst_weight{policy="default/worker"} 100"#));
    assert!(
        text.contains("burstd_leader 1"),
        "election off: always the leader"
    );
    assert!(text.contains("burstd_policies 1"));

    // Demand drops: back to the primary.
    demand.set(2.0);
    eventually("route back to primary", || async {
        burst_weight(&fake) == 0
    })
    .await;

    // Every call burstd made is in the list the chart's RBAC is built from.
    let writes = operator_writes(&fake);
    assert!(!writes.is_empty());
    for w in &writes {
        let (g, r, v) = call_of(w);
        assert!(
            api_calls::is_listed(&g, &r, &v),
            "burstd made an unlisted call: {v} {g}/{r} ({})",
            w.path
        );
    }
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_changes_restart_the_loop_and_deletion_stops_it() {
    let fake = fake().await;
    let demand = Demand::start(20.0).await;
    let op = Instance::start(&fake, "a", false);
    let api: Api<BurstPolicy> = Api::namespaced(fake.client().unwrap(), NS);
    api.create(
        &PostParams::default(),
        &policy("worker", &demand, json!({})),
    )
    .await
    .unwrap();
    eventually("route moved to burst", || async {
        burst_weight(&fake) == 100
    })
    .await;

    // Raise the thresholds above the demand: the new loop brings traffic back.
    api.patch(
        "worker",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"policy": {"high": 40, "low": 30}}})),
    )
    .await
    .unwrap();
    eventually("new thresholds applied", || async {
        burst_weight(&fake) == 0
    })
    .await;
    eventually("status at generation 2", || async {
        status(&fake, "worker").await.is_some_and(|s| {
            s.observed_generation == Some(2) && s.mode == Some(StatusMode::Primary)
        })
    })
    .await;

    // Pause: the loop stops, the status says so, the route stays as it is.
    api.patch(
        "worker",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": true, "policy": {"high": 15, "low": 10}}})),
    )
    .await
    .unwrap();
    eventually("paused status", || async {
        status(&fake, "worker")
            .await
            .is_some_and(|s| s.mode == Some(StatusMode::Paused))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        burst_weight(&fake),
        0,
        "a paused policy does not move traffic"
    );

    api.patch(
        "worker",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": false}})),
    )
    .await
    .unwrap();
    eventually("unpaused loop bursts", || async {
        burst_weight(&fake) == 100
    })
    .await;

    api.delete("worker", &DeleteParams::default())
        .await
        .unwrap();
    eventually("loop stopped", || async {
        op.metrics.encode().contains("burstd_policies 0")
    })
    .await;
    // Let the stopped loop flush what it had; from then on nothing may be written.
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.clear_writes();
    demand.set(0.0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(burst_weight(&fake), 100);
    assert!(
        operator_writes(&fake).is_empty(),
        "writes after deletion: {:?}",
        operator_writes(&fake)
    );
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_degrade_the_policy_without_a_crash() {
    let fake = fake().await;
    let demand = Demand::start(20.0).await;
    fake.inject(
        Fault::status(500)
            .on(Method::PATCH)
            .path("virtualservices")
            .times(1_000_000),
    );
    let op = Instance::start(&fake, "a", false);
    let api: Api<BurstPolicy> = Api::namespaced(fake.client().unwrap(), NS);
    api.create(
        &PostParams::default(),
        &policy("worker", &demand, json!({})),
    )
    .await
    .unwrap();
    eventually("degraded by the failing apply", || async {
        status(&fake, "worker").await.is_some_and(|s| {
            condition(&s, "Degraded") == Some(("True".into(), "ApplyFailed".into()))
                && s.mode == Some(StatusMode::Primary)
                && s.desired_split.is_some_and(|d| d.burst == 100)
        })
    })
    .await;
    assert!(
        event_reasons(&fake)
            .await
            .contains(&"ApplyFailed".to_owned())
    );
    assert!(op.metrics.encode().contains("burstd_router_errors_total"));

    // The API recovers: the split is applied and the condition clears.
    fake.clear_faults();
    eventually("applied after recovery", || async {
        burst_weight(&fake) == 100
    })
    .await;
    eventually("no longer degraded", || async {
        status(&fake, "worker")
            .await
            .is_some_and(|s| condition(&s, "Degraded").is_some_and(|c| c.0 == "False"))
    })
    .await;

    // A policy whose target does not exist, and one with an invalid spec: each is
    // Degraded with its reason; the others keep running.
    let mut missing = policy("missing", &demand, json!({}));
    missing.spec.target.name = "no-such-vs".into();
    api.create(&PostParams::default(), &missing).await.unwrap();
    let invalid = policy(
        "invalid",
        &demand,
        json!({"policy": {"high": 5, "low": 10}}),
    );
    api.create(&PostParams::default(), &invalid).await.unwrap();
    eventually("missing target reported", || async {
        status(&fake, "missing").await.is_some_and(|s| {
            condition(&s, "Ready") == Some(("False".into(), "RouteUnreadable".into()))
                && s.mode == Some(StatusMode::Unknown)
        })
    })
    .await;
    eventually("invalid spec reported", || async {
        status(&fake, "invalid").await.is_some_and(|s| {
            condition(&s, "Degraded") == Some(("True".into(), "InvalidSpec".into()))
        })
    })
    .await;
    // The watch failing for a while does not stop the loops either.
    fake.inject(
        Fault::status(500)
            .path("burstpolicies")
            .on(Method::GET)
            .times(5),
    );
    demand.set(1.0);
    eventually("still controlling", || async { burst_weight(&fake) == 0 }).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_decides_but_never_writes_the_route() {
    let fake = fake().await;
    let demand = Demand::start(20.0).await;
    let op = Instance::start(&fake, "a", false);
    let api: Api<BurstPolicy> = Api::namespaced(fake.client().unwrap(), NS);
    api.create(
        &PostParams::default(),
        &policy("worker", &demand, json!({"dryRun": true})),
    )
    .await
    .unwrap();
    eventually("dry-run status", || async {
        status(&fake, "worker").await.is_some_and(|s| {
            s.desired_split.is_some_and(|d| d.burst == 100)
                && s.mode == Some(StatusMode::Primary)
                && condition(&s, "Ready").is_some_and(|c| c.1 == "DryRun")
        })
    })
    .await;
    assert!(
        event_reasons(&fake)
            .await
            .contains(&"DryRunSplit".to_owned())
    );
    assert_eq!(burst_weight(&fake), 0);
    assert!(
        !fake
            .writes()
            .iter()
            .any(|w| w.path.contains("virtualservices"))
    );
    op.stop().await;
}

fn lease_holder(fake: &FakeKube) -> Option<String> {
    fake.object(
        "coordination.k8s.io",
        "leases",
        Some("burst-system"),
        "burstd",
    )
    .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

/// Field managers of route and status writes since the last `clear_writes`.
fn writers(fake: &FakeKube) -> Vec<String> {
    operator_writes(fake)
        .into_iter()
        .filter(|w| w.path.contains("virtualservices") || w.path.ends_with("/status"))
        .filter_map(|w| w.field_manager)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_a_follower_takes_over() {
    let fake = fake().await;
    let demand = Demand::start(20.0).await;
    let api: Api<BurstPolicy> = Api::namespaced(fake.client().unwrap(), NS);
    api.create(
        &PostParams::default(),
        &policy("worker", &demand, json!({})),
    )
    .await
    .unwrap();
    let a = Instance::start(&fake, "a", true);
    eventually("a leads", || async {
        lease_holder(&fake).as_deref() == Some("a")
    })
    .await;
    let b = Instance::start(&fake, "b", true);
    eventually("both ready", || async {
        a.readiness.check().is_ok() && b.readiness.check().is_ok()
    })
    .await;
    eventually("route moved to burst", || async {
        burst_weight(&fake) == 100
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let w = writers(&fake);
    assert!(!w.is_empty());
    assert!(w.iter().all(|m| m == "burstd-a"), "{w:?}");
    assert!(a.metrics.encode().contains("burstd_leader 1"));
    assert!(b.metrics.encode().contains("burstd_leader 0"));

    // The leader shuts down: it releases the lease and b takes over at its next retry.
    a.stop().await;
    assert_ne!(lease_holder(&fake).as_deref(), Some("a"));
    eventually("b leads", || async {
        lease_holder(&fake).as_deref() == Some("b")
    })
    .await;
    fake.clear_writes();
    demand.set(1.0);
    eventually("b moves traffic back", || async {
        burst_weight(&fake) == 0
    })
    .await;
    let w = writers(&fake);
    assert!(w.iter().all(|m| m == "burstd-b") && !w.is_empty(), "{w:?}");

    // Someone else takes the lease: b stops writing at once, although its loop would
    // otherwise move traffic again.
    fake.with_store(|s| {
        let key = burst_fake_kube::ObjectKey {
            group: "coordination.k8s.io".into(),
            plural: "leases".into(),
            namespace: Some("burst-system".into()),
            name: "burstd".into(),
        };
        s.modify(&key, |l| {
            l["spec"]["holderIdentity"] = json!("intruder");
            l["spec"]["leaseDurationSeconds"] = json!(3600);
        });
    });
    eventually("b steps down", || async {
        b.metrics.encode().contains("burstd_leader 0")
    })
    .await;
    // A request already on the wire may still land; none may be sent after this.
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.clear_writes();
    demand.set(30.0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(burst_weight(&fake), 0);
    assert!(writers(&fake).is_empty(), "{:?}", writers(&fake));
    b.stop().await;
}

fn vs_object(name: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"hosts": ["worker-service"], "http": [{"route": [
            {"destination": {"host": "worker-service", "subset": "primary"}, "weight": 100},
            {"destination": {"host": "worker-service", "subset": "burst"}, "weight": 0}]}]}
    })
}

fn secret(name: &str, key: &str, value: &str) -> Value {
    use base64::Engine;
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": NS},
           "data": {key: base64::engine::general_purpose::STANDARD.encode(value)}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_primary_writes_every_cluster_with_a_kubeconfig_from_a_secret() {
    let fake = fake().await;
    let remote = FakeKube::start().await.unwrap();
    remote.insert("virtualservices", vs_object(VS)).unwrap();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: r, cluster: {{server: \"{}\"}}}}]\n\
         users: [{{name: u, user: {{token: remote-token}}}}]\n\
         contexts: [{{name: c, context: {{cluster: r, user: u}}}}]\ncurrent-context: c\n",
        remote.url()
    );
    fake.insert("secrets", secret("burst-cluster", "config", &kubeconfig))
        .unwrap();
    let demand = Demand::start(20.0).await;
    let op = Instance::start(&fake, "a", false);
    let api: Api<BurstPolicy> = Api::namespaced(fake.client().unwrap(), NS);
    let p = policy(
        "worker",
        &demand,
        json!({"target": {"clusters": [
            {"name": "west", "kubeconfigSecretRef": {"name": "burst-cluster", "key": "config"}}
        ]}}),
    );
    api.create(&PostParams::default(), &p).await.unwrap();
    let remote_weight = || {
        remote
            .object("networking.istio.io", "virtualservices", Some(NS), VS)
            .unwrap()["spec"]["http"][0]["route"][1]["weight"]
            .as_i64()
            .unwrap()
    };
    eventually("both clusters burst", || async {
        burst_weight(&fake) == 100 && remote_weight() == 100
    })
    .await;
    assert!(
        remote
            .writes()
            .iter()
            .all(|w| w.field_manager.as_deref() == Some("burstd-a"))
    );

    // Someone changes the remote copy: the clusters disagree, which is drift, and the
    // policy's split is written to both again.
    remote.with_store(|s| {
        let key = burst_fake_kube::ObjectKey {
            group: "networking.istio.io".into(),
            plural: "virtualservices".into(),
            namespace: Some(NS.into()),
            name: VS.into(),
        };
        s.modify(&key, |vs| {
            vs["spec"]["http"][0]["route"][0]["weight"] = json!(100);
            vs["spec"]["http"][0]["route"][1]["weight"] = json!(0);
        });
    });
    eventually("drift repaired", || async { remote_weight() == 100 }).await;

    // A missing Secret is reported on the policy, not a crash.
    let mut bad = policy(
        "bad",
        &demand,
        json!({"target": {"clusters": [
        {"name": "east", "kubeconfigSecretRef": {"name": "nope", "key": "config"}}]}}),
    );
    bad.metadata.name = Some("bad".into());
    api.create(&PostParams::default(), &bad).await.unwrap();
    eventually("missing secret reported", || async {
        status(&fake, "bad").await.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Degraded" && c.status == "True" && c.message.contains("nope"))
        })
    })
    .await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_credentials_come_from_a_secret() {
    let fake = fake().await;
    fake.insert("secrets", secret("prom", "token", "s3cret\n"))
        .unwrap();
    // A Prometheus API that answers only with the right bearer token.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicU64::new(0));
    let seen2 = seen.clone();
    let app = axum::Router::new().route(
        "/api/v1/query",
        get(move |headers: http::HeaderMap| {
            let seen = seen2.clone();
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    != Some("Bearer s3cret")
                {
                    return (http::StatusCode::UNAUTHORIZED, "no".to_owned());
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64();
                (
                    http::StatusCode::OK,
                    json!({"status": "success", "data": {"resultType": "vector",
                        "result": [{"metric": {}, "value": [now, "42"]}]}})
                    .to_string(),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let demand = Demand::start(0.0).await;
    let mut p = policy("worker", &demand, json!({}));
    p.spec.source = serde_json::from_value(json!({"prometheus": {
        "url": url, "auth": {"bearerTokenSecretRef": {"name": "prom", "key": "token"}}}}))
    .unwrap();
    let op = Instance::start(&fake, "a", false);
    let api: Api<BurstPolicy> = Api::namespaced(fake.client().unwrap(), NS);
    api.create(&PostParams::default(), &p).await.unwrap();
    eventually("42 rps bursts", || async { burst_weight(&fake) == 100 }).await;
    assert!(seen.load(Ordering::SeqCst) > 0);
    eventually("observed 42", || async {
        status(&fake, "worker")
            .await
            .is_some_and(|s| s.observed_rps == Some(42.0))
    })
    .await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_abandons_a_slow_apply_without_half_state() {
    let fake = fake().await;
    // Route writes take 3 s; shutdown grants 300 ms.
    fake.inject(
        Fault::delay(Duration::from_secs(3))
            .on(Method::PATCH)
            .path("virtualservices")
            .times(100),
    );
    let demand = Demand::start(20.0).await;
    let op = Instance::start_with_grace(&fake, "a", false, Duration::from_millis(300));
    let api: Api<BurstPolicy> = Api::namespaced(fake.client().unwrap(), NS);
    api.create(
        &PostParams::default(),
        &policy("worker", &demand, json!({})),
    )
    .await
    .unwrap();
    eventually("an apply is in flight", || async {
        !fake.fired().is_empty()
    })
    .await;
    let started = std::time::Instant::now();
    op.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown waited for the slow apply: {:?}",
        started.elapsed()
    );
    // The abandoned patch never lands: the route holds one whole split, the old one.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(burst_weight(&fake), 0);
    let vs = fake
        .object("networking.istio.io", "virtualservices", Some(NS), VS)
        .unwrap();
    assert_eq!(vs["spec"]["http"][0]["route"][0]["weight"], 100);
}
