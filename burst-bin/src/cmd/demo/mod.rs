//! `burst demo`: the whole burst scenario on one machine.
//!
//! Starts, on loopback: a primary worker, a burst worker (`PREFIX=bursty-`), the local mesh
//! proxy (weighted split, `istio_requests_total` counters), the String Hashr frontend whose
//! load goes through the proxy, and the controller, which measures the demand at the proxy
//! (or through Prometheus with `--prometheus-url`) and moves the proxy's split.
//!
//! Interactive: prints the page URL and every split change; Ctrl-C or SIGTERM stops everything.
//! Headless: drives the load itself from `--scenario`, shows a one-line status on stderr and
//! prints a timeline and summary (or JSON) at the end.
//!
//! With `--kubeconfig` the controller is burstd's operator writing a VirtualService in a real
//! API server, and the proxy follows that VirtualService by watch ([`kube`]).
//!
//! With `--source pods` the controller measures each worker's sidecar-style stats as the
//! pods of a Service, through burst-pods' pod source ([`pods`]).
//!
//! With `--data-plane haproxy` a real HAProxy takes the proxy's place: the controller moves
//! its servers' weights and measures its backend over the runtime API ([`haproxy`]).
//!
//! Modules: [`scenario`] (the `--scenario` language), [`stack`] (the local servers and the
//! controller), [`load`] (headless load driving and its report, in the schema of
//! [`crate::report`]), [`kube`] (`--kubeconfig`), [`pods`] (`--source pods`) and [`haproxy`]
//! (`--data-plane haproxy`).

mod haproxy;
mod kube;
mod load;
mod page;
mod pods;
mod scenario;
mod sides;
mod stack;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use burst_core::controller::Stopped;
use burst_core::policy::PolicyFile;
use burst_hashr::frontend::Frontend;
use burst_hashr::mesh::Mesh;
use futures::FutureExt as _;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use burst_core::lock;
use kube::Running;
use load::{headless, table};
use scenario::{DEFAULT_SCENARIO, Step, parse_scenario};
use stack::{shutdown, start};

use crate::report::Change;

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
  burst demo --data-plane haproxy --headless --scenario \"5rps:20s,20rps:40s,5rps:30s\"
  burst demo --source pods --kubeconfig ~/.kube/config --headless --json

With --kubeconfig the loop closes through a Kubernetes API server: the demo creates the
namespace, installs the VirtualService and BurstPolicy CRDs if they are missing, applies the
seed VirtualService (weights 100/0) and the seed BurstPolicy (measuring this demo's proxy),
and runs burstd's operator in-process against that server. The local mesh proxy then takes
its split only from the VirtualService, by watching it, as Envoy takes routes from istiod.
The kubeconfig's user needs to create namespaces (unless the namespace exists) and CRDs
(unless installed), and to read, watch, create and patch VirtualServices and BurstPolicies,
patch BurstPolicy status and create and list Events in the namespace; the demo checks this
before it creates anything. With a policy file's `prewarm`, the seed BurstPolicy also gets
spec.prewarm: burstd scales the Deployment bursty-worker, which the demo applies in the
namespace with 0 replicas, and the demo's watch of it ends the burst worker's cold start
when burstd scales it up (the user then also needs get, list, watch, create and patch on
deployments.apps and get on horizontalpodautoscalers.autoscaling there). The objects stay
in the cluster after the demo exits. --json
then also reports \"virtual_service\" (every weight pair the proxy's watch delivered, and the
weights at the end) and, per change and in the summary, the time from burstd's PATCH to the
proxy applying it.

With --data-plane haproxy the load goes through a real HAProxy (Debian: apt-get install
haproxy) that the demo configures and starts in a temporary directory: one frontend, one
backend with the primary and burst workers as servers, its Prometheus exporter, and an admin
socket; the controller changes the servers' weights and reads the backend's request counter
over the runtime API, as `burstd run --haproxy-runtime-api` does on VMs (docs/haproxy.md).

