"""Routing between Python peers that do the crypto themselves (issue 3,
acceptance 2-4): direct messages byte for byte, offline delivery exactly once,
broadcast to every other member once, status gating of next/low."""

import base64
import re

import mbtest
from mbtest import Peer, is_push, run

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ID = re.compile(r"^[0-9A-Za-z]{32}$")


def test_direct_message_reaches_the_recipient_byte_for_byte(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        frame, ack = await a.send_direct(bm.pubkey, "hello B, from A", "now", id="corr-1")
        assert ack["queued"] is True, ack
        assert ack["id"] == "corr-1"
        assert ID.match(ack["messageId"]), ack
        push = await bb.push(timeout=5)
        assert push["messageId"] == ack["messageId"]
        assert push["meshId"] == m.id
        assert push["senderPubkey"] == am.pubkey
        assert push["priority"] == "now"
        assert push["nonce"] == frame["nonce"], "nonce must be relayed byte for byte"
        assert push["ciphertext"] == frame["ciphertext"], "ciphertext must be relayed byte for byte"
        assert ISO_MS.match(push["createdAt"]), push["createdAt"]
        assert bb.decrypt(push) == "hello B, from A"
        # nothing comes back to the sender
        await a.quiet(is_push, 0.5)
        await bb.quiet(is_push, 0.3)
        await a.close()
        await bb.close()

    run(go(), 30)


def test_two_byte_message_has_the_reference_sizes(broker, mesh):
    """docs/protocol.md §3.3: a 2-byte plaintext is a 32-char nonce and a 24-char ciphertext"""
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        frame, ack = await a.send_direct(bm.pubkey, "hi")
        assert ack["queued"], ack
        push = await bb.push()
        assert len(push["nonce"]) == 32 and len(push["ciphertext"]) == 24
        assert bb.decrypt(push) == "hi"
        await a.close()
        await bb.close()

    run(go(), 30)


def test_sender_pubkey_comes_from_the_member_row_not_the_client(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        frame = a.send_frame_direct(bm.pubkey, "spoof?")
        frame["senderPubkey"] = bm.pubkey
        frame["from"] = bm.pubkey
        ack = await a.send_and_ack(frame)
        assert ack["queued"], ack
        push = await bb.push()
        assert push["senderPubkey"] == am.pubkey
        await a.close()
        await bb.close()

    run(go(), 30)


def test_uppercase_target_pubkey_reaches_the_member(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        frame = a.send_frame_direct(bm.pubkey, "upper")
        frame["targetSpec"] = bm.pubkey.upper()
        ack = await a.send_and_ack(frame)
        assert ack["queued"], ack
        assert bb.decrypt(await bb.push()) == "upper"
        await a.close()
        await bb.close()

    run(go(), 30)


def test_offline_recipient_gets_the_message_exactly_once_when_it_connects(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        sent = []
        for i, prio in enumerate(["now", "next", "low"]):
            frame, ack = await a.send_direct(bm.pubkey, f"offline {i}", prio)
            assert ack["queued"], ack
            sent.append(ack["messageId"])
        bb = Peer(b, bm)
        await bb.join()
        got = [await bb.push(timeout=5) for _ in sent]
        assert [p["messageId"] for p in got] == sent, "FIFO per sender"
        assert [bb.decrypt(p) for p in got] == ["offline 0", "offline 1", "offline 2"]
        await bb.quiet(is_push, 1)
        await bb.close()
        # and never again on a later connection
        bb2 = Peer(b, bm)
        await bb2.join()
        await bb2.quiet(is_push, 1)
        await bb2.close()
        await a.close()

    run(go(), 40)


def test_message_to_a_pubkey_outside_the_mesh_is_not_delivered_there(broker, mesh):
    b = broker()
    m1 = mesh("A")
    m2 = mesh("X")

    async def go():
        a, x = Peer(b, m1.members[0]), Peer(b, m2.members[0])
        await a.join()
        await x.join()
        frame = a.send_frame_direct(m2.members[0].pubkey, "cross-mesh")
        await a.send_json(frame)
        r = await a.wait_for(lambda r: r.get("type") in ("ack", "error"), 5)
        # refused, not queued for a key that can never connect to this mesh
        assert r.get("type") == "ack" and r.get("id") == frame["id"], r
        assert r["queued"] is False and r["messageId"] == "", r
        assert r["error"].startswith("no such recipient"), r
        await x.quiet(is_push, 1)
        await a.close()
        await x.close()

    run(go(), 30)


def test_broadcast_reaches_every_other_member_once_and_never_the_sender(broker, mesh):
    b = broker()
    m = mesh("A", "B", "C")
    am, bm, cm = m.members

    async def go():
        a, bb, c = Peer(b, am), Peer(b, bm), Peer(b, cm)
        await a.join()
        await bb.join()
        # C is offline at send time and connects later
        frame, ack = await a.send_broadcast("to all", "now")
        assert ack["queued"], ack
        pb = await bb.push()
        assert pb["messageId"] == ack["messageId"]
        assert pb["senderPubkey"] == am.pubkey
        assert base64.b64decode(pb["ciphertext"]) == b"to all"
        await c.join()
        pc = await c.push()
        assert pc["messageId"] == ack["messageId"]
        await a.quiet(is_push, 1)
        await bb.quiet(is_push, 0.2)
        await c.quiet(is_push, 0.2)
        for p in (a, bb, c):
            await p.close()

    run(go(), 40)


def test_broadcast_reaches_members_that_were_members_when_it_was_sent(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        frame, ack = await a.send_broadcast("before D joined")
        assert ack["queued"], ack
        late = m.add("D")
        d = Peer(b, late)
        await d.join()
        await d.quiet(is_push, 1)
        bb = Peer(b, bm)
        await bb.join()
        assert (await bb.push())["messageId"] == ack["messageId"]
        for p in (a, bb, d):
            await p.close()

    run(go(), 30)


async def gating(b, m, hold_status):
    am, bm = m.members
    a, bb = Peer(b, am), Peer(b, bm)
    await a.join()
    await bb.join()
    await bb.set_status(hold_status)
    await bb.barrier()
    _, ack_next = await a.send_direct(bm.pubkey, "next one", "next")
    _, ack_low = await a.send_direct(bm.pubkey, "low one", "low")
    _, ack_now = await a.send_direct(bm.pubkey, "now one", "now")
    assert ack_next["queued"] and ack_low["queued"] and ack_now["queued"]
    p = await bb.push(timeout=15)
    assert p["messageId"] == ack_now["messageId"], f"{hold_status}: only `now` may pass, got {p}"
    assert bb.decrypt(p) == "now one"
    await bb.quiet(is_push, 1.0)
    await bb.set_status("idle")
    held = [await bb.push(timeout=15), await bb.push(timeout=15)]
    assert [h["messageId"] for h in held] == [ack_next["messageId"], ack_low["messageId"]]
    assert [h["priority"] for h in held] == ["next", "low"]
    await bb.quiet(is_push, 0.5)
    await a.close()
    await bb.close()


def test_working_peer_gets_now_at_once_and_next_low_when_idle(broker, mesh):
    b = broker()
    run(gating(b, mesh("A", "B"), "working"), 30)


def test_dnd_peer_gets_now_at_once_and_next_low_when_idle(broker, mesh):
    b = broker()
    run(gating(b, mesh("A", "B"), "dnd"), 30)


def test_held_messages_wait_across_a_reconnect_while_working(broker, mesh):
    """a new presence starts idle: what was held is delivered on the next hello"""
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        await bb.set_status("working")
        await bb.barrier()
        _, ack = await a.send_direct(bm.pubkey, "held", "next")
        await bb.quiet(is_push, 0.8)
        await bb.close()
        assert not bb.take(is_push)
        bb2 = Peer(b, bm)
        await bb2.join()
        assert (await bb2.push())["messageId"] == ack["messageId"]
        await a.close()
        await bb2.close()

    run(go(), 30)


def test_routed_counter_rises_per_push_by_priority(broker, mesh):
    b = broker()
    m = mesh("A", "B", "C")
    am, bm, cm = m.members
    before = {p: b.metric("broker_messages_routed_total", priority=p) for p in ("now", "next", "low")}

    async def go():
        a, bb, c = Peer(b, am), Peer(b, bm), Peer(b, cm)
        for p in (a, bb, c):
            await p.join()
        await a.send_direct(bm.pubkey, "1", "now")
        await a.send_direct(bm.pubkey, "2", "next")
        await a.send_broadcast("3", "low")  # two pushes
        for _ in range(3):
            await bb.push()
        await c.push()
        for p in (a, bb, c):
            await p.close()

    run(go(), 30)
    want = {"now": before["now"] + 1, "next": before["next"] + 1, "low": before["low"] + 2}
    got = {}
    for p in want:
        got[p] = b.wait_metric("broker_messages_routed_total", want[p], priority=p)
    assert got == want


def test_queue_depth_counts_undelivered_deliveries(broker, own_pg):
    """a private database, so the gauge counts this test's rows and no others"""
    b = broker(database_url=own_pg.url)
    conn = own_pg.connect()
    try:
        m = mbtest.Mesh(conn)
        am, bm = m.add("A"), m.add("B")
        assert b.metric("broker_queue_depth") == 0

        async def send():
            a = Peer(b, am)
            await a.join()
            for i in range(3):
                _, ack = await a.send_direct(bm.pubkey, str(i))
                assert ack["queued"] is True, ack
            await a.close()

        run(send(), 30)
        assert b.metric("broker_queue_depth") == 3

        async def drain():
            bb = Peer(b, bm)
            await bb.join()
            got = [await bb.push() for _ in range(3)]
            await bb.close()
            return got

        assert len(run(drain(), 30)) == 3
        assert b.wait_metric("broker_queue_depth", 0) == 0
    finally:
        conn.close()
