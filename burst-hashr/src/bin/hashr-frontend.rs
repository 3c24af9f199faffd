//! `hashr-frontend`: the String Hashr frontend (page, load generator, relay) for deployment.
//!
//! Environment: `PORT` (default 8080), `PROCESSOR_URL` (default `http://127.0.0.1:8081/`),
//! `REDIS_URL` (`host:port` or `redis://...`), `MAX_FREQUENCY` (default 5000),
//! `CONCURRENCY` (default 256), `RUST_LOG`.

mod common;

use std::process::ExitCode;

const USAGE: &str = "\
hashr-frontend: the String Hashr frontend. Serves the page, generates load against the
worker at the rate the page (POST /api/frequency) asks for, and relays the hashes it receives
on Redis channel `calculation` to the page as server-sent events.

Usage: hashr-frontend          (configured by environment variables only)

Environment:
  PORT           port to listen on (default 8080)
  PROCESSOR_URL  the worker (or the mesh route in front of it) (default http://127.0.0.1:8081/)
  REDIS_URL      Redis to subscribe on: host:port or redis://...; unset: an in-process bus
  MAX_FREQUENCY  highest rate the page may ask for, requests/s (default 5000)
  CONCURRENCY    requests in flight at most (default 256)
  RUST_LOG       log filter (default info)";

fn main() -> ExitCode {
    common::serve(
        USAGE,
        burst_hashr::config::FrontendEnv::from_env,
        burst_hashr::frontend::run,
    )
}
