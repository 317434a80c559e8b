"""Limits that keep one holder of many addresses from taking every slot
(issue 11, part): the acceptor counts a source by prefix (/24 for IPv4, /64
for IPv6, SOURCE_PREFIX_V4/V6), and its refusals are counted in /metrics by
reason.  Clients bind other loopback addresses (127.0.1.x, all on this
machine) to stand for a block of addresses; nothing leaves loopback."""

import asyncio
import socket

import mbtest


def silent_from(b, src):
    """a connection from src that sends nothing (its worker waits for a request)"""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(20)
    s.connect(("127.0.0.1", b.port))
    return s


def refused(s):
    """the acceptor's 503 and close, or None when a worker holds the connection"""
    s.settimeout(3)
    try:
        data = s.recv(4096)
    except socket.timeout:
        return None
    return data


def wait_workers(b, n):
    assert mbtest.wait_until(lambda: len(b.workers()) >= n, 20), f"{len(b.workers())} workers, want {n}"


def test_addresses_in_one_slash_24_share_the_per_source_limit_and_refusals_are_counted(broker):
    b = broker("accept", MAX_CONNECTIONS_PER_SOURCE=2, HTTP_TIMEOUT_SECONDS=60)
    before = b.metric("broker_connections_refused_total", reason="max_connections_per_source")
    held = [silent_from(b, "127.0.1.2"), silent_from(b, "127.0.1.3")]
    try:
        wait_workers(b, 2)
        third = silent_from(b, "127.0.1.4")  # another address, the same /24
        got = refused(third)
        third.close()
        assert got and got.startswith(b"HTTP/1.1 503 ") and b"too many connections" in got, got
        # a client of another /24 (this /metrics request, from 127.0.0.1) still gets in
        after = b.wait_metric("broker_connections_refused_total", before + 1,
                              reason="max_connections_per_source")
        assert after == before + 1
        assert b.metric("broker_connections_refused_total", reason="max_connections") == 0
    finally:
        for s in held:
            s.close()


def test_source_prefix_32_counts_each_address_alone(broker):
    b = broker("accept", MAX_CONNECTIONS_PER_SOURCE=2, SOURCE_PREFIX_V4=32, HTTP_TIMEOUT_SECONDS=60)
    held = [silent_from(b, "127.0.1.2"), silent_from(b, "127.0.1.2")]
    try:
        wait_workers(b, 2)
        other = silent_from(b, "127.0.1.3")
        held.append(other)
        assert refused(other) is None, "a different address was refused with SOURCE_PREFIX_V4=32"
        wait_workers(b, 3)
        same = silent_from(b, "127.0.1.2")
        got = refused(same)
        same.close()
        assert got and got.startswith(b"HTTP/1.1 503 "), got
    finally:
        for s in held:
            s.close()


def test_max_connections_refusals_are_counted(broker, mesh):
    """a connection is refused only when every place is held by an
    authenticated peer (or an HTTP request): there is nobody to evict"""
    b = broker("accept", MAX_CONNECTIONS=2, HTTP_TIMEOUT_SECONDS=60)
    m = mesh("A", "B")

    async def go():
        peers = [mbtest.Peer(b, x) for x in m.members]
        for p in peers:
            await p.join()
        try:
            extra = silent_from(b, "127.0.4.1")
            got = await asyncio.get_running_loop().run_in_executor(None, refused, extra)
            extra.close()
            assert got and got.startswith(b"HTTP/1.1 503 "), got
        finally:
            for p in peers:
                await p.close()

    mbtest.run(go(), 60)
    # the slots come back once the peers are gone; then /metrics has room
    assert b.wait_no_workers(20)
    assert b.metric("broker_connections_refused_total", reason="max_connections") == 1
    assert b.metric("broker_connections_refused_total", reason="max_connections_per_source") == 0
    assert b.metric("broker_connections_evicted_total", reason="max_connections") == 0


def test_one_member_cannot_take_more_than_its_cap_and_others_still_get_in(broker, mesh):
    b = broker(MAX_CONNECTIONS_PER_MEMBER=2, MAX_CONNECTIONS_PER_MESH=10)
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        mine = [mbtest.Peer(b, am), mbtest.Peer(b, am)]
        for p in mine:
            await p.join()
        third = mbtest.Peer(b, am)
        await third.connect()
        r = await third.hello()
        assert r.get("type") == "error" and r.get("code") == "capacity", r
        assert "MAX_CONNECTIONS_PER_MEMBER" in r.get("message", ""), r
        assert (await third.wait_closed()) == (1008, "capacity")
        other = mbtest.Peer(b, bm)
        await other.join()  # the mesh has room for everyone else
        for p in mine + [other]:
            await p.close()

    before = b.metric("broker_connections_rejected_total", reason="capacity")
    mbtest.run(go(), 60)
    assert b.wait_metric("broker_connections_rejected_total", before + 1, reason="capacity") == before + 1
