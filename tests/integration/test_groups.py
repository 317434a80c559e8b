"""Groups, visibility and profile (issue 18, acceptance 3; docs/protocol.md
§12.3): join_group / leave_group on the presence, saved for the member and
restored by its next hello, '@group' sends with the recipients fixed at
send time (an offline member of the group gets it on reconnect), the
hierarchy, hidden presences, the name and length rules, and the peers_list
fields."""

import asyncio

import mbtest
from mbtest import Peer, run


def is_type(t):
    return lambda m: m.get("type") == t


async def list_peers(p):
    tag = mbtest.new_id(10)
    await p.send_json({"type": "list_peers", "_reqId": tag})
    r = await p.wait_for(lambda m: m.get("_reqId") == tag)
    assert r["type"] == "peers_list", r
    return {e["displayName"]: e for e in r["peers"]}


async def request(p, msg):
    """a request with a _reqId: its reply (or error)"""
    tag = mbtest.new_id(10)
    await p.send_json(dict(msg, _reqId=tag))
    return await p.wait_for(lambda m: m.get("_reqId") == tag)


async def send_group(p, target, text="hi", **kw):
    frame = {"type": "send", "id": mbtest.new_id(12), "targetSpec": target, "priority": "now",
             "nonce": mbtest.b64e(b"n" * 24), "ciphertext": mbtest.b64e(text.encode())}
    frame.update(kw)
    return await p.send_and_ack(frame)


def recipients(db, message_id):
    with db.cursor() as c:
        c.execute("SELECT m.display_name FROM mesh.delivery d JOIN mesh.member m ON m.id = d.recipient_member_id "
                  "WHERE d.message_id = %s ORDER BY 1", (message_id,))
        return [r[0] for r in c.fetchall()]


def test_send_to_a_group_reaches_exactly_its_members_and_an_offline_one_on_reconnect(broker, mesh, db):
    b = broker()
    m = mesh("alice", "bob", "carol")
    alice, bob, carol = m.members

    async def go():
        # carol joins @reviewers, then goes offline (her groups are saved)
        c = Peer(b, carol)
        await c.join()
        await c.send_json({"type": "join_group", "name": "reviewers"})
        assert (await list_peers(c))["carol"]["groups"] == [{"name": "reviewers"}]
        await c.close()
        # bob brings his groups in his hello
        bp = Peer(b, bob)
        await bp.connect()
        assert (await bp.hello(groups=[{"name": "reviewers", "role": "lead"}]))["type"] == "hello_ack"
        a = Peer(b, alice)
        await a.join()
        peers = await list_peers(a)
        assert set(peers) == {"alice", "bob"}
        assert peers["bob"]["groups"] == [{"name": "reviewers", "role": "lead"}]
        assert peers["alice"]["groups"] == []
        assert peers["bob"]["memberPubkey"] == bob.pubkey and peers["bob"]["pubkey"] == bob.pubkey
        assert peers["bob"]["peerRole"] == "control-plane" and peers["bob"]["visible"] is True
        ack = await send_group(a, "@reviewers", "please review")
        assert ack["queued"] is True and ack["messageId"], ack
        p = await bp.push()
        assert p["messageId"] == ack["messageId"] and mbtest.b64d(p["ciphertext"]) == b"please review"
        assert p["senderPubkey"] == alice.pubkey
        assert recipients(db, ack["messageId"]) == ["bob", "carol"]
        await a.quiet(mbtest.is_push, 1.0)  # never the sender
        # carol comes back: the message waited for her, and so did her group
        c2 = Peer(b, carol)
        await c2.join()
        p = await c2.push()
        assert p["messageId"] == ack["messageId"] and mbtest.b64d(p["ciphertext"]) == b"please review"
        assert (await list_peers(a))["carol"]["groups"] == [{"name": "reviewers"}]
        with db.cursor() as cur:
            cur.execute("SELECT target_spec FROM mesh.message_queue WHERE id = %s", (ack["messageId"],))
            assert cur.fetchone()[0] == "@reviewers"
            cur.execute("SELECT payload->>'targetSpec' FROM mesh.audit_log WHERE mesh_id = %s "
                        "AND event_type = 'message_sent'", (m.id,))
            assert [r[0] for r in cur.fetchall()] == ["@reviewers"]
        for p in (a, bp, c2):
            await p.close()

    run(go())


def test_group_hierarchy_leave_all_and_no_recipient(broker, mesh, db):
    b = broker()
    m = mesh("alice", "bob", "carol", "dave")
    alice, bob, carol, dave = m.members

    async def go():
        a, bp, c, d = Peer(b, alice), Peer(b, bob), Peer(b, carol), Peer(b, dave)
        for p in (a, bp, c, d):
            await p.join()
        await bp.send_json({"type": "join_group", "name": "eng/backend"})
        await c.send_json({"type": "join_group", "name": "eng", "role": "lead"})
        await c.send_json({"type": "join_group", "name": "eng", "role": "member"})  # upsert by name
        await d.send_json({"type": "join_group", "name": "design"})
        await d.send_json({"type": "join_group", "name": "ops"})
        await d.send_json({"type": "leave_group", "name": "ops"})
        await d.send_json({"type": "leave_group", "name": "never-joined"})  # a no-op
        for p in (bp, c, d):
            await list_peers(p)  # their statements are done
        peers = await list_peers(a)
        assert peers["carol"]["groups"] == [{"name": "eng", "role": "member"}]
        assert peers["dave"]["groups"] == [{"name": "design"}]
        # a presence in eng/backend matches @eng; one in eng does not match @eng/backend
        assert recipients(db, (await send_group(a, "@eng"))["messageId"]) == ["bob", "carol"]
        assert recipients(db, (await send_group(a, "@eng/backend"))["messageId"]) == ["bob"]
        assert recipients(db, (await send_group(a, "@en"))["messageId"]) == []
        nobody = await send_group(a, "@nobody-here")
        assert nobody["queued"] is True and recipients(db, nobody["messageId"]) == []
        assert recipients(db, (await send_group(a, "@all"))["messageId"]) == ["bob", "carol", "dave"]
        bad = await send_group(a, "@bad//name")
        assert bad["queued"] is False and bad["messageId"] == "" and "@group" in bad["error"]
        # the sender's own member never gets its group's message
        await a.send_json({"type": "join_group", "name": "eng"})
        await list_peers(a)
        assert recipients(db, (await send_group(a, "@eng"))["messageId"]) == ["bob", "carol"]
        for p in (a, bp, c, d):
            await p.close()

    run(go())


