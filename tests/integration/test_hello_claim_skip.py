"""The first claim a hello can leave out (issue 23, docs/design.md "The first
claim a hello can skip", migration 0022).

On one host, a hello's worker binds its socket before mesh.hello_join runs
(after the member cache, or after the lookup); the statement answers whether
the member has anything undelivered (r_queued).  With nothing queued and no
wake before hello_ack, the hello sends no claim: whatever commits after the
statement's snapshot wakes the worker, and that wake's claim takes it.  These tests hold
mesh.hello_join in its statement (a psql-side lock on the member's row) to
look at the worker between its socket and its answer, and count the
statements in PostgreSQL's own log."""

import asyncio
import glob
import os
import threading

from mbtest import Mesh, Peer, is_push, run, wait_until
from test_leave_statement import _log_size, _log_statements, _statements

FAST = dict(SEND_RATE_LIMIT_PER_MIN=1_000_000, SEND_RATE_BURST=100_000)
CLAIMS = ("delivery_push_claim", "delivery_mark_claim")


def _hold_member(pg, member_id):
    """a session holding the member's row (FOR NO KEY UPDATE: hello_join's
    UPDATE of last_seen_at waits for it; a send's FOR KEY SHARE does not);
    returns (connection, release)"""
    conn = pg.connect()
    conn.autocommit = False
    with conn.cursor() as c:
        c.execute("SELECT 1 FROM mesh.member WHERE id = %s FOR NO KEY UPDATE", (member_id,))

    def release():
        conn.rollback()
        conn.close()
    return conn, release


def _waiting_hello_join(pg):
    conn = pg.connect()
    with conn.cursor() as c:
        c.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%mesh.hello_join%' "
                  "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
        n = c.fetchone()[0]
    conn.close()
    return n


def test_a_warm_hello_with_nothing_queued_sends_no_claim_and_one_with_a_queued_row_does(broker, own_pg):
    _log_statements(own_pg)
    b = broker(database_url=own_pg.url, **FAST)
    conn = own_pg.connect()
    m = Mesh(conn)
    rm, sm = m.add("R"), m.add("S")

    async def queued_then_hello(text):
        """S sends R one message while R is away, then R says hello: the
        push it gets, and the statements from its hello on"""
        s = Peer(b, sm)
        await s.join()
        _, ack = await s.send_direct(rm.pubkey, text)
        assert ack["queued"] is True, ack
        start = _log_size(own_pg)
        r = Peer(b, rm)
        await r.join()
        got = await r.push(timeout=20)
        assert got["messageId"] == ack["messageId"]
        statements = _statements(own_pg, start)
        await r.close()
        await s.close()
        return statements

    async def go():
        # a message before the member's first hello ever: the cold hello
        # (the lookup) claims after its mesh.hello_join, and gets it
        cold_queued = await queued_then_hello("before the first hello")
        assert any(c in x for x in cold_queued for c in CLAIMS), f"a cold hello with a row queued: {cold_queued}"
        # warm, nothing queued: mesh.hello_join alone
        start = _log_size(own_pg)
        r = Peer(b, rm)
        await r.join()
        await asyncio.sleep(1.0)  # room for a claim, were one coming
        warm_empty = _statements(own_pg, start)
        await r.close()
        # a message while R is away, then a warm hello: the claim runs and delivers it
        warm_queued = await queued_then_hello("while away")
        return warm_empty, warm_queued

    warm_empty, warm_queued = run(go(), 90)
    hello = [x for x in warm_empty if "mesh.hello_join" in x]
    assert len(hello) == 1 and not any(c in x for x in warm_empty for c in CLAIMS), \
        f"a warm hello with nothing queued: {warm_empty}"
    assert any(c in x for x in warm_queued for c in CLAIMS), f"a warm hello with a row queued: {warm_queued}"
    conn.close()


def test_a_warm_hellos_socket_is_bound_before_its_statement_and_a_send_during_it_is_delivered(broker, own_pg):
    b = broker(database_url=own_pg.url, **FAST)
    conn = own_pg.connect()
    m = Mesh(conn)
    rm, sm = m.add("R"), m.add("S")
    sockdir = os.path.join(b.runtime_dir, "w")

    async def go():
        r = Peer(b, rm)
        await r.join()  # cold: fills the member cache
        await r.close()
        s = Peer(b, sm)
        await s.join()
        before = set(glob.glob(os.path.join(sockdir, "*.sock")))
        lock, release = _hold_member(own_pg, rm.id)
        released = False
        try:
            r = Peer(b, rm)
            await r.connect()
            await r.send_json(r.hello_msg())
            assert wait_until(lambda: _waiting_hello_join(own_pg) == 1, 20), "mesh.hello_join did not wait"
            # the statement is running: the worker's socket is already there
            new = set(glob.glob(os.path.join(sockdir, "*.sock"))) - before
            assert len(new) == 1, f"no worker socket while the hello's statement runs: {new}"
            # a send now (its statement does not wait for the held row) reaches R
            _, ack = await s.send_direct(rm.pubkey, "during the hello")
            assert ack["queued"] is True, ack
            threading.Timer(0.3, release).start()
            released = True
            hello_ack = await r.wait_for(lambda x: x.get("type") in ("hello_ack", "error"), 20)
            assert hello_ack.get("type") == "hello_ack", hello_ack
            got = await r.push(timeout=20)
            assert got["messageId"] == ack["messageId"]
            # and one sent after the hello: woken, claimed, pushed
            _, ack2 = await s.send_direct(rm.pubkey, "after the hello")
            got2 = await r.push(timeout=20)
            assert got2["messageId"] == ack2["messageId"]
            await r.quiet(is_push, 0.5)
            await r.close()
        finally:
            if not released:
                release()
        await s.close()

    run(go(), 90)
    conn.close()


def test_reconnects_racing_sends_lose_nothing(broker, mesh, db):
    """a member that reconnects over and over while another sends to it:
    every message sent is pushed to one of its connections"""
    b = broker(**FAST)
    m = mesh("R", "S")
    rm, sm = m.members
    n = 40

    async def go():
        s = Peer(b, sm)
        await s.join()
        r = Peer(b, rm)
        await r.join()
        await r.close()
        sent, got = [], set()

        async def sender():
            for i in range(n):
                _, ack = await s.send_direct(rm.pubkey, f"m{i}")
                sent.append(ack["messageId"])
                await asyncio.sleep(0.01)

        async def receiver():
            # connections of 50 ms while sending, then of 1 s until all came;
            # pushes a closed connection did not read come with a later one
            while not (len(sent) == n and set(sent) <= got):
                r = Peer(b, rm)
                await r.join()
                try:
                    while True:
                        p = await r.push(timeout=0.05 if len(sent) < n else 1.0)
                        got.add(p["messageId"])
                except asyncio.TimeoutError:
                    pass
                got.update(x["messageId"] for x in r.backlog if is_push(x))
                await r.close()
                got.update(x["messageId"] for x in r.backlog if is_push(x))

        await asyncio.wait_for(asyncio.gather(sender(), receiver()), 60)
        await s.close()
        return sent, got

    sent, got = run(go(), 90)
    assert len(sent) == n and set(sent) <= got, f"not pushed: {set(sent) - got}"
