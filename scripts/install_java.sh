#!/usr/bin/env bash
# Java for Apache Spark (`--engine spark`, `make test-spark`): Debian's headless OpenJDK 17,
# the runtime pyspark 4.3 supports. Idempotent; run as root (CI and the dev machines are root).
set -euo pipefail
if ! command -v java >/dev/null 2>&1 || ! java -version 2>&1 | grep -q 'version "17'; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi
java -version 2>&1 | head -1
