"""Presence (issue 2 acceptance 6, issue 3; docs/protocol.md §4.1): a live peer
holds one shared-memory slot, freed however its worker exits; connect and
disconnect are written to mesh.presence as history."""

import os
import re
import stat

import pytest

import mbtest
from mbtest import Peer, is_push, run

MODES = ["accept", "socket-activate"]


@pytest.mark.parametrize("mode", MODES)
def test_sigkilled_workers_slot_is_reclaimed_and_active_returns(broker, mesh, mode):
    b = broker(mode)
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        base = b.wait_metric("broker_connections_active", 1)
        assert base == 1, f"broker_connections_active {base} with one peer"
        bb = Peer(b, bm)
        await bb.join()
        assert b.wait_metric("broker_connections_active", 2) == 2
        pid = bb.worker_pid()
        b.kill_worker(pid)
        assert mbtest.wait_until(lambda: pid not in b.workers(), 20)
        after = b.wait_metric("broker_connections_active", base, timeout=20)
        assert after == base, f"broker_connections_active {after} after SIGKILL, want {base}"
        # the member can come back at once
        b2 = Peer(b, bm)
        await b2.join()
        assert b.wait_metric("broker_connections_active", 2) == 2
        await b2.close()
        await a.close()
        assert b.wait_metric("broker_connections_active", 0) == 0

    run(go(), 60)


def test_many_sigkilled_workers_never_leak_slots(broker, mesh):
    b = broker(PRESENCE_SLOTS=8)
    m = mesh(*[f"P{i}" for i in range(6)])

    async def go():
        for rnd in range(3):
            peers = [Peer(b, x) for x in m.members]
            for p in peers:
                await p.join()
            assert b.wait_metric("broker_connections_active", 6) == 6
            for p in peers:
                b.kill_worker(p.worker_pid())
            assert b.wait_metric("broker_connections_active", 0, timeout=20) == 0, f"round {rnd}"

    run(go(), 90)


def test_clean_disconnect_releases_the_slot(broker, mesh):
    b = broker()
    m = mesh("A")

    async def go():
        p = Peer(b, m.members[0])
        await p.join()
        assert b.wait_metric("broker_connections_active", 1) == 1
        await p.close()
        assert b.wait_metric("broker_connections_active", 0) == 0

    run(go(), 30)


def test_presence_history_rows_record_connect_and_disconnect(broker, mesh, db):
    b = broker()
    m = mesh("A")
    am = m.members[0]

    def rows():
        with db.cursor() as c:
            c.execute("SELECT id, session_id, cwd, connected_at, disconnected_at FROM mesh.presence "
                      "WHERE member_id = %s ORDER BY connected_at", (am.id,))
            return c.fetchall()

    async def go():
        p = Peer(b, am)
        ack = await p.join()
        r = mbtest.wait_until(rows, 20)
        assert len(r) == 1, r
        assert r[0][0] == ack["presenceId"], "presenceId is the mesh.presence row id"
        assert r[0][1] == p.session_id and r[0][2] == "/tmp/meshbroker-test"
        assert r[0][4] is None
        await p.close()
        return ack["presenceId"]

    run(go(), 30)
    closed = mbtest.wait_until(lambda: all(x[4] is not None for x in rows()), 20)
    assert closed, f"disconnected_at not set after a clean close: {rows()}"



def test_live_peer_publishes_its_unix_socket_in_the_runtime_dir(broker, mesh):
    """docs/design.md: each live worker listens on <runtime>/w/<slot>.<gen>.sock (dir 0750)"""
    b = broker()
    m = mesh("A", "B")
    wdir = os.path.join(b.runtime_dir, "w")

    def socks():
        try:
            names = os.listdir(wdir)
        except FileNotFoundError:
            return []
        return [n for n in names if stat.S_ISSOCK(os.lstat(os.path.join(wdir, n)).st_mode)]

    async def go():
        a, bb = Peer(b, m.members[0]), Peer(b, m.members[1])
        await a.join()
        await bb.join()
        s = mbtest.wait_until(lambda: len(socks()) == 2 and socks(), 20)
        assert s, f"sockets in {wdir}: {socks()}"
        assert all(re.match(r"^\d+\.\d+\.sock$", n) for n in s), s
        assert stat.S_IMODE(os.stat(wdir).st_mode) == 0o750
        await a.close()
        assert mbtest.wait_until(lambda: len(socks()) == 1, 20), f"left: {socks()}"
        b.kill_worker(bb.worker_pid())
        # reclaimed lazily: reading the table (here /metrics) frees the dead slot
        assert b.wait_metric("broker_connections_active", 0, timeout=20) == 0
        assert mbtest.wait_until(lambda: not socks(), 20), f"dead worker's socket left: {socks()}"

    run(go(), 30)


def test_each_push_to_a_live_peer_arrives_on_its_open_connection_in_turn(broker, mesh):
    """the recipient is woken per send, one push per send, in order, on the
    connection it already has (how fast: bench/, `make bench`, not here)"""
    b = broker()
    m = mesh("A", "B")

    async def go():
        a, bb = Peer(b, m.members[0]), Peer(b, m.members[1])
        await a.join()
        await bb.join()
        for i in range(8):
            _, ack = await a.send_direct(m.members[1].pubkey, f"t{i}", "now")
            p = await bb.push(timeout=15)
            assert p["messageId"] == ack["messageId"] and bb.decrypt(p) == f"t{i}", (i, p)
        await bb.quiet(is_push, 0.3)
        await a.close()
        await bb.close()

    run(go(), 150)
