//! Pre-warming in burstd: the scaler a BurstPolicy names (`spec.prewarm`), and what a
//! pre-warm tick shows in `status.prewarm`, Events and metrics.
//!
//! [`build_scaler`] turns `spec.prewarm.scaler.kubernetes` into a [`burst_scale::KubeScaler`]
//! (in burstd's own cluster, the one a kubeconfig Secret names, or, in `burstd run`, the
//! one of `--prewarm-kubeconfig`: [`RunContext::prewarm_client`]); the runner calls its
//! [`recover`](burst_scale::KubeScaler::recover) before the loop starts, so a pre-warm a
//! previous run left is restored first, and hands it to
//! [`burst_core::Controller::with_prewarm`] with the timing of `spec.policy.prewarm`.
//!
//! | shows | where |
//! |---|---|
//! | prepared or not, the outlook, the last action and error | `status.prewarm` ([`PrewarmStatus`]) |
//! | a prepare, a release, a failure (once per error kind) | Events `Prewarm`, `PrewarmReleased`, `PrewarmFailed` |
//! | prepared (1) or not (0) | gauge `burstd_prewarm_prepared{policy}` |
//! | failed calls | counter `burstd_prewarm_errors_total{policy, kind}` |

use burst_core::scaler::{PrewarmAction, PrewarmReport};
use burst_core::{ScalerError, Timestamp};
use burst_scale::{KubeScaler, ScalerOptions};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use burst_core::policy::{Policy, PolicySpec};
use burst_core::{Controller, MetricSource, TrafficRouter, Weight};

use crate::Error;
use crate::api::{BurstPolicySpec, KubernetesScalerSpec, PrewarmSpec, PrewarmStatus};
use crate::leader::LeaderGated;
use crate::metrics::{ErrorLabels, PolicyLabels};
use crate::runner::RunContext;
use crate::secrets::{client_from_kubeconfig, secret_value};
use crate::status::{EventNote, Severity};

/// The pre-warm metrics, registered in burstd's registry by [`crate::metrics::Metrics`].
#[derive(Debug, Default)]
pub struct PrewarmMetrics {
    prepared: Family<PolicyLabels, Gauge>,
    errors: Family<ErrorLabels, Counter>,
}

impl PrewarmSpec {
    /// The Kubernetes scaler's settings; errors name the `spec.prewarm` field.
    pub fn kubernetes(&self) -> Result<&KubernetesScalerSpec, Error> {
        let k = self.scaler.kubernetes.as_ref().ok_or_else(|| {
            Error::invalid(
                "spec.prewarm.scaler",
                "set `kubernetes` (the burst Deployment and its HorizontalPodAutoscaler)",
            )
        })?;
        if k.deployment.is_empty() || k.deployment.contains('/') {
            return Err(Error::invalid(
                "spec.prewarm.scaler.kubernetes.deployment",
                format!(
                    "`{}` is not a Deployment name; give the burst Deployment's name",
                    k.deployment
                ),
            ));
        }
        if k.replicas < 1 {
            return Err(Error::invalid(
                "spec.prewarm.scaler.kubernetes.replicas",
                format!(
                    "{} is too small; give the size the burst side should have before traffic arrives (at least 1)",
                    k.replicas
                ),
            ));
        }
        Ok(k)
    }
}

/// The scaler of `spec` for a policy in `namespace`: a [`KubeScaler`] on burstd's `client`,
/// or on the cluster of the kubeconfig in `kubeconfigSecretRef` (read from `namespace`).
pub async fn build_scaler(
    client: &kube::Client,
    namespace: &str,
    spec: &PrewarmSpec,
    field_manager: &str,
    request_timeout: std::time::Duration,
) -> Result<KubeScaler, Error> {
    let k = spec.kubernetes()?;
    let client = match &k.kubeconfig_secret_ref {
        Some(r) => {
            let yaml = secret_value(client, namespace, r).await?;
            client_from_kubeconfig("prewarm", &yaml).await?
        }
        None => client.clone(),
    };
    scaler_on(client, namespace, k, field_manager, request_timeout)
}

