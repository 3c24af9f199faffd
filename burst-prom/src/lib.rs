//! # burst-prom
//!
//! Metric sources for **burst** that measure demand from Prometheus data. Both implement
//! [`burst_core::MetricSource`] and return a [`burst_core::Reading`]: a rate per window
//! ([`burst_core::Rates`]: `up` = short window, `down` = long window, equal with one
//! window), or *no data*, which is never turned into 0.
//!
//! | source | reads | use it when |
//! |---|---|---|
//! | [`PrometheusSource`] | `/api/v1/query` of Prometheus, Thanos, Mimir, Cortex | a Prometheus already scrapes the mesh |
//! | [`ScrapeSource`] | `/metrics` endpoints directly (text format) | there is no Prometheus, or its scrape interval is too slow |
//!
//! ## Querying Prometheus
//!
//! The default query is the one of the original "istiowatcher" daemon, measured where the
//! demand originates (`reporter="source"`), so moving traffic to the burst cluster does
//! not make the measured demand vanish:
//!
//! ```text
//! sum(rate(istio_requests_total{reporter="{{reporter}}",
//!     destination_service="{{service}}.{{namespace}}.svc.cluster.local",
//!     source_workload="{{source_workload}}"}[{{window}}]))
//!   by (source_workload,source_app,destination_service)
//! ```
//!
//! Any PromQL works; `{{name}}` placeholders are filled from
//! [`PrometheusConfig::variables`] and `{{window}}` from the window(s) (see
//! [`template`]). With a `long_window` the query runs once per window.
//!
//! ```no_run
//! use std::time::Duration;
//! use burst_core::{MetricSource, Reading};
//! use burst_prom::{PrometheusConfig, PrometheusSource};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let source = PrometheusSource::new(PrometheusConfig {
//!     url: "http://prometheus.istio-system:9090".into(),
//!     variables: [("namespace".to_string(), "shop".to_string())].into(),
//!     window: Duration::from_secs(15),
//!     long_window: Some(Duration::from_secs(60)),
//!     ..PrometheusConfig::default()
//! })?;
//! source.probe().await?; // readiness: `vector(1)` answers 1
//! match source.observe().await? {
//!     Reading::Value(o) => println!("{} rps (15s) / {} rps (1m)", o.rates.up, o.rates.down),
//!     Reading::NoData { reason } => println!("no data: {reason}"),
//! }
//! # Ok(()) }
//! ```
//!
//! What becomes what:
//!
//! | answer | result |
//! |---|---|
//! | one series, or a scalar | the value |
//! | empty vector | no data (`empty vector: ...`) |
//! | sample older than `max_age` | no data (`stale: ...`) |
//! | several series | [`SeriesRule`]: `error` (default, names the label sets), `sum` or `max` |
//! | NaN, ±Inf, negative | [`Error::InvalidValue`] naming the series |
//! | `"status": "error"` | [`Error::Prometheus`] with Prometheus' `errorType` and message |
//! | `matrix` / `string` result | [`Error::ResultType`] |
//! | `warnings` | logged (`tracing` WARN); the value is kept |
//!
//! Queries longer than `post_above_bytes` (URL-encoded) are sent as a POST form. HTTP
//! settings ([`HttpConfig`]): per-request timeout, pooled connections, a bearer token
//! file re-read whenever it changes (projected service-account tokens rotate), basic auth,
//! a CA bundle, `insecure_skip_verify` (lab setups only; verification is on by default),
//! extra headers such as `X-Scope-OrgID`, and a response size cap.
//!
//! ## Many sources: share the HTTP clients
//!
//! `new` and `with_clock` give each source its own `reqwest::Client` (TLS roots and a
//! connection pool). A process running many sources, like burstd with one per
//! BurstPolicy, builds them with one [`HttpClients`] instead: sources with the same
//! connection settings (timeout, CA bundle, `insecure_skip_verify`) then share one client,
//! while credentials, headers and the size cap stay per source.
//!
//! ```no_run
//! use burst_prom::{HttpClients, PrometheusConfig, PrometheusSource};
//!
//! let clients = HttpClients::new(); // keep one per process, clone it freely
//! let shop = PrometheusSource::with_clients(PrometheusConfig::default(), &clients)?;
//! let cart = PrometheusSource::with_clients(PrometheusConfig::default(), &clients)?;
//! assert_eq!(clients.len(), 1);
//! # drop((shop, cart));
//! # Ok::<(), burst_prom::Error>(())
//! ```
//!
//! ## One builder for every caller
//!
//! [`SourceConfig`] holds either kind of settings; [`SourceConfig::build`] checks them and
//! builds the source (burstd, `burst query` and `burst demo` all build through it), and
//! [`windows`] is the one mapping from a policy's `up`/`down` windows to a source's
//! `window`/`long_window`.
//!
//! ```
//! use std::time::Duration;
//! use burst_core::MetricSource as _;
//! use burst_prom::{HttpClients, PrometheusConfig, SourceConfig};
//!
//! let config = SourceConfig::Prometheus(PrometheusConfig::default())
//!     .with_windows(Duration::from_secs(15), Duration::from_secs(60));
//! let source = config.build(&HttpClients::new())?;
//! assert!(source.describe().starts_with("prometheus"));
//! # Ok::<(), burst_prom::Error>(())
//! ```
//!
//! ## Scraping directly
//!
//! [`ScrapeSource`] scrapes one or many targets on every `observe`, keeps the selected
//! series in a sliding buffer and computes, like Prometheus' `rate()`, the per-second
//! increase of each series (a drop is a counter reset) summed over series and targets.
//! The controller calling `observe` once per tick is the whole scrape loop. Until two
//! scrapes fall within a window the reading is no data; a target that cannot be reached or
//! parsed is an error naming its URL. In [`ScrapeMode::Gauge`] the current value is read.
//!
//! ```no_run
//! use burst_prom::{ScrapeConfig, ScrapeSource};
//!
//! let source = ScrapeSource::new(ScrapeConfig {
//!     targets: vec!["http://10.0.0.7:15090/stats/prometheus".into()],
//!     metric: "istio_requests_total".into(),
//!     matchers: [("reporter".to_string(), "source".to_string())].into(),
//!     ..ScrapeConfig::default()
//! })?;
//! # Ok::<(), burst_prom::Error>(())
//! ```
//!
//! The text format is read by [`exposition::parse`], which handles label values with
//! commas, braces, escaped quotes and newlines, and types histogram `_sum`/`_count`
//! series (see its docs for why `prometheus-parse` alone is not enough).
//!
//! ## Signals besides the rate
//!
//! Observations may carry latency, error ratios and ready endpoints
//! ([`burst_core::Signals`]). [`PrometheusSource`] runs one query per signal
//! ([`PrometheusConfig::signals`], a [`SignalQueries`]; `"default"` selects the Istio or
//! kube-state-metrics query in [`signal_queries`]); a signal query that fails leaves only
//! that signal without data. [`ScrapeSource`] measures the p99 of a histogram and the error
//! ratio of its selected series from the same scrapes ([`ScrapeConfig::signals`], a
//! [`ScrapeSignals`]), with [`signals::histogram_quantile`] computed as PromQL does.
//!
//! //! ## History: range queries
//!
//! [`RangeClient`] fetches one query's values over a time range from
//! `/api/v1/query_range` (`burst simulate --prometheus-url` replays them). Ranges longer
//! than Prometheus' 11,000 points per series are fetched in chunks and stitched, one sample
//! per step; a step without a value is a gap (`None`), never 0. A query returning several
//! series is an error: wrap it in `sum(...)`.
//!
//! ## Time
//!
//! Both sources read the time from a [`Clock`] ([`SystemClock`] by default); tests pass a
//! [`ManualClock`] to `with_clock` to check staleness and windows without sleeping.
//!
//! ## Errors
//!
//! One enum, [`Error`]; [`Error::kind`] gives a stable label (`timeout`, `connect`,
//! `prometheus`, `invalid_value`, ...) that survives the conversion to
//! [`burst_core::SourceError`] for metrics.
//!
//! No feature flags.

