"""Idempotent sends (issue 21; docs/protocol.md §12.1 and "Idempotent sends"):
a send carrying client_message_id (else its id) is stored at most once per
sender member and id, so a resend after an unknown outcome gets the first
ack again (the same messageId) and no duplicate; the same id with another
request_fingerprint is refused with client_id_conflict; a send the database
does not decide within SEND_DEADLINE_MS is answered outcome_unknown, never
left silent — including when PostgreSQL stops under it."""

import asyncio
import time

import mbtest
from mbtest import Mesh, Peer, is_push, run


def frame(a, to, text, cid, fp=None, **extra):
    f = a.send_frame_direct(to, text, id=cid)
    f["client_message_id"] = cid
    if fp is not None:
        f["request_fingerprint"] = fp
    f.update(extra)
    return f


def stored(db, sender, cid):
    with db.cursor() as c:
        c.execute("SELECT id FROM mesh.message_queue WHERE sender_member_id = %s AND client_key = %s",
                  (sender.id, cid))
        return [r[0] for r in c.fetchall()]


def test_a_resend_with_the_same_client_id_gets_the_first_ack_and_one_message(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        f = frame(a, bm.pubkey, "once", "cid-once", "fp-1")
        first = await a.send_and_ack(f)
        again = await a.send_and_ack(f)
        p = await bb.push()
        await bb.quiet(is_push, 1.0)
        other = await a.send_and_ack(frame(a, bm.pubkey, "changed", "cid-once", "fp-2"))
        await a.close()
        await bb.close()
        return first, again, p, other

    first, again, p, other = run(go(), 30)
    assert first["queued"] is True and again["queued"] is True, (first, again)
    assert again["messageId"] == first["messageId"] == p["messageId"]
    assert stored(db, am, "cid-once") == [first["messageId"]]
    assert (other["queued"], other["messageId"], other["code"]) == (False, "", "client_id_conflict"), other
    assert b.metric("broker_messages_rejected_total", reason="client_id_conflict") == 1


def test_without_client_message_id_the_id_is_the_key_and_the_body_the_fingerprint(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        f = a.send_frame_direct(bm.pubkey, "same body", id="plain-id")
        first = await a.send_and_ack(f)
        again = await a.send_and_ack(dict(f))
        other = await a.send_and_ack(a.send_frame_direct(bm.pubkey, "another body", id="plain-id"))
        await a.close()
        return first, again, other

    first, again, other = run(go(), 30)
    assert again["queued"] is True and again["messageId"] == first["messageId"], (first, again)
    assert other["queued"] is False and other["code"] == "client_id_conflict", other
    assert stored(db, am, "plain-id") == [first["messageId"]]


def test_a_send_undecided_at_its_deadline_is_answered_and_a_resend_gets_the_stored_message(broker, mesh, db, pg):
    b = broker(SEND_DEADLINE_MS="1000")
    m = mesh("A", "B")
    am, bm = m.members
    lock = pg.connect()
    lock.autocommit = False

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        with lock.cursor() as c:  # every insert into the queue waits behind this
            c.execute("LOCK TABLE mesh.message_queue IN EXCLUSIVE MODE")
        f = frame(a, bm.pubkey, "slow", "cid-slow", "fp-slow")
        t0 = time.monotonic()
        first = await a.send_and_ack(f, timeout=10)
        waited = time.monotonic() - t0
        lock.commit()  # the statement goes on and commits
        p = await bb.push()
        again = await a.send_and_ack(f)
        await bb.quiet(is_push, 0.5)
        await a.close()
        await bb.close()
        return first, waited, p, again

    try:
        first, waited, p, again = run(go(), 40)
    finally:
        lock.rollback()
        lock.close()
    assert first["queued"] is False and first["code"] == "outcome_unknown", first
    assert "resend with the same id" in first["error"], first
    assert 0.8 < waited < 5, waited
    assert again["queued"] is True and again["messageId"] == p["messageId"], (again, p)
    assert stored(db, am, "cid-slow") == [p["messageId"]]


def test_postgres_stopping_mid_send_then_a_resend_stores_one_message(broker, own_pg):
    b = broker(database_url=own_pg.url, SEND_DEADLINE_MS="3000")
    conn = own_pg.connect()
    m = Mesh(conn)
    am, bm = m.add("A"), m.add("B")
    conn.close()
    lock = own_pg.connect()
    lock.autocommit = False

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        with lock.cursor() as c:
            c.execute("LOCK TABLE mesh.message_queue IN EXCLUSIVE MODE")
        f = frame(a, bm.pubkey, "through a restart", "cid-pg", "fp-pg")
        await a.send_json(f)
        await asyncio.sleep(0.3)  # the statement is waiting for the lock
        own_pg.stop()
        try:
            first = await a.wait_for(lambda x: x.get("type") == "ack" and x.get("id") == "cid-pg", 10)
        finally:
            own_pg.start()
        # resend until the worker has its database back
        deadline = time.monotonic() + 30
        while True:
            again = await a.send_and_ack(f, timeout=10)
            if again["queued"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        once_more = await a.send_and_ack(f)
        conflict = await a.send_and_ack(frame(a, bm.pubkey, "through a restart", "cid-pg", "fp-other"))
        p = await bb.push(timeout=20)
        await bb.quiet(is_push, 1.0)
        await a.close()
        await bb.close()
        return first, again, once_more, conflict, p

    try:
        first, again, once_more, conflict, p = run(go(), 90)
    finally:
        lock.close()
    assert first["queued"] is False and first["code"] in ("outcome_unknown", "db_unavailable"), first
    assert again["queued"] is True, again
    assert once_more["queued"] is True and once_more["messageId"] == again["messageId"] == p["messageId"]
    assert conflict["queued"] is False and conflict["code"] == "client_id_conflict", conflict
    c2 = own_pg.connect()
    with c2.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.message_queue WHERE sender_member_id = %s", (am.id,))
        assert c.fetchone()[0] == 1
    c2.close()


def test_a_client_id_reused_after_a_day_is_a_new_message(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        first = await a.send_and_ack(a.send_frame_direct(bm.pubkey, "last week", id="mcp-4242-1"))
        with db.cursor() as c:
            c.execute("UPDATE mesh.message_queue SET created_at = now() - interval '2 days' WHERE id = %s",
                      (first["messageId"],))
        later = await a.send_and_ack(a.send_frame_direct(bm.pubkey, "today, same recycled id", id="mcp-4242-1"))
        await a.close()
        return first, later

    first, later = run(go(), 30)
    assert later["queued"] is True and later["messageId"] != first["messageId"], (first, later)
    assert stored(db, am, "mcp-4242-1") == [later["messageId"]]


def test_a_send_without_client_message_id_pushes_none(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        await a.send_direct(bm.pubkey, "plain", id="just-an-id")
        p = await bb.push()
        await a.close()
        await bb.close()
        return p

    p = run(go(), 30)
    assert "client_message_id" not in p and "request_fingerprint" not in p, p


def test_a_topic_post_undecided_at_its_deadline_is_answered_and_still_delivered(broker, mesh, pg):
    b = broker(SEND_DEADLINE_MS="1000")
    m = mesh("A", "B")
    am, bm = m.members
    lock = pg.connect()
    lock.autocommit = False

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        await a.send_json({"type": "topic_create", "name": "slow-topic", "_reqId": "t1"})
        t = await a.wait_for(lambda x: x.get("type") == "topic_created")
        await bb.send_json({"type": "topic_join", "topic": t["topic"]["id"], "_reqId": "j1"})
        await bb.barrier()
        with lock.cursor() as c:
            c.execute("LOCK TABLE mesh.message_queue IN EXCLUSIVE MODE")
        f = {"type": "send", "id": "post-1", "targetSpec": "#" + t["topic"]["id"], "priority": "now",
             "nonce": mbtest.b64e(b"n" * 24), "ciphertext": mbtest.b64e(b"posted slowly")}
        first = await a.send_and_ack(f, timeout=10)
        lock.commit()
        p = await bb.push()
        await a.close()
        await bb.close()
        return first, p

    try:
        first, p = run(go(), 40)
    finally:
        lock.rollback()
        lock.close()
    assert first["queued"] is False and first["code"] == "outcome_unknown", first
    assert "not deduplicated" in first["error"], first
    assert mbtest.b64d(p["ciphertext"]) == b"posted slowly"
