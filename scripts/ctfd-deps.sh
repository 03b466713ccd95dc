#!/usr/bin/env bash
# What the CTFd plugin's tests need (integrations/ctfd, run by spec/integrations/ctfd.test.ts):
# Debian's /usr/bin/python3 with Flask, Flask-SQLAlchemy (+ SQLAlchemy) and requests. Idempotent:
# does nothing when they import; otherwise installs them from Debian. Docker and Chromium come
# from scripts/dev-env.sh. No PyPI.
set -euo pipefail

log() { printf '[ctfd-deps] %s\n' "$*"; }
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
PY=/usr/bin/python3
MODULES="flask, flask_sqlalchemy, sqlalchemy, requests"
PKGS=(python3 python3-flask python3-flask-sqlalchemy python3-sqlalchemy python3-requests)

if [ -x "$PY" ] && "$PY" -c "import $MODULES" >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "not Debian: install $PY with $MODULES yourself (the CTFd plugin's tests need them)"
  exit 1
fi
log "installing ${PKGS[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${PKGS[@]}" >/dev/null
"$PY" -c "import $MODULES" || { log "$PY still cannot import $MODULES"; exit 1; }
