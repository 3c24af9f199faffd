//! One run of the bench: a fresh control plane with one VirtualService and BurstPolicy per
//! policy, the `/metrics/{i}` demand endpoints, and burstd measured while it runs.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use burst_testkit::kube::ControlPlane;
use serde_json::json;
use tokio::process::Command;

use crate::metrics::{clk_tck, cpu_secs, quantile, scrape, server_requests, status_kib};
use crate::{NS, Options, PERIOD, Run};

/// Demand of policy `i` at `t` seconds.
pub(super) fn rate(i: usize, period: u64) -> f64 {
    if (period as usize + i).is_multiple_of(10) {
        20.0
    } else {
        5.0
    }
}

/// Requests counted for policy `i` after `t` seconds.
pub(super) fn count(i: usize, t: f64) -> f64 {
    let full = (t / PERIOD).floor() as u64;
    let mut c = 0.0;
    for p in 0..full {
        c += rate(i, p) * PERIOD;
    }
    c + rate(i, full) * (t - full as f64 * PERIOD)
}

/// `/metrics/{i}`: policy `i`'s `istio_requests_total`, counted since the start.
pub(super) async fn demand(
    State(start): State<Arc<Instant>>,
    UrlPath(i): UrlPath<usize>,
) -> String {
    let c = count(i, start.elapsed().as_secs_f64()).floor();
    format!(
        "# TYPE istio_requests_total counter\n\
         istio_requests_total{{reporter=\"source\",source_workload=\"frontend-deployment\"}} {c}\n"
    )
}

/// The VirtualService of policy `i`.
pub(super) fn vs_name(i: usize) -> String {
    format!("worker-{i:04}")
}

/// One run: a fresh real control plane and metric endpoints, `burstd` at `path` against
/// them.
pub(super) async fn measure(o: &Options, burstd: &Path) -> anyhow::Result<Run> {
    let clk = clk_tck();
    let me = std::process::id().to_string();
    let cp = tokio::task::spawn_blocking(ControlPlane::start)
        .await?
        .map_err(anyhow::Error::msg)?;
    eprintln!(
        "  control plane ready in {:.1} s",
        cp.started_in().as_secs_f64()
    );
    cp.install_crd_files(&["schemas/istio/crd-all.gen.yaml"])
        .await
        .map_err(anyhow::Error::msg)?;
    let crd = serde_json::to_string(&burst_operator::api::crd())?;
    cp.install_crds(&crd).await.map_err(anyhow::Error::msg)?;
    let (etcd_pid, apiserver_pid) = cp.server_pids();
    let servers: Vec<String> = [etcd_pid, apiserver_pid]
        .into_iter()
        .flatten()
        .map(|p| p.to_string())
        .collect();
    if servers.len() != 2 {
        bail!("cannot find the etcd and kube-apiserver processes");
    }

    let start = Arc::new(Instant::now());
    let app = axum::Router::new()
        .route("/metrics/{i}", get(demand))
        .with_state(start.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let demand_base = format!("http://{}/metrics", listener.local_addr()?);
    let demand_server = tokio::spawn(async move { axum::serve(listener, app).await });
    let _stop_demand = AbortOnDrop(demand_server);

    let client = cp.admin_client().await.map_err(anyhow::Error::msg)?;
    create_objects(&client, o.policies, &demand_base).await?;

    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, cp.kubeconfig(cp.admin_token(), NS))?;
    let port = burst_testkit::free_port()?;
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let mut child = Command::new(burstd)
        .arg("operator")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--leader-elect", "false"])
        .args(["--watch-namespace", NS])
        .args(["--events", "true"])
        .args(["--shutdown-grace", "2s"])
        .args(["--identity", "burstd-scale"])
        .args(["--log-level", "warn"])
        .env("KUBECONFIG", &kubeconfig)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", burstd.display()))?;
    let pid = child.id().context("burstd exited at once")?.to_string();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()?;

    // Wait until every loop runs.
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("burstd exited with {status} before running its loops (its log is above)");
        }
        if let Ok(t) = scrape(&http, &metrics_url).await
            && t.policies >= o.policies as f64
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!("burstd did not start {} loops within 180 s", o.policies);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let startup_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "  all {} loops running after {startup_secs:.1} s; warming up {} s, then measuring {} s",
        o.policies, o.warmup, o.secs
    );
    tokio::time::sleep(Duration::from_secs(o.warmup)).await;

    let requests_before = server_requests(&client).await?;
    let t0 = Instant::now();
    let cpu0 = cpu_secs(&pid, clk)?;
    let own0 = cpu_secs(&me, clk)?;
    let servers0 = servers
        .iter()
        .map(|p| cpu_secs(p, clk))
        .sum::<anyhow::Result<f64>>()?;
    let ticks0 = scrape(&http, &metrics_url).await?;
    let mut rss_max: f64 = 0.0;
    let end = t0 + Duration::from_secs(o.secs);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_max = rss_max.max(status_kib(&pid, "VmRSS:")?);
    }
    let ticks1 = scrape(&http, &metrics_url).await?;
    let cpu1 = cpu_secs(&pid, clk)?;
    let own1 = cpu_secs(&me, clk)?;
    let servers1 = servers
        .iter()
        .map(|p| cpu_secs(p, clk))
        .sum::<anyhow::Result<f64>>()?;
    let wall = t0.elapsed().as_secs_f64();
    let hwm = status_kib(&pid, "VmHWM:")?;
    let requests_after = server_requests(&client).await?;
    let writes = requests_after.writes - requests_before.writes;
    let route_gets = requests_after.route_gets - requests_before.route_gets;
    child.kill().await.context("stopping burstd")?;
    drop(cp);

    let ticks = ticks1.count - ticks0.count;
    if ticks <= 0.0 {
        bail!("burstd ticked no loop during the {wall:.0} s window");
    }
    let cpu = cpu1 - cpu0;
    Ok(Run {
        startup_secs,
        ticks,
        due: o.policies as f64 * wall,
        cpu_per_tick_us: cpu / ticks * 1e6,
        cpu_pct: cpu / wall * 100.0,
        hwm_mib: hwm / 1024.0,
        rss_max_mib: rss_max / 1024.0,
        mean_ms: (ticks1.sum - ticks0.sum) / ticks * 1e3,
        p50_ms: quantile(&ticks0, &ticks1, 0.5) * 1e3,
        p99_ms: quantile(&ticks0, &ticks1, 0.99) * 1e3,
        writes_per_sec: writes / wall,
        route_gets_per_sec: route_gets / wall,
        write_errors: ticks1.writes_failed - ticks0.writes_failed,
        servers_cpu_pct: (servers1 - servers0) / wall * 100.0,
        bench_cpu_pct: (own1 - own0) / wall * 100.0,
    })
}

