#!/usr/bin/env bash
# Collections write-path benchmark: RecordVisit and RecordPayment through the real server on
# the demo data, side by side with pgbench running a single-row insert transaction on the same
# PostgreSQL. Prints each rate, p50/p99 (pgbench's from its per-transaction log), and the ratio
# server / pgbench. Then pgbench replays each call's own statements without the server
# (ops/bench/visit-statements.sql, payment-statements.sql): the ceiling the database work sets,
# the server's rate against it, and the server's p99 beside the replay's.
#
#   ops/bench.sh [SECONDS] [CONCURRENCY] [ROUNDS]    (defaults: 20 s, 32 callers, 1 round)
#
# With several rounds the four measurements run in turn each round, each ratio is taken within
# its round (neighbouring runs share the host's mood), and the median of each is printed last:
# use 3 or more rounds to compare two versions on a shared machine.
#
# Uses DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432) with a database of its
# own, AKIG_BENCH_DB (default akig_bench), re-created each run and left for a look afterwards
# (drop it when done). The server listens on 127.0.0.1:AKIG_BENCH_PORT (default 50081), its
# metrics on AKIG_BENCH_METRICS_PORT (default the next port): give two checkouts benchmarking
# on one host their own database and ports. Run `ops/setup.sh test` once first on a fresh
# machine (it installs and starts PostgreSQL and Redis).
set -euo pipefail

seconds="${1:-20}"
concurrency="${2:-32}"
rounds="${3:-1}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server_url="${server_url%/*}"
bench_db="${AKIG_BENCH_DB:-akig_bench}"
bench_url="${server_url}/${bench_db}"
port="${AKIG_BENCH_PORT:-50081}"
metrics_port="${AKIG_BENCH_METRICS_PORT:-$((port + 1))}"

echo "==> Building (release)"
cargo build --release --quiet --bin akig --bin akig-bench

echo "==> Fresh database ${bench_db} with the demo data"
psql "${server_url}/postgres" -qc "DROP DATABASE IF EXISTS \"${bench_db}\"" \
  -c "CREATE DATABASE \"${bench_db}\""
export DATABASE_URL="${bench_url}"
target/release/akig migrate >/dev/null
target/release/akig seed --demo >/dev/null

echo "==> Starting the server on 127.0.0.1:${port}"
AKIG_LISTEN="127.0.0.1:${port}" AKIG_METRICS_LISTEN="127.0.0.1:${metrics_port}" \
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

# pgbench prepares its statements (-M prepared) as the server does (sqlx caches them).
# Prints "tps=… p50_ms=… p99_ms=…": the rate, and the latency percentiles of its transactions
# from pgbench's per-transaction log (nearest rank, as akig-bench takes them).
pgbench_run() {
  local logs tps
  logs="$(mktemp -d)"
  tps="$(pgbench -n -M prepared "$@" -c "${concurrency}" -j 2 -T "${seconds}" \
    -l --log-prefix="${logs}/tx" "${bench_url}" 2>/dev/null | sed -nE 's/^tps = ([0-9.]+).*/\1/p' | head -1)"
  cat "${logs}"/tx.* | awk '{ print $3 }' | sort -n | awk -v tps="${tps}" '{ l[NR] = $1 } END {
      p50 = NR ? l[int((NR - 1) * 0.50 + 0.5) + 1] / 1000 : 0
      p99 = NR ? l[int((NR - 1) * 0.99 + 0.5) + 1] / 1000 : 0
      printf "tps=%s p50_ms=%.2f p99_ms=%.2f\n", tps, p50, p99 }'
  rm -rf "${logs}"
}
# The rate of a pgbench_run line.
tps_of() { sed -E 's/^tps=([0-9.]+).*/\1/' <<<"$1"; }

psql "${bench_url}" -qc "CREATE TABLE bench_inserts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id uuid NOT NULL,
    agent_id uuid NOT NULL, amount_gnf bigint NOT NULL, occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(), notes text NOT NULL)"
