//! Signals from scraped series, for the sources that scrape counters themselves
//! ([`crate::ScrapeSource`], and `burst-pods`' `PodSource`): the p99 latency from a
//! histogram's `_bucket` counters, computed as PromQL's
//! `histogram_quantile(0.99, sum by (le) (rate(..._bucket[window])))`, and the error ratio
//! (5xx and 429 over all responses) from the demand counter's response-code label, as
//! `sum(rate(errors[window])) / sum(rate(all[window]))`.
//!
//! Both follow the `rate()` rules of [`RateBuffer`]: a series starts at its first sample,
//! a drop is a counter reset, a series that vanishes adds nothing after its last sample.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::time::Duration;

use burst_core::rate::RateBuffer;
use burst_core::{Millis, Ratio, Timestamp};
use serde::Deserialize;

use crate::Error;

/// Istio's request latency histogram (milliseconds), exposed by every sidecar.
pub const ISTIO_LATENCY_HISTOGRAM: &str = "istio_request_duration_milliseconds";

/// Istio's label holding the HTTP response code on `istio_requests_total`.
pub const ISTIO_RESPONSE_CODE_LABEL: &str = "response_code";

/// The quantile the latency signal reports.
pub const LATENCY_QUANTILE: f64 = 0.99;

/// The unit of a latency histogram's `le` bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum LatencyUnit {
    /// Milliseconds (Istio's `istio_request_duration_milliseconds`): the default.
    #[default]
    #[serde(rename = "ms")]
    Milliseconds,
    /// Seconds (the Prometheus convention, e.g. `http_request_duration_seconds`).
    #[serde(rename = "s")]
    Seconds,
}

/// Which signals a scraping source measures besides the demand rate. All off by default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrapeSignals {
    /// The histogram (its name without `_bucket`) whose p99 becomes the primary's latency,
    /// e.g. [`ISTIO_LATENCY_HISTOGRAM`]. Its `_bucket` series are selected with the
    /// source's matchers (as `istio_requests_total` and Istio's histogram share their
    /// labels). `None`: no latency signal.
    pub latency_histogram: Option<String>,
    /// The unit of the histogram's bucket bounds (default milliseconds).
    pub latency_unit: LatencyUnit,
    /// Whether the primary's error ratio is measured: the selected demand series whose
    /// [`code_label`](Self::code_label) is 5xx or 429, over all selected series.
    pub error_ratio: bool,
    /// The label carrying the HTTP response code (default `response_code`, Istio's).
    pub code_label: String,
}

impl Default for ScrapeSignals {
    fn default() -> Self {
        ScrapeSignals {
            latency_histogram: None,
            latency_unit: LatencyUnit::Milliseconds,
            error_ratio: false,
            code_label: ISTIO_RESPONSE_CODE_LABEL.into(),
        }
    }
}

/// What one scrape of one target selected: the demand series, the error series among
/// them, and the latency histogram's buckets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scraped {
    /// The demand metric's selected series: (canonical label set, value).
    pub series: Vec<(String, f64)>,
    /// The selected series whose response code counts as an error (5xx, 429); empty
    /// unless the error ratio is measured.
    pub errors: Vec<(String, f64)>,
    /// The latency histogram's selected buckets: (upper bound `le`, canonical label set
    /// without `le`, cumulative count); empty unless the latency is measured.
    pub buckets: Vec<(f64, String, f64)>,
}

/// Sliding buffers of the error and histogram-bucket series of a scraping source, keyed by
/// target `T` (a target index, a pod) and label set; gives the latency and error-ratio
/// signals over a window.
#[derive(Debug)]
pub struct SignalHistory<T> {
    unit: LatencyUnit,
    errors: RateBuffer<(T, String)>,
    /// One buffer per bucket bound (`le`, by its bits: bounds are compared exactly, as
    /// PromQL groups `by (le)` on the label's value).
    buckets: BTreeMap<u64, (f64, RateBuffer<(T, String)>)>,
    keep: Duration,
}