/// The [`KubeScaler`] of `k` on `client`, the burst cluster's client, for a policy in
/// `namespace` (the Deployment's namespace when `k` names none).
fn scaler_on(
    client: kube::Client,
    namespace: &str,
    k: &KubernetesScalerSpec,
    field_manager: &str,
    request_timeout: std::time::Duration,
) -> Result<KubeScaler, Error> {
    let options = ScalerOptions {
        replicas: k.replicas,
        hpa: k.hpa.clone(),
        field_manager: field_manager.to_owned(),
        request_timeout,
        ..ScalerOptions::default()
    };
    let ns = k.namespace.as_deref().unwrap_or(namespace);
    Ok(KubeScaler::new(client, ns, &k.deployment, options)?)
}

/// The scaler of a BurstPolicy whose spec is `spec` (validated into `policy`): `None`
/// without pre-warming. `spec.prewarm` (the scaler) and `spec.policy.prewarm` (the timing)
/// go together; one without the other is an error naming the missing one.
pub async fn build_for(
    ctx: &RunContext,
    namespace: &str,
    spec: &BurstPolicySpec,
    policy: &PolicySpec,
) -> Result<Option<KubeScaler>, Error> {
    match (&spec.prewarm, &policy.prewarm) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::invalid(
            "spec.policy.prewarm",
            "spec.prewarm names a scaler but the timing is missing; add `prewarm: {lead: 90s, hold: 5m}` to spec.policy",
        )),
        (None, Some(_)) => Err(Error::invalid(
            "spec.prewarm",
            "spec.policy.prewarm is set but nothing to scale is named; add `scaler: {kubernetes: {deployment: NAME, replicas: N}}` under spec.prewarm",
        )),
        // `burstd run --prewarm-kubeconfig`: the burst cluster's client is given.
        (Some(p), Some(_)) => match &ctx.prewarm_client {
            Some(client) => scaler_on(
                client.clone(),
                namespace,
                p.kubernetes()?,
                &ctx.field_manager,
                ctx.request_timeout,
            ),
            None => {
                build_scaler(
                    &ctx.client,
                    namespace,
                    p,
                    &ctx.field_manager,
                    ctx.request_timeout,
                )
                .await
            }
        }
        .map(Some),
    }
}

/// Gives `controller` its pre-warm: first restores what a previous run left prepared
/// ([`KubeScaler::recover`], only while this instance leads), then pre-warms through
/// `scaler`, gated on leadership, with the timing of `spec.prewarm`. A warm-up probe
/// (`spec.warmup.probeWeight`) alone does not count as traffic on burst.
pub async fn attach<S, P, R>(
    ctx: &RunContext,
    key: &str,
    spec: &PolicySpec,
    scaler: KubeScaler,
    controller: Controller<S, P, R>,
) -> Controller<S, P, R>
where
    S: MetricSource,
    P: Policy,
    R: TrafficRouter,
{
    let prewarm = match spec.prewarm() {
        Ok(Some(p)) => p,
        Ok(None) => return controller,
        Err(e) => {
            // Validated before the parts were built; kept as a log line, not a panic.
            tracing::warn!(policy = %key, error = %e, "pre-warm settings unusable; not pre-warming");
            return controller;
        }
    };
    if ctx.leader.is_leader() {
        match scaler.recover().await {
            Ok(restored) if restored.is_empty() => {}
            Ok(restored) => {
                for r in restored {
                    tracing::info!(policy = %key, object = %r.object, found = r.found, now = r.now, "restored a pre-warm a previous run left");
                }
            }
            Err(e) => {
                tracing::warn!(policy = %key, kind = e.kind(), error = %e, "cannot restore a pre-warm a previous run left; the next release will");
            }
        }
    }
    let probe = spec
        .warmup
        .as_ref()
        .and_then(|w| Weight::try_new(w.probe_weight).ok())
        .unwrap_or(Weight::ZERO);
    tracing::info!(policy = %key, scaler = %burst_core::CapacityScaler::describe(&scaler), "pre-warming");
    controller
        .with_prewarm(
            prewarm,
            Box::new(LeaderGated::new(scaler, ctx.leader.clone())),
        )
        .with_prewarm_probe(probe)
}

