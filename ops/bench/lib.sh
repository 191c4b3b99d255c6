# Shared by the benchmarks under ops/bench/ (sourced, not run).

# bench_database NAME SCALE: DATABASE_URL's server with database NAME holding the demo data
# (and `akig seed --scale SCALE` when SCALE > 0), re-created unless AKIG_BENCH_REUSE=1 and it
# exists. AKIG_BENCH_DATA=NAME replaces NAME, so that several benchmarks share one seeded data
# set (seed once with AKIG_BENCH_DATA=akig_bench_100k, then AKIG_BENCH_REUSE=1 for the others).
# Exports DATABASE_URL and bench_url; needs ${bin} (the release binaries).
bench_database() {
  local name="${AKIG_BENCH_DATA:-$1}" scale="$2" server_url
  server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  server_url="${server_url%/*}"
  bench_url="${server_url}/${name}"
  export DATABASE_URL="${bench_url}"
  local exists
  exists="$(psql "${server_url}/postgres" -Atc "SELECT count(*) FROM pg_database WHERE datname = '${name}'")"
  if [ "${AKIG_BENCH_REUSE:-0}" = 1 ] && [ "${exists}" = 1 ]; then
    echo "==> Reusing database ${name}"
  else
    echo "==> Fresh database ${name} with the demo data (scale: ${scale})"
    psql "${server_url}/postgres" -qc "DROP DATABASE IF EXISTS ${name}" -c "CREATE DATABASE ${name}"
    "${bin}/akig" migrate >/dev/null
    "${bin}/akig" seed --demo >/dev/null
    if [ "${scale}" -gt 0 ]; then
      "${bin}/akig" seed --scale "${scale}" >/dev/null
    fi
  fi
}

# bench_server PORT METRICS_PORT: `akig serve` with rate limits lifted, in the background
# (server_pid, stopped on exit), once it accepts connections.
bench_server() {
  local port="$1" metrics_port="$2"
  echo "==> Starting the server on 127.0.0.1:${port} (metrics ${metrics_port})"
  AKIG_LISTEN="127.0.0.1:${port}" AKIG_METRICS_LISTEN="127.0.0.1:${metrics_port}" \
    AKIG_RATE_USER_PER_SEC=1000000 AKIG_RATE_USER_BURST=1000000 \
    AKIG_RATE_IP_PER_SEC=1000000 AKIG_RATE_IP_BURST=1000000 \
    REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" RUST_LOG=warn \
    "${bin}/akig" serve &
  server_pid=$!
  trap 'kill "${server_pid}" 2>/dev/null || true; wait "${server_pid}" 2>/dev/null || true' EXIT
  for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "the server did not start on port ${port}" >&2
  return 1
}
