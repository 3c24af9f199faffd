//! The `BurstPolicy` custom resource (`bursting.dev/v1alpha1`): its types, one file per part.
//!
//! ```yaml
//! apiVersion: bursting.dev/v1alpha1
//! kind: BurstPolicy
//! metadata: {name: worker, namespace: default}
//! spec:
//!   source:
//!     prometheus:
//!       url: http://prometheus.istio-system:9090
//!       variables: {service: worker-service, namespace: default}
//!   policy: {high: 15, low: 10}          # every key optional; defaults are the seed
//!   target:
//!     kind: VirtualService
//!     name: worker-virtual-service
//!     subsets: {primary: primary, burst: burst}
//! ```
//!
//! The target must live in the policy's own namespace: whoever may create a BurstPolicy in
//! a namespace can only move that namespace's traffic. Secrets referenced by a policy are
//! read from the policy's namespace too.
//!
//! Field names are camelCase (the Kubernetes convention); `spec.policy` holds the keys of
//! `burst simulate`'s policy file (`burst_weight` is `burstWeight`, and so on).
//!
//! The API server refuses a policy that breaks the schema when it is applied, naming the
//! field: wrong types, missing fields, values out of range, unknown enum values, and the
//! CEL rules here (exactly one source, `low` below `high` when both are given, `backends`
//! only and always for HTTPRoute, two different subsets, cluster names unique and not
//! `local`). What needs more than the object (durations, `low` against the default `high`,
//! overflow without `capacity`) burstd checks and reports as the `InvalidSpec` condition.
//!
//! | file | holds |
//! |---|---|
//! | [`policy`] | the spec: source, target, and the `BurstPolicy` object itself |
//! | [`policy_settings`] | `spec.policy` ([`PolicySettings`]) and its conversion to [`burst_core::policy::PolicySpec`] |
//! | [`status`] | what burstd reports (`status`) |
//! | [`crd`](mod@crd) | the CustomResourceDefinition ([`crd()`], [`crd_yaml()`]) |
//!
//! Turning a spec into the adapters' settings (metric source, router) is
//! [`crate::adapters`]'s job; reading Secrets is [`crate::secrets`]'.

use std::time::Duration;

use crate::Error;

pub mod crd;
pub mod policy;
pub mod policy_settings;
pub mod status;

pub use crd::{crd, crd_yaml};
pub use policy::{
    AuthSpec, BackendRefSpec, BackendsSpec, BasicAuthSecretRef, BurstPolicy, BurstPolicySpec,
    ClusterSpec, HttpSpec, PrometheusSpec, ScrapeModeSpec, ScrapeSpec, SecretKeyRef, SeriesSpec,
    SourceSpec, SubsetsSpec, TargetKind, TargetSpec, TlsSpec,
};
pub use policy_settings::{OnMissingSpec, PolicyModeSpec, PolicySettings};
pub use status::{
    BurstPolicyStatus, DecisionStatus, ObservationState, ObservationStatus, SplitStatus,
    StatusMode, observed,
};

/// The API group of [`BurstPolicy`].
pub const GROUP: &str = "bursting.dev";
/// The served version.
pub const VERSION: &str = "v1alpha1";
/// The resource plural.
pub const PLURAL: &str = "burstpolicies";

/// A duration field (`15s`, `1m 30s`).
pub(crate) fn duration(field: &str, value: &Option<String>) -> Result<Option<Duration>, Error> {
    value
        .as_deref()
        .map(|v| {
            humantime::parse_duration(v).map_err(|e| {
                Error::invalid(
                    field,
                    format!("`{v}` is not a duration ({e}); write e.g. `15s` or `1m 30s`"),
                )
            })
        })
        .transpose()
}
