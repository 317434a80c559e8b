"""POST /join with signed invites (issue 8, acceptance 1 and 2): every error
code of docs/protocol.md §6, idempotent re-join, concurrent joins never over
max_uses, the member_joined audit row, and meshctl invite / join end to end."""

import asyncio
import concurrent.futures
import json
import os
import stat

import pytest

import invites
from invites import invite, make_payload, new_key, post_join, token_of, used_count
from mbtest import Peer, Member, run
import mbtest


def test_join_with_a_valid_invite_makes_a_member_and_an_audit_row(broker, mesh, db):
    b = broker()
    m = mesh("owner")
    token, payload, iid = invite(db, m, role="admin")
    _, pub = new_key()
    st, j = post_join(b, token, payload, pub, "carol")
    assert st == 200 and j["ok"] is True and len(j["memberId"]) == 32, j
    assert "alreadyMember" not in j
    with db.cursor() as c:
        c.execute("SELECT peer_pubkey, display_name, role, revoked_at FROM mesh.member WHERE id = %s",
                  (j["memberId"],))
        assert c.fetchone() == (pub, "carol", "admin", None)
        c.execute("SELECT actor_member_id, payload FROM mesh.audit_log WHERE mesh_id = %s "
                  "AND event_type = 'member_joined'", (m.id,))
        rows = c.fetchall()
    assert len(rows) == 1 and rows[0][0] == j["memberId"], rows
    assert rows[0][1]["memberId"] == j["memberId"] and rows[0][1]["inviteId"] == iid
    assert used_count(db, iid) == 1


def test_member_joined_keeps_the_audit_chain_verifiable(broker, mesh, db, pg):
    b = broker()
    m = mesh("owner")
    token, payload, _ = invite(db, m, max_uses=3)
    for i in range(3):
        assert post_join(b, token, payload, new_key()[1], f"j{i}")[0] == 200
    r = invites.meshctl(["audit", "verify", m.id], env={"DATABASE_URL": pg.url})
    assert r.stdout.strip() == "audit: 3 rows, chain intact", r.stdout


def test_join_again_with_the_same_pubkey_is_already_member_and_counts_once(broker, mesh, db):
    b = broker()
    m = mesh("owner")
    token, payload, iid = invite(db, m, max_uses=5)
    _, pub = new_key()
    st1, j1 = post_join(b, token, payload, pub)
    st2, j2 = post_join(b, token, payload, pub.upper())
    assert st1 == 200 and st2 == 200, (j1, j2)
    assert j2["ok"] is True and j2["alreadyMember"] is True and j2["memberId"] == j1["memberId"]
    assert used_count(db, iid) == 1


def test_tampered_token_is_invite_bad_signature(broker, mesh, db):
    b = broker()
    m = mesh("owner")
    token, payload, _ = invite(db, m)
    _, pub = new_key()
    forged = dict(payload, role="admin")
    st, j = post_join(b, token_of(forged), forged, pub)
    assert (st, j) == (400, {"ok": False, "error": "invite_bad_signature"})
    # a character of the token changed
    bad = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    st, j = post_join(b, bad, payload, pub)
    assert (st, j) == (400, {"ok": False, "error": "invite_bad_signature"})
    st, j = post_join(b, "not base64 at all!", payload, pub)
    assert (st, j) == (400, {"ok": False, "error": "invite_bad_signature"})


def test_invite_signed_by_a_non_owner_key_is_invite_owner_mismatch(broker, mesh, db):
    b = broker()
    m = mesh("owner")
    other, _ = new_key()
    p = make_payload(m, signer=other)
    t = token_of(p)
    invites.record_invite(db, m, t)
    _, pub = new_key()
    st, j = post_join(b, t, p, pub)
    assert (st, j) == (400, {"ok": False, "error": "invite_owner_mismatch"})


@pytest.mark.parametrize("state,error", [("expired", "invite_expired"), ("revoked", "invite_revoked")])
def test_expired_and_revoked_invites_are_refused(broker, mesh, db, state, error):
    b = broker()
    m = mesh("owner")
    if state == "expired":
        token, payload, iid = invite(db, m, expires_in=-60)
    else:
        token, payload, iid = invite(db, m, revoked=True)
    _, pub = new_key()
    st, j = post_join(b, token, payload, pub)
    assert (st, j) == (400, {"ok": False, "error": error})
    assert used_count(db, iid) == 0


def test_expired_row_with_a_fresh_signed_expiry_is_still_expired(broker, mesh, db):
    """the invite row is the authority"""
    b = broker()
    m = mesh("owner")
    p = make_payload(m, expires_in=3600)
    t = token_of(p)
    invites.record_invite(db, m, t, expires_in=-5)
    _, pub = new_key()
    assert post_join(b, t, p, pub) == (400, {"ok": False, "error": "invite_expired"})


