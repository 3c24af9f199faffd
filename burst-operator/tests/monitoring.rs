//! The monitoring files (deploy/monitoring/, one copy in the chart's files/):
//!
//! - the alert rules pass `promtool check rules`, and their unit tests
//!   (deploy/monitoring/burst-alerts.test.yaml) pass `promtool test rules` with a firing and a
//!   silent case for every alert (promtool comes with Debian's `prometheus` package);
//! - the Grafana dashboard is valid JSON with the `datasource` and `policy` variables, and
//!   every panel has queries; the chart's ConfigMap and PrometheusRule embed the same files;
//! - every query of the dashboard and of the alerts, evaluated by a real Prometheus scraping
//!   a real burstd (operator mode, against the real control plane, with policies whose
//!   source works, answers without data, fails, and whose route is missing), returns series.

#![allow(clippy::unwrap_used)]

mod kube_env;
mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use burst_operator::operator;
use burst_operator::operator::OperatorSettings;
use burst_operator::process::CommonOptions;
use burst_testkit::prometheus::{PrometheusOptions, PrometheusServer};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube_env::{Demand, Env, VS, eventually, vs_object, vs_resource};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn monitoring(file: &str) -> PathBuf {
    root().join("deploy/monitoring").join(file)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The alert rules file as JSON.
fn rules() -> Value {
    serde_saphyr::from_str(&read(&monitoring("burst-alerts.yaml"))).unwrap()
}

/// Every alerting rule: `(name, expr)`.
fn alerts() -> Vec<(String, String)> {
    rules()["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .map(|r| {
            (
                r["alert"].as_str().unwrap().to_owned(),
                r["expr"].as_str().unwrap().trim().to_owned(),
            )
        })
        .collect()
}

fn dashboard() -> Value {
    serde_json::from_str(&read(&monitoring("burst-dashboard.json"))).unwrap()
}

/// Every query of the dashboard: `(panel title, expr)`.
fn dashboard_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in dashboard()["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                p["title"].as_str().unwrap().to_owned(),
                t["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

fn promtool(args: &[&str]) -> (bool, String) {
    let binary =
        burst_testkit::require_binary("promtool", "prometheus").unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(binary);
    cmd.args(args).current_dir(root().join("deploy/monitoring"));
    let done = burst_testkit::run_bounded(cmd, Duration::from_secs(60)).unwrap();
    (done.success, format!("{}{}", done.stdout, done.stderr))
}

#[test]
fn alert_rules_pass_promtool_check() {
    let (ok, out) = promtool(&["check", "rules", "burst-alerts.yaml"]);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS: 6 rules found"), "{out}");
    let names: BTreeSet<String> = alerts().into_iter().map(|(n, _)| n).collect();
    let wanted: BTreeSet<String> = [
        "BurstdDown",
        "BurstPolicyNoData",
        "BurstDriftRepeated",
        "BurstFlapping",
        "BurstApplyErrors",
        "BurstOnBurstTooLong",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names, wanted);
    for g in rules()["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let a = &r["annotations"];
            for key in ["summary", "description", "runbook", "runbook_url"] {
                assert!(
                    a[key].as_str().is_some_and(|s| !s.is_empty()),
                    "{} has no {key} annotation",
                    r["alert"]
                );
            }
            // The runbook link points at the alert's section of docs/operations.md.
            let anchor = r["alert"].as_str().unwrap().to_lowercase();
            assert!(
                a["runbook_url"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("docs/operations.md#{anchor}")),
                "{}",
                a["runbook_url"]
            );
            assert!(r["labels"]["severity"].is_string(), "{}", r["alert"]);
        }
    }
    let ops = read(&root().join("docs/operations.md")).to_lowercase();
    for (name, _) in alerts() {
        assert!(
            ops.contains(&format!("### {}", name.to_lowercase())),
            "docs/operations.md has no section for {name}"
        );
    }
}

#[test]
fn alert_unit_tests_pass_with_a_firing_and_a_silent_case_per_alert() {
    let (ok, out) = promtool(&["test", "rules", "burst-alerts.test.yaml"]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
    let tests: Value =
        serde_saphyr::from_str(&read(&monitoring("burst-alerts.test.yaml"))).unwrap();
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for t in tests["tests"].as_array().unwrap() {
        for case in t["alert_rule_test"].as_array().unwrap() {
            let name = case["alertname"].as_str().unwrap().to_owned();
            let expected = case["exp_alerts"].as_array().map_or(0, Vec::len);
            if expected == 0 {
                silent.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    for (name, _) in alerts() {
        assert!(firing.contains(&name), "no firing case for {name}");
        assert!(silent.contains(&name), "no silent case for {name}");
    }
}

#[test]
fn dashboard_is_valid_and_every_panel_has_a_query() {
    let d = dashboard();
    assert!(d["uid"].is_string() && d["title"].is_string());
    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |name: &str| vars.iter().find(|v| v["name"] == name).cloned();
    assert_eq!(var("datasource").unwrap()["type"], "datasource");
    let policy = var("policy").expect("a `policy` variable");
    assert!(
        policy["query"]["query"]
            .as_str()
            .unwrap()
            .starts_with("label_values(burstd_")
    );
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_i64().unwrap()), "duplicate panel id");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| e.contains("burstd_")),
                "panel {}: {t}",
                p["title"]
            );
            assert_eq!(t["datasource"]["uid"], "${datasource}");
        }
    }
    // docs/operations.md shows every query as it is.
    let ops = read(&root().join("docs/operations.md"));
    for (panel, expr) in dashboard_queries() {
        assert!(
            ops.contains(&expr),
            "docs/operations.md lacks the query of panel {panel}: {expr}"
        );
    }
    // The panels the issue asks for.
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Demand vs thresholds",
        "Split",
        "Decisions by rule",
        "Ticks",
        "Tick latency",
        "Source errors and missing data",
        "Router errors and drift repairs",
        "Leader and control loops",
    ] {
        assert!(titles.contains(&want), "no panel {want}: {titles:?}");
    }
}

