#!/usr/bin/env bash
# msgstats.sh — what one meshbench section costs the database (issue 23,
# docs/design.md "Fewer statements per message"): bench/run.sh's set-up
# (embedded PostgreSQL + PgBouncer + meshbroker-accept) with pg_stat_statements
# (track = all) and track_functions loaded, one section, then the statements
# with their calls and mean times, the commits (pg_stat_database), the WAL
# flushes (pg_stat_wal) and the workers' histograms from /metrics.
#   bash bench/msgstats.sh BIN_DIR LABEL SECTION [meshbench options]
#   e.g. bash bench/msgstats.sh build/bin after pairs --reps 1
# Env (docs/design.md "One message's time"): STATS=0 leaves the statistics
# out; DIRECT=1 points the workers straight at PostgreSQL (no bouncer);
# STRACE_OUT=FILE traces the acceptor and every worker it starts
# (strace -f -ttt -T -yy; with SPARE_WORKERS=0 every connection's worker is
# a new child) for bench/msgphases.py; MB_OPTS adds meshbench options;
# SAMPLE_OUT=FILE samples what PostgreSQL's backends and the bouncer's
# clients wait on every 50 ms over the section (bench/pgwait.py) and prints
# its summary; CPU=1 adds each process class's CPU per message (bench/cpuclass.py: the
# workers, PostgreSQL's backends and the rest of it, PgBouncer, the
# acceptor, the bench client), e.g. one 10 x 1 run:
#   CPU=1 bash bench/msgstats.sh build/bin x pairs --reps 1 --pair-window 1
# Run as root (like bench/run.sh: the cluster belongs to the meshbroker user).
set -euo pipefail
bin=$(cd "$1" && pwd) label=$2 section=$3; shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
STATS=${STATS:-1}
work=$(mktemp -d /tmp/meshbroker-msgstats.XXXXXX)
chmod 0755 "$work"
# the runtime directory on tmpfs, as bench/run.sh has it (why: there)
rundir=$work/run
if [ "${BENCH_RUNTIME_ON_DISK:-0}" != 1 ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
  rundir=$(mktemp -d /dev/shm/meshbroker-msgstats-run.XXXXXX)
  chmod 0755 "$rundir"
fi
acc=
cleanup() {
  if [ -n "$acc" ] && kill -0 "$acc" 2>/dev/null; then
    kill -TERM "$acc" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$acc" 2>/dev/null || break; sleep 0.1; done
  fi
  bash "$root/scripts/pg.sh" stop "$work/pg" >/dev/null 2>&1 || true
  real=$(readlink "$work/pg/cluster" 2>/dev/null || true)
  case $real in /var/tmp/meshbroker-pg-*) rm -rf "$real" ;; esac
  rm -rf "$work" "$rundir"
}
trap cleanup EXIT
mkdir -p "$work/bin"
cp "$bin/meshbroker-accept" "$bin/meshbroker-worker" "$bin/meshctl" "$work/bin/"
if [ -d "$bin/../lib/meshbroker" ]; then
  mkdir -p "$work/lib/meshbroker" && cp "$bin/../lib/meshbroker/"*.so "$work/lib/meshbroker/"
fi
bin=$work/bin
pkgs="libsodium libpq libcjson"
(cd "$root" && gcc -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -I. $(pkg-config --cflags $pkgs) \
  -o "$work/meshbench" bench/meshbench.c proto/hello.c common/util.c $(pkg-config --libs $pkgs) -lwslay)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATABASE_URL=$(bash "$root/scripts/pg.sh" start "$work/pg" 5432)
