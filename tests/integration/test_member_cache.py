"""The positive member cache (issue 23, shm/membercache.h; docs/design.md "Cost of a hello, third round"):
a member's second hello skips the membership lookup, and its one write statement (mesh.hello_join)
re-checks the membership before the hello_ack.  A revoked member is refused within 1 s even with a warm
cache, with the spec's code (error "revoked", close 4002 "banned", docs/protocol.md §12.4), whether it was
revoked by `meshctl member revoke` (which drops the entry) or by SQL (which does not: the re-check refuses
it, so a stale or forged entry admits nobody).  A refused warm hello writes no presence row and no audit
row of its own."""

import json
import time

import mbtest
from invites import meshctl
from mbtest import Peer, run


def lookups(b):
    mx = b.metrics()
    return {r: mx.value("broker_member_lookups_total", result=r)
            for r in ("member", "not_member", "member_cache_hit", "error")}


def delta(before, after):
    return {k: after[k] - before[k] for k in before}


def presence_rows(db, member):
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.presence WHERE member_id = %s", (member.id,))
        return c.fetchone()[0]


def joined_rows(db, member):
    """peer_joined audit rows of member, chained or still pending"""
    with db.cursor() as c:
        c.execute("SELECT (SELECT count(*) FROM mesh.audit_log WHERE event_type = 'peer_joined' "
                  "AND actor_member_id = %s) + (SELECT count(*) FROM mesh.audit_pending "
                  "WHERE event_type = 'peer_joined' AND actor_member_id = %s)", (member.id, member.id))
        return c.fetchone()[0]


async def hello_and_close(b, member):
    p = Peer(b, member)
    ack = await p.join()
    await p.close()
    return ack


async def refused_revoked(b, member):
    p = Peer(b, member)
    await p.connect()
    e = await p.hello()
    assert e.get("type") == "error" and e.get("code") == "revoked", e
    assert await p.wait_closed(5) == (4002, "banned")


def warm(b, member):
    """two hellos: the first looks the member up and fills the cache, the second is a cache hit"""
    before = lookups(b)
    run(hello_and_close(b, member), 30)
    run(hello_and_close(b, member), 30)
    d = delta(before, lookups(b))
    assert d["member"] == 1 and d["member_cache_hit"] == 1, d


def test_a_warm_hello_skips_the_lookup_and_writes_the_same_rows(broker, mesh, pg, db):
    b = broker()
    m = mesh("alice", "bob")
    a, bob = m.members
    before = lookups(b)
    first = run(hello_and_close(b, a), 30)
    second = run(hello_and_close(b, a), 30)
    d = delta(before, lookups(b))
    assert d == {"member": 1, "not_member": 0, "member_cache_hit": 1, "error": 0}, d
    # the warm ack says what the looked-up one said
    for ack in (first, second):
        assert (ack["memberId"], ack["memberDisplayName"]) == (a.id, "alice"), ack
    assert first["presenceId"] != second["presenceId"]
    # both hellos wrote their presence row (closed at the leave) and their peer_joined row, chained
    def closed_rows():
        with db.cursor() as c:
            c.execute("SELECT count(*) FROM mesh.presence WHERE member_id = %s AND disconnected_at IS NOT NULL "
                      "AND id IN (%s, %s)", (a.id, first["presenceId"], second["presenceId"]))
            return c.fetchone()[0]

    def joined():
        with db.cursor() as c:
            c.execute("SELECT actor_display_name, payload->>'presenceId' FROM mesh.audit_log "
                      "WHERE event_type = 'peer_joined' AND actor_member_id = %s ORDER BY id", (a.id,))
            return c.fetchall()

    assert mbtest.wait_until(lambda: closed_rows() == 2, 10), "both presence rows closed"
    want = [("alice", first["presenceId"]), ("alice", second["presenceId"])]
    assert mbtest.wait_until(lambda: joined() == want, 10), joined()
    assert presence_rows(db, a) == 2
    meshctl(["audit", "verify", m.id], {"DATABASE_URL": pg.url})

    # a warm peer works: it gets a message sent to it
    async def talk():
        pa, pb = Peer(b, a), Peer(b, bob)
        await pa.join()
        await pb.join()
        await pb.send_direct(a.pubkey, "hello from bob")
        got = await pa.push()
        assert pa.decrypt(got) == "hello from bob"
        await pa.close()
        await pb.close()

    run(talk(), 30)
    assert delta(before, lookups(b))["member_cache_hit"] == 2


