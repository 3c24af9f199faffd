//! burstd's command line: subcommands, flags and their `BURST_*` variables, and their conversion to settings.
//!
//! `burstd operator` watches BurstPolicy objects; `burstd run` runs one policy from flags,
//! `BURST_*` variables or a config file; `burstd crd` prints the CRD. Every flag can be set
//! with the environment variable shown in `--help`. The binary parses [`Cli`], sets up
//! logging from [`Cli::log`] and dispatches to [`crate::operator::run`] or [`crate::single::run`].

// The doc comments of clap items are `--help` text, where URLs are plain text.
#![allow(rustdoc::bare_urls)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use burst_core::HumanDuration;
use burst_core::policy::{Mode, OnMissing};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::Error;
use crate::leader::LeaseSettings;
use crate::operator::OperatorSettings;
use crate::process::CommonOptions;
use crate::single::Overrides;

/// The in-cluster controller of burst: moves traffic between a primary and a burst
/// destination by changing route weights from a measured request rate.
#[derive(Debug, Parser)]
#[command(name = "burstd", version, max_term_width = 100)]
pub struct Cli {
    // Doc comments on clap items become `--help` text, so these say it in `//` comments.
    // Logging: format and filter.
    #[allow(missing_docs)]
    #[command(flatten)]
    pub log: LogArgs,
    // What to do.
    #[allow(missing_docs)]
    #[command(subcommand)]
    pub command: Command,
}

// burstd's subcommands.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch BurstPolicy objects and run one control loop per object.
    Operator(Box<OperatorArgs>),
    /// Run one policy given by flags, BURST_* variables and/or a config file.
    Run(Box<RunArgs>),
    /// Print the BurstPolicy CustomResourceDefinition as YAML.
    Crd,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

// The global logging flags.
#[allow(missing_docs)]
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(
        long,
        env = "BURST_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// Log filter: a level (`info`) or directives (`info,burst_operator=debug`).
    #[arg(long, env = "BURST_LOG", default_value = "info", global = true)]
    pub log_level: String,
}

/// A flag taking one of `names`, parsed into the core's type (so `--help` lists them).
fn choice<T>(names: impl IntoIterator<Item = &'static str>) -> impl TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = burst_core::Error> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).try_map(|s| s.parse::<T>())
}

/// A duration flag, in the same forms as the policy's durations (`15s`, `1m30s`, `500ms`).
fn duration(s: &str) -> Result<Duration, String> {
    s.parse::<HumanDuration>()
        .map(Duration::from)
        .map_err(|e| e.to_string())
}

