#!/usr/bin/env bash
# Consul check for a hastack Postgres instance: passes only when the server
# answers SQL over its socket and its recovery state matches its role (a
# follower must be a hot standby, the primary must not be).
set -euo pipefail
: "${ROLE:?}" "${PG_BIN:?}" "${NOMAD_ALLOC_ID:?}" "${NOMAD_PORT_pg:?}"
case "$ROLE" in
primary) want=f ;;
follower) want=t ;;
*) echo "unknown ROLE $ROLE" >&2; exit 2 ;;
esac
got="$(setpriv --reuid=postgres --regid=postgres --init-groups -- \
	"$PG_BIN/psql" -h "/tmp/hastack-pg-$NOMAD_ALLOC_ID" -p "$NOMAD_PORT_pg" -U postgres -d postgres \
	-XtAc 'SELECT pg_is_in_recovery()' 2>&1)" || { echo "not answering: $got"; exit 2; }
if [[ "$got" != "$want" ]]; then
	echo "pg_is_in_recovery() = $got, want $want for a $ROLE"
	exit 2
fi
echo "$ROLE ok: pg_is_in_recovery() = $got"
