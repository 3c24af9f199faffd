//! `burstd-scale`: the real `burstd` binary in operator mode with many BurstPolicies,
//! against a real kube-apiserver and etcd (`burst_testkit::kube::ControlPlane`, built by
//! `scripts/control-plane.sh build`) and `/metrics` endpoints served by this process, at a
//! 1 s tick.
//!
//! ```text
//! cargo build --release -p burst-bin --bin burstd
//! cargo build --release -p burst-benches --bin burstd-scale
//! target/release/burstd-scale [--policies 1000] [--secs 60] [--warmup 20] [--runs 3]
//!     [--burstd [LABEL=]PATH]...
//! ```
//!
//! `--burstd` defaults to the `burstd` next to this binary (the same cargo target
//! directory; built on its own, as above: one `cargo build` of both would unify their
//! features and change burstd). Given several times (e.g. `--burstd
//! before=/tmp/burstd-old --burstd after=target/release/burstd`), the binaries take turns
//! in every run round and the summary gives each one's medians and the ratio of the last
//! to the first.
//!
//! For each run this process starts a fresh control plane (the Istio and BurstPolicy CRDs
//! installed, one VirtualService and one BurstPolicy per policy) and one `/metrics/{i}` endpoint per policy
//! with an `istio_requests_total` counter whose rate is 5 rps, or 20 rps for a tenth of the
//! policies in each 20 s period (so about 100 policies move to burst and 100 come back every
//! 20 s: route patches, status writes and Events happen all the time). It writes a
//! kubeconfig pointing at the API server (admin token) and starts `burstd operator` with it (no leader election,
//! Events on, watching the `default` namespace, logs at `warn`).
//!
//! Measured on the burstd process alone, once all its loops run and the warm-up is over:
//! CPU time (`/proc/PID/stat`) per tick over the measuring window (ticks counted from
//! burstd's own `burstd_tick_duration_seconds_count`), peak RSS (`VmHWM`), and the tick
//! duration's mean and p50/p99 (interpolated in burstd's histogram buckets, which double
//! from 1 ms). API writes per second come from the server's own `apiserver_request_total`
//! (write verbs). The CPU of kube-apiserver + etcd and of this process (the metric
//! endpoints) is printed for context: they share the machine's cores with burstd.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use burst_testkit::kube::ControlPlane;
use serde_json::json;
use tokio::process::Command;

const NS: &str = "default";
/// Length of one demand period.
const PERIOD: f64 = 20.0;
/// How to build the binary this bench runs.
const BUILD_BURSTD: &str = "cargo build --release -p burst-bin --bin burstd";

/// Runs the real burstd in operator mode with many BurstPolicies against a real
/// kube-apiserver and etcd, and measures its CPU per tick, memory, tick duration and API
/// writes.
#[derive(Debug, clap::Parser)]
#[command(name = "burstd-scale")]
struct Args {
    /// BurstPolicies (and VirtualServices, and /metrics endpoints), one control loop each.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    policies: u64,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    secs: u64,
    /// Seconds of warm-up once every loop runs.
    #[arg(long, default_value_t = 20)]
    warmup: u64,
    /// Runs per burstd binary.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// A burstd binary to measure, `[LABEL=]PATH` (repeatable; the binaries take turns in
    /// every round). Default: the `burstd` next to this binary.
    #[arg(long = "burstd", value_name = "[LABEL=]PATH")]
    burstd: Vec<String>,
}

#[derive(Debug)]
struct Options {
    policies: usize,
    secs: u64,
    warmup: u64,
    runs: usize,
    /// (label, path) of each burstd to measure.
    burstd: Vec<(String, PathBuf)>,
}

/// The figures of one run.
#[derive(Debug, Clone, Default)]
struct Run {
    startup_secs: f64,
    ticks: f64,
    due: f64,
    cpu_per_tick_us: f64,
    cpu_pct: f64,
    hwm_mib: f64,
    rss_max_mib: f64,
    mean_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    writes_per_sec: f64,
    write_errors: f64,
    servers_cpu_pct: f64,
    bench_cpu_pct: f64,
}

fn main() -> std::process::ExitCode {
    let args = <Args as clap::Parser>::parse();
    let options = match options(args) {
        Ok(o) => o,
        Err(e) => return burst_main::fail("error", burst_main::Exit::Usage, &e),
    };
    match burst_main::block_on(bench(options)) {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(e)) => burst_main::fail("error", burst_main::Exit::Runtime, &e),
        Err(e) => burst_main::fail("error", burst_main::Exit::Usage, &e),
    }
}

