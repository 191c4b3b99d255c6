#!/usr/bin/env bash
# OptimizeRoute end to end through the real server (docs/performance.md, "OptimizeRoute through
# gRPC"): 8 concurrent callers (demo agents), each call ordering 12, 50 or 200 of the agent's
# tenants with the default time budget; prints rate, p50 and p99 and the refusals per size.
#
#   ops/bench/routes.sh [SECONDS] [CONCURRENCY] [MAX_SEARCHES]   (defaults: 20 s, 8, 8)
#
# MAX_SEARCHES is the server's AKIG_ROUTE_MAX_SEARCHES: 8 lets every caller search at once
# (sharing the host's CPUs); 0 is the server's default, one search per CPU, where the callers
# beyond it are answered RESOURCE_EXHAUSTED at once (counted in `errors`).
#
# Uses DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432) with a database of its
# own, akig_bench_routes, re-created each run with the demo data.
set -euo pipefail

seconds="${1:-20}"
concurrency="${2:-8}"
max_searches="${3:-8}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${repo_root}"

server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server_url="${server_url%/*}"
bench_url="${server_url}/akig_bench_routes"
port="${AKIG_BENCH_PORT:-28083}"  # below the ephemeral range, where port-0 listeners land

echo "==> Building (release)"
cargo build --release --quiet --bin akig --bin akig-bench

echo "==> Fresh database akig_bench_routes with the demo data"
psql "${server_url}/postgres" -qc "DROP DATABASE IF EXISTS akig_bench_routes" -c "CREATE DATABASE akig_bench_routes"
export DATABASE_URL="${bench_url}"
target/release/akig migrate >/dev/null
target/release/akig seed --demo >/dev/null

echo "==> Starting the server on 127.0.0.1:${port} (AKIG_ROUTE_MAX_SEARCHES=${max_searches})"
AKIG_LISTEN="127.0.0.1:${port}" AKIG_METRICS_LISTEN="127.0.0.1:$((port + 1))" \
  AKIG_RATE_USER_PER_SEC=1000000 AKIG_RATE_USER_BURST=1000000 \
  AKIG_RATE_IP_PER_SEC=1000000 AKIG_RATE_IP_BURST=1000000 \
  AKIG_ROUTE_MAX_SEARCHES="${max_searches}" \
  REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" RUST_LOG=warn \
  target/release/akig serve &
server_pid=$!
trap 'kill "${server_pid}" 2>/dev/null || true; wait "${server_pid}" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then break; fi
  sleep 0.2
done

for stops in 12 50 200; do
  line="$(target/release/akig-bench --target "http://127.0.0.1:${port}" --rpc optimize-route \
    --stops "${stops}" --concurrency "${concurrency}" --seconds "${seconds}")"
  echo "    akig-bench ${line}"
done
