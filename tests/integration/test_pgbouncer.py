"""PgBouncer in transaction-pooling mode between the workers and PostgreSQL
(docs/design.md): unnamed statements only through it (db.c's probe sees the
pooler), no session state, no LISTEN — so hello, send, push, status and the
audit chain all work through it.  The `bouncer` fixture (conftest.py) is the
one `make run` starts (scripts/pg.sh bouncer)."""

from mbtest import Peer, is_push, run, wait_until


def test_broker_works_through_pgbouncer_transaction_pooling(broker, mesh, db, bouncer):
    b = broker(database_url=bouncer)
    st, _, body = b.get("/health")
    assert st == 200, body
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        await bb.set_status("working")
        await bb.barrier()
        _, held = await a.send_direct(bm.pubkey, "through the pooler", "next")
        assert held["queued"], held
        await bb.quiet(is_push, 0.5)
        await bb.set_status("idle")
        p = await bb.push(timeout=5)
        assert p["messageId"] == held["messageId"] and bb.decrypt(p) == "through the pooler"
        await a.close()
        await bb.close()

    run(go(), 30)
    with db.cursor() as c:
        c.execute("SELECT event_type FROM mesh.audit_log WHERE mesh_id = %s ORDER BY id", (m.id,))
        events = [r[0] for r in c.fetchall()]
    assert events.count("peer_joined") == 2 and "message_sent" in events, events
    assert wait_until(lambda: _count_left(db, m.id) == 2, 20)


def _count_left(db, mesh_id):
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.audit_log WHERE mesh_id = %s AND event_type = 'peer_left'",
                  (mesh_id,))
        return c.fetchone()[0]


def test_large_messages_back_to_back_through_pgbouncer_all_arrive(broker, mesh, bouncer):
    # A 16 KiB send spans several packets; with a second query of the same
    # worker in flight (the previous send's audit row), PgBouncer 1.18 in
    # transaction mode hands the server session on at the first
    # ReadyForQuery and the big query reaches two sessions.  The workers send
    # one query at a time (DB_PIPELINE_DEPTH=1): every message arrives.  With
    # DB_PIPELINE_DEPTH=32 this failed within 60 sends ("database unavailable").
    b = broker(database_url=bouncer, SEND_RATE_LIMIT_PER_MIN=100000, SEND_RATE_BURST=100000)
    m = mesh("A", "B")
    am, bm = m.members
    n = 300
    text = "x" * 16384

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        for i in range(n):
            _, ack = await a.send_direct(bm.pubkey, text, id=f"m{i}", timeout=30)
            assert ack.get("queued"), f"send {i}: {ack}"
        got = set()
        while len(got) < n:
            p = await bb.push(timeout=30)
            got.add(p["messageId"])
        await a.close()
        await bb.close()

    run(go(), 240)


def test_pgbouncer_hands_out_a_backend_key_of_its_own(pg, bouncer):
    """what db/db.c's probe relies on to keep prepared statements off pooled
    connections: through PgBouncer the pid of the startup's BackendKeyData
    (PQbackendPID) is not the server backend's; directly it is"""
    import psycopg2

    def pids(url):
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as c:
                c.execute("SELECT pg_backend_pid()")
                return conn.info.backend_pid, c.fetchone()[0]
        finally:
            conn.close()

    told, server = pids(pg.url)
    assert told == server, "a direct connection's BackendKeyData names its backend"
    told, server = pids(bouncer)
    assert told != server, "PgBouncer's BackendKeyData is its own"
