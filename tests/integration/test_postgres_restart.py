"""PostgreSQL going away and coming back under a running broker (issue 2,
acceptance 2; docs/protocol.md §3.4): /health goes 503 and back to 200 without a
broker restart, and a send while the database is down is refused, not acked."""

import asyncio
import time
import json

import pytest

import mbtest
from mbtest import Mesh, Peer, run

MODES = ["accept", "socket-activate"]


def health(b):
    st, hdrs, body = b.get("/health", timeout=15)
    return st, hdrs, json.loads(body) if body else None


@pytest.mark.parametrize("mode", MODES)
def test_health_is_503_while_postgres_is_down_and_200_after_restart(broker, own_pg, mode):
    b = broker(mode, database_url=own_pg.url)
    st, _, j = health(b)
    assert st == 200 and j["db"] == "up", j
    acceptor = b.proc.pid

    own_pg.stop()
    st, hdrs, j = health(b)
    assert st == 503, f"/health with PostgreSQL down: {st} {j}"
    assert hdrs.get("content-type", "").startswith("application/json")
    assert j["status"] == "degraded" and j["db"] == "down", j
    for k in ("version", "gitSha", "uptime"):
        assert k in j, f"503 body lacks {k}: {j}"
    assert b.metric("broker_db_healthy") == 0, "broker_db_healthy must be 0 while PostgreSQL is down"

    own_pg.start()
    ok = mbtest.wait_until(lambda: health(b)[0] == 200, 10, interval=0.2)
    assert ok, f"/health still not 200 10 s after PostgreSQL restarted: {health(b)}"
    assert health(b)[2]["db"] == "up"
    assert b.metric("broker_db_healthy") == 1
    assert b.proc.poll() is None and b.proc.pid == acceptor, "the broker itself was restarted"


def test_send_while_postgres_is_down_is_refused_and_works_after_restart(broker, own_pg):
    b = broker(database_url=own_pg.url)
    conn = own_pg.connect()
    m = Mesh(conn)
    a_m, b_m = m.add("A"), m.add("B")
    conn.close()

    async def go():
        a, bb = Peer(b, a_m), Peer(b, b_m)
        await a.join()
        await bb.join()
        own_pg.stop()
        try:
            _, ack = await a.send_direct(b_m.pubkey, "while down", "now", timeout=20)
        finally:
            own_pg.start()
        assert ack["queued"] is False, f"a send with PostgreSQL down was acked: {ack}"
        assert ack.get("messageId", "") == "" and ack.get("error"), ack
        # the same workers recover their database connection
        deadline = time.monotonic() + 60
        while True:
            _, ack2 = await a.send_direct(b_m.pubkey, "after restart", "now", timeout=20)
            if ack2["queued"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert ack2["queued"] is True, f"sends still refused after PostgreSQL came back: {ack2}"
        push = await bb.push(timeout=20)
        assert bb.decrypt(push) == "after restart", "the refused message must not be delivered"
        await bb.quiet(mbtest.is_push, 1)
        await a.close()
        await bb.close()

    run(go(), 150)
