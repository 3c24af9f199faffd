//! `e2e-reaction`: how long the real system takes from a load step to the first `bursty-`
//! result, with the direct scrape source and with a real Prometheus (1 s scrape).
//!
//! ```text
//! cargo build --release -p burst-bin --bin burst
//! cargo run --release -p burst-benches --bin e2e-reaction -- [--reps 5] [--steps 20,100]
//!     [--policies recommended,seed] [--sources scrape,prometheus] [--headless-reps 2]
//!     [--kubeconfig FILE]
//! ```
//!
//! With `--kubeconfig` every demo runs as `burst demo --kubeconfig FILE --namespace <fresh>`:
//! burstd's operator patches a VirtualService in that API server and the proxy's split
//! follows it by watch, so the split change measured includes the PATCH and the watch.
//!
//! Each repetition starts a fresh `burst demo` process (release build, next to this binary)
//! and drives it as a browser would: it posts the base frequency to the page's API, waits
//! until the controller has data (plus a fraction of a tick that differs from run to run, so
//! the steps fall at evenly spread points of the controller's tick), opens the page's event
//! stream, then posts the step and timestamps (on one clock) the moment the mesh proxy's
//! split changes (its admin `/split`, polled every 5 ms) and the first `bursty-` hash on the
//! event stream. With
//! `--headless-reps N` it also runs `burst demo --headless --json` N times per row and
//! reports `first_burst_s` minus the step time from its JSON (the split change only; the
//! headless timeline counts hashes per second).
//!
//! For the Prometheus rows each run gets a fresh `prometheus` process (1 s scrape and
//! evaluation, empty TSDB: an earlier run's samples inside the rate window would be read by
//! the next demo at its start) that discovers the demo's metrics endpoint through a file
//! (`file_sd_configs`), since the demo picks its ports at start.
//!
//! The limit printed next to each row is one scrape interval (Prometheus only: the direct
//! source scrapes at the tick) plus one tick. The last column is the time after the step at
//! which the average over the policy's nominal short window passes `high`: a property of the
//! policy, not of the plumbing (a window holding fewer samples reacts sooner).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use burst_core::policy::PolicySpec;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

/// Rate before the step (below the low threshold).
const BASE_RPS: f64 = 5.0;
/// How often the split is polled.
const SPLIT_POLL: Duration = Duration::from_millis(5);

/// `--kubeconfig`: every demo closes its loop through this API server.
static KUBECONFIG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
enum Source {
    /// The demo scrapes the proxy's /metrics itself.
    Scrape,
    /// A real Prometheus (1 s scrape) between the proxy and the demo.
    Prometheus,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Scrape => "ScrapeSource",
            Source::Prometheus => "PrometheusSource",
        }
    }
}

/// From a load step to the split change and the first `bursty-` hash, through real
/// `burst demo` processes.
#[derive(Debug, clap::Parser)]
#[command(name = "e2e-reaction")]
struct Args {
    /// Repetitions per row (source × policy × step).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Also run `burst demo --headless --json` this many times per row.
    #[arg(long, default_value_t = 0)]
    headless_reps: usize,
    /// The load steps, in requests/s (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "20")]
    steps: Vec<f64>,
    /// The policies: recommended, seed (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "recommended,seed")]
    policies: Vec<String>,
    /// The metric sources (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "scrape,prometheus"
    )]
    sources: Vec<Source>,
    /// The `burst` binary (default: the one next to this binary).
    #[arg(long, value_name = "PATH")]
    burst: Option<PathBuf>,
    /// Close every demo's loop through the API server of this kubeconfig.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
}

#[derive(Debug)]
struct Options {
    reps: usize,
    headless_reps: usize,
    steps: Vec<f64>,
    policies: Vec<String>,
    sources: Vec<Source>,
    burst: PathBuf,
}

/// One measured repetition (seconds after the step).
#[derive(Debug, Clone, Copy)]
struct Sample {
    split: Option<f64>,
    bursty: Option<f64>,
}

fn main() -> std::process::ExitCode {
    let args = <Args as clap::Parser>::parse();
    let options = match options(args) {
        Ok(o) => o,
        Err(e) => return burst_main::fail("error", burst_main::Exit::Usage, &e),
    };
    match burst_main::block_on(run(options)) {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(e)) => burst_main::fail("error", burst_main::Exit::Runtime, &e),
        Err(e) => burst_main::fail("error", burst_main::Exit::Usage, &e),
    }
}

