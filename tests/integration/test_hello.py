"""Signed hello (issue 3, acceptance 1; docs/protocol.md §2): the seven cases,
replay, revocation, a foreign memberId and capacity.  Every rejection is an
error frame, a close 1008 with the code as reason, and +1 on
broker_connections_rejected_total{reason}."""

import asyncio
import time

import nacl.signing

import mbtest
from mbtest import Peer, now_ms, run

MESSAGES = {
    "malformed": "hello rejected: malformed",
    "timestamp_skew": "hello rejected: timestamp_skew",
    "bad_signature": "hello rejected: bad_signature",
    "replayed": "hello rejected: replayed",
    "unauthorized": "pubkey not found in mesh",
    "capacity": "mesh at connection capacity",
}


async def rejected(peer, code, **hello_kw):
    """connect, send the hello, expect the error frame and close 1008 code"""
    await peer.connect()
    reply = await peer.hello(**hello_kw)
    assert reply.get("type") == "error", f"expected rejection {code}, got {reply}"
    assert (reply.get("code"), reply.get("message")) == (code, MESSAGES[code]), reply
    close = await peer.wait_closed(5)
    assert close == (1008, code), f"closed with {close}, want (1008, {code!r})"


def assert_rejected(b, peer, code, **hello_kw):
    before = b.metric("broker_connections_rejected_total", reason=code)
    run(rejected(peer, code, **hello_kw), 30)
    after = b.wait_metric("broker_connections_rejected_total", before + 1, timeout=3, reason=code)
    assert after == before + 1, f'broker_connections_rejected_total{{reason="{code}"}} {before} -> {after}'


def test_valid_hello_gets_hello_ack_with_presence_and_member(broker, mesh):
    b = broker()
    m = mesh("alice")
    alice = m.members[0]

    async def go():
        p = Peer(b, alice)
        await p.connect()
        ack = await p.hello()
        assert ack["type"] == "hello_ack", ack
        assert list(ack)[:4] == ["type", "presenceId", "memberDisplayName", "memberId"], \
            f"compat field order: {list(ack)}"
        assert isinstance(ack["presenceId"], str) and ack["presenceId"]
        assert ack["memberDisplayName"] == "alice"
        assert ack["memberId"] == alice.id
        assert p.ws.open
        await p.close()

    run(go(), 30)
    assert b.metric("broker_connections_rejected_total", reason="bad_signature") == 0


def test_hello_signed_by_another_key_is_bad_signature(broker, mesh):
    b = broker()
    m = mesh("alice")
    assert_rejected(b, Peer(b, m.members[0]), "bad_signature", sign_with=nacl.signing.SigningKey.generate())


def test_hello_61s_in_the_past_is_timestamp_skew(broker, mesh):
    b = broker()
    m = mesh("alice")
    assert_rejected(b, Peer(b, m.members[0]), "timestamp_skew", ts=now_ms() - 61000)


def test_hello_61s_in_the_future_is_timestamp_skew(broker, mesh):
    b = broker()
    m = mesh("alice")
    assert_rejected(b, Peer(b, m.members[0]), "timestamp_skew", ts=now_ms() + 61000)


def test_hello_59s_old_is_accepted(broker, mesh):
    b = broker()
    m = mesh("alice")

    async def go():
        p = Peer(b, m.members[0])
        await p.connect()
        ack = await p.hello(ts=now_ms() - 59000)
        assert ack["type"] == "hello_ack", ack
        await p.close()

    run(go(), 30)


def test_hello_signed_for_mesh_a_sent_for_mesh_b_is_bad_signature(broker, mesh, db):
    b = broker()
    mesh_a = mesh("alice")
    alice = mesh_a.members[0]
    mesh_b = mesh()
    mesh_b.add("alice", sk=alice.sk)  # the same key is a member of both
    assert_rejected(b, Peer(b, alice), "bad_signature", sign_mesh=mesh_a.id, meshId=mesh_b.id)


def test_hello_with_pubkey_not_hex_is_malformed(broker, mesh):
    b = broker()
    m = mesh("alice")
    assert_rejected(b, Peer(b, m.members[0]), "malformed", pubkey="not-hex")


def test_hello_with_signature_abc123_is_malformed(broker, mesh):
    b = broker()
    m = mesh("alice")
    assert_rejected(b, Peer(b, m.members[0]), "malformed", signature="abc123")


def test_hello_missing_a_field_or_with_a_wrong_type_is_malformed(broker, mesh):
    b = broker()
    m = mesh("alice")
    p = Peer(b, m.members[0])
    msg = p.hello_msg()
    del msg["cwd"]
    assert_rejected(b, p, "malformed", msg=msg)
    p = Peer(b, m.members[0])
    msg = p.hello_msg()
    msg["pid"] = "1234"
    assert_rejected(b, p, "malformed", msg=msg)
    p = Peer(b, m.members[0])
    msg = p.hello_msg()
    msg["timestamp"] = str(msg["timestamp"])
    assert_rejected(b, p, "malformed", msg=msg)


def test_replayed_hello_is_refused_while_the_first_is_live_or_gone(broker, mesh):
    b = broker()
    m = mesh("alice")
    alice = m.members[0]
    first = Peer(b, alice)
    msg = first.hello_msg()

    async def accept_first():
        await first.connect()
        ack = await first.hello(msg=msg)
        assert ack["type"] == "hello_ack", ack

    async def close_first():
        await first.close()

    async def both():
        await accept_first()
        await rejected(Peer(b, alice), "replayed", msg=msg)
        await close_first()
        await rejected(Peer(b, alice), "replayed", msg=msg)

    before = b.metric("broker_connections_rejected_total", reason="replayed")
    run(both(), 30)
    assert b.wait_metric("broker_connections_rejected_total", before + 2, reason="replayed") == before + 2


