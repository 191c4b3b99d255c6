#!/usr/bin/env bash
# Mission planning for the whole company, and VROOM on the same assignment (docs/performance.md,
# "Mission planning"): akig-plan-bench times GenerateMissions' use case (a dry run, then a
# stored run, rolled back) and writes its plan; ops/bench/missions_vroom.py gives pyvroom the
# same agents, start points, capacities and tenants and compares route length and time.
#
#   ops/bench/missions.sh [SCALE] [MAX_PER_AGENT] [VROOM_EXPLORATION]   (defaults: 100000, 12, 5)
#
# Needs pyvroom (pip install pyvroom). Uses DATABASE_URL's server (default
# postgres://postgres@127.0.0.1:5432) with a database of its own, akig_bench_missions, seeded
# with the demo data plus `akig seed --scale SCALE` (AKIG_BENCH_REUSE=1 keeps an existing one),
# dropped at the end unless AKIG_BENCH_KEEP=1. AKIG_BENCH_DATA=NAME uses database NAME instead
# (shared with the other benchmarks, see ops/bench/lib.sh) and never drops it.
set -euo pipefail

scale="${1:-100000}"
max="${2:-12}"
exploration="${3:-5}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${repo_root}"

server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server_url="${server_url%/*}"
db="${AKIG_BENCH_DATA:-akig_bench_missions}"
bench_url="${server_url}/${db}"

echo "==> Building (release)"
cargo build --release --quiet --bin akig --bin akig-plan-bench

export DATABASE_URL="${bench_url}"
exists="$(psql "${server_url}/postgres" -Atc "SELECT count(*) FROM pg_database WHERE datname = '${db}'")"
if [ "${AKIG_BENCH_REUSE:-0}" = 1 ] && [ "${exists}" = 1 ]; then
  echo "==> Reusing database ${db}"
else
  echo "==> Fresh database ${db} (demo + scale ${scale})"
  psql "${server_url}/postgres" -qc "DROP DATABASE IF EXISTS ${db}" -c "CREATE DATABASE ${db}"
  target/release/akig migrate >/dev/null
  target/release/akig seed --demo >/dev/null
  target/release/akig seed --scale "${scale}" >/dev/null
  psql "${bench_url}" -qc "VACUUM ANALYZE"
fi
psql "${bench_url}" -Atc "SELECT 'tenants: ' || count(*) FROM tenants" \
  -c "SELECT 'active agents: ' || count(*) FROM users WHERE role_id = 'agent' AND NOT disabled"

echo "==> Planning tomorrow (max ${max} per agent)"
plan="$(mktemp)"
trap 'rm -f "${plan}"' EXIT
target/release/akig-plan-bench "${max}" > "${plan}"
python3 ops/bench/missions_vroom.py "${exploration}" 1 < "${plan}"

if [ "${AKIG_BENCH_KEEP:-0}" != 1 ] && [ -z "${AKIG_BENCH_DATA:-}" ]; then
  psql "${server_url}/postgres" -qc "DROP DATABASE ${db}"
fi
