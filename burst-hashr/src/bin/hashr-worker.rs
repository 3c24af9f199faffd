//! `hashr-worker`: the String Hashr worker for deployment.
//!
//! Environment: `PORT` (default 8081), `REDIS_URL` (`host:port` or `redis://...`),
//! `PREFIX` (e.g. `bursty-`), `BODY_LIMIT_BYTES` (default 65536), `RUST_LOG`.
//! The hour mixed into each hash is the local hour of the `TZ` time zone (UTC if unset).

mod common;

use std::process::ExitCode;

const USAGE: &str = "\
hashr-worker: the String Hashr worker. POST / with {\"str\": \"...\"} hashes the string,
publishes the hash on Redis channel `calculation` and answers 200 (503 when it could not
publish). GET /_healthz, GET /metrics.

Usage: hashr-worker            (configured by environment variables only)

Environment:
  PORT              port to listen on (default 8081)
  REDIS_URL         Redis to publish on: host:port or redis://...; unset: an in-process bus
  PREFIX            prefix of every hash, e.g. bursty- on the burst cluster (default none)
  BODY_LIMIT_BYTES  largest request body accepted (default 65536)
  TZ                time zone of the hour mixed into each hash (default UTC)
  RUST_LOG          log filter (default info)";

fn main() -> ExitCode {
    common::serve(
        USAGE,
        burst_hashr::config::WorkerEnv::from_env,
        burst_hashr::worker::run,
    )
}
