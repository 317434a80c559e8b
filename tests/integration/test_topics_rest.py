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
    assert call(b, None, "GET", "/v1/topics/rest/key") == (401, {"error": "api_key_missing"})
    s, k = call(b, ka, "GET", "/v1/topics/rest/key")
    assert s == 200 and k["topicId"] == tid and k["topic"] == "rest", k
    key = open_sealed(am, k["encryptedKey"], k["nonce"])
    assert len(key) == 32
    assert scan_topic_tables(db, key_candidates(key)) == [], "the broker kept the key it sealed"
    assert call(b, ka, "GET", "/v1/topics/nope/key") == (404, {"error": "topic_not_found"})
    assert call(b, kb, "GET", f"/v1/topics/{tid}/key") == (404, {"error": "key_not_sealed_for_member"})
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
        (404, {"error": "not_a_member"})
    e2, n2 = seal_for(bm, fake)
    assert call(b, kc, "POST", "/v1/topics/rest/seal", {"memberId": bm.id, "encryptedKey": e2, "nonce": n2}) == \
        (409, {"error": "already_sealed"})
    # nor can dave, a member
    assert call(b, kd, "POST", "/v1/topics/rest/seal", {"memberId": bm.id, "encryptedKey": e2, "nonce": n2}) == \
        (409, {"error": "already_sealed"})
    assert call(b, ka, "POST", "/v1/topics/rest/seal", {"memberId": cm.id, "encryptedKey": e2, "nonce": n2}) == \
        (404, {"error": "recipient_not_in_topic"})
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
    assert call(b, ka, "GET", "/v1/topics/old/key") == (409, {"error": "topic_unencrypted"})


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
        assert push["topic"] == tid and push["bodyVersion"] == 2 and push["senderPubkey"] == am.pubkey
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
    assert call(b, ka, "GET", "/v1/notifications")[1] == {"notifications": []}
    # carol is no topic member
    assert call(b, kc, "POST", "/v1/messages", {"topic": tid, "nonce": "x", "ciphertext": "eA=="})[0] == 403
    assert call(b, read_only, "POST", "/v1/messages", {"topic": tid, "nonce": "x", "ciphertext": "eA=="}) == \
        (403, {"error": "api_key_missing_capability"})
    for method, path in (("GET", "/v1/topics/posts/key"), ("GET", "/v1/notifications"), ("POST", "/v1/messages")):
        assert call(b, mesh_wide, method, path, {} if method == "POST" else None) == (404, {"error": "not_found"})
    assert call(b, scoped, "GET", "/v1/topics/posts/key") == (403, {"error": "api_key_topic_out_of_scope"})
    assert call(b, scoped, "GET", f"/v1/topics/{tid}/key") == (403, {"error": "api_key_topic_out_of_scope"})
    # a scope names the topic by name or by id; either way the path may use the other
    by_name, by_id = api_key(db, m, am, topics=("posts",)), api_key(db, m, am, topics=(tid,))
    assert call(b, by_name, "GET", f"/v1/topics/{tid}/key")[0] == 200
    assert call(b, by_id, "GET", "/v1/topics/posts/key")[0] == 200
    assert call(b, by_id, "POST", "/v1/messages", {"topic": "posts", "nonce": "x", "ciphertext": "eA=="})[0] == 200
    assert call(b, ka, "POST", "/v1/messages", {"topic": tid})[0] == 400
    assert call(b, ka, "POST", "/v1/messages", {"topic": "nope", "nonce": "x", "ciphertext": "eA=="}) == \
        (404, {"error": "topic_not_found"})
    assert call(b, ka, "GET", "/v1/nothing-here") == (404, {"error": "not_found"})
