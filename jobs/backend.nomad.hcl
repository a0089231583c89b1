# The Go backend: GET /data reads a row from a follower through HAProxy; POST /data writes to the primary.

variable "datacenters" {
  type        = list(string)
  description = "Datacenters the job may run in."
  default     = ["dc1"]
}

variable "nodes" {
  type        = number
  description = "Nomad clients of the layout: 1 (one machine) or 3 (the cluster). With more than one, instances spread one per node."
  default     = 1
}

variable "restart_delay" {
  type        = string
  description = "How long Nomad waits before it starts a crashed task again, plus up to a quarter of jitter (set in jobs/hastack.vars.hcl; at most 2s: 30 attempts a minute)."
}

variable "bin_dir" {
  type        = string
  description = "Directory holding the hastack binaries on every client (scripts/install.sh builds them into bin/)."
}

variable "backends" {
  type        = number
  description = "How many backend instances serve HTTP."
  default     = 2
}

variable "gomaxprocs" {
  type        = number
  description = "Cores each backend schedules goroutines on. One: every process of the stack shares a 2-core machine, and fewer threads mean fewer cross-thread wakeups and a smaller footprint."
  default     = 1
}

variable "memory_limit" {
  type        = string
  description = "Go soft memory limit (GOMEMLIMIT) of each backend: keeps RSS under 30 MiB at 256 connections; the GC works harder near it."
  default     = "18MiB"
}

variable "read_concurrency" {
  type        = number
  description = "Read queries each backend has in flight; reads that arrive while they are out go together in the next query. One: on a machine whose cores every part shares, fewer larger batches serve the most requests (scripts/bench.sh)."
  default     = 1
}

variable "read_pool_size" {
  type        = number
  description = "Read connections per backend through HAProxy (at least read_concurrency), taken in turn by successive queries, so reads spread over the followers as evenly as HAProxy spreads the connections; a retry, or reads going around a query on a hung follower, take a connection to another follower."
  default     = 4
}

variable "read_batch_max" {
  type        = number
  description = "Most reads a backend sends in one query; 1 sends every read alone."
  default     = 32
}

variable "read_batch_wait" {
  type        = string
  description = "Under load (after a batch of read_batch_wait_after reads), how long a queued read may wait, from its arrival, for read_batch_max reads to join it before its query goes: fewer, larger queries cost every hop less CPU per read. \"0s\" never waits."
  default     = "1ms"
}

variable "read_batch_wait_after" {
  type        = number
  description = "A read batch at least this large means load: the next query may wait read_batch_wait."
  default     = 4
}

variable "read_batch_fill_recent" {
  type        = bool
  description = "A read_batch_wait ends once as many reads are queued as in the largest recent batch, not read_batch_max: far more throughput with few clients per backend (16 on one: about 3x), a longer tail under the full stack's load at 64 connections."
  default     = false
}

variable "log_level" {
  type        = string
  description = "Backend log level: debug, info, warn or error."
  default     = "info"
}

job "backend" {
  datacenters = var.datacenters
  type        = "service"

  update {
    max_parallel     = 1
    min_healthy_time = "3s"
    healthy_deadline = "2m"
  }

  group "backend" {
    count = var.backends

    # On the cluster, a lost machine takes one instance with it, not two.
    dynamic "constraint" {
      for_each = var.nodes > 1 ? [true] : []
      content {
        operator = "distinct_hosts"
        value    = "true"
      }
    }


    network {
      port "http" {}
    }

    restart {
      attempts = 30
      interval = "1m"
      delay    = var.restart_delay
      mode     = "delay"
    }

    reschedule {
      delay          = "5s"
      delay_function = "constant"
      unlimited      = true
    }

    task "backend" {
      driver = "raw_exec"

      # The database addresses are read from the rendered file at every start
      # (env = true would freeze the first render's values across restarts).
      config {
        command = "/bin/bash"
        args    = ["-c", "set -a && source \"$NOMAD_SECRETS_DIR/db.env\" && exec \"$0\"", "${var.bin_dir}/backend"]
      }

      env {
        BACKEND_ID = "backend-${NOMAD_ALLOC_INDEX}"
        LOG_LEVEL  = var.log_level
        GOMAXPROCS = var.gomaxprocs
        GOMEMLIMIT = var.memory_limit

        # New connections go where Consul says these are at that moment, so
        # a primary or HAProxy that moved is found without a restart.
        READ_SERVICE  = "haproxy"
        WRITE_SERVICE = "postgres-primary"
        # A follower that joins (replaced, restarted, thawed) gets its share
        # of the read connections at once, not as they expire.
        FOLLOWER_SERVICE = "postgres-follower"

        READ_CONCURRENCY       = var.read_concurrency
        READ_POOL_SIZE         = var.read_pool_size
        READ_BATCH_MAX         = var.read_batch_max
        READ_BATCH_WAIT        = var.read_batch_wait
        READ_BATCH_WAIT_AFTER  = var.read_batch_wait_after
        READ_BATCH_FILL_RECENT = var.read_batch_fill_recent
      }

      # A write connection that reaches a member that is not the leader
      # (Consul's view of a node that was cut off can lag: two members pass
      # postgres-primary for a few seconds after it heals) is refused at
      # connect (target_session_attrs) and the write retried on a new one.
      # The credentials, and where the databases were at start (new
      # connections then ask Consul, see READ_SERVICE). "noop": a primary or
      # HAProxy that is briefly unhealthy must not restart the backends.
      # With none passing (a backend that starts again while HAProxy or the
      # primary is down), the host is the service's Consul DNS name: only a
      # placeholder, since new connections ask Consul where it is, so the
      # backend starts and serves what it can (reads go straight to the
      # followers; writes answer 503 until the primary is back).
      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs" -}}
          {{ $pw := .app_password -}}
          {{ $read := "haproxy.service.consul" -}}
          {{ range service "haproxy" }}{{ $read = printf "%s:%d" .Address .Port }}{{ end -}}
          {{ $write := "postgres-primary.service.consul" -}}
          {{ range service "postgres-primary" }}{{ $write = printf "%s:%d" .Address .Port }}{{ end -}}
          READ_DATABASE_URL='postgres://app:{{ $pw }}@{{ $read }}/hastack?sslmode=disable'
          WRITE_DATABASE_URL='postgres://app:{{ $pw }}@{{ $write }}/hastack?sslmode=disable&target_session_attrs=read-write'
          {{ end -}}
        EOT
        destination = "secrets/db.env"
        change_mode = "noop"
      }

      service {
        name = "backend"
        port = "http"
        tags = ["backend-${NOMAD_ALLOC_INDEX}"]
        meta {
          name = "backend-${NOMAD_ALLOC_INDEX}"
        }

        check {
          name     = "ready: reads reach a follower"
          type     = "http"
          path     = "/readyz"
          interval = "1s"
          timeout  = "1s"
        }
      }

      # Planned stops drain: deregister, let Nginx re-render without us, then stop.
      shutdown_delay = "2s"
      kill_signal    = "SIGTERM"
      kill_timeout   = "10s"

      resources {
        cpu    = 500
        memory = 128
      }
    }
  }
}
