#!/usr/bin/env bash
# run.sh — what `make run` does after building: start the embedded PostgreSQL
# (unless DATABASE_URL is set), apply migrations, run the standalone acceptor
# on BROKER_PORT in the foreground and say how to connect.  Ctrl-C stops the
# broker and the embedded PostgreSQL.
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
stop_pg() { [ "$embedded" = 1 ] && bash scripts/pg.sh stop "$var/pg" || true; }

"$bin/meshctl" migrate >&2 || { stop_pg; exit 1; }

export MESHBROKER_RUNTIME_DIR=${MESHBROKER_RUNTIME_DIR:-$var/run}
export BROKER_PORT=$port
"$bin/meshbroker-accept" &
acc=$!
trap 'kill -TERM $acc 2>/dev/null || true' INT TERM

# wait for /health to answer before saying we are up
up=0
for _ in $(seq 1 100); do
  if { exec 9<>/dev/tcp/127.0.0.1/"$port"; } 2>/dev/null; then
    printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&9
    if head -n 1 <&9 | grep -q ' 200 '; then up=1; exec 9>&-; break; fi
    exec 9>&-
  fi
  kill -0 $acc 2>/dev/null || break
  sleep 0.1
done

if [ "$up" = 1 ]; then
  cat <<MSG

meshbroker is up: ws://127.0.0.1:$port/ws   (health: http://127.0.0.1:$port/health, metrics: /metrics)

Connect two peers (in another terminal, from $root):
  export DATABASE_URL='$DATABASE_URL'
  export MESHBROKER_URL=ws://127.0.0.1:$port/ws
  alice=\$(build/bin/meshctl keygen --out alice.key); bob=\$(build/bin/meshctl keygen --out bob.key)
  mesh=\$(build/bin/meshctl mesh create demo --owner-key alice.key)
  build/bin/meshctl member add \$mesh --key alice.key --name alice --out alice.json
  build/bin/meshctl member add \$mesh --key bob.key --name bob --out bob.json
  build/bin/meshctl --config bob.json connect &
  build/bin/meshctl --config alice.json send \$bob 'hello bob'

Ctrl-C stops the broker$([ "$embedded" = 1 ] && echo " and its embedded PostgreSQL").
MSG
else
  echo "meshbroker: the broker did not become healthy on port $port (see the log above)" >&2
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
