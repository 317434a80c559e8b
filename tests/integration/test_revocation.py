"""Revocation takes effect everywhere at once (issue 22 acceptance 3, docs/protocol.md §6): after
`meshctl member revoke` the member's API keys get 401 on every REST route and the hook, its open
socket is closed by its worker with 4002 "revoked" within 1 s, its hello and /join are refused,
and every encrypted topic it was in starts a new key epoch.  An archived mesh's keys stop too."""

import asyncio
import time

import mbtest
from invites import invite, meshctl, post_join
from mbtest import Peer, run
from test_rest_routes import KEYED, api_key, sample
from test_topics import create, quiet_request

CAPS = ("send", "read", "state_write", "status")


def bearer(secret):
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


def status_of(b, secret, method, path):
    body = b"{}" if method in ("POST", "PATCH", "PUT") else None
    st, _, _ = b.request(method, path, body=body, headers=bearer(secret))
    return st


def test_a_revoked_member_is_out_everywhere_within_a_second(broker, mesh, pg, db):
    b = broker()
    m = mesh("alice", "bob")
    am, bm = m.members
    kb = api_key(db, m, bm, caps=CAPS)
    token, payload, _ = invite(db, m, max_uses=5)

    async def setup():
        a, bb = Peer(b, am), Peer(b, bm)
        for p in (a, bb):
            await p.join()
        tid = (await create(a, "general"))["topic"]["id"]
        assert await quiet_request(bb, {"type": "topic_join", "topic": "general"}) is None
        await a.close()
        return bb, tid

    async def go():
        bb, tid = await setup()
        # the key works before
        assert status_of(b, kb, "GET", "/v1/topics") == 200
        assert status_of(b, kb, "GET", "/v1/topics/general/pending-seals") == 200
        t0 = time.monotonic()
        r = await asyncio.to_thread(meshctl, ["member", "revoke", m.id, bm.id],
                                    {"DATABASE_URL": pg.url, "MESHBROKER_RUNTIME_DIR": b.runtime_dir})
        assert r.stdout.strip() == bm.id, r.stdout
        # the open socket is closed by its own worker, with the documented code
        assert await bb.wait_closed(timeout=5) == (4002, "revoked")
        closed_after = time.monotonic() - t0
        # every keyed REST route and the hook refuse the key
        refused = {}
        for route in KEYED:
            method, path = sample(route)
            refused[f"{method} {path}"] = status_of(b, kb, method, path)
        refused["POST /hook/set-status"] = status_of(b, kb, "POST", "/hook/set-status")
        all_after = time.monotonic() - t0
        return tid, closed_after, all_after, refused

    tid, closed_after, all_after, refused = run(go(), 60)
    assert closed_after < 1.0 + 0.5, f"closed {closed_after:.2f} s after meshctl started"  # meshctl start-up
    assert {k: v for k, v in refused.items() if v != 401} == {}, refused
    assert len(refused) >= 10, refused

    async def after():
        again = Peer(b, bm)
        await again.connect()
        e = await again.hello()
        assert e["type"] == "error" and e["code"] == "revoked", e
        assert await again.wait_closed() == (4002, "banned")

    run(after(), 30)
    assert post_join(b, token, payload, bm.pubkey, "bob") == (403, {"ok": False, "error": "member_revoked"})
    with db.cursor() as c:
        c.execute("SELECT revoked_at IS NOT NULL FROM mesh.api_key WHERE issuer_member_id = %s", (bm.id,))
        assert [r[0] for r in c.fetchall()] == [True], "the member's keys are revoked with it"
        c.execute("SELECT key_epoch FROM mesh.topic WHERE id = %s", (tid,))
        assert c.fetchone()[0] == 2, "a new key epoch in every topic it was in"


def test_a_banned_members_keys_stop_and_its_topics_move_to_a_new_epoch(broker, mesh, db):
    """the moderator's ban is a revocation too (the same trigger)"""
    b = broker()
    m = mesh("alice", "bob")
    am, bm = m.members
    kb = api_key(db, m, bm, caps=CAPS)

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        for p in (a, bb):
            await p.join()
        await create(a, "t1")
        assert await quiet_request(bb, {"type": "topic_join", "topic": "t1"}) is None
        with db.cursor() as c:
            c.execute("UPDATE mesh.member SET role = 'admin' WHERE id = %s", (am.id,))
        await a.send_json({"type": "ban", "target": "bob", "_reqId": "b1"})
        r = await a.wait_for(lambda x: x.get("_reqId") == "b1", 10)
        assert r["type"] == "ban_ack", r
        assert await bb.wait_closed(timeout=5) == (4002, "banned")
        await a.close()

    run(go(), 60)
    assert status_of(b, kb, "GET", "/v1/topics") == 401
    with db.cursor() as c:
        c.execute("SELECT key_epoch FROM mesh.topic WHERE mesh_id = %s AND name = 't1'", (m.id,))
        assert c.fetchone()[0] == 2


def test_an_archived_meshs_keys_are_refused(broker, mesh, db):
    b = broker()
    m = mesh("alice")
    ka = api_key(db, m, m.members[0], caps=CAPS)
    kw = api_key(db, m, None, caps=CAPS)
    assert status_of(b, ka, "GET", "/v1/topics") == 200
    with db.cursor() as c:
        c.execute("UPDATE mesh.mesh SET archived_at = now() WHERE id = %s", (m.id,))
    assert status_of(b, ka, "GET", "/v1/topics") == 401
    assert status_of(b, kw, "GET", "/v1/topics") == 401
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.api_key WHERE mesh_id = %s AND revoked_at IS NULL", (m.id,))
        assert c.fetchone()[0] == 0
