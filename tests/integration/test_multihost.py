"""More than one broker host on one PostgreSQL (issue 24; docs/design.md
"More than one host"): two brokers on this machine with different HOST_ID,
BROKER_PORT and MESHBROKER_RUNTIME_DIR and one DATABASE_URL, each with its
meshbroker-relay, behave as two hosts."""

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import mbtest
from mbtest import Peer, run


class Relay:
    """meshbroker-relay of one broker host, started and stopped by pid"""

    def __init__(self, b, host, url, db):
        self.b = b
        self.db = db
        self.host = host
        self.url = url
        self.log = os.path.join(b.workdir, "relay.stderr")
        self.proc = None

    def start(self):
        db = self.db
        env = dict(os.environ)
        env.update(b_env(self.b))
        env["RELAY_DATABASE_URL"] = self.url
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([mbtest.require_bin("meshbroker-relay")], env=env,
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         start_new_session=True)
        sock = os.path.join(self.b.runtime_dir, "relay.sock")

        def up():
            with db.cursor() as c:
                c.execute("SELECT 1 FROM mesh.broker_host WHERE host_id = %s AND lease_until > now()",
                          (self.host,))
                return c.fetchone() is not None and os.path.exists(sock)

        assert mbtest.wait_until(up, 10), f"relay {self.host} did not register:\n{mbtest.tail(self.log)}"
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def stop(self):
        self.kill(signal.SIGTERM)


def b_env(b):
    return {k: v for k, v in b.env.items()}


@pytest.fixture
def hosts(broker, pg, db):
    """hosts(n) -> [(broker, relay)] of n hosts on the session database"""
    relays = []

    def start(n=2, **env):
        out = []
        for i in range(n):
            host = f"h{i}-{mbtest.new_id(6).lower()}"
            b = broker(HOST_ID=host, SEND_RATE_LIMIT_PER_MIN=6000, SEND_RATE_BURST=200, **env)
            r = Relay(b, host, pg.url, db).start()
            relays.append(r)
            out.append((b, r))
        return out

    yield start
    for r in relays:
        r.stop()
        text = open(r.log, "rb").read().decode("utf-8", "replace")
        print(f"\n--- relay {r.host} log:\n{mbtest.tail(r.log, 20)}")
        assert '"level":"error"' not in text or "lease lost" in text, mbtest.tail(r.log)
        assert "Sanitizer" not in text and "runtime error" not in text, mbtest.tail(r.log, 80)


def is_push(m):
    return m.get("type") == "push"


async def list_peers(p):
    tag = mbtest.new_id(10)
    await p.send_json({"type": "list_peers", "_reqId": tag})
    return await p.wait_for(lambda m: m.get("_reqId") == tag)


def test_direct_and_broadcast_work_both_ways_between_two_hosts(hosts, mesh):
    (b1, _), (b2, _) = hosts(2)
    m = mesh("alice", "bob", "carol")
    am, bm, cm = m.members

    async def go():
        a, bb, c = Peer(b1, am), Peer(b2, bm), Peer(b2, cm)
        await a.join()
        await bb.join()
        await c.join()
        t0 = time.monotonic()
        _, ack = await a.send_direct(bm.pubkey, "a to b")
        push = await bb.push(timeout=5)
        assert push["messageId"] == ack["messageId"] and bb.decrypt(push) == "a to b"
        assert time.monotonic() - t0 < 0.9, "a doorbell, not the sweep, carried it"
        t0 = time.monotonic()
        _, ack = await bb.send_direct(am.pubkey, "b to a")
        push = await a.push(timeout=5)
        assert push["messageId"] == ack["messageId"] and a.decrypt(push) == "b to a"
        assert time.monotonic() - t0 < 0.9
        # broadcast from either side reaches every other member once
        _, ack = await a.send_broadcast("to all from a")
        for p in (bb, c):
            got = await p.push(timeout=5)
            assert got["messageId"] == ack["messageId"]
        _, ack = await c.send_broadcast("to all from c")
        for p in (a, bb):
            got = await p.push(timeout=5)
            assert got["messageId"] == ack["messageId"]
        for p in (a, bb, c):
            await p.quiet(is_push, 0.3)
            await p.close()

    run(go(), 60)


