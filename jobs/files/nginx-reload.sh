#!/usr/bin/env bash
# Runs when consul-template re-renders nginx.conf: validate, then reload
# (SIGHUP: new workers take over, old ones finish their requests).
set -euo pipefail
conf="$NOMAD_TASK_DIR/nginx.conf"
"${NGINX_BIN:?set by the job}" -t -q -e stderr -p "$NOMAD_TASK_DIR" -c "$conf"
kill -HUP "$(cat "$NOMAD_TASK_DIR/nginx.pid")"
