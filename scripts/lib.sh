# shellcheck shell=bash
# Shared settings for hastack scripts. Sourced, never run.

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/bin"
RUN_DIR="${HASTACK_RUN_DIR:-$ROOT/run}"
export PATH="$BIN:/usr/local/go/bin:$PATH"

# The layout the run directory holds: 1 node (the agents on this host's
# loopback) or 3 (three simulated machines, network namespaces on a bridge:
# scripts/node.sh). up.sh records HASTACK_NODES in $LAYOUT_FILE; every later
# script reads it there, so only up.sh needs the variable. A run directory
# keeps one layout until down.sh --purge.
LAYOUT_FILE="$RUN_DIR/layout"
recorded_nodes="$(cat "$LAYOUT_FILE" 2>/dev/null || true)"
NODES="${HASTACK_NODES:-${recorded_nodes:-1}}"
[[ $NODES == 1 || $NODES == 3 ]] || die "HASTACK_NODES=$NODES: the layouts are 1 (one machine) and 3 (three nodes)"
[[ -z $recorded_nodes || $recorded_nodes == "$NODES" ]] ||
	die "$RUN_DIR holds the $recorded_nodes-node layout, HASTACK_NODES asks for $NODES: unset HASTACK_NODES, or scripts/down.sh --purge first, or use another HASTACK_RUN_DIR"

# The three-node layout's network, one per host: the bridge CLUSTER_BRIDGE
# holds the host's address on a private /24 that must overlap no other route
# of the host (scripts/node.sh checks); node N is CLUSTER_NET.(10+N) in the
# namespace hastack-N; CLUSTER_VIP is the client-facing virtual address.
# The namespaces have no default route: nodes reach nothing but the bridge.
# shellcheck disable=SC2034 # used by the scripts that source this file
{
	CLUSTER_NET=10.211.0
	CLUSTER_SUBNET="$CLUSTER_NET.0/24"
	CLUSTER_BRIDGE=hastack0
	CLUSTER_BRIDGE_ADDR="$CLUSTER_NET.1"
	CLUSTER_VIP="$CLUSTER_NET.10"
}
node_addr() { echo "$CLUSTER_NET.$((10 + $1))"; }

# Where the stack answers, for the CLIs, our Go commands and clients. On one
# node an operator's own NOMAD_ADDR etc. win, as with the HashiCorp CLIs. On
# the cluster they are node 1's: a NOMAD_ADDR left over for another stack
# must not send up.sh or down.sh there. scripts/env.sh prints them.
if [[ $NODES == 1 ]]; then
	LAYOUT_NOMAD_ADDR=http://127.0.0.1:4646
	LAYOUT_CONSUL_HTTP_ADDR=127.0.0.1:8500
	LAYOUT_HASTACK_URL=http://127.0.0.1:8080
	unset HASTACK_NET
	export NOMAD_ADDR="${NOMAD_ADDR:-$LAYOUT_NOMAD_ADDR}"
	export CONSUL_HTTP_ADDR="${CONSUL_HTTP_ADDR:-$LAYOUT_CONSUL_HTTP_ADDR}"
	export HASTACK_URL="${HASTACK_URL:-$LAYOUT_HASTACK_URL}"
else
	LAYOUT_NOMAD_ADDR="http://$(node_addr 1):4646"
	LAYOUT_CONSUL_HTTP_ADDR="$(node_addr 1):8500"
	LAYOUT_HASTACK_URL="http://$CLUSTER_VIP:8080"
	# The drill and load tools send traffic to loopback only, or to this
	# network of the project's own namespaces.
	export HASTACK_NET="$CLUSTER_SUBNET"
	export NOMAD_ADDR="$LAYOUT_NOMAD_ADDR"
	export CONSUL_HTTP_ADDR="$LAYOUT_CONSUL_HTTP_ADDR"
	export HASTACK_URL="$LAYOUT_HASTACK_URL"
fi

# The kernel setting scripts/install.sh turns off (see tune_host there).
# shellcheck disable=SC2034
AUTOGROUP_SYSCTL=kernel.sched_autogroup_enabled

# Jobs in start order; down stops them in reverse.
# shellcheck disable=SC2034
JOBS=(postgres haproxy backend nginx entry)

# An agent (consul or nomad) lives in a directory of the run directory:
# DIR/pid, DIR/NAME.log and its state in DIR/data. One node: $RUN_DIR/NAME;
# node N of the cluster: $RUN_DIR/nodes/N/NAME.

# agent_running DIR NAME: DIR/pid names a live `bin/NAME agent` (not just
# any process that got the same PID after the agent died).
agent_running() {
	local pid
	pid="$(cat "$1/pid" 2>/dev/null)" || return 1
	[[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == "$BIN/$2 agent "* ]]
}

# start_agent DIR NAME ARGS...: starts `bin/NAME agent ARGS` in its own
# session, in the network namespace AGENT_NETNS when set, unless it already
# runs.
start_agent() {
	local dir=$1 name=$2 what=${1#"$RUN_DIR"/}
	shift 2
	local netns=()
	[[ -z ${AGENT_NETNS:-} ]] || netns=(nsenter "--net=/run/netns/$AGENT_NETNS")
	mkdir -p "$dir/data"
	if agent_running "$dir" "$name"; then
		log "$what: already running (pid $(cat "$dir/pid"))"
		return
	fi
	log "$what: starting, log in $dir/$name.log"
	# nsenter, setsid and env all exec: $! is the agent's own PID.
	# Without the operator's addresses: raw_exec tasks inherit the agent's
	# environment, and every task must talk to its own node's agents, not
	# to the node the operator's CLI points at.
	setsid "${netns[@]}" env -u NOMAD_ADDR -u CONSUL_HTTP_ADDR -u HASTACK_URL -u HASTACK_NET \
		"$BIN/$name" agent "$@" -data-dir "$dir/data" >>"$dir/$name.log" 2>&1 </dev/null &
	echo $! >"$dir/pid"
}

# stop_agents NAME DIR...: SIGINT to the NAME agent of each DIR at once,
# then waits for them to exit, SIGKILL for any still running after 60 s.
# Neither agent leaves its cluster on SIGINT (see config/). At once: a Consul
# server that outlives the others' quorum hangs in its shutdown.
stop_agents() {
	local name=$1 dir i deadline=$((SECONDS + 60)) dirs=() pids=()
	shift
	for dir in "$@"; do
		agent_running "$dir" "$name" || { rm -f "$dir/pid"; continue; }
		dirs+=("$dir")
		pids+=("$(cat "$dir/pid")")
		log "${dir#"$RUN_DIR"/}: stopping (pid ${pids[-1]})"
		kill -INT "${pids[-1]}" 2>/dev/null || true
	done
	for i in "${!pids[@]}"; do
		if ! timeout "$((deadline > SECONDS ? deadline - SECONDS : 1))" tail --pid="${pids[i]}" -f /dev/null; then
			log "${dirs[i]#"$RUN_DIR"/}: still running after 60s, killing"
			kill -KILL "${pids[i]}" 2>/dev/null || true
		fi
		rm -f "${dirs[i]}/pid"
	done
}
