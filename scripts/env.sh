#!/usr/bin/env bash
# Prints the shell exports for the stack of the run directory, whichever its
# layout: the PATH with nomad, consul and our commands, the run directory
# when it is not the default, and where Nomad, Consul and the clients' entry
# point answer.
#   eval "$(scripts/env.sh)"
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

usage() { echo "usage: eval \"\$($0)\"" >&2; exit 2; }
[[ $# -eq 0 ]] || usage

# shellcheck disable=SC2016 # $PATH is the caller's, expanded by its eval
printf 'export PATH=%q:"$PATH"\n' "$BIN"
[[ -z ${HASTACK_RUN_DIR:-} ]] || printf 'export HASTACK_RUN_DIR=%q\n' "$RUN_DIR"
printf 'export NOMAD_ADDR=%q\n' "$LAYOUT_NOMAD_ADDR"
printf 'export CONSUL_HTTP_ADDR=%q\n' "$LAYOUT_CONSUL_HTTP_ADDR"
printf 'export HASTACK_URL=%q\n' "$LAYOUT_HASTACK_URL"
[[ -z ${HASTACK_NET:-} ]] || printf 'export HASTACK_NET=%q\n' "$HASTACK_NET"
