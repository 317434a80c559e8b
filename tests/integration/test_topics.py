"""Topics with per-topic end-to-end keys (issue 9, docs/protocol.md §5): the
§5.2 requests with _reqId, posting to #topic with exactly-once delivery per
member and mentions, the creator's sealed key (broker-made or the client's
own) and member-driven re-seal, checked against PyNaCl (an implementation of
the 80-byte sealed format not written in this repository)."""

import base64

import nacl.public
import nacl.secret
import nacl.utils

import mbtest
from mbtest import Peer, b64d, b64e, is_push, new_id, run


# ---------------------------------------------------------------- client side crypto (PyNaCl)

def curve_sk(member):
    return member.sk.to_curve25519_private_key()


def curve_pk(member):
    return member.sk.verify_key.to_curve25519_public_key()


def seal_for(member, key):
    """the 80-byte format: eph_pk[32] ‖ crypto_box(key, nonce, member_x25519_pk, eph_sk)"""
    eph = nacl.public.PrivateKey.generate()
    nonce = nacl.utils.random(24)
    box = nacl.public.Box(eph, curve_pk(member)).encrypt(key, nonce).ciphertext
    sealed = bytes(eph.public_key) + box
    assert len(sealed) == 80
    return b64e(sealed), b64e(nonce)


def open_sealed(member, encrypted_key, nonce):
    raw = b64d(encrypted_key)
    assert len(raw) == 80, len(raw)
    return nacl.public.Box(curve_sk(member), nacl.public.PublicKey(raw[:32])).decrypt(raw[32:], b64d(nonce))


def v2_body(key, text):
    nonce = nacl.utils.random(24)
    ct = nacl.secret.SecretBox(key).encrypt(text.encode(), nonce).ciphertext
    return b64e(nonce), b64e(ct)


def v2_open(key, nonce, ct):
    return nacl.secret.SecretBox(key).decrypt(b64d(ct), b64d(nonce)).decode()


# ---------------------------------------------------------------- request helpers

async def request(peer, frame, reply_type, timeout=20):
    """send frame with a fresh _reqId; the reply of reply_type or the error carrying it"""
    rid = new_id(10)
    frame = dict(frame, _reqId=rid)
    await peer.send_json(frame)
    m = await peer.wait_for(lambda x: (x.get("type") == reply_type and x.get("_reqId") == rid)
                            or (x.get("type") == "error" and x.get("id") == rid), timeout)
    return m


async def create(peer, name, **kw):
    r = await request(peer, dict({"type": "topic_create", "name": name}, **kw), "topic_created")
    assert r["type"] == "topic_created", r
    return r


async def quiet_request(peer, frame):
    """join/leave/mark_read answer nothing on success: their error, or None"""
    rid = new_id(10)
    await peer.send_json(dict(frame, _reqId=rid))
    # the worker answers database requests in order: once a later one is
    # answered, an error for this one would have come first
    await request(peer, {"type": "topic_list"}, "topic_list_response")
    errs = peer.take(lambda x: x.get("type") == "error" and x.get("id") == rid)
    return errs[0] if errs else None


async def topic_key(peer, topic):
    return await request(peer, {"type": "topic_key", "topic": topic}, "topic_key_response")


async def post(peer, topic_id, nonce, ct, version, **kw):
    frame = dict({"type": "send", "id": new_id(12), "targetSpec": "#" + topic_id, "priority": "now",
                  "nonce": nonce, "ciphertext": ct, "bodyVersion": version}, **kw)
    return await peer.send_and_ack(frame)


def key_candidates(key):
    return [key, key.hex(), key.hex().upper(), base64.b64encode(key).decode(),
            base64.urlsafe_b64encode(key).decode().rstrip("=")]


def scan_topic_tables(db, needles):
    """every column of every topic table, as text and as bytes, must not hold the key"""
    hits = []
    with db.cursor() as c:
        for table in ("topic", "topic_member", "topic_message", "topic_member_key", "notification",
                      "message_queue", "audit_log"):
            c.execute(f"SELECT * FROM mesh.{table}")
            cols = [d[0] for d in c.description]
            for row in c.fetchall():
                for col, v in zip(cols, row):
                    if v is None:
                        continue
                    raw = bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode()
                    for n in needles:
                        nb = n if isinstance(n, bytes) else n.encode()
                        if nb in raw:
                            hits.append((table, col))
                    # a base64 column could decode to the key itself
                    if isinstance(v, str):
                        try:
                            if needles[0] in base64.b64decode(v, validate=True):
                                hits.append((table, col, "b64"))
                        except Exception:
                            pass
    return hits


# ---------------------------------------------------------------- tests

