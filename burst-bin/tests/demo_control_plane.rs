//! `burst demo --kubeconfig`: the loop closes through a real kube-apiserver (with etcd), a
//! real Prometheus and a real Redis. burstd's operator (in-process) patches the seed
//! VirtualService in the API server; the mesh proxy takes its split only from its watch of
//! that VirtualService. `bursty-` hashes appear only while the VirtualService in the server
//! says burst, and none once it is back to 100/0.
//!
//! The failures a user meets first (a server that does not answer, credentials it refuses,
//! a user without the rights, a namespace that cannot be used) end with exit code 2, a
//! message naming the problem, and nothing created.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burst_istio::VsTarget;
use burst_testkit::kube::ControlPlane;
use burst_testkit::prometheus::{PrometheusOptions, PrometheusServer};
use burst_testkit::redis::RedisServer;
use common::{assert_followed_the_load, burst_bounded as burst};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn write_kubeconfig(dir: &Path, text: &str) -> String {
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn vs_api(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
    Api::namespaced_with(
        client,
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "virtualservices"),
    )
}

/// Burst weight the VirtualService held at `t` according to its history (`None` before
/// the first version).
fn weight_at(history: &[Value], t: f64) -> Option<u64> {
    history
        .iter()
        .take_while(|v| v["t"].as_f64().unwrap() <= t)
        .last()
        .map(|v| v["burst"].as_u64().unwrap())
}

/// Whether the VirtualService said burst at any moment of `[from, to]`.
fn burst_during(history: &[Value], from: f64, to: f64) -> bool {
    weight_at(history, from).is_some_and(|w| w > 0)
        || history.iter().any(|v| {
            let t = v["t"].as_f64().unwrap();
            t > from && t <= to && v["burst"].as_u64().unwrap() > 0
        })
}

