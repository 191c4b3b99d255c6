#!/usr/bin/env bash
# AKIG set-up: the two commands shown in the README.
#
#   ops/setup.sh run  [-- ARGS]   migrate, load the demo data and start the server
#                                 (ARGS are passed to `akig serve`)
#   ops/setup.sh test [-- ARGS]   lint the protos, check the monitoring set-up
#                                 (promtool) and run the whole test suite
#                                 (ARGS are passed to `cargo test --all-targets`)
#   ops/setup.sh bench-tools      install what the benchmarks under ops/ need
#                                 (h2load, pgbench, pyvroom; docs/performance.md)
#
# Needs only the Rust toolchain (rustup/cargo) on Debian 12 or Ubuntu. When
# PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) is not running, it is
# started, or installed with apt-get first (as root, or through sudo). Servers
# already running there are reused and nothing is installed.
#
# Environment:
#   DATABASE_URL  when set, used as given; PostgreSQL is not provisioned.
#                 For `test` its role must be allowed to CREATE DATABASE
#                 (each test creates its own database, akig_test_*, and drops
#                 it when it ends; PostgreSQL 13 or later).
#   REDIS_URL     when set, used as given; Redis is not provisioned.
#   AKIG_LISTEN, AKIG_METRICS_LISTEN, AKIG_LOG_FORMAT, RUST_LOG  passed to the server.
set -euo pipefail

readonly PG_HOST=127.0.0.1
readonly PG_PORT=5432
readonly REDIS_HOST=127.0.0.1
readonly REDIS_PORT=6379
readonly APP_DB=akig
readonly APP_ROLE=akig
readonly APP_PASSWORD=akig

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root

current_step="start-up"
reported=0
apt_updated=0

# Resolved by resolve_database / ensure_redis.
APP_DATABASE_URL=""
TEST_DATABASE_URL=""
ADMIN_DATABASE_URL=""
RESOLVED_REDIS_URL=""

# sudo asks for a password only when someone can type it.
sudo_cmd=(sudo)
if [[ ! -t 0 ]]; then
  sudo_cmd+=(-n)
fi

# ---------------------------------------------------------------- helpers

step() {
  current_step="$*"
  printf '==> %s\n' "$*"
}

note() {
  printf '    %s\n' "$*"
}

die() {
  printf 'error: %s\n' "$*" >&2
  reported=1
  exit 1
}

on_exit() {
  local status=$?
  if [[ ${status} -ne 0 && ${reported} -eq 0 ]]; then
    printf 'error: ops/setup.sh failed (exit %s) during: %s\n' "${status}" "${current_step}" >&2
  fi
}
trap on_exit EXIT

have() {
  command -v "$1" >/dev/null 2>&1
}

usage() {
  cat <<'EOF'
usage: ops/setup.sh run  [-- ARGS]   start the server with demo data (ARGS go to `akig serve`)
       ops/setup.sh test [-- ARGS]   run all tests (ARGS go to `cargo test --all-targets`)
       ops/setup.sh bench-tools      install h2load, pgbench and pyvroom for ops/bench*
EOF
}

# Run a command as root: directly when root, else through sudo.
as_root() {
  if [[ ${EUID} -eq 0 ]]; then
    "$@"
  elif have sudo; then
    "${sudo_cmd[@]}" "$@"
  else
    die "root privileges are needed for '$*': run as root or install sudo"
  fi
}

# Run a command as the OS user postgres (peer authentication on the local socket).
as_postgres() {
  (
    cd /
    if [[ "$(id -un)" == postgres ]]; then
      "$@"
    elif [[ ${EUID} -eq 0 ]] && have runuser; then
      runuser -u postgres -- "$@"
    elif [[ ${EUID} -eq 0 ]]; then
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    elif have sudo; then
      "${sudo_cmd[@]}" -u postgres -- "$@"
    else
      die "cannot act as the OS user postgres: run as root or install sudo"
    fi
  )
}

apt_install() {
  have apt-get || die "apt-get not found; install $* yourself (this script automates Debian/Ubuntu only)"
  if [[ ${apt_updated} -eq 0 ]]; then
    step "Refreshing the package index (apt-get update)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  step "Installing $* (apt-get)"
  # A UTF-8 locale in the environment makes pg_createcluster create a UTF-8 cluster.
  as_root env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 LC_ALL=C.UTF-8 \
    apt-get install -y -qq --no-install-recommends "$@"
}