With --source pods the controller measures as burstd's pod source does in a cluster
(docs/pods.md): the two workers stand for the two pods of the Service worker-service, each
with a local stats server (its \"sidecar\") serving /stats/prometheus with the requests that
worker received (istio_requests_total, reporter=\"destination\"), and the source sums the
rates of both pods at every tick. The pods are described by an EndpointSlice of
worker-service with pod-network addresses (10.244.0.10, 10.244.1.10; port http-envoy-prom,
15090): with --kubeconfig the demo applies it in the namespace and burstd's operator
watches it (the user then also needs get, list, watch, create and patch on
endpointslices.discovery.k8s.io there); without, the source reads the same slice from a
fixed list. The API server refuses loopback addresses in EndpointSlices, so each pod's
scrape is sent to its local stats server instead (the test-only URL rewrite of the pod
source; burstd never does this).

The --json report (shared with `burst simulate --json`) and the --ready-file event are
described in docs/reports.md.")]
pub struct Args {
    /// Use this Redis (`host:port` or `redis://...`) instead of the in-process bus.
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// Policy and windows (YAML, as for `burst simulate`). Default: the seed, 15/10 rps.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Measure through this Prometheus with the seed's query instead of scraping the
    /// proxy's /metrics directly. Prometheus must scrape the proxy's metrics URL (printed).
    #[arg(long, value_name = "URL", conflicts_with = "data_plane")]
    prometheus_url: Option<String>,
    /// What the controller measures: the mesh proxy's /metrics, or each worker's
    /// sidecar-style stats as the pods of a Service, through the pod source (see below).
    /// --prometheus-url measures through Prometheus instead.
    #[arg(long, value_enum, default_value_t = SourceKind::Proxy, conflicts_with_all = ["prometheus_url", "data_plane"])]
    source: SourceKind,
    /// What carries the load: the built-in mesh proxy, or a real HAProxy (see below).
    #[arg(long, value_enum, default_value_t = DataPlaneKind::Builtin, conflicts_with = "kubeconfig")]
    data_plane: DataPlaneKind,
    /// Port of the page (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Port of the proxy's /metrics (0 picks a free one). Fix it when a Prometheus
    /// (--prometheus-url) has to scrape it.
    #[arg(long, default_value_t = 0)]
    metrics_port: u16,
    /// Drive the load from --scenario instead of waiting for a browser; print a timeline.
    #[arg(long)]
    headless: bool,
    /// Load steps `RATErps:DURATION`, comma-separated (headless only). Side events between
    /// them take effect when the next step starts: `primary:slow=200ms`, `burst:down`,
    /// `burst:cold=20s` (503 until warm, or until the policy file's `prewarm` prepares the
    /// burst side), `primary:ready=1` (ready endpoints reported; default
    /// 2 per side), `burst:up` (clears faults). Example:
    /// `5rps:20s,burst:down,20rps:30s,burst:up,20rps:30s`
    #[arg(long, value_name = "STEPS", requires = "headless")]
    scenario: Option<String>,
    /// Print JSON at the end (headless only): {"summary", "timeline", "changes", "demo"},
    /// the schema `burst simulate --json` shares; see docs/reports.md.
    #[arg(long, requires = "headless")]
    json: bool,
    /// Highest frequency the page accepts (requests/s).
    #[arg(long, default_value_t = 5000.0)]
    max_frequency: f64,
    /// Table only: print a timeline row at least this often (changes always get a row).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    every: Duration,
    /// Once everything listens, write a JSON object {"event": "ready", "page", "proxy",
    /// "metrics", ...} to this file (atomically: it appears complete), for scripts and
    /// benchmarks that start the demo. See docs/reports.md.
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
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

/// `--data-plane`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DataPlaneKind {
    /// burst's own mesh proxy (String Hashr's), with Istio-style counters.
    Builtin,
    /// A real HAProxy, driven over its runtime API.
    Haproxy,
}

/// `--source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SourceKind {
    /// Scrape the mesh proxy's /metrics (Istio-style counters of all requests).
    Proxy,
    /// Scrape each worker's sidecar stats, as the pods of a Service (burst-pods).
    Pods,
}

/// What carries the load between the frontend and the workers.
enum DataPlane {
    /// The built-in mesh proxy.
    Mesh(Mesh),
    /// A real HAProxy.
    Haproxy(Box<haproxy::LocalHaproxy>),
}

/// What the controller's observer (with `--kubeconfig`: the watches) records.
#[derive(Debug, Default)]
pub(crate) struct TickLog {
    /// The split the controller last saw in effect.
    pub(crate) belief: Option<burst_core::Split>,
    pub(crate) observed: Option<f64>,
    /// The last decision's rule (`above_high`, `warming`, ...).
    pub(crate) rule: Option<String>,
    /// The last decision's reason in words (the page shows it).
    pub(crate) reason: Option<String>,
    /// The pre-warm's last forecast (the page shows it).
    pub(crate) outlook: Option<String>,
    pub(crate) changes: Vec<Change>,
    /// Changes not yet printed (interactive mode).
    unprinted: usize,
}

/// The demo's pre-warm calls (with a policy file's `prewarm`), shared with its scaler.
pub(crate) type PrewarmNotes = Arc<Mutex<Vec<sides::PrewarmNote>>>;

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
            kube::connect(kube::Target {
                kubeconfig: path.clone(),
                namespace: args.namespace.clone(),
                endpoint_slices: args.source == SourceKind::Pods,
                prewarm: file.policy.prewarm.is_some(),
            })
            .await?,
        ),
        None => None,
    };
    let demo = start(&args, &file, cluster).await?;
    // Ctrl-C and SIGTERM listen before the ready file appears, so a signal sent on reading
    // it stops the demo cleanly (and with it the HAProxy it started).
    let ctrl_c = async {
        burst_main::shutdown_signal().await;
        Ok(())
    };
    let mut ctrl_c: Interrupt<'_> = std::pin::pin!(ctrl_c);
    if (&mut ctrl_c).now_or_never().is_some() {
        shutdown(demo).await;
        return Ok(ExitCode::from(130));
    }
    if let Some(path) = &args.ready_file
        && let Err(e) = write_ready_file(path, &ready_event(&demo))
    {
        shutdown(demo).await;
        return Err(e);
    }
    let banner = banner(&demo, &file);
    let code = match steps {
        None => {
            super::print_stdout(&banner)?;
            interactive(&demo, ctrl_c).await?;
            ExitCode::SUCCESS
        }
        Some(steps) => {
            eprint!("{banner}");
            let report = headless(&demo, &steps, ctrl_c).await;
            let text = if args.json {
                serde_json::to_string_pretty(&report)? + "\n"
            } else {
                table(&report, args.every.as_secs_f64())
            };
            super::print_stdout(&text)?;
            if report.details.demo.interrupted {
                ExitCode::from(130)
            } else {
                ExitCode::SUCCESS
            }
        }
    };
    shutdown(demo).await;
    Ok(code)
}

