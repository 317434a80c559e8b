"""The one-host claim, mesh.delivery_push_claim (migration 0017, issue 23,
docs/design.md "One message's time"): 0014's mark and claim with the mark's
statement inline and the topic's name in its rows.  What must not change
with it, asserted on the function itself (real PostgreSQL, rows written as
mesh.send_batch writes them) and through a broker:

- a mark only touches rows the calling presence holds (never another live
  connection's, never an unclaimed one);
- the marks and the claim share one transaction (delivered_at of the marked
  rows is claimed_at of the rows the same call took);
- rows come oldest first, claimed by the caller, with the topic's name for a
  topic post and NULL otherwise;
- a topic post's push through the broker still names its topic."""

import mbtest
from mbtest import Peer, run

FAST = dict(SEND_RATE_LIMIT_PER_MIN=1_000_000, SEND_RATE_BURST=100_000)


def _message(db, m, sender, recipient, topic_id=None):
    """one stored message and its delivery row (as mesh.send_batch writes
    them); the delivery row's id"""
    mid = mbtest.new_id()
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.message_queue (id, mesh_id, sender_member_id, target_spec, priority, nonce, "
                  "ciphertext, topic_id, body_version) VALUES (%s, %s, %s, %s, 'now', 'n', 'c', %s, %s)",
                  (mid, m.id, sender.id, recipient.pubkey, topic_id, 1 if topic_id else None))
        c.execute("INSERT INTO mesh.delivery (message_id, mesh_id, recipient_member_id, priority) "
                  "VALUES (%s, %s, %s, 'now') RETURNING id", (mid, m.id, recipient.id))
        return c.fetchone()[0]


def _claim(db, member, presence, live, marks=()):
    """(id, topic id, topic name) of the rows one call claimed, as returned"""
    with db.cursor() as c:
        c.execute("SELECT r_id, r_topic_id, r_topic_name, r_sender_member_id FROM mesh.delivery_push_claim("
                  "%s::bigint[], %s, %s::text[], true, %s, 50, NULL)", (list(marks), member.id, list(live), presence))
        return c.fetchall()


def _state(db, ids):
    with db.cursor() as c:
        c.execute("SELECT id, claimed_by, claimed_at, delivered_at FROM mesh.delivery WHERE id = ANY(%s) ORDER BY id",
                  (list(ids),))
        return {r[0]: r[1:] for r in c.fetchall()}


def test_push_claim_marks_only_its_own_rows_in_the_claims_transaction(mesh, db):
    m = mesh("A", "B")
    a, b = m.members
    tid = mbtest.new_id()
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.topic (id, mesh_id, name, created_by) VALUES (%s, %s, 'ops-room', %s)",
                  (tid, m.id, a.id))
    first = [_message(db, m, a, b), _message(db, m, a, b, topic_id=tid), _message(db, m, a, b)]

    got = _claim(db, b, "p-one", ["p-one"])
    assert [r[0] for r in got] == first, got  # oldest first, all of them
    assert [r[2] for r in got] == [None, "ops-room", None], got
    assert [r[1] for r in got] == [None, tid, None] and all(r[3] == a.id for r in got), got
    assert all(s[0] == "p-one" and s[2] is None for s in _state(db, first).values())

    # another live connection of the member marks nothing of ours and takes nothing of ours
    assert _claim(db, b, "p-two", ["p-one", "p-two"], marks=first) == []
    assert all(s[0] == "p-one" and s[2] is None for s in _state(db, first).values()), _state(db, first)

    # our marks ride on our next claim: same transaction, so delivered_at is
    # the claimed_at of the row that claim took
    later = _message(db, m, a, b)
    got = _claim(db, b, "p-one", ["p-one", "p-two"], marks=first[:2])
    assert [r[0] for r in got] == [later], got
    st = _state(db, first + [later])
    assert st[first[0]][2] is not None and st[first[0]][2] == st[first[1]][2] == st[later][1], st
    assert st[first[2]][2] is None, "a row that was not listed was marked"

    # an unclaimed row listed as a mark is not marked (it is not ours), and is claimed
    free = _message(db, m, a, b)
    got = _claim(db, b, "p-one", ["p-one"], marks=[free])
    assert [r[0] for r in got] == [free], got
    assert _state(db, [free])[free][2] is None

    # with nothing to mark, no marks: the rest of ours stays undelivered
    assert _claim(db, b, "p-one", ["p-one"]) == []
    assert _state(db, [first[2], later, free]) and all(
        s[2] is None for k, s in _state(db, [first[2], free]).items()), _state(db, [first[2], free])


def test_a_topic_posts_push_names_its_topic_through_the_broker(broker, mesh):
    b = broker(**FAST)
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        await a.send_json({"type": "topic_create", "name": "claimroom", "_reqId": "c1"})
        t = await a.wait_for(lambda x: x.get("type") == "topic_created")
        topic_id = t["topic"]["id"]
        await bb.send_json({"type": "topic_join", "topic": topic_id, "_reqId": "j1"})
        await bb.barrier()
        f = {"type": "send", "id": "post-1", "targetSpec": "#" + topic_id, "priority": "now",
             "nonce": mbtest.b64e(b"n" * 24), "ciphertext": mbtest.b64e(b"posted")}
        ack = await a.send_and_ack(f)
        assert ack["queued"] is True, ack
        p = await bb.push()
        assert p["messageId"] == ack["messageId"], p
        assert p["topic"] == "claimroom" and p["topicId"] == topic_id, p
        await a.close()
        await bb.close()

    run(go(), 60)
