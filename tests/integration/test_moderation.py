"""Moderation over the socket (issue 18, acceptance 4; docs/protocol.md
§12.4): kick, disconnect, ban, unban and list_bans for the owner and
admins only, the close codes, a banned member's hello and /join refused
until it is unbanned, and an audit row for each action."""

import invites
import mbtest
from invites import invite, post_join
from mbtest import Peer, run


async def request(p, msg):
    tag = mbtest.new_id(10)
    await p.send_json(dict(msg, _reqId=tag))
    return await p.wait_for(lambda m: m.get("_reqId") == tag)


def audit(db, mesh_id, *events):
    with db.cursor() as c:
        c.execute("SELECT event_type, actor_member_id, payload FROM mesh.audit_log WHERE mesh_id = %s "
                  "AND event_type = ANY(%s) ORDER BY id", (mesh_id, list(events)))
        return c.fetchall()


def test_admin_ban_closes_refuses_hello_and_join_until_unban_and_members_cannot(broker, mesh, db):
    b = broker()
    m = mesh("bob")
    admin = m.add("admin", role="admin")
    carol = m.add("carol")
    bob = m.members[0]
    # carol is a member through an invite, so /join can be tried again
    token, payload, _ = invite(db, m, max_uses=5)

    async def go():
        a, bp, c = Peer(b, admin), Peer(b, bob), Peer(b, carol)
        for p in (a, bp, c):
            await p.join()
        # a plain member may not
        for verb, word in (("kick", "kicked"), ("disconnect", "disconnected"), ("ban", "ban"), ("unban", "unban")):
            e = await request(bp, {"type": verb, "target": "carol"})
            assert e["type"] == "error" and e["code"] == "forbidden", e
            assert e["message"] == f"only owner or admin can {word}" and e["id"] == e["_reqId"]
        # ... but may list the bans
        r = await request(bp, {"type": "list_bans"})
        assert r["type"] == "list_bans_result" and r["bans"] == []
        # the admin bans carol: every connection of hers closes 4002 banned
        r = await request(a, {"type": "ban", "target": "carol", "reason": "spam"})
        assert r["type"] == "ban_ack" and r["banned"] == "carol", r
        assert await c.wait_closed() == (4002, "banned")
        with db.cursor() as cur:
            cur.execute("SELECT revoked_at IS NOT NULL FROM mesh.member WHERE id = %s", (carol.id,))
            assert cur.fetchone()[0] is True
        # her next hello is refused: revoked, close 4002
        again = Peer(b, carol)
        await again.connect()
        e = await again.hello()
        assert e["type"] == "error" and e["code"] == "revoked"
        assert e["message"] == f'You\'ve been removed from "{m.name}". Contact the mesh owner to rejoin.'
        assert await again.wait_closed() == (4002, "banned")
        assert b.wait_metric("broker_connections_rejected_total", 1, reason="revoked")
        # and so is /join with a valid invite
        assert post_join(b, token, payload, carol.pubkey, "carol") == (403, {"ok": False, "error": "member_revoked"})
        r = await request(a, {"type": "list_bans"})
        assert [(x["name"], x["pubkey"]) for x in r["bans"]] == [("carol", carol.pubkey)]
        assert r["bans"][0]["revokedAt"].endswith("Z")
        e = await request(a, {"type": "ban", "target": "carol"})
        assert e["type"] == "error" and e["code"] == "not_found" and e["message"] == 'peer "carol" not found'
        # unban lets her back
        e = await request(a, {"type": "unban", "target": "bob"})
        assert e["code"] == "not_found" and e["message"] == 'no banned peer "bob"'
        r = await request(a, {"type": "unban", "target": carol.pubkey})
        assert r["type"] == "unban_ack" and r["unbanned"] == "carol"
        back = Peer(b, carol)
        await back.join()
        assert post_join(b, token, payload, carol.pubkey, "carol")[0] == 200
        rows = audit(db, m.id, "member_banned", "member_unbanned")
        assert [(r[0], r[1]) for r in rows] == [("member_banned", admin.id), ("member_unbanned", admin.id)]
        assert rows[0][2] == {"target": "carol", "targetPubkey": carol.pubkey}
        assert rows[1][2] == {"target": "carol"}
        for p in (a, bp, back):
            await p.close()

    run(go())