impl ScrapeSignals {
    /// Istio's signals: the p99 of [`ISTIO_LATENCY_HISTOGRAM`] and the error ratio from
    /// `response_code`.
    pub fn istio() -> ScrapeSignals {
        ScrapeSignals {
            latency_histogram: Some(ISTIO_LATENCY_HISTOGRAM.into()),
            error_ratio: true,
            ..ScrapeSignals::default()
        }
    }

    /// Whether any signal is measured.
    pub fn any(&self) -> bool {
        self.latency_histogram.is_some() || self.error_ratio
    }

    /// Checks the names.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(h) = &self.latency_histogram
            && (!crate::scrape::is_metric_name(h) || h.ends_with("_bucket"))
        {
            return Err(Error::config(
                "latency_histogram",
                format!(
                    "`{h}` is not a histogram name; give the name without `_bucket`, e.g. {ISTIO_LATENCY_HISTOGRAM}"
                ),
            ));
        }
        if self.error_ratio && !is_label_name(&self.code_label) {
            return Err(Error::config(
                "code_label",
                format!(
                    "`{}` is not a label name; give e.g. {ISTIO_RESPONSE_CODE_LABEL}",
                    self.code_label
                ),
            ));
        }
        Ok(())
    }
}

impl<T: Hash + Eq + Clone> SignalHistory<T> {
    /// Empty buffers keeping samples for `keep` (the longest rate window).
    pub fn new(unit: LatencyUnit, keep: Duration) -> Self {
        SignalHistory {
            unit,
            errors: RateBuffer::new(keep),
            buckets: BTreeMap::new(),
            keep,
        }
    }

    /// Records what `target` gave at `at`.
    pub fn record(&mut self, target: &T, at: Timestamp, scraped: &Scraped) {
        for (labels, value) in &scraped.errors {
            self.errors
                .record((target.clone(), labels.clone()), at, *value);
        }
        let keep = self.keep;
        for (le, labels, value) in &scraped.buckets {
            let (_, buffer) = self
                .buckets
                .entry(le.to_bits())
                .or_insert_with(|| (*le, RateBuffer::new(keep)));
            buffer.record((target.clone(), labels.clone()), at, *value);
        }
    }

    /// Forgets samples older than the longest window and series without samples.
    pub fn trim(&mut self, now: Timestamp) {
        self.errors.trim(now);
        for (_, buffer) in self.buckets.values_mut() {
            buffer.trim(now);
        }
        self.buckets.retain(|_, (_, b)| !b.is_empty());
    }

    /// How many series the buffers hold.
    pub fn len(&self) -> usize {
        self.errors.len() + self.buckets.values().map(|(_, b)| b.len()).sum::<usize>()
    }

    /// Whether the buffers hold no series.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The p99 over `[now - window, now]`, as
    /// `histogram_quantile(0.99, sum by (le) (rate(bucket[window])))`; `None` without
    /// buckets, without a `+Inf` bucket or without observations in the window.
    pub fn latency_p99(&self, now: Timestamp, window: Duration) -> Option<Millis> {
        let rates: Vec<(f64, f64)> = self
            .buckets
            .values()
            .filter_map(|(le, buffer)| Some((*le, buffer.rate(now, window)?)))
            .collect();
        let q = histogram_quantile(LATENCY_QUANTILE, &rates)?;
        let ms = match self.unit {
            LatencyUnit::Milliseconds => q,
            LatencyUnit::Seconds => q * 1000.0,
        };
        Millis::try_new("latency p99", ms).ok()
    }

