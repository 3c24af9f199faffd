//! The objects `burst demo --kubeconfig` applies: the compiled-in CRDs, the seed
//! VirtualService and the seed BurstPolicy measuring this demo's proxy.

use std::collections::BTreeMap;

use anyhow::Context as _;
use burst_core::policy::PolicyFile;
use burst_operator::adapters::ResolvedAuth;
use burst_operator::api::{
    BurstPolicy, BurstPolicySpec, PolicySettings, PrometheusSpec, ScrapeSpec, SourceSpec,
};
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

/// The Istio CRDs this project validates against; the demo installs the VirtualService one.
pub(super) const ISTIO_CRDS: &str = include_str!("../../../../../schemas/istio/crd-all.gen.yaml");
/// The BurstPolicy CRD, as `burstd crd` prints it.
pub(super) const BURSTPOLICY_CRD: &str =
    include_str!("../../../../../deploy/crd/burstpolicies.bursting.dev.yaml");
/// The seed's Istio objects; the demo applies the worker VirtualService.
pub(super) const SEED_ISTIO: &str = include_str!("../../../../../deploy/app/primary/istio.yaml");
/// The seed's BurstPolicy; the demo replaces its source with the local one.
pub(super) const SEED_POLICY: &str =
    include_str!("../../../../../deploy/app/primary/burstpolicy.yaml");

/// The VirtualService CRD's name.
pub(super) const VS_CRD: &str = "virtualservices.networking.istio.io";
/// The BurstPolicy CRD's name.
pub(super) const POLICY_CRD: &str = "burstpolicies.bursting.dev";
/// Field manager of what the demo itself applies (burstd writes as `burstd`).
pub(super) const DEMO_MANAGER: &str = "burst-demo";

/// The seed VirtualService (`worker-virtual-service`) placed in `namespace`.
pub(super) fn seed_virtual_service(namespace: &str) -> anyhow::Result<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(SEED_ISTIO)
        .context("deploy/app/primary/istio.yaml (compiled in) does not parse")?;
    let mut vs = docs
        .into_iter()
        .find(|d| {
            d["kind"] == "VirtualService" && d["metadata"]["name"] == "worker-virtual-service"
        })
        .context("deploy/app/primary/istio.yaml (compiled in) has no worker-virtual-service")?;
    vs["metadata"]["namespace"] = json!(namespace);
    Ok(vs)
}

/// The seed BurstPolicy placed in `namespace`, measuring with `source`, deciding with `policy`.
pub(super) fn seed_policy(
    namespace: &str,
    source: SourceSpec,
    policy: PolicySettings,
) -> anyhow::Result<BurstPolicy> {
    let mut bp: BurstPolicy = serde_saphyr::from_str(SEED_POLICY)
        .context("deploy/app/primary/burstpolicy.yaml (compiled in) does not parse")?;
    bp.metadata.namespace = Some(namespace.to_owned());
    bp.spec.source = source;
    bp.spec.policy = policy;
    bp.status = None;
    Ok(bp)
}

/// The BurstPolicy form of a `burst simulate` policy file: the same model, without
/// `prewarm` (burstd pre-warms a burst Deployment through `spec.prewarm`, which the demo's
/// local workers do not have; the in-process controller pre-warms them instead).
pub fn policy_settings(file: &PolicyFile) -> PolicySettings {
    let mut policy = file.policy.clone();
    if policy.prewarm.take().is_some() {
        tracing::warn!(
            "--kubeconfig: the policy file's `prewarm` is not used (no burst Deployment to scale)"
        );
    }
    PolicySettings {
        policy,
        run: file.run,
    }
}