psql "${bench_url}" -qc "CREATE TABLE bench_pairs AS
    SELECT row_number() OVER (ORDER BY u.username, t.id) AS n, u.id AS agent_id, t.id AS tenant_id
    FROM users u JOIN user_sites us ON us.user_id = u.id
    JOIN tenants t ON t.site_id = us.site_id AND t.active
    WHERE u.role_id = 'agent' AND NOT u.disabled" -c "ALTER TABLE bench_pairs ADD PRIMARY KEY (n)"
pairs="$(psql "${bench_url}" -Atc "SELECT count(*) FROM bench_pairs")"

ratios="$(mktemp)"
trap 'kill "${server_pid}" 2>/dev/null || true; wait "${server_pid}" 2>/dev/null || true; rm -f "${ratios}"' EXIT
for round in $(seq 1 "${rounds}"); do
  echo "==> Round ${round} of ${rounds} (${concurrency} callers or clients, ${seconds} s each)"
  declare -A rate=() p99=()
  for rpc in visit payment; do
    line="$(target/release/akig-bench --target "http://127.0.0.1:${port}" --rpc "${rpc}" \
      --concurrency "${concurrency}" --seconds "${seconds}")"
    echo "    akig-bench ${line}"
    rate[${rpc}]="$(sed -E 's/.*rate_per_s=([0-9.]+).*/\1/' <<<"${line}")"
    p99[${rpc}]="$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"${line}")"
  done
  line="$(pgbench_run -f ops/bench/insert.sql)"
  rate[insert]="$(tps_of "${line}")"
  echo "    pgbench, one single-row INSERT per transaction: ${line}"
  line="$(pgbench_run -f ops/bench/visit-statements.sql -D "pairs=${pairs}")"
  rate[statements]="$(tps_of "${line}")"
  echo "    pgbench, the statements of one RecordVisit without the server: ${line}"
  p99[statements]="$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"${line}")"
  line="$(pgbench_run -f ops/bench/payment-statements.sql -D "pairs=${pairs}")"
  rate[pstatements]="$(tps_of "${line}")"
  echo "    pgbench, the statements of one RecordPayment without the server: ${line}"
  p99[pstatements]="$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"${line}")"
  echo "    p99 side by side (server / its statements alone): visit ${p99[visit]} / ${p99[statements]} ms," \
    "payment ${p99[payment]} / ${p99[pstatements]} ms"
  awk -v v="${rate[visit]}" -v p="${rate[payment]}" -v i="${rate[insert]}" \
    -v s="${rate[statements]}" -v q="${rate[pstatements]}" \
    -v vl="${p99[visit]}" -v pl="${p99[payment]}" -v sl="${p99[statements]}" \
    -v ql="${p99[pstatements]}" 'BEGIN {
      printf "visit/insert %.4f\npayment/insert %.4f\nstatements/insert %.4f\nvisit/statements %.4f\npayment/statements %.4f\n",
        v / i, p / i, s / i, v / s, p / q
      printf "visit-p99/statements-p99 %.4f\npayment-p99/statements-p99 %.4f\n", vl / sl, pl / ql }' >>"${ratios}"
done

echo "==> Ratios, median of ${rounds} round(s)"
for name in visit/insert payment/insert statements/insert visit/statements payment/statements \
  visit-p99/statements-p99 payment-p99/statements-p99; do
  grep "^${name} " "${ratios}" | awk '{ print $2 }' | sort -g |
    awk -v n="${name}" '{ r[NR] = $1 } END {
      m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
      printf "    %-26s %5.1f %%   (rounds: %d, min %.1f %%, max %.1f %%)\n", n, 100 * m, NR, 100 * r[1], 100 * r[NR] }'
done
echo "    (insert: pgbench's single-row INSERT; statements: the call's own statements replayed by"
echo "     pgbench without the server; visit, payment: RecordVisit, RecordPayment via the server;"
echo "     -p99: the server's p99 over the p99 of its statements replayed, both at ${concurrency};"
echo "     target: visit/statements and payment/statements >= 90 %, p99 <= 50 ms)"
