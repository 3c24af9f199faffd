//! `burst simulate --json` and `burst demo --headless --json` print one report schema
//! (docs/reports.md): the same summary keys, the same top-level and per-point keys; and
//! `burst demo --ready-file` writes a ready event once everything listens.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::burst;
use serde_json::Value;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn simulate_and_demo_share_the_summary_keys_and_the_report_shape() {
    let (code, out, err) = burst(&["simulate", "--trace", "builtin:step", "--json"]);
    assert_eq!(code, 0, "{err}");
    let sim: Value = serde_json::from_str(&out).unwrap();

    let demo = common::headless_report(
        "high: 15\nlow: 10\nwindow: 2s\ntick: 500ms\n",
        "5rps:2s,30rps:5s",
        Duration::from_secs(60),
    );

    // One summary: the same keys, every one documented in docs/reports.md.
    let summary = keys(&sim["summary"]);
    assert_eq!(summary, keys(&demo["summary"]));
    assert_eq!(
        summary,
        set(&[
            "duration_s",
            "changes",
            "first_burst_s",
            "back_to_primary_s",
            "last_change_s",
            "final_burst_weight",
            "burst_share",
            "overload_s",
        ])
    );
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reports.md"))
        .unwrap();
    for k in &summary {
        assert!(
            docs.contains(&format!("`{k}`")),
            "docs/reports.md lacks `{k}`"
        );
    }

    // The shared top-level keys; demo adds its own figures.
    let common = set(&["summary", "timeline", "changes"]);
    assert_eq!(keys(&sim), common);
    assert!(keys(&demo).is_superset(&common), "{:?}", keys(&demo));
    assert!(keys(&demo).contains("demo"));

    // Points and changes carry the shared keys in both.
    let point = set(&["t", "rps", "observed", "burst_weight", "rule"]);
    for report in [&sim, &demo] {
        let first = &report["timeline"][0];
        assert!(keys(first).is_superset(&point), "{first}");
    }
    let change = set(&["t", "from", "to", "burst_weight", "reason"]);
    let sim_change = &sim["changes"][0];
    assert_eq!(keys(sim_change), change, "{sim_change}");
    assert_eq!(
        sim["changes"].as_array().unwrap().len() as u64,
        sim["summary"]["changes"].as_u64().unwrap()
    );
    assert_eq!(sim_change["from"], "100/0");
    assert_eq!(sim_change["reason"], "above_high");
    let demo_changes = demo["changes"].as_array().unwrap();
    assert_eq!(
        demo_changes.len() as u64,
        demo["summary"]["changes"].as_u64().unwrap()
    );
    for c in demo_changes {
        assert!(keys(c).is_superset(&change), "{c}");
    }
}

/// Sends SIGINT (the demo's Ctrl-C) and waits, bounded, for the exit.
fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
    burst_testkit::interrupt(child, Duration::from_secs(20)).unwrap()
}

#[test]
fn ready_file_names_urls_that_answer() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let mut child = common::start_demo_until_ready(&["demo", "--port", "0"], &ready);
    let text = std::fs::read_to_string(&ready).unwrap();
    assert_eq!(text.lines().count(), 1, "one JSON line: {text}");
    let event: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(event["event"], "ready");
    assert_eq!(event["pid"], child.id());
    assert!(
        event["source"].as_str().unwrap().contains("scrape"),
        "{event}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let statuses = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut statuses = Vec::new();
        for key in ["page", "metrics", "primary_worker"] {
            let url = event[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key}: {event}"));
            let url = if key == "primary_worker" {
                format!("{url}_healthz")
            } else {
                url.to_owned()
            };
            let status = client.get(&url).send().await.map(|r| r.status().as_u16());
            statuses.push((key, status.map_err(|e| e.to_string())));
        }
        statuses
    });
    let status = interrupt(&mut child);
    for (key, s) in statuses {
        assert_eq!(s, Ok(200), "{key} of {event}");
    }
    assert!(status.success(), "{status}");
    assert!(!dir.path().join("ready.json.tmp").exists());
}
