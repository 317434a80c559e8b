"""Sealed broadcasts and groups from our clients (issues 18 and 20, the
gaps after their first implementation): a broadcast is one crypto_box
envelope per member under one broadcastId, and costs one unit of the send
rate limit however many members there are (docs/protocol.md §3.1), but the
id cannot stretch one token further than the mesh's real recipients; an
'@group' message from meshctl or `meshctl mcp` is sealed per member of
list_members{group} (whom the broker resolves the group to now, §12.8) and
never goes in clear.  Real broker (its default rate limit: 60/min, burst 10)
and PostgreSQL."""

import asyncio
import json

import mbtest
from mbtest import Peer, b64e, run
from test_claude_e2e import assert_no_plaintext, db_rows_text
from test_mcp import Mcp, connected, text
from test_meshctl import make_c_member, meshctl


def test_a_broadcast_to_15_members_costs_one_send_of_the_rate_limit(broker, mesh, pg, db, tmp_path):
    b = broker()  # the default limit: burst 10
    m = mesh()
    acfg, arow = make_c_member(tmp_path, pg, db, m, "alice")
    others = [m.add(f"peer{i:02d}") for i in range(15)]
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}
    secret = "fifteen-way secret"

    async def go():
        loop = asyncio.get_running_loop()
        peers = [Peer(b, o) for o in others]
        for p in peers:
            await p.join()
        # twice in a row: 2 tokens of the 10, not 30
        for k in range(2):
            r = await loop.run_in_executor(
                None, lambda: meshctl(["send", "*", f"{secret} {k}", "--config", str(acfg)], env=env))
            ack = json.loads(r.stdout.strip().splitlines()[-1])
            assert ack["queued"] is True and ack["recipients"] == 15 and len(set(ack["messageIds"])) == 15, ack
            for p in peers:
                push = await p.push(timeout=15)
                assert_no_plaintext("a relayed envelope", [json.dumps(push)], secret)
                assert p.decrypt(push) == f"{secret} {k}", p.member.name
        for p in peers:
            await p.close()

    run(go(), 90)
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.delivery d JOIN mesh.message_queue q ON q.id = d.message_id "
                  "WHERE q.sender_member_id = %s", (arow[0],))
        assert c.fetchone()[0] == 30
    assert_no_plaintext("mesh.message_queue", db_rows_text(db, m.id), secret)
    # and from the MCP server: 15 members, one sealed envelope each, all acked
    mc = Mcp(b, acfg)
    try:
        mc.start()
        r = mc.call_until("send_message", connected, to="*", message=secret + " via mcp")
        assert not r["isError"] and "15 members" in text(r), text(r)
    finally:
        mc.stop()


def test_a_broadcast_id_does_not_stretch_past_real_recipients(broker, mesh):
    b = broker()  # burst 10
    m = mesh()
    a, bob = m.add("alice"), m.add("bob")

    async def go():
        p = Peer(b, a)
        await p.join()
        # the same recipient again and again under one broadcastId: each is a send of its own
        codes = []
        for i in range(12):
            f = p.send_frame_direct(bob.pubkey, f"again {i}", id=f"dup-{i}")
            f["broadcastId"] = "bc-dup"
            ack = await p.send_and_ack(f)
            codes.append(ack.get("code") if not ack["queued"] else "ok")
        assert codes[:10] == ["ok"] * 10 and codes[10:] == ["rate_limit"] * 2, codes
        await p.close()

    run(go(), 60)
    b2 = broker()
    m2 = mesh()
    a2 = m2.add("alice")
    m2.add("bob")

    async def go2():
        p = Peer(b2, a2)
        await p.join()
        # envelopes to keys of nobody ride on the first token, then pay: no_recipient, then rate_limit
        codes = []
        for i in range(14):
            nobody = mbtest.Member(m2, f"ghost{i}", "member", None).pubkey
            f = p.send_frame_direct(nobody, "to nobody", id=f"ghost-{i}")
            f["broadcastId"] = "bc-ghosts"
            ack = await p.send_and_ack(f)
            codes.append(ack.get("code"))
        assert set(codes[:10]) == {"no_recipient"} and "rate_limit" in codes[10:], codes
        await p.close()

    run(go2(), 60)


