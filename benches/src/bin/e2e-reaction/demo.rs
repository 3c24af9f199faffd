//! One `burst demo` process driven as a browser would (or headless), found through its
//! `--ready-file` (docs/reports.md), and what one run of it measured.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use burst_core::policy::{LoopSpec, PolicySpec};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

use crate::prometheus::Prometheus;
use crate::{BASE_RPS, DataPlane, KUBECONFIG, SPLIT_POLL, Sample, Source};

/// What one page run found.
pub(super) enum Run {
    Measured(Sample),
    /// The split moved to burst at the base load, before the step: the demo's change lines.
    Spurious(Vec<String>),
}

/// Stops the demo as Ctrl-C does (SIGINT, so it stops its own children, such as the
/// HAProxy of `--data-plane haproxy`), and kills it if it has not exited within 10 s.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

/// A running `burst demo` (interactive mode).
pub(super) struct Demo {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
    page: Url,
    split: SplitProbe,
    metrics_host: String,
}

/// Where the burst weight the data plane routes with is read.
pub(super) enum SplitProbe {
    /// The built-in mesh proxy's admin `/split`.
    Mesh(Url),
    /// HAProxy's Prometheus exporter (`haproxy_server_weight` of the server `burst`): what
    /// HAProxy itself routes with, after the runtime API command.
    Haproxy(Url),
}

impl SplitProbe {
    /// The probe for a demo whose ready event names `metrics`.
    fn for_metrics(metrics: &Url) -> anyhow::Result<SplitProbe> {
        Ok(match crate::DATA_PLANE.get() {
            Some(DataPlane::Haproxy) => {
                let mut url = metrics.clone();
                // Only the server metrics: a smaller page to fetch every poll.
                url.set_query(Some("scope=server"));
                SplitProbe::Haproxy(url)
            }
            _ => SplitProbe::Mesh(metrics.join("/").context("admin URL")?),
        })
    }
}

/// `burst demo` on a free page port with `policy`, measuring with `source` (and
/// Prometheus, and the kubeconfig).
pub(super) fn demo_command(
    burst: &Path,
    source: Source,
    policy: &Path,
    prom: Option<&Prometheus>,
) -> Command {
    let mut cmd = Command::new(burst);
    cmd.arg("demo")
        .arg("--port")
        .arg("0")
        .arg("--policy")
        .arg(policy)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(p) = prom {
        cmd.arg("--prometheus-url").arg(p.url());
    }
    if source == Source::Pods {
        cmd.arg("--source").arg("pods");
    }
    if let Some(DataPlane::Haproxy) = crate::DATA_PLANE.get() {
        cmd.arg("--data-plane").arg("haproxy");
    }
    if let Some(k) = KUBECONFIG.get() {
        // A fresh namespace per run: no status or Events of an earlier run.
        static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        cmd.arg("--kubeconfig")
            .arg(k)
            .arg("--namespace")
            .arg(format!("e2e-reaction-{}-{n}", std::process::id()));
    }
    cmd
}

/// Waits (at most 30 s) for the ready event `burst demo --ready-file` writes
/// (docs/reports.md); returns the page and metrics URLs.
pub(super) async fn wait_ready(child: &mut Child, path: &Path) -> anyhow::Result<(Url, Url)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = tokio::fs::read_to_string(path).await {
            let event: serde_json::Value =
                serde_json::from_str(&text).context("the demo's ready file is not JSON")?;
            if event["event"] != "ready" {
                bail!("the demo's ready file holds no ready event: {text}");
            }
            let url = |key: &str| -> anyhow::Result<Url> {
                let s = event[key]
                    .as_str()
                    .with_context(|| format!("no {key} in the ready event: {text}"))?;
                Url::parse(s).with_context(|| format!("{key} `{s}` in the ready event"))
            };
            return Ok((url("page")?, url("metrics")?));
        }
        if let Some(status) = child.try_wait()? {
            bail!("burst demo exited ({status}) before it was ready");
        }
        if tokio::time::Instant::now() > deadline {
            bail!("burst demo was not ready within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads the rest of the output in the background; the lines so far are in the result.
pub(super) fn drain<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    mut lines: tokio::io::Lines<BufReader<R>>,
) -> Arc<Mutex<Vec<String>>> {
    let all = Arc::new(Mutex::new(Vec::new()));
    let sink = all.clone();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(l);
        }
    });
    all
}

/// `HOST:PORT` of `url`.
pub(super) fn host_port(url: &Url) -> anyhow::Result<String> {
    Ok(format!(
        "{}:{}",
        url.host_str().context("no host")?,
        url.port_or_known_default().context("no port")?
    ))
}

