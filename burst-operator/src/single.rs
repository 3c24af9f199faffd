//! Single-policy mode: one policy from a config file, flags and environment variables.
//!
//! The config file is either a whole `BurstPolicy` document (the same file `kubectl apply`
//! takes) or just its `spec`. Flags (and their `BURST_*` variables) override the file; with
//! no file, flags alone describe the policy, with the seed's defaults for everything else:
//!
//! ```text
//! burstd run --prometheus-url http://prometheus:9090 --virtual-service worker-virtual-service \
//!            --namespace default --high 15 --low 10
//! ```
//!
//! Unknown keys in the file are errors naming the key, so a typo never silently falls back
//! to a default.
//!
//! Pre-warming (docs/prewarm.md) takes the file's `spec.prewarm` and `spec.policy.prewarm`,
//! or the `--prewarm-*` flags: `--prewarm-deployment NS/NAME` (with `--prewarm-replicas`,
//! `--prewarm-hpa`, `--prewarm-kubeconfig`) names the scaler, `--prewarm-lead` and
//! `--prewarm-hold` the timing; one half without the other is an error naming the flag to add.

mod run;

pub use run::run;

use std::path::{Path, PathBuf};

use burst_core::HumanDuration;
use burst_core::policy::{Mode, OnMissing};
use serde_json::Value;

use crate::Error;
use crate::api::{
    BackendRefSpec, BackendsSpec, BurstPolicy, BurstPolicySpec, KubernetesScalerSpec,
    PolicySettings, PrewarmSpec, PrometheusSpec, ScalerSpec, ScrapeModeSpec, ScrapeSpec,
    SourceSpec, SubsetsSpec, TargetKind, TargetSpec,
};

/// Settings given as flags or environment variables; `None` leaves the file's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Prometheus base URL.
    pub prometheus_url: Option<String>,
    /// PromQL query template.
    pub query: Option<String>,
    /// Query template variables.
    pub variables: Vec<(String, String)>,
    /// Scrape targets (instead of Prometheus).
    pub scrape_targets: Vec<String>,
    /// Metric to scrape.
    pub scrape_metric: Option<String>,
    /// Scraped metric is a gauge.
    pub scrape_gauge: bool,
    /// Policy mode.
    pub mode: Option<Mode>,
    /// High threshold.
    pub high: Option<f64>,
    /// Low threshold.
    pub low: Option<f64>,
    /// Hysteresis burst weight.
    pub burst_weight: Option<i64>,
    /// Overflow capacity.
    pub capacity: Option<f64>,
    /// Decision interval.
    pub tick: Option<HumanDuration>,
    /// Rate window.
    pub window: Option<HumanDuration>,
    /// Short window.
    pub window_up: Option<HumanDuration>,
    /// Long window.
    pub window_down: Option<HumanDuration>,
    /// Minimum time between changes.
    pub cooldown: Option<HumanDuration>,
    /// Where to go when data is stale.
    pub on_missing: Option<OnMissing>,
    /// When data counts as stale.
    pub stale_after: Option<HumanDuration>,
    /// VirtualService name.
    pub virtual_service: Option<String>,
    /// HTTPRoute name.
    pub http_route: Option<String>,
    /// Namespace of the target.
    pub namespace: Option<String>,
    /// Route name.
    pub route: Option<String>,
    /// Primary subset (VirtualService).
    pub primary_subset: Option<String>,
    /// Burst subset (VirtualService).
    pub burst_subset: Option<String>,
    /// Primary backend (HTTPRoute).
    pub primary_backend: Option<String>,
    /// Burst backend (HTTPRoute).
    pub burst_backend: Option<String>,
    /// Dry run.
    pub dry_run: Option<bool>,
    /// The burst Deployment to pre-warm, `NAMESPACE/NAME` or `NAME`.
    pub prewarm_deployment: Option<String>,
    /// Its replicas while pre-warmed.
    pub prewarm_replicas: Option<i32>,
    /// Its HorizontalPodAutoscaler.
    pub prewarm_hpa: Option<String>,
    /// Kubeconfig of the cluster it runs in.
    pub prewarm_kubeconfig: Option<PathBuf>,
    /// How far ahead the pre-warm forecast looks.
    pub prewarm_lead: Option<HumanDuration>,
    /// How long the burst side stays pre-warmed after the last need.
    pub prewarm_hold: Option<HumanDuration>,
}

