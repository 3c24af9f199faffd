//! `spec.prewarm` and `status.prewarm`: what grows the burst side ahead of the traffic.
//!
//! The timing (`lead`, `hold`, the forecast) is the core's policy model, in
//! `spec.policy.prewarm`; `spec.prewarm.scaler` names what is scaled, which only burstd
//! (not the core, not the simulator) knows how to reach:
//!
//! ```yaml
//! spec:
//!   policy:
//!     prewarm: {lead: 90s, hold: 5m}
//!   prewarm:
//!     scaler:
//!       kubernetes:
//!         namespace: burst          # default: the policy's namespace
//!         deployment: worker
//!         hpa: worker               # optional; default: the Deployment's name
//!         replicas: 5
//!         kubeconfigSecretRef: {name: burst-cluster, key: kubeconfig}   # optional
//! ```
//!
//! Without `kubeconfigSecretRef` the Deployment is in burstd's own cluster. See
//! docs/prewarm.md for what the scaler writes and the Role it needs there.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::policy::SecretKeyRef;

/// What grows the burst side ahead of the traffic (`spec.prewarm`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrewarmSpec {
    /// The scaler: set `kubernetes`.
    pub scaler: ScalerSpec,
}

/// The pre-warm scaler: exactly one kind (only `kubernetes` exists).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.kubernetes)",
    "message": "set `kubernetes` (the burst Deployment and its HorizontalPodAutoscaler)"
}]))]
pub struct ScalerSpec {
    /// Raise the burst Deployment's HorizontalPodAutoscaler `minReplicas` (or, without an
    /// HPA, its `replicas`) and restore it afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesScalerSpec>,
}

/// The burst Deployment to pre-warm, and where it runs.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesScalerSpec {
    /// The Deployment's namespace (default: the policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The burst Deployment.
    pub deployment: String,
    /// Its HorizontalPodAutoscaler (default: named like the Deployment; none found: the
    /// Deployment's `replicas` are raised instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa: Option<String>,
    /// Replicas while pre-warmed, at least 1 (never lowers a larger value; capped at the
    /// HPA's `maxReplicas`).
    #[schemars(range(min = 1), extend("format" = "int32"))]
    pub replicas: i32,
    /// A Secret key (policy's namespace) holding a kubeconfig for the burst cluster;
    /// absent: burstd's own cluster. Token or client-certificate credentials only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret_ref: Option<SecretKeyRef>,
}

/// What pre-warming looks like now (`status.prewarm`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrewarmStatus {
    /// Whether the burst side is prepared (grown ahead of the traffic) now.
    #[serde(default)]
    pub prepared: bool,
    /// The last forecast against the trigger within `lead`: `crossing` (demand crosses it
    /// within `lead`, or is above it), `below`, or `unknown` (too few or too old samples).
    /// The figures are in the `Prewarm` Event and burstd's log.
    #[serde(default)]
    pub outlook: Option<String>,
    /// The last prepare or release done, with its reason.
    #[serde(default)]
    pub last_action: Option<String>,
    /// When it was done.
    #[serde(default)]
    pub last_action_time: Option<Time>,
    /// The last failed call (`kind: message`); cleared by the next success.
    #[serde(default)]
    pub last_error: Option<String>,
}
