//! [`PodSource`]: a [`MetricSource`] that scrapes every ready pod of a Service itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use burst_core::{MetricSource, Observation, Rate, Rates, Reading, SourceError};
use burst_prom::{
    Clock, HttpClients, HttpConfig, RateBuffer, ScrapeSignals, SeriesScraper, SignalHistory,
    SystemClock,
};
use futures::StreamExt;
use serde::Deserialize;
use url::Url;

use crate::Error;
use crate::endpoints::{EndpointWatcher, EndpointWatchers, ReadyEndpoint};

/// Envoy's (Istio sidecar's) Prometheus port.
pub const ENVOY_STATS_PORT: u16 = 15090;
/// Envoy's (Istio sidecar's) Prometheus path.
pub const ENVOY_STATS_PATH: &str = "/stats/prometheus";

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP (the default; Envoy's stats port serves it).
    #[default]
    Http,
    /// HTTPS, verified against the system's roots plus `http.ca_file`.
    Https,
}

/// Which port of a pod serves its metrics.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum MetricsPort {
    /// This port number on every pod (default 15090, Envoy's).
    Number(u16),
    /// The port of this name in the pod's EndpointSlice (the Service's port of that name).
    Name(String),
}

impl Default for MetricsPort {
    fn default() -> Self {
        MetricsPort::Number(ENVOY_STATS_PORT)
    }
}

/// Settings of a [`PodSource`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PodConfig {
    /// The Service whose ready pods are scraped.
    pub service: String,
    /// Its namespace.
    pub namespace: String,
    /// `http` (default) or `https`.
    pub scheme: Scheme,
    /// The metrics port (default 15090).
    pub port: MetricsPort,
    /// The metrics path (default `/stats/prometheus`).
    pub path: String,
    /// The counter to sum (default `istio_requests_total`).
    pub metric: String,
    /// Label matchers: a series is selected when each label has exactly this value (an
    /// empty value matches a missing label). Default `reporter="destination"`: the
    /// requests each pod's sidecar received.
    pub matchers: BTreeMap<String, String>,
    /// The (short) rate window (default 15 s).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// An optional long window; both rates come from the same scrapes.
    #[serde(with = "humantime_serde")]
    pub long_window: Option<Duration>,
    /// How many pods are scraped at once (default 32).
    pub concurrency: usize,
    /// The share of ready pods that must answer a round for a reading, in `(0, 1]`
    /// (default 0.5). Below it the reading is no data, naming how many failed.
    pub quorum: f64,
    /// HTTP settings: per-scrape timeout (default 5 s; keep it below the tick), bearer
    /// token file, CA bundle, response size cap.
    pub http: HttpConfig,
    /// Signals measured from the same scrapes besides the rate: the p99 of a latency
    /// histogram and the error ratio from a response-code label (none by default;
    /// [`ScrapeSignals::istio`] for Istio's sidecars). Reported as the primary's.
    pub signals: ScrapeSignals,
}

impl Default for PodConfig {
    fn default() -> Self {
        PodConfig {
            service: String::new(),
            namespace: String::new(),
            scheme: Scheme::Http,
            port: MetricsPort::default(),
            path: ENVOY_STATS_PATH.into(),
            metric: "istio_requests_total".into(),
            matchers: [("reporter".to_string(), "destination".to_string())].into(),
            window: Duration::from_secs(15),
            long_window: None,
            concurrency: 32,
            quorum: 0.5,
            http: HttpConfig::default(),
            signals: ScrapeSignals::default(),
        }
    }
}

/// Rewrites an endpoint's metrics URL before it is scraped (see
/// [`PodSource::with_url_rewrite`]).
pub type UrlRewrite = Arc<dyn Fn(&ReadyEndpoint, Url) -> Url + Send + Sync>;

/// What the last round of scrapes found: how many pods were ready, answered, failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundStats {
    /// Ready endpoints with a metrics URL.
    pub targets: usize,
    /// Pods that answered with a valid body.
    pub answered: usize,
    /// Pods that did not (timeout, refused, bad body).
    pub failed: usize,
    /// Ready endpoints without the named metrics port (not scraped).
    pub without_port: usize,
}

/// A metric source that scrapes the ready pods of a Service directly, as Knative's
/// autoscaler scrapes its proxies: it reacts within one of its own scrapes instead of one
/// Prometheus scrape interval.
///
/// Each [`observe`](MetricSource::observe) reads the ready endpoints from an
/// [`EndpointWatcher`] (memory, no API call), scrapes them concurrently (at most
/// `concurrency` at once, each bounded by `http.timeout` and `http.max_response_bytes`),
/// and records every selected series under its pod. The reading is the per-second
/// increase over the window summed over series and pods, with Prometheus' `rate()` rules
/// per series: a pod that appears starts at its first sample (no spike), a pod that goes
/// away adds nothing after its last sample (never a negative), and a counter that drops
/// (the pod's proxy restarted) counts as a reset.
pub struct PodSource {
    watcher: Arc<EndpointWatcher>,
    scraper: SeriesScraper,
    scheme: Scheme,
    port: MetricsPort,
    path: String,
    windows: Vec<Duration>,
    concurrency: usize,
    quorum: f64,
    clock: Arc<dyn Clock>,
    rewrite: Option<UrlRewrite>,
    history: Mutex<RateBuffer<(String, String)>>,
    signals: Mutex<SignalHistory<String>>,
    last: Mutex<RoundStats>,
}

