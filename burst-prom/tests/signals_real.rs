//! Signal queries against a REAL Prometheus (Debian package `prometheus`) scraping a
//! target whose Istio histogram, response-code counters and kube-state-metrics endpoint
//! series are known: the default queries' answers are checked against the values the
//! series were built for, and ScrapeSource's own p99 and error ratio against the same
//! target are cross-checked with Prometheus' `histogram_quantile`.
//! A missing Prometheus fails these tests with the install command.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use burst_core::{MetricSource, Reading, Signals};
use burst_prom::signal_queries::DEFAULT;
use burst_prom::{
    PrometheusConfig, PrometheusSource, ScrapeConfig, ScrapeSignals, ScrapeSource, SignalQueries,
};
use burst_testkit::prometheus::{PrometheusOptions, PrometheusServer};

const SVC: &str = "worker-service.default.svc.cluster.local";
// Per second: cumulative bucket rates 50 (<= 10 ms), 80 (<= 50), 95 (<= 100),
// 99.5 (<= 250), 100 (+Inf). p99: 100 + 150 * (99 - 95) / (99.5 - 95).
const BUCKETS: [(&str, f64); 5] = [
    ("10", 50.0),
    ("50", 80.0),
    ("100", 95.0),
    ("250", 99.5),
    ("+Inf", 100.0),
];
const P99: f64 = 100.0 + 150.0 * 4.0 / 4.5;
// At the primary's sidecars: 8 of 100 per second are 429 or 5xx (404 is not an error).
const CODES: [(&str, f64); 4] = [("200", 90.0), ("404", 2.0), ("429", 2.0), ("503", 6.0)];
// Seen by the clients: 20/s answered from the burst cluster, 2 of them 503.
const BURST_CODES: [(&str, f64); 2] = [("200", 18.0), ("503", 2.0)];

/// The target's exposition at `t` seconds after it started: counters at rate × t.
fn exposition(t: f64) -> String {
    let mut s = String::from("# TYPE istio_request_duration_milliseconds histogram\n");
    for (le, rate) in BUCKETS {
        s.push_str(&format!(
            "istio_request_duration_milliseconds_bucket{{reporter=\"destination\",destination_service=\"{SVC}\",le=\"{le}\"}} {}\n",
            rate * t
        ));
    }
    s.push_str("# TYPE istio_requests_total counter\n");
    for (code, rate) in CODES {
        s.push_str(&format!(
            "istio_requests_total{{reporter=\"destination\",destination_service=\"{SVC}\",response_code=\"{code}\"}} {}\n",
            rate * t
        ));
        // The clients' view of the primary: the demand, 100/s.
        s.push_str(&format!(
            "istio_requests_total{{reporter=\"source\",destination_service=\"{SVC}\",destination_cluster=\"primary\",source_workload=\"frontend-deployment\",source_app=\"frontend\",response_code=\"{code}\"}} {}\n",
            rate * t
        ));
    }
    for (code, rate) in BURST_CODES {
        s.push_str(&format!(
            "istio_requests_total{{reporter=\"source\",destination_service=\"{SVC}\",destination_cluster=\"burst\",source_workload=\"frontend-deployment\",source_app=\"frontend\",response_code=\"{code}\"}} {}\n",
            rate * t
        ));
    }
    // kube-state-metrics: worker-service has 2 ready addresses and 1 not ready;
    // worker-burst exists with none.
    s.push_str("# TYPE kube_endpoint_address gauge\n");
    for (ip, ready) in [
        ("10.0.0.1", "true"),
        ("10.0.0.2", "true"),
        ("10.0.0.3", "false"),
    ] {
        s.push_str(&format!(
            "kube_endpoint_address{{namespace=\"default\",endpoint=\"worker-service\",ip=\"{ip}\",ready=\"{ready}\"}} 1\n"
        ));
    }
    s.push_str("# TYPE kube_endpoint_info gauge\n");
    for e in ["worker-service", "worker-burst"] {
        s.push_str(&format!(
            "kube_endpoint_info{{namespace=\"default\",endpoint=\"{e}\"}} 1\n"
        ));
    }
    s
}

async fn start_target() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let start = Instant::now();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move { exposition(start.elapsed().as_secs_f64()) }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr.to_string()
}

fn prom_source(
    prom: &PrometheusServer,
    query: Option<&str>,
    signals: SignalQueries,
) -> PrometheusSource {
    let mut config = PrometheusConfig {
        url: prom.url(),
        window: Duration::from_secs(5),
        variables: BTreeMap::from([
            ("burst_service".to_string(), "worker-burst".to_string()),
            ("burst_cluster".to_string(), "burst".to_string()),
        ]),
        signals,
        ..PrometheusConfig::default()
    };
    if let Some(q) = query {
        config.query = q.into();
    }
    PrometheusSource::new(config).unwrap()
}

