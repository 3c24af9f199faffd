//! `burst demo`: the whole burst scenario on one machine.
//!
//! Starts, on loopback: a primary worker, a burst worker (`PREFIX=bursty-`), the local mesh
//! proxy (weighted split, `istio_requests_total` counters), the String Hashr frontend whose
//! load goes through the proxy, and the controller, which measures the demand at the proxy
//! (or through Prometheus with `--prometheus-url`) and moves the proxy's split.
//!
//! Interactive: prints the page URL and every split change; Ctrl-C stops everything.
//! Headless: drives the load itself from `--scenario`, shows a one-line status on stderr and
//! prints a timeline and summary (or JSON) at the end.
//!
//! With `--kubeconfig` the controller is burstd's operator writing a VirtualService in a real
//! API server, and the proxy follows that VirtualService by watch ([`super::demo_kube`]).

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use burst_core::controller::{Outcome, Stopped};
use burst_core::policy::{PolicyFile, PolicySpec};
use burst_core::{Controller, ControllerConfig, MetricSource, TickReport, TrafficRouter};
use burst_hashr::frontend::{Frontend, FrontendConfig};
use burst_hashr::mesh::{Mesh, MeshConfig};
use burst_hashr::pubsub::{MemoryPubSub, PubSub, RedisPubSub};
use burst_hashr::worker::{Worker, WorkerConfig};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::demo_kube::{self, Cluster, LatencyStats, Running, VsReport};

/// The scenario `--headless` runs when none is given.
const DEFAULT_SCENARIO: &str = "5rps:20s,20rps:40s,5rps:30s";

/// Arguments of `burst demo`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Everything listens on 127.0.0.1. Without --redis-url the hashes travel over an in-process
bus, so nothing needs to be installed.

Examples:
  burst demo                                  # open the printed URL, type a frequency
  burst demo --redis-url 127.0.0.1:6379 --policy policy.yaml
  burst demo --headless --scenario \"5rps:20s,20rps:40s,5rps:30s\" --json
  burst demo --kubeconfig ~/.kube/config --namespace burst-demo --headless --json

With --kubeconfig the loop closes through a Kubernetes API server: the demo creates the
namespace, installs the VirtualService and BurstPolicy CRDs if they are missing, applies the
seed VirtualService (weights 100/0) and the seed BurstPolicy (measuring this demo's proxy),
and runs burstd's operator in-process against that server. The local mesh proxy then takes
its split only from the VirtualService, by watching it, as Envoy takes routes from istiod.
The kubeconfig's user needs to create namespaces (unless the namespace exists) and CRDs
(unless installed), and to read, watch, create and patch VirtualServices and BurstPolicies,
patch BurstPolicy status and create and list Events in the namespace; the demo checks this
before it creates anything. The objects stay in the cluster after the demo exits. --json
then also reports \"virtual_service\" (every weight pair the proxy's watch delivered, and the
weights at the end) and, per change and in the summary, the time from burstd's PATCH to the
proxy applying it.")]
pub struct Args {
    /// Use this Redis (`host:port` or `redis://...`) instead of the in-process bus.
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// Policy and windows (YAML, as for `burst simulate`). Default: the seed, 15/10 rps.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Measure through this Prometheus with the seed's query instead of scraping the
    /// proxy's /metrics directly. Prometheus must scrape the proxy's metrics URL (printed).
    #[arg(long, value_name = "URL")]
    prometheus_url: Option<String>,
    /// Port of the page (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Port of the mesh proxy's /metrics (0 picks a free one). Fix it when a Prometheus
    /// (--prometheus-url) has to scrape it.
    #[arg(long, default_value_t = 0)]
    metrics_port: u16,
    /// Drive the load from --scenario instead of waiting for a browser; print a timeline.
    #[arg(long)]
    headless: bool,
    /// Load steps `RATErps:DURATION`, comma-separated (headless only).
    #[arg(long, value_name = "STEPS", requires = "headless")]
    scenario: Option<String>,
    /// Print JSON ({"summary", "timeline", "changes"}) at the end (headless only).
    #[arg(long, requires = "headless")]
    json: bool,
    /// Highest frequency the page accepts (requests/s).
    #[arg(long, default_value_t = 5000.0)]
    max_frequency: f64,
    /// Table only: print a timeline row at least this often (changes always get a row).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    every: Duration,
    /// Close the loop through the Kubernetes API server of this kubeconfig: burstd's
    /// operator patches a VirtualService there and the mesh proxy watches it (see below).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// With --kubeconfig: the namespace for the seed VirtualService and BurstPolicy,
    /// created if missing.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "burst-demo",
        requires = "kubeconfig"
    )]
    namespace: String,
}