/// One policy, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct SinglePolicy {
    /// Namespace of the target.
    pub namespace: String,
    /// A name for logs and metrics (the file's `metadata.name`, else the target's name).
    pub name: String,
    /// The spec.
    pub spec: BurstPolicySpec,
    /// Kubeconfig of the cluster of the pre-warmed Deployment (`--prewarm-kubeconfig`;
    /// `None`: `spec.prewarm`'s `kubeconfigSecretRef`, else burstd's own cluster).
    pub prewarm_kubeconfig: Option<PathBuf>,
}

/// Keys in `value` that `schema` (an OpenAPI v3 schema) does not know, as dotted paths.
pub fn unknown_fields(value: &Value, schema: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (props.and_then(|m| m.get(k)), additional) {
                    (Some(s), _) => out.extend(unknown_fields(v, s, &p)),
                    (None, Some(s)) if s.is_object() => out.extend(unknown_fields(v, s, &p)),
                    (None, _) if props.is_some() => out.push(p),
                    (None, _) => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    out.extend(unknown_fields(v, s, &format!("{path}[{i}]")));
                }
            }
        }
        _ => {}
    }
    out
}

fn crd_schema() -> Value {
    let crd = crate::api::crd();
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

/// Parses a config file's text: a BurstPolicy document or a bare spec.
pub fn parse_config(path: &Path, text: &str) -> Result<(Option<BurstPolicy>, Value), Error> {
    let err = |message: String| Error::ParseConfig {
        path: path.to_owned(),
        message,
    };
    let value: Value = serde_saphyr::from_str(text).map_err(|e| err(e.to_string()))?;
    if !value.is_object() {
        return Err(err(
            "expected a BurstPolicy document or a BurstPolicy spec (a mapping)".into(),
        ));
    }
    let schema = crd_schema();
    let is_document = value.get("kind").is_some() || value.get("apiVersion").is_some();
    // serde cannot name the field of a wrong value inside the flattened policy: check it first.
    let policy = if is_document {
        value.get("spec").and_then(|s| s.get("policy"))
    } else {
        value.get("policy")
    };
    if let Some(policy) = policy {
        PolicySettings::from_value(policy)?;
    }
    if is_document {
        if value.get("kind").and_then(Value::as_str) != Some("BurstPolicy") {
            return Err(err(format!(
                "kind is {}, expected BurstPolicy",
                value.get("kind").unwrap_or(&Value::Null)
            )));
        }
        let mut doc = value.clone();
        // metadata and status are free-form here; check the spec strictly.
        let unknown = unknown_fields(&doc["spec"], &schema["properties"]["spec"], "spec");
        if !unknown.is_empty() {
            return Err(err(format!("unknown field(s): {}", unknown.join(", "))));
        }
        if let Some(m) = doc.as_object_mut() {
            m.remove("status");
        }
        let p: BurstPolicy = serde_json::from_value(doc).map_err(|e| err(e.to_string()))?;
        Ok((Some(p), value))
    } else {
        let unknown = unknown_fields(&value, &schema["properties"]["spec"], "spec");
        if !unknown.is_empty() {
            return Err(err(format!("unknown field(s): {}", unknown.join(", "))));
        }
        Ok((None, value))
    }
}

/// Loads the file (if any) and applies the overrides.
pub fn load(file: Option<&Path>, o: &Overrides) -> Result<SinglePolicy, Error> {
    let mut name = None;
    let mut namespace = None;
    let mut spec = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
                path: PathBuf::from(path),
                source,
            })?;
            let (doc, value) = parse_config(path, &text)?;
            match doc {
                Some(p) => {
                    name = p.metadata.name.clone();
                    namespace = p.metadata.namespace.clone();
                    p.spec
                }
                None => serde_json::from_value(value).map_err(|e| Error::ParseConfig {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?,
            }
        }
        None => BurstPolicySpec {
            source: SourceSpec::default(),
            policy: Default::default(),
            target: TargetSpec::default(),
            dry_run: false,
            paused: false,
            pin: None,
            prewarm: None,
        },
    };
    apply(&mut spec, o)?;
    let namespace = o
        .namespace
        .clone()
        .or(namespace)
        .unwrap_or_else(|| "default".to_owned());
    spec.validate()?;
    if spec.paused {
        return Err(Error::invalid(
            "spec.paused",
            "a paused policy in single-policy mode would do nothing; remove `paused`",
        ));
    }
    check_prewarm(&spec)?;
    let name = name.unwrap_or_else(|| spec.target.name.clone());
    Ok(SinglePolicy {
        namespace,
        name,
        spec,
        prewarm_kubeconfig: o.prewarm_kubeconfig.clone(),
    })
}

