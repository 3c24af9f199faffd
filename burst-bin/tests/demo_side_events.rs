//! `burst demo --headless` with scenario side events, end to end on real HTTP: the
//! policies' signals (latency from the mesh's histogram, ready endpoints per side) act on
//! real traffic.
//! - a burst side that is down gets no traffic, whatever the rate says; once it is back it does;
//! - a slow primary triggers on latency before the rate threshold;
//! - halving the primary's ready endpoints moves traffic to burst at once.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use serde_json::Value;

/// Runs a headless scenario with `policy` (YAML); returns the JSON report.
fn run(policy: &str, scenario: &str) -> Value {
    common::headless_report(policy, scenario, Duration::from_secs(120))
}

/// (t, burst weight, rule) of every timeline point.
fn points(report: &Value) -> Vec<(f64, u64, String)> {
    report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["t"].as_f64().unwrap(),
                p["burst_weight"].as_u64().unwrap(),
                p["rule"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_burst_side_that_is_down_gets_no_traffic_until_it_is_back() {
    let report = run(
        "high: 15\nlow: 10\nwindow: 2s\ntick: 500ms\n\
         burstHealth: {minReady: 1, onUnhealthy: primary, healthyAfter: 2s}\n",
        "5rps:5s,burst:down,25rps:12s,burst:up,25rps:12s",
    );
    let pts = points(&report);
    // 25 rps from t=5 s on: the rate alone would burst within a few seconds.
    let down: Vec<_> = pts.iter().filter(|(t, _, _)| *t <= 17.0).collect();
    assert!(
        down.iter().all(|(_, w, _)| *w == 0),
        "traffic went to a burst side that was down: {down:?}"
    );
    assert!(
        down.iter().any(|(_, _, r)| r == "burst_unhealthy"),
        "the reason should say burst_unhealthy: {down:?}"
    );
    assert!(
        pts.iter().any(|(t, w, _)| *t > 17.0 && *w > 0),
        "once the burst side is back the overload should move there: {pts:?}"
    );
    assert_eq!(report["demo"]["bursty_while_primary"], 0);
}

#[test]
fn a_slow_primary_triggers_on_latency_before_the_rate_threshold() {
    let report = run(
        "high: 100\nlow: 50\nwindow: 2s\ntick: 500ms\ncooldown: 2s\n\
         triggers:\n  latencyP99Ms: {high: 150, low: 80}\n",
        "5rps:6s,primary:slow=300ms,5rps:14s",
    );
    let pts = points(&report);
    assert!(
        pts.iter().all(|(t, w, _)| *t > 6.0 || *w == 0),
        "burst before the primary was slow: {pts:?}"
    );
    let changes = report["changes"].as_array().unwrap();
    let first = changes
        .first()
        .unwrap_or_else(|| panic!("no change at 5 rps with a slow primary: {pts:?}"));
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .starts_with("latency_high"),
        "{first}"
    );
    assert!(first["t"].as_f64().unwrap() > 6.0, "{first}");
}

#[test]
fn halving_the_primary_ready_endpoints_moves_traffic() {
    // 2 endpoints × 10 rps = 20 rps of capacity; 15 rps fits. One endpoint (10 rps) does not.
    let report = run(
        "mode: overflow\ncapacityPerEndpoint: 10\nwindow: 2s\ntick: 500ms\nstep: 5\n",
        "15rps:8s,primary:ready=1,15rps:12s",
    );
    let pts = points(&report);
    assert!(
        pts.iter().all(|(t, w, _)| *t > 8.0 || *w == 0),
        "burst while the primary had room: {pts:?}"
    );
    let last = pts.last().unwrap();
    // Excess 5 of 15 rps: a third of the traffic, in steps of 5.
    assert!(
        (25..=40).contains(&last.1),
        "after losing an endpoint about a third should go to burst: {pts:?}"
    );
}