def test_killed_sender_relay_loses_nothing_and_the_sweep_delivers(hosts, mesh):
    (b1, r1), (b2, r2) = hosts(2)
    m = mesh("alice", "bob")
    am, bm = m.members

    async def go():
        a, bb = Peer(b1, am), Peer(b2, bm)
        await a.join()
        await bb.join()
        r1.kill()  # the sender's relay: no doorbell leaves host 1
        acks = []
        t0 = time.monotonic()
        for i in range(20):
            _, ack = await a.send_direct(bm.pubkey, f"m{i}")
            acks.append(ack["messageId"])
        got = []
        while len(got) < 20:
            got.append((await bb.push(timeout=5))["messageId"])
        took = time.monotonic() - t0
        assert got == acks, "every acked message, in order"
        assert took < 3.5, f"the receiving host's sweep (1 s, rows older than 1 s) took {took:.1f}s"
        # the receiver's relay killed: nothing rings host 2 until it is back,
        # then it rings every local worker at once
        r2.kill()
        r1.start()
        _, ack = await a.send_direct(bm.pubkey, "while host 2's relay is down")
        await bb.quiet(is_push, 1.5)
        t0 = time.monotonic()
        r2.start()
        push = await bb.push(timeout=5)
        assert push["messageId"] == ack["messageId"]
        assert time.monotonic() - t0 < 2.5
        await a.close()
        await bb.close()

    run(go(), 60)



def test_list_peers_shows_both_hosts_and_drops_a_killed_host(hosts, mesh):
    (b1, r1), (b2, r2) = hosts(2)
    m = mesh("alice", "bob", "carol")
    am, bm, cm = m.members

    async def go():
        a, bb, c = Peer(b1, am), Peer(b2, bm), Peer(b2, cm)
        await a.join()
        await bb.join()
        t0 = time.monotonic()
        await c.join()
        # within 1 s of carol's hello, either host lists all three
        for p in (a, bb):
            while True:
                names = sorted(x["displayName"] for x in (await list_peers(p))["peers"])
                if names == ["alice", "bob", "carol"]:
                    break
                assert time.monotonic() - t0 < 1.0, f"{p.member.name} lists {names}"
                await asyncio.sleep(0.05)
        r = await list_peers(a)
        by = {x["displayName"]: x for x in r["peers"]}
        assert by["alice"]["self"] is True and by["bob"]["self"] is False
        assert by["bob"]["pubkey"] == bm.pubkey and by["bob"]["memberId"] == bm.id
        assert by["carol"]["sessionId"] == c.session_id
        # host 2 dies at once (relay, acceptor and workers SIGKILLed): its
        # lease runs out within 10 s and its peers leave alice's list
        for pid in b2.workers():
            b2.sent_signals.setdefault(pid, set()).add(int(signal.SIGKILL))
        r2.kill()
        os.killpg(b2.proc.pid, signal.SIGKILL)
        for pid in b2.workers():
            b2.kill_worker(pid)
        t0 = time.monotonic()
        while True:
            names = sorted(x["displayName"] for x in (await list_peers(a))["peers"])
            if names == ["alice"]:
                break
            assert time.monotonic() - t0 < 12, f"alice still lists {names}"
            await asyncio.sleep(0.25)
        await a.close()

    run(go(), 60)


def test_topic_posts_and_status_cross_hosts_both_ways(hosts, mesh):
    from test_topics import create, open_sealed, post, quiet_request, topic_key, v2_body
    (b1, _), (b2, _) = hosts(2)
    m = mesh("alice", "bob")
    am, bm = m.members

    async def go():
        a, bb = Peer(b1, am), Peer(b2, bm)
        await a.join()
        await bb.join()
        tid = (await create(a, "team"))["topic"]["id"]
        assert await quiet_request(bb, {"type": "topic_join", "topic": "team"}) is None
        k = await topic_key(a, tid)
        key = open_sealed(am, k["encryptedKey"], k["nonce"])
        n, ct = v2_body(key, "from host 1")
        t0 = time.monotonic()
        ack = await post(a, tid, n, ct, 2)
        got = await bb.push(timeout=5, pred=lambda x: x["messageId"] == ack["messageId"])
        assert got["topicId"] == tid and time.monotonic() - t0 < 0.9
        n, ct = v2_body(key, "from host 2")
        t0 = time.monotonic()
        ack = await post(bb, tid, n, ct, 2)
        got = await a.push(timeout=5, pred=lambda x: x["messageId"] == ack["messageId"])
        assert got["topicId"] == tid and time.monotonic() - t0 < 0.9
        # status: each host's list shows the other host's peer's status
        for p, other, st in ((bb, a, "working"), (a, bb, "dnd")):
            await p.set_status(st)
            await p.barrier()
            t0 = time.monotonic()
            while True:
                by = {x["displayName"]: x for x in (await list_peers(other))["peers"]}
                if by[p.member.name]["status"] == st:
                    break
                assert time.monotonic() - t0 < 1.0, by
                await asyncio.sleep(0.05)
        await a.close()
        await bb.close()

    run(go(), 60)