#[test]
fn chart_embeds_the_same_dashboard_and_rules() {
    let text = support::helm::render_chart(
        &root().join("deploy/helm/burstd"),
        "burstd",
        "burst-system",
        &[
            ("dashboards.enabled", "true"),
            ("prometheusRule.enabled", "true"),
        ],
    )
    .unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect();
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let embedded = cm["data"]["burst-dashboard.json"].as_str().unwrap();
    assert_eq!(
        embedded,
        read(&monitoring("burst-dashboard.json")).trim_end(),
        "the ConfigMap's dashboard differs from deploy/monitoring/burst-dashboard.json"
    );
    let rule = docs.iter().find(|d| d["kind"] == "PrometheusRule").unwrap();
    assert_eq!(rule["spec"], rules());
}

// ---- live: a real Prometheus scraping a real burstd ----

/// What `$__rate_interval` becomes: ten scrapes at the test Prometheus's 1 s interval.
const RATE_INTERVAL: &str = "10s";
/// The job the test Prometheus gives its target (burst_testkit::prometheus).
const TEST_JOB: &str = r#"job="target""#;
/// The rules' selector of burstd's job.
const RULES_JOB: &str = r#"job=~".*burstd.*""#;

/// The dashboard's variables replaced as Grafana would, with every policy of `ns` selected.
fn substitute_dashboard(expr: &str, ns: &str) -> String {
    expr.replace("$policy", &format!("{ns}/.*"))
        .replace("$__rate_interval", RATE_INTERVAL)
}

/// `value` of an alert expression `value <op> bound`: the part left of its last comparison
/// outside parentheses, braces and quotes.
fn value_part(expr: &str) -> &str {
    let bytes = expr.as_bytes();
    let (mut depth, mut quoted, mut cut) = (0i32, false, None);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'(' | b'{' | b'[' if !quoted => depth += 1,
            b')' | b'}' | b']' if !quoted => depth -= 1,
            b'>' | b'<' if !quoted && depth == 0 => cut = Some(i),
            _ => {}
        }
    }
    let cut = cut.unwrap_or_else(|| panic!("no comparison in {expr}"));
    expr[..cut].trim()
}