/// One step of a headless scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Requests per second.
    pub rps: f64,
    /// How long.
    pub duration: Duration,
}

/// Parses `5rps:20s,20rps:40s`. Errors name the step and the expected form.
pub fn parse_scenario(text: &str, max: f64) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    for (i, part) in text.split(',').enumerate() {
        let part = part.trim();
        let form = "expected RATErps:DURATION, e.g. 20rps:40s";
        let (rate, dur) = part
            .split_once(':')
            .with_context(|| format!("scenario step {} `{part}`: {form}", i + 1))?;
        let rate = rate.trim();
        let number = rate.strip_suffix("rps").with_context(|| {
            format!(
                "scenario step {} `{part}`: rate `{rate}` lacks `rps`; {form}",
                i + 1
            )
        })?;
        let rps = burst_hashr::frontend::loadgen::parse_frequency(number, max)
            .with_context(|| format!("scenario step {} `{part}`", i + 1))?;
        let duration = humantime::parse_duration(dur.trim()).with_context(|| {
            format!(
                "scenario step {} `{part}`: duration `{}`: {form}",
                i + 1,
                dur.trim()
            )
        })?;
        if duration.is_zero() {
            anyhow::bail!(
                "scenario step {} `{part}`: the duration must be longer than 0s",
                i + 1
            );
        }
        steps.push(Step { rps, duration });
    }
    if steps.is_empty() {
        anyhow::bail!("the scenario is empty; give steps like {DEFAULT_SCENARIO}");
    }
    Ok(steps)
}

/// One second of a headless run.
#[derive(Debug, Clone, Serialize)]
struct Point {
    /// Seconds since the scenario started (end of the interval).
    t: f64,
    /// Rate the scenario asked for.
    asked: f64,
    /// Requests sent per second during the interval.
    sent_per_sec: f64,
    /// The controller's last measured rate (short window), if any.
    observed: Option<f64>,
    /// Burst weight in effect at the end of the interval.
    burst_weight: u8,
    /// Hashes received during the interval.
    hashes: u64,
    /// `bursty-` hashes received during the interval.
    bursty: u64,
    /// The rule of the controller's last decision.
    rule: Option<String>,
}

/// A split change made by the controller (with `--kubeconfig`: applied by the proxy from
/// the VirtualService it watches).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Change {
    pub(crate) t: f64,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) burst_weight: u8,
    pub(crate) reason: String,
    /// `--kubeconfig`: the VirtualService's resourceVersion that carried the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) resource_version: Option<String>,
    /// `--kubeconfig`: from burstd sending the PATCH to the proxy applying the watch event.
    /// The server stored the change between the PATCH's sending and its answer, so this is
    /// an upper bound of store → proxy, and `patch_answered_to_proxy_ms` (if positive) a
    /// lower one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) patch_sent_to_proxy_ms: Option<f64>,
    /// `--kubeconfig`: from the API server's answer to burstd's PATCH to the proxy applying
    /// the watch event (negative: the event overtook the answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) patch_answered_to_proxy_ms: Option<f64>,
    /// `--kubeconfig`: burstd's PATCH, sent to answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) patch_round_trip_ms: Option<f64>,
    /// When the proxy applied it.
    #[serde(skip)]
    pub(crate) applied_at: Option<std::time::Instant>,
}

#[derive(Debug, Clone, Serialize)]
struct Summary {
    duration_s: f64,
    interrupted: bool,
    requests_sent: u64,
    requests_ok: u64,
    requests_failed: u64,
    requests_skipped: u64,
    hashes: u64,
    bursty_hashes: u64,
    bursty_share: f64,
    weight_changes: usize,
    first_burst_s: Option<f64>,
    back_to_primary_s: Option<f64>,
    final_burst_weight: u8,
    /// `bursty-` hashes received in seconds when all traffic had gone to the primary for at
    /// least a second: should be 0.
    bursty_while_primary: u64,
    source: String,
    router: String,
    pubsub: String,
    /// `--kubeconfig`: burstd's VirtualService PATCH sent → proxy applied, over the changes
    /// (an upper bound of the time from the server storing the change to the proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    vs_patch_sent_to_proxy_ms: Option<LatencyStats>,
    /// `--kubeconfig`: the PATCH's answer → proxy applied (negative: the watch event came
    /// first).
    #[serde(skip_serializing_if = "Option::is_none")]
    vs_patch_answered_to_proxy_ms: Option<LatencyStats>,
}

