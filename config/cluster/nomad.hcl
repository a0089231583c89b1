# Nomad server and client of one node of the three-node layout
# (scripts/node.sh). The node's own values (name, advertise addresses,
# server_join, servers, cgroup_parent, host volume path) are in the node's
# generated node.hcl; the data directory is -data-dir.
bind_addr            = "0.0.0.0"
log_level            = "INFO"
disable_update_check = true

# A stopped node stays a server of the cluster until it comes back.
leave_on_interrupt = false
leave_on_terminate = false

# A node that dies comes back with the same name and address: it stays a
# Raft voter meanwhile, "failed" among the server members, rather than being
# removed by autopilot ("left") and waiting as a non-voter when it is back.
autopilot {
  cleanup_dead_servers = false
}

server {
  enabled          = true
  bootstrap_expect = 3

  # A client heartbeats every TTL; the leader marks it down when no
  # heartbeat came for TTL + heartbeat_grace. The TTL is min_heartbeat_ttl
  # plus a random stagger of up to as much again (3 nodes are far from
  # max_heartbeats_per_second), 2-4 s: a node that dies is marked down
  # 10-14 s later, against 10-30 s with the defaults (10 s, 10 s).
  # The grace must cover a live client whose server just died: its
  # heartbeat hangs on the dead connection until the kernel gives up
  # (3-6 s with tcp_retries2 3, scripts/node.sh; Nomad's own keepalive
  # takes up to 40 s), then it retries after 1-2 s with the next server.
  min_heartbeat_ttl = "2s"
  heartbeat_grace   = "10s"
  # After a leader election every client gets this long to reach the new
  # leader before it is marked down (default 5 min: a node that died with
  # the old leader would stay "ready" that long). A node that dies with the
  # leader is marked down about 20 s after the election, 22-25 s after it
  # died; the live clients need up to 10 s of it, as above.
  failover_heartbeat_ttl = "20s"
}

client {
  enabled = true
  # The node's address on the bridge: tasks and services get it.
  network_interface = "eth0"

  # Only raw_exec runs tasks here. Other drivers still fingerprint the host
  # every 30 s (java starts a JVM each time), CPU taken from the stack.
  options = {
    "driver.allowlist" = "raw_exec"
  }

  template {
    # Let jobs ask for sub-second template waits (the default bounds allow it,
    # but be explicit: load-balancer templates must apply catalog changes fast).
    wait_bounds {
      min = "0s"
      max = "10s"
    }
  }
}

plugin "raw_exec" {
  config {
    enabled = true
  }
}

# The node's own Consul agent, on the namespace's loopback.
consul {
  address = "127.0.0.1:8500"
  # The client knows the servers from node.hcl and from its heartbeats. A
  # client that fails a heartbeat would otherwise ask Consul again, whose
  # catalog still lists a dead server, and reshuffle the list: it could
  # pick the dead server again and miss its deadline. Without it, a failed
  # server stays last in the list.
  client_auto_join = false
}

telemetry {
  # Host and task resource stats (nomad alloc status -stats, node status
  # -stats) every 10 s, not every second: each round walks /proc for every
  # task and asks every executor, about a third of the agent's CPU at idle.
  collection_interval = "10s"
}
