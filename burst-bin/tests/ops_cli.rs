//! `kubectl-burst` (the binary) against a real kube-apiserver (burst-testkit's control
//! plane, the Istio and BurstPolicy CRDs installed, a namespace per test) while the real
//! burstd operator (`operator::run`, in-process) runs the policy: `list` and `status` show
//! the running policy; `pause` stops route writes and `resume` restarts them; `pin` moves the
//! route, is repaired after drift, survives a restart of burstd and expires by itself;
//! `explain` prints a decision and writes nothing; errors exit 2 naming the problem;
//! `status` shows `status.prewarm` (written directly to the status subresource).
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::routing::get;
use burst_operator::api::{BurstPolicy, BurstPolicyStatus, StatusMode};
use burst_operator::operator::{self, OperatorSettings};
use burst_operator::process::CommonOptions;
use burst_testkit::kube::ControlPlane;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const VS: &str = "worker-virtual-service";
const CRDS: &[&str] = &[
    "schemas/istio/crd-all.gen.yaml",
    "deploy/crd/burstpolicies.bursting.dev.yaml",
];

/// The workload's `/metrics` endpoint: `demand_rps <value>`, a gauge the test sets.
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

/// burstd's operator, running in this process until stopped.
struct Burstd {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<(), burst_operator::Error>>,
}

