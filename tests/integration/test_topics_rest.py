"""The topic REST API of docs/protocol.md §5.3 behind Bearer API keys (issue 9
acceptance 1-4 over HTTP): GET /v1/topics/:name/key and …/pending-seals, POST
…/seal (members only, never overwriting, the sealer recorded), POST
/v1/messages (a topic post as the key's issuer) and GET /v1/notifications."""

import base64
import hashlib
import json
import secrets

import nacl.utils

from mbtest import Peer, b64e, new_id, run
from test_topics import (create, key_candidates, open_sealed, quiet_request, scan_topic_tables, seal_for, v2_body,
                         v2_open)


def refused(status, error, ok=False):
    """(status, body) of a refusal: the one shape of the route table (docs/protocol.md §12.6)"""
    body = {"ok": False} if ok else {}
    body.update({"error": error, "code": "error." + error, "status": status})
    return status, body


def api_key(db, mesh, member, caps=("send", "read"), topics=None):
    """a live key of member (None: a mesh-wide key); returns the secret"""
    secret = "cm_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.api_key (id, mesh_id, issuer_member_id, secret_hash, prefix, capabilities, "
                  "topic_scopes) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                  (new_id(), mesh.id, member.id if member else None, hashlib.sha256(secret.encode()).hexdigest(),
                   secret[:11], list(caps), list(topics) if topics is not None else None))
    return secret


def call(b, secret, method, path, body=None):
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    status, _, data = b.request(method, path, body=body, headers=headers)
    return status, json.loads(data) if data else None


def test_rest_key_pending_seals_and_seal_follow_the_member_driven_re_seal(broker, mesh, db):
    b = broker()
    m = mesh("alice", "bob", "carol", "dave")
    am, bm, cm, dm = m.members
    ka, kb, kc, kd = (api_key(db, m, x) for x in (am, bm, cm, dm))

    async def setup():
        a, bb, d = Peer(b, am), Peer(b, bm), Peer(b, dm)
        for p in (a, bb, d):
            await p.join()
        tid = (await create(a, "rest"))["topic"]["id"]
        for p in (bb, d):
            assert await quiet_request(p, {"type": "topic_join", "topic": tid}) is None
        for p in (a, bb, d):
            await p.close()
        return tid

    tid = run(setup(), 60)
    assert call(b, None, "GET", "/v1/topics/rest/key") == refused(401, "api_key_missing")
    s, k = call(b, ka, "GET", "/v1/topics/rest/key")
    assert s == 200 and k["topicId"] == tid and k["topic"] == "rest", k
    key = open_sealed(am, k["encryptedKey"], k["nonce"])
    assert len(key) == 32
    assert scan_topic_tables(db, key_candidates(key)) == [], "the broker kept the key it sealed"
    assert call(b, ka, "GET", "/v1/topics/nope/key") == refused(404, "topic_not_found")
    assert call(b, kb, "GET", f"/v1/topics/{tid}/key") == refused(404, "key_not_sealed_for_member")
    s, p = call(b, ka, "GET", "/v1/topics/rest/pending-seals")
    assert s == 200 and sorted(x["memberId"] for x in p["pending"]) == sorted([bm.id, dm.id]), p
    assert p["senderPubkey"] == k["senderPubkey"]
    assert call(b, kc, "GET", "/v1/topics/rest/pending-seals")[0] == 403
    enc, nonce = seal_for(bm, key)
    assert call(b, ka, "POST", "/v1/topics/rest/seal", {"memberId": bm.id})[0] == 400
    s, r = call(b, ka, "POST", "/v1/topics/rest/seal", {"memberId": bm.id, "encryptedKey": enc, "nonce": nonce})
    assert s == 200 and r["memberId"] == bm.id and r["topicId"] == tid and r["sealedAt"], r
    s, bk = call(b, kb, "GET", "/v1/topics/rest/key")
    assert s == 200 and open_sealed(bm, bk["encryptedKey"], bk["nonce"]) == key
    fake = nacl.utils.random(32)
    e1, n1 = seal_for(dm, fake)
    # carol is no topic member: she cannot seal for dave, nor overwrite bob's copy
    assert call(b, kc, "POST", "/v1/topics/rest/seal", {"memberId": dm.id, "encryptedKey": e1, "nonce": n1}) == \
        refused(404, "not_a_member")
    e2, n2 = seal_for(bm, fake)
    # who asks before what it finds (issue 21): a non-member gets the non-member answer, not already_sealed
    assert call(b, kc, "POST", "/v1/topics/rest/seal", {"memberId": bm.id, "encryptedKey": e2, "nonce": n2}) == \
        refused(404, "not_a_member")
    # nor can dave, a member holding no copy of the key (issue 22: only a holder seals)
    assert call(b, kd, "POST", "/v1/topics/rest/seal", {"memberId": bm.id, "encryptedKey": e2, "nonce": n2}) == \
        refused(403, "not_a_key_holder")
    assert call(b, ka, "POST", "/v1/topics/rest/seal", {"memberId": cm.id, "encryptedKey": e2, "nonce": n2}) == \
        refused(404, "recipient_not_in_topic")
    s, bk2 = call(b, kb, "GET", "/v1/topics/rest/key")
    assert open_sealed(bm, bk2["encryptedKey"], bk2["nonce"]) == key, "bob's copy is never overwritten"
    with db.cursor() as c:
        c.execute("SELECT sealed_by FROM mesh.topic_member_key WHERE topic_id = %s AND member_id = %s", (tid, bm.id))
        assert c.fetchone()[0] == am.id
        c.execute("SELECT count(*) FROM mesh.audit_log WHERE event_type = 'topic_key_sealed' AND "
                  "payload->>'memberId' = %s AND actor_member_id = %s", (bm.id, am.id))
        assert c.fetchone()[0] == 1
    # a legacy topic
    legacy = new_id()
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.topic (id, mesh_id, name) VALUES (%s, %s, 'old')", (legacy, m.id))
    # keys are for members only (issue 22): a non-member is told so, a member that the topic has no key
    assert call(b, ka, "GET", "/v1/topics/old/key") == refused(403, "not_a_member")
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.topic_member (topic_id, member_id) VALUES (%s, %s)", (legacy, am.id))
    assert call(b, ka, "GET", "/v1/topics/old/key") == refused(409, "topic_unencrypted")


