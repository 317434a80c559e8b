"""What a worker costs (issue 13; docs/design.md "Cost of a worker"): libpq is
loaded only when a connection needs the database, and unloaded again when its
session closes for idleness, after which the peer still works; an idle
authenticated peer's worker stays within 1 MiB of private memory."""

import asyncio

import pytest

import mbtest
from mbtest import Peer, run


def maps(pid):
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def sanitized(pid):
    return "libasan" in maps(pid)


def uss_kib(pid):
    kib = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                kib += int(line.split()[1])
    return kib


def has_libpq(pid):
    return "/libpq.so" in maps(pid)


@pytest.mark.parametrize("mode", ["accept", "socket-activate"])
def test_a_connection_that_has_not_needed_the_database_has_not_loaded_libpq(broker, mode):
    b = broker(mode)
    ws = mbtest.RawWS(b.port)  # upgraded, no hello yet
    try:
        pid = b.worker_for(ws.sock.getsockname()[1])
        text = maps(pid)
        assert "/libpq.so" not in text, "libpq mapped before any database use"
        assert "/libsystemd.so" not in text, "libsystemd mapped: the worker reads LISTEN_FDS itself"
        if not sanitized(pid):
            assert uss_kib(pid) < 512, f"a fresh worker's private memory: {uss_kib(pid)} KiB"
    finally:
        ws.close()


def test_idle_session_unloads_libpq_and_the_peer_still_works(broker, mesh):
    b = broker(DB_IDLE_SECONDS=1)
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        pid = a.worker_pid()
        asan = sanitized(pid)  # sanitizer builds keep libpq (LeakSanitizer)
        assert has_libpq(pid), "libpq not mapped after a hello"
        for rnd in range(3):
            if not asan:
                assert mbtest.wait_until(lambda: not has_libpq(pid), 10), \
                    f"round {rnd}: libpq still mapped after the idle close"
                # the bound for an idle authenticated peer
                assert uss_kib(pid) <= 1024, f"idle worker: {uss_kib(pid)} KiB private"
            else:
                await asyncio.sleep(2)
            # a send is committed before it is acked: the database, so
            # libpq, came back for it
            _, ack = await a.send_direct(bm.pubkey, f"after idle {rnd}")
            assert ack.get("type") == "ack", ack
            push = await bb.push()
            assert bb.decrypt(push) == f"after idle {rnd}"
        await a.close()
        await bb.close()

    run(go(), 90)
