#!/usr/bin/env bash
# Start Kafka (KRaft, single node), an S3 server (S3Proxy, filesystem backend) and PostgreSQL on
# loopback, without Docker. See deploy/local/README.md.
#
#   deploy/local/infra.sh up [kafka|s3|postgres ...]      start (installs/downloads what is missing)
#   deploy/local/infra.sh down [kafka|s3|postgres ...]    stop what this script started
#   deploy/local/infra.sh status [kafka|s3|postgres ...]  running + answering? (exit 3 if not all)
#   deploy/local/infra.sh env                             print `export` lines for clients
#   deploy/local/infra.sh logs kafka|s3|postgres          tail a server log
#   deploy/local/infra.sh reset [kafka|s3|postgres ...]   down + delete the server's data
#   deploy/local/infra.sh smoke [kafka|s3|postgres ...]   kafkajs / minio / pg end-to-end check
#
# Everything listens on 127.0.0.1 only; the host is not configurable on purpose.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/../.." && pwd)"
INFRA_DIR="${TAMPERTRACE_INFRA_DIR:-$REPO/.infra}"
CACHE_DIR="${TAMPERTRACE_CACHE_DIR:-$REPO/.cache}/infra"
M2_REPO="${TAMPERTRACE_M2_REPO:-$CACHE_DIR/m2}"

HOST=127.0.0.1
KAFKA_PORT="${TAMPERTRACE_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${TAMPERTRACE_KAFKA_CONTROLLER_PORT:-19093}"
S3_PORT="${TAMPERTRACE_S3_PORT:-19000}"
PG_PORT="${TAMPERTRACE_PG_PORT:-15432}"
TIMEOUT="${TAMPERTRACE_INFRA_TIMEOUT:-120}"

KAFKA_VERSION="${TAMPERTRACE_KAFKA_VERSION:-4.4.0}"
S3PROXY_VERSION="${TAMPERTRACE_S3PROXY_VERSION:-2.7.0}"
# filesystem-nio2 (S3Proxy's own filesystem backend) lists like AWS S3; jclouds' `filesystem`
# also reports a phantom CommonPrefix per "directory" in delimiter-less listings (README).
S3_PROVIDER="${TAMPERTRACE_S3_PROVIDER:-filesystem-nio2}"

# Local test credentials: loopback-only test servers, never use them anywhere else.
S3_ACCESS_KEY=tampertrace-local
S3_SECRET_KEY=tt-local-3f9c1e7a5b2d4068-s3proxy-loopback-only
S3_REGION=us-east-1
PG_USER=tampertrace
PG_PASSWORD=tt-local-pg-7d2a91c4-loopback-only
PG_DB=tampertrace
PG_SUPERUSER=postgres
PG_SUPERPASSWORD=tt-local-pgsuper-5e0b38f1-loopback-only

