#!/usr/bin/env bash
# smoke-test.sh — the whole path once, as a user does it: start a broker
# (and a private PostgreSQL unless DATABASE_URL is set), create a mesh with
# two members, run two `meshctl connect` peers, send alice -> bob, and check
# bob decrypted the text and saw alice as the sender.  Exits non-zero on any
# failure.  Env: BROKER_PORT (default: a free port), MESHBROKER_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=${MESHBROKER_BIN:-$root/build/bin}
work=$(mktemp -d /tmp/meshbroker-smoke.XXXXXX)
chmod 0755 "$work"
pids=()
embedded=0
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$embedded" = 1 ] && bash "$root/scripts/pg.sh" stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "smoke-test: FAIL: $*" >&2; [ -f "$work/broker.log" ] && tail -n 20 "$work/broker.log" >&2; exit 1; }

port=${BROKER_PORT:-$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
if [ -z "${DATABASE_URL:-}" ]; then
  embedded=1
  DATABASE_URL=$(bash scripts/pg.sh start "$work/pg" 5432)
fi
export DATABASE_URL MESHBROKER_URL=ws://127.0.0.1:$port/ws
"$bin/meshctl" migrate >/dev/null 2>&1 || fail "migrate"

MESHBROKER_RUNTIME_DIR=$work/run BROKER_PORT=$port "$bin/meshbroker-accept" 2>"$work/broker.log" &
pids+=($!)
for _ in $(seq 1 50); do
  (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
  sleep 0.1
done

cd "$work"
alice=$("$bin/meshctl" keygen --out alice.key) || fail "keygen alice"
bob=$("$bin/meshctl" keygen --out bob.key) || fail "keygen bob"
mesh=$("$bin/meshctl" mesh create "smoke-$$" --owner-key alice.key) || fail "mesh create"
"$bin/meshctl" member add "$mesh" --key alice.key --name alice --out alice.json >/dev/null || fail "member add alice"
"$bin/meshctl" member add "$mesh" --key bob.key --name bob --out bob.json >/dev/null || fail "member add bob"

# two live peers: bob waits for one push, alice is connected too
"$bin/meshctl" connect --config bob.json --count 1 --timeout 20 >bob.out 2>bob.err </dev/null &
bobpid=$!
pids+=($bobpid)
"$bin/meshctl" connect --config alice.json --timeout 20 >alice.out 2>alice.err </dev/null &
pids+=($!)
for _ in $(seq 1 50); do
  grep -q hello_ack bob.out 2>/dev/null && grep -q hello_ack alice.out 2>/dev/null && break
  sleep 0.1
done
grep -q hello_ack bob.out || fail "bob got no hello_ack: $(cat bob.err bob.out)"

text="smoke test $(date +%s%N)"
"$bin/meshctl" send "$bob" "$text" --priority now --config alice.json >send.out 2>send.err ||
  fail "send refused: $(cat send.err)"
wait $bobpid || fail "bob's connect failed: $(cat bob.err)"

/usr/bin/python3 - "$text" "$alice" <<'PY' || fail "bob's push is wrong: $(cat bob.out)"
import json, sys
want, sender = sys.argv[1], sys.argv[2]
pushes = [json.loads(l) for l in open("bob.out") if '"push"' in l]
assert len(pushes) == 1, pushes
p = pushes[0]
assert p["senderPubkey"] == sender, (p["senderPubkey"], sender)
assert p.get("text") == want, p.get("text")
PY
echo "smoke-test: ok (alice -> bob, decrypted, sender verified)"