    /// The error ratio over `[now - window, now]`: the error series' rate over
    /// `total_rate` (the rate of all selected series over the same window). `None` when
    /// there is no total rate or it is 0 (no requests: no ratio). Error series with fewer
    /// than two samples in the window count 0 (they count from their first sample on, as
    /// any series). Capped at 1 (an error series that appeared mid-window is divided by
    /// the whole window's total).
    pub fn error_ratio(
        &self,
        now: Timestamp,
        window: Duration,
        total_rate: Option<f64>,
    ) -> Option<Ratio> {
        let total = total_rate.filter(|t| *t > 0.0 && t.is_finite())?;
        let errors = self.errors.rate(now, window).unwrap_or(0.0);
        Ratio::try_new("error ratio", (errors / total).clamp(0.0, 1.0)).ok()
    }
}

/// PromQL's `histogram_quantile(q, ...)` over `(upper bound, cumulative count or rate)`
/// pairs, in any order: linear interpolation inside the bucket holding the rank (from 0
/// for the first bucket when its bound is positive), the highest finite bound when the
/// rank falls in the `+Inf` bucket, counts made monotonic first. `None` (PromQL's NaN)
/// without a `+Inf` bucket, with fewer than two buckets, with no observations or with
/// `q` outside `[0, 1]`.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut b: Vec<(f64, f64)> = buckets
        .iter()
        .copied()
        .filter(|(le, c)| !le.is_nan() && c.is_finite())
        .collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    // Equal bounds (e.g. `1` and `1.0` from two targets) add up, as `sum by (le)` would
    // have grouped them had they been written alike.
    let mut coalesced: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for (le, c) in b {
        match coalesced.last_mut() {
            Some(last) if last.0 == le => last.1 += c,
            _ => coalesced.push((le, c)),
        }
    }
    let b = coalesced;
    if b.len() < 2 || b.last().is_none_or(|(le, _)| *le != f64::INFINITY) {
        return None;
    }
    // Rates of cumulative buckets taken from separate series can dip; take the running max.
    let mut counts: Vec<f64> = Vec::with_capacity(b.len());
    let mut max = 0.0_f64;
    for (_, c) in &b {
        max = max.max(*c);
        counts.push(max);
    }
    let observations = *counts.last()?;
    if observations <= 0.0 {
        return None;
    }
    let rank = q * observations;
    let i = counts.iter().position(|c| *c >= rank)?;
    let last = b.len() - 1;
    if i == last {
        return Some(b[last - 1].0);
    }
    if i == 0 && b[0].0 <= 0.0 {
        return Some(b[0].0);
    }
    let (mut start, end, mut count, mut rank) = (0.0, b[i].0, counts[i], rank);
    if i > 0 {
        start = b[i - 1].0;
        count -= counts[i - 1];
        rank -= counts[i - 1];
    }
    if count <= 0.0 {
        return Some(end);
    }
    Some(start + (end - start) * (rank / count))
}

