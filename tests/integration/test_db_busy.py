"""PostgreSQL full (every connection slot taken, as in a reconnect storm):
work is delayed, not refused — a hello waits for a free slot with backoff
and succeeds once one frees up, within the retry window."""

import threading
import time

import psycopg2

from mbtest import PG_USER, Peer, run


def fill(cluster):
    conns = []
    while True:
        try:
            conns.append(psycopg2.connect(host=cluster.sock, port=cluster.port, user=PG_USER,
                                          dbname="meshbroker"))
        except psycopg2.OperationalError as e:
            assert "too many clients" in str(e) or "remaining connection slots" in str(e), e
            return conns
        assert len(conns) < 400, "max_connections never reached"


def test_hello_waits_for_a_free_database_slot_instead_of_failing(broker, mesh, own_pg):
    b = broker(database_url=own_pg.url)
    # members are made through a connection taken before the server is full
    admin = own_pg.connect()
    from mbtest import Mesh
    m = Mesh(admin)
    am = m.add("A")
    held = fill(own_pg)
    try:
        freed = []

        def free_one():
            freed.append(time.monotonic())
            held.pop().close()

        threading.Timer(1.5, free_one).start()

        async def go():
            p = Peer(b, am)
            await p.connect()
            ack = await p.hello(timeout=40)
            acked_at = time.monotonic()
            assert ack["type"] == "hello_ack", ack
            # ordering, not speed: the ack came after a slot was freed
            assert freed and acked_at >= freed[0], "the hello cannot have had a slot before one was freed"
            await p.close()

        run(go(), 60)
    finally:
        for c in held:
            c.close()
        admin.close()


def test_hello_waits_for_room_in_a_full_pgbouncer_instead_of_failing(broker, mesh, bouncer_factory):
    # PgBouncer refuses a client beyond max_client_conn with its own message
    # ("no more connections allowed"): the worker waits and retries as for a
    # full PostgreSQL
    url = bouncer_factory(BOUNCER_MAX_CLIENT_CONN=3)
    b = broker(database_url=url)
    m = mesh("A")
    am = m.members[0]
    held = []
    while True:
        try:
            held.append(psycopg2.connect(url))
        except psycopg2.OperationalError as e:
            assert "no more connections allowed" in str(e), e
            break
        assert len(held) < 50, "the bouncer's max_client_conn was never reached"
    try:
        freed = []

        def free_one():
            freed.append(time.monotonic())
            held.pop().close()

        threading.Timer(1.5, free_one).start()

        async def go():
            p = Peer(b, am)
            await p.connect()
            ack = await p.hello(timeout=40)
            acked_at = time.monotonic()
            assert ack["type"] == "hello_ack", ack
            assert freed and acked_at >= freed[0], "the hello cannot have had room before some was freed"
            await p.close()

        run(go(), 60)
    finally:
        for c in held:
            c.close()
