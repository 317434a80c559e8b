"""The marks ride on the next claim (issue 23, docs/design.md "When a push
counts as delivered"): a push whose last byte the recipient's TCP
acknowledged is marked delivered in the transaction of the recipient
worker's next claim (mesh.delivery_mark_claim), one statement per wake
instead of a claim and a mark; with no claim (a handed push, migration 0019)
the marks due within MARK_DEFER_MS go in one statement.  So the mark waits —
and must still be safe and must still come:

- a worker killed (-9) after the push and before its deferred mark leaves
  the row undelivered, and the recipient's next connection gets the push
  again with the same messageId (docs/protocol.md §3.4, at-least-once for
  that window);
- with no next claim (nothing more arrives) the mark goes out on its own,
  within a bounded time (MARK_DEFER_MS after the acknowledgement).

A mark that rode on a claim shares its transaction, so its delivered_at is
the claimed_at of the rows that claim took (both are now(), the
transaction's start): that is how the tests see which statement marked.

Waits are for events (a push read, a row marked) with generous deadlines;
the one fixed pause lets statements the stopped worker had already sent
finish before the rows are read."""

import asyncio
import signal
import time

import mbtest
from mbtest import Peer, is_push, run

FAST = dict(SEND_RATE_LIMIT_PER_MIN=1_000_000, SEND_RATE_BURST=100_000)


def row(db, message_id, member_id):
    """(claimed_by, delivered_at, claimed_at) of one delivery row"""
    with db.cursor() as c:
        c.execute("SELECT claimed_by, delivered_at, claimed_at FROM mesh.delivery "
                  "WHERE message_id = %s AND recipient_member_id = %s", (message_id, member_id))
        return c.fetchone()


def _marks_on_claims(db, member_id):
    """(rows delivered, rows whose mark shares its transaction with a claim,
    statements that only marked: the distinct delivered_at of the others)"""
    with db.cursor() as c:
        c.execute("SELECT count(*), count(*) FILTER (WHERE r), count(DISTINCT delivered_at) FILTER (WHERE NOT r) "
                  "FROM (SELECT d.delivered_at, EXISTS (SELECT 1 FROM mesh.delivery e "
                  "  WHERE e.recipient_member_id = d.recipient_member_id AND e.claimed_at = d.delivered_at) r "
                  "  FROM mesh.delivery d WHERE d.recipient_member_id = %s AND d.delivered_at IS NOT NULL) x",
                  (member_id,))
        return c.fetchone()


def _ride(broker, mesh, db, url):
    b = broker(database_url=url, **FAST)
    m = mesh("A", "B")
    am, bm = m.members
    n = 20

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        ids = []
        for i in range(n):  # one at a time: each push read before the next send
            _, ack = await a.send_direct(bm.pubkey, f"m{i}")
            assert ack["queued"] is True, ack
            p = await bb.push(timeout=20)
            assert p["messageId"] == ack["messageId"] and bb.decrypt(p) == f"m{i}"
            ids.append(ack["messageId"])
        # the last ones have no claim after them: marked on their own
        assert mbtest.wait_until(lambda: all(row(db, i, bm.id)[1] is not None for i in ids), 20), \
            "pushes read by the client were never marked delivered"
        await a.close()
        await bb.close()

    run(go(), 90)
    delivered, on_claims, alone = _marks_on_claims(db, bm.id)
    assert delivered == n
    # before issue 23 every mark was a statement of its own (n here); then the
    # pushes acknowledged before the next message's claim rode on it.  Since
    # the hand-over (migration 0019) one-at-a-time messages to a member with
    # one connection need no claim at all, and their marks wait MARK_DEFER_MS
    # (50 ms) and go together.  Either way the marks are not a statement per
    # message: at most half of them went in statements that only marked (a
    # claim comes ~1 ms after the previous push is read; the mark's own
    # statement waits 50 ms and takes every mark due by then)
    assert alone <= n // 2, f"{alone} statements only marked {n - on_claims} of {n} rows ({on_claims} rode on claims)"


def test_the_marks_of_read_pushes_ride_on_the_next_claim(broker, mesh, db):
    _ride(broker, mesh, db, None)


def test_the_marks_ride_on_the_claim_through_pgbouncer(broker, mesh, db, bouncer):
    _ride(broker, mesh, db, bouncer)


def test_sigkill_between_a_push_and_its_deferred_mark_pushes_it_again_with_the_same_message_id(broker, mesh, db):
    b = broker(**FAST)
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        pid = bb.worker_pid()
        presence = None
        hit = None
        for attempt in range(8):
            _, ack = await a.send_direct(bm.pubkey, f"deferred {attempt}")
            assert ack["queued"] is True, ack
            p = await bb.push(timeout=20)
            assert p["messageId"] == ack["messageId"]
            # freeze the worker right after the client read the push: its mark
            # waits for a claim that will not come, or for its 50 ms timer
            b.kill_worker(pid, signal.SIGSTOP)
            await asyncio.sleep(0.3)  # what it had already sent finishes in PostgreSQL
            claimed_by, delivered_at, _ = row(db, ack["messageId"], bm.id)
            presence = claimed_by
            if delivered_at is None:
                hit = (ack["messageId"], f"deferred {attempt}")
                break
            # the machine was slow enough for the timer to mark it first: again
            b.kill_worker(pid, signal.SIGCONT)
        assert hit, "the push was marked before the worker could be stopped, 8 times"
        assert presence, "the pushed row is not claimed"
        b.kill_worker(pid, signal.SIGKILL)
        assert mbtest.wait_until(lambda: pid not in b.workers(), 20)
        # the rows of the killed connection are free again once its slot is gone
        assert b.wait_metric("broker_connections_active", 1, timeout=20) == 1
        b2 = Peer(b, bm)
        await b2.join()
        again = await b2.push(timeout=20)
        assert again["messageId"] == hit[0], f"another message came first: {again['messageId']} != {hit[0]}"
        assert b2.decrypt(again) == hit[1]
        await b2.quiet(is_push, 0.5)  # once, and nothing else comes again
        assert mbtest.wait_until(lambda: row(db, hit[0], bm.id)[1] is not None, 20), \
            "the re-pushed message was never marked delivered"
        assert row(db, hit[0], bm.id)[0] != presence  # delivered through the new connection
        await a.close()
        await b2.close()

    run(go(), 120)


def test_a_read_push_is_marked_without_any_further_traffic(broker, mesh, db):
    b = broker(**FAST)
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        _, ack = await a.send_direct(bm.pubkey, "alone")
        p = await bb.push(timeout=20)
        assert p["messageId"] == ack["messageId"]
        t0 = time.monotonic()
        # no claim follows: the idle flush marks it (50 ms after the peer's
        # acknowledgement; the bound leaves room for a loaded machine)
        assert mbtest.wait_until(lambda: row(db, ack["messageId"], bm.id)[1] is not None, 5, interval=0.01), \
            "a push the client read was not marked delivered within 5 s without further traffic"
        took = time.monotonic() - t0
        assert row(db, ack["messageId"], bm.id)[0]  # still the connection's: marked, not given back
        # and the connection keeps working: the next message is pushed and marked
        _, ack2 = await a.send_direct(bm.pubkey, "after")
        p2 = await bb.push(timeout=20)
        assert p2["messageId"] == ack2["messageId"]
        assert mbtest.wait_until(lambda: row(db, ack2["messageId"], bm.id)[1] is not None, 5, interval=0.01)
        await a.close()
        await bb.close()
        return took

    took = run(go(), 60)
    assert took < 5
