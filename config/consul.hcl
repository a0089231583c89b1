# Consul agent for a single-machine hastack: one server, loopback only.
# The data directory is given on the command line (-data-dir) by scripts/up.sh.
server           = true
bootstrap_expect = 1
node_name        = "hastack"
bind_addr        = "127.0.0.1"
client_addr      = "127.0.0.1"
log_level        = "INFO"
ui_config {
  enabled = false
}
# No need to reach the outside world for update checks.
disable_update_check = true
performance {
  # Single server: elect fast instead of tuning for WAN latency.
  raft_multiplier = 1
}
# A stopped agent does not leave the cluster: leaving deletes the node's
# sessions, and so Patroni's leader key while the primary still runs.
leave_on_terminate      = false
skip_leave_on_interrupt = true