/// Pre-warming needs both halves: the timing (`spec.policy.prewarm`) and the scaler
/// (`spec.prewarm`); one without the other names what to add, as a flag or in the file.
fn check_prewarm(spec: &BurstPolicySpec) -> Result<(), Error> {
    match (&spec.prewarm, &spec.policy.policy.prewarm) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(Error::invalid(
            "spec.policy.prewarm",
            "a Deployment to pre-warm is named but not when to pre-warm it; add --prewarm-lead 90s --prewarm-hold 5m (or `prewarm: {lead: 90s, hold: 5m}` under the file's policy)",
        )),
        (None, Some(_)) => Err(Error::invalid(
            "spec.prewarm",
            "pre-warm timing is set but nothing to pre-warm is named; add --prewarm-deployment NAMESPACE/NAME (and --prewarm-replicas N), or `prewarm: {scaler: {kubernetes: {deployment: NAME, replicas: N}}}` to the file's spec",
        )),
        (Some(p), Some(_)) => p.kubernetes().map(|_| ()),
    }
}

/// Applies the pre-warm scaler flags (`--prewarm-deployment`, ...) of `o` to `spec`.
fn apply_prewarm(spec: &mut BurstPolicySpec, o: &Overrides) -> Result<(), Error> {
    if let Some(target) = &o.prewarm_deployment {
        let (namespace, name) = match target.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, target.as_str()),
        };
        if name.is_empty() || name.contains('/') || namespace.is_some_and(str::is_empty) {
            return Err(Error::invalid(
                "--prewarm-deployment",
                format!(
                    "`{target}` is not a Deployment; give NAMESPACE/NAME, or NAME for one in --namespace"
                ),
            ));
        }
        let k = spec
            .prewarm
            .get_or_insert(PrewarmSpec {
                scaler: ScalerSpec { kubernetes: None },
            })
            .scaler
            .kubernetes
            .get_or_insert_with(|| KubernetesScalerSpec {
                namespace: None,
                deployment: String::new(),
                hpa: None,
                replicas: 1,
                kubeconfig_secret_ref: None,
            });
        // Another Deployment than the file's: the file's HPA is not its HPA.
        if k.deployment != name {
            k.hpa = None;
        }
        k.deployment = name.to_owned();
        k.namespace = namespace.map(str::to_owned);
    }
    let scaler_flags = [
        ("--prewarm-replicas", o.prewarm_replicas.is_some()),
        ("--prewarm-hpa", o.prewarm_hpa.is_some()),
        ("--prewarm-kubeconfig", o.prewarm_kubeconfig.is_some()),
    ];
    let Some(k) = spec
        .prewarm
        .as_mut()
        .and_then(|p| p.scaler.kubernetes.as_mut())
    else {
        return match scaler_flags.iter().find(|(_, set)| *set) {
            Some((flag, _)) => Err(Error::invalid(
                *flag,
                "no Deployment to pre-warm is named; add --prewarm-deployment NAMESPACE/NAME (or spec.prewarm in the file)",
            )),
            None => Ok(()),
        };
    };
    if let Some(r) = o.prewarm_replicas {
        k.replicas = r;
    }
    if o.prewarm_hpa.is_some() {
        k.hpa.clone_from(&o.prewarm_hpa);
    }
    if o.prewarm_kubeconfig.is_some() {
        // The flag's cluster replaces the file's kubeconfig Secret.
        k.kubeconfig_secret_ref = None;
    }
    Ok(())
}

