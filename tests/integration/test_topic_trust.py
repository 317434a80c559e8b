"""Who may read what (issue 22, docs/protocol.md §5.1, §5.2, §6): private topics that a non-member
cannot tell from a name that does not exist, roles granted by a lead only, key epochs that move on
when a member leaves or is removed (a removed member cannot open anything posted after, with any
key it ever held), seals that cannot be poisoned (only a holder of the current epoch's copy seals;
a copy that does not open is discarded and re-sealed), notifications within a key's topic scopes,
and /join checking the invite before the membership."""

import nacl.exceptions
import nacl.utils

from invites import invite, new_key, post_join
from mbtest import Peer, b64d, b64e, new_id, run
from test_topics import create, open_sealed, post, quiet_request, request, seal_for, topic_key, v2_body, v2_open
from test_topics_rest import api_key, call, refused


async def seal(peer, topic, member, key):
    enc, nonce = seal_for(member, key)
    return await request(peer, {"type": "topic_seal", "topic": topic, "memberId": member.id, "encryptedKey": enc,
                                "nonce": nonce}, "topic_sealed")


def same_error(a, b):
    """two refusals a client cannot tell apart (only the _reqId differs)"""
    assert a["type"] == "error" and b["type"] == "error", (a, b)
    return (a["code"], a["message"]) == (b["code"], b["message"])


