# Postgres 15 under Patroni: identical members elect their leader through Consul; the leader takes writes, the others stream from it and serve reads.

variable "datacenters" {
  type        = list(string)
  description = "Datacenters the job may run in."
  default     = ["dc1"]
}

variable "restart_delay" {
  type        = string
  description = "How long Nomad waits before it starts a crashed task again, plus up to a quarter of jitter (set in jobs/hastack.vars.hcl)."
}

variable "members" {
  type        = number
  description = "Patroni members: one leader and members-1 streaming followers. Three, so one lost member still leaves a synchronous standby."
  default     = 3
}

variable "nodes" {
  type        = number
  description = "Nomad clients of the layout: 1 (one machine) or 3 (the cluster). With more than one, instances spread one per node."
  default     = 1
}

variable "patroni_bin" {
  type        = string
  description = "Patroni on every client (Debian's patroni 3.0.2)."
  default     = "/usr/bin/patroni"
}

variable "pg_bin_dir" {
  type        = string
  description = "Directory of the Postgres 15 server binaries on every client (Debian's postgresql-15)."
  default     = "/usr/lib/postgresql/15/bin"
}

variable "seed_rows" {
  type        = number
  description = "Rows the first leader seeds into items when it creates the cluster; the backend reads random keys in 1..seed_rows."
  default     = 10000
}

variable "replica_max_lag" {
  type        = string
  description = "A follower further behind the leader than this fails its check and leaves the read pool (Patroni's /replica?lag=)."
  default     = "16MB"
}

job "postgres" {
  datacenters = var.datacenters
  type        = "service"

  update {
    max_parallel = 1
    # Only the leader passes postgres-primary and only followers pass
    # postgres-follower: every member fails one of its two checks by design,
    # so a deployment judges members by their tasks running.
    health_check     = "task_states"
    min_healthy_time = "10s"
    healthy_deadline = "5m"
  }

  group "db" {
    count = var.members

    # On the cluster, a lost machine takes one instance with it, not two.
    dynamic "constraint" {
      for_each = var.nodes > 1 ? [true] : []
      content {
        operator = "distinct_hosts"
        value    = "true"
      }
    }

    # Placed only on clients that have the volume; each member keeps its data
    # in it under its own name, so a member that comes back on the same node
    # (after a crash, a restart, the node's return) finds its data.
    volume "postgres" {
      type   = "host"
      source = "postgres"
    }

    network {
      port "pg" {}
      # Patroni's REST API: the checks below ask it for the member's role.
      port "api" {}
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

    task "patroni" {
      driver = "raw_exec"

      config {
        command = "/bin/bash"
        args    = ["${NOMAD_TASK_DIR}/start.sh"]
      }

      env {
        MEMBER      = "pg-${NOMAD_ALLOC_INDEX}"
        PATRONI_BIN = var.patroni_bin
        # raw_exec cannot mount volumes: the client's meta says where its
        # "postgres" host volume is (scripts/up.sh, scripts/node.sh).
        PG_VOLUME = "${meta.postgres_volume}"
        SEED_ROWS = var.seed_rows
      }

      template {
        data        = file("jobs/files/patroni-start.sh")
        destination = "local/start.sh"
        perms       = "0755"
        change_mode = "noop"
      }

      template {
        data        = file("jobs/files/postgres-bootstrap.sh")
        destination = "local/bootstrap.sh"
        perms       = "0755"
        change_mode = "noop"
      }

      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs" -}}
          APP_PASSWORD={{ .app_password }}
          {{- end }}
        EOT
        destination = "secrets/db.env"
        env         = true
        change_mode = "noop"
      }

      # start.sh hands a copy readable only by the postgres user to Patroni.
      template {
        data        = file("jobs/files/patroni.yml.tpl")
        destination = "secrets/patroni.yml"
        perms       = "0600"
        change_mode = "noop"
      }

      service {
        name = "postgres-primary"
        port = "pg"
        meta {
          name = "pg-${NOMAD_ALLOC_INDEX}"
        }

        check {
          name     = "patroni leader, running"
          type     = "http"
          port     = "api"
          path     = "/primary"
          interval = "1s"
          timeout  = "1s"
        }
      }

      service {
        name = "postgres-follower"
        port = "pg"
        tags = ["pg-${NOMAD_ALLOC_INDEX}"]
        meta {
          name = "pg-${NOMAD_ALLOC_INDEX}"
        }

        check {
          name     = "patroni replica, running, within the lag bound"
          type     = "http"
          port     = "api"
          path     = "/replica?lag=${var.replica_max_lag}"
          interval = "1s"
          timeout  = "1s"
        }
      }

      # Deregister first, then stop: HAProxy and the backends drop the
      # member before it goes. SIGTERM makes Patroni stop Postgres (fast
      # shutdown) and release the leader key, so a planned stop of the
      # leader fails over at once instead of after the key's TTL.
      shutdown_delay = "1s"
      kill_signal    = "SIGTERM"
      kill_timeout   = "30s"

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
