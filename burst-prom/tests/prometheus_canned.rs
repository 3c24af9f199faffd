//! PrometheusSource against canned answers (the golden files in `tests/data`): every
//! outcome of a query, and the HTTP behaviour (GET/POST, auth, headers, timeout, reuse).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use burst_core::{MetricSource, Reading, Timestamp};
use burst_prom::{
    BasicAuth, Error, HttpClients, HttpConfig, ManualClock, PrometheusConfig, PrometheusSource,
    SeriesRule,
};
use common::{Canned, Reply, data};

const T0: u64 = 1_700_000_000;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_duration(
        Duration::from_secs(T0),
    )))
}

fn source_with(url: String, edit: impl FnOnce(&mut PrometheusConfig)) -> PrometheusSource {
    let mut config = PrometheusConfig {
        url,
        ..PrometheusConfig::default()
    };
    edit(&mut config);
    PrometheusSource::with_clock(config, clock()).unwrap()
}

async fn evaluate_file(file: &str, status: u16, rule: SeriesRule) -> Result<Reading, Error> {
    let body = data(file);
    let server = Canned::start(move |_| Reply::status(status, body.clone())).await;
    let source = source_with(server.url(), |c| c.series = rule);
    source.evaluate().await
}

fn value(reading: Reading) -> (f64, f64, Timestamp) {
    match reading {
        Reading::Value(o) => (o.rates.up.get(), o.rates.down.get(), o.sampled_at),
        Reading::NoData { reason } => panic!("expected a value, got no data: {reason}"),
    }
}

#[tokio::test]
async fn one_series_is_the_reading_and_the_query_is_the_seeds_at_the_source() {
    let body = data("vector_one.json");
    let server = Canned::start(move |_| Reply::ok(body.clone())).await;
    let source = source_with(server.url(), |_| {});
    let (up, down, at) = value(source.evaluate().await.unwrap());
    assert_eq!((up, down), (12.5, 12.5));
    assert_eq!(at.as_secs_f64(), 1_700_000_000.123);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("GET", "/api/v1/query")
    );
    assert_eq!(
        r.promql().unwrap(),
        r#"sum(rate(istio_requests_total{reporter="source",destination_service="worker-service.default.svc.cluster.local",source_workload="frontend-deployment"}[15s])) by (source_workload,source_app,destination_service)"#
    );
    assert!(r.header("authorization").is_none());
}

#[tokio::test]
async fn empty_vector_is_no_data_never_zero() {
    let reading = evaluate_file("vector_empty.json", 200, SeriesRule::Error)
        .await
        .unwrap();
    match reading {
        Reading::NoData { reason } => assert!(reason.contains("empty vector"), "{reason}"),
        other => panic!("empty vector read as {other:?}"),
    }
}

