#!/usr/bin/env bash
# kafka.sh runs a real single-node Apache Kafka broker (KRaft, combined
# broker+controller) for tests and local use, from the jars on Maven Central.
#
# Usage: deploy/kafka/kafka.sh fetch|start|stop|status
#
#   fetch   only fetch the jars (Maven Central, into KAFKA_CACHE) and kcat.
#   start   fetch the jars once (Maven, into KAFKA_CACHE), write the config,
#           format storage on first use, start the broker in the background
#           and wait until it answers a metadata request. Prints the
#           bootstrap address (127.0.0.1:KAFKA_PORT) on stdout last.
#   stop    terminate the broker (SIGTERM, SIGKILL after KAFKA_STOP_TIMEOUT)
#           and wait until it has exited.
#   status  exit 0 and say so when the broker runs, exit 3 when it does not.
#
# Environment (defaults in brackets):
#   KAFKA_DIR              data dir: config, logs, pidfile, log.dirs [${TMPDIR:-/tmp}/vitals-kafka]
#   KAFKA_PORT             PLAINTEXT listener on 127.0.0.1 [19092]
#   KAFKA_CONTROLLER_PORT  CONTROLLER listener on 127.0.0.1 [KAFKA_PORT+1]
#   KAFKA_VERSION          org.apache.kafka:kafka_2.13 version [4.1.1]
#   KAFKA_CACHE            where the jars go, reused offline [$HOME/.cache/vitals/kafka-VERSION]
#   KAFKA_HEAP_OPTS        JVM heap flags [-Xms128m -Xmx512m]
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer [90]
#   KAFKA_STOP_TIMEOUT     seconds to wait for a clean stop before SIGKILL [30]
#   KAFKA_EXTRA_PROPS      extra server.properties lines, appended verbatim
#   KAFKA_OWNER_PID        when set, the broker is stopped once that process has
#                          exited (tests set it so a killed test binary leaves
#                          no broker behind)
#   JAVA_HOME              JDK to use (java on PATH otherwise); needs Java 17+
#
# Nothing is substituted silently: when Maven Central does not serve what the
# pom asks for, the Maven error is printed and the script exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_DIR="${KAFKA_DIR:-${TMPDIR:-/tmp}/vitals-kafka}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_CACHE="${KAFKA_CACHE:-${HOME}/.cache/vitals/kafka-${KAFKA_VERSION}}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-180}" # seconds; a JVM start on a loaded 2-core machine can take minutes
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_EXTRA_PROPS="${KAFKA_EXTRA_PROPS:-}"

pidfile="${KAFKA_DIR}/kafka.pid"
props="${KAFKA_DIR}/server.properties"
log4j="${KAFKA_DIR}/log4j2.properties"
logs="${KAFKA_DIR}/logs"
datadir="${KAFKA_DIR}/data"
bootstrap="127.0.0.1:${KAFKA_PORT}"

say() { echo "kafka.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

java_bin() {
	if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
		echo "${JAVA_HOME}/bin/java"
	elif command -v java >/dev/null; then
		command -v java
	else
		die "no java found (set JAVA_HOME or install openjdk-17-jre-headless)"
	fi
}

# running_pid prints the broker's pid when the pidfile names a live process
# that is this data dir's broker (not a reused pid), and fails otherwise.
running_pid() {
	[[ -f "$pidfile" ]] || return 1
	local pid
	pid="$(cat "$pidfile")"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	alive "$pid" || return 1
	tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qF -- "$props" || return 1
	echo "$pid"
}

# fetch_jars copies kafka_2.13 and its runtime dependencies into KAFKA_CACHE
# once. A lock keeps concurrent first starts from racing; the copy goes to a
# temporary directory and is renamed, so a half-done download is never used.
fetch_jars() {
	local marker="${KAFKA_CACHE}/.complete"
	[[ -f "$marker" ]] && return 0
	command -v mvn >/dev/null || die "mvn not found: install Maven (Debian package maven) to fetch Kafka ${KAFKA_VERSION}"
	mkdir -p "$(dirname "$KAFKA_CACHE")"
	exec 9>"${KAFKA_CACHE}.lock"
	flock 9
	if [[ -f "$marker" ]]; then
		exec 9>&-
		return 0
	fi
	local tmp="${KAFKA_CACHE}.tmp.$$" mvnlog
	mvnlog="$(mktemp)"
	rm -rf "$tmp"
	say "fetching Apache Kafka ${KAFKA_VERSION} jars from Maven Central into ${KAFKA_CACHE}"
	if ! mvn -B -q -Dstyle.color=never -f "${here}/pom.xml" \
		-Dkafka.version="${KAFKA_VERSION}" -Dkafka.cache="$tmp" \
		dependency:copy-dependencies >"$mvnlog" 2>&1; then
		cat "$mvnlog" >&2
		rm -rf "$tmp" "$mvnlog"
		die "Maven could not fetch org.apache.kafka:kafka_2.13:${KAFKA_VERSION} and its dependencies (output above)"
	fi
	rm -f "$mvnlog"
	[[ -f "${tmp}/libs/kafka_2.13-${KAFKA_VERSION}.jar" ]] ||
		die "Maven succeeded but ${tmp}/libs/kafka_2.13-${KAFKA_VERSION}.jar is missing"
	touch "${tmp}/.complete"
	rm -rf "$KAFKA_CACHE"
	mv "$tmp" "$KAFKA_CACHE"
	exec 9>&-
}

write_config() {
	mkdir -p "$logs" "$datadir"
	cat >"$props" <<EOF
# Written by deploy/kafka/kafka.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${KAFKA_CONTROLLER_PORT}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${datadir}
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
${KAFKA_EXTRA_PROPS}
EOF
	cat >"$log4j" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${logs}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
EOF
}

# set_java fills the array java with the JVM command line shared by the
# storage tool and the broker.
set_java() {
	local heap
	read -r -a heap <<<"$KAFKA_HEAP_OPTS"
	java=("$(java_bin)" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
		"-Dlog4j2.configurationFile=${log4j}" "-Dkafka.logs.dir=${logs}" -cp "${KAFKA_CACHE}/libs/*")
}

# alive succeeds while pid is a live process (a zombie counts as gone).
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	local state
	state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
	[[ "$state" != Z ]]
}