impl PodSource {
    /// Builds a source on `watcher`'s endpoints (which must watch `config`'s Service),
    /// reading the system clock; checks every setting.
    pub fn new(
        config: PodConfig,
        watcher: Arc<EndpointWatcher>,
        clients: &HttpClients,
    ) -> Result<PodSource, Error> {
        PodSource::with_clock(config, watcher, clients, Arc::new(SystemClock))
    }

    /// Starts an [`EndpointWatcher`] for `config`'s Service with `client` and builds a
    /// source on it.
    pub fn start(
        config: PodConfig,
        client: kube::Client,
        clients: &HttpClients,
    ) -> Result<PodSource, Error> {
        let watcher = EndpointWatcher::start(client, &config.namespace, &config.service)?;
        PodSource::new(config, Arc::new(watcher), clients)
    }

    /// Builds a source on the watcher of `config`'s Service from `watchers`, starting it
    /// with `client` only if no other user holds one: sources and ready-endpoint signals
    /// on the same Service share one watch.
    pub fn shared(
        config: PodConfig,
        watchers: &EndpointWatchers,
        client: &kube::Client,
        clients: &HttpClients,
    ) -> Result<PodSource, Error> {
        let watcher = watchers.get_or_start(client, &config.namespace, &config.service)?;
        PodSource::new(config, watcher, clients)
    }

    /// Builds a source reading the time from `clock` (scrape times and windows).
    pub fn with_clock(
        config: PodConfig,
        watcher: Arc<EndpointWatcher>,
        clients: &HttpClients,
        clock: Arc<dyn Clock>,
    ) -> Result<PodSource, Error> {
        if watcher.service() != config.service || watcher.namespace() != config.namespace {
            return Err(Error::config(
                "service",
                format!(
                    "the watcher watches {}/{} but the source is for {}/{}; give the watcher of the same Service",
                    watcher.namespace(),
                    watcher.service(),
                    config.namespace,
                    config.service
                ),
            ));
        }
        if !config.path.starts_with('/') {
            return Err(Error::config(
                "path",
                format!(
                    "`{}` is not an absolute path; give e.g. {ENVOY_STATS_PATH}",
                    config.path
                ),
            ));
        }
        match &config.port {
            MetricsPort::Number(0) => {
                return Err(Error::config("port", "0 is not a port; give e.g. 15090"));
            }
            MetricsPort::Name(n) if n.is_empty() => {
                return Err(Error::config(
                    "port",
                    "empty port name; give a port number or the name of a Service port",
                ));
            }
            _ => {}
        }
        if config.concurrency == 0 {
            return Err(Error::config(
                "concurrency",
                "0 would scrape nothing; give e.g. 32",
            ));
        }
        if !(config.quorum > 0.0 && config.quorum <= 1.0) {
            return Err(Error::config(
                "quorum",
                format!(
                    "{} is not a share of pods; give a number above 0 and at most 1, e.g. 0.5",
                    config.quorum
                ),
            ));
        }
        let windows = burst_prom::rate_windows(config.window, config.long_window)?;
        let keep = windows.iter().copied().max().unwrap_or(config.window);
        let unit = config.signals.latency_unit;
        let scraper = SeriesScraper::new(config.metric, config.matchers, &config.http, clients)?
            .with_signals(config.signals)?;
        Ok(PodSource {
            watcher,
            scraper,
            scheme: config.scheme,
            port: config.port,
            path: config.path,
            windows,
            concurrency: config.concurrency,
            quorum: config.quorum,
            clock,
            rewrite: None,
            history: Mutex::new(RateBuffer::new(keep)),
            signals: Mutex::new(SignalHistory::new(unit, keep)),
            last: Mutex::new(RoundStats::default()),
        })
    }

    /// Scrapes `rewrite(endpoint, url)` instead of each endpoint's metrics URL; series stay
    /// keyed by pod. For reaching pods through a tunnel or port-forwards when the
    /// controller runs outside the pod network, and for tests (the API server refuses
    /// loopback addresses in EndpointSlices, so local test servers cannot be named there).
    pub fn with_url_rewrite(mut self, rewrite: UrlRewrite) -> PodSource {
        self.rewrite = Some(rewrite);
        self
    }

