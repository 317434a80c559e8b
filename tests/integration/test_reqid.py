"""_reqId and the error echo (issue 18; docs/protocol.md §12.7): every
request with a string _reqId (at most 128 bytes) gets at most one reply, and
that reply and any error carry the same _reqId (errors also as id); an
unknown type is answered at once with unknown_type naming the type, so a
client never waits out its timeout.  Hello-phase errors carry neither."""

import json

from mbtest import Peer, run


def one(b, member, frames, pred, hello=True):
    """join (or not), send frames, return the first reply matching pred and
    anything else that arrived before a barrier"""
    async def go():
        p = Peer(b, member)
        if hello:
            await p.join()
        else:
            await p.connect()
        for f in frames:
            if isinstance(f, str):
                await p.ws.send(f)
            else:
                await p.send_json(f)
        r = await p.wait_for(pred, 10)
        rest = []
        if hello:
            await p.barrier()
            rest = [m for m in p.backlog if m.get("_reqId") == r.get("_reqId")]
        await p.close()
        return r, rest

    return run(go(), 30)


def test_an_unknown_type_gets_unknown_type_with_its_req_id_at_once(broker, mesh):
    b = broker()
    m = mesh("A")
    r, rest = one(b, m.members[0], [{"type": "peer_frobnicate", "_reqId": "r-1"}],
                  lambda x: x.get("type") == "error")
    assert r == {"type": "error", "code": "unknown_type", "message": "unknown message type: peer_frobnicate",
                 "id": "r-1", "_reqId": "r-1"}, r
    assert rest == [], f"more than one reply for r-1: {rest}"


def test_a_frame_without_a_type_gets_unknown_type_too(broker, mesh):
    b = broker()
    m = mesh("A")
    r, _ = one(b, m.members[0], [{"_reqId": "r-2"}], lambda x: x.get("type") == "error")
    assert r["code"] == "unknown_type" and r["_reqId"] == "r-2" and r["id"] == "r-2", r


def test_bad_json_gets_bad_json(broker, mesh):
    b = broker()
    m = mesh("A")
    r, _ = one(b, m.members[0], ['{"type": "list_peers", "_reqId": "r-3"'], lambda x: x.get("type") == "error")
    assert r["code"] == "bad_json", r


def test_a_reply_and_an_error_carry_the_req_id(broker, mesh):
    b = broker()
    m = mesh("A")
    r, _ = one(b, m.members[0], [{"type": "list_peers", "_reqId": "r-4"}], lambda x: x.get("type") == "peers_list")
    assert r["_reqId"] == "r-4", r
    r, _ = one(b, m.members[0], [{"type": "set_status", "status": "asleep", "_reqId": "r-5", "id": "other"}],
               lambda x: x.get("type") == "error")
    assert (r["code"], r["_reqId"], r["id"]) == ("invalid_status", "r-5", "r-5"), r


def test_a_send_ack_carries_its_id_and_req_id(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        f = a.send_frame_direct(bm.pubkey, "with a req id", id="send-1")
        f["_reqId"] = "r-6"
        ok = await a.send_and_ack(f)
        bad = a.send_frame_direct(bm.pubkey, "x", id="send-2")
        bad["priority"] = "whenever"
        bad["_reqId"] = "r-7"
        refused = await a.send_and_ack(bad)
        await a.close()
        return ok, refused

    ok, refused = run(go(), 30)
    assert (ok["id"], ok["_reqId"], ok["queued"]) == ("send-1", "r-6", True), ok
    assert (refused["id"], refused["_reqId"], refused["queued"], refused["code"]) == (
        "send-2", "r-7", False, "invalid_priority"), refused


def test_a_req_id_over_128_bytes_or_not_a_string_is_ignored(broker, mesh):
    b = broker()
    m = mesh("A")
    r, _ = one(b, m.members[0], [{"type": "nope", "_reqId": "x" * 129, "id": "i-1"}],
               lambda x: x.get("type") == "error")
    assert "_reqId" not in r and r["id"] == "i-1", r
    r, _ = one(b, m.members[0], [{"type": "nope", "_reqId": 7}], lambda x: x.get("type") == "error")
    assert "_reqId" not in r, r


def test_hello_phase_errors_carry_neither_field(broker, mesh):
    b = broker()
    m = mesh("A")
    r, _ = one(b, m.members[0], [{"type": "list_peers", "_reqId": "r-8", "id": "i-8"}],
               lambda x: x.get("type") == "error", hello=False)
    assert r == {"type": "error", "code": "no_hello", "message": "must send hello first"}, r


def test_replies_come_in_request_order(broker, mesh):
    b = broker()
    m = mesh("A")

    async def go():
        p = Peer(b, m.members[0])
        await p.join()
        for i in range(5):
            await p.send_json({"type": "unknown_%d" % i, "_reqId": "o-%d" % i})
            await p.send_json({"type": "list_peers", "_reqId": "l-%d" % i})
        got = []
        while len(got) < 10:
            got.append((await p.recv_json())["_reqId"])
        await p.close()
        return got

    got = run(go(), 30)
    assert got == [x for i in range(5) for x in ("o-%d" % i, "l-%d" % i)], got
