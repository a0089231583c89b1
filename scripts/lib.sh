# shellcheck shell=bash
# Shared settings for hastack scripts. Sourced, never run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/bin"
# shellcheck disable=SC2034 # used by the scripts that source this file
RUN_DIR="${HASTACK_RUN_DIR:-$ROOT/run}"
export PATH="$BIN:/usr/local/go/bin:$PATH"
export NOMAD_ADDR="${NOMAD_ADDR:-http://127.0.0.1:4646}"
export CONSUL_HTTP_ADDR="${CONSUL_HTTP_ADDR:-127.0.0.1:8500}"

# The kernel setting scripts/install.sh turns off (see tune_host there).
# shellcheck disable=SC2034
AUTOGROUP_SYSCTL=kernel.sched_autogroup_enabled

# Jobs in start order; down stops them in reverse.
# shellcheck disable=SC2034
JOBS=(postgres haproxy backend nginx)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
