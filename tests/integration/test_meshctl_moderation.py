"""meshctl's side of issue 18 (and 20's names): the moderation verbs for a
mesh's owner and admins (kick, disconnect, ban, unban, bans: one line
answers, exit 1 with one stderr line on a refusal, 2 on usage), and
`meshctl send @group` reaching exactly the group's members."""

import asyncio
import base64
import json
import os
import subprocess

import mbtest
from mbtest import Peer, run


def config(tmp_path, m, member, b):
    path = tmp_path / f"{member.name}.json"
    path.write_text(json.dumps({"broker": b.ws_url + "/ws", "meshId": m.id, "memberId": member.id,
                                "displayName": member.name, "pubkey": member.pubkey,
                                "secretKey": member.sk.encode().hex() + member.pubkey}))
    os.chmod(path, 0o600)
    return path


def mc(args, cfg=None):
    e = {k: v for k, v in os.environ.items() if k not in ("MESHBROKER_URL", "MESHCTL_CONFIG")}
    extra = ["--config", str(cfg)] if cfg else []
    return subprocess.run([mbtest.require_bin("meshctl")] + args + extra, env=e, capture_output=True, text=True,
                          timeout=30, cwd="/tmp")


async def amc(args, cfg=None):
    return await asyncio.to_thread(mc, args, cfg)


def refused(r, code):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and r.stdout == "" and len(lines) == 1 and code in lines[0], r
    return lines[0]


def test_meshctl_moderation_verbs_for_admins_only(broker, mesh, tmp_path):
    b = broker()
    m = mesh("bob")
    admin = m.add("admin", role="admin")
    carol = m.add("carol")
    bob = m.members[0]
    acfg, bcfg = config(tmp_path, m, admin, b), config(tmp_path, m, bob, b)

    async def go():
        c = Peer(b, carol)
        await c.join()
        # a plain member: forbidden, one line, exit 1
        for verb in (["kick", "carol"], ["disconnect", "carol"], ["ban", "carol"], ["unban", "carol"]):
            refused(await amc(verb, bcfg), "forbidden")
        r = await amc(["bans"], bcfg)
        assert r.returncode == 0 and r.stdout == "", r
        # usage: exit 2
        for verb in (["kick"], ["ban", "--all"], ["unban", "a", "b"], ["bans", "x"], ["disconnect", "x", "--reason", "y"]):
            r = await amc(verb, acfg)
            assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (verb, r)
        # unknown target
        refused(await amc(["kick", "nobody-here"], acfg), "not_found")
        # kick skips control-plane presences (every hello's today, §12.4): said so
        r = await amc(["kick", "carol"], acfg)
        assert r.returncode == 0 and r.stdout == "kicked 0: nobody (skipped, control plane: carol)\n", r
        # disconnect closes her with 1000
        r = await amc(["disconnect", carol.pubkey[:12]], acfg)
        assert r.returncode == 0 and r.stdout == "disconnected 1: carol\n", r
        assert (await c.wait_closed())[0] == 1000
        # ban with a reason, listed, her hello refused; unban lets her back
        c = Peer(b, carol)
        await c.join()
        r = await amc(["ban", "carol", "--reason", "spam"], acfg)
        assert r.returncode == 0 and r.stdout == "banned carol\n", r
        assert await c.wait_closed() == (4002, "banned")
        r = await amc(["bans"], bcfg)
        assert r.returncode == 0 and r.stdout.startswith(f"carol\t{carol.pubkey}\t"), r
        assert len(r.stdout.splitlines()) == 1
        again = Peer(b, carol)
        await again.connect()
        assert (await again.hello())["code"] == "revoked"
        refused(await amc(["ban", "admin"], acfg), "invalid")  # not yourself
        r = await amc(["unban", "carol"], acfg)
        assert r.returncode == 0 and r.stdout == "unbanned carol\n", r
        assert (await amc(["bans"], acfg)).stdout == ""
        c = Peer(b, carol)
        await c.join()
        await c.close()

    run(go(), 90)


