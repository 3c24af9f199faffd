//! [`ScrapeSource`]: a [`MetricSource`] that reads `/metrics` endpoints directly, without
//! a Prometheus server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use burst_core::{
    MetricSource, Observation, Rate, Rates, Ratio, Reading, Signals, SourceError, Timestamp,
};
use serde::Deserialize;
use url::Url;

use crate::Error;
use crate::api::{body_excerpt, format_labels};
use crate::clock::{Clock, SystemClock};
use crate::exposition::{self, ExpositionSample};
use crate::http::{HttpClient, HttpClients, HttpConfig};
use crate::signals::{ScrapeSignals, Scraped, SignalHistory, is_error_code, parse_le};
use crate::template::promql_duration;
use burst_core::rate::RateBuffer;

/// The `Accept` header sent to targets: the classic text format.
const ACCEPT: &str = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1";

/// How the selected samples become a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScrapeMode {
    /// The metric is a counter: the reading is its per-second increase over the window(s),
    /// computed from successive scrapes (the default).
    #[default]
    Counter,
    /// The metric is a gauge that already holds a rate: the reading is its current value
    /// (summed over series and targets).
    Gauge,
}

/// Settings of a [`ScrapeSource`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `/metrics` URLs to scrape (at least one); their series are summed.
    pub targets: Vec<String>,
    /// The metric name to select, e.g. `istio_requests_total`.
    pub metric: String,
    /// Label matchers: a series is selected when each label has exactly this value
    /// (an empty value matches a missing label, as in PromQL).
    pub matchers: BTreeMap<String, String>,
    /// Counter (rate from increases) or gauge (current value). Default: counter.
    pub mode: ScrapeMode,
    /// The (short) rate window (default 15 s).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// An optional long window; both rates come from the same scrapes.
    #[serde(with = "humantime_serde")]
    pub long_window: Option<Duration>,
    /// HTTP settings: timeout, authentication, TLS, extra headers.
    pub http: HttpConfig,
    /// Signals measured besides the rate (p99 latency, error ratio); none by default.
    pub signals: ScrapeSignals,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig {
            targets: Vec::new(),
            metric: String::new(),
            matchers: BTreeMap::new(),
            mode: ScrapeMode::Counter,
            window: Duration::from_secs(15),
            long_window: None,
            http: HttpConfig::default(),
            signals: ScrapeSignals::default(),
        }
    }
}

/// A metric source that scrapes Prometheus text endpoints itself.
///
/// Each [`observe`](MetricSource::observe) scrapes every target once and records the
/// selected series; in counter mode the rate over each window is computed from the
/// scrapes recorded so far, so a controller calling `observe` on every tick is all the
/// scrape loop there is. Until two scrapes fall within a window the reading is "no data".
#[derive(Debug)]
pub struct ScrapeSource {
    targets: Vec<Url>,
    scraper: SeriesScraper,
    mode: ScrapeMode,
    windows: Vec<Duration>,
    clock: Arc<dyn Clock>,
    history: Mutex<RateBuffer<SeriesKey>>,
    /// Boxed: most sources measure no signal, and `Source` keeps its variants close in size.
    signals: Box<Mutex<SignalHistory<usize>>>,
}

/// A series: which target it came from and its canonical label set.
type SeriesKey = (usize, String);

/// Fetches one `/metrics` URL and selects the series of one metric: the scraping half of
/// [`ScrapeSource`], for sources whose targets change between rounds (the pods behind a
/// Service, in `burst-pods`).
#[derive(Debug)]
pub struct SeriesScraper {
    metric: String,
    matchers: BTreeMap<String, String>,
    http: HttpClient,
    signals: ScrapeSignals,
    /// `<latency_histogram>_bucket`, when the latency is measured.
    bucket_metric: Option<String>,
}

/// What one target gave in one round.
struct TargetScrape {
    at: Timestamp,
    scraped: Scraped,
}

impl ScrapeSource {
    /// Builds a source reading the system clock; checks every setting.
    pub fn new(config: ScrapeConfig) -> Result<ScrapeSource, Error> {
        ScrapeSource::with_clock(config, Arc::new(SystemClock))
    }