def test_create_seals_a_32_byte_key_for_the_creator_that_the_database_never_holds(broker, mesh, db):
    b = broker()
    m = mesh("alice", "bob")
    am, _ = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        r = await create(a, "design", description="the design room")
        assert r["created"] is True and r["topic"]["name"] == "design", r
        assert r["topic"]["visibility"] == "public"
        tid = r["topic"]["id"]
        again = await create(a, "design")
        assert again["created"] is False and again["topic"]["id"] == tid, "topic_create is idempotent per name"
        k = await topic_key(a, "design")
        assert k["type"] == "topic_key_response", k
        assert k["topicId"] == tid and k["topic"] == "design"
        key = open_sealed(am, k["encryptedKey"], k["nonce"])
        assert len(key) == 32
        assert k["senderPubkey"] == b64d(k["encryptedKey"])[:32].hex()
        by_id = await topic_key(a, tid)
        assert by_id["encryptedKey"] == k["encryptedKey"], "topic by id or by name"
        await a.close()
        return tid, key, k

    tid, key, k = run(go(), 60)
    with db.cursor() as c:
        c.execute("SELECT encrypted_key_pubkey FROM mesh.topic WHERE id = %s", (tid,))
        assert c.fetchone()[0] == k["senderPubkey"], "encrypted_key_pubkey is the creator seal's sender"
        c.execute("SELECT role FROM mesh.topic_member WHERE topic_id = %s AND member_id = %s", (tid, am.id))
        assert c.fetchone()[0] == "lead"
        c.execute("SELECT count(*) FROM mesh.audit_log WHERE mesh_id = %s AND event_type = 'topic_created' "
                  "AND payload->>'topicId' = %s", (m.id, tid))
        assert c.fetchone()[0] == 1
    assert scan_topic_tables(db, key_candidates(key)) == []


def test_a_legacy_topic_has_no_key_and_says_topic_unencrypted(broker, mesh, db):
    b = broker()
    m = mesh("alice")
    am = m.members[0]
    tid = new_id()
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.topic (id, mesh_id, name, created_by) VALUES (%s, %s, 'legacy', %s)",
                  (tid, m.id, am.id))
        c.execute("INSERT INTO mesh.topic_member (topic_id, member_id) VALUES (%s, %s)", (tid, am.id))

    async def go():
        a = Peer(b, am)
        await a.join()
        r = await topic_key(a, "legacy")
        assert r["type"] == "error" and r["code"] == "topic_unencrypted", r
        nf = await topic_key(a, "no-such-topic")
        assert nf["type"] == "error" and nf["code"] == "topic_not_found", nf
        # a legacy topic still carries v1 bodies
        ack = await post(a, tid, b64e(nacl.utils.random(24)), b64e(b"plain"), 1)
        assert ack["queued"] is True, ack
        await a.close()

    run(go(), 60)


def test_a_client_sealed_copy_is_stored_as_sent_and_the_broker_never_sees_the_key(broker, mesh, db):
    b = broker()
    m = mesh("alice")
    am = m.members[0]
    key = nacl.utils.random(32)
    enc, nonce = seal_for(am, key)

    async def go():
        a = Peer(b, am)
        await a.join()
        bad = await request(a, {"type": "topic_create", "name": "x", "encryptedKey": b64e(b"short"),
                                "nonce": nonce}, "topic_created")
        assert bad["type"] == "error" and bad["code"] == "malformed", bad
        r = await create(a, "own-key", encryptedKey=enc, nonce=nonce)
        k = await topic_key(a, r["topic"]["id"])
        assert (k["encryptedKey"], k["nonce"]) == (enc, nonce)
        assert open_sealed(am, k["encryptedKey"], k["nonce"]) == key
        await a.close()
        return r["topic"]["id"]

    tid = run(go(), 60)
    with db.cursor() as c:
        c.execute("SELECT encrypted_key_pubkey FROM mesh.topic WHERE id = %s", (tid,))
        assert c.fetchone()[0] == b64d(enc)[:32].hex()