def test_max_uses_two_refuses_the_third_join(broker, mesh, db):
    b = broker()
    m = mesh("owner")
    token, payload, iid = invite(db, m, max_uses=2)
    for i in range(2):
        st, j = post_join(b, token, payload, new_key()[1], f"p{i}")
        assert st == 200 and j["ok"], j
    st, j = post_join(b, token, payload, new_key()[1], "p3")
    assert (st, j) == (400, {"ok": False, "error": "invite_exhausted"})
    assert used_count(db, iid) == 2


def test_eight_concurrent_joins_on_a_single_use_invite_make_exactly_one_member(broker, mesh, db):
    b = broker()
    m = mesh("owner")
    token, payload, iid = invite(db, m, max_uses=1)
    keys = [new_key()[1] for _ in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda k: post_join(b, token, payload, k, "racer"), keys))
    oks = [j for st, j in results if st == 200]
    assert len(oks) == 1, results
    assert all(j == {"ok": False, "error": "invite_exhausted"} for st, j in results if st != 200), results
    assert used_count(db, iid) == 1
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.member WHERE mesh_id = %s AND display_name = 'racer'", (m.id,))
        assert c.fetchone()[0] == 1


def test_payload_of_another_mesh_is_invite_mesh_mismatch(broker, mesh, db):
    b = broker()
    a, other = mesh("a"), mesh("b")
    token_a, _, iid = invite(db, a)
    payload_b = make_payload(other)
    _, pub = new_key()
    st, j = post_join(b, token_a, payload_b, pub)
    assert (st, j) == (400, {"ok": False, "error": "invite_mesh_mismatch"})
    # a token of mesh b that names no invite row of b, with mesh a's payload
    # renamed to b's id: the row decides
    p = make_payload(other)
    t = token_of(p)
    invites.record_invite(db, a, t)
    st, j = post_join(b, t, p, pub)
    assert (st, j) == (400, {"ok": False, "error": "invite_mesh_mismatch"})
    assert used_count(db, iid) == 0


def test_unknown_invite_is_invite_not_found(broker, mesh, db):
    b = broker()
    m = mesh("owner")
    p = make_payload(m)
    assert post_join(b, token_of(p), p, new_key()[1]) == (400, {"ok": False, "error": "invite_not_found"})


@pytest.mark.parametrize("drop", ["invite_token", "invite_payload", "peer_pubkey", "display_name"])
def test_missing_fields_are_the_400_of_section_6(broker, mesh, db, drop):
    b = broker()
    m = mesh("owner")
    token, payload, _ = invite(db, m)
    body = {"invite_token": token, "invite_payload": payload, "peer_pubkey": new_key()[1],
            "display_name": "x"}
    del body[drop]
    st, j = post_join(b, None, None, None, raw=json.dumps(body))
    assert (st, j) == (400, {"ok": False,
                             "error": "invite_token, invite_payload, peer_pubkey, display_name required"})


@pytest.mark.parametrize("pub", ["abc", "zz" * 32, "a" * 63, "a" * 65, "a" * 64 + "\n"])
def test_bad_peer_pubkey_is_refused(broker, mesh, db, pub):
    b = broker()
    m = mesh("owner")
    token, payload, iid = invite(db, m)
    st, j = post_join(b, token, payload, pub)
    assert (st, j) == (400, {"ok": False, "error": "peer_pubkey must be 64 hex chars (32 bytes)"})
    assert used_count(db, iid) == 0


def test_join_answers_json_for_bad_json_and_other_methods(broker):
    b = broker()
    st, hdrs, data = b.request("POST", "/join", body=b"{nope", headers={"Content-Type": "application/json"})
    assert st == 400 and json.loads(data)["ok"] is False
    st, hdrs, data = b.request("GET", "/join")
    assert st == 405 and hdrs["content-type"].startswith("application/json") and json.loads(data)["ok"] is False


def test_revoked_member_rejoining_is_refused(broker, mesh, db):
    b = broker()
    m = mesh("owner")
    token, payload, iid = invite(db, m, max_uses=3)
    _, pub = new_key()
    st, j = post_join(b, token, payload, pub)
    assert st == 200
    with db.cursor() as c:
        c.execute("UPDATE mesh.member SET revoked_at = now() WHERE id = %s", (j["memberId"],))
    st, j2 = post_join(b, token, payload, pub)
    assert st == 403 and j2 == {"ok": False, "error": "member_revoked"}
    assert used_count(db, iid) == 1


