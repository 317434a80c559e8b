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
# Then the cross-host part (issue 24; meshbench's section xhost): the
# single-host broker is stopped and two hosts start on the same PostgreSQL,
# as two brokers on one machine do (docs/design.md "More than one host"):
# HOST_ID bench-a and bench-b, each its own acceptor (loopback port, runtime
# directory), its own meshbroker-relay (a direct PostgreSQL session) and its
# own PgBouncer in front of the bench's cluster.  A second meshbench run
# measures them and prints the one table of both runs (--save / --load).
# The single-host rows run first, with HOST_ID unset, as before.
#
#   bash bench/run.sh [meshbench options]     e.g. --quick, --reps 5, --only health,msg
#   bash bench/run.sh --compare REV [--against REV2] [--rounds N] [meshbench options]
#       the single-host figures of REV's binaries and this tree's (or REV2's)
#       back to back, alternately (scripts/bench-compare.sh)
#
# Broker settings for the run (everything else is the default):
#   DB_IDLE_SECONDS=2                       so the idle test can show sessions closing
#   SEND_RATE_LIMIT_PER_MIN / SEND_RATE_BURST raised: the throughput runs send 1000 messages
#   MAX_CONNECTIONS_PER_MESH / MAX_CONNECTIONS / MAX_CONNECTIONS_PER_SOURCE raised: 500 peers
#     from one address in one mesh
# Env: MESHBROKER_BIN (default build/bin), BENCH_KEEP=1 keeps the temporary
# directory (logs), BENCH_TIMEOUT (seconds, default 600) bounds the client,
# BENCH_XHOST_TIMEOUT (default 150) the cross-host run, BENCH_XHOST=0 leaves
# the cross-host part out (so does an --only without xhost), BENCH_SAVE=FILE
# keeps every figure as meshbench --save writes them (scripts/bench-compare.sh).
# Diagnostics: BENCH_PG_DIAG=1 makes PostgreSQL log lock waits over 20 ms,
# statements over 30 ms, autovacuum and checkpoints (keep the log with
# BENCH_KEEP=1); BCAST_DUMP=FILE has meshbench write every broadcast's
# per-receiver latency there (where a broadcast p99 comes from).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
case ${1:-} in --compare | --compare=*) exec bash "$root/scripts/bench-compare.sh" "$@" ;; esac
t_run=$(date +%s)
bin=${MESHBROKER_BIN:-$root/build/bin}
for b in meshbroker-accept meshbroker-worker meshctl; do
  [ -x "$bin/$b" ] || { echo "bench: $bin/$b is missing: run 'make build' first" >&2; exit 2; }
done
# the cross-host part runs unless an --only leaves xhost out (or BENCH_XHOST=0)
only= prev=
for a in "$@"; do
  [ "$prev" = --only ] && only=$a
  case $a in --only=*) only=${a#--only=} ;; esac
  prev=$a
done
xhost=0
case ${only:-xhost} in *xhost*) [ "${BENCH_XHOST:-1}" != 0 ] && xhost=1 ;; esac
if [ "$xhost" = 1 ] && [ ! -x "$bin/meshbroker-relay" ]; then
  echo "bench: $bin/meshbroker-relay is missing: the cross-host part is left out" >&2
  xhost=0
fi