SERVERS=(kafka s3 postgres)

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$S3_PORT" "$PG_PORT"; do
  if ! [[ "$p" =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then die "bad port: $p"; fi
done

# ------------------------------------------------------------------ helpers

need_java() {
  command -v java >/dev/null 2>&1 || die "java not found (Java 17+ is required)"
}

need_node() {
  command -v node >/dev/null 2>&1 || die "node not found (used for the readiness probes)"
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Pids whose command line carries our marker for server $1 and this INFRA_DIR.
marker() { printf -- '-Dtampertrace.infra=%s:%s' "$1" "$INFRA_DIR"; }

# True if process $1 is server $2 started by this script for this INFRA_DIR (exact argv match).
has_marker() {
  [[ "$1" =~ ^[0-9]+$ ]] && grep -qzxF -- "$(marker "$2")" "/proc/$1/cmdline" 2>/dev/null
}

# Pids of server $1 started for this INFRA_DIR, found by marker (pid files can go stale).
marker_pids() {
  local pid
  for pid in /proc/[0-9]*; do
    pid="${pid#/proc/}"
    if has_marker "$pid" "$1"; then echo "$pid"; fi
  done
}

# Pid of a running Java server $1 (from its pid file, verified by marker), or nothing.
java_pid() {
  local f="$INFRA_DIR/$1/$1.pid" pid
  if [[ -f "$f" ]]; then
    pid="$(<"$f")"
    if has_marker "$pid" "$1"; then
      echo "$pid"
      return
    fi
  fi
  marker_pids "$1" | head -n1
}

# Stop Java server $1: pid file + any process carrying its marker.
java_down() {
  local name="$1" pidfile="$INFRA_DIR/$1/$1.pid" p live=()
  for p in $({ cat "$pidfile" 2>/dev/null || true; marker_pids "$name"; } | sort -u); do
    if has_marker "$p" "$name"; then live+=("$p"); fi
  done
  stop_pids "$name" "${live[@]}"
  rm -f "$pidfile"
}

tail_log() {
  local f
  for f in "$@"; do
    [[ -s "$f" ]] || continue
    printf '[infra] ---- last lines of %s ----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

# wait_ready NAME PIDFUNC PROBEFUNC LOGFILES...
wait_ready() {
  local name="$1" pidfn="$2" probe="$3" start now out
  shift 3
  start=$SECONDS
  while :; do
    if out="$("$probe" 2>&1)"; then
      log "$out ($((SECONDS - start))s)"
      return 0
    fi
    if [[ -z "$("$pidfn")" ]]; then
      log "$name exited before it answered: $out"
      tail_log "$@"
      die "$name failed to start"
    fi
    now=$SECONDS
    if ((now - start >= TIMEOUT)); then
      log "$name did not answer within ${TIMEOUT}s (TAMPERTRACE_INFRA_TIMEOUT): $out"
      tail_log "$@"
      die "$name failed to start (it is still running: '$0 down $name' stops it)"
    fi
    sleep 0.5
  done
}

# stop_pids NAME PID... : TERM, wait up to 30 s, then KILL.
stop_pids() {
  local name="$1" pid i alive
  shift
  (($#)) || return 0
  log "stopping $name (pid $*)"
  kill -TERM "$@" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    alive=0
    for pid in "$@"; do
      if kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    ((alive)) || return 0
    sleep 0.1
  done
  log "$name did not stop in 30s, killing"
  kill -KILL "$@" 2>/dev/null || true
}

# fetch_lib NAME VERSION : mvn dependency:copy-dependencies into $CACHE_DIR/NAME-lib (once).
fetch_lib() {
  local name="$1" version="$2" pom lib stamp want tmp
  pom="$SCRIPT_DIR/$name/pom.xml"
  lib="$CACHE_DIR/$name-lib"
  stamp="$lib/.tampertrace-stamp"
  want="$name $version $(sha256sum "$pom" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found (Maven is needed once to fetch $name)"
  log "fetching $name $version from Maven Central into $lib"
  mkdir -p "$CACHE_DIR"
  tmp="$(mktemp -d "$CACHE_DIR/.$name-lib.XXXXXX")"
  if ! mvn -B -Dstyle.color=never -f "$pom" -Dmaven.repo.local="$M2_REPO" "-D$name.version=$version" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
    >"$CACHE_DIR/mvn-$name.log" 2>&1; then
    rm -rf "$tmp"
    tail_log "$CACHE_DIR/mvn-$name.log"
    die "maven could not fetch $name $version (full log: $CACHE_DIR/mvn-$name.log)"
  fi
  printf '%s\n' "$want" >"$tmp/.tampertrace-stamp"
  rm -rf "$lib"
  mv "$tmp" "$lib"
}

# launch NAME LOGFILE CMD... : start detached (own session), record the pid.
launch() {
  local name="$1" out="$2"
  shift 2
  : >"$out"
  setsid nohup "$@" >>"$out" 2>&1 </dev/null &
  echo $! >"$INFRA_DIR/$name/$name.pid"
}

check_port_free() {
  local name="$1" port="$2"
  if port_open "$port"; then
    die "$name: 127.0.0.1:$port is already in use by another process (set the port env var to move it)"
  fi
}

# ------------------------------------------------------------------ Kafka

KAFKA_DIR="$INFRA_DIR/kafka"
KAFKA_LIB="$CACHE_DIR/kafka-lib"

kafka_pid() { java_pid kafka; }
kafka_probe() { node "$SCRIPT_DIR/probe.mjs" kafka "$HOST" "$KAFKA_PORT"; }
kafka_logs() { printf '%s\n' "$KAFKA_DIR/logs/server.log" "$KAFKA_DIR/kafka.out"; }

kafka_write_config() {
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Generated by deploy/local/infra.sh: single-node KRaft, combined broker + controller, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.segment.bytes=67108864
num.network.threads=2
num.io.threads=2
EOF
  cat >"$KAFKA_DIR/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/local/infra.sh -->
<Configuration status="warn">
  <Appenders>
    <RollingFile name="file" fileName="$KAFKA_DIR/logs/server.log" filePattern="$KAFKA_DIR/logs/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="20 MB"/></Policies>
      <DefaultRolloverStrategy max="2"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="state.change.logger" level="warn"/>
    <Logger name="kafka.log.LogCleaner" level="warn"/>
    <Root level="info"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
EOF
}

kafka_java() {
  java -Xmx256m -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.xml" -Dkafka.logs.dir="$KAFKA_DIR/logs" \
    -cp "$KAFKA_LIB/*" "$@"
}

kafka_up() {
  local pid cid
  pid="$(kafka_pid)"
  if [[ -n "$pid" ]]; then
    log "kafka already running (pid $pid)"
    return 0
  fi
  need_java
  fetch_lib kafka "$KAFKA_VERSION"
  check_port_free kafka "$KAFKA_PORT"
  check_port_free "kafka controller" "$KAFKA_CONTROLLER_PORT"
  kafka_write_config
  if [[ ! -f "$KAFKA_DIR/data/meta.properties" ]]; then
    cid="$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$KAFKA_DIR/kafka.out" | tail -n1)"
    [[ -n "$cid" ]] || { tail_log "$KAFKA_DIR/kafka.out"; die "kafka: could not generate a cluster id"; }
    log "formatting kafka storage (cluster id $cid)"
    if ! kafka_java kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_DIR/server.properties" \
      >>"$KAFKA_DIR/kafka.out" 2>&1; then
      tail_log "$KAFKA_DIR/kafka.out"
      die "kafka: storage format failed"
    fi
  fi
  # Keep one previous log, so a failure shows this run's lines only.
  if [[ -f "$KAFKA_DIR/logs/server.log" ]]; then mv -f "$KAFKA_DIR/logs/server.log" "$KAFKA_DIR/logs/server.log.prev"; fi
  log "starting kafka $KAFKA_VERSION on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
  launch kafka "$KAFKA_DIR/kafka.out" java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true "$(marker kafka)" \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.xml" -Dkafka.logs.dir="$KAFKA_DIR/logs" \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_DIR/server.properties"
}

kafka_wait() {
  local logs
  mapfile -t logs < <(kafka_logs)
  wait_ready kafka kafka_pid kafka_probe "${logs[@]}"
}

kafka_down() { java_down kafka; }

# ------------------------------------------------------------------ S3 (S3Proxy)

S3_DIR="$INFRA_DIR/s3"
S3_LIB="$CACHE_DIR/s3proxy-lib"

s3_pid() { java_pid s3; }
s3_probe() { node "$SCRIPT_DIR/probe.mjs" s3 "http://$HOST:$S3_PORT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$S3_REGION"; }
s3_logs() { printf '%s\n' "$S3_DIR/s3.out"; }

s3_up() {
  local pid
  pid="$(s3_pid)"
  if [[ -n "$pid" ]]; then
    log "s3 already running (pid $pid)"
    return 0
  fi
  need_java
  fetch_lib s3proxy "$S3PROXY_VERSION"
  check_port_free s3 "$S3_PORT"
  mkdir -p "$S3_DIR/data"
  cat >"$S3_DIR/s3proxy.properties" <<EOF
# Generated by deploy/local/infra.sh. Credentials are fixed local test values for loopback only.
s3proxy.endpoint=http://$HOST:$S3_PORT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$S3_ACCESS_KEY
s3proxy.credential=$S3_SECRET_KEY
jclouds.provider=$S3_PROVIDER
jclouds.filesystem.basedir=$S3_DIR/data
# the backend's own identity: unused by the filesystem backends, required by filesystem-nio2
jclouds.identity=local
jclouds.credential=local
EOF
  cat >"$S3_DIR/logback.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/local/infra.sh: S3Proxy's default logback level is DEBUG (very chatty). -->
<configuration>
  <appender name="out" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} [%thread] %-5level %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.gaul.s3proxy" level="INFO"/>
  <root level="WARN"><appender-ref ref="out"/></root>
</configuration>
EOF
  log "starting s3proxy $S3PROXY_VERSION ($S3_PROVIDER backend) on http://$HOST:$S3_PORT"
  launch s3 "$S3_DIR/s3.out" java -Xms64m -Xmx256m -XX:+UseSerialGC -Djava.awt.headless=true \
    "$(marker s3)" -Dlogback.configurationFile="$S3_DIR/logback.xml" \
    -cp "$S3_LIB/*" org.gaul.s3proxy.Main --properties "$S3_DIR/s3proxy.properties"
}

s3_wait() {
  local logs
  mapfile -t logs < <(s3_logs)
  wait_ready s3 s3_pid s3_probe "${logs[@]}"
}

s3_down() { java_down s3; }

# ------------------------------------------------------------------ PostgreSQL

PG_DIR="$INFRA_DIR/postgres"
PG_BIN=""
PG_OS_USER=""

pg_find_bin() {
  local d
  [[ -n "$PG_BIN" ]] && return 0
  for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then PG_BIN="$d"; return 0; fi
  done
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    PG_BIN="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
    return 0
  fi
  return 1
}

pg_install() {
  pg_find_bin && return 0
  [[ "$(id -u)" == 0 ]] || die "PostgreSQL not found: install it (Debian: sudo apt-get install -y postgresql)"
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL not found and apt-get is not available"
  log "installing PostgreSQL from Debian packages"
  # Keep the package's own cluster on 5432 from being started (no daemons from apt here).
  local policy=/usr/sbin/policy-rc.d created=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
  fi
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    postgresql postgresql-client; } >&2; then
    if ((created)); then rm -f "$policy"; fi
    die "apt-get install postgresql failed"
  fi
  if ((created)); then rm -f "$policy"; fi
  pg_find_bin || die "PostgreSQL installed but initdb/pg_ctl not found under /usr/lib/postgresql/*/bin"
}

# Postgres refuses to run as root: as root, run it as the 'postgres' OS user (created if missing).
pg_os_user() {
  [[ -n "$PG_OS_USER" ]] && return 0
  if [[ "$(id -u)" != 0 ]]; then PG_OS_USER="$(id -un)"; return 0; fi
  PG_OS_USER="${TAMPERTRACE_PG_OS_USER:-postgres}"
  if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
    log "creating system user $PG_OS_USER"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_OS_USER"
  fi
}

# As root, hand files to the postgres OS user; otherwise they are ours already.
pg_chown() {
  if [[ "$(id -u)" == 0 ]]; then chown "$PG_OS_USER" "$@"; fi
}

as_pg() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u "$PG_OS_USER" -- "$@"
  else
    "$@"
  fi
}

# $PG_DIR must be reachable by the postgres OS user. If $INFRA_DIR sits under a directory that
# user cannot enter (e.g. /root), $PG_DIR becomes a link to /var/tmp/tampertrace-pg-<hash>.
# Prints the real (resolved) directory, which is what the postgres user is given.
pg_prepare_dir() {
  local alt
  if [[ ! -e "$PG_DIR" ]]; then
    mkdir -p "$INFRA_DIR"
    if [[ "$(id -u)" == 0 ]] && ! as_pg test -x "$INFRA_DIR"; then
      alt="/var/tmp/tampertrace-pg-$(printf '%s' "$PG_DIR" | sha256sum | cut -c1-12)"
      log "postgres: $PG_OS_USER cannot enter $INFRA_DIR, keeping the cluster in $alt"
      mkdir -p "$alt"
      ln -sfn "$alt" "$PG_DIR"
    else
      mkdir -p "$PG_DIR"
    fi
  fi
  pg_chown "$(readlink -f "$PG_DIR")"
  readlink -f "$PG_DIR"
}

pg_pid() {
  local data="$PG_DIR/data" pid
  [[ -f "$data/postmaster.pid" ]] || return 0
  pid="$(head -n1 "$data/postmaster.pid" 2>/dev/null)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

pg_psql() {
  PGPASSWORD="$PG_SUPERPASSWORD" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
    -h "$HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres "$@"
}

pg_probe() {
  local out
  "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 2 || { echo "pg_isready: not accepting connections"; return 1; }
  out="$(PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -At -h "$HOST" -p "$PG_PORT" \
    -U "$PG_USER" -d "$PG_DB" -c "select current_user || '@' || current_database() || ' ' || split_part(version(), ' ', 2)" 2>&1)" \
    || { echo "query as $PG_USER failed: $out"; return 1; }
  echo "postgres ready: $out"
}

pg_logs() { printf '%s\n' "$PG_DIR/postgres.log"; }

pg_up() {
  local pid data pwfile real
  pg_install
  pg_os_user
  real="$(pg_prepare_dir)"
  data="$real/data"
  pid="$(pg_pid)"
  if [[ -n "$pid" ]]; then
    log "postgres already running (pid $pid)"
    return 0
  fi
  check_port_free postgres "$PG_PORT"
  if [[ ! -f "$data/PG_VERSION" ]]; then
    log "initdb $data"
    pwfile="$(mktemp "$real/.pw.XXXXXX")"
    printf '%s\n' "$PG_SUPERPASSWORD" >"$pwfile"
    pg_chown "$pwfile"
    mkdir -p "$data"
    pg_chown "$data"
    if ! as_pg "$PG_BIN/initdb" -D "$data" -U "$PG_SUPERUSER" --pwfile="$pwfile" -E UTF8 --locale=C \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1; then
      rm -f "$pwfile"
      tail_log "$PG_DIR/initdb.log"
      die "postgres: initdb failed"
    fi
    rm -f "$pwfile"
    cat >"$data/pg_hba.conf" <<EOF
# Generated by deploy/local/infra.sh: TCP on loopback only, password (SCRAM) auth.
host all all 127.0.0.1/32 scram-sha-256
EOF
  fi
  # Loopback only, no unix socket (no path-length or /var/run permission issues).
  # fsync off: throwaway test data, faster on CI disks.
  cat >"$data/postgresql.auto.conf" <<EOF
# Generated by deploy/local/infra.sh on every start.
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 128MB
EOF
  if [[ -f "$real/postgres.log" ]]; then mv -f "$real/postgres.log" "$real/postgres.log.prev"; fi
  touch "$real/postgres.log"
  pg_chown "$data/pg_hba.conf" "$data/postgresql.auto.conf" "$real/postgres.log"
  log "starting postgres $("$PG_BIN/postgres" --version | awk '{print $3}') on $HOST:$PG_PORT"
  if ! as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$real/postgres.log" -w -t "$TIMEOUT" start >/dev/null; then
    tail_log "$PG_DIR/postgres.log"
    die "postgres failed to start"
  fi
  pg_ensure_db
}

pg_ensure_db() {
  local i
  for ((i = 0; i < 60; i++)); do
    "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 2 && break
    sleep 0.5
  done
  pg_psql -v u="$PG_USER" -v p="$PG_PASSWORD" <<'SQL' || die "postgres: could not create role"
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'u', :'p')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'u', :'p') \gexec
SQL
  pg_psql -v u="$PG_USER" -v d="$PG_DB" <<'SQL' || die "postgres: could not create database"
SELECT format('CREATE DATABASE %I OWNER %I', :'d', :'u')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'d') \gexec
SQL
}

pg_wait() {
  local logs
  mapfile -t logs < <(pg_logs)
  wait_ready postgres pg_pid pg_probe "${logs[@]}"
}

pg_down() {
  local data="$PG_DIR/data" pid
  pid="$(pg_pid)"
  [[ -n "$pid" ]] || return 0
  pg_find_bin || die "pg_ctl not found"
  pg_os_user
  log "stopping postgres (pid $pid)"
  as_pg "$PG_BIN/pg_ctl" -D "$(readlink -f "$data")" -m fast -w -t 60 stop >/dev/null \
    || stop_pids postgres "$pid"
}

# ------------------------------------------------------------------ commands

servers_from_args() {
  local s
  if (($# == 0)); then printf '%s\n' "${SERVERS[@]}"; return; fi
  for s in "$@"; do
    case "$s" in
      kafka) echo kafka ;;
      s3 | s3proxy) echo s3 ;;
      postgres | postgresql | pg) echo postgres ;;
      *) die "unknown server '$s' (kafka, s3, postgres)" ;;
    esac
  done
}

fn_prefix() { case "$1" in postgres) echo pg ;; *) echo "$1" ;; esac; }