def test_meshctl_send_to_a_group_reaches_exactly_its_members(broker, mesh, tmp_path):
    b = broker()
    m = mesh("alice", "bob", "carol")
    alice, bob, carol = m.members
    acfg = config(tmp_path, m, alice, b)

    async def go():
        bp, cp = Peer(b, bob), Peer(b, carol)
        await bp.join()
        await cp.join()
        await bp.send_json({"type": "join_group", "name": "reviewers", "role": "lead"})
        # wait until the group is visible in the peer list
        for _ in range(50):
            tag = mbtest.new_id(8)
            await cp.send_json({"type": "list_peers", "_reqId": tag})
            pl = await cp.wait_for(lambda x: x.get("_reqId") == tag)
            if any(g.get("name") == "reviewers" for p in pl["peers"] for g in p.get("groups", [])):
                break
            await asyncio.sleep(0.1)
        r = await amc(["send", "@reviewers", "review please", "--timeout", "10"], acfg)
        assert r.returncode == 0, r
        push = await bp.wait_for(lambda x: x.get("type") == "push", 20)
        assert push["senderName"] == "alice"
        # sealed for bob (issue 20's per-member encryption), or the older base64 form
        try:
            text = bp.decrypt(push)
        except Exception:
            text = base64.b64decode(push["ciphertext"]).decode()
        assert text == "review please"
        # carol is not in the group: nothing for her
        try:
            got = await cp.wait_for(lambda x: x.get("type") == "push" and x.get("subtype") != "system", 1.5)
        except Exception:
            got = None
        assert got is None, got
        await bp.close()
        await cp.close()

    run(go(), 60)


def test_connect_and_mcp_join_their_group_after_hello(broker, mesh, tmp_path):
    b = broker()
    m = mesh("alice", "bob", "carol")
    alice, bob, carol = m.members
    bcfg, ccfg = config(tmp_path, m, bob, b), config(tmp_path, m, carol, b)
    e = {k: v for k, v in os.environ.items() if k not in ("MESHBROKER_URL", "MESHCTL_CONFIG")}
    exe = mbtest.require_bin("meshctl")
    # a bad name is a usage error before any connection
    for args in (["connect", "--group", "all"], ["connect", "--group", "a//b"], ["mcp", "--group", "-x"]):
        r = subprocess.run([exe] + args + ["--config", str(bcfg)], env=e, capture_output=True, text=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        assert r.returncode == 2, (args, r)
    conn = subprocess.Popen([exe, "connect", "--config", str(bcfg), "--group", "reviewers/backend", "--timeout", "30"], env=e,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mcp = subprocess.Popen([exe, "mcp", "--config", str(ccfg), "--group", "ops"], env=e,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        async def go():
            a = Peer(b, alice)
            await a.join()
            groups = {}
            for _ in range(100):
                tag = mbtest.new_id(8)
                await a.send_json({"type": "list_peers", "_reqId": tag})
                pl = await a.wait_for(lambda x: x.get("_reqId") == tag)
                groups = {p["displayName"]: [g["name"] for g in p.get("groups", [])] for p in pl["peers"]}
                if groups.get("bob") == ["reviewers/backend"] and groups.get("carol") == ["ops"]:
                    break
                await asyncio.sleep(0.1)
            assert groups.get("bob") == ["reviewers/backend"] and groups.get("carol") == ["ops"], groups
            # @reviewers reaches bob's connect (a descendant group), not carol
            ack = await a.send_and_ack({"type": "send", "id": mbtest.new_id(12), "targetSpec": "@reviewers",
                                           "priority": "now", "nonce": "n",
                                           "ciphertext": base64.b64encode(b"to reviewers").decode()})
            assert ack["queued"] is True, ack
            await a.close()

        run(go(), 60)
        pushes = []
        for line in conn.stdout:
            j = json.loads(line)
            if j.get("type") == "push":
                pushes.append(j)
                break
        assert pushes and pushes[0].get("senderName") == "alice", pushes
    finally:
        for p in (conn, mcp):
            p.stdin.close()
            p.terminate()
            p.wait(10)