def test_a_sigkilled_worker_leaves_the_other_hosts_list_and_its_rows_are_taken_again(hosts, mesh):
    (b1, _), (b2, _) = hosts(2)
    m = mesh("alice", "bob")
    am, bm = m.members

    async def go():
        a, bb = Peer(b1, am), Peer(b2, bm)
        await a.join()
        await bb.join()
        t0 = time.monotonic()
        while sorted(x["displayName"] for x in (await list_peers(a))["peers"]) != ["alice", "bob"]:
            assert time.monotonic() - t0 < 1
            await asyncio.sleep(0.05)
        # the acceptor reaps the worker and closes its row (worker/reap.c, keyed
        # by HOST_ID): the other host stops listing it
        b2.kill_worker(bb.worker_pid())
        t0 = time.monotonic()
        while sorted(x["displayName"] for x in (await list_peers(a))["peers"]) != ["alice"]:
            assert time.monotonic() - t0 < 4, "the dead worker's presence is still listed"
            await asyncio.sleep(0.2)
        # bob back on host 1: what was sent meanwhile reaches him
        _, ack = await a.send_direct(bm.pubkey, "while bob was away")
        b1b = Peer(b1, bm)
        await b1b.join()
        push = await b1b.push(timeout=5)
        assert push["messageId"] == ack["messageId"]
        await a.close()
        await b1b.close()

    run(go(), 60)


def test_make_run_with_host_id_starts_the_relay_and_stops_it(pg, db):
    port = mbtest.free_port()
    var = tempfile.mkdtemp(prefix="mbrunh-", dir="/tmp")
    host = f"run-{mbtest.new_id(6).lower()}"
    env = dict(os.environ)
    env.update(BROKER_PORT=str(port), MESHBROKER_VAR_DIR=var, MESHBROKER_BIN=mbtest.BIN, DATABASE_URL=pg.url,
               HOST_ID=host)
    out_path = os.path.join(var, "run.out")
    with open(out_path, "wb") as out:
        p = subprocess.Popen(["bash", os.path.join(mbtest.REPO, "scripts", "run.sh")], cwd=mbtest.REPO, env=env,
                             stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)

    def relays():
        return [pid for pid in mbtest.all_pids() if mbtest.proc_exe(pid).endswith("meshbroker-relay")
                and mbtest.proc_environ(pid).get("HOST_ID") == host]

    def registered():
        with db.cursor() as c:
            c.execute("SELECT 1 FROM mesh.broker_host WHERE host_id = %s AND lease_until > now()", (host,))
            return c.fetchone() is not None

    try:
        def healthy():
            try:
                return mbtest.http_request(port, "GET", "/health", timeout=3)[0] == 200
            except OSError:
                return False

        # the relay starts first, then the acceptor
        assert mbtest.wait_until(lambda: registered() and relays() and healthy(), 60, interval=0.2), \
            mbtest.tail(out_path)
        os.kill(p.pid, signal.SIGTERM)
        p.wait(timeout=30)
        assert mbtest.wait_until(lambda: not relays(), 10), "the relay outlived make run"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        shutil.rmtree(var, ignore_errors=True)


