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

#[test]
fn signal_columns_and_signal_keys_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("signals.csv");
    // 20 rps throughout; the primary has 3 ready endpoints, then 1 from 60 s; the burst side
    // has none until 30 s; the p99 column is left empty (no data) after 90 s.
    std::fs::write(
        &trace,
        "t,rps,up,p99_ms,error_ratio,primary_ready,burst_ready,burst_error_ratio\n\
         0,20,1,80,0,3,0,\n\
         30,20,1,80,0,3,2,0\n\
         60,20,1,80,0,1,2,0\n\
         90,20,1,,0,1,2,0\n\
         120,20,1,,0,1,2,0\n",
    )
    .expect("write");
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "mode: overflow\ncapacity_per_endpoint: 10\nwindow: 5s\nburst_health:\n  min_ready: 1\n  healthy_after: 5s\n",
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
    let tl = v["timeline"].as_array().expect("timeline");
    let at = |t: f64| {
        tl.iter()
            .find(|p| p["t"].as_f64().is_some_and(|x| x >= t))
            .expect("point")
    };
    // 3 ready x 10 rps = 30 capacity holds 20 rps; with 1 ready (10 rps) half must go: 50 %.
    assert_eq!(at(20.0)["burst_weight"], 0);
    assert_eq!(at(20.0)["burst_ready"], 0);
    assert_eq!(at(20.0)["capacity"], 30.0);
    assert_eq!(at(100.0)["burst_weight"], 50);
    assert_eq!(at(100.0)["primary_ready"], 1);
    assert_eq!(at(100.0)["capacity"], 10.0);
    // The trace's p99 is shown while it has one; the queueing model fills the gap after.
    assert_eq!(at(50.0)["p99_ms"], 80.0);
    assert!(at(100.0)["p99_ms"].as_f64().is_some_and(|p| p != 80.0));
    let s = &v["summary"];
    assert_eq!(s["seconds_on_unhealthy_burst"], 0.0);
    let over = s["seconds_primary_over_capacity"]
        .as_f64()
        .expect("capacity known");
    assert!(over <= 3.0, "{over}");
    let change = &v["changes"][0];
    assert_eq!(change["reason"], "overflow_up");
    assert_eq!(change["burst_weight"], 50);
}

