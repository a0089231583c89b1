#!/usr/bin/env bash
# The simulated machines of the three-node layout. Node N is the network
# namespace hastack-N, linked to the host's bridge by a veth pair (hastack-vN
# on the host, eth0 inside), running a Consul server and a Nomad server and
# client with their state under $RUN_DIR/nodes/N. Addresses: scripts/lib.sh.
#   create N    the namespace, its link and addresses (links left as they are)
#   start N     create, links up, agents started (they rejoin by themselves)
#   stop N      the agents stopped with SIGINT (no leave), as down.sh does
#   restart-consul N, restart-nomad N
#               a planned restart of one agent (an upgrade, a config change):
#               SIGINT, then started again; its tasks keep running
#   kill N      a power cut: link down, every process of the node SIGKILLed,
#               its tmpfs mounts gone; the namespace and its disk stay
#   isolate N   a partition: the link down, processes left running
#   heal N      the link up again (a killed node comes back with start)
#   destroy N   kill, then delete the link and the namespace; the bridge too
#               once no node is left
#   status      each node's link, agents and process count
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

usage() { echo "usage: $0 create|start|stop|restart-consul|restart-nomad|kill|isolate|heal|destroy N | status" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
cmd=$1
if [[ $cmd == status ]]; then
	[[ $# -eq 1 ]] || usage
else
	[[ $# -eq 2 && $2 =~ ^[0-9]+$ ]] || usage
fi
[[ $EUID -eq 0 ]] || die "namespaces and links need root"
[[ $NODES -gt 1 ]] || die "$RUN_DIR holds the one-node layout: bring the nodes up with HASTACK_NODES=3 scripts/up.sh"

# The run directory whose nodes the namespaces are: one cluster per host.
OWNER_FILE=/run/hastack-cluster

# node N: sets the node's names, address and directories.
node() {
	n=$1
	((n >= 1 && n <= NODES)) || die "node $n: the layout has nodes 1 to $NODES"
	ns=hastack-$n
	veth=hastack-v$n
	addr=$(node_addr "$n")
	dir=$RUN_DIR/nodes/$n
}

in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
ns_exists() { [[ -e /run/netns/$ns ]]; }

# check_subnet: CLUSTER_SUBNET overlaps no route of the host but the bridge's
# own (a default route aside: it overlaps everything).
check_subnet() {
	local clash
	clash=$({
		ip -4 route show table all root "$CLUSTER_SUBNET"
		ip -4 route show table all match "$CLUSTER_SUBNET"
	} | grep -v -e '^default' -e "dev $CLUSTER_BRIDGE\b" || true)
	[[ -z $clash ]] || die "$CLUSTER_SUBNET overlaps routes of this host:
$clash
pick another private /24 for CLUSTER_NET in scripts/lib.sh"
}

# check_owner: the nodes on this host, if any, are this run directory's.
check_owner() {
	local owner
	owner=$(cat "$OWNER_FILE" 2>/dev/null || true)
	[[ -z $owner || $owner == "$RUN_DIR" ]] ||
		die "the nodes of this host belong to the run directory $owner (HASTACK_RUN_DIR=$owner): one three-node cluster per host"
}

# ensure_bridge: the bridge, with the host's address on the subnet.
ensure_bridge() {
	check_subnet
	ip link show "$CLUSTER_BRIDGE" >/dev/null 2>&1 || ip link add "$CLUSTER_BRIDGE" type bridge
	echo "$RUN_DIR" >"$OWNER_FILE"
	ip addr replace "$CLUSTER_BRIDGE_ADDR/24" dev "$CLUSTER_BRIDGE"
	ip link set "$CLUSTER_BRIDGE" up
}

create() {
	ensure_bridge
	ns_exists || ip netns add "$ns"
	if ! ip link show "$veth" >/dev/null 2>&1; then
		# An eth0 left alone in the namespace has lost its peer: replace it.
		in_ns ip link del eth0 2>/dev/null || true
		ip link add "$veth" type veth peer name eth0 netns "$ns"
	fi
	ip link set "$veth" master "$CLUSTER_BRIDGE"
	in_ns ip addr replace "$addr/24" dev eth0
	in_ns ip link set lo up
	# A connection whose peer stopped answering fails after 3-6 s of
	# retransmissions (tcp_retries2 3) instead of about 15 minutes (15): a
	# Nomad client whose server died or is cut off then moves to another
	# server before its heartbeat deadline (config/cluster/nomad.hcl), and so
	# does any other client of a dead peer. Only a cut link loses packets on
	# the bridge, so no healthy connection pays for it.
	in_ns sysctl -q -w net.ipv4.tcp_retries2=3
	# The node's Postgres data: the Nomad host volume "postgres".
	mkdir -p "$dir"
	[[ -d $dir/postgres ]] || install -d -o postgres -g postgres -m 0700 "$dir/postgres"
}

links_up() {
	ip link set "$veth" up
	in_ns ip link set eth0 up
}

links_down() {
	ip link set "$veth" down 2>/dev/null || true
	in_ns ip link set eth0 down 2>/dev/null || true
}

# hcl_list WORD...: the words as an HCL list of strings.
hcl_list() {
	local out="" a
	for a in "$@"; do out+="${out:+, }\"$a\""; done
	echo "[$out]"
}

# write_configs: the node's own values for config/cluster/*.hcl.
write_configs() {
	local i others=() rpcs=()
	for ((i = 1; i <= NODES; i++)); do
		rpcs+=("$(node_addr "$i"):4647")
		((i == n)) || others+=("$(node_addr "$i")")
	done
	mkdir -p "$dir/consul" "$dir/nomad"
	cat >"$dir/consul/node.hcl" <<-HCL
		# Written by scripts/node.sh: node $n's name and addresses.
		node_name   = "$ns"
		bind_addr   = "$addr"
		client_addr = "127.0.0.1 $addr"
		retry_join  = $(hcl_list "${others[@]}")
	HCL
	cat >"$dir/nomad/node.hcl" <<-HCL
		# Written by scripts/node.sh: node $n's name, addresses and paths.
		name = "$ns"
		advertise {
		  http = "$addr"
		  rpc  = "$addr"
		  serf = "$addr"
		}
		server {
		  server_join {
		    retry_join     = $(hcl_list "${others[@]}")
		    retry_interval = "2s"
		  }
		}
		client {
		  servers       = $(hcl_list "${rpcs[@]}")
		  cgroup_parent = "/$ns"
		  # raw_exec mounts no volume: tasks find its path in the meta.
		  host_volume "postgres" {
		    path = "$dir/postgres"
		  }
		  meta {
		    postgres_volume = "$dir/postgres"
		  }
		}
	HCL
}

start_consul() {
	AGENT_NETNS=$ns start_agent "$dir/consul" consul \
		-config-file "$ROOT/config/cluster/consul.hcl" -config-file "$dir/consul/node.hcl"
	CONSUL_HTTP_ADDR=$addr:8500 hastack wait-consul -timeout 30s ||
		die "$ns: consul does not answer: see $dir/consul/consul.log"
}

start_nomad() {
	AGENT_NETNS=$ns start_agent "$dir/nomad" nomad \
		-config "$ROOT/config/cluster/nomad.hcl" -config "$dir/nomad/node.hcl"
}

start() {
	create
	links_up
	write_configs
	# Nomad fingerprints its Consul agent at start, then every 15 s only: it
	# starts once Consul answers.
	start_consul
	start_nomad
}

# restart_agent NAME: stop the node's NAME agent (SIGINT: it does not leave
# the cluster) and start it again.
restart_agent() {
	local name=$1
	agent_running "$dir/$name" "$name" || die "$ns: $name is not running"
	stop_agents "$name" "$dir/$name"
	"start_$name"
}

stop() {
	stop_agents nomad "$dir/nomad"
	stop_agents consul "$dir/consul"
}

# kill_all: SIGKILL every process in the namespace (agents, executors, tasks
# of any user) until none is left, then unmount the node's tmpfs mounts
# (Nomad's secrets/ and private/ task directories): a machine that loses
# power loses its memory too.
kill_all() {
	local pids deadline=$((SECONDS + 10)) mounts m
	while pids=$(ip netns pids "$ns") && [[ -n $pids ]]; do
		((SECONDS < deadline)) || die "$ns: processes still alive after 10s: $(echo "$pids" | tr '\n' ' ')"
		# Stopped first, then killed: none sees another die and reacts.
		# shellcheck disable=SC2086 # one PID per word
		kill -STOP $pids 2>/dev/null || true
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null || true
		sleep 0.1
	done
	rm -f "$dir/consul/pid" "$dir/nomad/pid"
	mapfile -t mounts < <(findmnt -rn -o TARGET | grep -F "$dir/" | sort -r || true)
	for m in "${mounts[@]}"; do umount "$m"; done
}

# kill_node: the link goes first, so the kernel's FIN and RST for the killed
# processes' connections reach no one, as after a real power cut.
kill_node() {
	ns_exists || { log "$ns: no such node"; return 0; }
	links_down
	kill_all
	log "$ns: killed (link down, no process left); node.sh start $n brings it back"
}

destroy() {
	if ns_exists; then
		links_down
		kill_all
		ip link del "$veth" 2>/dev/null || true
		ip netns del "$ns"
		log "$ns: deleted"
	fi
	# The bridge goes with the last node.
	if ! compgen -G "/run/netns/hastack-*" >/dev/null && ip link show "$CLUSTER_BRIDGE" >/dev/null 2>&1; then
		ip link del "$CLUSTER_BRIDGE"
		rm -f "$OWNER_FILE"
		log "$CLUSTER_BRIDGE: deleted"
	fi
}

# agent_state DIR NAME: "pid N" or "stopped".
agent_state() {
	if agent_running "$1" "$2"; then echo "pid $(cat "$1/pid")"; else echo stopped; fi
}

status() {
	local i link
	for ((i = 1; i <= NODES; i++)); do
		node "$i"
		if ! ns_exists; then
			echo "$ns $addr absent"
			continue
		fi
		link=$(cat "/sys/class/net/$veth/operstate" 2>/dev/null || echo absent)
		echo "$ns $addr link $link  consul $(agent_state "$dir/consul" consul)  nomad $(agent_state "$dir/nomad" nomad)  processes $(ip netns pids "$ns" | wc -l)"
	done
}

[[ $cmd == status ]] || { node "$2"; check_owner; }
case "$cmd" in
status) status ;;
create) create ;;
start) start ;;
stop) stop ;;
restart-consul) restart_agent consul ;;
restart-nomad) restart_agent nomad ;;
kill) kill_node ;;
isolate)
	ns_exists || die "$ns: no such node"
	ip link set "$veth" down
	log "$ns: isolated (link down, processes running); node.sh heal $n reconnects it"
	;;
heal)
	ns_exists || die "$ns: no such node"
	ip link set "$veth" up
	log "$ns: link up"
	;;
destroy) destroy ;;
*) usage ;;
esac
