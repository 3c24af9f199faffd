//! `burstd-scale`: burstd in operator mode with many BurstPolicies, against the in-process
//! fake API server (`burst-fake-kube`) and fake `/metrics` endpoints, at a 1 s tick.
//!
//! ```text
//! cargo run --release -p burst-benches --bin burstd-scale -- [--policies 1000] [--secs 60] [--warmup 20]
//! ```
//!
//! This process serves the fake API server (CRD installed, one VirtualService per policy)
//! and one `/metrics/{i}` endpoint per policy with an `istio_requests_total` counter whose
//! rate is 5 rps, or 20 rps for a tenth of the policies in each 20 s period (so about 100
//! policies move to burst and 100 come back every 20 s: route patches, status writes and
//! Events happen all the time). It creates the policies, then starts a child process (this
//! binary with `--child`) that runs burstd's operator mode (`burst_operator::app::
//! run_operator_mode`, as `burstd` does; Events on, no leader election) against the fake.
//!
//! Measured on the child alone: CPU time (`/proc/PID/stat`) per tick over the measuring
//! window (ticks counted from burstd's own `burstd_tick_duration_seconds_count`), peak RSS
//! (`VmHWM`), and the tick duration's mean and p50/p99 (interpolated in burstd's histogram
//! buckets, which double from 1 ms). The fake API server's CPU (this process) is printed for
//! context: it shares the machine's cores with burstd.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use burst_fake_kube::FakeKube;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const NS: &str = "default";
/// Length of one demand period.
const PERIOD: f64 = 20.0;

#[derive(Debug)]
struct Options {
    policies: usize,
    secs: u64,
    warmup: u64,
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = if args.first().map(String::as_str) == Some("--child") {
        runtime.block_on(child(&args[1..]))
    } else {
        match parse_args(&args) {
            Ok(o) => runtime.block_on(parent(o)),
            Err(e) => Err(e),
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn parse_args(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options {
        policies: 1000,
        secs: 60,
        warmup: 20,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--policies" => o.policies = value.parse().context("--policies")?,
            "--secs" => o.secs = value.parse().context("--secs")?,
            "--warmup" => o.warmup = value.parse().context("--warmup")?,
            other => bail!("unknown argument `{other}`; use --policies N --secs S --warmup S"),
        }
    }
    if o.policies == 0 || o.secs == 0 {
        bail!("--policies and --secs must be at least 1");
    }
    Ok(o)
}

/// The child: burstd's operator mode until stdin closes. Prints `metrics ADDR` once serving.
async fn child(args: &[String]) -> anyhow::Result<()> {
    let [kube_url] = args else {
        bail!("usage: burstd-scale --child KUBE_URL");
    };
    let uri: http::Uri = kube_url.parse().context("KUBE_URL")?;
    let client = kube::Client::try_from(kube::Config::new(uri))?;
    let port = burst_testkit::free_port()?;
    let mut options = burst_operator::app::CommonOptions::new("burstd-scale");
    options.listen = burst_testkit::loopback(port);
    println!("metrics http://127.0.0.1:{port}/metrics");
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let _ = closed_tx.send(());
    });
    let stop = async {
        let _ = closed_rx.await;
    };
    burst_operator::app::run_operator_mode(
        client,
        options,
        burst_operator::operator::OperatorSettings {
            namespace: Some(NS.to_owned()),
            shutdown_grace: Duration::from_secs(5),
        },
        stop,
    )
    .await?;
    Ok(())
}

/// Demand of policy `i` at `t` seconds.
fn rate(i: usize, period: u64) -> f64 {
    if (period as usize + i).is_multiple_of(10) {
        20.0
    } else {
        5.0
    }
}

/// Requests counted for policy `i` after `t` seconds.
fn count(i: usize, t: f64) -> f64 {
    let full = (t / PERIOD).floor() as u64;
    let mut c = 0.0;
    for p in 0..full {
        c += rate(i, p) * PERIOD;
    }
    c + rate(i, full) * (t - full as f64 * PERIOD)
}

async fn demand(State(start): State<Arc<Instant>>, UrlPath(i): UrlPath<usize>) -> String {
    let c = count(i, start.elapsed().as_secs_f64()).floor();
    format!(
        "# TYPE istio_requests_total counter\n\
         istio_requests_total{{reporter=\"source\",source_workload=\"frontend-deployment\"}} {c}\n"
    )
}

fn vs_name(i: usize) -> String {
    format!("worker-{i:04}")
}

/// CPU seconds (user + system) of a process.
fn cpu_secs(pid: &str, clk_tck: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(") ").context("odd /proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11).context("utime")?.parse()?;
    let stime: f64 = f.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / clk_tck)
}

