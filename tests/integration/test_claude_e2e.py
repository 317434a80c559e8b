"""Claude Code end to end, the MCP and messaging half of issue 20: nothing in
clear from our clients (a broadcast is one crypto_box envelope per member, a
topic post is v2 under the topic key), every stored message notified once,
topics from Claude, member names wherever a pubkey goes (offline members
included), and one session key per `meshctl mcp` run.  `meshctl mcp` is
driven over stdio as Claude Code would (test_mcp.py's client); real broker
and PostgreSQL."""

import asyncio
import json
import time

import mbtest
from mbtest import Peer, b64e, run
from test_mcp import Mcp, connected, text
from test_meshctl import make_c_member, meshctl
from test_topics_meshctl import has_copy, lines, topic_cmd


def notifications(s, seconds, until=None):
    """the claude/channel notifications s writes within seconds (or until
    until(list) holds, then half a second more to catch repeats)"""
    got = []
    deadline = time.monotonic() + seconds
    done_at = None
    while time.monotonic() < (done_at or deadline):
        try:
            m = s.next(max(0.05, min(deadline, done_at or deadline) - time.monotonic()))
        except Exception:
            break
        if m.get("method") == "notifications/claude/channel":
            got.append(m["params"])
            if until and done_at is None and until(got):
                done_at = time.monotonic() + 0.5
    return got


def db_rows_text(db, mesh_id):
    """every stored row of the mesh's messages, as text"""
    with db.cursor() as c:
        c.execute("SELECT row_to_json(q)::text FROM mesh.message_queue q WHERE mesh_id = %s", (mesh_id,))
        rows = [r[0] for r in c.fetchall()]
        c.execute("SELECT row_to_json(t)::text FROM mesh.topic_message t JOIN mesh.topic x ON x.id = t.topic_id "
                  "WHERE x.mesh_id = %s", (mesh_id,))
        rows += [r[0] for r in c.fetchall()]
    return rows


def assert_no_plaintext(where, blobs, secret):
    b = b64e(secret.encode())
    for x in blobs:
        assert secret not in x and b not in x, f"plaintext of {secret!r} in {where}: {x[:300]}"


def test_broadcast_and_mcp_topic_post_leave_no_plaintext_old_base64_still_arrives(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh()
    acfg, _ = make_c_member(tmp_path, pg, db, m, "alice")
    bcfg, _ = make_c_member(tmp_path, pg, db, m, "bob")
    carol = m.add("carol")
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}
    secret, tsecret = "broadcast secret plan", "topic secret plan"

    async def go():
        loop = asyncio.get_running_loop()
        p = Peer(b, carol)
        await p.join()
        # bob is offline: his envelope is queued all the same
        r = await loop.run_in_executor(None, lambda: meshctl(["send", "*", secret, "--config", str(acfg)], env=env))
        ack = json.loads(r.stdout.strip().splitlines()[-1])
        assert ack["broadcast"] is True and ack["queued"] is True and ack["recipients"] == 2, ack
        push = await p.push(timeout=15)
        assert_no_plaintext("the frame relayed to carol", [json.dumps(push)], secret)
        assert p.decrypt(push) == secret, "carol opens her own envelope"
        assert push["senderName"] == "alice"
        # an old client's base64 broadcast still goes out (received as unencrypted)
        await p.send_broadcast("old style hello")
        await p.close()

    run(go(), 60)
    assert_no_plaintext("mesh.message_queue", db_rows_text(db, m.id), secret)
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.message_queue WHERE mesh_id = %s AND target_spec = '*'", (m.id,))
        assert c.fetchone()[0] == 1, "only carol's old-style broadcast goes to '*'"

    created = lines(topic_cmd(acfg, env, "create", "ops").stdout)
    tid = created[0]["id"]
    topic_cmd(bcfg, env, "join", "ops")
    c = Mcp(b, bcfg)
    a = Mcp(b, acfg)
    try:
        c.start()
        got = notifications(c, 20, until=lambda g: len(g) >= 2)
        by = {n["content"]: n["meta"] for n in got}
        assert set(by) == {secret, "old style hello"}, got
        assert by[secret]["from"] == "alice" and "unencrypted" not in by[secret]
        assert by["old style hello"]["from"] == "carol" and by["old style hello"]["unencrypted"] == "true"
        a.start()
        r = a.call_until("topic_post", connected, topic="ops", message=tsecret)
        assert not r["isError"], text(r)
        r = a.call("send_message", to="#ops", message=tsecret + " again")
        assert not r["isError"], text(r)
        with db.cursor() as cur:
            cur.execute("SELECT body_version FROM mesh.topic_message WHERE topic_id = %s", (tid,))
            assert [v for (v,) in cur.fetchall()] == [2, 2], "MCP topic posts are v2"
        # meshctl send '#ops' is meshctl topic post: v2 under the key
        meshctl(["send", "#ops", tsecret + " from the shell", "--config", str(acfg)], env=env)
        with db.cursor() as cur:
            cur.execute("SELECT body_version FROM mesh.topic_message WHERE topic_id = %s", (tid,))
            assert [v for (v,) in cur.fetchall()] == [2, 2, 2]
        assert_no_plaintext("the database", db_rows_text(db, m.id), tsecret)
    finally:
        a.stop()
        c.stop()


