"""Limits that keep one holder of many addresses from taking every slot
(issue 11, part): the acceptor counts a source by prefix (/24 for IPv4, /64
for IPv6, SOURCE_PREFIX_V4/V6), and its refusals are counted in /metrics by
reason.  Clients bind other loopback addresses (127.0.1.x, all on this
machine) to stand for a block of addresses; nothing leaves loopback."""

import asyncio
import resource
import signal
import socket
import threading
import time

import pytest
import websockets

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
    # wait_metric scrapes in a row; from one address, the worker of a scrape
    # that is still exiting (slow under ASan) holds one of its /24's two
    # places, and two of them get the next scrape rightly refused (and counted)
    b.scrape_from_new_sources = True
    before = b.metric("broker_connections_refused_total", reason="max_connections_per_source")
    held = [silent_from(b, "127.0.1.2"), silent_from(b, "127.0.1.3")]
    try:
        wait_workers(b, 2)
        third = silent_from(b, "127.0.1.4")  # another address, the same /24
        got = refused(third)
        third.close()
        assert got and got.startswith(b"HTTP/1.1 503 ") and b"too many connections" in got, got
        # a client of another /24 (each /metrics request, from 127.100+.x.1) still gets in
        after = b.wait_metric("broker_connections_refused_total", before + 1,
                              reason="max_connections_per_source")
        assert after == before + 1
        assert b.metric("broker_connections_refused_total", reason="max_connections") == 0
    finally:
        for s in held:
            s.close()


def test_a_worker_that_has_closed_its_connection_no_longer_counts_against_its_source(broker):
    """MAX_CONNECTIONS_PER_SOURCE=2: two requests answered and closed by
    their workers, whose processes are held on their way out (SIGSTOPped in
    their linger: the client keeps its end open), do not keep the source's
    next two connections out — a client that closes and reconnects at once
    (a burst of hellos) is never refused for workers still exiting; the
    source's open connections still count"""
    b = broker("accept", MAX_CONNECTIONS_PER_SOURCE=2, HTTP_TIMEOUT_SECONDS=60)
    done, stopped, held = [], [], []
    try:
        for _ in range(2):
            c = mbtest.RawHTTP(b.port)
            done.append(c)
            pid = b.worker_for(c.sock.getsockname()[1])
            c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            st, _, _, closed = c.read_response(10)
            assert st == 200 and closed, (st, closed)
            # the worker now lingers (up to 1 s) for our end, which we keep open
            b.kill_worker(pid, signal.SIGSTOP)
            stopped.append(pid)
            assert mbtest.wait_until(lambda: mbtest.proc_state(pid) == "T", 5), \
                f"worker {pid} is not held on its way out: {mbtest.proc_state(pid)}"
        for _ in range(2):
            c = mbtest.RawHTTP(b.port)
            c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            st, _, body, closed = c.read_response(10)
            c.close()
            assert st == 200, f"refused for two workers that had closed their connections: {st} {body!r}"
        assert all(mbtest.proc_state(p) == "T" for p in stopped)
        # two open connections from the same source fill it: the next is refused
        held = [silent_from(b, "127.0.0.1"), silent_from(b, "127.0.0.1")]
        wait_workers(b, 4)
        third = silent_from(b, "127.0.0.1")
        got = refused(third)
        third.close()
        assert got and got.startswith(b"HTTP/1.1 503 "), got
    finally:
        for pid in stopped:
            b.kill_worker(pid, signal.SIGCONT)
        for c in done:
            c.close()
        for s in held:
            s.close()
    assert b.wait_no_workers(30)


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
    # the slots come back once the peers are gone; then /metrics has room,
    # for one request: its worker holds one of the two places until it has
    # exited, so a second request right after it can find both taken
    assert b.wait_no_workers(20)
    mx = b.metrics()
    assert mx.value("broker_connections_refused_total", reason="max_connections") == 1
    assert mx.value("broker_connections_refused_total", reason="max_connections_per_source") == 0
    assert mx.value("broker_connections_evicted_total", reason="max_connections") == 0


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


