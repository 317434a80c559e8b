"""Limits per member (issue 22 acceptance 5, docs/protocol.md §5.2): topic creation, join/leave
and mark_read share a token bucket per member (TOPIC_RATE_LIMIT_PER_MIN, TOPIC_RATE_BURST), a
mesh holds at most MAX_TOPICS_PER_MESH topics, and topic_list is paged with a cursor that never
drops a topic: "general" stays findable whatever one member creates."""

from mbtest import Peer, new_id, run
from test_topics import create, quiet_request, request
from test_topics_rest import api_key, call


async def list_all(peer, limit=None):
    names, cursor, pages = [], None, 0
    while True:
        frame = {"type": "topic_list"}
        if cursor:
            frame["cursor"] = cursor
        if limit:
            frame["limit"] = limit
        r = await request(peer, frame, "topic_list_response")
        assert r["type"] == "topic_list_response", r
        names += [t["name"] for t in r["topics"]]
        pages += 1
        cursor = r["nextCursor"]
        if cursor is None:
            return names, pages
        assert pages < 100


def test_3000_topic_creations_by_one_member_are_throttled_and_general_stays_listed(broker, mesh, db):
    b = broker()
    m = mesh("alice", "mallory", "bob")
    am, mm, bm = m.members

    async def go():
        a, x, bb = Peer(b, am), Peer(b, mm), Peer(b, bm)
        for p in (a, x, bb):
            await p.join()
        await create(a, "general")
        # mallory sends 3,000 creations without waiting for the answers
        rids = [f"c{i}" for i in range(3000)]
        for i, rid in enumerate(rids):
            await x.send_json({"type": "topic_create", "name": f"a{i:05d}", "_reqId": rid})
        answers = {}
        while len(answers) < len(rids):
            r = await x.wait_for(lambda y: y.get("_reqId", y.get("id")) in rids and
                                 y.get("_reqId", y.get("id")) not in answers, 60)
            answers[r.get("_reqId", r.get("id"))] = r
        made = [r for r in answers.values() if r["type"] == "topic_created"]
        limited = [r for r in answers.values() if r["type"] == "error" and r["code"] == "rate_limit"]
        assert len(made) + len(limited) == 3000, {r.get("code") for r in answers.values()}
        assert 1 <= len(made) <= 40, len(made)  # the burst (20) and what refilled meanwhile
        # everyone still finds general, by paging
        for p in (a, x, bb):
            names, pages = await list_all(p, limit=7)
            assert "general" in names and len(names) == len(set(names)) == len(made) + 1, (len(names), pages)
            assert names == sorted(names)
        # join, leave and mark_read draw on the same bucket
        codes = []
        for i in range(40):
            rid = new_id(8)
            await x.send_json({"type": "topic_join" if i % 2 == 0 else "topic_leave", "topic": "general",
                               "_reqId": rid})
        await request(x, {"type": "topic_list"}, "topic_list_response")
        codes = [y["code"] for y in x.take(lambda y: y.get("type") == "error")]
        assert codes and set(codes) == {"rate_limit"}, codes
        for p in (a, x, bb):
            await p.close()

    run(go(), 120)


def test_a_mesh_holds_at_most_max_topics_and_paging_never_drops_one(broker, mesh, db):
    b = broker(MAX_TOPICS_PER_MESH=30, TOPIC_RATE_BURST=1000)
    m = mesh("alice", "bob")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        for p in (a, bb):
            await p.join()
        made, full = 0, 0
        for i in range(35):
            r = await request(a, {"type": "topic_create", "name": f"t{i:03d}"}, "topic_created")
            if r["type"] == "topic_created":
                made += 1
            else:
                assert r["code"] == "topic_limit_reached", r
                full += 1
        assert (made, full) == (30, 5)
        # an existing name is still answered (idempotent), not refused as full
        again = await request(a, {"type": "topic_create", "name": "t000"}, "topic_created")
        assert again["type"] == "topic_created" and again["created"] is False, again
        names, pages = await list_all(bb, limit=4)
        assert names == [f"t{i:03d}" for i in range(30)] and pages == 8, (names, pages)
        # the default page is 200, at most 500; a bad cursor or limit is malformed
        r = await request(bb, {"type": "topic_list"}, "topic_list_response")
        assert len(r["topics"]) == 30 and r["nextCursor"] is None
        for bad in ({"limit": 0}, {"limit": 501}, {"cursor": 7}, {"cursor": ""}):
            e = await request(bb, dict({"type": "topic_list"}, **bad), "topic_list_response")
            assert e["type"] == "error" and e["code"] == "malformed", (bad, e)
        for p in (a, bb):
            await p.close()

    run(go(), 60)


def test_mark_read_over_rest_shares_the_members_topic_bucket(broker, mesh, db):
    b = broker(TOPIC_RATE_BURST=3, TOPIC_RATE_LIMIT_PER_MIN=1)
    m = mesh("alice")
    am = m.members[0]
    ka = api_key(db, m, am)

    async def go():
        a = Peer(b, am)
        await a.join()
        await create(a, "general")  # one token
        e = await quiet_request(a, {"type": "topic_mark_read", "topic": "general"})  # two
        assert e is None, e
        await a.close()

    run(go(), 30)
    got = [call(b, ka, "PATCH", "/v1/topics/general/read")[0] for _ in range(3)]
    assert got == [200, 429, 429], got
    s, body = call(b, ka, "PATCH", "/v1/topics/general/read")
    assert (s, body["error"]) == (429, "rate_limit"), body
