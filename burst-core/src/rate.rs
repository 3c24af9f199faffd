//! Counter rates with Prometheus' `rate()` semantics, for sources that sample counters
//! themselves (scraping `/metrics`, pods, HAProxy's `show stat`). Pure: the time of every
//! sample and of every query is passed in.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::Timestamp;

/// Counter samples per series over a sliding time span, and rates computed from them the
/// way Prometheus' `rate()` treats counters: a drop is a reset (the counter restarted from
/// zero), so the increase across it is the new value.
///
/// burst-prom's `ScrapeSource` keys series by their labels, burst-pods' `PodSource` by pod
/// and labels, burst-haproxy's `HaproxySource` by instance: one set of `rate()` rules for all.
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
    #![allow(clippy::unwrap_used)]
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
    fn restart_counts_from_zero_without_a_negative_spike() {
        let mut b = RateBuffer::new(Duration::from_secs(60));
        for (at, v) in [(0.0, 1000.0), (1.0, 1010.0), (2.0, 4.0), (3.0, 14.0)] {
            b.record(0, t(1000.0 + at), v);
        }
        assert_eq!(b.rate(t(1003.0), Duration::from_secs(15)), Some(8.0));
    }

    #[test]
    fn one_sample_is_no_rate_and_old_samples_age_out() {
        let mut b = RateBuffer::new(Duration::from_secs(10));
        b.record(0, t(0.0), 0.0);
        assert_eq!(b.rate(t(0.0), Duration::from_secs(10)), None);
        b.record(0, t(2.0), 10.0);
        assert_eq!(b.rate(t(2.0), Duration::from_secs(10)), Some(5.0));
        b.trim(t(30.0));
        assert!(b.series.is_empty());
    }
}
