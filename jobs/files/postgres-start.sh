#!/usr/bin/env bash
# Starts one Postgres instance of hastack under Nomad: the primary (creates the
# cluster, schema and seed rows on first start) or a follower (copies the
# primary with pg_basebackup on first start, then streams). Rendered by Nomad
# into the task directory; settings come from the environment the job sets.
# "start.sh follow" (a follower's change_script) points a running follower at
# the primary's address now in primary.env and reloads it.
set -euo pipefail

: "${ROLE:?}" "${NAME:?}" "${PG_BIN:?}" "${NOMAD_ALLOC_DIR:?}" "${NOMAD_ALLOC_ID:?}" "${NOMAD_IP_pg:?}" "${NOMAD_PORT_pg:?}"

pgdata="$NOMAD_ALLOC_DIR/data/pgdata"
# Unix sockets have a ~100 byte path limit, so they live outside the alloc dir.
sockdir="/tmp/hastack-pg-$NOMAD_ALLOC_ID"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

# follow_primary: write where the primary is into DATA/primary.conf, from
# primary.env; reports whether it changed. Without a passing primary, keeps
# the last address (the walreceiver keeps retrying it).
follow_primary() {
	# shellcheck disable=SC1091 # rendered by Nomad from the Consul catalog
	source "$NOMAD_TASK_DIR/primary.env"
	[[ -n "${PRIMARY_ADDR:-}" ]] || return 1
	local conf="$pgdata/primary.conf"
	local want="primary_conninfo = 'host=${PRIMARY_ADDR%:*} port=${PRIMARY_ADDR##*:} user=replicator passfile=$NOMAD_SECRETS_DIR/pgpass application_name=$NAME'"
	[[ -f "$conf" && "$(<"$conf")" == "$want" ]] && return 1
	printf '%s\n' "$want" >"$conf.new"
	chown postgres:postgres "$conf.new"
	mv "$conf.new" "$conf"
}

if [[ "${1:-}" == follow ]]; then
	# The primary moved (a planned stop, a reschedule): stream from its new
	# address without restarting; primary_conninfo takes effect on reload.
	if [[ -s "$pgdata/postmaster.pid" ]] && follow_primary; then
		echo "primary now at $PRIMARY_ADDR: reloading" >&2
		kill -HUP "$(head -n1 "$pgdata/postmaster.pid")"
	fi
	exit 0
fi

install -d -o postgres -g postgres -m 0700 "$pgdata" "$sockdir"
install -o postgres -g postgres -m 0600 /dev/null "$NOMAD_SECRETS_DIR/pgpass"
printf '*:*:*:replicator:%s\n' "$REPLICATION_PASSWORD" >"$NOMAD_SECRETS_DIR/pgpass"

# write_conf DIR: our settings, in DIR/hastack.conf. Rewritten on every start:
# a rescheduled allocation may get another address.
write_conf() {
	local dir=$1
	cat >"$dir/hastack.conf" <<CONF
listen_addresses = '$NOMAD_IP_pg'
port = $NOMAD_PORT_pg
unix_socket_directories = '$sockdir'
cluster_name = '$NAME'
max_connections = 500
shared_buffers = 128MB
wal_level = replica
max_wal_senders = 10
wal_keep_size = '1GB'
hot_standby = on
hot_standby_feedback = on
log_destination = 'stderr'
logging_collector = off
log_line_prefix = '%m [%p] $NAME '
CONF
	chown postgres:postgres "$dir/hastack.conf"
	grep -q "^include 'hastack.conf'" "$dir/postgresql.conf" ||
		echo "include 'hastack.conf'" >>"$dir/postgresql.conf"
}

