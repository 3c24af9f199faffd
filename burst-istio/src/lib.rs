//! # burst-istio
//!
//! Moves traffic between a primary and a burst destination by changing route weights:
//! Istio `VirtualService` subsets and Gateway API `HTTPRoute` backends.
//!
//! Two layers:
//!
//! - **Pure transforms** on `serde_json::Value` (no IO): [`VsTarget`] and [`HttpRouteTarget`]
//!   find one route and its two destinations, then [`read`](VsTarget::read) the split,
//!   [`write`](VsTarget::write) a new one (only the two `weight` fields change; every other
//!   field, known or not, is kept), or compute the guarded JSON [`patch`](VsTarget::patch).
//!   Ambiguity is an error, never a guess: a missing or duplicated subset, several candidate
//!   routes, or other destinations that carry traffic each have their own [`Error`] variant
//!   saying what to do. [`render`] builds the whole VirtualService + DestinationRule pair.
//! - **Routers** implementing [`burst_core::TrafficRouter`] over the Kubernetes API with
//!   kube-rs: [`VirtualServiceRouter`], [`HttpRouteRouter`] (JSON patch guarded by a `test`
//!   op, retried on conflict, with dry run; see [`router`] for why and for GitOps), and
//!   [`MultiClusterRouter`] for the same object in several clusters (reports drift), and
//!   [`Converging`] around it, which repairs drift. [`RouteConfig::build`] builds the
//!   router of either kind from its settings; [`RouteCaches`] lets every router of a
//!   cluster read its object from one shared watch instead of a GET per tick; [`kube_error_kind`] is the one mapping from
//!   a Kubernetes client error to a metric label, and [`ApiCallError`] the failed API call
//!   that this crate's routers and `burst-scale`'s scaler both report.
//!
//! ```
//! use burst_core::Split;
//! use burst_istio::VsTarget;
//!
//! let vs: serde_json::Value = serde_saphyr::from_str(r#"
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: worker-virtual-service, namespace: default}
//! spec:
//!   hosts: [worker-service]
//!   http:
//!   - retries: {attempts: 3}
//!     route:
//!     - destination: {host: worker-service, subset: primary}
//!       weight: 100
//!     - destination: {host: worker-service, subset: burst}
//!       weight: 0
//! "#)?;
//! let target = VsTarget::default(); // subsets `primary` and `burst`, the only route with both
//! assert_eq!(target.read(&vs)?, Split::ALL_PRIMARY);
//!
//! let burst = target.write(&vs, Split::try_new(20, 80)?)?;
//! assert_eq!(burst["spec"]["http"][0]["route"][1]["weight"], 80);
//! assert_eq!(burst["spec"]["http"][0]["retries"], vs["spec"]["http"][0]["retries"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! No feature flags. TLS to the API server is rustls on aws-lc-rs, as set in the workspace.

mod cache;
mod config;
mod converge;
mod error;
mod httproute;
mod multi;
pub mod render;
pub mod router;
mod vs;
mod weights;

pub use cache::RouteCaches;
pub use config::RouteConfig;
pub use converge::{Converging, WritePermission};
pub use error::{ApiCallError, Error, Resource, kube_error_kind};
pub use httproute::{BackendSelector, GATEWAY_GROUP, HttpRouteTarget};
pub use multi::{ClusterReport, MultiClusterRouter};
pub use router::{HttpRouteRouter, KubeRouter, RouteTarget, RouterOptions, VirtualServiceRouter};
pub use vs::{ISTIO_GROUP, VsTarget};
pub use weights::RouteSelector;

/// Re-exported so callers can inspect the patches without naming the crate version.
pub use json_patch;
