//! The operator through the real `kube::Client` against a real kube-apiserver (one per test
//! binary, a namespace per test, the Istio and BurstPolicy CRDs installed): policies start,
//! change and stop loops; routes and statuses are written; only the leader writes; API
//! errors degrade a policy without crashing anything. See `kube_env` for the setup.

#![allow(clippy::unwrap_used)]

mod kube_env;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::routing::get;
use burst_operator::api::StatusMode;
use burst_operator::api_calls;
use burst_testkit::kube::{ControlPlane, Fault};
use http::Method;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube_env::{
    Demand, Env, Instance, VS, call_of, condition, create_vs, eventually, read_vs, vs_resource,
    weights,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_policy_runs_patches_the_route_and_reports_status() {
    let (env, demand, op) = Env::with_operator("op-created").await;
    eventually("readyz", || async { op.readiness.check().is_ok() }).await;
    env.create(&env.policy("worker", &demand, json!({}))).await;

    eventually("route moved to burst", || async {
        env.burst_weight().await == 100
    })
    .await;
    eventually("status shows burst", || async {
        env.status("worker").await.is_some_and(|s| {
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
        env.event_reasons()
            .await
            .contains(&"SplitChanged".to_owned())
    );
    // Other fields of the VirtualService are untouched; the server records burstd as the
    // manager of the weights it wrote.
    let vs = env.vs().await;
    assert_eq!(vs["spec"]["http"][0]["retries"]["attempts"], 3);
    let managers = burst_testkit::kube::field_managers(&vs);
    assert!(managers.iter().any(|m| m == "burstd-a"), "{managers:?}");
    let text = op.metrics.encode();
    let policy = format!("{}/worker", env.ns);
    assert!(
        text.contains(&format!(r#"burstd_burst_weight{{policy="{policy}"}} 100"#)),
        "{text}"
    );
    assert!(
        text.contains("burstd_leader 1"),
        "election off: always the leader"
    );
    assert!(text.contains("burstd_policies 1"));

    // Demand drops: back to the primary.
    demand.set(2.0);
    eventually("route back to primary", || async {
        env.burst_weight().await == 0
    })
    .await;

    // Every call burstd made is in the list the chart's RBAC is built from, and the real
    // server accepted every status and Event burstd wrote.
    let writes = env.operator_writes();
    assert!(!writes.is_empty());
    for w in &writes {
        let (g, r, v) = call_of(w);
        assert!(
            api_calls::is_listed(&g, &r, &v),
            "burstd made an unlisted call: {v} {g}/{r} ({})",
            w.path
        );
        assert!(
            w.status < 300,
            "the server refused {v} {g}/{r}: {} {}",
            w.status,
            w.path
        );
    }
    op.stop_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_changes_restart_the_loop_and_deletion_stops_it() {
    let (env, demand, op) = Env::with_operator("op-changes").await;
    let api = env.policies();
    env.create(&env.policy("worker", &demand, json!({}))).await;
    eventually("route moved to burst", || async {
        env.burst_weight().await == 100
    })
    .await;

    // Raise the thresholds above the demand: the new loop brings traffic back.
    let changed = env.raise_thresholds("worker").await;
    assert_eq!(changed.metadata.generation, Some(2), "a spec change");
    eventually("new thresholds applied", || async {
        env.burst_weight().await == 0
    })
    .await;
    eventually("status at generation 2", || async {
        env.status("worker").await.is_some_and(|s| {
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
        env.status("worker")
            .await
            .is_some_and(|s| s.mode == Some(StatusMode::Paused) && s.observed_generation == Some(3))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.burst_weight().await,
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
        env.burst_weight().await == 100
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
    env.proxy.clear_writes();
    demand.set(0.0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(env.burst_weight().await, 100);
    assert!(
        env.operator_writes().is_empty(),
        "writes after deletion: {:?}",
        env.operator_writes()
    );
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_degrade_the_policy_without_a_crash() {
    let env = Env::new("op-errors").await;
    let demand = Demand::start(20.0).await;
    env.proxy.inject(
        Fault::status(500)
            .on(Method::PATCH)
            .path("virtualservices")
            .times(1_000_000),
    );
    let op = Instance::start(&env, "a", false).await;
    env.create(&env.policy("worker", &demand, json!({}))).await;
    eventually("degraded by the failing apply", || async {
        env.status("worker").await.is_some_and(|s| {
            condition(&s, "Degraded") == Some(("True".into(), "ApplyFailed".into()))
                && s.mode == Some(StatusMode::Primary)
                && s.desired_split.is_some_and(|d| d.burst == 100)
        })
    })
    .await;
    assert!(
        env.event_reasons()
            .await
            .contains(&"ApplyFailed".to_owned())
    );
    assert!(op.metrics.encode().contains("burstd_router_errors_total"));
    assert_eq!(
        env.burst_weight().await,
        0,
        "no failed apply reached the server"
    );

    // The API recovers: the split is applied and the condition clears.
    env.proxy.clear_faults();
    eventually("applied after recovery", || async {
        env.burst_weight().await == 100
    })
    .await;
    eventually("no longer degraded", || async {
        env.status("worker")
            .await
            .is_some_and(|s| condition(&s, "Degraded").is_some_and(|c| c.0 == "False"))
    })
    .await;

    // A policy whose target does not exist, and one with an invalid spec (which the CRD's
    // schema lets through: a target name with a slash): each is Degraded with its reason;
    // the others keep running.
    let mut missing = env.policy("missing", &demand, json!({}));
    missing.spec.target.name = "no-such-vs".into();
    env.create(&missing).await;
    let invalid = env.policy(
        "invalid",
        &demand,
        json!({"target": {"name": "not/a-name"}}),
    );
    env.create(&invalid).await;
    eventually("missing target reported", || async {
        env.status("missing").await.is_some_and(|s| {
            condition(&s, "Ready") == Some(("False".into(), "RouteUnreadable".into()))
                && s.mode == Some(StatusMode::Unknown)
        })
    })
    .await;
    eventually("invalid spec reported", || async {
        env.status("invalid").await.is_some_and(|s| {
            condition(&s, "Degraded") == Some(("True".into(), "InvalidSpec".into()))
                && s.conditions
                    .iter()
                    .any(|c| c.message.contains("spec.target.name"))
        })
    })
    .await;
    // The watch failing for a while does not stop the loops either.
    env.proxy.inject(
        Fault::status(500)
            .path("burstpolicies")
            .on(Method::GET)
            .times(5),
    );
    demand.set(1.0);
    eventually("still controlling", || async {
        env.burst_weight().await == 0
    })
    .await;
    op.stop_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_decides_but_never_writes_the_route() {
    let (env, demand, op) = Env::with_operator("op-dryrun").await;
    env.create(&env.policy("worker", &demand, json!({"dryRun": true})))
        .await;
    eventually("dry-run status", || async {
        env.status("worker").await.is_some_and(|s| {
            s.desired_split.is_some_and(|d| d.burst == 100)
                && s.mode == Some(StatusMode::Primary)
                && condition(&s, "Ready").is_some_and(|c| c.1 == "DryRun")
        })
    })
    .await;
    assert!(
        env.event_reasons()
            .await
            .contains(&"DryRunSplit".to_owned())
    );
    assert_eq!(env.burst_weight().await, 0);
    assert!(
        !env.operator_writes()
            .iter()
            .any(|w| w.path.contains("virtualservices")),
        "{:?}",
        env.operator_writes()
    );
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_a_follower_takes_over() {
    let env = Env::new("op-leader").await;
    let demand = Demand::start(20.0).await;
    env.create(&env.policy("worker", &demand, json!({}))).await;
    let a = Instance::start(&env, "a", true).await;
    eventually("a leads", || async {
        env.lease_holder().await.as_deref() == Some("a")
    })
    .await;
    let b = Instance::start(&env, "b", true).await;
    eventually("both ready", || async {
        a.readiness.check().is_ok() && b.readiness.check().is_ok()
    })
    .await;
    eventually("route moved to burst", || async {
        env.burst_weight().await == 100
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let w = env.writers();
    assert!(!w.is_empty());
    assert!(w.iter().all(|m| m == "burstd-a"), "{w:?}");
    assert!(a.metrics.encode().contains("burstd_leader 1"));
    assert!(b.metrics.encode().contains("burstd_leader 0"));

    // The leader shuts down: it releases the lease and b takes over at its next retry.
    a.stop().await;
    assert_ne!(env.lease_holder().await.as_deref(), Some("a"));
    eventually("b leads", || async {
        env.lease_holder().await.as_deref() == Some("b")
    })
    .await;
    env.proxy.clear_writes();
    demand.set(1.0);
    eventually("b moves traffic back", || async {
        env.burst_weight().await == 0
    })
    .await;
    let w = env.writers();
    assert!(w.iter().all(|m| m == "burstd-b") && !w.is_empty(), "{w:?}");

    // Someone else takes the lease (a real write to the server, so b's next renewal
    // conflicts): b stops writing at once, although its loop would otherwise move
    // traffic again.
    let leases: Api<Lease> = Api::namespaced(env.admin.clone(), &env.ns);
    leases
        .patch(
            "burstd",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 3600}}),
            ),
        )
        .await
        .unwrap();
    eventually("b steps down", || async {
        b.metrics.encode().contains("burstd_leader 0")
    })
    .await;
    // A request already on the wire may still land; none may be sent after this.
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.proxy.clear_writes();
    demand.set(30.0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.burst_weight().await, 0);
    assert!(env.writers().is_empty(), "{:?}", env.writers());
    assert_eq!(env.lease_holder().await.as_deref(), Some("intruder"));
    b.stop().await;
}

/// A second, private control plane: the remote cluster of a multi-primary mesh.
async fn remote_cluster(ns: &str) -> (ControlPlane, kube::Client) {
    let remote = tokio::task::spawn_blocking(ControlPlane::start)
        .await
        .unwrap()
        .unwrap();
    remote
        .install_crd_files(&["schemas/istio/crd-all.gen.yaml"])
        .await
        .unwrap();
    let client = remote.admin_client().await.unwrap();
    // The remote copy lives in the namespace of the same name.
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    create_vs(client.clone(), ns).await;
    (remote, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_primary_writes_every_cluster_with_a_kubeconfig_from_a_secret() {
    let env = Env::new("op-multi").await;
    let (remote, remote_admin) = remote_cluster(&env.ns).await;
    // burstd reaches the remote cluster over HTTPS, trusting its CA, with a token.
    env.secret(
        "burst-cluster",
        "config",
        &remote.kubeconfig(remote.admin_token(), &env.ns),
    )
    .await;
    let demand = Demand::start(20.0).await;
    let op = Instance::start(&env, "a", false).await;
    let p = env.policy(
        "worker",
        &demand,
        json!({"target": {"clusters": [
            {"name": "west", "kubeconfigSecretRef": {"name": "burst-cluster", "key": "config"}}
        ]}}),
    );
    env.create(&p).await;
    let remote_weight = || async { weights(&read_vs(remote_admin.clone(), &env.ns).await).1 };
    eventually("both clusters burst", || async {
        env.burst_weight().await == 100 && remote_weight().await == 100
    })
    .await;
    // The remote server records who wrote the weights.
    let vs = read_vs(remote_admin.clone(), &env.ns).await;
    let managers = burst_testkit::kube::field_managers(&vs);
    assert!(managers.iter().any(|m| m == "burstd-a"), "{managers:?}");

    // Someone changes the remote copy: the clusters disagree, which is drift, and the
    // policy's split is written to both again.
    let api: Api<DynamicObject> =
        Api::namespaced_with(remote_admin.clone(), &env.ns, &vs_resource());
    let mut changed = vs.clone();
    changed["spec"]["http"][0]["route"][0]["weight"] = json!(100);
    changed["spec"]["http"][0]["route"][1]["weight"] = json!(0);
    changed["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    api.replace(
        VS,
        &PostParams::default(),
        &serde_json::from_value(changed).unwrap(),
    )
    .await
    .unwrap();
    eventually("drift repaired", || async { remote_weight().await == 100 }).await;

    // A missing Secret is reported on the policy, not a crash.
    let bad = env.policy(
        "bad",
        &demand,
        json!({"target": {"clusters": [
        {"name": "east", "kubeconfigSecretRef": {"name": "nope", "key": "config"}}]}}),
    );
    env.create(&bad).await;
    eventually("missing secret reported", || async {
        env.status("bad").await.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Degraded" && c.status == "True" && c.message.contains("nope"))
        })
    })
    .await;
    op.stop().await;
    drop(remote);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_credentials_come_from_a_secret() {
    let env = Env::new("op-promauth").await;
    env.secret("prom", "token", "s3cret\n").await;
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
    let mut p = env.policy("worker", &demand, json!({}));
    p.spec.source = serde_json::from_value(json!({"prometheus": {
        "url": url, "auth": {"bearerTokenSecretRef": {"name": "prom", "key": "token"}}}}))
    .unwrap();
    let op = Instance::start(&env, "a", false).await;
    env.create(&p).await;
    eventually("42 rps bursts", || async {
        env.burst_weight().await == 100
    })
    .await;
    assert!(seen.load(Ordering::SeqCst) > 0);
    eventually("observed 42", || async {
        env.status("worker")
            .await
            .is_some_and(|s| s.observed_rps == Some(42.0))
    })
    .await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_abandons_a_slow_apply_without_half_state() {
    let env = Env::new("op-shutdown").await;
    // Route writes wait 3 s in the proxy before they reach the server; shutdown grants
    // 300 ms.
    env.proxy.inject(
        Fault::delay(Duration::from_secs(3))
            .on(Method::PATCH)
            .path("virtualservices")
            .times(100),
    );
    let demand = Demand::start(20.0).await;
    let op = Instance::start_with_grace(&env, "a", false, Duration::from_millis(300)).await;
    env.create(&env.policy("worker", &demand, json!({}))).await;
    eventually("an apply is in flight", || async {
        !env.proxy.fired().is_empty()
    })
    .await;
    let started = std::time::Instant::now();
    op.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown waited for the slow apply: {:?}",
        started.elapsed()
    );
    // The abandoned patch never reaches the server: the route holds one whole split, the
    // old one.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let route_writes: Vec<_> = env
        .operator_writes()
        .into_iter()
        .filter(|w| w.path.contains("virtualservices"))
        .collect();
    assert!(route_writes.is_empty(), "{route_writes:?}");
    assert_eq!(weights(&env.vs().await), (100, 0));
}

/// One pod's sidecar for the pod-source test: serves `istio_requests_total` (destination
/// side) growing at a rate the test sets, on a local port.
struct SidecarPod {
    name: String,
    /// The pod-network address its EndpointSlice names (the API server refuses loopback
    /// addresses there); the runner's test-only URL rewrite maps it to `port`.
    address: String,
    port: u16,
    /// `(counter at the last rate change, when, requests per second since)`.
    counter: Arc<std::sync::Mutex<(f64, std::time::Instant, f64)>>,
    _server: tokio::task::JoinHandle<()>,
}

impl SidecarPod {
    async fn start(name: &str, address: &str, rps: f64) -> SidecarPod {
        let port = burst_testkit::free_port().unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let counter = Arc::new(std::sync::Mutex::new((0.0, std::time::Instant::now(), rps)));
        let state = counter.clone();
        let app = axum::Router::new().route(
            "/stats/prometheus",
            get(move || {
                let (base, since, rps) = *state.lock().unwrap();
                let v = base + rps * since.elapsed().as_secs_f64();
                async move {
                    format!(
                        "# TYPE istio_requests_total counter\n\
                         istio_requests_total{{reporter=\"destination\",response_code=\"200\"}} {v}\n\
                         istio_requests_total{{reporter=\"source\",response_code=\"200\"}} {}\n",
                        v * 9.0
                    )
                }
            }),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SidecarPod {
            name: name.to_owned(),
            address: address.to_owned(),
            port,
            counter,
            _server: server,
        }
    }

    /// From now on the counter grows at `rps` (it never goes back).
    fn set_rate(&self, rps: f64) {
        let mut c = self.counter.lock().unwrap();
        let now = std::time::Instant::now();
        *c = (c.0 + c.2 * now.duration_since(c.1).as_secs_f64(), now, rps);
    }

    fn slice(&self, ns: &str, service: &str) -> k8s_openapi::api::discovery::v1::EndpointSlice {
        serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{service}-{}", self.name), "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [self.address], "conditions": {"ready": true},
                           "targetRef": {"kind": "Pod", "name": self.name, "namespace": ns}}],
            "ports": [{"name": "http-envoy-prom", "port": 15090, "protocol": "TCP"}],
        }))
        .unwrap()
    }
}

/// A BurstPolicy with `source.pods`: burstd watches the Service's EndpointSlices on the
/// real API server (through the operator's client), scrapes every ready pod, sums their
/// rates and bursts when the sum crosses `high`, though no single pod does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_source_policy_bursts_on_the_summed_pod_rate() {
    let env = Env::new("op-pods").await;
    let pods = [
        SidecarPod::start("worker-a", "10.244.201.1", 5.0).await,
        SidecarPod::start("worker-b", "10.244.201.2", 4.0).await,
    ];
    let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
        Api::namespaced(env.admin.clone(), &env.ns);
    for p in &pods {
        slices
            .create(&PostParams::default(), &p.slice(&env.ns, "worker"))
            .await
            .unwrap();
    }
    let ports: std::collections::HashMap<String, u16> =
        pods.iter().map(|p| (p.address.clone(), p.port)).collect();
    let rewrite: burst_pods::UrlRewrite = Arc::new(move |endpoint, mut url: url::Url| {
        if let Some(port) = ports.get(&endpoint.address) {
            url.set_host(Some("127.0.0.1")).unwrap();
            url.set_port(Some(*port)).unwrap();
        }
        url
    });
    let op = Instance::start_configured(&env, "a", false, Duration::from_secs(5), |ctx| {
        ctx.pod_url_rewrite = Some(rewrite);
    })
    .await;
    // `env.policy` starts from a scrape source; null removes it (JSON merge patch).
    let demand = Demand::start(0.0).await;
    env.create(&env.policy(
        "pods",
        &demand,
        json!({"source": {"scrape": null, "pods": {"service": "worker", "port": "http-envoy-prom", "quorum": 1}},
               "policy": {"window": "2s"}}),
    ))
    .await;

    // 5 + 4 = 9 rps, below high (15): primary, and the status shows the summed rate.
    eventually("status shows the summed rate", || async {
        env.status("pods").await.is_some_and(|s| {
            s.mode == Some(StatusMode::Primary)
                && s.observed_rps.is_some_and(|r| (7.5..=10.5).contains(&r))
        })
    })
    .await;
    assert_eq!(env.burst_weight().await, 0);

    // Pod b goes to 12 rps: neither pod crosses 15 alone, their sum (17) does.
    pods[1].set_rate(12.0);
    eventually("route moved to burst", || async {
        env.burst_weight().await == 100
    })
    .await;
    eventually("status shows burst at the summed rate", || async {
        env.status("pods").await.is_some_and(|s| {
            s.mode == Some(StatusMode::Burst)
                && s.observed_rps.is_some_and(|r| (15.0..=19.0).contains(&r))
                && condition(&s, "Ready") == Some(("True".into(), "Controlling".into()))
        })
    })
    .await;

    // A pod leaving the Service (its slice deleted) drops out of the sum: 5 rps, back to
    // the primary.
    slices
        .delete("worker-worker-b", &DeleteParams::default())
        .await
        .unwrap();
    eventually("route back to primary", || async {
        env.burst_weight().await == 0
    })
    .await;
    for w in &env.operator_writes() {
        let (g, r, v) = call_of(w);
        assert!(
            api_calls::is_listed(&g, &r, &v),
            "burstd made an unlisted call: {v} {g}/{r} ({})",
            w.path
        );
    }
    op.stop_clean().await;
}

/// `source.readyEndpoints` beside `source.pods` on the same Service: burstd's loop reads
/// one shared EndpointSlice watch for both (and one for the burst Service), and the
/// watches end when the policy is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_source_and_ready_endpoints_share_one_watch_per_service() {
    let env = Env::new("op-ready").await;
    let pod = SidecarPod::start("worker-a", "10.244.202.1", 5.0).await;
    let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
        Api::namespaced(env.admin.clone(), &env.ns);
    slices
        .create(&PostParams::default(), &pod.slice(&env.ns, "worker"))
        .await
        .unwrap();
    let (address, port) = (pod.address.clone(), pod.port);
    let rewrite: burst_pods::UrlRewrite = Arc::new(move |endpoint, mut url: url::Url| {
        if endpoint.address == address {
            url.set_host(Some("127.0.0.1")).unwrap();
            url.set_port(Some(port)).unwrap();
        }
        url
    });
    let watchers = burst_pods::EndpointWatchers::new();
    let shared = watchers.clone();
    let op = Instance::start_configured(&env, "a", false, Duration::from_secs(5), |ctx| {
        ctx.pod_url_rewrite = Some(rewrite);
        ctx.endpoint_watchers = shared;
    })
    .await;
    let demand = Demand::start(0.0).await;
    env.create(&env.policy(
        "ready",
        &demand,
        json!({"source": {"scrape": null,
                          "pods": {"service": "worker", "port": "http-envoy-prom", "quorum": 1},
                          "readyEndpoints": {"primary": {"service": "worker"},
                                             "burst": {"service": "worker-burst"}}},
               "policy": {"window": "2s"}}),
    ))
    .await;
    eventually("the pod rate reaches status", || async {
        env.status("ready").await.is_some_and(|s| {
            s.mode == Some(StatusMode::Primary)
                && s.observed_rps.is_some_and(|r| (3.5..=6.5).contains(&r))
        })
    })
    .await;
    // worker: the pod source and the primary count; worker-burst: the burst count.
    assert_eq!(watchers.started(), 2, "one watch per Service");
    assert_eq!(watchers.active(), 2);

    env.policies()
        .delete("ready", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the watches end with the policy", || async {
        watchers.active() == 0
    })
    .await;
    op.stop_clean().await;
}
