//! RangeClient against canned answers, for what a real Prometheus cannot be made to do:
//! answer a chunk with a step it was not asked for (an overlap, as some proxies in front of
//! several stores do), a NaN step on demand, an infinite value, a 503 without a JSON body.
//! The chunking itself is checked against a real Prometheus in `range_real.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use burst_core::Timestamp;
use burst_prom::{Error, HttpClients, HttpConfig, RangeClient, RangeQuery};
use common::{Canned, Recorded, Reply};

fn param(r: &Recorded, name: &str) -> f64 {
    let encoded = if r.method == axum::http::Method::POST {
        r.body.clone()
    } else {
        r.query.clone().unwrap_or_default()
    };
    url::form_urlencoded::parse(encoded.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.parse::<f64>().unwrap())
        .unwrap()
}

/// Answers every step from `start - step` (one step of overlap) to `end` with value
/// `t - 1000`, except NaN at t = 1004.
fn overlapping(r: &Recorded) -> Reply {
    let (start, end, step) = (param(r, "start"), param(r, "end"), param(r, "step"));
    let mut values = Vec::new();
    let mut t = (start - step).max(1000.0);
    while t <= end {
        let v = if t == 1004.0 {
            "NaN".to_string()
        } else {
            format!("{}", t - 1000.0)
        };
        values.push(format!("[{t},\"{v}\"]"));
        t += step;
    }
    Reply::ok(format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[{}]}}]}}}}"#,
        values.join(",")
    ))
}

fn range(query: &str, from: u64, to: u64) -> RangeQuery {
    RangeQuery {
        query: query.into(),
        start: Timestamp::from_duration(Duration::from_secs(from)),
        end: Timestamp::from_duration(Duration::from_secs(to)),
        step: Duration::from_secs(1),
    }
}

#[tokio::test]
async fn chunks_are_contiguous_and_overlapping_answers_are_stitched_once() {
    let server = Canned::start(overlapping).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "range-token\n").unwrap();
    let http = HttpConfig {
        bearer_token_file: Some(token),
        headers: [("X-Scope-OrgID".to_string(), "tenant-a".to_string())].into(),
        ..HttpConfig::default()
    };
    let client = RangeClient::new(&server.url(), &http, &HttpClients::new())
        .unwrap()
        .with_points_per_request(3)
        .unwrap();
    let h = client.fetch(&range("sum(x)", 1000, 1007)).await.unwrap();
    assert_eq!(h.requests, 3);
    let values: Vec<Option<f64>> = h.samples.iter().map(|s| s.value).collect();
    assert_eq!(
        values,
        vec![
            Some(0.0),
            Some(1.0),
            Some(2.0),
            Some(3.0),
            None,
            Some(5.0),
            Some(6.0),
            Some(7.0)
        ]
    );
    let asked: Vec<(f64, f64)> = server
        .requests()
        .iter()
        .map(|r| (param(r, "start"), param(r, "end")))
        .collect();
    assert_eq!(
        asked,
        vec![(1000.0, 1002.0), (1003.0, 1005.0), (1006.0, 1007.0)]
    );
    for r in server.requests() {
        assert_eq!(r.path, "/api/v1/query_range");
        assert_eq!(
            r.header("authorization").as_deref(),
            Some("Bearer range-token")
        );
        assert_eq!(r.header("x-scope-orgid").as_deref(), Some("tenant-a"));
        assert_eq!(param(&r, "step"), 1.0);
    }

    // A long query goes as a POST form, with the same parameters.
    let long = format!("sum(x{{a=\"{}\"}})", "y".repeat(3000));
    let h = client.fetch(&range(&long, 1000, 1001)).await.unwrap();
    assert_eq!(h.samples.len(), 2);
    let last = server.requests().pop().unwrap();
    assert_eq!(last.method, axum::http::Method::POST);
    assert_eq!(last.promql().as_deref(), Some(long.as_str()));

    assert!(
        RangeClient::new(&server.url(), &http, &HttpClients::new())
            .unwrap()
            .with_points_per_request(11_001)
            .is_err()
    );
}

#[tokio::test]
async fn infinite_values_and_plain_http_errors_are_reported() {
    let server = Canned::fixed(
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1000,"+Inf"]]}]}}"#,
    )
    .await;
    let client =
        RangeClient::new(&server.url(), &HttpConfig::default(), &HttpClients::new()).unwrap();
    let e = client.fetch(&range("x", 1000, 1001)).await.unwrap_err();
    assert!(matches!(e, Error::InvalidValue { .. }), "{e}");
    assert!(e.to_string().contains(r#"{job="a"} at 1000"#), "{e}");

    server.set(|_| Reply::status(503, "upstream down"));
    let e = client.fetch(&range("x", 1000, 1001)).await.unwrap_err();
    assert!(matches!(e, Error::HttpStatus { status: 503, .. }), "{e}");
    assert!(e.to_string().contains("upstream down"), "{e}");
}
