"""A connection's leave in one statement (issue 23, docs/design.md "The leave
in one statement"): the marks of the pushes the peer acknowledged, the give
back of everything else the connection claimed and the presence row's close
with its peer_left are one statement (mesh.presence_leave, migration 0016),
and the prepared-statement probe (`SELECT pg_backend_pid()`, db/db.c) is not
on a hello's or a leave's path.  And the leave still does what the four
statements did:

- rows the leaving connection claimed and the peer never acknowledged go to
  another live connection of the member, woken by the leave, in order;
- a push the peer acknowledged right before its close is marked delivered
  (in the leave's own statement when no earlier one carried it) and never
  pushed again;
- each presence row gets one peer_left, and the audit chain verifies.

Statements are counted in PostgreSQL's own log (log_statement = all) of a
private cluster; waits are for events with generous deadlines."""

import asyncio
import json
import os
import re
import subprocess

import mbtest
from mbtest import Mesh, Peer, RawWS, is_push, run, wait_until

FAST = dict(SEND_RATE_LIMIT_PER_MIN=1_000_000, SEND_RATE_BURST=100_000, MAX_MESSAGE_BYTES=262_144)

# "%m [%p] %a " then the statement: "statement: ..." (simple protocol) or
# "execute <name>: ..." (extended: every statement a worker sends)
STMT = re.compile(r"\[\d+\] (\S*) LOG:  (?:statement|execute [^:]*): (.*)$")
# a live worker's sweep of open presence rows (worker/reap.c), which any
# worker's first tick may run once per 10 s, and the sweep's chain step of
# pending audit rows (migration 0020): not part of a hello or a leave
SWEEP = ("disconnected_at IS NULL AND broker_host", "mesh.audit_chain_pending(")


def _log_statements(pg):
    conn = pg.connect()
    with conn.cursor() as c:
        c.execute("ALTER SYSTEM SET log_statement = 'all'")
        c.execute("ALTER SYSTEM SET log_line_prefix = '%m [%p] %a '")
        c.execute("SELECT pg_reload_conf()")
    conn.close()


def _log_size(pg):
    return os.path.getsize(pg.log)


def _statements(pg, start, end=None):
    """the statements broker processes (application_name meshbroker) logged
    between two offsets of the cluster's log, the sweep left out"""
    with open(pg.log, "rb") as f:
        f.seek(start)
        data = f.read() if end is None else f.read(end - start)
    out = []
    for line in data.decode(errors="replace").splitlines():
        m = STMT.search(line)
        if m and m.group(1) == "meshbroker" and not any(x in m.group(2) for x in SWEEP):
            out.append(m.group(2))
    return out


def _closed(conn, presence):
    with conn.cursor() as c:
        c.execute("SELECT disconnected_at IS NOT NULL FROM mesh.presence WHERE id = %s", (presence,))
        r = c.fetchone()
        return bool(r and r[0])


def _peer_left(conn, mesh_id):
    with conn.cursor() as c:
        c.execute("SELECT payload->>'presenceId' FROM mesh.audit_log WHERE mesh_id = %s "
                  "AND event_type = 'peer_left'", (mesh_id,))
        return sorted(r[0] for r in c.fetchall())


def _presences(conn, mesh_id):
    with conn.cursor() as c:
        c.execute("SELECT id FROM mesh.presence WHERE mesh_id = %s AND disconnected_at IS NOT NULL", (mesh_id,))
        return sorted(r[0] for r in c.fetchall())