def test_a_private_topic_is_invisible_to_non_members_and_roles_are_granted_by_a_lead(broker, mesh, db):
    """acceptance 1"""
    b = broker()
    m = mesh("alice", "bob", "carol")
    am, bm, cm = m.members
    kb = api_key(db, m, bm)

    async def go():
        a, bb, c = Peer(b, am), Peer(b, bm), Peer(b, cm)
        for p in (a, bb, c):
            await p.join()
        r = await create(a, "secret", visibility="private")
        assert r["created"] is True and r["topic"]["visibility"] == "private"
        tid = r["topic"]["id"]
        await create(a, "general")
        # bob is no member: every request answers exactly as for a name that does not exist
        for frame, reply in (({"type": "topic_join"}, "topic_list_response"),
                             ({"type": "topic_members"}, "topic_members_response"),
                             ({"type": "topic_key"}, "topic_key_response"),
                             ({"type": "topic_history"}, "topic_history_response"),
                             ({"type": "topic_pending_seals"}, "topic_pending_seals_response"),
                             ({"type": "topic_leave"}, "topic_list_response"),
                             ({"type": "topic_mark_read"}, "topic_list_response")):
            if reply == "topic_list_response":
                e1 = await quiet_request(bb, dict(frame, topic="secret"))
                e2 = await quiet_request(bb, dict(frame, topic=tid))
                e3 = await quiet_request(bb, dict(frame, topic="no-such-topic"))
            else:
                e1 = await request(bb, dict(frame, topic="secret"), reply)
                e2 = await request(bb, dict(frame, topic=tid), reply)
                e3 = await request(bb, dict(frame, topic="no-such-topic"), reply)
            assert e1 and e1["code"] == "topic_not_found", (frame, e1)
            assert same_error(e1, e3) and same_error(e2, e3), (frame, e1, e2, e3)
        enc, nonce = seal_for(bm, nacl.utils.random(32))
        s1 = await request(bb, {"type": "topic_seal", "topic": "secret", "memberId": bm.id, "encryptedKey": enc,
                                "nonce": nonce}, "topic_sealed")
        s3 = await request(bb, {"type": "topic_seal", "topic": "no-such-topic", "memberId": bm.id,
                                "encryptedKey": enc, "nonce": nonce}, "topic_sealed")
        assert s1["code"] == "topic_not_found" and same_error(s1, s3), (s1, s3)
        p1 = await post(bb, tid, b64e(nacl.utils.random(24)), b64e(b"x"), 1)
        p3 = await post(bb, "no-such-topic", b64e(nacl.utils.random(24)), b64e(b"x"), 1)
        assert p1["queued"] is False and p1["error"] == p3["error"], (p1, p3)
        # topic_create of the name says only that the name is taken: no id, no visibility
        c1 = await request(bb, {"type": "topic_create", "name": "secret"}, "topic_created")
        assert c1["type"] == "error" and c1["code"] == "topic_name_taken", c1
        assert tid not in str(c1) and "private" not in str(c1)
        lst = await request(bb, {"type": "topic_list"}, "topic_list_response")
        assert [t["name"] for t in lst["topics"]] == ["general"], lst
        # a member cannot give itself the lead role, on a public topic either
        e = await quiet_request(bb, {"type": "topic_join", "topic": "general", "role": "lead"})
        assert e and e["code"] == "role_not_granted", e
        assert await quiet_request(bb, {"type": "topic_join", "topic": "general"}) is None
        mem = await request(a, {"type": "topic_members", "topic": "general"}, "topic_members_response")
        assert {x["memberId"]: x["role"] for x in mem["members"]} == {am.id: "lead", bm.id: "member"}
        # carol, not in general, cannot list its members either (members only)
        cmem = await request(c, {"type": "topic_members", "topic": "general"}, "topic_members_response")
        assert cmem["type"] == "error" and cmem["code"] == "not_a_member", cmem
        # a member that is no lead adds nobody and grants nothing
        na = await request(bb, {"type": "topic_add_member", "topic": "general", "name": "carol", "role": "lead"},
                           "topic_member_added")
        assert na["type"] == "error" and na["code"] == "not_a_lead", na
        # the lead adds bob to the private topic (by name), then carol by pubkey
        ad = await request(a, {"type": "topic_add_member", "topic": "secret", "name": "bob"}, "topic_member_added")
        assert ad["type"] == "topic_member_added" and ad["memberId"] == bm.id and ad["role"] == "member", ad
        ad2 = await request(a, {"type": "topic_add_member", "topic": tid, "pubkey": cm.pubkey, "role": "observer"},
                            "topic_member_added")
        assert ad2["memberId"] == cm.id and ad2["role"] == "observer", ad2
        nf = await request(a, {"type": "topic_add_member", "topic": tid, "name": "nobody"}, "topic_member_added")
        assert nf["type"] == "error" and nf["code"] == "member_not_found", nf
        bmem = await request(bb, {"type": "topic_members", "topic": "secret"}, "topic_members_response")
        assert sorted(x["memberId"] for x in bmem["members"]) == sorted([am.id, bm.id, cm.id]), bmem
        # and bob, a member now, sees it in his list; creating it again is the idempotent answer
        lst = await request(bb, {"type": "topic_list"}, "topic_list_response")
        assert [t["name"] for t in lst["topics"]] == ["general", "secret"], lst
        again = await request(bb, {"type": "topic_create", "name": "secret"}, "topic_created")
        assert again["type"] == "topic_created" and again["created"] is False and again["topic"]["id"] == tid
        for p in (a, bb, c):
            await p.close()
        return tid

    run(go(), 90)
    # over REST too: a non-member's key gets what a missing topic gets
    kx = api_key(db, m, m.add("eve"))
    for path in ("/v1/topics/secret/key", "/v1/topics/secret/pending-seals", "/v1/topics/secret/messages"):
        got = call(b, kx, "GET", path)
        want = call(b, kx, "GET", path.replace("secret", "no-such-topic"))
        assert got[0] == 404 and got[1]["error"] == want[1]["error"] == "topic_not_found", (path, got, want)
    s, lst = call(b, kx, "GET", "/v1/topics")
    assert s == 200 and [t["name"] for t in lst["topics"]] == ["general"], lst
    s, k = call(b, kb, "GET", "/v1/topics/secret/key")
    assert (s, k["error"]) == (404, "key_not_sealed_for_member"), (s, k)