impl Demo {
    pub(super) async fn start(
        burst: &Path,
        source: Source,
        policy: &Path,
        prom: Option<&Prometheus>,
    ) -> anyhow::Result<Demo> {
        let dir = tempfile::tempdir().context("a directory for the ready file")?;
        let ready = dir.path().join("ready.json");
        let mut child = demo_command(burst, source, policy, prom)
            .arg("--ready-file")
            .arg(&ready)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", burst.display()))?;
        let (page, metrics) = wait_ready(&mut child, &ready).await?;
        let stdout = child.stdout.take().context("no stdout")?;
        let output = drain(BufReader::new(stdout).lines());
        let split = SplitProbe::for_metrics(&metrics)?;
        Ok(Demo {
            child,
            output,
            page,
            split,
            metrics_host: host_port(&metrics)?,
        })
    }
}

/// Asks the page's API for `rps`.
pub(super) async fn set_frequency(
    http: &reqwest::Client,
    page: &Url,
    rps: f64,
) -> anyhow::Result<()> {
    let r = http
        .post(page.join("api/frequency")?)
        .json(&serde_json::json!({ "frequency": rps.to_string() }))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("setting the frequency to {rps}: {}", r.text().await?);
    }
    Ok(())
}

/// The burst weight the data plane routes with now.
pub(super) async fn burst_weight(
    http: &reqwest::Client,
    probe: &SplitProbe,
) -> anyhow::Result<u64> {
    match probe {
        SplitProbe::Mesh(admin) => {
            let v: serde_json::Value = http.get(admin.join("split")?).send().await?.json().await?;
            v["burst"].as_u64().context("no burst weight in /split")
        }
        SplitProbe::Haproxy(metrics) => {
            let text = http.get(metrics.clone()).send().await?.text().await?;
            haproxy_burst_weight(&text)
                .with_context(|| format!("no weight of the server `burst` at {metrics}"))
        }
    }
}

/// `haproxy_server_weight` of the server `burst` in HAProxy's exporter text.
fn haproxy_burst_weight(text: &str) -> Option<u64> {
    text.lines()
        .filter(|l| l.starts_with("haproxy_server_weight{") && l.contains("server=\"burst\""))
        .find_map(|l| l.rsplit(' ').next()?.trim().parse::<f64>().ok())
        .map(|w| w as u64)
}

/// Where in the tick the step falls for run `k` of `n`: spread evenly over one tick, since
/// the controller's ticks start with the demo and a fixed warm-up would put every step at
/// the same point of the tick.
pub(super) fn phase(k: usize, n: usize) -> Duration {
    LoopSpec::default()
        .tick
        .get()
        .mul_f64((k as f64 + 0.5) / n.max(1) as f64)
}

/// [`phase`], plus, behind a Prometheus scraping every `scrape` (longer than the tick),
/// `k / n` of a scrape interval: the run waits for Prometheus' first data and then a fixed
/// warm-up, so without it every step would fall at the same point of the scrape cycle, and
/// the reaction (which waits for the next scrape) would be the same in every run.
pub(super) fn phase_with_scrape(k: usize, n: usize, scrape: Option<Duration>) -> Duration {
    let within_scrape = scrape
        .filter(|s| *s > LoopSpec::default().tick.get())
        .map_or(Duration::ZERO, |s| s.mul_f64(k as f64 / n.max(1) as f64));
    phase(k, n) + within_scrape
}

/// How long to run at the base rate before the step: the long window must be full of it.
pub(super) fn warmup(spec: &PolicySpec) -> Duration {
    (spec.window_up().max(spec.window.get()) + Duration::from_secs(4)).max(Duration::from_secs(8))
}

