#!/usr/bin/env bash
# Runs failure drills against the running hastack: a steady load through
# Nginx, one fault on one instance, and what clients and the catalog saw.
# Writes result.json, every request's outcome and report.html under
# results/drills/<UTC timestamp>/ unless -out is given. Flags go to bin/drill.
#   scripts/drill.sh -scenario follower-kill
#   scripts/drill.sh -suite
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

[[ $# -gt 0 ]] || { "$BIN/drill" -h 2>&1 || true; exit 2; }
[[ -x "$BIN/drill" ]] || die "bin/drill missing: run scripts/install.sh"
# Results land under the repository, whatever the caller's directory.
cd "$ROOT"
exec "$BIN/drill" "$@"