work=$(mktemp -d /tmp/meshbroker-bench.XXXXXX)
chmod 0755 "$work"
# The broker's runtime directory (its workers' sockets, the presence table) on
# tmpfs, as systemd's RuntimeDirectory= (/run/meshbroker) gives it in a
# deployment: every connection's worker creates and removes a socket file
# there, and on an ext4 without a journal (this VM's disk) each creation scans
# the inodes deleted in the last seconds (find_inode_bit -> recently_deleted),
# which a burst of short connections makes quadratic (docs/deploy.md, bench/RESULTS.md).
# BENCH_RUNTIME_ON_DISK=1 keeps it under $work, on whatever /tmp is.
rundir=$work/run
if [ "${BENCH_RUNTIME_ON_DISK:-0}" != 1 ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
  rundir=$(mktemp -d /dev/shm/meshbroker-bench-run.XXXXXX)
  chmod 0755 "$rundir"
fi
acc=
client=
pg_started=0
xh_accs= xh_relays= xh_bouncers= # the cross-host part's processes (pids) and bouncer directories
# Stop an acceptor (and so its workers) by pid: SIGTERM, 5 s, SIGKILL; then
# the workers that outlived it (they should not), by pid, checked by name.
stop_acc() {
  local a=$1 kids= p
  [ -n "$a" ] || return 0
  if kill -0 "$a" 2>/dev/null; then
    kids=$(pgrep -P "$a" 2>/dev/null || true)
    kill -TERM "$a" 2>/dev/null || true # the acceptor passes SIGTERM on to its workers
    for _ in $(seq 1 50); do kill -0 "$a" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$a" 2>/dev/null || true
  fi
  wait "$a" 2>/dev/null || true
  for p in $kids; do
    for _ in $(seq 1 30); do [ "$(cat /proc/"$p"/comm 2>/dev/null)" = meshbroker-work ] || break; sleep 0.1; done
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = meshbroker-work ] && kill -KILL "$p" 2>/dev/null || true
  done
}
# the cross-host part: acceptors, then relays (SIGTERM; they keep no state),
# then their bouncers; its PostgreSQL is the bench's own
xhost_stop() {
  local p d
  for p in $xh_accs; do stop_acc "$p"; done
  for p in $xh_relays; do
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  for d in $xh_bouncers; do bash "$root/scripts/pg.sh" stop "$d" >/dev/null 2>&1 || true; done
  xh_accs= xh_relays= xh_bouncers=
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$client" ] && kill "$client" 2>/dev/null || true
  xhost_stop
  stop_acc "$acc"
  wait 2>/dev/null || true
  [ "$pg_started" = 1 ] && bash "$root/scripts/pg.sh" stop "$work/pg" || true
  # the cluster may sit under /var/tmp behind a symlink (scripts/pg.sh)
  real=$(readlink "$work/pg/cluster" 2>/dev/null || true)
  case $real in /var/tmp/meshbroker-pg-*) ;; *) real= ;; esac
  if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
    # keep the logs, not the cluster or the binaries
    cp "$work/pg/cluster/postgres.log" "$work/postgres.log" 2>/dev/null || true
    rm -rf "$work/pg" "$work/bin" "$work/lib" "$work/meshbench" "$rundir" "$work"/host-*/run ${real:+"$real"}
    echo "bench: logs kept in $work" >&2
  else
    rm -rf "$work" "$rundir" ${real:+"$real"}
  fi
  echo "bench: $(( $(date +%s) - t_run )) s in all (bench/run.sh from its start to everything stopped)" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# a snapshot of the binaries: a rebuild in the tree during the run must not
# change (or break) what is measured
mkdir -p "$work/bin"
cp -p "$bin/meshbroker-accept" "$bin/meshbroker-worker" "$bin/meshctl" "$work/bin/" # -p: the header says when they were built
[ "$xhost" = 1 ] && cp -p "$bin/meshbroker-relay" "$work/bin/"
bin_src=$bin
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
if [ "${BENCH_PG_DIAG:-0}" = 1 ]; then
  # what can stall a run, in postgres.log (with BENCH_KEEP=1): lock waits
  # over 20 ms, statements over 30 ms, every autovacuum and checkpoint
  runuser -u meshbroker -- psql "$direct_url" -q -c "ALTER SYSTEM SET log_lock_waits = on" \
    -c "ALTER SYSTEM SET deadlock_timeout = '20ms'" -c "ALTER SYSTEM SET log_min_duration_statement = 30" \
    -c "ALTER SYSTEM SET log_autovacuum_min_duration = 0" -c "ALTER SYSTEM SET log_checkpoints = on" \
    -c "SELECT pg_reload_conf()" >/dev/null
fi
maxconn=2000
DATABASE_URL=$(MAX_CONNECTIONS=$maxconn bash scripts/pg.sh bouncer "$work/pg" 5432 6432)
export DATABASE_URL
cdir=$(readlink -f "$work/pg/cluster")
pg_pid=$(head -n 1 "$cdir/data/postmaster.pid" 2>/dev/null || echo 0)
bouncer_pid=$(cat "$cdir/bouncer/pgbouncer.pid" 2>/dev/null || echo 0)

db_idle=2
ulimit -n 8192 2>/dev/null || true
# the broker settings of every acceptor of the run (the cross-host part's too)
broker_env=(BROKER_BIND=127.0.0.1 DB_IDLE_SECONDS=$db_idle SEND_RATE_LIMIT_PER_MIN=1000000 SEND_RATE_BURST=1000000
  MAX_CONNECTIONS_PER_MESH=$maxconn MAX_CONNECTIONS=$maxconn MAX_CONNECTIONS_PER_SOURCE=$maxconn)