cmd_up() {
  local s list
  mapfile -t list < <(servers_from_args "$@")
  mkdir -p "$INFRA_DIR"
  need_node
  # Start everything first, then wait: the JVMs boot in parallel.
  for s in "${list[@]}"; do "$(fn_prefix "$s")_up"; done
  for s in "${list[@]}"; do "$(fn_prefix "$s")_wait"; done
  log "up: ${list[*]} (run '$0 env' for client settings)"
}

cmd_down() {
  local s list
  local pids=() rc=0 p
  mapfile -t list < <(servers_from_args "$@")
  # Stop in parallel (Kafka's controlled shutdown and Jetty's each take ~2 s).
  for s in "${list[@]}"; do
    "$(fn_prefix "$s")_down" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  ((rc == 0)) || die "down: some server did not stop cleanly"
  log "down: ${list[*]}"
}

cmd_status() {
  local s list pid out rc=0 p
  mapfile -t list < <(servers_from_args "$@")
  for s in "${list[@]}"; do
    p="$(fn_prefix "$s")"
    [[ "$p" == pg ]] && { pg_find_bin || true; }
    pid="$("${p}_pid")"
    if [[ -z "$pid" ]]; then
      printf '%-9s stopped\n' "$s"
      rc=3
    elif out="$("${p}_probe" 2>&1)"; then
      printf '%-9s running (pid %s): %s\n' "$s" "$pid" "$out"
    else
      printf '%-9s running (pid %s) but not answering: %s\n' "$s" "$pid" "$out"
      rc=3
    fi
  done
  return "$rc"
}