#[tokio::test]
async fn several_series_follow_the_rule() {
    let e = evaluate_file("vector_several.json", 200, SeriesRule::Error)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "several_series");
    let msg = e.to_string();
    assert!(msg.contains("2 series"), "{msg}");
    assert!(
        msg.contains(r#"source_workload="frontend-deployment""#),
        "{msg}"
    );
    assert!(msg.contains(r#"source_workload="loadgen""#), "{msg}");

    let sum = evaluate_file("vector_several.json", 200, SeriesRule::Sum)
        .await
        .unwrap();
    assert_eq!(value(sum).0, 10.5);
    let max = evaluate_file("vector_several.json", 200, SeriesRule::Max)
        .await
        .unwrap();
    assert_eq!(value(max).0, 6.5);
}

#[tokio::test]
async fn scalar_is_a_value() {
    let (up, _, at) = value(
        evaluate_file("scalar.json", 200, SeriesRule::Error)
            .await
            .unwrap(),
    );
    assert_eq!((up, at.as_secs_f64()), (7.25, 1_700_000_000.5));
}

#[tokio::test]
async fn nan_inf_and_negative_values_are_typed_errors() {
    for (file, shown) in [
        ("vector_nan.json", "NaN"),
        ("vector_inf.json", "inf"),
        ("vector_negative.json", "-3"),
    ] {
        let e = evaluate_file(file, 200, SeriesRule::Error)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidValue { .. }), "{file}: {e:?}");
        assert_eq!(e.kind(), "invalid_value");
        let msg = e.to_string();
        assert!(msg.contains(r#"{job="worker"}"#), "{file}: {msg}");
        assert!(msg.contains(shown), "{file}: {msg}");
    }
}

#[tokio::test]
async fn error_bodies_carry_prometheus_message() {
    for (file, status, error_type, needle) in [
        (
            "error_bad_data.json",
            400,
            "bad_data",
            "unexpected end of input",
        ),
        ("error_timeout.json", 503, "timeout", "query timed out"),
        ("error_bad_data.json", 200, "bad_data", "parse error"),
    ] {
        let e = evaluate_file(file, status, SeriesRule::Error)
            .await
            .unwrap_err();
        match &e {
            Error::Prometheus {
                error_type: t,
                message,
            } => {
                assert_eq!(t, error_type);
                assert!(message.contains(needle), "{message}");
            }
            other => panic!("{file}: expected a Prometheus error, got {other:?}"),
        }
        assert_eq!(e.kind(), "prometheus");
    }
}

#[tokio::test]
async fn other_result_types_and_bodies_are_rejected() {
    for (file, status, kind, needle) in [
        ("matrix.json", 200, "result_type", "matrix"),
        ("string.json", 200, "result_type", "string"),
        ("native_histogram.json", 200, "response", "histogram_count"),
        ("not_prometheus.html", 502, "http_status", "502 Bad Gateway"),
        ("not_prometheus.html", 200, "response", "502 Bad Gateway"),
        ("vector_one.json", 500, "http_status", "HTTP 500"),
    ] {
        let e = evaluate_file(file, status, SeriesRule::Error)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{file} {status}: {e}");
        assert!(e.to_string().contains(needle), "{file}: {e}");
    }
}

#[tokio::test]
async fn stale_samples_are_no_data() {
    let body = data("vector_stale.json");
    let server = Canned::start(move |_| Reply::ok(body.clone())).await;
    let source = source_with(server.url(), |c| c.max_age = Duration::from_secs(30));
    match source.evaluate().await.unwrap() {
        Reading::NoData { reason } => {
            assert!(reason.contains("stale"), "{reason}");
            assert!(reason.contains("16m 40s"), "{reason}");
        }
        other => panic!("stale sample read as {other:?}"),
    }
    // With a generous max age the same answer is a value.
    let source = source_with(server.url(), |c| c.max_age = Duration::from_secs(3600));
    assert_eq!(value(source.evaluate().await.unwrap()).0, 3.0);
}

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn warnings_are_logged_and_the_value_kept() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let reading = evaluate_file("warnings.json", 200, SeriesRule::Error)
        .await
        .unwrap();
    assert_eq!(value(reading).0, 3.0);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("metric might not be a counter"), "{logs}");
    assert!(logs.contains("WARN"), "{logs}");
}

#[tokio::test]
async fn long_queries_are_sent_as_post_forms() {
    let body = data("probe.json");
    let server = Canned::start(move |_| Reply::ok(body.clone())).await;
    let source = source_with(server.url(), |c| c.post_above_bytes = 100);
    let long = format!("vector(1) # {}", "padding ".repeat(30));
    source.query("vector(1)").await.unwrap();
    source.query(&long).await.unwrap();
    let r = server.requests();
    assert_eq!(r[0].method.as_str(), "GET");
    assert_eq!(r[1].method.as_str(), "POST");
    assert_eq!(
        r[1].header("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(r[1].promql().unwrap(), long);
    assert!(r[1].query.is_none());
}

#[tokio::test]
async fn bearer_token_is_read_from_the_file_and_reread_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let body = data("vector_one.json");
    let server = Canned::start(move |_| Reply::ok(body.clone())).await;
    let source = source_with(server.url(), |c| {
        c.http.bearer_token_file = Some(token.clone());
    });
    source.evaluate().await.unwrap();
    // Rotate the way kubelet does: write elsewhere, then rename over the old file.
    let next = dir.path().join("token.next");
    std::fs::write(&next, "second-token").unwrap();
    std::fs::rename(&next, &token).unwrap();
    source.evaluate().await.unwrap();
    let auth: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap())
        .collect();
    assert_eq!(auth, ["Bearer first-token", "Bearer second-token"]);

    // A token file that vanished is an error naming it, not a request without auth.
    std::fs::remove_file(&token).unwrap();
    let e = source.evaluate().await.unwrap_err();
    assert_eq!(e.kind(), "token_file");
    assert!(e.to_string().contains("token"), "{e}");
}

