#!/usr/bin/env bash
# Starts one Patroni member of hastack under Nomad, as the postgres user.
# Patroni creates the cluster (first member to win the leader key of an empty
# cluster), or copies the leader, or starts on the member's own data and
# rejoins the current leader, rewinding it when needed.
set -euo pipefail

: "${MEMBER:?}" "${PG_VOLUME:?}" "${PATRONI_BIN:?}" "${NOMAD_ALLOC_ID:?}" "${NOMAD_SECRETS_DIR:?}"

[[ -d "$PG_VOLUME" ]] || { echo "host volume directory $PG_VOLUME is missing" >&2; exit 1; }
# Unix sockets have a ~100 byte path limit, so they live outside the volume.
install -d -o postgres -g postgres -m 0700 "/tmp/hastack-pg-$NOMAD_ALLOC_ID"
# The configuration holds passwords: only the postgres user reads its copy.
install -o postgres -g postgres -m 0600 "$NOMAD_SECRETS_DIR/patroni.yml" "$NOMAD_SECRETS_DIR/patroni.pg.yml"

# Patroni's own connections commit locally: with strict synchronous mode and
# no standby streaming, its housekeeping (txid_current() after each change of
# synchronous_standby_names) would otherwise wait for a standby forever and
# stall its loop (fixed in Patroni 3.0.4; Debian 12 has 3.0.2).
export PGOPTIONS="-c synchronous_commit=local"
# Patroni's Consul client would take CONSUL_HTTP_ADDR over its configured
# agent: the leader key's session must live on this node's own agent.
unset CONSUL_HTTP_ADDR
exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$PATRONI_BIN" "$NOMAD_SECRETS_DIR/patroni.pg.yml"