/// One repetition driven through the page: base load, the step, then the split change and
/// the first `bursty-` hash, timed on one clock.
#[allow(clippy::too_many_arguments)]
pub(super) async fn page_run(
    burst: &Path,
    source: Source,
    policy: &Path,
    spec: &PolicySpec,
    step: f64,
    phase: Duration,
    prom: Option<&Prometheus>,
    http: &reqwest::Client,
) -> anyhow::Result<Run> {
    let mut demo = Demo::start(burst, source, policy, prom).await?;
    if let Some(p) = prom {
        p.set_target(&demo.metrics_host)?;
    }
    set_frequency(http, &demo.page, BASE_RPS).await?;
    if let Some(p) = prom {
        p.wait_for_data(http, p.interval() * 3 + Duration::from_secs(30))
            .await?;
    }
    tokio::time::sleep(warmup(spec) + phase).await;
    // Any split change so far (the demo prints each one) happened at the base load.
    let changes: Vec<String> = demo
        .output
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|l| l.contains("split"))
        .map(|l| l.trim().to_owned())
        .collect();
    if !changes.is_empty() || burst_weight(http, &demo.split).await? != 0 {
        stop(&mut demo.child).await;
        return Ok(Run::Spurious(changes));
    }

    // The page's event stream, as a browser has it open.
    let events = http
        .get(demo.page.join("events")?)
        .timeout(Duration::from_secs(3600))
        .send()
        .await?;
    let (bursty_tx, bursty_rx) = tokio::sync::oneshot::channel::<Instant>();
    let reader = tokio::spawn(async move {
        let mut events = events;
        let mut tail = String::new();
        while let Ok(Some(chunk)) = events.chunk().await {
            let now = Instant::now();
            tail.push_str(&String::from_utf8_lossy(&chunk));
            if tail.contains("bursty-") {
                let _ = bursty_tx.send(now);
                return;
            }
            // Keep enough to find a marker split across chunks.
            let keep = tail.len().saturating_sub(16);
            let cut = (keep..=tail.len())
                .find(|i| tail.is_char_boundary(*i))
                .unwrap_or(tail.len());
            tail.drain(..cut);
        }
    });

    let t0 = Instant::now();
    set_frequency(http, &demo.page, step).await?;
    let deadline = t0 + warmup(spec) + Duration::from_secs(30);
    let mut split_at = None;
    while Instant::now() < deadline {
        if burst_weight(http, &demo.split).await? > 0 {
            split_at = Some(Instant::now());
            break;
        }
        tokio::time::sleep(SPLIT_POLL).await;
    }
    let bursty_at = match split_at {
        Some(_) => tokio::time::timeout(Duration::from_secs(10), bursty_rx)
            .await
            .ok()
            .and_then(Result::ok),
        None => None,
    };
    reader.abort();
    stop(&mut demo.child).await;
    let since = |t: Option<Instant>| t.map(|t| t.duration_since(t0).as_secs_f64());
    Ok(Run::Measured(Sample {
        split: since(split_at),
        bursty: since(bursty_at),
    }))
}

/// `burst demo --headless --json`; the step's split change from its JSON report.
pub(super) async fn headless_run(
    burst: &Path,
    source: Source,
    policy: &Path,
    spec: &PolicySpec,
    step: f64,
    phase: Duration,
    prom: Option<&Prometheus>,
) -> anyhow::Result<Option<f64>> {
    // Prometheus needs two scrapes (and its target discovery) before it has a rate.
    let base = warmup(spec)
        + phase
        + prom.map_or(Duration::ZERO, |p| {
            p.interval() * 2 + Duration::from_secs(4)
        });
    let after = warmup(spec) + Duration::from_secs(5);
    let scenario = format!(
        "{BASE_RPS}rps:{}ms,{step}rps:{}s",
        base.as_millis(),
        after.as_secs()
    );
    let dir = tempfile::tempdir().context("a directory for the ready file")?;
    let ready = dir.path().join("ready.json");
    let mut child = demo_command(burst, source, policy, prom)
        .arg("--headless")
        .arg("--json")
        .arg("--scenario")
        .arg(&scenario)
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let (_, metrics) = wait_ready(&mut child, &ready).await?;
    if let Some(p) = prom {
        p.set_target(&host_port(&metrics)?)?;
    }
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut out = String::new();
    let total = base + after + Duration::from_secs(30);
    tokio::time::timeout(
        total,
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out),
    )
    .await
    .context("burst demo --headless did not finish in time")??;
    let _ = child.wait().await;
    let report: serde_json::Value = serde_json::from_str(&out).context("headless JSON")?;
    let first = report["summary"]["first_burst_s"].as_f64();
    Ok(first.map(|t| t - base.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_burst_weight_from_haproxy_exporter_text() {
        let text = "# HELP haproxy_server_weight Server weight\n\
                    # TYPE haproxy_server_weight gauge\n\
                    haproxy_server_weight{proxy=\"workers\",server=\"primary\"} 256\n\
                    haproxy_server_weight{proxy=\"workers\",server=\"burst\"} 26\n";
        assert_eq!(haproxy_burst_weight(text), Some(26));
        assert_eq!(
            haproxy_burst_weight("haproxy_server_weight{server=\"primary\"} 1\n"),
            None
        );
    }

    #[test]
    fn steps_are_spread_over_one_tick() {
        let phases: Vec<Duration> = (0..4).map(|k| phase(k, 4)).collect();
        assert_eq!(
            phases,
            [125, 375, 625, 875].map(Duration::from_millis).to_vec()
        );
        let fifteen = Some(Duration::from_secs(15));
        let spread: Vec<Duration> = (0..5).map(|k| phase_with_scrape(k, 5, fifteen)).collect();
        assert_eq!(
            spread,
            [100, 3300, 6500, 9700, 12900]
                .map(Duration::from_millis)
                .to_vec()
        );
        // A 1 s scrape is the tick: spread over the tick only.
        assert_eq!(
            phase_with_scrape(1, 4, Some(Duration::from_secs(1))),
            phase(1, 4)
        );
    }
}
