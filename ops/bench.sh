#!/usr/bin/env bash
# Collections write-path benchmark: RecordVisit and RecordPayment through the real server on
# the demo data, side by side with pgbench running a single-row insert transaction on the same
# PostgreSQL. Prints each rate, p50/p99, and the ratio server / pgbench. Then pgbench replays the
# visit's own statements without the server (ops/bench/visit-statements.sql): the ceiling the
# database work sets, and the server's rate against it.
#
#   ops/bench.sh [SECONDS] [CONCURRENCY]      (defaults: 20 s, 32 callers)
#
# Uses DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432) with a database of its
# own, akig_bench, re-created each run. Run `ops/setup.sh test` once first on a fresh machine
# (it installs and starts PostgreSQL and Redis).
set -euo pipefail

seconds="${1:-20}"
concurrency="${2:-32}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server_url="${server_url%/*}"
bench_url="${server_url}/akig_bench"
port="${AKIG_BENCH_PORT:-50081}"

echo "==> Building (release)"
cargo build --release --quiet --bin akig --bin akig-bench

echo "==> Fresh database akig_bench with the demo data"
psql "${server_url}/postgres" -qc "DROP DATABASE IF EXISTS akig_bench" -c "CREATE DATABASE akig_bench"
export DATABASE_URL="${bench_url}"
target/release/akig migrate >/dev/null
target/release/akig seed --demo >/dev/null

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

results=()
for rpc in visit payment; do
  echo "==> akig-bench ${rpc} (${concurrency} callers, ${seconds} s)"
  line="$(target/release/akig-bench --target "http://127.0.0.1:${port}" --rpc "${rpc}" \
    --concurrency "${concurrency}" --seconds "${seconds}")"
  echo "    ${line}"
  results+=("${line}")
done

# pgbench prepares its statements (-M prepared) as the server does (sqlx caches them).
pgbench_rate() {
  pgbench -n -M prepared "$@" -c "${concurrency}" -j 2 -T "${seconds}" "${bench_url}" 2>/dev/null |
    sed -nE 's/^tps = ([0-9.]+).*/\1/p' | head -1
}

echo "==> pgbench: one single-row INSERT per transaction (${concurrency} clients, ${seconds} s)"
psql "${bench_url}" -qc "CREATE TABLE IF NOT EXISTS bench_inserts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id uuid NOT NULL,
    agent_id uuid NOT NULL, amount_gnf bigint NOT NULL, occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(), notes text NOT NULL)"
pg_tps="$(pgbench_rate -f ops/bench/insert.sql)"
echo "    tps = ${pg_tps}"

echo "==> pgbench: the statements of one RecordVisit, without the server (${concurrency} clients, ${seconds} s)"
psql "${bench_url}" -qc "CREATE TABLE bench_pairs AS
    SELECT row_number() OVER (ORDER BY u.username, t.id) AS n, u.id AS agent_id, t.id AS tenant_id
    FROM users u JOIN user_sites us ON us.user_id = u.id
    JOIN tenants t ON t.site_id = us.site_id AND t.active
    WHERE u.role_id = 'agent' AND NOT u.disabled" -c "ALTER TABLE bench_pairs ADD PRIMARY KEY (n)"
pairs="$(psql "${bench_url}" -Atc "SELECT count(*) FROM bench_pairs")"
sql_tps="$(pgbench_rate -f ops/bench/visit-statements.sql -D "pairs=${pairs}")"
echo "    tps = ${sql_tps}"

echo "==> Ratios (server RPC rate / pgbench insert rate)"
for line in "${results[@]}"; do
  rpc="$(sed -E 's/.*rpc=([A-Za-z]+).*/\1/' <<<"${line}")"
  rate="$(sed -E 's/.*rate_per_s=([0-9.]+).*/\1/' <<<"${line}")"
  awk -v r="${rate}" -v p="${pg_tps}" -v n="${rpc}" \
    'BEGIN { printf "    %-8s %8.1f/s vs pgbench %8.1f tps = %5.1f %%\n", n, r, p, 100 * r / p }'
done
awk -v s="${sql_tps}" -v p="${pg_tps}" \
  'BEGIN { printf "    visit statements alone %8.1f tps vs pgbench %8.1f tps = %5.1f %%\n", s, p, 100 * s / p }'
visit_rate="$(sed -E 's/.*rate_per_s=([0-9.]+).*/\1/' <<<"${results[0]}")"
awk -v r="${visit_rate}" -v s="${sql_tps}" \
  'BEGIN { printf "    server visit / its statements alone = %5.1f %%\n", 100 * r / s }'