#[derive(Debug, Serialize)]
struct Report {
    summary: Summary,
    timeline: Vec<Point>,
    changes: Vec<Change>,
    /// `--kubeconfig`: the VirtualService's history and final weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    virtual_service: Option<VsReport>,
}

/// What the controller's observer (with `--kubeconfig`: the watches) records.
#[derive(Debug, Default)]
pub(crate) struct TickLog {
    pub(crate) observed: Option<f64>,
    pub(crate) rule: Option<String>,
    pub(crate) changes: Vec<Change>,
    /// Changes not yet printed (interactive mode).
    unprinted: usize,
}

/// Everything `burst demo` started.
struct Demo {
    /// The page, the mesh proxy, the workers, pub/sub and the tick log.
    local: Partial,
    source: String,
    /// The in-process controller (`None` with `--kubeconfig`).
    controller: Option<JoinHandle<Stopped>>,
    /// burstd and the watches (`--kubeconfig` only).
    kube: Option<Running>,
    router: String,
}

/// Runs `burst demo`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = super::simulate::load_policy(args.policy.as_deref())?;
    let steps = if args.headless {
        Some(parse_scenario(
            args.scenario.as_deref().unwrap_or(DEFAULT_SCENARIO),
            args.max_frequency,
        )?)
    } else {
        None
    };
    // Credentials and permissions are checked before anything starts or is created.
    let cluster = match &args.kubeconfig {
        Some(path) => Some(
            demo_kube::connect(demo_kube::Target {
                kubeconfig: path.clone(),
                namespace: args.namespace.clone(),
            })
            .await?,
        ),
        None => None,
    };
    let demo = start(&args, &file, cluster).await?;
    let banner = banner(&demo, &file);
    let code = match steps {
        None => {
            super::print_stdout(&banner)?;
            interactive(&demo).await?;
            ExitCode::SUCCESS
        }
        Some(steps) => {
            eprint!("{banner}");
            let report = headless(&demo, &steps).await;
            let text = if args.json {
                serde_json::to_string_pretty(&report)? + "\n"
            } else {
                table(&report, args.every.as_secs_f64())
            };
            super::print_stdout(&text)?;
            if report.summary.interrupted {
                ExitCode::from(130)
            } else {
                ExitCode::SUCCESS
            }
        }
    };
    shutdown(demo).await;
    Ok(code)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn serve_on(
    addr: &str,
    router: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(Url, JoinHandle<Result<(), burst_hashr::Error>>)> {
    let listener = burst_hashr::http::bind(addr).await?;
    let local = listener.local_addr().context("reading the bound address")?;
    let url = Url::parse(&format!("http://{local}/")).context("building the URL")?;
    let task = tokio::spawn(burst_hashr::http::serve(listener, router, stop));
    Ok((url, task))
}

fn bus(redis_url: Option<&str>) -> anyhow::Result<Arc<dyn PubSub>> {
    Ok(match redis_url {
        Some(url) => Arc::new(RedisPubSub::new(url)?),
        None => Arc::new(MemoryPubSub::new()),
    })
}

async fn start(args: &Args, file: &PolicyFile, cluster: Option<Cluster>) -> anyhow::Result<Demo> {
    if let Some(c) = &cluster {
        c.prepare().await?;
    }
    let stop = CancellationToken::new();
    let started = Instant::now();
    // One in-process bus shared by all, or one Redis client per component (as separate
    // processes would have).
    let shared: Arc<dyn PubSub> = Arc::new(MemoryPubSub::new());
    let bus_for = |_: &str| -> anyhow::Result<Arc<dyn PubSub>> {
        match &args.redis_url {
            Some(u) => bus(Some(u)),
            None => Ok(shared.clone()),
        }
    };
    let probe = bus_for("probe")?;
    probe.ping().await.with_context(|| {
        "start redis-server, or leave out --redis-url to use the in-process bus".to_string()
    })?;
    let pubsub = probe.describe();

    let mut servers = Vec::new();
    let primary = Worker::new(WorkerConfig::default(), bus_for("primary")?);
    let (primary_url, t) = serve_on(
        "127.0.0.1:0",
        primary.router(),
        stop.clone().cancelled_owned(),
    )
    .await?;
    servers.push(t);
    let burst = Worker::new(WorkerConfig::with_prefix("bursty-"), bus_for("burst")?);
    let (burst_url, t) = serve_on(
        "127.0.0.1:0",
        burst.router(),
        stop.clone().cancelled_owned(),
    )
    .await?;
    servers.push(t);

    let mesh = Mesh::new(MeshConfig::new(primary_url.clone(), burst_url.clone()))?;
    let (proxy, t) = serve_on(
        "127.0.0.1:0",
        mesh.proxy_router(),
        stop.clone().cancelled_owned(),
    )
    .await?;
    servers.push(t);
    let admin_addr = format!("127.0.0.1:{}", args.metrics_port);
    let (admin, t) = serve_on(
        &admin_addr,
        mesh.admin_router(),
        stop.clone().cancelled_owned(),
    )
    .await
    .with_context(|| format!("the mesh metrics cannot listen on {admin_addr}"))?;
    servers.push(t);
    let metrics = admin.join("metrics").context("metrics URL")?;

    let mut fconfig = FrontendConfig::new(proxy.clone());
    fconfig.max_frequency = args.max_frequency;
    let frontend = Frontend::start(fconfig, bus_for("frontend")?).await?;
    // Load must not start before the relay listens, or the first hashes would be missed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while frontend.relay().subscriptions == 0 {
        if Instant::now() > deadline {
            anyhow::bail!(
                "the frontend could not subscribe to `calculation` on {pubsub} within 10 s"
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let page_addr = format!("127.0.0.1:{}", args.port);
    let (page, t) = serve_on(&page_addr, frontend.router(), frontend.shutdown_signal())
        .await
        .with_context(|| {
            format!("the page cannot listen on {page_addr}; pass --port 0 for any free port")
        })?;
    servers.push(t);

    let log = Arc::new(Mutex::new(TickLog::default()));
    let partial = Partial {
        frontend,
        mesh,
        page,
        proxy,
        metrics,
        workers: (primary_url, burst_url),
        pubsub,
        stop,
        servers,
        log,
        started,
    };
    match cluster {
        None => start_controller(args, file, partial),
        Some(cluster) => match start_kube(args, file, cluster, &partial).await {
            Ok((running, source)) => {
                Ok(partial.finish(source, running.describe(), None, Some(running)))
            }
            Err(e) => {
                // Nothing stays running: the local servers stop before the error is shown.
                partial.abandon().await;
                Err(e)
            }
        },
    }
}

/// The local parts, started; the controller is not yet.
struct Partial {
    frontend: Frontend,
    mesh: Mesh,
    page: Url,
    proxy: Url,
    metrics: Url,
    workers: (Url, Url),
    pubsub: String,
    stop: CancellationToken,
    servers: Vec<JoinHandle<Result<(), burst_hashr::Error>>>,
    log: Arc<Mutex<TickLog>>,
    started: Instant,
}

impl Partial {
    fn finish(
        self,
        source: String,
        router: String,
        controller: Option<JoinHandle<Stopped>>,
        kube: Option<Running>,
    ) -> Demo {
        Demo {
            local: self,
            source,
            controller,
            kube,
            router,
        }
    }

    async fn abandon(self) {
        shutdown(self.finish(String::new(), String::new(), None, None)).await;
    }
}

/// `--kubeconfig`: the seed BurstPolicy measuring this proxy, burstd, the watches.
async fn start_kube(
    args: &Args,
    file: &PolicyFile,
    cluster: Cluster,
    p: &Partial,
) -> anyhow::Result<(Running, String)> {
    let source = demo_kube::source_spec(args.prometheus_url.as_deref(), &p.metrics);
    let settings = demo_kube::policy_settings(file);
    let described = demo_kube::describe_source(&burst_operator::api::BurstPolicySpec {
        source: source.clone(),
        policy: settings.clone(),
        target: burst_operator::api::TargetSpec {
            name: "worker-virtual-service".into(),
            ..burst_operator::api::TargetSpec::default()
        },
        dry_run: false,
        paused: false,
    })?;
    let running = cluster
        .start(
            &p.mesh,
            source,
            settings,
            p.log.clone(),
            p.started.into_std(),
            &p.stop,
        )
        .await?;
    Ok((running, described))
}

/// Without `--kubeconfig`: the in-process controller moves the proxy's split directly.
fn start_controller(args: &Args, file: &PolicyFile, p: Partial) -> anyhow::Result<Demo> {
    let spec = &file.policy;
    let started = p.started;
    let source = metric_source(args, spec, &p.metrics)?;
    let source_desc = source.describe();
    let policy = spec.build()?;
    let observer_log = p.log.clone();
    let observer = move |r: &TickReport| {
        let mut l = lock(&observer_log);
        l.observed = r.signal.rates().map(|x| x.up.get());
        l.rule = Some(r.decision.reason.rule.name().to_owned());
        if let Outcome::Applied { from, to } = &r.outcome {
            l.changes.push(Change {
                t: started.elapsed().as_secs_f64(),
                from: from.to_string(),
                to: to.to_string(),
                burst_weight: to.burst().get(),
                reason: r.decision.reason.to_string(),
                resource_version: None,
                patch_sent_to_proxy_ms: None,
                patch_answered_to_proxy_ms: None,
                patch_round_trip_ms: None,
                applied_at: None,
            });
        }
    };
    let config = file.run.controller_config(ControllerConfig::default());
    let router = p.mesh.router();
    let described = router.describe();
    let controller = Controller::new(source, policy, router, config).with_observer(observer);
    let controller = tokio::spawn(controller.run(p.stop.clone().cancelled_owned()));
    Ok(p.finish(source_desc, described, Some(controller), None))
}

fn metric_source(
    args: &Args,
    spec: &PolicySpec,
    metrics: &Url,
) -> anyhow::Result<Box<dyn MetricSource>> {
    let config = match &args.prometheus_url {
        Some(url) => burst_prom::SourceConfig::Prometheus(burst_prom::PrometheusConfig {
            url: url.clone(),
            ..burst_prom::PrometheusConfig::default()
        }),
        None => {
            let matchers = [
                ("reporter", "source"),
                ("source_workload", "frontend-deployment"),
                (
                    "destination_service",
                    "worker-service.default.svc.cluster.local",
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            burst_prom::SourceConfig::Scrape(burst_prom::ScrapeConfig {
                targets: vec![metrics.to_string()],
                metric: "istio_requests_total".into(),
                matchers,
                ..burst_prom::ScrapeConfig::default()
            })
        }
    };
    Ok(config
        .with_windows(spec.window_up(), spec.window_down())
        .build(&burst_prom::HttpClients::new())?)
}

fn banner(d: &Demo, file: &PolicyFile) -> String {
    let spec = &file.policy;
    let mut s = String::new();
    let _ = writeln!(s, "String Hashr demo");
    let _ = writeln!(s, "  page        {}", d.local.page);
    let _ = writeln!(
        s,
        "  mesh proxy  {} (metrics {})",
        d.local.proxy, d.local.metrics
    );
    let _ = writeln!(
        s,
        "  workers     primary {}  burst {} (PREFIX=bursty-)",
        d.local.workers.0, d.local.workers.1
    );
    let _ = writeln!(s, "  pub/sub     {}", d.local.pubsub);
    let windows = if spec.has_two_windows() {
        format!(
            "windows {} up / {} down",
            humantime::format_duration(spec.window_up()),
            humantime::format_duration(spec.window_down())
        )
    } else {
        format!("window {}", spec.window)
    };
    let _ = writeln!(
        s,
        "  controller  {}{} high {} / low {} rps, {windows}, tick {}",
        if d.kube.is_some() {
            "burstd operator, "
        } else {
            ""
        },
        format!("{:?}", spec.mode).to_lowercase(),
        spec.high,
        spec.low,
        file.run.tick
    );
    let _ = writeln!(s, "  measuring   {}", d.source);
    if d.kube.is_some() {
        let _ = writeln!(s, "  routing     {}", d.router);
    }
    s
}

async fn interactive(d: &Demo) -> anyhow::Result<()> {
    super::print_stdout(
        "Open the page and type a frequency (above the high threshold to burst). Ctrl-C stops.\n",
    )?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    // One listener for the whole run, so a signal between two loop turns is not missed.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tick.tick() => {
                let lines: Vec<String> = {
                    let mut l = lock(&d.local.log);
                    let new = l.changes[l.unprinted..]
                        .iter()
                        .map(|c| format!("{:>7.1}s  split {} -> {}  ({})\n", c.t, c.from, c.to, c.reason))
                        .collect();
                    l.unprinted = l.changes.len();
                    new
                };
                for line in lines {
                    super::print_stdout(&line)?;
                }
            }
        }
    }
    Ok(())
}

async fn headless(d: &Demo, steps: &[Step]) -> Report {
    let tty = std::io::stderr().is_terminal();
    let begin = Instant::now();
    let offset = begin.duration_since(d.local.started).as_secs_f64();
    let total: Duration = steps.iter().map(|s| s.duration).sum();
    let mut boundaries = Vec::new();
    let mut acc = Duration::ZERO;
    for s in steps {
        boundaries.push((acc, s.rps));
        acc += s.duration;
    }
    let mut next_step = 0usize;
    let mut next_sample = Duration::from_secs(1);
    let mut asked = 0.0;
    let mut last_load = d.local.frontend.load();
    let mut last_relay = d.local.frontend.relay();
    let mut last_t = Duration::ZERO;
    let mut timeline = Vec::new();
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let step_due = boundaries.get(next_step).map(|(at, _)| *at);
        let sample_due = next_sample.min(total);
        let due = step_due.map_or(sample_due, |s| s.min(sample_due));
        tokio::select! {
            _ = &mut ctrl_c => { interrupted = true; break; }
            _ = tokio::time::sleep_until(begin + due) => {}
        }
        if step_due == Some(due) {
            asked = boundaries[next_step].1;
            let _ = d.local.frontend.set_frequency(&asked.to_string());
            next_step += 1;
            continue;
        }
        let now = begin.elapsed();
        let secs = (now - last_t).as_secs_f64().max(1e-3);
        let load = d.local.frontend.load();
        let relay = d.local.frontend.relay();
        let (observed, rule) = {
            let l = lock(&d.local.log);
            (l.observed, l.rule.clone())
        };
        let point = Point {
            t: sample_due.as_secs_f64(),
            asked,
            sent_per_sec: (load.sent - last_load.sent) as f64 / secs,
            observed,
            burst_weight: d.local.mesh.split().burst().get(),
            hashes: relay.received - last_relay.received,
            bursty: relay.bursty - last_relay.bursty,
            rule,
        };
        let line = format!(
            "t={:>5.0}s  asked {:>6} rps  sent {:>7.1}/s  observed {:>7}  split {:>7}  bursty {:>4}",
            point.t,
            point.asked,
            point.sent_per_sec,
            point
                .observed
                .map_or_else(|| "no data".into(), |o| format!("{o:.1}")),
            d.local.mesh.split().to_string(),
            if point.hashes == 0 {
                "-".to_string()
            } else {
                format!("{:.0}%", point.bursty as f64 / point.hashes as f64 * 100.0)
            }
        );
        if tty {
            eprint!("\r{line}");
        } else if timeline.len() % 5 == 4 {
            eprintln!("{line}");
        }
        timeline.push(point);
        last_load = load;
        last_relay = relay;
        last_t = now;
        if sample_due >= total {
            break;
        }
        next_sample += Duration::from_secs(1);
    }
    if tty {
        eprintln!();
    }
    d.local.frontend.set_frequency("0").ok();
    // Hashes still in flight arrive within a moment; count them into the last point.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let relay = d.local.frontend.relay();
    if let Some(p) = timeline.last_mut() {
        p.hashes += relay.received - last_relay.received;
        p.bursty += relay.bursty - last_relay.bursty;
    }
    let mut changes: Vec<Change> = lock(&d.local.log)
        .changes
        .iter()
        .map(|c| Change {
            t: c.t - offset,
            ..c.clone()
        })
        .collect();
    let virtual_service = match &d.kube {
        Some(k) => Some(k.report(&mut changes, begin.into_std()).await),
        None => None,
    };
    let load = d.local.frontend.load();
    let mut summary = summarize(
        d,
        &timeline,
        &changes,
        begin.elapsed().as_secs_f64(),
        interrupted,
        &load,
        relay,
    );
    if d.kube.is_some() {
        let sent: Vec<f64> = changes
            .iter()
            .filter_map(|c| c.patch_sent_to_proxy_ms)
            .collect();
        let answered: Vec<f64> = changes
            .iter()
            .filter_map(|c| c.patch_answered_to_proxy_ms)
            .collect();
        summary.vs_patch_sent_to_proxy_ms = LatencyStats::of(&sent);
        summary.vs_patch_answered_to_proxy_ms = LatencyStats::of(&answered);
    }
    Report {
        summary,
        timeline,
        changes,
        virtual_service,
    }
}

/// Burst weight in effect at time `t` given the initial split and the changes.
fn weight_at(changes: &[Change], t: f64) -> u8 {
    changes
        .iter()
        .take_while(|c| c.t <= t)
        .last()
        .map_or(0, |c| c.burst_weight)
}

fn summarize(
    d: &Demo,
    timeline: &[Point],
    changes: &[Change],
    duration_s: f64,
    interrupted: bool,
    load: &burst_hashr::frontend::loadgen::LoadSnapshot,
    relay: burst_hashr::frontend::relay::RelayCounts,
) -> Summary {
    // An interval (a, b] counts as "primary only" when no traffic could go to the burst
    // worker from a - 1 s on: weight 0 then and no change since.
    let mut prev_t = 0.0;
    let mut bursty_while_primary = 0;
    for p in timeline {
        let from = prev_t - 1.0;
        let quiet = weight_at(changes, from) == 0
            && !changes
                .iter()
                .any(|c| c.t > from && c.t <= p.t && c.burst_weight > 0)
            && weight_at(changes, p.t) == 0;
        if quiet && from >= -1.0 {
            bursty_while_primary += p.bursty;
        }
        prev_t = p.t;
    }
    Summary {
        duration_s,
        interrupted,
        requests_sent: load.sent,
        requests_ok: load.ok,
        requests_failed: load.failed,
        requests_skipped: load.skipped,
        hashes: relay.received,
        bursty_hashes: relay.bursty,
        bursty_share: if relay.received == 0 {
            0.0
        } else {
            relay.bursty as f64 / relay.received as f64
        },
        weight_changes: changes.len(),
        first_burst_s: changes.iter().find(|c| c.burst_weight > 0).map(|c| c.t),
        back_to_primary_s: changes
            .iter()
            .rev()
            .find(|c| c.burst_weight == 0)
            .filter(|_| changes.last().is_some_and(|c| c.burst_weight == 0))
            .map(|c| c.t),
        final_burst_weight: d.local.mesh.split().burst().get(),
        bursty_while_primary,
        source: d.source.clone(),
        router: d.router.clone(),
        pubsub: d.local.pubsub.clone(),
        vs_patch_sent_to_proxy_ms: None,
        vs_patch_answered_to_proxy_ms: None,
    }
}

fn table(r: &Report, every: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>7}  {:>7}  {:>8}  {:>9}  {:>6}  {:>7}  {:>7}  rule",
        "t(s)", "asked", "sent/s", "observed", "burst%", "hashes", "bursty"
    );
    let mut next_row = 0.0;
    let mut prev: Option<u8> = None;
    for p in &r.timeline {
        let changed = prev.is_some_and(|w| w != p.burst_weight);
        prev = Some(p.burst_weight);
        let due = p.t + 1e-9 >= next_row;
        if !(changed || due) {
            continue;
        }
        if due {
            let every = every.max(1.0);
            next_row = ((p.t + 1e-9) / every).floor() * every + every;
        }
        let _ = writeln!(
            out,
            "{:>7.0}  {:>7}  {:>8.1}  {:>9}  {:>6}  {:>7}  {:>7}  {}{}",
            p.t,
            p.asked,
            p.sent_per_sec,
            p.observed
                .map_or_else(|| "no data".into(), |o| format!("{o:.2}")),
            p.burst_weight,
            p.hashes,
            p.bursty,
            p.rule.as_deref().unwrap_or("-"),
            if changed { " <- change" } else { "" }
        );
    }
    let _ = writeln!(out);
    for c in &r.changes {
        let _ = writeln!(
            out,
            "{:>7.1}s  split {} -> {}  ({})",
            c.t, c.from, c.to, c.reason
        );
    }
    let s = &r.summary;
    let secs = |v: Option<f64>| v.map_or_else(|| "never".to_string(), |x| format!("{x:.1}s"));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "duration              {:.1}s{}",
        s.duration_s,
        if s.interrupted { " (interrupted)" } else { "" }
    );
    let _ = writeln!(
        out,
        "requests              {} sent, {} ok, {} failed, {} skipped",
        s.requests_sent, s.requests_ok, s.requests_failed, s.requests_skipped
    );
    let _ = writeln!(
        out,
        "hashes                {} ({} bursty, {:.1}%)",
        s.hashes,
        s.bursty_hashes,
        s.bursty_share * 100.0
    );
    let _ = writeln!(out, "weight changes        {}", s.weight_changes);
    let _ = writeln!(out, "first to burst        {}", secs(s.first_burst_s));
    let _ = writeln!(out, "back to primary       {}", secs(s.back_to_primary_s));
    let _ = writeln!(out, "final burst weight    {}%", s.final_burst_weight);
    let _ = writeln!(out, "bursty while primary  {}", s.bursty_while_primary);
    for (what, stats) in [
        ("VS patch sent -> proxy", &s.vs_patch_sent_to_proxy_ms),
        ("VS answer -> proxy", &s.vs_patch_answered_to_proxy_ms),
    ] {
        if let Some(l) = stats {
            let _ = writeln!(
                out,
                "{what:<22}{:.1} / {:.1} / {:.1} ms (min / median / max of {})",
                l.min, l.median, l.max, l.count
            );
        }
    }
    if let Some(vs) = &r.virtual_service {
        let _ = writeln!(
            out,
            "VirtualService        {}/{} {}",
            vs.namespace,
            vs.name,
            vs.final_weights.map_or_else(
                || "(could not be read at the end)".to_owned(),
                |w| format!("{}/{} at the end", w.primary, w.burst)
            )
        );
    }
    out
}

