"""Quick recovery after a PostgreSQL outage (issue 21, acceptance 5): a new
hello succeeds within 2 s of PostgreSQL's return, straight to PostgreSQL and
through the PgBouncer that `make run` starts (scripts/pg.sh bouncer, whose
server_login_retry is 0.25 s; PgBouncer's default of 15 s kept hellos failing
for 13 s after a 2.3 s outage)."""

import asyncio
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import mbtest
from mbtest import Mesh, Peer, run

OUTAGE_S = 3.0
RECOVERY_S = 2.0


def _bouncer_for(cluster):
    """a PgBouncer as `make run` starts it, in front of `cluster`"""
    root = tempfile.mkdtemp(prefix="mbbouncer-", dir="/tmp")
    os.chmod(root, 0o755)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PG_SOCKET_DIR"] = cluster.sock
    script = os.path.join(mbtest.REPO, "scripts", "pg.sh")
    r = subprocess.run(["bash", script, "bouncer", root, str(cluster.port), str(mbtest.free_port())],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"pg.sh bouncer failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return root, r.stdout.strip().splitlines()[-1]


async def _try_hello(b, member):
    p = Peer(b, member)
    try:
        await p.connect()
        ack = await p.hello(timeout=5)
    except (OSError, asyncio.TimeoutError, mbtest.Closed, Exception):
        return False
    finally:
        try:
            await p.close()
        except Exception:
            pass
    return ack.get("type") == "hello_ack"


@pytest.mark.parametrize("via", ["direct", "bouncer"])
def test_new_hello_succeeds_within_2s_of_postgres_return(broker, own_pg, via):
    root = None
    url = own_pg.url
    if via == "bouncer":
        if not shutil.which("pgbouncer") and not os.access("/usr/sbin/pgbouncer", os.X_OK):
            pytest.fail("pgbouncer is not installed (scripts/deps.sh installs it)")
        root, url = _bouncer_for(own_pg)
    try:
        b = broker(database_url=url)
        b.allow_log(r"database unreachable", r"database connection lost", r"database timeout",
                    r"audit", r"presence", r"drain failed", r"hello")
        conn = own_pg.connect()
        m = Mesh(conn)
        members = [m.add(f"P{i}") for i in range(40)]
        conn.close()

        async def go():
            assert await _try_hello(b, members[0]), "hello before the outage"
            own_pg.stop()
            # hellos during the outage fail (and leave the bouncer in its
            # "login failing" state, the case the retry setting is about)
            t_down = time.monotonic()
            k = 1
            while time.monotonic() - t_down < OUTAGE_S:
                assert not await _try_hello(b, members[k]), "a hello succeeded with PostgreSQL down"
                k += 1
                await asyncio.sleep(0.3)
            own_pg.start()  # returns once PostgreSQL accepts connections
            t_up = time.monotonic()
            while True:
                ok = await _try_hello(b, members[k % len(members)])
                k += 1
                if ok:
                    break
                if time.monotonic() - t_up > 15:
                    break
                await asyncio.sleep(0.05)
            took = time.monotonic() - t_up
            assert ok and took <= RECOVERY_S, (
                f"{via}: the first hello after PostgreSQL's return succeeded after {took:.2f} s "
                f"(ok={ok}); at most {RECOVERY_S} s allowed")

        run(go(), 90)
    finally:
        if root:
            subprocess.run(["bash", os.path.join(mbtest.REPO, "scripts", "pg.sh"), "stop", root],
                           capture_output=True, timeout=60)
            shutil.rmtree(root, ignore_errors=True)
