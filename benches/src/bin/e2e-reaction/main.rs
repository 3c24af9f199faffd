//! `e2e-reaction`: how long the real system takes from a load step to the first `bursty-`
//! result, with the direct scrape source, with a real Prometheus (1 s scrape, or
//! `--scrape-interval`) and with the pod source (`burst demo --source pods`).
//!
//! ```text
//! cargo build --release -p burst-bin --bin burst
//! cargo run --release -p burst-benches --bin e2e-reaction -- [--reps 5] [--steps 20,100]
//!     [--policies recommended,seed] [--sources scrape,prometheus,pods] [--headless-reps 2]
//!     [--scrape-interval 15s] [--kubeconfig FILE] [--data-plane builtin|haproxy]
//! ```
//!
//! `--sources pods` runs every demo as `burst demo --source pods`: the controller scrapes
//! the workers' sidecar-style stats as the pods of a Service through burst-pods'
//! `PodSource`, at every tick; with `--kubeconfig` those pods come from an EndpointSlice
//! that burstd watches in the API server.
//!
//! `--scrape-interval` is Prometheus' scrape and evaluation interval in the Prometheus rows
//! (default 1 s; a real cluster's is 15-30 s). PromQL's `rate()` needs two samples inside
//! its window, so in those rows the policy's rate windows are widened to at least two scrape
//! intervals (the narrowest window that has a value, the most favourable to Prometheus);
//! the row's policy column says so.
//!
//! With `--data-plane haproxy` every demo runs as `burst demo --data-plane haproxy`: a real
//! HAProxy routes, the controller measures and moves weights over its runtime API, and the
//! split change is read from HAProxy's own exporter (`haproxy_server_weight` of `burst`).
//! That data plane has its own metric source, so it takes `--sources scrape` only.
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
//! For the Prometheus rows each run gets a fresh `prometheus` process (`--scrape-interval`
//! scrape and evaluation, empty TSDB: an earlier run's samples inside the rate window would be read by
//! the next demo at its start) that discovers the demo's metrics endpoint through a file
//! (`file_sd_configs`), since the demo picks its ports at start.
//!
//! The limit printed next to each row is one scrape interval plus one tick for Prometheus
//! and for the pod source (which scrapes at the tick: two ticks), and one tick for the
//! direct scrape source (its scrape is the tick's own). The last column is the time after the step at
//! which the average over the policy's nominal short window passes `high`: a property of the
//! policy, not of the plumbing (a window holding fewer samples reacts sooner).
//!
//! Modules: `demo` (one `burst demo` process, found through its `--ready-file`) and
//! `prometheus` (one Prometheus per run).

mod demo;
mod prometheus;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use burst_core::policy::{LoopSpec, PolicySpec};

use demo::{Run, headless_run, page_run, phase_with_scrape};
use prometheus::Prometheus;

/// Rate before the step (below the low threshold).
const BASE_RPS: f64 = 5.0;
/// How often the split is polled.
const SPLIT_POLL: Duration = Duration::from_millis(5);

/// `--data-plane`: what routes in every demo.
static DATA_PLANE: std::sync::OnceLock<DataPlane> = std::sync::OnceLock::new();

/// `--data-plane`, passed through to `burst demo`.
#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
enum DataPlane {
    /// The demo's built-in mesh proxy.
    Builtin,
    /// A real HAProxy driven over its runtime API.
    Haproxy,
}

/// `--kubeconfig`: every demo closes its loop through this API server.
static KUBECONFIG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
enum Source {
    /// The demo scrapes the proxy's /metrics itself.
    Scrape,
    /// A real Prometheus (`--scrape-interval`) between the proxy and the demo.
    Prometheus,
    /// The demo scrapes the workers' sidecar stats as pods (`burst demo --source pods`).
    Pods,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            // With HAProxy the demo reads the backend's counters over the runtime API.
            Source::Scrape if DATA_PLANE.get() == Some(&DataPlane::Haproxy) => "HaproxySource",
            Source::Scrape => "ScrapeSource",
            Source::Prometheus => "PrometheusSource",
            Source::Pods => "PodSource",
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
    /// What routes in every demo: the built-in proxy or a real HAProxy.
    #[arg(long, value_enum, default_value_t = DataPlane::Builtin)]
    data_plane: DataPlane,
    /// Prometheus' scrape and evaluation interval in the Prometheus rows (whole seconds,
    /// 1s-60s).
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    scrape_interval: Duration,
}

