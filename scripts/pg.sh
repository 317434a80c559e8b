#!/usr/bin/env bash
# pg.sh — a private PostgreSQL cluster for meshbroker (the embedded default):
# Unix socket in a private directory, no TCP.  PostgreSQL refuses to run as
# root, so as root the cluster belongs to the unprivileged system user
# "meshbroker" (created when missing).
#   pg.sh start DIR [PORT]   init (first time) and start; prints DATABASE_URL
#                            (direct: what `meshctl migrate` uses)
#   pg.sh bouncer DIR [PORT] [BOUNCER_PORT]
#                            start PgBouncer in front of the running cluster
#                            (transaction pooling, its own private socket
#                            directory, same user); prints the broker's
#                            DATABASE_URL (through the bouncer)
#   pg.sh stop DIR           stop the bouncer (if any), then fast shutdown
#   pg.sh url DIR [PORT]     print the direct DATABASE_URL
# PG_SOCKET_DIR (env) puts the bouncer in front of another cluster's socket
# directory instead of DIR's (the integration tests do, with their cluster).
# Bouncer sizing (env): BOUNCER_POOL_SIZE (server sessions, default 5 per
# core, at least 10 and at most 20: well under max_connections), BOUNCER_MAX_CLIENT_CONN (default MAX_CONNECTIONS,
# or 1024, plus 256: one session per worker, plus meshctl and probes).
set -euo pipefail
cmd=${1:-}; dir=${2:-}; port=${3:-5432}; bport=${4:-6432}
usage="usage: pg.sh start|bouncer|stop|url DIR [PORT] [BOUNCER_PORT]"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "$usage" >&2; exit 2; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pgbin/initdb" ] || { echo "meshbroker: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

pguser=$(id -un)
as_user() { "$@"; }
if [ "$(id -u)" = 0 ]; then
  pguser=meshbroker
  id -u meshbroker >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin meshbroker
  as_user() { runuser -u meshbroker -- "$@"; }
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# The cluster user must be able to reach the data directory.  When the work
# tree sits under a directory it cannot traverse (e.g. /root), keep the
# cluster under /var/tmp and leave a symlink in its place.
if [ "$pguser" != "$(id -un)" ] && ! as_user test -x "$dir"; then
  real=/var/tmp/meshbroker-pg-$(printf '%s' "$dir" | sha256sum | cut -c1-12)
  mkdir -p "$real"
  [ -L "$dir/cluster" ] || ln -sfn "$real" "$dir/cluster"
  base=$real
else
  base=$dir/cluster
  mkdir -p "$base"
fi
chown "$pguser" "$base" 2>/dev/null || true
chmod 0700 "$base"
data=$base/data sock=${PG_SOCKET_DIR:-$base/sock} bdir=$base/bouncer
url="postgresql:///meshbroker?host=$sock&port=$port&user=$pguser"

