#!/usr/bin/env bash
# Bounded cargo-fuzz runs of every target in fuzz/ (see fuzz/README.md and the Fuzzing
# section of docs/reliability.md).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     default 30
#
# Builds all targets once (AddressSanitizer on, features `prom,istio` so every run shares
# one build), then runs each on its kept corpus (fuzz/corpus/<target>, git-ignored) and its
# seeds (fuzz/seeds/<target>) for the given time. A crash, leak, timeout or oracle failure
# fails the target; its input is kept in fuzz/artifacts/<target>/. Every target runs even
# when an earlier one failed; the last line is `N passed, N failed`.
#
# Only the stable toolchain is needed: cargo-fuzz's nightly flags are accepted with
# RUSTC_BOOTSTRAP=1. cargo-fuzz is installed from crates.io when missing.
set -euo pipefail

secs="${1:-30}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS_PER_TARGET] (a whole number of seconds above 0, default 30); got '$secs'" >&2
  exit 2
fi

cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
# The fuzz workspace keeps its own target dir (fuzz/target); a CARGO_TARGET_DIR meant for
# the main workspace would mix sanitizer builds into it.
unset CARGO_TARGET_DIR
features=prom,istio
targets=(policy_yaml exposition prom_response vs_transform httproute_transform)

start=$SECONDS
cargo fuzz build --features "$features"
echo "fuzz: built ${#targets[@]} targets in $((SECONDS - start)) s"

passed=0
failed=0
failures=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  extra=()
  case "$t" in
    vs_transform | httproute_transform) extra=(-dict=dicts/routes.dict) ;;
  esac
  log="$(mktemp)"
  echo "fuzz: $t for ${secs} s"
  if cargo fuzz run --features "$features" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=30 -print_final_stats=1 "${extra[@]}" >"$log" 2>&1; then
    passed=$((passed + 1))
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)"
    units="$(find "corpus/$t" -type f | wc -l)"
    echo "fuzz: $t ok: ${runs:-?} executions, ${rate:-?} exec/s, corpus ${units} inputs"
  else
    failed=$((failed + 1))
    failures+=("$t")
    echo "fuzz: $t FAILED; what libFuzzer reported (inputs in fuzz/artifacts/$t/):"
    grep -A3 -E "panicked at|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)" "$log" | head -n 40 || true
    grep -E "^SUMMARY|Test unit written|^error" "$log" || tail -n 30 "$log"
  fi
  rm -f "$log"
done

if [ "$failed" -gt 0 ]; then
  echo "fuzz: failed: ${failures[*]}"
fi
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