def _verify_chain(url, mesh_id):
    r = subprocess.run([mbtest.require_bin("meshctl"), "audit", "verify", mesh_id],
                       env=dict(os.environ, DATABASE_URL=url), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"meshctl audit verify: {r.returncode} {r.stdout} {r.stderr}"


def test_a_close_is_one_statement_and_no_hello_or_leave_sends_the_probe(broker, own_pg):
    _log_statements(own_pg)
    b = broker(database_url=own_pg.url)
    conn = own_pg.connect()
    m = Mesh(conn)
    am = m.add("A")
    seen = {}

    async def one(label):
        start = _log_size(own_pg)
        p = Peer(b, am)
        presence = (await p.join())["presenceId"]
        pid = p.worker_pid()
        # the hello's statements end with mesh.hello_join: with nothing
        # queued for the member, no first claim follows (migration 0022)
        assert wait_until(lambda: any("mesh.hello_join" in s for s in _statements(own_pg, start)), 20), \
            f"{label}: no mesh.hello_join after the hello: {_statements(own_pg, start)}"
        await asyncio.sleep(1.0)  # room for a claim, were one coming
        mid = _log_size(own_pg)
        await p.close()
        # the leave is over when its worker is (reap_leave waits for it)
        assert wait_until(lambda: pid not in b.workers(), 20), f"{label}: the worker did not exit"
        assert _closed(conn, presence), f"{label}: the presence row is still open"
        seen[label] = (_statements(own_pg, start, mid), _statements(own_pg, mid))

    async def go():
        await one("cold")  # the member's first hello: its membership looked up
        await one("warm")  # the next one: from the member cache, re-checked by mesh.hello_join

    run(go(), 90)
    for label, (hello, leave) in seen.items():
        assert not any("pg_backend_pid" in s for s in hello + leave), \
            f"{label}: the prepared-statement probe went out: {hello + leave}"
        assert len(leave) == 1 and "mesh.presence_leave" in leave[0], \
            f"{label}: the leave was {len(leave)} statements: {leave}"
    cold, warm = seen["cold"][0], seen["warm"][0]
    # cold: the lookup, mesh.hello_join; warm: mesh.hello_join alone (with
    # nothing queued, the first claim is left out, 0022)
    assert len(cold) == 2 and "mesh.hello_join" in cold[1], f"cold hello: {cold}"
    assert len(warm) == 1 and "mesh.hello_join" in warm[0], f"warm hello: {warm}"
    assert _peer_left(conn, m.id) == _presences(conn, m.id) and len(_presences(conn, m.id)) == 2
    conn.close()
    _verify_chain(own_pg.url, m.id)


def _raw_hello(b, member, rcvbuf):
    """a raw WebSocket client with a small receive buffer, past its hello;
    (RawWS, presenceId)"""
    raw = RawWS(b.port, rcvbuf=rcvbuf, timeout=20)
    raw.send_text(json.dumps(Peer(b, member).hello_msg()))
    while True:
        fin, op, payload = raw.recv_frame(20)
        if op == 0x1:
            msg = json.loads(payload)
            assert msg.get("type") == "hello_ack", msg
            return raw, msg["presenceId"]


def _raw_push(raw):
    while True:
        fin, op, payload = raw.recv_frame(20)
        if op == 0x1:
            msg = json.loads(payload)
            if is_push(msg):
                return msg


def _rows(db, member_id):
    """{message_id: (claimed_by, delivered)}"""
    with db.cursor() as c:
        c.execute("SELECT message_id, claimed_by, delivered_at IS NOT NULL FROM mesh.delivery "
                  "WHERE recipient_member_id = %s", (member_id,))
        return {r[0]: (r[1], r[2]) for r in c.fetchall()}


def test_rows_given_back_at_a_close_go_to_the_members_other_live_connection_in_order(broker, mesh, db, pg):
    b = broker(**FAST)
    m = mesh("R", "S")
    rm, sm = m.members
    n, k = 12, 3
    raw, first = _raw_hello(b, rm, rcvbuf=4096)

    async def go():
        s = Peer(b, sm)
        await s.join()
        acked = []
        for i in range(n):  # ~60 KB pushes: one never fits whole in the raw client's buffer
            _, ack = await s.send_direct(rm.pubkey, f"{i}:" + os.urandom(22_500).hex(), timeout=30)
            assert ack["queued"] is True, ack
            acked.append(ack["messageId"])
        assert wait_until(lambda: sum(1 for c, _ in _rows(db, rm.id).values() if c == first) == n, 30), \
            f"rows not claimed by the first connection: {_rows(db, rm.id)}"
        # the member's other connection: live, but the rows are the first's
        other = Peer(b, rm)
        await other.join()
        await other.quiet(is_push, 0.5)
        got1 = [_raw_push(raw) for _ in range(k)]
        assert [x["messageId"] for x in got1] == acked[:k]
        raw.reset()  # at once: the marks of what it read may still be waiting for the leave
        got2 = []
        while len(got2) < n - k:
            got2.append(await other.push(timeout=30))
        await other.quiet(is_push, 0.5)
        await other.close()
        await s.close()
        return acked, got2

    try:
        acked, got2 = run(go(), 120)
    finally:
        raw.close()
    # woken by the leave: the rest, each once, in the order accepted; what the
    # first connection read is not pushed again
    assert [x["messageId"] for x in got2] == acked[k:]
    assert wait_until(lambda: all(d for _, d in _rows(db, rm.id).values()), 20), "rows left undelivered"
    rows = _rows(db, rm.id)
    assert {rows[i][0] for i in acked[:k]} == {first}
    assert first not in {rows[i][0] for i in acked[k:]}
    assert wait_until(lambda: _peer_left(db, m.id) == _presences(db, m.id) and first in _presences(db, m.id), 20), \
        f"peer_left {_peer_left(db, m.id)} for closed rows {_presences(db, m.id)}"
    _verify_chain(pg.url, m.id)


def test_a_push_read_right_before_the_close_is_marked_by_the_leave_and_not_pushed_again(broker, mesh, db, pg):
    b = broker(**FAST)
    m = mesh("A", "B")
    am, bm = m.members
    attempts = 6

    def marked_by_leave(message_id, presence):
        """delivered_at of the row is its presence's disconnected_at: one
        transaction (both now()), the leave's statement"""
        with db.cursor() as c:
            c.execute("SELECT d.delivered_at IS NOT NULL, d.claimed_by, d.delivered_at = p.disconnected_at "
                      "FROM mesh.delivery d JOIN mesh.presence p ON p.id = %s "
                      "WHERE d.message_id = %s AND d.recipient_member_id = %s", (presence, message_id, bm.id))
            return c.fetchone()

    async def go():
        a = Peer(b, am)
        await a.join()
        rode = 0
        for i in range(attempts):
            r = Peer(b, bm)
            presence = (await r.join())["presenceId"]
            _, ack = await a.send_direct(bm.pubkey, f"read {i}")
            p = await r.push(timeout=20)
            assert p["messageId"] == ack["messageId"]
            await r.close()  # right away: its mark (50 ms on) has likely not gone out yet
            assert wait_until(lambda: _closed(db, presence), 20)
            delivered, holder, by_leave = marked_by_leave(ack["messageId"], presence)
            assert delivered and holder == presence, f"a push the client read is not marked: {holder}"
            rode += bool(by_leave)
            # the member's next connection is not pushed it again
            nxt = Peer(b, bm)
            await nxt.join()
            await nxt.quiet(is_push, 0.5)
            await nxt.close()
            if rode:
                break
        await a.close()
        return rode

    rode = run(go(), 150)
    assert rode, f"in {attempts} closes right after a read, no mark rode on the leave's statement"
    assert wait_until(lambda: _peer_left(db, m.id) == _presences(db, m.id), 20), \
        f"peer_left {_peer_left(db, m.id)} for closed rows {_presences(db, m.id)}"
    _verify_chain(pg.url, m.id)


def _chain_lock(db, mesh_id, take):
    """take or free the mesh's chain lock (the key mesh.audit_record and the
    chain steps use) as a session lock of the test's own connection"""
    with db.cursor() as c:
        c.execute(f"SELECT pg_advisory_{'lock' if take else 'unlock'}(hashtextextended('mesh.audit_log:' || %s, 0))",
                  (mesh_id,))


def _pending_left(db, presence):
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.audit_pending WHERE event_type = 'peer_left' "
                  "AND payload::jsonb->>'presenceId' = %s", (presence,))
        return c.fetchone()[0]


