#!/usr/bin/env bash
# The test command (npm test): make sure Docker, Redis and the base image are there, then run
# the whole uvu suite against them and close with a plain "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dev-env.sh
log=$(mktemp)
# The multi-host rig (real engines in network namespaces plus a registry, scripts/test-hosts.sh):
# started here when missing and then torn down on exit, even when tests fail; a rig that was
# already up is left as it was. If it cannot come up, its tests fail under CI=true (else skip).
rig_started=""
trap 'rm -f "$log"; [ -z "$rig_started" ] || bash scripts/test-hosts.sh down' EXIT
if ! bash scripts/test-hosts.sh status >/dev/null 2>&1; then
  rig_started=1
  bash scripts/test-hosts.sh up || echo "[test] the multi-host test rig did not come up (see above)" >&2
fi
set +e
node --import tsx scripts/uvu-run.mjs spec '\.test\.ts$' "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
plain=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
total=$(printf '%s\n' "$plain" | sed -n 's/^ *Total: *\([0-9]*\).*/\1/p' | tail -1)
passed=$(printf '%s\n' "$plain" | sed -n 's/^ *Passed: *\([0-9]*\).*/\1/p' | tail -1)
if [ -n "$total" ] && [ -n "$passed" ]; then
  echo "$passed passed, $((total - passed)) failed"
fi
exit "$rc"