def test_meshctl_revoke_refuses_a_warm_member_within_a_second(broker, mesh, pg, db):
    b = broker()
    m = mesh("alice")
    a = m.members[0]
    warm(b, a)
    r = meshctl(["member", "revoke", m.id, a.id],
                {"DATABASE_URL": pg.url, "MESHBROKER_RUNTIME_DIR": b.runtime_dir})
    assert r.stdout.strip() == a.id, r.stdout
    t0 = time.monotonic()
    before, rows, joins = lookups(b), presence_rows(db, a), joined_rows(db, a)
    run(refused_revoked(b, a), 30)
    took = time.monotonic() - t0
    assert took < 1.0, f"refused {took:.2f} s after the revocation"
    d = delta(before, lookups(b))
    # meshctl dropped the entry: the hello was looked up, not taken from the cache
    assert d["member_cache_hit"] == 0 and d["not_member"] == 1, d
    assert presence_rows(db, a) == rows and joined_rows(db, a) == joins


def test_sql_revocation_with_a_warm_cache_is_refused_by_the_recheck(broker, mesh, db):
    b = broker()
    m = mesh("alice")
    a = m.members[0]
    warm(b, a)
    m.revoke(a)  # straight in SQL: nothing tells the cache
    t0 = time.monotonic()
    before, rows, joins = lookups(b), presence_rows(db, a), joined_rows(db, a)
    run(refused_revoked(b, a), 30)
    took = time.monotonic() - t0
    assert took < 1.0, f"refused {took:.2f} s after the revocation"
    d = delta(before, lookups(b))
    # the stale entry was used, its re-check failed, and the lookup refused the key
    assert d["member_cache_hit"] == 1 and d["not_member"] == 1 and d["member"] == 0, d
    assert presence_rows(db, a) == rows, "the refused warm hello wrote a presence row"
    assert joined_rows(db, a) == joins, "the refused warm hello wrote a peer_joined row"
    # and the entry is gone: the next hello is looked up at once
    before = lookups(b)
    run(refused_revoked(b, a), 30)
    d = delta(before, lookups(b))
    assert d["member_cache_hit"] == 0 and d["not_member"] == 1, d


def test_a_lowered_max_peers_is_not_taken_from_the_cache(broker, mesh, db):
    """the capacity is counted with the cached max_peers; the re-check sees the mesh's
    new one and the lookup it falls back to refuses the hello for capacity"""
    b = broker()
    m = mesh("alice", "bob")
    a, bob = m.members
    warm(b, a)

    async def go():
        pb = Peer(b, bob)
        await pb.join()
        with db.cursor() as c:
            c.execute("UPDATE mesh.mesh SET max_peers = 1 WHERE id = %s", (m.id,))
        pa = Peer(b, a)
        await pa.connect()
        e = await pa.hello()
        assert e.get("type") == "error" and e.get("code") == "capacity", e
        assert await pa.wait_closed(5) == (1008, "capacity")
        await pb.close()

    before = lookups(b)
    run(go(), 30)
    d = delta(before, lookups(b))
    assert d["member_cache_hit"] == 1 and d["member"] == 2, d


def test_a_hook_status_waiting_for_a_warm_member_is_applied(broker, mesh, db):
    """a hook that fired before the connection (mesh.pending_status) is the lookup's to apply: the
    re-check sees it and the hello falls back to the lookup, which applies it as without the cache"""
    b = broker(HOOK_ALLOW_LOOPBACK_UNAUTHENTICATED="1")
    m = mesh("alice")
    a = m.members[0]
    warm(b, a)
    cwd, pid = f"/tmp/mbtest-mc-{mbtest.new_id(8)}", 727272
    body = json.dumps({"cwd": cwd, "status": "working", "pid": pid}).encode()
    st, _, resp = b.request("POST", "/hook/set-status", body=body, headers={"Content-Type": "application/json"})
    assert st == 200 and json.loads(resp) == {"ok": True, "pending": True}, resp

    async def go():
        p = Peer(b, a)
        await p.connect()
        ack = await p.hello(cwd=cwd, pid=pid)
        assert ack["type"] == "hello_ack", ack

        def status():
            with db.cursor() as c:
                c.execute("SELECT status, status_source FROM mesh.presence WHERE id = %s", (ack["presenceId"],))
                row = c.fetchone()
            return tuple(row) if row else None

        assert mbtest.wait_until(lambda: status() == ("working", "hook"), 10), status()
        with db.cursor() as c:
            c.execute("SELECT count(*) FROM mesh.pending_status WHERE pid = %s AND cwd = %s", (pid, cwd))
            assert c.fetchone()[0] == 0
        await p.close()

    before = lookups(b)
    run(go(), 30)
    d = delta(before, lookups(b))
    assert d["member_cache_hit"] == 1 and d["member"] == 1, d