def test_with_the_chain_lock_busy_a_leave_that_gave_rows_back_frees_them_at_once_and_chains_later(
        broker, mesh, db, pg):
    b = broker(**FAST)
    m = mesh("R", "S")
    rm, sm = m.members
    n = 6
    raw, first = _raw_hello(b, rm, rcvbuf=4096)
    held = False

    async def go():
        nonlocal held
        s = Peer(b, sm)
        await s.join()
        acked = []
        for i in range(n):
            _, ack = await s.send_direct(rm.pubkey, f"{i}:" + os.urandom(22_500).hex(), timeout=30)
            acked.append(ack["messageId"])
        assert wait_until(lambda: sum(1 for c, _ in _rows(db, rm.id).values() if c == first) == n, 30)
        await s.close()
        other = Peer(b, rm)
        await other.join()
        # every statement of the mesh that writes an audit row from here on
        # finds the chain lock busy
        _chain_lock(db, m.id, True)
        held = True
        raw.reset()  # read nothing: all n are given back
        got = [await other.push(timeout=30) for _ in range(n)]
        # the rows came while the lock was still held: the leave committed
        # without waiting for it, its peer_left left pending
        assert _closed(db, first)
        assert _pending_left(db, first) == 1 and first not in _peer_left(db, m.id)
        _chain_lock(db, m.id, False)
        held = False
        await other.close()
        return acked, got

    try:
        acked, got = run(go(), 120)
    finally:
        if held:
            _chain_lock(db, m.id, False)
        raw.close()
    assert [x["messageId"] for x in got] == acked
    # the mesh's next chain step chains it (the other connection's leave,
    # which finds the lock free; else a sweep's, test_leave_offlock.py)
    assert wait_until(lambda: first in _peer_left(db, m.id), 20), "the pending peer_left was never chained"
    assert _pending_left(db, first) == 0
    assert wait_until(lambda: _peer_left(db, m.id) == _presences(db, m.id), 20)
    _verify_chain(pg.url, m.id)


def test_with_the_chain_lock_busy_a_leave_that_gave_nothing_back_does_not_wait_for_it_either(
        broker, mesh, db, pg):
    # before migration 0020 this leave waited for the lock in its statement
    # (the test asserted that wait); now it only tries it, as a leave that
    # gave rows back did: its peer_left waits pending (docs/design.md "The
    # leave off the chain lock")
    b = broker()
    m = mesh("A")
    am = m.members[0]
    held = False

    async def go():
        nonlocal held
        p = Peer(b, am)
        presence = (await p.join())["presenceId"]
        pid = p.worker_pid()
        _chain_lock(db, m.id, True)
        held = True
        await p.close()
        assert await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_until(lambda: pid not in b.workers(), 20)), "the leave waits"
        # committed while the lock is held: closed, its peer_left pending
        assert _closed(db, presence) and _pending_left(db, presence) == 1
        assert presence not in _peer_left(db, m.id)
        _chain_lock(db, m.id, False)
        held = False
        return presence

    try:
        presence = run(go(), 60)
    finally:
        if held:
            _chain_lock(db, m.id, False)
    # the reader chains what is pending before it reads
    _verify_chain(pg.url, m.id)
    assert _pending_left(db, presence) == 0
    assert _peer_left(db, m.id) == _presences(db, m.id) == [presence]
