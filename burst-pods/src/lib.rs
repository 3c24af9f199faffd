//! # burst-pods
//!
//! A metric source for **burst** that scrapes the pods behind a Service itself, found
//! through a watch of the Service's EndpointSlices, instead of asking Prometheus.
//!
//! In real clusters Prometheus scrapes every 15-30 s, so a controller that reads
//! Prometheus reacts 15-30 s late whatever its policy. Istio's sidecars expose
//! `istio_requests_total` on every pod (Envoy's `:15090/stats/prometheus`); scraping them
//! directly brings the reaction down to one scrape of our own plus one tick.
//!
//! - [`EndpointWatcher`] watches the EndpointSlices of one Service (label
//!   `kubernetes.io/service-name`) with a kube-runtime watcher and reflector store and
//!   gives the ready endpoints (address, ports, pod name) from memory.
//! - [`EndpointWatchers`] shares one watcher per (namespace, Service) among every user in
//!   the process, and stops it when the last user drops its handle.
//! - [`WithReadyEndpoints`] wraps any [`burst_core::MetricSource`] and adds the ready
//!   endpoint counts of the primary and burst Services (`primary_ready`, `burst_ready`)
//!   to its observations.
//! - [`PodSource`] implements [`burst_core::MetricSource`]: on every `observe` it scrapes
//!   every ready endpoint's metrics URL concurrently (bounded), sums the selected counter
//!   over pods with `rate()` semantics per pod (new pods start at their first sample,
//!   vanished pods drop out, resets are resets), counts pods that do not answer, and gives
//!   *no data* only when fewer than a quorum answered. With [`PodConfig::signals`] it
//!   also measures the primary's p99 (from a latency histogram) and error ratio (from a
//!   response-code label) from the same scrapes.
//!
//! ```no_run
//! use burst_core::{MetricSource, Reading};
//! use burst_pods::{PodConfig, PodSource};
//! use burst_prom::HttpClients;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let source = PodSource::start(
//!     PodConfig {
//!         service: "checkout".into(),
//!         namespace: "shop".into(),
//!         ..PodConfig::default() // :15090/stats/prometheus, istio_requests_total{reporter="destination"}
//!     },
//!     client,
//!     &HttpClients::new(),
//! )?;
//! source.watcher().wait_synced(std::time::Duration::from_secs(10)).await?;
//! match source.observe().await? {
//!     Reading::Value(o) => println!("{} rps", o.rates.up),
//!     Reading::NoData { reason } => println!("no data: {reason}"),
//! }
//! # Ok(()) }
//! ```
//!
//! ## RBAC
//!
//! The identity needs `list` and `watch` on `endpointslices` in API group
//! `discovery.k8s.io`, in the Service's namespace. Nothing else is read from the API
//! server; the pods are reached over the network on their metrics port.
//!
//! ## Errors
//!
//! One enum, [`Error`]; [`Error::kind`] gives a stable label for metrics that survives
//! the conversion to [`burst_core::SourceError`].
//!
//! No feature flags.

mod endpoints;
mod error;
mod ready;
mod source;

pub use endpoints::{EndpointWatcher, EndpointWatchers, ReadyEndpoint, SERVICE_NAME_LABEL};
pub use error::Error;
pub use ready::WithReadyEndpoints;
pub use source::{
    ENVOY_STATS_PATH, ENVOY_STATS_PORT, MetricsPort, PodConfig, PodSource, RoundStats, Scheme,
    UrlRewrite,
};
