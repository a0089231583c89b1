#!/usr/bin/env bash
# Brings the whole hastack up on this machine: installs what is missing,
# starts Consul and Nomad, runs every job in dependency order and waits until
# each service passes its checks. Safe to run twice.
# HASTACK_NODES=3: three simulated machines instead (scripts/node.sh), each
# running a Consul server and a Nomad server and client. The run directory
# remembers the layout (scripts/lib.sh).
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

echo "$NODES" >"$LAYOUT_FILE"

if [[ $NODES == 1 ]]; then
	# The Postgres data: the Nomad host volume "postgres", whose path depends
	# on the run directory, so it is written here next to config/nomad.hcl.
	# raw_exec mounts no volume: tasks find its path in the client's meta.
	[[ -d $RUN_DIR/postgres ]] || install -d -o postgres -g postgres -m 0700 "$RUN_DIR/postgres"
	mkdir -p "$RUN_DIR/nomad"
	cat >"$RUN_DIR/nomad/volumes.hcl" <<-HCL
		# Written by scripts/up.sh: host volumes under the run directory.
		client {
		  host_volume "postgres" {
		    path = "$RUN_DIR/postgres"
		  }
		  meta {
		    postgres_volume = "$RUN_DIR/postgres"
		  }
		}
	HCL
	start_agent "$RUN_DIR/consul" consul -config-file "$ROOT/config/consul.hcl"
	start_agent "$RUN_DIR/nomad" nomad -config "$ROOT/config/nomad.hcl" -config "$RUN_DIR/nomad/volumes.hcl"
	hastack wait-agents -timeout 120s || die "the agents are not ready: see $RUN_DIR/consul/consul.log and $RUN_DIR/nomad/nomad.log"
else
	for ((n = 1; n <= NODES; n++)); do "$ROOT/scripts/node.sh" start "$n"; done
	hastack wait-agents -nodes "$NODES" -timeout 180s ||
		die "the agents are not ready: see $RUN_DIR/nodes/*/consul/consul.log and $RUN_DIR/nodes/*/nomad/nomad.log"

fi
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

# The same job files for both layouts: "nodes" spreads the instances one
# per node on the cluster (and runs HAProxy and Nginx on every node).
layout=(-var "nodes=$NODES")
run_job postgres "${layout[@]}" -- postgres-primary=1 postgres-follower=2
run_job haproxy "${layout[@]}" -- haproxy="$NODES"
run_job backend "${layout[@]}" -var "bin_dir=$BIN" -- backend=2
run_job nginx "${layout[@]}" -- nginx="$NODES"
if [[ $NODES != 1 ]]; then
	# The clients' entry: keepalived moves the address to a node whose Nginx
	# answers. Waited for through the address itself, below.
	log "job entry: submitting"
	(cd "$ROOT" && nomad job run -detach -var-file=jobs/hastack.vars.hcl -var "entry_address=$CLUSTER_VIP/24" jobs/entry.nomad.hcl >/dev/null)
	hastack wait-http -timeout 60s "$HASTACK_URL/nginx-health" || die "no node holds the entry address $CLUSTER_VIP: see nomad job status entry"
fi

url="$HASTACK_URL/data"
log "smoke: GET $url"
curl -fsS --max-time 5 "$url"
echo
env_cmd=scripts/env.sh
[[ -z ${HASTACK_RUN_DIR:-} ]] || env_cmd="HASTACK_RUN_DIR=$RUN_DIR $env_cmd"
cat <<MSG

hastack is up ($NODES node$([[ $NODES == 1 ]] || echo s)).
  eval "\$($env_cmd)"   PATH, NOMAD_ADDR, CONSUL_HTTP_ADDR, HASTACK_URL for this shell
  curl \$HASTACK_URL/data              read a row (see backend_id and follower)
  scripts/load.sh -n 200              spread a load over both backends and followers
  nomad job status                    jobs (Nomad API: $NOMAD_ADDR)
  consul catalog services             services in Consul ($CONSUL_HTTP_ADDR)
  scripts/down.sh                     stop everything
MSG
