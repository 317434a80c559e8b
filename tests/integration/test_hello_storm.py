"""A reconnect storm and the lean libpq load (issue 23).

300 peers connect at the same moment (a broker restart, a network blip: every
peer comes back at once), through the bouncer as `make run` has it, and every
one gets its hello_ack.  Correctness only, no timing assertion; deadlines
are generous bounds for a loaded 2-core machine.

The worker loads libpq with the stand-in GSSAPI and LDAP libraries of
pqstub/ (db/pq.c), and on a Unix socket the OpenSSL ones too: an
authenticated worker maps them and none of Kerberos, OpenLDAP, GnuTLS,
p11-kit or OpenSSL; it logs in with SCRAM-SHA-256 and with md5 passwords
(the stand-in libcrypto's digests and HMAC); MESHBROKER_PQ_STUBS=0 brings
the real libraries back, and all of them reach the database."""

import asyncio
import os
import resource
import shutil
import subprocess
import time

import mbtest

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
    assert {"pqstub-crypto.so", "pqstub-ssl.so"} <= libs, sorted(libs)  # the URL is a Unix socket
    heavy = [x for x in libs if x.startswith(("libkrb5", "libgssapi_krb5", "libldap", "libgnutls", "libp11-kit",
                                               "libcrypto", "libssl"))]
    assert not heavy, f"the worker loaded {heavy}"


def test_scram_and_md5_logins_through_the_libcrypto_stand_in(broker, mesh, pg):
    # two superusers that must authenticate by password over the Unix socket
    db = pg.connect()
    cur = db.cursor()
    users = {"mb_scram": ("scram-sha-256", "pw-scram-\u00e9t\u00e9"), "mb_md5": ("md5", "pw-md5")}
    for user, (method, pw) in users.items():
        cur.execute(f"DROP ROLE IF EXISTS {user}")
        cur.execute(f"SET password_encryption = '{method}'")
        cur.execute(f"CREATE ROLE {user} LOGIN SUPERUSER PASSWORD %s", (pw,))
    cur.execute("SHOW hba_file")
    hba = cur.fetchone()[0]
    with open(hba) as f:
        old = f.read()
    lines = "".join(f"local all {u} {m}\n" for u, (m, _) in users.items())
    if lines not in old:
        with open(hba, "w") as f:
            f.write(lines + old)
    cur.execute("SELECT pg_reload_conf()")
    time.sleep(1)
    cur.execute("SELECT user_name[1], auth_method FROM pg_hba_file_rules WHERE user_name[1] LIKE 'mb_%'")
    assert {r[0]: r[1] for r in cur.fetchall()} == {u: m for u, (m, _) in users.items()}
    from urllib.parse import quote
    for i, (user, (method, pw)) in enumerate(users.items()):
        url = f"postgresql:///meshbroker?host={pg.sock}&port={pg.port}&user={user}&password={quote(pw)}"
        b = broker(database_url=url)
        m = mesh(f"pw{i}")
        # the hello needs the database: it is acked only if the login worked
        libs = _joined_worker_libs(b, m.members[0])
        assert "pqstub-crypto.so" in libs and not any(x.startswith("libcrypto") for x in libs), sorted(libs)
    db.close()


def test_pq_stubs_off_loads_the_real_libraries(broker, mesh):
    b = broker(MESHBROKER_PQ_STUBS="0")
    m = mesh("full")
    libs = _joined_worker_libs(b, m.members[0])
    assert not {"pqstub-gssapi.so", "pqstub-ldap.so", "pqstub-crypto.so", "pqstub-ssl.so"} & libs, sorted(libs)
    assert any(x.startswith("libgssapi_krb5") for x in libs), sorted(libs)
    assert any(x.startswith("libldap") for x in libs), sorted(libs)


def test_a_libpq_the_stand_ins_do_not_fit_loads_with_its_own_libraries(broker, mesh, monkeypatch, tmp_path):
    # a copy of the build whose GSSAPI stand-in has the right SONAME and
    # version but one name only, as after a libpq upgrade that imports a
    # name the stand-ins lack: libpq (linked -z now) does not load over it;
    # the worker must still reach the database, over the real libraries,
    # and say why
    bindir, libdir = tmp_path / "bin", tmp_path / "lib" / "meshbroker"
    shutil.copytree(mbtest.BIN, bindir)
    shutil.copytree(os.path.join(mbtest.BIN, "..", "lib", "meshbroker"), libdir)
    (tmp_path / "g.c").write_text("int gss_acquire_cred(void) { return 1; }\n")
    (tmp_path / "g.map").write_text("gssapi_krb5_2_MIT { global: gss_*; local: *; };\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libgssapi_krb5.so.2",
                    f"-Wl,--version-script={tmp_path / 'g.map'}", "-o", str(libdir / "pqstub-gssapi.so"),
                    str(tmp_path / "g.c")], check=True)
    monkeypatch.setattr(mbtest, "BIN", str(bindir))
    b = broker()
    m = mesh("misfit")
    libs = _joined_worker_libs(b, m.members[0])
    assert not {"pqstub-gssapi.so", "pqstub-ldap.so", "pqstub-crypto.so", "pqstub-ssl.so"} & libs, sorted(libs)
    assert any(x.startswith("libgssapi_krb5") for x in libs), sorted(libs)
    assert "libpq does not load over the stand-ins" in b.log_text()