async fn query(prom: &str, expr: &str) -> Result<Vec<Value>, String> {
    let resp = reqwest::Client::new()
        .post(format!("{prom}/api/v1/query"))
        .form(&[("query", expr)])
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = resp.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{expr}: {body}"));
    }
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// Polls `expr` until it returns at least one series (at most 60 s); invalid PromQL fails
/// at once.
async fn series(prom: &str, expr: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = query(prom, expr).await.unwrap_or_else(|e| panic!("{e}"));
        if !result.is_empty() {
            return result;
        }
        assert!(Instant::now() < deadline, "no series for {expr}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn policies_of(result: &[Value]) -> BTreeSet<String> {
    result
        .iter()
        .filter_map(|s| s["metric"]["policy"].as_str().map(str::to_owned))
        .collect()
}

async fn create_route(env: &Env, name: &str) {
    let mut obj = vs_object(&env.ns);
    obj["metadata"]["name"] = json!(name);
    let api: Api<DynamicObject> = Api::namespaced_with(env.admin.clone(), &env.ns, &vs_resource());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(obj).unwrap(),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_and_alert_query_returns_series_from_a_live_burstd() {
    let env = Env::new("monitoring").await;
    let ns = env.ns.clone();
    let demand = Demand::start(20.0).await;
    for route in ["no-data-route", "failing-source-route"] {
        create_route(&env, route).await;
    }

    // burstd in operator mode, as the binary runs it, serving /metrics on a loopback port.
    let port = burst_testkit::free_port().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let mut options = CommonOptions::new("monitoring");
    options.listen = listen;
    options.status_interval = Duration::from_millis(200);
    let settings = OperatorSettings {
        namespace: Some(ns.clone()),
        shutdown_grace: Duration::from_secs(5),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let burstd = tokio::spawn(operator::run(env.admin.clone(), options, settings, async {
        let _ = stop_rx.await;
    }));
    let target = listen.to_string();
    let prometheus = tokio::task::spawn_blocking(move || {
        PrometheusServer::start(PrometheusOptions::scraping(&[target]))
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e}"));
    let prom = prometheus.url();

    // works: bursts at 20 rps. no-data: its metric does not exist. failing-source: its
    // target refuses connections. no-route: its VirtualService does not exist.
    let closed = format!(
        "http://127.0.0.1:{}/metrics",
        burst_testkit::free_port().unwrap()
    );
    env.create(&env.policy("works", &demand, json!({}))).await;
    let no_data = env.policy(
        "no-data",
        &demand,
        json!({"source": {"scrape": {"metric": "no_such_metric"}},
               "target": {"name": "no-data-route"}, "policy": {"staleAfter": "2s"}}),
    );
    env.create(&no_data).await;
    let failing = env.policy(
        "failing-source",
        &demand,
        json!({"source": {"scrape": {"targets": [closed]}},
               "target": {"name": "failing-source-route"}, "policy": {"staleAfter": "2s"}}),
    );
    env.create(&failing).await;
    env.create(&env.policy(
        "no-route",
        &demand,
        json!({"target": {"name": "missing-route"}}),
    ))
    .await;

    eventually("works moved to burst", || async {
        env.burst_weight().await == 100
    })
    .await;
    // Someone sets the route back by hand: burstd repairs it (one drift repair).
    let vs_api: Api<DynamicObject> = Api::namespaced_with(env.admin.clone(), &ns, &vs_resource());
    let mut vs = env.vs().await;
    vs["spec"]["http"][0]["route"][0]["weight"] = json!(100);
    vs["spec"]["http"][0]["route"][1]["weight"] = json!(0);
    vs_api
        .patch(
            VS,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": vs["spec"]})),
        )
        .await
        .unwrap();
    eventually("drift repaired", || async {
        env.burst_weight().await == 100
    })
    .await;

    // Every dashboard query returns series for the test's policies.
    let works = format!("{ns}/works");
    for (panel, expr) in dashboard_queries() {
        let q = substitute_dashboard(&expr, &ns);
        let result = series(&prom, &q).await;
        if q.contains("policy") {
            assert!(
                policies_of(&result)
                    .iter()
                    .all(|p| p.starts_with(&format!("{ns}/"))),
                "panel {panel}: {q}: {result:?}"
            );
        }
    }
    // The panels that draw the working policy show it.
    for expr in [
        "burstd_observed_rps",
        "burstd_policy_threshold_rps",
        "burstd_drift_repairs_total",
        "burstd_transitions_total",
    ] {
        let result = series(&prom, &format!(r#"{expr}{{policy="{works}"}}"#)).await;
        assert!(!result.is_empty(), "{expr}");
    }

    // Each alert's value (its expression without the comparison) returns series; the full
    // expression is valid, and fires exactly where this scenario says it must.
    let mut fired = std::collections::BTreeMap::new();
    for (name, expr) in alerts() {
        let expr = expr.replace(RULES_JOB, TEST_JOB);
        let value = value_part(&expr);
        let result = series(&prom, value).await;
        assert!(!result.is_empty(), "{name}: {value}");
        let full = query(&prom, &expr)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        fired.insert(name, policies_of(&full));
    }
    let set = |names: &[&str]| -> BTreeSet<String> {
        names.iter().map(|n| format!("{ns}/{n}")).collect()
    };
    // Data has been missing for longer than the 2 s staleAfter (poll: Prometheus may not
    // have scraped that yet).
    let no_data_expr = alerts()
        .into_iter()
        .find(|(n, _)| n == "BurstPolicyNoData")
        .unwrap()
        .1;
    let stale_policies = policies_of(&series(&prom, &no_data_expr).await);
    assert!(
        // no-route never ticks: its loop's start is its last data, 60 s (staleAfter) ago
        // only if this test ran that long.
        stale_policies.is_subset(&set(&["no-data", "failing-source", "no-route"]))
            && stale_policies.contains(&format!("{ns}/no-data"))
            && stale_policies.contains(&format!("{ns}/failing-source")),
        "{stale_policies:?}"
    );
    let apply_expr = alerts()
        .into_iter()
        .find(|(n, _)| n == "BurstApplyErrors")
        .unwrap()
        .1;
    assert_eq!(
        policies_of(&series(&prom, &apply_expr).await),
        set(&["no-route"])
    );
    assert!(
        fired["BurstDriftRepeated"].is_empty(),
        "one repair is not repeated drift"
    );
    assert!(
        fired["BurstFlapping"].is_empty(),
        "{:?}",
        fired["BurstFlapping"]
    );
    // On burst now: pending, and firing only after `for: 2h`.
    assert_eq!(fired["BurstOnBurstTooLong"], set(&["works"]));

    // BurstdDown is silent while burstd is scraped, and its expression turns true once
    // burstd stops.
    let down = alerts()
        .into_iter()
        .find(|(n, _)| n == "BurstdDown")
        .unwrap()
        .1
        .replace(RULES_JOB, TEST_JOB);
    assert!(query(&prom, &down).await.unwrap().is_empty(), "{down}");
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(15), burstd)
        .await
        .expect("burstd stops in time")
        .unwrap()
        .unwrap();
    let result = series(&prom, &down).await;
    assert_eq!(result.len(), 1, "{result:?}");
    drop(prometheus);
}

#[test]
fn value_part_cuts_at_the_last_top_level_comparison() {
    assert_eq!(
        value_part(r#"(max(up{job=~".*>"}) or vector(0)) < 1"#),
        r#"(max(up{job=~".*>"}) or vector(0))"#
    );
    assert_eq!(
        value_part("min by (policy) (time() - a) > max by (policy) (b)"),
        "min by (policy) (time() - a)"
    );
}
