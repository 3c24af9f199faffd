//! End to end with a real Redis: `burst demo --headless` runs 5 → 20 → 5 rps; `bursty-`
//! hashes appear only while the controller has moved traffic to the burst worker, and none
//! after it came back. The same checks run on both data planes: the built-in mesh proxy and
//! a real HAProxy (`--data-plane haproxy`, Debian package `haproxy`), and with the pod
//! source measuring the workers as pods (`--source pods`).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use burst_testkit::redis::RedisServer;
use common::{assert_followed_the_load, burst_bounded};
use serde_json::Value;

#[test]
fn headless_scenario_bursts_only_while_the_controller_moved_traffic() {
    let stderr = headless_scenario_on(&[]);
    assert!(stderr.contains("mesh proxy"), "{stderr}");
}

/// `--source pods`: the controller measures the two workers as the pods of worker-service
/// (a fixed EndpointSlice), scraping each one's sidecar-style stats through the pod source;
/// the summed rate stays whole after traffic moves, so it bursts on the step and comes back.
#[test]
fn headless_scenario_with_the_pod_source_bursts_on_the_summed_pod_rate() {
    let stderr = headless_scenario_on(&["--source", "pods"]);
    assert!(
        stderr.contains(
            "measuring   pods of default/worker-service :http-envoy-prom/stats/prometheus"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("primary-worker-0 (10.244.0.10) http://127.0.0.1:")
            && stderr.contains("bursty-worker-0 (10.244.1.10) http://127.0.0.1:"),
        "{stderr}"
    );
}

#[test]
fn headless_scenario_on_haproxy_bursts_only_while_the_controller_moved_weights() {
    assert!(
        std::path::Path::new("/usr/sbin/haproxy").is_file(),
        "HAProxy is not installed: apt-get install -y --no-install-recommends haproxy"
    );
    let stderr = headless_scenario_on(&["--data-plane", "haproxy"]);
    assert!(stderr.contains("haproxy     http://127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("runtime API unix:"), "{stderr}");
    assert!(
        stderr.contains("backend workers (primary / burst)"),
        "{stderr}"
    );
}

/// Runs the 5 → 20 → 5 scenario with `extra` arguments, checks the report, returns stderr.
fn headless_scenario_on(extra: &[&str]) -> String {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    // The seed's thresholds (15/10) with short windows, so the test stays short.
    std::fs::write(&policy, "high: 15\nlow: 10\nwindow: 2s\ntick: 500ms\n").unwrap();
    let args = [
        "demo",
        "--headless",
        "--json",
        "--port",
        "0",
        "--redis-url",
        &redis.addr(),
        "--policy",
        policy.to_str().unwrap(),
        "--scenario",
        "5rps:8s,20rps:12s,5rps:12s",
    ];
    let args: Vec<&str> = args.iter().chain(extra).copied().collect();
    let (code, stdout, stderr) = burst_bounded(&args, Duration::from_secs(90));
    assert_eq!(code, 0, "burst demo failed\nstderr:\n{stderr}");
    assert!(stderr.contains("String Hashr demo"), "{stderr}");
    assert!(
        stderr.contains("split"),
        "live status line missing: {stderr}"
    );
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let s = &report["summary"];
    let d = &report["demo"];
    assert!(d["pubsub"].as_str().unwrap().contains("redis"), "{d}");
    assert_eq!(d["interrupted"], false);
    assert_eq!(d["requests_failed"], 0, "{d}");
    // Every answered request was published and relayed.
    assert_eq!(d["hashes"], d["requests_ok"], "{d}");
    assert!(
        d["requests_ok"].as_u64().unwrap() >= 5 * 8 + 20 * 12 + 5 * 12 - 5,
        "{s}"
    );

    let first_burst = s["first_burst_s"]
        .as_f64()
        .expect("the controller never moved traffic");
    let back = s["back_to_primary_s"]
        .as_f64()
        .expect("the controller never came back");
    assert_followed_the_load(first_burst, back, 8.0, 20.0, 32.0);
    assert_eq!(s["final_burst_weight"], 0);
    assert!(
        d["bursty_hashes"].as_u64().unwrap() > 0,
        "no bursty- hashes at all: {s}"
    );
    assert_eq!(d["bursty_while_primary"], 0, "{d}");

    let timeline = report["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 32);
    for p in timeline {
        let t = p["t"].as_f64().unwrap();
        let bursty = p["bursty"].as_u64().unwrap();
        if t <= first_burst.floor() {
            assert_eq!(
                bursty, 0,
                "bursty- before the controller moved traffic: {p}"
            );
        }
        if t >= back + 1.5 {
            assert_eq!(bursty, 0, "bursty- after the controller came back: {p}");
            assert!(
                p["hashes"].as_u64().unwrap() > 0,
                "hashes must keep flowing: {p}"
            );
        }
    }
    assert!(
        timeline
            .iter()
            .any(|p| p["bursty"].as_u64().unwrap() > 0 && p["burst_weight"] == 100),
        "no second with bursty- hashes while bursting"
    );
    stderr
}
