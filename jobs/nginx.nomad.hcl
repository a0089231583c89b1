# Nginx: the HTTP entry point, balanced over the passing backends.

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

variable "http_port" {
  type        = number
  description = "Fixed port clients send HTTP to (the public entry point)."
  default     = 8080
}

variable "worker_processes" {
  type        = string
  description = "Nginx worker processes (a number, or auto: one per core). One on a machine whose cores the whole stack shares: the same throughput as two, with a shorter latency tail (scripts/bench.sh)."
  default     = "1"
}

variable "nginx_bin" {
  type        = string
  description = "Nginx binary on every client (Debian's nginx 1.22)."
  default     = "/usr/sbin/nginx"
}

job "nginx" {
  datacenters = var.datacenters
  type        = "service"

  group "nginx" {
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
      port "http" {
        static = var.http_port
      }
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

    task "nginx" {
      driver = "raw_exec"

      # Foreground master (daemon off) so Nomad supervises it; -e: log to stderr
      # from the first line, before the config is read.
      config {
        command = var.nginx_bin
        args    = ["-e", "stderr", "-p", "${NOMAD_TASK_DIR}", "-c", "${NOMAD_TASK_DIR}/nginx.conf", "-g", "daemon off;"]
      }

      env {
        # Read by templates/nginx.ctmpl.
        NGINX_WORKER_PROCESSES = var.worker_processes
        # reload.sh validates with the binary the task runs.
        NGINX_BIN = var.nginx_bin
        # On the cluster Nginx also answers on the entry address that
        # keepalived moves between the nodes, so it listens on every address
        # of its node; on one machine, on the node's address only.
        NGINX_LISTEN_ALL = var.nodes > 1
      }

      template {
        data        = file("jobs/files/nginx-reload.sh")
        destination = "local/reload.sh"
        perms       = "0755"
        change_mode = "noop"
      }

      # Creates local/tmp for nginx's scratch paths before nginx starts.
      template {
        data        = "temp files of nginx live here\n"
        destination = "local/tmp/README"
        change_mode = "noop"
      }

      template {
        data        = file("templates/nginx.ctmpl")
        destination = "local/nginx.conf"
        change_mode = "script"
        change_script {
          # change_script args are not interpolated, but the task's
          # environment is there when the script runs.
          command       = "/bin/bash"
          args          = ["-c", "exec \"$NOMAD_TASK_DIR/reload.sh\""]
          timeout       = "10s"
          fail_on_error = false
        }
        # Apply catalog changes at once: a dead backend must leave rotation in
        # well under a second.
        wait {
          min = "50ms"
          max = "250ms"
        }
        splay = "0s"
      }

      service {
        name = "nginx"
        port = "http"
        check {
          name     = "serves HTTP"
          type     = "http"
          path     = "/nginx-health"
          interval = "1s"
          timeout  = "1s"
        }
      }

      # SIGQUIT: graceful shutdown, in-flight requests finish.
      kill_signal  = "SIGQUIT"
      kill_timeout = "10s"

      resources {
        cpu    = 300
        memory = 128
      }
    }
  }
}
