# Consul server of one node of the three-node layout (scripts/node.sh). The
# node's own values (node_name, bind_addr, client_addr: 127.0.0.1 for the
# node's tasks and its address for the other nodes and the host, retry_join)
# are in the node's generated node.hcl; the data directory is -data-dir.
server           = true
bootstrap_expect = 3
log_level        = "INFO"
ui_config {
  enabled = false
}
# No need to reach the outside world for update checks.
disable_update_check = true

# A server that stops or dies never leaves: a graceful leave deregisters the
# node, which deletes its sessions, and with them the leader key Patroni
# holds. A stopped node stays a member, "failed", until it comes back.
leave_on_terminate      = false
skip_leave_on_interrupt = true

# A node that dies comes back with the same name and address: it stays a
# Raft voter and a "failed" member meanwhile. Autopilot's cleanup would
# remove it from Raft and reap it ("left", its catalog entries deleted),
# and make it wait server_stabilization_time as a non-voter when it is back.
autopilot {
  cleanup_dead_servers = false
}

# Until joined (first start, or a node back after a power cut), try the other
# nodes every 2 s rather than every 30 s: they are on the same bridge.
retry_interval = "2s"

performance {
  # Three servers on one host: elect fast instead of tuning for WAN latency.
  raft_multiplier = 1
}

# Failure detection on a LAN of namespaces (round trips of microseconds):
# each node probes one other every probe_interval and waits probe_timeout for
# the ack, then asks the third node to probe it. A node that stays silent is
# suspect for suspicion_mult * max(1, log10(nodes)) * probe_interval = 2 s
# (it can refute in that time), then failed: its serfHealth check turns
# critical and the sessions tied to it, Patroni's, are invalidated. About
# 2.5-3.5 s from a power cut to "failed", against 5-6 s with the defaults
# (1 s, 500 ms). 250 ms is still far above a scheduling delay on a busy host.
gossip_lan {
  probe_interval = "500ms"
  probe_timeout  = "250ms"
  suspicion_mult = 4
}
