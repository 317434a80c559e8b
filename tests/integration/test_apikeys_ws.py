"""API keys over the socket (issue 18; docs/protocol.md §12.5):
apikey_create shows the secret once and stores only its sha256 and prefix,
the key works on REST with its capabilities and topic scopes, apikey_list
(newest first, revoked keys included, only one's own keys for a plain
member), apikey_revoke by id or id prefix, and the invalid_args /
forbidden refusals, each with the request's _reqId."""

import hashlib
import json
import time

import mbtest
from invites import bearer
from mbtest import Peer, run


async def request(p, msg):
    tag = mbtest.new_id(10)
    await p.send_json(dict(msg, _reqId=tag))
    r = await p.wait_for(lambda m: m.get("_reqId") == tag)
    return r


def refused(status, error):
    """(status, body) of a REST refusal: the route table's one shape (docs/protocol.md §5.3)"""
    return status, {"error": error, "code": "error." + error, "status": status}


def rest(b, path, secret):
    st, _, data = b.request("GET", path, headers=bearer(secret))
    return st, json.loads(data)


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def test_create_shows_the_secret_once_stores_its_hash_and_the_key_works(broker, mesh, db):
    b = broker()
    m = mesh("alice")
    alice = m.members[0]

    async def go():
        a = Peer(b, alice)
        await a.join()
        exp = iso(mbtest.now_ms() + 300_000)
        r = await request(a, {"type": "apikey_create", "label": "cli-topic-post-1", "capabilities": ["read"],
                              "topicScopes": ["alpha"], "expiresAt": exp})
        assert r["type"] == "apikey_created", r
        secret = r["secret"]
        assert secret.startswith("cm_") and len(secret) == 46 and r["prefix"] == secret[:11]
        assert r["label"] == "cli-topic-post-1" and r["capabilities"] == ["read"] and r["topicScopes"] == ["alpha"]
        assert r["createdAt"].endswith("Z") and len(r["id"]) == 32
        with db.cursor() as c:
            c.execute("SELECT secret_hash, prefix, issuer_member_id, capabilities, topic_scopes, expires_at IS NOT NULL "
                      "FROM mesh.api_key WHERE id = %s", (r["id"],))
            row = c.fetchone()
        assert row == (hashlib.sha256(secret.encode()).hexdigest(), secret[:11], alice.id, ["read"], ["alpha"], True)
        # REST: its capability and its scope
        assert rest(b, "/v1/notifications", secret)[0] == 200
        assert (await request(a, {"type": "topic_create", "name": "beta"}))["type"] == "topic_created"
        assert rest(b, "/v1/topics/beta/key", secret) == refused(403, "api_key_topic_out_of_scope")
        send_only = await request(a, {"type": "apikey_create", "label": "s", "capabilities": ["send"]})
        assert send_only["topicScopes"] is None
        assert rest(b, "/v1/notifications", send_only["secret"]) == refused(403, "api_key_missing_capability")
        # list: newest first, no secret
        lst = await request(a, {"type": "apikey_list"})
        assert lst["type"] == "apikey_list_response"
        assert [k["id"] for k in lst["keys"]] == [send_only["id"], r["id"]]
        k = lst["keys"][1]
        assert k["prefix"] == secret[:11] and k["capabilities"] == ["read"] and k["topicScopes"] == ["alpha"]
        assert k["revokedAt"] is None and k["lastUsedAt"] is not None and k["expiresAt"].endswith("Z")
        assert secret not in json.dumps(lst)
        # revoke by an id prefix of 6; again is idempotent; the key is dead
        rv = await request(a, {"type": "apikey_revoke", "id": r["id"][:6]})
        assert rv["type"] == "apikey_revoke_response" and rv["status"] == "revoked" and rv["id"] == r["id"]
        rv = await request(a, {"type": "apikey_revoke", "id": r["id"]})
        assert rv["status"] == "revoked"
        assert rest(b, "/v1/notifications", secret) == refused(401, "api_key_invalid")
        assert (await request(a, {"type": "apikey_list"}))["keys"][1]["revokedAt"].endswith("Z")
        rv = await request(a, {"type": "apikey_revoke", "id": "nosuchkeyid"})
        assert rv == {"type": "apikey_revoke_response", "status": "not_found", "_reqId": rv["_reqId"]}
        # a prefix shorter than 6 matches only a whole id
        rv = await request(a, {"type": "apikey_revoke", "id": send_only["id"][:5]})
        assert rv["status"] == "not_found"
        await a.close()
        assert secret not in b.log_text()

    run(go())


def test_invalid_arguments_and_who_may_see_what(broker, mesh):
    b = broker()
    m = mesh("bob", "carol")
    bob, carol = m.members
    admin = m.add("admin", role="admin")

    async def go():
        bp, cp, ap = Peer(b, bob), Peer(b, carol), Peer(b, admin)
        for p in (bp, cp, ap):
            await p.join()
        past = iso(mbtest.now_ms() - 1000)
        for bad in ({"capabilities": ["read"]}, {"label": "x"}, {"label": "x", "capabilities": []},
                    {"label": "x", "capabilities": ["fly"]}, {"label": "x", "capabilities": ["read"], "expiresAt": past},
                    {"label": "x", "capabilities": ["read"], "expiresAt": "tomorrow"},
                    {"label": "x", "capabilities": ["read"], "topicScopes": [1]}):
            e = await request(bp, dict(bad, type="apikey_create"))
            assert e["type"] == "error" and e["code"] == "invalid_args" and e["id"] == e["_reqId"], (bad, e)
        e = await request(bp, {"type": "apikey_revoke"})
        assert e["code"] == "invalid_args" and e["message"] == "id required"
        e = await request(bp, {"type": "apikey_create", "label": "x", "capabilities": ["admin"]})
        assert e["type"] == "error" and e["code"] == "forbidden"
        mine = await request(bp, {"type": "apikey_create", "label": "bob's", "capabilities": ["read"]})
        theirs = await request(cp, {"type": "apikey_create", "label": "carol's", "capabilities": ["send"]})
        adm = await request(ap, {"type": "apikey_create", "label": "admin's", "capabilities": ["admin"]})
        assert adm["type"] == "apikey_created" and adm["capabilities"] == ["admin"]
        assert rest(b, "/v1/notifications", adm["secret"])[0] == 200  # admin passes every capability check
        assert [k["id"] for k in (await request(bp, {"type": "apikey_list"}))["keys"]] == [mine["id"]]
        assert {k["id"] for k in (await request(ap, {"type": "apikey_list"}))["keys"]} == \
            {mine["id"], theirs["id"], adm["id"]}
        # a plain member cannot revoke another's key; an admin can
        assert (await request(bp, {"type": "apikey_revoke", "id": theirs["id"]}))["status"] == "not_found"
        assert (await request(ap, {"type": "apikey_revoke", "id": theirs["id"]}))["status"] == "revoked"
        for p in (bp, cp, ap):
            await p.close()

    run(go())
