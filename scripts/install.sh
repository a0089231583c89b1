#!/usr/bin/env bash
# Installs what hastack needs on Debian 12: packages, the pinned HashiCorp
# binaries (built from the Go module proxy) and our own binaries, into bin/.
# Safe to run twice: anything already at the right version is skipped.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

usage() { echo "usage: $0" >&2; exit 2; }
[[ $# -eq 0 ]] || usage

PACKAGES=(postgresql-15 postgresql-client-15 haproxy nginx libnginx-mod-http-lua wrk curl jq shellcheck iproute2 procps util-linux ca-certificates chromium patroni python3-consul2 keepalived)

install_packages() {
	local missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		log "debian packages: all present"
		return
	fi
	log "debian packages: installing ${missing[*]}"
	[[ $EUID -eq 0 ]] || die "installing packages needs root"
	apt-get update -q
	# The packages' own services (a Postgres cluster on 5432, nginx on 80) are not
	# used by hastack; our instances run under Nomad on their own ports.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# build_tool NAME VERSION: builds github.com/hashicorp/NAME from its pinned
# module in tools/hashicorp/NAME unless bin/NAME already reports VERSION.
build_tool() {
	local name=$1 version=$2 have=""
	if [[ -x "$BIN/$name" ]]; then
		have="$("$BIN/$name" version 2>/dev/null | head -n1 || true)"
		[[ "$name" == consul-template ]] && have="$("$BIN/$name" -version 2>&1 | head -n1 || true)"
	fi
	if [[ "$have" == *"$version"* ]]; then
		log "$name $version: present"
		return
	fi
	log "$name $version: building from the Go module proxy (a few minutes)"
	(cd "$ROOT/tools/hashicorp/$name" && go build -trimpath -o "$BIN/$name" "github.com/hashicorp/$name")
	"$BIN/$name" version >/dev/null 2>&1 || "$BIN/$name" -version >/dev/null 2>&1 || die "$name built but does not run"
}

# tune_host: one kernel setting, for every process the stack starts after it.
# With autogroup on (Debian's default, made for desktops), every session is a
# scheduling group that gets an equal share of the CPU, and Nomad starts every
# task in its own session: a Postgres follower with four busy connections got
# the share of one Nginx worker, and each wakeup crossed a group's turn too.
# Off, every process competes on its own, the usual advice for a Postgres host
# (full stack at 64 connections, nine runs each: p99 10.0-13.0 -> 6.2-9.5 ms;
# docs/performance.md, "Every process its own share of the CPU").
# HASTACK_HOST_TUNING=0 leaves the host alone.
# A process keeps the group it started in: tasks already running when it is
# turned off keep theirs until they restart.
tune_host() {
	local key=$AUTOGROUP_SYSCTL conf=/etc/sysctl.d/60-hastack.conf have
	if [[ "${HASTACK_HOST_TUNING:-1}" == 0 ]]; then
		log "host tuning: skipped (HASTACK_HOST_TUNING=0)"
		return
	fi
	have="$(sysctl -n "$key" 2>/dev/null)" || { log "host tuning: this kernel has no $key"; return; }
	if [[ $EUID -ne 0 ]]; then
		log "host tuning: not root, $key left at $have"
		return
	fi
	printf '# hastack: every process its own share of the CPU (scripts/install.sh)\n%s = 0\n' "$key" >"$conf"
	if [[ "$have" == 0 ]]; then
		log "host tuning: $key = 0 already (kept in $conf)"
	elif sysctl -q -w "$key=0" >/dev/null 2>&1; then
		log "host tuning: $key = 0 (in $conf); a stack already running keeps its groups until scripts/down.sh and scripts/up.sh"
	else
		log "host tuning: could not set $key (read-only /proc/sys?), left at $have"
	fi
}

install_packages
tune_host
command -v go >/dev/null || die "Go is required (expected at /usr/local/go)"
mkdir -p "$BIN"
build_tool consul-template v0.41.1
build_tool consul v1.16.3
build_tool nomad v1.6.1
log "hastack binaries: building"
# Static, without cgo: no libc or loader mapped into every backend (about
# 1.4 MiB of its RSS), and Go's own DNS resolver.
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$BIN/" ./cmd/...)
log "install done: binaries in $BIN"
