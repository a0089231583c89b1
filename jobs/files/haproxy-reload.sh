#!/usr/bin/env bash
# Runs when consul-template re-renders haproxy.cfg: validate, then reload the
# master-worker seamlessly (SIGUSR2). An invalid config is never loaded.
set -euo pipefail
cfg="$NOMAD_TASK_DIR/haproxy.cfg"
"${HAPROXY_BIN:?set by the job}" -c -q -f "$cfg"
kill -USR2 "$(cat "$NOMAD_TASK_DIR/haproxy.pid")"