#[tokio::test]
async fn missing_token_file_fails_at_construction() {
    let config = PrometheusConfig {
        http: HttpConfig {
            bearer_token_file: Some("/nonexistent/token".into()),
            ..HttpConfig::default()
        },
        ..PrometheusConfig::default()
    };
    let e = PrometheusSource::new(config).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/token"), "{e}");
}

#[tokio::test]
async fn basic_auth_and_extra_headers_are_sent() {
    let body = data("vector_one.json");
    let server = Canned::start(move |_| Reply::ok(body.clone())).await;
    let source = source_with(server.url(), |c| {
        c.http.basic_auth = Some(BasicAuth {
            username: "burst".into(),
            password: "s3cret".into(),
        });
        c.http.headers = BTreeMap::from([("X-Scope-OrgID".to_string(), "tenant-a".to_string())]);
    });
    source.evaluate().await.unwrap();
    let r = &server.requests()[0];
    // base64("burst:s3cret")
    assert_eq!(r.header("authorization").unwrap(), "Basic YnVyc3Q6czNjcmV0");
    assert_eq!(r.header("x-scope-orgid").unwrap(), "tenant-a");
    assert!(r.header("user-agent").unwrap().starts_with("burst/"));
}

#[tokio::test]
async fn slow_answers_time_out() {
    let body = data("vector_one.json");
    let server = Canned::start(move |_| Reply {
        delay: Duration::from_secs(3),
        ..Reply::ok(body.clone())
    })
    .await;
    let source = source_with(server.url(), |c| {
        c.http.timeout = Duration::from_millis(200)
    });
    let e = source.evaluate().await.unwrap_err();
    assert_eq!(e.kind(), "timeout", "{e}");
    assert!(e.to_string().contains("200ms"), "{e}");
    // Through the trait, the kind survives for metrics.
    let e = source.observe().await.unwrap_err();
    assert_eq!(e.kind(), "timeout");
}

#[tokio::test]
async fn connections_are_reused() {
    let body = data("vector_one.json");
    let server = Canned::start(move |_| Reply::ok(body.clone())).await;
    let source = source_with(server.url(), |_| {});
    for _ in 0..3 {
        source.evaluate().await.unwrap();
    }
    let peers: std::collections::HashSet<_> = server.requests().iter().map(|r| r.peer).collect();
    assert_eq!(peers.len(), 1, "{peers:?}");
}

/// A source querying `server` through `clients`, with its HTTP settings edited by `edit`.
fn shared_source(
    server: &Canned,
    clients: &HttpClients,
    edit: &dyn Fn(&mut HttpConfig),
) -> PrometheusSource {
    let mut config = PrometheusConfig {
        url: server.url(),
        ..PrometheusConfig::default()
    };
    edit(&mut config.http);
    PrometheusSource::with_clock_and_clients(config, clock(), clients).unwrap()
}

#[tokio::test]
async fn sources_sharing_a_client_send_their_own_credentials_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let token_a = dir.path().join("token-a");
    let token_b = dir.path().join("token-b");
    std::fs::write(&token_a, "token-of-a\n").unwrap();
    std::fs::write(&token_b, "token-of-b\n").unwrap();
    let body = data("vector_one.json");
    let server = Canned::start(move |_| Reply::ok(body.clone())).await;
    let clients = HttpClients::new();
    let build = |edit: &dyn Fn(&mut HttpConfig)| shared_source(&server, &clients, edit);
    let a = build(&|h| {
        h.bearer_token_file = Some(token_a.clone());
        h.headers = BTreeMap::from([("X-Scope-OrgID".to_string(), "tenant-a".to_string())]);
    });
    let b = build(&|h| {
        h.bearer_token_file = Some(token_b.clone());
        // The token file wins over an Authorization header, as it does without sharing.
        h.headers = BTreeMap::from([("Authorization".to_string(), "Bearer ignored".to_string())]);
    });
    let c = build(&|h| {
        h.basic_auth = Some(BasicAuth {
            username: "burst".into(),
            password: "s3cret".into(),
        })
    });
    let d = build(&|_| {});
    assert_eq!(clients.len(), 1, "one client for four sources");
    for _ in 0..2 {
        for s in [&a, &b, &c, &d] {
            s.evaluate().await.unwrap();
        }
    }
    let requests = server.requests();
    let seen: Vec<(Option<String>, Option<String>)> = requests
        .iter()
        .map(|r| (r.header("authorization"), r.header("x-scope-orgid")))
        .collect();
    let expected = [
        (
            Some("Bearer token-of-a".to_string()),
            Some("tenant-a".to_string()),
        ),
        (Some("Bearer token-of-b".to_string()), None),
        (Some("Basic YnVyc3Q6czNjcmV0".to_string()), None),
        (None, None),
    ];
    assert_eq!(seen[..4], expected);
    assert_eq!(seen[4..], expected);
    for r in &requests {
        assert_eq!(
            r.headers.get_all("authorization").iter().count(),
            usize::from(r.header("authorization").is_some())
        );
    }
    // One pool: the four sources, called one after another, reuse one connection.
    let peers: std::collections::HashSet<_> = requests.iter().map(|r| r.peer).collect();
    assert_eq!(peers.len(), 1, "{peers:?}");
}

