//! `burst query`: evaluate a metric source once and print what it measured.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use burst_core::Reading;
use burst_pods::{MetricsPort, PodConfig, PodSource, Scheme};
use burst_prom::{
    BasicAuth, HttpClients, HttpConfig, LatencyUnit, PrometheusConfig, ScrapeConfig, ScrapeMode,
    ScrapeSignals, SeriesRule, SignalQueries, Source, SourceConfig,
};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Exit code when the source answered but had no data.
const EXIT_NO_DATA: u8 = 1;
/// Exit code when the source failed (unreachable, timeout, bad answer, bad settings).
const EXIT_ERROR: u8 = 2;

/// Arguments of `burst query`.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("source").required(true).args(["prometheus_url", "scrape", "pods"])),
    after_help = "\
Exit codes: 0 a value was printed; 1 no data (empty result, stale sample, no matching series);
2 error (unreachable, timeout, Prometheus error, NaN/Inf/negative value, bad settings).
No data and errors are printed to stderr as `no data: REASON` or `error (KIND): MESSAGE`.

The default Prometheus query is the seed's, measured at the source:
  sum(rate(istio_requests_total{reporter=\"{{reporter}}\",destination_service=
  \"{{service}}.{{namespace}}.svc.cluster.local\",source_workload=\"{{source_workload}}\"}
  [{{window}}])) by (source_workload,source_app,destination_service)
with reporter=source, service=worker-service, namespace=default,
source_workload=frontend-deployment; change them with --var, or give any PromQL with --query.

Examples:
  burst query --prometheus-url http://localhost:9090
  burst query --prometheus-url https://prom.example:9090 --ca-file ca.pem \\
      --token-file /var/run/secrets/kubernetes.io/serviceaccount/token --var namespace=shop
  burst query --prometheus-url http://localhost:9090 --query 'sum(rate(http_requests_total[1m]))'
  burst query --scrape http://10.0.0.7:15090/stats/prometheus --metric istio_requests_total \\
      --match reporter=source --match source_workload=frontend-deployment
  burst query --scrape http://localhost:8080/metrics --metric inflight_requests --gauge
  burst query --pods checkout --namespace shop --kubeconfig ~/.kube/config
      (scrapes every ready pod of Service shop/checkout found through its EndpointSlices,
      default :15090/stats/prometheus, istio_requests_total{reporter=\"destination\"})

Signals besides the rate (printed one per line, `name: value` or `name: no data`):
  burst query --prometheus-url http://localhost:9090 --signal latencyP99 --signal errorRatio \
      --signal primaryReady --signal 'burstErrorRatio=sum(rate(errors[{{window}}]))'
      (a bare name uses the built-in query: Istio's metrics, kube-state-metrics' endpoints)
  burst query --pods checkout --namespace shop --istio-signals
      (p99 of istio_request_duration_milliseconds and the 5xx/429 ratio, from the same scrapes)"
)]
pub struct Args {
    /// Base URL of Prometheus (or a compatible API such as Thanos or Mimir).
    #[arg(long, value_name = "URL")]
    prometheus_url: Option<String>,
    /// PromQL to evaluate; `{{name}}` placeholders are filled from --var and --window.
    #[arg(long, value_name = "PROMQL", requires = "prometheus_url")]
    query: Option<String>,
    /// A template variable, e.g. `--var namespace=shop` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = key_value, requires = "prometheus_url")]
    vars: Vec<(String, String)>,
    /// With several series: fail (error), add them up (sum) or take the largest (max).
    #[arg(long, value_enum, default_value = "error", requires = "prometheus_url")]
    series: SeriesArg,
    /// Samples older than this are stale (no data).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration, requires = "prometheus_url")]
    max_age: Duration,
    /// Only check that Prometheus answers queries (`vector(1)`); prints `ok`.
    #[arg(long, requires = "prometheus_url")]
    probe: bool,
    /// Also query a signal: `NAME` (the built-in query) or `NAME=PROMQL`, NAME one of
    /// latencyP99, errorRatio, primaryReady, burstReady, burstErrorRatio (repeatable).
    #[arg(long = "signal", value_name = "NAME[=PROMQL]", value_parser = signal_arg, requires = "prometheus_url")]
    signals: Vec<(String, String)>,

    /// A /metrics URL to scrape directly, without Prometheus (repeatable; series are summed).
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "prometheus_url",
        requires = "metric"
    )]
    scrape: Vec<String>,
    /// The metric to read from the scraped targets (with --pods, default
    /// `istio_requests_total`).
    #[arg(long, value_name = "NAME", conflicts_with = "prometheus_url")]
    metric: Option<String>,
    /// Select series whose label equals this value, e.g. `--match reporter=source`
    /// (repeatable; with --pods, default `reporter=destination`).
    #[arg(long = "match", value_name = "LABEL=VALUE", value_parser = key_value, conflicts_with = "prometheus_url")]
    matchers: Vec<(String, String)>,
    /// The metric is a gauge: print its current value instead of a rate (one scrape).
    #[arg(long, requires = "scrape")]
    gauge: bool,
    /// Also measure the p99 of this histogram (name without `_bucket`, selected with the
    /// same --match) from the scrapes.
    #[arg(long, value_name = "NAME", conflicts_with = "prometheus_url")]
    latency_histogram: Option<String>,
    /// The histogram's bucket bounds are in seconds (default milliseconds).
    #[arg(long, requires = "latency_histogram")]
    latency_seconds: bool,
    /// Also measure the error ratio (5xx and 429 over all) of the selected series.
    #[arg(long, conflicts_with = "prometheus_url")]
    error_ratio: bool,
    /// The label holding the response code, for --error-ratio.
    #[arg(
        long,
        value_name = "LABEL",
        default_value = "response_code",
        requires = "error_ratio"
    )]
    code_label: String,
    /// Istio's signals: --latency-histogram istio_request_duration_milliseconds --error-ratio.
    #[arg(long, conflicts_with_all = ["prometheus_url", "latency_histogram"])]
    istio_signals: bool,
    /// Time between the two scrapes a rate is computed from.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, conflicts_with = "prometheus_url")]
    interval: Duration,

    /// Scrape the ready pods of this Service directly, found through its EndpointSlices.
    #[arg(long, value_name = "SERVICE", conflicts_with_all = ["prometheus_url", "scrape"])]
    pods: Option<String>,
    /// The Service's namespace.
    #[arg(long, value_name = "NS", default_value = "default", requires = "pods")]
    namespace: String,
    /// The kubeconfig to reach the API server with (default: $KUBECONFIG, ~/.kube/config
    /// or the in-cluster service account).
    #[arg(long, value_name = "FILE", requires = "pods")]
    kubeconfig: Option<PathBuf>,
    /// The pods' metrics port: a number, or the name of a port of the Service.
    #[arg(
        long,
        value_name = "PORT|NAME",
        default_value = "15090",
        requires = "pods"
    )]
    metrics_port: String,
    /// The pods' metrics path.
    #[arg(long, value_name = "PATH", default_value = burst_pods::ENVOY_STATS_PATH, requires = "pods")]
    metrics_path: String,
    /// Scrape the pods over HTTPS (verified against the system's roots and --ca-file).
    #[arg(long, requires = "pods")]
    https: bool,
    /// The share of ready pods that must answer for a value (0 < Q <= 1).
    #[arg(long, default_value = "0.5", requires = "pods")]
    quorum: f64,
    /// How many pods are scraped at once.
    #[arg(long, default_value = "32", requires = "pods")]
    concurrency: usize,

    /// Rate window: filled into `{{window}}` for Prometheus; for scrapes, the longest time
    /// two scrapes may be apart.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    window: Duration,
    /// Timeout, authentication and TLS of the requests.
    #[command(flatten)]
    http: HttpArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// HTTP flags shared by every command that talks to Prometheus (`burst query`,