/// Applies the policy flags (`--mode`, `--high`, `--tick`, ...) of `o` to `settings`.
pub fn apply_policy(settings: &mut PolicySettings, o: &Overrides) {
    let p = &mut settings.policy;
    p.mode = o.mode.unwrap_or(p.mode);
    p.high = o.high.unwrap_or(p.high);
    p.low = o.low.unwrap_or(p.low);
    p.burst_weight = o.burst_weight.unwrap_or(p.burst_weight);
    p.capacity = o.capacity.or(p.capacity);
    p.on_missing = o.on_missing.unwrap_or(p.on_missing);
    p.window = o.window.unwrap_or(p.window);
    p.window_up = o.window_up.or(p.window_up);
    p.window_down = o.window_down.or(p.window_down);
    p.cooldown = o.cooldown.unwrap_or(p.cooldown);
    p.stale_after = o.stale_after.unwrap_or(p.stale_after);
    settings.run.tick = o.tick.unwrap_or(settings.run.tick);
    if o.prewarm_lead.is_some() || o.prewarm_hold.is_some() {
        let w = p.prewarm.get_or_insert_with(Default::default);
        w.lead = o.prewarm_lead.unwrap_or(w.lead);
        w.hold = o.prewarm_hold.unwrap_or(w.hold);
    }
}

