#!/usr/bin/env bash
# Dashboard benchmark (docs/performance.md, "Dashboard"): GetSummary of the whole company and
# of one site, and GetSite, uncached, with one caller (akig-bench); then cached GetSummary
# through h2load at 200 concurrent streams beside the health check (same server, same run,
# twice each); then a mixed workload: GetSummary (company, then one site at random) read by 16
# callers while 8 others record visits, with the cache's hit ratio over the run. Successes are
# counted from the server's grpc_server_handled_total{grpc_code="Ok"}.
#
#   ops/bench/dashboard.sh [SECONDS] [SCALE]     (defaults: 15 s, 100000)
#
# Uses DATABASE_URL's server with a database of its own, akig_bench_dashboard (or
# AKIG_BENCH_DATA=akig_bench_100k AKIG_BENCH_REUSE=1 to share the seeded one). Needs h2load
# (Debian: nghttp2-client) and a Redis (REDIS_URL, default redis://127.0.0.1:6379).
set -euo pipefail

seconds="${1:-15}"
scale="${2:-100000}"
streams=200
clients=4   # h2load connections; 50 streams each
h2_seconds=5
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${repo_root}"
bin="${CARGO_TARGET_DIR:-target}/release"

port="${AKIG_BENCH_PORT:-50064}"
metrics_port="${AKIG_BENCH_METRICS_PORT:-9164}"
out="${bin}/../bench-dashboard"
# shellcheck source=ops/bench/lib.sh
source ops/bench/lib.sh

command -v h2load >/dev/null || { echo "h2load not found: apt-get install nghttp2-client" >&2; exit 1; }

echo "==> Building (release)"
cargo build --release --quiet --bin akig --bin akig-bench

bench_database akig_bench_dashboard "${scale}"
psql "${bench_url}" -Atc "SELECT 'tenants: ' || count(*) FROM tenants"

stop_server() {
  kill "${server_pid}" 2>/dev/null || true
  wait "${server_pid}" 2>/dev/null || true
}

echo "==> Uncached (AKIG_CACHE_TTL_STATISTICS_SECS=0, AKIG_CACHE_TTL_SITES_SECS=0), one caller, ${seconds} s each"
AKIG_CACHE_TTL_STATISTICS_SECS=0 AKIG_CACHE_TTL_SITES_SECS=0 bench_server "${port}" "${metrics_port}"
for rpc in summary summary-site site; do
  "${bin}/akig-bench" --target "http://127.0.0.1:${port}" --rpc "${rpc}" --concurrency 1 \
    --seconds "${seconds}" | sed 's/^/    /'
done
stop_server

echo "==> Cached GetSummary (default TTLs) beside the health check"
bench_server "${port}" "${metrics_port}"
"${bin}/akig-bench" --target "http://127.0.0.1:${port}" --rpc reads --out "${out}" \
  --seconds 1 >/dev/null
token="$(cat "${out}/token")"
printf '\x00\x00\x00\x00\x00' >"${out}/summary.bin"
echo "/akig.v1.DashboardService/GetSummary" >"${out}/summary.path"

handled() {
  local method="$1"
  curl -s "http://127.0.0.1:${metrics_port}/metrics" |
    awk -v m="grpc_method=\"${method}\"" \
      'index($0, "grpc_server_handled_total{") == 1 && index($0, m) && index($0, "grpc_code=\"Ok\"") { s += $NF }
       END { printf "%d\n", s }'
}
h2() {
  local name="$1" path method before after started ended
  path="$(cat "${out}/${name}.path")"
  method="${path##*/}"
  before="$(handled "${method}")"
  started="$(date +%s.%N)"
  h2load -D "${h2_seconds}" -c "${clients}" -m $((streams / clients)) -t 1 \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    -H "authorization: Bearer ${token}" \
    -d "${out}/${name}.bin" "http://127.0.0.1:${port}${path}" >/dev/null 2>&1 || true
  ended="$(date +%s.%N)"
  after="$(handled "${method}")"
  echo "(${after} - ${before}) / (${ended} - ${started})" | bc -l
}
# One call first: the entry is computed once, every call after is a hit.
h2load -n 1 -c 1 -H 'content-type: application/grpc' -H 'te: trailers' \
  -H "authorization: Bearer ${token}" -d "${out}/summary.bin" \
  "http://127.0.0.1:${port}/akig.v1.DashboardService/GetSummary" >/dev/null 2>&1 || true
printf '    %-8s %10s %10s %8s\n' round "health/s" "summary/s" ratio
for round in 1 2; do
  health="$(h2 health)"
  summary="$(h2 summary)"
  printf '    %-8s %10.0f %10.0f %8.3f\n' "${round}" "${health}" "${summary}" \
    "$(echo "${summary} / ${health}" | bc -l)"
done
echo "    single caller, 2,000 calls:"
h2load -n 2000 -c 1 -m 1 -H 'content-type: application/grpc' -H 'te: trailers' \
  -H "authorization: Bearer ${token}" -d "${out}/summary.bin" \
  "http://127.0.0.1:${port}/akig.v1.DashboardService/GetSummary" 2>/dev/null |
  grep -E '^time for request' | sed 's/^/    /'
curl -s "http://127.0.0.1:${metrics_port}/metrics" |
  grep -E '^akig_cache_requests_total\{.*kind="statistics"' | sed 's/^/    /' || true

# The cache's hits and misses of kind statistics so far, "hits misses".
cache_counts() {
  curl -s "http://127.0.0.1:${metrics_port}/metrics" |
    awk 'index($0, "akig_cache_requests_total{") == 1 && index($0, "kind=\"statistics\"") {
           if (index($0, "result=\"hit\"")) h += $NF; else if (index($0, "result=\"miss\"")) m += $NF }
         END { printf "%d %d\n", h, m }'
}
echo "==> Mixed workload: visits written by 8 callers while GetSummary is read by 16, ${seconds} s each"
# The writers start first (their logins and warm-up take a few seconds) and end after the
# readers, so every read counted (warm-up included) runs while visits are written.
for rpc in summary summary-site; do
  "${bin}/akig-bench" --target "http://127.0.0.1:${port}" --rpc visit --concurrency 8 \
    --seconds $((seconds + 8)) | sed 's/^/    writes: /' &
  writer=$!
  sleep 5
  read -r hits_before misses_before < <(cache_counts)
  "${bin}/akig-bench" --target "http://127.0.0.1:${port}" --rpc "${rpc}" --concurrency 16 \
    --seconds "${seconds}" | sed 's/^/    reads:  /'
  read -r hits_after misses_after < <(cache_counts)
  wait "${writer}"
  hits=$((hits_after - hits_before))
  misses=$((misses_after - misses_before))
  echo "    ${rpc}: cache hits ${hits}, misses ${misses}, hit ratio $(echo "${hits} / (${hits} + ${misses} + 0.000001)" | bc -l | cut -c1-5)"
done
echo "==> Host: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
