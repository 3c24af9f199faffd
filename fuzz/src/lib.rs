//! Oracles of the burst fuzz targets that live in this crate (the parser targets use the
//! oracles of `burst-faults`, included by path).
//!
//! [`routes`] (feature `istio`) checks burst-istio's VirtualService and HTTPRoute
//! transforms against an independent model of their rules:
//!
//! ```ignore
//! // fuzz_targets/vs_transform.rs
//! libfuzzer_sys::fuzz_target!(|data: &[u8]| {
//!     if let Err(e) = burst_fuzz::routes::vs_input(data) {
//!         panic!("{e}");
//!     }
//! });
//! ```
//!
//! The oracles' own tests run without libFuzzer: `cargo test --features istio` here.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "istio")]
pub mod routes;