def test_a_later_member_gets_the_key_by_member_driven_re_seal_and_reads_older_v2_messages(broker, mesh, db):
    b = broker()
    m = mesh("alice", "bob")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        tid = (await create(a, "keys"))["topic"]["id"]
        k = await topic_key(a, "keys")
        key = open_sealed(am, k["encryptedKey"], k["nonce"])
        n, ct = v2_body(key, "before bob had the key")
        ack = await post(a, tid, n, ct, 2)
        assert ack["queued"], ack
        assert await quiet_request(bb, {"type": "topic_join", "topic": "keys"}) is None
        nk = await topic_key(bb, "keys")
        assert nk["type"] == "error" and nk["code"] == "key_not_sealed_for_member", nk
        p = await request(a, {"type": "topic_pending_seals", "topic": tid}, "topic_pending_seals_response")
        assert [x["memberId"] for x in p["pending"]] == [bm.id], p
        assert p["pending"][0]["pubkey"] == bm.pubkey and p["senderPubkey"] == k["senderPubkey"]
        enc, nonce = seal_for(bm, key)
        s = await request(a, {"type": "topic_seal", "topic": "keys", "memberId": bm.id,
                              "encryptedKey": enc, "nonce": nonce}, "topic_sealed")
        assert s["type"] == "topic_sealed" and s["memberId"] == bm.id and s["topicId"] == tid, s
        again = await request(a, {"type": "topic_seal", "topic": "keys", "memberId": bm.id,
                                  "encryptedKey": enc, "nonce": nonce}, "topic_sealed")
        assert again["type"] == "error" and again["code"] == "already_sealed", again
        bk = await topic_key(bb, "keys")
        bkey = open_sealed(bm, bk["encryptedKey"], bk["nonce"])
        assert bkey == key
        h = await request(bb, {"type": "topic_history", "topic": "keys"}, "topic_history_response")
        assert [x["bodyVersion"] for x in h["messages"]] == [2]
        msg = h["messages"][0]
        assert msg["senderPubkey"] == am.pubkey and msg["id"] == ack["messageId"]
        assert v2_open(bkey, msg["nonce"], msg["ciphertext"]) == "before bob had the key"
        p2 = await request(a, {"type": "topic_pending_seals", "topic": tid}, "topic_pending_seals_response")
        assert p2["pending"] == []
        await a.close()
        await bb.close()
        return tid

    tid = run(go(), 60)
    with db.cursor() as c:
        c.execute("SELECT sealed_by FROM mesh.topic_member_key WHERE topic_id = %s AND member_id = %s",
                  (tid, bm.id))
        assert c.fetchone()[0] == am.id, "the sealer is recorded"
        c.execute("SELECT count(*) FROM mesh.audit_log WHERE event_type = 'topic_key_sealed' AND "
                  "payload->>'topicId' = %s AND payload->>'memberId' = %s AND actor_member_id = %s",
                  (tid, bm.id, am.id))
        assert c.fetchone()[0] == 1


def test_outsiders_cannot_seal_read_or_overwrite_and_members_cannot_overwrite(broker, mesh, db):
    b = broker()
    m = mesh("alice", "bob", "carol", "dave")
    am, bm, cm, dm = m.members

    async def go():
        a, bb, c, d = Peer(b, am), Peer(b, bm), Peer(b, cm), Peer(b, dm)
        for p in (a, bb, c, d):
            await p.join()
        tid = (await create(a, "closed"))["topic"]["id"]
        k = await topic_key(a, tid)
        key = open_sealed(am, k["encryptedKey"], k["nonce"])
        for p in (bb, d):
            assert await quiet_request(p, {"type": "topic_join", "topic": tid}) is None
        enc, nonce = seal_for(bm, key)
        ok = await request(a, {"type": "topic_seal", "topic": tid, "memberId": bm.id, "encryptedKey": enc,
                               "nonce": nonce}, "topic_sealed")
        assert ok["type"] == "topic_sealed", ok
        fake = nacl.utils.random(32)
        # carol is no topic member: she cannot seal (for dave, who is pending)
        e1, n1 = seal_for(dm, fake)
        r = await request(c, {"type": "topic_seal", "topic": tid, "memberId": dm.id, "encryptedKey": e1,
                              "nonce": n1}, "topic_sealed")
        assert r["type"] == "error" and r["code"] == "not_a_member", r
        # ... nor read history
        h = await request(c, {"type": "topic_history", "topic": tid}, "topic_history_response")
        assert h["type"] == "error" and h["code"] == "not_a_member", h
        # ... nor overwrite bob's copy (asked as a non-member: membership is checked before the
        # copy, issue 21); nor can dave, a member holding no copy of the key (issue 22: only a
        # holder seals, checked before the recipient's copy)
        e2, n2 = seal_for(bm, fake)
        for p, code in ((c, "not_a_member"), (d, "not_a_key_holder")):
            r = await request(p, {"type": "topic_seal", "topic": tid, "memberId": bm.id, "encryptedKey": e2,
                                  "nonce": n2}, "topic_sealed")
            assert r["type"] == "error" and r["code"] == code, r
        # sealing for someone outside the topic
        r = await request(a, {"type": "topic_seal", "topic": tid, "memberId": cm.id, "encryptedKey": e2,
                              "nonce": n2}, "topic_sealed")
        assert r["type"] == "error" and r["code"] == "recipient_not_in_topic", r
        bk = await topic_key(bb, tid)
        assert open_sealed(bm, bk["encryptedKey"], bk["nonce"]) == key, "bob's copy is untouched"
        # a non-member cannot post either
        ack = await post(c, tid, b64e(nacl.utils.random(24)), b64e(b"hi"), 1)
        assert ack["queued"] is False and "not a member" in ack["error"], ack
        for p in (a, bb, c, d):
            await p.close()
        return tid

    tid = run(go(), 90)
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.topic_member_key WHERE topic_id = %s AND member_id = %s",
                  (tid, dm.id))
        assert c.fetchone()[0] == 0