def test_messages_stored_before_the_mcp_server_started_are_notified_once(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh()
    acfg, _ = make_c_member(tmp_path, pg, db, m, "alice")
    bcfg, _ = make_c_member(tmp_path, pg, db, m, "bob")
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}
    for i in range(3):  # bob is offline: by name, queued
        meshctl(["send", "bob", f"stored {i}", "--config", str(acfg)], env=env)
    c = Mcp(b, bcfg)
    try:
        time.sleep(1.0)  # the server connects (and the broker pushes) before initialized
        c.start()
        got = notifications(c, 20, until=lambda g: len(g) >= 3)
        assert sorted(n["content"] for n in got) == [f"stored {i}" for i in range(3)], got
        assert len({n["meta"]["message_id"] for n in got}) == 3
        assert all(n["meta"]["from"] == "alice" for n in got)
        for i in range(2):
            meshctl(["send", "bob", f"live {i}", "--config", str(acfg)], env=env)
        got = notifications(c, 20, until=lambda g: len(g) >= 2)
        assert sorted(n["content"] for n in got) == ["live 0", "live 1"], got
        got = c.call("check_messages")["structuredContent"]["messages"]
        assert len(got) == 5 and len({x["messageId"] for x in got}) == 5
        assert notifications(c, 1.5) == [], "nothing notified twice"
    finally:
        c.stop()


def test_mcp_joins_a_topic_reads_it_decrypted_posts_v2_and_is_notified_of_a_mention(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh()
    acfg, _ = make_c_member(tmp_path, pg, db, m, "alice")
    bcfg, (b_id, _) = make_c_member(tmp_path, pg, db, m, "bob")
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}
    tid = lines(topic_cmd(acfg, env, "create", "ops", "--description", "operations").stdout)[0]["id"]
    topic_cmd(acfg, env, "post", "ops", "sealed before bob")
    a, c = Mcp(b, acfg), Mcp(b, bcfg)
    try:
        a.start()
        c.start()
        # alice's server opens the key once; from then on it seals it for members waiting for it
        r = a.call_until("topic_read", connected, topic="ops")
        assert [x["text"] for x in r["structuredContent"]["messages"]] == ["sealed before bob"], text(r)
        r = c.call_until("topic_list", lambda r: "#ops" in text(r))
        assert "operations" in text(r) and [t["name"] for t in r["structuredContent"]["topics"]] == ["ops"]
        r = c.call("topic_join", topic="ops")
        assert not r["isError"] and "joined #ops" in text(r), text(r)
        mbtest.wait_until(lambda: has_copy(db, tid, b_id), 20, what="bob's copy sealed by alice's MCP server")
        r = c.call("topic_read", topic="ops")
        assert not r["isError"], text(r)
        msgs = r["structuredContent"]["messages"]
        assert [x["text"] for x in msgs] == ["sealed before bob"] and msgs[0]["from"] == "alice", msgs
        assert msgs[0]["encrypted"] is True
        r = c.call("topic_post", topic="ops", message="bob was here")
        assert not r["isError"], text(r)
        with db.cursor() as cur:
            cur.execute("SELECT body_version FROM mesh.topic_message WHERE topic_id = %s ORDER BY created_at", (tid,))
            assert [v for (v,) in cur.fetchall()] == [2, 2]
        got = notifications(a, 20, until=lambda g: any("bob was here" in n["content"] for n in g))
        n = [x for x in got if x["content"] == "bob was here"]
        assert len(n) == 1 and n[0]["meta"]["topic"] == "ops" and "mention" not in n[0]["meta"], got
        topic_cmd(acfg, env, "post", "ops", "@bob please review")
        got = notifications(c, 20, until=lambda g: any("review" in n["content"] for n in g))
        n = [x for x in got if "review" in x["content"]]
        assert len(n) == 1, got
        assert n[0]["content"] == "@bob please review"
        assert n[0]["meta"]["topic"] == "ops" and n[0]["meta"]["topic_id"] == tid
        assert n[0]["meta"]["mention"] == "true" and n[0]["meta"]["from"] == "alice"
        with db.cursor() as cur:  # the v2 post carried its mentions
            cur.execute("SELECT count(*) FROM mesh.notification WHERE member_id = %s", (b_id,))
            assert cur.fetchone()[0] == 1
    finally:
        a.stop()
        c.stop()


