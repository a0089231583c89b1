# Nomad agent for a single-machine hastack: server and client in one, loopback only.
# The data directory is given on the command line (-data-dir) by scripts/up.sh.
bind_addr            = "127.0.0.1"
log_level            = "INFO"
disable_update_check = true

advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}

server {
  enabled          = true
  bootstrap_expect = 1
}

client {
  enabled = true
  # Tasks and services get loopback addresses; nothing listens publicly.
  network_interface = "lo"

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

consul {
  address = "127.0.0.1:8500"
}

telemetry {
  # Host and task resource stats (nomad alloc status -stats, node status
  # -stats) every 10 s, not every second: each round walks /proc for every
  # task and asks every executor, about a third of the agent's CPU at idle.
  collection_interval = "10s"
}
