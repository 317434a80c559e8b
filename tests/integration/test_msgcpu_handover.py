"""The hand-over (issue 23, migration 0019, docs/design.md "A message's
CPU"): a direct `now` message to a member with one live connection on this
host is claimed for that connection in the send's own transaction, and the
sender's worker hands the push to the recipient's worker with the wake, so
no claim statement runs for it.  What must hold, through a real broker and
PostgreSQL:

- a handed push is the push the claim would have made (same fields, same
  createdAt as stored), and it did go that way (its row was never claimed by
  a claim statement: claimed_at stays NULL until it is marked);
- a recipient worker that dies between the sender's statement and the push
  loses nothing: the member's next connection gets the message, once;
- per (sender, recipient) the order of acceptance holds when handed pushes
  and the claim's mix (a `next` message between `now` ones, pipelined sends);
- the statement's rules, on the function itself: only the named connection's
  member, no earlier row anyone else could claim, never a session key's row;
  0019's claim returns an unconfirmed handed row of its caller once."""

import asyncio
import os
import signal

import mbtest
from mbtest import Peer, run

FAST = dict(SEND_RATE_LIMIT_PER_MIN=1_000_000, SEND_RATE_BURST=100_000)


def _rows(db, member_id):
    """message id -> (claimed_by, claimed_at is NULL, delivered) of member's rows"""
    with db.cursor() as c:
        c.execute("SELECT message_id, claimed_by, claimed_at IS NULL, delivered_at IS NOT NULL FROM mesh.delivery "
                  "WHERE recipient_member_id = %s", (member_id,))
        return {r[0]: r[1:] for r in c.fetchall()}


def _presence_of(db, member_id):
    with db.cursor() as c:
        c.execute("SELECT id FROM mesh.presence WHERE member_id = %s AND disconnected_at IS NULL", (member_id,))
        return [r[0] for r in c.fetchall()]


def test_a_handed_push_is_the_claims_push_and_no_claim_ran(broker, mesh, db):
    b = broker(**FAST)
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        # the hand-over names a connection whose presence row is written (its
        # hello's write statement may commit after the hello_ack)
        assert mbtest.wait_until(lambda: _presence_of(db, bm.id), 10)
        sent = []
        for i in range(20):
            f = a.send_frame_direct(bm.pubkey, f"hello {i}")
            if i % 2:
                f["client_message_id"] = f"cmid-{i}-{mbtest.new_id(6)}"
            ack = await a.send_and_ack(f)
            assert ack["queued"] is True, ack
            p = await bb.push()
            assert p["messageId"] == ack["messageId"], (p, ack)
            sent.append((f, ack, p))
        rows = _rows(db, bm.id)
        handed = [ack["messageId"] for _, ack, _ in sent if rows[ack["messageId"]][1]]
        # the first may meet the hello's claim; the rest go the hand-over's way
        assert len(handed) >= 15, f"only {len(handed)} of 20 were handed over: {rows}"
        with db.cursor() as c:
            c.execute("SELECT id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
                      "FROM mesh.message_queue WHERE id = ANY(%s)", ([ack["messageId"] for _, ack, _ in sent],))
            created = dict(c.fetchall())
        for i, (f, ack, p) in enumerate(sent):
            assert bb.decrypt(p) == f"hello {i}", p
            assert p["senderPubkey"] == am.pubkey and p["senderMemberPubkey"] == am.pubkey, p
            assert p["senderMemberId"] == am.id and p["senderName"] == "A", p
            assert p["meshId"] == m.id and p["priority"] == "now", p
            assert p["nonce"] == f["nonce"] and p["ciphertext"] == f["ciphertext"], p
            assert p["createdAt"] == created[ack["messageId"]], (p, created[ack["messageId"]])
            assert p.get("client_message_id") == f.get("client_message_id"), p
            assert "topic" not in p and "topicId" not in p, p
        # the same message the claim's way (B with two connections: no
        # hand-over) carries the same fields
        b2 = Peer(b, bm)
        await b2.join()
        f, ack = await a.send_direct(bm.pubkey, "claimed")
        got = None
        for peer in (bb, b2):
            try:
                got = await peer.push(timeout=3, pred=lambda x: x["messageId"] == ack["messageId"])
                break
            except asyncio.TimeoutError:
                continue
        assert got is not None, "the claim's push never came"
        assert set(got) == set(sent[0][2]), (sorted(got), sorted(sent[0][2]))
        assert not _rows(db, bm.id)[ack["messageId"]][1], "a row with two live connections was handed over"
        # every handed row is marked delivered (the recipient's TCP acknowledged it)
        assert mbtest.wait_until(lambda: all(_rows(db, bm.id)[x][2] for x in handed), 10), _rows(db, bm.id)
        for p in (a, bb, b2):
            await p.close()

    run(go(), 90)


