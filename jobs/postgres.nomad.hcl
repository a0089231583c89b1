# Postgres 15: one primary that takes writes and followers that stream its WAL and serve reads.

variable "datacenters" {
  type        = list(string)
  description = "Datacenters the job may run in."
  default     = ["dc1"]
}

variable "restart_delay" {
  type        = string
  description = "How long Nomad waits before it starts a crashed task again, plus up to a quarter of jitter (set in jobs/hastack.vars.hcl; at most 2s: 30 attempts a minute)."
}

variable "bin_dir" {
  type        = string
  description = "Directory holding the hastack binaries on every client (scripts/install.sh builds them into bin/): the health check runs bin_dir/pgcheck."
}

variable "pg_bin_dir" {
  type        = string
  description = "Directory of the Postgres 15 server binaries on every client (Debian's postgresql-15)."
  default     = "/usr/lib/postgresql/15/bin"
}

variable "followers" {
  type        = number
  description = "How many streaming followers serve reads."
  default     = 2
}

variable "seed_rows" {
  type        = number
  description = "Rows the primary seeds into items on first start; the backend reads random keys in 1..seed_rows."
  default     = 10000
}

locals {
  # A crashed Postgres starts again in place, on its own data (crash
  # recovery replays its WAL).
  restart = {
    attempts = 30
    interval = "1m"
    delay    = var.restart_delay
  }
  secrets_env = <<-EOT
    {{ with nomadVar "nomad/jobs" -}}
    APP_PASSWORD={{ .app_password }}
    REPLICATION_PASSWORD={{ .replication_password }}
    {{- end }}
  EOT

  # What each group's "check" task (pgcheck) reads to reach its instance:
  # the libpq environment, as the app user, over the instance's TCP port.
  check_env = {
    PGHOST     = "${NOMAD_IP_pg}"
    PGPORT     = "${NOMAD_PORT_pg}"
    PGUSER     = "app"
    PGDATABASE = "hastack"
    PGSSLMODE  = "disable"
  }
  check_secrets_env = <<-EOT
    {{ with nomadVar "nomad/jobs" -}}
    PGPASSWORD={{ .app_password }}
    {{- end }}
  EOT
}

