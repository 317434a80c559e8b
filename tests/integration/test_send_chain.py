"""The send's audit chain step after its ack (issue 23, migration 0021,
docs/design.md "The chain step off the send's path"):

- a send's message_sent row is written pending in the send's transaction
  and chained by the sender's worker after the ack (its try-only retry,
  CHAIN_RETRY_MS after the batch answered), with no further client
  activity: within a bound, and only once a chain lock held elsewhere is
  free (no statement waits for it meanwhile);
- after a burst from several senders (pipelined and one at a time), every
  pending row is chained without anyone sending, `meshctl audit verify`
  finds the chain intact, and there is exactly one message_sent row per
  stored send (by its messageId), none for a refused one.

The bounds are generous (10 s against the retry's 20 ms)."""

import asyncio
import os
import subprocess
import time

import nacl.signing

import mbtest
from mbtest import Peer, run, wait_until
from test_audit_chain import verify_chain

FAST = dict(SEND_RATE_LIMIT_PER_MIN=1_000_000, SEND_RATE_BURST=100_000)


def _count(conn, sql, *args):
    with conn.cursor() as c:
        c.execute(sql, args)
        return c.fetchone()[0]


def _pending(conn, mesh_id):
    return _count(conn, "SELECT count(*) FROM mesh.audit_pending WHERE mesh_id = %s", mesh_id)


def _sent_rows(conn, mesh_id, message_id):
    return _count(conn, "SELECT count(*) FROM mesh.audit_log WHERE mesh_id = %s AND event_type = 'message_sent' "
                        "AND payload->>'messageId' = %s", mesh_id, message_id)


def _chain_lock(conn, mesh_id, take):
    with conn.cursor() as c:
        c.execute(f"SELECT pg_advisory_{'lock' if take else 'unlock'}(hashtextextended('mesh.audit_log:' || %s, 0))",
                  (mesh_id,))