fn all_defaults() -> SignalQueries {
    SignalQueries {
        latency_p99: Some(DEFAULT.into()),
        error_ratio: Some(DEFAULT.into()),
        primary_ready: Some(DEFAULT.into()),
        burst_ready: Some(DEFAULT.into()),
        burst_error_ratio: Some(DEFAULT.into()),
    }
}

fn near(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= b.abs() * rel
}

/// Observes every 500 ms until `ok` accepts the signals (at most 30 s).
async fn until(source: &dyn MetricSource, ok: impl Fn(f64, &Signals) -> bool) -> (f64, Signals) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    loop {
        if let Ok(Reading::Value(o)) = source.observe().await {
            let got = (o.rates.up.get(), o.signals);
            if ok(got.0, &got.1) {
                return got;
            }
            last = Some(got);
        }
        assert!(
            Instant::now() < deadline,
            "signals never right; last {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn all_right(rate: f64, s: &Signals) -> bool {
    near(rate, 120.0, 0.05)
        && s.primary_p99.is_some_and(|p| near(p.get(), P99, 0.02))
        && s.primary_error_ratio
            .is_some_and(|r| near(r.get(), 0.08, 0.02))
        && s.burst_error_ratio
            .is_some_and(|r| near(r.get(), 0.10, 0.02))
        && s.primary_ready == Some(2)
        && s.burst_ready == Some(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_signal_queries_give_the_known_values() {
    let target = start_target().await;
    let prom = PrometheusServer::start(PrometheusOptions::scraping(&[target])).unwrap();
    let source = prom_source(&prom, None, all_defaults());
    assert_eq!(source.signal_queries().count(), 5);
    // Demand 100 + 20 /s (both clusters, as the clients see it).
    let (rate, s) = until(&source, all_right).await;
    assert!(all_right(rate, &s), "{rate} {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_signal_query_is_no_data_for_that_signal_only() {
    let target = start_target().await;
    let prom = PrometheusServer::start(PrometheusOptions::scraping(&[target])).unwrap();
    let source = prom_source(
        &prom,
        None,
        SignalQueries {
            // A syntax error (Prometheus answers 400), a ratio above 1, a query with
            // no series: each leaves only its own signal without data.
            latency_p99: Some("histogram_quantile(0.99, rate(x[5s]".into()),
            error_ratio: Some("vector(2)".into()),
            burst_error_ratio: Some("absent_series_xyz".into()),
            primary_ready: Some(DEFAULT.into()),
            burst_ready: None,
        },
    );
    let (_, s) = until(&source, |rate, s| rate > 0.0 && s.primary_ready == Some(2)).await;
    assert_eq!(s.primary_p99, None);
    assert_eq!(s.primary_error_ratio, None);
    assert_eq!(s.burst_error_ratio, None);
    assert_eq!(s.burst_ready, None, "not asked for");

    // The demand query failing is still an error.
    let broken = prom_source(&prom, Some("sum(rate(x[5s]"), all_defaults());
    let e = broken.observe().await.unwrap_err();
    assert_eq!(e.kind(), "prometheus", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_source_agrees_with_histogram_quantile() {
    let target = start_target().await;
    let prom = PrometheusServer::start(PrometheusOptions::scraping(std::slice::from_ref(&target)))
        .unwrap();
    let scrape = ScrapeSource::new(ScrapeConfig {
        targets: vec![format!("http://{target}/metrics")],
        metric: "istio_requests_total".into(),
        matchers: BTreeMap::from([("reporter".to_string(), "destination".to_string())]),
        window: Duration::from_secs(5),
        signals: ScrapeSignals::istio(),
        ..ScrapeConfig::default()
    })
    .unwrap();
    let prom = prom_source(
        &prom,
        None,
        SignalQueries {
            latency_p99: Some(DEFAULT.into()),
            error_ratio: Some(DEFAULT.into()),
            ..SignalQueries::default()
        },
    );
    let right = |_: f64, s: &Signals| {
        s.primary_p99.is_some_and(|p| near(p.get(), P99, 0.02))
            && s.primary_error_ratio
                .is_some_and(|r| near(r.get(), 0.08, 0.02))
    };
    let (_, ours) = until(&scrape, right).await;
    let (_, theirs) = until(&prom, right).await;
    let (a, b) = (
        ours.primary_p99.unwrap().get(),
        theirs.primary_p99.unwrap().get(),
    );
    assert!(
        near(a, b, 0.03),
        "ScrapeSource p99 {a} vs histogram_quantile {b}"
    );
}
