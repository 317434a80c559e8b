#!/usr/bin/env bash
# sendsplit.sh — where a lone send's statement spends its time in PostgreSQL
# (issue 23, docs/design.md "The chain step off the send's path"): two
# private clusters, one migrated by BEFORE_BIN's meshctl and one by
# AFTER_BIN's, each with one mesh, a sender, a recipient and the recipient's
# live presence row; pgbench (one client, direct, no bouncer) then sends one
# direct 100 B `now` message per transaction as the worker does — the
# hand-over statement (mesh.send_batch_hand naming the recipient's
# connection) or the plain one (mesh.send_batch) — and marks its row
# delivered in a statement of its own (as the recipient's next claim would;
# so undelivered rows do not pile up), alternately on both clusters, ROUNDS
# rounds of SECS seconds per variant; then, per cluster, pg_stat_statements
# (track = all: the nested statements of the plpgsql functions) for the
# split.  Variants: hand, plain, and hand with synchronous_commit off (the
# commit's WAL flush is the difference).  pgbench -r's per-statement
# latencies are the client's view (statement + commit).
#   bash bench/sendsplit.sh BEFORE_BIN AFTER_BIN [SECS] [ROUNDS]
# Run as root (the clusters belong to the meshbroker user).
set -euo pipefail
before=$(cd "$1" && pwd) after=$(cd "$2" && pwd) secs=${3:-5} rounds=${4:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/meshbroker-sendsplit.XXXXXX)
chmod 0755 "$work"
cleanup() {
  for c in before after; do
    bash "$root/scripts/pg.sh" stop "$work/$c" >/dev/null 2>&1 || true
    real=$(readlink "$work/$c/cluster" 2>/dev/null || true)
    case $real in /var/tmp/meshbroker-pg-*) rm -rf "$real" ;; esac
  done
  rm -rf "$work"
}
trap cleanup EXIT
declare -A url
port=5540
for c in before after; do
  port=$((port + 1))
  u=$(bash "$root/scripts/pg.sh" start "$work/$c" "$port" 2>/dev/null)
  url[$c]=$u
  q() { runuser -u meshbroker -- psql "$u" -Atqc "$1" >/dev/null; }
  q "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
  cdir=$(readlink -f "$work/$c/cluster")
  runuser -u meshbroker -- /usr/lib/postgresql/*/bin/pg_ctl -D "$cdir/data" -w restart -m fast >/dev/null
  q "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
  q "ALTER SYSTEM SET pg_stat_statements.track = 'all'"
  q "SELECT pg_reload_conf()"
  bin=$before; [ $c = after ] && bin=$after
  DATABASE_URL=$u "$bin/meshctl" migrate >/dev/null
  q "INSERT INTO mesh.mesh (id, name, slug, owner_pubkey) VALUES ('m1', 'm1', 'm1', repeat('0', 64));
     INSERT INTO mesh.member (id, mesh_id, peer_pubkey, display_name) VALUES
       ('ma', 'm1', repeat('a', 64), 'A'), ('mb', 'm1', repeat('b', 64), 'B');
     INSERT INTO mesh.presence (id, mesh_id, member_id, session_id, pid, cwd) VALUES ('pb', 'm1', 'mb', 's', 1, '/')"
done
args="'m1', 'ma', 'A', NULL, ARRAY[:'mid'], ARRAY[repeat('b', 64)], ARRAY['now'], ARRAY['bm9uY2Vub25jZW5vbmNlbm9uY2Vub25j'],
  ARRAY[repeat('Y2lwaGVydGV4dA', 9)], ARRAY['{\"messageId\":\"' || :'mid' || '\",\"priority\":\"now\",\"targetSpec\":\"' || repeat('b', 64) || '\"}'],
  ARRAY[NULL::text], ARRAY[NULL::text], ARRAY[NULL::text]"
cat >"$work/hand.sql" <<SQL
SELECT gen_random_uuid()::text AS mid \gset
SELECT i, member, status, first_id, hand_id, hand_at FROM mesh.send_batch_hand($args, ARRAY['pb']) ORDER BY i;
UPDATE mesh.delivery SET delivered_at = now(), claimed_at = now(), claimed_by = 'pb' WHERE message_id = :'mid';
SQL
cat >"$work/plain.sql" <<SQL
SELECT gen_random_uuid()::text AS mid \gset
SELECT i, member, status, first_id FROM mesh.send_batch($args) ORDER BY i;
UPDATE mesh.delivery SET delivered_at = now(), claimed_at = now(), claimed_by = 'pb' WHERE message_id = :'mid';
SQL
# pgbench's own variables are :name; psql-style :'mid' is not, so quote here
sed -i "s/:'mid'/(:mid)::text/g; s/AS mid \\\\gset/AS mid \\\\gset/" "$work/hand.sql" "$work/plain.sql"
sed -i "s/(:mid)::text/':mid'/g" "$work/hand.sql" "$work/plain.sql"
echo "== load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  for v in hand plain hand-async; do
    for c in before after; do
      f=$work/${v%-async}.sql
      opts=; [ "$v" = hand-async ] && opts='-c synchronous_commit=off'
      out=$(PGOPTIONS="$opts" runuser -u meshbroker -- pgbench -n -r -c 1 -T "$secs" -f "$f" "${url[$c]}" 2>&1)
      tps=$(echo "$out" | awk '/^tps/ {print $3}')
      send=$(echo "$out" | awk '/mesh.send_batch/ {print $1}')
      echo "round $r $v $c: $tps tps, send statement $send ms (client view, with commit)"
    done
  done
done
for c in before after; do
  echo "-- $c: pg_stat_statements (track = all), mean us"
  runuser -u meshbroker -- psql "${url[$c]}" -Aqc "SELECT toplevel AS top, calls, round((mean_exec_time*1000)::numeric,1) AS mean_us, left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS query FROM pg_stat_statements WHERE calls >= 100 AND query NOT LIKE '%FOR KEY SHARE%' ORDER BY toplevel DESC, mean_exec_time DESC LIMIT 20"
done