fn options(args: Args) -> anyhow::Result<Options> {
    let burst = match args.burst {
        Some(p) => p,
        None => std::env::current_exe()
            .context("locating this binary")?
            .with_file_name("burst"),
    };
    if let Some(k) = args.kubeconfig {
        let _ = KUBECONFIG.set(k);
    }
    if !burst.is_file() {
        bail!(
            "{} does not exist; build it with `cargo build --release -p burst-bin --bin burst` \
             (same CARGO_TARGET_DIR) or pass --burst PATH",
            burst.display()
        );
    }
    if args.steps.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        bail!("--steps takes positive rates like 20,100");
    }
    for p in &args.policies {
        policy(p)?;
    }
    Ok(Options {
        reps: args.reps,
        headless_reps: args.headless_reps,
        steps: args.steps,
        policies: args.policies,
        sources: args.sources,
        burst,
    })
}

/// The named policy.
fn policy(name: &str) -> anyhow::Result<PolicySpec> {
    match name {
        "recommended" => Ok(PolicySpec::recommended()),
        "seed" => Ok(PolicySpec::default()),
        other => bail!("unknown policy `{other}`; use recommended or seed"),
    }
}

/// Seconds after the step until the short-window rate is above `high`, for a load going
/// from `base` to `step` rps (a linear mix of the two rates inside the window).
fn crossing_secs(spec: &PolicySpec, base: f64, step: f64) -> f64 {
    let w = spec.window_up().as_secs_f64();
    if step <= spec.high {
        return f64::INFINITY;
    }
    (w * (spec.high - base) / (step - base)).max(0.0)
}

async fn run(options: Options) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let dir = tempfile::tempdir()?;
    eprintln!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let mut rows = Vec::new();
    for policy_name in &options.policies {
        let spec = policy(policy_name)?;
        let policy_file = dir.path().join(format!("{policy_name}.yaml"));
        std::fs::write(&policy_file, serde_saphyr::to_string(&spec)?)?;
        for &step in &options.steps {
            for &source in &options.sources {
                let mut samples = Vec::new();
                let mut spurious = 0;
                let mut attempt = 0;
                while samples.len() < options.reps {
                    attempt += 1;
                    if attempt > 3 * options.reps {
                        bail!("{} {policy_name}: too many spurious moves", source.name());
                    }
                    let prom = Prometheus::start_for(source, &http).await?;
                    let phase = phase(&spec, samples.len(), options.reps);
                    let run = page_run(
                        &options.burst,
                        &policy_file,
                        &spec,
                        step,
                        phase,
                        prom.as_ref(),
                        &http,
                    )
                    .await
                    .with_context(|| {
                        format!("{} {policy_name} attempt {attempt}", source.name())
                    })?;
                    let s = match run {
                        Run::Measured(s) => s,
                        Run::Spurious(changes) => {
                            spurious += 1;
                            eprintln!(
                                "  {:<16} {policy_name:<11} attempt {attempt}: moved to burst at the base load of {BASE_RPS} rps: {}",
                                source.name(),
                                changes.join(" | ")
                            );
                            continue;
                        }
                    };
                    eprintln!(
                        "  {:<16} {policy_name:<11} {BASE_RPS}->{step} rps  rep {}: split {}  first bursty {}",
                        source.name(),
                        samples.len() + 1,
                        secs(s.split),
                        secs(s.bursty)
                    );
                    samples.push(s);
                }
                let mut headless = Vec::new();
                for rep in 1..=options.headless_reps {
                    let prom = Prometheus::start_for(source, &http).await?;
                    let phase = phase(&spec, rep - 1, options.headless_reps);
                    let s = headless_run(
                        &options.burst,
                        &policy_file,
                        &spec,
                        step,
                        phase,
                        prom.as_ref(),
                    )
                    .await
                    .with_context(|| {
                        format!("headless {} {policy_name} rep {rep}", source.name())
                    })?;
                    eprintln!(
                        "  {:<16} {policy_name:<11} {BASE_RPS}->{step} rps  headless rep {rep}: split {}",
                        source.name(),
                        secs(s)
                    );
                    headless.push(s);
                }
                rows.push(row(
                    source,
                    policy_name,
                    &spec,
                    step,
                    &samples,
                    &headless,
                    (spurious, attempt),
                ));
            }
        }
    }
    println!();
    println!(
        "| source | policy | step (rps) | runs | load step → split change | load step → first `bursty-` hash | `--headless` split change | limit: scrape + tick | nominal window crossing | moved to burst before the step |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
    println!();
    println!(
        "median (min-max) in seconds; load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    Ok(())
}

fn row(
    source: Source,
    policy: &str,
    spec: &PolicySpec,
    step: f64,
    samples: &[Sample],
    headless: &[Option<f64>],
    (spurious, attempts): (usize, usize),
) -> String {
    let crossing = crossing_secs(spec, BASE_RPS, step);
    let scrape = match source {
        Source::Prometheus => 1.0,
        Source::Scrape => 0.0,
    };
    let tick = spec.tick.as_secs_f64();
    let splits: Vec<Option<f64>> = samples.iter().map(|s| s.split).collect();
    let bursty: Vec<Option<f64>> = samples.iter().map(|s| s.bursty).collect();
    format!(
        "| {}{} | {policy} | {BASE_RPS} → {step} | {} | {} | {} | {} | {:.0} s | {crossing:.2} s | {spurious} of {attempts} |",
        source.name(),
        if KUBECONFIG.get().is_some() {
            " via kube-apiserver"
        } else {
            ""
        },
        samples.len(),
        summary(&splits),
        summary(&bursty),
        if headless.is_empty() {
            "-".to_string()
        } else {
            summary(headless)
        },
        scrape + tick,
    )
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "never".into(), |x| format!("{x:.2}s"))
}

