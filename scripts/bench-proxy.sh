#!/usr/bin/env bash
# Latency the local mesh proxy adds, and its highest throughput: wrk against the release
# hashr-worker (real redis-server) directly, through `mesh-proxy` (benches/src/bin) and
# through a real HAProxy (`haproxy -db`, one frontend, one backend with the worker as its only
# server, `balance roundrobin`, no logging), in alternating runs so all three see the same
# machine load.
#
#   scripts/bench-proxy.sh                     # 5 paired runs of 10 s per load
#   BENCH_REPS=3 BENCH_SECS=5 scripts/bench-proxy.sh
#   BENCH_NO_BUILD=1 scripts/bench-proxy.sh   # skip `cargo build` (binaries already built)
#
# Loads: "paced" = 5 connections each waiting 10 ms between requests (about 400-500 req/s,
# well below saturation: the latency figures mean something), "max" = 64 connections as fast
# as possible (throughput).
source "$(dirname "$0")/bench-common.sh"

REPS="${BENCH_REPS:-5}"
SECS="${BENCH_SECS:-10}"

need wrk wrk
HAPROXY="${HAPROXY:-/usr/sbin/haproxy}"
[ -x "$HAPROXY" ] || {
  echo "error: $HAPROXY is not installed: apt-get update && apt-get install -y --no-install-recommends haproxy" >&2
  exit 2
}

# BENCH_NO_BUILD=1: use the release binaries already in $CARGO_TARGET_DIR as they are.
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  echo "building the release hashr-worker and mesh-proxy..." >&2
  (cd "$ROOT" && cargo build --release -q -p burst-hashr --bin hashr-worker &&
    cargo build --release -q -p burst-benches --bin mesh-proxy)
fi

start_redis
start_worker 0,1 "redis://127.0.0.1:$REDIS_PORT/"
PROXY_PORT="$(free_port)"
"$RELEASE/mesh-proxy" "$PROXY_PORT" "$WORKER_URL" "$WORKER_URL" >"$WORK_DIR/proxy.log" 2>&1 &
PROXY_PID=$!
STARTED_PIDS+=("$PROXY_PID")
PROXY_URL="http://127.0.0.1:$PROXY_PORT/"
wait_http "$PROXY_URL"

# HAProxy: the worker as the only server of one backend; no log directive (no logging).
HAP_PORT="$(free_port)"
WORKER_ADDR="${WORKER_URL#http://}"
WORKER_ADDR="${WORKER_ADDR%/}"
cat >"$WORK_DIR/haproxy.cfg" <<EOF
global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend bench
    bind 127.0.0.1:$HAP_PORT
    default_backend workers

backend workers
    balance roundrobin
    server worker $WORKER_ADDR
EOF
"$HAPROXY" -c -q -f "$WORK_DIR/haproxy.cfg" >&2
"$HAPROXY" -db -f "$WORK_DIR/haproxy.cfg" >"$WORK_DIR/haproxy.log" 2>&1 &
HAP_PID=$!
STARTED_PIDS+=("$HAP_PID")
HAP_URL="http://127.0.0.1:$HAP_PORT/"
wait_http "${HAP_URL}_healthz"

echo "$(load_note)"
echo "$REPS rounds of ${SECS}s runs per load (direct, proxy, haproxy alternating); worker on 2 cores with redis; proxy split 100/0"
echo
echo "| load | path | requests/s (median) | p50 | p99 | errors |"
echo "|---|---|---:|---:|---:|---:|"

PATHS=(direct proxy haproxy)
declare -A P50 P99 RPS PCPU HCPU
for load in paced max; do
  if [ "$load" = paced ]; then
    export WRK_DELAY_MS=10; threads=1; conns=5
  else
    export WRK_DELAY_MS=0; threads=2; conns=64
  fi
  run_wrk 0,1 "$threads" "$conns" 2 "$WORKER_URL" >/dev/null # warm-up
  run_wrk 0,1 "$threads" "$conns" 2 "$PROXY_URL" >/dev/null
  run_wrk 0,1 "$threads" "$conns" 2 "$HAP_URL" >/dev/null
  declare -A rps=() p50=() p99=() errors=()
  proxied=0
  hproxied=0
  pcpu0="$(cpu_secs "$PROXY_PID")"
  hcpu0="$(cpu_secs "$HAP_PID")"
  for i in $(seq 1 "$REPS"); do
    for path in "${PATHS[@]}"; do
      case "$path" in
        direct) url="$WORKER_URL" ;;
        proxy) url="$PROXY_URL" ;;
        haproxy) url="$HAP_URL" ;;
      esac
      r="$(run_wrk 0,1 "$threads" "$conns" "$SECS" "$url")"
      echo "  load=$load path=$path run=$i $r" >&2
      rps[$path]+=" $(field rps "$r")"
      [ "$path" = proxy ] && proxied=$((proxied + $(field requests "$r")))
      [ "$path" = haproxy ] && hproxied=$((hproxied + $(field requests "$r")))
      p50[$path]+=" $(field p50_us "$r")"
      p99[$path]+=" $(field p99_us "$r")"
      e=0
      for k in errors_connect errors_read errors_write errors_timeout non2xx; do
        e=$((e + $(field "$k" "$r")))
      done
      errors[$path]=$((${errors[$path]:-0} + e))
    done
  done
  # Each proxy is idle during the other arms' runs: its CPU time is its proxied requests'.
  PCPU[$load]="$(echo "($(cpu_secs "$PROXY_PID") - $pcpu0) * 1000000 / $proxied" | bc -l)"
  HCPU[$load]="$(echo "($(cpu_secs "$HAP_PID") - $hcpu0) * 1000000 / $hproxied" | bc -l)"
  for path in "${PATHS[@]}"; do
    # shellcheck disable=SC2086
    m50="$(median ${p50[$path]})"; m99="$(median ${p99[$path]})"; mrps="$(median ${rps[$path]})"
    P50[$load,$path]="$m50"; P99[$load,$path]="$m99"; RPS[$load,$path]="$mrps"
    printf '| %s | %s | %.0f | %.2f ms | %.2f ms | %d |\n' "$load" "$path" "$mrps" \
      "$(echo "$m50 / 1000" | bc -l)" "$(echo "$m99 / 1000" | bc -l)" "${errors[$path]}"
  done
done
echo
for path in proxy haproxy; do
  printf 'added latency (paced, %s - direct): p50 %+.2f ms, p99 %+.2f ms\n' "$path" \
    "$(echo "(${P50[paced,$path]} - ${P50[paced,direct]}) / 1000" | bc -l)" \
    "$(echo "(${P99[paced,$path]} - ${P99[paced,direct]}) / 1000" | bc -l)"
  printf 'max throughput through %s: %.0f%% of direct\n' "$path" \
    "$(echo "${RPS[max,$path]} / ${RPS[max,direct]} * 100" | bc -l)"
done
printf 'max throughput, built-in proxy / HAProxy: %.2f\n' \
  "$(echo "${RPS[max,proxy]} / ${RPS[max,haproxy]}" | bc -l)"
printf 'proxy CPU per proxied request: %.1f µs (paced), %.1f µs (max)\n' "${PCPU[paced]}" "${PCPU[max]}"
printf 'HAProxy CPU per proxied request: %.1f µs (paced), %.1f µs (max)\n' "${HCPU[paced]}" "${HCPU[max]}"
echo "proxy peak RSS: $(peak_rss_mib "$PROXY_PID") MiB; HAProxy peak RSS: $(peak_rss_mib "$HAP_PID") MiB; worker peak RSS: $(peak_rss_mib "$WORKER_PID") MiB"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