def test_rest_post_reaches_members_and_mentions_reach_notifications(broker, mesh, db):
    b = broker()
    m = mesh("alice", "bob", "carol")
    am, bm, cm = m.members
    ka, kb, kc = (api_key(db, m, x) for x in (am, bm, cm))
    read_only = api_key(db, m, am, caps=("read",))
    mesh_wide = api_key(db, m, None)
    scoped = api_key(db, m, am, topics=("elsewhere",))

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        tid = (await create(a, "posts"))["topic"]["id"]
        assert await quiet_request(bb, {"type": "topic_join", "topic": tid}) is None
        s, k = call(b, ka, "GET", "/v1/topics/posts/key")
        key = open_sealed(am, k["encryptedKey"], k["nonce"])
        n, ct = v2_body(key, "over REST")
        s, r = call(b, ka, "POST", "/v1/messages", {"topic": "posts", "nonce": n, "ciphertext": ct,
                                                     "bodyVersion": 2, "priority": "now"})
        assert s == 200 and r["queued"] is True and r["topicId"] == tid, r
        push = await bb.push(pred=lambda x: x["messageId"] == r["messageId"])
        assert push["topic"] == "posts" and push["topicId"] == tid and push["bodyVersion"] == 2 and push["senderPubkey"] == am.pubkey
        assert v2_open(key, push["nonce"], push["ciphertext"]) == "over REST"
        s, r2 = call(b, ka, "POST", "/v1/messages", {"topic": tid, "nonce": b64e(nacl.utils.random(24)),
                                                      "ciphertext": b64e(b"ping @Bob and @carol")})
        assert s == 200, r2
        await bb.push(pred=lambda x: x["messageId"] == r2["messageId"])
        await a.quiet(lambda x: x.get("type") == "push", 0.3)
        await a.close()
        await bb.close()
        return tid, r2["messageId"]

    tid, mid = run(go(), 60)
    s, nb = call(b, kb, "GET", "/v1/notifications")
    assert s == 200 and [(x["messageId"], x["topicId"], x["senderPubkey"]) for x in nb["notifications"]] == \
        [(mid, tid, am.pubkey)], nb
    s, nc = call(b, kc, "GET", "/v1/notifications")
    assert [x["messageId"] for x in nc["notifications"]] == [mid], "mentioned even when not a topic member"
    s, na = call(b, ka, "GET", "/v1/notifications")
    assert s == 200 and na["notifications"] == [] and na["mentionedAs"] == "alice" and na["since"], na
    # carol is no topic member
    assert call(b, kc, "POST", "/v1/messages", {"topic": tid, "nonce": "x", "ciphertext": "eA=="})[0] == 403
    assert call(b, read_only, "POST", "/v1/messages", {"topic": tid, "nonce": "x", "ciphertext": "eA=="}) == \
        refused(403, "api_key_missing_capability")
    for method, path in (("GET", "/v1/topics/posts/key"), ("GET", "/v1/notifications")):
        assert call(b, mesh_wide, method, path) == refused(404, "not_found")
    # a post needs an issuer to post as (§12.6: the reference took the earliest-joined member)
    assert call(b, mesh_wide, "POST", "/v1/messages", {}) == refused(400, "api_key_has_no_issuer")
    assert call(b, scoped, "GET", "/v1/topics/posts/key") == refused(403, "api_key_topic_out_of_scope")
    assert call(b, scoped, "GET", f"/v1/topics/{tid}/key") == refused(403, "api_key_topic_out_of_scope")
    # a scope names the topic by name or by id; either way the path may use the other
    by_name, by_id = api_key(db, m, am, topics=("posts",)), api_key(db, m, am, topics=(tid,))
    assert call(b, by_name, "GET", f"/v1/topics/{tid}/key")[0] == 200
    assert call(b, by_id, "GET", "/v1/topics/posts/key")[0] == 200
    assert call(b, by_id, "POST", "/v1/messages", {"topic": "posts", "nonce": "x", "ciphertext": "eA=="})[0] == 200
    assert call(b, ka, "POST", "/v1/messages", {"topic": tid})[0] == 400
    assert call(b, ka, "POST", "/v1/messages", {"topic": "nope", "nonce": "x", "ciphertext": "eA=="}) == \
        refused(404, "topic_not_found")
    assert call(b, ka, "GET", "/v1/nothing-here") == refused(404, "not_found")