fn apply(spec: &mut BurstPolicySpec, o: &Overrides) -> Result<(), Error> {
    // Source.
    if !o.scrape_targets.is_empty() || o.scrape_metric.is_some() {
        if o.prometheus_url.is_some() || o.query.is_some() {
            return Err(Error::invalid(
                "source",
                "give either --prometheus-url/--query or --scrape-target/--scrape-metric, not both",
            ));
        }
        let s = spec.source.scrape.get_or_insert_with(ScrapeSpec::default);
        spec.source.prometheus = None;
        spec.source.pods = None;
        if !o.scrape_targets.is_empty() {
            s.targets = o.scrape_targets.clone();
        }
        if let Some(m) = &o.scrape_metric {
            s.metric = m.clone();
        }
        if o.scrape_gauge {
            s.mode = Some(ScrapeModeSpec::Gauge);
        }
    } else if o.prometheus_url.is_some() || o.query.is_some() || !o.variables.is_empty() {
        let p = spec
            .source
            .prometheus
            .get_or_insert_with(PrometheusSpec::default);
        spec.source.scrape = None;
        spec.source.pods = None;
        if let Some(u) = &o.prometheus_url {
            p.url = u.clone();
        }
        if let Some(q) = &o.query {
            p.query = Some(q.clone());
        }
        for (k, v) in &o.variables {
            p.variables.insert(k.clone(), v.clone());
        }
    }
    apply_policy(&mut spec.policy, o);
    // Target.
    let t = &mut spec.target;
    match (&o.virtual_service, &o.http_route) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "target",
                "give either --virtual-service or --http-route, not both",
            ));
        }
        (Some(vs), None) => {
            t.kind = TargetKind::VirtualService;
            t.name = vs.clone();
        }
        (None, Some(r)) => {
            t.kind = TargetKind::HttpRoute;
            t.name = r.clone();
        }
        (None, None) => {}
    }
    if t.name.is_empty() {
        return Err(Error::invalid(
            "target",
            "no route given: set --virtual-service NAME (or --http-route NAME), or `spec.target.name` in the config file",
        ));
    }
    if o.route.is_some() {
        t.route.clone_from(&o.route);
    }
    if o.primary_subset.is_some() || o.burst_subset.is_some() {
        let s = t.subsets.get_or_insert_with(|| SubsetsSpec {
            primary: "primary".into(),
            burst: "burst".into(),
        });
        if let Some(v) = &o.primary_subset {
            s.primary = v.clone();
        }
        if let Some(v) = &o.burst_subset {
            s.burst = v.clone();
        }
    }
    if o.primary_backend.is_some() || o.burst_backend.is_some() {
        let old = t.backends.clone();
        let pick =
            |flag: &Option<String>, old: Option<BackendRefSpec>, which: &str| match (flag, old) {
                (Some(n), _) => Ok(BackendRefSpec {
                    name: n.clone(),
                    port: None,
                    namespace: None,
                }),
                (None, Some(b)) => Ok(b),
                (None, None) => Err(Error::invalid(
                    "target.backends",
                    format!("--{which}-backend is needed too"),
                )),
            };
        t.backends = Some(BackendsSpec {
            primary: pick(
                &o.primary_backend,
                old.as_ref().map(|b| b.primary.clone()),
                "primary",
            )?,
            burst: pick(
                &o.burst_backend,
                old.as_ref().map(|b| b.burst.clone()),
                "burst",
            )?,
        });
    }
    if let Some(d) = o.dry_run {
        spec.dry_run = d;
    }
    apply_prewarm(spec, o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn seed_flags() -> Overrides {
        Overrides {
            prometheus_url: Some("http://prometheus:9090".into()),
            virtual_service: Some("worker-virtual-service".into()),
            ..Overrides::default()
        }
    }

    #[test]
    fn flags_alone_give_the_seed() {
        let p = load(None, &seed_flags()).unwrap();
        assert_eq!(p.namespace, "default");
        assert_eq!(p.name, "worker-virtual-service");
        let policy = p.spec.validate().unwrap();
        assert_eq!((policy.high, policy.low), (15.0, 10.0));
        assert_eq!(
            p.spec.source.prometheus.as_ref().unwrap().url,
            "http://prometheus:9090"
        );
    }

    #[test]
    fn a_burstpolicy_file_works_and_flags_override_it() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(
            f,
            r#"
apiVersion: bursting.dev/v1alpha1
kind: BurstPolicy
metadata: {{name: worker, namespace: shop}}
spec:
  source: {{prometheus: {{url: "http://p:9090"}}}}
  policy: {{high: 30, low: 20}}
  target: {{name: worker-virtual-service, subsets: {{primary: a, burst: b}}}}
"#
        )
        .unwrap();
        let o = Overrides {
            high: Some(40.0),
            dry_run: Some(true),
            ..Overrides::default()
        };
        let p = load(Some(f.path()), &o).unwrap();
        assert_eq!((p.namespace.as_str(), p.name.as_str()), ("shop", "worker"));
        assert_eq!(p.spec.policy.policy.high, 40.0);
        assert_eq!(p.spec.policy.policy.low, 20.0);
        assert!(p.spec.dry_run);
        assert_eq!(p.spec.target.subsets.as_ref().unwrap().primary, "a");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse_config(
            Path::new("x.yaml"),
            "source: {prometheus: {url: u}}\ntarget: {name: w}\npolicy: {hihg: 3}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("spec.policy.hihg"), "{e}");
        let e = parse_config(Path::new("x.yaml"), "kind: Deployment\n").unwrap_err();
        assert!(e.to_string().contains("expected BurstPolicy"), "{e}");
        assert!(parse_config(Path::new("x.yaml"), "- a\n").is_err());
    }

    #[test]
    fn missing_target_and_conflicting_sources_are_errors() {
        let o = Overrides {
            prometheus_url: Some("http://p".into()),
            ..Overrides::default()
        };
        assert!(
            load(None, &o)
                .unwrap_err()
                .to_string()
                .contains("--virtual-service")
        );
        let o = Overrides {
            scrape_targets: vec!["http://w/metrics".into()],
            ..seed_flags()
        };
        assert!(load(None, &o).unwrap_err().to_string().contains("not both"));
        let o = Overrides {
            high: Some(5.0),
            ..seed_flags()
        };
        assert!(
            load(None, &o)
                .unwrap_err()
                .to_string()
                .contains("spec.policy.high")
        );
    }

    #[test]
    fn httproute_backends_from_flags() {
        let o = Overrides {
            virtual_service: None,
            http_route: Some("worker".into()),
            primary_backend: Some("worker-primary".into()),
            burst_backend: Some("worker-burst".into()),
            ..seed_flags()
        };
        let p = load(None, &o).unwrap();
        assert_eq!(p.spec.target.kind, TargetKind::HttpRoute);
        let o = Overrides {
            burst_backend: None,
            ..o
        };
        assert!(load(None, &o).is_err());
    }

    #[test]
    fn prewarm_flags_name_the_deployment_and_the_timing() {
        let o = Overrides {
            prewarm_deployment: Some("burst/worker".into()),
            prewarm_lead: Some("60s".parse().unwrap()),
            ..seed_flags()
        };
        let p = load(None, &o).unwrap();
        let k = p.spec.prewarm.as_ref().unwrap().kubernetes().unwrap();
        assert_eq!(
            (k.namespace.as_deref(), k.deployment.as_str(), k.replicas),
            (Some("burst"), "worker", 1)
        );
        let timing = p.spec.policy.policy.prewarm.as_ref().unwrap();
        assert_eq!(
            (timing.lead.to_string(), timing.hold.to_string()),
            ("1m".into(), "5m".into())
        );
        assert_eq!(p.prewarm_kubeconfig, None);

        // One half without the other says what to add.
        let e = load(
            None,
            &Overrides {
                prewarm_lead: None,
                ..o.clone()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("spec.policy.prewarm") && e.contains("--prewarm-lead"),
            "{e}"
        );
        let e = load(
            None,
            &Overrides {
                prewarm_deployment: None,
                ..o.clone()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("spec.prewarm") && e.contains("--prewarm-deployment"),
            "{e}"
        );
        let e = load(
            None,
            &Overrides {
                prewarm_deployment: None,
                prewarm_replicas: Some(3),
                ..o.clone()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--prewarm-replicas") && e.contains("add --prewarm-deployment"),
            "{e}"
        );
        for bad in ["a/b/c", "/worker", "burst/", ""] {
            let e = load(
                None,
                &Overrides {
                    prewarm_deployment: Some(bad.into()),
                    ..o.clone()
                },
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("--prewarm-deployment") && e.contains("NAMESPACE/NAME"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn prewarm_flags_override_the_files_scaler() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(
            f,
            r#"
source: {{prometheus: {{url: "http://p:9090"}}}}
policy: {{prewarm: {{lead: 90s, hold: 2m}}}}
target: {{name: worker-virtual-service}}
prewarm:
  scaler:
    kubernetes:
      deployment: worker
      hpa: worker-hpa
      replicas: 5
      kubeconfigSecretRef: {{name: burst-cluster, key: kubeconfig}}
"#
        )
        .unwrap();
        // The file alone pre-warms.
        let p = load(Some(f.path()), &Overrides::default()).unwrap();
        let k = p.spec.prewarm.as_ref().unwrap().kubernetes().unwrap();
        assert_eq!((k.replicas, k.hpa.as_deref()), (5, Some("worker-hpa")));
        assert!(k.kubeconfig_secret_ref.is_some());
        // Flags override: the replicas, the hold, and the cluster (a kubeconfig file instead
        // of the Secret).
        let o = Overrides {
            prewarm_replicas: Some(8),
            prewarm_hold: Some("30s".parse().unwrap()),
            prewarm_kubeconfig: Some("/etc/burst/kubeconfig".into()),
            ..Overrides::default()
        };
        let p = load(Some(f.path()), &o).unwrap();
        let k = p.spec.prewarm.as_ref().unwrap().kubernetes().unwrap();
        assert_eq!((k.replicas, k.hpa.as_deref()), (8, Some("worker-hpa")));
        assert!(k.kubeconfig_secret_ref.is_none());
        assert_eq!(
            p.prewarm_kubeconfig,
            Some(PathBuf::from("/etc/burst/kubeconfig"))
        );
        let timing = p.spec.policy.policy.prewarm.as_ref().unwrap();
        assert_eq!(
            (timing.lead.to_string(), timing.hold.to_string()),
            ("1m30s".into(), "30s".into())
        );
        // Another Deployment: not the file's HPA.
        let o = Overrides {
            prewarm_deployment: Some("other".into()),
            ..Overrides::default()
        };
        let p = load(Some(f.path()), &o).unwrap();
        let k = p.spec.prewarm.as_ref().unwrap().kubernetes().unwrap();
        assert_eq!(
            (k.deployment.as_str(), k.hpa.as_deref(), k.replicas),
            ("other", None, 5)
        );
    }
}
