"""Status model and Claude Code hooks (issue 4): POST /hook/set-status,
pending status, status gating, DND, the freshness window against JSONL
inference, the TTL sweep, the shared hook rate limit, and `meshctl hook`."""

import json
import os
import subprocess
import time

import pytest

from mbtest import Peer, is_push, new_id, require_bin, run, wait_until


@pytest.fixture
def broker(broker):
    """Brokers in the laptop mode: these tests pin the unauthenticated hook
    from loopback, which since issue 8 needs the explicit
    HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED=1 (a broker setting; keyed hooks are
    tests/integration/test_hook_auth.py's)."""

    def start(*args, **env):
        env.setdefault("HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED", "1")
        return broker(*args, **env)

    return start


def hook(b, body, raw=None, headers=None):
    """POST /hook/set-status; (status, parsed JSON body)"""
    data = raw if raw is not None else json.dumps(body).encode()
    st, hdrs, resp = b.request("POST", "/hook/set-status", body=data,
                               headers=dict({"Content-Type": "application/json"}, **(headers or {})))
    try:
        return st, json.loads(resp)
    except ValueError:
        return st, resp


def presence_status(db, presence_id):
    with db.cursor() as c:
        c.execute("SELECT status, status_source FROM mesh.presence WHERE id = %s", (presence_id,))
        row = c.fetchone()
    return tuple(row) if row else None


def unique_cwd():
    return f"/tmp/meshbroker-hook-{new_id(10)}"