def test_a_removed_member_cannot_open_what_is_posted_after_with_any_key_it_ever_held(broker, mesh, db):
    """acceptance 2: the test plays the lead's client that makes the new epoch's key"""
    b = broker()
    m = mesh("alice", "bob", "dave")
    am, bm, dm = m.members
    k1 = nacl.utils.random(32)
    enc, nonce = seal_for(am, k1)

    async def go():
        a, bb, d = Peer(b, am), Peer(b, bm), Peer(b, dm)
        for p in (a, bb, d):
            await p.join()
        r = await create(a, "ops", visibility="private", encryptedKey=enc, nonce=nonce)
        tid = r["topic"]["id"]
        for x in (bm, dm):
            ad = await request(a, {"type": "topic_add_member", "topic": "ops", "memberId": x.id},
                               "topic_member_added")
            assert ad["type"] == "topic_member_added" and ad["keyEpoch"] == 1, ad
        p = await request(a, {"type": "topic_pending_seals", "topic": "ops"}, "topic_pending_seals_response")
        assert p["epoch"] == 1 and sorted(x["memberId"] for x in p["pending"]) == sorted([bm.id, dm.id]), p
        for x in (bm, dm):
            s = await seal(a, "ops", x, k1)
            assert s["type"] == "topic_sealed", s
        n1, c1 = v2_body(k1, "before dave left")
        ack1 = await post(a, tid, n1, c1, 2)
        assert ack1["queued"], ack1
        # dave reads, and the test keeps every key dave ever received
        dk = await topic_key(d, "ops")
        assert dk["epoch"] == 1 and dk["currentEpoch"] == 1 and dk["sealedBy"] == am.id, dk
        dave_keys = [open_sealed(dm, x["encryptedKey"], x["nonce"]) for x in dk["keys"]]
        assert dave_keys == [k1]
        h = await request(d, {"type": "topic_history", "topic": "ops"}, "topic_history_response")
        assert v2_open(dave_keys[0], h["messages"][0]["nonce"], h["messages"][0]["ciphertext"]) == "before dave left"
        assert h["messages"][0]["keyEpoch"] == 1
        # a member that is no lead removes nobody
        nr = await request(bb, {"type": "topic_remove_member", "topic": "ops", "memberId": dm.id},
                           "topic_member_removed")
        assert nr["type"] == "error" and nr["code"] == "not_a_lead", nr
        # the lead removes dave: a new key epoch
        rm = await request(a, {"type": "topic_remove_member", "topic": "ops", "memberId": dm.id},
                           "topic_member_removed")
        assert rm["type"] == "topic_member_removed" and rm["keyEpoch"] == 2, rm
        # everyone left lacks a copy of epoch 2; bob (a holder of epoch 1 only) cannot seal it
        p = await request(a, {"type": "topic_pending_seals", "topic": "ops"}, "topic_pending_seals_response")
        assert p["epoch"] == 2 and sorted(x["memberId"] for x in p["pending"]) == sorted([am.id, bm.id]), p
        k2 = nacl.utils.random(32)
        nb = await seal(bb, "ops", bm, k2)
        assert nb["type"] == "error" and nb["code"] == "not_a_key_holder", nb
        # the lead's client: a fresh key, sealed to itself first (the epoch's first copy), then to bob
        for x in (am, bm):
            s = await seal(a, "ops", x, k2)
            assert s["type"] == "topic_sealed", s
        n2, c2 = v2_body(k2, "after dave left")
        ack2 = await post(a, tid, n2, c2, 2)
        assert ack2["queued"], ack2
        # dave gets nothing newer: no key, no history, the topic is gone for him
        for frame, reply in (({"type": "topic_key", "topic": "ops"}, "topic_key_response"),
                             ({"type": "topic_history", "topic": "ops"}, "topic_history_response")):
            e = await request(d, frame, reply)
            assert e["type"] == "error" and e["code"] == "topic_not_found", e
        # bob reads old and new posts, each with the key of its epoch
        bk = await topic_key(bb, "ops")
        assert bk["epoch"] == 2 and bk["currentEpoch"] == 2 and [x["epoch"] for x in bk["keys"]] == [2, 1], bk
        keys = {x["epoch"]: open_sealed(bm, x["encryptedKey"], x["nonce"]) for x in bk["keys"]}
        assert keys == {1: k1, 2: k2}
        h = await request(bb, {"type": "topic_history", "topic": "ops"}, "topic_history_response")
        got = [(x["keyEpoch"], v2_open(keys[x["keyEpoch"]], x["nonce"], x["ciphertext"])) for x in h["messages"]]
        assert got == [(2, "after dave left"), (1, "before dave left")], got
        for p in (a, bb, d):
            await p.close()
        return dave_keys, ack2["messageId"]

    dave_keys, mid = run(go(), 90)
    # the post after the removal, as stored: nothing dave ever held opens it
    with db.cursor() as c:
        c.execute("SELECT nonce, ciphertext, key_epoch FROM mesh.topic_message WHERE id = %s", (mid,))
        nonce2, ct2, epoch = c.fetchone()
        c.execute("SELECT encrypted_key, nonce FROM mesh.topic_member_key WHERE member_id = %s", (dm.id,))
        rows = c.fetchall()
    assert epoch == 2
    # every copy ever sealed to dave (the database still has them) opens to keys dave already had
    assert sorted(open_sealed(dm, e, n) for e, n in rows) == sorted(dave_keys)
    for k in dave_keys:
        try:
            v2_open(k, nonce2, ct2)
            raise AssertionError("a key dave held opens a post made after his removal")
        except nacl.exceptions.CryptoError:
            pass


