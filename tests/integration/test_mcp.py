"""`meshctl mcp`, the stdio MCP server for Claude Code (issue 10 acceptance
1-4 and 6; docs/protocol.md §11): JSON-RPC 2.0 over a pipe, the tools, names
resolved through list_peers, client_ack only once Claude has a message,
`meshctl status` for every session of the member, and `meshctl connect`
surviving a broker restart."""

import json
import os
import queue
import re
import subprocess
import threading
import time

import mbtest
from mbtest import Peer, run
from test_meshctl import make_c_member, meshctl


class Mcp:
    """a `meshctl mcp` process spoken to over pipes, one JSON object a line"""

    def __init__(self, b, *configs, extra=()):
        args = [mbtest.require_bin("meshctl"), "mcp"]
        for c in configs:
            args += ["--config", str(c)]
        env = dict(os.environ, MESHBROKER_URL=b.ws_url + "/ws")
        self.p = subprocess.Popen(args + list(extra), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, cwd="/tmp")
        self.lines = queue.Queue()
        self.err = []
        self.seq = 0
        threading.Thread(target=self._read, args=(self.p.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    @staticmethod
    def _read(f, q):
        for line in f:
            q.put(line.decode())
        q.put(None)

    def _read_err(self):
        for line in self.p.stderr:
            self.err.append(line.decode())

    def write(self, raw):
        try:
            self.p.stdin.write(raw if isinstance(raw, bytes) else raw.encode())
            self.p.stdin.flush()
        except BrokenPipeError:
            time.sleep(0.5)
            raise AssertionError(f"meshctl mcp is gone ({self.p.poll()}); stderr: {''.join(self.err)}")

    def next(self, timeout=30):
        line = self.lines.get(timeout=timeout)
        assert line is not None, f"meshctl mcp ended; stderr: {''.join(self.err)}"
        return json.loads(line)

    def request(self, method, params=None, timeout=30):
        self.seq += 1
        rid = self.seq
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.write(json.dumps(msg) + "\n")
        return self.reply(rid, timeout)

    def reply(self, rid, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            m = self.next(max(0.1, deadline - time.monotonic()))
            if m.get("id") == rid and "method" not in m:
                return m

    def call(self, tool, timeout=30, **args):
        return self.request("tools/call", {"name": tool, "arguments": args}, timeout)["result"]

    def call_until(self, tool, ok, timeout=60, **args):
        """call until ok(result) (the connection may still be coming up)"""
        deadline = time.monotonic() + timeout
        while True:
            r = self.call(tool, **args)
            if ok(r) or time.monotonic() > deadline:
                return r
            time.sleep(0.2)

    def start(self):
        r = self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                        "clientInfo": {"name": "pytest", "version": "1"}})
        self.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
        return r

    def kill(self):
        self.p.kill()
        self.p.wait(10)

    def stop(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        return self.p.returncode


def text(result):
    return "".join(c.get("text", "") for c in result["content"])


def connected(r):
    return not r.get("isError")


def members(tmp_path, pg, db, mesh, *names):
    m = mesh()
    return m, [make_c_member(tmp_path, pg, db, m, n)[0] for n in names]


def test_mcp_initialize_tools_list_parse_errors_and_unknown_tools(broker, mesh, pg, db, tmp_path):
    b = broker()
    m, (alice,) = members(tmp_path, pg, db, mesh, "alice")
    s = Mcp(b, alice)
    try:
        r = s.start()["result"]
        assert r["serverInfo"]["name"] == "meshbroker" and r["serverInfo"]["version"]
        assert "tools" in r["capabilities"]
        assert "claude/channel" in r["capabilities"]["experimental"]
        tools = s.request("tools/list")["result"]["tools"]
        names = {t["name"] for t in tools}
        assert {"send_message", "check_messages", "list_peers", "set_status", "set_summary"} <= names
        for t in tools:
            assert t["inputSchema"]["type"] == "object" and isinstance(t["inputSchema"]["properties"], dict)
            assert t["description"]
        send = next(t for t in tools if t["name"] == "send_message")["inputSchema"]
        assert set(send["required"]) == {"to", "message"}
        # a malformed line: parse error, id null, and the server goes on
        s.write("{this is not json\n")
        e = s.next()
        assert e["error"]["code"] == -32700 and e["id"] is None
        s.write(b"\xff\xfe\n")
        assert s.next()["error"]["code"] == -32700
        s.write(json.dumps({"jsonrpc": "2.0", "id": 77, "params": {}}) + "\n")
        e = s.next()
        assert e["error"]["code"] == -32600 and e["id"] == 77
        assert s.request("no/such/method")["error"]["code"] == -32601
        assert s.request("ping")["result"] == {}
        r = s.call("teleport", where="mars")
        assert r["isError"] is True and "unknown tool" in text(r)
        # a line over the bound is refused whole, and the server goes on
        s.write("x" * (1 << 21) + "\n")
        assert s.next()["error"]["code"] == -32700
        r = s.call("set_status", status="sleepy")
        assert r["isError"] is True
        assert s.request("ping")["result"] == {}
        assert s.stop() == 0
        assert not [l for l in s.err if l.startswith("{")], "stderr carries logs only"
    finally:
        s.stop()


def test_two_mcp_servers_message_each_other_by_name_once(broker, mesh, pg, db, tmp_path):
    b = broker()
    m, (alice, bob, bob2) = members(tmp_path, pg, db, mesh, "alice", "bob", "bobby")
    a, c = Mcp(b, alice), Mcp(b, bob)
    try:
        a.start()
        c.start()
        r = a.call_until("list_peers", lambda r: "bob" in text(r) and not r.get("isError"))
        assert not r["isError"]
        r = c.call_until("set_summary", connected, summary="writing the parser tests")
        assert not r["isError"]
        r = a.call_until("list_peers", lambda r: "writing the parser tests" in text(r))
        peers = {p["displayName"]: p for p in r["structuredContent"]["peers"]}
        assert peers["bob"]["summary"] == "writing the parser tests"
        assert peers["bob"]["status"] == "idle" and peers["alice"]["self"] is True
        r = c.call("list_peers")
        assert "alice" in text(r) and not r["isError"]
        r = a.call("send_message", to="bob", message="hi")
        assert not r["isError"], text(r)
        got = c.call_until("check_messages", lambda r: "hi" in text(r))
        msgs = got["structuredContent"]["messages"]
        assert [(x["from"], x["text"]) for x in msgs] == [("alice", "hi")]
        assert "from alice" in text(got)
        again = c.call("check_messages")
        assert again["structuredContent"]["messages"] == []
        # unknown and ambiguous names are error results naming candidates
        r = a.call("send_message", to="carol", message="x")
        assert r["isError"] and "carol" in text(r) and "bob" in text(r)
        # a second bob session (the same member twice) and a name clash
        d = Mcp(b, bob)
        try:
            d.start()
            r = a.call_until("list_peers", lambda r: text(r).count("- bob ") >= 2)
            r = a.call("send_message", to="bob", message="once more")
            assert not r["isError"], "one member with two sessions is one recipient"
            with db.cursor() as cur:
                cur.execute("UPDATE mesh.member SET display_name = 'bob' WHERE mesh_id = %s AND display_name = 'bobby'",
                            (m.id,))
            e = Mcp(b, bob2)
            try:
                e.start()
                r = a.call_until("send_message", lambda r: "ambiguous" in text(r), to="bob", message="?")
                assert r["isError"] and "ambiguous" in text(r)
            finally:
                e.stop()
        finally:
            d.stop()
    finally:
        a.stop()
        c.stop()


def test_a_message_received_by_a_killed_mcp_is_returned_after_restart(broker, mesh, pg, db, tmp_path):
    b = broker()
    m, (alice, bob) = members(tmp_path, pg, db, mesh, "alice", "bob")
    a, c = Mcp(b, alice), Mcp(b, bob)
    try:
        a.start()
        c.start()
        a.call_until("list_peers", lambda r: "bob" in text(r))
        r = a.call("send_message", to="bob", message="survive the kill", priority="now")
        assert not r["isError"], text(r)
        # bob's server received it: the channel notification says so
        deadline = time.monotonic() + 30
        while True:
            n = c.next(max(0.1, deadline - time.monotonic()))
            if n.get("method") == "notifications/claude/channel":
                break
        assert n["params"]["content"] == "survive the kill"
        assert n["params"]["meta"]["from"] == "alice" and n["params"]["meta"]["message_id"]
        c.kill()  # before check_messages: never acked
        c = Mcp(b, bob)
        c.start()
        got = c.call_until("check_messages", lambda r: "survive" in text(r), timeout=90)
        assert [x["text"] for x in got["structuredContent"]["messages"]] == ["survive the kill"]
        assert c.call("check_messages")["structuredContent"]["messages"] == []
    finally:
        a.stop()
        c.stop()


def test_meshctl_status_from_a_second_shell_holds_the_live_sessions_next_messages(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh()
    alice = m.add("alice")
    bob_cfg, _ = make_c_member(tmp_path, pg, db, m, "bob")
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}
    c = Mcp(b, bob_cfg)
    try:
        c.start()
        c.call_until("list_peers", lambda r: "bob" in text(r))

        async def go():
            a = Peer(b, alice)
            await a.join()
            bob_pk = json.load(open(bob_cfg))["pubkey"]
            meshctl(["status", "working", "--config", str(bob_cfg)], env=env)
            await a.send_direct(bob_pk, "held until idle", priority="next")
            time.sleep(1.5)
            r = c.call("check_messages")
            assert r["structuredContent"]["messages"] == [], "a working session gets only now messages"
            meshctl(["status", "idle", "--config", str(bob_cfg)], env=env)
            got = c.call_until("check_messages", lambda r: "held" in text(r))
            assert [x["text"] for x in got["structuredContent"]["messages"]] == ["held until idle"]
            await a.close()

        run(go())
    finally:
        c.stop()


def test_mcp_help_prints_the_claude_mcp_add_line_for_the_config(tmp_path):
    cfg = tmp_path / "peer.json"
    cfg.write_text("{}")
    r = meshctl(["mcp", "--help", "--config", str(cfg)])
    exe = os.path.realpath(mbtest.require_bin("meshctl"))
    assert f"claude mcp add meshbroker -- {exe} mcp --config {os.path.realpath(cfg)}" in r.stdout


def test_meshctl_connect_survives_a_broker_restart(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh()
    alice = m.add("alice")
    bob_cfg, _ = make_c_member(tmp_path, pg, db, m, "bob")
    bob_pk = json.load(open(bob_cfg))["pubkey"]
    env = dict(os.environ, MESHBROKER_URL=b.ws_url + "/ws")
    p = subprocess.Popen([mbtest.require_bin("meshctl"), "connect", "--config", str(bob_cfg)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    out, err = queue.Queue(), []
    threading.Thread(target=Mcp._read, args=(p.stdout, out), daemon=True).start()
    threading.Thread(target=lambda: [err.append(l.decode()) for l in p.stderr], daemon=True).start()

    def wait_line(pred, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            line = out.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"meshctl connect ended: {''.join(err)}"
            j = json.loads(line)
            if pred(j):
                return j

    try:
        wait_line(lambda j: j.get("type") == "hello_ack")
        # kill the acceptor and its workers, then start the broker again on the same port
        for pid in b.workers():
            b.kill_worker(pid)
        b.stop()
        b.start()
        mbtest.wait_until(lambda: any("reconnecting" in l for l in err), 60, what="a reconnect notice")
        wait_line(lambda j: j.get("type") == "hello_ack", timeout=90)

        async def go():
            a = Peer(b, alice)
            await a.join()
            await a.send_direct(bob_pk, "after the restart")
            await a.close()

        run(go())
        j = wait_line(lambda j: j.get("type") == "push")
        assert j["text"] == "after the restart"
        # the backoff is jittered (issue 19): the wait is said in seconds with one decimal
        assert any(re.search(r"reconnecting in \d+(\.\d)? s", l) for l in err), err
    finally:
        p.terminate()
        p.wait(15)


def test_meshctl_peers_prints_a_table_and_json_with_scopes(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh()
    alice = m.add("alice")
    bob_cfg, _ = make_c_member(tmp_path, pg, db, m, "bob")
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}

    async def go():
        a = Peer(b, alice)
        await a.connect()
        assert (await a.hello(cwd="/tmp", hostname="elsewhere"))["type"] == "hello_ack"
        await a.send_json({"type": "set_summary", "summary": "reviewing the broker"})
        await a.barrier()
        r = meshctl(["peers", "--config", str(bob_cfg)], env=env)
        lines = r.stdout.splitlines()
        assert lines[0].split()[:3] == ["NAME", "STATUS", "PUBKEY"]
        assert any(l.startswith("alice") and "idle" in l and "reviewing the broker" in l for l in lines[1:])
        assert not any(l.startswith("bob") for l in lines[1:]), "the table leaves out meshctl itself"
        j = json.loads(meshctl(["peers", "--json", "--config", str(bob_cfg)], env=env).stdout)
        assert {p["displayName"] for p in j} == {"alice", "bob"}
        assert [p["self"] for p in j if p["displayName"] == "bob"] == [True]
        j = json.loads(meshctl(["peers", "--json", "--scope", "directory", "--config", str(bob_cfg)],
                               env=env).stdout)
        assert {p["displayName"] for p in j} == {"alice", "bob"}  # both in /tmp
        j = json.loads(meshctl(["peers", "--json", "--scope", "machine", "--config", str(bob_cfg)],
                               env=env).stdout)
        assert {p["displayName"] for p in j} == {"bob"}
        r = meshctl(["peers", "--scope", "galaxy", "--config", str(bob_cfg)], env=env, check=False)
        assert r.returncode == 2 and "usage" in r.stderr
        await a.close()

    run(go())