job "postgres" {
  datacenters = var.datacenters
  type        = "service"

  update {
    max_parallel     = 1
    min_healthy_time = "5s"
    healthy_deadline = "5m"
  }

  group "primary" {
    count = 1

    network {
      port "pg" {}
      # The health check's HTTP endpoint (task "check").
      port "check" {}
    }

    # Keep the data directory across restarts and, best effort, reschedules.
    ephemeral_disk {
      size    = 1024
      sticky  = true
      migrate = true
    }

    restart {
      attempts = local.restart.attempts
      interval = local.restart.interval
      delay    = local.restart.delay
      mode     = "delay"
    }

    reschedule {
      delay          = "5s"
      delay_function = "constant"
      unlimited      = true
    }

    task "postgres" {
      driver = "raw_exec"

      config {
        command = "/bin/bash"
        args    = ["${NOMAD_TASK_DIR}/start.sh"]
      }

      env {
        ROLE      = "primary"
        NAME      = "primary"
        PG_BIN    = var.pg_bin_dir
        SEED_ROWS = var.seed_rows
      }

      template {
        data        = file("jobs/files/postgres-start.sh")
        destination = "local/start.sh"
        perms       = "0755"
        change_mode = "noop"
      }

      template {
        data        = local.secrets_env
        destination = "secrets/db.env"
        env         = true
        change_mode = "noop"
      }

      service {
        name = "postgres-primary"
        port = "pg"

        # Served by this allocation's "check" task (below).
        check {
          name     = "answers SQL, not in recovery"
          type     = "http"
          port     = "check"
          path     = "/health"
          interval = "1s"
          # pgcheck gives up after 800 ms: a second without an answer means
          # a hung server.
          timeout = "1s"
        }
      }

      # SIGINT is Postgres' fast shutdown: roll back sessions, checkpoint, exit.
      kill_signal  = "SIGINT"
      kill_timeout = "30s"

      resources {
        cpu    = 500
        memory = 512
      }
    }

    # Serves the health check of the postgres task's service: GET /health
    # passes when Postgres answers SQL over its port, as clients reach it,
    # and pg_is_in_recovery() fits the role. It keeps one connection open, so
    # a check costs a query, not a fork of bash, psql and a Postgres backend.
    # A separate task: freezing or killing Postgres leaves it running to say
    # so.
    task "check" {
      driver = "raw_exec"

      lifecycle {
        hook    = "poststart"
        sidecar = true
      }

      config {
        command = "${var.bin_dir}/pgcheck"
      }

      env = merge(local.check_env, { ROLE = "primary" })

      template {
        data        = local.check_secrets_env
        destination = "secrets/check.env"
        env         = true
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }

  group "follower" {
    count = var.followers

    network {
      port "pg" {}
      # The health check's HTTP endpoint (task "check").
      port "check" {}
    }

    ephemeral_disk {
      size    = 1024
      sticky  = true
      migrate = true
    }

    restart {
      attempts = local.restart.attempts
      interval = local.restart.interval
      delay    = local.restart.delay
      mode     = "delay"
    }

    reschedule {
      delay          = "5s"
      delay_function = "constant"
      unlimited      = true
    }

    task "postgres" {
      driver = "raw_exec"

      config {
        command = "/bin/bash"
        args    = ["${NOMAD_TASK_DIR}/start.sh"]
      }

      env {
        ROLE   = "follower"
        NAME   = "follower-${NOMAD_ALLOC_INDEX}"
        PG_BIN = var.pg_bin_dir
      }

      template {
        data        = file("jobs/files/postgres-start.sh")
        destination = "local/start.sh"
        perms       = "0755"
        change_mode = "noop"
      }

      template {
        data        = local.secrets_env
        destination = "secrets/db.env"
        env         = true
        change_mode = "noop"
      }

      # Where the primary is, read by start.sh at each start (not env = true:
      # Nomad would keep the first render's values across restarts). When it
      # changes, "start.sh follow" points the running follower at the new
      # address and reloads it: a primary that moved (planned stop,
      # reschedule) is followed without restarting the followers that serve
      # reads; one that is briefly unhealthy changes nothing.
      template {
        data        = <<-EOT
          {{ range service "postgres-primary|passing" -}}
          PRIMARY_ADDR={{ .Address }}:{{ .Port }}
          {{ end -}}
        EOT
        destination = "local/primary.env"
        change_mode = "script"
        change_script {
          command       = "/bin/bash"
          args          = ["-c", "exec \"$NOMAD_TASK_DIR/start.sh\" follow"]
          timeout       = "10s"
          fail_on_error = false
        }
      }

      service {
        name = "postgres-follower"
        port = "pg"
        tags = ["follower-${NOMAD_ALLOC_INDEX}"]
        meta {
          name = "follower-${NOMAD_ALLOC_INDEX}"
        }

        # Served by this allocation's "check" task (below).
        check {
          name     = "answers SQL, in recovery"
          type     = "http"
          port     = "check"
          path     = "/health"
          interval = "1s"
          # A frozen follower must leave rotation fast: pgcheck gives up
          # after 800 ms.
          timeout = "1s"
        }
      }

      # Deregister first, then stop: HAProxy drops the follower before it goes.
      shutdown_delay = "1s"
      kill_signal    = "SIGINT"
      kill_timeout   = "30s"

      resources {
        cpu    = 500
        memory = 512
      }
    }

    # The health check of the postgres task's service, as in the primary
    # group, for a follower: it must be in recovery.
    task "check" {
      driver = "raw_exec"

      lifecycle {
        hook    = "poststart"
        sidecar = true
      }

      config {
        command = "${var.bin_dir}/pgcheck"
      }

      env = merge(local.check_env, { ROLE = "follower" })

      template {
        data        = local.check_secrets_env
        destination = "secrets/check.env"
        env         = true
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
