//! `burst query` end to end: the built binary against a real Prometheus and a local
//! metrics target; exit codes 0 (value), 1 (no data) and 2 (error), and what it prints.

mod common;

use burst_testkit::prometheus::{IstioSeries, IstioTarget, PrometheusOptions, PrometheusServer};

/// Runs the binary off the async runtime's threads.
async fn burst(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = std::iter::once("query")
            .chain(args.iter().map(String::as_str))
            .collect();
        common::burst(&args)
    })
    .await
    .expect("the blocking task finishes")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_value_no_data_and_errors() {
    let mut prom = PrometheusServer::start(PrometheusOptions::scraping(&[])).expect("prometheus");
    let url = prom.url();

    let (code, out, err) = burst(args(&["--prometheus-url", &url, "--query", "vector(2.5)"])).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "2.500");

    let (code, out, _) = burst(args(&[
        "--prometheus-url",
        &url,
        "--query",
        "vector(4)",
        "--json",
    ]))
    .await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (v["status"].as_str(), v["up"].as_f64()),
        (Some("value"), Some(4.0))
    );

    // The seed's query with nothing scraped: no data, exit 1, never a 0 on stdout.
    let (code, out, err) = burst(args(&["--prometheus-url", &url])).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("no data: empty vector"), "{err}");

    // Prometheus' own error message, exit 2.
    let (code, _, err) = burst(args(&[
        "--prometheus-url",
        &url,
        "--query",
        "sum(rate(x[1m])",
    ]))
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("error (prometheus)"), "{err}");
    assert!(err.contains("parse error"), "{err}");

    let (code, out, _) = burst(args(&["--prometheus-url", &url, "--probe"])).await;
    assert_eq!((code, out.trim()), (0, "ok"));

    prom.stop();
    let (code, _, err) = burst(args(&["--prometheus-url", &url, "--query", "vector(1)"])).await;
    assert_eq!(code, 2);
    assert!(err.contains("error (connect)"), "{err}");
    assert!(err.contains(&url), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_rate_no_data_and_unreachable_target() {
    let mut target = IstioTarget::start(vec![
        IstioSeries::seed("source", 20.0),
        IstioSeries::seed("destination", 5.0),
    ])
    .await
    .expect("target");
    let metrics = target.metrics_url();

    let (code, out, err) = burst(args(&[
        "--scrape",
        &metrics,
        "--metric",
        "istio_requests_total",
        "--match",
        "reporter=source",
        "--interval",
        "1s",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    let rate: f64 = out.trim().parse().expect("a number");
    assert!((17.0..=23.0).contains(&rate), "rate {rate}, want 20");

    let (code, out, err) = burst(args(&[
        "--scrape",
        &metrics,
        "--metric",
        "istio_requests_total",
        "--match",
        "reporter=nobody",
    ]))
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(r#"no series istio_requests_total{reporter="nobody"}"#),
        "{err}"
    );

    // Gauge mode reads the current value (the counter is a fine gauge for this check).
    let (code, out, err) = burst(args(&[
        "--scrape",
        &metrics,
        "--metric",
        "istio_requests_total",
        "--match",
        "reporter=destination",
        "--gauge",
        "--json",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v["up"].as_f64().expect("value") >= 0.0);

    target.stop();
    let (code, _, err) = burst(args(&[
        "--scrape",
        &metrics,
        "--metric",
        "istio_requests_total",
    ]))
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("error (connect)"), "{err}");
    assert!(err.contains(&metrics), "{err}");
}

#[tokio::test]
async fn bad_arguments_are_explained() {
    let (code, _, err) = burst(args(&["--scrape", "http://127.0.0.1:1/metrics"])).await;
    assert_eq!(code, 2);
    assert!(err.contains("--metric"), "{err}");

    let (code, _, err) = burst(args(&[
        "--scrape",
        "http://127.0.0.1:1/metrics",
        "--metric",
        "m",
        "--interval",
        "20s",
    ]))
    .await;
    assert_eq!(code, 2);
    assert!(
        err.contains("error (config)") && err.contains("--interval"),
        "{err}"
    );

    let (code, _, err) = burst(args(&["--prometheus-url", "localhost:9090"])).await;
    assert_eq!(code, 2);
    assert!(err.contains("http://prometheus:9090"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_are_printed_with_the_rate() {
    let prom = PrometheusServer::start(PrometheusOptions::scraping(&[])).expect("prometheus");
    let url = prom.url();
    let base = [
        "--prometheus-url",
        url.as_str(),
        "--query",
        "vector(3)",
        "--signal",
        "latencyP99=vector(12.5)",
        // A ratio above 1 is no data for that signal only.
        "--signal",
        "errorRatio=vector(2)",
        "--signal",
        "primaryReady=vector(3)",
    ];
    let (code, out, err) = burst(args(&base)).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out, "3.000\nlatencyP99: 12.5ms\nerrorRatio: no data\nprimaryReady: 3\n",
        "{err}"
    );

    let mut json = base.to_vec();
    json.push("--json");
    let (code, out, err) = burst(args(&json)).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let s = &v["signals"];
    assert_eq!(s["latency_p99_ms"].as_f64(), Some(12.5), "{v}");
    assert!(s["error_ratio"].is_null(), "{v}");
    assert_eq!(s["primary_ready"].as_u64(), Some(3), "{v}");
    assert!(
        s["burst_ready"].is_null() && s["burst_error_ratio"].is_null(),
        "{v}"
    );

    // A name that is not a signal is refused, naming the ones there are.
    let (code, _, err) = burst(args(&["--prometheus-url", &url, "--signal", "p99"])).await;
    assert_eq!(code, 2);
    assert!(err.contains("latencyP99"), "{err}");
}
