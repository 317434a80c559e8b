"""meshctl, the C client and admin tool (issue 2 migrations, issue 3 client):
migrate, keygen, mesh create, member add, and interop with Python peers both
ways (C sends / Python decrypts, Python sends / C decrypts)."""

import asyncio
import json
import os
import stat
import subprocess

import mbtest
from mbtest import Peer, new_id, run


def meshctl(args, env=None, timeout=30, check=True, cwd="/tmp"):
    exe = mbtest.require_bin("meshctl")
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([exe] + args, env=e, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check:
        assert r.returncode == 0, f"meshctl {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


def member_by_name(db, mesh_id, name):
    with db.cursor() as c:
        c.execute("SELECT id, peer_pubkey FROM mesh.member WHERE mesh_id = %s AND display_name = %s",
                  (mesh_id, name))
        return c.fetchone()


def make_c_member(tmp_path, pg, db, m, name):
    """a member whose key lives in a meshctl config file"""
    key = tmp_path / f"{name}.key"
    cfg = tmp_path / f"{name}.conf"
    meshctl(["keygen", "--out", str(key)])
    meshctl(["member", "add", m.id, "--key", str(key), "--name", name, "--out", str(cfg)],
            env={"DATABASE_URL": pg.url})
    row = member_by_name(db, m.id, name)
    assert row, f"meshctl member add did not create {name}"
    return cfg, row


def test_meshctl_migrate_applies_every_migration_once(pg):
    name = "mig_" + new_id(8).lower()
    conn = pg.connect()
    with conn.cursor() as c:
        c.execute(f"CREATE DATABASE {name} OWNER meshbroker")
    url = pg.url.replace("/meshbroker?", f"/{name}?")
    try:
        meshctl(["migrate"], env={"DATABASE_URL": url})
        meshctl(["migrate"], env={"DATABASE_URL": url})
        import psycopg2
        c2 = psycopg2.connect(url)
        with c2.cursor() as c:
            c.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'mesh' "
                      "AND table_name IN ('mesh','member','message_queue','delivery','audit_log','presence')")
            assert c.fetchone()[0] == 6
            c.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'mesh' "
                      "AND table_name LIKE '%migration%'")
            t = c.fetchone()
            assert t, "no table records the applied migrations"
            c.execute(f"SELECT count(*) FROM mesh.{t[0]}")
            files = [f for f in os.listdir(os.path.join(mbtest.REPO, "db", "migrations")) if f.endswith(".sql")]
            assert c.fetchone()[0] == len(files), "each migration recorded once"
        c2.close()
    finally:
        with conn.cursor() as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


def test_meshctl_migrate_with_a_bad_database_url_fails_with_one_line(tmp_path):
    r = meshctl(["migrate"], env={"DATABASE_URL": "mysql://nope"}, check=False)
    assert r.returncode != 0
    assert r.stderr.strip() and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_meshctl_keygen_writes_a_private_key_file(tmp_path):
    key = tmp_path / "k.key"
    meshctl(["keygen", "--out", str(key)])
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def test_meshctl_mesh_create_prints_the_id_of_the_new_mesh(pg, db, tmp_path):
    r = meshctl(["mesh", "create", "team-" + new_id(6).lower()], env={"DATABASE_URL": pg.url},
                cwd=str(tmp_path))
    out = r.stdout.strip().splitlines()
    assert out, r.stderr
    mesh_id = out[-1].strip()
    with db.cursor() as c:
        c.execute("SELECT name FROM mesh.mesh WHERE id = %s", (mesh_id,))
        assert c.fetchone(), f"meshctl mesh create printed {mesh_id!r}, no such mesh"


def test_meshctl_send_reaches_a_python_peer_that_decrypts_it(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh("py")
    py = m.members[0]
    cfg, (c_id, c_pub) = make_c_member(tmp_path, pg, db, m, "cpeer")
    env = {"MESHBROKER_URL": b.ws_url + "/ws", "DATABASE_URL": pg.url}

    async def go():
        p = Peer(b, py)
        await p.join()
        loop = asyncio.get_running_loop()
        r = await loop.run_in_executor(None, lambda: meshctl(
            ["send", py.pubkey, "from C with love", "--priority", "now", "--config", str(cfg)], env=env))
        push = await p.push(timeout=10)
        assert push["senderPubkey"] == c_pub
        assert p.decrypt(push) == "from C with love"
        assert push["priority"] == "now"
        await p.close()
        return r

    run(go(), 60)


def test_python_message_is_decrypted_by_meshctl_connect(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh("py")
    py = m.members[0]
    cfg, (c_id, c_pub) = make_c_member(tmp_path, pg, db, m, "cpeer")
    env = dict(os.environ, MESHBROKER_URL=b.ws_url + "/ws", DATABASE_URL=pg.url)

    async def go():
        p = Peer(b, py)
        await p.join()
        frame, ack = await p.send_direct(c_pub, "to C from python", "now")
        assert ack["queued"], ack
        await p.close()

    run(go(), 30)
    r = subprocess.run([mbtest.require_bin("meshctl"), "connect", "--count", "1", "--timeout", "10",
                        "--config", str(cfg)], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"meshctl connect exited {r.returncode}: {r.stderr}"
    pushes = []
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            j = json.loads(line)
            if j.get("type") == "push":
                pushes.append(j)
    assert len(pushes) == 1, r.stdout
    assert pushes[0]["senderPubkey"] == py.pubkey
    assert pushes[0]["text"] == "to C from python"