def test_hidden_presences_leave_list_peers_star_and_groups_but_get_direct_messages(broker, mesh, db):
    b = broker()
    m = mesh("alice", "bob", "carol")
    alice, bob, carol = m.members

    async def go():
        a, bp, c = Peer(b, alice), Peer(b, bob), Peer(b, carol)
        for p in (a, bp, c):
            await p.join()
        w = Peer(b, alice)  # a second session of alice that watches peer events
        await w.connect()
        await w.send_json(w.hello_msg(capabilities=["peer_events"]))
        await w.wait_for(is_type("hello_ack"))
        await c.send_json({"type": "join_group", "name": "team"})
        await bp.send_json({"type": "join_group", "name": "team"})
        ack = await request(c, {"type": "set_visible", "visible": False})
        assert ack["type"] == "ack" and ack["queued"] is False and ack["messageId"] == "" and ack["id"] == ack["_reqId"]
        assert "carol" not in await list_peers(a)
        own = await list_peers(c)  # its own member still sees it
        assert own["carol"]["visible"] is False and own["carol"]["self"] is True
        ev = await w.wait_for(lambda x: x.get("type") == "push" and x.get("subtype") == "system" and
                              "peer_hidden" in str(x), timeout=30)
        assert carol.pubkey in str(ev)
        star = await send_group(a, "*")
        assert star["queued"] is True and recipients(db, star["messageId"]) == ["bob"]
        assert recipients(db, (await send_group(a, "@team"))["messageId"]) == ["bob"]
        _, dm = await a.send_direct(carol.pubkey, "still reachable")
        assert dm["queued"] is True
        p = await c.push(pred=lambda x: x["messageId"] == dm["messageId"])
        assert c.decrypt(p) == "still reachable"
        bad = await request(c, {"type": "set_visible", "visible": "no"})
        assert bad["type"] == "error" and bad["code"] == "malformed" and bad["id"] == bad["_reqId"]
        # the hidden state is saved: carol's next connection starts hidden
        await c.close()
        c2 = Peer(b, carol)
        await c2.join()
        await list_peers(c2)
        for _ in range(100):
            if "carol" not in await list_peers(a):
                break
            await asyncio.sleep(0.05)
        assert "carol" not in await list_peers(a)
        back = await request(c2, {"type": "set_visible", "visible": True})
        assert back["type"] == "ack"
        assert (await list_peers(a))["carol"]["visible"] is True
        for p in (a, bp, c2, w):
            await p.close()

    run(go())


def test_group_names_profile_and_stats_are_checked_and_listed(broker, mesh):
    b = broker()
    m = mesh("alice", "bob")
    alice, bob = m.members

    async def go():
        a, bp = Peer(b, alice), Peer(b, bob)
        await a.join()
        await bp.join()
        for bad in ("all", "", "a//b", "/a", "a/", "-x", "a b", "x" * 65, "/".join(["abc"] * 40), 7):
            e = await request(a, {"type": "join_group", "name": bad})
            assert e["type"] == "error" and e["code"] == "invalid_group" and e["id"] == e["_reqId"], (bad, e)
        e = await request(a, {"type": "join_group", "name": "ok", "role": "r" * 33})
        assert e["code"] == "invalid_group"
        e = await request(a, {"type": "leave_group", "name": "all"})
        assert e["code"] == "invalid_group"
        for i in range(32):
            await a.send_json({"type": "join_group", "name": f"g{i}"})
        e = await request(a, {"type": "join_group", "name": "one-too-many"})
        assert e["type"] == "error" and e["code"] == "invalid_group"
        assert len((await list_peers(bp))["alice"]["groups"]) == 32
        # profile: present fields overwrite, absent ones stay
        e = await request(a, {"type": "set_profile", "bio": "b" * 513})
        assert e["type"] == "error" and e["code"] == "profile_too_long"
        e = await request(a, {"type": "set_profile", "capabilities": ["c"] * 17})
        assert e["code"] == "profile_too_long"
        ok = await request(a, {"type": "set_profile", "title": "reviewer", "bio": "b" * 512,
                               "capabilities": ["review"]})
        assert ok["type"] == "ack" and ok["queued"] is False
        ok = await request(a, {"type": "set_profile", "title": "lead"})
        assert ok["type"] == "ack"
        await a.send_json({"type": "set_stats", "stats": {"messagesIn": 3, "toolCalls": 9, "junk": "x"}})
        await list_peers(a)  # set_stats has no reply: this one comes after its statement
        peers = await list_peers(bp)
        assert peers["alice"]["profile"] == {"title": "lead", "bio": "b" * 512, "capabilities": ["review"]}
        assert peers["alice"]["stats"] == {"messagesIn": 3, "toolCalls": 9}
        assert "profile" not in peers["bob"] and "stats" not in peers["bob"]
        e = await request(a, {"type": "set_stats", "stats": 5})
        assert e["type"] == "error" and e["code"] == "malformed"
        await a.close()
        await bp.close()

    run(go())
