//! The burstd binary: help text, `burstd crd`, configuration errors, and a whole run in
//! single-policy mode against the fake API server, stopped with SIGTERM.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use burst_fake_kube::FakeKube;
use serde_json::json;

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

/// A fake API server with the worker VirtualService (and the BurstPolicy CRD), a
/// `/metrics` endpoint with a gauge of 25 rps, and a kubeconfig for the fake.
struct Cluster {
    fake: FakeKube,
    metrics_url: String,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let fake = FakeKube::start().await.unwrap();
        let crd = serde_json::to_value(burst_operator::crd::crd()).unwrap();
        fake.install_crd(&crd).unwrap();
        fake.insert(
            "virtualservices",
            json!({
                "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "worker-virtual-service", "namespace": "default"},
                "spec": {"hosts": ["worker-service"], "http": [{"route": [
                    {"destination": {"host": "worker-service", "subset": "primary"}, "weight": 100},
                    {"destination": {"host": "worker-service", "subset": "burst"}, "weight": 0}]}]}
            }),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_url = format!("http://{}/metrics", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(|| async { "demand_rps 25\n" }),
            );
            axum::serve(listener, app).await.unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, fake.kubeconfig("default", "t")).unwrap();
        Cluster {
            fake,
            metrics_url,
            kubeconfig,
            _dir: dir,
        }
    }

    fn burst_weight(&self) -> i64 {
        self.fake
            .object(
                "networking.istio.io",
                "virtualservices",
                Some("default"),
                "worker-virtual-service",
            )
            .unwrap()["spec"]["http"][0]["route"][1]["weight"]
            .as_i64()
            .unwrap()
    }

    fn lease(&self) -> Option<serde_json::Value> {
        self.fake.object(
            "coordination.k8s.io",
            "leases",
            Some("burst-system"),
            "burstd",
        )
    }

    /// burstd with this cluster's kubeconfig, JSON logs, a Lease and a listen port.
    fn burstd(&self, port: u16) -> Command {
        let mut c = burstd();
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("BURST_LOG_FORMAT", "json")
            .env("BURST_LISTEN", format!("127.0.0.1:{port}"))
            .env("BURST_LEASE_NAMESPACE", "burst-system")
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
    for _ in 0..200 {
        if cluster.burst_weight() == 100
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
    for _ in 0..200 {
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
    let cluster = Cluster::start().await;
    let port = burst_testkit::free_port().unwrap();
    let child = cluster
        .burstd(port)
        .env("BURST_SCRAPE_TARGETS", &cluster.metrics_url)
        .env("BURST_SCRAPE_METRIC", "demand_rps")
        .env("BURST_SCRAPE_GAUGE", "true")
        .env("BURST_VIRTUAL_SERVICE", "worker-virtual-service")
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
    assert!(
        metrics.contains(
            r#"burstd_observed_rps{policy="default/worker-virtual-service",window="short"} 25"#
        ),
        "{metrics}"
    );
    assert_eq!(
        cluster.lease().unwrap()["spec"]["holderIdentity"],
        "burstd-test"
    );

    let (exited, stderr) = terminate(&mut child).await;
    assert!(exited.success(), "{stderr}");
    // JSON logs, one object per line.
    let first = stderr.lines().next().unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "{first}"
    );
    assert!(stderr.contains("lease released"), "{stderr}");
    let lease = cluster.lease().unwrap();
    assert!(lease["spec"].get("holderIdentity").is_none(), "{lease}");
    assert_eq!(cluster.burst_weight(), 100, "the split stays where it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_mode_runs_policies_and_stops_cleanly_on_sigterm() {
    let cluster = Cluster::start().await;
    let policy = json!({
        "apiVersion": "bursting.dev/v1alpha1", "kind": "BurstPolicy",
        "metadata": {"name": "worker", "namespace": "default"},
        "spec": {
            "source": {"scrape": {"targets": [cluster.metrics_url], "metric": "demand_rps", "mode": "gauge"}},
            "policy": {"tick": "200ms"},
            "target": {"name": "worker-virtual-service"}
        }
    });
    cluster.fake.insert("burstpolicies", policy).unwrap();
    let port = burst_testkit::free_port().unwrap();
    let child = cluster
        .burstd(port)
        .env("BURST_STATUS_INTERVAL", "200ms")
        .arg("operator")
        .spawn()
        .unwrap();
    let mut child = Child(child);
    wait_bursting_and_ready(&cluster, port).await;
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status = cluster
            .fake
            .object("bursting.dev", "burstpolicies", Some("default"), "worker")
            .unwrap()["status"]
            .clone();
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
    assert!(
        cluster.lease().unwrap()["spec"]
            .get("holderIdentity")
            .is_none()
    );
}
