//! Prometheus metric sources for burst: the HTTP query API ([`PrometheusSource`]) and
//! direct `/metrics` scraping ([`ScrapeSource`]).

pub mod api;
mod clock;
mod error;
pub mod exposition;
mod http;
mod prometheus;
mod scrape;
pub mod template;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use http::{BasicAuth, HttpConfig};
pub use prometheus::{
    PROBE_QUERY, PrometheusConfig, PrometheusSource, Selected, SeriesRule, select,
};
pub use scrape::{ScrapeConfig, ScrapeMode, ScrapeSource};
