#!/usr/bin/env bash
# burstd at scale: the release burstd binary in operator mode with BENCH_POLICIES
# BurstPolicies (default 1000) against a real kube-apiserver + etcd (a fresh control plane
# per run, built by scripts/control-plane.sh) and /metrics endpoints served by the bench
# process, 1 s tick. Prints CPU per tick, peak RSS (VmHWM) and the tick
# latency p50/p99 from burstd's own histogram, per run and as medians.
#
#   scripts/bench-burstd-scale.sh                                  # 3 runs of 60 s after 20 s warm-up
#   BENCH_REPS=5 BENCH_POLICIES=100 scripts/bench-burstd-scale.sh
#   BASELINE=/path/to/older/burstd scripts/bench-burstd-scale.sh   # A/B in the same session
#
# With BASELINE, the older binary and the freshly built one take turns in every round, and
# the table gives both medians and the ratio current / baseline. To keep a baseline before
# changing the code: build, then `cp "$CARGO_TARGET_DIR/release/burstd" /tmp/burstd-baseline`.
source "$(dirname "$0")/bench-common.sh"

REPS="${BENCH_REPS:-3}"
SECS="${BENCH_SECS:-60}"
WARMUP="${BENCH_WARMUP:-20}"
POLICIES="${BENCH_POLICIES:-1000}"

"$ROOT/scripts/control-plane.sh" build >/dev/null
echo "building the release burstd and burstd-scale..." >&2
# Two builds: one `cargo build` of both would unify their features and change burstd.
(cd "$ROOT" && cargo build --release -q -p burst-bin --bin burstd \
  && cargo build --release -q -p burst-benches --bin burstd-scale)

args=(--policies "$POLICIES" --secs "$SECS" --warmup "$WARMUP" --runs "$REPS")
if [ -n "${BASELINE:-}" ]; then
  [ -x "$BASELINE" ] || { echo "error: BASELINE=$BASELINE is not an executable burstd" >&2; exit 2; }
  args+=(--burstd "baseline=$BASELINE")
fi
args+=(--burstd "current=$RELEASE/burstd")
"$RELEASE/burstd-scale" "${args[@]}"
