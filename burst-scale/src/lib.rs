//! # burst-scale
//!
//! Pre-warming for **burst**: [`KubeScaler`], a [`burst_core::CapacityScaler`] that grows the
//! burst side *before* traffic arrives, and gives it back to its own autoscaling afterwards.
//!
//! - With a HorizontalPodAutoscaler (autoscaling/v2) in front of the burst Deployment, it
//!   raises the HPA's `minReplicas` to the pre-warm size (never lowering it, capped at
//!   `maxReplicas`); the HPA then scales the Deployment as usual, and keeps scaling above.
//! - Without one, it raises the Deployment's `replicas`.
//!
//! The value before is kept in the annotation `burst.dev/prewarm-original` on the object
//! changed (see [`PrewarmRecord`]), so release, and [`KubeScaler::recover`] after a restart,
//! put it back. A value someone else wrote in between is theirs: release keeps it and only
//! removes the annotation. Writes are merge patches carrying the `resourceVersion` read
//! (optimistic concurrency: a 409 is read again and retried a bounded number of times).
//!
//! Least RBAC, in the burst cluster's namespace: `get` and `patch` on
//! `horizontalpodautoscalers` (group `autoscaling`) and `deployments` (group `apps`); the
//! Role is in the crate's `rbac.yaml` and in `docs/prewarm.md`.
//!
//! ```
//! use burst_scale::plan::{prepare_patch, Kind, Observed, ANNOTATION};
//!
//! // The pure half: what a prepare writes, from what was read.
//! let seen = Observed { resource_version: "42".into(), value: 1, max: Some(10), annotation: None };
//! let patch = prepare_patch(Kind::Hpa, "HorizontalPodAutoscaler burst/worker", &seen, 5)?.unwrap();
//! assert_eq!(patch["spec"]["minReplicas"], 5);
//! assert_eq!(patch["metadata"]["resourceVersion"], "42");
//! assert_eq!(
//!     patch["metadata"]["annotations"][ANNOTATION],
//!     r#"{"field":"minReplicas","original":1,"set":5}"#
//! );
//! # Ok::<(), burst_scale::Error>(())
//! ```

mod error;
pub mod plan;
mod scaler;

pub use burst_istio::ApiCallError;
pub use error::Error;
pub use plan::{ANNOTATION, PrewarmRecord};
pub use scaler::{KubeScaler, Restored, ScalerOptions};

/// The Role a [`KubeScaler`] needs in the burst Deployment's namespace (YAML).
pub const ROLE_YAML: &str = include_str!("../rbac.yaml");

#[cfg(test)]
mod tests {
    /// docs/prewarm.md shows the Role the tests apply, rule for rule.
    #[test]
    fn the_documented_role_is_the_tested_one() {
        let doc = include_str!("../../docs/prewarm.md");
        for line in super::ROLE_YAML
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        {
            assert!(doc.contains(line), "docs/prewarm.md lacks `{line}`");
        }
    }
}
