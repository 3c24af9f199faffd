//! burstd: the in-cluster controller of burst.
//!
//! `burstd operator` watches BurstPolicy objects; `burstd run` runs one policy from flags,
//! `BURST_*` variables or a config file; `burstd crd` prints the CRD. Every flag can be set
//! with the environment variable shown in `--help`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use burst_operator::app::{self, CommonOptions};
use burst_operator::crd::{OnMissingSpec, PolicyModeSpec};
use burst_operator::leader::LeaseSettings;
use burst_operator::operator::OperatorSettings;
use burst_operator::single::{self, Overrides};
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// The in-cluster controller of burst: moves traffic between a primary and a burst
/// destination by changing route weights from a measured request rate.
#[derive(Debug, Parser)]
#[command(name = "burstd", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watch BurstPolicy objects and run one control loop per object.
    Operator(Box<OperatorArgs>),
    /// Run one policy given by flags, BURST_* variables and/or a config file.
    Run(Box<RunArgs>),
    /// Print the BurstPolicy CustomResourceDefinition as YAML.
    Crd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

#[derive(Debug, Args)]
struct LogArgs {
    /// Log format.
    #[arg(
        long,
        env = "BURST_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
    /// Log filter: a level (`info`) or directives (`info,burst_operator=debug`).
    #[arg(long, env = "BURST_LOG", default_value = "info", global = true)]
    log_level: String,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration ({e}); e.g. 15s"))
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "BURST_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Elect a leader on a Lease so that only one replica writes (`false`: always write).
    #[arg(long, env = "BURST_LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, env = "BURST_LEASE_NAME", default_value = "burstd")]
    lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace from its service account).
    #[arg(long, env = "BURST_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// This instance's identity in the Lease and in Events (default: $HOSTNAME, the pod name).
    #[arg(long, env = "BURST_IDENTITY")]
    identity: Option<String>,
    /// How long a Lease is valid without renewal (whole seconds).
    #[arg(long, env = "BURST_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    lease_duration: Duration,
    /// The leader steps down when it could not renew for this long.
    #[arg(long, env = "BURST_RENEW_DEADLINE", default_value = "10s", value_parser = duration)]
    renew_deadline: Duration,
    /// Interval between attempts to acquire or renew the Lease.
    #[arg(long, env = "BURST_RETRY_PERIOD", default_value = "2s", value_parser = duration)]
    retry_period: Duration,
    /// Field manager recorded on route and status writes.
    #[arg(long, env = "BURST_FIELD_MANAGER", default_value = "burstd")]
    field_manager: String,
    /// Shortest interval between status writes that only change the measured rate.
    #[arg(long, env = "BURST_STATUS_INTERVAL", default_value = "10s", value_parser = duration)]
    status_interval: Duration,
    /// Time control loops get to finish their tick on SIGTERM.
    #[arg(long, env = "BURST_SHUTDOWN_GRACE", default_value = "15s", value_parser = duration)]
    shutdown_grace: Duration,
    /// Timeout of each Kubernetes request made to read or write a route.
    #[arg(long, env = "BURST_REQUEST_TIMEOUT", default_value = "10s", value_parser = duration)]
    request_timeout: Duration,
    /// Record Kubernetes Events on split changes and errors.
    #[arg(long, env = "BURST_EVENTS", default_value_t = true, action = ArgAction::Set)]
    events: bool,
}