def test_leaving_starts_a_new_epoch_and_a_rejoin_gets_only_what_is_sealed_anew(broker, mesh, db):
    b = broker()
    m = mesh("alice", "bob")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        for p in (a, bb):
            await p.join()
        tid = (await create(a, "pub"))["topic"]["id"]
        assert await quiet_request(bb, {"type": "topic_join", "topic": "pub"}) is None
        assert await quiet_request(bb, {"type": "topic_leave", "topic": "pub"}) is None
        # out of the topic: no key at all, not even an old one
        e = await topic_key(bb, "pub")
        assert e["type"] == "error" and e["code"] == "not_a_member", e
        k = await topic_key(a, "pub")
        assert k["currentEpoch"] == 2 and k["epoch"] == 1, k
        await a.close()
        await bb.close()
        return tid

    tid = run(go(), 60)
    with db.cursor() as c:
        c.execute("SELECT key_epoch FROM mesh.topic WHERE id = %s", (tid,))
        assert c.fetchone()[0] == 2


def test_a_poisoned_copy_is_refused_or_discarded_and_replaced_by_an_honest_seal(broker, mesh, db):
    """acceptance 4"""
    b = broker()
    m = mesh("alice", "bob", "carol")
    am, bm, cm = m.members

    async def go():
        a, bb, c = Peer(b, am), Peer(b, bm), Peer(b, cm)
        for p in (a, bb, c):
            await p.join()
        tid = (await create(a, "pub"))["topic"]["id"]
        ak = await topic_key(a, "pub")
        key = open_sealed(am, ak["encryptedKey"], ak["nonce"])
        for p in (bb, c):
            assert await quiet_request(p, {"type": "topic_join", "topic": "pub"}) is None
        # carol holds no copy: her seal for bob (the newcomer) is refused
        bogus = nacl.utils.random(32)
        r = await seal(c, "pub", bm, bogus)
        assert r["type"] == "error" and r["code"] == "not_a_key_holder", r
        # a lead's bogus copy is stored (the broker cannot tell) and recorded as the lead's
        r = await seal(a, "pub", bm, bogus)
        assert r["type"] == "topic_sealed", r
        n, ct = v2_body(key, "the real thing")
        assert (await post(a, tid, n, ct, 2))["queued"]
        bk = await topic_key(bb, "pub")
        assert bk["sealedBy"] == am.id and bk["keys"][0]["sealedBy"] == am.id, bk
        got = open_sealed(bm, bk["encryptedKey"], bk["nonce"])
        try:
            v2_open(got, n, ct)
            raise AssertionError("the bogus key opened the post")
        except nacl.exceptions.CryptoError:
            pass
        # ... so an honest re-seal is refused while it is there
        r = await seal(a, "pub", bm, key)
        assert r["type"] == "error" and r["code"] == "already_sealed", r
        # bob discards it; another member cannot discard his copy, a lead can (a reset)
        r = await request(c, {"type": "topic_key_discard", "topic": "pub", "memberId": bm.id},
                          "topic_key_discarded")
        assert r["type"] == "error" and r["code"] == "not_a_lead", r
        r = await request(bb, {"type": "topic_key_discard", "topic": "pub"}, "topic_key_discarded")
        assert r["type"] == "topic_key_discarded" and r["memberId"] == bm.id and r["epoch"] == 1, r
        again = await request(bb, {"type": "topic_key_discard", "topic": "pub"}, "topic_key_discarded")
        assert again["type"] == "error" and again["code"] == "key_not_sealed_for_member", again
        p = await request(a, {"type": "topic_pending_seals", "topic": "pub"}, "topic_pending_seals_response")
        assert bm.id in [x["memberId"] for x in p["pending"]], p
        r = await seal(a, "pub", bm, key)
        assert r["type"] == "topic_sealed", r
        bk = await topic_key(bb, "pub")
        h = await request(bb, {"type": "topic_history", "topic": "pub"}, "topic_history_response")
        assert v2_open(open_sealed(bm, bk["encryptedKey"], bk["nonce"]), h["messages"][0]["nonce"],
                       h["messages"][0]["ciphertext"]) == "the real thing"
        # bob holds the key now, so he may seal for carol; then the lead resets carol's copy
        r = await seal(bb, "pub", cm, key)
        assert r["type"] == "topic_sealed", r
        r = await request(a, {"type": "topic_key_discard", "topic": "pub", "memberId": cm.id},
                          "topic_key_discarded")
        assert r["type"] == "topic_key_discarded" and r["memberId"] == cm.id, r
        e = await topic_key(c, "pub")
        assert e["type"] == "error" and e["code"] == "key_not_sealed_for_member", e
        for p in (a, bb, c):
            await p.close()
        return tid

    tid = run(go(), 90)
    with db.cursor() as c:
        c.execute("SELECT payload->>'memberId' FROM mesh.audit_log WHERE event_type = 'topic_key_discarded' "
                  "AND payload->>'topicId' = %s ORDER BY id", (tid,))
        assert [r[0] for r in c.fetchall()] == [bm.id, cm.id]


