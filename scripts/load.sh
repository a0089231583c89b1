#!/usr/bin/env bash
# Sends a bounded load to /data through Nginx and prints each response's
# backend and follower, then a summary. Flags go to bin/load (see -h).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
[[ -x "$BIN/load" ]] || die "bin/load missing: run scripts/install.sh"
exec "$BIN/load" "$@"