def test_hook_working_holds_next_and_hook_idle_delivers_it(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members
    cwd, pid = unique_cwd(), 424242

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.connect()
        ack = await bb.hello(cwd=cwd, pid=pid)
        assert ack["type"] == "hello_ack", ack
        st, body = hook(b, {"cwd": cwd, "status": "working", "pid": pid})
        assert (st, body) == (200, {"ok": True, "presence_id": ack["presenceId"]})
        assert wait_until(lambda: presence_status(db, ack["presenceId"]) == ("working", "hook"), 20)
        frame, sack = await a.send_direct(bm.pubkey, "held until idle", "next")
        assert sack["queued"], sack
        await bb.quiet(is_push, 1.0)
        # now passes the working gate
        _, nack = await a.send_direct(bm.pubkey, "urgent", "now")
        p = await bb.push(timeout=15)
        assert p["messageId"] == nack["messageId"] and bb.decrypt(p) == "urgent"
        st, body = hook(b, {"cwd": cwd, "status": "idle", "pid": pid})
        assert st == 200 and body["ok"] is True
        p = await bb.push(timeout=15)
        assert p["messageId"] == sack["messageId"]
        assert p["senderPubkey"] == am.pubkey
        assert p["ciphertext"] == frame["ciphertext"] and p["nonce"] == frame["nonce"]
        assert bb.decrypt(p) == "held until idle"
        await a.close()
        await bb.close()

    run(go(), 60)


def test_hook_matches_newest_presence_by_cwd_without_pid(broker, mesh):
    b = broker()
    m = mesh("B")
    (bm,) = m.members
    cwd = unique_cwd()

    async def go():
        old, new = Peer(b, bm), Peer(b, bm)
        await old.connect()
        await old.hello(cwd=cwd, pid=1111)
        await new.connect()
        ack = await new.hello(cwd=cwd, pid=2222)
        st, body = hook(b, {"cwd": cwd, "status": "working"})
        assert (st, body) == (200, {"ok": True, "presence_id": ack["presenceId"]})
        await old.close()
        await new.close()

    run(go(), 30)


def test_dnd_is_not_changed_by_a_hook(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members
    cwd, pid = unique_cwd(), 515151

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.connect()
        ack = await bb.hello(cwd=cwd, pid=pid)
        await bb.set_status("dnd")
        assert wait_until(lambda: presence_status(db, ack["presenceId"]) == ("dnd", "manual"), 20)
        st, body = hook(b, {"cwd": cwd, "status": "idle", "pid": pid})
        assert st == 200 and body["presence_id"] == ack["presenceId"]
        _, sack = await a.send_direct(bm.pubkey, "not during dnd", "next")
        await bb.quiet(is_push, 1.0)
        assert presence_status(db, ack["presenceId"]) == ("dnd", "manual")
        # only set_status lifts it
        await bb.set_status("idle")
        p = await bb.push(timeout=15)
        assert p["messageId"] == sack["messageId"]
        await a.close()
        await bb.close()

    run(go(), 30)


def write_transcript(root, cwd, tool_use):
    key = cwd.replace("/", "-")
    d = os.path.join(root, key)
    os.makedirs(d, exist_ok=True)
    content = [{"type": "text", "text": "..."}]
    if tool_use:
        content.append({"type": "tool_use", "id": "t1", "name": "Bash", "input": {}})
    with open(os.path.join(d, "s.jsonl"), "w") as f:
        f.write(json.dumps({"type": "user", "message": {"content": "go"}}) + "\n")
        f.write(json.dumps({"type": "assistant", "message": {"content": content}}) + "\n")


def test_fresh_hook_outranks_jsonl_then_jsonl_takes_over(broker, mesh, db, tmp_path):
    jdir = str(tmp_path / "projects")
    cwd = unique_cwd()
    write_transcript(jdir, cwd, tool_use=True)  # the transcript says: working
    b = broker(STATUS_JSONL_DIR=jdir, HOOK_FRESH_WINDOW_SECONDS=6)
    m = mesh("B")
    (bm,) = m.members

    async def go():
        bb = Peer(b, bm)
        await bb.connect()
        ack = await bb.hello(cwd=cwd, pid=616161)
        pid_ = ack["presenceId"]
        # inference alone: working/jsonl
        assert wait_until(lambda: presence_status(db, pid_) == ("working", "jsonl"), 20), \
            presence_status(db, pid_)
        t_hook = time.monotonic()  # the window starts no earlier than this
        st, _ = hook(b, {"cwd": cwd, "status": "idle", "pid": 616161})
        assert st == 200
        assert wait_until(lambda: presence_status(db, pid_) == ("idle", "hook"), 20)
        # while the hook is fresh (6 s), the transcript's "working" does not
        # win: checked for the window's first 4.5 s, whatever is left of them
        while time.monotonic() - t_hook < 4.5:
            assert presence_status(db, pid_) == ("idle", "hook")
            time.sleep(0.2)
        # after the window the lower-ranked source takes over
        assert wait_until(lambda: presence_status(db, pid_) == ("working", "jsonl"), 20), \
            presence_status(db, pid_)
        await bb.close()

    run(go(), 60)


def test_ttl_flips_stuck_working_to_idle_and_delivers_held(broker, mesh, db):
    ttl = 4
    b = broker(STATUS_TTL_SECONDS=ttl)
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        ack = await bb.join()
        sweeps = b.metric("broker_ttl_sweeps_total")
        t_set = time.monotonic()  # the status is set no earlier than this
        await bb.set_status("working")
        assert wait_until(lambda: presence_status(db, ack["presenceId"]) == ("working", "manual"), 20)
        _, sack = await a.send_direct(bm.pubkey, "after the ttl", "low")
        # held while the TTL has not run out (as much of it as is left) ...
        left = ttl - (time.monotonic() - t_set) - 0.5
        if left > 0:
            await bb.quiet(is_push, min(left, 1.5))
        # ... and delivered once the sweep has made it idle
        p = await bb.push(timeout=20)
        assert p["messageId"] == sack["messageId"] and bb.decrypt(p) == "after the ttl"
        assert presence_status(db, ack["presenceId"]) == ("idle", "jsonl")
        assert b.metric("broker_ttl_sweeps_total") == sweeps + 1
        await a.close()
        await bb.close()

    run(go(), 30)


def test_ttl_never_sweeps_dnd(broker, mesh, db):
    b = broker(STATUS_TTL_SECONDS=1)
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        ack = await bb.join()
        await bb.set_status("dnd")
        _, sack = await a.send_direct(bm.pubkey, "waits", "next")
        await bb.quiet(is_push, 3.0)
        assert presence_status(db, ack["presenceId"]) == ("dnd", "manual")
        await a.close()
        await bb.close()

    run(go(), 30)


def test_hook_before_connect_is_pending_and_applied_on_connect(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members
    cwd, pid = unique_cwd(), 717171

    async def go():
        st, body = hook(b, {"cwd": cwd, "status": "working", "pid": pid})
        assert (st, body) == (200, {"ok": True, "pending": True})
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.connect()
        ack = await bb.hello(cwd=cwd, pid=pid)
        assert ack["type"] == "hello_ack"
        assert wait_until(lambda: presence_status(db, ack["presenceId"]) == ("working", "hook"), 20), \
            presence_status(db, ack["presenceId"])
        await a.send_direct(bm.pubkey, "held: started working", "next")
        await bb.quiet(is_push, 1.0)
        await a.close()
        await bb.close()

    run(go(), 30)


def test_newest_pending_wins_and_expired_pending_is_ignored(broker, mesh, db):
    b = broker()
    m = mesh("B", "C")
    bm, cm = m.members
    cwd_b, cwd_c = unique_cwd(), unique_cwd()

    async def go():
        assert hook(b, {"cwd": cwd_b, "status": "dnd", "pid": 818181})[0] == 200
        time.sleep(0.05)
        assert hook(b, {"cwd": cwd_b, "status": "working", "pid": 818181})[0] == 200
        # an expired stash (older than its 10 s) is ignored
        with db.cursor() as c:
            c.execute("INSERT INTO mesh.pending_status (pid, cwd, status, created_at, expires_at) "
                      "VALUES (919191, %s, 'working', now() - interval '11 seconds', "
                      "now() - interval '1 second')", (cwd_c,))
        bb, cc = Peer(b, bm), Peer(b, cm)
        await bb.connect()
        ackb = await bb.hello(cwd=cwd_b, pid=818181)
        await cc.connect()
        ackc = await cc.hello(cwd=cwd_c, pid=919191)
        assert wait_until(lambda: presence_status(db, ackb["presenceId"]) == ("working", "hook"), 20), \
            presence_status(db, ackb["presenceId"])
        time.sleep(0.3)
        assert presence_status(db, ackc["presenceId"]) == ("idle", "jsonl")
        await bb.close()
        await cc.close()

    run(go(), 30)


def test_hook_rate_limit_is_shared_across_worker_processes(broker):
    b = broker(HOOK_RATE_LIMIT_PER_MIN=5)
    cwd = unique_cwd()
    limited = b.metric("broker_hook_requests_rate_limited_total")
    total = b.metric("broker_hook_requests_total")
    # every HTTP request is served by a worker process of its own
    codes = [hook(b, {"cwd": cwd, "status": "working", "pid": 31337})[0] for _ in range(6)]
    assert codes == [200] * 5 + [429], codes
    st, body = hook(b, {"cwd": cwd, "status": "working", "pid": 31337})
    assert (st, body) == (429, {"ok": False, "error": "rate limited"})
    assert hook(b, {"cwd": cwd, "status": "working", "pid": 31338})[0] == 200
    assert b.metric("broker_hook_requests_rate_limited_total") == limited + 2
    assert b.metric("broker_hook_requests_total") == total + 8


def test_hook_bad_input_gets_clear_errors(broker):
    b = broker(MAX_MESSAGE_BYTES=512)
    st, body = hook(b, {"cwd": "/x" * 512, "status": "idle"})
    # the route table's one 413 (issue 21), with the hook's "ok"
    assert (st, body) == (413, {"ok": False, "error": "payload_too_large", "code": "error.payload_too_large",
                                "status": 413})
    st, body = hook(b, {"status": "idle"})
    assert (st, body) == (400, {"ok": False, "error": "cwd and status required"})
    st, body = hook(b, {"cwd": "/tmp"})
    assert (st, body) == (400, {"ok": False, "error": "cwd and status required"})
    st, body = hook(b, None, raw=b"{not json")
    assert st == 400 and body["ok"] is False and "JSON" in body["error"]
    st, body = hook(b, {"cwd": "/tmp", "status": "sleeping"})
    assert st == 400 and body["ok"] is False and "status" in body["error"]
    st, body = hook(b, {"cwd": "/tmp", "status": "idle", "pid": "12"})
    assert st == 400 and body["ok"] is False and "pid" in body["error"]


def test_meshctl_hook_reports_status_of_a_connected_peer(broker, mesh, db):
    b = broker()
    m = mesh("B")
    (bm,) = m.members
    cwd = unique_cwd()

    async def go():
        bb = Peer(b, bm)
        await bb.connect()
        ack = await bb.hello(cwd=cwd, pid=4040)
        r = subprocess.run([require_bin("meshctl"), "hook", "working", "--cwd", cwd, "--pid", "4040",
                            "--url", b.http_url], capture_output=True, text=True, timeout=15)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "", r.stdout  # stdout is Claude's context: a status hook prints nothing (issue 20)
        assert wait_until(lambda: presence_status(db, ack["presenceId"]) == ("working", "hook"), 20)
        await bb.close()

    run(go(), 30)


def test_meshctl_hook_without_pid_reaches_the_newest_peer_in_its_cwd(broker, mesh, db, tmp_path):
    b = broker()
    m = mesh("B")
    (bm,) = m.members
    cwd = str(tmp_path)

    async def go():
        bb = Peer(b, bm)
        await bb.connect()
        ack = await bb.hello(cwd=cwd, pid=5050)
        # run from that directory, as a Claude Code hook is; its parent is a shell, not the peer
        r = subprocess.run(["sh", "-c", f"{require_bin('meshctl')} hook working --url {b.http_url}"],
                           cwd=cwd, capture_output=True, text=True, timeout=15)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "", r.stdout  # stdout is Claude's context: a status hook prints nothing (issue 20)
        assert wait_until(lambda: presence_status(db, ack["presenceId"]) == ("working", "hook"), 20)
        await bb.close()

    run(go(), 30)
