#!/usr/bin/env bash
# The project's whole check: formatting, lints, and every test.
# Tests that need real servers (prometheus, redis-server, chromium) fail with the install
# command when the server is missing; `.ci/run` installs them first.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked --no-fail-fast
cargo test --workspace --doc --locked