#[derive(Debug, Args)]
struct OperatorArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Watch BurstPolicies in this namespace only (default: all namespaces).
    #[arg(long, env = "BURST_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    /// All-or-nothing between two thresholds.
    Hysteresis,
    /// Proportional to the load above --capacity.
    Overflow,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnMissingArg {
    /// Keep the last decision.
    Hold,
    /// Everything to the primary.
    Primary,
    /// Everything to burst.
    Burst,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// A BurstPolicy document or a BurstPolicy spec (YAML); flags override its values.
    #[arg(long, env = "BURST_CONFIG")]
    config: Option<PathBuf>,
    /// Prometheus base URL, e.g. http://prometheus.istio-system:9090.
    #[arg(long, env = "BURST_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// PromQL template (default: the seed's query, measured at the source).
    #[arg(long, env = "BURST_QUERY")]
    query: Option<String>,
    /// A query template variable, NAME=VALUE (repeatable; comma-separated in the variable).
    #[arg(long = "var", env = "BURST_VARS", value_delimiter = ',', value_parser = key_value)]
    vars: Vec<(String, String)>,
    /// A /metrics URL to scrape instead of querying Prometheus (repeatable; comma-separated
    /// in the variable).
    #[arg(
        long = "scrape-target",
        env = "BURST_SCRAPE_TARGETS",
        value_delimiter = ','
    )]
    scrape_targets: Vec<String>,
    /// Metric name to scrape.
    #[arg(long, env = "BURST_SCRAPE_METRIC")]
    scrape_metric: Option<String>,
    /// The scraped metric is a gauge holding a rate (default: a counter).
    #[arg(long, env = "BURST_SCRAPE_GAUGE")]
    scrape_gauge: bool,
    /// Policy: hysteresis (default) or overflow.
    #[arg(long, env = "BURST_MODE", value_enum)]
    mode: Option<ModeArg>,
    /// High threshold in rps: above it, move to burst (default 15).
    #[arg(long, env = "BURST_HIGH")]
    high: Option<f64>,
    /// Low threshold in rps: below it, come back (default 10).
    #[arg(long, env = "BURST_LOW")]
    low: Option<f64>,
    /// Burst weight while bursting, 1..=100 (default 100).
    #[arg(long, env = "BURST_BURST_WEIGHT")]
    burst_weight: Option<i64>,
    /// Overflow: rps the primary serves.
    #[arg(long, env = "BURST_CAPACITY")]
    capacity: Option<f64>,
    /// Decision interval (default 1s).
    #[arg(long, env = "BURST_TICK")]
    tick: Option<String>,
    /// Rate window (default 15s).
    #[arg(long, env = "BURST_WINDOW")]
    window: Option<String>,
    /// Short window deciding moves to burst.
    #[arg(long, env = "BURST_WINDOW_UP")]
    window_up: Option<String>,
    /// Long window deciding moves back.
    #[arg(long, env = "BURST_WINDOW_DOWN")]
    window_down: Option<String>,
    /// Minimum time between changes (default 0s).
    #[arg(long, env = "BURST_COOLDOWN")]
    cooldown: Option<String>,
    /// Where traffic goes when data has been missing for --stale-after.
    #[arg(long, env = "BURST_ON_MISSING", value_enum)]
    on_missing: Option<OnMissingArg>,
    /// How long data may be missing before --on-missing applies (default 60s).
    #[arg(long, env = "BURST_STALE_AFTER")]
    stale_after: Option<String>,
    /// The VirtualService to change.
    #[arg(long, env = "BURST_VIRTUAL_SERVICE")]
    virtual_service: Option<String>,
    /// The HTTPRoute to change (instead of a VirtualService).
    #[arg(long, env = "BURST_HTTP_ROUTE")]
    http_route: Option<String>,
    /// Namespace of the route (default: the config file's, else `default`).
    #[arg(long, env = "BURST_NAMESPACE")]
    namespace: Option<String>,
    /// Name of the route inside the object (default: the only one holding both sides).
    #[arg(long, env = "BURST_ROUTE")]
    route: Option<String>,
    /// VirtualService subset receiving the primary share (default `primary`).
    #[arg(long, env = "BURST_PRIMARY_SUBSET")]
    primary_subset: Option<String>,
    /// VirtualService subset receiving the burst share (default `burst`).
    #[arg(long, env = "BURST_BURST_SUBSET")]
    burst_subset: Option<String>,
    /// HTTPRoute backend receiving the primary share.
    #[arg(long, env = "BURST_PRIMARY_BACKEND")]
    primary_backend: Option<String>,
    /// HTTPRoute backend receiving the burst share.
    #[arg(long, env = "BURST_BURST_BACKEND")]
    burst_backend: Option<String>,
    /// Decide, log and record Events, but never change the route.
    #[arg(long, env = "BURST_DRY_RUN")]
    dry_run: bool,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

const SA_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

