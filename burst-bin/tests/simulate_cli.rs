//! `burst simulate` end to end: the built binary, its output and exit codes.

mod common;

use common::burst;

#[test]
fn json_has_the_documented_shape_and_the_seed_result() {
    let (code, out, err) = burst(&["simulate", "--trace", "builtin:step", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let s = &v["summary"];
    assert_eq!(s["changes"], 2);
    assert_eq!(s["final_burst_weight"], 0);
    assert!(s["overload_s"].is_null());
    let first = s["first_burst_s"].as_f64().expect("bursts");
    assert!((60.0..75.0).contains(&first), "{first}");
    assert!(s["last_change_s"].as_f64().expect("comes back") > 180.0);
    let tl = v["timeline"].as_array().expect("timeline");
    assert_eq!(tl.len(), 301);
    let keys: Vec<&str> = tl[5]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    for k in ["t", "rps", "observed", "burst_weight", "rule"] {
        assert!(keys.contains(&k), "{k} missing in {keys:?}");
    }
    assert!(tl[0]["observed"].is_null(), "no data before two scrapes");
}

#[test]
fn csv_trace_policy_file_and_two_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("load.csv");
    std::fs::write(&trace, "t,rps,up\n0,5\n30,40\n90,5\n120,5\n").expect("write");
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "mode: overflow\ncapacity: 20\nwindow_up: 3s\nwindow_down: 20s\n",
    )
    .expect("write");
    let (code, out, err) = burst(&[
        "simulate",
        "--trace",
        trace.to_str().expect("utf8"),
        "--policy",
        policy.to_str().expect("utf8"),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v["timeline"][10].get("observed_up").is_some());
    // 40 rps on capacity 20 needs 50 % to burst.
    let max = v["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|p| p["burst_weight"].as_u64())
        .max();
    assert_eq!(max, Some(50));
    assert!(v["summary"]["overload_s"].is_number());
}

#[test]
fn human_table_shows_changes_and_summary() {
    let (code, out, _) = burst(&["simulate", "--trace", "builtin:step"]);
    assert_eq!(code, 0);
    assert!(out.contains("above_high <- change"), "{out}");
    assert!(out.contains("below_low <- change"), "{out}");
    assert!(out.contains("weight changes      2"), "{out}");
}

#[test]
fn bad_input_names_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("p.yaml");
    std::fs::write(&policy, "high: 5\nlow: 8\n").expect("write");
    let (code, _, err) = burst(&[
        "simulate",
        "--trace",
        "builtin:step",
        "--policy",
        policy.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("high/low") && err.contains("low must be strictly below high"),
        "{err}"
    );

    let (code, _, err) = burst(&["simulate", "--trace", "builtin:nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("known: step, ramp"), "{err}");

    let bad_csv = dir.path().join("bad.csv");
    std::fs::write(&bad_csv, "0,5\n10,-1\n").expect("write");
    let (code, _, err) = burst(&["simulate", "--trace", bad_csv.to_str().expect("utf8")]);
    assert_eq!(code, 2);
    assert!(err.contains("line 2") && err.contains("-1"), "{err}");
}

#[test]
fn compare_meets_the_bar_against_the_seed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plots = dir.path().join("plots");
    let (code, out, err) = burst(&[
        "simulate",
        "--compare",
        "--trace",
        "builtin:step",
        "--trace",
        "builtin:noisy",
        "--trace",
        "builtin:sine",
        "--json",
        "--plot",
        plots.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    let get = |trace: &str, policy: &str| {
        rows.iter()
            .find(|r| r["trace"] == trace && r["policy"] == policy)
            .unwrap_or_else(|| panic!("{trace}/{policy} missing"))["quality"]
            .clone()
    };
    let seed = get("builtin:step", "seed")["reaction_s"]
        .as_f64()
        .expect("seed reacts");
    let ours = get("builtin:step", "recommended")["reaction_s"]
        .as_f64()
        .expect("recommended reacts");
    assert!(ours * 5.0 <= seed, "recommended {ours}s vs seed {seed}s");
    for trace in ["builtin:noisy", "builtin:sine"] {
        let s = get(trace, "seed")["changes"].as_u64().expect("n");
        let r = get(trace, "recommended")["changes"].as_u64().expect("n");
        assert!(r <= s, "{trace}: recommended {r} changes vs seed {s}");
    }
    for name in ["builtin_step.svg", "builtin_noisy.svg", "builtin_sine.svg"] {
        let svg = std::fs::read_to_string(plots.join(name)).expect("plot written");
        assert!(svg.contains("seed burst %") && svg.contains("recommended burst %"));
    }
}

#[test]
fn plot_refuses_unknown_formats() {
    let (code, _, err) = burst(&[
        "simulate",
        "--trace",
        "builtin:step",
        "--plot",
        "/tmp/x.gif",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("must end in .svg"), "{err}");
}