def test_peer_events_report_peers_of_the_other_host(hosts, mesh):
    (b1, _), (b2, _) = hosts(2)
    m = mesh("watcher", "here", "there")
    wm, hm, tm = m.members

    def is_event(x):
        return x.get("type") == "push" and x.get("subtype") == "system"

    def events(e):
        return e["eventData"]["events"] if e["event"] == "peers_changed" else [dict(e["eventData"], event=e["event"])]

    async def go():
        # already there before the watcher: no event for it
        early = Peer(b2, hm)
        await early.join()
        watcher = Peer(b1, wm)
        await watcher.connect()
        await watcher.send_json(watcher.hello_msg(capabilities=["peer_events"]))
        await watcher.wait_for(lambda x: x.get("type") == "hello_ack")
        await asyncio.sleep(1.2)
        there = Peer(b2, tm)
        await there.join()
        e = await watcher.wait_for(is_event, timeout=5)
        evs = events(e)
        assert [(x["event"], x["sessionId"]) for x in evs] == [("peer_joined", there.session_id)], evs
        await there.set_status("working")
        e = await watcher.wait_for(is_event, timeout=5)
        assert events(e)[0]["event"] == "peer_status" and events(e)[0]["status"] == "working"
        await there.close()
        e = await watcher.wait_for(is_event, timeout=5)
        assert [(x["event"], x["sessionId"]) for x in events(e)] == [("peer_left", there.session_id)]
        for p in (early, watcher):
            await p.close()

    run(go(), 60)


def test_a_host_that_loses_the_database_closes_its_connections_before_its_lease_ends(broker, own_pg):
    conn = own_pg.connect()
    conn.autocommit = True
    host = f"f-{mbtest.new_id(6).lower()}"
    b = broker(database_url=own_pg.url, HOST_ID=host)
    r = Relay(b, host, own_pg.url, conn).start()
    m = mbtest.Mesh(conn)
    am = m.add("alice")
    conn.close()

    async def go():
        a = Peer(b, am)
        await a.join()
        t0 = time.monotonic()
        own_pg.stop("immediate")
        try:
            code, reason = await a.wait_closed(timeout=12)
        finally:
            own_pg.start()
        took = time.monotonic() - t0
        assert (code, reason) == (1001, "host_fenced"), (code, reason)
        assert took < 10, f"fenced after {took:.1f}s: the lease (10 s) had run out"
        assert took > 5, f"fenced after {took:.1f}s: too early"

    try:
        run(go(), 60)
        # the database back: the relay holds the lease again
        conn = own_pg.connect()

        def reregistered():
            with conn.cursor() as c:
                c.execute("SELECT 1 FROM mesh.broker_host WHERE host_id = %s AND lease_until > now()", (host,))
                return c.fetchone() is not None

        assert mbtest.wait_until(reregistered, 15, interval=0.2), mbtest.tail(r.log)
        conn.close()
    finally:
        r.stop()
    b.allow_log(r"database", r"PostgreSQL", r"connection")


def test_the_relay_maps_a_presence_table_the_acceptor_replaced(hosts, mesh):
    (b1, _), (b2, _) = hosts(2)
    m = mesh("alice", "bob")
    am, bm = m.members
    b2.stop()
    os.unlink(os.path.join(b2.runtime_dir, "presence.shm"))
    b2.start()  # a new file, as after an upgrade that changed its layout
    time.sleep(1.2)  # the relay looks once a sweep

    async def go():
        a, bb = Peer(b1, am), Peer(b2, bm)
        await a.join()
        await bb.join()
        t0 = time.monotonic()
        _, ack = await a.send_direct(bm.pubkey, "to the restarted host")
        push = await bb.push(timeout=5)
        assert push["messageId"] == ack["messageId"]
        assert time.monotonic() - t0 < 0.9, "rung by the doorbell, not found by the sweep"
        await a.close()
        await bb.close()

    run(go(), 60)


def test_three_hosts_list_each_other_and_a_broadcast_reaches_all(hosts, mesh):
    hs = hosts(3)
    m = mesh("p0", "p1", "p2")

    async def go():
        peers = [Peer(b, mm) for (b, _), mm in zip(hs, m.members)]
        for p in peers:
            await p.join()
        t0 = time.monotonic()
        for p in peers:
            while sorted(x["displayName"] for x in (await list_peers(p))["peers"]) != ["p0", "p1", "p2"]:
                assert time.monotonic() - t0 < 1.0
                await asyncio.sleep(0.05)
        for i, p in enumerate(peers):
            _, ack = await p.send_broadcast(f"from p{i}")
            for q in peers:
                if q is not p:
                    assert (await q.push(timeout=5))["messageId"] == ack["messageId"]
        for p in peers:
            await p.quiet(is_push, 0.3)
            await p.close()

    run(go(), 60)