fn options(args: Args) -> anyhow::Result<Options> {
    let mut o = Options {
        policies: usize::try_from(args.policies).context("--policies")?,
        secs: args.secs,
        warmup: args.warmup,
        runs: usize::try_from(args.runs).context("--runs")?,
        burstd: args.burstd.iter().map(|v| labelled(v)).collect(),
    };
    if o.burstd.is_empty() {
        let exe = std::env::current_exe().context("cannot find this binary's path")?;
        let next_to_me = exe.with_file_name("burstd");
        o.burstd.push(("burstd".to_owned(), next_to_me));
    }
    for (_, path) in &o.burstd {
        check_burstd(path)?;
    }
    Ok(o)
}

/// `LABEL=PATH`, or `PATH` labelled with its file name.
fn labelled(value: &str) -> (String, PathBuf) {
    match value.split_once('=') {
        Some((label, path)) if !label.is_empty() && !label.contains('/') => {
            (label.to_owned(), PathBuf::from(path))
        }
        _ => {
            let path = PathBuf::from(value);
            let label = path
                .file_name()
                .map_or_else(|| value.to_owned(), |n| n.to_string_lossy().into_owned());
            (label, path)
        }
    }
}

fn check_burstd(path: &Path) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!(
            "no burstd binary at {}: build it with `{BUILD_BURSTD}` (with the same CARGO_TARGET_DIR as this bench), or pass --burstd PATH",
            path.display()
        );
    }
    Ok(())
}

async fn bench(o: Options) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "burstd at scale: {} policies, 1 s tick, {} s measured after {} s warm-up, {} run(s) per binary; {cores} cores; load average {}",
        o.policies,
        o.secs,
        o.warmup,
        o.runs,
        loadavg()
    );
    for (label, path) in &o.burstd {
        println!("- {label}: {}", path.display());
    }
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); o.burstd.len()];
    for round in 0..o.runs {
        for (b, (label, path)) in o.burstd.iter().enumerate() {
            eprintln!(
                "run {}/{} of {label} ({}), load average {}",
                round + 1,
                o.runs,
                path.display(),
                loadavg()
            );
            let run = measure(&o, path)
                .await
                .with_context(|| format!("{label}, run {}", round + 1))?;
            eprintln!("  {run:?}");
            results[b].push(run);
        }
    }
    println!("load average at the end: {}", loadavg());
    println!();
    print_runs(&o, &results);
    println!();
    print_summary(&o, &results);
    Ok(())
}

/// The figures of a table row: name, unit, value of a run, digits.
type Figure = (&'static str, &'static str, fn(&Run) -> f64, usize);

const FIGURES: &[Figure] = &[
    ("ticks done / due", "%", |r| r.ticks / r.due * 100.0, 1),
    ("burstd CPU per tick", "µs", |r| r.cpu_per_tick_us, 1),
    ("burstd CPU", "% of one core", |r| r.cpu_pct, 1),
    ("burstd peak RSS (VmHWM)", "MiB", |r| r.hwm_mib, 1),
    (
        "burstd RSS during the window (max VmRSS)",
        "MiB",
        |r| r.rss_max_mib,
        1,
    ),
    ("tick duration mean", "ms", |r| r.mean_ms, 2),
    ("tick duration p50 (histogram)", "ms", |r| r.p50_ms, 2),
    ("tick duration p99 (histogram)", "ms", |r| r.p99_ms, 2),
    ("all loops running after", "s", |r| r.startup_secs, 1),
    (
        "API writes (route patches, status, Events)",
        "/s",
        |r| r.writes_per_sec,
        1,
    ),
    ("router and status write errors", "", |r| r.write_errors, 0),
    (
        "kube-apiserver + etcd CPU",
        "% of one core",
        |r| r.servers_cpu_pct,
        1,
    ),
    (
        "metric endpoints CPU (bench process)",
        "% of one core",
        |r| r.bench_cpu_pct,
        1,
    ),
];

fn print_runs(o: &Options, results: &[Vec<Run>]) {
    println!("Every run (CPU per tick, peak RSS, tick p50 / p99):");
    println!();
    for (b, (label, _)) in o.burstd.iter().enumerate() {
        for (i, r) in results[b].iter().enumerate() {
            println!(
                "- {label} run {}: {:.1} µs, {:.1} MiB, {:.2} / {:.2} ms",
                i + 1,
                r.cpu_per_tick_us,
                r.hwm_mib,
                r.p50_ms,
                r.p99_ms
            );
        }
    }
}

