//! ScrapeSource's signals against canned `/metrics` endpoints with a manual clock: the p99
//! from Istio's latency histogram (as `histogram_quantile(0.99, sum by (le) (rate(...)))`)
//! and the error ratio from `response_code`, through counter resets, two targets and a
//! target whose series vanish.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burst_core::{Reading, Signals, Timestamp};
use burst_prom::{LatencyUnit, ManualClock, ScrapeConfig, ScrapeMode, ScrapeSignals, ScrapeSource};
use common::{Canned, Reply};

/// Cumulative bucket counts (le in ms) and request counts by response code of one target.
#[derive(Clone, Default)]
struct Counts {
    buckets: Vec<(&'static str, f64)>,
    codes: Vec<(&'static str, f64)>,
}

impl Counts {
    fn text(&self) -> String {
        let mut s = String::from("# TYPE istio_request_duration_milliseconds histogram\n");
        for (le, c) in &self.buckets {
            s.push_str(&format!(
                "istio_request_duration_milliseconds_bucket{{reporter=\"destination\",le=\"{le}\"}} {c}\n"
            ));
            // Another reporter's histogram that must not be counted.
            s.push_str(&format!(
                "istio_request_duration_milliseconds_bucket{{reporter=\"source\",le=\"{le}\"}} {}\n",
                c * 7.0
            ));
        }
        s.push_str("istio_request_duration_milliseconds_sum{reporter=\"destination\"} 1\n");
        s.push_str("# TYPE istio_requests_total counter\n");
        for (code, c) in &self.codes {
            s.push_str(&format!(
                "istio_requests_total{{reporter=\"destination\",response_code=\"{code}\"}} {c}\n"
            ));
        }
        s
    }

    /// Adds `per_bucket` (non-cumulative increases, one per bound) and `per_code`.
    fn add(&mut self, per_bucket: &[f64], per_code: &[f64]) {
        let mut cum = 0.0;
        for ((_, c), inc) in self.buckets.iter_mut().zip(per_bucket) {
            cum += inc;
            *c += cum;
        }
        for ((_, c), inc) in self.codes.iter_mut().zip(per_code) {
            *c += inc;
        }
    }
}

struct Target {
    server: Canned,
    counts: Arc<Mutex<Counts>>,
}

impl Target {
    async fn start() -> Target {
        let counts = Arc::new(Mutex::new(Counts {
            buckets: vec![
                ("10", 0.0),
                ("50", 0.0),
                ("100", 0.0),
                ("250", 0.0),
                ("+Inf", 0.0),
            ],
            codes: vec![("200", 0.0), ("404", 0.0), ("429", 0.0), ("503", 0.0)],
        }));
        let c = counts.clone();
        let server = Canned::start(move |_| Reply::ok(c.lock().unwrap().text())).await;
        Target { server, counts }
    }

    fn url(&self) -> String {
        format!("{}/metrics", self.server.url())
    }

    fn add(&self, per_bucket: &[f64], per_code: &[f64]) {
        self.counts.lock().unwrap().add(per_bucket, per_code);
    }

    fn set(&self, counts: Counts) {
        *self.counts.lock().unwrap() = counts;
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_duration(
        Duration::from_secs(1_700_000_000),
    )))
}

fn source(targets: Vec<String>, clock: Arc<ManualClock>, signals: ScrapeSignals) -> ScrapeSource {
    ScrapeSource::with_clock(
        ScrapeConfig {
            targets,
            metric: "istio_requests_total".into(),
            matchers: BTreeMap::from([("reporter".to_string(), "destination".to_string())]),
            window: Duration::from_secs(10),
            signals,
            ..ScrapeConfig::default()
        },
        clock,
    )
    .unwrap()
}

fn signals(r: Reading) -> (f64, Signals) {
    match r {
        Reading::Value(o) => (o.rates.up.get(), o.signals),
        Reading::NoData { reason } => panic!("expected a value, got no data: {reason}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

// Per second: 50 requests under 10 ms, 30 in (10, 50], 15 in (50, 100], 4.5 in
// (100, 250], 0.5 above. Cumulative rates 50, 80, 95, 99.5, 100: rank 99 lies in
// (100, 250] -> 100 + 150 * (99 - 95) / (99.5 - 95) = 233.33 ms.
const PER_BUCKET: [f64; 5] = [50.0, 30.0, 15.0, 4.5, 0.5];
const P99: f64 = 100.0 + 150.0 * 4.0 / 4.5;
// 200: 90/s, 404: 2/s, 429: 2/s, 503: 6/s -> errors (429, 5xx) 8 of 100.
const PER_CODE: [f64; 4] = [90.0, 2.0, 2.0, 6.0];

#[tokio::test]
async fn p99_and_error_ratio_from_one_target() {
    let t = Target::start().await;
    let c = clock();
    let s = source(vec![t.url()], c.clone(), ScrapeSignals::istio());
    assert!(matches!(
        s.evaluate().await.unwrap(),
        Reading::NoData { .. }
    ));
    for _ in 0..3 {
        c.advance(Duration::from_secs(1));
        t.add(&PER_BUCKET, &PER_CODE);
        let (rate, sig) = signals(s.evaluate().await.unwrap());
        assert!(close(rate, 100.0), "{rate}");
        let p99 = sig.primary_p99.unwrap().get();
        assert!(close(p99, P99), "p99 {p99}, want {P99}");
        let ratio = sig.primary_error_ratio.unwrap().get();
        assert!(close(ratio, 0.08), "error ratio {ratio}");
        assert_eq!(
            (sig.primary_ready, sig.burst_ready, sig.burst_error_ratio),
            (None, None, None)
        );
    }
}

#[tokio::test]
async fn signals_are_off_unless_asked_for() {
    let t = Target::start().await;
    let c = clock();
    let s = source(vec![t.url()], c.clone(), ScrapeSignals::default());
    s.evaluate().await.unwrap();
    c.advance(Duration::from_secs(1));
    t.add(&PER_BUCKET, &PER_CODE);
    let (rate, sig) = signals(s.evaluate().await.unwrap());
    assert!(close(rate, 100.0));
    assert_eq!(sig, Signals::NONE);
}

#[tokio::test]
async fn a_restart_is_a_reset_for_buckets_and_error_counters() {
    let t = Target::start().await;
    let c = clock();
    let s = source(vec![t.url()], c.clone(), ScrapeSignals::istio());
    for _ in 0..3 {
        t.add(&PER_BUCKET, &PER_CODE);
        s.evaluate().await.unwrap();
        c.advance(Duration::from_secs(1));
    }
    // The process restarts: every counter starts again from 0 and gets one second of
    // traffic. rate() counts the new values as the increase: the answers stay the same.
    let mut fresh = t.counts.lock().unwrap().clone();
    fresh.buckets.iter_mut().for_each(|(_, v)| *v = 0.0);
    fresh.codes.iter_mut().for_each(|(_, v)| *v = 0.0);
    fresh.add(&PER_BUCKET, &PER_CODE);
    t.set(fresh);
    let (rate, sig) = signals(s.evaluate().await.unwrap());
    assert!(close(rate, 100.0), "{rate}");
    assert!(close(sig.primary_p99.unwrap().get(), P99), "{sig:?}");
    assert!(
        close(sig.primary_error_ratio.unwrap().get(), 0.08),
        "{sig:?}"
    );
}

#[tokio::test]
async fn two_targets_are_summed_by_le_and_a_slow_one_moves_the_p99() {
    let fast = Target::start().await;
    let slow = Target::start().await;
    let c = clock();
    let s = source(
        vec![fast.url(), slow.url()],
        c.clone(),
        ScrapeSignals::istio(),
    );
    s.evaluate().await.unwrap();
    for _ in 0..2 {
        c.advance(Duration::from_secs(1));
        // 100/s all under 10 ms, no errors.
        fast.add(&[100.0, 0.0, 0.0, 0.0, 0.0], &[100.0, 0.0, 0.0, 0.0]);
        // 100/s all in (100, 250], half of them 503.
        slow.add(&[0.0, 0.0, 0.0, 100.0, 0.0], &[50.0, 0.0, 0.0, 50.0]);
        s.evaluate().await.unwrap();
    }
    let (rate, sig) = signals(s.evaluate().await.unwrap());
    assert!(close(rate, 200.0), "{rate}");
    // Summed by le: 100, 100, 100, 200, 200. Rank 198 in (100, 250]:
    // 100 + 150 * 98 / 100 = 247 ms.
    assert!(close(sig.primary_p99.unwrap().get(), 247.0), "{sig:?}");
    assert!(
        close(sig.primary_error_ratio.unwrap().get(), 0.25),
        "{sig:?}"
    );
}

#[tokio::test]
async fn no_requests_is_no_ratio_and_no_latency_not_zero() {
    let t = Target::start().await;
    let c = clock();
    let s = source(vec![t.url()], c.clone(), ScrapeSignals::istio());
    s.evaluate().await.unwrap();
    c.advance(Duration::from_secs(1));
    let (rate, sig) = signals(s.evaluate().await.unwrap());
    assert_eq!(rate, 0.0);
    assert_eq!(
        sig.primary_p99, None,
        "no observations: histogram_quantile is NaN"
    );
    assert_eq!(sig.primary_error_ratio, None, "0 of 0 is not a ratio");
}

#[tokio::test]
async fn a_seconds_histogram_and_another_code_label() {
    let body = Arc::new(Mutex::new(0.0_f64));
    let b = body.clone();
    let server = Canned::start(move |_| {
        let n = *b.lock().unwrap();
        Reply::ok(format!(
            "http_request_duration_seconds_bucket{{le=\"0.1\"}} 0\n\
             http_request_duration_seconds_bucket{{le=\"0.2\"}} {n}\n\
             http_request_duration_seconds_bucket{{le=\"+Inf\"}} {n}\n\
             http_requests_total{{code=\"200\"}} {n}\n\
             http_requests_total{{code=\"500\"}} {}\n",
            n / 4.0
        ))
    })
    .await;
    let c = clock();
    let s = ScrapeSource::with_clock(
        ScrapeConfig {
            targets: vec![format!("{}/metrics", server.url())],
            metric: "http_requests_total".into(),
            window: Duration::from_secs(10),
            signals: ScrapeSignals {
                latency_histogram: Some("http_request_duration_seconds".into()),
                latency_unit: LatencyUnit::Seconds,
                error_ratio: true,
                code_label: "code".into(),
            },
            ..ScrapeConfig::default()
        },
        c.clone(),
    )
    .unwrap();
    s.evaluate().await.unwrap();
    c.advance(Duration::from_secs(2));
    *body.lock().unwrap() = 100.0;
    let (_, sig) = signals(s.evaluate().await.unwrap());
    // All in (0.1, 0.2] s: p99 = 0.1 + 0.1 * 0.99 s = 199 ms.
    assert!(close(sig.primary_p99.unwrap().get(), 199.0), "{sig:?}");
    // 25 errors of 125.
    assert!(
        close(sig.primary_error_ratio.unwrap().get(), 0.2),
        "{sig:?}"
    );
}

#[tokio::test]
async fn gauge_mode_reads_the_error_share_of_the_current_values() {
    let t = Target::start().await;
    t.add(&PER_BUCKET, &PER_CODE);
    let c = clock();
    let s = ScrapeSource::with_clock(
        ScrapeConfig {
            targets: vec![t.url()],
            metric: "istio_requests_total".into(),
            matchers: BTreeMap::from([("reporter".to_string(), "destination".to_string())]),
            mode: ScrapeMode::Gauge,
            signals: ScrapeSignals::istio(),
            ..ScrapeConfig::default()
        },
        c,
    )
    .unwrap();
    let (rate, sig) = signals(s.evaluate().await.unwrap());
    assert!(close(rate, 100.0));
    assert!(
        close(sig.primary_error_ratio.unwrap().get(), 0.08),
        "{sig:?}"
    );
}

#[test]
fn bad_signal_settings_are_refused_naming_the_key() {
    let bad = ScrapeConfig {
        targets: vec!["http://127.0.0.1:1/metrics".into()],
        metric: "m".into(),
        signals: ScrapeSignals {
            latency_histogram: Some("1x".into()),
            ..ScrapeSignals::default()
        },
        ..ScrapeConfig::default()
    };
    let e = ScrapeSource::new(bad).unwrap_err();
    assert!(e.to_string().contains("latency_histogram"), "{e}");
}