def topic_message_count(db, tid):
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.topic_message WHERE topic_id = %s", (tid,))
        return c.fetchone()[0]


def test_rest_post_refuses_nul_and_non_utf8_mentions_and_a_valid_post_follows(broker, mesh, db):
    """issue 21 acceptance 2: a REST post with \\u0000 is refused and nothing is stored; a mention with invalid
    UTF-8 is refused with a 400-class code before PostgreSQL, and a following valid post succeeds"""
    b = broker()
    m = mesh("alice", "bob")
    am, bm = m.members
    ka = api_key(db, m, am)

    async def go():
        a = Peer(b, am)
        await a.join()
        tid = (await create(a, "strict"))["topic"]["id"]
        await a.close()
        return tid

    tid = run(go(), 30)
    for field in ("nonce", "ciphertext"):
        body = {"topic": "strict", "nonce": "fake-nonce-aaa", "ciphertext": "hello-from-a"}
        body[field] = "cut\u0000here"
        assert call(b, ka, "POST", "/v1/messages", body) == refused(400, "nul_in_field"), field
    assert topic_message_count(db, tid) == 0, "nothing stored cut"
    # "@" then bytes that are not UTF-8, in a v1 body (the @name scan) and as an explicit mention
    bad_body = base64.b64encode(b"hi @\xff\xfe there").decode()
    assert call(b, ka, "POST", "/v1/messages", {"topic": "strict", "nonce": "n", "ciphertext": bad_body}) == \
        refused(400, "invalid_mentions")
    raw = b'{"topic":"strict","nonce":"n","ciphertext":"eA==","mentions":["\xc3\x28"]}'
    st, _, data = b.request("POST", "/v1/messages", body=raw,
                            headers={"Authorization": f"Bearer {ka}", "Content-Type": "application/json"})
    assert (st, json.loads(data)) == refused(400, "invalid_mentions")
    # an opaque field of raw bytes that are not UTF-8: PostgreSQL text cannot hold it, refused before it
    raw = b'{"topic":"strict","nonce":"n","ciphertext":"\xff\xfe"}'
    st, _, data = b.request("POST", "/v1/messages", body=raw,
                            headers={"Authorization": f"Bearer {ka}", "Content-Type": "application/json"})
    assert (st, json.loads(data)) == refused(400, "invalid_utf8")
    assert call(b, ka, "GET", "/v1/topics/str%FFict/key") == refused(404, "topic_not_found")
    assert topic_message_count(db, tid) == 0
    # the opaque fields of the reference's smoke test, then a plain mention: stored byte-identical
    st, r = call(b, ka, "POST", "/v1/messages", {"topic": "strict", "nonce": "fake-nonce-aaa",
                                                 "ciphertext": "hello-from-a"})
    assert st == 200 and r["messageId"] and r["historyId"] == r["messageId"] == r["queueId"], r
    assert r["topic"] == "strict" and r["topicId"] == tid and r["notifications"] == 0 and r["bodyVersion"] == 1, r
    st, r2 = call(b, ka, "POST", "/v1/messages", {"topic": "strict", "nonce": "n",
                                                  "ciphertext": base64.b64encode(b"hi @bob").decode()})
    assert st == 200 and r2["notifications"] == 1, r2
    with db.cursor() as c:
        c.execute("SELECT nonce, ciphertext FROM mesh.topic_message WHERE id = %s", (r["messageId"],))
        assert c.fetchone() == ("fake-nonce-aaa", "hello-from-a")