#[test]
fn bursty_hashes_only_while_the_virtual_service_in_the_api_server_says_burst() {
    let cp = ControlPlane::shared().unwrap();
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let metrics_port = burst_testkit::free_port().unwrap();
    let prometheus = PrometheusServer::start(PrometheusOptions::scraping(&[format!(
        "127.0.0.1:{metrics_port}"
    )]))
    .unwrap_or_else(|e| panic!("{e}"));
    // Not created beforehand: the demo creates it.
    let ns = unique("demo-cp");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &cp.kubeconfig(cp.admin_token(), "default"));
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "high: 15\nlow: 10\nwindow: 3s\ntick: 1s\n").unwrap();
    let (report, stderr) = kube_headless(
        &kubeconfig,
        &ns,
        &[
            "--metrics-port",
            &metrics_port.to_string(),
            "--redis-url",
            &redis.addr(),
            "--prometheus-url",
            &prometheus.url(),
        ],
        &policy,
        "5rps:12s,20rps:15s,5rps:15s",
        Duration::from_secs(180),
    );
    assert!(stderr.contains("burstd operator"), "{stderr}");
    let s = &report["summary"];
    let d = &report["demo"];
    assert_eq!(d["interrupted"], false);
    assert!(d["pubsub"].as_str().unwrap().contains("redis"), "{d}");
    let source = d["source"].as_str().unwrap();
    assert!(
        source.contains("prometheus") && source.contains("istio_requests_total"),
        "{source}"
    );
    assert!(
        d["router"]
            .as_str()
            .unwrap()
            .contains(&format!("VirtualService {ns}/worker-virtual-service")),
        "{s}"
    );
    assert_eq!(d["requests_failed"], 0, "{d}");
    assert_eq!(d["hashes"], d["requests_ok"], "{d}");

    // The VirtualService's history, as the proxy's watch delivered it: the seed, burst,
    // back.
    let vs = &report["virtual_service"];
    assert_eq!(vs["namespace"], ns.as_str());
    let history = vs["history"].as_array().unwrap();
    assert!(history.len() >= 3, "{vs}");
    assert_eq!(
        (&history[0]["primary"], &history[0]["burst"]),
        (&json!(100), &json!(0)),
        "{vs}"
    );
    assert!(
        history[0]["t"].as_f64().unwrap() <= 0.0,
        "the seed came before the load: {vs}"
    );
    assert!(
        history.iter().any(|v| v["burst"] == 100),
        "never burst: {vs}"
    );
    let last = history.last().unwrap();
    assert_eq!(last["burst"], 0, "{vs}");
    let back = last["t"].as_f64().unwrap();
    assert_eq!(vs["final_weights"], json!({"primary": 100, "burst": 0}));

    // Every change of the proxy came from a version of the VirtualService that burstd's
    // PATCH stored, after that PATCH was sent.
    let changes = report["changes"].as_array().unwrap();
    assert_eq!(changes.len(), history.len() - 1, "{report}");
    assert!(vs["patches"].as_u64().unwrap() >= changes.len() as u64);
    for (c, v) in changes.iter().zip(&history[1..]) {
        assert_eq!(c["resource_version"], v["resource_version"], "{c} {v}");
        assert_eq!(c["burst_weight"], v["burst"]);
        let sent = c["patch_sent_to_proxy_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("no PATCH of burstd carried {c}"));
        assert!(sent > 0.0, "the proxy changed before burstd's PATCH: {c}");
        let answered = c["patch_answered_to_proxy_ms"].as_f64().unwrap();
        assert!(answered < sent, "{c}");
    }
    assert!(
        changes[0]["reason"]
            .as_str()
            .unwrap()
            .contains("above_high"),
        "the reason comes from burstd's SplitChanged Event: {}",
        changes[0]
    );
    let stats = &d["vs_patch_sent_to_proxy_ms"];
    assert_eq!(stats["count"], changes.len(), "{s}");
    assert!(stats["min"].as_f64().unwrap() <= stats["median"].as_f64().unwrap());
    assert!(stats["median"].as_f64().unwrap() <= stats["max"].as_f64().unwrap());

    let first_burst = s["first_burst_s"].as_f64().unwrap();
    assert_followed_the_load(first_burst, back, 12.0, 27.0, 42.0);
    let reported = s["back_to_primary_s"].as_f64().unwrap();
    assert!((reported - back).abs() < 0.01, "{reported} vs {back}");

    // bursty- hashes only in seconds when the server's VirtualService said burst (a request
    // routed just before a change may answer just after it: 0.5 s of slack), and none once
    // it was back.
    let timeline = report["timeline"].as_array().unwrap();
    let mut bursty_seconds = 0;
    for p in timeline {
        let t = p["t"].as_f64().unwrap();
        let bursty = p["bursty"].as_u64().unwrap();
        if bursty > 0 {
            bursty_seconds += 1;
            assert!(
                burst_during(history, t - 1.5, t),
                "bursty- hashes at {t}s while the VirtualService said 100/0: {p}\n{vs}"
            );
        }
        if t >= back + 1.5 {
            assert_eq!(bursty, 0, "bursty- after the VirtualService came back: {p}");
            assert!(p["hashes"].as_u64().unwrap() > 0, "hashes stopped: {p}");
        }
    }
    assert!(
        bursty_seconds > 3,
        "bursty- hashes in only {bursty_seconds} seconds"
    );
    assert_eq!(d["bursty_while_primary"], 0, "{d}");

    // The server agrees: the VirtualService is back to 100/0 and burstd wrote it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let admin = cp.admin_client().await.unwrap();
        let obj = vs_api(admin.clone(), &ns)
            .get("worker-virtual-service")
            .await
            .unwrap();
        let value = serde_json::to_value(&obj).unwrap();
        assert_eq!(
            VsTarget::default().read(&value).unwrap(),
            burst_core::Split::ALL_PRIMARY
        );
        let managers = burst_testkit::kube::field_managers(&value);
        assert!(managers.iter().any(|m| m == "burstd"), "{managers:?}");
        let policies: Api<burst_operator::api::BurstPolicy> = Api::namespaced(admin, &ns);
        let status = policies.get("worker").await.unwrap().status.unwrap();
        assert_eq!(status.burst_weight, Some(0), "{status:?}");
    });
}

/// Lines a running `burst demo` printed, read by a thread.
struct Running {
    _guard: burst_testkit::ChildGuard,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_burst"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Running {
            _guard: burst_testkit::ChildGuard::new(child),
            lines,
        }
    }

    /// Waits (at most `limit`) for a line containing every one of `needles`; returns it.
    fn wait_for(&self, needles: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needles:?} within {limit:?}:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `--source pods --kubeconfig`: the demo applies an EndpointSlice of worker-service
