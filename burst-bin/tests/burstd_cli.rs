//! The burstd binary: help text, `burstd crd`, configuration errors, and whole runs in
//! single-policy mode (also pre-warming a burst Deployment's HPA) and operator mode against
//! a real kube-apiserver (one per test binary, a namespace per test), stopped with SIGTERM.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use burst_testkit::kube::{ControlPlane, burst_policies, virtual_services};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};

fn burstd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_burstd"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

fn help(args: &[&str]) -> String {
    let out = burstd().args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// `(flag, its help block)` for every long option in a help text.
fn options(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        // Option lines are indented 2 (short flag) or 6 spaces; descriptions 10.
        let indent = line.len() - t.len();
        let is_option = (2..8).contains(&indent) && t.starts_with('-');
        if is_option && let Some(flag) = t.split([' ', ',', '=']).find(|w| w.starts_with("--")) {
            out.push((flag.to_owned(), String::new()));
            continue;
        }
        if let Some((_, block)) = out.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    out
}

#[test]
fn every_flag_documents_its_environment_variable() {
    let mut seen = 0;
    for args in [&[][..], &["operator"], &["run"], &["crd"]] {
        let text = help(args);
        for (flag, block) in options(&text) {
            if flag == "--help" || flag == "--version" {
                continue;
            }
            seen += 1;
            assert!(
                block.contains("[env: BURST_"),
                "`burstd {} --help`: {flag} does not show its BURST_* variable:\n{block}",
                args.join(" ")
            );
            let first = block.lines().next().unwrap_or("").trim();
            assert!(!first.is_empty(), "{flag} has no description");
        }
    }
    // The run subcommand alone has well over 30 flags.
    assert!(
        seen > 40,
        "only {seen} flags found; is the help parser broken?"
    );
    let top = help(&[]);
    for sub in ["operator", "run", "crd"] {
        assert!(top.contains(sub), "{top}");
    }
}

#[test]
fn crd_prints_the_committed_yaml() {
    let out = burstd().arg("crd").output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/crd/burstpolicies.bursting.dev.yaml"),
    )
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}

