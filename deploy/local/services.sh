#!/usr/bin/env bash
# Starts or stops the TamperTrace services as separate processes on the local servers
# (deploy/local/infra.sh): `make up` / `make down`. Logs and pid files under .infra/services
# (TAMPERTRACE_SERVICES_DIR moves them).
#
#   services.sh up [SERVICE...]     start the local servers, then the services not already running,
#                                   and wait until each answers ready on its /readyz
#   services.sh stop [SERVICE...]   stop the services only (the local servers keep running)
#   services.sh down                stop every service, then the local servers
#
# A pid file holds "PID START": START is the process's start time (field 22 of /proc/PID/stat,
# clock ticks since boot), so a pid that the kernel has since given to another process is never
# taken for the service, and never signalled. A service that was killed (kill -9) but is not gone
# yet (still exiting, or a zombie nobody has reaped) counts as stopped: `up` waits for it to be
# gone and starts a new one; readiness is read from the new process's own ops port.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
state="${TAMPERTRACE_SERVICES_DIR:-${TAMPERTRACE_INFRA_DIR:-$repo/.infra}/services}"
# Every service, in the port order of shared/src/pipeline.ts (SERVICES; pipeline.test.ts checks).
all_services=(ingest face-detection forgery-localization explanation-generation audit provenance)
# Each service gets a gRPC port of its own (TAMPERTRACE_GRPC_PORT), in the order above:
# 50051 (ingest, the public API) to 50056 (provenance); the stage services serve their stage there.
grpc_base="${TAMPERTRACE_GRPC_PORT:-50051}"
# ... and an ops port (GET /metrics, /livez, /readyz): 9464 (ingest) to 9469 (provenance).
ops_base="${TAMPERTRACE_OPS_PORT:-9464}"
# Seconds a service may take to answer ready, and a killed one to be gone.
ready_timeout="${TAMPERTRACE_SERVICES_READY_TIMEOUT:-60}"
gone_timeout=30
mkdir -p "$state"

# index SERVICE: its place in all_services (ports follow it), or fail on an unknown name.
index() {
  local i
  for i in "${!all_services[@]}"; do [[ "${all_services[$i]}" == "$1" ]] && { echo "$i"; return; }; done
  echo "[services] unknown service \"$1\" (one of: ${all_services[*]})" >&2
  exit 2
}

# start_time PID: the process's start time (a number, or an ISO-ish text where there is no /proc),
# or nothing when there is no such process.
start_time() {
  local stat
  if [[ -r /proc/$1/stat ]]; then
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    # Fields after "(comm)": the command name may hold spaces and parentheses, so cut at the last ")".
    read -r -a f <<<"${stat##*) }"
    echo "${f[19]}" # field 22 of the whole line
  elif [[ ! -d /proc/self ]]; then
    ps -o lstart= -p "$1" 2>/dev/null | tr -s ' ' '_' || true
  fi
}

# running PID START: the process PID started at START exists and is not on its way out (no zombie,
# not exiting, no SIGKILL pending). On systems without /proc, exists with that start time.
running() {
  local pid=$1 want=$2 stat f status
  [[ -n "$pid" && "$(start_time "$pid")" == "$want" && -n "$want" ]] || return 1
  [[ -d /proc/self ]] || return 0
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  read -r -a f <<<"${stat##*) }"
  # f[0] is the state; f[6] the flags, where PF_EXITING (0x4) is set once the kernel tears it down.
  [[ "${f[0]}" != Z && "${f[0]}" != X ]] || return 1
  (( (f[6] & 0x4) == 0 )) || return 1
  # A SIGKILL sent but not yet acted on shows in the pending masks (bit 9 -> 0x100).
  status=$(cat "/proc/$pid/status" 2>/dev/null) || return 1
  local line mask
  while read -r line; do
    case "$line" in
      SigPnd:* | ShdPnd:*) mask=${line#*:}; mask=${mask//[[:space:]]/}; (( (16#$mask & 0x100) == 0 )) || return 1 ;;
    esac
  done <<<"$status"
  return 0
}

