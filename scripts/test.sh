#!/usr/bin/env bash
# The test command (npm test): make sure Docker, Redis and the base image are there, then run
# the whole uvu suite against them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dev-env.sh
exec node --import tsx node_modules/uvu/bin.js spec '\.test\.ts$' "$@"
