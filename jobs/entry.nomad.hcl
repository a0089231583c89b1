# keepalived on every node of the cluster: one VRRP virtual address, the clients' entry, held by a node whose Nginx answers.

variable "datacenters" {
  type        = list(string)
  description = "Datacenters the job may run in."
  default     = ["dc1"]
}

variable "restart_delay" {
  type        = string
  description = "How long Nomad waits before it starts a crashed task again, plus up to a quarter of jitter (set in jobs/hastack.vars.hcl)."
}

variable "entry_address" {
  type        = string
  description = "The virtual address clients use, with its prefix length (e.g. 10.0.0.10/24): scripts/up.sh passes the cluster's."
}

variable "interface" {
  type        = string
  description = "The nodes' interface on the cluster network, where the virtual address lives."
  default     = "eth0"
}

variable "http_port" {
  type        = number
  description = "Nginx's port on every node (the nginx job's http_port): the health a node must have to hold the address."
  default     = 8080
}

variable "router_id" {
  type        = number
  description = "VRRP virtual router id, unique on the network segment."
  default     = 61
}

variable "keepalived_bin" {
  type        = string
  description = "keepalived on every client (Debian's keepalived 2.2)."
  default     = "/usr/sbin/keepalived"
}

job "entry" {
  datacenters = var.datacenters
  # One keepalived per node, wherever Nginx may run.
  type = "system"

  group "entry" {
    restart {
      attempts = 30
      interval = "1m"
      delay    = var.restart_delay
      mode     = "delay"
    }

    task "keepalived" {
      driver = "raw_exec"

      # In the foreground, logging to stderr; its pid files in the task
      # directory, since every node shares this host's /run.
      config {
        command = var.keepalived_bin
        args = ["--dont-fork", "--log-console", "--log-detail",
          "--use-file", "${NOMAD_TASK_DIR}/keepalived.conf",
          "--pid", "${NOMAD_TASK_DIR}/keepalived.pid",
          "--vrrp_pid", "${NOMAD_TASK_DIR}/vrrp.pid",
          "--checkers_pid", "${NOMAD_TASK_DIR}/checkers.pid",
        ]
      }

      template {
        destination = "local/keepalived.conf"
        change_mode = "signal"
        # keepalived rereads its configuration on SIGHUP.
        change_signal = "SIGHUP"
        data          = <<-EOT
          global_defs {
            router_id {{ env "node.unique.name" }}
            script_user root
            enable_script_security
          }

          # A node holds the address only while its own Nginx answers.
          vrrp_script nginx {
            script "/usr/bin/curl -fsS -m 1 -o /dev/null http://127.0.0.1:${var.http_port}/nginx-health"
            interval 1
            timeout 1
            fall 2
            rise 2
          }

          vrrp_instance entry {
            # Every node starts as a backup with the same priority: the first
            # elected keeps the address (nopreempt) until it fails, instead
            # of moving it back and forth when a node returns.
            state BACKUP
            nopreempt
            priority 100
            interface ${var.interface}
            virtual_router_id ${var.router_id}
            # VRRPv3 allows sub-second adverts: a master silent for three
            # adverts (about 1.5 s) is replaced.
            version 3
            advert_int 0.5
            virtual_ipaddress {
              ${var.entry_address} dev ${var.interface}
            }
            track_script {
              nginx
            }
          }
        EOT
      }

      # SIGTERM: keepalived gives the address up (priority 0 advert) so a
      # backup takes it at once, then exits.
      kill_signal  = "SIGTERM"
      kill_timeout = "5s"

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
