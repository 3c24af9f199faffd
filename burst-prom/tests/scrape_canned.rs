//! ScrapeSource against canned `/metrics` endpoints, with a manual clock: rates from
//! counter deltas, resets, several targets, gauges, and failing targets.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burst_core::{MetricSource, Reading, Timestamp};
use burst_prom::{Error, HttpClients, ManualClock, ScrapeConfig, ScrapeMode, ScrapeSource};
use common::{Canned, Reply, data};

/// A target serving `istio_requests_total` with a settable value (or an HTTP status).
struct Target {
    server: Canned,
    value: Arc<Mutex<Result<f64, u16>>>,
}

impl Target {
    async fn start(initial: f64) -> Target {
        let value = Arc::new(Mutex::new(Ok(initial)));
        let v = value.clone();
        let server = Canned::start(move |_| match *v.lock().unwrap() {
            Ok(n) => Reply::ok(format!(
                "# TYPE istio_requests_total counter\n\
                 istio_requests_total{{reporter=\"source\",request_path=\"/a,b\"}} {n}\n\
                 istio_requests_total{{reporter=\"destination\",request_path=\"/a,b\"}} 999\n"
            )),
            Err(status) => Reply::status(status, "unavailable"),
        })
        .await;
        Target { server, value }
    }

    fn set(&self, v: f64) {
        *self.value.lock().unwrap() = Ok(v);
    }

    fn fail(&self, status: u16) {
        *self.value.lock().unwrap() = Err(status);
    }

    fn url(&self) -> String {
        format!("{}/metrics", self.server.url())
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_duration(
        Duration::from_secs(1_700_000_000),
    )))
}

fn source(
    targets: Vec<String>,
    clock: Arc<ManualClock>,
    edit: impl FnOnce(&mut ScrapeConfig),
) -> ScrapeSource {
    let mut config = ScrapeConfig {
        targets,
        metric: "istio_requests_total".into(),
        matchers: BTreeMap::from([
            ("reporter".to_string(), "source".to_string()),
            ("request_path".to_string(), "/a,b".to_string()),
        ]),
        window: Duration::from_secs(10),
        ..ScrapeConfig::default()
    };
    edit(&mut config);
    ScrapeSource::with_clock(config, clock).unwrap()
}

fn rates(r: Reading) -> (f64, f64) {
    match r {
        Reading::Value(o) => (o.rates.up.get(), o.rates.down.get()),
        Reading::NoData { reason } => panic!("expected a value, got no data: {reason}"),
    }
}

fn no_data(r: Reading) -> String {
    match r {
        Reading::NoData { reason } => reason,
        other => panic!("expected no data, got {other:?}"),
    }
}

#[tokio::test]
async fn counter_rate_from_successive_scrapes_selects_labels_with_commas() {
    let t = Target::start(100.0).await;
    let c = clock();
    let s = source(vec![t.url()], c.clone(), |_| {});
    let reason = no_data(s.evaluate().await.unwrap());
    assert!(reason.contains("two scrapes"), "{reason}");
    for step in 1..=4 {
        c.advance(Duration::from_secs(1));
        t.set(100.0 + 5.0 * f64::from(step));
        assert_eq!(rates(s.evaluate().await.unwrap()), (5.0, 5.0));
    }
    let r = &t.server.requests()[0];
    assert_eq!(r.path, "/metrics");
    assert!(r.header("accept").unwrap().starts_with("text/plain"));
}

#[tokio::test]
async fn counter_reset_is_handled_like_prometheus_rate() {
    let t = Target::start(1000.0).await;
    let c = clock();
    let s = source(vec![t.url()], c.clone(), |_| {});
    s.evaluate().await.unwrap();
    c.advance(Duration::from_secs(1));
    t.set(1010.0);
    assert_eq!(rates(s.evaluate().await.unwrap()).0, 10.0);
    // The process restarted: the counter starts again from 0 and reaches 10.
    c.advance(Duration::from_secs(1));
    t.set(10.0);
    assert_eq!(rates(s.evaluate().await.unwrap()).0, 10.0);
    c.advance(Duration::from_secs(1));
    t.set(20.0);
    assert_eq!(rates(s.evaluate().await.unwrap()).0, 10.0);
}

#[tokio::test]
async fn targets_are_summed_and_two_windows_come_from_the_same_scrapes() {
    let a = Target::start(0.0).await;
    let b = Target::start(0.0).await;
    let c = clock();
    let s = source(vec![a.url(), b.url()], c.clone(), |cfg| {
        cfg.window = Duration::from_secs(2);
        cfg.long_window = Some(Duration::from_secs(10));
    });
    s.evaluate().await.unwrap();
    // 10 s at 2/s + 3/s, then 2 s at 10/s + 10/s.
    let mut av = 0.0;
    let mut bv = 0.0;
    for second in 1..=12 {
        c.advance(Duration::from_secs(1));
        let (da, db) = if second <= 10 {
            (2.0, 3.0)
        } else {
            (10.0, 10.0)
        };
        av += da;
        bv += db;
        a.set(av);
        b.set(bv);
        s.evaluate().await.unwrap();
    }
    c.advance(Duration::from_secs(1));
    a.set(av + 10.0);
    b.set(bv + 10.0);
    let (up, down) = rates(s.evaluate().await.unwrap());
    assert_eq!(up, 20.0);
    // Long window: the last 10 s hold 7 s at 5/s and 3 s at 20/s.
    assert_eq!(down, (7.0 * 5.0 + 3.0 * 20.0) / 10.0);
}

