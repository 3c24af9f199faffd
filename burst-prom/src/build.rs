//! One way to build a metric source from its settings, for every caller.
//!
//! burstd (one source per BurstPolicy), `burst query` and `burst demo` all describe the
//! source they want as a [`SourceConfig`] and [`build`](SourceConfig::build) it here, and
//! all derive the rate windows from a policy's two windows with the one mapping
//! [`windows`].

use std::time::Duration;

use burst_core::{MetricSource, Reading, SourceError};

use crate::{
    Error, HttpClients, PrometheusConfig, PrometheusSource, ScrapeConfig, ScrapeMode, ScrapeSource,
};

/// The settings of a metric source, one of two kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    /// A Prometheus (or Thanos, Mimir, Cortex) query.
    Prometheus(PrometheusConfig),
    /// Direct scraping of `/metrics` endpoints.
    Scrape(ScrapeConfig),
}

/// A built source of either kind, for callers that need more than [`MetricSource`]
/// (`burst query` probes Prometheus and prints the rendered queries).
#[derive(Debug)]
pub enum Source {
    /// A Prometheus query.
    Prometheus(PrometheusSource),
    /// Direct scraping.
    Scrape(ScrapeSource),
}

/// The rate windows of a source for a policy whose short window decides moves to burst
/// (`up`) and whose long window decides moves back (`down`).
///
/// Returns `(window, long_window)`: the shorter of the two, and the longer one only when
/// they differ, so a policy with one window runs one query (or keeps one rate) per tick.
/// The sources report the short window's rate as `Rates::up` and the long one's as
/// `Rates::down`.
///
/// ```
/// use std::time::Duration;
/// let s = Duration::from_secs;
/// assert_eq!(burst_prom::windows(s(15), s(15)), (s(15), None));
/// assert_eq!(burst_prom::windows(s(5), s(60)), (s(5), Some(s(60))));
/// ```
pub fn windows(up: Duration, down: Duration) -> (Duration, Option<Duration>) {
    if up == down {
        (up, None)
    } else {
        (up.min(down), Some(up.max(down)))
    }
}

impl SourceConfig {
    /// Checks the settings and builds the source; sources with the same connection
    /// settings share one HTTP client through `clients`.
    pub fn build(self, clients: &HttpClients) -> Result<Box<dyn MetricSource>, Error> {
        Ok(match self.connect(clients)? {
            Source::Prometheus(s) => Box::new(s),
            Source::Scrape(s) => Box::new(s),
        })
    }

    /// Like [`build`](Self::build), keeping the concrete type.
    pub fn connect(self, clients: &HttpClients) -> Result<Source, Error> {
        Ok(match self {
            SourceConfig::Prometheus(c) => {
                Source::Prometheus(PrometheusSource::with_clients(c, clients)?)
            }
            SourceConfig::Scrape(c) => Source::Scrape(ScrapeSource::with_clients(c, clients)?),
        })
    }

    /// Sets the rate windows from a policy's `up` and `down` windows (see [`windows`]).
    pub fn with_windows(mut self, up: Duration, down: Duration) -> SourceConfig {
        let (window, long_window) = windows(up, down);
        match &mut self {
            SourceConfig::Prometheus(c) => {
                c.window = window;
                c.long_window = long_window;
            }
            SourceConfig::Scrape(c) => {
                c.window = window;
                c.long_window = long_window;
            }
        }
        self
    }

    /// A short description without building anything: `prometheus <url>` or
    /// `scrape <metric> from <targets>`.
    pub fn describe(&self) -> String {
        match self {
            SourceConfig::Prometheus(c) => format!("prometheus {}", c.url),
            SourceConfig::Scrape(c) => format!(
                "scrape {} ({}) from {}",
                c.metric,
                match c.mode {
                    ScrapeMode::Counter => "counter",
                    ScrapeMode::Gauge => "gauge",
                },
                c.targets.join(", ")
            ),
        }
    }
}

impl Source {
    /// Takes one measurement (see each source's `evaluate`).
    pub async fn evaluate(&self) -> Result<Reading, Error> {
        match self {
            Source::Prometheus(s) => s.evaluate().await,
            Source::Scrape(s) => s.evaluate().await,
        }
    }
}

#[async_trait::async_trait]
impl MetricSource for Source {
    async fn observe(&self) -> Result<Reading, SourceError> {
        self.evaluate().await.map_err(SourceError::from)
    }

    fn describe(&self) -> String {
        match self {
            Source::Prometheus(s) => s.describe(),
            Source::Scrape(s) => s.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn one_window_when_both_are_equal_else_short_then_long() {
        assert_eq!(windows(s(15), s(15)), (s(15), None));
        assert_eq!(windows(s(5), s(60)), (s(5), Some(s(60))));
        // Given the wrong way round, the short one still comes first.
        assert_eq!(windows(s(60), s(5)), (s(5), Some(s(60))));
    }

    #[test]
    fn with_windows_sets_both_kinds() {
        let p = SourceConfig::Prometheus(PrometheusConfig::default()).with_windows(s(5), s(60));
        let SourceConfig::Prometheus(c) = p else {
            panic!("kind changed")
        };
        assert_eq!((c.window, c.long_window), (s(5), Some(s(60))));
        let sc = SourceConfig::Scrape(ScrapeConfig::default()).with_windows(s(30), s(30));
        let SourceConfig::Scrape(c) = sc else {
            panic!("kind changed")
        };
        assert_eq!((c.window, c.long_window), (s(30), None));
    }

    #[test]
    fn build_checks_the_settings_and_shares_clients() {
        let clients = HttpClients::new();
        let prom = SourceConfig::Prometheus(PrometheusConfig {
            url: "http://127.0.0.1:9090".into(),
            ..PrometheusConfig::default()
        });
        assert_eq!(prom.describe(), "prometheus http://127.0.0.1:9090");
        let built = prom.build(&clients).unwrap();
        assert!(
            built
                .describe()
                .starts_with("prometheus http://127.0.0.1:9090/api/v1/query")
        );
        let scrape = SourceConfig::Scrape(ScrapeConfig {
            targets: vec!["http://127.0.0.1:15090/metrics".into()],
            metric: "istio_requests_total".into(),
            ..ScrapeConfig::default()
        });
        assert_eq!(
            scrape.describe(),
            "scrape istio_requests_total (counter) from http://127.0.0.1:15090/metrics"
        );
        let built = scrape.build(&clients).unwrap();
        assert!(
            built.describe().starts_with("scrape istio_requests_total"),
            "{}",
            built.describe()
        );
        assert_eq!(clients.len(), 1, "same connection settings, one client");

        let bad = SourceConfig::Scrape(ScrapeConfig::default());
        let Err(e) = bad.build(&clients) else {
            panic!("built a scrape source without targets")
        };
        assert_eq!(e.kind(), "config");
        // The default query has a `{{window}}` placeholder: two windows, two queries.
        let Source::Prometheus(two) = SourceConfig::Prometheus(PrometheusConfig::default())
            .with_windows(s(5), s(60))
            .connect(&clients)
            .unwrap()
        else {
            panic!("kind changed")
        };
        assert_eq!(two.queries().count(), 2);
        let fixed = SourceConfig::Prometheus(PrometheusConfig {
            query: "up".into(),
            ..PrometheusConfig::default()
        });
        let Err(e) = fixed.with_windows(s(5), s(60)).connect(&clients) else {
            panic!("two windows without a window placeholder were accepted")
        };
        assert_eq!(e.kind(), "config");
    }
}