def test_a_ban_on_one_host_closes_the_members_connections_on_the_other(hosts, mesh):
    from test_moderation import request
    (b1, _), (b2, _) = hosts(2)
    m = mesh("carol")
    admin = m.add("admin", role="admin")
    carol = m.members[0]

    async def go():
        a, c1, c2 = Peer(b1, admin), Peer(b2, carol), Peer(b2, carol)
        await a.join()
        await c1.join()
        await c2.join()
        t0 = time.monotonic()
        r = await request(a, {"type": "ban", "target": carol.pubkey[:12]})
        assert r["type"] == "ban_ack", r
        for c in (c1, c2):
            assert await c.wait_closed(timeout=5) == (4002, "banned")
        assert time.monotonic() - t0 < 1.5
        await a.close()

    run(go(), 60)


# ---- the operations that reach a connection on another host (issue 24,
# docs/design.md "More than one host": set_status scope member, a hook,
# session replace, kick/disconnect (and stale), revocation, mesh archive)


async def status_seen(viewer, name, session_id, status, within=2.0):
    """poll viewer's list_peers until name's session session_id shows status"""
    t0 = time.monotonic()
    while True:
        ps = [x for x in (await list_peers(viewer))["peers"]
              if x["displayName"] == name and x.get("sessionId") == session_id]
        if ps and ps[0]["status"] == status:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < within, ps
        await asyncio.sleep(0.05)


def presence_row_status(db, presence_id):
    with db.cursor() as c:
        c.execute("SELECT status, status_source FROM mesh.presence WHERE id = %s", (presence_id,))
        return tuple(c.fetchone())


def test_set_status_scope_member_and_a_hook_reach_the_members_session_on_the_other_host(hosts, mesh, db):
    from test_status_hooks import hook
    (b1, _), (b2, _) = hosts(2, HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED="1")
    m = mesh("alice", "watcher")
    am, wm = m.members
    cwd = f"/tmp/meshbroker-xhost-{mbtest.new_id(8)}"

    async def go():
        a1, a2, w = Peer(b1, am), Peer(b2, am), Peer(b1, wm)
        await a1.join()
        await a2.connect()
        ack2 = await a2.hello(cwd=cwd)
        assert ack2["type"] == "hello_ack", ack2
        await w.join()
        # scope member on host 1: the session on host 2 takes it (manual)
        await a1.send_json({"type": "set_status", "status": "working", "scope": "member"})
        await a1.barrier()
        await status_seen(w, "alice", a2.session_id, "working")  # a third peer, on host 1
        await status_seen(a1, "alice", a2.session_id, "working")
        assert presence_row_status(db, ack2["presenceId"]) == ("working", "manual")  # the session's own row
        await status_seen(a2, "alice", a1.session_id, "working")  # and the caller's own session, seen from host 2
        # a hook posted to host 1 for the session whose cwd is on host 2
        st, body = hook(b1, {"cwd": cwd, "status": "dnd"})
        assert (st, body) == (200, {"ok": True, "presence_id": ack2["presenceId"]}), body
        await status_seen(w, "alice", a2.session_id, "dnd")
        assert presence_row_status(db, ack2["presenceId"]) == ("dnd", "hook")
        # a hook that matches nothing anywhere is still pending
        st, body = hook(b1, {"cwd": cwd + "-nobody", "status": "working"})
        assert (st, body) == (200, {"ok": True, "pending": True}), body
        for p in (a1, a2, w):
            await p.close()

    run(go(), 60)


def test_a_hello_on_another_host_replaces_the_same_session_as_on_one_host(hosts, mesh):
    (b1, _), (b2, _) = hosts(2)
    m = mesh("alice", "bob")
    am, bm = m.members

    async def go():
        old = Peer(b1, am)
        await old.join()
        bob = Peer(b2, bm)
        await bob.join()
        new = Peer(b2, am)
        new.session_id = old.session_id
        t0 = time.monotonic()
        await new.join()
        assert await old.wait_closed(timeout=5) == (1000, "session_replaced")
        assert time.monotonic() - t0 < 1.5
        # another sessionId of the same member is left alone
        other = Peer(b1, am)
        await other.join()
        again = Peer(b2, am)
        await again.join()
        await asyncio.sleep(1.0)
        await other.barrier(timeout=5)
        peers = await list_peers(bob)
        assert sorted(x["sessionId"] for x in peers["peers"] if x["displayName"] == "alice") == \
            sorted([new.session_id, other.session_id, again.session_id]), peers
        for p in (new, bob, other, again):
            await p.close()

    run(go(), 60)