def test_notifications_keep_to_the_key_scopes_and_join_checks_the_invite_first(broker, mesh, db):
    """acceptance 6"""
    b = broker()
    m = mesh("alice", "bob")
    am, bm = m.members
    ka = api_key(db, m, am)
    kb_general = api_key(db, m, bm, topics=["general"])

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        for p in (a, bb):
            await p.join()
        for name in ("general", "ops"):
            await create(a, name)
            assert await quiet_request(bb, {"type": "topic_join", "topic": name}) is None
        await a.close()
        await bb.close()

    run(go(), 60)
    for name in ("general", "ops"):
        s, r = call(b, ka, "POST", "/v1/messages", {"topic": name, "ciphertext": b64e(f"hi @bob in {name}".encode()),
                                                    "nonce": b64e(nacl.utils.random(24))})
        assert s == 200 and r["notifications"] == 1, r
    s, r = call(b, kb_general, "GET", "/v1/notifications")
    assert s == 200 and [x["topicName"] for x in r["notifications"]] == ["general"], r
    s, r = call(b, kb_general, "GET", "/v1/me/notifications")
    assert s == 200 and [x["topicName"] for x in r["notifications"]] == ["general"], r
    # /join: a revoked invite for the pubkey of an existing member is invite_revoked, never alreadyMember
    token, payload, _ = invite(db, m, revoked=True)
    st, j = post_join(b, token, payload, bm.pubkey, "bob")
    assert (st, j) == (400, {"ok": False, "error": "invite_revoked"}), j
    # ... an expired one likewise; a live one is alreadyMember as before
    token, payload, _ = invite(db, m, max_uses=3)
    with db.cursor() as c:
        c.execute("UPDATE mesh.invite SET expires_at = now() - interval '1 s' WHERE token = "
                  "mesh.invite_token_hash(%s)", (token,))
    st, j = post_join(b, token, payload, bm.pubkey, "bob")
    assert (st, j["error"]) == (400, "invite_expired"), j
    token, payload, _ = invite(db, m, max_uses=3)
    st, j = post_join(b, token, payload, bm.pubkey, "bob")
    assert st == 200 and j["alreadyMember"] is True and j["memberId"] == bm.id, j
    # the token and the payload are one invite
    token2, payload2, _ = invite(db, m, max_uses=3)
    _, pub = new_key()
    st, j = post_join(b, token, payload2, pub, "newcomer")
    assert (st, j["error"]) == (400, "invite_payload_mismatch"), j
    # display names: no control characters (nor \u0000, which would cut the name), unique in the mesh
    for bad in ("ali\u0000ce", "tab\there", "c1\u0085x"):
        st, j = post_join(b, token2, payload2, pub, bad)
        assert st == 400 and "control characters" in j["error"], (bad, j)
    st, j = post_join(b, token2, payload2, pub, "BOB")
    assert (st, j["error"]) == (400, "display_name_taken"), j
    st, j = post_join(b, token2, payload2, pub, "newcomer")
    assert st == 200 and j["ok"] is True, j
    # the database keeps only the token's sha256
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.invite WHERE token = %s", (token2,))
        assert c.fetchone()[0] == 0
        c.execute("SELECT count(*) FROM mesh.invite WHERE token = encode(sha256(%s::bytea), 'hex')",
                  (token2.encode(),))
        assert c.fetchone()[0] == 1


