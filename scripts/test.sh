#!/usr/bin/env bash
# The hastack test suite: installs what is missing, runs static checks, unit
# and template tests, then the end-to-end tests that bring the real stack up,
# load it, and tear it down. Prints a summary line at the end.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

usage() { echo "usage: $0 [--unit]   (--unit: skip the end-to-end tests)" >&2; exit 2; }
e2e=true
for a in "$@"; do
	case "$a" in
	--unit) e2e=false ;;
	*) usage ;;
	esac
done

cd "$ROOT"
"$ROOT/scripts/install.sh"

log "static checks: gofmt, go vet, shellcheck, nomad fmt"
unformatted="$(gofmt -l .)"
[[ -z "$unformatted" ]] || die "gofmt needed: $unformatted"
go vet ./...
go vet -tags e2e ./e2e/
shellcheck -x scripts/*.sh jobs/files/*.sh .ci/run
nomad fmt -check -recursive jobs/

# Outside run/: the end-to-end tests delete run/ when they tear down.
mkdir -p "$ROOT/results"
report="$ROOT/results/test-report.txt"
: >"$report"
status=0
log "unit and template tests"
go test -count=1 -v ./... 2>&1 | tee -a "$report" | grep -E '^(ok|FAIL|---|panic)' || status=1
if $e2e; then
	log "end-to-end tests (brings the stack up and down)"
	go test -tags e2e -count=1 -v -timeout 60m ./e2e/ 2>&1 | tee -a "$report" || status=1
fi

passed=$(grep -c -- '--- PASS' "$report" || true)
failed=$(grep -c -- '--- FAIL' "$report" || true)
skipped=$(grep -c -- '--- SKIP' "$report" || true)
if [[ $status -ne 0 || $failed -ne 0 ]]; then
	echo "TEST SUMMARY: FAIL: $passed passed, $failed failed, $skipped skipped (details in $report)"
	exit 1
fi
echo "TEST SUMMARY: PASS: $passed passed, $failed failed, $skipped skipped"