#[derive(Debug)]
struct Options {
    reps: usize,
    headless_reps: usize,
    steps: Vec<f64>,
    policies: Vec<String>,
    sources: Vec<Source>,
    burst: PathBuf,
    scrape_interval: Duration,
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
    if args.data_plane == DataPlane::Haproxy {
        if args.kubeconfig.is_some() {
            bail!("--data-plane haproxy cannot be combined with --kubeconfig; leave one out");
        }
        if args.sources.iter().any(|s| *s != Source::Scrape) {
            bail!(
                "--data-plane haproxy measures over HAProxy's runtime API; pass --sources scrape"
            );
        }
    }
    let _ = DATA_PLANE.set(args.data_plane);
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
    let whole = args.scrape_interval.subsec_nanos() == 0;
    if !whole || !(1..=60).contains(&args.scrape_interval.as_secs()) {
        bail!(
            "--scrape-interval {:?} is not whole seconds from 1s to 60s; give e.g. 15s",
            args.scrape_interval
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
        scrape_interval: args.scrape_interval,
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

/// `15s`, `1m`: a duration as the policy files write them.
fn parse_interval(s: &str) -> Result<Duration, String> {
    s.parse::<burst_core::HumanDuration>()
        .map(|d| d.get())
        .map_err(|e| e.to_string())
}

/// `spec` as the Prometheus rows run it: every rate window at least two scrape intervals,
/// the least with which `rate()` has two samples and so a value.
fn for_prometheus(spec: &PolicySpec, scrape: Duration) -> PolicySpec {
    let least = scrape * 2;
    let mut s = spec.clone();
    if spec.window_up() < least {
        s.window_up = Some(least.into());
    }
    if spec.window_down() < least {
        s.window_down = Some(least.into());
    }
    s
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
    let scrape = options.scrape_interval;
    for policy_name in &options.policies {
        let named = policy(policy_name)?;
        for &step in &options.steps {
            for &source in &options.sources {
                let spec = match source {
                    Source::Prometheus => for_prometheus(&named, scrape),
                    Source::Scrape | Source::Pods => named.clone(),
                };
                let label = if spec == named {
                    policy_name.clone()
                } else {
                    format!(
                        "{policy_name} (windows ≥ {}s)",
                        spec.window_up().as_secs().min(spec.window_down().as_secs())
                    )
                };
                let policy_file = dir.path().join(format!("{policy_name}-{source:?}.yaml"));
                std::fs::write(&policy_file, serde_saphyr::to_string(&spec)?)?;
                let mut samples = Vec::new();
                let mut spurious = 0;
                let mut attempt = 0;
                while samples.len() < options.reps {
                    attempt += 1;
                    if attempt > 3 * options.reps {
                        bail!("{} {policy_name}: too many spurious moves", source.name());
                    }
                    let prom = Prometheus::start_for(source, scrape, &http).await?;
                    let phase = phase_with_scrape(
                        samples.len(),
                        options.reps,
                        prom.as_ref().map(Prometheus::interval),
                    );
                    let run = page_run(
                        &options.burst,
                        source,
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
                    let prom = Prometheus::start_for(source, scrape, &http).await?;
                    let phase = phase_with_scrape(
                        rep - 1,
                        options.headless_reps,
                        prom.as_ref().map(Prometheus::interval),
                    );
                    let s = headless_run(
                        &options.burst,
                        source,
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
                    &label,
                    &spec,
                    scrape,
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

#[allow(clippy::too_many_arguments)]
fn row(
    source: Source,
    policy: &str,
    spec: &PolicySpec,
    scrape_interval: Duration,
    step: f64,
    samples: &[Sample],
    headless: &[Option<f64>],
    (spurious, attempts): (usize, usize),
) -> String {
    let crossing = crossing_secs(spec, BASE_RPS, step);
    let tick = LoopSpec::default().tick.get().as_secs_f64();
    let scrape = match source {
        Source::Prometheus => scrape_interval.as_secs_f64(),
        // The pod source scrapes at every tick.
        Source::Pods => tick,
        Source::Scrape => 0.0,
    };
    let splits: Vec<Option<f64>> = samples.iter().map(|s| s.split).collect();
    let bursty: Vec<Option<f64>> = samples.iter().map(|s| s.bursty).collect();
    format!(
        "| {}{}{} | {policy} | {BASE_RPS} → {step} | {} | {} | {} | {} | {:.0} s | {crossing:.2} s | {spurious} of {attempts} |",
        source.name(),
        if DATA_PLANE.get() == Some(&DataPlane::Haproxy) {
            " (HAProxy data plane)"
        } else {
            ""
        },
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
    fn prometheus_windows_hold_two_scrapes() {
        let recommended = PolicySpec::recommended();
        let wide = for_prometheus(&recommended, Duration::from_secs(15));
        assert_eq!(wide.window_up(), Duration::from_secs(30));
        assert_eq!(wide.window_down(), Duration::from_secs(30));
        assert!(wide.build().is_ok());
        // At a 1 s scrape the recommended windows (2 s, 30 s) already hold two scrapes.
        assert_eq!(
            for_prometheus(&recommended, Duration::from_secs(1)),
            recommended
        );
        let seed = for_prometheus(&PolicySpec::default(), Duration::from_secs(15));
        assert_eq!(seed.window_up(), Duration::from_secs(30));
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
}
