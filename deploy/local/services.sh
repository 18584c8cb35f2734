#!/usr/bin/env bash
# Starts or stops the TamperTrace services as separate processes on the local servers
# (deploy/local/infra.sh): `make up` / `make down`. Logs and pid files under .infra/services.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
state="${TAMPERTRACE_INFRA_DIR:-$repo/.infra}/services"
# Every service, in the port order of shared/src/pipeline.ts (SERVICES; pipeline.test.ts checks).
services=(ingest face-detection forgery-localization explanation-generation audit provenance)
# Each service gets a gRPC port of its own (TAMPERTRACE_GRPC_PORT), in the order above:
# 50051 (ingest, the public API) to 50056 (provenance); the stage services serve their stage there.
grpc_base="${TAMPERTRACE_GRPC_PORT:-50051}"
# ... and an ops port (GET /metrics, /livez, /readyz): 9464 (ingest) to 9469 (provenance).
ops_base="${TAMPERTRACE_OPS_PORT:-9464}"
mkdir -p "$state"

up() {
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
  for i in "${!services[@]}"; do
    s=${services[$i]}
    if [[ -f "$state/$s.pid" ]] && kill -0 "$(cat "$state/$s.pid")" 2>/dev/null; then continue; fi
    : >"$state/$s.log"
    TAMPERTRACE_GRPC_PORT=$((grpc_base + i)) TAMPERTRACE_OPS_PORT=$((ops_base + i)) nohup node "$repo/services/tampertrace/bin/tampertrace.mjs" service "$s" >>"$state/$s.log" 2>&1 &
    echo $! >"$state/$s.pid"
  done
  for i in "${!services[@]}"; do
    s=${services[$i]}
    for _ in $(seq 1 600); do
      grep -q '"msg":"ready"' "$state/$s.log" && break
      if ! kill -0 "$(cat "$state/$s.pid")" 2>/dev/null; then
        echo "[services] $s exited; last lines of $state/$s.log:" >&2
        tail -n 20 "$state/$s.log" >&2
        exit 1
      fi
      sleep 0.1
    done
    grep -q '"msg":"ready"' "$state/$s.log" || { echo "[services] $s not ready after 60 s; see $state/$s.log" >&2; exit 1; }
    echo "[services] $s ready (pid $(cat "$state/$s.pid"), gRPC 127.0.0.1:$((grpc_base + i)), metrics http://127.0.0.1:$((ops_base + i))/metrics)"
  done
  # A default tenant with a key, made on the first `make up` (kept in $state/api-key, owner-only).
  if [[ ! -s "$state/api-key" ]]; then
    out=$(node "$repo/services/tampertrace/bin/tampertrace.mjs" tenant create default 2>&1) || { echo "$out" >&2; exit 1; }
    (umask 077; sed -n 's/^api key (shown once): //p' <<<"$out" >"$state/api-key")
    echo "[services] created tenant \"default\"; its API key is in $state/api-key"
  fi
  echo "[services] up. Try: TAMPERTRACE_API_KEY=\$(cat $state/api-key) npx tampertrace submit --server 127.0.0.1:$grpc_base testdata/faces"
}

down() {
  for s in "${services[@]}"; do
    [[ -f "$state/$s.pid" ]] || continue
    pid=$(cat "$state/$s.pid")
    kill -TERM "$pid" 2>/dev/null || true
  done
  for s in "${services[@]}"; do
    [[ -f "$state/$s.pid" ]] || continue
    pid=$(cat "$state/$s.pid")
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$state/$s.pid"
  done
  "$repo/deploy/local/infra.sh" down
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