/// The demo's metric source as a BurstPolicy source: Prometheus with the seed's variables,
/// or a direct scrape of the proxy's `/metrics` with the seed's labels.
pub fn source_spec(prometheus_url: Option<&str>, metrics: &url::Url) -> SourceSpec {
    let seed_labels = [
        ("reporter", "source"),
        ("source_workload", "frontend-deployment"),
    ];
    match prometheus_url {
        Some(url) => {
            let mut variables: BTreeMap<String, String> = seed_labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            variables.insert("service".into(), "worker-service".into());
            variables.insert("namespace".into(), "default".into());
            SourceSpec {
                prometheus: Some(PrometheusSpec {
                    url: url.to_owned(),
                    variables,
                    ..PrometheusSpec::default()
                }),
                ..SourceSpec::default()
            }
        }
        None => {
            let mut matchers: BTreeMap<String, String> = seed_labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            matchers.insert(
                "destination_service".into(),
                "worker-service.default.svc.cluster.local".into(),
            );
            SourceSpec {
                prometheus: None,
                scrape: Some(ScrapeSpec {
                    targets: vec![metrics.to_string()],
                    metric: "istio_requests_total".into(),
                    matchers,
                    ..ScrapeSpec::default()
                }),
                ..SourceSpec::default()
            }
        }
    }
}

/// How burstd will describe the source of `spec` (the same source it builds).
pub fn describe_source(spec: &BurstPolicySpec) -> anyhow::Result<String> {
    let policy = spec.validate()?;
    let source = spec
        .source
        .to_config(&policy, &ResolvedAuth::default())?
        .build(&burst_prom::HttpClients::new())?;
    Ok(source.describe())
}

/// The VirtualService API resource (networking.istio.io/v1).
pub(super) fn vs_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
        "virtualservices",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use burst_core::Split;
    use burst_istio::VsTarget;

    #[test]
    fn policy_files_become_the_same_policy_in_a_burstpolicy() {
        for yaml in [
            "",
            "high: 15\nlow: 10\nwindow: 2s\ntick: 500ms\n",
            "mode: overflow\ncapacity: 40\nhigh: 15\nlow: 10\nwindow_up: 2s\nwindow_down: 30s\ncooldown: 30s\non_missing: primary\n",
        ] {
            let file = PolicyFile::from_yaml(yaml).unwrap();
            let bp = seed_policy(
                "ns",
                source_spec(
                    None,
                    &url::Url::parse("http://127.0.0.1:9/metrics").unwrap(),
                ),
                policy_settings(&file),
            )
            .unwrap();
            let back = bp.spec.validate().unwrap();
            assert_eq!(back, file.policy, "{yaml}");
            assert_eq!(bp.spec.policy.run, file.run, "{yaml}");
        }
    }

    #[test]
    fn seed_objects_land_in_the_namespace_and_keep_the_seed_target() {
        let vs = seed_virtual_service("demo-1").unwrap();
        assert_eq!(vs["metadata"]["namespace"], "demo-1");
        assert_eq!(VsTarget::default().read(&vs).unwrap(), Split::ALL_PRIMARY);
        let metrics = url::Url::parse("http://127.0.0.1:9/metrics").unwrap();
        let bp = seed_policy(
            "demo-1",
            source_spec(None, &metrics),
            PolicySettings::default(),
        )
        .unwrap();
        assert_eq!(bp.metadata.namespace.as_deref(), Some("demo-1"));
        assert_eq!(bp.spec.target.name, "worker-virtual-service");
        let scrape = bp.spec.source.scrape.as_ref().unwrap();
        assert_eq!(scrape.targets, [metrics.to_string()]);
        assert_eq!(scrape.matchers["source_workload"], "frontend-deployment");
        let d = describe_source(&bp.spec).unwrap();
        assert!(
            d.contains("istio_requests_total") && d.contains("127.0.0.1:9"),
            "{d}"
        );
        let p = source_spec(Some("http://127.0.0.1:9090"), &metrics);
        assert_eq!(p.prometheus.unwrap().variables["service"], "worker-service");
    }

    #[test]
    fn compiled_in_crds_hold_both_definitions() {
        for (source, name) in [(ISTIO_CRDS, VS_CRD), (BURSTPOLICY_CRD, POLICY_CRD)] {
            let needle = format!("name: {name}\n");
            let doc = source
                .split("\n---")
                .find(|d| d.contains(&needle) && d.contains("kind: CustomResourceDefinition"))
                .unwrap();
            let v: Value = serde_saphyr::from_str(doc).unwrap();
            assert_eq!(v["metadata"]["name"], name);
        }
    }
}
