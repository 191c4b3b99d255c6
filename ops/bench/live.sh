#!/usr/bin/env bash
# Live positions through the real server (docs/performance.md, "Live positions"):
#   1. ingest: AGENTS agent streams (default 1,000) send batches of BATCH positions (default
#      100) as fast as acks come back; positions persisted per second, then PostgreSQL's own
#      COPY of as many rows into the same table (the ceiling), in the same run;
#   2. watch: AGENTS agents at one fix per second and 20 watchers; position-to-watcher latency
#      p50/p99;
#   3. idle: IDLE sessions (default 10,000) that only said hello; server RSS and CPU at rest.
#
#   ops/bench/live.sh [SECONDS]        (default 20)
#   PHASES="idle" ops/bench/live.sh 10 (only some of the phases: ingest, watch, idle)
#
# Uses DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432) with a database of its
# own, akig_bench_live, re-created each run and dropped at the end; the server listens on
# 127.0.0.1:50065 (metrics 9165). Rate limits are raised: every bench stream comes from one
# address.
set -euo pipefail

seconds="${1:-20}"
agents="${AGENTS:-1000}"
batch="${BATCH:-100}"
idle="${IDLE:-10000}"
phases=" ${PHASES:-ingest watch idle} "
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${repo_root}"

server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server_url="${server_url%/*}"
bench_url="${server_url}/akig_bench_live"
port=50065

echo "==> Building (release)"
cargo build --release --quiet --bin akig --bin akig-live-bench

psql "${server_url}/postgres" -qc "DROP DATABASE IF EXISTS akig_bench_live" -c "CREATE DATABASE akig_bench_live"
export DATABASE_URL="${bench_url}"
target/release/akig migrate >/dev/null
AKIG_JWT_KEYS="bench=$(head -c 32 /dev/urandom | base64 -w0)"
export AKIG_JWT_KEYS

server_pid=""
start_server() {
  AKIG_LISTEN="127.0.0.1:${port}" AKIG_METRICS_LISTEN="127.0.0.1:9165" \
    AKIG_RATE_USER_PER_SEC=1000000 AKIG_RATE_USER_BURST=1000000 \
    AKIG_RATE_IP_PER_SEC=1000000 AKIG_RATE_IP_BURST=1000000 \
    AKIG_RATE_STREAM_PER_SEC=1000000 AKIG_RATE_STREAM_BURST=1000000 \
    REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" AKIG_REDIS_PREFIX="akig-bench-live" RUST_LOG=warn \
    target/release/akig serve &
  server_pid=$!
  for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then break; fi
    sleep 0.2
  done
}
stop_server() {
  if [ -n "${server_pid}" ]; then
    kill "${server_pid}" 2>/dev/null || true
    wait "${server_pid}" 2>/dev/null || true
    server_pid=""
  fi
}
cleanup() {
  stop_server
  psql "${server_url}/postgres" -qc "DROP DATABASE IF EXISTS akig_bench_live" || true
}
trap cleanup EXIT

bench() { target/release/akig-live-bench --target "http://127.0.0.1:${port}" "$@"; }

echo "==> Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if [[ "${phases}" == *" ingest "* ]]; then
  start_server
  echo "==> Ingest"
  bench --mode ingest --agents "${agents}" --batch "${batch}" --seconds "${seconds}"
  stop_server
fi

if [[ "${phases}" == *" watch "* ]]; then
  start_server
  echo "==> Watchers"
  bench --mode watch --agents "${agents}" --watchers 20 --seconds "${seconds}"
  stop_server
fi

[[ "${phases}" == *" idle "* ]] || exit 0
start_server
echo "==> Idle sessions"
rss_before="$(ps -o rss= -p "${server_pid}")"
fifo="$(mktemp -u)"
mkfifo "${fifo}"
bench --mode idle --agents "${idle}" --seconds $((seconds + 10)) >"${fifo}" &
bench_pid=$!
while read -r line; do
  echo "    ${line}"
  if [ "${line}" = READY ]; then
    sleep 5
    ticks_before="$(awk '{print $14 + $15}' "/proc/${server_pid}/stat")"
    sleep "${seconds}"
    ticks_after="$(awk '{print $14 + $15}' "/proc/${server_pid}/stat")"
    rss="$(ps -o rss= -p "${server_pid}")"
    hz="$(getconf CLK_TCK)"
    echo "    server RSS: $((rss_before / 1024)) MB before, $((rss / 1024)) MB with ${idle} sessions;" \
      "CPU at rest: $(awk -v t=$((ticks_after - ticks_before)) -v hz="${hz}" -v s="${seconds}" 'BEGIN {printf "%.1f", 100 * t / hz / s}') % of one core"
  fi
done <"${fifo}"
wait "${bench_pid}"
rm -f "${fifo}"