    /// The endpoint watcher this source reads (shared with other readers).
    pub fn watcher(&self) -> &Arc<EndpointWatcher> {
        &self.watcher
    }

    /// The selector, PromQL style: `name{label="value", ...}`.
    pub fn selector(&self) -> String {
        self.scraper.selector()
    }

    /// What the last round found.
    pub fn last_round(&self) -> RoundStats {
        *burst_core::lock(&self.last)
    }

    /// How many (pod, series) pairs the rate buffer holds (pods that went away leave it
    /// once their samples are older than the longest window).
    pub fn tracked_series(&self) -> usize {
        burst_core::lock(&self.history).len() + burst_core::lock(&self.signals).len()
    }

    /// The metrics URL of `endpoint` (after the rewrite, if any), or `None` when it has no
    /// port of the configured name.
    pub fn metrics_url(&self, endpoint: &ReadyEndpoint) -> Option<Url> {
        let url = metrics_url(self.scheme, &self.port, &self.path, endpoint)?;
        Some(match &self.rewrite {
            Some(rewrite) => rewrite(endpoint, url),
            None => url,
        })
    }

    /// Scrapes every ready pod once, records what they gave and computes the reading.
    pub async fn evaluate(&self) -> Result<Reading, Error> {
        if !self.watcher.is_synced() {
            if !self.watcher.is_running() {
                return Err(Error::WatchStopped {
                    namespace: self.watcher.namespace().to_owned(),
                    service: self.watcher.service().to_owned(),
                });
            }
            return Ok(Reading::NoData {
                reason: format!(
                    "the EndpointSlices of {} are not listed yet",
                    self.service_name()
                ),
            });
        }
        let endpoints = self.watcher.ready_endpoints();
        let mut without_port = 0;
        // One scrape per pod: a dual-stack pod is listed in an IPv4 and an IPv6 slice, and
        // the same counters must not be read (and summed) twice.
        let mut seen = BTreeSet::new();
        let mut targets = Vec::with_capacity(endpoints.len());
        for e in &endpoints {
            match self.metrics_url(e) {
                Some(url) => {
                    if seen.insert(e.key().to_owned()) {
                        targets.push((e.key().to_owned(), url));
                    }
                }
                None => without_port += 1,
            }
        }
        if targets.is_empty() {
            self.set_last(RoundStats {
                without_port,
                ..RoundStats::default()
            });
            return Ok(Reading::NoData {
                reason: if without_port > 0 {
                    format!(
                        "none of the {without_port} ready endpoints of {} has the metrics port {:?}",
                        self.service_name(),
                        self.port
                    )
                } else {
                    format!("no ready endpoints for service {}", self.service_name())
                },
            });
        }
        let total = targets.len();
        let rounds: Vec<_> = futures::stream::iter(targets)
            .map(|(pod, url)| async move {
                let result = self.scraper.scrape_all(&url).await;
                (pod, result, self.clock.now())
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let now = self.clock.now();
        let mut failures = Vec::new();
        let mut history = burst_core::lock(&self.history);
        let mut signal_history = burst_core::lock(&self.signals);
        for (pod, result, at) in rounds {
            match result {
                Ok(scraped) => {
                    signal_history.record(&pod, at, &scraped);
                    for (labels, value) in scraped.series {
                        history.record((pod.clone(), labels), at, value);
                    }
                }
                Err(e) => failures.push((pod, e)),
            }
        }
        history.trim(now);
        signal_history.trim(now);
        let stats = RoundStats {
            targets: total,
            answered: total - failures.len(),
            failed: failures.len(),
            without_port,
        };
        self.set_last(stats);
        let first_failure = failures
            .first()
            .map(|(pod, e)| format!("; first failure: pod {pod}: {e}"))
            .unwrap_or_default();
        if let Some((pod, e)) = failures.first() {
            tracing::warn!(
                service = %self.service_name(),
                failed = stats.failed,
                answered = stats.answered,
                total,
                first_pod = %pod,
                first_error = %e,
                kind = e.kind(),
                "pods did not answer the scrape"
            );
        }
        let answered_share = stats.answered as f64 / total as f64;
        if answered_share < self.quorum {
            return Ok(Reading::NoData {
                reason: format!(
                    "only {} of {total} pods of {} answered ({} unreachable), below the quorum of {}%{first_failure}",
                    stats.answered,
                    self.service_name(),
                    stats.failed,
                    self.quorum * 100.0
                ),
            });
        }
        let mut per_window = Vec::with_capacity(self.windows.len());
        for w in &self.windows {
            match history.rate(now, *w) {
                Some(r) => per_window.push(r),
                None => {
                    return Ok(Reading::NoData {
                        reason: format!(
                            "need two scrapes of {} within the {} window ({} of {total} pods answered)",
                            self.selector(),
                            humantime::format_duration(*w),
                            stats.answered
                        ),
                    });
                }
            }
        }
        let to_rate = |v: f64| {
            Rate::try_new("pod counter rate", v).map_err(|_| Error::InvalidValue {
                selector: self.selector(),
                value: v,
            })
        };
        let up = per_window[0];
        let down = per_window.last().copied().unwrap_or(up);
        let signals = self
            .scraper
            .signals_of(&signal_history, now, self.windows[0], Some(up));
        Ok(Reading::Value(
            Observation::new(
                Rates {
                    up: to_rate(up)?,
                    down: to_rate(down)?,
                },
                now,
            )
            .with_signals(signals),
        ))
    }

    fn service_name(&self) -> String {
        format!("{}/{}", self.watcher.namespace(), self.watcher.service())
    }

    fn set_last(&self, stats: RoundStats) {
        *burst_core::lock(&self.last) = stats;
    }
}

impl std::fmt::Debug for PodSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSource")
            .field("service", &self.service_name())
            .field("selector", &self.selector())
            .field("port", &self.port)
            .field("path", &self.path)
            .field("rewrite", &self.rewrite.is_some())
            .finish_non_exhaustive()
    }
}