fn print_summary(o: &Options, results: &[Vec<Run>]) {
    let labels: Vec<&str> = o.burstd.iter().map(|(l, _)| l.as_str()).collect();
    let compare = labels.len() > 1;
    let mut header = String::from("| figure (median) |");
    let mut rule = String::from("|---|");
    for l in &labels {
        header.push_str(&format!(" {l} |"));
        rule.push_str("---:|");
    }
    if compare {
        header.push_str(&format!(" {} / {} |", labels[labels.len() - 1], labels[0]));
        rule.push_str("---:|");
    }
    println!("{header}");
    println!("{rule}");
    for (name, unit, get, digits) in FIGURES {
        let mut line = format!("| {name} |");
        let medians: Vec<f64> = results
            .iter()
            .map(|runs| median(runs.iter().map(get).collect()))
            .collect();
        for m in &medians {
            if unit.is_empty() {
                line.push_str(&format!(" {m:.digits$} |"));
            } else {
                line.push_str(&format!(" {m:.digits$} {unit} |"));
            }
        }
        if compare {
            let first = medians[0];
            let last = medians[medians.len() - 1];
            if first > 0.0 {
                line.push_str(&format!(" {:.2} |", last / first));
            } else {
                line.push_str(" - |");
            }
        }
        println!("{line}");
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
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

/// One run: a fresh real control plane and metric endpoints, `burstd` at `path` against
/// them.
async fn measure(o: &Options, burstd: &Path) -> anyhow::Result<Run> {
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
    let crd = serde_json::to_string(&burst_operator::crd::crd())?;
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

    let writes_before = server_writes(&client).await?;
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
    let writes = server_writes(&client).await? - writes_before;
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
        write_errors: ticks1.writes_failed - ticks0.writes_failed,
        servers_cpu_pct: (servers1 - servers0) / wall * 100.0,
        bench_cpu_pct: (own1 - own0) / wall * 100.0,
    })
}

/// One VirtualService and one BurstPolicy per policy, created on the real server (a few at
/// a time, as a GitOps tool would apply them).
async fn create_objects(
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

/// Writes the API server has answered so far (`apiserver_request_total` for the write
/// verbs, from its own `/metrics`).
async fn server_writes(client: &kube::Client) -> anyhow::Result<f64> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    Ok(sum_writes(&text))
}

fn sum_writes(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| {
            [
                "\"POST\"",
                "\"PUT\"",
                "\"PATCH\"",
                "\"APPLY\"",
                "\"DELETE\"",
            ]
            .iter()
            .any(|v| l.contains(&format!("verb={v}")))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// Aborts a background task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
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
    fn burstd_paths_take_an_optional_label() {
        assert_eq!(
            labelled("before=/tmp/x/burstd"),
            ("before".to_string(), PathBuf::from("/tmp/x/burstd"))
        );
        assert_eq!(
            labelled("/opt/burstd-old"),
            ("burstd-old".to_string(), PathBuf::from("/opt/burstd-old"))
        );
        // An `=` inside a path is not a label.
        assert_eq!(labelled("/a=b/burstd").1, PathBuf::from("/a=b/burstd"));
    }

    #[test]
    fn arguments_parse_with_defaults_and_refuse_zero_policies() {
        let args = <Args as clap::Parser>::try_parse_from(["burstd-scale", "--runs", "3"]).unwrap();
        assert_eq!(
            (args.policies, args.secs, args.warmup, args.runs),
            (1000, 60, 20, 3)
        );
        assert!(
            <Args as clap::Parser>::try_parse_from(["burstd-scale", "--policies", "0"]).is_err()
        );
        assert!(<Args as clap::Parser>::try_parse_from(["burstd-scale", "--nope", "1"]).is_err());
    }

    #[test]
    fn a_missing_burstd_says_how_to_build_it() {
        let e = check_burstd(Path::new("/nonexistent/burstd")).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("/nonexistent/burstd"), "{text}");
        assert!(text.contains(BUILD_BURSTD), "{text}");
        let args = <Args as clap::Parser>::try_parse_from([
            "burstd-scale",
            "--burstd",
            "/nonexistent/burstd",
        ])
        .unwrap();
        let e = options(args).unwrap_err();
        assert!(e.to_string().contains(BUILD_BURSTD), "{e}");
    }

    #[test]
    fn writes_are_the_write_verbs_of_apiserver_request_total() {
        let text = "\
apiserver_request_total{code=\"200\",resource=\"virtualservices\",verb=\"PATCH\"} 7
apiserver_request_total{code=\"201\",resource=\"events\",verb=\"POST\"} 3
apiserver_request_total{code=\"200\",resource=\"leases\",verb=\"PUT\"} 2
apiserver_request_total{code=\"200\",resource=\"virtualservices\",verb=\"GET\"} 100
apiserver_request_total{code=\"200\",resource=\"burstpolicies\",verb=\"WATCH\"} 1
apiserver_request_duration_seconds_count{verb=\"PATCH\"} 50
";
        assert_eq!(sum_writes(text), 12.0);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn demand_integrates_the_piecewise_rate() {
        // Policy 0 is at 20 rps in period 0, then 5 rps.
        assert_eq!(count(0, 10.0), 200.0);
        assert_eq!(count(0, PERIOD + 2.0), 20.0 * PERIOD + 10.0);
        assert_eq!(count(1, 4.0), 20.0);
    }
}