def _lock_waiters(conn):
    with conn.cursor() as c:
        c.execute("SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                  "AND wait_event_type = 'Lock' AND wait_event = 'advisory'")
        return [r[0] for r in c.fetchall()]


def _meshctl_verify(url, mesh_id):
    r = subprocess.run([mbtest.require_bin("meshctl"), "audit", "verify", mesh_id],
                       env=dict(os.environ, DATABASE_URL=url), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"meshctl audit verify: {r.returncode} {r.stdout} {r.stderr}"
    return r.stdout


def test_a_sends_row_is_chained_after_its_ack_by_the_workers_retry_with_no_client_activity(broker, mesh, db):
    b = broker(**FAST)
    m = mesh("A", "B")
    am, bm = m.members
    loop_out = {}

    async def go():
        loop = asyncio.get_running_loop()
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        # both peer_joined rows settled: nothing of the mesh is owed any more
        assert await loop.run_in_executor(None, lambda: wait_until(
            lambda: _pending(db, m.id) == 0 and _count(
                db, "SELECT count(*) FROM mesh.audit_log WHERE mesh_id = %s AND event_type = 'peer_joined'",
                m.id) == 2, 10)), "the hellos' rows never chained"

        # 1. the lock free: the send's row is chained after its ack, by the
        # worker's retry (CHAIN_RETRY_MS later), not in the send's own
        # transaction (which would chain it within the statement's time)
        _, ack = await a.send_direct(bm.pubkey, "one")
        assert ack["queued"], ack
        mid = ack["messageId"]
        assert await loop.run_in_executor(None, lambda: wait_until(lambda: _sent_rows(db, m.id, mid) == 1, 10)), \
            "the send's message_sent row was never chained"
        loop_out["gap_ms"] = _count(
            db, "SELECT extract(epoch FROM (l.created_at - q.created_at)) * 1000 FROM mesh.audit_log l, "
                "mesh.message_queue q WHERE l.mesh_id = %s AND l.event_type = 'message_sent' "
                "AND l.payload->>'messageId' = %s AND q.id = %s", m.id, mid, mid)

        # 2. the lock held elsewhere: the send is acked, its row waits
        # pending, and no statement waits for the lock (each try fails)
        _chain_lock(db, m.id, True)
        try:
            _, ack2 = await a.send_direct(bm.pubkey, "two")
            assert ack2["queued"], ack2
            mid2 = ack2["messageId"]
            waits = []
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                waits += _lock_waiters(db)
                await asyncio.sleep(0.01)
            assert waits == [], f"statements waited for the chain lock: {waits[:3]}"
            assert _sent_rows(db, m.id, mid2) == 0
            assert _count(db, "SELECT count(*) FROM mesh.audit_pending WHERE mesh_id = %s "
                              "AND event_type = 'message_sent'", m.id) == 1
        finally:
            _chain_lock(db, m.id, False)
        # freed: chained by the worker's retry, nobody sending
        t0 = time.monotonic()
        assert await loop.run_in_executor(None, lambda: wait_until(lambda: _sent_rows(db, m.id, mid2) == 1, 10)), \
            "the pending row was never chained after the lock freed"
        loop_out["after_free_s"] = time.monotonic() - t0
        assert _pending(db, m.id) == 0
        # the pushes arrived meanwhile (the chain is not on their way)
        assert bb.decrypt(await bb.push(timeout=10)) == "one"
        assert bb.decrypt(await bb.push(timeout=10)) == "two"
        await a.close()
        await bb.close()

    run(go(), 60)
    # chained by a step of its own: the retry comes CHAIN_RETRY_MS (20 ms)
    # after the batch answered, so the row joined the chain well after its
    # message was stored (in the send's transaction it was within the
    # statement's few ms)
    assert loop_out["gap_ms"] >= 10, loop_out
    rows = verify_chain(db, m.id)
    assert [r[1] for r in rows].count("message_sent") == 2


def test_after_a_burst_from_several_senders_every_row_is_chained_once_and_verify_is_clean(broker, mesh, db, pg):
    b = broker(**FAST)
    m = mesh(*[f"S{i}" for i in range(5)], "R")
    senders, rm = m.members[:5], m.members[5]
    stranger = nacl.signing.SigningKey.generate().verify_key.encode().hex()
    acked, refused = [], []
    n_pipe, n_lone = 20, 5

    async def go():
        peers = [Peer(b, x) for x in senders]
        r = Peer(b, rm)
        await r.join()
        for p in peers:
            await p.join()

        async def burst(k, p):
            # pipelined (they batch), one refused among them, then a few
            # one at a time (each alone in its statement, handed)
            frames = [p.send_frame_direct(stranger if i == 7 else rm.pubkey, f"{k}-{i}", "now", id=f"p{i}")
                      for i in range(n_pipe)]
            await asyncio.gather(*(p.send_json(f) for f in frames))
            for i in range(n_pipe):
                ack = await p.wait_for(lambda x, i=i: x.get("type") == "ack" and x.get("id") == f"p{i}", 20)
                (acked if ack["queued"] else refused).append(ack)
            for i in range(n_lone):
                _, ack = await p.send_direct(rm.pubkey, f"{k}-lone-{i}", id=f"l{i}")
                assert ack["queued"], ack
                acked.append(ack)

        await asyncio.gather(*(burst(k, p) for k, p in enumerate(peers)))
        got = [r.decrypt(await r.push(timeout=20)) for _ in range(len(acked))]
        assert len(got) == 5 * (n_pipe - 1 + n_lone)
        # nobody sends from here on, the peers stay connected: the workers'
        # retries chain every pending row
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, lambda: wait_until(lambda: _pending(db, m.id) == 0, 10)), \
            f"{_pending(db, m.id)} audit rows never chained"
        for p in peers:
            await p.close()
        await r.close()

    run(go(), 90)
    assert len(refused) == 5 and all(not x["queued"] for x in refused)
    out = _meshctl_verify(pg.url, m.id)
    assert "chain intact" in out, out
    rows = verify_chain(db, m.id)
    sent = [r[3]["messageId"] for r in rows if r[1] == "message_sent"]
    assert len(sent) == len(set(sent)) == len(acked) == 5 * (n_pipe - 1 + n_lone)
    assert set(sent) == {x["messageId"] for x in acked}