cmd_env() {
  cat <<EOF
export TAMPERTRACE_KAFKA_BROKERS=$HOST:$KAFKA_PORT
export TAMPERTRACE_S3_ENDPOINT=http://$HOST:$S3_PORT
export TAMPERTRACE_S3_REGION=$S3_REGION
export TAMPERTRACE_S3_ACCESS_KEY=$S3_ACCESS_KEY
export TAMPERTRACE_S3_SECRET_KEY=$S3_SECRET_KEY
export TAMPERTRACE_S3_FORCE_PATH_STYLE=true
export TAMPERTRACE_DATABASE_URL=postgres://$PG_USER:$PG_PASSWORD@$HOST:$PG_PORT/$PG_DB
EOF
}

cmd_logs() {
  local s p f
  (($# == 1)) || die "usage: $0 logs kafka|s3|postgres"
  s="$(servers_from_args "$1")"
  p="$(fn_prefix "$s")"
  while read -r f; do
    [[ -f "$f" ]] && { printf '==> %s <==\n' "$f"; tail -n 100 "$f"; }
  done < <("${p}_logs")
}

# Client libraries for `smoke`, installed into the cache (never into the repo).
SMOKE_PACKAGES=(kafkajs@2.2.4 minio@8.0.7 pg@8.23.1)

cmd_smoke() {
  local dir="$CACHE_DIR/smoke-node" want
  need_node
  want="${SMOKE_PACKAGES[*]}"
  if [[ ! -f "$dir/.tampertrace-stamp" || "$(<"$dir/.tampertrace-stamp")" != "$want" ]]; then
    command -v npm >/dev/null 2>&1 || die "npm not found"
    log "installing $want into $dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    printf '{"name":"tampertrace-infra-smoke","private":true}\n' >"$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "${SMOKE_PACKAGES[@]}" >&2) \
      || die "npm install of the smoke-test clients failed"
    printf '%s\n' "$want" >"$dir/.tampertrace-stamp"
  fi
  eval "$(cmd_env)"
  node "$SCRIPT_DIR/smoke.mjs" "$dir" "$@"
}

cmd_reset() {
  local s list
  mapfile -t list < <(servers_from_args "$@")
  cmd_down "${list[@]}"
  for s in "${list[@]}"; do
    case "$s" in
      kafka) rm -rf "$KAFKA_DIR" ;;
      s3) rm -rf "$S3_DIR" ;;
      postgres)
        if [[ -L "$PG_DIR" ]]; then rm -rf "$(readlink -f "$PG_DIR")"; fi
        rm -rf "$PG_DIR"
        ;;
    esac
    log "reset: deleted the $s state"
  done
}

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

main() {
  local cmd="${1:-}"
  (($#)) && shift
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    env) cmd_env ;;
    logs) cmd_logs "$@" ;;
    reset) cmd_reset "$@" ;;
    smoke) cmd_smoke "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
