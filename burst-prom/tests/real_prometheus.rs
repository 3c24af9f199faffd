//! PrometheusSource and ScrapeSource against a REAL Prometheus (Debian package
//! `prometheus`) and a real HTTP target whose `istio_requests_total` counters grow at
//! known rates. A missing Prometheus fails these tests with the install command.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use burst_core::{MetricSource, Reading};
use burst_prom::{
    HttpConfig, PrometheusConfig, PrometheusSource, ScrapeConfig, ScrapeSource, SeriesRule,
};
use burst_testkit::prometheus::{IstioSeries, IstioTarget, PrometheusOptions, PrometheusServer};

/// Relative tolerance of a measured rate.
const TOLERANCE: f64 = 0.10;

fn within(measured: f64, expected: f64) -> bool {
    (measured - expected).abs() <= expected * TOLERANCE
}

/// Calls `f` every 250 ms until it gives `Some`, for at most `limit`.
async fn poll<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn up(reading: &Reading) -> Option<f64> {
    match reading {
        Reading::Value(o) => Some(o.rates.up.get()),
        Reading::NoData { .. } => None,
    }
}

fn other_service(rate: f64) -> IstioSeries {
    IstioSeries {
        destination_service: "other.default.svc.cluster.local".into(),
        ..IstioSeries::seed("source", rate)
    }
}

