"""Hello bursts never fail (issue 13): with `make run`'s embedded PgBouncer
between the workers and PostgreSQL, a burst of hellos queues for a few
pooled server sessions instead of running PostgreSQL out of max_connections
(which closed 64 of 500 hellos with 1011 "database unavailable" before).

Correctness only, never speed: every hello gets its hello_ack, every peer of
a thousand is listed and reached.  Generous deadlines keep them bounded on a
2-core machine.  Not in the ASan+UBSan run (unsanitized): hundreds of
sanitized workers at once are too heavy for it and prove nothing more."""

import asyncio
import resource

import pytest

from mbtest import Peer, run, wait_until


def _raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= need, f"RLIMIT_NOFILE {soft} is below the {need} this test needs"


async def _bounded(n, in_flight, job):
    """run job(i) for i in range(n), at most in_flight at once; the results in order"""
    sem = asyncio.Semaphore(in_flight)

    async def one(i):
        async with sem:
            return await job(i)

    return await asyncio.gather(*(one(i) for i in range(n)))




@pytest.mark.unsanitized
def test_500_hellos_32_in_flight_all_acked_through_the_bouncer(broker, mesh, bouncer):
    # make run's broker: every setting at its default, the workers on the bouncer
    b = broker(database_url=bouncer)
    m = mesh(*[f"p{i}" for i in range(500)])

    async def hello(i):
        p = Peer(b, m.members[i])
        try:
            await p.connect()
            ack = await p.hello(timeout=60)
            code = (p.ws.close_code, p.ws.close_reason) if p.ws.close_code else None
        except Exception as e:  # noqa: BLE001 - every failure is reported below
            return f"p{i}: {type(e).__name__}: {e}"
        finally:
            await p.close()
        if ack.get("type") != "hello_ack":
            return f"p{i}: {ack} {code or ''}"
        return None

    async def go():
        return await _bounded(500, 32, hello)

    failed = [r for r in run(go(), 600) if r]
    assert not failed, f"{len(failed)} of 500 hellos failed: {failed[:10]}"
    assert b.wait_no_workers(60), f"workers left after the burst: {b.workers()}"


@pytest.mark.unsanitized
def test_1000_idle_peers_at_once_are_all_listed_and_reached(broker, mesh, bouncer_factory):
    n = 1000
    limits = dict(MAX_CONNECTIONS=1200, MAX_CONNECTIONS_PER_SOURCE=1200, MAX_CONNECTIONS_PER_MESH=1200,
                  MAX_CONNECTIONS_PER_MEMBER=10)
    _raise_nofile(n + 512)  # a socket per peer, plus PostgreSQL and pytest's own
    url = bouncer_factory(MAX_CONNECTIONS=limits["MAX_CONNECTIONS"])
    b = broker(database_url=url, **limits)
    m = mesh(*[f"p{i}" for i in range(n)])
    peers = [Peer(b, mem) for mem in m.members]

    async def join(i):
        try:
            await peers[i].join(timeout=60)
        except Exception as e:  # noqa: BLE001
            return f"p{i}: {type(e).__name__}: {e}"
        return None

    async def go():
        try:
            # all of them connect within one burst, 64 in flight, and stay
            failed = [r for r in await _bounded(n, 64, join) if r]
            assert not failed, f"{len(failed)} of {n} peers could not join: {failed[:10]}"
            # every one is in the presence table ...
            first = peers[0]
            await first.send_json({"type": "list_peers", "_reqId": "all"})
            lst = await first.wait_for(lambda x: x.get("type") == "peers_list", 60)
            listed = {p["memberId"] for p in lst["peers"]}
            assert listed == {mem.id for mem in m.members}, \
                f"list_peers shows {len(listed)} of {n}; missing {len({x.id for x in m.members} - listed)}"
            # ... and reachable: one broadcast arrives at each of the others
            _, ack = await first.send_broadcast("to all of you", timeout=60)
            assert ack.get("queued"), ack

            async def got(i):
                try:
                    push = await peers[i].push(timeout=120)
                except Exception as e:  # noqa: BLE001
                    return f"p{i}: {type(e).__name__}: {e}"
                if push.get("messageId") != ack["messageId"]:
                    return f"p{i}: pushed {push.get('messageId')}, not {ack['messageId']}"
                return None

            missed = [r for r in await asyncio.gather(*(got(i) for i in range(1, n))) if r]
            assert not missed, f"{len(missed)} of {n - 1} peers were not reached: {missed[:10]}"
        finally:
            await _bounded(n, 128, lambda i: peers[i].close())

    run(go(), 900)
    assert wait_until(lambda: not b.workers(), 120), f"{len(b.workers())} workers left after all peers closed"