# format_storage formats log.dirs with a random cluster id on first use; a
# data dir that holds meta.properties is reused as it is.
format_storage() {
	[[ -f "${datadir}/meta.properties" ]] && return 0
	local cluster_id out
	# A Kafka cluster id is a random UUID in URL-safe base64 without padding;
	# like Kafka's own Uuid.randomUuid, never one that starts with "-", which
	# the tool's argument parser would take for an option.
	cluster_id="-"
	while [[ "$cluster_id" == -* ]]; do
		cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
	done
	local java
	set_java
	if ! out="$("${java[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$props" 2>&1)"; then
		echo "$out" >&2
		die "formatting ${datadir} failed (output above)"
	fi
}

ensure_kcat() {
	command -v kcat >/dev/null && return 0
	if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
		say "installing kcat (Debian package) for the readiness check"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q kcat >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null 2>&1 &&
				DEBIAN_FRONTEND=noninteractive apt-get install -y -q kcat >/dev/null 2>&1; } ||
			say "could not install kcat; falling back to port + log check"
	fi
	return 0
}

# ready succeeds when the broker answers a metadata request listing itself
# (kcat), or, without kcat, when the port accepts and the log says started.
ready() {
	if command -v kcat >/dev/null; then
		kcat -L -b "$bootstrap" -m 2 2>/dev/null | grep -q "broker 1 at ${bootstrap}"
	else
		(exec 3<>"/dev/tcp/127.0.0.1/${KAFKA_PORT}") 2>/dev/null &&
			grep -q "Kafka Server started" "${logs}/server.log" 2>/dev/null
	fi
}

# watch_owner starts a detached watchdog that sends SIGTERM to the broker
# once the owner process is gone, and ends by itself when the broker does.
watch_owner() {
	local owner="$1" broker="$2"
	# shellcheck disable=SC2016 # $1 and $2 expand in the watchdog's shell.
	nohup bash -c '
		while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done
		kill -TERM "$2" 2>/dev/null || true
	' kafka-watchdog "$owner" "$broker" </dev/null >/dev/null 2>&1 &
}

start() {
	local pid
	if pid="$(running_pid)"; then
		say "already running (pid ${pid}) on ${bootstrap}"
		echo "$bootstrap"
		return 0
	fi
	fetch_jars
	ensure_kcat
	write_config
	format_storage
	say "starting Kafka ${KAFKA_VERSION} on ${bootstrap} (controller 127.0.0.1:${KAFKA_CONTROLLER_PORT}, dir ${KAFKA_DIR})"
	local java
	set_java
	nohup "${java[@]}" kafka.Kafka "$props" </dev/null >"${logs}/kafka.out" 2>&1 &
	pid=$!
	echo "$pid" >"$pidfile"
	local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
	until ready; do
		if ! alive "$pid"; then
			rm -f "$pidfile"
			tail -n 40 "${logs}/kafka.out" "${logs}/server.log" >&2 2>/dev/null || true
			die "broker exited during start-up (logs in ${logs})"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 40 "${logs}/server.log" >&2 2>/dev/null || true
			stop
			die "broker did not answer on ${bootstrap} within ${KAFKA_START_TIMEOUT}s (logs in ${logs})"
		fi
		sleep 0.5
	done
	if [[ -n "${KAFKA_OWNER_PID:-}" ]]; then
		watch_owner "$KAFKA_OWNER_PID" "$pid"
	fi
	say "ready (pid ${pid}) after ${SECONDS}s"
	echo "$bootstrap"
}

stop() {
	local pid
	if ! pid="$(running_pid)"; then
		rm -f "$pidfile"
		say "not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
	while alive "$pid"; do
		if ((SECONDS >= deadline)); then
			say "no clean stop within ${KAFKA_STOP_TIMEOUT}s; killing pid ${pid}"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.2
	done
	rm -f "$pidfile"
	say "stopped (pid ${pid})"
}

status() {
	local pid
	if pid="$(running_pid)"; then
		echo "running (pid ${pid}) on ${bootstrap}"
		return 0
	fi
	echo "stopped"
	return 3
}

case "${1:-}" in
fetch) fetch_jars; ensure_kcat || true ;;
start) start ;;
stop) stop ;;
status) status ;;
*)
	echo "usage: $0 fetch|start|stop|status" >&2
	exit 2
	;;
esac