fn seed_source(prom: &PrometheusServer, reporter: &str) -> PrometheusSource {
    PrometheusSource::new(PrometheusConfig {
        url: prom.url(),
        variables: BTreeMap::from([("reporter".to_string(), reporter.to_string())]),
        ..PrometheusConfig::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_query_measures_the_known_rate_then_no_data_then_an_error() {
    let mut target = IstioTarget::start(vec![
        IstioSeries::seed("source", 12.0),
        IstioSeries::seed("destination", 7.0),
        other_service(50.0),
    ])
    .await
    .unwrap();
    let mut prom =
        PrometheusServer::start(PrometheusOptions::scraping(&[target.host_port()])).unwrap();
    let at_source = seed_source(&prom, "source");
    let at_destination = seed_source(&prom, "destination");
    assert!(
        at_source
            .queries()
            .next()
            .unwrap()
            .contains(r#"reporter="source""#)
    );

    // Before two scrapes exist the query is empty: no data, never 0.
    let first = poll("a first rate", Duration::from_secs(20), || async {
        match at_source.evaluate().await.unwrap() {
            Reading::Value(o) => Some(o.rates.up.get()),
            Reading::NoData { reason } => {
                assert!(reason.contains("empty vector"), "{reason}");
                None
            }
        }
    })
    .await;
    assert!(first > 0.0);

    // Let the 15 s window fill: Prometheus applies its targets ~5 s after start, so wait
    // until the window holds 15 samples of the series.
    let samples = PrometheusSource::new(PrometheusConfig {
        url: prom.url(),
        query: r#"count_over_time(istio_requests_total{reporter="source",destination_service="worker-service.default.svc.cluster.local"}[15s])"#.into(),
        ..PrometheusConfig::default()
    })
    .unwrap();
    poll("a full 15 s window", Duration::from_secs(30), || async {
        up(&samples.evaluate().await.unwrap()).filter(|n| *n >= 15.0)
    })
    .await;
    let source_rate = up(&at_source.observe().await.unwrap()).unwrap();
    let destination_rate = up(&at_destination.observe().await.unwrap()).unwrap();
    assert!(
        within(source_rate, 12.0),
        "reporter=source: {source_rate}, want 12"
    );
    assert!(
        within(destination_rate, 7.0),
        "reporter=destination: {destination_rate}, want 7"
    );

    // The target goes away: once its samples leave the window the answer is "no data",
    // and no reading on the way is 0.
    target.stop();
    let reason = poll(
        "no data after the target stopped",
        Duration::from_secs(30),
        || async {
            match at_source.evaluate().await.unwrap() {
                Reading::Value(o) => {
                    assert!(o.rates.up.get() > 0.0, "a stopped target read as 0");
                    None
                }
                Reading::NoData { reason } => Some(reason),
            }
        },
    )
    .await;
    assert!(reason.contains("empty vector"), "{reason}");

    // Prometheus goes away: an error, not no data and not 0.
    prom.stop();
    let e = at_source.observe().await.unwrap_err();
    assert_eq!(e.kind(), "connect", "{e}");
    assert!(e.to_string().contains(&prom.port().to_string()), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_post_queries_and_prometheus_error_messages() {
    let prom = PrometheusServer::start(PrometheusOptions::scraping(&[])).unwrap();
    let custom = |query: &str, post_above_bytes: usize| {
        PrometheusSource::new(PrometheusConfig {
            url: prom.url(),
            query: query.into(),
            post_above_bytes,
            series: SeriesRule::Sum,
            ..PrometheusConfig::default()
        })
        .unwrap()
    };
    custom("vector(1)", 2000).probe().await.unwrap();

    // A long query (here padded with a PromQL comment) goes as a POST form.
    let long = format!("vector(3) # {}\n", "x".repeat(5000));
    let reading = custom(&long, 2000).evaluate().await.unwrap();
    assert_eq!(up(&reading), Some(3.0));
    // Scalars work too.
    assert_eq!(
        up(&custom("scalar(vector(2.5))", 2000)
            .evaluate()
            .await
            .unwrap()),
        Some(2.5)
    );

    // Nothing matches: no data.
    let none = custom("sum(no_such_metric_total)", 2000)
        .evaluate()
        .await
        .unwrap();
    assert!(matches!(none, Reading::NoData { .. }), "{none:?}");

    // A syntax error: Prometheus' own message comes through.
    let e = custom("sum(rate(x[15s])", 2000)
        .evaluate()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "prometheus", "{e}");
    assert!(e.to_string().contains("bad_data"), "{e}");
    assert!(e.to_string().contains("parse error"), "{e}");

    // Negative values are rejected, with the value.
    let e = custom("vector(-1)", 2000).evaluate().await.unwrap_err();
    assert_eq!(e.kind(), "invalid_value", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_custom_ca_or_insecure_skip_verify() {
    let tls = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls");
    let mut options = PrometheusOptions::scraping(&[]);
    options.tls = Some((tls.join("server.pem"), tls.join("server.key")));
    let prom = PrometheusServer::start(options).unwrap();
    assert!(prom.url().starts_with("https://"));
    let with = |http: HttpConfig| {
        PrometheusSource::new(PrometheusConfig {
            url: prom.url(),
            http,
            ..PrometheusConfig::default()
        })
        .unwrap()
    };
    // Verification is on by default: an unknown CA is refused.
    let e = with(HttpConfig::default()).probe().await.unwrap_err();
    assert_eq!(e.kind(), "connect", "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    with(HttpConfig {
        ca_file: Some(tls.join("ca.pem")),
        ..HttpConfig::default()
    })
    .probe()
    .await
    .unwrap();

    with(HttpConfig {
        insecure_skip_verify: true,
        ..HttpConfig::default()
    })
    .probe()
    .await
    .unwrap();
}

fn scrape_source(targets: Vec<String>, window: Duration) -> ScrapeSource {
    ScrapeSource::new(ScrapeConfig {
        targets,
        metric: "istio_requests_total".into(),
        matchers: BTreeMap::from([
            ("reporter".to_string(), "source".to_string()),
            (
                "destination_service".to_string(),
                "worker-service.default.svc.cluster.local".to_string(),
            ),
            (
                "source_workload".to_string(),
                "frontend-deployment".to_string(),
            ),
        ]),
        window,
        ..ScrapeConfig::default()
    })
    .unwrap()
}

/// Observes every 250 ms for `for_`, returning every reading's short-window rate.
async fn observe_for(source: &ScrapeSource, for_: Duration) -> Vec<Option<f64>> {
    let end = Instant::now() + for_;
    let mut out = Vec::new();
    while Instant::now() < end {
        out.push(up(&source.observe().await.unwrap()));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_source_measures_the_known_rate_through_a_reset_and_an_outage() {
    let mut target = IstioTarget::start(vec![
        IstioSeries::seed("source", 20.0),
        IstioSeries::seed("destination", 9.0),
        other_service(50.0),
    ])
    .await
    .unwrap();
    let source = scrape_source(vec![target.metrics_url()], Duration::from_secs(2));
    // One scrape gives no rate yet.
    assert!(matches!(
        source.observe().await.unwrap(),
        Reading::NoData { .. }
    ));

    let warmup = observe_for(&source, Duration::from_secs(3)).await;
    let last = warmup.last().copied().flatten().unwrap();
    assert!(within(last, 20.0), "rate {last}, want 20 ({warmup:?})");

    // A counter reset right after a scrape (as by a restart): the rate stays right.
    // (Requests counted between the last scrape and the reset are lost to any scraper,
    // so the reset follows a scrape immediately.)
    source.observe().await.unwrap();
    target.reset();
    let after_reset = observe_for(&source, Duration::from_secs(3)).await;
    for r in &after_reset {
        let r = r.unwrap();
        assert!(
            within(r, 20.0),
            "rate {r} after a reset, want 20 ({after_reset:?})"
        );
    }

    // The target goes away: an error naming it. Back again: the rate is right again.
    target.stop();
    let e = source.observe().await.unwrap_err();
    assert_eq!(e.kind(), "connect");
    assert!(e.to_string().contains(&target.metrics_url()), "{e}");
    target.resume().await.unwrap();
    let back = observe_for(&source, Duration::from_secs(3)).await;
    let last = back.last().copied().flatten().unwrap();
    assert!(
        within(last, 20.0),
        "rate {last} after the outage, want 20 ({back:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_source_sums_targets_and_matches_prometheus() {
    let a = IstioTarget::start(vec![IstioSeries::seed("source", 8.0)])
        .await
        .unwrap();
    let b = IstioTarget::start(vec![IstioSeries::seed("source", 4.0), other_service(30.0)])
        .await
        .unwrap();
    let source = scrape_source(
        vec![a.metrics_url(), b.metrics_url()],
        Duration::from_secs(2),
    );
    let rates = observe_for(&source, Duration::from_secs(3)).await;
    assert_eq!(rates[0], None, "one scrape cannot give a rate");
    assert!(rates[1].is_some(), "two scrapes give a rate ({rates:?})");
    let last = rates.last().copied().flatten().unwrap();
    assert!(within(last, 12.0), "sum {last}, want 12 ({rates:?})");
    assert!(source.describe().contains(&a.metrics_url()));
}