def test_a_recipient_worker_killed_before_the_push_loses_nothing(broker, mesh, db):
    b = broker(**FAST)
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        # one message first: the hello's claim is behind us
        _, ack = await a.send_direct(bm.pubkey, "warm-up")
        assert (await bb.push())["messageId"] == ack["messageId"]
        # and marked (else it comes again after the kill: at-least-once, test_deferred_mark.py)
        assert mbtest.wait_until(lambda: _rows(db, bm.id)[ack["messageId"]][2], 10)
        pid = bb.worker_pid()
        presence = _presence_of(db, bm.id)
        assert len(presence) == 1, presence
        os.kill(pid, signal.SIGSTOP)  # between the sender's statement and the push
        try:
            _, ack = await a.send_direct(bm.pubkey, "while stopped")
            assert ack["queued"] is True, ack
            row = _rows(db, bm.id)[ack["messageId"]]
            assert row == (presence[0], True, False), f"not handed to the stopped connection: {row}"
        finally:
            b.kill_worker(pid)  # SIGKILL ends a stopped process too
        assert mbtest.wait_until(lambda: pid not in b.workers(), 20)
        b2 = Peer(b, bm)
        await b2.join()
        p = await b2.push(timeout=15)
        assert p["messageId"] == ack["messageId"] and b2.decrypt(p) == "while stopped", p
        await b2.quiet(mbtest.is_push, 1.5)  # once
        assert mbtest.wait_until(lambda: _rows(db, bm.id)[ack["messageId"]][2], 10)
        await a.close()
        await b2.close()

    run(go(), 90)


def test_order_holds_when_handed_and_claimed_pushes_mix(broker, mesh, db):
    b = broker(**FAST)
    m = mesh("A", "B")
    am, bm = m.members
    n = 60

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        assert mbtest.wait_until(lambda: _presence_of(db, bm.id), 10)  # see the first test
        # first one at a time: these go the hand-over's way
        first = []
        for i in range(5):
            _, ack = await a.send_direct(bm.pubkey, f"first {i}")
            assert (await bb.push())["messageId"] == ack["messageId"]
            first.append(ack["messageId"])
        assert mbtest.wait_until(lambda: all(_rows(db, bm.id)[x][2] for x in first), 10)
        assert sum(1 for x in first if _rows(db, bm.id)[x][1]) >= 3, _rows(db, bm.id)
        # then pipelined (group commit: several in one statement) and every 7th
        # a `next` one, which goes the claim's way (B is idle) and holds the
        # hand-over back until it is claimed
        frames = []
        for i in range(n):
            f = a.send_frame_direct(bm.pubkey, f"{i}", priority="next" if i % 7 == 3 else "now")
            frames.append(f)
            await a.send_json(f)
        acks = {}
        while len(acks) < n:
            x = await a.wait_for(lambda x: x.get("type") == "ack")
            assert x["queued"] is True, x
            acks[x["id"]] = x["messageId"]
        order = [acks[f["id"]] for f in frames]
        got = []
        while len(got) < n:
            got.append((await bb.push(timeout=15))["messageId"])
        assert got == order, "pushes out of the order of acceptance (or repeated)"
        await bb.quiet(mbtest.is_push, 1)
        # (a handed row a later claim returned before its mark counts as
        # claimed here: claimed_at is set then)
        rows = _rows(db, bm.id)
        assert sum(1 for x in order if not rows[x][1]) >= n // 7, "the `next` ones were not claimed"
        await a.close()
        await bb.close()

    run(go(), 90)