# Print a URL with its password masked.
redact() {
  local url=$1
  local re='^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@?]*):[^@/]*@(.*)$'
  if [[ ${url} =~ ${re} ]]; then
    printf '%s:****@%s' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
  else
    printf '%s' "${url}"
  fi
}

# url_with_db URL DB: the same URL pointing to database DB (query string kept).
url_with_db() {
  local url=$1 db=$2
  local re='^([a-zA-Z][a-zA-Z0-9+.-]*://[^/?]*)(/[^?]*)?(\?.*)?$'
  [[ ${url} =~ ${re} ]] || die "cannot parse the database URL $(redact "${url}")"
  printf '%s/%s%s' "${BASH_REMATCH[1]}" "${db}" "${BASH_REMATCH[3]}"
}

wait_for() {
  local what=$1 seconds=$2
  shift 2
  local i
  for ((i = 0; i < seconds; i++)); do
    if "$@"; then
      return 0
    fi
    sleep 1
  done
  die "${what} did not become ready within ${seconds}s"
}

tcp_open() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# ---------------------------------------------------------------- toolchain

ensure_toolchain() {
  if ! have cargo && [[ -x "${HOME}/.cargo/bin/cargo" ]]; then
    PATH="${HOME}/.cargo/bin:${PATH}"
    export PATH
  fi
  have cargo || die "cargo not found: install the Rust toolchain with rustup (https://rustup.rs) first"
  # rustc links through the system C compiler.
  if ! have cc; then
    apt_install gcc libc6-dev
  fi
}

# ops/buf-lint.sh installs buf into a Python venv under target/tools.
ensure_python_venv() {
  [[ -x "${repo_root}/target/tools/venv/bin/python" ]] && return 0
  if ! have python3; then
    apt_install python3 python3-venv
    return 0
  fi
  local probe
  probe="$(mktemp -d)"
  if ! python3 -m venv "${probe}/venv" >/dev/null 2>&1; then
    rm -rf "${probe}"
    apt_install python3-venv
    return 0
  fi
  rm -rf "${probe}"
}

# ---------------------------------------------------------------- PostgreSQL

pg_ready() {
  if have pg_isready; then
    pg_isready -q -h "${PG_HOST}" -p "${PG_PORT}" -t 3
  else
    tcp_open "${PG_HOST}" "${PG_PORT}"
  fi
}

