//! # burst-haproxy
//!
//! Bursting from VMs behind HAProxy: moves traffic between a primary and a burst server of
//! one HAProxy backend by changing their weights over the runtime API (no ACLs, no
//! reloads), and measures the backend's request rate from the same API.
//!
//! - [`RuntimeClient`] talks to the runtime API at a [`RuntimeAddr`] (`unix:PATH` or
//!   `tcp:HOST:PORT`): one command per connection, one deadline per exchange, a capped
//!   answer.
//! - [`weights`] maps a [`burst_core::Split`] to the two servers' weights and back
//!   (documented rounding; both weights 0 is "drained").
//! - [`HaproxyRouter`] implements [`burst_core::TrafficRouter`] for one instance;
//!   [`MultiInstanceRouter`] fans one split out to several instances.
//! - [`HaproxySource`] implements [`burst_core::MetricSource`] from `show stat`'s backend
//!   request counter, with `rate()` semantics and counter resets on reload.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use burst_core::{MetricSource, Split, TrafficRouter};
//! use burst_haproxy::{HaproxyRouter, HaproxySource, HaproxyTarget, RuntimeClient};
//!
//! let api = RuntimeClient::new("unix:/run/haproxy/admin.sock".parse()?);
//! let router = HaproxyRouter::new(api.clone(), HaproxyTarget::new("app", "onprem", "cloud")?);
//! router.apply(Split::try_new(80, 20)?).await?;
//! let source = HaproxySource::new(vec![api], "app", Duration::from_secs(15), None)?;
//! println!("{:?}", source.observe().await?);
//! # Ok(()) }
//! ```
//!
//! No feature flags. See `docs/haproxy.md` for the HAProxy configuration.

mod error;
pub mod router;
pub mod runtime;
pub mod source;
pub mod weights;

pub use error::Error;
pub use router::{HaproxyRouter, HaproxyTarget, InstanceReport, MultiInstanceRouter, ServersState};
pub use runtime::{RuntimeAddr, RuntimeClient};
pub use source::HaproxySource;
pub use weights::{ServerWeights, to_weights};