fn status_kib(pid: &str, key: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key}"))?;
    let kib: f64 = line.split_whitespace().nth(1).context("value")?.parse()?;
    Ok(kib)
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The tick histogram summed over every policy: (upper bound, cumulative count) pairs,
/// sum and count; plus the `burstd_policies` gauge.
#[derive(Debug, Default, Clone)]
struct Ticks {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
    policies: f64,
    writes_failed: f64,
}

fn parse_ticks(text: &str) -> Ticks {
    let mut t = Ticks::default();
    let mut buckets: std::collections::BTreeMap<u64, f64> = Default::default();
    for line in text.lines() {
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        if let Some(rest) = name_labels.strip_prefix("burstd_tick_duration_seconds_bucket{") {
            if let Some(le) = rest.split("le=\"").nth(1).and_then(|s| s.split('"').next()) {
                let le: f64 = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::NAN)
                };
                *buckets.entry(le.to_bits()).or_default() += v;
            }
        } else if name_labels.starts_with("burstd_tick_duration_seconds_sum") {
            t.sum += v;
        } else if name_labels.starts_with("burstd_tick_duration_seconds_count") {
            t.count += v;
        } else if name_labels == "burstd_policies" {
            t.policies = v;
        } else if name_labels.starts_with("burstd_status_write_errors_total")
            || name_labels.starts_with("burstd_router_errors_total")
        {
            t.writes_failed += v;
        }
    }
    t.buckets = buckets
        .into_iter()
        .map(|(k, v)| (f64::from_bits(k), v))
        .collect();
    t.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    t
}

/// Quantile `q` of the ticks between two snapshots, interpolated inside a bucket.
fn quantile(before: &Ticks, after: &Ticks, q: f64) -> f64 {
    let delta: Vec<(f64, f64)> = after
        .buckets
        .iter()
        .map(|(le, c)| {
            let b = before
                .buckets
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |x| x.1);
            (*le, c - b)
        })
        .collect();
    let total = delta.last().map_or(0.0, |x| x.1);
    let want = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, c) in &delta {
        if c >= want {
            if le.is_infinite() {
                return lower.0;
            }
            let span = c - lower.1;
            let frac = if span > 0.0 {
                (want - lower.1) / span
            } else {
                1.0
            };
            return lower.0 + (le - lower.0) * frac;
        }
        lower = (le, c);
    }
    f64::NAN
}

async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<Ticks> {
    let text = http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(parse_ticks(&text))
}

