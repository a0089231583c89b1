# HAProxy: one TCP entry point for reads, balanced over the passing Postgres followers.

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

variable "haproxy_port" {
  type        = number
  description = "Fixed port clients use for follower reads (the public entry point of the read path)."
  default     = 5433
}

variable "haproxy_bin" {
  type        = string
  description = "HAProxy binary on every client (Debian's haproxy 2.6)."
  default     = "/usr/sbin/haproxy"
}

job "haproxy" {
  datacenters = var.datacenters
  type        = "service"

  group "haproxy" {
    # One on every node.
    count = var.nodes

    # On the cluster, a lost machine takes one instance with it, not two.
    dynamic "constraint" {
      for_each = var.nodes > 1 ? [true] : []
      content {
        operator = "distinct_hosts"
        value    = "true"
      }
    }


    network {
      port "pg" {
        static = var.haproxy_port
      }
      port "stats" {}
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

    task "haproxy" {
      driver = "raw_exec"

      # Master-worker in the foreground (-W -db): the master survives reloads.
      config {
        command = var.haproxy_bin
        args    = ["-W", "-db", "-f", "${NOMAD_TASK_DIR}/haproxy.cfg", "-p", "${NOMAD_TASK_DIR}/haproxy.pid"]
      }

      env {
        # reload.sh validates with the binary the task runs.
        HAPROXY_BIN = var.haproxy_bin
      }

      template {
        data        = file("jobs/files/haproxy-reload.sh")
        destination = "local/reload.sh"
        perms       = "0755"
        change_mode = "noop"
      }

      template {
        data        = file("templates/haproxy.ctmpl")
        destination = "local/haproxy.cfg"
        change_mode = "script"
        change_script {
          # change_script args are not interpolated, but the task's
          # environment is there when the script runs.
          command       = "/bin/bash"
          args          = ["-c", "exec \"$NOMAD_TASK_DIR/reload.sh\""]
          timeout       = "10s"
          fail_on_error = false
        }
        # Apply catalog changes at once: a dead follower must leave rotation in
        # well under a second, not after consul-template's default quiescence.
        wait {
          min = "50ms"
          max = "250ms"
        }
        splay = "0s"
      }

      service {
        name = "haproxy"
        port = "pg"
        check {
          name     = "accepts TCP"
          type     = "tcp"
          interval = "1s"
          timeout  = "1s"
        }
      }

      # Hard stop: pooled client connections never end on their own, so a soft
      # stop would only wait out kill_timeout.
      kill_signal  = "SIGTERM"
      kill_timeout = "5s"

      resources {
        cpu    = 300
        memory = 128
      }
    }
  }
}