#[test]
fn bad_settings_fail_before_touching_the_cluster() {
    let out = burstd()
        .args([
            "run",
            "--leader-elect=false",
            "--prometheus-url",
            "http://prometheus:9090",
            "--virtual-service",
            "worker",
            "--high",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.policy.high"), "{err}");

    let out = burstd()
        .args([
            "run",
            "--leader-elect=false",
            "--prometheus-url",
            "http://p",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--virtual-service"));

    let out = burstd().args(["run", "--tick-rate", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "unknown flags are usage errors");

    // Pre-warming needs a Deployment and the timing; one without the other says what to add.
    let seed = [
        "run",
        "--leader-elect=false",
        "--prometheus-url",
        "http://p",
        "--virtual-service",
        "worker",
    ];
    let out = burstd()
        .args(seed)
        .args(["--prewarm-deployment", "burst/worker"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("add --prewarm-lead"), "{err}");
    let out = burstd()
        .args(seed)
        .env("BURST_PREWARM_LEAD", "90s")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("add --prewarm-deployment"), "{err}");
    let out = burstd()
        .args(seed)
        .args(["--prewarm-deployment", "worker", "--prewarm-replicas", "0"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "replicas below 1 are usage errors"
    );

    let out = burstd()
        .env("BURST_LOG", "not a [filter")
        .arg("crd")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("BURST_LOG"));
}

/// Kills the child on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A namespace of the shared real API server with the Istio and BurstPolicy CRDs and the
/// worker VirtualService, a `/metrics` endpoint with a gauge of 25 rps (see
/// [`Cluster::set_demand`]), and an admin kubeconfig whose default namespace is the test's.
/// The Lease lives in the same namespace.
struct Cluster {
    client: kube::Client,
    ns: String,
    metrics_url: String,
    demand: Arc<AtomicU64>,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(prefix: &str) -> Cluster {
        let cp = ControlPlane::shared().expect("the real control plane");
        cp.install_crd_files(&[
            "schemas/istio/crd-all.gen.yaml",
            "deploy/crd/burstpolicies.bursting.dev.yaml",
        ])
        .await
        .unwrap();
        let ns = cp.create_namespace(prefix).await.unwrap();
        let client = cp.admin_client().await.unwrap();
        let vs: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "worker-virtual-service", "namespace": ns},
            "spec": {"hosts": ["worker-service"], "http": [{"route": [
                {"destination": {"host": "worker-service", "subset": "primary"}, "weight": 100},
                {"destination": {"host": "worker-service", "subset": "burst"}, "weight": 0}]}]}
        }))
        .unwrap();
        Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &virtual_services())
            .create(&PostParams::default(), &vs)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_url = format!("http://{}/metrics", listener.local_addr().unwrap());
        let demand = Arc::new(AtomicU64::new(25.0_f64.to_bits()));
        let value = demand.clone();
        tokio::spawn(async move {
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let rps = f64::from_bits(value.load(Ordering::SeqCst));
                    async move { format!("demand_rps {rps}\n") }
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, cp.kubeconfig(cp.admin_token(), &ns)).unwrap();
        Cluster {
            client,
            ns,
            metrics_url,
            demand,
            kubeconfig,
            _dir: dir,
        }
    }

    /// Sets the gauge the `/metrics` endpoint serves.
    fn set_demand(&self, rps: f64) {
        self.demand.store(rps.to_bits(), Ordering::SeqCst);
    }

    async fn route(&self) -> Value {
        let vs = Api::<DynamicObject>::namespaced_with(
            self.client.clone(),
            &self.ns,
            &virtual_services(),
        )
        .get("worker-virtual-service")
        .await
        .unwrap();
        serde_json::to_value(vs).unwrap()
    }

    async fn burst_weight(&self) -> i64 {
        self.route().await["spec"]["http"][0]["route"][1]["weight"]
            .as_i64()
            .unwrap()
    }

    async fn lease(&self) -> Option<Lease> {
        Api::<Lease>::namespaced(self.client.clone(), &self.ns)
            .get_opt("burstd")
            .await
            .unwrap()
    }

    async fn holder(&self) -> Option<String> {
        self.lease()
            .await
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
    }

    /// burstd with this cluster's kubeconfig, JSON logs, a Lease and a listen port.
    fn burstd(&self, port: u16) -> Command {
        let mut c = burstd();
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("BURST_LOG_FORMAT", "json")
            .env("BURST_LISTEN", format!("127.0.0.1:{port}"))
            .env("BURST_LEASE_NAMESPACE", &self.ns)
            .env("BURST_IDENTITY", "burstd-test")
            .env("BURST_RETRY_PERIOD", "300ms")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }
}

/// Waits until the route bursts and /readyz answers 200.
async fn wait_bursting_and_ready(cluster: &Cluster, port: u16) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if cluster.burst_weight().await == 100
            && http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("burstd did not burst and become ready");
}

/// Sends SIGTERM and returns the exit status and stderr.
async fn terminate(child: &mut Child) -> (std::process::ExitStatus, String) {
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..400 {
        if let Some(s) = child.0.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (s, stderr);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("burstd did not exit after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_policy_mode_runs_and_stops_cleanly_on_sigterm() {
    let cluster = Cluster::start("cli-single").await;
    let port = burst_testkit::free_port().unwrap();
    let child = cluster
        .burstd(port)
        .env("BURST_SCRAPE_TARGETS", &cluster.metrics_url)
        .env("BURST_SCRAPE_METRIC", "demand_rps")
        .env("BURST_SCRAPE_GAUGE", "true")
        .env("BURST_VIRTUAL_SERVICE", "worker-virtual-service")
        .env("BURST_NAMESPACE", &cluster.ns)
        .env("BURST_TICK", "200ms")
        .arg("run")
        .spawn()
        .unwrap();
    let mut child = Child(child);
    wait_bursting_and_ready(&cluster, port).await;
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("burstd_leader 1"), "{metrics}");
    let observed = format!(
        r#"burstd_observed_rps{{policy="{}/worker-virtual-service",window="short"}} 25"#,
        cluster.ns
    );
    assert!(metrics.contains(&observed), "{observed} not in\n{metrics}");
    let lease = cluster.lease().await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("burstd-test"));
    assert_eq!(lease.lease_duration_seconds, Some(15));
    assert!(lease.acquire_time.is_some() && lease.renew_time.is_some());
    // The route write is burstd's: the real server records its field manager.
    let route = cluster.route().await;
    let managers = burst_testkit::kube::field_managers(&route);
    assert!(managers.iter().any(|m| m == "burstd"), "{managers:?}");
    // The split change is a real Event about the VirtualService.
    let events = Api::<Event>::namespaced(cluster.client.clone(), &cluster.ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let changed = events
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("SplitChanged"))
        .unwrap_or_else(|| panic!("no SplitChanged Event: {:#?}", events.items));
    let regarding = changed.regarding.as_ref().unwrap();
    assert_eq!(regarding.kind.as_deref(), Some("VirtualService"));
    assert_eq!(regarding.name.as_deref(), Some("worker-virtual-service"));
    assert_eq!(changed.reporting_instance.as_deref(), Some("burstd-test"));

    let (exited, stderr) = terminate(&mut child).await;
    assert!(exited.success(), "{stderr}");
    // JSON logs, one object per line.
    let first = stderr.lines().next().unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "{first}"
    );
    assert!(stderr.contains("lease released"), "{stderr}");
    assert_eq!(cluster.holder().await, None, "the Lease was not released");
    assert_eq!(
        cluster.burst_weight().await,
        100,
        "the split stays where it was"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_mode_runs_policies_and_stops_cleanly_on_sigterm() {
    operator_mode_runs_and_stops("cli-operator", false).await;
}

/// The same over `--api-http2`: requests multiplexed on one HTTP/2 connection to the real
/// kube-apiserver, watches on their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_mode_over_http2_runs_policies_and_stops_cleanly_on_sigterm() {
    operator_mode_runs_and_stops("cli-operator-h2", true).await;
}

