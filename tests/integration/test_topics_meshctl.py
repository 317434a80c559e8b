"""meshctl topic create|list|join|leave|members|history|post|tail (issue 9):
the C client creates topics with its own sealed key, posts version-2 bodies,
reads history decrypted, and re-seals the key for later members while
`topic tail` runs; sealed keys and bodies interoperate both ways with PyNaCl."""

import json
import os
import subprocess
import threading

import nacl.utils

import mbtest
from mbtest import Peer, b64e, run
from test_meshctl import make_c_member, meshctl
from test_topics import open_sealed, request, seal_for, topic_key, v2_body, v2_open


def lines(out):
    return [json.loads(x) for x in out.splitlines() if x.strip().startswith("{")]


def topic_cmd(cfg, env, *args, check=True, timeout=30):
    return meshctl(["topic", *args, "--config", str(cfg)], env=env, check=check, timeout=timeout)


def has_copy(db, topic_id, member_id):
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.topic_member_key WHERE topic_id = %s AND member_id = %s",
                  (topic_id, member_id))
        return c.fetchone()[0] == 1


def test_meshctl_topics_end_to_end_with_re_seal_by_tail(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh()
    acfg, (a_id, _) = make_c_member(tmp_path, pg, db, m, "alice")
    bcfg, (b_id, _) = make_c_member(tmp_path, pg, db, m, "bob")
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}

    created = lines(topic_cmd(acfg, env, "create", "ops", "--description", "operations").stdout)
    assert len(created) == 1 and created[0]["name"] == "ops" and created[0]["created"] is True, created
    tid = created[0]["id"]
    with db.cursor() as c:
        c.execute("SELECT sealed_by FROM mesh.topic_member_key WHERE topic_id = %s AND member_id = %s",
                  (tid, a_id))
        assert c.fetchone()[0] == a_id
    topic_cmd(acfg, env, "post", "ops", "sealed before bob")
    topic_cmd(bcfg, env, "join", "ops")
    members = lines(topic_cmd(bcfg, env, "members", tid).stdout)
    assert sorted(x["memberId"] for x in members) == sorted([a_id, b_id])
    assert [t["name"] for t in lines(topic_cmd(bcfg, env, "list").stdout)] == ["ops"]
    # bob has no key yet: post refuses with a clear line, history shows no text
    r = topic_cmd(bcfg, env, "post", "ops", "x", check=False)
    assert r.returncode == 1 and "re-seal" in r.stderr, r.stderr
    h = lines(topic_cmd(bcfg, env, "history", "ops").stdout)
    assert len(h) == 1 and h[0]["bodyVersion"] == 2 and "text" not in h[0], h
    # alice's tail re-seals for bob
    exe = mbtest.require_bin("meshctl")
    tail = subprocess.Popen([exe, "topic", "tail", "ops", "--timeout", "60", "--config", str(acfg)],
                            env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(iter(tail.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        mbtest.wait_until(lambda: has_copy(db, tid, b_id), 30, what="tail to seal for bob")
        h = lines(topic_cmd(bcfg, env, "history", "ops").stdout)
        assert [x.get("text") for x in h] == ["sealed before bob"], h
        topic_cmd(bcfg, env, "post", tid, "bob can write too", "--priority", "now")
        mbtest.wait_until(lambda: any('"push"' in x for x in list(seen)), 30, what="tail to print the push")
    finally:
        tail.terminate()
        reader.join(20)
        err = tail.stderr.read()
        tail.wait(20)
    assert tail.returncode == 0, err
    pushed = [x for x in lines("".join(seen)) if x.get("type") == "push"]
    assert [x.get("text") for x in pushed] == ["bob can write too"], (seen, err)
    with db.cursor() as c:
        c.execute("SELECT sealed_by FROM mesh.topic_member_key WHERE topic_id = %s AND member_id = %s",
                  (tid, b_id))
        assert c.fetchone()[0] == a_id
    h = lines(topic_cmd(acfg, env, "history", "ops", "--limit", "10").stdout)
    assert [x.get("text") for x in h] == ["sealed before bob", "bob can write too"], h
    topic_cmd(bcfg, env, "leave", "ops")
    r = topic_cmd(bcfg, env, "history", "ops", check=False)
    assert r.returncode == 1 and "not_a_member" in r.stderr, r.stderr
    r = topic_cmd(bcfg, env, "join", "no-such", check=False)
    assert r.returncode == 1 and "topic_not_found" in r.stderr, r.stderr


def test_sealed_keys_and_v2_bodies_interoperate_with_pynacl_both_ways(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh("py")
    py = m.members[0]
    ccfg, (c_id, c_pub) = make_c_member(tmp_path, pg, db, m, "cpeer")
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}
    key = nacl.utils.random(32)

    async def python_side():
        p = Peer(b, py)
        await p.join()
        enc, nonce = seal_for(py, key)
        r = await request(p, {"type": "topic_create", "name": "interop", "encryptedKey": enc, "nonce": nonce},
                          "topic_created")
        tid = r["topic"]["id"]
        n, ct = v2_body(key, "from python, sealed by pynacl")
        ack = await p.send_and_ack({"type": "send", "id": "p1", "targetSpec": "#" + tid, "priority": "now",
                                    "nonce": n, "ciphertext": ct, "bodyVersion": 2})
        assert ack["queued"], ack
        await p.close()
        return tid

    tid = run(python_side(), 30)
    topic_cmd(ccfg, env, "join", tid)

    # PyNaCl seals for the C member; meshctl opens it and reads the v2 body
    async def python_seals():
        p = Peer(b, py)
        await p.join()
        enc, nonce = seal_for_pubkey(c_pub, key)
        s = await request(p, {"type": "topic_seal", "topic": tid, "memberId": c_id, "encryptedKey": enc,
                              "nonce": nonce}, "topic_sealed")
        assert s["type"] == "topic_sealed", s
        await p.close()

    run(python_seals(), 30)
    h = lines(topic_cmd(ccfg, env, "history", "interop").stdout)
    assert [x.get("text") for x in h] == ["from python, sealed by pynacl"], h
    # meshctl posts v2; PyNaCl opens it with the same key
    topic_cmd(ccfg, env, "post", "interop", "from C, secretbox")

    # a second python member gets its copy sealed by meshctl (C seals, PyNaCl opens)
    py2 = m.add("py2")

    async def py2_joins():
        p = Peer(b, py2)
        await p.join()
        await p.send_json({"type": "topic_join", "topic": tid})
        await request(p, {"type": "topic_list"}, "topic_list_response")
        await p.close()

    run(py2_joins(), 30)
    exe = mbtest.require_bin("meshctl")
    tail = subprocess.Popen([exe, "topic", "tail", "interop", "--timeout", "60", "--config", str(ccfg)],
                            env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        mbtest.wait_until(lambda: has_copy(db, tid, py2.id), 30, what="meshctl to seal for py2")
    finally:
        tail.terminate()
        tail.communicate(timeout=20)

    async def py2_reads():
        p = Peer(b, py2)
        await p.join()
        k = await topic_key(p, tid)
        assert open_sealed(py2, k["encryptedKey"], k["nonce"]) == key
        h = await request(p, {"type": "topic_history", "topic": tid}, "topic_history_response")
        texts = [v2_open(key, x["nonce"], x["ciphertext"]) for x in h["messages"]]
        assert texts == ["from C, secretbox", "from python, sealed by pynacl"], texts
        await p.close()

    run(py2_reads(), 30)


def seal_for_pubkey(ed_pub_hex, key):
    import nacl.public
    import nacl.signing
    eph = nacl.public.PrivateKey.generate()
    nonce = nacl.utils.random(24)
    xpk = nacl.signing.VerifyKey(bytes.fromhex(ed_pub_hex)).to_curve25519_public_key()
    box = nacl.public.Box(eph, xpk).encrypt(key, nonce).ciphertext
    return b64e(bytes(eph.public_key) + box), b64e(nonce)
