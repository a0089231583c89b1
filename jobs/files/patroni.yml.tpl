{{- /* Patroni's configuration for one member, rendered by Nomad into the
task's secrets directory. Timing knobs are explained in the README
("How failover works"); Patroni's rule: loop_wait + 2 * retry_timeout <= ttl. */ -}}
scope: hastack
name: {{ env "MEMBER" }}

log:
  level: INFO

restapi:
  listen: {{ env "NOMAD_ADDR_api" }}
  connect_address: {{ env "NOMAD_ADDR_api" }}

consul:
  # The Consul agent of this node: on both layouts tasks reach theirs on
  # loopback.
  host: 127.0.0.1:8500
  # The leader's session also dies with its node's gossip health, not only
  # when its TTL runs out: a dead node's leader key goes within seconds.
  checks: ["serfHealth"]
  # Read the leader and /sync keys from the Consul leader, never a stale
  # follower's copy.
  consistency: consistent
  # Nomad registers postgres-primary and postgres-follower with checks on
  # the REST API below.
  register_service: false

watchdog:
  mode: "off"

bootstrap:
  dcs:
    # Seconds. A leader that cannot renew its key for ttl loses it; members
    # look every loop_wait; a DCS or Postgres call is retried for
    # retry_timeout before the leader demotes itself.
    ttl: 20
    loop_wait: 2
    retry_timeout: 9
    # A replica more than 1 MiB behind is not promoted.
    maximum_lag_on_failover: 1048576
    # Every commit waits for one synchronous standby, and strict mode keeps
    # it so when no standby streams (writes wait instead of going on alone):
    # an acknowledged write is on two members, and only the synchronous
    # standby may be promoted.
    synchronous_mode: true
    synchronous_mode_strict: true
    synchronous_node_count: 1
    # While Consul cannot be reached, a leader that still reaches every
    # member over their REST APIs keeps its role instead of demoting.
    failsafe_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 500
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 1GB
        hot_standby_feedback: "on"
        # A standby that stops answering (its machine is gone) ends its WAL
        # sender within this, so Patroni can name the other standby
        # synchronous instead of leaving commits waiting on a dead one.
        wal_sender_timeout: 2s
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - data-checksums
  # Creates the roles, the database and the seed rows, once, on the member
  # that creates the cluster.
  post_bootstrap: {{ env "NOMAD_TASK_DIR" }}/bootstrap.sh

postgresql:
  listen: {{ env "NOMAD_ADDR_pg" }}
  connect_address: {{ env "NOMAD_ADDR_pg" }}
  data_dir: {{ env "PG_VOLUME" }}/{{ env "MEMBER" }}
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: {{ env "PG_VOLUME" }}/{{ env "MEMBER" }}.pgpass
  use_unix_socket: true
  # A member that cannot be rewound onto the new timeline copies the leader
  # afresh instead of staying down.
  # A new member copies the leader at once: without "fast" the leader's
  # checkpoint is spread over minutes before the copy starts.
  basebackup:
    - checkpoint: fast
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  {{- with nomadVar "nomad/jobs" }}
  authentication:
    superuser:
      username: postgres
      password: "{{ .superuser_password }}"
    replication:
      username: replicator
      password: "{{ .replication_password }}"
  {{- end }}
  parameters:
    unix_socket_directories: /tmp/hastack-pg-{{ env "NOMAD_ALLOC_ID" }}
    # Which member answered a read (cluster_name is Patroni's scope).
    hastack.member: {{ env "MEMBER" }}
    shared_buffers: 128MB
    # A standby retries a lost WAL source every half second, not every 5 s.
    wal_retrieve_retry_interval: 500ms
    log_line_prefix: "%m [%p] {{ env "MEMBER" }} "
  pg_hba:
    - local all all peer
    - host replication replicator 0.0.0.0/0 scram-sha-256
    - host all postgres 0.0.0.0/0 scram-sha-256
    - host hastack app 0.0.0.0/0 scram-sha-256
    # HAProxy's pgsql-check logs in as haproxy_check (no password, no
    # privileges, an empty database of its own) to prove the server answers.
    - host haproxy_check haproxy_check 0.0.0.0/0 trust