# The bouncer runs as the cluster's user, listens only on a Unix socket in
# $bdir (under the 0700 cluster directory) and hands out at most
# BOUNCER_POOL_SIZE server sessions in transaction mode: a hello burst or a
# reconnect storm of a thousand workers queues for a few sessions instead of
# running PostgreSQL out of max_connections.
bouncer_start() {
  local bin pool maxc need hard
  bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
  [ -x "$bin" ] || { echo "meshbroker: pgbouncer not found (apt-get install pgbouncer)" >&2; exit 1; }
  # 5 server sessions per core (10 to 20): every statement is short and
  # CPU-bound, so more sessions than that only add backends that wait for
  # a core, and each holds its plans and caches (docs/design.md "Named
  # statements through the bouncer": on 2 cores, 20 -> 10 made the idle
  # peer 398-404 -> 361 KiB and no message row slower)
  local cores
  cores=$(nproc 2>/dev/null || echo 2)
  pool=$((cores * 5))
  [ "$pool" -lt 10 ] && pool=10
  [ "$pool" -gt 20 ] && pool=20
  pool=${BOUNCER_POOL_SIZE:-$pool}
  maxc=${BOUNCER_MAX_CLIENT_CONN:-$(( ${MAX_CONNECTIONS:-1024} + 256 ))}
  as_user mkdir -p "$bdir"
  as_user chmod 0700 "$bdir"
  if [ "$(cat /proc/"$(cat "$bdir/pgbouncer.pid" 2>/dev/null || echo 0)"/comm 2>/dev/null)" = pgbouncer ]; then
    return 0 # already running (a second start)
  fi
  as_user sh -c "printf '\"%s\" \"\"\n' '$pguser' > '$bdir/users.txt'"
  as_user sh -c "cat > '$bdir/pgbouncer.ini'" <<INI
; written by scripts/pg.sh: meshbroker's embedded PgBouncer
[databases]
meshbroker = host=$sock port=$port dbname=meshbroker user=$pguser
[pgbouncer]
listen_addr =
listen_port = $bport
unix_socket_dir = $bdir
unix_socket_mode = 0700
listen_backlog = 4096
auth_type = trust
auth_file = $bdir/users.txt
pool_mode = transaction
default_pool_size = $pool
max_db_connections = $pool
max_client_conn = $maxc
; after a failed server login (PostgreSQL restarting) try again after 0.25 s,
; not the default 15 s: new hellos succeed within 2 s of PostgreSQL's return
server_login_retry = 0.25
log_connections = 0
log_disconnections = 0
logfile = $bdir/pgbouncer.log
pidfile = $bdir/pgbouncer.pid
INI
  # one descriptor per client and per server session, plus its own; set in
  # the bouncer's own shell (runuser's PAM session resets the soft limit)
  need=$((maxc + pool + 64))
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    ulimit -Hn "$need" 2>/dev/null || need=$hard
  fi
  as_user sh -c 'ulimit -n "$1" 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$2" -d -q "$3"' \
    pgbouncer "$need" "$bin" "$bdir/pgbouncer.ini" 2>>"$bdir/start.log" ||
    { tail -n 20 "$bdir/pgbouncer.log" "$bdir/start.log" >&2 2>/dev/null; exit 1; }
  for _ in $(seq 1 100); do
    [ -S "$bdir/.s.PGSQL.$bport" ] && return 0
    sleep 0.05
  done
  echo "meshbroker: pgbouncer did not open its socket in $bdir" >&2
  tail -n 20 "$bdir/pgbouncer.log" >&2 2>/dev/null || true
  exit 1
}
bouncer_stop() {
  local pid
  [ -f "$bdir/pgbouncer.pid" ] || return 0
  pid=$(cat "$bdir/pgbouncer.pid" 2>/dev/null || true)
  case $pid in '' | *[!0-9]*) return 0 ;; esac
  # only a pgbouncer: the pid file may be stale and the pid reused
  [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = pgbouncer ] || { rm -f "$bdir/pgbouncer.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = pgbouncer ] || break
    sleep 0.05
  done
  [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = pgbouncer ] && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$bdir/pgbouncer.pid"
}

case $cmd in
url) echo "$url" ;;
start)
  if [ ! -f "$data/PG_VERSION" ]; then
    echo "meshbroker: creating the embedded PostgreSQL cluster in $data" >&2
    as_user "$pgbin/initdb" -D "$data" -U "$pguser" --auth=trust -E UTF8 --no-instructions >"$base/initdb.log" 2>&1 ||
      { cat "$base/initdb.log" >&2; exit 1; }
  fi
  as_user mkdir -p "$sock"
  if ! as_user "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_user "$pgbin/pg_ctl" -D "$data" -l "$base/postgres.log" -w -t 60 \
      -o "-k $sock -c listen_addresses='' -p $port -c max_connections=${PG_MAX_CONNECTIONS:-200}" start >/dev/null ||
      { tail -n 20 "$base/postgres.log" >&2; exit 1; }
  fi
  if ! as_user "$pgbin/psql" -h "$sock" -p "$port" -U "$pguser" -d postgres -Atqc \
      "SELECT 1 FROM pg_database WHERE datname='meshbroker'" | grep -q 1; then
    as_user "$pgbin/createdb" -h "$sock" -p "$port" -U "$pguser" meshbroker
  fi
  echo "$url"
  ;;
bouncer)
  [ -n "${PG_SOCKET_DIR:-}" ] || as_user "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1 ||
    { echo "meshbroker: the cluster in $data is not running (pg.sh start first)" >&2; exit 1; }
  bouncer_start
  echo "postgresql:///meshbroker?host=$bdir&port=$bport&user=$pguser"
  ;;
stop)
  bouncer_stop
  if [ -f "$data/PG_VERSION" ]; then
    as_user "$pgbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  ;;
*) echo "$usage" >&2; exit 2 ;;
esac