/// The local parts, started; the controller is not yet.
struct Partial {
    frontend: Frontend,
    plane: DataPlane,
    /// The workers as pods (`--source pods`).
    pods: Option<pods::LocalPods>,
    page: Url,
    proxy: Url,
    metrics: Url,
    workers: (Url, Url),
    pubsub: String,
    stop: CancellationToken,
    servers: Vec<JoinHandle<Result<(), burst_hashr::Error>>>,
    log: Arc<Mutex<TickLog>>,
    started: Instant,
    /// Faults and ready endpoints of both sides, as the scenario sets them.
    sides: Arc<sides::Sides>,
    /// Pre-warm calls of the in-process controller's scaler.
    prewarm: PrewarmNotes,
}

/// The ready event: where everything listens and what measures and routes.
#[derive(Debug, Serialize)]
struct Ready<'a> {
    /// Always `ready`.
    event: &'static str,
    page: &'a Url,
    proxy: &'a Url,
    metrics: &'a Url,
    primary_worker: &'a Url,
    burst_worker: &'a Url,
    pubsub: &'a str,
    source: &'a str,
    router: &'a str,
    /// This process, to stop it with SIGINT.
    pid: u32,
}

/// What the ready file says about `d`.
fn ready_event(d: &Demo) -> Ready<'_> {
    Ready {
        event: "ready",
        page: &d.local.page,
        proxy: &d.local.proxy,
        metrics: &d.local.metrics,
        primary_worker: &d.local.workers.0,
        burst_worker: &d.local.workers.1,
        pubsub: &d.local.pubsub,
        source: &d.source,
        router: &d.router,
        pid: std::process::id(),
    }
}

/// Writes `ready` as one JSON line to a temporary file next to `path`, then renames it, so
/// a reader never sees half of it.
fn write_ready_file(path: &std::path::Path, ready: &Ready<'_>) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let line = serde_json::to_string(ready)? + "\n";
    std::fs::write(&tmp, line)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| {
            format!(
                "cannot write the ready file {}; pick a writable path for --ready-file",
                path.display()
            )
        })
}

/// The human-readable banner: URLs, pub/sub, policy, source and router.
fn banner(d: &Demo, file: &PolicyFile) -> String {
    let spec = &file.policy;
    let mut s = String::new();
    let _ = writeln!(s, "String Hashr demo");
    let _ = writeln!(s, "  page        {}", d.local.page);
    match &d.local.plane {
        DataPlane::Mesh(_) => {
            let _ = writeln!(
                s,
                "  mesh proxy  {} (metrics {})",
                d.local.proxy, d.local.metrics
            );
        }
        DataPlane::Haproxy(h) => {
            let _ = writeln!(s, "  haproxy     {}", h.describe());
        }
    }
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
    if let Some(p) = &d.local.pods {
        let _ = writeln!(s, "  pods        {}", p.describe());
    }
    if d.kube.is_some() || matches!(d.local.plane, DataPlane::Haproxy(_)) {
        let _ = writeln!(s, "  routing     {}", d.router);
    }
    s
}

/// Ctrl-C, listening since before the demo said it is ready.
type Interrupt<'a> = std::pin::Pin<&'a mut (dyn Future<Output = std::io::Result<()>> + Send)>;

/// Prints every split change until Ctrl-C.
async fn interactive(d: &Demo, mut ctrl_c: Interrupt<'_>) -> anyhow::Result<()> {
    super::print_stdout(
        "Open the page and type a frequency (above the high threshold to burst). Ctrl-C stops.\n",
    )?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    // One listener for the whole run, so a signal between two loop turns is not missed.
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
