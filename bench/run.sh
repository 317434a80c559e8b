#!/usr/bin/env bash
# bench/run.sh — what `make bench` runs: build the bench client
# (bench/meshbench.c against proto/ and wslay/libsodium/cJSON/libpq), start
# what `make run` starts — a private PostgreSQL and its PgBouncer
# (scripts/pg.sh; synchronous_commit on) and meshbroker-accept on 127.0.0.1
# (a free port, temporary directories), its workers going through the
# bouncer — run the benchmarks, print the target table and every figure,
# append the run to bench/RESULTS.md (BENCH_NO_RESULTS=1: don't), and stop
# everything, also on failure or Ctrl-C.
#
#   bash bench/run.sh [meshbench options]     e.g. --quick, --reps 5, --only health,msg
#
# Broker settings for the run (everything else is the default):
#   DB_IDLE_SECONDS=2                       so the idle test can show sessions closing
#   SEND_RATE_LIMIT_PER_MIN / SEND_RATE_BURST raised: the throughput runs send 1000 messages
#   MAX_CONNECTIONS_PER_MESH / MAX_CONNECTIONS / MAX_CONNECTIONS_PER_SOURCE raised: 500 peers
#     from one address in one mesh
# Env: MESHBROKER_BIN (default build/bin), BENCH_KEEP=1 keeps the temporary
# directory (logs), BENCH_TIMEOUT (seconds, default 600) bounds the client.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=${MESHBROKER_BIN:-$root/build/bin}
for b in meshbroker-accept meshbroker-worker meshctl; do
  [ -x "$bin/$b" ] || { echo "bench: $bin/$b is missing: run 'make build' first" >&2; exit 2; }
done

work=$(mktemp -d /tmp/meshbroker-bench.XXXXXX)
chmod 0755 "$work"
acc=
client=
pg_started=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$client" ] && kill "$client" 2>/dev/null || true
  kids=
  if [ -n "$acc" ] && kill -0 "$acc" 2>/dev/null; then
    kids=$(pgrep -P "$acc" 2>/dev/null || true)
    kill -TERM "$acc" 2>/dev/null || true # the acceptor passes SIGTERM on to its workers
    for _ in $(seq 1 50); do kill -0 "$acc" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$acc" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  # workers that outlived their acceptor (they should not), by pid, checked by name
  for p in $kids; do
    for _ in $(seq 1 30); do [ "$(cat /proc/"$p"/comm 2>/dev/null)" = meshbroker-work ] || break; sleep 0.1; done
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = meshbroker-work ] && kill -KILL "$p" 2>/dev/null || true
  done
  [ "$pg_started" = 1 ] && bash "$root/scripts/pg.sh" stop "$work/pg" || true
  # the cluster may sit under /var/tmp behind a symlink (scripts/pg.sh)
  real=$(readlink "$work/pg/cluster" 2>/dev/null || true)
  case $real in /var/tmp/meshbroker-pg-*) ;; *) real= ;; esac
  if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
    # keep the logs, not the cluster or the binaries
    cp "$work/pg/cluster/postgres.log" "$work/postgres.log" 2>/dev/null || true
    rm -rf "$work/pg" "$work/bin" "$work/lib" "$work/meshbench" "$work/run" ${real:+"$real"}
    echo "bench: logs kept in $work" >&2
  else
    rm -rf "$work" ${real:+"$real"}
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# a snapshot of the binaries: a rebuild in the tree during the run must not
# change (or break) what is measured
mkdir -p "$work/bin"
cp "$bin/meshbroker-accept" "$bin/meshbroker-worker" "$bin/meshctl" "$work/bin/"
# the worker's libpq stand-ins (pqstub/, db/pq.c) sit in ../lib/meshbroker
if [ -d "$bin/../lib/meshbroker" ]; then
  mkdir -p "$work/lib/meshbroker" && cp "$bin/../lib/meshbroker/"*.so "$work/lib/meshbroker/"
fi
bin=$work/bin

# the client
pkgs="libsodium libpq libcjson"
pkg-config --exists $pkgs || { echo "bench: pkg-config cannot find $pkgs (make deps)" >&2; exit 2; }
gcc -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -I. $(pkg-config --cflags $pkgs) \
  -o "$work/meshbench" bench/meshbench.c proto/hello.c common/util.c \
  $(pkg-config --libs $pkgs) -lwslay

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pg_started=1
DATABASE_URL=$(bash scripts/pg.sh start "$work/pg" 5432)
export DATABASE_URL
"$bin/meshctl" migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; exit 1; }
direct_url=$DATABASE_URL # the client's own session (setup, pg_stat_activity): PostgreSQL itself
maxconn=2000
DATABASE_URL=$(MAX_CONNECTIONS=$maxconn bash scripts/pg.sh bouncer "$work/pg" 5432 6432)
export DATABASE_URL
cdir=$(readlink -f "$work/pg/cluster")
pg_pid=$(head -n 1 "$cdir/data/postmaster.pid" 2>/dev/null || echo 0)
bouncer_pid=$(cat "$cdir/bouncer/pgbouncer.pid" 2>/dev/null || echo 0)

