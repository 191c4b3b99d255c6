#!/usr/bin/env bash
# ListArrearsMarkers end to end through the real server (docs/performance.md, "Arrears map"):
# the demo director asks for the whole city at zoom 12 (clusters: max_markers 100) and for a ~440 m box around a
# random tenant's home at zoom 17 (markers); prints rate, p50 and p99 for each.
#
#   ops/bench/markers.sh [SECONDS] [CONCURRENCY] [SCALE]   (defaults: 20 s, 4, 0)
#
# SCALE > 0 adds `akig seed --scale SCALE` (SCALE tenants more, beside the 2,000 of the demo);
# with 100000 the seed takes a few minutes.
#
# Uses DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432) with a database of its
# own, akig_bench_markers, re-created each run (AKIG_BENCH_REUSE=1 keeps it when it exists:
# a second run on the same data skips the seed).
set -euo pipefail

seconds="${1:-20}"
concurrency="${2:-4}"
scale="${3:-0}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${repo_root}"

server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server_url="${server_url%/*}"
bench_url="${server_url}/akig_bench_markers"
port="${AKIG_BENCH_PORT:-28085}"  # below the ephemeral range, where port-0 listeners land

echo "==> Building (release)"
cargo build --release --quiet --bin akig --bin akig-bench

export DATABASE_URL="${bench_url}"
exists="$(psql "${server_url}/postgres" -Atc "SELECT count(*) FROM pg_database WHERE datname = 'akig_bench_markers'")"
if [ "${AKIG_BENCH_REUSE:-0}" = 1 ] && [ "${exists}" = 1 ]; then
  echo "==> Reusing database akig_bench_markers"
else
  echo "==> Fresh database akig_bench_markers with the demo data (scale: ${scale})"
  psql "${server_url}/postgres" -qc "DROP DATABASE IF EXISTS akig_bench_markers" -c "CREATE DATABASE akig_bench_markers"
  target/release/akig migrate >/dev/null
  target/release/akig seed --demo >/dev/null
  if [ "${scale}" -gt 0 ]; then
    target/release/akig seed --scale "${scale}" >/dev/null
  fi
  psql "${bench_url}" -qc "VACUUM ANALYZE"
fi
psql "${bench_url}" -Atc "SELECT 'tenants: ' || count(*) || ', with a home: ' || count(home_latitude) FROM tenants"

echo "==> Starting the server on 127.0.0.1:${port}"
AKIG_LISTEN="127.0.0.1:${port}" AKIG_METRICS_LISTEN="127.0.0.1:$((port + 1))" \
  AKIG_RATE_USER_PER_SEC=1000000 AKIG_RATE_USER_BURST=1000000 \
  AKIG_RATE_IP_PER_SEC=1000000 AKIG_RATE_IP_BURST=1000000 \
  REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" RUST_LOG=warn \
  target/release/akig serve &
server_pid=$!
trap 'kill "${server_pid}" 2>/dev/null || true; wait "${server_pid}" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then break; fi
  sleep 0.2
done

for area in city street; do
  line="$(target/release/akig-bench --target "http://127.0.0.1:${port}" \
    --rpc "arrears-markers-${area}" --concurrency "${concurrency}" --seconds "${seconds}")"
  echo "    akig-bench ${line}"
done
