"""meshbroker-accept (issue 2; docs/design.md "Processes"): connection limits,
SIGTERM passed on to the workers, start-up refusal of bad environment, and
no broker state in the acceptor (live workers outlive it)."""

import asyncio
import json
import os
import signal
import socket
import subprocess

import pytest

import mbtest
from mbtest import Peer, run


@pytest.mark.parametrize("var,value", [("BROKER_PORT", "abc"), ("MAX_MESSAGE_BYTES", "0"),
                                       ("HELLO_TIMEOUT_SECONDS", "-5"), ("DATABASE_URL", "mysql://x")])
def test_bad_environment_stops_start_up_with_one_line_naming_the_variable(pg, tmp_path, var, value):
    env = dict(os.environ, BROKER_PORT=str(mbtest.free_port()), DATABASE_URL=pg.url,
               MESHBROKER_RUNTIME_DIR=str(tmp_path / "run"))
    env[var] = value
    r = subprocess.run([mbtest.require_bin("meshbroker-accept")], env=env, capture_output=True, text=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and var in lines[0], f"stderr: {r.stderr!r}"


def test_connections_over_the_per_source_limit_get_503(broker):
    b = broker(MAX_CONNECTIONS_PER_SOURCE=2, HELLO_TIMEOUT_SECONDS=30)
    held = [mbtest.RawWS(b.port) for _ in range(2)]
    try:
        c = mbtest.RawHTTP(b.port)
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hdrs, body, closed = c.read_response(5)
        c.close()
        assert st == 503, f"third connection from one source: {st}"
        assert json.loads(body)["error"]
        assert closed
    finally:
        for h in held:
            h.close()
    ok = mbtest.wait_until(lambda: b.get("/health")[0] == 200, 5, interval=0.1)
    assert ok, "connections refused after the held ones closed"


def test_a_connection_over_max_connections_evicts_the_oldest_one_without_a_hello(broker):
    """MAX_CONNECTIONS full of connections that never sent a hello: the new
    one gets in and the oldest silent one is closed (1013 "evicted"); the
    503 is only for a broker full of authenticated peers (test_abuse_limits)"""
    b = broker(MAX_CONNECTIONS=2, UNAUTH_SHARE_PERCENT=100, HELLO_TIMEOUT_SECONDS=30)
    held = [mbtest.RawWS(b.port) for _ in range(2)]
    try:
        c = mbtest.RawHTTP(b.port)
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, _, closed = c.read_response(5)
        c.close()
        assert st == 200 and closed
        fin, op, payload = held[0].recv_frame(5)
        assert op == 0x8 and mbtest.close_payload(payload) == (1013, "evicted"), (op, payload)
        assert held[0].sock.recv(1) == b""  # and the connection is gone
    finally:
        for h in held:
            h.close()
    assert b.wait_no_workers(20)  # or /metrics would evict the second one
    assert b.metric("broker_connections_evicted_total", reason="max_connections") == 1
    assert b.metric("broker_connections_refused_total", reason="max_connections") == 0


def test_sigterm_to_the_acceptor_closes_peers_and_exits_after_its_workers(broker, mesh):
    b = broker()
    m = mesh("A")

    async def go():
        p = Peer(b, m.members[0])
        await p.join()
        pid = p.worker_pid()
        os.kill(b.proc.pid, signal.SIGTERM)
        code, _ = await p.wait_closed(10)
        assert code == 1001, f"a peer of a stopping broker is closed with {code}, want 1001 (going away)"
        return pid

    pid = run(go(), 30)
    try:
        rc = b.proc.wait(timeout=12)
    except subprocess.TimeoutExpired:
        raise AssertionError("meshbroker-accept still running 12 s after SIGTERM")
    assert rc == 0, f"exit status {rc} after SIGTERM"
    assert pid not in b.workers()
    assert not b.workers()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", b.port), timeout=1).close()


def test_live_peers_outlive_a_killed_acceptor_and_talk_to_peers_of_the_next_one(broker, pg, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        os.kill(b.proc.pid, signal.SIGKILL)
        b.proc.wait(timeout=5)
        assert a.ws.open
        b2 = mbtest.Broker("accept", pg.url, b.env, workdir=b.workdir, port=b.port)
        try:
            await asyncio.get_running_loop().run_in_executor(None, b2.start)
            bb = Peer(b2, bm)
            await bb.join()
            assert b2.metric("broker_connections_active") == 2, "the new acceptor lost the live slot"
            _, ack = await bb.send_direct(am.pubkey, "across acceptors", "now")
            assert ack["queued"], ack
            assert a.decrypt(await a.push(timeout=5)) == "across acceptors"
            _, ack = await a.send_direct(bm.pubkey, "and back", "now")
            assert bb.decrypt(await bb.push(timeout=5)) == "and back"
            await a.close()
            await bb.close()
        finally:
            b2.stop()

    run(go(), 60)


def test_presence_table_full_closes_1013(broker, mesh):
    b = broker(PRESENCE_SLOTS=2)
    m = mesh("A", "B", "C")

    async def go():
        a, bb, c = (Peer(b, x) for x in m.members)
        await a.join()
        await bb.join()
        await c.connect()
        await c.send_json(c.hello_msg())
        code, reason = await c.wait_closed(5)
        assert code == 1013, f"full table: closed {code} {reason!r}"
        await a.close()
        c2 = Peer(b, m.members[2])
        await c2.join()
        await c2.close()
        await bb.close()

    run(go(), 30)
