#!/usr/bin/env bash
# A Spark standalone cluster on loopback: one master and two workers (docs/spark.md, bench).
# The pip package of pyspark has no sbin/start-*.sh, so the daemons are started with
# spark-class, as the standalone deploy mode's own scripts do.
#
#   scripts/spark_cluster.sh start [STATE_DIR]   # master spark://127.0.0.1:7077, UI off
#   scripts/spark_cluster.sh stop [STATE_DIR]    # stops what start started (pids in STATE_DIR)
#
# Then: CITYCLOUD_SPARK_MASTER=spark://127.0.0.1:7077 citycloud run --engine spark ...
# Settings: SPARK_WORKERS (2), SPARK_WORKER_CORES (1), SPARK_WORKER_MEMORY (1g),
# SPARK_MASTER_PORT (7077), CLUSTER_WAIT_SECONDS (120). STATE_DIR default: /tmp/citycloud-spark-cluster.
set -euo pipefail

die() { echo "spark_cluster.sh: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: $0 start|stop [STATE_DIR]"
action=$1
state=${2:-/tmp/citycloud-spark-cluster}
workers=${SPARK_WORKERS:-2}
port=${SPARK_MASTER_PORT:-7077}
wait_seconds=${CLUSTER_WAIT_SECONDS:-120}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
[ -x "$python" ] || python=python3
master_url="spark://127.0.0.1:$port"

spark_home() {
  "$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null \
    || die "pyspark is not installed for $python (make setup)"
}

# Wait until the log shows the line a daemon writes once it serves (or it died).
wait_for() {
  local pid=$1 log=$2 pattern=$3 waited=0
  until grep -q "$pattern" "$log" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || die "$(basename "$log" .log) exited; see $log"
    [ "$waited" -lt "$wait_seconds" ] || die "$(basename "$log" .log) not up after ${wait_seconds}s; see $log"
    sleep 1; waited=$((waited + 1))
  done
}

start() {
  command -v java >/dev/null || die "java not found: run scripts/install_java.sh"
  mkdir -p "$state"
  if [ -f "$state/master.pid" ] && kill -0 "$(cat "$state/master.pid")" 2>/dev/null; then
    echo "spark cluster already running: $master_url"; return 0
  fi
  local home; home=$(spark_home)
  export SPARK_HOME=$home SPARK_LOCAL_IP=127.0.0.1 SPARK_NO_DAEMONIZE=1
  "$home/bin/spark-class" org.apache.spark.deploy.master.Master \
      --host 127.0.0.1 --port "$port" --webui-port 0 >"$state/master.log" 2>&1 &
  echo $! >"$state/master.pid"
  wait_for "$(cat "$state/master.pid")" "$state/master.log" "I have been elected leader"
  for i in $(seq 1 "$workers"); do
    mkdir -p "$state/worker$i"
    "$home/bin/spark-class" org.apache.spark.deploy.worker.Worker \
        --host 127.0.0.1 --cores "${SPARK_WORKER_CORES:-1}" --memory "${SPARK_WORKER_MEMORY:-1g}" \
        --webui-port 0 --work-dir "$state/worker$i" "$master_url" >"$state/worker$i.log" 2>&1 &
    echo $! >"$state/worker$i.pid"
  done
  for i in $(seq 1 "$workers"); do
    wait_for "$(cat "$state/worker$i.pid")" "$state/worker$i.log" "Successfully registered with master"
  done
  echo "spark cluster up: $master_url ($workers workers; logs in $state)"
}

stop() {
  local stopped=0
  for pidfile in "$state"/worker*.pid "$state/master.pid"; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then kill "$pid"; stopped=$((stopped + 1)); fi
    rm -f "$pidfile"
  done
  echo "spark cluster stopped ($stopped processes)"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 start|stop [STATE_DIR]" ;;
esac