/// listing both workers as pods (pod-network addresses), burstd's operator runs the seed
/// BurstPolicy with `source.pods`, watches that slice in the real API server and scrapes
/// each pod (through the demo's URL rewrite to the local stats servers); it bursts on the
/// step and comes back.
#[test]
fn the_pod_source_finds_the_workers_in_an_endpoint_slice_of_the_api_server() {
    let cp = ControlPlane::shared().unwrap();
    let ns = unique("demo-pods");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &cp.kubeconfig(cp.admin_token(), "default"));
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "high: 15\nlow: 10\nwindow: 2s\ntick: 500ms\n").unwrap();
    let (report, _) = kube_headless(
        &kubeconfig,
        &ns,
        &["--source", "pods"],
        &policy,
        "5rps:8s,20rps:10s,5rps:12s",
        Duration::from_secs(120),
    );
    let s = &report["summary"];
    let d = &report["demo"];
    let source = d["source"].as_str().unwrap();
    assert!(
        source.contains(&format!("pods of {ns}/worker-service")),
        "{source}"
    );
    assert_eq!(d["requests_failed"], 0, "{d}");
    let first_burst = s["first_burst_s"].as_f64().expect("never moved to burst");
    let back = s["back_to_primary_s"].as_f64().expect("never came back");
    assert_followed_the_load(first_burst, back, 8.0, 18.0, 30.0);
    assert!(d["bursty_hashes"].as_u64().unwrap() > 0, "{d}");
    assert_eq!(d["bursty_while_primary"], 0, "{d}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let admin = cp.admin_client().await.unwrap();
        let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
            Api::namespaced(admin.clone(), &ns);
        let slice = slices.get("worker-service-demo").await.unwrap();
        assert_eq!(
            slice.metadata.labels.unwrap()["kubernetes.io/service-name"],
            "worker-service"
        );
        let pods: Vec<(String, String)> = slice
            .endpoints
            .iter()
            .flatten()
            .map(|e| {
                (
                    e.addresses[0].clone(),
                    e.target_ref.as_ref().unwrap().name.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            pods,
            [
                ("10.244.0.10".to_owned(), "primary-worker-0".to_owned()),
                ("10.244.1.10".to_owned(), "bursty-worker-0".to_owned())
            ]
        );
        let gvk = GroupVersionKind::gvk("bursting.dev", "v1alpha1", "BurstPolicy");
        let policies: Api<DynamicObject> = Api::namespaced_with(
            admin,
            &ns,
            &ApiResource::from_gvk_with_plural(&gvk, "burstpolicies"),
        );
        let list = policies.list(&Default::default()).await.unwrap();
        assert_eq!(list.items.len(), 1);
        let spec = &list.items[0].data["spec"]["source"];
        assert_eq!(spec["pods"]["service"], "worker-service", "{spec}");
        assert!(spec.get("scrape").is_none() && spec.get("prometheus").is_none());
    });
}

/// `--kubeconfig` with a policy file that warms up and pre-warms: the seed BurstPolicy gets
/// `spec.prewarm` naming the demo's Deployment `bursty-worker` (applied with 0 replicas);
/// burstd's pre-warm scales it up as the rate rises, the demo's watch of it ends the burst
/// worker's cold start (`burst:cold=60s` from the start), burstd's changes go through the
/// ramp, and `hold` after the burst burstd scales the Deployment back to 0.
#[test]
fn burstd_prewarms_the_burst_deployment_and_the_worker_follows_it() {
    let cp = ControlPlane::shared().unwrap();
    let ns = unique("demo-prewarm");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &cp.kubeconfig(cp.admin_token(), "default"));
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "high: 15\nlow: 10\nwindow: 2s\ntick: 500ms\n\
         warmup: {ramp: [10, 25, 50, 100], rampOver: 8s}\n\
         prewarm: {lead: 30s, hold: 5s}\n",
    )
    .unwrap();
    let (report, _) = kube_headless(
        &kubeconfig,
        &ns,
        &[],
        &policy,
        "burst:cold=60s,5rps:10s,25rps:20s,5rps:20s",
        Duration::from_secs(180),
    );
    // burstd's changes, as its SplitChanged Events tell them, went through the ramp.
    let (first_up_t, reasons) = common::assert_ramp_started_at_10(&report);

    let notes = report["demo"]["prewarm"]
        .as_array()
        .unwrap_or_else(|| panic!("no pre-warm in the report: {}", report["demo"]));
    eprintln!("pre-warm: {notes:#?}\nchanges: {reasons:#?}");
    // The burst worker is cold for the first 60 s: burstd's scale-up (the forecast of the
    // rising rate: the scenario's start from 0 to 5 rps already looks like a rise) cut that
    // short before the ramp's first step moved traffic; the reason is burstd's, from its
    // Prewarm Event.
    let prepare = notes
        .iter()
        .find(|n| n["action"] == "prepare" && n["warmed_early_s"].as_f64().is_some())
        .unwrap_or_else(|| panic!("no prepare found the worker cold: {notes:#?}"));
    assert!(
        prepare["warmed_early_s"].as_f64().unwrap() > 0.0,
        "{prepare}"
    );
    let why = prepare["reason"].as_str().unwrap();
    assert!(
        why.starts_with("forecast: crossing") || why == "traffic is on burst",
        "{prepare}"
    );
    assert!(
        prepare["t"].as_f64().unwrap() <= first_up_t,
        "prepared only after traffic moved: {prepare} vs the first change at {first_up_t}"
    );
    let back_t = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|c| c["burst_weight"] == 0)
        .expect("traffic never came back")["t"]
        .as_f64()
        .unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n["action"] == "release" && n["t"].as_f64().unwrap() > back_t),
        "not released after the burst: {notes:#?}"
    );

    // The server agrees: burstd scaled the Deployment, put it back to 0 and said so.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let admin = cp.admin_client().await.unwrap();
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(admin.clone(), &ns);
        let d = deployments.get("bursty-worker").await.unwrap();
        let managers = burst_testkit::kube::field_managers(&serde_json::to_value(&d).unwrap());
        assert!(managers.iter().any(|m| m == "burstd"), "{managers:?}");
        assert_eq!(d.spec.replicas, Some(0));
        assert!(
            !d.metadata
                .annotations
                .unwrap_or_default()
                .contains_key("burst.dev/prewarm-original"),
            "the pre-warm record is still there"
        );
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin, &ns);
        let list = events.list(&Default::default()).await.unwrap();
        for reason in ["Prewarm", "PrewarmReleased"] {
            assert!(
                list.items
                    .iter()
                    .any(|e| e.reason.as_deref() == Some(reason)),
                "burstd recorded no {reason} Event"
            );
        }
    });
}