def test_a_hello_with_the_same_session_key_on_another_host_replaces_the_older(hosts, mesh):
    from test_sessions import SessionPeer, new_key
    (b1, _), (b2, _) = hosts(2)
    m = mesh("A")
    k = new_key()

    async def go():
        old = SessionPeer(b1, m.members[0], key=k)
        await old.join()
        new = SessionPeer(b2, m.members[0], key=k)  # another sessionId, the same key
        await new.join()
        closed = await old.wait_closed(timeout=5)
        await new.close()
        return closed

    assert run(go(), 30) == (1000, "session_replaced")


def test_kick_and_disconnect_reach_connections_on_the_other_host(hosts, mesh, db):
    from test_moderation import audit, request
    from test_sessions import SessionPeer
    (b1, _), (b2, _) = hosts(2)
    m = mesh("bob", "dave", "carol")
    bob, dave, carol = m.members
    owner = m.add("owner", sk=m.owner)

    async def go():
        o, c = Peer(b1, owner), Peer(b1, carol)
        bp, bs, d = Peer(b2, bob), SessionPeer(b2, bob, session=True), Peer(b2, dave)
        for p in (o, c, bp, bs, d):
            await p.join()
        e = await request(o, {"type": "kick", "target": "nobody"})
        assert e["code"] == "not_found", e
        # kick: the remote control-plane connection is listed and left, the session one closed 4001
        r = await request(o, {"type": "kick", "target": "bob"})
        assert r["type"] == "kick_ack" and r["kicked"] == ["bob"] and r["skipped_control_plane"] == ["bob"], r
        t0 = time.monotonic()
        assert await bs.wait_closed(timeout=5) == (4001, "kicked")
        assert time.monotonic() - t0 < 1.5
        # disconnect by pubkey prefix: 1000 disconnected, on the other host
        r = await request(o, {"type": "disconnect", "target": bob.pubkey[:8]})
        assert r["kicked"] == ["bob"], r
        assert await bp.wait_closed(timeout=5) == (1000, "disconnected")
        # all: this host's and the other's, never the caller's own
        r = await request(o, {"type": "disconnect", "all": True})
        assert sorted(r["kicked"]) == ["carol", "dave"], r
        assert await c.wait_closed(timeout=5) == (1000, "disconnected")
        assert await d.wait_closed(timeout=5) == (1000, "disconnected")
        rows = audit(db, m.id, "peer_kicked", "peer_disconnected")
        assert [len(x[2]["presenceIds"]) for x in rows] == [1, 1, 2], rows
        await o.close()

    run(go(), 60)


def test_kick_stale_matches_connections_not_heard_for_that_long_on_either_host(hosts, mesh):
    from test_moderation import request
    (b1, _), (b2, _) = hosts(2, PING_INTERVAL_SECONDS="1")
    m = mesh("quiet1", "quiet2", "alive1", "alive2")
    q1m, q2m, a1m, a2m = m.members
    owner = m.add("owner", sk=m.owner)

    async def go():
        o, q1, a1 = Peer(b1, owner), Peer(b1, q1m), Peer(b1, a1m)
        q2, a2 = Peer(b2, q2m), Peer(b2, a2m)
        for p in (o, q1, a1, q2, a2):
            await p.join()
        # two connections stop answering the broker's pings (1 s apart)
        for p in (q1, q2):
            p.ws.transport.pause_reading()
        await asyncio.sleep(5.0)
        r = await request(o, {"type": "disconnect", "stale": 3500})
        # this host's stale connection is named; the other host judges its own
        assert r["type"] == "disconnect_ack" and r["kicked"] == ["quiet1"], r
        q1.ws.transport.resume_reading()
        assert await q1.wait_closed(timeout=5) == (1000, "disconnected_stale")
        # quiet2 answers the pings waiting for it only once its host has judged it
        await asyncio.sleep(1.0)
        q2.ws.transport.resume_reading()
        assert await q2.wait_closed(timeout=5) == (1000, "disconnected_stale")
        # the connections that answered stay
        for p in (a1, a2):
            await p.barrier(timeout=5)
        r = await request(o, {"type": "kick", "stale": 3500})
        assert r["kicked"] == [] and r.get("skipped_control_plane", []) == [], r
        for p in (o, a1, a2):
            await p.close()

    run(go(), 60)