impl Burstd {
    fn start(env: &Env) -> Burstd {
        let mut options = CommonOptions::new("burstd-ops-test");
        options.listen = ([127, 0, 0, 1], burst_testkit::free_port().unwrap()).into();
        options.status_interval = Duration::from_millis(200);
        let settings = OperatorSettings {
            namespace: Some(env.ns.clone()),
            shutdown_grace: Duration::from_secs(5),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(operator::run(env.admin.clone(), options, settings, async {
            let _ = stopped.await;
        }));
        Burstd {
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("burstd stops within 20 s")
            .unwrap()
            .unwrap();
    }
}

impl Drop for Burstd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Env {
    cp: &'static ControlPlane,
    ns: String,
    admin: kube::Client,
    kubeconfig: tempfile::NamedTempFile,
}

impl Env {
    async fn new(prefix: &str) -> Env {
        let cp = ControlPlane::shared().unwrap();
        cp.install_crd_files(CRDS).await.unwrap();
        let ns = cp.create_namespace(prefix).await.unwrap();
        let admin = cp.admin_client().await.unwrap();
        let vs: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": VS, "namespace": ns},
            "spec": {"hosts": ["worker-service"], "http": [{"route": [
                {"destination": {"host": "worker-service", "subset": "primary"}, "weight": 100},
                {"destination": {"host": "worker-service", "subset": "burst"}, "weight": 0}
            ]}]}
        }))
        .unwrap();
        env_vs(&admin, &ns)
            .create(&PostParams::default(), &vs)
            .await
            .unwrap();
        let kubeconfig = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(kubeconfig.path(), cp.kubeconfig(cp.admin_token(), &ns)).unwrap();
        Env {
            cp,
            ns,
            admin,
            kubeconfig,
        }
    }

    async fn create_policy(&self, name: &str, demand: &Demand) {
        let p: BurstPolicy = serde_json::from_value(json!({
            "apiVersion": "bursting.dev/v1alpha1", "kind": "BurstPolicy",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {
                "source": {"scrape": {"targets": [demand.url], "metric": "demand_rps", "mode": "gauge"}},
                "policy": {"tick": "100ms", "window": "1s"},
                "target": {"kind": "VirtualService", "name": VS},
            }
        }))
        .unwrap();
        self.policies()
            .create(&PostParams::default(), &p)
            .await
            .unwrap();
    }

    fn policies(&self) -> Api<BurstPolicy> {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    async fn vs(&self) -> Value {
        serde_json::to_value(env_vs(&self.admin, &self.ns).get(VS).await.unwrap()).unwrap()
    }

    async fn burst_weight(&self) -> i64 {
        self.vs().await["spec"]["http"][0]["route"][1]["weight"]
            .as_i64()
            .unwrap_or(0)
    }

    async fn status(&self, name: &str) -> BurstPolicyStatus {
        self.policies()
            .get(name)
            .await
            .unwrap()
            .status
            .unwrap_or_default()
    }

    async fn event_reasons(&self) -> Vec<String> {
        let api: Api<Event> = Api::namespaced(self.admin.clone(), &self.ns);
        api.list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .collect()
    }

    /// Runs `kubectl-burst ARGS` with this namespace's admin kubeconfig (blocking the
    /// runtime's worker is avoided with `spawn_blocking`).
    async fn cli(&self, args: &[&str]) -> Run {
        self.cli_with(self.kubeconfig.path().to_str().unwrap(), args)
            .await
    }

    async fn cli_with(&self, kubeconfig: &str, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-burst"));
        cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Another writer sets the route back to 100/0.
async fn drift_to_primary(env: &Env) {
    env_vs(&env.admin, &env.ns)
        .patch(
            VS,
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 100},
                    {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 0}
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
}

fn env_vs(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &burst_testkit::kube::virtual_services())
}

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "{self:?}");
        self.stdout
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_status_pause_resume_and_explain_a_running_policy() {
    let env = Env::new("ops-cli").await;
    let demand = Demand::start(20.0).await;
    let burstd = Burstd::start(&env);
    env.create_policy("worker", &demand).await;
    eventually("burstd moves the route to burst", || async {
        env.burst_weight().await == 100
    })
    .await;
    eventually("status shows burst", || async {
        env.status("worker").await.mode == Some(StatusMode::Burst)
    })
    .await;

    // list: a table and JSON.
    let table = env.cli(&["list"]).await.ok();
    let line = table.lines().find(|l| l.starts_with("worker ")).unwrap();
    for word in [
        "VirtualService/worker-virtual-service",
        "Burst",
        "0/100",
        "20.00",
        // Once bursting, the rate holds the split: the last decision's rule.
        "in_band",
        "policy",
    ] {
        assert!(line.contains(word), "{word} missing in {table}");
    }
    let rows: Value = serde_json::from_str(&env.cli(&["list", "-o", "json"]).await.ok()).unwrap();
    assert_eq!(rows[0]["name"], "worker");
    assert_eq!(rows[0]["split"], "0/100");
    assert_eq!(rows[0]["observedRps"], 20.0);
    // As a kubectl plugin: kubectl finds `kubectl-burst` on the PATH.
    let kubectl = burst_testkit::kube::binary("kubectl").unwrap_or_else(|e| panic!("{e}"));
    let plugin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_kubectl-burst"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        plugin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubeconfig = env.kubeconfig.path().to_owned();
    let plugin = tokio::task::spawn_blocking(move || {
        Command::new(kubectl)
            .args(["burst", "list"])
            .env("PATH", path)
            .env("KUBECONFIG", kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let plugin_out = String::from_utf8_lossy(&plugin.stdout);
    assert!(plugin.status.success(), "{plugin:?}");
    assert!(
        plugin_out.lines().any(|l| l.starts_with("worker ")),
        "{plugin_out}"
    );
    let all = env.cli(&["list", "-A"]).await.ok();
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(all.contains(&env.ns), "{all}");

    // status: conditions, last decision, the Events of the split change.
    let status = env.cli(&["status", "worker"]).await.ok();
    for word in [
        "Mode:          Burst",
        "Last decision: in_band",
        "Last change:   ",
        "above_high",
        "Ready",
        "Controlling",
        "SplitChanged",
        "100/0 -> 0/100",
    ] {
        assert!(status.contains(word), "{word} missing in {status}");
    }

    let json_status: Value =
        serde_json::from_str(&env.cli(&["status", "worker", "-o", "json"]).await.ok()).unwrap();
    assert_eq!(json_status["status"]["mode"], "Burst");
    assert_eq!(json_status["events"][0]["reason"], "SplitChanged");

    // pause: the loop stops; the route keeps its split and is not written, whatever the demand.
    assert!(env.cli(&["pause", "worker"]).await.ok().contains("paused"));
    assert!(env.policies().get("worker").await.unwrap().spec.paused);
    eventually("status says paused", || async {
        env.status("worker").await.mode == Some(StatusMode::Paused)
    })
    .await;
    let before = env.vs().await["metadata"]["resourceVersion"].clone();
    demand.set(2.0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let vs = env.vs().await;
    assert_eq!(
        vs["metadata"]["resourceVersion"], before,
        "paused: no write"
    );
    assert_eq!(env.burst_weight().await, 100);

    // explain: the policy would go back to the primary; nothing is written.
    let explained = env.cli(&["explain", "worker"]).await.ok();
    for word in [
        "Measured: ",
        "2.000",
        "holds 0/100",
        "Decision: 100/0 (below_low)",
        "paused",
    ] {
        assert!(explained.contains(word), "{word} missing in {explained}");
    }
    assert_eq!(
        env.vs().await["metadata"]["resourceVersion"],
        before,
        "explain writes nothing"
    );
    assert!(env.policies().get("worker").await.unwrap().spec.paused);

    // resume: burstd follows the demand again.
    assert!(
        env.cli(&["resume", "worker"])
            .await
            .ok()
            .contains("resumed")
    );
    eventually("resumed loop brings traffic back", || async {
        env.burst_weight().await == 0
    })
    .await;
    burstd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_holds_through_drift_and_a_restart_then_expires_by_itself() {
    let env = Env::new("ops-pin").await;
    let demand = Demand::start(2.0).await;
    let burstd = Burstd::start(&env);
    env.create_policy("worker", &demand).await;
    eventually("status shows primary", || async {
        env.status("worker").await.mode == Some(StatusMode::Primary)
    })
    .await;

    let out = env
        .cli(&["pin", "worker", "--burst-weight", "40", "--for", "12s"])
        .await
        .ok();
    assert!(out.contains("pinned at burst weight 40 until"), "{out}");
    eventually("the route is pinned at 40", || async {
        env.burst_weight().await == 40
    })
    .await;
    eventually("status reports the pin", || async {
        let s = env.status("worker").await;
        s.last_decision.as_ref().is_some_and(|d| d.rule == "pinned")
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Pinned" && c.status == "True" && c.message.contains("until"))
    })
    .await;
    let listed = env.cli(&["list"]).await.ok();
    assert!(listed.contains("pinned until"), "{listed}");

    // Drift is repaired back to the pin.
    drift_to_primary(&env).await;
    eventually("drift repaired to the pin", || async {
        env.burst_weight().await == 40
    })
    .await;

    // Restart burstd while pinned: the new instance holds the pin (the pin is in the spec).
    burstd.stop().await;
    let burstd = Burstd::start(&env);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let until = env
        .policies()
        .get("worker")
        .await
        .unwrap()
        .spec
        .pin
        .unwrap()
        .until
        .0;
    assert!(
        k8s_openapi::jiff::Timestamp::now() < until,
        "the pin must still hold here; the machine is too slow for this test's 12 s pin"
    );
    assert_eq!(
        env.burst_weight().await,
        40,
        "still pinned after the restart"
    );
    // The new instance holds the pin actively: it repairs drift back to it.
    drift_to_primary(&env).await;
    eventually("the restarted burstd repairs drift to the pin", || async {
        env.burst_weight().await == 40
    })
    .await;

    // Expiry: back to the policy's decision (100/0 at 2 rps), with Events, no spec write.
    eventually("pin expired", || async { env.burst_weight().await == 0 }).await;
    eventually("expiry reported", || async {
        let s = env.status("worker").await;
        s.conditions
            .iter()
            .any(|c| c.type_ == "Pinned" && c.status == "False" && c.reason == "PinExpired")
    })
    .await;
    let reasons = env.event_reasons().await;
    assert!(reasons.iter().any(|r| r == "PinStarted"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "PinExpired"), "{reasons:?}");
    let status = env.cli(&["status", "worker"]).await.ok();
    assert!(status.contains("PinExpired"), "{status}");
    assert!(
        env.policies()
            .get("worker")
            .await
            .unwrap()
            .spec
            .pin
            .is_some(),
        "no spec write on expiry"
    );

    // unpin clears the field.
    env.cli(&["unpin", "worker"]).await.ok();
    assert!(
        env.policies()
            .get("worker")
            .await
            .unwrap()
            .spec
            .pin
            .is_none()
    );
    burstd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_problem_and_exit_2() {
    let env = Env::new("ops-errors").await;
    let demand = Demand::start(2.0).await;
    env.create_policy("worker", &demand).await;

    let missing = env.cli(&["status", "nosuch"]).await;
    assert_eq!(missing.code, Some(2), "{missing:?}");
    assert!(
        missing
            .stderr
            .contains(&format!("no burstpolicies.bursting.dev {}/nosuch", env.ns)),
        "{missing:?}"
    );

    let all = env.cli(&["pause", "worker", "-A"]).await;
    assert_eq!(all.code, Some(2), "{all:?}");
    assert!(
        all.stderr.contains("-A/--all-namespaces is for `list`"),
        "{all:?}"
    );

    let no_config = env.cli_with("/nonexistent/kubeconfig", &["list"]).await;
    assert_eq!(no_config.code, Some(2), "{no_config:?}");
    assert!(no_config.stderr.contains("--kubeconfig"), "{no_config:?}");

    let bad_weight = env.cli(&["pin", "worker", "--burst-weight", "101"]).await;
    assert_eq!(bad_weight.code, Some(2), "{bad_weight:?}");

    // A service account without rights: forbidden, naming the verb and the resource.
    let token = env
        .cp
        .service_account_token(&env.ns, "operator")
        .await
        .unwrap();
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(kubeconfig.path(), env.cp.kubeconfig(&token, &env.ns)).unwrap();
    let path = kubeconfig.path().to_str().unwrap();
    let forbidden = env.cli_with(path, &["pause", "worker"]).await;
    assert_eq!(forbidden.code, Some(2), "{forbidden:?}");
    assert!(
        forbidden
            .stderr
            .contains("forbidden: you may not get burstpolicies.bursting.dev")
            || forbidden
                .stderr
                .contains("forbidden: you may not patch burstpolicies.bursting.dev"),
        "{forbidden:?}"
    );

    // The Role documented in docs/operations.md is enough for every command but explain.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "burst-operator-cli"},
        "rules": [
            {"apiGroups": ["bursting.dev"], "resources": ["burstpolicies"], "verbs": ["get", "list", "patch"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["list"]}
        ]
    }))
    .unwrap();
    Api::<Role>::namespaced(env.admin.clone(), &env.ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "burst-operator-cli"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "burst-operator-cli"},
        "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": env.ns}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(env.admin.clone(), &env.ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    eventually("the Role takes effect", || async {
        env.cli_with(path, &["list"]).await.code == Some(0)
    })
    .await;
    env.cli_with(path, &["status", "worker"]).await.ok();
    env.cli_with(path, &["pause", "worker"]).await.ok();
    env.cli_with(path, &["pin", "worker", "--burst-weight", "10"])
        .await
        .ok();
    env.cli_with(path, &["unpin", "worker"]).await.ok();
    env.cli_with(path, &["resume", "worker"]).await.ok();
    assert!(!env.policies().get("worker").await.unwrap().spec.paused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_pre_warming_in_text_and_json() {
    let env = Env::new("ops-prewarm").await;
    let p: BurstPolicy = serde_json::from_value(json!({
        "apiVersion": "bursting.dev/v1alpha1", "kind": "BurstPolicy",
        "metadata": {"name": "worker", "namespace": env.ns},
        "spec": {
            "source": {"scrape": {"targets": ["http://127.0.0.1:9/metrics"], "metric": "demand_rps"}},
            "policy": {"prewarm": {"lead": "90s", "hold": "5m"}},
            "target": {"kind": "VirtualService", "name": VS},
            "prewarm": {"scaler": {"kubernetes": {"deployment": "worker-burst", "replicas": 5}}},
        }
    }))
    .unwrap();
    env.policies()
        .create(&PostParams::default(), &p)
        .await
        .unwrap();

    // Before burstd reports: the section shows the spec and says there is no report yet.
    let text = env.cli(&["status", "worker"]).await.ok();
    assert!(
        text.contains(&format!(
            "  Scaler:       Deployment {}/worker-burst to 5 replicas",
            env.ns
        )),
        "{text}"
    );
    assert!(text.contains("(no report yet"), "{text}");

    // What burstd writes after a prepare (the status subresource, written directly here).
    env.policies()
        .patch_status(
            "worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"mode": "Primary", "prewarm": {
                "prepared": true,
                "outlook": "crossing",
                "lastAction": "prewarm (forecast: crossing in 40s)",
                "lastActionTime": "2026-01-01T00:05:00Z",
                "lastError": "conflict: the HPA changed 5 times in a row",
            }}})),
        )
        .await
        .unwrap();
    let text = env.cli(&["status", "worker"]).await.ok();
    for line in [
        "Pre-warm:",
        "  Timing:       lead 1m30s, hold 5m",
        "  Prepared:     yes, since 2026-01-01T00:05:00Z (",
        "  Outlook:      crossing (demand crosses the trigger within lead, or is above it)",
        "  Last action:  prewarm (forecast: crossing in 40s), at 2026-01-01T00:05:00Z (",
        "  Last error:   conflict: the HPA changed 5 times in a row",
    ] {
        assert!(text.contains(line), "{line:?} missing in\n{text}");
    }
    let json_status: Value =
        serde_json::from_str(&env.cli(&["status", "worker", "-o", "json"]).await.ok()).unwrap();
    let prewarm = &json_status["status"]["prewarm"];
    assert_eq!(prewarm["prepared"], true, "{json_status}");
    assert_eq!(prewarm["outlook"], "crossing");
    assert_eq!(prewarm["lastActionTime"], "2026-01-01T00:05:00Z");
    assert_eq!(
        prewarm["lastError"],
        "conflict: the HPA changed 5 times in a row"
    );
    assert_eq!(
        json_status["spec"]["prewarm"]["scaler"]["kubernetes"]["deployment"],
        "worker-burst"
    );
}
