#!/usr/bin/env bash
# clickhouse.sh runs a private ClickHouse server for local development and
# tests: its own data directory, its own ports, listening on 127.0.0.1 only.
# It never touches the system instance (/etc/clickhouse-server, port 9000).
#
# Usage: deploy/clickhouse/clickhouse.sh install|start|stop|status|addr
#
#   install make sure the ClickHouse binaries are there: when missing, install
#           Debian's clickhouse-server and clickhouse-client with apt-get when
#           running as root, else print what to install and fail.
#   start   install ClickHouse if missing (root only), write config into the
#           instance directory, start the server and wait until `SELECT 1`
#           answers. Does nothing when the instance already runs.
#   stop    stop the instance and wait until it has exited. Does nothing when
#           it is not running.
#   status  exit 0 and print the address when the instance answers, exit 3
#           when it is not running, exit 1 when it runs but does not answer.
#   addr    print the native-protocol address (127.0.0.1:PORT).
#
# Environment:
#   CLICKHOUSE_DIR            instance directory (default: <repo>/.cache/clickhouse)
#   CLICKHOUSE_PORT           native TCP port (default: 19000)
#   CLICKHOUSE_HTTP_PORT      HTTP port (default: 18123)
#   CLICKHOUSE_START_TIMEOUT  seconds to wait for readiness (default: 60)
#
# The instance directory holds config.xml, users.xml, data/, tmp/, log/ and
# clickhouse.pid. The config uses the <yandex> root element so that it works on
# Debian's clickhouse-server 18.16 and on current ClickHouse alike.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${CLICKHOUSE_DIR:-$repo_root/.cache/clickhouse}
tcp_port=${CLICKHOUSE_PORT:-19000}
http_port=${CLICKHOUSE_HTTP_PORT:-18123}
start_timeout=${CLICKHOUSE_START_TIMEOUT:-60}

usage() {
	echo "usage: $0 install|start|stop|status|addr" >&2
	echo "  env: CLICKHOUSE_DIR (default $repo_root/.cache/clickhouse), CLICKHOUSE_PORT (19000)," >&2
	echo "       CLICKHOUSE_HTTP_PORT (18123), CLICKHOUSE_START_TIMEOUT (60 seconds)" >&2
	exit 2
}

log() { echo "clickhouse.sh: $*" >&2; }

# server_cmd and client_cmd hold the commands that run the server and the
# client: Debian ships separate binaries (clickhouse-server in /usr/sbin),
# upstream ships one `clickhouse` binary with subcommands.
server_cmd=()
client_cmd=()

