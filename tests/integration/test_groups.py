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


async def peers_by_key(p):
    tag = mbtest.new_id(10)
    await p.send_json({"type": "list_peers", "_reqId": tag})
    r = await p.wait_for(lambda m: m.get("_reqId") == tag)
    assert r["type"] == "peers_list", r
    return {e["pubkey"]: e for e in r["peers"]}


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


# ---------------------------------------------------------------- with session keys and client ids (§12.1, §12.2)


def test_a_session_key_senders_group_and_hidden_star_sends_open_with_its_key_and_a_resend_stores_once(
        broker, mesh, db):
    """'@group' and hidden-aware '*' sends (mesh.send_group, migration 0009)
    carry what a DM carries: the sender's session key as senderPubkey (the
    key it boxed with), its member, its name and the client's ids; and are
    stored once per client_message_id, a resend getting the first ack and a
    changed request client_id_conflict."""
    from test_sessions import SessionPeer, dm_frame, opened

    b = broker()
    m = mesh("alice", "bob", "carol")
    alice, bob, carol = m.members

    def stored(cid):
        with db.cursor() as c:
            c.execute("SELECT id, sender_session_pubkey, sender_name, client_message_id, request_fingerprint "
                      "FROM mesh.message_queue WHERE sender_member_id = %s AND client_key = %s", (alice.id, cid))
            return c.fetchall()

    async def go():
        a = SessionPeer(b, alice, session=True)
        await a.join()
        bp, c = Peer(b, bob), Peer(b, carol)
        await bp.connect()
        assert (await bp.hello(groups=[{"name": "reviewers"}]))["type"] == "hello_ack"
        await list_peers(bp)  # its presence row (and groups) are written: its worker's statements are in order
        await c.join()
        f = dm_frame(a.sk, bob.pubkey, "boxed for bob alone", targetSpec="@reviewers",
                     client_message_id="cid-group", request_fingerprint="fp-1")
        first = await a.send_and_ack(f)
        p = await bp.push()
        again = await a.send_and_ack(dict(f))  # a resend after an unknown outcome, say
        other = await a.send_and_ack(dict(f, id=mbtest.new_id(12), request_fingerprint="fp-2"))
        await bp.quiet(mbtest.is_push, 1.0)  # once
        await c.quiet(mbtest.is_push, 0.1)  # not in the group
        # '*' while a presence is hidden goes the same way
        r = await request(c, {"type": "set_visible", "visible": False})
        assert r["type"] == "ack", r
        s = dm_frame(a.sk, bob.pubkey, "star, boxed for bob", targetSpec="*", client_message_id="cid-star")
        star = await a.send_and_ack(s)
        q = await bp.push()
        star_again = await a.send_and_ack(dict(s))
        await bp.quiet(mbtest.is_push, 1.0)
        await c.quiet(mbtest.is_push, 0.1)  # hidden
        for x in (a, bp, c):
            await x.close()
        return a, first, p, again, other, star, q, star_again

    a, first, p, again, other, star, q, star_again = run(go(), 60)
    assert first["queued"] is True and p["messageId"] == first["messageId"], (first, p)
    assert p["senderPubkey"] == a.pub  # the session key it boxed with, not the member key
    assert (p["senderMemberPubkey"], p["senderMemberId"], p["senderName"]) == (alice.pubkey, alice.id, "alice")
    assert (p["client_message_id"], p["request_fingerprint"]) == ("cid-group", "fp-1")
    assert opened(bob.sk, p) == "boxed for bob alone"
    assert again["queued"] is True and again["messageId"] == first["messageId"], again
    assert (other["queued"], other["messageId"], other["code"]) == (False, "", "client_id_conflict"), other
    assert stored("cid-group") == [(first["messageId"], a.pub, "alice", "cid-group", "fp-1")]
    assert recipients(db, first["messageId"]) == ["bob"]
    assert star["queued"] is True and q["messageId"] == star["messageId"], (star, q)
    assert q["senderPubkey"] == a.pub and q["senderMemberId"] == alice.id and q["client_message_id"] == "cid-star"
    assert "request_fingerprint" not in q
    assert opened(bob.sk, q) == "star, boxed for bob"
    assert star_again["messageId"] == star["messageId"], star_again
    assert stored("cid-star") == [(star["messageId"], a.pub, "alice", "cid-star", None)]
    assert recipients(db, star["messageId"]) == ["bob"]  # carol's one presence is hidden
    with db.cursor() as cur:  # one message_sent row for each stored send, none for the resends
        cur.execute("SELECT payload->>'messageId' FROM mesh.audit_log WHERE mesh_id = %s "
                    "AND event_type = 'message_sent' ORDER BY id", (m.id,))
        assert [r[0] for r in cur.fetchall()] == [first["messageId"], star["messageId"]]


def test_a_session_hello_presence_is_listed_with_its_session_key_role_and_groups(broker, mesh, db):
    """peers_list (§12.3): pubkey = the session key, peerRole "session" for a
    session_hello and "control-plane" for a hello (with or without a
    session key); a session_hello's groups are its own, else the member's
    default groups — never what the member saved from a plain hello."""
    from test_sessions import SessionPeer

    b = broker()
    m = mesh("alice", "bob")
    alice, bob = m.members

    async def go():
        # bob saves a group from a plain hello, then leaves; then his member gets default groups
        bp = Peer(b, bob)
        await bp.join()
        await bp.send_json({"type": "join_group", "name": "saved"})
        assert (await list_peers(bp))["bob"]["groups"] == [{"name": "saved"}]
        await bp.close()
        with db.cursor() as cur:
            cur.execute("UPDATE mesh.member SET default_groups = '[{\"name\": \"dflt\"}]' WHERE id = %s",
                        (bob.id,))
        own = SessionPeer(b, bob, session=True)
        await own.connect()
        ack = await own.hello(groups=[{"name": "ops", "role": "lead"}], displayName="bob-session")
        assert ack["type"] == "hello_ack", ack
        dflt = SessionPeer(b, bob, session=True)
        await dflt.join()
        cold = SessionPeer(b, alice)  # a hello with sessionPubkey: the HEAD cold path
        await cold.join()
        # each session lists itself after its own restore ran (its worker's statements are in order)
        mine = await peers_by_key(own)
        theirs = await peers_by_key(dflt)
        seen = await peers_by_key(cold)
        for x in (own, dflt, cold):
            await x.close()
        return own, dflt, cold, mine, theirs, seen

    own, dflt, cold, mine, theirs, seen = run(go(), 60)
    e = mine[own.pub]
    assert e["displayName"] == "bob-session"
    assert (e["pubkey"], e["memberPubkey"], e["memberId"], e["peerRole"]) == (own.pub, bob.pubkey, bob.id, "session")
    assert e["groups"] == [{"name": "ops", "role": "lead"}] and e["visible"] is True and "profile" not in e
    assert e["self"] is True
    d = theirs[dflt.pub]
    assert (d["pubkey"], d["peerRole"], d["groups"]) == (dflt.pub, "session", [{"name": "dflt"}]), d
    c = seen[cold.pub]
    assert (c["pubkey"], c["memberPubkey"], c["peerRole"]) == (cold.pub, alice.pubkey, "control-plane"), c
    with db.cursor() as cur:  # the plain hello's saved groups are still the member's
        cur.execute("SELECT saved_groups FROM mesh.member WHERE id = %s", (bob.id,))
        assert cur.fetchone()[0] == [{"name": "saved"}]