#[test]
fn a_hand_edit_of_the_virtual_service_reaches_the_proxy_and_burstd_restores_its_split() {
    let cp = ControlPlane::shared().unwrap();
    let ns = unique("demo-edit");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &cp.kubeconfig(cp.admin_token(), "default"));
    // Interactive, without load: burstd has no data and holds 100/0.
    let demo = Running::start(&[
        "demo",
        "--kubeconfig",
        &kubeconfig,
        "--namespace",
        &ns,
        "--port",
        "0",
    ]);
    demo.wait_for(&["Open the page"], Duration::from_secs(90));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin = rt.block_on(cp.admin_client()).unwrap();
    rt.block_on(async {
        let patch: burst_istio::json_patch::Patch = serde_json::from_value(json!([
            {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 30},
            {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 70},
        ]))
        .unwrap();
        vs_api(admin.clone(), &ns)
            .patch(
                "worker-virtual-service",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Json::<()>(patch),
            )
            .await
            .unwrap();
    });
    // The proxy applies what the server holds, whoever wrote it...
    let edit = demo.wait_for(&["split 100/0 -> 30/70"], Duration::from_secs(20));
    assert!(edit.contains("resourceVersion"), "{edit}");
    // ...and burstd sees the drift at its next tick and writes its split back, which the
    // proxy applies in turn.
    demo.wait_for(&["split 30/70 -> 100/0"], Duration::from_secs(20));
    rt.block_on(async {
        let obj = vs_api(admin.clone(), &ns)
            .get("worker-virtual-service")
            .await
            .unwrap();
        assert_eq!(
            VsTarget::default()
                .read(&serde_json::to_value(&obj).unwrap())
                .unwrap(),
            burst_core::Split::ALL_PRIMARY
        );
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin, &ns);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = events.list(&Default::default()).await.unwrap();
            if list
                .items
                .iter()
                .any(|e| e.reason.as_deref() == Some("RouteDrifted"))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "burstd recorded no RouteDrifted Event"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// Runs `burst demo --kubeconfig KUBECONFIG --namespace NS --headless --json --port 0
/// EXTRA --policy POLICY --scenario SCENARIO`, bounded by `limit`; asserts that it
/// succeeded and returns its JSON report and stderr.
fn kube_headless(
    kubeconfig: &str,
    ns: &str,
    extra: &[&str],
    policy: &Path,
    scenario: &str,
    limit: Duration,
) -> (Value, String) {
    let mut args = vec!["demo", "--kubeconfig", kubeconfig, "--namespace", ns];
    args.extend(["--headless", "--json", "--port", "0"]);
    args.extend(extra);
    let policy = policy.to_str().expect("UTF-8 path");
    args.extend(["--policy", policy, "--scenario", scenario]);
    let (code, stdout, stderr) = burst(&args, limit);
    assert_eq!(code, 0, "burst demo failed\nstderr:\n{stderr}");
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (report, stderr)
}

/// Runs `burst demo --kubeconfig KUBECONFIG [--namespace NS] --headless --port 0`, which
/// must refuse to start: asserts exit code 2; returns stdout and stderr.
fn demo_refused(kubeconfig: &str, namespace: Option<&str>) -> (String, String) {
    let mut args = vec!["demo", "--kubeconfig", kubeconfig];
    if let Some(ns) = namespace {
        args.extend(["--namespace", ns]);
    }
    args.extend(["--headless", "--port", "0"]);
    let (code, stdout, stderr) = burst(&args, Duration::from_secs(60));
    assert_eq!(code, 2, "{stderr}");
    (stdout, stderr)
}

/// Asserts that the demo did not start (its banner is missing from `stderr`).
fn assert_not_started(stderr: &str) {
    assert!(
        !stderr.contains("String Hashr demo"),
        "started anyway: {stderr}"
    );
}

#[test]
fn a_server_that_does_not_answer_exits_2() {
    let port = burst_testkit::free_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(
        dir.path(),
        &burst_testkit::kube::kubeconfig(
            &format!("https://127.0.0.1:{port}"),
            None,
            "t",
            "default",
        ),
    );
    let (stdout, stderr) = demo_refused(&kubeconfig, None);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("cannot reach the API server") && stderr.contains(&port.to_string()),
        "{stderr}"
    );
    assert_not_started(&stderr);

    let missing = dir.path().join("nope");
    let (code, _, stderr) = burst(
        &[
            "demo",
            "--kubeconfig",
            missing.to_str().unwrap(),
            "--headless",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot use kubeconfig") && stderr.contains("nope"),
        "{stderr}"
    );
}

#[test]
fn refused_credentials_exit_2() {
    let cp = ControlPlane::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &cp.kubeconfig("not-a-token", "default"));
    let (_, stderr) = demo_refused(&kubeconfig, None);
    assert!(stderr.contains("refused the credentials"), "{stderr}");
}