# listening on port within 10 s while pid lives?
wait_port() {
  local p=$1 pid=$2
  for _ in $(seq 1 100); do
    if (exec 9<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# the single-host broker: HOST_ID unset, whatever this shell has
env -u HOST_ID -u RELAY_DATABASE_URL MESHBROKER_RUNTIME_DIR="$rundir" BROKER_PORT="$port" "${broker_env[@]}" \
  "$bin/meshbroker-accept" 2>"$work/broker.log" &
acc=$!
wait_port "$port" "$acc" || { echo "bench: the broker did not start" >&2; tail -n 20 "$work/broker.log" >&2; exit 1; }
xport_a= xport_b=
if [ "$xhost" = 1 ]; then
  xport_a=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  xport_b=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  [ "$xport_a" != "$xport_b" ] && [ "$xport_a" != "$port" ] && [ "$xport_b" != "$port" ] ||
    { echo "bench: no three distinct free ports" >&2; exit 1; }
fi

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
  [ -n "${MESHBROKER_BIN:-}" ] && echo "binaries: $bin_src (MESHBROKER_BIN)"
  echo "broker: meshbroker-accept on 127.0.0.1:$port through the embedded PgBouncer, DB_IDLE_SECONDS=$db_idle," \
    "rate limits and MAX_CONNECTIONS* raised to $maxconn, else defaults, HOST_ID unset; load average before: $load_before"
  [ "$xhost" = 1 ] && echo "then two hosts on the same PostgreSQL (the single-host broker stopped): HOST_ID bench-a on" \
    "127.0.0.1:$xport_a and bench-b on 127.0.0.1:$xport_b, each with its meshbroker-relay (a direct session) and its" \
    "own PgBouncer (pool $pool), the same settings"
  return 0
}
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
header
echo

# run meshbench (a time limit, an output file, a log file, its options),
# showing its progress (stderr) while it runs; its exit status
run_client() {
  local limit=$1 out=$2 log=$3 rc=0 tailer
  shift 3
  : >"$log" # before the tail below opens it
  timeout -s TERM "$limit" "$work/meshbench" "$@" >"$out" 2>"$log" &
  client=$!
  tail -n +1 -f "$log" --pid="$client" >&2 &
  tailer=$!
  wait "$client" || rc=$?
  client=
  wait "$tailer" 2>/dev/null || true
  [ "$rc" = 124 ] && echo "bench: the client was stopped after ${limit} s" >&2
  return "$rc"
}

timeout_s=${BENCH_TIMEOUT:-600}
rc=0
run_client "$timeout_s" "$work/table.md" "$work/meshbench.log" --port "$port" --db "$direct_url" --acceptor "$acc" \
  --bouncer-pid "$bouncer_pid" --pg-pid "$pg_pid" \
  --db-idle "$db_idle" --worker "$bin/meshbroker-worker" "$@" --save "$work/rows.tsv" || rc=$?
table=$work/table.md rows=$work/rows.tsv

# The cross-host part: two hosts on the bench's PostgreSQL, each started as
# `make run` starts one with HOST_ID (the relay first, then the acceptor),
# its workers going through its own PgBouncer.  The single-host broker is
# stopped first: nothing of it runs beside them.
xhost_start() {
  local h p hdir burl relay a
  for h in a b; do
    if [ "$h" = a ]; then p=$xport_a; else p=$xport_b; fi
    hdir=$work/host-$h
    mkdir -p "$hdir"
    mkdir -m 0750 "$hdir/run" # the relay binds its socket there before the acceptor starts
    burl=$(PG_SOCKET_DIR="$cdir/sock" MAX_CONNECTIONS=256 bash scripts/pg.sh bouncer "$hdir/pg" 5432 6432) ||
      { echo "bench: host $h's PgBouncer did not start" >&2; return 1; }
    xh_bouncers="$xh_bouncers $hdir/pg"
    env HOST_ID="bench-$h" MESHBROKER_RUNTIME_DIR="$hdir/run" DATABASE_URL="$burl" RELAY_DATABASE_URL="$direct_url" \
      "$bin/meshbroker-relay" 2>"$hdir/relay.log" &
    relay=$!
    xh_relays="$xh_relays $relay"
    for _ in $(seq 1 50); do
      [ -S "$hdir/run/relay.sock" ] && break
      kill -0 "$relay" 2>/dev/null || break
      sleep 0.1
    done
    [ -S "$hdir/run/relay.sock" ] || { echo "bench: host $h's relay did not start" >&2; tail -n 5 "$hdir/relay.log" >&2; return 1; }
    env -u RELAY_DATABASE_URL HOST_ID="bench-$h" MESHBROKER_RUNTIME_DIR="$hdir/run" BROKER_PORT="$p" \
      DATABASE_URL="$burl" "${broker_env[@]}" "$bin/meshbroker-accept" 2>"$hdir/broker.log" &
    a=$!
    xh_accs="$xh_accs $a"
    if [ "$h" = a ]; then
      xacc_a=$a
      xbouncer_a=$(cat "$(readlink -f "$hdir/pg/cluster")/bouncer/pgbouncer.pid" 2>/dev/null || echo 0)
    else
      xacc_b=$a
    fi
    wait_port "$p" "$a" || { echo "bench: host $h's broker did not start" >&2; tail -n 5 "$hdir/broker.log" >&2; return 1; }
  done
  # both leases registered (the relays' first statements)
  for _ in $(seq 1 50); do
    [ "$(pgq "SELECT count(*) FROM mesh.broker_host WHERE host_id IN ('bench-a','bench-b') AND lease_until > now()")" = 2 ] &&
      return 0
    sleep 0.1
  done
  echo "bench: the two hosts' leases were not registered within 5 s" >&2
  return 1
}
xrc=
if [ "$xhost" = 1 ]; then
  stop_acc "$acc"
  acc=
  echo >&2
  echo "bench: the cross-host part: two hosts (bench-a, bench-b) on the same PostgreSQL" >&2
  xacc_a= xacc_b= xbouncer_a=0
  if xhost_start; then
    # its own run, after the single-host rows (--load), printing the one table;
    # --idle 20: no more members than it needs (the idle rows are not run)
    xrc=0
    run_client "${BENCH_XHOST_TIMEOUT:-150}" "$work/table-xhost.md" "$work/meshbench-xhost.log" --port "$xport_a" \
      --port-b "$xport_b" --db "$direct_url" --acceptor "$xacc_a" --acceptor-b "$xacc_b" \
      --bouncer-pid "$xbouncer_a" --pg-pid "$pg_pid" --db-idle "$db_idle" "$@" --only xhost --idle 20 \
      --load "$work/rows.tsv" --save "$work/rows-xhost.tsv" || xrc=$?
  else
    xrc=startup
  fi
  xhost_stop
  case $xrc in
  0 | 1) # the table of both runs; its exit status counts both
    [ -s "$work/table-xhost.md" ] && { table=$work/table-xhost.md rows=$work/rows-xhost.tsv rc=$xrc; } ;;
  esac
  if [ "$table" = "$work/table.md" ]; then
    echo "bench: the cross-host part failed ($xrc): its rows are missing below" >&2
    [ "$rc" = 0 ] && rc=1
  fi
