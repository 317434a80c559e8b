"""Refused sends (issue 3; docs/protocol.md §3.2): ack{queued:false, messageId:"",
error} instead of silence, +1 on broker_messages_rejected_total{reason}, and
nothing is delivered."""

import re

from mbtest import Closed, Peer, is_push, run

RATE_ERROR = "rate_limit: max 60 msg/min (burst 10) — slow down"


def rejected_family(b):
    return b.metrics().family("broker_messages_rejected_total")


def assert_one_rejection(before, after, reason_re):
    """exactly one label set rose, by exactly one, and its reason matches"""
    rose = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)
            if after.get(k, 0) != before.get(k, 0)}
    assert len(rose) == 1 and list(rose.values()) == [1], \
        f"broker_messages_rejected_total changed by {rose}, want +1 on one reason"
    labels = dict(next(iter(rose)))
    assert re.search(reason_re, labels.get("reason", "")), f"reason label {labels}"


async def refused(peer, frame):
    ack = await peer.send_and_ack(frame)
    assert ack["queued"] is False, f"{frame.get('targetSpec')}/{frame.get('priority')}: accepted {ack}"
    assert ack["messageId"] == "", ack
    assert isinstance(ack.get("error"), str) and ack["error"] and "\n" not in ack["error"], ack
    return ack


def test_eleventh_rapid_send_is_refused_by_the_rate_limit(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members
    before = rejected_family(b)

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        frames = [a.send_frame_direct(bm.pubkey, f"burst {i}", "now", id=f"r{i}") for i in range(11)]
        for f in frames:
            await a.send_json(f)
        acks = [await a.wait_for(lambda x, i=f["id"]: x.get("type") == "ack" and x.get("id") == i, 5)
                for f in frames]
        assert [x["queued"] for x in acks] == [True] * 10 + [False], acks
        assert acks[10]["error"] == RATE_ERROR, acks[10]
        assert acks[10]["messageId"] == ""
        got = [await bb.push() for _ in range(10)]
        assert [bb.decrypt(p) for p in got] == [f"burst {i}" for i in range(10)]
        await bb.quiet(is_push, 0.5)
        await a.close()
        await bb.close()

    run(go(), 30)
    assert_one_rejection(before, rejected_family(b), r"rate")


def test_rate_limit_is_per_member_and_shared_across_its_connections(broker, mesh):
    b = broker()
    m = mesh("A", "B", "C")
    am, bm, cm = m.members

    async def go():
        a1, a2, c = Peer(b, am), Peer(b, am), Peer(b, cm)
        await a1.join()
        await a2.join()
        await c.join()
        for i in range(5):
            f = a1.send_frame_direct(bm.pubkey, f"x{i}")
            assert (await a1.send_and_ack(f))["queued"]
            f = a2.send_frame_direct(bm.pubkey, f"y{i}")
            assert (await a2.send_and_ack(f))["queued"]
        ack = await a2.send_and_ack(a2.send_frame_direct(bm.pubkey, "one too many"))
        assert ack["queued"] is False and ack["error"] == RATE_ERROR, ack
        # another member has its own bucket
        ack = await c.send_and_ack(c.send_frame_direct(bm.pubkey, "from C"))
        assert ack["queued"] is True, ack
        for p in (a1, a2, c):
            await p.close()

    run(go(), 30)


def test_invalid_priority_is_refused(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members
    before = rejected_family(b)

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        f = a.send_frame_direct(bm.pubkey, "x", priority="urgent")
        ack = await refused(a, f)
        assert ack["error"].startswith("invalid priority"), ack
        await bb.quiet(is_push, 0.5)
        await a.close()
        await bb.close()

    run(go(), 30)
    assert_one_rejection(before, rejected_family(b), r"priority")


def test_invalid_target_spec_is_refused(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        for spec in ("bob", bm.pubkey[:63], bm.pubkey + "0", "g" * 64, ""):
            before = rejected_family(b)
            f = a.send_frame_direct(bm.pubkey, "x")
            f["targetSpec"] = spec
            ack = await refused(a, f)
            assert ack["error"].startswith("invalid targetSpec"), (spec, ack)
            assert_one_rejection(before, rejected_family(b), r"target")
        await bb.quiet(is_push, 0.5)
        await a.close()
        await bb.close()

    run(go(), 30)


def test_send_with_missing_fields_is_refused_not_dropped(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        f = a.send_frame_direct(bm.pubkey, "x")
        del f["ciphertext"]
        await a.send_json(f)
        r = await a.wait_for(lambda x: x.get("type") in ("ack", "error"), 5)
        # the polite refusal of a send: an ack for this id that says why
        assert r["type"] == "ack" and r["id"] == f["id"], r
        assert r["queued"] is False and r["messageId"] == "", r
        assert r["error"].startswith("malformed send") and "ciphertext" in r["error"], r
        bb = Peer(b, bm)
        await bb.join()
        await bb.quiet(is_push, 0.5)
        await bb.close()
        await a.close()

    run(go(), 30)


def test_send_whose_payload_exceeds_max_message_bytes_is_never_accepted(broker, mesh, db):
    """nonce + ciphertext over MAX_MESSAGE_BYTES: either the polite refusal
    `payload too large: N bytes > MAX_MESSAGE_BYTES=M` (+1 payload_too_large)
    or, when the frame itself is over the cap, close 1009 — never an ack."""
    limit = 4096
    b = broker(MAX_MESSAGE_BYTES=limit)
    m = mesh("A", "B")
    am, bm = m.members
    before = rejected_family(b)

    async def go():
        a = Peer(b, am)
        await a.join()
        f = a.send_frame_direct(bm.pubkey, "x")
        f["ciphertext"] = "A" * (limit + 100)
        await a.send_json(f)
        try:
            r = await a.wait_for(lambda x: x.get("type") == "ack", 5)
        except Closed:
            return None, (a.ws.close_code, a.ws.close_reason)
        await a.close()
        return r, None

    ack, close = run(go(), 30)
    if ack is None:
        assert close[0] == 1009, f"closed with {close}"
    else:
        assert ack["queued"] is False, f"an oversized payload was accepted: {ack}"
        assert re.match(r"^payload too large: \d+ bytes > MAX_MESSAGE_BYTES=%d$" % limit, ack["error"]), ack
        assert_one_rejection(before, rejected_family(b), r"payload|large|size")
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.message_queue WHERE sender_member_id = %s", (am.id,))
        assert c.fetchone()[0] == 0


def test_refused_sends_are_not_stored(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        await refused(a, a.send_frame_direct(bm.pubkey, "x", priority="bogus"))
        f = a.send_frame_direct(bm.pubkey, "x")
        f["targetSpec"] = "nope"
        await refused(a, f)
        await a.close()

    run(go(), 30)
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.message_queue WHERE sender_member_id = %s", (am.id,))
        assert c.fetchone()[0] == 0


def test_send_with_an_overlong_id_is_refused_not_truncated(broker, mesh):
    from mbtest import Peer, run

    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        frame = a.send_frame_direct(bm.pubkey, "x", "now", id="i" * 129)
        await a.send_json(frame)
        ack = await a.wait_for(lambda x: x.get("type") == "ack", 5)
        assert ack["queued"] is False and ack["messageId"] == ""
        assert "id" in ack["error"], ack
        await a.close()

    run(go(), 20)