def test_notifications_honour_the_key_topic_scope(broker, mesh, db):
    """issue 21: GET /v1/notifications lists only the mentions of topics in the key's scope"""
    b = broker()
    m = mesh("alice", "bob")
    am, bm = m.members
    ka = api_key(db, m, am)

    async def go():
        a = Peer(b, am)
        await a.join()
        t1 = (await create(a, "inscope"))["topic"]["id"]
        t2 = (await create(a, "outofscope"))["topic"]["id"]
        await a.close()
        return t1, t2

    t1, t2 = run(go(), 30)
    ids = {}
    for name in ("inscope", "outofscope"):
        st, r = call(b, ka, "POST", "/v1/messages", {"topic": name, "nonce": "n",
                                                     "ciphertext": base64.b64encode(b"ping @bob").decode()})
        assert st == 200 and r["notifications"] == 1, r
        ids[name] = r["messageId"]
    everything = api_key(db, m, bm)
    by_name = api_key(db, m, bm, topics=("inscope",))
    by_id = api_key(db, m, bm, topics=(t1,))
    for prefix in ("", "/api"):
        st, n = call(b, everything, "GET", prefix + "/v1/notifications")
        assert st == 200 and sorted(x["id"] for x in n["notifications"]) == sorted(ids.values()), n
        assert n["mentionedAs"] == "bob"
        for k in (by_name, by_id):
            st, n = call(b, k, "GET", prefix + "/v1/notifications")
            assert st == 200 and [x["id"] for x in n["notifications"]] == [ids["inscope"]], n
            assert n["notifications"][0]["topicName"] == "inscope"
    assert call(b, everything, "GET", "/v1/notifications?since=yesterday") == refused(400, "invalid_since")


