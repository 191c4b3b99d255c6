#!/usr/bin/env bash
# Read benchmark (docs/performance.md, "Reads"): h2load at 200 concurrent streams against the
# real server for GetTenant, GetTenantArrears, a timeline page (GetTenantHistory, 50 entries),
# SearchTenants on the commonest surname, GetDailyStats for the company's day, WhoAmI and the
# health check (same layers as every call), each next to pgbench -S (primary-key select) in the
# same run. Successes are counted from the server's grpc_server_handled_total{grpc_code="Ok"}
# (an HTTP 200 is not a gRPC success); every other code is printed. Then each read's
# single-caller p50/p99 (akig-bench --rpc reads), and the host's load.
#
#   ops/bench/reads.sh [SECONDS] [SCALE]     (defaults: 10 s, 0)
#
# SCALE > 0 adds `akig seed --scale SCALE` beside the demo's 2,000 tenants (100000: a few
# minutes, a few GB). Runs as the demo director (every site).
#
# Uses DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432) with a database of its
# own, akig_bench_reads, re-created each run (AKIG_BENCH_REUSE=1 keeps it when it exists).
# Needs h2load (Debian: nghttp2-client) and pgbench (postgresql-contrib).
set -euo pipefail

seconds="${1:-10}"
scale="${2:-0}"
streams=200
clients=4   # h2load connections; 50 streams each
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${repo_root}"
bin="${CARGO_TARGET_DIR:-target}/release"

port="${AKIG_BENCH_PORT:-50063}"
metrics_port="${AKIG_BENCH_METRICS_PORT:-9163}"
out="${bin}/../bench-reads"
# shellcheck source=ops/bench/lib.sh
source ops/bench/lib.sh

command -v h2load >/dev/null || { echo "h2load not found: apt-get install nghttp2-client" >&2; exit 1; }

echo "==> Building (release)"
cargo build --release --quiet --bin akig --bin akig-bench

bench_database akig_bench_reads "${scale}"
psql "${bench_url}" -Atc "SELECT 'tenants: ' || count(*) FROM tenants"

bench_server "${port}" "${metrics_port}"

echo "==> Requests, and each read's latency with one caller (${seconds} s each)"
"${bin}/akig-bench" --target "http://127.0.0.1:${port}" --rpc reads --out "${out}" \
  --seconds "${seconds}" | sed 's/^/    /'
token="$(cat "${out}/token")"

# Calls completed with `code` for a method, from the server's own counters.
handled() {
  local method="$1" code="$2"
  curl -s "http://127.0.0.1:${metrics_port}/metrics" |
    awk -v m="grpc_method=\"${method}\"" -v c="grpc_code=\"${code}\"" \
      'index($0, "grpc_server_handled_total{") == 1 && index($0, m) && index($0, c) { s += $NF }
       END { printf "%d\n", s }'
}
not_ok() {
  local method="$1"
  curl -s "http://127.0.0.1:${metrics_port}/metrics" |
    awk -v m="grpc_method=\"${method}\"" \
      'index($0, "grpc_server_handled_total{") == 1 && index($0, m) && !index($0, "grpc_code=\"Ok\"") {
         match($0, /grpc_code="[A-Za-z]+"/); n[substr($0, RSTART + 11, RLENGTH - 12)] += $NF }
       END { for (c in n) printf "%s=%d ", c, n[c] }'
}
pgbench_s() {
  pgbench -n -S -M prepared -c 32 -j 2 -T "${seconds}" "${bench_url}" 2>/dev/null |
    sed -nE 's/^tps = ([0-9.]+).*/\1/p' | head -1
}
# pgbench -S needs its tables: a scale-10 pgbench_accounts (1M rows), created once.
if [ "$(psql "${bench_url}" -Atc "SELECT to_regclass('pgbench_accounts') IS NOT NULL")" != t ]; then
  pgbench -i -q -s 10 "${bench_url}" >/dev/null 2>&1
fi

echo "==> ${streams} streams (${clients} connections), ${seconds} s each; pgbench -S (32 clients) beside each"
printf '    %-12s %10s %10s %8s %s\n' read "ok/s" "pgbench/s" ratio "not ok"
declare -A rate=()
for name in health who-am-i get-tenant arrears timeline search daily-stats; do
  path="$(cat "${out}/${name}.path")"
  method="${path##*/}"
  before="$(handled "${method}" Ok)"
  started="$(date +%s.%N)"
  h2load -D "${seconds}" -c "${clients}" -m $((streams / clients)) -t 1 \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    -H "authorization: Bearer ${token}" \
    -d "${out}/${name}.bin" "http://127.0.0.1:${port}${path}" >/dev/null 2>&1 || true
  ended="$(date +%s.%N)"
  after="$(handled "${method}" Ok)"
  ok_rate="$(echo "(${after} - ${before}) / (${ended} - ${started})" | bc -l)"
  pg="$(pgbench_s)"
  rate[${name}]="${ok_rate}"
  printf '    %-12s %10.0f %10.0f %8.3f %s\n' "${name}" "${ok_rate}" "${pg}" \
    "$(echo "${ok_rate} / ${pg}" | bc -l)" "$(not_ok "${method}")"
done
printf '    who-am-i / health: %.3f\n' "$(echo "${rate[who-am-i]} / ${rate[health]}" | bc -l)"
echo "==> Host: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
