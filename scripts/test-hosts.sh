#!/usr/bin/env bash
# The multi-host test rig: several real Docker engines on this one machine, each in its own
# network namespace with its own address, plus a real OCI registry (Debian's docker-registry)
# that all of them and the host engine reach. See ../shared/design/environment.md.
#
#   bash scripts/test-hosts.sh up [N]     start what is missing (N engines, default 3, at most 9)
#   bash scripts/test-hosts.sh down       remove everything the rig created, even half-built
#   bash scripts/test-hosts.sh status     print the description (env lines); exit 1 if not fully up
#
# Layout (one L2 segment, so every host sees the registry at the same address):
#   bridge pthb0 10.250.0.1/24 on the host; registry on 10.250.0.1:5000 (plain HTTP)
#   namespace pt-w<i>: eth0 10.250.0.1<i>/24 (veth pthv<i> on pthb0), default route via 10.250.0.1
#   engine w<i>: nsenter --net dockerd (host name pt-w<i>), socket /var/run/poseidon-test/w<i>.sock,
#                address pool 10.22<i>.0.0/16, gVisor (runsc) registered on w1 only
# The description is written to /var/run/poseidon-test/hosts.env (spec/helpers/hosts.ts reads it).
# Engine and registry logs go to /var/log/poseidon-test/ and are kept after `down`.
set -Eeuo pipefail

if [ "$(id -u)" -ne 0 ]; then exec sudo -E bash "$0" "$@"; fi

CMD="${1:-status}"
N="${2:-${POSEIDON_TEST_HOSTS:-3}}"
BR=pthb0
HOST_ADDR=10.250.0.1
REG_PORT=5000
REGISTRY="$HOST_ADDR:$REG_PORT"
RUN=/var/run/poseidon-test
LIB=/var/lib/poseidon-test
LOGS=/var/log/poseidon-test
ENV_FILE="$RUN/hosts.env"
BASE_IMAGE=busybox:1.35
FW_TAG=poseidon-test-rig
HOST_DAEMON_JSON=/etc/docker/daemon.json
LOCK=/run/lock/poseidon-test-hosts.lock