async fn operator_mode_runs_and_stops(name: &str, http2: bool) {
    let cluster = Cluster::start(name).await;
    let policies = Api::<DynamicObject>::namespaced_with(
        cluster.client.clone(),
        &cluster.ns,
        &burst_policies(),
    );
    let policy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "bursting.dev/v1alpha1", "kind": "BurstPolicy",
        "metadata": {"name": "worker", "namespace": cluster.ns},
        "spec": {
            "source": {"scrape": {"targets": [cluster.metrics_url], "metric": "demand_rps", "mode": "gauge"}},
            "policy": {"tick": "200ms"},
            "target": {"name": "worker-virtual-service"}
        }
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    let port = burst_testkit::free_port().unwrap();
    let child = cluster
        .burstd(port)
        .env("BURST_STATUS_INTERVAL", "200ms")
        .env("BURST_WATCH_NAMESPACE", &cluster.ns)
        .env("BURST_API_HTTP2", http2.to_string())
        .arg("operator")
        .spawn()
        .unwrap();
    let mut child = Child(child);
    wait_bursting_and_ready(&cluster, port).await;
    let mut status = Value::Null;
    for _ in 0..200 {
        let p = policies.get_status("worker").await.unwrap();
        status = p.data["status"].clone();
        if status["mode"] == "Burst" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["mode"], "Burst", "{status}");
    assert_eq!(status["observedRps"], 25.0);
    let (exited, stderr) = terminate(&mut child).await;
    assert!(exited.success(), "{stderr}");
    assert!(stderr.contains("operator stopped"), "{stderr}");
    assert_eq!(cluster.holder().await, None, "the Lease was not released");
}

/// The HPA `worker-hpa` of the burst Deployment: its `minReplicas` and whether it carries
/// burstd's pre-warm annotation.
async fn hpa_min(cluster: &Cluster) -> (i32, bool) {
    let hpa = Api::<HorizontalPodAutoscaler>::namespaced(cluster.client.clone(), &cluster.ns)
        .get("worker-hpa")
        .await
        .unwrap();
    let annotated = hpa
        .metadata
        .annotations
        .is_some_and(|a| a.contains_key(PREWARM_ANNOTATION));
    (hpa.spec.min_replicas.unwrap_or(1), annotated)
}