pg_installed() {
  compgen -G '/etc/postgresql/*/*/postgresql.conf' >/dev/null || compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

start_postgres() {
  if have pg_ctlcluster; then
    if ! compgen -G '/etc/postgresql/*/*/postgresql.conf' >/dev/null && have pg_createcluster; then
      local bin ver
      bin="$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -n 1)"
      ver="${bin#/usr/lib/postgresql/}"
      ver="${ver%%/*}"
      step "Creating PostgreSQL cluster ${ver}/main"
      as_root env LANG=C.UTF-8 LC_ALL=C.UTF-8 pg_createcluster --port "${PG_PORT}" "${ver}" main
    fi
    local conf dir name ver
    for conf in /etc/postgresql/*/*/postgresql.conf; do
      dir="${conf%/postgresql.conf}"
      name="${dir##*/}"
      ver="${dir%/*}"
      ver="${ver##*/}"
      if as_root pg_ctlcluster "${ver}" "${name}" status >/dev/null 2>&1; then
        continue
      fi
      step "Starting PostgreSQL cluster ${ver}/${name}"
      as_root pg_ctlcluster --skip-systemctl-redirect "${ver}" "${name}" start ||
        note "pg_ctlcluster ${ver} ${name} start failed; see /var/log/postgresql/"
    done
  elif have service; then
    step "Starting PostgreSQL (service postgresql start)"
    as_root service postgresql start
  else
    die "PostgreSQL is installed but cannot be started by this script; start it on ${PG_HOST}:${PG_PORT}"
  fi
}

ensure_postgres_server() {
  if pg_ready; then
    note "PostgreSQL answers on ${PG_HOST}:${PG_PORT}: reusing it"
  else
    if ! pg_installed; then
      apt_install postgresql postgresql-contrib
    fi
    pg_ready || start_postgres
    step "Waiting for PostgreSQL on ${PG_HOST}:${PG_PORT}"
    wait_for "PostgreSQL on ${PG_HOST}:${PG_PORT} (see /var/log/postgresql/)" 30 pg_ready
  fi
  if ! have psql; then
    apt_install postgresql-client
  fi
}

# pg_probe URL: can we connect with exactly this URL (no password file, no prompt)?
pg_probe() {
  env -u PGPASSWORD PGPASSFILE=/dev/null PGCONNECT_TIMEOUT=5 \
    psql -X -w -q -At -d "$1" -c 'select 1' >/dev/null 2>&1
}

# Run SQL (one statement, -c) against URL and print the unaligned result.
pg_query() {
  local url=$1 sql=$2
  PGCONNECT_TIMEOUT=5 psql -X -w -q -At -v ON_ERROR_STOP=1 -d "${url}" -c "${sql}"
}

# Create (or update) the login role akig/akig with CREATEDB, as the OS user postgres.
provision_app_role() {
  getent passwd postgres >/dev/null ||
    die "no OS user 'postgres' to create the ${APP_ROLE} role with; set DATABASE_URL to a role allowed to CREATE DATABASE"
  step "Creating PostgreSQL role ${APP_ROLE} (LOGIN CREATEDB)"
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "${PG_PORT}" -d postgres <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${APP_ROLE}') THEN
    CREATE ROLE ${APP_ROLE} LOGIN CREATEDB PASSWORD '${APP_PASSWORD}';
  ELSE
    ALTER ROLE ${APP_ROLE} WITH LOGIN CREATEDB PASSWORD '${APP_PASSWORD}';
  END IF;
END
\$\$;
SQL
}

# Decide which database URLs to use; the one place where this is decided.
#   APP_DATABASE_URL   the akig database (run)
#   TEST_DATABASE_URL  a maintenance database; tests create their own databases (test)
#   ADMIN_DATABASE_URL where CREATE DATABASE akig is issued (run)
resolve_database() {
  if [[ -n "${DATABASE_URL:-}" ]]; then
    step "Database: DATABASE_URL from the environment, $(redact "${DATABASE_URL}")"
    APP_DATABASE_URL="${DATABASE_URL}"
    TEST_DATABASE_URL="${DATABASE_URL}"
    ADMIN_DATABASE_URL="$(url_with_db "${DATABASE_URL}" postgres)"
    if have psql; then
      # The app database may not exist yet (run creates it); the server must answer.
      if ! PGCONNECT_TIMEOUT=5 psql -X -w -q -At -d "${DATABASE_URL}" -c 'select 1' >/dev/null 2>&1 &&
        ! PGCONNECT_TIMEOUT=5 psql -X -w -q -At -d "${ADMIN_DATABASE_URL}" -c 'select 1' >/dev/null 2>&1; then
        die "cannot connect with DATABASE_URL=$(redact "${DATABASE_URL}")"
      fi
    else
      note "psql not installed: connection not checked"
    fi
    return 0
  fi

  step "Ensuring PostgreSQL on ${PG_HOST}:${PG_PORT}"
  ensure_postgres_server

  local server
  local as_postgres_url="postgres://postgres@${PG_HOST}:${PG_PORT}"
  local as_app_url="postgres://${APP_ROLE}:${APP_PASSWORD}@${PG_HOST}:${PG_PORT}"
  if pg_probe "${as_postgres_url}/postgres"; then
    # Local dev set-up: trust authentication for the postgres role.
    server="${as_postgres_url}"
  elif pg_probe "${as_app_url}/postgres"; then
    # Provisioned by an earlier run.
    server="${as_app_url}"
  else
    # Fresh Debian/Ubuntu: peer auth on the socket, password auth over TCP.
    provision_app_role
    pg_probe "${as_app_url}/postgres" ||
      die "role ${APP_ROLE} cannot log in over TCP on ${PG_HOST}:${PG_PORT}; check pg_hba.conf allows password (scram-sha-256) auth for host 127.0.0.1/32, or set DATABASE_URL"
    server="${as_app_url}"
  fi

  local can_create
  can_create="$(pg_query "${server}/postgres" 'select rolcreatedb or rolsuper from pg_roles where rolname = current_user')"
  [[ ${can_create} == t ]] ||
    die "role at $(redact "${server}") may not CREATE DATABASE; grant CREATEDB or set DATABASE_URL"

  APP_DATABASE_URL="${server}/${APP_DB}"
  TEST_DATABASE_URL="${server}/postgres"
  ADMIN_DATABASE_URL="${server}/postgres"
  note "database server: $(redact "${server}")"
}

# Create the database named in APP_DATABASE_URL when it does not exist yet.
ensure_app_database() {
  have psql || return 0
  if PGCONNECT_TIMEOUT=5 psql -X -w -q -At -d "${APP_DATABASE_URL}" -c 'select 1' >/dev/null 2>&1; then
    note "database exists: $(redact "${APP_DATABASE_URL}")"
    return 0
  fi
  local re='^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?]*/([^?]+)' db
  [[ ${APP_DATABASE_URL} =~ ${re} ]] || die "no database name in $(redact "${APP_DATABASE_URL}")"
  db="${BASH_REMATCH[1]}"
  [[ ${db} =~ ^[a-zA-Z_][a-zA-Z0-9_]*$ ]] || die "unexpected database name '${db}'"
  step "Creating database ${db}"
  pg_query "${ADMIN_DATABASE_URL}" "CREATE DATABASE ${db} ENCODING 'UTF8' TEMPLATE template0" >/dev/null ||
    pg_query "${ADMIN_DATABASE_URL}" "CREATE DATABASE ${db}" >/dev/null
}

# ---------------------------------------------------------------- Redis

redis_ping() {
  if have redis-cli; then
    [[ "$(redis-cli -h "${REDIS_HOST}" -p "${REDIS_PORT}" ping 2>/dev/null)" == PONG ]]
  else
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"; printf "PING\r\n" >&3; IFS= read -r line <&3; [[ ${line} == +PONG* ]]' \
      "${REDIS_HOST}" "${REDIS_PORT}" 2>/dev/null
  fi
}

start_redis() {
  local dir="${TMPDIR:-/tmp}"
  step "Starting redis-server on ${REDIS_HOST}:${REDIS_PORT} (log: ${dir}/akig-redis.log)"
  redis-server --daemonize yes --bind "${REDIS_HOST}" --port "${REDIS_PORT}" \
    --save "" --appendonly no --dir "${dir}" --logfile "${dir}/akig-redis.log"
}

ensure_redis() {
  if [[ -n "${REDIS_URL:-}" ]]; then
    step "Redis: REDIS_URL from the environment, $(redact "${REDIS_URL}")"
    if have redis-cli; then
      [[ "$(redis-cli -u "${REDIS_URL}" ping 2>/dev/null)" == PONG ]] ||
        die "no PONG from REDIS_URL=$(redact "${REDIS_URL}")"
    fi
    RESOLVED_REDIS_URL="${REDIS_URL}"
    return 0
  fi
  step "Ensuring Redis on ${REDIS_HOST}:${REDIS_PORT}"
  if redis_ping; then
    note "Redis answers on ${REDIS_HOST}:${REDIS_PORT}: reusing it"
  else
    if ! have redis-server; then
      apt_install redis-server
    fi
    # The package may have started its own service already.
    redis_ping || start_redis
    wait_for "Redis on ${REDIS_HOST}:${REDIS_PORT}" 15 redis_ping
  fi
  RESOLVED_REDIS_URL="redis://${REDIS_HOST}:${REDIS_PORT}"
  note "redis: ${RESOLVED_REDIS_URL}"
}

# promtool (Debian's `prometheus` package) for ops/check-monitoring.sh. The package would
# start a Prometheus daemon of its own: the install forbids service starts (policy-rc.d, as
# Debian's own image builds do), and any daemon left running is stopped.
ensure_promtool() {
  have promtool && return 0
  local policy=/usr/sbin/policy-rc.d created=0
  if [[ ! -e ${policy} ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "${policy}" >/dev/null
    as_root chmod 755 "${policy}"
    created=1
  fi
  apt_install prometheus
  if ((created)); then
    as_root rm -f "${policy}"
  fi
  if have systemctl && systemctl is-active --quiet prometheus 2>/dev/null; then
    as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  have promtool || die "promtool is still missing after installing the prometheus package"
}

# ---------------------------------------------------------------- commands

cmd_run() {
  ensure_toolchain
  resolve_database
  ensure_redis
  ensure_app_database

  export DATABASE_URL="${APP_DATABASE_URL}"
  export REDIS_URL="${RESOLVED_REDIS_URL}"

  step "Building akig (cargo build --release)"
  cargo build --release --bin akig
  step "Applying migrations (akig migrate)"
  cargo run --release --quiet --bin akig -- migrate
  step "Loading demo data (akig seed --demo)"
  cargo run --release --quiet --bin akig -- seed --demo

  local listen="${AKIG_LISTEN:-0.0.0.0:50051}"
  local metrics="${AKIG_METRICS_LISTEN:-0.0.0.0:9100}"
  local port="${listen##*:}"
  local metrics_port="${metrics##*:}"
  cat <<EOF
==> Starting the server (Ctrl-C to stop)
    gRPC and gRPC-web  localhost:${port}   (server reflection enabled)
    metrics            http://localhost:${metrics_port}/metrics
    database           $(redact "${DATABASE_URL}")
    redis              $(redact "${REDIS_URL}")
    try                grpcurl -plaintext localhost:${port} list
                       grpcurl -plaintext -d '{"service":""}' localhost:${port} grpc.health.v1.Health/Check
    API guide          docs/api-guide.md
EOF
  current_step="akig serve"
  exec cargo run --release --quiet --bin akig -- serve "$@"
}

cmd_test() {
  ensure_toolchain
  resolve_database
  ensure_redis

  if have psql; then
    local can_create
    can_create="$(pg_query "${TEST_DATABASE_URL}" 'select rolcreatedb or rolsuper from pg_roles where rolname = current_user')"
    [[ ${can_create} == t ]] ||
      die "the role in DATABASE_URL may not CREATE DATABASE, which the tests need (each test gets its own database)"
    local version
    version="$(pg_query "${TEST_DATABASE_URL}" 'show server_version_num')"
    ((version >= 130000)) ||
      die "the tests need PostgreSQL 13 or later (DROP DATABASE ... WITH (FORCE)); the server is ${version}"
  fi

  export DATABASE_URL="${TEST_DATABASE_URL}"
  export REDIS_URL="${RESOLVED_REDIS_URL}"
  note "tests use DATABASE_URL=$(redact "${DATABASE_URL}") REDIS_URL=$(redact "${REDIS_URL}")"

  if [[ -f "${repo_root}/ops/buf-lint.sh" ]]; then
    ensure_python_venv
    step "Linting the protos (ops/buf-lint.sh)"
    bash "${repo_root}/ops/buf-lint.sh"
  fi

  ensure_promtool
  step "Checking the monitoring set-up (ops/check-monitoring.sh)"
  bash "${repo_root}/ops/check-monitoring.sh"

  step "Running tests (cargo test --all-targets${*:+ $*})"
  cargo test --all-targets "$@"
  if [[ $# -eq 0 ]]; then
    step "Running doc tests (cargo test --doc)"
    cargo test --doc
  fi
  step "Done"
}

# The benchmarks' tools: h2load (Debian nghttp2-client), pgbench (postgresql-contrib) and
# pyvroom (PyPI, for ops/bench/missions.sh and ops/bench/tsp.sh), each only when missing.
cmd_bench_tools() {
  local packages=()
  have h2load || packages+=(nghttp2-client)
  have pgbench || packages+=(postgresql-contrib)
  have python3 || packages+=(python3 python3-pip)
  if ((${#packages[@]})); then
    apt_install "${packages[@]}"
  fi
  if ! python3 -c 'import vroom' >/dev/null 2>&1; then
    step "Installing pyvroom (pip)"
    python3 -m pip install --quiet pyvroom ||
      python3 -m pip install --quiet --break-system-packages pyvroom
  fi
  note "h2load: $(command -v h2load), pgbench: $(command -v pgbench), pyvroom: $(python3 -c 'import vroom; print(vroom.__file__)')"
  step "Done"
}

main() {
  cd "${repo_root}"
  local cmd="${1:-}"
  if [[ $# -gt 0 ]]; then
    shift
  fi
  if [[ "${1:-}" == "--" ]]; then
    shift
  fi
  case "${cmd}" in
    run) cmd_run "$@" ;;
    test) cmd_test "$@" ;;
    bench-tools) cmd_bench_tools ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      reported=1
      exit 2
      ;;
  esac
}

main "$@"