/// `scheme://address:port/path` for `endpoint`; IPv6 addresses in brackets.
fn metrics_url(
    scheme: Scheme,
    port: &MetricsPort,
    path: &str,
    endpoint: &ReadyEndpoint,
) -> Option<Url> {
    let port = match port {
        MetricsPort::Number(n) => *n,
        MetricsPort::Name(name) => *endpoint.ports.get(name)?,
    };
    let scheme = match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let host = if endpoint.address.contains(':') {
        format!("[{}]", endpoint.address)
    } else {
        endpoint.address.clone()
    };
    Url::parse(&format!("{scheme}://{host}:{port}{path}")).ok()
}

#[async_trait]
impl MetricSource for PodSource {
    async fn observe(&self) -> Result<Reading, SourceError> {
        self.evaluate().await.map_err(SourceError::from)
    }

    fn describe(&self) -> String {
        let port = match &self.port {
            MetricsPort::Number(n) => n.to_string(),
            MetricsPort::Name(n) => n.clone(),
        };
        format!(
            "pods of {} :{port}{} rate({}[{}])",
            self.service_name(),
            self.path,
            self.selector(),
            humantime::format_duration(self.windows[0])
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(address: &str, ports: &[(&str, u16)]) -> ReadyEndpoint {
        ReadyEndpoint {
            address: address.into(),
            pod: Some("p".into()),
            ports: ports.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect(),
        }
    }

    #[test]
    fn metrics_urls_from_endpoints() {
        let e = endpoint("10.1.2.3", &[("http", 8080), ("metrics", 9090)]);
        let default = PodConfig::default();
        assert_eq!(
            metrics_url(default.scheme, &default.port, &default.path, &e)
                .unwrap()
                .as_str(),
            "http://10.1.2.3:15090/stats/prometheus"
        );
        assert_eq!(
            metrics_url(
                Scheme::Https,
                &MetricsPort::Name("metrics".into()),
                "/m",
                &e
            )
            .unwrap()
            .as_str(),
            "https://10.1.2.3:9090/m"
        );
        assert_eq!(
            metrics_url(Scheme::Http, &MetricsPort::Name("admin".into()), "/m", &e),
            None,
            "a named port the slice does not have"
        );
        let v6 = endpoint("fd00::7", &[]);
        assert_eq!(
            metrics_url(Scheme::Http, &MetricsPort::Number(15090), "/s", &v6)
                .unwrap()
                .as_str(),
            "http://[fd00::7]:15090/s"
        );
    }

    #[test]
    fn endpoint_key_is_the_pod_else_the_address() {
        let mut e = endpoint("10.1.2.3", &[]);
        assert_eq!(e.key(), "p");
        e.pod = None;
        assert_eq!(e.key(), "10.1.2.3");
    }

    #[test]
    fn config_reads_from_yaml_shaped_json() {
        // Port as a number or a name; durations in humantime.
        let c: PodConfig = serde_json::from_str(
            r#"{"service": "s", "namespace": "n", "port": "http-envoy-prom", "window": "10s", "quorum": 0.75}"#,
        )
        .unwrap();
        assert_eq!(c.port, MetricsPort::Name("http-envoy-prom".into()));
        assert_eq!(c.window, Duration::from_secs(10));
        assert_eq!(c.path, ENVOY_STATS_PATH);
        let c: PodConfig = serde_json::from_str(r#"{"port": 9090, "scheme": "https"}"#).unwrap();
        assert_eq!(
            (c.port, c.scheme),
            (MetricsPort::Number(9090), Scheme::Https)
        );
        assert!(serde_json::from_str::<PodConfig>(r#"{"prot": 1}"#).is_err());
    }
}