// The flags both modes take.
#[allow(missing_docs)]
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "BURST_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Elect a leader on a Lease so that only one replica writes (`false`: always write).
    #[arg(long, env = "BURST_LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, env = "BURST_LEASE_NAME", default_value = "burstd")]
    pub lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace from its service account).
    #[arg(long, env = "BURST_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This instance's identity in the Lease and in Events (default: $HOSTNAME, the pod name).
    #[arg(long, env = "BURST_IDENTITY")]
    pub identity: Option<String>,
    /// How long a Lease is valid without renewal (whole seconds).
    #[arg(long, env = "BURST_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    pub lease_duration: Duration,
    /// The leader steps down when it could not renew for this long.
    #[arg(long, env = "BURST_RENEW_DEADLINE", default_value = "10s", value_parser = duration)]
    pub renew_deadline: Duration,
    /// Interval between attempts to acquire or renew the Lease.
    #[arg(long, env = "BURST_RETRY_PERIOD", default_value = "2s", value_parser = duration)]
    pub retry_period: Duration,
    /// Field manager recorded on route and status writes.
    #[arg(long, env = "BURST_FIELD_MANAGER", default_value = "burstd")]
    pub field_manager: String,
    /// Shortest interval between status writes that only change the measured rate or the
    /// wording of the last decision (a split, rule or condition change is written at once).
    /// Each write costs the API server: at 1,000 policies, 10s meant about 100 writes a
    /// second and more than a core of kube-apiserver and etcd (BENCHMARKS.md).
    #[arg(long, env = "BURST_STATUS_INTERVAL", default_value = "30s", value_parser = duration)]
    pub status_interval: Duration,
    /// Time control loops get to finish their tick on SIGTERM.
    #[arg(long, env = "BURST_SHUTDOWN_GRACE", default_value = "15s", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// Timeout of each Kubernetes request made to read or write a route.
    #[arg(long, env = "BURST_REQUEST_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub request_timeout: Duration,
    /// Record Kubernetes Events on split changes and errors.
    #[arg(long, env = "BURST_EVENTS", default_value_t = true, action = ArgAction::Set)]
    pub events: bool,
    /// Send every API request over one multiplexed HTTP/2 connection (watches and the
    /// Lease keep their own). With requests bounded by --api-max-in-flight it saves only
    /// about 2 MiB at 1,000 policies; earlier builds lost more requests to timeouts over
    /// HTTP/2 on a CPU-starved machine (BENCHMARKS.md, "burstd at scale"), so it is off.
    #[arg(long, env = "BURST_API_HTTP2", default_value_t = false, action = ArgAction::Set)]
    pub api_http2: bool,
    /// Most API requests (reads and writes, not watches) in flight at once; the rest wait
    /// in order, and the wait counts towards --request-timeout. Over HTTP/1.1 it is also
    /// the most connections burstd keeps to the API server for requests.
    #[arg(long, env = "BURST_API_MAX_IN_FLIGHT", default_value_t = crate::client::DEFAULT_MAX_IN_FLIGHT)]
    pub api_max_in_flight: std::num::NonZeroUsize,
}

// `burstd operator`.
#[allow(missing_docs)]
#[derive(Debug, Args)]
pub struct OperatorArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Watch BurstPolicies in this namespace only (default: all namespaces).
    #[arg(long, env = "BURST_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
}

