"""API keys (issue 8, acceptance 3): meshctl apikey create|list|revoke, the
one Bearer check of every REST route with the 401/403 bodies of
docs/protocol.md §5.3, and the secret never stored nor logged."""

import hashlib
import json
import os
import subprocess

import invites
import mbtest
from invites import apikey, bearer, meshctl


def refused(status, error, ok=False):
    """(status, body) of a refusal: the one shape of the route table (docs/protocol.md §12.6)"""
    body = {"ok": False} if ok else {}
    body.update({"error": error, "code": "error." + error, "status": status})
    return status, body


def rest(b, path, headers=None, method="GET"):
    st, hdrs, data = b.request(method, path, headers=headers or {})
    assert hdrs.get("content-type", "").startswith("application/json"), (st, hdrs, data)
    return st, json.loads(data)


def hook(b, body, headers=None):
    st, hdrs, data = b.request("POST", "/hook/set-status", body=json.dumps(body).encode(),
                               headers=dict({"Content-Type": "application/json"}, **(headers or {})))
    return st, json.loads(data)


def test_missing_key_is_401_api_key_missing(broker):
    b = broker()
    for path in ("/v1/topics/general/key", "/v1/messages", "/v1/notifications"):
        assert rest(b, path) == refused(401, "api_key_missing")
    assert hook(b, {"cwd": "/tmp", "status": "idle"}) == refused(401, "api_key_missing", ok=True)


def test_wrong_or_malformed_key_is_401_api_key_invalid(broker, mesh, pg):
    b = broker()
    m = mesh("a")
    good = apikey(pg, m)
    wrong = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for auth in (f"Bearer {wrong}", "Bearer cm_nope", "Bearer " + "x" * 46, f"Basic {good}", "Bearer"):
        assert rest(b, "/v1/notifications", {"Authorization": auth}) == refused(401, "api_key_invalid"), auth
    # the right one passes the check (the route itself is issue 9's)
    st, j = rest(b, "/v1/notifications", bearer(good))
    assert (st, j) == refused(404, "not_found")


def test_revoked_and_expired_keys_are_401(broker, mesh, pg, db):
    b = broker()
    m = mesh("a")
    k = apikey(pg, m)
    assert rest(b, "/v1/x", bearer(k))[0] == 404
    listed = meshctl(["apikey", "list", m.id], env={"DATABASE_URL": pg.url}).stdout
    kid, prefix = listed.split("\t")[:2]
    assert prefix == k[:11] and "live" in listed and k not in listed
    meshctl(["apikey", "revoke", m.slug, prefix], env={"DATABASE_URL": pg.url})
    assert "revoked" in meshctl(["apikey", "list", m.id], env={"DATABASE_URL": pg.url}).stdout
    assert rest(b, "/v1/x", bearer(k)) == refused(401, "api_key_invalid")
    again = meshctl(["apikey", "revoke", m.id, kid], env={"DATABASE_URL": pg.url}, check=False)
    assert again.returncode == 1 and "no live api key" in again.stderr
    e = apikey(pg, m, "send", None, "--expires", "1h")
    assert rest(b, "/v1/x", bearer(e))[0] == 404
    with db.cursor() as c:
        c.execute("UPDATE mesh.api_key SET expires_at = now() - interval '1 second' WHERE prefix = %s", (e[:11],))
    assert rest(b, "/v1/x", bearer(e)) == refused(401, "api_key_invalid")


def test_key_without_the_capability_is_403(broker, mesh, pg):
    b = broker()
    m = mesh("a")
    k = apikey(pg, m, "read")
    st, j = hook(b, {"cwd": "/tmp", "status": "idle"}, bearer(k))
    assert (st, j) == refused(403, "api_key_missing_capability", ok=True)


def test_meshctl_apikey_create_refuses_bad_input(pg, mesh):
    m = mesh("a")
    env = {"DATABASE_URL": pg.url}
    r = meshctl(["apikey", "create", m.id, "--caps", "send,fly"], env=env, check=False)
    assert r.returncode == 2 and "fly" in r.stderr
    r = meshctl(["apikey", "create", m.id], env=env, check=False)
    assert r.returncode == 2
    r = meshctl(["apikey", "create", m.id, "--caps", "send", "--topics", "a,b c"], env=env, check=False)
    assert r.returncode == 2
    r = meshctl(["apikey", "create", "no-such-mesh-" + mbtest.new_id(6), "--caps", "send"], env=env, check=False)
    assert r.returncode == 1 and "no mesh" in r.stderr
    r = meshctl(["apikey", "create", m.id, "--caps", "send", "--member", "nobody"], env=env, check=False)
    assert r.returncode == 1 and "no member" in r.stderr


def test_meshctl_apikey_create_member_by_name_id_or_pubkey(pg, mesh, db):
    m = mesh("a")
    env = {"DATABASE_URL": pg.url}
    bob, erin, erin2 = m.add("Bob"), m.add("erin"), m.add("Erin")

    def issuer(prefix):
        with db.cursor() as c:
            c.execute("SELECT issuer_member_id FROM mesh.api_key WHERE prefix = %s", (prefix,))
            return c.fetchone()[0]

    # a name, in any case, as `meshctl send NAME` resolves it; an id; a pubkey in upper case
    for who in ("bob", bob.id, bob.pubkey.upper()):
        k = meshctl(["apikey", "create", m.id, "--caps", "send", "--member", who], env=env).stdout.strip()
        assert issuer(k[:11]) == bob.id, who
    r = meshctl(["apikey", "create", m.id, "--caps", "send", "--member", "erin"], env=env, check=False)
    assert r.returncode == 1 and "ambiguous" in r.stderr and erin.pubkey in r.stderr and erin2.pubkey in r.stderr
    m.revoke(bob)
    r = meshctl(["apikey", "create", m.id, "--caps", "send", "--member", "bob"], env=env, check=False)
    assert r.returncode == 1 and "no member" in r.stderr, "a revoked member's name is not resolved"


def test_secret_is_never_in_the_database_or_the_logs(broker, mesh, pg, db):
    b = broker()
    m = mesh("a")
    (a,) = [m.add("alice")]
    k = apikey(pg, m, "status,send,read", a, "--topics", "general,ops", "--label", "ci")
    # use it on every kind of route, also wrongly
    rest(b, "/v1/topics/general/key", bearer(k))
    hook(b, {"cwd": "/tmp/none", "status": "working"}, bearer(k))
    rest(b, "/v1/x", {"Authorization": f"Bearer {k}x"})
    rest(b, "/v1/x", {"Authorization": f"Basic {k}"})
    with db.cursor() as c:
        c.execute("SELECT secret_hash, prefix, capabilities, topic_scopes, issuer_member_id, label, "
                  "last_used_at IS NOT NULL FROM mesh.api_key WHERE mesh_id = %s", (m.id,))
        row = c.fetchone()
    assert row == (hashlib.sha256(k.encode()).hexdigest(), k[:11], ["status", "send", "read"],
                   ["general", "ops"], a.id, "ci", True)
    dump = subprocess.run([os.path.join(mbtest.pg_bindir(), "pg_dump"), "-h", pg.sock, "-p", str(pg.port),
                           "-U", mbtest.PG_USER, "meshbroker"], capture_output=True, text=True, timeout=120)
    assert dump.returncode == 0, dump.stderr
    assert row[0] in dump.stdout, "the dump holds the key's hash"
    assert k not in dump.stdout and k[3:] not in dump.stdout
    b.stop()
    log = b.log_text()
    assert k not in log and k[11:] not in log
    assert open(pg.log, errors="replace").read().find(k[11:]) < 0
