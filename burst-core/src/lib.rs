//! # burst-core
//!
//! The pure heart of **burst**: value types that cannot hold invalid states, the two
//! capabilities adapters implement ([`MetricSource`], [`TrafficRouter`], and
//! [`CapacityScaler`] for [pre-warming](scaler)), decision
//! [`policy`] objects, the [`Controller`] loop that wires them, and a deterministic
//! [`sim`]ulator.
//!
//! This crate does no IO: no Kubernetes, no HTTP. Policies take time as an argument,
//! so every rule is unit- and property-testable, and simulations are exact.
//!
//! ```
//! use burst_core::policy::{Policy, PolicySpec, Signal};
//! use burst_core::{Rate, Rates, Split, Timestamp};
//!
//! let mut policy = PolicySpec::default().build()?; // the seed: hysteresis 15/10
//! let busy = Signal::Rates(Rates::single(Rate::try_new("rps", 20.0)?));
//! let decision = policy.decide(&busy, Split::ALL_PRIMARY, Timestamp::ZERO);
//! assert_eq!(decision.desired, Split::ALL_BURST);
//! println!("{}", decision.reason); // above_high: rate 20.000, split 100/0 (...)
//! # Ok::<(), burst_core::Error>(())
//! ```
//!
//! Features (none is on by default, so an embedder pays only for what it uses):
//!
//! | feature | adds |
//! |---|---|
//! | `yaml` | [`PolicyFile::from_yaml`](policy::PolicyFile::from_yaml) and `to_yaml` |
//! | `schema` | JSON schemas (`schemars`) of the policy model, with the CRD's CEL rules |
//! | `test-util` | [`testing`]: in-memory [`MetricSource`], [`TrafficRouter`] and [`CapacityScaler`] fakes |

mod duration;
mod error;
mod router;
mod source;
mod sync;
mod types;

pub mod controller;
pub mod fanout;
pub mod forecast;
pub mod policy;
pub mod rate;
pub mod scaler;
pub mod signals;
pub mod sim;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use controller::{
    Controller, ControllerConfig, NoObserver, Outcome, Stopped, TickObserver, TickReport,
};
pub use duration::HumanDuration;
pub use error::{BoxError, Error, RouterError, ScalerError, SourceError, error_chain};
pub use router::TrafficRouter;
pub use scaler::CapacityScaler;
pub use signals::{Millis, Ratio, Signals};
pub use source::{MetricSource, Reading};
pub use sync::lock;
pub use types::{Observation, Rate, Rates, Split, Thresholds, Timestamp, Weight};
