//! The BurstPolicy CRD on a real kube-apiserver, as a user meets it: the server accepts
//! the generated CRD without warnings, refuses bad policies with the field and the reason,
//! keeps spec and status apart, shows the printer columns, and stores the Events burstd
//! records about a policy.

#![allow(clippy::unwrap_used)]

mod kube_env;

use std::collections::BTreeSet;

use burst_operator::api::{PolicySettings, StatusMode};
use burst_testkit::kube::ControlPlane;
use http::Method;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube_env::{Env, VS, eventually};
use serde_json::{Value, json};

const CRD_FILE: &str = "deploy/crd/burstpolicies.bursting.dev.yaml";
const CRDS_PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

/// String formats kube-apiserver v1.36 knows (k8s.io/apiextensions-apiserver
/// pkg/apiserver/validation/formats.go), `-` removed as the server normalizes them.
const STRING_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "k8sshortname",
    "k8slongname",
];

/// Formats in `schema` that kube-apiserver does not know, as `path: type/format`, by the
/// server's own rule: integers take int32/int64, numbers float/double, strings the list
/// above, other types none. `seen` counts every format found.
fn unknown_formats(schema: &Value, path: &str, seen: &mut usize, out: &mut Vec<String>) {
    match schema {
        Value::Object(m) => {
            if let Some(Value::String(format)) = m.get("format") {
                *seen += 1;
                let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
                let known = match ty {
                    "" | "string" => STRING_FORMATS.contains(&format.replace('-', "").as_str()),
                    "integer" => format == "int32" || format == "int64",
                    "number" => format == "float" || format == "double",
                    _ => false,
                };
                if !known {
                    out.push(format!("{path}: {ty}/{format}"));
                }
            }
            for (k, v) in m {
                unknown_formats(v, &format!("{path}.{k}"), seen, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                unknown_formats(v, &format!("{path}[{i}]"), seen, out);
            }
        }
        _ => {}
    }
}

/// The server's answer to a raw request: status, `Warning` headers, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    warnings: Vec<String>,
    body: Value,
}

/// Sends one request through `client` (authentication and TLS as configured), with the
/// `Accept` header given, and keeps what kube's typed API hides: the `Warning` headers.
async fn send(
    client: &kube::Client,
    method: Method,
    path: &str,
    accept: &str,
    body: Option<(&str, &Value)>,
) -> Answer {
    let mut b = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::ACCEPT, accept);
    let mut bytes = Vec::new();
    if let Some((content_type, v)) = body {
        b = b.header(http::header::CONTENT_TYPE, content_type);
        bytes = serde_json::to_vec(v).unwrap();
    }
    let res = client
        .send(b.body(kube::client::Body::from(bytes)).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let warnings = res
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let bytes = res.into_body().collect_bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        warnings,
        body,
    }
}

const JSON: &str = "application/json";

/// The generated CRD with its group renamed, so it can be created afresh (the server warns
/// about unknown formats on create, and on update only about new ones).
fn crd_copy(group: &str) -> Value {
    let mut crd = serde_json::to_value(burst_operator::api::crd()).unwrap();
    crd["metadata"] = json!({"name": format!("burstpolicies.{group}")});
    crd["spec"]["group"] = json!(group);
    crd
}