find_binaries() {
	server_cmd=()
	client_cmd=()
	local p
	for p in "$(command -v clickhouse-server || true)" /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
		if [[ -n $p && -x $p ]]; then server_cmd=("$p"); break; fi
	done
	for p in "$(command -v clickhouse-client || true)" /usr/bin/clickhouse-client; do
		if [[ -n $p && -x $p ]]; then client_cmd=("$p"); break; fi
	done
	p=$(command -v clickhouse || true)
	if [[ -n $p ]]; then
		[[ ${#server_cmd[@]} -gt 0 ]] || server_cmd=("$p" server)
		[[ ${#client_cmd[@]} -gt 0 ]] || client_cmd=("$p" client)
	fi
	[[ ${#server_cmd[@]} -gt 0 && ${#client_cmd[@]} -gt 0 ]]
}

ensure_binaries() {
	find_binaries && return 0
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		log "ClickHouse not found; installing clickhouse-server and clickhouse-client with apt-get"
		DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q clickhouse-server clickhouse-client >&2
		find_binaries && return 0
		log "apt-get installed the packages but no clickhouse-server/clickhouse-client binary was found"
		exit 1
	fi
	log "ClickHouse is not installed (need clickhouse-server and clickhouse-client)."
	log "Install it, then run this again:"
	log "  sudo apt-get update && sudo apt-get install -y clickhouse-server clickhouse-client"
	log "or put an upstream 'clickhouse' binary on PATH."
	exit 1
}

# resolve_dir makes dir absolute (creating it), so the config never depends
# on the working directory of whoever starts the server.
resolve_dir() {
	case $dir in
	*[\<\>\&\"\']*)
		log "CLICKHOUSE_DIR must not contain < > & \" ' (it is written into XML): $dir"
		exit 2
		;;
	esac
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	pidfile=$dir/clickhouse.pid
}

# running prints the server's pid when the pidfile names a live ClickHouse
# process started from this directory's config (guards against pid reuse).
running() {
	[[ -f $pidfile ]] || return 1
	local pid
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r /proc/$pid/cmdline ]]; then
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/config.xml" || return 1
	fi
	echo "$pid"
}

# configured_port prints the port of the given element from the instance's
# config, so stop/status talk to the ports the instance was started with.
configured_port() {
	local v=""
	if [[ -f $dir/config.xml ]]; then
		v=$(sed -n "s:.*<$1>\([0-9]*\)</$1>.*:\1:p" "$dir/config.xml" | head -n1)
	fi
	echo "${v:-$2}"
}

answers() {
	local out
	out=$("${client_cmd[@]}" --host 127.0.0.1 --port "$1" --query 'SELECT 1' 2>/dev/null) || return 1
	[[ $out == 1 ]]
}

port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

log_tail() {
	local f
	for f in "$dir/log/clickhouse-server.err.log" "$dir/log/stdout.log" "$dir/log/clickhouse-server.log"; do
		if [[ -s $f ]]; then
			echo "---- tail of $f" >&2
			tail -n 40 "$f" >&2
		fi
	done
}

write_config() {
	mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log"
	cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<!-- Generated by deploy/clickhouse/clickhouse.sh; rewritten on every start. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$dir/log/clickhouse-server.log</log>
        <errorlog>$dir/log/clickhouse-server.err.log</errorlog>
        <size>20M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$tcp_port</tcp_port>
    <http_port>$http_port</http_port>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mlock_executable>false</mlock_executable>
</yandex>
XML
	cat >"$dir/users.xml" <<'XML'
<?xml version="1.0"?>
<!-- Generated by deploy/clickhouse/clickhouse.sh: one passwordless user, loopback only. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <!-- Idle connections notice a shutdown within this many seconds
                 (default 10), so `stop` does not wait on a client's pool. -->
            <poll_interval>1</poll_interval>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
XML
}

cmd_start() {
	ensure_binaries
	resolve_dir
	local pid
	if pid=$(running); then
		tcp_port=$(configured_port tcp_port "$tcp_port")
	else
		rm -f "$pidfile"
		# Current ClickHouse refuses to start when the data directory belongs
		# to another user than the one running the server; say so up front.
		local owner
		owner=$(stat -c %u "$dir")
		if [[ $owner != "$(id -u)" ]]; then
			log "$dir belongs to uid $owner but the server would run as uid $(id -u); run as that user or remove the directory"
			exit 1
		fi
		local p
		for p in "$tcp_port" "$http_port"; do
			if port_in_use "$p"; then
				log "port $p on 127.0.0.1 is already in use; set CLICKHOUSE_PORT / CLICKHOUSE_HTTP_PORT to free ports"
				exit 1
			fi
		done
		write_config
		# setsid: the server outlives this script and is not hit by a ^C
		# meant for the terminal that started it. Output goes to the log so
		# no caller's pipe is held open.
		local launcher=()
		command -v setsid >/dev/null && launcher=(setsid)
		"${launcher[@]}" "${server_cmd[@]}" --config-file="$dir/config.xml" \
			>>"$dir/log/stdout.log" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$pidfile"
	fi

	local deadline=$((SECONDS + start_timeout))
	until answers "$tcp_port"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "server exited during startup"
			log_tail
			rm -f "$pidfile"
			exit 1
		fi
		if ((SECONDS >= deadline)); then
			log "server did not answer SELECT 1 on 127.0.0.1:$tcp_port within ${start_timeout}s; stopping it"
			log_tail
			cmd_stop
			exit 1
		fi
		sleep 0.2
	done
	log "running (pid $pid, dir $dir, http 127.0.0.1:$(configured_port http_port "$http_port"))"
	echo "127.0.0.1:$tcp_port"
}

cmd_stop() {
	resolve_dir
	local pid
	if ! pid=$(running); then
		rm -f "$pidfile"
		log "not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "pid $pid did not exit 30s after SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			deadline=$((SECONDS + 10))
		fi
		sleep 0.1
	done
	rm -f "$pidfile"
	log "stopped (pid $pid)"
}

cmd_status() {
	resolve_dir
	local pid port
	if ! pid=$(running); then
		log "not running"
		exit 3
	fi
	port=$(configured_port tcp_port "$tcp_port")
	find_binaries || { log "running (pid $pid) but no clickhouse client to check it"; exit 1; }
	if answers "$port"; then
		log "running (pid $pid, dir $dir)"
		echo "127.0.0.1:$port"
		return 0
	fi
	log "pid $pid is running but 127.0.0.1:$port does not answer"
	exit 1
}

cmd_addr() {
	resolve_dir
	echo "127.0.0.1:$(configured_port tcp_port "$tcp_port")"
}

cmd_install() {
	ensure_binaries
	log "using ${server_cmd[*]} and ${client_cmd[*]}"
}

case ${1:-} in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
addr) cmd_addr ;;
*) usage ;;
esac