async fn shutdown(d: Demo) {
    let kube = d.kube.is_some();
    d.local.frontend.shutdown();
    d.local.stop.cancel();
    let wait = async {
        for s in d.local.servers {
            if let Ok(Err(e)) = s.await {
                tracing::warn!(error = %e, "server stopped with an error");
            }
        }
        if let Some(c) = d.controller {
            let _ = c.await;
        }
        if let Some(k) = d.kube {
            k.shutdown().await;
        }
    };
    // burstd gets its own grace (5 s) to finish a tick and write the last status.
    let limit = Duration::from_secs(if kube { 10 } else { 5 });
    if tokio::time::timeout(limit, wait).await.is_err() {
        tracing::warn!(limit = ?limit, "shutdown took longer than the limit; exiting anyway");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_parses_and_names_bad_steps() {
        let s = parse_scenario("5rps:20s, 20rps:1m,0.5rps:500ms", 5000.0).unwrap();
        assert_eq!(
            s,
            vec![
                Step {
                    rps: 5.0,
                    duration: Duration::from_secs(20)
                },
                Step {
                    rps: 20.0,
                    duration: Duration::from_secs(60)
                },
                Step {
                    rps: 0.5,
                    duration: Duration::from_millis(500)
                },
            ]
        );
        for (bad, needle) in [
            ("5:20s", "lacks `rps`"),
            ("5rps", "expected RATErps:DURATION"),
            ("5rps:forever", "duration `forever`"),
            ("-5rps:1s", "negative"),
            ("9000rps:1s", "above the limit"),
            ("5rps:0s", "longer than 0s"),
            ("5rps:1s,,", "step 2"),
        ] {
            let e = format!("{:#}", parse_scenario(bad, 5000.0).unwrap_err());
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    fn change(t: f64, w: u8) -> Change {
        Change {
            t,
            from: String::new(),
            to: String::new(),
            burst_weight: w,
            reason: String::new(),
            resource_version: None,
            patch_sent_to_proxy_ms: None,
            patch_answered_to_proxy_ms: None,
            patch_round_trip_ms: None,
            applied_at: None,
        }
    }

    #[test]
    fn weight_at_follows_changes() {
        let c = vec![change(5.0, 100), change(9.5, 0)];
        assert_eq!(weight_at(&c, 1.0), 0);
        assert_eq!(weight_at(&c, 5.0), 100);
        assert_eq!(weight_at(&c, 9.0), 100);
        assert_eq!(weight_at(&c, 10.0), 0);
    }
}