#[test]
fn signal_builtins_compare_today_with_the_guarded_policies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("guarded.yaml");
    std::fs::write(
        &policy,
        "mode: overflow\ncapacityPerEndpoint: 10\nwindowUp: 5s\nwindowDown: 30s\nburstHealth: {minReady: 1}\n",
    )
    .expect("write");
    let (code, out, err) = burst(&[
        "simulate",
        "--compare",
        "--trace",
        "builtin:endpoints-lost",
        "--trace",
        "builtin:burst-down",
        "--capacity-per-endpoint",
        "10",
        "--capacity",
        "40",
        "--policy",
        policy.to_str().expect("utf8"),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    let q = |trace: &str, policy_name: &str| {
        rows.iter()
            .find(|r| {
                r["trace"] == trace
                    && r["policy"]
                        .as_str()
                        .is_some_and(|p| p.ends_with(policy_name))
            })
            .map(|r| r["quality"].clone())
            .expect("row")
    };
    // Overflow with the capacity typed in (40 rps for 4 endpoints) never notices the primary
    // losing endpoints; capacity from endpoints does. The seed avoids the overload only by
    // sending nearly everything to burst.
    let fixed = q("builtin:endpoints-lost", "overflow");
    let seed = q("builtin:endpoints-lost", "seed");
    let ours = q("builtin:endpoints-lost", "guarded.yaml");
    let over = |v: &serde_json::Value| v["seconds_primary_over_capacity"].as_f64().expect("s");
    let share = |v: &serde_json::Value| v["burst_share"].as_f64().expect("share");
    assert!(over(&fixed) > 100.0, "{fixed}");
    assert!(over(&ours) < 10.0, "{ours}");
    assert!(share(&ours) < share(&seed) / 2.0, "{ours} vs {seed}");
    // The seed keeps traffic on a burst side that is down; the guard does not.
    let seed = q("builtin:burst-down", "seed");
    let ours = q("builtin:burst-down", "guarded.yaml");
    assert!(
        seed["seconds_on_unhealthy_burst"].as_f64().expect("s") > 30.0,
        "{seed}"
    );
    assert_eq!(ours["seconds_on_unhealthy_burst"], 0.0);
    assert!(
        ours["changes_by_rule"]["burst_unhealthy"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    );
}

#[test]
fn bad_signal_input_names_the_column_or_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("bad.csv");
    std::fs::write(&trace, "t,rps,burst_ready\n0,5,two\n10,5,1\n").expect("write");
    let (code, _, err) = burst(&["simulate", "--trace", trace.to_str().expect("utf8")]);
    assert_ne!(code, 0);
    assert!(err.contains("burst_ready `two`"), "{err}");
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "triggers:\n  latency_p99_ms: {high: 100, low: 300}\n",
    )
    .expect("write");
    let (code, _, err) = burst(&[
        "simulate",
        "--trace",
        "builtin:step",
        "--policy",
        policy.to_str().expect("utf8"),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("triggers.latencyP99Ms"), "{err}");
    let (code, _, err) = burst(&[
        "simulate",
        "--trace",
        "builtin:step",
        "--capacity-per-endpoint",
        "0",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("--capacity-per-endpoint"), "{err}");
}

#[test]
fn overflow_stable_does_not_flap_on_the_square_wave_and_beats_todays_overflow() {
    let (code, out, err) = burst(&["simulate", "--compare", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    let q = |trace: &str, policy: &str| {
        rows.iter()
            .find(|r| r["trace"] == trace && r["policy"] == policy)
            .map(|r| r["quality"].clone())
            .unwrap_or_else(|| panic!("{trace}/{policy} missing"))
    };
    let over = |v: &serde_json::Value| v["seconds_primary_over_capacity"].as_f64().expect("s");
    let changes = |v: &serde_json::Value| v["changes"].as_u64().expect("n");
    let share = |v: &serde_json::Value| v["burst_share"].as_f64().expect("share");
    // The square wave (5 and 25 rps around 15): at most 10 changes in its 10 minutes and
    // at most 5 % of its seconds over capacity; today's overflow sits over capacity half
    // the time.
    let square = q("builtin:square", "overflow-stable");
    assert!(changes(&square) <= 10, "{square}");
    assert!(over(&square) <= 30.0, "{square}");
    assert!(over(&q("builtin:square", "overflow")) >= 290.0);
    // Every other built-in: never more seconds over capacity nor more changes than
    // today's overflow, and strictly fewer seconds over capacity where it had any to
    // spare; the price is a larger share sent to burst (bounded here).
    let mut strictly = 0;
    for name in [
        "step",
        "ramp",
        "sine",
        "flash",
        "noisy",
        "outage",
        "diurnal",
        "endpoints-lost",
        "burst-down",
    ] {
        let trace = format!("builtin:{name}");
        let (old, new) = (q(&trace, "overflow"), q(&trace, "overflow-stable"));
        assert!(over(&new) <= over(&old), "{trace}: {new} vs {old}");
        assert!(changes(&new) <= changes(&old), "{trace}: {new} vs {old}");
        assert!(share(&new) <= share(&old) + 0.12, "{trace}: {new} vs {old}");
        strictly += usize::from(over(&new) < over(&old));
    }
    assert!(
        strictly >= 7,
        "fewer seconds over capacity on only {strictly} traces"
    );
}

#[test]
fn cold_burst_compare_shows_what_prewarm_gains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plots = dir.path().join("plots");
    let (code, out, err) = burst(&[
        "simulate",
        "--compare",
        "--trace",
        "builtin:cold-burst",
        "--capacity",
        "20",
        "--json",
        "--plot",
        plots.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    let q = |policy: &str| {
        rows.iter()
            .find(|r| r["trace"] == "builtin:cold-burst" && r["policy"] == policy)
            .map(|r| r["quality"].clone())
            .unwrap_or_else(|| panic!("{policy} row missing"))
    };
    let refused = |v: &serde_json::Value| v["requests_without_capacity"].as_f64().expect("n");
    let burst_over = |v: &serde_json::Value| v["seconds_burst_over_capacity"].as_f64().expect("s");
    // Today's policies throw the load at a burst side that serves 5 rps for its first minute.
    for policy in ["seed", "recommended", "overflow"] {
        assert!(refused(&q(policy)) > 300.0, "{policy}: {}", q(policy));
        assert!(burst_over(&q(policy)) > 60.0, "{policy}: {}", q(policy));
    }
    // Pre-warming grows it ahead of the forecast crossing: nothing refused.
    assert_eq!(refused(&q("pre-warm")), 0.0);
    assert_eq!(burst_over(&q("pre-warm")), 0.0);
    // The warm-up's ramp shows in the changes.
    assert_eq!(q("warm-up")["changes_by_rule"]["warming"], 3);
    let svg = std::fs::read_to_string(plots.join("builtin_cold-burst.svg")).expect("plot");
    assert!(svg.contains("burst capacity (rps)") && svg.contains("pre-warm burst %"));
}

#[test]
fn burst_start_models_a_cold_burst_side_on_any_trace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("prewarm.yaml");
    std::fs::write(&policy, "prewarm: {lead: 90s, hold: 30s}\n").expect("write");
    let run = |extra: &[&str]| {
        let mut args = vec!["simulate", "--trace", "builtin:step", "--json"];
        args.extend_from_slice(extra);
        let (code, out, err) = burst(&args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).expect("json")
    };
    // Without a model: no burst-side figures at all.
    let plain = run(&[]);
    assert!(
        plain["summary"]
            .get("seconds_burst_over_capacity")
            .is_none()
    );
    assert!(plain["timeline"][0].get("burst_capacity").is_none());
    // 5 → 20 rps onto a 2 rps burst side that takes 30 s to grow.
    let cold = run(&["--burst-start", "30s", "--burst-capacity", "2"]);
    let over = cold["summary"]["seconds_burst_over_capacity"]
        .as_f64()
        .expect("s");
    assert!((25.0..=35.0).contains(&over), "{}", cold["summary"]);
    assert!(
        cold["summary"]["requests_without_capacity"]
            .as_f64()
            .expect("n")
            > 300.0
    );
    assert_eq!(cold["timeline"][0]["burst_capacity"], 2.0);
    // With pre-warm the prepare and release are in the report, and the table says so.
    let path = policy.to_str().expect("utf8");
    let warm = run(&["--burst-start", "30s", "--policy", path]);
    let actions: Vec<&str> = warm["prewarm"]
        .as_array()
        .expect("prewarm actions")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions.first(), Some(&"prepare"));
    assert_eq!(actions.last(), Some(&"release"));
    assert_eq!(warm["summary"]["prewarm_prepares"], 1);
    let (code, text, err) = burst(&[
        "simulate",
        "--trace",
        "builtin:step",
        "--burst-start",
        "30s",
        "--policy",
        path,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("pre-warm:") && text.contains("burst cap"),
        "{text}"
    );
    assert!(text.contains("burst over capacity"), "{text}");
    // Bad numbers are refused naming the flag.
    let (code, _, err) = burst(&["simulate", "--trace", "builtin:step", "--burst-capacity=-1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--burst-capacity"), "{err}");
}

fn simulate_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["simulate", "--json"];
    all.extend_from_slice(args);
    let (code, out, err) = burst(&all);
    assert_eq!(code, 0, "{all:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn a_burst_capacity_column_gives_the_burst_side_of_a_csv_trace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("burst.csv");
    // 5 → 20 rps at 60 s; the burst side serves 4 rps until 120 s, then 30; no data after
    // 180 s.
    std::fs::write(
        &trace,
        "t,rps,up,burst_capacity\n0,5,1,4\n60,20,1,4\n120,20,1,30\n180,5,1,\n300,5,1,\n",
    )
    .expect("write");
    let path = trace.to_str().expect("utf8");
    let v = simulate_json(&["--trace", path]);
    let s = &v["summary"];
    // The seed moves everything at ~70 s onto 4 rps until 120 s: ~50 s over capacity,
    // ~16 rps x 50 s without capacity.
    let over = s["seconds_burst_over_capacity"].as_f64().expect("s");
    assert!((45.0..=55.0).contains(&over), "{s}");
    let refused = s["requests_without_capacity"].as_f64().expect("n");
    assert!((700.0..=900.0).contains(&refused), "{s}");
    let tl = v["timeline"].as_array().expect("timeline");
    let at = |t: usize| tl[t]["burst_capacity"].as_f64();
    assert_eq!((at(0), at(130), at(200)), (Some(4.0), Some(30.0), None));

    // The column overrides a modelled scale-up: --burst-start only serves the stretch
    // without data (from the last recorded 30 rps), and the result is the same here.
    let flagged = simulate_json(&["--trace", path, "--burst-start", "5s"]);
    assert_eq!(flagged["summary"]["seconds_burst_over_capacity"], over);
    assert_eq!(flagged["timeline"][200]["burst_capacity"], 30.0);

    // A bad cell names the line, the column and the value.
    std::fs::write(&trace, "t,rps,burst_capacity\n0,5,4\n60,20,-2\n").expect("write");
    let (code, _, err) = burst(&["simulate", "--trace", path]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("line 3") && err.contains("burst_capacity `-2` is not a capacity"),
        "{err}"
    );
}

#[test]
fn save_trace_of_cold_burst_records_its_burst_side_and_replays_to_the_same_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = dir.path().join("cold.csv");
    let saved = saved.to_str().expect("utf8");
    let policy = dir.path().join("prewarm.yaml");
    std::fs::write(
        &policy,
        "windowUp: 2s\nwindowDown: 30s\ncooldown: 30s\nprewarm: {lead: 90s, hold: 5m}\n",
    )
    .expect("write");
    let policy = policy.to_str().expect("utf8");
    for extra in [&[][..], &["--policy", policy][..]] {
        let mut args = vec!["--capacity", "20", "--trace", "builtin:cold-burst"];
        args.extend_from_slice(extra);
        let mut save = args.clone();
        save.extend_from_slice(&["--save-trace", saved]);
        let original = simulate_json(&save);
        let csv = std::fs::read_to_string(saved).expect("saved trace");
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("t,rps,up,burst_capacity"));
        assert_eq!(lines.next(), Some("0,5,1,5"));
        assert_eq!(csv.lines().count(), 722);
        args[3] = saved;
        let replay = simulate_json(&args);
        assert_eq!(replay["summary"], original["summary"], "{extra:?}");
        assert_eq!(replay["timeline"], original["timeline"], "{extra:?}");
        assert!(
            original["summary"]["requests_without_capacity"]
                .as_f64()
                .is_some(),
            "{}",
            original["summary"]
        );
    }

    // A trace without a burst-side model is saved without the column.
    simulate_json(&["--trace", "builtin:step", "--save-trace", saved]);
    let csv = std::fs::read_to_string(saved).expect("saved trace");
    assert!(csv.starts_with("t,rps,up\n0,5,1\n"), "{csv}");

    // --compare runs several burst sides: only a fetched trace can be saved.
    let (code, _, err) = burst(&[
        "simulate",
        "--compare",
        "--trace",
        "builtin:cold-burst",
        "--save-trace",
        saved,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("without --compare"), "{err}");
}
