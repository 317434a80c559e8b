#!/usr/bin/env bash
# run.sh — what `make run` does after building: start the embedded PostgreSQL
# and its PgBouncer (unless DATABASE_URL is set), apply migrations (directly,
# not through the bouncer: they hold a session advisory lock), run the
# standalone acceptor on BROKER_PORT in the foreground, its workers talking to
# the bouncer, and say how to connect.  Ctrl-C stops the broker, the bouncer
# and the embedded PostgreSQL.  EMBEDDED_PGBOUNCER=0 points the workers at
# PostgreSQL directly (each worker then holds its own server session).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
var=${MESHBROKER_VAR_DIR:-$root/var}
port=${BROKER_PORT:-7900}
bin=${MESHBROKER_BIN:-$root/build/bin}
mkdir -p "$var"
var=$(cd "$var" && pwd)

embedded=0
if [ -z "${DATABASE_URL:-}" ]; then
  embedded=1
  DATABASE_URL=$(bash scripts/pg.sh start "$var/pg" "${EMBEDDED_PG_PORT:-5432}")
  export DATABASE_URL
fi
relay=""
stop_pg() { # and the relay, when one was started
  [ -n "$relay" ] && { kill -TERM "$relay" 2>/dev/null; wait "$relay" 2>/dev/null; } || true
  [ "$embedded" = 1 ] && bash scripts/pg.sh stop "$var/pg" || true
}

"$bin/meshctl" migrate >&2 || { stop_pg; exit 1; }
admin_url=$DATABASE_URL # meshctl's admin commands and migrations: PostgreSQL itself
if [ "$embedded" = 1 ] && [ "${EMBEDDED_PGBOUNCER:-1}" != 0 ]; then
  DATABASE_URL=$(MAX_CONNECTIONS=${MAX_CONNECTIONS:-1024} bash scripts/pg.sh bouncer "$var/pg" \
    "${EMBEDDED_PG_PORT:-5432}" "${EMBEDDED_BOUNCER_PORT:-6432}") || { stop_pg; exit 1; }
  export DATABASE_URL
fi

export MESHBROKER_RUNTIME_DIR=${MESHBROKER_RUNTIME_DIR:-$var/run}
export BROKER_PORT=$port
# a laptop: Claude Code hooks on this machine may set status without an API
# key (from loopback only; the broker refuses it from any other address)
export HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED=${HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED:-1}
# HOST_ID: one of several hosts on this PostgreSQL (docs/deploy.md "More than
# one host"): its relay leases the host and carries doorbells between hosts.
# It talks to PostgreSQL itself (LISTEN needs a session), never the bouncer.
if [ -n "${HOST_ID:-}" ]; then
  RELAY_DATABASE_URL=${RELAY_DATABASE_URL:-$admin_url} "$bin/meshbroker-relay" &
  relay=$!
  for _ in $(seq 1 50); do
    [ -S "$MESHBROKER_RUNTIME_DIR/relay.sock" ] && break
    kill -0 "$relay" 2>/dev/null || { relay=""; stop_pg; echo "meshbroker: the relay failed to start (its error is above)" >&2; exit 1; }
    sleep 0.1
  done
fi
"$bin/meshbroker-accept" &
acc=$!
stopping=0
trap 'stopping=1; kill -TERM $acc 2>/dev/null || true' INT TERM
bind=${BROKER_BIND:-127.0.0.1}   # the acceptor's default too
case $bind in :: | "[::]" | 0.0.0.0) where="every address ($bind)" ;; *) where=$bind ;; esac
# where to reach it: loopback unless it listens on one address only
host=${bind#[}; host=${host%]}
case $host in "" | 0.0.0.0 | ::) host=127.0.0.1 ;; esac
case $host in *:*) urlhost="[$host]" ;; *) urlhost=$host ;; esac