def test_disconnect_and_kick_match_targets_and_skip_control_plane(broker, mesh, db):
    b = broker()
    m = mesh("bob", "dave")
    bob, dave = m.members
    owner = m.add("owner", sk=m.owner)  # the mesh owner's own key: a plain member row, yet it may

    async def go():
        o, bp, d = Peer(b, owner), Peer(b, bob), Peer(b, dave)
        for p in (o, bp, d):
            await p.join()
        e = await request(o, {"type": "kick"})
        assert e["type"] == "error" and e["code"] == "invalid" and e["message"] == "target required"
        e = await request(o, {"type": "disconnect", "target": "nobody"})
        assert e["code"] == "not_found" and e["message"] == 'peer "nobody" not found'
        e = await request(o, {"type": "disconnect", "target": bob.pubkey[:7]})  # prefixes need 8 characters
        assert e["code"] == "not_found"
        # kick: hello connections are control-plane, listed and left open
        r = await request(o, {"type": "kick", "target": "bob"})
        assert r["type"] == "kick_ack" and r["kicked"] == [] and r["skipped_control_plane"] == ["bob"], r
        # disconnect by pubkey prefix closes 1000 disconnected
        r = await request(o, {"type": "disconnect", "target": bob.pubkey[:8].upper()})
        assert r["type"] == "disconnect_ack" and r["kicked"] == ["bob"] and "skipped_control_plane" not in r
        assert await bp.wait_closed() == (1000, "disconnected")
        # all: every other presence, never the caller's own
        r = await request(o, {"type": "disconnect", "all": True})
        assert r["kicked"] == ["dave"]
        assert await d.wait_closed() == (1000, "disconnected")
        # the owner cannot be banned, nor can anyone ban themselves
        admin = m.add("admin", role="admin")
        ap = Peer(b, admin)
        await ap.join()
        e = await request(ap, {"type": "ban", "target": "owner"})
        assert e["type"] == "error" and e["code"] == "forbidden"
        e = await request(ap, {"type": "ban", "target": "admin"})
        assert e["code"] == "invalid" and e["message"] == "cannot ban yourself"
        m.add("twin")
        m.add("twin")
        e = await request(ap, {"type": "ban", "target": "twin"})
        assert e["code"] == "ambiguous" and e["message"] == '"twin" matches 2 members'
        rows = audit(db, m.id, "peer_kicked", "peer_disconnected")
        assert [r[0] for r in rows] == ["peer_kicked", "peer_disconnected", "peer_disconnected"]
        assert rows[1][2]["target"] == bob.pubkey[:8].upper() and len(rows[1][2]["presenceIds"]) == 1
        await o.close()
        await ap.close()

    run(go())


def test_kick_closes_a_session_hello_presence_4001_and_skips_the_members_control_plane_one(broker, mesh, db):
    """§12.4: kick skips control-plane presences (hello) and closes session
    ones (session_hello, peerRole "session") with 4001 kicked."""
    from test_sessions import SessionPeer

    b = broker()
    m = mesh("bob")
    bob = m.members[0]
    owner = m.add("owner", sk=m.owner)

    async def go():
        o, cp, s = Peer(b, owner), Peer(b, bob), SessionPeer(b, bob, session=True)
        for p in (o, cp, s):
            await p.join()
        r = await request(o, {"type": "kick", "target": "bob"})
        closed = await s.wait_closed()
        # the control-plane connection stays: it still answers
        peers = await request(cp, {"type": "list_peers"})
        await o.close()
        await cp.close()
        return r, closed, peers

    r, closed, peers = run(go(), 60)
    assert r["type"] == "kick_ack" and r["kicked"] == ["bob"] and r["skipped_control_plane"] == ["bob"], r
    assert closed == (4001, "kicked")
    assert peers["type"] == "peers_list", peers
    assert "control-plane" in [e["peerRole"] for e in peers["peers"] if e["displayName"] == "bob"], peers
    rows = audit(db, m.id, "peer_kicked")
    assert len(rows) == 1 and len(rows[0][2]["presenceIds"]) == 1, rows