def test_revoked_member_is_refused_revoked_and_closed_4002(broker, mesh):
    """docs/protocol.md §12.4: a member whose row is revoked (banned) gets
    code revoked naming the mesh and close 4002 banned, not check 6's
    unauthorized (issue 18)"""
    b = broker()
    m = mesh("alice")
    m.revoke(m.members[0])
    before = b.metric("broker_connections_rejected_total", reason="revoked")

    async def go():
        p = Peer(b, m.members[0])
        await p.connect()
        reply = await p.hello()
        assert reply.get("type") == "error" and reply.get("code") == "revoked", reply
        assert reply["message"] == f'You\'ve been removed from "{m.name}". Contact the mesh owner to rejoin.'
        assert await p.wait_closed(5) == (4002, "banned")

    run(go(), 30)
    assert b.wait_metric("broker_connections_rejected_total", before + 1, timeout=3, reason="revoked") == before + 1


def test_pubkey_that_is_no_member_is_unauthorized(broker, mesh):
    b = broker()
    m = mesh()
    stranger = mbtest.Member(m, "stranger")  # never inserted
    assert_rejected(b, Peer(b, stranger), "unauthorized")


def test_memberid_of_another_member_is_unauthorized(broker, mesh):
    b = broker()
    m = mesh("alice", "bob")
    alice, bob = m.members
    # correctly signed by alice, but claiming bob's member id
    assert_rejected(b, Peer(b, alice), "unauthorized", memberId=bob.id)


def test_member_of_an_archived_mesh_is_unauthorized(broker, mesh, db):
    b = broker()
    m = mesh("alice")
    with db.cursor() as c:
        c.execute("UPDATE mesh.mesh SET archived_at = now() WHERE id = %s", (m.id,))
    assert_rejected(b, Peer(b, m.members[0]), "unauthorized")


def test_capacity_is_refused_only_after_a_valid_signature(broker, mesh):
    b = broker(MAX_CONNECTIONS_PER_MESH=1)
    m = mesh("alice", "bob", "carol")
    alice, bob, carol = m.members

    async def go():
        a = Peer(b, alice)
        await a.join()
        # a bad signature against a full mesh is a bad signature, not capacity
        await rejected(Peer(b, carol), "bad_signature", sign_with=nacl.signing.SigningKey.generate())
        await rejected(Peer(b, bob), "capacity")
        await a.close()
        # the slot is free again (once alice's worker has released it)
        assert b.wait_metric("broker_connections_active", 0) == 0
        bp = Peer(b, bob)
        ok = False
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await bp.connect()
            ack = await bp.hello()
            if ack["type"] == "hello_ack":
                ok = True
                break
            await asyncio.sleep(0.2)
        assert ok, f"bob still refused after alice left: {ack}"
        await bp.close()

    cap0 = b.metric("broker_connections_rejected_total", reason="capacity")
    bad0 = b.metric("broker_connections_rejected_total", reason="bad_signature")
    run(go(), 60)
    assert b.metric("broker_connections_rejected_total", reason="bad_signature") == bad0 + 1
    assert b.metric("broker_connections_rejected_total", reason="capacity") == cap0 + 1


def test_mesh_max_peers_limits_connections(broker, mesh, db):
    b = broker()
    m = mesh("alice", "bob")
    with db.cursor() as c:
        c.execute("UPDATE mesh.mesh SET max_peers = 1 WHERE id = %s", (m.id,))

    async def go():
        a = Peer(b, m.members[0])
        await a.join()
        await rejected(Peer(b, m.members[1]), "capacity")
        await a.close()

    run(go(), 30)


def test_capacity_counts_only_the_same_mesh(broker, mesh):
    b = broker(MAX_CONNECTIONS_PER_MESH=1)
    m1, m2 = mesh("alice"), mesh("bob")

    async def go():
        a, bp = Peer(b, m1.members[0]), Peer(b, m2.members[0])
        await a.join()
        await bp.join()
        await a.close()
        await bp.close()

    run(go(), 30)


def test_second_hello_on_an_authenticated_socket_is_already_authenticated(broker, mesh):
    b = broker()
    m = mesh("alice")

    async def go():
        p = Peer(b, m.members[0])
        await p.join()
        await p.send_json(p.hello_msg())
        err = await p.wait_for(lambda x: x.get("type") == "error", 5)
        assert err["code"] == "already_authenticated", err
        assert p.ws.open
        await p.close()

    run(go(), 30)


def test_unknown_type_after_hello_is_unknown_type_and_bad_json_is_bad_json(broker, mesh):
    b = broker()
    m = mesh("alice")

    async def go():
        p = Peer(b, m.members[0])
        await p.join()
        await p.send_json({"type": "no_such_thing"})
        err = await p.wait_for(lambda x: x.get("type") == "error", 5)
        assert err["code"] == "unknown_type", err
        await p.ws.send("{nope")
        err = await p.wait_for(lambda x: x.get("type") == "error", 5)
        assert err["code"] == "bad_json", err
        assert p.ws.open
        await p.close()

    run(go(), 30)
