//! RangeClient against a real Prometheus holding a known, backfilled history
//! ([`DemandHistory`]: a step from 5 to 20 rps, a scrape outage, a counter reset).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use burst_core::Timestamp;
use burst_prom::{Error, HttpClients, HttpConfig, RangeClient, RangeQuery};
use burst_testkit::prometheus::{DemandHistory, PrometheusOptions, PrometheusServer};

const QUERY: &str = "sum(rate(replay_requests_total[1m]))";

fn start() -> (PrometheusServer, DemandHistory) {
    let history =
        DemandHistory::ending_before_now(Duration::from_secs(DemandHistory::DURATION + 3600));
    let prom =
        PrometheusServer::start(PrometheusOptions::history(history.openmetrics.clone())).unwrap();
    (prom, history)
}

fn at(unix: u64) -> Timestamp {
    Timestamp::from_duration(Duration::from_secs(unix))
}

fn client(prom: &PrometheusServer) -> RangeClient {
    RangeClient::new(&prom.url(), &HttpConfig::default(), &HttpClients::new()).unwrap()
}

fn query(q: &str, history: &DemandHistory, from: u64, to: u64, step: Duration) -> RangeQuery {
    RangeQuery {
        query: q.into(),
        start: at(history.start + from),
        end: at(history.start + to),
        step,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_range_is_fetched_in_chunks_and_stitched_with_gaps_and_a_reset() {
    let (prom, history) = start();
    let fetched = client(&prom)
        .fetch(&query(
            QUERY,
            &history,
            0,
            DemandHistory::DURATION,
            Duration::from_secs(1),
        ))
        .await
        .unwrap();
    // 14,401 steps: two requests of at most 11,000 points, no duplicate, no hole.
    assert_eq!(fetched.requests, 2);
    assert!(fetched.labels.is_empty());
    let samples = &fetched.samples;
    assert_eq!(samples.len(), DemandHistory::DURATION as usize + 1);
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(s.at, at(history.start + i as u64));
    }
    let value = |t: u64| samples[t as usize].value;
    let near = |t: u64, expected: f64| {
        let v = value(t).unwrap_or_else(|| panic!("a gap at {t}"));
        assert!(
            (v - expected).abs() < 0.01,
            "{v} at {t}, expected {expected}"
        );
    };
    near(1800, 5.0);
    near(DemandHistory::STEP_UP_AT + 300, 20.0);
    near(DemandHistory::STEP_DOWN_AT + 300, 5.0);
    // Around the 11,000-step chunk boundary the values go on.
    near(10_999, 5.0);
    near(11_000, 5.0);
    // The first steps have fewer than two samples in the window, and the outage none:
    // gaps, not zeros.
    assert_eq!(value(0), None);
    let (gap_from, gap_to) = DemandHistory::GAP;
    for t in gap_from + 60..gap_to {
        assert_eq!(value(t), None, "a value in the outage at {t}");
    }
    near(gap_to + 120, 5.0);
    // The counter reset is handled by rate(): no dip, no spike.
    for t in DemandHistory::RESET_AT - 60..DemandHistory::RESET_AT + 120 {
        near(t, 5.0);
    }
    assert!(samples.iter().all(|s| s.value.is_none_or(|v| v > 0.0)));

    // A coarse step over the same range is one request, with the same values.
    let coarse = client(&prom)
        .fetch(&query(
            QUERY,
            &history,
            0,
            DemandHistory::DURATION,
            Duration::from_secs(60),
        ))
        .await
        .unwrap();
    assert_eq!(coarse.requests, 1);
    assert_eq!(coarse.samples.len(), 241);
    for (i, s) in coarse.samples.iter().enumerate() {
        assert_eq!(s.value, value(i as u64 * 60), "step {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_series_empty_results_bad_queries_and_a_closed_port_are_errors() {
    let (prom, history) = start();
    let c = client(&prom);
    let step = Duration::from_secs(15);

    let e = c
        .fetch(&query(
            "rate(replay_requests_total[1m])",
            &history,
            0,
            3600,
            step,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::SeveralRangeSeries { count: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("wrap the query in sum("), "{e}");

    let e = c
        .fetch(&query(
            "sum(rate(absent_total[1m]))",
            &history,
            0,
            3600,
            step,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "no_samples", "{e}");

    let e = c
        .fetch(&query("sum(rate(", &history, 0, 3600, step))
        .await
        .unwrap_err();
    let Error::Prometheus {
        error_type,
        message,
    } = &e
    else {
        panic!("not a Prometheus error: {e}")
    };
    assert_eq!(error_type, "bad_data");
    assert!(message.contains("parse error"), "{message}");

    let e = c
        .fetch(&query(QUERY, &history, 3600, 0, step))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config { key: "end", .. }), "{e}");

    let closed = format!("http://127.0.0.1:{}", burst_testkit::free_port().unwrap());
    let e = RangeClient::new(&closed, &HttpConfig::default(), &HttpClients::new())
        .unwrap()
        .fetch(&query(QUERY, &history, 0, 3600, step))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "connect", "{e}");
}
