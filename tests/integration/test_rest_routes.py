"""The HTTP route table (issue 21, acceptance 1): for every row that
`meshbroker-worker --routes` prints — the table itself, not a copy — a
request without a key gets 401 (also when its body is oversized: the key is
checked before the size), a key lacking the row's capability 403, a key
outside the topic scope 403, a mesh-wide key on a member route 404, an
oversized body with a good key 413; every refusal has the one JSON shape
{"error","code","status"}; under /v1/ and /api/v1/ alike."""

import base64
import hashlib
import json
import secrets
import subprocess

import pytest

from mbtest import Peer, RawHTTP, new_id, require_bin, run
from test_topics import create, quiet_request

CAPS = ("send", "read", "state_write")
MAX = 1024


def routes():
    out = subprocess.run([require_bin("meshbroker-worker"), "--routes"], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines():
        method, pattern, auth, cap, scope, body, flags = line.split("\t")
        rows.append({"method": method, "pattern": pattern, "auth": auth, "cap": None if cap == "-" else cap,
                     "scope": scope, "body": body, "flags": flags.split(",")})
    return rows


ROUTES = routes()
KEYED = [r for r in ROUTES if r["auth"] != "open"]


def sample(r, topic="general", prefix=""):
    path = r["pattern"].replace(":name", topic)
    if path.endswith("/*"):
        path = path[:-1] + "nothing-here"
    if path.startswith("/v1/"):
        path = prefix + path
    return "GET" if r["method"] == "*" else r["method"], path


def rid(r):
    return f"{r['method']} {r['pattern']}"


def api_key(db, mesh, member, caps=CAPS, topics=None):
    secret = "cm_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.api_key (id, mesh_id, issuer_member_id, secret_hash, prefix, capabilities, "
                  "topic_scopes) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                  (new_id(), mesh.id, member.id if member else None, hashlib.sha256(secret.encode()).hexdigest(),
                   secret[:11], list(caps), list(topics) if topics is not None else None))
    return secret


def body_for(r):
    """a body the row's checker accepts (the scope and state checks come after it)"""
    if r["pattern"] == "/v1/messages":
        return {"topic": "general", "nonce": "n", "ciphertext": "eA=="}
    if r["pattern"].endswith("/seal"):
        return {"memberId": "x", "encryptedKey": base64.b64encode(bytes(80)).decode(),
                "nonce": base64.b64encode(bytes(24)).decode()}
    return None


def call(b, method, path, secret=None, body=None):
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    st, hdrs, data = b.request(method, path, body=body, headers=headers)
    return st, json.loads(data) if data else None


def oversized(b, method, path, secret=None):
    """the head of a request whose body is over MAX_MESSAGE_BYTES; nothing of the body is sent"""
    c = RawHTTP(b.port)
    auth = f"Authorization: Bearer {secret}\r\n" if secret else ""
    try:
        c.send(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
               f"Content-Length: {MAX * 4}\r\n\r\n".encode())
        st, hdrs, data, closed = c.read_response(timeout=10)
    finally:
        c.close()
    return st, json.loads(data) if data else None


def shape(st, body, error):
    assert body.get("error") == error and body.get("code") == "error." + error and body.get("status") == st, body


def test_the_table_has_every_rest_route_of_the_protocol():
    patterns = {(r["method"], r["pattern"]) for r in ROUTES}
    for want in [("GET", "/v1/topics/:name/key"), ("GET", "/v1/topics/:name/pending-seals"),
                 ("POST", "/v1/topics/:name/seal"), ("POST", "/v1/messages"), ("GET", "/v1/notifications"),
                 ("GET", "/v1/me/notifications"), ("GET", "/v1/topics/:name/messages"),
                 ("GET", "/v1/topics/:name/stream"), ("PATCH", "/v1/topics/:name/read"), ("GET", "/v1/topics"),
                 ("GET", "/v1/me/topics")]:
        assert want in patterns, want
    for r in KEYED:
        if r["pattern"].startswith("/v1/"):
            assert "api" in r["flags"], rid(r)


@pytest.fixture
def setup(broker, mesh, db):
    b = broker(MAX_MESSAGE_BYTES=MAX)
    m = mesh("alice", "bob")
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        tid = (await create(a, "general"))["topic"]["id"]
        await a.close()
        return tid

    tid = run(go(), 30)
    return b, m, am, bm, tid


