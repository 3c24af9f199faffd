#!/usr/bin/env bash
# Worker throughput, latency and peak RSS: wrk POSTs {"str": ...} to the release
# hashr-worker, pinned to 1 core (cpu 0; wrk and redis on cpu 1) and to 2 cores (everything
# shares both), publishing through a real redis-server and through the in-process bus.
#
#   scripts/bench-worker.sh                        # 3 runs of 10 s per configuration
#   BENCH_REPS=5 BENCH_SECS=20 scripts/bench-worker.sh
#
# Prints a Markdown table of medians (requests/s, p50, p99), the worker's CPU time per
# request (all measured runs of the row: the figure that depends least on what else runs on
# the machine) and its peak RSS (VmHWM after all runs, fresh process per configuration).
source "$(dirname "$0")/bench-common.sh"

REPS="${BENCH_REPS:-3}"
SECS="${BENCH_SECS:-10}"
CONNS="${BENCH_CONNS:-64}"

need wrk wrk
need taskset util-linux
[ "$(nproc)" -ge 2 ] || { echo "error: needs at least 2 cores" >&2; exit 2; }

echo "building the release hashr-worker..." >&2
(cd "$ROOT" && cargo build --release -q -p burst-hashr --bin hashr-worker)

REDIS_CPUS=1 start_redis
echo "$(load_note)"
echo "wrk -t2 -c$CONNS, $REPS runs of ${SECS}s per row, body {\"str\": <43 bytes>}"
echo
echo "| worker cores | bus | requests/s (median) | p50 | p99 | worker CPU per request | errors | peak RSS |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"

for cores in 1 2; do
  for bus in redis memory; do
    if [ "$cores" = 1 ]; then wcpus=0; lcpus=1; else wcpus=0,1; lcpus=0,1; fi
    if [ "$bus" = redis ]; then
      start_worker "$wcpus" "redis://127.0.0.1:$REDIS_PORT/"
    else
      start_worker "$wcpus"
    fi
    run_wrk "$lcpus" 2 "$CONNS" 2 "$WORKER_URL" >/dev/null # warm-up
    rps=(); p50=(); p99=(); errors=0; total=0
    cpu0="$(cpu_secs "$WORKER_PID")"
    for i in $(seq 1 "$REPS"); do
      r="$(run_wrk "$lcpus" 2 "$CONNS" "$SECS" "$WORKER_URL")"
      echo "  cores=$cores bus=$bus run=$i $r" >&2
      rps+=("$(field rps "$r")")
      total=$((total + $(field requests "$r")))
      p50+=("$(field p50_us "$r")")
      p99+=("$(field p99_us "$r")")
      for k in errors_connect errors_read errors_write errors_timeout non2xx; do
        errors=$((errors + $(field "$k" "$r")))
      done
    done
    cpu1="$(cpu_secs "$WORKER_PID")"
    rss="$(peak_rss_mib "$WORKER_PID")"
    stop_pid "$WORKER_PID"
    printf '| %s | %s | %.0f | %.2f ms | %.2f ms | %.1f µs | %d | %s MiB |\n' "$cores" "$bus" \
      "$(median "${rps[@]}")" "$(echo "$(median "${p50[@]}") / 1000" | bc -l)" \
      "$(echo "$(median "${p99[@]}") / 1000" | bc -l)" \
      "$(echo "($cpu1 - $cpu0) * 1000000 / $total" | bc -l)" "$errors" "$rss"
  done
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
