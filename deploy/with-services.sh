#!/usr/bin/env bash
# with-services.sh starts the local services the tests need — a private
# ClickHouse (deploy/clickhouse) and a private Apache Kafka in KRaft mode
# (deploy/kafka) — exports their addresses for the tests, runs the given
# command, and stops both afterwards whether the command passed or not.
#
# Usage: deploy/with-services.sh COMMAND [ARGS...]
#
# Exports VITALS_TEST_CLICKHOUSE_ADDR and VITALS_TEST_KAFKA_BROKERS, which
# internal/testenv uses instead of starting private instances per package.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${VITALS_SERVICES_DIR:-$repo_root/.cache/services}
mkdir -p "$state"

export CLICKHOUSE_DIR=$state/clickhouse CLICKHOUSE_PORT=${CLICKHOUSE_PORT:-19000} CLICKHOUSE_HTTP_PORT=${CLICKHOUSE_HTTP_PORT:-18123}
export KAFKA_DIR=$state/kafka KAFKA_PORT=${KAFKA_PORT:-19092}

stop_all() {
	local rc=$?
	"$repo_root/deploy/kafka/kafka.sh" stop || true
	"$repo_root/deploy/clickhouse/clickhouse.sh" stop || true
	exit "$rc"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# Fresh state every run: tests must not depend on leftovers.
"$repo_root/deploy/kafka/kafka.sh" stop >/dev/null 2>&1 || true
"$repo_root/deploy/clickhouse/clickhouse.sh" stop >/dev/null 2>&1 || true
rm -rf "$CLICKHOUSE_DIR" "$KAFKA_DIR"

"$repo_root/deploy/clickhouse/clickhouse.sh" start
"$repo_root/deploy/kafka/kafka.sh" start

export VITALS_TEST_CLICKHOUSE_ADDR=127.0.0.1:$CLICKHOUSE_PORT
export VITALS_TEST_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
echo "with-services.sh: ClickHouse $VITALS_TEST_CLICKHOUSE_ADDR, Kafka $VITALS_TEST_KAFKA_BROKERS" >&2
"$@"