# ------------------------------------------------ the unauthenticated share


def raise_nofile(want):
    """this process holds every silent client socket itself"""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want,
                                                     hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def is_closed(s):
    """True when the broker closed this client socket (EOF or reset); what it
    sent before (a close frame) is read and dropped"""
    s.setblocking(False)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def silent_ws_from(b, src):
    """a WebSocket from src that never sends its hello"""
    s = silent_from(b, src)
    s.sendall(UPGRADE)
    return s


def wait_closed_socks(socks, timeout=20):
    return mbtest.wait_until(lambda: all(is_closed(s) for s in socks), timeout)


def test_eviction_takes_the_oldest_silent_connection_never_a_peer_or_an_http_request(broker, mesh):
    """MAX_CONNECTIONS=4, UNAUTH_SHARE_PERCENT=50: two places before a hello.
    What the acceptor evicts is chosen by the state each worker writes into
    the child table, so an authenticated peer, a peer that is leaving and an
    HTTP request that has been answered but is still lingering are never
    taken for silent connections."""
    b = broker("accept", MAX_CONNECTIONS=4, UNAUTH_SHARE_PERCENT=50, HELLO_TIMEOUT_SECONDS=60,
               HTTP_TIMEOUT_SECONDS=60)
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        loop = asyncio.get_running_loop()
        a = mbtest.Peer(b, am)
        await a.join()
        s1 = silent_from(b, "127.0.5.1")
        s2 = silent_ws_from(b, "127.0.6.1")
        await loop.run_in_executor(None, wait_workers, b, 3)
        # the unauthenticated share is full: the next one evicts s1, the oldest
        s3 = silent_from(b, "127.0.7.1")
        assert await loop.run_in_executor(None, wait_closed_socks, [s1]), "the oldest silent one was kept"
        assert not is_closed(s2) and not is_closed(s3)
        # an answered request whose worker lingers (the client neither reads
        # nor closes), then one more silent connection: s2 goes, not the HTTP worker
        h = mbtest.RawHTTP(b.port)
        h.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.3)
        s4 = silent_from(b, "127.0.8.1")
        assert await loop.run_in_executor(None, wait_closed_socks, [s2]), "s2 was kept"
        st, _, _, _ = h.read_response(5)
        assert st == 200, f"the lingering HTTP request was evicted: {st}"
        h.close()
        assert not is_closed(s3) and not is_closed(s4)
        # a peer that helloes promptly gets in (evicting s3) and nobody
        # evicts a or it
        bb = mbtest.Peer(b, bm)
        await bb.join()
        assert await loop.run_in_executor(None, wait_closed_socks, [s3])
        _, ack = await a.send_direct(bm.pubkey, "still here", "now")
        assert ack["queued"] is True, ack
        assert bb.decrypt(await bb.push()) == "still here"
        for s in (s1, s2, s3, s4):
            s.close()
        await a.close()
        await bb.close()

    mbtest.run(go(), 90)
    assert b.wait_no_workers(20)
    mx = b.metrics()
    # the share was full each time; s4 also found all four places taken
    # (a, s2, s3 and the lingering request) when it came while h lingered
    assert (mx.value("broker_connections_evicted_total", reason="unauthenticated_share") +
            mx.value("broker_connections_evicted_total", reason="max_connections")) == 3
    assert mx.value("broker_connections_refused_total", reason="max_connections") == 0
    # the evicted workers closed by themselves: no "worker killed" line (the
    # fixture would name it), an info line each
    assert b.log_text().count("connection evicted before its") == 3, mbtest.tail(b.log, 30)


