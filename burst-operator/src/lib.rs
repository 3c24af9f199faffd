//! # burst-operator
//!
//! The library behind `burstd`, the in-cluster controller of **burst**. It runs
//! [`burst_core::Controller`] loops against Kubernetes in one of two modes:
//!
//! - **Operator mode** ([`operator::run`]): watches [`api::BurstPolicy`] objects
//!   (`bursting.dev/v1alpha1`) and runs one loop per object, started, restarted and stopped
//!   as objects change ([`operator`]). Each policy gets a status (mode, split, observed rate
//!   or why there is none, last transition, `Ready`/`Degraded` conditions) and Kubernetes
//!   Events on every split change and on errors ([`status`], [`events`]).
//! - **Single-policy mode** ([`single::run`]): one policy from flags, `BURST_*`
//!   variables or a config file ([`single`]), run directly by one [`runner`].
//!   With `--haproxy-runtime-api` it runs on an HAProxy backend with no Kubernetes at all
//!   ([`haproxy`]: no Lease, no status, no Events).
//!
//! Both elect a leader on a `coordination.k8s.io/v1` Lease ([`leader`]; only the leader
//! writes, and [`leader::LeaderGated`] is the one check on the route write), serve
//! `/metrics`, `/healthz` and `/readyz` ([`server`], [`metrics`]), and shut down cleanly on
//! SIGTERM ([`process`]). burstd's flags are [`cli`].
//!
//! ## Where things are
//!
//! | module | concern |
//! |---|---|
//! | [`api`] | the BurstPolicy resource: spec, `spec.policy`, status, CRD |
//! | [`adapters`] | spec → [`burst_prom::SourceConfig`] or [`burst_pods::PodConfig`], and [`burst_istio::RouteConfig`] |
//! | [`secrets`] | Secret values and extra clusters' kubeconfigs |
//! | [`runner`] | one loop: build its parts, run the controller, write status and Events; [`runner::explain`] for `kubectl burst explain` |
//! | [`pin`] | `spec.pin`: a fixed split held until a time, in front of the policy |
//! | [`operator`] | watch BurstPolicies, one runner per object |
//! | [`single`] | single-policy mode: its settings (file, flags, variables) and its loop |
//! | [`haproxy`] | single-policy mode on HAProxy, without Kubernetes |
//! | [`process`] | the process around the loops: endpoints, leader election, shutdown order |
//! | [`leader`] | Lease election and the write gate |
//! | [`cli`] | burstd's command line |
//!
//! ## Following one tick
//!
//! From `burstd`'s `main` to the PATCH of a route, in five files:
//!
//! 1. `burst-bin/src/bin/burstd.rs`: `main` parses [`cli::Cli`] and calls [`operator::run`]
//!    (or [`single::run`] for `burstd run`);
//! 2. `burst-operator/src/operator.rs`: [`operator::run`] sets up the process
//!    ([`process`]) and starts one loop per BurstPolicy (`burst-operator/src/single/run.rs`
//!    starts the one loop of single-policy mode);
//! 3. `burst-operator/src/runner.rs`: [`runner::run_policy`] builds the source and router
//!    ([`runner::build_parts`]) and runs the controller;
//! 4. `burst-core/src/controller.rs`: `Controller::run` ticks: observe, decide, apply;
//! 5. `burst-istio/src/router.rs`: `KubeRouter::apply` reads the route and sends the JSON
//!    patch (through [`leader::LeaderGated`], which refuses it when this instance does not
//!    lead).
//!
//! ```
//! use burst_operator::api::BurstPolicySpec;
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
//! assert!(burst_operator::api::crd_yaml()?.contains("burstpolicies.bursting.dev"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! No feature flags.

pub mod adapters;
pub mod api;
// Every API call burstd makes, for the RBAC tests and the demo's Role; not an API to build
// on, hence hidden from the docs.
#[doc(hidden)]
pub mod api_calls;
pub mod cli;
pub mod client;
mod error;
pub mod events;
pub mod haproxy;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod pin;
pub mod prewarm;
pub mod process;
pub mod runner;
pub mod secrets;
pub mod server;
pub mod single;
pub mod status;

pub use error::Error;
