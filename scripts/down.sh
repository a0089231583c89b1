#!/usr/bin/env bash
# Stops hastack: the jobs in reverse order, then Nomad and Consul. Leaves no
# process and no port behind. Safe to run twice. --purge also deletes the run
# directory (agent state, databases, logs) so the next up starts from scratch.
# On the three-node layout it also deletes the nodes' namespaces, links and
# bridge (their state stays in the run directory).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

usage() { echo "usage: $0 [--purge]" >&2; exit 2; }
purge=false
for a in "$@"; do
	case "$a" in
	--purge) purge=true ;;
	*) usage ;;
	esac
done

# nomad_up: a Nomad agent of this run directory runs to stop the jobs
# through. On the cluster, the first node that runs one and is linked.
nomad_up() {
	if [[ $NODES == 1 ]]; then
		agent_running "$RUN_DIR/nomad" nomad
		return
	fi
	local n
	for ((n = 1; n <= NODES; n++)); do
		if agent_running "$RUN_DIR/nodes/$n/nomad" nomad && [[ "$(cat "/sys/class/net/hastack-v$n/operstate" 2>/dev/null)" == up ]]; then
			NOMAD_ADDR="http://$(node_addr "$n"):4646"
			return 0
		fi
	done
	return 1
}

# Entry point first, database last: each job's allocations are gone before
# the next job is stopped. A job that does not stop in time is reported and
# left to the sweep below: the agents are stopped whatever happens.
if nomad_up; then
	for ((i = ${#JOBS[@]} - 1; i >= 0; i--)); do
		job=${JOBS[i]}
		if nomad job status "$job" >/dev/null 2>&1; then
			log "job $job: stopping"
			nomad job stop -purge -detach "$job" >/dev/null || log "warning: job $job: stop failed"
			hastack wait-stopped -timeout 60s "$job" || log "warning: job $job: still running, stopping it with the agent"
		fi
	done
fi

if [[ $NODES == 1 ]]; then
	stop_agents nomad "$RUN_DIR/nomad"
	stop_agents consul "$RUN_DIR/consul"
else
	# Every Nomad first, while Consul still has a leader to deregister their
	# services with, then every Consul; then what is left in the namespaces
	# and the namespaces themselves (the bridge goes with the last).
	stop_agents nomad "$RUN_DIR"/nodes/*/nomad
	stop_agents consul "$RUN_DIR"/nodes/*/consul
	for ((n = 1; n <= NODES; n++)); do "$ROOT/scripts/node.sh" destroy "$n"; done
fi

# descendants PID...: the PIDs and all their children, recursively.
descendants() {
	local p
	for p in "$@"; do
		echo "$p"
		# shellcheck disable=SC2046 # one PID per word
		descendants $(pgrep -P "$p" || true)
	done
}

# An agent of this checkout that still runs has another run directory
# (HASTACK_RUN_DIR): its tasks and their sockets in /tmp are not ours.
other=$(pgrep -d ' ' -f -- "^$BIN/nomad agent" || true)
[[ -z "$other" ]] || log "warning: a Nomad agent of this checkout still runs (pid $other) with another run directory than $RUN_DIR: set HASTACK_RUN_DIR as for up.sh to stop it; its tasks are left alone"

# A task orphaned by an agent that crashed still runs from its allocation
# directory: it is ours, stop it rather than leave it behind, with the
# children its command line does not name (Nginx and HAProxy workers,
# Postgres backends), collected before the parents die; and so are the
# log collectors and task supervisors the agent left (orphans, adopted by
# init: a live agent's are its own children).
# (On the cluster, node.sh destroy killed everything in the namespaces.)
if [[ $NODES == 1 && -d "$RUN_DIR" ]]; then
	mapfile -t roots < <({ pgrep -f -- "$RUN_DIR/nomad/data/alloc/"; pgrep -P 1 -f -- "^$BIN/nomad (logmon|executor)"; } || true)
	if [[ ${#roots[@]} -gt 0 ]]; then
		mapfile -t left < <(descendants "${roots[@]}" | sort -un)
		log "stopping leftover processes: ${left[*]}"
		kill -KILL "${left[@]}" 2>/dev/null || true
	fi
fi
[[ -n "$other" ]] || rm -rf /tmp/hastack-pg-* /tmp/hastack-haproxy-*.sock
if $purge; then
	# Nomad mounts each task's secrets/ and private/ as tmpfs; unmount what a
	# stopped agent left before deleting.
	mapfile -t mounts < <(findmnt -rn -o TARGET | grep -F "$RUN_DIR/" | sort -r || true)
	for m in "${mounts[@]}"; do umount "$m"; done
	log "deleting $RUN_DIR"
	rm -rf "$RUN_DIR"
fi
if [[ -n "$other" ]]; then
	log "nothing of $RUN_DIR runs; the agent above still does"
else
	log "hastack is down"
fi