def test_a_leads_meshctl_tail_starts_the_new_epoch_when_a_member_is_removed(broker, mesh, pg, db, tmp_path):
    """the client side of key epochs: meshctl topic tail, run by a lead, makes the new epoch's key
    and seals it to the members left; meshctl reads old posts and posts under the new key"""
    import os
    import subprocess
    import threading

    import mbtest
    from test_meshctl import make_c_member
    from test_topics_meshctl import has_copy, lines, topic_cmd

    b = broker()
    m = mesh()
    acfg, (a_id, _) = make_c_member(tmp_path, pg, db, m, "alice")
    bcfg, (b_id, _) = make_c_member(tmp_path, pg, db, m, "bob")
    dave = m.add("dave")
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}
    created = lines(topic_cmd(acfg, env, "create", "ops", "--visibility", "private").stdout)
    assert created[0]["visibility"] == "private", created
    tid = created[0]["id"]
    exe = mbtest.require_bin("meshctl")
    tail = subprocess.Popen([exe, "topic", "tail", "ops", "--timeout", "60", "--config", str(acfg)],
                            env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(iter(tail.stdout.readline, "")), daemon=True)
    reader.start()

    def epoch_copy(member_id, epoch):
        with db.cursor() as c:
            c.execute("SELECT count(*) FROM mesh.topic_member_key WHERE topic_id = %s AND member_id = %s "
                      "AND epoch = %s", (tid, member_id, epoch))
            return c.fetchone()[0] == 1

    try:
        # bob and dave are added (rows as a lead's topic_add_member writes them)
        with db.cursor() as c:
            c.execute("INSERT INTO mesh.topic_member (topic_id, member_id, role) VALUES (%s, %s, 'member'), "
                      "(%s, %s, 'member')", (tid, b_id, tid, dave.id))
        mbtest.wait_until(lambda: has_copy(db, tid, b_id) and has_copy(db, tid, dave.id), 30,
                          what="tail to seal for bob and dave")
        topic_cmd(acfg, env, "post", "ops", "epoch one")

        async def dave_reads():
            d = Peer(b, dave)
            await d.join()
            k = await topic_key(d, "ops")
            await d.close()
            return [open_sealed(dave, x["encryptedKey"], x["nonce"]) for x in k["keys"]]

        dave_keys = run(dave_reads(), 30)
        # dave is removed (as a lead's topic_remove_member does, with its new epoch)
        with db.cursor() as c:
            c.execute("DELETE FROM mesh.topic_member WHERE topic_id = %s AND member_id = %s", (tid, dave.id))
            c.execute("UPDATE mesh.topic SET key_epoch = key_epoch + 1 WHERE id = %s", (tid,))
        mbtest.wait_until(lambda: epoch_copy(a_id, 2) and epoch_copy(b_id, 2), 30,
                          what="the lead's tail to start epoch 2 and seal it to bob")
        topic_cmd(acfg, env, "post", "ops", "epoch two")
        h = lines(topic_cmd(bcfg, env, "history", "ops").stdout)
        assert [(x.get("keyEpoch"), x.get("text")) for x in h] == [(1, "epoch one"), (2, "epoch two")], h
    finally:
        tail.terminate()
        reader.join(20)
        err = tail.stderr.read()
        tail.wait(20)
    assert tail.returncode == 0, err
    assert "started key epoch 2" in err, err
    with db.cursor() as c:
        c.execute("SELECT nonce, ciphertext FROM mesh.topic_message WHERE topic_id = %s AND key_epoch = 2", (tid,))
        rows = c.fetchall()
    assert len(rows) == 1
    for k in dave_keys:
        try:
            v2_open(k, rows[0][0], rows[0][1])
            raise AssertionError("a key dave held opens the epoch-2 post")
        except nacl.exceptions.CryptoError:
            pass