/// `median (min-max)`, counting misses.
fn summary(values: &[Option<f64>]) -> String {
    let mut seen: Vec<f64> = values.iter().flatten().copied().collect();
    seen.sort_by(f64::total_cmp);
    let missed = values.len() - seen.len();
    let Some((&lo, &hi)) = seen.first().zip(seen.last()) else {
        return "never".into();
    };
    let n = seen.len();
    let median = if n % 2 == 1 {
        seen[n / 2]
    } else {
        (seen[n / 2 - 1] + seen[n / 2]) / 2.0
    };
    let miss = if missed > 0 {
        format!(", {missed} never")
    } else {
        String::new()
    };
    format!("{median:.2} s ({lo:.2}-{hi:.2}{miss})")
}

/// What one page run found.
enum Run {
    Measured(Sample),
    /// The split moved to burst at the base load, before the step: the demo's change lines.
    Spurious(Vec<String>),
}

/// A running `burst demo` (interactive mode).
struct Demo {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
    page: Url,
    admin: Url,
    metrics_host: String,
}

fn demo_command(burst: &Path, policy: &Path, prom: Option<&Prometheus>) -> Command {
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
async fn wait_ready(child: &mut Child, path: &Path) -> anyhow::Result<(Url, Url)> {
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
fn drain<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
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

fn host_port(url: &Url) -> anyhow::Result<String> {
    Ok(format!(
        "{}:{}",
        url.host_str().context("no host")?,
        url.port_or_known_default().context("no port")?
    ))
}

impl Demo {
    async fn start(burst: &Path, policy: &Path, prom: Option<&Prometheus>) -> anyhow::Result<Demo> {
        let dir = tempfile::tempdir().context("a directory for the ready file")?;
        let ready = dir.path().join("ready.json");
        let mut child = demo_command(burst, policy, prom)
            .arg("--ready-file")
            .arg(&ready)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", burst.display()))?;
        let (page, metrics) = wait_ready(&mut child, &ready).await?;
        let stdout = child.stdout.take().context("no stdout")?;
        let output = drain(BufReader::new(stdout).lines());
        let admin = metrics.join("/").context("admin URL")?;
        Ok(Demo {
            child,
            output,
            page,
            admin,
            metrics_host: host_port(&metrics)?,
        })
    }
}

async fn set_frequency(http: &reqwest::Client, page: &Url, rps: f64) -> anyhow::Result<()> {
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

async fn burst_weight(http: &reqwest::Client, admin: &Url) -> anyhow::Result<u64> {
    let v: serde_json::Value = http.get(admin.join("split")?).send().await?.json().await?;
    v["burst"].as_u64().context("no burst weight in /split")
}

/// Where in the tick the step falls for run `k` of `n`: spread evenly over one tick, since
/// the controller's ticks start with the demo and a fixed warm-up would put every step at
/// the same point of the tick.
fn phase(spec: &PolicySpec, k: usize, n: usize) -> Duration {
    spec.tick.mul_f64((k as f64 + 0.5) / n.max(1) as f64)
}

/// How long to run at the base rate before the step: the long window must be full of it.
fn warmup(spec: &PolicySpec) -> Duration {
    (spec.window_up().max(spec.window) + Duration::from_secs(4)).max(Duration::from_secs(8))
}

async fn page_run(
    burst: &Path,
    policy: &Path,
    spec: &PolicySpec,
    step: f64,
    phase: Duration,
    prom: Option<&Prometheus>,
    http: &reqwest::Client,
) -> anyhow::Result<Run> {
    let mut demo = Demo::start(burst, policy, prom).await?;
    if let Some(p) = prom {
        p.set_target(&demo.metrics_host)?;
    }
    set_frequency(http, &demo.page, BASE_RPS).await?;
    if let Some(p) = prom {
        p.wait_for_data(http, Duration::from_secs(30)).await?;
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
    if !changes.is_empty() || burst_weight(http, &demo.admin).await? != 0 {
        let _ = demo.child.kill().await;
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
        if burst_weight(http, &demo.admin).await? > 0 {
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
    let _ = demo.child.kill().await;
    let since = |t: Option<Instant>| t.map(|t| t.duration_since(t0).as_secs_f64());
    Ok(Run::Measured(Sample {
        split: since(split_at),
        bursty: since(bursty_at),
    }))
}

/// `burst demo --headless --json`; the step's split change from its JSON report.
async fn headless_run(
    burst: &Path,
    policy: &Path,
    spec: &PolicySpec,
    step: f64,
    phase: Duration,
    prom: Option<&Prometheus>,
) -> anyhow::Result<Option<f64>> {
    let base = warmup(spec) + phase + Duration::from_secs(if prom.is_some() { 6 } else { 0 });
    let after = warmup(spec) + Duration::from_secs(5);
    let scenario = format!(
        "{BASE_RPS}rps:{}ms,{step}rps:{}s",
        base.as_millis(),
        after.as_secs()
    );
    let dir = tempfile::tempdir().context("a directory for the ready file")?;
    let ready = dir.path().join("ready.json");
    let mut child = demo_command(burst, policy, prom)
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

/// One `prometheus` child process discovering its target through a file.
struct Prometheus {
    _child: Child,
    port: u16,
    targets: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// A fresh Prometheus for a run measuring through it: samples of an earlier run still
    /// inside the rate window would otherwise be read by the next demo at its start.
    async fn start_for(
        source: Source,
        http: &reqwest::Client,
    ) -> anyhow::Result<Option<Prometheus>> {
        match source {
            Source::Prometheus => Ok(Some(Prometheus::start(http).await?)),
            Source::Scrape => Ok(None),
        }
    }

    async fn start(http: &reqwest::Client) -> anyhow::Result<Prometheus> {
        let dir = tempfile::tempdir()?;
        let binary = burst_testkit::require_binary("prometheus", "prometheus")
            .map_err(anyhow::Error::msg)?;
        let port = burst_testkit::free_port()?;
        let targets = dir.path().join("targets.json");
        std::fs::write(&targets, "[]")?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
                 scrape_configs:\n\
                 - job_name: demo\n  \
                   file_sd_configs: [{{files: ['{}'], refresh_interval: 1s}}]\n",
                targets.display()
            ),
        )?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let p = Prometheus {
            _child: child,
            port,
            targets,
            _dir: dir,
        };
        let ready = format!("{}/-/ready", p.url());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(&ready).send().await
                && r.status().is_success()
            {
                return Ok(p);
            }
            if Instant::now() > deadline {
                bail!("prometheus did not become ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Points the scrape job at `host_port` (written atomically, picked up by file SD).
    fn set_target(&self, host_port: &str) -> anyhow::Result<()> {
        let tmp = self.targets.with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::json!([{ "targets": [host_port] }]).to_string(),
        )?;
        std::fs::rename(&tmp, &self.targets)?;
        Ok(())
    }

    /// Waits until a rate of the demo's requests can be queried.
    async fn wait_for_data(&self, http: &reqwest::Client, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        let query = r#"sum(rate(istio_requests_total{reporter="source"}[2s]))"#;
        loop {
            let v: serde_json::Value = http
                .get(Url::parse_with_params(
                    &format!("{}/api/v1/query", self.url()),
                    [("query", query)],
                )?)
                .send()
                .await?
                .json()
                .await?;
            if v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("Prometheus has no rate of the demo's requests after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reports_median_range_and_misses() {
        assert_eq!(
            summary(&[Some(2.0), Some(1.0), Some(3.0)]),
            "2.00 s (1.00-3.00)"
        );
        assert_eq!(
            summary(&[Some(1.0), Some(2.0), None]),
            "1.50 s (1.00-2.00, 1 never)"
        );
        assert_eq!(summary(&[None]), "never");
    }

    #[test]
    fn crossing_follows_the_window_and_the_step() {
        let seed = PolicySpec::default();
        // 15 s window, 5 -> 20 rps: the average passes 15 after two thirds of the window.
        assert!((crossing_secs(&seed, 5.0, 20.0) - 10.0).abs() < 1e-9);
        assert!(crossing_secs(&seed, 5.0, 15.0).is_infinite());
        let recommended = PolicySpec::recommended();
        assert!((crossing_secs(&recommended, 5.0, 20.0) - 4.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn steps_are_spread_over_one_tick() {
        let spec = PolicySpec::default();
        let phases: Vec<Duration> = (0..4).map(|k| phase(&spec, k, 4)).collect();
        assert_eq!(
            phases,
            [125, 375, 625, 875].map(Duration::from_millis).to_vec()
        );
    }
}
