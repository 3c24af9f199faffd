#!/usr/bin/env bash
# Helpers shared by scripts/bench-*.sh (sourced, not run). Every process started here is
# remembered by its pid and stopped by that pid on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
RELEASE="$TARGET/release"
WRK_LUA="$ROOT/benches/wrk/post_hash.lua"
STARTED_PIDS=()
WORK_DIR="$(mktemp -d)"

cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${STARTED_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK_DIR"
}
trap cleanup EXIT

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "error: $1 is not installed: apt-get update && apt-get install -y --no-install-recommends $2" >&2
    exit 2
  }
}

# A TCP port on 127.0.0.1 that nothing listens on.
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "error: no free port found" >&2
  return 1
}

# wait_http URL [seconds]: polls until URL answers 2xx.
wait_http() {
  local url="$1" secs="${2:-20}"
  for _ in $(seq 1 $((secs * 10))); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "error: $url did not answer within ${secs}s" >&2
  return 1
}

# start_redis: sets REDIS_PORT; redis runs on the cpus in $REDIS_CPUS (default: any).
start_redis() {
  need redis-server redis-server
  REDIS_PORT="$(free_port)"
  mkdir -p "$WORK_DIR/redis"
  taskset -c "${REDIS_CPUS:-0-$(($(nproc) - 1))}" redis-server --bind 127.0.0.1 \
    --port "$REDIS_PORT" --save '' --appendonly no --dir "$WORK_DIR/redis" \
    >"$WORK_DIR/redis.log" 2>&1 &
  STARTED_PIDS+=($!)
  for _ in $(seq 1 100); do
    if redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then return 0; fi
    sleep 0.1
  done
  echo "error: redis-server did not start; log:" >&2
  cat "$WORK_DIR/redis.log" >&2
  return 1
}

# start_worker CPUS [REDIS_URL]: starts the release hashr-worker pinned to CPUS; sets
# WORKER_PID and WORKER_URL.
start_worker() {
  local cpus="$1" redis="${2:-}" port
  port="$(free_port)"
  if [ -n "$redis" ]; then
    PORT="$port" REDIS_URL="$redis" RUST_LOG=warn taskset -c "$cpus" \
      "$RELEASE/hashr-worker" >"$WORK_DIR/worker-$port.log" 2>&1 &
  else
    PORT="$port" RUST_LOG=warn taskset -c "$cpus" \
      "$RELEASE/hashr-worker" >"$WORK_DIR/worker-$port.log" 2>&1 &
  fi
  WORKER_PID=$!
  STARTED_PIDS+=("$WORKER_PID")
  WORKER_URL="http://127.0.0.1:$port/"
  wait_http "${WORKER_URL}_healthz"
}

# stop_pid PID: stops one process this script started.
stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Peak resident set size of PID in MiB (VmHWM).
peak_rss_mib() {
  awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# CPU seconds (user + system) PID has used so far.
cpu_secs() {
  local tck
  tck="$(getconf CLK_TCK)"
  # Fields after the command name (in parentheses); utime and stime are the 12th and 13th.
  sed 's/^.*) //' "/proc/$1/stat" | awk -v t="$tck" '{ printf "%.3f", ($12 + $13) / t }'
}

# run_wrk CPUS THREADS CONNS SECS URL: prints the WRK_RESULT line's fields.
run_wrk() {
  local cpus="$1" threads="$2" conns="$3" secs="$4" url="$5"
  taskset -c "$cpus" wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 5s -s "$WRK_LUA" "$url" \
    | grep '^WRK_RESULT' | sed 's/^WRK_RESULT //'
}

# field NAME "k=v k=v ...": the value of NAME.
field() {
  tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'
}

# median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

load_note() {
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'))"
}
