#!/usr/bin/env bash
# pg.sh — a private PostgreSQL cluster for meshbroker (the embedded default):
# Unix socket in a private directory, no TCP.  PostgreSQL refuses to run as
# root, so as root the cluster belongs to the unprivileged system user
# "meshbroker" (created when missing).
#   pg.sh start DIR [PORT]   init (first time) and start; prints DATABASE_URL
#   pg.sh stop DIR           fast shutdown
#   pg.sh url DIR [PORT]     print DATABASE_URL
set -euo pipefail
cmd=${1:-}; dir=${2:-}; port=${3:-5432}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: pg.sh start|stop|url DIR [PORT]" >&2; exit 2; }
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
data=$base/data sock=$base/sock
url="postgresql:///meshbroker?host=$sock&port=$port&user=$pguser"

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
stop)
  if [ -f "$data/PG_VERSION" ]; then
    as_user "$pgbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  ;;
*) echo "usage: pg.sh start|stop|url DIR [PORT]" >&2; exit 2 ;;
esac
