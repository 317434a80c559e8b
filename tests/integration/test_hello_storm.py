"""A reconnect storm and the lean libpq load (issue 23).

300 peers connect at the same moment (a broker restart, a network blip: every
peer comes back at once), through the bouncer as `make run` has it, and every
one gets its hello_ack.  Correctness only, no timing assertion; deadlines
are generous bounds for a loaded 2-core machine.

The worker loads libpq with the stand-in GSSAPI and LDAP libraries of
pqstub/ (db/pq.c): an authenticated worker maps them and none of Kerberos,
OpenLDAP, GnuTLS or p11-kit; MESHBROKER_PQ_STUBS=0 brings the real ones
back, and both reach the database."""

import asyncio
import resource

from mbtest import Peer, run, wait_until

N = 300


def _raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= need, f"RLIMIT_NOFILE {soft} is below the {need} this test needs"


def test_300_peers_at_once_are_all_acked(broker, mesh, bouncer_factory):
    limits = dict(MAX_CONNECTIONS=N + 100, MAX_CONNECTIONS_PER_SOURCE=N + 100, MAX_CONNECTIONS_PER_MESH=N + 100)
    _raise_nofile(N + 512)
    url = bouncer_factory(MAX_CONNECTIONS=limits["MAX_CONNECTIONS"])
    b = broker(database_url=url, **limits)
    m = mesh(*[f"s{i}" for i in range(N)])
    peers = [Peer(b, mem) for mem in m.members]

    async def hello(i):
        p = peers[i]
        try:
            await p.connect(open_timeout=120)  # 300 execs at once, sanitized too
            ack = await p.hello(timeout=120)
        except Exception as e:  # noqa: BLE001 - every failure is reported below
            return f"s{i}: {type(e).__name__}: {e}"
        if ack.get("type") != "hello_ack":
            return f"s{i}: {ack} {(p.ws.close_code, p.ws.close_reason)}"
        return None

    async def go():
        try:
            # no semaphore: all 300 connect and say hello at the same moment
            return await asyncio.gather(*(hello(i) for i in range(N)))
        finally:
            await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)

    failed = [r for r in run(go(), 300) if r]
    assert not failed, f"{len(failed)} of {N} hellos failed: {failed[:10]}"
    assert wait_until(lambda: not b.workers(), 60), f"{len(b.workers())} workers left after the storm"


def _libs(pid):
    with open(f"/proc/{pid}/maps") as f:
        return {line.split()[-1].rsplit("/", 1)[-1] for line in f if "/" in line}


def _joined_worker_libs(b, member):
    async def go():
        p = Peer(b, member)
        await p.join(timeout=30)
        # the worker talked to the database for the hello: libpq is loaded
        await p.send_json({"type": "list_peers", "_reqId": "l"})
        lst = await p.wait_for(lambda x: x.get("type") == "peers_list", 30)
        assert member.id in {x["memberId"] for x in lst["peers"]}, lst
        ws = b.workers()
        assert len(ws) == 1, ws
        libs = _libs(ws[0])
        await p.close()
        return libs

    return run(go(), 60)


def test_worker_loads_libpq_without_kerberos_or_ldap(broker, mesh):
    b = broker()  # straight to PostgreSQL, over its Unix socket
    m = mesh("lean")
    libs = _joined_worker_libs(b, m.members[0])
    assert any(x.startswith("libpq.so") for x in libs), sorted(libs)
    assert {"pqstub-gssapi.so", "pqstub-ldap.so"} <= libs, sorted(libs)
    heavy = [x for x in libs if x.startswith(("libkrb5", "libgssapi_krb5", "libldap", "libgnutls", "libp11-kit"))]
    assert not heavy, f"the worker loaded {heavy}"


def test_pq_stubs_off_loads_the_real_libraries(broker, mesh):
    b = broker(MESHBROKER_PQ_STUBS="0")
    m = mesh("full")
    libs = _joined_worker_libs(b, m.members[0])
    assert not {"pqstub-gssapi.so", "pqstub-ldap.so"} & libs, sorted(libs)
    assert any(x.startswith("libgssapi_krb5") for x in libs), sorted(libs)
    assert any(x.startswith("libldap") for x in libs), sorted(libs)
