#!/usr/bin/env bash
# Latency the local mesh proxy adds, and its highest throughput: wrk against the release
# hashr-worker (real redis-server) directly and through `mesh-proxy` (benches/src/bin), in
# alternating runs so both see the same machine load.
#
#   scripts/bench-proxy.sh                     # 5 paired runs of 10 s per load
#   BENCH_REPS=3 BENCH_SECS=5 scripts/bench-proxy.sh
#
# Loads: "paced" = 5 connections each waiting 10 ms between requests (about 400-500 req/s,
# well below saturation: the latency figures mean something), "max" = 64 connections as fast
# as possible (throughput).
source "$(dirname "$0")/bench-common.sh"

REPS="${BENCH_REPS:-5}"
SECS="${BENCH_SECS:-10}"

need wrk wrk

echo "building the release hashr-worker and mesh-proxy..." >&2
(cd "$ROOT" && cargo build --release -q -p burst-hashr --bin hashr-worker &&
  cargo build --release -q -p burst-benches --bin mesh-proxy)

start_redis
start_worker 0,1 "redis://127.0.0.1:$REDIS_PORT/"
PROXY_PORT="$(free_port)"
"$RELEASE/mesh-proxy" "$PROXY_PORT" "$WORKER_URL" "$WORKER_URL" >"$WORK_DIR/proxy.log" 2>&1 &
PROXY_PID=$!
STARTED_PIDS+=("$PROXY_PID")
PROXY_URL="http://127.0.0.1:$PROXY_PORT/"
wait_http "$PROXY_URL"

echo "$(load_note)"
echo "$REPS paired runs of ${SECS}s per load; worker on 2 cores with redis; proxy split 100/0"
echo
echo "| load | path | requests/s (median) | p50 | p99 | errors |"
echo "|---|---|---:|---:|---:|---:|"

declare -A P50 P99 RPS PCPU
for load in paced max; do
  if [ "$load" = paced ]; then
    export WRK_DELAY_MS=10; threads=1; conns=5
  else
    export WRK_DELAY_MS=0; threads=2; conns=64
  fi
  run_wrk 0,1 "$threads" "$conns" 2 "$WORKER_URL" >/dev/null # warm-up
  run_wrk 0,1 "$threads" "$conns" 2 "$PROXY_URL" >/dev/null
  declare -A rps=() p50=() p99=() errors=()
  proxied=0
  pcpu0="$(cpu_secs "$PROXY_PID")"
  for i in $(seq 1 "$REPS"); do
    for path in direct proxy; do
      url="$WORKER_URL"; [ "$path" = proxy ] && url="$PROXY_URL"
      r="$(run_wrk 0,1 "$threads" "$conns" "$SECS" "$url")"
      echo "  load=$load path=$path run=$i $r" >&2
      rps[$path]+=" $(field rps "$r")"
      [ "$path" = proxy ] && proxied=$((proxied + $(field requests "$r")))
      p50[$path]+=" $(field p50_us "$r")"
      p99[$path]+=" $(field p99_us "$r")"
      e=0
      for k in errors_connect errors_read errors_write errors_timeout non2xx; do
        e=$((e + $(field "$k" "$r")))
      done
      errors[$path]=$((${errors[$path]:-0} + e))
    done
  done
  # The proxy is idle during the direct runs: its CPU time is the proxied requests'.
  PCPU[$load]="$(echo "($(cpu_secs "$PROXY_PID") - $pcpu0) * 1000000 / $proxied" | bc -l)"
  for path in direct proxy; do
    # shellcheck disable=SC2086
    m50="$(median ${p50[$path]})"; m99="$(median ${p99[$path]})"; mrps="$(median ${rps[$path]})"
    P50[$load,$path]="$m50"; P99[$load,$path]="$m99"; RPS[$load,$path]="$mrps"
    printf '| %s | %s | %.0f | %.2f ms | %.2f ms | %d |\n' "$load" "$path" "$mrps" \
      "$(echo "$m50 / 1000" | bc -l)" "$(echo "$m99 / 1000" | bc -l)" "${errors[$path]}"
  done
done
echo
printf 'added latency (paced, proxy - direct): p50 %+.2f ms, p99 %+.2f ms\n' \
  "$(echo "(${P50[paced,proxy]} - ${P50[paced,direct]}) / 1000" | bc -l)" \
  "$(echo "(${P99[paced,proxy]} - ${P99[paced,direct]}) / 1000" | bc -l)"
printf 'max throughput through the proxy: %.0f%% of direct\n' \
  "$(echo "${RPS[max,proxy]} / ${RPS[max,direct]} * 100" | bc -l)"
printf 'proxy CPU per proxied request: %.1f µs (paced), %.1f µs (max)\n' "${PCPU[paced]}" "${PCPU[max]}"
echo "proxy peak RSS: $(peak_rss_mib "$PROXY_PID") MiB; worker peak RSS: $(peak_rss_mib "$WORKER_PID") MiB"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
