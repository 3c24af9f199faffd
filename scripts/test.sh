#!/usr/bin/env bash
# Every check and test of the project, on a fresh machine of our kind: README's test command.
#
#   scripts/test.sh              set up what is missing, then run everything
#   scripts/test.sh --fuzz N     seconds per fuzz target (default 30)
#
# 1. scripts/setup.sh: installs the Debian and PyPI packages the tests need (as root;
#    otherwise it prints the command to run) and builds the Kubernetes control plane once.
# 2. scripts/check.sh: formatting, clippy, every unit, property, integration and doc test.
# 3. scripts/deny.sh: licenses, bans, sources (and RustSec advisories when reachable).
# 4. The fuzz targets' oracle tests, then bounded cargo-fuzz runs of every target.
# `.ci/run` is this script.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz_secs=30
while [ $# -gt 0 ]; do
  case "$1" in
    --fuzz)
      fuzz_secs="${2:-}"
      shift 2 || { echo "test.sh: --fuzz needs a number of seconds" >&2; exit 2; }
      ;;
    -h | --help)
      sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "test.sh: unknown argument '$1' (see --help)" >&2
      exit 2
      ;;
  esac
done

step() { echo; echo "==> $* ($(date -u +%H:%M:%S))"; }

step "setup: packages and the control plane"
./scripts/setup.sh
step "check: fmt, clippy, tests"
./scripts/check.sh
step "deny: dependency policy"
./scripts/deny.sh
step "fuzz: oracle tests"
(cd fuzz && cargo test --locked --features istio)
step "fuzz: ${fuzz_secs}s per target"
./scripts/fuzz.sh "$fuzz_secs"
step "all checks passed"
