"""The chain step off the hello's path (issue 23, docs/design.md "The chain
step off the hello's path"):

- a hello never waits for the mesh's audit chain lock: when mesh.hello_join
  finds it busy, its peer_joined row waits in mesh.audit_pending and the
  worker owes a chain step that it only tries (send.c's retry, every
  CHAIN_RETRY_MS); once the lock is free those rows are chained within a
  bounded time with nobody sending, and the chain verifies;
- `meshctl audit verify` chains a mesh's pending rows before it reads, so
  its verdict covers every row an event committed;
- mesh.hello_join commits without waiting for its WAL flush (migration
  0018): a PostgreSQL crash right after hellos (pg_ctl stop -m immediate)
  may lose their rows, and the broker goes on working: those peers get the
  messages sent after the restart, and the chain verifies.

Waits are for events with generous deadlines; the one bound asserted is the
chaining of pending rows (10 s, against the retry's 20 ms)."""

import asyncio
import hashlib
import json
import os
import subprocess
import time

import mbtest
from mbtest import Mesh, Peer, run, wait_until

FAST = dict(SEND_RATE_LIMIT_PER_MIN=1_000_000, SEND_RATE_BURST=100_000)


def _canonical(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _chain(conn, mesh_id):
    """the mesh's chain as stored, checked row by row (docs/protocol.md §8);
    [(event, payload)]"""
    with conn.cursor() as c:
        c.execute("SELECT mesh_id, event_type, actor_member_id, payload, prev_hash, hash, "
                  "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
                  "FROM mesh.audit_log WHERE mesh_id = %s ORDER BY id", (mesh_id,))
        rows = c.fetchall()
    prev, out = "genesis", []
    for mesh, event, actor, payload, prev_hash, h, ts in rows:
        assert prev_hash == prev, f"chain broken at {event}: {prev_hash} != {prev}"
        text = "|".join([prev, mesh, event, actor if actor is not None else "null", _canonical(payload), ts])
        assert h == hashlib.sha256(text.encode()).hexdigest(), f"bad hash on {event}"
        prev = h
        out.append((event, payload))
    return out


def _meshctl_verify(url, mesh_id):
    r = subprocess.run([mbtest.require_bin("meshctl"), "audit", "verify", mesh_id],
                       env=dict(os.environ, DATABASE_URL=url), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"meshctl audit verify: {r.returncode} {r.stdout} {r.stderr}"
    return r.stdout


def _count(conn, sql, *args):
    with conn.cursor() as c:
        c.execute(sql, args)
        return c.fetchone()[0]


def _pending(conn, mesh_id):
    return _count(conn, "SELECT count(*) FROM mesh.audit_pending WHERE mesh_id = %s", mesh_id)


def _chain_lock(conn, mesh_id, take):
    """take or free the mesh's chain lock (the key mesh.audit_record and the
    chain steps use) as a session lock of the test's own connection"""
    with conn.cursor() as c:
        c.execute(f"SELECT pg_advisory_{'lock' if take else 'unlock'}(hashtextextended('mesh.audit_log:' || %s, 0))",
                  (mesh_id,))


def _lock_waiters(conn):
    """backends of this database waiting for an advisory lock, with their
    statements"""
    with conn.cursor() as c:
        c.execute("SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                  "AND wait_event_type = 'Lock' AND wait_event = 'advisory'")
        return [r[0] for r in c.fetchall()]


def test_hellos_never_wait_for_a_busy_chain_lock_and_their_rows_are_chained_soon_after_it_frees(
        broker, mesh, db, pg):
    b = broker()
    n = 8
    m = mesh(*[f"H{i}" for i in range(n)])
    held = False

    async def go():
        nonlocal held
        # every statement of the mesh that writes an audit row from here on
        # finds the chain lock busy
        _chain_lock(db, m.id, True)
        held = True
        peers = [Peer(b, x) for x in m.members]
        acks = await asyncio.gather(*(p.join() for p in peers))
        presences = {a["presenceId"] for a in acks}

        def joined():
            return _count(db, "SELECT count(*) FROM mesh.presence WHERE mesh_id = %s "
                              "AND disconnected_at IS NULL", m.id) == n

        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, lambda: wait_until(joined, 20)), "hello rows never written"
        # every peer_joined waits in mesh.audit_pending, none chained
        assert _count(db, "SELECT count(*) FROM mesh.audit_pending WHERE mesh_id = %s "
                          "AND event_type = 'peer_joined'", m.id) == n
        assert _count(db, "SELECT count(*) FROM mesh.audit_log WHERE mesh_id = %s", m.id) == 0
        # and no statement waits for the lock: each worker only tries it
        # (a waiting chain step would sit in Lock:advisory until it frees)
        waits = []
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            waits += _lock_waiters(db)
            await asyncio.sleep(0.05)
        assert not waits, f"statements waited for the chain lock: {sorted(set(waits))}"
        # the peers are served meanwhile
        for p in peers[:2]:
            await p.barrier()
        _chain_lock(db, m.id, False)
        held = False
        # nobody sends: the workers' own retries chain the rows
        t0 = time.monotonic()
        assert await loop.run_in_executor(None, lambda: wait_until(lambda: _pending(db, m.id) == 0, 10)), \
            f"{_pending(db, m.id)} rows still pending 10 s after the chain lock was freed"
        took = time.monotonic() - t0
        chain = _chain(db, m.id)  # read as stored: no flush of the reader's
        assert sorted(p["presenceId"] for e, p in chain if e == "peer_joined") == sorted(presences), chain
        assert len(chain) == n, chain
        for p in peers:
            await p.close()
        return took

    try:
        took = run(go(), 90)
    finally:
        if held:
            _chain_lock(db, m.id, False)
    print(f"pending rows chained {took:.3f} s after the lock was freed")
    out = _meshctl_verify(pg.url, m.id)
    assert "chain intact" in out, out


def test_meshctl_audit_verify_chains_the_rows_left_pending_before_it_reads(mesh, db, pg):
    # a row some event left pending whose writer never took its chain step
    # (a worker killed right after its statement): no chain step of the mesh
    # has run since
    m = mesh("A")
    a = m.members[0]
    payload = _canonical({"presenceId": "pendingXYZ"})
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.audit_pending (mesh_id, event_type, actor_member_id, actor_display_name, "
                  "payload) VALUES (%s, 'peer_joined', %s, 'A', %s)", (m.id, a.id, payload))
    assert _pending(db, m.id) == 1
    out = _meshctl_verify(pg.url, m.id)
    assert "1 rows, chain intact" in out, out
    assert _pending(db, m.id) == 0
    assert _chain(db, m.id) == [("peer_joined", {"presenceId": "pendingXYZ"})]
    # nothing pending: a second look reads the same chain
    assert "1 rows, chain intact" in _meshctl_verify(pg.url, m.id)


def test_a_postgres_crash_right_after_hellos_leaves_the_broker_working(broker, own_pg):
    conn = own_pg.connect()
    with conn.cursor() as c:
        # the test clusters run with synchronous_commit off for speed; the
        # broker's database gets the default (on) that production has, so
        # only what commits asynchronously on purpose can be lost; and the
        # WAL writer waits long, so that an immediate stop right after the
        # hellos finds their WAL still in PostgreSQL's buffers
        c.execute("ALTER DATABASE meshbroker SET synchronous_commit = on")
        c.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
        c.execute("SELECT pg_reload_conf()")
    m = Mesh(conn)
    n = 6
    members = [m.add(f"R{i}") for i in range(n)]
    sm = m.add("S")
    with conn.cursor() as c:
        c.execute("CHECKPOINT")  # the mesh, its members and the settings survive the crash
    conn.close()
    b = broker(database_url=own_pg.url, **FAST)
    b.allow_log(r"database unreachable", r"database connection lost", r"database timeout", r"audit",
                r"presence", r"drain failed", r"hello", r"claim", r"terminat", r"server closed")
    stats = {}

    async def go():
        peers = [Peer(b, x) for x in members]
        acks = await asyncio.gather(*(p.join() for p in peers))
        presences = [a["presenceId"] for a in acks]
        # the rows' statements are sent right after hello_ack (one host):
        # give them a moment to reach PostgreSQL, not the WAL writer's 10 s
        await asyncio.sleep(0.3)
        own_pg.stop("immediate")
        own_pg.start()
        c2 = own_pg.connect()
        stats["rows"] = _count(c2, "SELECT count(*) FROM mesh.presence WHERE id = ANY(%s)", presences)
        stats["joined"] = _count(c2, "SELECT (SELECT count(*) FROM mesh.audit_log WHERE event_type = 'peer_joined' "
                                     "AND payload->>'presenceId' = ANY(%s)) + (SELECT count(*) FROM mesh.audit_pending "
                                     "WHERE event_type = 'peer_joined' AND payload::jsonb->>'presenceId' = ANY(%s))",
                                 presences, presences)
        # a sender that says hello after the restart (its worker's first
        # statement may meet the database coming back: try until it is in)
        s = None
        deadline = time.monotonic() + 60
        while s is None:
            p = Peer(b, sm)
            try:
                await p.connect()
                ack = await p.hello(timeout=10)
                if ack.get("type") == "hello_ack":
                    s = p
                    break
            except Exception:
                pass
            await p.close()
            assert time.monotonic() < deadline, "no hello accepted within 60 s of the restart"
            await asyncio.sleep(0.3)
        # every peer connected before the crash gets what is sent after it
        for i, (x, p) in enumerate(zip(members, peers)):
            for _ in range(60):
                _, ack = await s.send_direct(x.pubkey, f"after {i}", timeout=20)
                if ack["queued"]:
                    break
                await asyncio.sleep(0.5)
            assert ack["queued"], f"send to {x.name} after the restart refused: {ack}"
            push = await p.push(timeout=20)
            assert p.decrypt(push) == f"after {i}"
        for p in peers + [s]:
            await p.close()
        c2.close()

    run(go(), 150)
    print(f"after the crash: {stats['rows']} of {n} presence rows, {stats['joined']} of {n} peer_joined rows "
          "(chained or pending)")
    # one transaction: a presence row and its peer_joined survive or go together
    assert stats["rows"] == stats["joined"], stats
    conn = own_pg.connect()
    # the chain is whole, and each peer_left follows its peer_joined
    assert wait_until(lambda: _pending(conn, m.id) == 0, 20)
    chain = _chain(conn, m.id)
    seen = set()
    for event, payload in chain:
        if event == "peer_joined":
            seen.add(payload["presenceId"])
        elif event == "peer_left":
            assert payload["presenceId"] in seen, f"peer_left before its peer_joined: {chain}"
    conn.close()
    assert "chain intact" in _meshctl_verify(own_pg.url, m.id)
