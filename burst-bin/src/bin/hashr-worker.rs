//! `hashr-worker`: the String Hashr worker for deployment.
//!
//! Environment: `PORT` (default 8081), `REDIS_URL` (`host:port` or `redis://...`),
//! `PREFIX` (e.g. `bursty-`), `BODY_LIMIT_BYTES` (default 65536), `RUST_LOG`.
//! The hour mixed into each hash is the local hour of the `TZ` time zone (UTC if unset).

mod common;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::serve(
        burst_hashr::config::WorkerEnv::from_env(),
        burst_hashr::worker::run,
    )
}