/// One VirtualService and one BurstPolicy per policy, created on the real server (a few at
/// a time, as a GitOps tool would apply them).
pub(super) async fn create_objects(
    client: &kube::Client,
    policies: usize,
    demand_base: &str,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    use kube::api::{Api, DynamicObject, PostParams};
    use kube::discovery::ApiResource;
    let resource = |group: &str, version: &str, kind: &str, plural: &str| ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    };
    let vs = resource(
        "networking.istio.io",
        "v1",
        "VirtualService",
        "virtualservices",
    );
    let bp = resource("bursting.dev", "v1alpha1", "BurstPolicy", "burstpolicies");
    let vs_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &vs);
    let bp_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &bp);
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..policies)
        .map(|i| {
            let vs_api = vs_api.clone();
            let bp_api = bp_api.clone();
            async move {
                let route: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                    "metadata": {"name": vs_name(i), "namespace": NS},
                    "spec": {"hosts": ["worker-service"], "http": [{"route": [
                        {"destination": {"host": "worker-service", "subset": "primary"}, "weight": 100},
                        {"destination": {"host": "worker-service", "subset": "burst"}, "weight": 0}
                    ]}]}
                }))?;
                vs_api.create(&PostParams::default(), &route).await?;
                let policy: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "bursting.dev/v1alpha1", "kind": "BurstPolicy",
                    "metadata": {"name": vs_name(i), "namespace": NS},
                    "spec": {
                        "source": {"scrape": {
                            "targets": [format!("{demand_base}/{i}")],
                            "metric": "istio_requests_total",
                            "matchers": {"reporter": "source"},
                        }},
                        "policy": {"tick": "1s"},
                        "target": {"kind": "VirtualService", "name": vs_name(i)},
                    }
                }))?;
                bp_api.create(&PostParams::default(), &policy).await?;
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<()>>()
}

/// Aborts a background task when dropped.
pub(super) struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demand_integrates_the_piecewise_rate() {
        // Policy 0 is at 20 rps in period 0, then 5 rps.
        assert_eq!(count(0, 10.0), 200.0);
        assert_eq!(count(0, PERIOD + 2.0), 20.0 * PERIOD + 10.0);
        assert_eq!(count(1, 4.0), 20.0);
    }
}
