#!/usr/bin/env bash
# Installs and starts what Poseidon's tests and the dev server need, idempotently:
# a Docker engine (with gVisor registered), a Redis server on 127.0.0.1:${POSEIDON_TEST_REDIS_PORT:-6390},
# the local base image busybox:1.35 (no registry is needed) and Chromium for page tests.
# Safe to run again: every step checks first and skips what is already there.
set -euo pipefail

log() { printf '[dev-env] %s\n' "$*"; }
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
REDIS_PORT="${POSEIDON_TEST_REDIS_PORT:-6390}"

need_pkgs=()
docker info >/dev/null 2>&1 || command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
# The Sentinel failover tests start their own primary, replica and three sentinels (spec/helpers/sentinel.ts).
command -v redis-sentinel >/dev/null 2>&1 || need_pkgs+=(redis-sentinel)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v runsc >/dev/null 2>&1 || need_pkgs+=(runsc)
command -v git >/dev/null 2>&1 || need_pkgs+=(git)
# The multi-host test rig (scripts/test-hosts.sh, started by scripts/test.sh): a real registry, namespaces.
command -v docker-registry >/dev/null 2>&1 || need_pkgs+=(docker-registry)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
# A real sshd for the git-over-SSH deploy-key tests (the tests start their own on a loopback port).
# Only in CI: on a workstation the package would also enable a system SSH service; there the
# tests are skipped, loudly, without it.
[ -x /usr/sbin/sshd ] || [ "${CI:-}" != true ] || need_pkgs+=(openssh-server)
# Real headless Chromium for the player-page tests (playwright-core drives /usr/bin/chromium).
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
command -v promtool >/dev/null 2>&1 || need_pkgs+=(prometheus)  # the metrics tests run a real Prometheus and promtool
# The CTFd plugin's Python tests run on Debian's python3 with Flask (no PyPI here).
/usr/bin/python3 -c 'import flask, flask_sqlalchemy, sqlalchemy, requests' >/dev/null 2>&1 || need_pkgs+=(python3-flask python3-flask-sqlalchemy python3-sqlalchemy python3-requests)
if [ ${#need_pkgs[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  log "installing ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# gVisor needs --network=host inside Docker's own namespace (see shared/design/environment.md).
if [ -x /usr/bin/runsc ] && [ ! -s /etc/docker/daemon.json ]; then
  $SUDO mkdir -p /etc/docker
  echo '{"runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host"]}}}' | $SUDO tee /etc/docker/daemon.json >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 || { log "no Docker engine: install Docker and start it"; exit 1; }
  # A dockerd still shutting down (stopped a moment ago) holds its pid file: wait for it to go.
  for _ in $(seq 1 60); do
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  log "starting dockerd"
  $SUDO bash -c 'nohup dockerd --default-address-pool base=10.213.0.0/16,size=24 >/var/log/dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log; exit 1; }
fi

redis_up() {
  if command -v redis-cli >/dev/null 2>&1; then redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1
  else (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; fi
}
if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    log "starting redis-server on 127.0.0.1:$REDIS_PORT"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes --logfile /tmp/poseidon-redis.log
  else
    log "starting Redis in Docker on 127.0.0.1:$REDIS_PORT"
    docker rm -f poseidon-test-redis >/dev/null 2>&1 || true
    docker run -d --name poseidon-test-redis -p "127.0.0.1:$REDIS_PORT:6379" redis:7-alpine >/dev/null
  fi
  for _ in $(seq 1 40); do redis_up && break; sleep 0.25; done
  redis_up || { log "Redis did not start on 127.0.0.1:$REDIS_PORT"; exit 1; }
fi

if ! docker image inspect busybox:1.35 >/dev/null 2>&1 && [ ! -x /bin/busybox ]; then
  log "pulling busybox:1.35"
  docker pull -q busybox:1.35 >/dev/null
fi
if ! docker image inspect busybox:1.35 >/dev/null 2>&1; then
  log "building local base image busybox:1.35 from Debian's static busybox"
  d=$(mktemp -d); mkdir -p "$d/bin" "$d/tmp" "$d/www"
  cp /bin/busybox "$d/bin/"
  for c in sh httpd nc wget cat echo sleep ls printf env test grep sed head tr id timeout mkdir cp rm chmod true false; do ln -s busybox "$d/bin/$c"; done
  tar -C "$d" -c . | docker import - busybox:1.35 >/dev/null
  rm -rf "$d"
fi
# A runsc installed after dockerd started is picked up by a configuration reload.
if [ -x /usr/bin/runsc ] && ! docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q runsc; then
  $SUDO pkill -HUP -x dockerd 2>/dev/null || true
fi
log "ready: docker $(docker version -f '{{.Server.Version}}'), redis 127.0.0.1:$REDIS_PORT, busybox:1.35"