export DATABASE_URL
direct_url=$DATABASE_URL
pgq() { runuser -u meshbroker -- psql "$direct_url" -Atqc "$1"; }
if [ "$STATS" = 1 ]; then
  pgq "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
  pgq "ALTER SYSTEM SET track_functions = 'pl'" >/dev/null
  cdir=$(readlink -f "$work/pg/cluster")
  runuser -u meshbroker -- /usr/lib/postgresql/*/bin/pg_ctl -D "$cdir/data" -w restart -m fast >/dev/null
  pgq "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  pgq "ALTER SYSTEM SET pg_stat_statements.track = 'all'" >/dev/null
  pgq "SELECT pg_reload_conf()" >/dev/null
fi
"$bin/meshctl" migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; exit 1; }
if [ "${DIRECT:-0}" != 1 ]; then
  DATABASE_URL=$(MAX_CONNECTIONS=2000 bash "$root/scripts/pg.sh" bouncer "$work/pg" 5432 6432)
fi
export DATABASE_URL
cdir=$(readlink -f "$work/pg/cluster")
pg_pid=$(head -n 1 "$cdir/data/postmaster.pid")
bouncer_pid=$(cat "$cdir/bouncer/pgbouncer.pid" 2>/dev/null || echo 0)
ulimit -n 8192 2>/dev/null || true
env MESHBROKER_RUNTIME_DIR="$rundir" BROKER_BIND=127.0.0.1 BROKER_PORT="$port" \
  DB_IDLE_SECONDS=2 SEND_RATE_LIMIT_PER_MIN=1000000 SEND_RATE_BURST=1000000 \
  MAX_CONNECTIONS_PER_MESH=2000 MAX_CONNECTIONS=2000 MAX_CONNECTIONS_PER_SOURCE=2000 \
  "$bin/meshbroker-accept" 2>"$work/broker.log" &
acc=$!
for _ in $(seq 1 100); do (exec 9<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
snap() {
  pgq "SELECT xact_commit FROM pg_stat_database WHERE datname='meshbroker'"
}
if [ "$STATS" = 1 ]; then
  pgq "SELECT pg_stat_statements_reset()" >/dev/null
  pgq "SELECT pg_stat_reset_shared('wal')" >/dev/null
  pgq "SELECT pg_stat_reset()" >/dev/null
fi
c0=$(snap)
spid=
if [ -n "${STRACE_OUT:-}" ]; then
  strace -f -ttt -T -yy -s 64 -o "$STRACE_OUT" -p "$acc" 2>/dev/null &
  spid=$!
  sleep 1
fi
wpid=
if [ -n "${SAMPLE_OUT:-}" ]; then
  mkdir -m 0777 "$work/wait"
  runuser -u meshbroker -- python3 "$root/bench/pgwait.py" sample "$direct_url" \
    "$([ "$bouncer_pid" != 0 ] && echo "$cdir/bouncer")" 6432 "$work/wait/s" &
  wpid=$!
fi
echo "== $label $section load $(cut -d' ' -f1-3 /proc/loadavg)"
timer=()
if [ "${CPU:-0}" = 1 ]; then
  python3 "$root/bench/cpuclass.py" snap "$acc" "$pg_pid" "$bouncer_pid" >"$work/cpu0.json"
  timer=(/usr/bin/time -f '%U %S' -o "$work/client.cpu")
fi
"${timer[@]}" "$work/meshbench" --port "$port" --db "$direct_url" --acceptor "$acc" $([ "$bouncer_pid" != 0 ] && echo --bouncer-pid "$bouncer_pid") \
  --pg-pid "$pg_pid" ${MB_OPTS:-} --db-idle 2 --only "$section" "$@" 2>"$work/meshbench.log" | tee "$work/meshbench.out" |
  grep -E '^\| (direct|hot path|1000 peers|500 peers)|^\|  \| (msgs/s|e2e|ack)' || { tail -20 "$work/meshbench.log"; }
if [ "${CPU:-0}" = 1 ]; then
  # CPU=1 (docs/design.md "A message's CPU"): every process class's CPU
  # seconds over the section, per message delivered (the accounting
  # table's delivered column), the client's from /usr/bin/time
  python3 "$root/bench/cpuclass.py" snap "$acc" "$pg_pid" "$bouncer_pid" >"$work/cpu1.json"
  delivered=$(awk -F'|' '/^\| message run/ {t=1; next} t && /^\| / && $5 ~ /[0-9]/ {s += $5} END {print s+0}' "$work/meshbench.out")
  # a section that delivers no message (burst, reconnect): per CPU_PER units
  # instead, e.g. CPU_PER=2000 for the reconnect's 2,000 connections
  [ "$delivered" -gt 0 ] || delivered=${CPU_PER:-0}
  echo "-- CPU by process class, per $delivered (messages delivered, or CPU_PER)"
  [ "$delivered" -gt 0 ] && python3 "$root/bench/cpuclass.py" diff "$work/cpu0.json" "$work/cpu1.json" "$delivered" \
    "$(awk '{print $1 + $2}' "$work/client.cpu")"
fi
c1=$(snap)
if [ -n "$wpid" ]; then
  kill -TERM "$wpid" 2>/dev/null; wait "$wpid" || true
  cp "$work/wait/s" "$SAMPLE_OUT"; cp "$work/wait/s.pools" "$SAMPLE_OUT.pools" 2>/dev/null || true
  python3 "$root/bench/pgwait.py" summary "$SAMPLE_OUT"
fi
if [ -n "$spid" ]; then kill -INT "$spid" && wait "$spid" || true; fi
if [ "$STATS" = 1 ]; then
  echo "-- commits in meshbroker db: $((c1 - c0))"
  pgq "SELECT 'wal_records '||wal_records||' wal_write '||wal_write||' wal_sync '||wal_sync FROM pg_stat_wal"
  echo "-- audit rows pending at the end: $(pgq "SELECT count(*) FROM mesh.audit_pending")"
  echo "-- statements (top-level and nested), calls, total ms, mean us"
  runuser -u meshbroker -- psql "$direct_url" -Aqc "SELECT toplevel AS top, calls, round(total_exec_time::numeric,1) AS total_ms, round((mean_exec_time*1000)::numeric,1) AS mean_us, left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname='meshbroker') AND calls >= 100 ORDER BY calls DESC LIMIT 25"
  echo "-- functions"
  runuser -u meshbroker -- psql "$direct_url" -Aqc "SELECT funcname, calls, round(total_time::numeric,1) total_ms, round(self_time::numeric,1) self_ms FROM pg_stat_user_functions WHERE calls >= 100 ORDER BY calls DESC"
fi
echo "broker log: $(grep -c '"level":"warn"' "$work/broker.log" || true) warn, $(grep -c '"level":"error"' "$work/broker.log" || true) error"
grep -E '"level":"(warn|error)"' "$work/broker.log" | head -5 || true
echo "-- histograms (sum s / count = mean)"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^broker_(send_ack|send_push|db_statement)_seconds_(sum|count)' || true
