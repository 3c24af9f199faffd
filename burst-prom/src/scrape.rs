//! [`ScrapeSource`]: a [`MetricSource`] that reads `/metrics` endpoints directly, without
//! a Prometheus server.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use burst_core::{MetricSource, Observation, Rate, Rates, Reading, SourceError, Timestamp};
use serde::Deserialize;
use url::Url;

use crate::Error;
use crate::api::{body_excerpt, format_labels};
use crate::clock::{Clock, SystemClock};
use crate::exposition::{self, ExpositionSample};
use crate::http::{HttpClient, HttpClients, HttpConfig};
use crate::template::promql_duration;

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
}

/// What one target gave in one round.
struct TargetScrape {
    at: Timestamp,
    series: Vec<(String, f64)>,
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
        let scraper = SeriesScraper::new(config.metric, config.matchers, &config.http, clients)?;
        let windows = crate::rate_windows(config.window, config.long_window)?;
        let keep = windows.iter().copied().max().unwrap_or(config.window);
        Ok(ScrapeSource {
            targets,
            scraper,
            mode: config.mode,
            windows,
            clock,
            history: Mutex::new(RateBuffer::new(keep)),
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
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        for (i, round) in rounds {
            match round {
                Ok(scrape) => {
                    for (labels, value) in scrape.series {
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
                Rates::single(rate)
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
        Ok(Reading::Value(Observation {
            rates,
            sampled_at: now,
        }))
    }

    async fn scrape(&self, url: &Url) -> Result<TargetScrape, Error> {
        let series = self.scraper.scrape(url).await?;
        Ok(TargetScrape {
            at: self.clock.now(),
            series,
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
        })
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
        let mut series = Vec::new();
        for s in samples.into_iter().filter(|s| self.selects(s)) {
            if !(s.value.is_finite() && s.value >= 0.0) {
                return Err(Error::InvalidValue {
                    series: format!("{}{} at {url}", s.name, format_labels(&s.labels)),
                    value: s.value,
                });
            }
            series.push((format_labels(&s.labels), s.value));
        }
        Ok(series)
    }

    fn selects(&self, s: &ExpositionSample) -> bool {
        s.name == self.metric
            && self
                .matchers
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

fn is_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

/// Counter samples per series over a sliding time span, and rates computed from them the
/// way Prometheus' `rate()` treats counters: a drop is a reset (the counter restarted from
/// zero), so the increase across it is the new value.
///
/// Used by [`ScrapeSource`] and by sources that key series by something else (a pod).
#[derive(Debug)]
pub struct RateBuffer<K> {
    keep: Duration,
    series: HashMap<K, VecDeque<(Timestamp, f64)>>,
}

impl<K: std::hash::Hash + Eq> RateBuffer<K> {
    /// An empty buffer keeping samples for `keep` (the longest rate window).
    pub fn new(keep: Duration) -> Self {
        RateBuffer {
            keep,
            series: HashMap::new(),
        }
    }

    /// How many series hold samples.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no series holds samples.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Records the counter `value` of series `key` at `at`.
    pub fn record(&mut self, key: K, at: Timestamp, value: f64) {
        let samples = self.series.entry(key).or_default();
        // Samples arrive in time order; a clock step backwards restarts the series.
        if samples.back().is_some_and(|(t, _)| *t > at) {
            samples.clear();
        }
        samples.push_back((at, value));
    }

    /// Forgets samples older than the longest window, and series left without samples
    /// (a target or series that went away).
    pub fn trim(&mut self, now: Timestamp) {
        let keep = self.keep;
        self.series.retain(|_, samples| {
            while samples
                .front()
                .is_some_and(|(t, _)| now.saturating_since(*t) > keep)
            {
                samples.pop_front();
            }
            !samples.is_empty()
        });
    }

    /// The per-second rate of all series together over `[now - window, now]`, or `None`
    /// when no series has two samples in it.
    ///
    /// The series' increases are added up and divided by the longest span any series
    /// covers, not each by its own span: when traffic moves from one series to another (a
    /// split change makes `destination_subset="burst"` appear), a young series' few seconds
    /// must not count as a full-window rate on top of the old series' tail.
    pub fn rate(&self, now: Timestamp, window: Duration) -> Option<f64> {
        let (mut increase, mut span) = (0.0, 0.0_f64);
        let mut any = false;
        for samples in self.series.values() {
            let mut in_window = samples
                .iter()
                .filter(|(t, _)| now.saturating_since(*t) <= window);
            let Some(&(first_t, first_v)) = in_window.next() else {
                continue;
            };
            let (mut last_t, mut last_v) = (first_t, first_v);
            for &(t, v) in in_window {
                increase += if v >= last_v { v - last_v } else { v };
                (last_t, last_v) = (t, v);
            }
            let s = last_t.saturating_since(first_t).as_secs_f64();
            if s > 0.0 {
                any = true;
                span = span.max(s);
            }
        }
        any.then(|| increase / span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: f64) -> Timestamp {
        Timestamp::from_secs_f64(secs).unwrap()
    }

    #[test]
    fn rate_from_two_samples_and_window_edges() {
        let mut b = RateBuffer::new(Duration::from_secs(60));
        b.record("a", t(100.0), 10.0);
        assert_eq!(b.rate(t(100.0), Duration::from_secs(15)), None);
        b.record("a", t(110.0), 60.0);
        assert_eq!(b.rate(t(110.0), Duration::from_secs(15)), Some(5.0));
        // The first sample falls out of a 5 s window: one sample is not enough.
        assert_eq!(b.rate(t(110.0), Duration::from_secs(5)), None);
    }

    #[test]
    fn counter_reset_counts_the_new_value_as_increase() {
        let mut b = RateBuffer::new(Duration::from_secs(60));
        for (at, v) in [(0.0, 100.0), (1.0, 110.0), (2.0, 4.0), (3.0, 14.0)] {
            b.record("a", t(1000.0 + at), v);
        }
        // 10 + 4 (reset: 0 -> 4) + 10 = 24 over 3 s.
        assert_eq!(b.rate(t(1003.0), Duration::from_secs(15)), Some(8.0));
    }

    #[test]
    fn series_rates_add_up_and_gone_series_age_out() {
        let mut b = RateBuffer::new(Duration::from_secs(10));
        b.record("a", t(0.0), 0.0);
        b.record("a", t(2.0), 4.0);
        b.record("b", t(0.0), 5.0);
        b.record("b", t(2.0), 11.0);
        assert_eq!(b.rate(t(2.0), Duration::from_secs(10)), Some(5.0));
        // "b" disappears; "a" goes on. After the window "b" no longer counts.
        b.record("a", t(8.0), 16.0);
        b.record("a", t(13.0), 26.0);
        b.trim(t(13.0));
        assert_eq!(b.series.len(), 1);
        assert_eq!(b.rate(t(13.0), Duration::from_secs(10)), Some(2.0));
    }

    #[test]
    fn traffic_moving_to_a_new_series_is_not_counted_twice() {
        // 20/s on "primary" for 15 s, then the split moves it all to "burst".
        let mut b = RateBuffer::new(Duration::from_secs(60));
        for s in 0..=15 {
            b.record("primary", t(f64::from(s)), 20.0 * f64::from(s));
        }
        for s in 16..=18 {
            b.record("primary", t(f64::from(s)), 300.0);
            b.record("burst", t(f64::from(s)), 20.0 * f64::from(s - 15));
        }
        let r = b.rate(t(18.0), Duration::from_secs(15)).unwrap();
        assert!((r - 20.0).abs() < 1.5, "rate {r} should stay near 20/s");
    }

    #[test]
    fn target_coming_back_after_a_gap() {
        let mut b = RateBuffer::new(Duration::from_secs(30));
        b.record("a", t(0.0), 0.0);
        b.record("a", t(1.0), 2.0);
        // Gone for 8 s, back with the counter continued.
        b.record("a", t(10.0), 20.0);
        assert_eq!(b.rate(t(10.0), Duration::from_secs(30)), Some(2.0));
        // Back after a restart (reset): 20 -> 3 counts 3.
        b.record("a", t(11.0), 3.0);
        assert_eq!(b.rate(t(11.0), Duration::from_secs(30)), Some(23.0 / 11.0));
    }

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
