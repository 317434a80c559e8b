"""PgBouncer in transaction-pooling mode between the workers and PostgreSQL
(docs/design.md): unnamed statements only through it (db.c's probe sees the
pooler), no session state, no LISTEN — so hello, send, push, status and the
audit chain all work through it."""

import os
import shutil
import subprocess
import tempfile

import pytest

from mbtest import PG_USER, Peer, as_pg_user, free_port, is_push, run, tail, wait_until

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture
def bouncer(pg):
    if not os.access(PGBOUNCER, os.X_OK):
        pytest.fail("pgbouncer is not installed (scripts/deps.sh test installs it)")
    root = tempfile.mkdtemp(prefix="mbbouncer-", dir="/tmp")
    port = free_port()
    ini = os.path.join(root, "pgbouncer.ini")
    with open(os.path.join(root, "users.txt"), "w") as f:
        f.write(f'"{PG_USER}" ""\n')
    with open(ini, "w") as f:
        f.write(f"""[databases]
meshbroker = host={pg.sock} port={pg.port} dbname=meshbroker user={PG_USER}
[pgbouncer]
listen_addr =
listen_port = {port}
unix_socket_dir = {root}
auth_type = trust
auth_file = {root}/users.txt
pool_mode = transaction
max_client_conn = 200
default_pool_size = 5
logfile = {root}/pgbouncer.log
pidfile = {root}/pgbouncer.pid
""")
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", PG_USER, root], check=True)
    proc = subprocess.Popen(as_pg_user([PGBOUNCER, ini]), stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    sock = os.path.join(root, f".s.PGSQL.{port}")
    assert wait_until(lambda: os.path.exists(sock), 10), tail(os.path.join(root, "pgbouncer.log"))
    try:
        yield f"postgresql:///meshbroker?host={root}&port={port}&user={PG_USER}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)


def test_broker_works_through_pgbouncer_transaction_pooling(broker, mesh, db, bouncer):
    b = broker(database_url=bouncer)
    st, _, body = b.get("/health")
    assert st == 200, body
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        await bb.set_status("working")
        await bb.barrier()
        _, held = await a.send_direct(bm.pubkey, "through the pooler", "next")
        assert held["queued"], held
        await bb.quiet(is_push, 0.5)
        await bb.set_status("idle")
        p = await bb.push(timeout=5)
        assert p["messageId"] == held["messageId"] and bb.decrypt(p) == "through the pooler"
        await a.close()
        await bb.close()

    run(go(), 30)
    with db.cursor() as c:
        c.execute("SELECT event_type FROM mesh.audit_log WHERE mesh_id = %s ORDER BY id", (m.id,))
        events = [r[0] for r in c.fetchall()]
    assert events.count("peer_joined") == 2 and "message_sent" in events, events
    assert wait_until(lambda: _count_left(db, m.id) == 2, 20)


def _count_left(db, mesh_id):
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.audit_log WHERE mesh_id = %s AND event_type = 'peer_left'",
                  (mesh_id,))
        return c.fetchone()[0]


def test_pgbouncer_hands_out_a_backend_key_of_its_own(pg, bouncer):
    """what db/db.c's probe relies on to keep prepared statements off pooled
    connections: through PgBouncer the pid of the startup's BackendKeyData
    (PQbackendPID) is not the server backend's; directly it is"""
    import psycopg2

    def pids(url):
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as c:
                c.execute("SELECT pg_backend_pid()")
                return conn.info.backend_pid, c.fetchone()[0]
        finally:
            conn.close()

    told, server = pids(pg.url)
    assert told == server, "a direct connection's BackendKeyData names its backend"
    told, server = pids(bouncer)
    assert told != server, "PgBouncer's BackendKeyData is its own"
