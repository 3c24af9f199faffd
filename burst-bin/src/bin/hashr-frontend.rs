//! `hashr-frontend`: the String Hashr frontend (page, load generator, relay) for deployment.
//!
//! Environment: `PORT` (default 8080), `PROCESSOR_URL` (default `http://127.0.0.1:8081/`),
//! `REDIS_URL` (`host:port` or `redis://...`), `MAX_FREQUENCY` (default 5000),
//! `CONCURRENCY` (default 256), `RUST_LOG`.

mod common;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::serve(
        burst_hashr::config::FrontendEnv::from_env(),
        burst_hashr::frontend::run,
    )
}