#[tokio::test]
async fn sources_with_other_tls_settings_do_not_share_a_client() {
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/ca.pem");
    let body = data("vector_one.json");
    let server = Canned::start(move |_| Reply::ok(body.clone())).await;
    let clients = HttpClients::new();
    let build = |edit: &dyn Fn(&mut HttpConfig)| shared_source(&server, &clients, edit);
    let plain = build(&|_| {});
    let with_ca = build(&|h| h.ca_file = Some(ca.into()));
    assert_eq!(clients.len(), 2);
    let insecure = build(&|h| h.insecure_skip_verify = true);
    assert_eq!(clients.len(), 3);
    for s in [&plain, &with_ca, &insecure] {
        s.evaluate().await.unwrap();
    }
    // Three clients, three pools: three connections.
    let peers: std::collections::HashSet<_> = server.requests().iter().map(|r| r.peer).collect();
    assert_eq!(peers.len(), 3, "{peers:?}");
    drop((plain, with_ca));
    assert_eq!(clients.len(), 1, "clients go with their last source");
}

#[tokio::test]
async fn two_windows_give_both_rates() {
    let server = Canned::start(|r| {
        let q = r.promql().unwrap();
        let v = if q.contains("[5s]") { "20" } else { "8" };
        Reply::ok(format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[{T0},"{v}"]}}]}}}}"#
        ))
    })
    .await;
    let source = source_with(server.url(), |c| {
        c.window = Duration::from_secs(5);
        c.long_window = Some(Duration::from_secs(60));
    });
    let (up, down, _) = value(source.evaluate().await.unwrap());
    assert_eq!((up, down), (20.0, 8.0));
    let mut queries: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.promql().unwrap())
        .collect();
    queries.sort();
    assert!(
        queries[0].contains("[5s]") && queries[1].contains("[60s]"),
        "{queries:?}"
    );

    // One window without data makes the whole reading "no data".
    server.set(|r| {
        let q = r.promql().unwrap();
        let result = if q.contains("[5s]") {
            format!(r#"[{{"metric":{{}},"value":[{T0},"1"]}}]"#)
        } else {
            "[]".to_string()
        };
        Reply::ok(format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":{result}}}}}"#
        ))
    });
    match source.evaluate().await.unwrap() {
        Reading::NoData { reason } => assert!(reason.contains("window 60s"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn probe_runs_vector_1() {
    let body = data("probe.json");
    let server = Canned::start(move |_| Reply::ok(body.clone())).await;
    let source = source_with(server.url(), |_| {});
    source.probe().await.unwrap();
    assert_eq!(server.requests()[0].promql().unwrap(), "vector(1)");
    server.set(|_| Reply::ok(data("vector_empty.json")));
    let e = source.probe().await.unwrap_err();
    assert!(e.to_string().contains("vector(1)"), "{e}");
}

#[tokio::test]
async fn unreachable_prometheus_is_a_connect_error() {
    let port = burst_testkit::free_port().unwrap();
    let source = source_with(format!("http://127.0.0.1:{port}"), |_| {});
    let e = source.evaluate().await.unwrap_err();
    assert_eq!(e.kind(), "connect", "{e}");
    assert!(e.to_string().contains(&port.to_string()), "{e}");
    assert!(source.describe().contains("/api/v1/query"));
}

#[tokio::test]
async fn oversized_answers_are_refused() {
    let body = data("vector_one.json");
    let server = Canned::start(move |_| Reply::ok(body.clone())).await;
    let source = source_with(server.url(), |c| c.http.max_response_bytes = 50);
    let e = source.evaluate().await.unwrap_err();
    assert_eq!(e.kind(), "too_large", "{e}");
}
