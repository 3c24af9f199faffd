#!/usr/bin/env bash
# The project's whole check: formatting, lints, and every test.
# Tests that need real servers (prometheus, redis-server, chromium) fail with the install
# command when the server is missing; `.ci/run` installs them first. The Kubernetes tests
# run against a real etcd + kube-apiserver built from their Go modules: the first step
# builds them once into a cache outside the checkout (needs Go; several minutes the first
# time, under a second after that).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/control-plane.sh build
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# `--all-targets` compiles examples as tests; examples/tests runs the example binaries, so
# build those first.
cargo build --workspace --examples --locked
cargo test --workspace --all-targets --locked --no-fail-fast
cargo test --workspace --doc --locked