@pytest.mark.unsanitized  # 768 ASan workers at once would need far more memory than the machine has
def test_1100_silent_connections_from_many_slash_24s_leave_room_for_a_peer_and_health(broker, mesh):
    """Issue 11: 1,100 connections from 127.0.0.0/8 that never send a hello,
    spread over 35 /24s (32 each, under MAX_CONNECTIONS_PER_SOURCE=64), half
    of them silent TCP and half WebSockets that never hello, against the
    defaults MAX_CONNECTIONS=1024 and UNAUTH_SHARE_PERCENT=75: at most 768
    are ever before their hello at once, the oldest are evicted, nothing is
    refused, an authenticated peer still connects and helloes, /health
    answers 200, and the evictions are in /metrics.  A second peer that
    connects and helloes while the flood is still coming gets in and is
    never evicted."""
    n = 1100
    assert raise_nofile(n + 512) >= n + 256, "not enough file descriptors for the clients"
    b = broker("accept", HELLO_TIMEOUT_SECONDS=300, HTTP_TIMEOUT_SECONDS=300)
    m = mesh("A", "B")
    socks = []
    t0 = time.monotonic()
    flood_done = threading.Event()
    during = {}

    async def peer_during_the_flood():
        # connects and helloes while silent connections keep coming, then
        # stays: it must never be taken for one of them
        p = mbtest.Peer(b, m.members[1])
        # its connection waits in the listen backlog behind the flood's, as
        # every newcomer's does: a generous open timeout, then a prompt hello
        t = time.monotonic()
        p.ws = await websockets.connect(b.ws_url + "/ws", max_queue=None, ping_interval=None,
                                        open_timeout=60, close_timeout=3)
        during["ack"] = await p.hello()
        during["took"] = time.monotonic() - t
        while not flood_done.is_set():
            await asyncio.sleep(0.1)
        during["barrier"] = await p.barrier()
        await p.close()

    def run_catching():
        try:
            mbtest.run(peer_during_the_flood(), 120)
        except Exception as e:  # noqa: BLE001 - reported by the asserts below
            during["error"] = repr(e)

    th = None
    try:
        for i in range(n):
            src = f"127.0.{10 + i // 32}.{1 + i % 32}"
            socks.append(silent_ws_from(b, src) if i % 2 else silent_from(b, src))
            if i == 900:
                th = threading.Thread(target=run_catching, daemon=True)
                th.start()
        flood_done.set()
        th.join(130)
        assert during.get("ack", {}).get("type") == "hello_ack", during
        assert during.get("barrier"), f"the peer that joined during the flood lost its connection: {during}"
        # every one was accepted and the share holds: 1100 - 768 evicted
        want = n - 768
        got = mbtest.wait_until(lambda: sum(is_closed(s) for s in socks[:want + 50]) >= want, 60, interval=0.5)
        assert got, f"only {sum(is_closed(s) for s in socks)} of the oldest were closed"
        # evicted workers exit at once; the acceptor never keeps more than
        # the share waiting for a hello
        live = mbtest.wait_until(lambda: len(b.workers()) <= 768 and len(b.workers()), 30, interval=0.5)
        assert live, f"{len(b.workers())} workers, want at most 768"
        assert not any(is_closed(s) for s in socks[-300:]), "a newer silent connection was closed first"

        async def peer():
            p = mbtest.Peer(b, m.members[0])
            ack = await p.join()
            await p.close()
            return ack

        assert mbtest.run(peer(), 60)["type"] == "hello_ack"
        st, _, body = b.get("/health", timeout=20)
        assert st == 200, (st, body)
        metrics = b.metrics()
        evicted = metrics.value("broker_connections_evicted_total", reason="unauthenticated_share")
        assert evicted >= want, evicted
        assert metrics.value("broker_connections_refused_total", reason="max_connections") == 0
        assert metrics.value("broker_connections_refused_total", reason="max_connections_per_source") == 0
        assert metrics.value("broker_connections_evicted_total", reason="max_connections") == 0
        print(f"\n1100 silent connections: {evicted:.0f} evicted, {len(b.workers())} workers left, "
              f"{time.monotonic() - t0:.1f}s; the peer that came during the flood was in after "
              f"{during['took']:.2f}s")
    finally:
        flood_done.set()
        for s in socks:
            s.close()
    assert b.wait_no_workers(120), f"{len(b.workers())} workers left after the clients closed"