fn common_options(a: &CommonArgs) -> anyhow::Result<CommonOptions> {
    let identity = a
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "burstd".to_owned());
    let mut o = CommonOptions::new(identity.clone());
    o.listen = a.listen;
    o.field_manager = a.field_manager.clone();
    o.status_interval = a.status_interval;
    o.shutdown_grace = a.shutdown_grace;
    o.request_timeout = a.request_timeout;
    o.events = a.events;
    if a.leader_elect {
        let namespace = match &a.lease_namespace {
            Some(ns) => ns.clone(),
            None => std::fs::read_to_string(SA_NAMESPACE)
                .map(|s| s.trim().to_owned())
                .with_context(|| {
                    format!(
                        "leader election needs the Lease's namespace: set --lease-namespace or \
                         BURST_LEASE_NAMESPACE (in a pod it is read from {SA_NAMESPACE}), or turn \
                         leader election off with --leader-elect=false"
                    )
                })?,
        };
        let settings = LeaseSettings {
            name: a.lease_name.clone(),
            lease_duration: a.lease_duration,
            renew_deadline: a.renew_deadline,
            retry_period: a.retry_period,
            ..LeaseSettings::new(namespace, identity)
        };
        settings.validate()?;
        o.lease = Some(settings);
    }
    Ok(o)
}

fn overrides(a: &RunArgs) -> Overrides {
    Overrides {
        prometheus_url: a.prometheus_url.clone(),
        query: a.query.clone(),
        variables: a.vars.clone(),
        scrape_targets: a.scrape_targets.clone(),
        scrape_metric: a.scrape_metric.clone(),
        scrape_gauge: a.scrape_gauge,
        mode: a.mode.map(|m| match m {
            ModeArg::Hysteresis => PolicyModeSpec::Hysteresis,
            ModeArg::Overflow => PolicyModeSpec::Overflow,
        }),
        high: a.high,
        low: a.low,
        burst_weight: a.burst_weight,
        capacity: a.capacity,
        tick: a.tick.clone(),
        window: a.window.clone(),
        window_up: a.window_up.clone(),
        window_down: a.window_down.clone(),
        cooldown: a.cooldown.clone(),
        on_missing: a.on_missing.map(|m| match m {
            OnMissingArg::Hold => OnMissingSpec::Hold,
            OnMissingArg::Primary => OnMissingSpec::Primary,
            OnMissingArg::Burst => OnMissingSpec::Burst,
        }),
        stale_after: a.stale_after.clone(),
        virtual_service: a.virtual_service.clone(),
        http_route: a.http_route.clone(),
        namespace: a.namespace.clone(),
        route: a.route.clone(),
        primary_subset: a.primary_subset.clone(),
        burst_subset: a.burst_subset.clone(),
        primary_backend: a.primary_backend.clone(),
        burst_backend: a.burst_backend.clone(),
        dry_run: a.dry_run.then_some(true),
    }
}

fn init_tracing(log: &LogArgs) -> anyhow::Result<()> {
    let format = match log.log_format {
        LogFormat::Json => burst_main::LogFormat::Json,
        LogFormat::Text => burst_main::LogFormat::Text,
    };
    burst_main::init_logging(&log.log_level, format).map_err(|e| match e {
        burst_main::LogError::Filter { ref source, .. } => {
            anyhow::anyhow!("--log-level / BURST_LOG {e}: {source}")
        }
        e => e.into(),
    })
}

async fn client() -> anyhow::Result<kube::Client> {
    kube::Client::try_default().await.context(
        "cannot reach the Kubernetes API: no in-cluster service account and no usable kubeconfig \
         (set KUBECONFIG, or run burstd inside the cluster)",
    )
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crd => {
            let yaml = burst_operator::crd::crd_yaml()?;
            let mut out = std::io::stdout().lock();
            match out.write_all(yaml.as_bytes()).and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Command::Operator(a) => {
            let options = common_options(&a.common)?;
            let settings = OperatorSettings {
                namespace: a.watch_namespace.clone(),
                shutdown_grace: a.common.shutdown_grace,
            };
            let client = client().await?;
            app::run_operator_mode(client, options, settings, burst_main::shutdown_signal())
                .await?;
            Ok(())
        }
        Command::Run(a) => {
            let options = common_options(&a.common)?;
            let policy = single::load(a.config.as_deref(), &overrides(&a))?;
            tracing::info!(namespace = %policy.namespace, name = %policy.name, target = %policy.spec.target.describe(&policy.namespace), "single-policy mode");
            let client = client().await?;
            app::run_single_mode(client, options, policy, burst_main::shutdown_signal()).await?;
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_tracing(&cli.log) {
        return burst_main::fail("burstd", burst_main::Exit::Usage, &e);
    }
    match burst_main::block_on(run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            tracing::error!(error = format!("{e:#}"), "burstd failed");
            burst_main::fail("burstd", burst_main::Exit::Runtime, &e)
        }
        Err(e) => burst_main::fail("burstd", burst_main::Exit::Runtime, &e),
    }
}
