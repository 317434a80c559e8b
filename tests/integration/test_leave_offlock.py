"""The leave off the chain lock (issue 23, migration 0020, docs/design.md
"The leave off the chain lock"):

- a leave never waits for its mesh's audit chain lock: with the lock held by
  the test, a peer's close commits at once (its presence row closed while the
  lock is still held), its peer_left waits in mesh.audit_pending, and no
  statement waits in Lock:advisory;
- once the lock is free the pending row is chained with no client doing
  anything: by a live worker's sweep (worker/reap.c, REAP_INTERVAL_SECONDS=1
  here, so a live worker looks every 3-6 s), and `meshctl audit verify` is
  clean with exactly one peer_left for the presence;
- the reaper's close of a killed worker's row (`meshbroker-worker --reap`)
  does not wait for the lock either, and its peer_left is chained the same
  way;
- mesh.audit_chain_pending only tries each mesh's lock, and looks at no more
  meshes than it is told.

Waits are for events with generous deadlines; the bound asserted is the
chaining by the sweep (20 s against its 3-6 s look)."""

import asyncio
import os
import subprocess
import time

import mbtest
from mbtest import Mesh, Peer, run, wait_until

SWEEP = dict(REAP_INTERVAL_SECONDS=1)


def _count(conn, sql, *args):
    with conn.cursor() as c:
        c.execute(sql, args)
        return c.fetchone()[0]


def _closed(conn, presence):
    return _count(conn, "SELECT count(*) FROM mesh.presence WHERE id = %s AND disconnected_at IS NOT NULL",
                  presence) == 1


def _pending_left(conn, presence):
    return _count(conn, "SELECT count(*) FROM mesh.audit_pending WHERE event_type = 'peer_left' "
                        "AND payload::jsonb->>'presenceId' = %s", presence)


def _chained_left(conn, mesh_id, presence):
    return _count(conn, "SELECT count(*) FROM mesh.audit_log WHERE mesh_id = %s AND event_type = 'peer_left' "
                        "AND payload->>'presenceId' = %s", mesh_id, presence)


