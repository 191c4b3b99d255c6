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

bin="${CARGO_TARGET_DIR:-target}/release"
port="${AKIG_BENCH_PORT:-28085}"  # below the ephemeral range, where port-0 listeners land
# shellcheck source=ops/bench/lib.sh
source ops/bench/lib.sh

echo "==> Building (release)"
cargo build --release --quiet --bin akig --bin akig-bench

bench_database akig_bench_markers "${scale}"
psql "${bench_url}" -Atc "SELECT 'tenants: ' || count(*) || ', with a home: ' || count(home_latitude) FROM tenants"

bench_server "${port}" "$((port + 1))"

for area in city street; do
  line="$("${bin}/akig-bench" --target "http://127.0.0.1:${port}" \
    --rpc "arrears-markers-${area}" --concurrency "${concurrency}" --seconds "${seconds}")"
  echo "    akig-bench ${line}"
done
