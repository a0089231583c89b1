#!/usr/bin/env bash
# Brings the whole hastack up on this machine: installs what is missing,
# starts Consul and Nomad, runs every job in dependency order and waits until
# each service passes its checks. Safe to run twice.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

usage() { echo "usage: $0 [--skip-install]" >&2; exit 2; }
skip_install=false
for a in "$@"; do
	case "$a" in
	--skip-install) skip_install=true ;;
	*) usage ;;
	esac
done

$skip_install || "$ROOT/scripts/install.sh"
[[ $EUID -eq 0 ]] || die "the Nomad client runs tasks as other users (postgres): run as root"
# Postgres runs as postgres with its data under the run directory: every
# parent must let that user through (a clone under /root does not).
id postgres >/dev/null 2>&1 || die "no postgres user: run scripts/install.sh (Debian's postgresql package creates it)"
mkdir -p "$RUN_DIR"
setpriv --reuid=postgres --regid=postgres --clear-groups -- test -x "$RUN_DIR" ||
	die "the postgres user cannot reach $RUN_DIR (a parent directory is private, like /root): clone the repository elsewhere (e.g. /opt/hastack) or set HASTACK_RUN_DIR=/var/lib/hastack"
if [[ "$(sysctl -n "$AUTOGROUP_SYSCTL" 2>/dev/null || echo 0)" != 0 ]]; then
	log "warning: $AUTOGROUP_SYSCTL is on: every task gets its own CPU share and the latency tail is longer (scripts/install.sh turns it off; README, Up)"
fi

# start_agent NAME ARGS...: starts a long-running agent in its own session,
# logging under the run directory, unless it is already running.
start_agent() {
	local name=$1
	shift
	local dir="$RUN_DIR/$name"
	mkdir -p "$dir/data"
	if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
		log "$name: already running (pid $(cat "$dir/pid"))"
		return
	fi
	log "$name: starting, log in $dir/$name.log"
	setsid "$BIN/$name" agent "$@" -data-dir "$dir/data" >>"$dir/$name.log" 2>&1 </dev/null &
	echo $! >"$dir/pid"
}

start_agent consul -config-file "$ROOT/config/consul.hcl"
start_agent nomad -config "$ROOT/config/nomad.hcl"
hastack wait-agents -timeout 120s || die "the agents are not ready: see $RUN_DIR/consul/consul.log and $RUN_DIR/nomad/nomad.log"
hastack secrets

# run_job NAME [-var k=v]... -- SERVICE=COUNT...: submits a job and waits
# until its services pass their checks in Consul.
run_job() {
	local job=$1 vars=()
	shift
	while [[ $1 != -- ]]; do vars+=("$1"); shift; done
	shift
	log "job $job: submitting"
	# file() in the jobs resolves from the repository root.
	(cd "$ROOT" && nomad job run -detach -var-file=jobs/hastack.vars.hcl "${vars[@]}" "jobs/$job.nomad.hcl" >/dev/null)
	hastack wait-services -timeout 300s -jobs "$job" "$@"
}

run_job postgres -var "bin_dir=$BIN" -- postgres-primary=1 postgres-follower=2
run_job haproxy -- haproxy=1
run_job backend -var "bin_dir=$BIN" -- backend=2
run_job nginx -- nginx=1

url="http://127.0.0.1:8080/data"
log "smoke: GET $url"
curl -fsS --max-time 5 "$url"
echo
cat <<MSG

hastack is up.
  curl $url read a row (see backend_id and follower)
  scripts/load.sh -n 200              spread a load over both backends and followers
  nomad job status                    jobs (Nomad UI API: $NOMAD_ADDR)
  consul catalog services             services in Consul ($CONSUL_HTTP_ADDR)
  scripts/down.sh                     stop everything
  (export PATH=$BIN:\$PATH to use nomad and consul directly)
MSG