init_primary() {
	local tmp="$pgdata.init"
	rm -rf "$tmp"
	install -d -o postgres -g postgres -m 0700 "$tmp"
	as_pg "$PG_BIN/initdb" -D "$tmp" -U postgres --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
	cat >"$tmp/pg_hba.conf" <<HBA
local all         all                      peer
host  replication replicator 0.0.0.0/0     scram-sha-256
host  replication replicator ::/0          scram-sha-256
host  hastack     app        0.0.0.0/0     scram-sha-256
host  hastack     app        ::/0          scram-sha-256
# HAProxy's pgsql-check logs in as haproxy_check (no password, no privileges,
# an empty database of its own) to prove the server answers the protocol.
host  haproxy_check haproxy_check 0.0.0.0/0 trust
host  haproxy_check haproxy_check ::/0      trust
HBA
	write_conf "$tmp"
	# A private server (no TCP) to create roles, schema and seed rows; pg_ctl -w
	# waits until it accepts connections, with a deadline.
	as_pg "$PG_BIN/pg_ctl" -D "$tmp" -w -t 60 -o "-c listen_addresses=''" -l "$tmp/init.log" start
	as_pg "$PG_BIN/psql" -h "$sockdir" -p "$NOMAD_PORT_pg" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
		-v app_pw="$APP_PASSWORD" -v repl_pw="$REPLICATION_PASSWORD" -v rows="$SEED_ROWS" <<'SQL'
CREATE ROLE app LOGIN PASSWORD :'app_pw';
CREATE ROLE replicator LOGIN REPLICATION PASSWORD :'repl_pw';
CREATE ROLE haproxy_check LOGIN;
CREATE DATABASE haproxy_check;
CREATE DATABASE hastack OWNER app;
\connect hastack
SET ROLE app;
CREATE TABLE items (
  id         bigserial PRIMARY KEY,
  payload    text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- The write's idempotency key: a repeated POST returns its first row.
  request_id text UNIQUE
);
INSERT INTO items (payload) SELECT 'seed-' || g FROM generate_series(1, :rows) AS g;
SQL
	as_pg "$PG_BIN/pg_ctl" -D "$tmp" -w -t 60 -m fast stop
	rm -f "$tmp/init.log"
	mv "$tmp" "$pgdata.ready"
	rm -rf "$pgdata"
	mv "$pgdata.ready" "$pgdata"
}


init_follower() {
	# shellcheck disable=SC1091 # rendered by Nomad from the Consul catalog
	source "$NOMAD_TASK_DIR/primary.env"
	: "${PRIMARY_ADDR:?no passing postgres-primary in Consul yet: Nomad starts this task again}"
	local tmp="$pgdata.init"
	rm -rf "$tmp"
	install -d -o postgres -g postgres -m 0700 "$tmp"
	as_pg env PGPASSFILE="$NOMAD_SECRETS_DIR/pgpass" "$PG_BIN/pg_basebackup" \
		-h "${PRIMARY_ADDR%:*}" -p "${PRIMARY_ADDR##*:}" -U replicator -D "$tmp" -X stream -c fast --no-password
	rm -rf "$pgdata"
	mv "$tmp" "$pgdata"
}

case "$ROLE" in
primary)
	[[ -s "$pgdata/PG_VERSION" ]] || init_primary
	write_conf "$pgdata"
	rm -f "$pgdata/standby.signal"
	;;
follower)
	# A follower with data starts on it even while no primary passes (a crash
	# during a primary outage): it serves reads and streams again once the
	# primary is back. Only the first start needs the primary.
	[[ -s "$pgdata/PG_VERSION" ]] || init_follower
	write_conf "$pgdata"
	# Where the primary is now, as Consul says (the last known address when
	# none passes); "start.sh follow" updates it while the follower runs.
	follow_primary || true
	echo "include 'primary.conf'" >>"$pgdata/hastack.conf"
	install -o postgres -g postgres -m 0600 /dev/null "$pgdata/standby.signal"
	;;
*)
	echo "unknown ROLE $ROLE" >&2
	exit 2
	;;
esac

exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$PG_BIN/postgres" -D "$pgdata"
