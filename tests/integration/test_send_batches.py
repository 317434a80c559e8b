"""Sends that arrive while one of the connection's send statements runs go
out together in the next (issue 13: group commit): each still gets its own
ack, in order, a refused one among them refuses only itself, and the
audit chain stays whole when the sends of many workers of one mesh overlap
(their rows are then left pending and chained by a later chain step)."""

import asyncio

import nacl.signing

from mbtest import Peer, run, wait_until
from test_audit_chain import verify_chain

FAST = dict(SEND_RATE_LIMIT_PER_MIN=1_000_000, SEND_RATE_BURST=100_000)


def test_pipelined_sends_are_acked_and_delivered_in_order_and_a_refusal_refuses_only_itself(broker, mesh):
    b = broker(**FAST)
    m = mesh("A", "B")
    am, bm = m.members
    stranger = nacl.signing.SigningKey.generate().verify_key.encode().hex()
    n, bad = 40, 17

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        frames = []
        for i in range(n):
            to = stranger if i == bad else bm.pubkey
            frames.append(a.send_frame_direct(to, f"m{i}", "now", id=f"p{i}"))
        # all of them at once: most wait for the statement before theirs
        await asyncio.gather(*(a.send_json(f) for f in frames))
        acks = [await a.wait_for(lambda x: x.get("type") == "ack", 20) for _ in range(n)]
        ids = [x["id"] for x in acks if x["queued"]]
        assert ids == [f"p{i}" for i in range(n) if i != bad], "acks of stored sends, in the order sent"
        refused = [x for x in acks if not x["queued"]]
        assert [x["id"] for x in refused] == [f"p{bad}"]
        assert "no such recipient" in refused[0]["error"]
        got = [bb.decrypt(await bb.push(timeout=20)) for _ in range(n - 1)]
        assert got == [f"m{i}" for i in range(n) if i != bad]
        await bb.quiet(lambda x: x.get("type") == "push", 0.5)
        await a.close()
        await bb.close()

    run(go(), 60)


def test_audit_chain_is_whole_when_the_sends_of_many_workers_overlap(broker, mesh, db):
    b = broker(**FAST)
    m = mesh(*[f"P{i}" for i in range(6)])
    per = 25

    async def go():
        peers = [Peer(b, x) for x in m.members]
        for p in peers:
            await p.join()
        target = m.members[0].pubkey

        async def burst(p, k):
            await asyncio.gather(*(p.send_json(p.send_frame_direct(target, f"{k}-{i}", "low", id=f"s{i}"))
                                   for i in range(per)))
            for i in range(per):
                ack = await p.wait_for(lambda x, i=i: x.get("type") == "ack" and x.get("id") == f"s{i}", 20)
                assert ack["queued"], ack

        await asyncio.gather(*(burst(p, k) for k, p in enumerate(peers)))
        for p in peers:
            await p.close()

    run(go(), 90)

    def pending():
        with db.cursor() as c:
            c.execute("SELECT count(*) FROM mesh.audit_pending WHERE mesh_id = %s", (m.id,))
            return c.fetchone()[0]

    assert wait_until(lambda: pending() == 0, 10), f"{pending()} audit rows never chained"
    rows = verify_chain(db, m.id)
    events = [r[1] for r in rows]
    assert events.count("message_sent") == 6 * per, events
