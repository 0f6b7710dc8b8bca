#!/usr/bin/env bash
# PostgreSQL 15 and Redis from Debian's packages, on loopback, for Airflow's CeleryExecutor
# (`make test-celery`, tests/airflow/test_celery.py). Run as root (apt-get, pg_ctlcluster).
#
#   scripts/celery_services.sh start STATE_DIR   # installs if missing, starts, writes STATE_DIR/services.env
#   scripts/celery_services.sh stop STATE_DIR    # drops the database and user, stops what start started
#
# Optional settings: PG_USER, PG_DB, PG_PASSWORD (default: random), REDIS_PORT (default: a free
# one), CELERY_SERVICES_WAIT_SECONDS (30). Idempotent: start twice reuses what runs; stop after a failed or partial start stops what
# is there. The database and user are throwaway (random names and password); Redis keeps
# nothing on disk (no RDB snapshots, no AOF) and listens on a free loopback port.
set -euo pipefail

PG_VERSION=15
PG_CLUSTER=main
WAIT_SECONDS=${CELERY_SERVICES_WAIT_SECONDS:-30}

die() { echo "celery_services.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop STATE_DIR"; }

[ $# -eq 2 ] || usage
action=$1
state=$2
env_file="$state/services.env"

as_postgres() { (cd / && runuser -u postgres -- "$@"); }
psql_admin() { as_postgres psql --no-psqlrc -v ON_ERROR_STOP=1 -qAt -p "$PG_PORT" "$@"; }

install_packages() {
  local missing=()
  command -v pg_ctlcluster >/dev/null && [ -d "/usr/lib/postgresql/$PG_VERSION/bin" ] || missing+=("postgresql-$PG_VERSION")
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "needs root to install ${missing[*]} (apt-get)"
  echo "installing ${missing[*]} (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

random_hex() { python3 -c "import secrets; print(secrets.token_hex($1))"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() {  # wait_for WHAT COMMAND...: bounded wait, a clear error at the timeout
  local what=$1; shift
  for _ in $(seq "$WAIT_SECONDS"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "$what not ready after ${WAIT_SECONDS}s"
}

# Written after each step, so that `stop` after a failed start still undoes what was done.
save_state() {
  (umask 077 && cat >"$env_file" <<EOF
PG_PORT=${PG_PORT:-}
PG_USER=${PG_USER:-}
PG_DB=${PG_DB:-}
PG_PASSWORD=${PG_PASSWORD:-}
PG_STARTED_HERE=${PG_STARTED_HERE:-0}
REDIS_PORT=${REDIS_PORT:-}
EOF
  )
}

cluster_status() { pg_lsclusters --no-header | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c {print $4}'; }

start() {
  [ "$(id -u)" -eq 0 ] || die "run as root (pg_ctlcluster, runuser postgres)"
  install_packages
  mkdir -p "$state"
  if [ -f "$env_file" ]; then
    # shellcheck disable=SC1090
    . "$env_file"
  fi
  PG_USER=${PG_USER:-celery_$(random_hex 4)}
  PG_DB=${PG_DB:-$PG_USER}
  PG_PASSWORD=${PG_PASSWORD:-$(random_hex 16)}
  [[ $PG_USER =~ ^[a-z_][a-z0-9_]*$ && $PG_DB =~ ^[a-z_][a-z0-9_]*$ && $PG_PASSWORD =~ ^[A-Za-z0-9]+$ ]] ||
    die "PG_USER, PG_DB: lower-case SQL identifiers; PG_PASSWORD: letters and digits"
  save_state
  [ -n "$(cluster_status)" ] || pg_createcluster "$PG_VERSION" "$PG_CLUSTER" >/dev/null
  PG_PORT=$(pg_lsclusters --no-header | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c {print $3}')
  if [ "$(cluster_status)" != online ]; then
    PG_STARTED_HERE=1
    save_state
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
  fi
  wait_for "PostgreSQL $PG_VERSION on port $PG_PORT" pg_isready -h 127.0.0.1 -p "$PG_PORT"

  if [ -z "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" ]; then
    psql_admin -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'"
  fi
  if [ -z "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" ]; then
    psql_admin -c "CREATE DATABASE $PG_DB OWNER $PG_USER"
  fi

  REDIS_PORT=${REDIS_PORT:-$(free_port)}
  save_state
  if ! { [ -f "$state/redis.pid" ] && kill -0 "$(cat "$state/redis.pid")" 2>/dev/null; }; then
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
      --save '' --appendonly no --dir "$state" \
      --daemonize yes --pidfile "$state/redis.pid" --logfile "$state/redis.log"
  fi
  wait_for "Redis on 127.0.0.1:$REDIS_PORT" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping

  echo "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT (database $PG_DB), Redis on 127.0.0.1:$REDIS_PORT"
}

stop() {
  [ -f "$env_file" ] || { echo "nothing to stop ($env_file missing)"; return 0; }
  # shellcheck disable=SC1090
  . "$env_file"
  local status=0
  if [ -f "$state/redis.pid" ]; then
    local pid; pid=$(cat "$state/redis.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq "$WAIT_SECONDS"); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -0 "$pid" 2>/dev/null && { kill -9 "$pid"; echo "Redis (pid $pid) killed after ${WAIT_SECONDS}s" >&2; }
    fi
    rm -f "$state/redis.pid"
  fi
  if [ "$(cluster_status)" = online ]; then
    # WITH (FORCE) ends sessions a killed Airflow process may have left
    PG_PORT=${PG_PORT:-5432}
    if [ -n "${PG_DB:-}" ]; then
      psql_admin -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" || status=1
    fi
    if [ -n "${PG_USER:-}" ]; then
      psql_admin -c "DROP ROLE IF EXISTS $PG_USER" || status=1
    fi
    if [ "${PG_STARTED_HERE:-0}" = 1 ]; then
      pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast || status=1
    fi
  fi
  rm -f "$env_file"
  echo "Celery services stopped"
  return $status
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