# ------------------------------------------------ the negative member cache


def lookups(b):
    mx = b.metrics()
    return {r: mx.value("broker_member_lookups_total", result=r)
            for r in ("member", "not_member", "negative_cache_hit", "error")}


async def stranger_hello(b, member):
    p = mbtest.Peer(b, member)
    await p.connect()
    r = await p.hello()
    assert r.get("type") == "error" and r.get("code") == "unauthorized", r
    assert (await p.wait_closed()) == (1008, "unauthorized")


def test_repeated_hellos_of_an_unknown_key_cost_one_database_lookup_and_a_join_ends_it(broker, mesh, db):
    """Issue 11: a stranger's key (a valid signature, no member row) is looked
    up once; its next hellos are refused from the negative cache, exactly as
    the database would refuse them.  POST /join of that key drops the entry:
    the new member's hello is accepted at once, not after the TTL."""
    import invites

    b = broker(MEMBER_NEGATIVE_CACHE_SECONDS=300)
    m = mesh("A")
    stranger = mbtest.Member(m, "stranger")  # a key, no row
    before = lookups(b)
    mbtest.run(stranger_hello(b, stranger), 30)
    for _ in range(4):
        mbtest.run(stranger_hello(b, stranger), 30)
    after = lookups(b)
    assert after["not_member"] - before["not_member"] == 1, (before, after)
    assert after["negative_cache_hit"] - before["negative_cache_hit"] == 4, (before, after)
    assert b.metric("broker_connections_rejected_total", reason="unauthorized") >= 5
    # another key of the same mesh is still looked up
    mbtest.run(stranger_hello(b, mbtest.Member(m, "other")), 30)
    assert lookups(b)["not_member"] - before["not_member"] == 2

    token, payload, _ = invites.invite(db, m)
    st, body = invites.post_join(b, token, payload, stranger.pubkey, "stranger")
    assert st == 200 and body["ok"], body
    stranger.id = body["memberId"]

    async def member_now():
        p = mbtest.Peer(b, stranger)
        await p.join()
        await p.close()

    mbtest.run(member_now(), 30)
    assert lookups(b)["member"] - before["member"] == 1


def test_a_member_added_outside_join_waits_out_the_negative_cache_ttl(broker, mesh, db):
    """A member row written by meshctl or SQL drops no cache entry: the TTL
    (MEMBER_NEGATIVE_CACHE_SECONDS) bounds how long its key stays refused."""
    b = broker(MEMBER_NEGATIVE_CACHE_SECONDS=2)
    m = mesh("A")
    late = mbtest.Member(m, "late")
    mbtest.run(stranger_hello(b, late), 30)
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.member (id, mesh_id, peer_pubkey, display_name, role) "
                  "VALUES (%s,%s,%s,%s,'member')", (late.id, m.id, late.pubkey, "late"))
    t = time.monotonic()
    hits = lookups(b)["negative_cache_hit"]
    mbtest.run(stranger_hello(b, late), 30)  # still remembered as no member
    assert lookups(b)["negative_cache_hit"] == hits + 1

    async def joins_after_ttl():
        while True:
            p = mbtest.Peer(b, late)
            await p.connect()
            r = await p.hello()
            if r.get("type") == "hello_ack":
                await p.close()
                return time.monotonic() - t
            assert r.get("code") == "unauthorized", r
            assert time.monotonic() - t < 20, "still refused long after the TTL"
            await asyncio.sleep(0.3)

    waited = mbtest.run(joins_after_ttl(), 60)
    assert waited < 20
