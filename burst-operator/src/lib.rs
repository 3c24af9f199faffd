//! # burst-operator
//!
//! The library behind `burstd`, the in-cluster controller of **burst**. It runs
//! [`burst_core::Controller`] loops against Kubernetes in one of two modes:
//!
//! - **Operator mode** ([`app::run_operator_mode`]): watches [`crd::BurstPolicy`] objects
//!   (`bursting.dev/v1alpha1`) and runs one loop per object, started, restarted and stopped
//!   as objects change ([`operator`]). Each policy gets a status (mode, split, observed rate
//!   or why there is none, last transition, `Ready`/`Degraded` conditions) and Kubernetes
//!   Events on every split change and on errors ([`status`], [`events`]).
//! - **Single-policy mode** ([`app::run_single_mode`]): one policy from flags, `BURST_*`
//!   variables or a config file ([`single`]), the seed's daemon done right.
//!
//! Both elect a leader on a `coordination.k8s.io/v1` Lease ([`leader`]; only the leader
//! writes), serve `/metrics`, `/healthz` and `/readyz` ([`server`], [`metrics`]), and shut
//! down cleanly on SIGTERM ([`app`]). Every API call burstd makes is listed in
//! [`api_calls`], which the Helm chart's RBAC is tested against.
//!
//! ```
//! use burst_operator::crd::BurstPolicySpec;
//!
//! let spec: BurstPolicySpec = serde_saphyr::from_str(r#"
//! source: {prometheus: {url: "http://prometheus.istio-system:9090"}}
//! policy: {high: 15, low: 10}
//! target: {kind: VirtualService, name: worker-virtual-service}
//! "#)?;
//! let policy = spec.validate()?; // the same checks the operator runs
//! assert_eq!((policy.high, policy.low), (15.0, 10.0));
//!
//! // The CRD, as committed in deploy/crd/ (`burstd crd` prints it).
//! assert!(burst_operator::crd::crd_yaml()?.contains("burstpolicies.bursting.dev"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! No feature flags.

pub mod api_calls;
pub mod app;
pub mod crd;
mod error;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod runner;
pub mod server;
pub mod single;
pub mod status;
pub mod wiring;

pub use error::Error;