/// Whether an HTTP response code counts as an error: 5xx, and 429 (the server turning
/// requests away is overload too).
pub fn is_error_code(code: &str) -> bool {
    code == "429"
        || (code.len() == 3 && code.starts_with('5') && code.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses a bucket bound as the exposition format writes it (`0.5`, `+Inf`).
pub(crate) fn parse_le(le: &str) -> Option<f64> {
    match le {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        _ => le.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(secs: f64) -> Timestamp {
        Timestamp::from_secs_f64(secs).unwrap()
    }

    const INF: f64 = f64::INFINITY;

    // Expected values are what Prometheus' histogram_quantile returns for the same
    // buckets (its promql/testdata/histograms.test cases and the algorithm of
    // promql/quantile.go's bucketQuantile).
    #[test]
    fn quantile_interpolates_inside_the_bucket() {
        // Cumulative bucket rates: 50 under 0.1, 70 under 0.2, 100 in all.
        let b = [(0.1, 50.0), (0.2, 70.0), (INF, 100.0)];
        // rank 0.5*100 = 50 -> first bucket, from 0: 0 + 0.1 * 50/50 = 0.1
        assert_eq!(histogram_quantile(0.5, &b), Some(0.1));
        // rank 60 -> second bucket: 0.1 + 0.1 * (60-50)/(70-50) = 0.15
        assert!((histogram_quantile(0.6, &b).unwrap() - 0.15).abs() < 1e-12);
        // rank 99 -> +Inf bucket: the highest finite bound.
        assert_eq!(histogram_quantile(0.99, &b), Some(0.2));
        // q = 0 -> rank 0 -> first bucket, lower end.
        assert_eq!(histogram_quantile(0.0, &b), Some(0.0));
    }

    #[test]
    fn quantile_matches_promql_known_answers() {
        // Ten buckets 0.1 wide holding 10 observations each, +Inf with the 100 in all
        // (a uniform distribution: the quantile is q itself).
        let mut b: Vec<(f64, f64)> = (1..=10)
            .map(|i| (f64::from(i) / 10.0, f64::from(i) * 10.0))
            .collect();
        b.push((INF, 100.0));
        // p99: rank 99 in (0.9, 1.0] with 10 in it: 0.9 + 0.1 * 9/10 = 0.99
        assert!((histogram_quantile(0.99, &b).unwrap() - 0.99).abs() < 1e-12);
        // p50: rank 50 exactly at the top of bucket 0.5 -> 0.5
        assert!((histogram_quantile(0.5, &b).unwrap() - 0.5).abs() < 1e-12);
        // p25: rank 25 in (0.2, 0.3]: 0.2 + 0.1 * 5/10 = 0.25
        assert!((histogram_quantile(0.25, &b).unwrap() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn quantile_edge_cases_are_no_data_like_nan() {
        // No +Inf bucket: NaN in PromQL.
        assert_eq!(histogram_quantile(0.99, &[(0.1, 1.0), (0.2, 2.0)]), None);
        // Only +Inf: fewer than two buckets.
        assert_eq!(histogram_quantile(0.99, &[(INF, 5.0)]), None);
        // No observations.
        assert_eq!(histogram_quantile(0.99, &[(0.1, 0.0), (INF, 0.0)]), None);
        // q outside [0, 1].
        assert_eq!(histogram_quantile(1.5, &[(0.1, 1.0), (INF, 1.0)]), None);
        // A first bucket with a bound <= 0 returns the bound.
        assert_eq!(
            histogram_quantile(0.1, &[(0.0, 5.0), (1.0, 10.0), (INF, 10.0)]),
            Some(0.0)
        );
        // Out of order and non-monotonic input (rates of separate series): sorted and
        // the running max taken: {0.1: 5, 0.2: 5 (was 4), +Inf: 10}.
        let q = histogram_quantile(0.5, &[(INF, 10.0), (0.2, 4.0), (0.1, 5.0)]).unwrap();
        assert!((q - 0.1).abs() < 1e-12, "{q}");
        // Equal bounds add up.
        let q = histogram_quantile(0.5, &[(0.1, 2.0), (0.1, 3.0), (INF, 10.0)]).unwrap();
        assert!((q - 0.1).abs() < 1e-12, "{q}");
    }

    #[test]
    fn error_codes() {
        for c in ["500", "503", "599", "429"] {
            assert!(is_error_code(c), "{c}");
        }
        for c in ["200", "404", "0", "5", "5xx", "4290", ""] {
            assert!(!is_error_code(c), "{c}");
        }
    }

    #[test]
    fn le_parses_inf_and_numbers() {
        assert_eq!(parse_le("+Inf"), Some(INF));
        assert_eq!(parse_le("0.25"), Some(0.25));
        assert_eq!(parse_le("1e3"), Some(1000.0));
        assert_eq!(parse_le("x"), None);
        assert_eq!(parse_le("NaN"), None);
    }

    fn scraped(buckets: &[(f64, f64)], errors: f64) -> Scraped {
        Scraped {
            series: vec![],
            errors: vec![("{response_code=\"503\"}".into(), errors)],
            buckets: buckets
                .iter()
                .map(|(le, c)| (*le, String::new(), *c))
                .collect(),
        }
    }

    #[test]
    fn history_rates_the_buckets_and_handles_resets() {
        let mut h: SignalHistory<usize> =
            SignalHistory::new(LatencyUnit::Milliseconds, Duration::from_secs(30));
        // 10 s apart: 100 new observations, 50 under 10 ms, 90 under 100 ms.
        h.record(
            &0,
            t(0.0),
            &scraped(&[(10.0, 1000.0), (100.0, 2000.0), (INF, 3000.0)], 0.0),
        );
        assert_eq!(
            h.latency_p99(t(0.0), Duration::from_secs(15)),
            None,
            "one scrape"
        );
        h.record(
            &0,
            t(10.0),
            &scraped(&[(10.0, 1050.0), (100.0, 2090.0), (INF, 3100.0)], 5.0),
        );
        // Rates 5, 9, 10 /s: rank 9.9 in the +Inf bucket -> 100 ms.
        assert_eq!(
            h.latency_p99(t(10.0), Duration::from_secs(15))
                .map(Millis::get),
            Some(100.0)
        );
        // The target restarts: counters drop to {10: 50, 100: 99, Inf: 100} - a reset,
        // so the increases are the new values: rates 5, 9.9, 10 -> rank 9.9 lands at
        // the top of the 100 ms bucket -> 100 ms.
        h.record(
            &0,
            t(20.0),
            &scraped(&[(10.0, 50.0), (100.0, 99.0), (INF, 100.0)], 1.0),
        );
        let p = h
            .latency_p99(t(20.0), Duration::from_secs(15))
            .unwrap()
            .get();
        assert!((p - 100.0).abs() < 1e-9, "{p}");
        // Errors: 5 -> reset to 1 (increase 1) over 10 s = 0.1/s; total 10/s -> 0.01.
        let r = h
            .error_ratio(t(20.0), Duration::from_secs(15), Some(10.0))
            .unwrap();
        assert!((r.get() - 0.01).abs() < 1e-12, "{r}");
        assert_eq!(
            h.error_ratio(t(20.0), Duration::from_secs(15), Some(0.0)),
            None
        );
        assert_eq!(h.error_ratio(t(20.0), Duration::from_secs(15), None), None);
        // Everything ages out.
        h.trim(t(100.0));
        assert!(h.is_empty());
        assert_eq!(h.latency_p99(t(100.0), Duration::from_secs(15)), None);
    }

    #[test]
    fn seconds_histograms_become_milliseconds() {
        let mut h: SignalHistory<usize> =
            SignalHistory::new(LatencyUnit::Seconds, Duration::from_secs(30));
        h.record(
            &0,
            t(0.0),
            &scraped(&[(0.1, 0.0), (0.2, 0.0), (INF, 0.0)], 0.0),
        );
        h.record(
            &0,
            t(10.0),
            &scraped(&[(0.1, 0.0), (0.2, 100.0), (INF, 100.0)], 0.0),
        );
        // All 100 in (0.1, 0.2]: p99 = 0.1 + 0.1 * 0.99 = 0.199 s.
        let p = h
            .latency_p99(t(10.0), Duration::from_secs(15))
            .unwrap()
            .get();
        assert!((p - 199.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn signals_settings_are_checked() {
        assert!(ScrapeSignals::istio().validate().is_ok());
        assert!(ScrapeSignals::istio().any());
        assert!(!ScrapeSignals::default().any());
        let bad = ScrapeSignals {
            latency_histogram: Some("h_bucket".into()),
            ..ScrapeSignals::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(Error::Config {
                key: "latency_histogram",
                ..
            })
        ));
        let bad = ScrapeSignals {
            error_ratio: true,
            code_label: "response-code".into(),
            ..ScrapeSignals::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(Error::Config {
                key: "code_label",
                ..
            })
        ));
    }
}