# gone PID START: no process PID with that start time, or only its zombie (which holds no port,
# no file and no memory).
gone() {
  local pid=$1 want=$2 stat f
  [[ -n "$pid" ]] || return 0
  [[ "$(start_time "$pid")" == "$want" ]] || return 0
  [[ -d /proc/self ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
  read -r -a f <<<"${stat##*) }"
  [[ "${f[0]}" == Z || "${f[0]}" == X ]]
}

# read_pidfile SERVICE: sets pid and started from its pid file (empty when there is none). A pid
# file of the old format (the pid alone) gives no start time, so it is never trusted as running.
read_pidfile() {
  pid="" started=""
  [[ -f "$state/$1.pid" ]] || return 0
  read -r pid started <"$state/$1.pid" || true
}

# old_pidfile_match PID START SERVICE: a pid file written before start times were recorded names
# this service's process (by its command line), so `stop` may signal it.
old_pidfile_match() {
  [[ -z "$2" && -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q "tampertrace.mjs service $3 "
}

# ready_now PORT: the service on ops port PORT answers 200 on /readyz.
ready_now() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 3 "http://127.0.0.1:$1/readyz" 2>/dev/null
  else
    node -e 'fetch(process.argv[1],{signal:AbortSignal.timeout(3000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://127.0.0.1:$1/readyz"
  fi
}

up() {
  local wanted=("$@") s i pid started
  ((${#wanted[@]})) || wanted=("${all_services[@]}")
  for s in "${wanted[@]}"; do index "$s" >/dev/null; done
  "$repo/deploy/local/infra.sh" up
  eval "$("$repo/deploy/local/infra.sh" env)"
  export TAMPERTRACE_KAFKA_BROKERS TAMPERTRACE_S3_ENDPOINT TAMPERTRACE_S3_REGION TAMPERTRACE_S3_ACCESS_KEY \
    TAMPERTRACE_S3_SECRET_KEY TAMPERTRACE_S3_FORCE_PATH_STYLE TAMPERTRACE_DATABASE_URL
  # The API-key pepper of this local install: made once, kept owner-only beside the servers' data.
  if [[ -z "${TAMPERTRACE_API_KEY_PEPPER:-}" ]]; then
    if [[ ! -s "$state/pepper" ]]; then (umask 077; head -c 32 /dev/urandom | base64 | tr -d '\n=' >"$state/pepper"); fi
    TAMPERTRACE_API_KEY_PEPPER=$(cat "$state/pepper")
  fi
  export TAMPERTRACE_API_KEY_PEPPER
  for s in "${wanted[@]}"; do
    i=$(index "$s")
    read_pidfile "$s"
    if running "$pid" "$started"; then continue; fi
    # Killed but not gone yet: its ports and files are still held, so wait before starting anew.
    for _ in $(seq 1 $((gone_timeout * 10))); do gone "$pid" "$started" && break; sleep 0.1; done
    gone "$pid" "$started" || { echo "[services] $s (pid $pid) is still exiting after ${gone_timeout} s" >&2; exit 1; }
    rm -f "$state/$s.pid"
    : >"$state/$s.log"
    TAMPERTRACE_GRPC_PORT=$((grpc_base + i)) TAMPERTRACE_OPS_PORT=$((ops_base + i)) nohup node "$repo/services/tampertrace/bin/tampertrace.mjs" service "$s" >>"$state/$s.log" 2>&1 &
    pid=$!
    started=$(start_time "$pid")
    echo "$pid $started" >"$state/$s.pid"
  done
  for s in "${wanted[@]}"; do
    i=$(index "$s")
    read_pidfile "$s"
    local ready=""
    for _ in $(seq 1 $((ready_timeout * 10))); do
      if ! running "$pid" "$started"; then
        echo "[services] $s (pid $pid) exited; last lines of $state/$s.log:" >&2
        tail -n 20 "$state/$s.log" >&2
        exit 1
      fi
      # The port is this process's: whoever held it before is gone (above), and a second process
      # cannot bind it, so a 200 here is the live service answering.
      if ready_now $((ops_base + i)); then ready=1; break; fi
      sleep 0.1
    done
    [[ -n "$ready" ]] || { echo "[services] $s not ready after ${ready_timeout} s; see $state/$s.log" >&2; exit 1; }
    echo "[services] $s ready (pid $pid, gRPC 127.0.0.1:$((grpc_base + i)), metrics http://127.0.0.1:$((ops_base + i))/metrics)"
  done
  # A default tenant with a key, made on the first `make up` (kept in $state/api-key, owner-only).
  if [[ ! -s "$state/api-key" ]]; then
    out=$(node "$repo/services/tampertrace/bin/tampertrace.mjs" tenant create default 2>&1) || { echo "$out" >&2; exit 1; }
    (umask 077; sed -n 's/^api key (shown once): //p' <<<"$out" >"$state/api-key")
    echo "[services] created tenant \"default\"; its API key is in $state/api-key"
  fi
  echo "[services] up. Try: TAMPERTRACE_API_KEY=\$(cat $state/api-key) npx tampertrace submit --server 127.0.0.1:$grpc_base testdata/faces"
}

# stop [SERVICE...]: TERM, up to 20 s, then KILL; only ever signals the process the pid file names.
stop() {
  local wanted=("$@") s pid started
  ((${#wanted[@]})) || wanted=("${all_services[@]}")
  for s in "${wanted[@]}"; do
    index "$s" >/dev/null
    read_pidfile "$s"
    if [[ -n "$pid" ]] && { [[ -n "$started" && "$(start_time "$pid")" == "$started" ]] || old_pidfile_match "$pid" "$started" "$s"; }; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for s in "${wanted[@]}"; do
    read_pidfile "$s"
    [[ -n "$pid" ]] || continue
    for _ in $(seq 1 200); do gone "$pid" "$started" && break; sleep 0.1; done
    if [[ -n "$started" ]] && ! gone "$pid" "$started"; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$state/$s.pid"
  done
}

down() {
  stop
  "$repo/deploy/local/infra.sh" down
}

cmd="${1:-}"
shift || true
case "$cmd" in
  up) up "$@" ;;
  stop) stop "$@" ;;
  down) down ;;
  *) echo "usage: $0 up [SERVICE...] | stop [SERVICE...] | down" >&2; exit 2 ;;
esac