def test_a_leads_mcp_server_reseals_and_starts_the_new_epoch_on_its_own(broker, mesh, pg, db, tmp_path):
    """meshctl mcp, run by a lead, seals the key for new members and, after a removal, makes the new
    epoch's key and seals it to the members left (issue 22, cli/mcp_keys.c)"""
    import mbtest
    from test_mcp import Mcp
    from test_meshctl import make_c_member
    from test_topics_meshctl import lines, topic_cmd

    b = broker()
    m = mesh()
    acfg, (a_id, _) = make_c_member(tmp_path, pg, db, m, "alice")
    bob, dave = m.add("bob"), m.add("dave")
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}
    tid = lines(topic_cmd(acfg, env, "create", "ops", "--visibility", "private").stdout)[0]["id"]
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.topic_member (topic_id, member_id) VALUES (%s, %s), (%s, %s)",
                  (tid, bob.id, tid, dave.id))

    def copies(epoch):
        with db.cursor() as c:
            c.execute("SELECT member_id FROM mesh.topic_member_key WHERE topic_id = %s AND epoch = %s",
                      (tid, epoch))
            return sorted(r[0] for r in c.fetchall())

    mcp = Mcp(b, acfg)
    try:
        mcp.start()
        mbtest.wait_until(lambda: copies(1) == sorted([a_id, bob.id, dave.id]), 30,
                          what="the mcp server to seal epoch 1 for bob and dave")
        with db.cursor() as c:
            c.execute("DELETE FROM mesh.topic_member WHERE topic_id = %s AND member_id = %s", (tid, dave.id))
            c.execute("UPDATE mesh.topic SET key_epoch = 2 WHERE id = %s", (tid,))
        mbtest.wait_until(lambda: copies(2) == sorted([a_id, bob.id]), 30,
                          what="the mcp server to start epoch 2 and seal it to bob")

        async def bob_reads():
            p = Peer(b, bob)
            await p.join()
            k = await topic_key(p, "ops")
            await p.close()
            return k

        k = run(bob_reads(), 30)
        assert [x["epoch"] for x in k["keys"]] == [2, 1] and k["currentEpoch"] == 2, k
        assert all(x["sealedBy"] == a_id for x in k["keys"]), k
        assert len({open_sealed(bob, x["encryptedKey"], x["nonce"]) for x in k["keys"]}) == 2
    finally:
        assert mcp.stop() == 0, mcp.err
    assert copies(2) == sorted([a_id, bob.id]), "dave is sealed nothing of epoch 2"