pub mod api;
mod build;
mod clock;
mod error;
pub mod exposition;
mod http;
mod prometheus;
mod range;
mod scrape;
pub mod signal_queries;
pub mod signals;
pub mod template;

pub use build::{Source, SourceConfig, windows};
pub use burst_core::rate::RateBuffer;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use http::{BasicAuth, HttpClients, HttpConfig, MAX_IN_FLIGHT_PER_HOST};
pub use prometheus::{
    PROBE_QUERY, PrometheusConfig, PrometheusSource, Selected, SeriesRule, select,
};
pub use range::{
    MAX_POINTS, MAX_POINTS_PER_REQUEST, RangeClient, RangeHistory, RangeQuery, RangeSample,
};
pub use scrape::{ScrapeConfig, ScrapeMode, ScrapeSource, SeriesScraper};
pub use signal_queries::SignalQueries;
pub use signals::{LatencyUnit, ScrapeSignals, Scraped, SignalHistory};

/// Validates the rate windows both sources take: `window` longer than 0s and an optional
/// `long_window` longer than it. Returns them shortest first.
pub fn rate_windows(
    window: std::time::Duration,
    long_window: Option<std::time::Duration>,
) -> Result<Vec<std::time::Duration>, Error> {
    if window.is_zero() {
        return Err(Error::config(
            "window",
            "0s is not a rate window; use e.g. 15s",
        ));
    }
    let mut windows = vec![window];
    if let Some(long) = long_window {
        if long <= window {
            return Err(Error::config(
                "long_window",
                format!(
                    "{} is not longer than window {}; the long window must be the longer one",
                    humantime::format_duration(long),
                    humantime::format_duration(window)
                ),
            ));
        }
        windows.push(long);
    }
    Ok(windows)
}
