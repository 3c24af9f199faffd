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
//! Field names are camelCase (the Kubernetes convention); `spec.policy` is the core's policy
//! model ([`burst_core::policy::PolicySpec`] plus `tick`), the same keys as `burst
//! simulate`'s policy file. Durations are Go-style strings (`15s`, `1m30s`, `500ms`).
//!
//! The API server refuses a policy that breaks the schema when it is applied, naming the
//! field: wrong types, missing fields, values out of range, unknown enum values, durations
//! that do not match the pattern, and the CEL rules (exactly one source; in `spec.policy`,
//! `low` below `high`, overflow with a `capacity`, `windowUp` not longer than `windowDown`,
//! durations longer than 0s; `backends` only and always for HTTPRoute, two different
//! subsets, cluster names unique and not `local`). The API server also fills in every
//! default of `spec.policy`. What needs more than the object (Secrets, the route, the
//! cluster kubeconfigs) burstd checks and reports as the `InvalidSpec` condition.
//!
//! | file | holds |
//! |---|---|
//! | [`policy`] | the spec: source, target, and the `BurstPolicy` object itself |
//! | [`policy_settings`] | `spec.policy` ([`PolicySettings`]): the core's policy model, flattened |
//! | [`prewarm`] | `spec.prewarm` (the pre-warm scaler) and `status.prewarm` |
//! | [`status`] | what burstd reports (`status`) |
//! | [`crd`](mod@crd) | the CustomResourceDefinition ([`crd()`], [`crd_yaml()`]) |
//!
//! Turning a spec into the adapters' settings (metric source, router) is
//! [`crate::adapters`]'s job; reading Secrets is [`crate::secrets`]'.

pub mod crd;
pub mod policy;
pub mod policy_settings;
pub mod prewarm;
pub mod status;

pub use crd::{crd, crd_yaml};
pub use policy::{
    AuthSpec, BackendRefSpec, BackendsSpec, BasicAuthSecretRef, BurstPolicy, BurstPolicySpec,
    ClusterSpec, HttpSpec, LatencyUnitSpec, PinSpec, PodPortSpec, PodSchemeSpec, PodsSpec,
    PrometheusSignalsSpec, PrometheusSpec, ReadyEndpointsSpec, ScrapeModeSpec, ScrapeSignalsSpec,
    ScrapeSpec, SecretKeyRef, SeriesSpec, ServiceRefSpec, SourceSpec, SubsetsSpec, TargetKind,
    TargetSpec, TlsSpec,
};
pub use policy_settings::PolicySettings;
pub use prewarm::{KubernetesScalerSpec, PrewarmSpec, PrewarmStatus, ScalerSpec};
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