def test_every_keyed_route_refuses_a_missing_key_with_401_even_when_oversized(setup):
    b = setup[0]
    for r in KEYED:
        for prefix in ("", "/api") if "api" in r["flags"] else ("",):
            method, path = sample(r, prefix=prefix)
            st, j = call(b, method, path, body=body_for(r))
            assert st == 401, (rid(r), prefix, st, j)
            shape(st, j, "api_key_missing")
            st, j = oversized(b, method, path)
            assert st == 401 and j["error"] == "api_key_missing", (rid(r), prefix, st, j)


def test_every_capability_is_enforced_on_every_route_that_needs_it(setup, db):
    b, m, am = setup[0], setup[1], setup[2]
    for r in KEYED:
        if not r["cap"]:
            continue
        lacking = [c for c in CAPS if c not in r["cap"].split("|")]
        k = api_key(db, m, am, caps=lacking)
        for prefix in ("", "/api") if "api" in r["flags"] else ("",):
            method, path = sample(r, prefix=prefix)
            st, j = call(b, method, path, k, body_for(r))
            assert st == 403 and j["error"] == "api_key_missing_capability", (rid(r), prefix, st, j)
            shape(st, j, "api_key_missing_capability")
            # and an oversized body does not get past the capability either
            st, j = oversized(b, method, path, k)
            assert st == 403, (rid(r), "oversized", st, j)


def test_every_scoped_route_refuses_a_topic_outside_the_key_scope(setup, db):
    b, m, am, tid = setup[0], setup[1], setup[2], setup[4]
    scoped = api_key(db, m, am, topics=("elsewhere",))
    by_id = api_key(db, m, am, topics=(tid,))
    for r in KEYED:
        if r["scope"] not in ("path", "body"):
            continue
        for prefix in ("", "/api"):
            method, path = sample(r, prefix=prefix)
            st, j = call(b, method, path, scoped, body_for(r))
            assert st == 403, (rid(r), prefix, st, j)
            shape(st, j, "api_key_topic_out_of_scope")
            # a scope by id covers the topic's name (the request then reaches its state checks;
            # a stream that would stay open is test_sse.py's)
            if path.endswith("/stream"):
                continue
            st, j = call(b, method, path, by_id, body_for(r))
            assert st != 403 or j["error"] not in ("api_key_topic_out_of_scope", "api_key_missing_capability"), \
                (rid(r), st, j)


def test_member_routes_do_not_exist_for_a_mesh_wide_key(setup, db):
    b, m = setup[0], setup[1]
    mesh_wide = api_key(db, m, None)
    for r in KEYED:
        if "member" not in r["flags"]:
            continue
        method, path = sample(r)
        st, j = call(b, method, path, mesh_wide, body_for(r))
        # §12.6's writes say why (400 api_key_has_no_issuer); to the others the route does not exist
        want = (400, "api_key_has_no_issuer") if "issuer" in r["flags"] else (404, "not_found")
        assert st == want[0], (rid(r), st, j)
        shape(st, j, want[1])


def test_an_oversized_body_with_a_good_key_is_413_payload_too_large(setup, db):
    b, m, am = setup[0], setup[1], setup[2]
    k = api_key(db, m, am)
    for r in KEYED:
        if r["body"] == "any" or r["method"] not in ("POST", "PATCH"):
            continue
        for prefix in ("", "/api") if "api" in r["flags"] else ("",):
            method, path = sample(r, prefix=prefix)
            st, j = oversized(b, method, path, k)
            assert st == 413, (rid(r), prefix, st, j)
            if "ok" in r["flags"]:
                assert j["ok"] is False
            shape(st, j, "payload_too_large")


def test_a_non_member_seal_gets_the_non_member_answer_before_any_state(setup, db):
    b, m, am, bm = setup[0], setup[1], setup[2], setup[3]
    kb = api_key(db, m, bm)
    # alice's copy exists: bob, no topic member, learns nothing of it
    body = {"memberId": am.id, "encryptedKey": base64.b64encode(bytes(80)).decode(),
            "nonce": base64.b64encode(bytes(24)).decode()}
    for prefix in ("", "/api"):
        st, j = call(b, "POST", prefix + "/v1/topics/general/seal", kb, body)
        assert st == 404, (st, j)
        shape(st, j, "not_a_member")


def test_unknown_rest_paths_are_404_after_the_key_check(setup, db):
    b, m, am = setup[0], setup[1], setup[2]
    k = api_key(db, m, am)
    for path in ("/v1/nothing-here", "/api/v1/nothing-here", "/v1/topics/general/key/extra"):
        st, j = call(b, "GET", path)
        assert st == 401, (path, st)
        st, j = call(b, "GET", path, k)
        assert st == 404, (path, st)
        shape(st, j, "not_found")
    st, hdrs, data = b.request("GET", "/api/nothing")
    assert (st, data) == (404, b"not found")