async fn parent(o: Options) -> anyhow::Result<()> {
    let clk = clk_tck();
    let me = std::process::id().to_string();
    let fake = FakeKube::start().await?;
    let crd = serde_json::to_value(burst_operator::crd::crd())?;
    fake.install_crd(&crd)?;

    let start = Arc::new(Instant::now());
    let app = axum::Router::new()
        .route("/metrics/{i}", get(demand))
        .with_state(start.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let demand_base = format!("http://{}/metrics", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    for i in 0..o.policies {
        fake.insert(
            "virtualservices",
            json!({
                "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": vs_name(i), "namespace": NS},
                "spec": {"hosts": ["worker-service"], "http": [{"route": [
                    {"destination": {"host": "worker-service", "subset": "primary"}, "weight": 100},
                    {"destination": {"host": "worker-service", "subset": "burst"}, "weight": 0}
                ]}]}
            }),
        )?;
        fake.insert(
            "burstpolicies",
            json!({
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
            }),
        )?;
    }
    eprintln!(
        "{} BurstPolicies and VirtualServices in the fake API server at {}; load average {}",
        o.policies,
        fake.url(),
        loadavg()
    );

    let exe = std::env::current_exe()?;
    let mut child = Command::new(&exe)
        .arg("--child")
        .arg(fake.url())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let pid = child.id().context("child pid")?.to_string();
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let metrics_url = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the child printed nothing in 30 s")??
        .and_then(|l| l.strip_prefix("metrics ").map(str::to_owned))
        .context("the child's first line is not `metrics URL`")?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()?;

    // Wait until every loop runs.
    let started = Instant::now();
    loop {
        if let Ok(t) = scrape(&http, &metrics_url).await
            && t.policies >= o.policies as f64
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("burstd did not start {} loops within 120 s", o.policies);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "all {} loops running after {:.1} s; warming up {} s, then measuring {} s",
        o.policies,
        started.elapsed().as_secs_f64(),
        o.warmup,
        o.secs
    );
    tokio::time::sleep(Duration::from_secs(o.warmup)).await;

    let load_before = loadavg();
    let writes_before = fake.writes().len();
    let t0 = Instant::now();
    let cpu0 = cpu_secs(&pid, clk)?;
    let own0 = cpu_secs(&me, clk)?;
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
    let wall = t0.elapsed().as_secs_f64();
    let hwm = status_kib(&pid, "VmHWM:")?;
    let writes = fake.writes().len() - writes_before;
    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;

    let ticks = ticks1.count - ticks0.count;
    let cpu = cpu1 - cpu0;
    let fake_cpu = own1 - own0;
    let mean = (ticks1.sum - ticks0.sum) / ticks;
    println!(
        "{} policies, 1 s tick, {wall:.0} s measured after {} s warm-up; load average {load_before} -> {}",
        o.policies,
        o.warmup,
        loadavg()
    );
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!(
        "| ticks done / due | {ticks:.0} / {:.0} ({:.1} %) |",
        o.policies as f64 * wall,
        ticks / (o.policies as f64 * wall) * 100.0
    );
    println!("| burstd CPU per tick | {:.1} µs |", cpu / ticks * 1e6);
    println!("| burstd CPU | {:.1} % of one core |", cpu / wall * 100.0);
    println!("| burstd peak RSS (VmHWM) | {:.1} MiB |", hwm / 1024.0);
    println!(
        "| burstd RSS during the window (max VmRSS) | {:.1} MiB |",
        rss_max / 1024.0
    );
    println!("| tick duration mean | {:.2} ms |", mean * 1e3);
    println!(
        "| tick duration p50 / p99 (histogram) | {:.2} ms / {:.2} ms |",
        quantile(&ticks0, &ticks1, 0.5) * 1e3,
        quantile(&ticks0, &ticks1, 0.99) * 1e3
    );
    println!(
        "| API writes (route patches, status, Events) | {writes} ({:.1}/s) |",
        writes as f64 / wall
    );
    println!(
        "| router and status write errors | {:.0} |",
        ticks1.writes_failed - ticks0.writes_failed
    );
    println!(
        "| fake API server + metric endpoints CPU (bench process) | {:.1} % of one core |",
        fake_cpu / wall * 100.0
    );
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE burstd_tick_duration_seconds histogram
burstd_tick_duration_seconds_sum{policy=\"default/a\"} 0.5
burstd_tick_duration_seconds_count{policy=\"default/a\"} 100
burstd_tick_duration_seconds_bucket{le=\"0.001\",policy=\"default/a\"} 0
burstd_tick_duration_seconds_bucket{le=\"0.002\",policy=\"default/a\"} 50
burstd_tick_duration_seconds_bucket{le=\"0.004\",policy=\"default/a\"} 100
burstd_tick_duration_seconds_bucket{le=\"+Inf\",policy=\"default/a\"} 100
burstd_tick_duration_seconds_sum{policy=\"default/b\"} 0.5
burstd_tick_duration_seconds_count{policy=\"default/b\"} 100
burstd_tick_duration_seconds_bucket{le=\"0.001\",policy=\"default/b\"} 0
burstd_tick_duration_seconds_bucket{le=\"0.002\",policy=\"default/b\"} 50
burstd_tick_duration_seconds_bucket{le=\"0.004\",policy=\"default/b\"} 100
burstd_tick_duration_seconds_bucket{le=\"+Inf\",policy=\"default/b\"} 100
burstd_policies 2
";

    #[test]
    fn ticks_are_summed_over_policies() {
        let t = parse_ticks(TEXT);
        assert_eq!(t.count, 200.0);
        assert_eq!(t.sum, 1.0);
        assert_eq!(t.policies, 2.0);
        assert_eq!(
            t.buckets,
            vec![
                (0.001, 0.0),
                (0.002, 100.0),
                (0.004, 200.0),
                (f64::INFINITY, 200.0)
            ]
        );
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_of_the_window() {
        let after = parse_ticks(TEXT);
        let before = Ticks::default();
        // Half the ticks are at most 2 ms: the median is the bucket's upper edge.
        assert!((quantile(&before, &after, 0.5) - 0.002).abs() < 1e-12);
        // 99 % lies 98 % of the way through the (2 ms, 4 ms] bucket.
        assert!((quantile(&before, &after, 0.99) - 0.00396).abs() < 1e-12);
        // Only ticks after `before` count.
        let mut earlier = after.clone();
        earlier.buckets = vec![
            (0.001, 0.0),
            (0.002, 100.0),
            (0.004, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert!(quantile(&earlier, &after, 0.5) > 0.002);
    }

    #[test]
    fn demand_integrates_the_piecewise_rate() {
        // Policy 0 is at 20 rps in period 0, then 5 rps.
        assert_eq!(count(0, 10.0), 200.0);
        assert_eq!(count(0, PERIOD + 2.0), 20.0 * PERIOD + 10.0);
        assert_eq!(count(1, 4.0), 20.0);
    }
}
