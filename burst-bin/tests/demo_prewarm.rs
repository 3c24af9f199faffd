//! `burst demo --headless` with a cold burst worker (`burst:cold=30s`: it answers 503 for
//! 30 s) and a policy file with `warmup` and `prewarm`: the changes go through the ramp
//! (`warming`), and the pre-warm prepares the burst side as the rate rises, which ends the
//! worker's cold start early; `hold` after the burst it is released.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

#[test]
fn a_cold_burst_worker_is_warmed_by_the_prewarm_and_entered_through_the_ramp() {
    let report = common::headless_report(
        "high: 15\nlow: 10\nwindow: 2s\ntick: 500ms\n\
         warmup: {ramp: [10, 25, 50, 100], rampOver: 8s}\n\
         prewarm: {lead: 30s, hold: 5s}\n",
        "5rps:10s,burst:cold=30s,5rps:5s,25rps:40s,5rps:20s",
        Duration::from_secs(180),
    );
    // The ramp's first step is 10 % of the traffic, not all of it.
    let (first_up_t, reasons) = common::assert_ramp_started_at_10(&report);

    let notes = report["demo"]["prewarm"]
        .as_array()
        .unwrap_or_else(|| panic!("no pre-warm in the report: {}", report["demo"]));
    // The cold start ends 30 s after the 10 s mark; the load rises at 15 s: a prepare came
    // while the worker was still cold and cut its cold start short. (The demo's own start,
    // a rate rising from 0 to 5 rps, may look like a rise too: an earlier prepare, released
    // `hold` later, can find the worker warm.)
    let prepare = notes
        .iter()
        .find(|n| n["action"] == "prepare" && n["warmed_early_s"].as_f64().is_some())
        .unwrap_or_else(|| panic!("no prepare found the worker cold: {notes:#?}"));
    assert!(
        prepare["warmed_early_s"].as_f64().unwrap() > 0.0,
        "{prepare}"
    );
    assert!(prepare["reason"].as_str().is_some(), "{prepare}");
    eprintln!("pre-warm calls: {notes:#?}\nchanges: {reasons:#?}");
    // Prepared by the forecast before the ramp's first step moved traffic.
    assert!(
        prepare["t"].as_f64().unwrap() <= first_up_t,
        "prepared only after traffic moved: {prepare} vs the first change at {first_up_t}"
    );
    // Never released while on burst; released `hold` after traffic came back.
    let back = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|c| c["burst_weight"] == 0)
        .expect("traffic never came back");
    let back_t = back["t"].as_f64().unwrap();
    let releases: Vec<f64> = notes
        .iter()
        .filter(|n| n["action"] == "release")
        .map(|n| n["t"].as_f64().unwrap())
        .collect();
    assert!(
        !releases.iter().any(|t| (first_up_t..=back_t).contains(t)),
        "released while on burst: {releases:?}, burst from {first_up_t} to {back_t}"
    );
    assert!(
        releases.iter().any(|t| *t > back_t),
        "not released after the burst: {notes:#?}"
    );
    assert_eq!(report["summary"]["final_burst_weight"], 0);
}
