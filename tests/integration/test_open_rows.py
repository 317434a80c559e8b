"""No open rows (issue 21, acceptance 5): a worker that dies without leaving
(SIGKILL) or leaves while PostgreSQL is away cannot close its mesh.presence
row or write its peer_left; whoever comes next does (worker/reap.c): the
acceptor's `meshbroker-worker --reap` after it reaps a killed worker, a live
worker's sweep after its hello, and the acceptor's reaper at start-up for rows
that outlived a previous run.  Each row is closed once, with one peer_left."""

import asyncio
import os
import signal
import socket
import subprocess

import mbtest
from mbtest import Mesh, Peer, run, wait_until

KILLED = 50


def _rows(conn, mesh_id):
    with conn.cursor() as c:
        c.execute("SELECT id, disconnected_at IS NOT NULL FROM mesh.presence WHERE mesh_id = %s", (mesh_id,))
        rows = dict(c.fetchall())
        c.execute("SELECT payload->>'presenceId' FROM mesh.audit_log WHERE mesh_id = %s "
                  "AND event_type = 'peer_left'", (mesh_id,))
        left = [r[0] for r in c.fetchall()]
    return rows, left


def _all_closed_once(conn, mesh_id, n):
    rows, left = _rows(conn, mesh_id)
    return len(rows) == n and all(rows.values()) and sorted(left) == sorted(rows)


def _verify_chain(url, mesh_id):
    r = subprocess.run([mbtest.require_bin("meshctl"), "audit", "verify", mesh_id],
                       env=dict(os.environ, DATABASE_URL=url), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"meshctl audit verify: {r.returncode} {r.stdout} {r.stderr}"


def test_fifty_sigkilled_workers_leave_no_open_presence_row(broker, mesh, db, pg):
    b = broker()
    m = mesh(*[f"K{i}" for i in range(KILLED)])

    async def go():
        peers = [Peer(b, mm) for mm in m.members]
        for p in peers:
            await p.join()
        pids = [p.worker_pid() for p in peers]
        for pid in pids:
            b.kill_worker(pid, signal.SIGKILL)
        for p in peers:
            try:
                await p.ws.close()
            except Exception:
                pass

    run(go(), 120)
    ok = wait_until(lambda: _all_closed_once(db, m.id, KILLED), 20, interval=0.2)
    rows, left = _rows(db, m.id)
    assert ok, (f"{sum(1 for v in rows.values() if not v)} of {len(rows)} presence rows still open, "
                f"{len(left)} peer_left rows ({len(set(left))} distinct)")
    _verify_chain(pg.url, m.id)


def test_a_leave_while_postgres_is_down_is_closed_by_the_next_hello(broker, own_pg):
    b = broker(database_url=own_pg.url)
    b.allow_log(r"database", r"drain failed", r"audit", r"presence")
    conn = own_pg.connect()
    m = Mesh(conn)
    am, bm = m.add("A"), m.add("B")

    async def go():
        a = Peer(b, am)
        await a.join()
        pid = a.worker_pid()
        own_pg.stop()
        try:
            await a.ws.close()
            # its leave waits for the database, gives up, and the worker exits
            assert wait_until(lambda: pid not in b.workers(), 20), "the leaving worker did not exit"
        finally:
            own_pg.start()
        c2 = own_pg.connect()
        rows, _ = _rows(c2, m.id)
        c2.close()
        assert rows and not any(rows.values()), f"the row was closed with PostgreSQL down? {rows}"
        bb = Peer(b, bm)
        await bb.join()  # its worker's sweep (at most one per 10 s per runtime dir) closes A's row
        c3 = own_pg.connect()
        try:
            ok = await asyncio.get_running_loop().run_in_executor(None, lambda: wait_until(
                lambda: _rows(c3, m.id)[0].get(next(iter(rows))) is True, 15, interval=0.2))
            r, left = _rows(c3, m.id)
        finally:
            c3.close()
        assert ok, f"A's presence row still open after B's hello: {r}"
        assert sorted(left) == sorted(rows), f"peer_left rows {left} for {list(rows)}"
        await bb.close()

    run(go(), 90)
    conn.close()
    _verify_chain(own_pg.url, m.id)


def test_rows_that_outlived_their_broker_are_closed_at_start_up(broker, mesh, db):
    m = mesh("S")
    sm = m.members[0]
    # a row whose worker is long gone (a pid above pid_max: no process has
    # it), as a crashed broker leaves it behind
    gone_pid = int(open("/proc/sys/kernel/pid_max").read()) + 1
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.presence (id, mesh_id, member_id, session_id, pid, cwd, broker_host, "
                  "worker_pid, connected_at) VALUES (%s, %s, %s, 's', 1, '/', %s, %s, now() - interval '1 hour')",
                  ("stale" + mbtest.new_id(20), m.id, sm.id, socket.gethostname(), gone_pid))
    broker()  # the acceptor's reaper at start-up
    ok = wait_until(lambda: _all_closed_once(db, m.id, 1), 15, interval=0.2)
    assert ok, f"the stale row is not closed with one peer_left: {_rows(db, m.id)}"
