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
