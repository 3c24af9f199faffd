//! # burst-hashr
//!
//! String Hashr, the demo application of burst, re-built to be wire-compatible with the
//! original and safe to load:
//!
//! - [`worker`]: `POST /` `{"str": "..."}` → salted SHA-256 ([`hash`]) published on channel
//!   `calculation`; 200 only after the publish succeeded, 503 while Redis is down.
//! - [`frontend`]: the page, a server-side load generator accurate from 1 to 5,000 requests
//!   per second, and a relay of published hashes to browsers over Server-Sent Events.
//! - [`pubsub`]: the [`pubsub::PubSub`] capability with a Redis implementation that
//!   reconnects and resubscribes, and an in-process one for running with nothing installed.
//! - [`mesh`]: a loopback reverse proxy that plays the service mesh: it splits requests
//!   between a primary and a burst upstream, counts them as `istio_requests_total`, and its
//!   split is changed through [`mesh::MeshRouter`], a `burst_core::TrafficRouter`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use burst_core::{Split, TrafficRouter};
//! use burst_hashr::mesh::{Mesh, MeshConfig};
//!
//! let primary = url::Url::parse("http://127.0.0.1:8081/")?;
//! let burst = url::Url::parse("http://127.0.0.1:8082/")?;
//! let mesh = Mesh::new(MeshConfig::new(primary, burst))?;
//! mesh.router().apply(Split::try_new(70, 30)?).await?;
//! assert_eq!(mesh.split(), Split::try_new(70, 30)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! No feature flags. The deployable binaries `hashr-worker` and `hashr-frontend`
//! (`src/bin/`, configured by environment variables) run these servers until SIGTERM.

mod error;

pub mod config;
pub mod faults;
pub mod frontend;
pub mod hash;
pub mod http;
pub mod mesh;
pub mod pubsub;
pub mod worker;

pub use error::Error;
