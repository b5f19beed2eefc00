#!/usr/bin/env bash
# run-local.sh is `make run`: the whole pipeline on its embedded defaults,
# with a demo simulator and receiver, so a newcomer sees signed webhooks
# arrive within a minute. Ctrl-C stops everything it started.
#
# Usage: deploy/run-local.sh BIN DATA_DIR
#
#   1. ClickHouse on a private port and data dir when its binary is
#      installed (deploy/clickhouse); otherwise attempts go to the disk spool.
#   2. `vitals run` on the embedded kfake broker persisted in DATA_DIR.
#   3. `vitals listen`, registered as an endpoint, printing verified webhooks.
#   4. `vitals simulate`, sending healthy, churning and expanding customers.
#
# Environment: VITALS_LISTEN (default 127.0.0.1:8443), SIM_CUSTOMERS (6),
# SIM_RATE (events/s, 100), CLICKHOUSE_PORT (19100).
set -euo pipefail

bin=${1:?usage: run-local.sh BIN DATA_DIR}
data=${2:?usage: run-local.sh BIN DATA_DIR}
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
listen=${VITALS_LISTEN:-127.0.0.1:8443}
mkdir -p "$data"
data=$(cd "$data" && pwd)

pids=()
clickhouse_started=
cleanup() {
	trap - EXIT INT TERM
	echo
	echo "run-local: stopping..."
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ -n $clickhouse_started ]]; then
		CLICKHOUSE_DIR=$data/clickhouse "$repo_root/deploy/clickhouse/clickhouse.sh" stop || true
	fi
	echo "run-local: stopped. State is kept in $data (delete it to start afresh)."
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ch_args=()
if command -v clickhouse-server >/dev/null || command -v clickhouse >/dev/null || [[ -x /usr/sbin/clickhouse-server ]]; then
	export CLICKHOUSE_DIR=$data/clickhouse CLICKHOUSE_PORT=${CLICKHOUSE_PORT:-19100} CLICKHOUSE_HTTP_PORT=${CLICKHOUSE_HTTP_PORT:-18223}
	if "$repo_root/deploy/clickhouse/clickhouse.sh" start; then
		clickhouse_started=1
		ch_args=(--clickhouse-addr "127.0.0.1:$CLICKHOUSE_PORT")
	else
		echo "run-local: ClickHouse did not start; webhook attempts go to the disk spool in $data/spool" >&2
	fi
else
	echo "run-local: ClickHouse is not installed (Debian: apt-get install clickhouse-server); webhook attempts go to the disk spool in $data/spool" >&2
fi

"$bin" run --data-dir "$data" --listen "$listen" --allow-private-endpoints --allow-insecure-endpoints "${ch_args[@]}" &
pids+=($!)

creds=$data/bootstrap-client.json
for _ in $(seq 1 600); do
	[[ -s $creds ]] && curl -fsS --cacert "$data/tls/cert.pem" "https://$listen/readyz" >/dev/null 2>&1 && break
	kill -0 "${pids[0]}" 2>/dev/null || { echo "run-local: vitals run exited" >&2; exit 1; }
	sleep 0.1
done

"$bin" listen --credentials "$creds" --listen 127.0.0.1:0 &
pids+=($!)

# Large batches keep the demo well inside the standard class quota (1000 requests/hour).
"$bin" simulate --credentials "$creds" --customers "${SIM_CUSTOMERS:-6}" --rate "${SIM_RATE:-100}" --batch 500 &
pids+=($!)

cat <<MSG

  Vitals is running.
    API            https://$listen   (self-signed certificate: $data/tls/cert.pem)
    credentials    $creds
    metrics        https://$listen/metrics
  The simulator is sending customer journeys; \`vitals listen\` prints each
  verified webhook below. Press Ctrl-C to stop everything.

MSG
wait "${pids[0]}"