#[test]
fn a_user_without_permissions_exits_2_and_creates_nothing() {
    let cp = ControlPlane::shared().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let home = rt.block_on(cp.create_namespace("demo-sa")).unwrap();
    let token = rt
        .block_on(cp.service_account_token(&home, "nobody"))
        .unwrap();
    let ns = unique("demo-noperm");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &cp.kubeconfig(&token, &home));
    let (stdout, stderr) = demo_refused(&kubeconfig, Some(&ns));
    assert!(stdout.is_empty(), "{stdout}");
    for needle in [
        &format!("system:serviceaccount:{home}:nobody"),
        "may not do what the demo needs",
        "create namespaces (cluster-wide)",
        &format!("patch virtualservices.networking.istio.io in namespace {ns}"),
        &format!("patch burstpolicies/status.bursting.dev in namespace {ns}"),
        &format!("create events.events.k8s.io in namespace {ns}"),
        "nothing was created",
    ] {
        assert!(stderr.contains(needle), "{needle} missing:\n{stderr}");
    }
    assert_not_started(&stderr);
    rt.block_on(async {
        let api: Api<Namespace> = Api::all(cp.admin_client().await.unwrap());
        assert!(
            api.get_opt(&ns).await.unwrap().is_none(),
            "{ns} was created"
        );
    });
}

#[test]
fn a_namespace_that_cannot_be_used_exits_2() {
    let cp = ControlPlane::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &cp.kubeconfig(cp.admin_token(), "default"));

    // The server refuses the name.
    let (stdout, stderr) = demo_refused(&kubeconfig, Some("Not_A_Name"));
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("cannot create namespace Not_A_Name") && stderr.contains("422"),
        "{stderr}"
    );
    assert_not_started(&stderr);

    // A namespace being deleted (no controller-manager runs, so it stays Terminating).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let doomed = rt.block_on(async {
        let ns = cp.create_namespace("demo-doomed").await.unwrap();
        let api: Api<Namespace> = Api::all(cp.admin_client().await.unwrap());
        api.delete(&ns, &DeleteParams::default()).await.unwrap();
        ns
    });
    let (_, stderr) = demo_refused(&kubeconfig, Some(&doomed));
    assert!(
        stderr.contains(&format!("namespace {doomed}")) && stderr.contains("being deleted"),
        "{stderr}"
    );
    // The demo wrote nothing into it.
    rt.block_on(async {
        let api = vs_api(cp.admin_client().await.unwrap(), &doomed);
        match api.get_opt("worker-virtual-service").await {
            Ok(found) => assert!(found.is_none(), "the demo wrote into {doomed}"),
            // The CRD is not installed (yet) in this control plane.
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 404, "{s:?}"),
            Err(e) => panic!("{e}"),
        }
    });
}