def test_cli_rest_routes_messages_read_topics_and_me(broker, mesh, db):
    """issue 18's REST surface (docs/protocol.md §12.6), under /api/v1/: paged messages, PATCH read, topics,
    me/topics, me/notifications"""
    b = broker()
    m = mesh("alice", "bob", "carol")
    am, bm, cm = m.members
    ka, kb, kc = (api_key(db, m, x) for x in (am, bm, cm))

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        tid = (await create(a, "paged"))["topic"]["id"]
        await create(a, "quiet")
        secret = (await create(a, "hidden", visibility="private"))["topic"]["id"]
        assert await quiet_request(bb, {"type": "topic_join", "topic": tid}) is None
        await a.close()
        await bb.close()
        return tid, secret

    tid, hidden = run(go(), 30)
    ids = []
    for i in range(5):
        ct = base64.b64encode(f"message {i} @bob".encode()).decode()
        st, r = call(b, ka, "POST", "/api/v1/messages", {"topic": "paged", "nonce": f"n{i}", "ciphertext": ct})
        assert st == 200, r
        ids.append(r["messageId"])
    st, p1 = call(b, kb, "GET", "/api/v1/topics/paged/messages?limit=2")
    assert st == 200 and p1["topic"] == "paged" and p1["topicId"] == tid, p1
    assert [x["id"] for x in p1["messages"]] == ids[::-1][:2]
    x = p1["messages"][0]
    assert (x["senderMemberId"], x["senderPubkey"], x["senderName"], x["nonce"], x["bodyVersion"],
            x["replyToId"]) == (am.id, am.pubkey, "alice", "n4", 1, None), x
    st, p2 = call(b, kb, "GET", f"/api/v1/topics/paged/messages?limit=2&before={p1['messages'][-1]['id']}")
    assert [x["id"] for x in p2["messages"]] == ids[::-1][2:4], p2
    st, rp = call(b, ka, "POST", "/api/v1/messages", {"topic": "paged", "nonce": "r", "ciphertext": "eA==",
                                                      "replyToId": ids[0]})
    assert st == 200 and rp["replyToId"] == ids[0], rp
    st, pr = call(b, kb, "GET", "/api/v1/topics/paged/messages?limit=1")
    assert [(x["id"], x["replyToId"]) for x in pr["messages"]] == [(rp["messageId"], ids[0])], pr
    ids.append(rp["messageId"])
    st, p3 = call(b, kb, "GET", "/v1/topics/paged/messages?before=unknownid")
    assert [x["id"] for x in p3["messages"]] == ids[::-1], "an unknown cursor is none"
    assert call(b, kb, "GET", "/v1/topics/paged/messages?limit=0") == refused(400, "invalid_limit")
    assert call(b, kb, "GET", "/v1/topics/paged/messages?limit=201") == refused(400, "invalid_limit")
    assert call(b, kc, "GET", "/v1/topics/paged/messages") == refused(403, "not_a_member")
    assert call(b, kb, "GET", "/v1/topics/nope/messages") == refused(404, "topic_not_found")
    # me/topics: bob's, with unread counts; PATCH read clears them; carol is no member
    st, mt = call(b, kb, "GET", "/api/v1/me/topics")
    assert st == 200 and [t["name"] for t in mt["topics"]] == ["paged"], mt
    t = mt["topics"][0]
    assert t["topicId"] == tid and t["unread"] == 6 and t["memberId"] == bm.id and t["meshId"] == m.id, t
    assert t["lastMessageAt"] and t["meshSlug"] and mt["totals"] == {"topics": 1, "unread": 6}, mt
    st, rd = call(b, kb, "PATCH", "/api/v1/topics/paged/read")
    assert st == 200 and rd["topic"] == "paged" and rd["topicId"] == tid and rd["readAt"], rd
    assert call(b, kb, "GET", "/api/v1/me/topics")[1]["totals"] == {"topics": 1, "unread": 0}
    assert call(b, kc, "PATCH", "/api/v1/topics/paged/read") == refused(403, "not_a_member")
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.topic_member WHERE topic_id = %s AND member_id = %s", (tid, cm.id))
        assert c.fetchone()[0] == 0, "PATCH read joins nobody"
    # topics: what the member may see (private ones only to members), limited to the key's scopes
    st, tl = call(b, kb, "GET", "/api/v1/topics")
    assert st == 200 and [t["name"] for t in tl["topics"]] == ["paged", "quiet"], tl
    assert [t["name"] for t in call(b, ka, "GET", "/v1/topics")[1]["topics"]] == ["hidden", "paged", "quiet"]
    scoped = api_key(db, m, am, topics=("quiet", hidden))
    assert [t["name"] for t in call(b, scoped, "GET", "/v1/topics")[1]["topics"]] == ["hidden", "quiet"]
    # me/notifications: bob's mentions, read once the topic was read; include=all shows them
    st, mn = call(b, kb, "GET", "/api/v1/me/notifications")
    assert st == 200 and mn["notifications"] == [] and mn["totals"] == {"unread": 0, "total": 0}, mn
    st, mn = call(b, kb, "GET", "/api/v1/me/notifications?include=all")
    assert [x["messageId"] for x in mn["notifications"]] == ids[:5][::-1] and mn["totals"]["total"] == 5, mn
    x = mn["notifications"][0]
    assert x["snippet"] == "message 4 @bob" and x["ciphertext"] is None and x["read"] is True, x
    assert x["topicName"] == "paged" and x["meshId"] == m.id and x["senderName"] == "alice", x
    assert call(b, kb, "GET", "/v1/me/notifications?since=never") == refused(400, "invalid_since")