#[tokio::test]
async fn a_target_that_fails_is_an_error_naming_it_and_may_come_back() {
    let a = Target::start(0.0).await;
    let b = Target::start(0.0).await;
    let c = clock();
    let s = source(vec![a.url(), b.url()], c.clone(), |_| {});
    s.evaluate().await.unwrap();
    c.advance(Duration::from_secs(1));
    a.set(4.0);
    b.fail(503);
    let e = s.evaluate().await.unwrap_err();
    assert_eq!(e.kind(), "scrape");
    let msg = e.to_string();
    assert!(msg.contains("1 of 2"), "{msg}");
    assert!(msg.contains(&b.url()), "{msg}");
    assert!(msg.contains("503"), "{msg}");
    // Back, with its counter continued: its increase over the gap counts.
    c.advance(Duration::from_secs(1));
    a.set(8.0);
    b.set(6.0);
    assert_eq!(rates(s.evaluate().await.unwrap()).0, 4.0 + 3.0);
}

#[tokio::test]
async fn unreachable_and_unparsable_targets_are_errors_with_the_url() {
    let port = burst_testkit::free_port().unwrap();
    let dead = format!("http://127.0.0.1:{port}/metrics");
    let s = source(vec![dead.clone()], clock(), |_| {});
    let e = s.evaluate().await.unwrap_err();
    assert_eq!(e.kind(), "connect");
    assert!(e.to_string().contains(&dead), "{e}");
    let e = s.observe().await.unwrap_err();
    assert_eq!(e.kind(), "connect");

    let html = Canned::fixed(data("not_prometheus.html")).await;
    let url = format!("{}/metrics", html.url());
    let s = source(vec![url.clone()], clock(), |_| {});
    let e = s.evaluate().await.unwrap_err();
    assert!(matches!(e, Error::Exposition { line: 1, .. }), "{e:?}");
    assert!(e.to_string().contains(&url), "{e}");
}

#[tokio::test]
async fn no_matching_series_is_no_data() {
    let t = Target::start(1.0).await;
    let s = source(vec![t.url()], clock(), |cfg| {
        cfg.matchers.insert("reporter".into(), "nobody".into());
    });
    let reason = no_data(s.evaluate().await.unwrap());
    assert!(reason.contains(r#"reporter="nobody""#), "{reason}");
}

#[tokio::test]
async fn gauge_mode_reads_the_current_sum() {
    let server = Canned::fixed(data("exposition_istio.txt")).await;
    let s = source(vec![format!("{}/metrics", server.url())], clock(), |cfg| {
        cfg.metric = "worker_inflight".into();
        cfg.matchers.clear();
        cfg.mode = ScrapeMode::Gauge;
    });
    assert_eq!(rates(s.evaluate().await.unwrap()), (7.5, 7.5));
    assert!(s.describe().contains("gauge"), "{}", s.describe());
}

#[tokio::test]
async fn golden_exposition_selects_by_escaped_labels_and_histogram_counts() {
    let server = Canned::fixed(data("exposition_istio.txt")).await;
    let url = format!("{}/metrics", server.url());
    // A gauge read of a counter is an easy way to see which series were selected.
    let s = source(vec![url.clone()], clock(), |cfg| {
        cfg.mode = ScrapeMode::Gauge;
        cfg.matchers = BTreeMap::from([
            ("note".to_string(), "say \"hi\"\nbye".to_string()),
            ("request_path".to_string(), "/a,b".to_string()),
        ]);
    });
    assert_eq!(rates(s.evaluate().await.unwrap()).0, 100.0);
    let s = source(vec![url.clone()], clock(), |cfg| {
        cfg.mode = ScrapeMode::Gauge;
        cfg.matchers = BTreeMap::from([("reporter".to_string(), "source".to_string())]);
    });
    assert_eq!(rates(s.evaluate().await.unwrap()).0, 105.0);
    let s = source(vec![url], clock(), |cfg| {
        cfg.mode = ScrapeMode::Gauge;
        cfg.metric = "istio_request_duration_milliseconds_count".into();
        cfg.matchers = BTreeMap::from([("reporter".to_string(), "source".to_string())]);
    });
    assert_eq!(rates(s.evaluate().await.unwrap()).0, 4.0);
}

#[tokio::test]
async fn negative_or_nan_samples_are_errors() {
    let server = Canned::fixed("m{a=\"1\"} NaN\n").await;
    let url = format!("{}/metrics", server.url());
    let s = source(vec![url.clone()], clock(), |cfg| {
        cfg.metric = "m".into();
        cfg.matchers.clear();
    });
    let e = s.evaluate().await.unwrap_err();
    assert_eq!(e.kind(), "invalid_value");
    assert!(e.to_string().contains(&url), "{e}");
}

#[tokio::test]
async fn scrape_sources_share_a_client_and_keep_their_own_headers() {
    let target = Target::start(10.0).await;
    let clients = HttpClients::new();
    let with_header = |tenant: &str| {
        let mut config = ScrapeConfig {
            targets: vec![target.url()],
            metric: "istio_requests_total".into(),
            ..ScrapeConfig::default()
        };
        config.http.headers =
            BTreeMap::from([("Authorization".to_string(), format!("Bearer {tenant}"))]);
        ScrapeSource::with_clock_and_clients(config, clock(), &clients).unwrap()
    };
    let a = with_header("a-secret");
    let b = with_header("b-secret");
    assert_eq!(clients.len(), 1);
    a.observe().await.unwrap();
    b.observe().await.unwrap();
    let requests = target.server.requests();
    let auth: Vec<String> = requests
        .iter()
        .map(|r| r.header("authorization").unwrap())
        .collect();
    assert_eq!(auth, ["Bearer a-secret", "Bearer b-secret"]);
    assert_eq!(requests[0].peer, requests[1].peer, "one pooled connection");
    // Nothing of the tokens shows in Debug output.
    let shown = format!("{a:?} {b:?} {clients:?}");
    assert!(!shown.contains("secret"), "{shown}");
}
