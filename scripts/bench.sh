#!/usr/bin/env bash
# Benchmarks the running stack against the database's own limit: prints a
# table and writes JSON under results/bench/. Flags go to bin/bench (see -h);
# -smoke runs a few seconds only.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
[[ -x "$BIN/bench" ]] || die "bin/bench missing: run scripts/install.sh"
cd "$ROOT"
exec "$BIN/bench" "$@"
