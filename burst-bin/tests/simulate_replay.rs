//! `burst simulate --prometheus-url`: replaying recorded history from a real Prometheus.
//!
//! Prometheus is started with a known history backfilled by `promtool`
//! ([`DemandHistory`]): 5 rps, 20 rps for half an hour, a scrape outage, a counter reset.
//! The replay must burst after the step up, see no data in the outage (never 0), keep the
//! rate sane through the reset, and give exactly what the saved trace gives from a file.

mod common;

use std::time::Duration;

use burst_testkit::prometheus::{DemandHistory, PrometheusOptions, PrometheusServer};
use common::burst_bounded;

const QUERY: &str = "sum(rate(replay_requests_total[1m]))";
const LIMIT: Duration = Duration::from_secs(120);

fn prometheus() -> (PrometheusServer, DemandHistory) {
    // Ends an hour ago: well inside the retention, and before anything "now" could add.
    let history =
        DemandHistory::ending_before_now(Duration::from_secs(DemandHistory::DURATION + 3600));
    let prom = PrometheusServer::start(PrometheusOptions::history(history.openmetrics.clone()))
        .expect("prometheus with the backfilled history");
    (prom, history)
}

fn rfc3339(unix: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(unix).expect("fits"), 0)
        .expect("a time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn replay_bursts_after_the_step_keeps_gaps_as_no_data_and_matches_its_saved_trace() {
    let (prom, history) = prometheus();
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = dir.path().join("replay.csv");
    let end = history.start + DemandHistory::DURATION;
    // 4 h at 1 s is 14,401 steps: more than Prometheus' 11,000 per request.
    let (code, replayed, err) = burst_bounded(
        &[
            "simulate",
            "--prometheus-url",
            &prom.url(),
            "--query",
            QUERY,
            "--start",
            &rfc3339(history.start),
            "--end",
            &end.to_string(),
            "--json",
            "--save-trace",
            saved.to_str().expect("utf8"),
        ],
        LIMIT,
    );
    assert_eq!(code, 0, "{err}");
    let v = json(&replayed);

    let changes = v["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 2, "into burst and back: {changes:?}");
    let up_at = DemandHistory::STEP_UP_AT as f64;
    let down_at = DemandHistory::STEP_DOWN_AT as f64;
    let first = changes[0]["t"].as_f64().expect("t");
    assert!(
        (up_at..up_at + 120.0).contains(&first),
        "burst at {first}, step at {up_at}"
    );
    assert_eq!(changes[0]["burst_weight"], 100, "{changes:?}");
    let back = changes[1]["t"].as_f64().expect("t");
    assert!((down_at..down_at + 120.0).contains(&back), "back at {back}");
    assert_eq!(v["summary"]["final_burst_weight"], 0);

    // One timeline point per second of the range: the chunks are stitched without
    // duplicates or holes.
    let timeline = v["timeline"].as_array().expect("timeline");
    assert_eq!(timeline.len(), DemandHistory::DURATION as usize + 1);
    for (i, p) in timeline.iter().enumerate() {
        assert_eq!(p["t"].as_f64(), Some(i as f64), "{p}");
    }
    let at = |t: u64| &timeline[t as usize];
    // The outage is no data, never 0 (the trace holds the last rate Prometheus gave, which
    // its `rate()` already lowers at the edge of the outage); the policy holds.
    let (gap_from, gap_to) = DemandHistory::GAP;
    for t in gap_from + 70..gap_to {
        assert!(at(t)["observed"].is_null(), "observed at {t}: {}", at(t));
        assert_eq!(at(t)["rule"], "missing_hold", "{}", at(t));
        assert!(at(t)["rps"].as_f64().expect("rps") > 0.0, "{}", at(t));
        assert_eq!(at(t)["burst_weight"], 0);
    }
    // The counter reset does not disturb the rate.
    for t in DemandHistory::RESET_AT - 30..DemandHistory::RESET_AT + 120 {
        let rps = at(t)["rps"].as_f64().expect("rps");
        assert!((4.5..5.5).contains(&rps), "rps {rps} at {t}");
    }
    let max = timeline
        .iter()
        .filter_map(|p| p["rps"].as_f64())
        .fold(0.0, f64::max);
    assert!((19.0..21.0).contains(&max), "max rps {max}");

    // The saved trace: one row per step, gaps as up=0 with the held rate, never 0 rps.
    let csv = std::fs::read_to_string(&saved).expect("the saved trace");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), DemandHistory::DURATION as usize + 1);
    let outage: Vec<&&str> = rows.iter().filter(|r| r.ends_with(",0")).collect();
    assert!(
        outage.len() > 200 && outage.len() < 320,
        "{} outage rows",
        outage.len()
    );
    assert!(
        !rows.iter().any(|r| r.split(',').nth(1) == Some("0")),
        "a 0 rps row"
    );

    // The same trace from the file gives the same report, byte for byte.
    let (code, from_file, err) = burst_bounded(
        &[
            "simulate",
            "--trace",
            saved.to_str().expect("utf8"),
            "--json",
        ],
        LIMIT,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&from_file), v);
}