// `burstd run`.
#[allow(missing_docs)]
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// A BurstPolicy document or a BurstPolicy spec (YAML); flags override its values.
    #[arg(long, env = "BURST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Prometheus base URL, e.g. http://prometheus.istio-system:9090.
    #[arg(long, env = "BURST_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// PromQL template (default: the seed's query, measured at the source).
    #[arg(long, env = "BURST_QUERY")]
    pub query: Option<String>,
    /// A query template variable, NAME=VALUE (repeatable; comma-separated in the variable).
    #[arg(long = "var", env = "BURST_VARS", value_delimiter = ',', value_parser = key_value)]
    pub vars: Vec<(String, String)>,
    /// A /metrics URL to scrape instead of querying Prometheus (repeatable; comma-separated
    /// in the variable).
    #[arg(
        long = "scrape-target",
        env = "BURST_SCRAPE_TARGETS",
        value_delimiter = ','
    )]
    pub scrape_targets: Vec<String>,
    /// Metric name to scrape.
    #[arg(long, env = "BURST_SCRAPE_METRIC")]
    pub scrape_metric: Option<String>,
    /// The scraped metric is a gauge holding a rate (default: a counter).
    #[arg(long, env = "BURST_SCRAPE_GAUGE")]
    pub scrape_gauge: bool,
    /// Policy: hysteresis (default) or overflow.
    #[arg(long, env = "BURST_MODE", value_parser = choice::<Mode>(Mode::NAMES))]
    pub mode: Option<Mode>,
    /// High threshold in rps: above it, move to burst (default 15).
    #[arg(long, env = "BURST_HIGH")]
    pub high: Option<f64>,
    /// Low threshold in rps: below it, come back (default 10).
    #[arg(long, env = "BURST_LOW")]
    pub low: Option<f64>,
    /// Burst weight while bursting, 1..=100 (default 100).
    #[arg(long, env = "BURST_BURST_WEIGHT")]
    pub burst_weight: Option<i64>,
    /// Overflow: rps the primary serves.
    #[arg(long, env = "BURST_CAPACITY")]
    pub capacity: Option<f64>,
    /// Decision interval (default 1s).
    #[arg(long, env = "BURST_TICK")]
    pub tick: Option<HumanDuration>,
    /// Rate window (default 15s).
    #[arg(long, env = "BURST_WINDOW")]
    pub window: Option<HumanDuration>,
    /// Short window deciding moves to burst.
    #[arg(long, env = "BURST_WINDOW_UP")]
    pub window_up: Option<HumanDuration>,
    /// Long window deciding moves back.
    #[arg(long, env = "BURST_WINDOW_DOWN")]
    pub window_down: Option<HumanDuration>,
    /// Minimum time between changes (default 0s).
    #[arg(long, env = "BURST_COOLDOWN")]
    pub cooldown: Option<HumanDuration>,
    /// Where traffic goes when data has been missing for --stale-after.
    #[arg(long, env = "BURST_ON_MISSING", value_parser = choice::<OnMissing>(OnMissing::NAMES))]
    pub on_missing: Option<OnMissing>,
    /// How long data may be missing before --on-missing applies (default 60s).
    #[arg(long, env = "BURST_STALE_AFTER")]
    pub stale_after: Option<HumanDuration>,
    /// The VirtualService to change.
    #[arg(long, env = "BURST_VIRTUAL_SERVICE")]
    pub virtual_service: Option<String>,
    /// The HTTPRoute to change (instead of a VirtualService).
    #[arg(long, env = "BURST_HTTP_ROUTE")]
    pub http_route: Option<String>,
    /// Namespace of the route (default: the config file's, else `default`).
    #[arg(long, env = "BURST_NAMESPACE")]
    pub namespace: Option<String>,
    /// Name of the route inside the object (default: the only one holding both sides).
    #[arg(long, env = "BURST_ROUTE")]
    pub route: Option<String>,
    /// VirtualService subset receiving the primary share (default `primary`).
    #[arg(long, env = "BURST_PRIMARY_SUBSET")]
    pub primary_subset: Option<String>,
    /// VirtualService subset receiving the burst share (default `burst`).
    #[arg(long, env = "BURST_BURST_SUBSET")]
    pub burst_subset: Option<String>,
    /// HTTPRoute backend receiving the primary share.
    #[arg(long, env = "BURST_PRIMARY_BACKEND")]
    pub primary_backend: Option<String>,
    /// HTTPRoute backend receiving the burst share.
    #[arg(long, env = "BURST_BURST_BACKEND")]
    pub burst_backend: Option<String>,
    /// Decide, log and record Events, but never change the route.
    #[arg(long, env = "BURST_DRY_RUN")]
    pub dry_run: bool,
    /// Pre-warm this burst Deployment, NAMESPACE/NAME (or NAME, in --namespace): ahead of a
    /// forecast crossing of the trigger (within --prewarm-lead) or while traffic is on burst,
    /// raise its HorizontalPodAutoscaler's minReplicas (without an HPA: its replicas) to
    /// --prewarm-replicas, and restore them --prewarm-hold after the last need. Needs the
    /// timing too: --prewarm-lead and/or --prewarm-hold, or `prewarm` in the file's policy.
    #[arg(long, env = "BURST_PREWARM_DEPLOYMENT", value_name = "NS/NAME")]
    pub prewarm_deployment: Option<String>,
    /// Replicas of the burst Deployment while pre-warmed (default: the file's
    /// spec.prewarm.scaler.kubernetes.replicas, else 1); never lowers a larger value and is
    /// capped at the HPA's maxReplicas.
    #[arg(long, env = "BURST_PREWARM_REPLICAS", value_name = "N",
          value_parser = clap::value_parser!(i32).range(1..))]
    pub prewarm_replicas: Option<i32>,
    /// The burst Deployment's HorizontalPodAutoscaler (default: named like the Deployment;
    /// if there is none, the Deployment's replicas are raised instead).
    #[arg(long, env = "BURST_PREWARM_HPA", value_name = "NAME")]
    pub prewarm_hpa: Option<String>,
    /// Kubeconfig of the cluster the burst Deployment runs in (default: burstd's own);
    /// token or client-certificate credentials only. It needs get and patch on the
    /// Deployment and the HPA there (docs/prewarm.md, "RBAC").
    #[arg(long, env = "BURST_PREWARM_KUBECONFIG", value_name = "PATH")]
    pub prewarm_kubeconfig: Option<PathBuf>,
    /// Pre-warm: how far ahead the forecast looks, the burst side's start-up time plus a
    /// margin (default 90s once any pre-warm timing is given).
    #[arg(long, env = "BURST_PREWARM_LEAD", value_name = "DURATION")]
    pub prewarm_lead: Option<HumanDuration>,
    /// Pre-warm: how long the burst side stays prepared after the last need (default 5m
    /// once any pre-warm timing is given; 0s releases at once).
    #[arg(long, env = "BURST_PREWARM_HOLD", value_name = "DURATION")]
    pub prewarm_hold: Option<HumanDuration>,
    /// HAProxy runtime API (`unix:PATH` or `tcp:HOST:PORT`, a `stats socket ... level
    /// admin`): run on an HAProxy backend, without Kubernetes (repeatable for several
    /// instances; comma-separated in the variable).
    #[arg(
        long = "haproxy-runtime-api",
        env = "BURST_HAPROXY_RUNTIME_API",
        value_delimiter = ','
    )]
    pub haproxy_runtime_api: Vec<burst_haproxy::RuntimeAddr>,
    /// HAProxy backend holding the primary and the burst server.
    #[arg(long, env = "BURST_HAPROXY_BACKEND")]
    pub haproxy_backend: Option<String>,
    /// HAProxy server receiving the primary share.
    #[arg(long, env = "BURST_HAPROXY_PRIMARY_SERVER")]
    pub haproxy_primary_server: Option<String>,
    /// HAProxy server receiving the burst share.
    #[arg(long, env = "BURST_HAPROXY_BURST_SERVER")]
    pub haproxy_burst_server: Option<String>,
    /// Deadline of each HAProxy runtime API exchange.
    #[arg(long, env = "BURST_HAPROXY_TIMEOUT", default_value = "2s", value_parser = duration)]
    pub haproxy_timeout: Duration,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

