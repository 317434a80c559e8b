"""client_ack (docs/protocol.md §3.4 ext): a peer that lists "client_ack" in its
hello capabilities gets at-least-once delivery — what it does not ack is
delivered again to its next connection; what it acks is not."""

from mbtest import Peer, is_push, run


def test_unacked_push_is_redelivered_and_acked_push_is_not(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        _, ack1 = await a.send_direct(bm.pubkey, "one", "now")
        _, ack2 = await a.send_direct(bm.pubkey, "two", "now")
        bb = Peer(b, bm)
        await bb.connect()
        r = await bb.hello(capabilities=["client_ack"])
        assert r["type"] == "hello_ack", r
        p1 = await bb.push()
        p2 = await bb.push()
        assert [p1["messageId"], p2["messageId"]] == [ack1["messageId"], ack2["messageId"]]
        await bb.send_json({"type": "client_ack", "brokerMessageId": p1["messageId"]})
        # the worker answers frames in order: once the barrier's answer is
        # here, an error for the client_ack would have come before it
        await bb.barrier()
        assert not bb.take(lambda x: x.get("type") == "error"), bb.backlog
        await bb.close()
        again = Peer(b, bm)
        await again.join()
        p = await again.push()
        assert p["messageId"] == ack2["messageId"], "the unacked message comes back"
        assert again.decrypt(p) == "two"
        await again.quiet(is_push, 0.8)
        await again.close()
        await a.close()

    run(go(), 30)