def test_names_reach_offline_members_and_a_session_key_reaches_only_its_session(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh()
    acfg, _ = make_c_member(tmp_path, pg, db, m, "alice")
    bcfg, _ = make_c_member(tmp_path, pg, db, m, "bob")
    a = Mcp(b, acfg)
    c1 = c2 = None
    try:
        a.start()
        r = a.call_until("send_message", connected, to="bob", message="while you were out")
        assert not r["isError"] and "sent to bob" in text(r), text(r)
        c1 = Mcp(b, bcfg)
        c1.start()
        got = notifications(c1, 20, until=lambda g: len(g) >= 1)
        assert [n["content"] for n in got] == ["while you were out"] and got[0]["meta"]["from"] == "alice"
        c2 = Mcp(b, bcfg)
        c2.start()
        r = a.call_until("list_peers", lambda r: text(r).count("- bob ") >= 2)
        bobs = [p for p in r["structuredContent"]["peers"] if p["displayName"] == "bob"]
        assert len({p["pubkey"] for p in bobs}) == 2, "each run has its own session key"
        assert all(p["peerRole"] == "session" and p["memberPubkey"] != p["pubkey"] for p in bobs), bobs
        # which one is c2? the session whose check_messages sees it
        target = bobs[0]["pubkey"]
        r = a.call("send_message", to=target, message="for one session")
        assert not r["isError"], text(r)
        deadline = time.monotonic() + 20
        seen = {}
        while time.monotonic() < deadline and not seen:
            for name, s in (("c1", c1), ("c2", c2)):
                msgs = s.call("check_messages")["structuredContent"]["messages"]
                if any(x["text"] == "for one session" for x in msgs):
                    seen[name] = s
            time.sleep(0.2)
        assert len(seen) == 1, seen
        time.sleep(1.5)
        for name, s in (("c1", c1), ("c2", c2)):
            msgs = s.call("check_messages")["structuredContent"]["messages"]
            assert not any(x["text"] == "for one session" for x in msgs), f"{name} got it too"
    finally:
        for s in (a, c1, c2):
            if s:
                s.stop()


def test_meshctl_send_takes_a_name_and_mcp_labels_several_meshes(broker, mesh, pg, db, tmp_path):
    b = broker()
    m1, m2 = mesh(), mesh()
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    a1, _ = make_c_member(tmp_path / "1", pg, db, m1, "alice")
    a2, _ = make_c_member(tmp_path / "2", pg, db, m2, "alice")
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}
    r = meshctl(["send", "nobody", "x", "--config", str(a1)], env=env, check=False)
    assert r.returncode == 1 and "no member named" in r.stderr, r.stderr
    s = Mcp(b, a1, a2)
    try:
        s.start()
        r = s.call_until("list_peers", lambda r: text(r).count("(you)") >= 2)
        t = text(r)
        assert f"[{m1.name}] alice" in t and f"[{m2.name}] alice" in t, t
        assert {p["mesh"] for p in r["structuredContent"]["peers"]} == {m1.name, m2.name}
    finally:
        s.stop()