const SA_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

impl CommonArgs {
    /// The process settings; reads the Lease namespace from the service account when leader
    /// election is on and none is given.
    pub fn options(&self) -> Result<CommonOptions, Error> {
        let a = self;
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
        o.api = crate::client::ClientOptions {
            http2: a.api_http2,
            max_in_flight: a.api_max_in_flight,
        };
        if a.leader_elect {
            let namespace = match &a.lease_namespace {
                Some(ns) => ns.clone(),
                None => std::fs::read_to_string(SA_NAMESPACE)
                    .map(|s| s.trim().to_owned())
                    .map_err(|source| Error::LeaseNamespace {
                        path: SA_NAMESPACE,
                        source,
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
}

impl OperatorArgs {
    /// What operator mode watches and how it stops.
    pub fn settings(&self) -> OperatorSettings {
        OperatorSettings {
            namespace: self.watch_namespace.clone(),
            shutdown_grace: self.common.shutdown_grace,
        }
    }
}

impl RunArgs {
    /// The HAProxy settings, when any `--haproxy-*` flag is given; then the Kubernetes
    /// source and target flags must not be.
    pub fn haproxy(&self) -> Result<Option<crate::haproxy::HaproxySettings>, Error> {
        let a = self;
        let any = !a.haproxy_runtime_api.is_empty()
            || a.haproxy_backend.is_some()
            || a.haproxy_primary_server.is_some()
            || a.haproxy_burst_server.is_some();
        if !any {
            return Ok(None);
        }
        let kube_flags = [
            ("--prometheus-url", a.prometheus_url.is_some()),
            ("--query", a.query.is_some()),
            ("--scrape-target", !a.scrape_targets.is_empty()),
            ("--virtual-service", a.virtual_service.is_some()),
            ("--http-route", a.http_route.is_some()),
            ("--primary-backend", a.primary_backend.is_some()),
            ("--burst-backend", a.burst_backend.is_some()),
        ];
        if let Some((flag, _)) = kube_flags.iter().find(|(_, set)| *set) {
            return Err(Error::invalid(
                *flag,
                "with --haproxy-runtime-api the source and the target are the HAProxy backend; drop this flag",
            ));
        }
        let prewarm_flags = [
            ("--prewarm-deployment", a.prewarm_deployment.is_some()),
            ("--prewarm-replicas", a.prewarm_replicas.is_some()),
            ("--prewarm-hpa", a.prewarm_hpa.is_some()),
            ("--prewarm-kubeconfig", a.prewarm_kubeconfig.is_some()),
        ];
        if let Some((flag, _)) = prewarm_flags.iter().find(|(_, set)| *set) {
            return Err(Error::invalid(
                *flag,
                "pre-warming scales a Kubernetes Deployment, which burstd does not reach with --haproxy-runtime-api; drop this flag",
            ));
        }
        let need = |v: &Option<String>, flag: &str| {
            v.clone()
                .ok_or_else(|| Error::invalid(flag, "is needed with --haproxy-runtime-api"))
        };
        if a.haproxy_runtime_api.is_empty() {
            return Err(Error::invalid(
                "--haproxy-runtime-api",
                "is needed with the other --haproxy-* flags: give unix:PATH or tcp:HOST:PORT",
            ));
        }
        Ok(Some(crate::haproxy::HaproxySettings {
            runtime_apis: a.haproxy_runtime_api.clone(),
            backend: need(&a.haproxy_backend, "--haproxy-backend")?,
            primary_server: need(&a.haproxy_primary_server, "--haproxy-primary-server")?,
            burst_server: need(&a.haproxy_burst_server, "--haproxy-burst-server")?,
            timeout: a.haproxy_timeout,
        }))
    }

    /// The single-policy settings given as flags and `BURST_*` variables.
    pub fn overrides(&self) -> Overrides {
        let a = self;
        Overrides {
            prometheus_url: a.prometheus_url.clone(),
            query: a.query.clone(),
            variables: a.vars.clone(),
            scrape_targets: a.scrape_targets.clone(),
            scrape_metric: a.scrape_metric.clone(),
            scrape_gauge: a.scrape_gauge,
            mode: a.mode,
            high: a.high,
            low: a.low,
            burst_weight: a.burst_weight,
            capacity: a.capacity,
            tick: a.tick,
            window: a.window,
            window_up: a.window_up,
            window_down: a.window_down,
            cooldown: a.cooldown,
            on_missing: a.on_missing,
            stale_after: a.stale_after,
            virtual_service: a.virtual_service.clone(),
            http_route: a.http_route.clone(),
            namespace: a.namespace.clone(),
            route: a.route.clone(),
            primary_subset: a.primary_subset.clone(),
            burst_subset: a.burst_subset.clone(),
            primary_backend: a.primary_backend.clone(),
            burst_backend: a.burst_backend.clone(),
            dry_run: a.dry_run.then_some(true),
            prewarm_deployment: a.prewarm_deployment.clone(),
            prewarm_replicas: a.prewarm_replicas,
            prewarm_hpa: a.prewarm_hpa.clone(),
            prewarm_kubeconfig: a.prewarm_kubeconfig.clone(),
            prewarm_lead: a.prewarm_lead,
            prewarm_hold: a.prewarm_hold,
        }
    }
}