def _presence(db, m, member, pid=1):
    pid_ = mbtest.new_id()
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.presence (id, mesh_id, member_id, session_id, pid, cwd) "
                  "VALUES (%s, %s, %s, 's', %s, '/')", (pid_, m.id, member.id, pid))
    return pid_


def _send(db, m, sender, targets, hand, priority="now"):
    """mesh.send_batch_hand of one send per target: [(i, member, hand_id, hand_at)]"""
    ids = [mbtest.new_id() for _ in targets]
    with db.cursor() as c:
        c.execute("SELECT i, member, hand_id, hand_at FROM mesh.send_batch_hand(%s, %s, 'S', NULL, %s::text[], "
                  "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
                  "%s::text[]) WHERE i > 0 ORDER BY i",
                  (m.id, sender.id, ids, list(targets), [priority] * len(ids), ["n"] * len(ids),
                   ["c"] * len(ids), [None] * len(ids), [None] * len(ids), [None] * len(ids), [None] * len(ids),
                   list(hand)))
        return ids, c.fetchall()


def test_the_hand_over_statements_rules(mesh, db):
    m = mesh("A", "B", "C")
    a, bm, cm = m.members
    pb, pc = _presence(db, m, bm), _presence(db, m, cm)

    # another member's connection: not handed (stored the claim's way)
    ids, r = _send(db, m, a, [bm.pubkey], [pc])
    assert r[0][1] == bm.id and r[0][2] is None, r
    # an earlier row of B that anyone else could claim (that unclaimed one):
    # not handed, the claim's order first
    ids2, r = _send(db, m, a, [bm.pubkey], [pb])
    assert r[0][2] is None, r
    with db.cursor() as c:
        c.execute("UPDATE mesh.delivery SET delivered_at = now() WHERE recipient_member_id = %s", (bm.id,))
    # nothing earlier: handed, claimed for pb, unconfirmed, createdAt given
    ids3, r = _send(db, m, a, [bm.pubkey, bm.pubkey], [pb, pb])
    assert r[0][2] and r[1][2] and r[0][3].endswith("Z"), r  # the second: the first is pb's, not in the way
    with db.cursor() as c:
        c.execute("SELECT claimed_by, claimed_at FROM mesh.delivery WHERE id = ANY(%s)", ([r[0][2], r[1][2]],))
        assert c.fetchall() == [(pb, None), (pb, None)]
    # `next` is never handed
    _, rn = _send(db, m, a, [bm.pubkey], [pb], priority="next")
    assert rn[0][2] is None, rn
    # a session key's row is never handed
    skey = mbtest.Member(m, "sk").pubkey
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.session_key (pubkey, mesh_id, member_id) VALUES (%s, %s, %s)",
                  (skey, m.id, cm.id))
    _, rs = _send(db, m, a, [skey], [pc])
    assert rs[0][1] == cm.id and rs[0][2] is None, rs

    # 0019's claim: pb's unconfirmed handed rows come back to pb once (its
    # worker drops those it holds), then they are confirmed; another live
    # connection of B never takes them
    with db.cursor() as c:
        c.execute("UPDATE mesh.delivery SET delivered_at = now() WHERE recipient_member_id = %s AND priority = 'next'",
                  (bm.id,))
        c.execute("SELECT r_id FROM mesh.delivery_push_claim('{}'::bigint[], %s, %s::text[], false, %s, 50, NULL)",
                  (bm.id, [pb, "p-other"], "p-other"))
        assert c.fetchall() == []
        c.execute("SELECT r_id FROM mesh.delivery_push_claim('{}'::bigint[], %s, %s::text[], false, %s, 50, NULL)",
                  (bm.id, [pb], pb))
        assert sorted(x[0] for x in c.fetchall()) == sorted([r[0][2], r[1][2]])
        c.execute("SELECT r_id FROM mesh.delivery_push_claim('{}'::bigint[], %s, %s::text[], false, %s, 50, NULL)",
                  (bm.id, [pb], pb))
        assert c.fetchall() == []