def test_each_other_member_gets_a_topic_post_once_an_offline_one_on_connect_and_mentions_notify(
        broker, mesh, db):
    b = broker()
    m = mesh("alice", "Bob", "carol", "dave")
    am, bm, cm, dm = m.members

    async def go():
        a, bb, c = Peer(b, am), Peer(b, bm), Peer(b, cm)
        for p in (a, bb, c):
            await p.join()
        tid = (await create(a, "team"))["topic"]["id"]
        for p in (bb, c):
            assert await quiet_request(p, {"type": "topic_join", "topic": "team"}) is None
        # dave joins, then goes away
        d = Peer(b, dm)
        await d.join()
        assert await quiet_request(d, {"type": "topic_join", "topic": tid}) is None
        await d.close()
        k = await topic_key(a, tid)
        key = open_sealed(am, k["encryptedKey"], k["nonce"])
        n, ct = v2_body(key, "secret plan")
        ack = await post(a, tid, n, ct, 2)
        assert ack["queued"] is True, ack
        for p in (bb, c):
            got = await p.push(pred=lambda x: x["messageId"] == ack["messageId"])
            # §12.2: "topic" is the name, ext "topicId" the id
            assert got["topic"] == "team" and got["topicId"] == tid and got["bodyVersion"] == 2, got
            assert got["senderPubkey"] == am.pubkey and (got["nonce"], got["ciphertext"]) == (n, ct)
        # a v1 body mentioning @b (case-insensitive: the member is "Bob")
        body = "hey @bob, see this (cc nobody@example.com)"
        ack2 = await post(a, tid, b64e(nacl.utils.random(24)), b64e(body.encode()), 1)
        assert ack2["queued"], ack2
        for p in (bb, c):
            got = await p.push(pred=lambda x: x["messageId"] == ack2["messageId"])
            assert got["bodyVersion"] == 1
            await p.quiet(is_push, 0.5)
            assert len([x for x in p.take(is_push)]) == 0
        await a.quiet(is_push, 0.3)
        # dave connects later and gets both, once each
        d2 = Peer(b, dm)
        await d2.join()
        got = [await d2.push(), await d2.push()]
        assert sorted(x["messageId"] for x in got) == sorted([ack["messageId"], ack2["messageId"]])
        await d2.quiet(is_push, 0.5)
        # explicit mentions win over tokens; never the sender; unknown names are nobody
        ack3 = await post(a, tid, b64e(nacl.utils.random(24)), b64e(b"@carol"), 1,
                          mentions=["dave", "alice", "nobody"])
        assert ack3["queued"], ack3
        bad = await post(a, tid, b64e(nacl.utils.random(24)), b64e(b"x"), 1, mentions="dave")
        assert bad["queued"] is False and "mentions" in bad["error"], bad
        bad2 = await post(a, tid, b64e(nacl.utils.random(24)), b64e(b"x"), 3)
        assert bad2["queued"] is False and "bodyVersion" in bad2["error"], bad2
        for p in (a, bb, c, d2):
            await p.close()
        return tid, ack2["messageId"], ack3["messageId"]

    tid, mid2, mid3 = run(go(), 90)
    with db.cursor() as c:
        c.execute("SELECT member_id, message_id FROM mesh.notification WHERE topic_id = %s ORDER BY message_id",
                  (tid,))
        rows = c.fetchall()
        assert sorted(r for r in rows if r[1] == mid2) == [(bm.id, mid2)], rows
        assert sorted(r for r in rows if r[1] == mid3) == [(dm.id, mid3)], rows
        c.execute("SELECT count(*) FROM mesh.topic_message WHERE topic_id = %s", (tid,))
        assert c.fetchone()[0] == 3
        c.execute("SELECT body_version FROM mesh.message_queue WHERE id = %s", (mid2,))
        assert c.fetchone()[0] == 1