fn time(at: Timestamp) -> Time {
    let nanos = i128::try_from(at.as_duration().as_nanos()).unwrap_or(i128::MAX);
    Time(jiff::Timestamp::from_nanosecond(nanos).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

fn outlook_name(report: &PrewarmReport) -> &'static str {
    match report.outlook {
        burst_core::forecast::Outlook::Crossing { .. } => "crossing",
        burst_core::forecast::Outlook::Below { .. } => "below",
        burst_core::forecast::Outlook::Unknown { .. } => "unknown",
    }
}

/// Cut to at most 1 KiB, on a character boundary.
fn truncate(mut s: String) -> String {
    let mut cut = s.len().min(1024);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s
}

fn error_text(e: &ScalerError) -> String {
    format!("{}: {e}", e.kind())
}

/// Updates `status` from one tick's pre-warm report (at `at`) and returns the Events to
/// record: `Prewarm` on a prepare, `PrewarmReleased` on a release, `PrewarmFailed` when a
/// call fails with an error of another kind than the last one.
pub fn track(status: &mut PrewarmStatus, report: &PrewarmReport, at: Timestamp) -> Vec<EventNote> {
    let mut events = Vec::new();
    status.prepared = report.prepared;
    status.outlook = Some(outlook_name(report).to_owned());
    let (Some(action), Some(result)) = (&report.action, &report.result) else {
        return events;
    };
    match result {
        Ok(()) => {
            status.last_action = Some(action.to_string());
            status.last_action_time = Some(time(at));
            status.last_error = None;
            let (reason, act) = match action {
                PrewarmAction::Prepare(_) => ("Prewarm", "PrepareBurst"),
                PrewarmAction::Release { .. } => ("PrewarmReleased", "ReleaseBurst"),
            };
            events.push(EventNote {
                severity: Severity::Normal,
                reason,
                action: act,
                note: format!("{action}; forecast: {}", report.outlook),
            });
        }
        Err(e) => {
            let text = error_text(e);
            let same_kind = status
                .last_error
                .as_deref()
                .is_some_and(|last| last.split(':').next() == Some(e.kind()));
            if !same_kind {
                let note = truncate(format!("{action} failed ({text}); retried next tick"));
                events.push(EventNote {
                    severity: Severity::Warning,
                    reason: "PrewarmFailed",
                    action: match action {
                        PrewarmAction::Prepare(_) => "PrepareBurst",
                        PrewarmAction::Release { .. } => "ReleaseBurst",
                    },
                    note,
                });
            }
            status.last_error = Some(truncate(text));
        }
    }
    events
}

impl PrewarmMetrics {
    /// Registers the metrics in `registry` (prefixed by it).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "prewarm_prepared",
            "1 while the burst side is pre-warmed (grown ahead of the traffic)",
            self.prepared.clone(),
        );
        registry.register(
            "prewarm_errors",
            "Failed pre-warm calls (prepare or release), by error kind",
            self.errors.clone(),
        );
    }

    /// Records one tick's pre-warm report of `policy`.
    pub fn record(&self, policy: &str, report: &PrewarmReport) {
        self.prepared
            .get_or_create(&PolicyLabels {
                policy: policy.to_owned(),
            })
            .set(i64::from(report.prepared));
        if let Some(Err(e)) = &report.result {
            self.errors
                .get_or_create(&ErrorLabels {
                    policy: policy.to_owned(),
                    kind: e.kind().to_owned(),
                })
                .inc();
        }
    }

    /// Drops the gauge of a policy that no longer runs.
    pub fn forget(&self, policy: &str) {
        self.prepared.remove(&PolicyLabels {
            policy: policy.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burst_core::forecast::Outlook;
    use burst_core::scaler::PrewarmReason;
    use std::time::Duration;

    fn report(
        action: Option<PrewarmAction>,
        result: Option<Result<(), ScalerError>>,
        prepared: bool,
    ) -> PrewarmReport {
        PrewarmReport {
            outlook: Outlook::Crossing {
                now: 10.0,
                after: Duration::from_secs(30),
                at_lead: 20.0,
            },
            action,
            result,
            prepared,
        }
    }

    #[test]
    fn prepare_release_and_failures_become_status_and_events() {
        let mut s = PrewarmStatus::default();
        let at = Timestamp::from_duration(Duration::from_secs(1_700_000_000));
        let prepare = PrewarmAction::Prepare(PrewarmReason::OnBurst);
        // Fails twice with the same kind: one Warning.
        let fail = || {
            report(
                Some(prepare),
                Some(Err(ScalerError::new("conflict", "409"))),
                false,
            )
        };
        let e = track(&mut s, &fail(), at);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].reason, e[0].severity),
            ("PrewarmFailed", Severity::Warning)
        );
        assert!(track(&mut s, &fail(), at).is_empty());
        assert_eq!(
            s.last_error.as_deref().map(|t| t.starts_with("conflict:")),
            Some(true)
        );
        assert!(!s.prepared);
        // Succeeds: an Event, the error is cleared.
        let e = track(&mut s, &report(Some(prepare), Some(Ok(())), true), at);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].reason, "Prewarm");
        assert!(e[0].note.contains("traffic is on burst"), "{}", e[0].note);
        assert!(s.prepared && s.last_error.is_none());
        assert_eq!(s.outlook.as_deref(), Some("crossing"));
        assert!(s.last_action_time.is_some());
        // Nothing to do: no Event.
        assert!(track(&mut s, &report(None, None, true), at).is_empty());
        let release = PrewarmAction::Release {
            idle_for: Duration::from_secs(300),
        };
        let e = track(&mut s, &report(Some(release), Some(Ok(())), false), at);
        assert_eq!(e[0].reason, "PrewarmReleased");
        assert!(!s.prepared);
    }

    #[test]
    fn a_spec_without_a_usable_scaler_names_the_field() {
        let spec: PrewarmSpec = serde_json::from_value(serde_json::json!({"scaler": {}})).unwrap();
        assert!(
            spec.kubernetes()
                .unwrap_err()
                .to_string()
                .contains("spec.prewarm.scaler")
        );
        let spec: PrewarmSpec = serde_json::from_value(serde_json::json!(
            {"scaler": {"kubernetes": {"deployment": "worker", "replicas": 0}}}
        ))
        .unwrap();
        let e = spec.kubernetes().unwrap_err().to_string();
        assert!(e.contains("spec.prewarm.scaler.kubernetes.replicas"), "{e}");
    }

    #[test]
    fn metrics_show_prepared_and_count_errors_by_kind() {
        let m = PrewarmMetrics::default();
        let mut registry = Registry::with_prefix("burstd");
        m.register(&mut registry);
        let prepare = PrewarmAction::Prepare(PrewarmReason::OnBurst);
        m.record(
            "ns/p",
            &report(
                Some(prepare),
                Some(Err(ScalerError::new("forbidden", "403"))),
                false,
            ),
        );
        m.record("ns/p", &report(Some(prepare), Some(Ok(())), true));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"burstd_prewarm_prepared{policy="ns/p"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"burstd_prewarm_errors_total{policy="ns/p",kind="forbidden"} 1"#),
            "{text}"
        );
        m.forget("ns/p");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("burstd_prewarm_prepared{"), "{text}");
    }
}