def test_a_revocation_closes_the_members_connections_on_every_host(hosts, mesh, pg, db):
    from invites import meshctl
    (b1, _), (b2, _) = hosts(2)
    m = mesh("alice", "bob", "carol")
    am, bm, cm = m.members

    async def go():
        a, b_1, b_2, c_1, c_2 = Peer(b1, am), Peer(b1, bm), Peer(b2, bm), Peer(b1, cm), Peer(b2, cm)
        for p in (a, b_1, b_2, c_1, c_2):
            await p.join()
        # meshctl member revoke, run on host 1: both hosts' connections close
        t0 = time.monotonic()
        r = await asyncio.to_thread(meshctl, ["member", "revoke", m.id, bm.id],
                                    {"DATABASE_URL": pg.url, "MESHBROKER_RUNTIME_DIR": b1.runtime_dir})
        assert r.stdout.strip() == bm.id, r.stdout
        for p in (b_1, b_2):
            assert await p.wait_closed(timeout=5) == (4002, "revoked")
        assert time.monotonic() - t0 < 2.5  # meshctl's start-up included
        # a revocation in plain SQL (any host's psql): the same, within ~2 s
        t0 = time.monotonic()
        with db.cursor() as cur:
            cur.execute("UPDATE mesh.member SET revoked_at = now() WHERE id = %s", (cm.id,))
        for p in (c_1, c_2):
            assert await p.wait_closed(timeout=5) == (4002, "revoked")
        assert time.monotonic() - t0 < 2.0
        await a.barrier(timeout=5)  # the others stay
        await a.close()

    run(go(), 60)


def test_archiving_a_mesh_closes_its_connections_on_every_host(hosts, mesh, db):
    (b1, _), (b2, _) = hosts(2)
    m = mesh("alice", "bob")
    other = mesh("zed")
    am, bm = m.members

    async def go():
        a, b_, z = Peer(b1, am), Peer(b2, bm), Peer(b2, other.members[0])
        for p in (a, b_, z):
            await p.join()
        t0 = time.monotonic()
        with db.cursor() as cur:
            cur.execute("UPDATE mesh.mesh SET archived_at = now() WHERE id = %s", (m.id,))
        for p in (a, b_):
            assert await p.wait_closed(timeout=5) == (4002, "mesh_archived")
        assert time.monotonic() - t0 < 2.0
        await z.barrier(timeout=5)  # another mesh's connection stays
        again = Peer(b1, am)
        await again.connect()
        e = await again.hello()
        assert e["type"] == "error", e
        await z.close()

    run(go(), 60)


def test_meshctl_mesh_archive_closes_the_meshs_connections_on_one_host_without_host_id(broker, mesh, pg, db):
    from invites import meshctl
    b = broker()
    m = mesh("alice", "bob")
    other = mesh("zed")
    am, bm = m.members

    async def go():
        a, b_, z = Peer(b, am), Peer(b, bm), Peer(b, other.members[0])
        for p in (a, b_, z):
            await p.join()
        t0 = time.monotonic()
        r = await asyncio.to_thread(meshctl, ["mesh", "archive", m.id],
                                    {"DATABASE_URL": pg.url, "MESHBROKER_RUNTIME_DIR": b.runtime_dir})
        assert r.returncode == 0 and r.stdout.strip() == m.id, (r.stdout, r.stderr)
        for p in (a, b_):
            assert await p.wait_closed(timeout=5) == (4002, "mesh_archived")
        assert time.monotonic() - t0 < 1.5  # meshctl's start-up included
        await z.barrier(timeout=5)
        r = await asyncio.to_thread(meshctl, ["mesh", "archive", m.id],
                                    {"DATABASE_URL": pg.url, "MESHBROKER_RUNTIME_DIR": b.runtime_dir}, 30, False)
        assert r.returncode != 0 and "is archived" in r.stderr, (r.stdout, r.stderr)
        await z.close()

    run(go(), 60)
    with db.cursor() as c:
        c.execute("SELECT archived_at IS NOT NULL FROM mesh.mesh WHERE id = %s", (m.id,))
        assert c.fetchone()[0] is True
