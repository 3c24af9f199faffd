//! The objects `burst demo --kubeconfig` applies: the compiled-in CRDs, the seed
//! VirtualService, the seed BurstPolicy measuring this demo's proxy and, when the policy
//! file pre-warms, the burst worker's Deployment that burstd's pre-warm scales.

use std::collections::BTreeMap;

use anyhow::Context as _;
use burst_core::policy::PolicyFile;
use burst_operator::adapters::ResolvedAuth;
use burst_operator::api::{
    BurstPolicy, BurstPolicySpec, KubernetesScalerSpec, PolicySettings, PrewarmSpec,
    PrometheusSpec, ScalerSpec, ScrapeSpec, SourceSpec,
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
/// The seed's burst cluster objects; the demo applies the worker Deployment's form.
pub(super) const SEED_BURST: &str = include_str!("../../../../../deploy/app/burst/hashr.yaml");
/// The seed's BurstPolicy; the demo replaces its source with the local one.
pub(super) const SEED_POLICY: &str =
    include_str!("../../../../../deploy/app/primary/burstpolicy.yaml");

/// The VirtualService CRD's name.
pub(super) const VS_CRD: &str = "virtualservices.networking.istio.io";
/// The BurstPolicy CRD's name.
pub(super) const POLICY_CRD: &str = "burstpolicies.bursting.dev";
/// Field manager of what the demo itself applies (burstd writes as `burstd`).
pub(super) const DEMO_MANAGER: &str = "burst-demo";
/// The burst worker's Deployment in the demo's namespace, which burstd's pre-warm scales.
pub(super) const BURST_DEPLOYMENT: &str = "bursty-worker";
/// Its replicas while pre-warmed (at rest: 0, the burst side scaled to zero).
pub(super) const PREWARM_REPLICAS: i32 = 1;

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

/// The seed BurstPolicy placed in `namespace`, measuring with `source`, deciding with
/// `policy`. A policy that pre-warms (`prewarm` in the file) gets `spec.prewarm`: scale the
/// Deployment [`BURST_DEPLOYMENT`] of the namespace to [`PREWARM_REPLICAS`].
pub(super) fn seed_policy(
    namespace: &str,
    source: SourceSpec,
    policy: PolicySettings,
) -> anyhow::Result<BurstPolicy> {
    let mut bp: BurstPolicy = serde_saphyr::from_str(SEED_POLICY)
        .context("deploy/app/primary/burstpolicy.yaml (compiled in) does not parse")?;
    bp.metadata.namespace = Some(namespace.to_owned());
    bp.spec.source = source;
    bp.spec.prewarm = policy.policy.prewarm.is_some().then(|| PrewarmSpec {
        scaler: ScalerSpec {
            kubernetes: Some(KubernetesScalerSpec {
                namespace: None,
                deployment: BURST_DEPLOYMENT.to_owned(),
                hpa: None,
                replicas: PREWARM_REPLICAS,
                kubeconfig_secret_ref: None,
            }),
        },
    });
    bp.spec.policy = policy;
    bp.status = None;
    Ok(bp)
}

/// The BurstPolicy form of a `burst simulate` policy file: the same model. Its `prewarm`
/// (the timing) goes to `spec.policy.prewarm`; [`seed_policy`] adds the scaler.
pub fn policy_settings(file: &PolicyFile) -> PolicySettings {
    PolicySettings {
        policy: file.policy.clone(),
        run: file.run,
    }
}

/// The burst worker's Deployment (the seed's burst `worker-deployment`, as
/// [`BURST_DEPLOYMENT`]) in `namespace`, scaled to zero: the burst side at rest. Nothing
/// runs its pods (the demo's burst worker is a local process); burstd's pre-warm raises
/// its replicas and the demo's watch of it warms the local worker.
pub(super) fn burst_deployment(namespace: &str) -> anyhow::Result<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(SEED_BURST)
        .context("deploy/app/burst/hashr.yaml (compiled in) does not parse")?;
    let mut d = docs
        .into_iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "worker-deployment")
        .context("deploy/app/burst/hashr.yaml (compiled in) has no worker-deployment")?;
    d["metadata"]["name"] = json!(BURST_DEPLOYMENT);
    d["metadata"]["namespace"] = json!(namespace);
    d["spec"]["replicas"] = json!(0);
    Ok(d)
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
            "high: 15\nlow: 10\nwarmup: {ramp: [10, 50, 100], rampOver: 6s}\nprewarm: {lead: 30s, hold: 5s}\n",
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
            // The policy's pre-warm timing comes with a scaler of the demo's Deployment.
            let scaler = bp.spec.prewarm.map(|p| p.kubernetes().unwrap().clone());
            assert_eq!(
                scaler.map(|k| (k.deployment, k.replicas)),
                file.policy
                    .prewarm
                    .is_some()
                    .then(|| (BURST_DEPLOYMENT.to_owned(), PREWARM_REPLICAS)),
                "{yaml}"
            );
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
        let d = burst_deployment("demo-1").unwrap();
        assert_eq!(d["metadata"]["name"], BURST_DEPLOYMENT);
        assert_eq!(d["metadata"]["namespace"], "demo-1");
        assert_eq!(d["spec"]["replicas"], 0);
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
