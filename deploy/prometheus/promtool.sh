#!/usr/bin/env bash
# promtool.sh checks Vitals' Prometheus alert rules with promtool.
#
# Usage: deploy/prometheus/promtool.sh install|check
#
#   install make sure promtool is there: when missing, install Debian's
#           prometheus package (which ships promtool) with apt-get when
#           running as root, else print what to install and fail. The
#           package's server is not started (and is never needed).
#   check   `promtool check rules` on alerts.yml and `promtool test rules`
#           on alerts_test.yml (what `make test` runs through rules_test.go).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
	echo "usage: $0 install|check" >&2
	exit 2
}

log() { echo "promtool.sh: $*" >&2; }

ensure_promtool() {
	command -v promtool >/dev/null && return 0
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		log "promtool not found; installing Debian's prometheus package with apt-get"
		DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >&2
		command -v promtool >/dev/null && return 0
		log "apt-get installed prometheus but no promtool binary was found"
		exit 1
	fi
	log "promtool is not installed: run as root, or install Debian's prometheus package (apt-get install prometheus)."
	exit 1
}

case ${1:-} in
install)
	ensure_promtool
	;;
check)
	ensure_promtool
	cd "$here"
	promtool check rules alerts.yml
	promtool test rules alerts_test.yml
	;;
*)
	usage
	;;
esac