/// `burst simulate --prometheus-url`).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "HTTP connection (timeout, auth, TLS)")]
pub struct HttpArgs {
    /// Longest time one request may take.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Send `Authorization: Bearer` with the token in this file (re-read when it changes).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// HTTP basic auth user; the password comes from --basic-auth-password or the
    /// environment.
    #[arg(long, value_name = "USER", requires = "basic_auth_password")]
    basic_auth_user: Option<String>,
    /// HTTP basic auth password.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "BURST_BASIC_AUTH_PASSWORD",
        hide_env_values = true
    )]
    basic_auth_password: Option<String>,
    /// Trust the CA certificates in this PEM file (in addition to the system's).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Do not verify TLS certificates (lab setups only).
    #[arg(long)]
    insecure_skip_verify: bool,
    /// An extra request header, e.g. `--header 'X-Scope-OrgID: tenant-a'` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = header)]
    headers: Vec<(String, String)>,
}

impl HttpArgs {
    /// The HTTP settings these flags give.
    pub fn config(&self) -> HttpConfig {
        HttpConfig {
            timeout: self.timeout,
            bearer_token_file: self.token_file.clone(),
            basic_auth: match (&self.basic_auth_user, &self.basic_auth_password) {
                (Some(username), Some(password)) => Some(BasicAuth {
                    username: username.clone(),
                    password: password.clone(),
                }),
                _ => None,
            },
            ca_file: self.ca_file.clone(),
            insecure_skip_verify: self.insecure_skip_verify,
            headers: self.headers.iter().cloned().collect(),
            ..HttpConfig::default()
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SeriesArg {
    Error,
    Sum,
    Max,
}

/// What one evaluation came to.
enum Outcome {
    /// A reading and the signals that were asked for (their names, as printed).
    Reading(Reading, Vec<&'static str>),
    ProbeOk,
    Failed {
        kind: &'static str,
        message: String,
    },
}

/// Runs `burst query`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(service) = &args.pods {
        let outcome = match evaluate_pods(&args, service).await {
            Ok(Outcome::Reading(r, _)) => Outcome::Reading(r, scrape_signal_names(&args)),
            Ok(o) => o,
            Err(e) => e,
        };
        return report(&outcome, args.json);
    }
    let outcome = match evaluate(&args).await {
        Ok(Outcome::Reading(r, _)) if args.prometheus_url.is_none() => {
            Outcome::Reading(r, scrape_signal_names(&args))
        }
        Ok(o) => o,
        Err(e) => Outcome::Failed {
            kind: e.kind(),
            message: e.to_string(),
        },
    };
    report(&outcome, args.json)
}

async fn evaluate(args: &Args) -> Result<Outcome, burst_prom::Error> {
    let http = args.http.config();
    if let Some(url) = &args.prometheus_url {
        let mut config = PrometheusConfig {
            url: url.clone(),
            variables: args.vars.iter().cloned().collect(),
            window: args.window,
            series: match args.series {
                SeriesArg::Error => SeriesRule::Error,
                SeriesArg::Sum => SeriesRule::Sum,
                SeriesArg::Max => SeriesRule::Max,
            },
            max_age: args.max_age,
            http,
            signals: signal_queries(&args.signals),
            ..PrometheusConfig::default()
        };
        if let Some(q) = &args.query {
            config.query = q.clone();
        }
        let source = SourceConfig::Prometheus(config).connect(&HttpClients::new())?;
        if let Source::Prometheus(prometheus) = &source {
            if args.probe {
                prometheus.probe().await?;
                return Ok(Outcome::ProbeOk);
            }
            for q in prometheus.queries() {
                tracing::info!(query = q, "evaluating");
            }
            for (signal, q) in prometheus.signal_queries() {
                tracing::info!(signal, query = q, "evaluating");
            }
        }
        let names = args
            .signals
            .iter()
            .filter_map(|(n, _)| signal_name(n))
            .collect();
        return Ok(Outcome::Reading(source.evaluate().await?, names));
    }
    let counter = !args.gauge;
    if counter && args.interval >= args.window {
        return Err(burst_prom::Error::Config {
            key: "interval",
            message: format!(
                "--interval {} must be shorter than --window {} so both scrapes fall in the window",
                humantime::format_duration(args.interval),
                humantime::format_duration(args.window)
            ),
        });
    }
    let source = SourceConfig::Scrape(ScrapeConfig {
        targets: args.scrape.clone(),
        metric: args.metric.clone().unwrap_or_default(),
        matchers: args.matchers.iter().cloned().collect::<BTreeMap<_, _>>(),
        mode: if counter {
            ScrapeMode::Counter
        } else {
            ScrapeMode::Gauge
        },
        window: args.window,
        long_window: None,
        http,
        signals: scrape_signals(args),
    })
    .connect(&HttpClients::new())?;
    tracing::info!(source = %burst_core::MetricSource::describe(&source), "scraping");
    let first = source.evaluate().await?;
    if !counter || matches!(first, Reading::Value(_)) {
        return Ok(Outcome::Reading(first, Vec::new()));
    }
    if let Reading::NoData { reason } = &first
        && reason.starts_with("no series")
    {
        return Ok(Outcome::Reading(first, Vec::new()));
    }
    tokio::time::sleep(args.interval).await;
    Ok(Outcome::Reading(source.evaluate().await?, Vec::new()))
}

/// `--pods`: watch the Service's EndpointSlices, scrape its ready pods twice (a rate needs
/// two scrapes), `--interval` apart.
async fn evaluate_pods(args: &Args, service: &str) -> Result<Outcome, Outcome> {
    let failed = |kind: &'static str, message: String| Outcome::Failed { kind, message };
    let pods_failed = |e: burst_pods::Error| failed(e.kind(), e.to_string());
    if args.interval >= args.window {
        return Err(failed(
            "config",
            format!(
                "--interval {} must be shorter than --window {} so both scrapes fall in the window",
                humantime::format_duration(args.interval),
                humantime::format_duration(args.window)
            ),
        ));
    }
    let client = kube_client(args.kubeconfig.as_deref(), args.http.timeout)
        .await
        .map_err(|m| failed("kubeconfig", m))?;
    let defaults = PodConfig::default();
    let config = PodConfig {
        service: service.to_owned(),
        namespace: args.namespace.clone(),
        scheme: if args.https {
            Scheme::Https
        } else {
            Scheme::Http
        },
        port: match args.metrics_port.parse::<u16>() {
            Ok(n) => MetricsPort::Number(n),
            Err(_) => MetricsPort::Name(args.metrics_port.clone()),
        },
        path: args.metrics_path.clone(),
        metric: args.metric.clone().unwrap_or(defaults.metric),
        matchers: if args.matchers.is_empty() {
            defaults.matchers
        } else {
            args.matchers.iter().cloned().collect()
        },
        window: args.window,
        concurrency: args.concurrency,
        quorum: args.quorum,
        http: args.http.config(),
        signals: scrape_signals(args),
        ..defaults
    };
    let source = PodSource::start(config, client, &HttpClients::new()).map_err(pods_failed)?;
    source
        .watcher()
        .wait_synced(args.http.timeout)
        .await
        .map_err(pods_failed)?;
    tracing::info!(
        source = %burst_core::MetricSource::describe(&source),
        ready = source.watcher().ready_count(),
        "scraping"
    );
    let first = source.evaluate().await.map_err(pods_failed)?;
    let scraped = source.last_round();
    if matches!(first, Reading::Value(_)) || scraped.answered == 0 {
        return Ok(Outcome::Reading(first, Vec::new()));
    }
    tokio::time::sleep(args.interval).await;
    Ok(Outcome::Reading(
        source.evaluate().await.map_err(pods_failed)?,
        Vec::new(),
    ))
}

/// A client from `path`, or from the environment (KUBECONFIG, ~/.kube/config, in-cluster).
async fn kube_client(path: Option<&Path>, timeout: Duration) -> Result<kube::Client, String> {
    let mut config = match path {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                format!(
                    "cannot use kubeconfig {}: {e}; pass a kubeconfig file for the cluster (kubectl's ~/.kube/config works)",
                    path.display()
                )
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        None => kube::Config::infer().await.map_err(|e| {
            format!("no kubeconfig found ({e}); pass --kubeconfig FILE or set KUBECONFIG")
        })?,
    };
    config.connect_timeout = Some(timeout);
    kube::Client::try_from(config).map_err(|e| format!("cannot build a Kubernetes client: {e}"))
}

fn report(outcome: &Outcome, json: bool) -> anyhow::Result<ExitCode> {
    let code = match outcome {
        Outcome::Reading(Reading::Value(_), _) | Outcome::ProbeOk => 0,
        Outcome::Reading(Reading::NoData { .. }, _) => EXIT_NO_DATA,
        Outcome::Failed { .. } => EXIT_ERROR,
    };
    if json {
        let value = match outcome {
            Outcome::Reading(Reading::Value(o), _) => serde_json::json!({
                "status": "value",
                "up": o.rates.up.get(),
                "down": o.rates.down.get(),
                "sampled_at": o.sampled_at.as_secs_f64(),
                "signals": signals_json(&o.signals),
            }),
            Outcome::Reading(Reading::NoData { reason }, _) => {
                serde_json::json!({"status": "no_data", "reason": reason})
            }
            Outcome::ProbeOk => serde_json::json!({"status": "ok"}),
            Outcome::Failed { kind, message } => {
                serde_json::json!({"status": "error", "kind": kind, "message": message})
            }
        };
        super::print_stdout(&format!("{value}\n"))?;
    } else {
        match outcome {
            Outcome::Reading(Reading::Value(o), asked) => {
                super::print_stdout(&format!("{}\n{}", o.rates, signals_text(&o.signals, asked)))?
            }
            Outcome::ProbeOk => super::print_stdout("ok\n")?,
            Outcome::Reading(Reading::NoData { reason }, _) => eprintln!("no data: {reason}"),
            Outcome::Failed { kind, message } => eprintln!("error ({kind}): {message}"),
        }
    }
    Ok(ExitCode::from(code))
}

/// The signals in the order they are printed: (CLI and CRD name, JSON key).
const SIGNALS: [(&str, &str); 5] = [
    ("latencyP99", "latency_p99_ms"),
    ("errorRatio", "error_ratio"),
    ("primaryReady", "primary_ready"),
    ("burstReady", "burst_ready"),
    ("burstErrorRatio", "burst_error_ratio"),
];

/// The signals' values by name, each `None` without data.
fn signal_values(s: &burst_core::Signals) -> [Option<String>; 5] {
    [
        s.primary_p99.map(|v| format!("{:.1}ms", v.get())),
        s.primary_error_ratio.map(|v| format!("{:.4}", v.get())),
        s.primary_ready.map(|v| v.to_string()),
        s.burst_ready.map(|v| v.to_string()),
        s.burst_error_ratio.map(|v| format!("{:.4}", v.get())),
    ]
}

/// One line per signal that has a value or was asked for: `latencyP99: 233.3ms`,
/// `errorRatio: no data`.
fn signals_text(s: &burst_core::Signals, asked: &[&str]) -> String {
    let mut out = String::new();
    for ((name, _), value) in SIGNALS.iter().zip(signal_values(s)) {
        match value {
            Some(v) => out.push_str(&format!("{name}: {v}\n")),
            None if asked.contains(name) => out.push_str(&format!("{name}: no data\n")),
            None => {}
        }
    }
    out
}

/// `{"latency_p99_ms": 233.3, "error_ratio": null, ...}`: every signal, `null` without data.
fn signals_json(s: &burst_core::Signals) -> serde_json::Value {
    let numbers = [
        s.primary_p99.map(|v| v.get()),
        s.primary_error_ratio.map(|v| v.get()),
        s.primary_ready.map(f64::from),
        s.burst_ready.map(f64::from),
        s.burst_error_ratio.map(|v| v.get()),
    ];
    let map: serde_json::Map<String, serde_json::Value> = SIGNALS
        .iter()
        .zip(numbers)
        .map(|((_, key), v)| {
            let value = match (key, v) {
                (_, None) => serde_json::Value::Null,
                (&"primary_ready" | &"burst_ready", Some(n)) => serde_json::json!(n as u64),
                (_, Some(n)) => serde_json::json!(n),
            };
            ((*key).to_owned(), value)
        })
        .collect();
    serde_json::Value::Object(map)
}

/// The CLI's name of a signal (`--signal NAME`), if it is one.
fn signal_name(name: &str) -> Option<&'static str> {
    SIGNALS.iter().map(|(n, _)| *n).find(|n| *n == name)
}

/// `NAME` or `NAME=PROMQL`; a bare name is the built-in query.
fn signal_arg(s: &str) -> Result<(String, String), String> {
    let (name, query) = match s.split_once('=') {
        Some((n, q)) => (n.trim(), q.to_owned()),
        None => (s.trim(), burst_prom::signal_queries::DEFAULT.to_owned()),
    };
    if signal_name(name).is_none() {
        let known: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "`{name}` is not a signal; use one of {}",
            known.join(", ")
        ));
    }
    Ok((name.to_owned(), query))
}