def test_meshctl_invite_and_join_make_a_member_that_talks_and_is_then_revoked(broker, mesh, pg, db, tmp_path):
    """acceptance 2: invite create → join → connect/send as they are; revoked → no hello"""
    b = broker()
    env = {"DATABASE_URL": pg.url, "MESHBROKER_URL": b.ws_url + "/ws"}
    owner_key = tmp_path / "owner.key"
    invites.meshctl(["keygen", "--out", str(owner_key)])
    slug = "t-" + mbtest.new_id(10).lower()
    mesh_id = invites.meshctl(["mesh", "create", "Join test", "--slug", slug, "--owner-key", str(owner_key)],
                              env=env).stdout.strip().split()[-1]
    with db.cursor() as c:
        c.execute("SELECT id FROM mesh.mesh WHERE slug = %s", (slug,))
        mesh_id = c.fetchone()[0]
    # a Python member of the same mesh to talk to
    m = mbtest.Mesh.__new__(mbtest.Mesh)
    m.db, m.id, m.slug, m.members = db, mesh_id, slug, []
    alice = m.add("alice")

    r = invites.meshctl(["invite", "create", slug, "--owner-key", str(owner_key), "--max-uses", "2",
                         "--expires", "1h", "--local"], env=env)
    token, link = r.stdout.strip().splitlines()
    assert link == "ic://join/" + token
    lst = invites.meshctl(["invite", "list", slug], env=env).stdout
    assert "live" in lst and "0/2" in lst, lst
    # a key that is not the owner's cannot sign
    other = tmp_path / "other.key"
    invites.meshctl(["keygen", "--out", str(other)])
    bad = invites.meshctl(["invite", "create", slug, "--owner-key", str(other), "--local"], env=env, check=False)
    assert bad.returncode == 1 and "owner key" in bad.stderr

    cfg = tmp_path / "bob.json"
    jenv = {"MESHBROKER_URL": b.ws_url + "/ws"}
    r = invites.meshctl(["join", link, "--name", "bob", "--out", str(cfg)], env=jenv)
    bob_id = r.stdout.strip()
    assert stat.S_IMODE(os.stat(cfg).st_mode) == 0o600
    conf = json.load(open(cfg))
    assert conf["memberId"] == bob_id and conf["meshId"] == mesh_id and conf["displayName"] == "bob"
    assert "0/2" not in invites.meshctl(["invite", "list", slug], env=env).stdout

    async def talk():
        pa = Peer(b, alice)
        await pa.join()
        # bob (the C client, from the joined config as it is) sends to alice
        r = await asyncio.to_thread(invites.meshctl, ["send", alice.pubkey, "hello from bob", "--config",
                                                      str(cfg)], {})
        push = await pa.push(timeout=20)
        assert pa.decrypt(push) == "hello from bob"
        assert push["senderPubkey"] == conf["pubkey"]
        # alice sends to bob, bob's meshctl connect decrypts it
        proc = await asyncio.create_subprocess_exec(mbtest.require_bin("meshctl"), "connect", "--config",
                                                    str(cfg), "--count", "1", "--timeout", "20",
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        await asyncio.sleep(0)
        # wait for bob's hello before sending (queued delivery works either way)
        await pa.send_direct(conf["pubkey"], "hi bob")
        out, err = await asyncio.wait_for(proc.communicate(), 40)
        assert proc.returncode == 0, err
        texts = [json.loads(l).get("text") for l in out.decode().splitlines() if l.strip()]
        assert "hi bob" in texts, out
        await pa.close()

    run(talk())
    invites.meshctl(["member", "revoke", mesh_id, bob_id], env=env)
    r = invites.meshctl(["send", alice.pubkey, "after revoke", "--config", str(cfg)], check=False)
    # a revoked member is banned (docs/protocol.md §12.4): refused with code revoked
    assert r.returncode != 0 and "removed from" in (r.stderr + r.stdout), r.stderr
    # the invite is revoked by meshctl too
    iid = invites.meshctl(["invite", "list", slug], env=env).stdout.split()[0]
    invites.meshctl(["invite", "revoke", slug, iid], env=env)
    assert "revoked" in invites.meshctl(["invite", "list", slug], env=env).stdout
    r = invites.meshctl(["join", link, "--name", "dave", "--out", str(tmp_path / "dave.json")], env=jenv,
                        check=False)
    assert r.returncode == 1 and "invite_revoked" in r.stderr, r.stderr
    assert not (tmp_path / "dave.json").exists()


def test_join_body_over_max_message_bytes_is_a_json_413(broker):
    b = broker(MAX_MESSAGE_BYTES=1024)
    st, hdrs, data = b.request("POST", "/join", body=b"{" + b" " * 5000 + b"}",
                               headers={"Content-Type": "application/json"})
    # the route table's one refusal shape, with /join's "ok" (issue 21)
    assert st == 413 and json.loads(data) == {"ok": False, "error": "payload_too_large",
                                              "code": "error.payload_too_large", "status": 413}