log() { printf '[test-hosts] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "ERROR: line $LINENO: $BASH_COMMAND failed"' ERR

ns() { echo "pt-w$1"; }
addr() { echo "$HOST_ADDR$1"; }          # 10.250.0.1 + i -> 10.250.0.11, .12, ...
veth() { echo "pthv$1"; }
pool() { echo "10.22$1.0.0/16"; }
sock() { echo "$RUN/w$1.sock"; }
pidf() { echo "$RUN/w$1.pid"; }
dk() { local i=$1; shift; timeout 20 docker -H "unix://$(sock "$i")" "$@"; }

# Pid of a live process recorded in $1 whose command name is $2, or nothing.
live_pid() {
  local p; p=$(cat "$1" 2>/dev/null || true)
  [ -n "$p" ] && [ -r "/proc/$p/comm" ] && [ "$(cat "/proc/$p/comm")" = "$2" ] && echo "$p"
  return 0
}
engine_pid() { live_pid "$(pidf "$1")" dockerd; }
engine_ok() { [ -S "$(sock "$1")" ] && timeout 5 docker -H "unix://$(sock "$1")" version -f '{{.Server.Version}}' >/dev/null 2>&1; }
registry_ok() {
  (exec 3<>"/dev/tcp/$HOST_ADDR/$REG_PORT" && printf 'GET /v2/ HTTP/1.0\r\n\r\n' >&3 && timeout 2 head -1 <&3 | grep -q ' 200 ') 2>/dev/null
}
# Indices of every engine/namespace the rig may have left, whatever N was.
known_indices() {
  { ls "$RUN" 2>/dev/null | sed -n 's/^w\([0-9]\)\(\.pid\|\.sock\|\.json\)\{0,1\}$/\1/p'
    ls "$LIB" 2>/dev/null | sed -n 's/^w\([0-9]\)$/\1/p'
    ip netns list 2>/dev/null | sed -n 's/^pt-w\([0-9]\)\b.*/\1/p'
    ip -o link show 2>/dev/null | sed -n 's/^[0-9]*: pthv\([0-9]\)[@:].*/\1/p'
  } | sort -u
}
fw_chain() { if iptables -n -L DOCKER-USER >/dev/null 2>&1; then echo DOCKER-USER; else echo FORWARD; fi; }
FW_RULE=(-i "$BR" -o "$BR" -m comment --comment "$FW_TAG" -j ACCEPT)

# ---------------------------------------------------------------------------------------------
# down

kill_matching() { # kill -9 every process whose command line mentions $1 (a path only the rig uses)
  local pids=() f
  for f in $(grep -lsaF -- "$1" /proc/[0-9]*/cmdline 2>/dev/null || true); do
    f=${f#/proc/}; f=${f%/cmdline}
    [ "$f" = $$ ] || [ "$f" = "$BASHPID" ] || pids+=("$f")
  done
  [ ${#pids[@]} -eq 0 ] || { log "killing leftover processes of $1: ${pids[*]}"; kill -9 "${pids[@]}" 2>/dev/null || true; }
}

unmount_under() { # lazily unmount everything mounted below $1 (real path), deepest first
  local m d; d=$(realpath -m "$1")
  for m in $(findmnt -rn -o TARGET 2>/dev/null | grep -E "^$d(/|$)" | sort -r || true); do
    umount -l "$m" 2>/dev/null || true
  done
}

stop_engine() {
  local i=$1 p c n=0
  p=$(engine_pid "$i")
  if [ -n "$p" ]; then
    # Remove its containers first (SIGKILL, quick): dockerd would otherwise stop each one gracefully.
    if engine_ok "$i"; then
      c=$(dk "$i" ps -aq 2>/dev/null || true)
      [ -z "$c" ] || dk "$i" rm -f -v $c >/dev/null 2>&1 || true
    fi
    kill -TERM "$p" 2>/dev/null || true
    while [ -d "/proc/$p" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
    [ ! -d "/proc/$p" ] || { log "w$i: dockerd $p did not stop in 10 s; killing it"; kill -9 "$p" 2>/dev/null || true; }
  fi
  # Whatever that engine left: its containerd, shims, runsc sandboxes (all name its exec root),
  # and anything else still running in its namespace (servers started by tests).
  kill_matching "/poseidon-test/w$i/"
  if [ -e "/var/run/netns/$(ns "$i")" ]; then
    for p in $(ip netns pids "$(ns "$i")" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  fi
  # Its containers' own processes: once their shim is gone (an engine killed mid-way), they live
  # on, reparented, under names that mention nothing of the rig; their cgroups know them.
  local cgs=() d pids
  for c in "$LIB/w$i/containers"/*; do
    [ -e "$c" ] || continue
    c=$(basename "$c")
    for d in /sys/fs/cgroup/*/docker/"$c" /sys/fs/cgroup/docker/"$c"; do [ -d "$d" ] && cgs+=("$d"); done
  done
  if [ ${#cgs[@]} -gt 0 ]; then
    for n in 1 2 3 4 5 6 7 8 9 10; do
      pids=$(cat "${cgs[@]/%//cgroup.procs}" 2>/dev/null | sort -u | tr '\n' ' ')
      [ -n "${pids// /}" ] || break
      [ "$n" != 1 ] || log "w$i: killing leftover container processes: $pids"
      kill -9 $pids 2>/dev/null || true
      sleep 0.1
    done
    for d in "${cgs[@]}"; do rmdir "$d" 2>/dev/null || true; done
  fi
  unmount_under "$RUN/w$i"
  unmount_under "$LIB/w$i"
}

down() {
  local i t0=$SECONDS p pids=()
  # Engines stop in parallel (each takes ~3 s to shut its containerd down).
  for i in $(known_indices); do stop_engine "$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || true; done
  for i in $(known_indices); do
    ip netns del "$(ns "$i")" 2>/dev/null || true
    ip link del "$(veth "$i")" 2>/dev/null || true
    rm -rf "${LIB:?}/w$i" "${RUN:?}/w$i" "$RUN/w$i.pid" "$RUN/w$i.sock" "$RUN/w$i.json"
  done
  p=$(live_pid "$RUN/registry.pid" docker-registry)
  [ -z "$p" ] || { kill -TERM "$p" 2>/dev/null || true; sleep 0.2; kill -9 "$p" 2>/dev/null || true; }
  kill_matching "$RUN/registry.yml"
  local chain
  for chain in DOCKER-USER FORWARD; do
    while iptables -D "$chain" "${FW_RULE[@]}" 2>/dev/null; do :; done
  done
  ip link del "$BR" 2>/dev/null || true
  rm -rf "${LIB:?}" "${RUN:?}"
  log "down in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------------------------------------
# up

preflight() {
  local c
  for c in ip nsenter iptables dockerd docker docker-registry node findmnt; do
    command -v "$c" >/dev/null 2>&1 || die "missing '$c' (run scripts/dev-env.sh: it installs docker.io, docker-registry, iproute2)"
  done
  [[ "$N" =~ ^[1-9]$ ]] || die "N must be 1..9 (got '$N')"
  docker info >/dev/null 2>&1 || die "the host Docker engine is not running (run scripts/dev-env.sh)"
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || die "the host engine has no $BASE_IMAGE (run scripts/dev-env.sh)"
}

ensure_bridge() {
  ip link show "$BR" >/dev/null 2>&1 || ip link add "$BR" type bridge
  ip addr replace "$HOST_ADDR/24" dev "$BR"
  ip link set "$BR" up
}

ensure_ns() {
  local i=$1 n; n=$(ns "$i")
  [ -e "/var/run/netns/$n" ] || ip netns add "$n"
  # The pair must join the host bridge to *this* namespace (a namespace deleted while its engine
  # ran lives on with the old pair's other end).
  if ! ip link show "$(veth "$i")" >/dev/null 2>&1 || ! ip -n "$n" link show eth0 >/dev/null 2>&1; then
    ip link del "$(veth "$i")" 2>/dev/null || true
    ip -n "$n" link del eth0 2>/dev/null || true
    ip link add "$(veth "$i")" type veth peer name eth0 netns "$n"
  fi
  ip link set "$(veth "$i")" master "$BR" up
  ip -n "$n" link set lo up
  ip -n "$n" addr replace "$(addr "$i")/24" dev eth0
  ip -n "$n" link set eth0 up
  ip -n "$n" route replace default via "$HOST_ADDR"
}

ensure_firewall() {
  # With bridge-nf-call-iptables=1, frames bridged between two namespaces traverse the host's
  # FORWARD chain, whose policy Docker sets to DROP. Host <-> namespace traffic is INPUT/OUTPUT.
  local chain; chain=$(fw_chain)
  iptables -C "$chain" "${FW_RULE[@]}" 2>/dev/null || iptables -I "$chain" 1 "${FW_RULE[@]}"
}

ensure_registry() {
  registry_ok && return 0
  local p; p=$(live_pid "$RUN/registry.pid" docker-registry)
  [ -z "$p" ] || kill -9 "$p" 2>/dev/null || true
  if ss -ltnH "sport = :$REG_PORT" 2>/dev/null | grep -q .; then
    die "port $REG_PORT is taken by another process (a system docker-registry service?): $(ss -ltnpH "sport = :$REG_PORT" | head -1)"
  fi
  mkdir -p "$LIB/registry" "$RUN" "$LOGS"
  cat >"$RUN/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $LIB/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
EOF
  setsid bash -c 'echo $$ >"$1"; exec docker-registry serve "$2"' _ "$RUN/registry.pid" "$RUN/registry.yml" \
    >"$LOGS/registry.log" 2>&1 </dev/null 9>&- &
}

wait_registry() {
  local n=0
  until registry_ok; do
    n=$((n + 1)); [ $n -lt 100 ] || { tail -20 "$LOGS/registry.log" >&2; die "registry did not answer on $REGISTRY"; }
    sleep 0.1
  done
}

host_knows_registry() { docker info -f '{{json .RegistryConfig.IndexConfigs}}' 2>/dev/null | grep -qF "\"$REGISTRY\""; }

ensure_host_insecure() {
  # The host engine pushes to $REGISTRY (plain HTTP, not loopback): merge it into daemon.json,
  # keeping everything else (the runsc runtime), and reload (insecure-registries is reloadable).
  host_knows_registry && return 0
  mkdir -p "$(dirname "$HOST_DAEMON_JSON")"
  node -e '
    const fs = require("fs"); const [p, reg] = process.argv.slice(1);
    let j = {};
    try { const t = fs.readFileSync(p, "utf8"); if (t.trim()) j = JSON.parse(t); } catch (e) { if (e.code !== "ENOENT") throw e; }
    const r = j["insecure-registries"] ?? [];
    if (!r.includes(reg)) {
      j["insecure-registries"] = [...r, reg];
      fs.writeFileSync(p + ".tmp", JSON.stringify(j) + "\n"); fs.renameSync(p + ".tmp", p);
    }' "$HOST_DAEMON_JSON" "$REGISTRY"
  local p; p=$(live_pid /var/run/docker.pid dockerd)
  [ -n "$p" ] || die "cannot find the host dockerd (/var/run/docker.pid) to reload $HOST_DAEMON_JSON"
  log "host engine: adding insecure registry $REGISTRY (SIGHUP to dockerd $p)"
  kill -HUP "$p"
  local n=0
  until host_knows_registry; do
    n=$((n + 1)); [ $n -lt 50 ] || die "the host engine did not take insecure-registries from $HOST_DAEMON_JSON after SIGHUP"
    sleep 0.1
  done
}

netns_inode() { stat -L -c %i "/var/run/netns/$(ns "$1")" 2>/dev/null; }

start_engine() {
  local i=$1 p
  p=$(engine_pid "$i")
  if [ -n "$p" ]; then
    # Running, but in the namespace it was started in? (a half teardown may have replaced it)
    if [ "$(stat -L -c %i "/proc/$p/ns/net")" = "$(netns_inode "$i")" ]; then return 0; fi
    log "w$i: dockerd $p runs in a stale namespace; restarting it"
    stop_engine "$i"
  else
    # No engine: clear what a dead one may have left (shims, mounts, stale pidfile and socket).
    kill_matching "/poseidon-test/w$i/"
    unmount_under "$RUN/w$i"
    rm -f "$(pidf "$i")" "$(sock "$i")"
  fi
  mkdir -p "$RUN/w$i" "$LIB/w$i" "$LOGS"
  # Each engine gets its own daemon json: dockerd would otherwise read the host's (which registers
  # runsc), and its own key file: engine IDs (`docker info` ID) derive from /etc/docker/key.json
  # by default, so every engine here would report the host engine's ID.
  local runtimes=''
  if [ "$i" = 1 ] && [ -x /usr/bin/runsc ]; then
    runtimes=', "runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host"]}}'
  fi
  echo "{\"deprecated-key-path\": \"$LIB/w$i/key.json\"$runtimes}" >"$RUN/w$i.json"
  # nsenter --net, not `ip netns exec` (which remounts /sys: "Devices cgroup isn't mounted").
  # Its own UTS namespace too, so each engine reports its own host name (`docker info` Name).
  setsid nsenter --net="/var/run/netns/$(ns "$i")" unshare --uts -- \
    sh -c 'echo "$0" >/proc/sys/kernel/hostname && exec "$@"' "$(ns "$i")" dockerd \
    --config-file "$RUN/w$i.json" \
    --data-root "$LIB/w$i" --exec-root "$RUN/w$i" --pidfile "$(pidf "$i")" \
    -H "unix://$(sock "$i")" \
    --default-address-pool "base=$(pool "$i"),size=24" \
    --insecure-registry "$REGISTRY" --iptables=true \
    >"$LOGS/w$i.log" 2>&1 </dev/null 9>&- &
}

wait_engine() {
  local i=$1 n=0
  until engine_ok "$i"; do
    n=$((n + 1)); [ $n -lt 300 ] || { tail -20 "$LOGS/w$i.log" >&2; die "engine w$i did not answer on $(sock "$i") (log: $LOGS/w$i.log)"; }
    sleep 0.1
  done
}

load_base() {
  local i=$1
  dk "$i" image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
  [ -s "$RUN/base.tar" ] || die "internal: $RUN/base.tar missing"
  dk "$i" load -q -i "$RUN/base.tar" >/dev/null
}

runtimes_of() { dk "$1" info -f '{{range $k, $v := .Runtimes}}{{$k}} {{end}}' | tr ' ' '\n' | grep -v '^$' | sort | paste -sd, -; }

write_env() {
  local i tmp="$ENV_FILE.tmp"
  {
    echo "# Poseidon multi-host test rig (scripts/test-hosts.sh); written $(date -u +%FT%TZ)"
    echo "POSEIDON_TEST_HOSTS=$N"
    echo "POSEIDON_TEST_HOST_ADDRESS=$HOST_ADDR"
    echo "POSEIDON_TEST_REGISTRY=$REGISTRY"
    echo "POSEIDON_TEST_BRIDGE=$BR"
    for i in $(seq 1 "$N"); do
      echo "POSEIDON_TEST_W${i}_NAME=w$i"
      echo "POSEIDON_TEST_W${i}_ADDRESS=$(addr "$i")"
      echo "POSEIDON_TEST_W${i}_NETNS=$(ns "$i")"
      echo "POSEIDON_TEST_W${i}_HOSTNAME=$(ns "$i")"
      echo "POSEIDON_TEST_W${i}_SOCKET=$(sock "$i")"
      echo "POSEIDON_TEST_W${i}_POOL=$(pool "$i")"
      echo "POSEIDON_TEST_W${i}_RUNTIMES=$(runtimes_of "$i")"
    done
  } >"$tmp"
  mv "$tmp" "$ENV_FILE"
}

up() {
  local t0 i pids=()
  t0=$(date +%s%N)
  preflight
  mkdir -p "$RUN" "$LIB" "$LOGS"
  # Engines beyond N (from an earlier `up` with a larger N) go, so hosts.env matches what runs.
  for i in $(known_indices); do
    [ "$i" -le "$N" ] || { log "removing w$i (beyond N=$N)"; stop_engine "$i"; ip netns del "$(ns "$i")" 2>/dev/null || true
      ip link del "$(veth "$i")" 2>/dev/null || true; rm -rf "${LIB:?}/w$i" "${RUN:?}/w$i" "$RUN/w$i".*; }
  done
  ensure_bridge
  for i in $(seq 1 "$N"); do ensure_ns "$i"; done
  ensure_firewall
  for i in $(seq 1 "$N"); do start_engine "$i"; done
  ensure_registry
  ensure_host_insecure
  [ -s "$RUN/base.tar" ] || { docker save "$BASE_IMAGE" -o "$RUN/base.tar.tmp" && mv "$RUN/base.tar.tmp" "$RUN/base.tar"; }
  wait_registry
  for i in $(seq 1 "$N"); do ( wait_engine "$i" && load_base "$i" ) & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || die "an engine failed to come up (logs in $LOGS)"; done
  write_env
  log "up: $N engines, registry $REGISTRY, in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

status() {
  local ok=0 i n
  [ -s "$ENV_FILE" ] || { log "not up: no $ENV_FILE"; return 1; }
  n=$(sed -n 's/^POSEIDON_TEST_HOSTS=//p' "$ENV_FILE")
  for i in $(seq 1 "$n"); do
    engine_ok "$i" || { log "w$i: engine does not answer on $(sock "$i")"; ok=1; }
    [ -e "/var/run/netns/$(ns "$i")" ] || { log "w$i: namespace $(ns "$i") missing"; ok=1; }
  done
  registry_ok || { log "registry does not answer on $REGISTRY"; ok=1; }
  iptables -C "$(fw_chain)" "${FW_RULE[@]}" 2>/dev/null || { log "firewall rule for $BR missing"; ok=1; }
  cat "$ENV_FILE"
  return $ok
}

case "$CMD" in
  up|down)
    mkdir -p "$(dirname "$LOCK")"
    exec 9>"$LOCK"; flock 9
    "$CMD" ;;
  status) status ;;
  *) echo "usage: $0 up [N] | down | status" >&2; exit 2 ;;
esac