def test_group_sends_from_meshctl_and_mcp_are_sealed_per_member(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh()
    acfg, _ = make_c_member(tmp_path, pg, db, m, "alice")
    bob, carol, dave = m.add("bob"), m.add("carol"), m.add("dave")
    with db.cursor() as c:  # bob is in @reviewers while offline (his saved groups)
        c.execute("UPDATE mesh.member SET saved_groups = '[{\"name\": \"reviewers\"}]' WHERE id = %s", (bob.id,))
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}
    secret, msecret = "group secret plan", "group secret from claude"

    async def go():
        loop = asyncio.get_running_loop()
        cp, dp = Peer(b, carol), Peer(b, dave)
        await cp.connect()
        assert (await cp.hello(groups=[{"name": "reviewers"}]))["type"] == "hello_ack"
        await dp.join()
        # what the broker would resolve @reviewers to, asked read-only
        tag = mbtest.new_id(10)
        await dp.send_json({"type": "list_members", "group": "@reviewers", "_reqId": tag})
        r = await dp.wait_for(lambda x: x.get("_reqId") == tag)
        assert r["type"] == "members_list" and r["group"] == "reviewers" and sorted(x["displayName"] for x in r["members"]) == ["bob", "carol"]
        await dp.send_json({"type": "list_members", "group": "", "_reqId": "bad"})
        r = await dp.wait_for(lambda x: x.get("_reqId") == "bad")
        assert r["type"] == "error" and r["code"] == "malformed", r
        r = await loop.run_in_executor(
            None, lambda: meshctl(["send", "@reviewers", secret, "--config", str(acfg)], env=env))
        ack = json.loads(r.stdout.strip().splitlines()[-1])
        assert ack["queued"] is True and ack["recipients"] == 2, ack
        push = await cp.push(timeout=15)
        assert_no_plaintext("the frame relayed to carol", [json.dumps(push)], secret)
        assert cp.decrypt(push) == secret
        await dp.quiet(lambda x: x.get("type") == "push", 1.0)  # dave is not a reviewer
        bp = Peer(b, bob)
        await bp.join()
        push = await bp.push(timeout=15)
        assert_no_plaintext("the frame relayed to bob", [json.dumps(push)], secret)
        assert bp.decrypt(push) == secret
        # the MCP server: the same, from its session key
        mc = Mcp(b, acfg)
        try:
            await loop.run_in_executor(None, mc.start)
            r = await loop.run_in_executor(
                None, lambda: mc.call_until("send_message", connected, to="@reviewers", message=msecret))
            assert not r["isError"] and "2 members" in text(r), text(r)
        finally:
            mc.stop()
        for p in (cp, bp):
            push = await p.push(timeout=15)
            assert_no_plaintext("a relayed envelope", [json.dumps(push)], msecret)
            assert p.decrypt(push) == msecret
        await dp.quiet(lambda x: x.get("type") == "push", 0.5)
        for p in (cp, dp, bp):
            await p.close()

    run(go(), 90)
    rows = db_rows_text(db, m.id)
    assert_no_plaintext("mesh.message_queue", rows, secret)
    assert_no_plaintext("mesh.message_queue", rows, msecret)
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.message_queue WHERE mesh_id = %s AND target_spec LIKE '@%%'", (m.id,))
        assert c.fetchone()[0] == 0, "no message went to @reviewers in clear"
    # an old client's raw base64 @group send still works broker-side
    async def old():
        ap = Peer(b, m.add("olga"))
        await ap.join()
        f = {"type": "send", "id": "old-1", "targetSpec": "@reviewers", "priority": "now",
             "nonce": b64e(b"n" * 24), "ciphertext": b64e(b"old style")}
        ack = await ap.send_and_ack(f)
        assert ack["queued"] is True, ack
        await ap.close()

    run(old(), 30)