def test_topic_requests_echo_req_id_and_list_members_leave(broker, mesh):
    b = broker()
    m = mesh("alice", "bob")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        r = await create(a, "zeta", visibility="private")
        await create(a, "alpha")
        bad = await request(a, {"type": "topic_create", "name": "has space"}, "topic_created")
        assert bad["type"] == "error" and bad["code"] == "malformed", bad
        lst = await request(a, {"type": "topic_list"}, "topic_list_response")
        assert [t["name"] for t in lst["topics"]] == ["alpha", "zeta"], lst
        assert lst["topics"][1]["memberCount"] == 1 and lst["topics"][1]["visibility"] == "private"
        # bob does not see alice's private topic
        blst = await request(bb, {"type": "topic_list"}, "topic_list_response")
        assert [t["name"] for t in blst["topics"]] == ["alpha"]
        e = await quiet_request(bb, {"type": "topic_join", "topic": "nope"})
        assert e and e["code"] == "topic_not_found", e
        assert await quiet_request(bb, {"type": "topic_join", "topic": "alpha", "role": "observer"}) is None
        mem = await request(a, {"type": "topic_members", "topic": "alpha"}, "topic_members_response")
        roles = {x["memberId"]: x["role"] for x in mem["members"]}
        assert roles == {am.id: "lead", bm.id: "observer"}, mem
        assert await quiet_request(bb, {"type": "topic_mark_read", "topic": "alpha"}) is None
        assert await quiet_request(bb, {"type": "topic_leave", "topic": "alpha"}) is None
        mem = await request(a, {"type": "topic_members", "topic": r["topic"]["id"]}, "topic_members_response")
        assert [x["memberId"] for x in mem["members"]] == [am.id]
        hist = await request(bb, {"type": "topic_history", "topic": "alpha"}, "topic_history_response")
        assert hist["type"] == "error" and hist["code"] == "not_a_member" and "message" in hist
        mal = await request(a, {"type": "topic_history"}, "topic_history_response")
        assert mal["type"] == "error" and mal["code"] == "malformed"
        await a.close()
        await bb.close()

    run(go(), 60)


def test_history_is_newest_first_with_limit_and_before_id(broker, mesh):
    b = broker()
    m = mesh("alice")
    am = m.members[0]

    async def go():
        a = Peer(b, am)
        await a.join()
        tid = (await create(a, "hist"))["topic"]["id"]
        ids = []
        for i in range(5):
            ack = await post(a, tid, b64e(nacl.utils.random(24)), b64e(f"m{i}".encode()), 1)
            ids.append(ack["messageId"])
        h = await request(a, {"type": "topic_history", "topic": tid, "limit": 2}, "topic_history_response")
        assert [x["id"] for x in h["messages"]] == [ids[4], ids[3]]
        h2 = await request(a, {"type": "topic_history", "topic": tid, "limit": 200, "beforeId": ids[3]},
                           "topic_history_response")
        assert [x["id"] for x in h2["messages"]] == [ids[2], ids[1], ids[0]]
        await a.close()

    run(go(), 60)


def test_history_pages_stay_bounded_in_bytes(broker, mesh, db):
    """200 messages of 60 KB would be a 12 MB frame: a page stops at 4 MiB and beforeId goes on"""
    b = broker()
    m = mesh("alice")
    am = m.members[0]

    async def make():
        a = Peer(b, am)
        await a.join()
        tid = (await create(a, "big"))["topic"]["id"]
        await a.close()
        return tid

    tid = run(make(), 30)
    big = "A" * 60000
    with db.cursor() as c:
        for i in range(100):
            c.execute("INSERT INTO mesh.topic_message (id, topic_id, sender_member_id, nonce, ciphertext, "
                      "created_at) VALUES (%s, %s, %s, 'n', %s, now() - make_interval(secs => %s))",
                      (f"big{i:04d}" + new_id(20), tid, am.id, big, 1000 - i))

    async def go():
        a = Peer(b, am)
        await a.join()
        seen, before = [], None
        while True:
            req = {"type": "topic_history", "topic": tid, "limit": 200}
            if before:
                req["beforeId"] = before
            h = await request(a, req, "topic_history_response", timeout=60)
            msgs = h["messages"]
            if not msgs:
                break
            assert sum(len(x["ciphertext"]) + len(x["nonce"]) for x in msgs) <= 4 << 20
            seen += [x["id"] for x in msgs]
            before = msgs[-1]["id"]
        await a.close()
        return seen

    seen = run(go(), 120)
    assert len(seen) == 100 and len(set(seen)) == 100
    assert seen == sorted(seen, reverse=True), "newest first across pages"