#[test]
fn table_compare_and_plot_run_on_the_replay() {
    let (prom, history) = prometheus();
    let dir = tempfile::tempdir().expect("tempdir");
    let start = history.start.to_string();
    let end = (history.start + DemandHistory::STEP_DOWN_AT + 600).to_string();
    let common = [
        "simulate",
        "--prometheus-url",
        &prom.url(),
        "--query",
        QUERY,
        "--start",
        &start,
        "--end",
        &end,
        "--step",
        "5s",
    ];
    let plot = dir.path().join("replay.svg");
    let mut args = common.to_vec();
    args.extend(["--plot", plot.to_str().expect("utf8"), "--every", "30m"]);
    let (code, table, err) = burst_bounded(&args, LIMIT);
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("changes"), "{table}");
    assert!(table.contains("100"), "the burst weight: {table}");
    let svg = std::fs::read_to_string(&plot).expect("the plot");
    assert!(
        svg.contains("replay_requests_total"),
        "the query is the title"
    );

    let plots = dir.path().join("plots");
    let mut args = common.to_vec();
    args.extend(["--compare", "--plot", plots.to_str().expect("utf8")]);
    let (code, compared, err) = burst_bounded(&args, LIMIT);
    assert_eq!(code, 0, "{err}");
    for policy in ["seed", "recommended", "overflow"] {
        assert!(compared.contains(policy), "{policy}: {compared}");
    }
    assert!(compared.contains(QUERY), "{compared}");
    assert!(plots.join("prometheus.svg").is_file());
}

#[test]
fn errors_name_the_problem() {
    let (prom, history) = prometheus();
    let url = prom.url();
    let start = history.start.to_string();
    let end = (history.start + 3600).to_string();
    let run = |url: &str, query: &str, start: &str, end: &str, extra: &[&str]| {
        let mut args = vec![
            "simulate",
            "--prometheus-url",
            url,
            "--query",
            query,
            "--start",
            start,
            "--end",
            end,
        ];
        args.extend_from_slice(extra);
        let (code, _, err) = burst_bounded(&args, LIMIT);
        assert_ne!(code, 0, "{args:?} succeeded");
        err
    };

    let closed = format!(
        "http://127.0.0.1:{}",
        burst_testkit::free_port().expect("a port")
    );
    let err = run(&closed, QUERY, &start, &end, &[]);
    assert!(err.contains("request failed"), "{err}");

    // Prometheus' own message.
    let err = run(&url, "sum(rate(", &start, &end, &[]);
    assert!(err.contains("parse error"), "{err}");

    let err = run(&url, QUERY, &end, &start, &[]);
    assert!(err.contains("is not before --end"), "{err}");

    let err = run(&url, QUERY, &start, &end, &["--step", "0s"]);
    assert!(err.contains("--step 0s"), "{err}");

    let err = run(&url, "sum(rate(nothing_here_total[1m]))", &start, &end, &[]);
    assert!(err.contains("returned no samples"), "{err}");

    let err = run(&url, "rate(replay_requests_total[1m])", &start, &end, &[]);
    assert!(err.contains("2 series"), "{err}");
    assert!(err.contains("wrap the query in sum("), "{err}");
    assert!(err.contains(r#"instance="a""#), "{err}");

    let err = run(&url, QUERY, "yesterday", &end, &[]);
    assert!(err.contains("neither RFC 3339"), "{err}");
}