def _lock_waiters(conn):
    with conn.cursor() as c:
        c.execute("SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                  "AND wait_event_type = 'Lock' AND wait_event = 'advisory'")
        return [r[0] for r in c.fetchall()]


class ChainLock:
    """the mesh's chain lock held the way the brief's psql holds it: an open
    transaction of its own connection with pg_advisory_xact_lock"""

    def __init__(self, pg, mesh_id):
        self.conn = pg.connect()
        self.conn.autocommit = False
        with self.conn.cursor() as c:
            c.execute("SELECT pg_advisory_xact_lock(hashtextextended('mesh.audit_log:' || %s, 0))", (mesh_id,))
        self.held = True

    def release(self):
        if self.held:
            self.conn.rollback()
            self.held = False
        self.conn.close()


def _verify(url, mesh_id):
    r = subprocess.run([mbtest.require_bin("meshctl"), "audit", "verify", mesh_id],
                       env=dict(os.environ, DATABASE_URL=url), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"meshctl audit verify: {r.returncode} {r.stdout} {r.stderr}"
    assert "chain intact" in r.stdout, r.stdout
    return r.stdout


async def _in_thread(fn):
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def test_a_leave_with_the_chain_lock_held_closes_its_row_at_once_and_the_sweep_chains_its_peer_left(
        broker, mesh, db, pg):
    b = broker(**SWEEP)
    m = mesh("A", "B")
    am, bm = m.members
    lock = None

    async def go():
        nonlocal lock
        # a live worker that stays: its sweeps are the only chain steps left
        stay = Peer(b, bm)
        await stay.join()
        p = Peer(b, am)
        presence = (await p.join())["presenceId"]
        pid = p.worker_pid()
        assert await _in_thread(lambda: wait_until(
            lambda: _count(db, "SELECT count(*) FROM mesh.audit_log WHERE mesh_id = %s "
                               "AND event_type = 'peer_joined'", m.id) == 2, 20)), "the joins were never chained"
        lock = ChainLock(pg, m.id)
        await p.close()
        # the leave is over with its worker (reap_leave waits for its statement)
        assert await _in_thread(lambda: wait_until(lambda: pid not in b.workers(), 20)), \
            "the leaving worker is still there: its leave waits"
        assert _closed(db, presence), "the presence row is not closed while the chain lock is held"
        assert _pending_left(db, presence) == 1, "the peer_left row is not pending"
        assert _chained_left(db, m.id, presence) == 0
        assert not _lock_waiters(db), "a statement waits for the chain lock"
        lock.release()
        # nobody does anything: a sweep of the staying worker chains it
        t0 = time.monotonic()
        assert await _in_thread(lambda: wait_until(lambda: _pending_left(db, presence) == 0, 20)), \
            "the pending peer_left was not chained 20 s after the lock was freed"
        took = time.monotonic() - t0
        assert _chained_left(db, m.id, presence) == 1
        await stay.close()
        return presence, took

    try:
        presence, took = run(go(), 90)
    finally:
        if lock:
            lock.release()
    print(f"pending peer_left chained {took:.2f} s after the lock was freed")
    _verify(pg.url, m.id)
    assert _chained_left(db, m.id, presence) == 1


def test_many_leaves_with_the_chain_lock_held_none_waits_and_each_peer_left_is_chained_once(broker, mesh, db, pg):
    b = broker(**SWEEP)
    n = 6
    m = mesh("Stay", *[f"L{i}" for i in range(n)])
    lock = None

    async def go():
        nonlocal lock
        stay = Peer(b, m.members[0])
        await stay.join()
        peers = [Peer(b, x) for x in m.members[1:]]
        presences = [a["presenceId"] for a in await asyncio.gather(*(p.join() for p in peers))]
        lock = ChainLock(pg, m.id)
        await asyncio.gather(*(p.close() for p in peers))
        assert await _in_thread(lambda: wait_until(lambda: all(_closed(db, x) for x in presences), 20)), \
            "rows not closed while the chain lock is held"
        waits = []
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            waits += _lock_waiters(db)
            await asyncio.sleep(0.05)
        assert not waits, f"statements waited for the chain lock: {sorted(set(waits))}"
        assert all(_pending_left(db, x) == 1 for x in presences)
        lock.release()
        assert await _in_thread(lambda: wait_until(
            lambda: all(_pending_left(db, x) == 0 for x in presences), 20)), "pending peer_left rows not chained"
        await stay.close()
        return presences

    try:
        presences = run(go(), 90)
    finally:
        if lock:
            lock.release()
    _verify(pg.url, m.id)
    for x in presences:
        assert _chained_left(db, m.id, x) == 1, x


def test_the_reapers_close_of_a_killed_worker_does_not_wait_for_the_chain_lock(broker, mesh, db, pg):
    b = broker(**SWEEP)
    m = mesh("A", "B")
    am, bm = m.members
    lock = None

    async def go():
        nonlocal lock
        stay = Peer(b, bm)
        await stay.join()
        p = Peer(b, am)
        presence = (await p.join())["presenceId"]
        pid = p.worker_pid()
        lock = ChainLock(pg, m.id)
        # killed: no leave of its own; the acceptor's `--reap` closes its row
        b.kill_worker(pid)
        assert await _in_thread(lambda: wait_until(lambda: _closed(db, presence), 20)), \
            "the killed worker's row was not closed while the chain lock is held"
        assert _pending_left(db, presence) == 1
        await asyncio.sleep(0.3)
        assert not _lock_waiters(db), "the reaper waits for the chain lock"
        lock.release()
        assert await _in_thread(lambda: wait_until(lambda: _pending_left(db, presence) == 0, 20)), \
            "the reaper's pending peer_left was not chained"
        await stay.close()
        try:
            await p.close()
        except Exception:
            pass
        return presence

    try:
        presence = run(go(), 90)
    finally:
        if lock:
            lock.release()
    _verify(pg.url, m.id)
    assert _chained_left(db, m.id, presence) == 1


def test_audit_chain_pending_tries_each_meshs_lock_and_looks_at_no_more_meshes_than_told(own_pg):
    conn = own_pg.connect()
    meshes = [Mesh(conn) for _ in range(3)]
    ids = sorted(x.id for x in meshes)
    with conn.cursor() as c:
        for mid in ids:
            for i in range(2):
                c.execute("INSERT INTO mesh.audit_pending (mesh_id, event_type, actor_member_id, actor_display_name, "
                          "payload) VALUES (%s, 'peer_left', NULL, 'x', %s)", (mid, '{"presenceId":"p%d"}' % i))
    pending = lambda mid: _count(conn, "SELECT count(*) FROM mesh.audit_pending WHERE mesh_id = %s", mid)
    chained = lambda mid: _count(conn, "SELECT count(*) FROM mesh.audit_log WHERE mesh_id = %s", mid)
    lock = ChainLock(own_pg, ids[1])
    try:
        # one mesh looked at: the first in index order
        assert _count(conn, "SELECT mesh.audit_chain_pending(1)") == 2
        assert [pending(x) for x in ids] == [0, 2, 2]
        # all: the locked mesh is skipped at once (a wait would hang here:
        # statement_timeout makes it an error instead)
        with conn.cursor() as c:
            c.execute("SET statement_timeout = '5s'")
        t0 = time.monotonic()
        assert _count(conn, "SELECT mesh.audit_chain_pending(100)") == 2
        assert time.monotonic() - t0 < 2
        assert [pending(x) for x in ids] == [0, 2, 0]
    finally:
        lock.release()
    assert _count(conn, "SELECT mesh.audit_chain_pending(100)") == 2
    assert [pending(x) for x in ids] == [0, 0, 0]
    assert [chained(x) for x in ids] == [2, 2, 2]
    # nothing pending: nothing to do
    assert _count(conn, "SELECT mesh.audit_chain_pending(100)") == 0
    for mid in ids:
        _verify(own_pg.url, mid)
    conn.close()