#[test]
fn the_crd_schema_uses_only_formats_kubernetes_knows() {
    let crd = serde_json::to_value(burst_operator::api::crd()).unwrap();
    let (mut seen, mut unknown) = (0, Vec::new());
    unknown_formats(&crd, "crd", &mut seen, &mut unknown);
    assert!(
        unknown.is_empty(),
        "formats kube-apiserver ignores: {unknown:?}"
    );
    assert!(seen > 10, "only {seen} formats: the walk missed the schema");
    // The committed file is the same CRD (crd_file.rs checks it byte for byte).
    let file = burst_testkit::kube::workspace_root().join(CRD_FILE);
    let text = std::fs::read_to_string(file).unwrap();
    let from_file: Value = serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .find(|d| !d.is_null())
        .unwrap();
    let (mut seen_file, mut unknown_file) = (0, Vec::new());
    unknown_formats(&from_file, "file", &mut seen_file, &mut unknown_file);
    assert!(unknown_file.is_empty(), "{unknown_file:?}");
    assert_eq!(seen_file, seen);
    // The check is the server's: what schemars writes for a u16 is refused.
    let (mut n, mut bad) = (0, Vec::new());
    unknown_formats(
        &json!({"properties": {"port": {"type": "integer", "format": "uint16"},
                               "at": {"type": "string", "format": "date-time"},
                               "ratio": {"type": "number", "format": "double"}}}),
        "x",
        &mut n,
        &mut bad,
    );
    assert_eq!(bad, ["x.properties.port: integer/uint16"]);
    assert_eq!(n, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_accepts_the_crd_without_warnings() {
    let cp = ControlPlane::shared().unwrap();
    // The committed file installs and becomes Established (the server checks that the
    // schema is structural, its defaults and its printer columns).
    let names = cp.install_crd_files(&[CRD_FILE]).await.unwrap();
    assert_eq!(names, ["burstpolicies.bursting.dev"]);
    let admin = cp.admin_client().await.unwrap();

    // Created afresh, the generated CRD draws no warning at all.
    let fresh = crd_copy("fresh.bursting.dev");
    let answer = send(&admin, Method::POST, CRDS_PATH, JSON, Some((JSON, &fresh))).await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    assert!(answer.warnings.is_empty(), "{:?}", answer.warnings);
    // The server kept the port's format: it knows int32.
    let port = &answer.body["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["target"]["properties"]["backends"]["properties"]["primary"]["properties"]["port"];
    assert_eq!(port["format"], "int32", "{port}");
    assert_eq!(
        (port["minimum"].as_f64(), port["maximum"].as_f64()),
        (Some(1.0), Some(65535.0))
    );

    // What the CRD had before (schemars' `uint16`) is what the server warns about: the
    // check above is not blind.
    let mut old = crd_copy("uint16.bursting.dev");
    old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["target"]
        ["properties"]["backends"]["properties"]["primary"]["properties"]["port"]["format"] =
        json!("uint16");
    let answer = send(&admin, Method::POST, CRDS_PATH, JSON, Some((JSON, &old))).await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    assert_eq!(answer.warnings.len(), 1, "{:?}", answer.warnings);
    assert!(
        answer.warnings[0].contains(r#"unrecognized format \"uint16\""#),
        "{:?}",
        answer.warnings
    );

    for name in [
        "burstpolicies.fresh.bursting.dev",
        "burstpolicies.uint16.bursting.dev",
    ] {
        let answer = send(
            &admin,
            Method::DELETE,
            &format!("{CRDS_PATH}/{name}"),
            JSON,
            None,
        )
        .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
}

fn valid_spec() -> Value {
    json!({
        "source": {"scrape": {"targets": ["http://127.0.0.1:9/metrics"], "metric": "demand_rps"}},
        "target": {"name": VS},
    })
}

fn policy_object(ns: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "bursting.dev/v1alpha1", "kind": "BurstPolicy",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    })
}

fn policies_path(ns: &str) -> String {
    format!("/apis/bursting.dev/v1alpha1/namespaces/{ns}/burstpolicies")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policies_are_refused_with_the_field_and_the_reason() {
    let env = Env::new("crd-bad").await;
    let path = policies_path(&env.ns);
    // (merged into the valid spec, the field the server names, what it says about it)
    let cases: &[(Value, &str, &str)] = &[
        (
            json!({"policy": {"high": "lots"}}),
            "spec.policy.high",
            r#"spec.policy.high: Invalid value: "string": spec.policy.high in body must be of type number: "string""#,
        ),
        (
            json!({"dryRun": "yes"}),
            "spec.dryRun",
            "spec.dryRun in body must be of type boolean",
        ),
        (
            json!({"target": {"name": null}}),
            "spec.target.name",
            "spec.target.name: Required value",
        ),
        (
            json!({"source": {"scrape": {"metric": null}}}),
            "spec.source.scrape.metric",
            "spec.source.scrape.metric: Required value",
        ),
        (
            json!({"policy": {"burstWeight": 0}}),
            "spec.policy.burstWeight",
            "spec.policy.burstWeight: Invalid value: 0: spec.policy.burstWeight in body should be greater than or equal to 1",
        ),
        (
            json!({"pin": {"burstWeight": 101, "until": "2030-01-01T00:00:00Z"}}),
            "spec.pin.burstWeight",
            "spec.pin.burstWeight: Invalid value: 101: spec.pin.burstWeight in body should be less than or equal to 100",
        ),
        (
            json!({"pin": {"burstWeight": 40, "until": "in an hour"}}),
            "spec.pin.until",
            "spec.pin.until in body must be of type date-time",
        ),
        (
            json!({"pin": {"burstWeight": 40}}),
            "spec.pin.until",
            "spec.pin.until: Required value",
        ),
        (
            json!({"policy": {"step": 101}}),
            "spec.policy.step",
            "spec.policy.step: Invalid value: 101: spec.policy.step in body should be less than or equal to 100",
        ),
        (
            json!({"target": {"kind": "HTTPRoute", "backends": {
                "primary": {"name": "worker-primary", "port": 0},
                "burst": {"name": "worker-burst", "port": 8080}}}}),
            "spec.target.backends.primary.port",
            "spec.target.backends.primary.port: Invalid value: 0: spec.target.backends.primary.port in body should be greater than or equal to 1",
        ),
        (
            json!({"target": {"kind": "HTTPRoute", "backends": {
                "primary": {"name": "worker-primary", "port": 80},
                "burst": {"name": "worker-burst", "port": 70000}}}}),
            "spec.target.backends.burst.port",
            "spec.target.backends.burst.port: Invalid value: 70000: spec.target.backends.burst.port in body should be less than or equal to 65535",
        ),
        (
            json!({"target": {"kind": "Ingress"}}),
            "spec.target.kind",
            r#"spec.target.kind: Unsupported value: "Ingress": supported values: "VirtualService", "HTTPRoute""#,
        ),
        (
            json!({"policy": {"mode": "linear"}}),
            "spec.policy.mode",
            r#"spec.policy.mode: Unsupported value: "linear": supported values: "hysteresis", "overflow""#,
        ),
        (
            json!({"policy": {"onMissing": "nowhere"}}),
            "spec.policy.onMissing",
            r#"spec.policy.onMissing: Unsupported value: "nowhere": supported values: "hold", "primary", "burst""#,
        ),
        (
            json!({"source": {"scrape": {"mode": "histogram"}}}),
            "spec.source.scrape.mode",
            r#"spec.source.scrape.mode: Unsupported value: "histogram": supported values: "counter", "gauge""#,
        ),
        // The CRD's CEL rules and its list keyed by cluster name.
        (
            json!({"source": {"prometheus": {"url": "http://prometheus:9090"}}}),
            "spec.source",
            "spec.source: Invalid value: set exactly one of `prometheus` (a query), `scrape` (targets) and `pods` (a Service's pods)",
        ),
        (
            json!({"source": {"scrape": null}}),
            "spec.source",
            "spec.source: Invalid value: set exactly one of `prometheus` (a query), `scrape` (targets) and `pods` (a Service's pods)",
        ),
        (
            json!({"source": {"pods": {"service": "worker"}}}),
            "spec.source",
            "spec.source: Invalid value: set exactly one of `prometheus` (a query), `scrape` (targets) and `pods` (a Service's pods)",
        ),
        (
            json!({"source": {"scrape": null, "pods": {"service": "worker", "quorum": 1.5}}}),
            "spec.source.pods.quorum",
            "spec.source.pods.quorum: Invalid value: 1.5: spec.source.pods.quorum in body should be less than or equal to 1",
        ),
        (
            json!({"source": {"scrape": null, "pods": {"service": "worker", "quorum": 0}}}),
            "spec.source.pods.quorum",
            "spec.source.pods.quorum: Invalid value: `quorum` is the share of pods that must answer: above 0 and at most 1, e.g. 0.5",
        ),
        (
            json!({"source": {"scrape": null, "pods": {"service": "worker", "port": true}}}),
            "spec.source.pods.port",
            "spec.source.pods.port",
        ),
        (
            json!({"policy": {"high": 5, "low": 10}}),
            "spec.policy.low",
            "spec.policy.low: Invalid value: `low` must be below `high`",
        ),
        // spec.policy is the core's policy model: its CEL rules and its duration pattern.
        (
            json!({"policy": {"low": 20}}),
            "spec.policy.low",
            "spec.policy.low: Invalid value: `low` must be below `high` (defaults: low 10, high 15)",
        ),
        (
            json!({"policy": {"tick": "soon"}}),
            "spec.policy.tick",
            "spec.policy.tick in body should match",
        ),
        (
            json!({"policy": {"cooldown": "1m 30s"}}),
            "spec.policy.cooldown",
            "spec.policy.cooldown in body should match",
        ),
        (
            json!({"policy": {"tick": "0s"}}),
            "spec.policy.tick",
            "spec.policy.tick: Invalid value: `tick` must be longer than 0s",
        ),
        (
            json!({"policy": {"mode": "overflow"}}),
            "spec.policy.capacity",
            "spec.policy.capacity: Invalid value: mode `overflow` needs `capacity`",
        ),
        (
            json!({"policy": {"mode": "overflow", "capacity": 0}}),
            "spec.policy.capacity",
            "spec.policy.capacity: Invalid value: `capacity` must be greater than 0",
        ),
        (
            json!({"policy": {"windowUp": "1m", "windowDown": "10s"}}),
            "spec.policy.windowUp",
            "spec.policy.windowUp: Invalid value: `windowUp` must not be longer than `windowDown`",
        ),
        (
            json!({"policy": {"windowUp": "1m"}}),
            "spec.policy.windowUp",
            "spec.policy.windowUp: Invalid value: `windowUp` must not be longer than `windowDown`",
        ),
        (
            json!({"policy": {"window": "0s"}}),
            "spec.policy.window",
            "spec.policy.window: Invalid value: `window` must be longer than 0s",
        ),
        (
            json!({"policy": {"deadBand": 1.5}}),
            "spec.policy.deadBand",
            "spec.policy.deadBand: Invalid value: `deadBand` must be a fraction in [0, 1)",
        ),
        // The signal keys: capacity from endpoints, fractions, triggers, the burst guard.
        (
            json!({"policy": {"capacityPerEndpoint": 0}}),
            "spec.policy.capacityPerEndpoint",
            "spec.policy.capacityPerEndpoint: Invalid value: `capacityPerEndpoint` must be greater than 0",
        ),
        (
            json!({"policy": {"capacity": 20, "highFraction": 1.0}}),
            "spec.policy.highFraction",
            "spec.policy.highFraction: Invalid value: `highFraction` and `lowFraction` go together",
        ),
        (
            json!({"policy": {"highFraction": 1.0, "lowFraction": 0.5}}),
            "spec.policy.highFraction",
            "spec.policy.highFraction: Invalid value: `highFraction` needs `capacity` or `capacityPerEndpoint`",
        ),
        (
            json!({"policy": {"triggers": {"latencyP99Ms": {"high": 100, "low": 200}}}}),
            "spec.policy.triggers.latencyP99Ms.low",
            "spec.policy.triggers.latencyP99Ms.low: Invalid value: `triggers.latencyP99Ms.low` must be >= 0 and below its `high`",
        ),
        (
            json!({"policy": {"triggers": {"errorRatio": {"high": 2, "low": 0.1}}}}),
            "spec.policy.triggers.errorRatio.low",
            "`triggers.errorRatio` needs 0 <= low < high <= 1",
        ),
        (
            json!({"policy": {"triggers": {"errorRatio": {"high": 0.5}}}}),
            "spec.policy.triggers.errorRatio.low",
            "spec.policy.triggers.errorRatio.low: Required value",
        ),
        (
            json!({"policy": {"burstHealth": {"maxErrorRatio": 1.5}}}),
            "spec.policy.burstHealth.maxErrorRatio",
            "`burstHealth.maxErrorRatio` must be a ratio from 0 to 1",
        ),
        (
            json!({"policy": {"burstHealth": {"onUnhealthy": "burst"}}}),
            "spec.policy.burstHealth.onUnhealthy",
            r#"spec.policy.burstHealth.onUnhealthy: Unsupported value: "burst": supported values: "primary", "hold""#,
        ),
        (
            json!({"policy": {"onMissing": "primary", "staleAfter": "0s"}}),
            "spec.policy.staleAfter",
            "spec.policy.staleAfter: Invalid value: `staleAfter` must be longer than 0s",
        ),
        (
            json!({"target": {"kind": "HTTPRoute"}}),
            "spec.target.backends",
            "spec.target.backends: Invalid value: an HTTPRoute target needs `backends: {primary: {name: ...}, burst: {name: ...}}`",
        ),
        (
            json!({"target": {"backends": {"primary": {"name": "a"}, "burst": {"name": "b"}}}}),
            "spec.target.backends",
            "spec.target.backends: Invalid value: `backends` is for HTTPRoute targets; a VirtualService names `subsets`",
        ),
        (
            json!({"target": {"kind": "HTTPRoute", "host": "worker-service",
                "backends": {"primary": {"name": "a"}, "burst": {"name": "b"}}}}),
            "spec.target.subsets",
            "spec.target.subsets: Invalid value: `subsets` and `host` are for VirtualService targets; an HTTPRoute names `backends`",
        ),
        (
            json!({"target": {"subsets": {"primary": "v1", "burst": "v1"}}}),
            "spec.target.subsets",
            "spec.target.subsets: Invalid value: `primary` and `burst` must be two different subsets",
        ),
        (
            json!({"target": {"clusters": [
                {"name": "west", "kubeconfigSecretRef": {"name": "a", "key": "config"}},
                {"name": "west", "kubeconfigSecretRef": {"name": "b", "key": "config"}}]}}),
            "spec.target.clusters[1]",
            r#"spec.target.clusters[1]: Duplicate value: {"name":"west"}"#,
        ),
        (
            json!({"target": {"clusters": [
                {"name": "local", "kubeconfigSecretRef": {"name": "a", "key": "config"}}]}}),
            "spec.target.clusters",
            "spec.target.clusters: Invalid value: `local` is the cluster burstd runs in; give the other clusters other names",
        ),
    ];
    for (i, (change, field, says)) in cases.iter().enumerate() {
        let mut spec = valid_spec();
        json_patch::merge(&mut spec, change);
        let name = format!("bad-{i}");
        let answer = send(
            &env.admin,
            Method::POST,
            &path,
            JSON,
            Some((JSON, &policy_object(&env.ns, &name, spec))),
        )
        .await;
        let message = answer.body["message"].as_str().unwrap_or_default();
        assert_eq!(answer.status, 422, "{change}: {:?}", answer.body);
        assert_eq!(answer.body["reason"], "Invalid", "{change}");
        assert!(
            message.starts_with(&format!(
                r#"BurstPolicy.bursting.dev "{name}" is invalid: "#
            )),
            "{message}"
        );
        assert!(
            message.contains(says),
            "{change}: {message}\nwanted: {says}"
        );
        let fields: Vec<&str> = answer.body["details"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["field"].as_str())
            .collect();
        assert!(fields.contains(field), "{change}: causes name {fields:?}");
    }
    // Everything wrong at once: each field is named, a user fixes them in one go.
    let everything = json!({
        "source": {"scrape": {"targets": ["http://x"], "mode": "histogram"}},
        "policy": {"burstWeight": 0, "mode": "linear"},
        "target": {"kind": "Ingress"},
    });
    let answer = send(
        &env.admin,
        Method::POST,
        &path,
        JSON,
        Some((JSON, &policy_object(&env.ns, "all-bad", everything))),
    )
    .await;
    assert_eq!(answer.status, 422);
    let fields: BTreeSet<&str> = answer.body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    for f in [
        "spec.source.scrape.metric",
        "spec.source.scrape.mode",
        "spec.policy.burstWeight",
        "spec.policy.mode",
        "spec.target.kind",
        "spec.target.name",
    ] {
        assert!(fields.contains(f), "{f} not in {fields:?}");
    }
    // None of them was stored; the valid spec the cases start from is.
    let list = send(&env.admin, Method::GET, &path, JSON, None).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        0,
        "{:?}",
        list.body
    );
    let answer = send(
        &env.admin,
        Method::POST,
        &path,
        JSON,
        Some((JSON, &policy_object(&env.ns, "good", valid_spec()))),
    )
    .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    // The server fills the schema's defaults.
    assert_eq!(answer.body["spec"]["target"]["kind"], "VirtualService");
    assert_eq!(answer.body["spec"]["dryRun"], false);
    assert_eq!(answer.body["spec"]["paused"], false);
    // Every signal key at once is accepted; the server fills the guard's defaults.
    let mut signals = valid_spec();
    signals["policy"] = json!({
        "mode": "overflow", "capacityPerEndpoint": 10, "burstCapacityPerEndpoint": 5,
        "triggers": {"latencyP99Ms": {"high": 250, "low": 150},
                     "errorRatio": {"high": 0.05, "low": 0.01}},
        "burstHealth": {"maxErrorRatio": 0.2},
    });
    let answer = send(
        &env.admin,
        Method::POST,
        &path,
        JSON,
        Some((JSON, &policy_object(&env.ns, "signals", signals))),
    )
    .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    let health = &answer.body["spec"]["policy"]["burstHealth"];
    assert_eq!(health["minReady"], 1);
    assert_eq!(health["onUnhealthy"], "primary");
    assert_eq!(health["healthyAfter"], "30s");
    let mut fractions = valid_spec();
    fractions["policy"] = json!({"capacity": 40, "highFraction": 1.0, "lowFraction": 0.66});
    let answer = send(
        &env.admin,
        Method::POST,
        &path,
        JSON,
        Some((JSON, &policy_object(&env.ns, "fractions", fractions))),
    )
    .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    // A pod source with a named port (int-or-string) is stored as written.
    let mut pods = valid_spec();
    pods["source"] = json!({"pods": {"service": "worker", "port": "http-envoy", "quorum": 1}});
    let answer = send(
        &env.admin,
        Method::POST,
        &path,
        JSON,
        Some((JSON, &policy_object(&env.ns, "pods", pods))),
    )
    .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    assert_eq!(answer.body["spec"]["source"]["pods"]["port"], "http-envoy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_refused_when_strict_and_dropped_with_a_warning_otherwise() {
    let env = Env::new("crd-unknown").await;
    let path = policies_path(&env.ns);
    let mut spec = valid_spec();
    spec["policy"] = json!({"hihg": 40});
    let typo = policy_object(&env.ns, "typo", spec);

    // `kubectl apply` asks for strict validation: the typo is an error naming the field.
    let answer = send(
        &env.admin,
        Method::POST,
        &format!("{path}?fieldValidation=Strict"),
        JSON,
        Some((JSON, &typo)),
    )
    .await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    let message = answer.body["message"].as_str().unwrap();
    assert!(
        message.contains(r#"unknown field "spec.policy.hihg""#),
        "{message}"
    );

    // Without it (the server's default, `Warn`) the field is dropped and the answer warns.
    let answer = send(&env.admin, Method::POST, &path, JSON, Some((JSON, &typo))).await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    assert!(
        answer
            .warnings
            .iter()
            .any(|w| w.contains(r#"unknown field \"spec.policy.hihg\""#)),
        "{:?}",
        answer.warnings
    );
    // Pruned, and then every default of the policy model filled in.
    let stored = &answer.body["spec"]["policy"];
    assert!(stored.get("hihg").is_none(), "pruned: {stored}");
    assert_eq!(
        PolicySettings::from_value(stored).unwrap(),
        PolicySettings::default(),
        "{stored}"
    );
    assert_eq!(stored["cooldown"], "0s", "defaults filled: {stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_and_status_are_written_through_their_own_endpoints() {
    let env = Env::new("crd-subresource").await;
    let api = env.policies();
    let path = policies_path(&env.ns);
    let answer = send(
        &env.admin,
        Method::POST,
        &path,
        JSON,
        Some((
            JSON,
            &json!({
                "apiVersion": "bursting.dev/v1alpha1", "kind": "BurstPolicy",
                "metadata": {"name": "w", "namespace": env.ns}, "spec": valid_spec(),
                "status": {"mode": "Burst", "burstWeight": 100},
            }),
        )),
    )
    .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    assert_eq!(answer.body["metadata"]["generation"], 1);
    assert!(
        answer.body.get("status").is_none(),
        "status set on create: {:?}",
        answer.body
    );

    // A write of the main resource changes spec (a new generation), never status.
    let p = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}, "status": {"mode": "Burst"}})),
        )
        .await
        .unwrap();
    assert!(p.spec.paused);
    assert_eq!(p.status, None);
    assert_eq!(p.metadata.generation, Some(2));

    // A write of /status changes status, never spec, and is no new generation.
    let p = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"paused": false}, "status": {"mode": "Burst", "burstWeight": 100}}),
            ),
        )
        .await
        .unwrap();
    assert!(p.spec.paused, "spec changed through /status");
    let status = p.status.unwrap();
    assert_eq!(
        (status.mode, status.burst_weight),
        (Some(StatusMode::Burst), Some(100))
    );
    assert_eq!(p.metadata.generation, Some(2));

    // The status is checked against the schema too.
    let answer = send(
        &env.admin,
        Method::PATCH,
        &format!("{path}/w/status"),
        JSON,
        Some((
            "application/merge-patch+json",
            &json!({"status": {"mode": "Sideways", "burstWeight": "all"}}),
        )),
    )
    .await;
    assert_eq!(answer.status, 422, "{:?}", answer.body);
    let message = answer.body["message"].as_str().unwrap();
    assert!(
        message.contains(r#"status.mode: Unsupported value: "Sideways""#),
        "{message}"
    );
    assert!(
        message.contains(
            r#"status.burstWeight: Invalid value: "string": burstWeight in body must be of type integer"#
        ),
        "{message}"
    );
    assert_eq!(
        api.get("w").await.unwrap().status.unwrap().mode,
        Some(StatusMode::Burst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observed_generation_follows_the_spec_while_the_operator_runs() {
    let (env, demand, op) = Env::with_operator("crd-generation").await;
    let api = env.policies();
    env.create(&env.policy("worker", &demand, json!({}))).await;
    let at_generation = |g: i64| {
        let env = &env;
        async move {
            env.status("worker").await.is_some_and(|s| {
                s.observed_generation == Some(g)
                    && !s.conditions.is_empty()
                    && s.conditions
                        .iter()
                        .all(|c| c.observed_generation == Some(g))
            })
        }
    };
    eventually("status of generation 1", || at_generation(1)).await;
    eventually("bursting", || async { env.burst_weight().await == 100 }).await;

    let p = env.raise_thresholds("worker").await;
    assert_eq!(p.metadata.generation, Some(2));
    eventually("status of generation 2", || at_generation(2)).await;
    eventually("back to primary", || async {
        env.burst_weight().await == 0
    })
    .await;

    // Labels are metadata: no new generation, the status stays at 2; burstd's own status
    // writes never make a new generation either.
    api.patch(
        "worker",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "shop"}}})),
    )
    .await
    .unwrap();
    // A new rate is a status write (the rate stays below the new thresholds).
    demand.set(25.0);
    eventually("status with the new rate", || async {
        env.status("worker")
            .await
            .is_some_and(|s| s.observed_rps == Some(25.0))
    })
    .await;
    let p = api.get("worker").await.unwrap();
    assert_eq!(p.metadata.generation, Some(2));
    assert_eq!(p.status.unwrap().observed_generation, Some(2));
    op.stop_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printer_columns_show_what_the_operator_reports() {
    let (env, demand, op) = Env::with_operator("crd-columns").await;
    env.create(&env.policy("worker", &demand, json!({}))).await;
    env.create(&env.policy("idle", &demand, json!({"paused": true})))
        .await;
    eventually("reconciled", || async {
        let worker = env.status("worker").await;
        let idle = env.status("idle").await;
        worker.is_some_and(|s| s.mode == Some(StatusMode::Burst) && s.observed_rps == Some(20.0))
            && idle.is_some_and(|s| s.mode == Some(StatusMode::Paused))
    })
    .await;

    // What `kubectl get burstpolicies` asks for.
    let answer = send(
        &env.admin,
        Method::GET,
        &policies_path(&env.ns),
        "application/json;as=Table;v=v1;g=meta.k8s.io",
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let table = answer.body;
    assert_eq!(table["kind"], "Table", "{table}");
    let columns: Vec<(&str, &str)> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Name", "string"),
            ("Target", "string"),
            ("Mode", "string"),
            ("Burst %", "integer"),
            ("Observed RPS", "number"),
            ("Age", "date"),
        ]
    );
    let rows: Vec<&Vec<Value>> = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"].as_array().unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no row {name} in {table}"))
    };
    let worker = row("worker");
    assert_eq!(worker[1], VS);
    assert_eq!(worker[2], "Burst");
    assert_eq!(worker[3], 100);
    assert_eq!(worker[4].as_f64(), Some(20.0));
    let age = worker[5].as_str().unwrap();
    assert!(
        age.ends_with('s') && age.trim_end_matches('s').parse::<u32>().is_ok(),
        "Age is a short duration: {age}"
    );
    let idle = row("idle");
    assert_eq!(idle[1], VS);
    assert_eq!(idle[2], "Paused");
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_about_a_policy_are_stored_where_kubectl_describe_finds_them() {
    let (env, demand, op) = Env::with_operator("crd-events").await;
    env.create(&env.policy("worker", &demand, json!({}))).await;
    // The API server lets this through (a name is a string); burstd refuses it.
    env.create(&env.policy(
        "invalid",
        &demand,
        json!({"target": {"name": "not/a-name"}}),
    ))
    .await;
    eventually("both events", || async {
        let reasons = env.event_reasons().await;
        reasons.iter().any(|r| r == "SplitChanged") && reasons.iter().any(|r| r == "InvalidSpec")
    })
    .await;
    let worker = env.policies().get("worker").await.unwrap();
    let invalid = env.policies().get("invalid").await.unwrap();
    let events = env.events().await;

    let split = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("SplitChanged"))
        .unwrap();
    let regarding = split.regarding.as_ref().unwrap();
    assert_eq!(
        regarding.api_version.as_deref(),
        Some("bursting.dev/v1alpha1")
    );
    assert_eq!(regarding.kind.as_deref(), Some("BurstPolicy"));
    assert_eq!(regarding.name.as_deref(), Some("worker"));
    assert_eq!(regarding.namespace.as_deref(), Some(env.ns.as_str()));
    assert_eq!(regarding.uid, worker.metadata.uid);
    assert_eq!(split.type_.as_deref(), Some("Normal"));
    assert_eq!(split.action.as_deref(), Some("ApplySplit"));
    assert_eq!(
        split.reporting_controller.as_deref(),
        Some(burst_operator::events::REPORTING_CONTROLLER)
    );
    assert_eq!(split.reporting_instance.as_deref(), Some("a"));
    assert!(split.event_time.is_some());
    let note = split.note.as_deref().unwrap();
    assert!(note.contains("->") && note.contains("above_high"), "{note}");

    let refused = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("InvalidSpec"))
        .unwrap();
    assert_eq!(refused.type_.as_deref(), Some("Warning"));
    assert_eq!(
        refused.regarding.as_ref().unwrap().uid,
        invalid.metadata.uid
    );
    let note = refused.note.as_deref().unwrap();
    assert!(
        note.contains("spec.target.name") && note.contains("not/a-name"),
        "{note}"
    );

    // `kubectl describe burstpolicy worker` lists core/v1 Events by involved object.
    let core: Api<CoreEvent> = Api::namespaced(env.admin.clone(), &env.ns);
    let selector = format!(
        "involvedObject.kind=BurstPolicy,involvedObject.name=worker,involvedObject.uid={}",
        worker.metadata.uid.as_deref().unwrap()
    );
    let described = core
        .list(&ListParams::default().fields(&selector))
        .await
        .unwrap()
        .items;
    assert!(!described.is_empty());
    assert!(
        described
            .iter()
            .all(|e| e.involved_object.name.as_deref() == Some("worker")),
        "{described:?}"
    );
    let shown = described
        .iter()
        .find(|e| e.reason.as_deref() == Some("SplitChanged"))
        .unwrap();
    assert_eq!(shown.message, split.note);
    op.stop_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_policy_is_accepted_as_written() {
    let env = Env::new("crd-example").await;
    let path = burst_testkit::kube::workspace_root().join("deploy/app/primary/burstpolicy.yaml");
    let mut example: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    example["metadata"]["namespace"] = json!(env.ns);
    // What `kubectl apply --dry-run=server` checks: schema, CEL rules, unknown fields.
    let answer = send(
        &env.admin,
        Method::POST,
        &format!(
            "{}?dryRun=All&fieldValidation=Strict",
            policies_path(&env.ns)
        ),
        JSON,
        Some((JSON, &example)),
    )
    .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    assert!(answer.warnings.is_empty(), "{:?}", answer.warnings);
    // Stored as written, with the model's defaults filled in for the keys it leaves out.
    let stored = &answer.body["spec"]["policy"];
    for (key, value) in example["spec"]["policy"].as_object().unwrap() {
        assert_eq!(&stored[key], value, "{key}");
    }
    assert_eq!(
        PolicySettings::from_value(stored).unwrap(),
        PolicySettings::from_value(&example["spec"]["policy"]).unwrap()
    );
    assert_eq!(stored["staleAfter"], "1m", "defaults filled: {stored}");
    // And burstd's own checks pass too.
    let policy: burst_operator::api::BurstPolicy = serde_json::from_value(answer.body).unwrap();
    policy.spec.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_sources_are_checked_by_the_server() {
    let env = Env::new("crd-signals").await;
    let path = policies_path(&env.ns);
    let cases: &[(Value, &str, &str)] = &[
        (
            json!({"source": {"readyEndpoints": {}}}),
            "spec.source.readyEndpoints",
            "name the `primary` and/or the `burst` Service whose ready endpoints are counted",
        ),
        (
            json!({"source": {"readyEndpoints": {"primary": {"service": ""}}}}),
            "spec.source.readyEndpoints.primary.service",
            "`service` is the name of a Service",
        ),
        (
            json!({"source": {"scrape": {"signals": {"latencyHistogram": "h_bucket"}}}}),
            "spec.source.scrape.signals.latencyHistogram",
            "`latencyHistogram` is the histogram's name without `_bucket`",
        ),
        (
            json!({"source": {"scrape": {"signals": {"latencyUnit": "minutes"}}}}),
            "spec.source.scrape.signals.latencyUnit",
            r#"supported values: "ms", "s""#,
        ),
    ];
    for (i, (change, field, says)) in cases.iter().enumerate() {
        let mut spec = valid_spec();
        json_patch::merge(&mut spec, change);
        let name = format!("bad-signals-{i}");
        let answer = send(
            &env.admin,
            Method::POST,
            &path,
            JSON,
            Some((JSON, &policy_object(&env.ns, &name, spec))),
        )
        .await;
        let message = answer.body["message"].as_str().unwrap_or_default();
        assert_eq!(answer.status, 422, "{change}: {:?}", answer.body);
        assert!(
            message.contains(says),
            "{change}: {message}\nwanted: {says}"
        );
        let fields: Vec<&str> = answer.body["details"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["field"].as_str())
            .collect();
        assert!(fields.contains(field), "{change}: causes name {fields:?}");
    }
    // Every new key at once is stored as written.
    let spec = json!({
        "source": {
            "prometheus": {
                "url": "http://prometheus:9090",
                "signals": {"latencyP99": "default", "errorRatio": "default",
                            "primaryReady": "default", "burstReady": "default",
                            "burstErrorRatio": "sum(rate(x[{{window}}]))"},
            },
            "readyEndpoints": {"primary": {"service": "worker"},
                               "burst": {"service": "worker-burst", "namespace": "burst"}},
        },
        "target": {"name": VS},
    });
    let answer = send(
        &env.admin,
        Method::POST,
        &path,
        JSON,
        Some((JSON, &policy_object(&env.ns, "signals", spec.clone()))),
    )
    .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    assert_eq!(answer.body["spec"]["source"], spec["source"]);
    let mut pods = valid_spec();
    pods["source"] = json!({"pods": {"service": "worker", "signals": {
        "latencyHistogram": "istio_request_duration_milliseconds", "latencyUnit": "ms",
        "errorRatio": true, "codeLabel": "response_code"}}});
    let answer = send(
        &env.admin,
        Method::POST,
        &path,
        JSON,
        Some((JSON, &policy_object(&env.ns, "pod-signals", pods.clone()))),
    )
    .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    assert_eq!(answer.body["spec"]["source"], pods["source"]);
}