# Inodes of the TCP sockets listening on $port (IPv4 and IPv6), and whether
# one of them is a file descriptor of the acceptor we started: a health check
# that merely reaches the port could be answered by another program.
listen_inodes() {
  awk -v p="$(printf '%04X' "$port")" 'FNR > 1 { n = split($2, a, ":"); if (a[n] == p && $4 == "0A") print $10 }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
acc_owns_port() {
  local i fds
  fds=$(ls -l /proc/$acc/fd 2>/dev/null) || return 1
  for i in $(listen_inodes); do
    case $fds in *"socket:[$i]"*) return 0 ;; esac
  done
  return 1
}
fail() { # one line naming the port, then stop what we started
  echo "meshbroker: $*" >&2
  kill -TERM $acc 2>/dev/null || true
  wait $acc 2>/dev/null || true
  stop_pg
  exit 1
}

# wait until the acceptor we started listens on the port, then for /health
up=0 owned=0 status=""
for _ in $(seq 1 150); do
  if ! kill -0 $acc 2>/dev/null; then
    rc=0; wait $acc 2>/dev/null || rc=$?
    [ "$stopping" = 1 ] && { stop_pg; exit "$rc"; }
    if [ -n "$(listen_inodes)" ]; then
      fail "port $port is already in use by another program (the acceptor exited with status $rc); set BROKER_PORT to a free port"
    fi
    fail "the acceptor failed to start on port $port (exit status $rc; its error is above)"
  fi
  if [ "$owned" = 0 ] && acc_owns_port; then owned=1; fi
  if [ "$owned" = 1 ] && { exec 9<>/dev/tcp/"$host"/"$port"; } 2>/dev/null; then
    printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&9
    status=""
    IFS= read -r -t 3 status <&9 || true
    exec 9>&-
    case $status in *' 200 '*) up=1; break ;; esac
  fi
  sleep 0.1
done
if [ "$up" != 1 ]; then
  if [ "$owned" = 0 ]; then
    if [ -n "$(listen_inodes)" ]; then
      fail "port $port is already in use by another program; set BROKER_PORT to a free port"
    fi
    fail "the acceptor did not listen on port $port within 15 s"
  fi
  fail "the broker on port $port did not answer /health with 200 within 15 s (${status:-no answer}); see the log above"
fi

if [ "$up" = 1 ]; then
  cat <<MSG

meshbroker is up, listening on $where port $port: ws://$urlhost:$port/ws   (health: http://$urlhost:$port/health, metrics: /metrics)
$([ "$HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED" = 1 ] && echo "Hooks from this machine need no API key (HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED=1); BROKER_BIND=:: listens on every address.")

Connect two peers (in another terminal, from $root):
  export DATABASE_URL='$admin_url'
  export MESHBROKER_URL=ws://$urlhost:$port/ws
  alice=\$(build/bin/meshctl keygen --out alice.key); bob=\$(build/bin/meshctl keygen --out bob.key)
  mesh=\$(build/bin/meshctl mesh create demo --owner-key alice.key)
  build/bin/meshctl member add \$mesh --key alice.key --name alice --out alice.json
  build/bin/meshctl member add \$mesh --key bob.key --name bob --out bob.json
  build/bin/meshctl --config bob.json connect &
  build/bin/meshctl --config alice.json send \$bob 'hello bob'

$([ "$DATABASE_URL" != "$admin_url" ] && echo "The workers reach PostgreSQL through the embedded PgBouncer (transaction pooling): $DATABASE_URL")
Ctrl-C stops the broker$([ "$embedded" = 1 ] && echo " and its embedded PostgreSQL$([ "$DATABASE_URL" != "$admin_url" ] && echo " and PgBouncer")").
MSG
fi

rc=0
wait $acc || rc=$?
if [ $rc -gt 128 ]; then
  # the first wait returns early when the trap ran: wait for the drain itself
  rc=0
  wait $acc 2>/dev/null || rc=$?
fi
stop_pg
exit $rc
