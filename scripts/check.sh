#!/usr/bin/env bash
# The project's whole check: formatting, lints, and every test.
# Tests that need real servers (prometheus, redis-server, haproxy, chromium) fail with the
# install command when the server is missing; scripts/setup.sh (run by scripts/test.sh,
# README's test command) installs them first. The Kubernetes tests
# run against a real etcd + kube-apiserver built from their Go modules: the first step
# builds them once into a cache outside the checkout (needs Go; several minutes the first
# time, under a second after that).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/control-plane.sh build
# rustfmt and clippy are rustup components; a toolchain without them (they cannot always be
# fetched) runs every other check and says loudly, at the start and the end, what it skipped.
skipped=()
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
else
  skipped+=("cargo fmt (rustfmt is not installed: rustup component add rustfmt)")
fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --locked -- -D warnings
else
  skipped+=("cargo clippy (clippy is not installed: rustup component add clippy)")
fi
report_skipped() {
  for s in "${skipped[@]}"; do echo "!!! SKIPPED: $s" >&2; done
}
[ "${#skipped[@]}" -eq 0 ] || { report_skipped; trap report_skipped EXIT; }
# `--all-targets` compiles examples as tests; examples/tests runs the example binaries, so
# build those first.
cargo build --workspace --examples --locked
cargo test --workspace --all-targets --locked --no-fail-fast
cargo test --workspace --doc --locked