fn signal_queries(signals: &[(String, String)]) -> SignalQueries {
    let mut q = SignalQueries::default();
    for (name, query) in signals {
        let slot = match name.as_str() {
            "latencyP99" => &mut q.latency_p99,
            "errorRatio" => &mut q.error_ratio,
            "primaryReady" => &mut q.primary_ready,
            "burstReady" => &mut q.burst_ready,
            _ => &mut q.burst_error_ratio,
        };
        *slot = Some(query.clone());
    }
    q
}

fn scrape_signals(args: &Args) -> ScrapeSignals {
    if args.istio_signals {
        return ScrapeSignals::istio();
    }
    ScrapeSignals {
        latency_histogram: args.latency_histogram.clone(),
        latency_unit: if args.latency_seconds {
            LatencyUnit::Seconds
        } else {
            LatencyUnit::Milliseconds
        },
        error_ratio: args.error_ratio,
        code_label: args.code_label.clone(),
    }
}

/// The signals a scrape or pod query measures, as printed.
fn scrape_signal_names(args: &Args) -> Vec<&'static str> {
    let s = scrape_signals(args);
    let mut names = Vec::new();
    if s.latency_histogram.is_some() {
        names.push("latencyP99");
    }
    if s.error_ratio {
        names.push("errorRatio");
    }
    names
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

fn header(s: &str) -> Result<(String, String), String> {
    let at = s
        .find([':', '='])
        .ok_or_else(|| format!("`{s}` is not `NAME: VALUE`"))?;
    let (name, value) = (s[..at].trim(), s[at + 1..].trim());
    if name.is_empty() {
        return Err(format!("`{s}` has no header name"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_and_headers_parse() {
        assert_eq!(key_value("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(key_value("novalue").is_err());
        assert!(key_value("=x").is_err());
        assert_eq!(
            header("X-Scope-OrgID: t1").unwrap(),
            ("X-Scope-OrgID".into(), "t1".into())
        );
        assert_eq!(header("A=b").unwrap(), ("A".into(), "b".into()));
        assert!(header(": x").is_err());
    }
}
