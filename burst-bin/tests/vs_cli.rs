//! `burst vs`, `burst httproute` and `burst render` end to end: the built binary, its
//! output (checked against the CRD schemas) and exit codes.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use burst_testkit::schema;
use common::{burst, burst_with_stdin};
use serde_json::Value;

fn corpus(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../burst-istio/tests/corpus")
        .join(format!("{name}.yaml"))
        .to_string_lossy()
        .into_owned()
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(yaml).unwrap()
}

fn weights(vs: &Value, route: usize) -> Vec<Value> {
    vs["spec"]["http"][route]["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["weight"].clone())
        .collect()
}

#[test]
fn set_weights_prints_the_patched_seed() {
    let (code, out, err) = burst(&[
        "vs",
        "set-weights",
        "-f",
        &corpus("seed"),
        "--burst-weight",
        "30",
    ]);
    assert_eq!(code, 0, "{err}");
    let d = docs(&out);
    assert_eq!(d.len(), 1);
    assert_eq!(weights(&d[0], 0), vec![Value::from(70), Value::from(30)]);
    assert_eq!(d[0]["apiVersion"], "networking.istio.io/v1alpha3");
    schema::check(&d[0]).unwrap();
    let original = &docs(&std::fs::read_to_string(corpus("seed")).unwrap())[0];
    assert_eq!(d[0]["spec"]["hosts"], original["spec"]["hosts"]);
    assert_eq!(d[0]["metadata"], original["metadata"]);
}

#[test]
fn get_weights_prints_the_split() {
    let (code, out, _) = burst(&["vs", "get-weights", "-f", &corpus("v1-proportions")]);
    assert_eq!(code, 0);
    assert_eq!(out, "primary=75 burst=25\n");
    let (code, out, _) = burst(&["vs", "get-weights", "-f", &corpus("seed"), "-o", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, serde_json::json!({"primary": 100, "burst": 0}));
}

#[test]
fn route_and_subsets_can_be_chosen() {
    let (code, out, err) = burst(&[
        "vs",
        "set-weights",
        "-f",
        &corpus("named-routes"),
        "--route",
        "split",
        "--burst-weight",
        "45",
    ]);
    assert_eq!(code, 0, "{err}");
    let d = docs(&out);
    assert_eq!(weights(&d[0], 1), vec![Value::from(55), Value::from(45)]);
    schema::check(&d[0]).unwrap();
    let (code, out, err) = burst(&[
        "vs",
        "get-weights",
        "-f",
        &corpus("custom-subsets"),
        "--route-index",
        "0",
        "--primary-subset",
        "onprem",
        "--burst-subset",
        "cloud",
        "--host",
        "worker-service.default.svc.cluster.local",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "primary=50 burst=50\n");
}

#[test]
fn ambiguity_and_bad_input_exit_2_with_the_reason_on_stderr() {
    let (code, out, err) = burst(&[
        "vs",
        "set-weights",
        "-f",
        &corpus("err-ambiguous"),
        "--burst-weight",
        "10",
    ]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("\"mobile\" (#0), #1") && err.contains("select one"),
        "{err}"
    );

    let (code, _, err) = burst(&["vs", "get-weights", "-f", &corpus("err-extra-weight")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("canary-service") && err.contains("Set their weight to 0"),
        "{err}"
    );

    let (code, _, err) = burst(&[
        "vs",
        "set-weights",
        "-f",
        &corpus("seed"),
        "--burst-weight",
        "101",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("101"), "{err}");

    let (code, _, err) = burst(&["vs", "get-weights", "-f", "/no/such/file.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/no/such/file.yaml"), "{err}");

    let (code, _, err) = burst(&["vs", "get-weights", "-f", &corpus("httproute-basic")]);
    assert_eq!(code, 2);
    assert!(err.contains("expected a VirtualService"), "{err}");

    let (code, _, err) = burst_with_stdin(&["vs", "get-weights", "-f", "-"], Some("a: [unclosed"));
    assert_eq!(code, 2);
    assert!(err.contains("not valid YAML"), "{err}");
}

#[test]
fn render_output_round_trips_through_set_weights_on_stdin() {
    let (code, rendered, err) = burst(&["render", "--burst-weight", "0"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = burst_with_stdin(
        &["vs", "set-weights", "-f", "-", "--burst-weight", "100"],
        Some(&rendered),
    );
    assert_eq!(code, 0, "{err}");
    let d = docs(&out);
    assert_eq!(d.len(), 2, "the DestinationRule is printed too");
    assert_eq!(d[0], docs(&rendered)[0]);
    assert_eq!(weights(&d[1], 0), vec![Value::from(0), Value::from(100)]);
    for o in &d {
        schema::check(o).unwrap();
    }
}

#[test]
fn render_prints_the_seed_pair() {
    let (code, out, err) = burst(&["render", "--burst-weight", "20", "--namespace", "shop"]);
    assert_eq!(code, 0, "{err}");
    let d = docs(&out);
    assert_eq!(d.len(), 2);
    assert_eq!(d[0]["kind"], "DestinationRule");
    assert_eq!(d[0]["metadata"]["name"], "worker-destination-rule");
    assert_eq!(
        d[0]["spec"]["subsets"][0]["labels"]["cluster-type"],
        "primary-cluster"
    );
    assert_eq!(d[1]["metadata"]["name"], "worker-virtual-service");
    assert_eq!(d[1]["metadata"]["namespace"], "shop");
    assert_eq!(
        d[1]["spec"]["http"][0]["route"][0]["destination"]["host"],
        "worker-service.shop.svc.cluster.local"
    );
    assert_eq!(weights(&d[1], 0), vec![Value::from(80), Value::from(20)]);
    for o in &d {
        schema::check(o).unwrap();
    }
}

#[test]
fn render_with_the_topology_label_and_bad_names() {
    let (code, out, err) = burst(&[
        "render",
        "--burst-weight",
        "50",
        "--service",
        "api",
        "--subset-label",
        "topology.istio.io/cluster",
        "--primary-label-value",
        "cluster-onprem",
        "--burst-label-value",
        "cluster-cloud",
        "--load-balancer",
        "LEAST_REQUEST",
    ]);
    assert_eq!(code, 0, "{err}");
    let d = docs(&out);
    assert_eq!(
        d[0]["spec"]["subsets"][1]["labels"]["topology.istio.io/cluster"],
        "cluster-cloud"
    );
    assert_eq!(d[1]["metadata"]["name"], "api-virtual-service");
    for o in &d {
        schema::check(o).unwrap();
    }
    let (code, out, err) = burst(&["render", "--burst-weight", "50", "--namespace", "Bad_NS"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("invalid namespace `Bad_NS`"), "{err}");
}

#[test]
fn httproute_set_and_get_weights() {
    let base = [
        "--primary-backend",
        "worker-primary",
        "--burst-backend",
        "worker-burst",
    ];
    let mut args = vec!["httproute", "set-weights", "-f"];
    let file = corpus("httproute-rules");
    args.push(&file);
    args.extend(base);
    args.extend([
        "--rule",
        "api",
        "--burst-weight",
        "35",
        "--burst-namespace",
        "shop",
    ]);
    let (code, out, err) = burst(&args);
    assert_eq!(code, 0, "{err}");
    let d = docs(&out);
    let refs = &d[0]["spec"]["rules"][1]["backendRefs"];
    assert_eq!(refs[0]["weight"], 65);
    assert_eq!(refs[1]["weight"], 35);
    assert_eq!(refs[2]["weight"], 0);
    schema::check(&d[0]).unwrap();

    let (code, out, err) = burst(&[
        "httproute",
        "get-weights",
        "-f",
        &corpus("httproute-basic"),
        "--primary-backend",
        "worker-primary",
        "--burst-backend",
        "worker-burst",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), r#"{"burst":0,"primary":100}"#);

    let (code, _, err) = burst(&[
        "httproute",
        "get-weights",
        "-f",
        &corpus("err-httproute-both-zero"),
        "--primary-backend",
        "worker-primary",
        "--burst-backend",
        "worker-burst",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("weight 0"), "{err}");

    let (code, _, err) = burst(&[
        "httproute",
        "get-weights",
        "-f",
        &corpus("httproute-basic"),
        "--primary-backend",
        "worker-primary",
        "--burst-backend",
        "nope",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("`nope`"), "{err}");
}