fi
[ -n "${BENCH_SAVE:-}" ] && [ -s "$rows" ] && cp "$rows" "$BENCH_SAVE"

echo
cat "$table"
echo
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average after: $load_after"

# the run, dated, at the end of bench/RESULTS.md
if [ "${BENCH_NO_RESULTS:-0}" != 1 ] && [ -s "$table" ]; then
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
    cat "$table"
  } >>"$root/bench/RESULTS.md"
  echo "bench: the run is appended to bench/RESULTS.md" >&2
fi

# what the brokers, the relays and PostgreSQL said while we measured
for log in "$work/broker.log" "$work"/host-*/broker.log "$work"/host-*/relay.log; do
  [ -f "$log" ] || continue
  what=${log#"$work"/}
  warn=$(grep -c '"level":"warn"' "$log" || true)
  err=$(grep -c '"level":"error"' "$log" || true)
  case $what in
  broker.log) echo "broker log: ${warn:-0} warn, ${err:-0} error lines" ;;
  *) echo "$what: ${warn:-0} warn, ${err:-0} error lines" ;;
  esac
  if [ "${warn:-0}" != 0 ] || [ "${err:-0}" != 0 ]; then
    grep -E '"level":"(warn|error)"' "$log" |
      sed -E 's/.*"level":"([a-z]+)".*"msg":"([^"]*)"(.*"error":"(([^"\\]|\\.)*)")?.*/  \1: \2 \4/' |
      sed -E 's/connection to server on socket \\"[^\\]*\\" failed: //' | cut -c1-150 |
      sort | uniq -c | sort -rn | head -n 10
  fi
done
# how the cross-host messages travelled: doorbells (notified) or the sweep (swept)
for log in "$work"/host-*/relay.log; do
  [ -f "$log" ] || continue
  line=$(grep '"msg":"relay: stopping"' "$log" | tail -n 1)
  [ -n "$line" ] || continue
  relay_stat() { printf '%s' "$line" | sed -nE "s/.*\"$1\":\"?([0-9]+).*/\1/p"; }
  echo "${log#"$work"/}: rang $(relay_stat rang), notified $(relay_stat notified), swept $(relay_stat swept)," \
    "dropped $(relay_stat dropped), fenced $(relay_stat fenced)"
done
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