db_idle=2
ulimit -n 8192 2>/dev/null || true
env MESHBROKER_RUNTIME_DIR="$work/run" BROKER_BIND=127.0.0.1 BROKER_PORT="$port" \
  DB_IDLE_SECONDS=$db_idle SEND_RATE_LIMIT_PER_MIN=1000000 SEND_RATE_BURST=1000000 \
  MAX_CONNECTIONS_PER_MESH=$maxconn MAX_CONNECTIONS=$maxconn MAX_CONNECTIONS_PER_SOURCE=$maxconn \
  "$bin/meshbroker-accept" 2>"$work/broker.log" &
acc=$!
up=0
for _ in $(seq 1 100); do
  if (exec 9<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then up=1; break; fi
  kill -0 "$acc" 2>/dev/null || break
  sleep 0.1
done
[ "$up" = 1 ] || { echo "bench: the broker did not start" >&2; tail -n 20 "$work/broker.log" >&2; exit 1; }

mem_gib=$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
pgver=$("$pgbin/postgres" --version 2>/dev/null | awk '{print $3}')
bver=$(pgbouncer --version 2>/dev/null | head -n 1 | awk '{print $2}')
pgq() { psql "$direct_url" -Atqc "$1" 2>/dev/null || runuser -u meshbroker -- psql "$direct_url" -Atqc "$1" 2>/dev/null || echo '?'; }
pgmax=$(pgq 'SHOW max_connections')
synccommit=$(pgq 'SHOW synchronous_commit')
pool=$(sed -n 's/^default_pool_size = //p' "$cdir/bouncer/pgbouncer.ini")
machine="machine: ${cpu:-unknown CPU}, $(nproc) cores, ${mem_gib} GiB, Linux $(uname -r), PostgreSQL ${pgver:-?} (max_connections=$pgmax, synchronous_commit=$synccommit), PgBouncer ${bver:-?} (transaction pooling, pool $pool)"
header() {
  echo "meshbroker bench — $started_at"
  echo "$machine"
  echo "tree: commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$([ -n "$(git status --porcelain -- accept worker shm db proto bench 2>/dev/null)" ] && echo ' + uncommitted changes in the tree'),"\
    "binaries built $(date -u -r "$bin/meshbroker-worker" '+%Y-%m-%d %H:%M UTC')"
  echo "broker: meshbroker-accept on 127.0.0.1:$port through the embedded PgBouncer, DB_IDLE_SECONDS=$db_idle," \
    "rate limits and MAX_CONNECTIONS* raised to $maxconn, else defaults; load average before: $load_before"
}
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
header
echo

timeout_s=${BENCH_TIMEOUT:-600}
timeout -s TERM "$timeout_s" "$work/meshbench" --port "$port" --db "$direct_url" --acceptor "$acc" \
  --bouncer-pid "$bouncer_pid" --pg-pid "$pg_pid" \
  --db-idle "$db_idle" --worker "$bin/meshbroker-worker" "$@" >"$work/table.md" 2>"$work/meshbench.log" &
client=$!
# the client prints its progress on stderr; show it while it runs
tail -n +1 -f "$work/meshbench.log" --pid="$client" >&2 &
tailer=$!
rc=0
wait "$client" || rc=$?
client=
wait "$tailer" 2>/dev/null || true
[ "$rc" = 124 ] && echo "bench: the client was stopped after ${timeout_s} s" >&2
echo
cat "$work/table.md"
echo
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average after: $load_after"

# the run, dated, at the end of bench/RESULTS.md
if [ "${BENCH_NO_RESULTS:-0}" != 1 ] && [ -s "$work/table.md" ]; then
  {
    echo
    echo "## Run of $started_at (commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo
    echo "Command: \`make bench\`$([ $# -gt 0 ] && printf ' (bash bench/run.sh %s)' "$*"); exit status $rc; load average before $load_before, after $load_after."
    echo
    echo '```'
    header
    echo '```'
    echo
    cat "$work/table.md"
  } >>"$root/bench/RESULTS.md"
  echo "bench: the run is appended to bench/RESULTS.md" >&2
fi

# what the broker and PostgreSQL said while we measured
warn=$(grep -c '"level":"warn"' "$work/broker.log" || true)
err=$(grep -c '"level":"error"' "$work/broker.log" || true)
echo "broker log: ${warn:-0} warn, ${err:-0} error lines"
if [ "${warn:-0}" != 0 ] || [ "${err:-0}" != 0 ]; then
  grep -E '"level":"(warn|error)"' "$work/broker.log" |
    sed -E 's/.*"level":"([a-z]+)".*"msg":"([^"]*)"(.*"error":"(([^"\\]|\\.)*)")?.*/  \1: \2 \4/' |
    sed -E 's/connection to server on socket \\"[^\\]*\\" failed: //' | cut -c1-150 |
    sort | uniq -c | sort -rn | head -n 10
fi
pglog=$(ls "$work"/pg/cluster/postgres.log 2>/dev/null || true)
if [ -n "$pglog" ]; then
  fatal=$(grep -cE 'FATAL|ERROR' "$pglog" || true)
  echo "postgres log: ${fatal:-0} FATAL/ERROR lines"
  [ "${fatal:-0}" != 0 ] && grep -E 'FATAL|ERROR' "$pglog" | sed -E 's/^.*(FATAL|ERROR)/  \1/' | sort | uniq -c |
    sort -rn | head -n 5
fi
if [ "$rc" != 0 ]; then
  echo "bench: the client reported a problem (exit $rc): see the table notes" >&2
fi
exit "$rc"
