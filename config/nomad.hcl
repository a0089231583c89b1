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