    /// Builds a source that reads the time from `clock` (scrape times and windows).
    pub fn with_clock(config: ScrapeConfig, clock: Arc<dyn Clock>) -> Result<ScrapeSource, Error> {
        ScrapeSource::with_clock_and_clients(config, clock, &HttpClients::new())
    }

    /// Builds a source that shares its HTTP client with the other sources built with
    /// `clients` and the same connection settings (see [`HttpClients`]).
    pub fn with_clients(
        config: ScrapeConfig,
        clients: &HttpClients,
    ) -> Result<ScrapeSource, Error> {
        ScrapeSource::with_clock_and_clients(config, Arc::new(SystemClock), clients)
    }

    /// Builds a source reading the time from `clock` and sharing its HTTP client through
    /// `clients`.
    pub fn with_clock_and_clients(
        config: ScrapeConfig,
        clock: Arc<dyn Clock>,
        clients: &HttpClients,
    ) -> Result<ScrapeSource, Error> {
        if config.targets.is_empty() {
            return Err(Error::config(
                "targets",
                "no scrape target given; add at least one /metrics URL",
            ));
        }
        let targets = config
            .targets
            .iter()
            .map(|t| {
                Url::parse(t)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        Error::config(
                            "targets",
                            format!(
                                "`{t}` is not an http(s) URL; give e.g. http://10.0.0.7:15090/stats/prometheus"
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let unit = config.signals.latency_unit;
        let scraper = SeriesScraper::new(config.metric, config.matchers, &config.http, clients)?
            .with_signals(config.signals)?;
        let windows = crate::rate_windows(config.window, config.long_window)?;
        let keep = windows.iter().copied().max().unwrap_or(config.window);
        Ok(ScrapeSource {
            targets,
            scraper,
            mode: config.mode,
            windows,
            clock,
            history: Mutex::new(RateBuffer::new(keep)),
            signals: Box::new(Mutex::new(SignalHistory::new(unit, keep))),
        })
    }

    /// The selector, PromQL style: `name{label="value", ...}`.
    pub fn selector(&self) -> String {
        self.scraper.selector()
    }

    /// Scrapes every target once, records what it found and computes the reading.
    ///
    /// A target that cannot be reached or parsed fails the round (naming its URL); what
    /// the other targets gave is still recorded.
    pub async fn evaluate(&self) -> Result<Reading, Error> {
        let rounds = futures::future::join_all(
            self.targets
                .iter()
                .enumerate()
                .map(|(i, url)| async move { (i, self.scrape(url).await) }),
        )
        .await;
        let now = self.clock.now();
        let mut failures = Vec::new();
        let mut matched = 0usize;
        let mut gauge_sum = 0.0;
        let mut gauge_errors = 0.0;
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let mut signals = self.signals.lock().unwrap_or_else(|p| p.into_inner());
        for (i, round) in rounds {
            match round {
                Ok(scrape) => {
                    signals.record(&i, scrape.at, &scrape.scraped);
                    gauge_errors += scrape.scraped.errors.iter().map(|(_, v)| v).sum::<f64>();
                    for (labels, value) in scrape.scraped.series {
                        matched += 1;
                        gauge_sum += value;
                        if self.mode == ScrapeMode::Counter {
                            history.record((i, labels), scrape.at, value);
                        }
                    }
                }
                Err(e) => failures.push(e),
            }
        }
        history.trim(now);
        signals.trim(now);
        if !failures.is_empty() {
            let total = self.targets.len();
            let failed = failures.len();
            let first = failures.swap_remove(0);
            return Err(if total == 1 {
                first
            } else {
                Error::ScrapeTargets {
                    failed,
                    total,
                    first: Box::new(first),
                }
            });
        }
        if matched == 0 {
            return Ok(Reading::NoData {
                reason: format!("no series {} on any target", self.selector()),
            });
        }
        let rates = match self.mode {
            ScrapeMode::Gauge => {
                let rate = Rate::try_new("gauge", gauge_sum).map_err(|_| Error::InvalidValue {
                    series: format!("sum of {}", self.selector()),
                    value: gauge_sum,
                })?;
                let mut signals_now = Signals {
                    primary_p99: signals.latency_p99(now, self.windows[0]),
                    ..Signals::NONE
                };
                if self.scraper.signals.error_ratio && gauge_sum > 0.0 {
                    signals_now.primary_error_ratio =
                        Ratio::try_new("error ratio", (gauge_errors / gauge_sum).min(1.0)).ok();
                }
                return Ok(Reading::Value(
                    Observation::new(Rates::single(rate), now).with_signals(signals_now),
                ));
            }
            ScrapeMode::Counter => {
                let mut per_window = Vec::with_capacity(self.windows.len());
                for w in &self.windows {
                    match history.rate(now, *w) {
                        Some(r) => per_window.push(r),
                        None => {
                            return Ok(Reading::NoData {
                                reason: format!(
                                    "need two scrapes of {} within the {} window",
                                    self.selector(),
                                    promql_duration(*w)
                                ),
                            });
                        }
                    }
                }
                let to_rate = |v: f64| {
                    Rate::try_new("counter rate", v).map_err(|_| Error::InvalidValue {
                        series: format!("rate of {}", self.selector()),
                        value: v,
                    })
                };
                let up = per_window[0];
                let down = per_window.last().copied().unwrap_or(up);
                Rates {
                    up: to_rate(up)?,
                    down: to_rate(down)?,
                }
            }
        };
        let measured =
            self.scraper
                .signals_of(&signals, now, self.windows[0], Some(rates.up.get()));
        Ok(Reading::Value(
            Observation::new(rates, now).with_signals(measured),
        ))
    }

    async fn scrape(&self, url: &Url) -> Result<TargetScrape, Error> {
        let scraped = self.scraper.scrape_all(url).await?;
        Ok(TargetScrape {
            at: self.clock.now(),
            scraped,
        })
    }
}

impl SeriesScraper {
    /// A scraper of `metric` (a valid metric name) selecting the series whose labels
    /// equal `matchers` (an empty value matches a missing label, as in PromQL), with the
    /// HTTP settings `http` (timeout, credentials, CA, size cap); the connection pool is
    /// shared through `clients`.
    pub fn new(
        metric: String,
        matchers: BTreeMap<String, String>,
        http: &HttpConfig,
        clients: &HttpClients,
    ) -> Result<SeriesScraper, Error> {
        if !is_metric_name(&metric) {
            return Err(Error::config(
                "metric",
                format!(
                    "`{metric}` is not a metric name (letters, digits, `_` and `:`, not starting with a digit)"
                ),
            ));
        }
        Ok(SeriesScraper {
            metric,
            matchers,
            http: HttpClient::new(http, clients)?,
            signals: ScrapeSignals::default(),
            bucket_metric: None,
        })
    }

    /// Also selects what `signals` needs: the latency histogram's `_bucket` series (with
    /// the same matchers) and the demand series with an error response code.
    pub fn with_signals(mut self, signals: ScrapeSignals) -> Result<SeriesScraper, Error> {
        signals.validate()?;
        self.bucket_metric = signals
            .latency_histogram
            .as_ref()
            .map(|h| format!("{h}_bucket"));
        self.signals = signals;
        Ok(self)
    }

    /// The signals this scraper selects series for.
    pub fn signals(&self) -> &ScrapeSignals {
        &self.signals
    }

    /// The latency and error-ratio signals from `history` over `window` (`None` for those
    /// not measured); `total_rate` is the demand rate over the same window.
    pub fn signals_of<T: std::hash::Hash + Eq + Clone>(
        &self,
        history: &SignalHistory<T>,
        now: Timestamp,
        window: std::time::Duration,
        total_rate: Option<f64>,
    ) -> Signals {
        Signals {
            primary_p99: self
                .bucket_metric
                .as_ref()
                .and_then(|_| history.latency_p99(now, window)),
            primary_error_ratio: if self.signals.error_ratio {
                history.error_ratio(now, window, total_rate)
            } else {
                None
            },
            ..Signals::NONE
        }
    }

    /// The selector, PromQL style: `name{label="value", ...}`.
    pub fn selector(&self) -> String {
        if self.matchers.is_empty() {
            self.metric.clone()
        } else {
            format!("{}{}", self.metric, format_labels(&self.matchers))
        }
    }

    /// Fetches `url` once and returns the selected series as (canonical label set, value).
    ///
    /// A non-success status, a body that is not UTF-8 text or not the text format, and a
    /// selected value that is NaN, infinite or negative are errors naming the URL.
    pub async fn scrape(&self, url: &Url) -> Result<Vec<(String, f64)>, Error> {
        Ok(self.scrape_all(url).await?.series)
    }

    /// Fetches `url` once and returns the selected demand series and what the signals
    /// need (error series, histogram buckets); errors as for [`scrape`](Self::scrape).
    pub async fn scrape_all(&self, url: &Url) -> Result<Scraped, Error> {
        let request = self
            .http
            .get(url.as_str())
            .header(reqwest::header::ACCEPT, ACCEPT);
        let body = self.http.send(request, url.as_str()).await?;
        if !body.status.is_success() {
            return Err(Error::Scrape {
                url: url.to_string(),
                message: format!(
                    "HTTP {}: {}",
                    body.status.as_u16(),
                    body_excerpt(&body.bytes, 200)
                ),
            });
        }
        let text = std::str::from_utf8(&body.bytes).map_err(|e| Error::Scrape {
            url: url.to_string(),
            message: format!("the body is not UTF-8 text ({e})"),
        })?;
        let samples = exposition::parse(text).map_err(|e| Error::Exposition {
            url: url.to_string(),
            line: e.line,
            message: e.message,
        })?;
        let mut scraped = Scraped::default();
        for mut s in samples.into_iter() {
            let is_demand = s.name == self.metric;
            let is_bucket = self.bucket_metric.as_deref() == Some(s.name.as_str());
            if !(is_demand || is_bucket) || !self.matches(&s) {
                continue;
            }
            if !(s.value.is_finite() && s.value >= 0.0) {
                return Err(Error::InvalidValue {
                    series: format!("{}{} at {url}", s.name, format_labels(&s.labels)),
                    value: s.value,
                });
            }
            if is_demand {
                let labels = format_labels(&s.labels);
                if self.signals.error_ratio
                    && s.labels
                        .get(&self.signals.code_label)
                        .is_some_and(|c| is_error_code(c))
                {
                    scraped.errors.push((labels.clone(), s.value));
                }
                scraped.series.push((labels, s.value));
            } else if let Some(le) = s.labels.remove("le").as_deref().and_then(parse_le) {
                scraped
                    .buckets
                    .push((le, format_labels(&s.labels), s.value));
            }
        }
        Ok(scraped)
    }

    fn matches(&self, s: &ExpositionSample) -> bool {
        self.matchers
            .iter()
            .all(|(k, v)| s.labels.get(k).map_or("", String::as_str) == v)
    }
}

#[async_trait]
impl MetricSource for ScrapeSource {
    async fn observe(&self) -> Result<Reading, SourceError> {
        self.evaluate().await.map_err(SourceError::from)
    }

    fn describe(&self) -> String {
        let targets: Vec<&str> = self.targets.iter().map(Url::as_str).collect();
        let what = match self.mode {
            ScrapeMode::Counter => format!("rate over {}", promql_duration(self.windows[0])),
            ScrapeMode::Gauge => "gauge".into(),
        };
        format!(
            "scrape {} ({what}) from {}",
            self.selector(),
            targets.join(", ")
        )
    }
}

pub(crate) fn is_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_setting() {
        let base = ScrapeConfig {
            targets: vec!["http://127.0.0.1:1/metrics".into()],
            metric: "m".into(),
            ..ScrapeConfig::default()
        };
        for (cfg, key) in [
            (
                ScrapeConfig {
                    targets: vec![],
                    ..base.clone()
                },
                "targets",
            ),
            (
                ScrapeConfig {
                    targets: vec!["localhost:9090".into()],
                    ..base.clone()
                },
                "targets",
            ),
            (
                ScrapeConfig {
                    metric: "1bad".into(),
                    ..base.clone()
                },
                "metric",
            ),
            (
                ScrapeConfig {
                    long_window: Some(Duration::from_secs(1)),
                    ..base.clone()
                },
                "long_window",
            ),
        ] {
            match ScrapeSource::new(cfg) {
                Err(Error::Config { key: k, .. }) => assert_eq!(k, key),
                other => panic!("expected a config error for {key}, got {other:?}"),
            }
        }
        let s = ScrapeSource::new(ScrapeConfig {
            matchers: [("reporter".to_string(), "source".to_string())].into(),
            ..base
        })
        .unwrap();
        assert_eq!(s.selector(), r#"m{reporter="source"}"#);
    }
}
