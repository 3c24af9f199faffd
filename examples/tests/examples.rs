//! Runs every example as its user would, as the binary cargo built for this test run
//! (`cargo test` builds the examples into `<target>/<profile>/examples/`), and checks its
//! exit code and what it printed.
//!
//! `prometheus_to_virtualservice` runs against a real Prometheus (Debian package
//! `prometheus`) scraping a loopback target whose counter grows at a known rate, and a real
//! kube-apiserver + etcd with the Istio CRDs (`burst_testkit::kube`); a missing server
//! fails that test with the command that installs or builds it.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use burst_core::{MetricSource, Reading};
use burst_prom::{PrometheusConfig, PrometheusSource};
use burst_testkit::kube::ControlPlane;
use burst_testkit::prometheus::{IstioSeries, IstioTarget, PrometheusOptions, PrometheusServer};
use burst_testkit::{Finished, run_bounded};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

/// The example binary `name`, next to this test's `deps/` directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        bin.is_file(),
        "{} not found: build the examples with `cargo build -p burst-examples --examples` \
         (`cargo test -p burst-examples` does)",
        bin.display()
    );
    bin
}

/// Runs `command` for at most 60 s and requires exit code 0; returns what it printed.
fn succeeds(command: Command) -> Finished {
    let name = format!("{command:?}");
    let f = run_bounded(command, Duration::from_secs(60)).unwrap();
    assert!(
        f.success,
        "{name} failed\nstdout:\n{}\nstderr:\n{}",
        f.stdout, f.stderr
    );
    f
}

fn run(name: &str) -> String {
    succeeds(Command::new(example(name))).stdout
}

fn assert_has(stdout: &str, needle: &str) {
    assert!(stdout.contains(needle), "no `{needle}` in:\n{stdout}");
}

#[test]
fn custom_source_flips_the_split_once_the_counted_rate_crosses_high() {
    let out = run("custom_source");
    let first = out.lines().next().unwrap();
    assert!(first.starts_with("no data (first sample"), "{first}");
    assert_has(&out, "flipped: 100/0 -> 0/100 (rule above_high)");
    assert!(
        out.lines()
            .last()
            .unwrap()
            .ends_with("with the split at 0/100"),
        "{out}"
    );
}

#[test]
fn custom_router_refuses_an_unready_pool_without_half_applying_then_retries() {
    let out = run("custom_router");
    let failed = out.lines().find(|l| l.contains("failed 0/100")).unwrap();
    assert!(failed.starts_with("tick 3:"), "{failed}");
    assert_has(failed, "[unready]: pool `burst` has no ready endpoint");
    assert_has(failed, "table still 100/0");
    let applied: Vec<&str> = out.lines().filter(|l| l.contains("applied")).collect();
    assert_eq!(applied.len(), 2, "{out}");
    assert!(applied[0].starts_with("tick 4:"), "{out}");
    assert_has(
        &out,
        "stopped after 9 ticks; table history: 100/0 -> 0/100 -> 100/0",
    );
}

#[test]
fn own_reconciler_retries_start_then_ticks_through_the_script() {
    let out = run("own_reconciler");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("round 1: cannot read the route [unavailable]"),
        "{out}"
    );
    assert_eq!(
        lines[1], "round 2: started, the split in effect is 100/0",
        "{out}"
    );
    assert_has(&out, "round 4: 20.000 -> 0/100 (above_high:");
    assert_has(&out, "round 9: 5.000 -> 100/0 (below_low:");
    assert_has(&out, "round 11: nothing scripted: the script is played");
    assert_eq!(
        lines.last().copied(),
        Some("changes: 100/0 -> 0/100 -> 100/0"),
        "{out}"
    );
}

#[test]
fn custom_policy_changes_the_split_by_time_of_day_with_its_own_rules() {
    let out = run("custom_policy");
    let changes: Vec<(&str, &str, &str)> = out
        .lines()
        .filter(|l| l.contains(" split "))
        .map(|l| {
            let mut words = l.split_whitespace();
            let time = words.next().unwrap();
            let rule = words.next().unwrap();
            let split = words.nth(1).unwrap();
            (time, rule, split)
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("08:30", "prewarm", "90/10"),
            ("09:00", "office_hours_busy", "0/100"),
            ("18:00", "after_hours", "100/0"),
        ],
        "{out}"
    );
    assert_has(&out, "office hours     changes   3");
    assert_has(&out, "seed hysteresis  changes   2");
}

