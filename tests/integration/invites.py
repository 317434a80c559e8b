"""invites — helpers for the invite, join and API key tests (issue 8): v1
invite tokens signed in Python exactly as docs/protocol.md §6 says, the rows
meshctl would record, and POST /join."""

import base64
import json
import os
import secrets
import subprocess
import time

import nacl.encoding
import nacl.signing

import mbtest
from mbtest import new_id


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def signed_string(p):
    return "|".join(str(x) for x in (p["v"], p["mesh_id"], p["mesh_slug"], p["broker_url"], p["expires_at"],
                                     p["mesh_root_key"], p["role"], p["owner_pubkey"]))


def make_payload(mesh, signer=None, role="member", expires_in=3600, owner_pubkey=None, broker_url=None):
    signer = signer or mesh.owner
    pub = owner_pubkey or signer.verify_key.encode(nacl.encoding.HexEncoder).decode()
    p = {"v": 1, "mesh_id": mesh.id, "mesh_slug": mesh.slug, "broker_url": broker_url or "ws://127.0.0.1:1/ws",
         "expires_at": int(time.time()) + expires_in, "mesh_root_key": b64url(secrets.token_bytes(32)),
         "role": role, "owner_pubkey": pub}
    p["signature"] = signer.sign(signed_string(p).encode()).signature.hex()
    return p


def token_of(payload):
    return b64url(json.dumps(payload, separators=(",", ":")).encode())


def record_invite(db, mesh, token, max_uses=1, role="member", expires_in=3600, revoked=False):
    """as meshctl does: the row keeps the token's sha256 hex only (issue 22)"""
    iid = new_id()
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.invite (id, mesh_id, token, max_uses, role, expires_at, revoked_at) "
                  "VALUES (%s, %s, mesh.invite_token_hash(%s), %s, %s, now() + make_interval(secs => %s), "
                  "CASE WHEN %s THEN now() END)", (iid, mesh.id, token, max_uses, role, expires_in, revoked))
    return iid


def invite(db, mesh, max_uses=1, role="member", expires_in=3600, revoked=False, **kw):
    """(token, payload, invite id) of an invite recorded in mesh.invite"""
    p = make_payload(mesh, role=role, expires_in=expires_in, **kw)
    t = token_of(p)
    return t, p, record_invite(db, mesh, t, max_uses, role, expires_in, revoked)


def new_key():
    sk = nacl.signing.SigningKey.generate()
    return sk, sk.verify_key.encode(nacl.encoding.HexEncoder).decode()


def post_join(b, token, payload, pubkey, name="joiner", raw=None):
    """(status, parsed JSON body) of POST /join"""
    body = raw if raw is not None else json.dumps(
        {"invite_token": token, "invite_payload": payload, "peer_pubkey": pubkey, "display_name": name})
    st, hdrs, data = b.request("POST", "/join", body=body, headers={"Content-Type": "application/json"})
    assert hdrs.get("content-type", "").startswith("application/json"), f"{st} {hdrs} {data!r}"
    return st, json.loads(data)


def used_count(db, invite_id):
    with db.cursor() as c:
        c.execute("SELECT used_count FROM mesh.invite WHERE id = %s", (invite_id,))
        return c.fetchone()[0]


def meshctl(args, env=None, timeout=30, check=True, cwd="/tmp", input=None):
    exe = mbtest.require_bin("meshctl")
    e = dict(os.environ)
    e.pop("MESHBROKER_API_KEY", None)
    e.update(env or {})
    r = subprocess.run([exe] + args, env=e, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                       input=input)
    if check:
        assert r.returncode == 0, f"meshctl {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


def apikey(pg, mesh, caps="send,read", member=None, *extra):
    """a new API key's secret, made with meshctl apikey create"""
    args = ["apikey", "create", mesh.id, "--caps", caps]
    if member is not None:
        args += ["--member", member.id]
    r = meshctl(args + list(extra), env={"DATABASE_URL": pg.url})
    secret = r.stdout.strip()
    assert secret.startswith("cm_") and len(secret) == 46, r.stdout
    return secret


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}
