"""Before a hello proves membership it writes (almost) nothing (issue 11,
part): a stranger's self-signed hello appends no audit row to the mesh it
names, and hellos that fail their signature check write at most one
hello_rejected row per mesh a minute; /metrics counts every one."""

import asyncio
import os
import re
import threading
import time
from collections import Counter

import nacl.signing
import pytest

import mbtest
from mbtest import Peer, run


def audit_count(db, mesh_id, kind=None):
    with db.cursor() as c:
        if kind:
            c.execute("SELECT count(*) FROM mesh.audit_log WHERE mesh_id = %s AND event_type = %s", (mesh_id, kind))
        else:
            c.execute("SELECT count(*) FROM mesh.audit_log WHERE mesh_id = %s", (mesh_id,))
        return c.fetchone()[0]


def test_self_signed_and_forged_hellos_write_at_most_one_row_and_a_member_still_gets_in(broker, mesh, db):
    b = broker()
    m = mesh("A")
    (am,) = m.members
    rows0 = audit_count(db, m.id)
    unauth0 = b.metric("broker_connections_rejected_total", reason="unauthorized")
    badsig0 = b.metric("broker_connections_rejected_total", reason="bad_signature")
    n_strangers, n_forged = 30, 20

    async def go():
        # strangers: a valid signature with their own key, naming the real mesh
        for i in range(n_strangers):
            stranger = mbtest.Member(m, f"s{i}")  # never inserted
            p = Peer(b, stranger)
            await p.connect()
            r = await p.hello()
            assert r.get("code") == "unauthorized", r
            await p.wait_closed()
        # forgers: A's member id and pubkey, signed with another key
        for i in range(n_forged):
            p = Peer(b, am)
            await p.connect()
            r = await p.hello(sign_with=nacl.signing.SigningKey.generate())
            assert r.get("code") == "bad_signature", r
            await p.wait_closed()
        # the member itself is not held up
        ok = Peer(b, am)
        await ok.join()
        await ok.close()

    run(go(), 120)
    assert b.wait_metric("broker_connections_rejected_total", unauth0 + n_strangers,
                         reason="unauthorized") == unauth0 + n_strangers
    assert b.wait_metric("broker_connections_rejected_total", badsig0 + n_forged,
                         reason="bad_signature") == badsig0 + n_forged
    # wait for the member's own rows (joined, left), then count the rest
    assert mbtest.wait_until(lambda: audit_count(db, m.id, "peer_left") == 1, 20)
    assert audit_count(db, m.id, "hello_rejected") == 1, "forged hellos wrote more than one row a minute"
    assert audit_count(db, m.id) == rows0 + 3  # hello_rejected, peer_joined, peer_left


def _broker_backends(db):
    """client backends of the broker's database, less the test's own session"""
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                  "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
        return c.fetchone()[0]


def _bouncer_pool(url):
    """default_pool_size of the bouncer at url (host= is its socket directory)"""
    import urllib.parse
    host = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["host"][0]
    with open(os.path.join(host, "pgbouncer.ini")) as f:
        m = re.search(r"^default_pool_size = (\d+)$", f.read(), re.M)
    assert m, f"no default_pool_size in {host}/pgbouncer.ini"
    return int(m.group(1))


@pytest.mark.unsanitized
def test_500_self_signed_hellos_naming_a_real_mesh_write_no_row_and_take_no_more_sessions_than_the_pool(
        broker, mesh, db, pg, bouncer):
    """issue 11, acceptance 4, at make run's defaults (workers on the embedded
    PgBouncer, pool of 20 server sessions): 500 strangers, each with a key of
    its own and a valid signature, name a real mesh, 32 at a time.  No audit
    row for the mesh; PostgreSQL never holds more broker sessions than the
    pool the broker keeps when idle; a member's hello in the middle of it
    succeeds."""
    pool = _bouncer_pool(bouncer)  # scripts/pg.sh's default: 5 per core, 10 to 20
    b = broker(database_url=bouncer)
    m = mesh("A")
    (am,) = m.members
    # the broker's normal state: a member came and went
    async def member_visit():
        p = Peer(b, am)
        await p.join()
        await p.close()
    run(member_visit(), 60)
    assert mbtest.wait_until(lambda: audit_count(db, m.id, "peer_left") == 1, 20)
    rows0 = audit_count(db, m.id)
    unauth0 = b.metric("broker_connections_rejected_total", reason="unauthorized")
    n = 500
    peak = [_broker_backends(db)]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _broker_backends(db_watch))
            time.sleep(0.02)

    db_watch = pg.connect()
    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    codes = Counter()
    member_reply = {}

    async def stranger(i, sem):
        async with sem:
            p = Peer(b, mbtest.Member(m, f"s{i}"))  # never inserted
            try:
                await p.connect()
                r = await p.hello(timeout=60)
                codes[r.get("code") or r.get("type")] += 1
            finally:
                await p.close()

    async def go():
        sem = asyncio.Semaphore(32)
        tasks = [asyncio.create_task(stranger(i, sem)) for i in range(n)]
        await asyncio.sleep(0)
        while sum(codes.values()) < n // 2:  # the member comes in the middle of the flood
            await asyncio.sleep(0.01)
        p = Peer(b, am)
        await p.connect()
        member_reply.update(await p.hello(timeout=60))
        await p.close()
        await asyncio.gather(*tasks)

    try:
        run(go(), 300)
    finally:
        done.set()
        watcher.join(5)
        db_watch.close()
    assert codes == Counter({"unauthorized": n}), codes
    assert member_reply.get("type") == "hello_ack", member_reply
    assert b.wait_metric("broker_connections_rejected_total", unauth0 + n,
                         reason="unauthorized") == unauth0 + n
    assert mbtest.wait_until(lambda: audit_count(db, m.id, "peer_left") == 2, 20)
    assert audit_count(db, m.id) == rows0 + 2, "only the member's own peer_joined and peer_left"
    assert peak[0] <= pool, f"{peak[0]} broker sessions in PostgreSQL during the flood (pool {pool})"