/// Calls `f` every 250 ms until it gives `Some`, for at most `limit`.
async fn poll<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

const VS: &str = "worker-virtual-service";

fn weights(vs: &DynamicObject) -> (u64, u64) {
    let route = &vs.data["spec"]["http"][0]["route"];
    let weight = |i: usize| route[i]["weight"].as_u64().unwrap_or(0);
    (weight(0), weight(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_to_virtualservice_moves_a_real_virtualservice_to_burst() {
    // A real cluster: the Istio CRDs and a VirtualService at 100/0 in a namespace of its own.
    let cp = ControlPlane::shared().unwrap();
    cp.install_crd_files(&["schemas/istio/crd-all.gen.yaml"])
        .await
        .unwrap();
    let ns = cp.create_namespace("example").await.unwrap();
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
        "virtualservices",
    );
    let api: Api<DynamicObject> =
        Api::namespaced_with(cp.admin_client().await.unwrap(), &ns, &resource);
    let host = "worker-service.default.svc.cluster.local";
    let vs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": VS},
        "spec": {"hosts": ["worker-service"], "http": [{"route": [
            {"destination": {"host": host, "subset": "primary"}, "weight": 100},
            {"destination": {"host": host, "subset": "burst"}, "weight": 0},
        ]}]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &vs).await.unwrap();

    // A real Prometheus scraping the seed's counter, growing by 40 per second (high is 15).
    let target = IstioTarget::start(vec![IstioSeries::seed("source", 40.0)])
        .await
        .unwrap();
    let prom = PrometheusServer::start(PrometheusOptions::scraping(&[target.host_port()])).unwrap();
    let seed_query = PrometheusSource::new(PrometheusConfig {
        url: prom.url(),
        ..PrometheusConfig::default()
    })
    .unwrap();
    // Until two scrapes are in the window there is no data, and the first rates are low
    // (Prometheus extrapolates over the window): wait until the rate is well above `high`
    // (15), so that the example's first tick sees it above too.
    poll(
        "a seed query rate above 20",
        Duration::from_secs(40),
        || async {
            match seed_query.observe().await {
                Ok(Reading::Value(o)) if o.rates.up.get() > 20.0 => Some(()),
                _ => None,
            }
        },
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, cp.kubeconfig(cp.admin_token(), &ns)).unwrap();
    // It runs until Ctrl-C: wait until it has moved the route and ticked twice more, then
    // send SIGINT and expect a clean stop.
    let out_file = dir.path().join("stdout");
    let mut child = Command::new(example("prometheus_to_virtualservice"))
        .env("PROMETHEUS_URL", prom.url())
        .env("KUBECONFIG", &kubeconfig)
        // The namespace comes from the kubeconfig's context.
        .env_remove("NAMESPACE")
        .env("VIRTUAL_SERVICE", VS)
        .env("TICK", "200ms")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .spawn()
        .unwrap();
    let ticked = poll(
        "three ticks of the example",
        Duration::from_secs(30),
        || {
            let text = std::fs::read_to_string(&out_file).unwrap_or_default();
            async move { (text.matches("tick: ").count() >= 3).then_some(()) }
        },
    );
    let ticked = tokio::time::timeout(Duration::from_secs(40), ticked).await;
    let status = burst_testkit::interrupt(&mut child, Duration::from_secs(20)).unwrap();
    let out = std::fs::read_to_string(&out_file).unwrap();
    assert!(ticked.is_ok(), "{out}");
    assert!(status.success(), "{status}: {out}");
    let first = out.lines().next().unwrap();
    assert!(first.starts_with("tick: Applied"), "{out}");
    assert_has(&out, "above_high");
    assert!(
        out.lines().last().unwrap().ends_with("in effect: 0/100"),
        "{out}"
    );

    let stored = api.get(VS).await.unwrap();
    assert_eq!(weights(&stored), (0, 100), "{:?}", stored.data);
}