const PREWARM_ANNOTATION: &str = "burst.dev/prewarm-original";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_policy_mode_prewarms_the_burst_deployment_ahead_and_restores_it_after_hold() {
    let cluster = Cluster::start("cli-prewarm").await;
    cluster.set_demand(5.0);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "worker-burst", "namespace": cluster.ns},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "worker-burst"}},
            "template": {
                "metadata": {"labels": {"app": "worker-burst"}},
                "spec": {"containers": [{"name": "worker", "image": "worker:1"}]}
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(cluster.client.clone(), &cluster.ns)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    // A pre-warm a previous run left (it crashed while prepared): burstd restores it at start.
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "worker-hpa", "namespace": cluster.ns, "annotations": {
            PREWARM_ANNOTATION: r#"{"field":"minReplicas","original":2,"set":5}"#
        }},
        "spec": {
            "minReplicas": 5, "maxReplicas": 10,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker-burst"}
        }
    }))
    .unwrap();
    Api::<HorizontalPodAutoscaler>::namespaced(cluster.client.clone(), &cluster.ns)
        .create(&PostParams::default(), &hpa)
        .await
        .unwrap();

    let port = burst_testkit::free_port().unwrap();
    let prewarm_target = format!("{}/worker-burst", cluster.ns);
    let kubeconfig = cluster.kubeconfig.to_str().unwrap().to_owned();
    let child = cluster
        .burstd(port)
        .env("BURST_PREWARM_HOLD", "2s")
        .args([
            "run",
            "--scrape-target",
            &cluster.metrics_url,
            "--scrape-metric",
            "demand_rps",
            "--scrape-gauge",
            "--virtual-service",
            "worker-virtual-service",
            "--namespace",
            &cluster.ns,
            "--tick",
            "100ms",
            "--window",
            "1s",
            "--high",
            "15",
            "--low",
            "10",
            "--prewarm-deployment",
            &prewarm_target,
            "--prewarm-hpa",
            "worker-hpa",
            "--prewarm-replicas",
            "5",
            "--prewarm-lead",
            "30s",
            "--prewarm-kubeconfig",
            &kubeconfig,
        ])
        .spawn()
        .unwrap();
    let mut child = Child(child);
    eventually("the left pre-warm is restored at start", || async {
        hpa_min(&cluster).await == (2, false)
    })
    .await;
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let policy = format!("{}/worker-virtual-service", cluster.ns);
    let prepared = |v: u8| format!(r#"burstd_prewarm_prepared{{policy="{policy}"}} {v}"#);
    eventually("burstd reports it is not prepared", || async {
        metrics_text(&metrics_url).await.contains(&prepared(0))
    })
    .await;
    assert_eq!(hpa_min(&cluster).await, (2, false), "calm: not prepared");

    // Rising towards the trigger (15), still below it: prepared ahead, the route unmoved.
    for rps in [7.0, 9.0, 11.0, 13.0] {
        cluster.set_demand(rps);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    eventually("HPA minReplicas raised ahead of the crossing", || async {
        hpa_min(&cluster).await == (5, true)
    })
    .await;
    assert_eq!(
        cluster.burst_weight().await,
        0,
        "prepared before traffic moved"
    );
    eventually("the metric shows prepared", || async {
        metrics_text(&metrics_url).await.contains(&prepared(1))
    })
    .await;

    // The burst: traffic moves, the pre-warm stays.
    cluster.set_demand(25.0);
    eventually("route moved to burst", || async {
        cluster.burst_weight().await == 100
    })
    .await;
    assert_eq!(hpa_min(&cluster).await, (5, true), "held while on burst");

    // Back down: primary again, then released `hold` (2s) later to the original value.
    cluster.set_demand(2.0);
    eventually("route back to primary", || async {
        cluster.burst_weight().await == 0
    })
    .await;
    eventually("HPA minReplicas restored after hold", || async {
        hpa_min(&cluster).await == (2, false)
    })
    .await;
    let events = Api::<Event>::namespaced(cluster.client.clone(), &cluster.ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let reasons: Vec<&str> = events
        .items
        .iter()
        .filter_map(|e| e.reason.as_deref())
        .collect();
    for reason in ["Prewarm", "PrewarmReleased"] {
        assert!(reasons.contains(&reason), "no {reason} Event: {reasons:?}");
    }
    // The HPA writes are burstd's.
    let hpa = Api::<HorizontalPodAutoscaler>::namespaced(cluster.client.clone(), &cluster.ns)
        .get("worker-hpa")
        .await
        .unwrap();
    let managers = burst_testkit::kube::field_managers(&serde_json::to_value(hpa).unwrap());
    assert!(managers.iter().any(|m| m == "burstd"), "{managers:?}");

    let (exited, stderr) = terminate(&mut child).await;
    assert!(exited.success(), "{stderr}");
    assert!(stderr.contains("pre-warming"), "{stderr}");
}

async fn metrics_text(url: &str) -> String {
    match reqwest::get(url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Polls `check` every 100 ms for up to 30 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}
