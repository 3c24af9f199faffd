//! # burst-faults
//!
//! The fault suite of burst: integration tests that break what burst talks to, on purpose
//! and in a loop, and check that nothing invalid is written and nothing is lost. The results
//! (what was tried, how many times) are recorded in `docs/reliability.md`.
//!
//! This library holds the tools the tests share:
//!
//! - [`proxy::FaultProxy`]: an HTTP proxy on loopback whose behaviour can be switched while
//!   it runs (pass through, delay, answer a status, answer a canned body, truncate the
//!   upstream's body, drop the connection, refuse connections);
//! - [`prom::RestartablePrometheus`]: a real `prometheus` child process that can be killed
//!   and started again on the same port with the same data;
//! - [`tally::Family`]: counts cases, injected faults and writes, and prints the
//!   `<family>: N passed, N failed` summary line;
//! - [`raw`]: a raw HTTP/1.1 client for requests no well-behaved client would send;
//! - [`oracles`]: what must hold for any input to the parsers and transforms, shared by the
//!   cargo-fuzz targets in `fuzz/` and the property tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! use burst_faults::proxy::{Behaviour, FaultProxy};
//!
//! let proxy = FaultProxy::start("http://127.0.0.1:9090").await?;
//! proxy.set(Behaviour::Status(500, "boom".into()));
//! // ...point a client at proxy.url() and watch it fail...
//! proxy.set(Behaviour::Pass);
//! # Ok(()) }
//! ```
//!
//! The crate is test-only (`publish = false`); its tests are the suite:
//! `cargo test -p burst-faults`. `BURST_FAULTS_BUDGET_SECS` makes every family loop over
//! its cases for that many seconds instead of its short default. No feature flags.

pub mod oracles;
mod policy_oracle;
pub mod prom;
mod prom_oracle;
pub mod proxy;
pub mod raw;
pub mod tally;

use std::time::Duration;

/// How long each family loops over its cases: `BURST_FAULTS_BUDGET_SECS`, else `default`.
pub fn budget(default: Duration) -> Duration {
    std::env::var("BURST_FAULTS_BUDGET_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(default, Duration::from_secs)
}
