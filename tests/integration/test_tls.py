"""meshctl across machines (issue 19): the broker behind a real TLS terminator
(nginx, configured as docs/deploy.md §4 says, started by the test on a free
loopback port with a CA and certificates made by openssl).
1. join of a wss:// invite (no --broker), connect, send, topic post, hook and
   meshctl mcp all work through it, a message going both ways;
2. a certificate of another CA, an expired one and one for another host name
   each fail with one line naming the host and the reason, nothing in clear;
3. the terminator restarted under meshctl mcp and meshctl connect: both back
   within 5 s, every acked message arriving once."""

import base64
import re
import json
import os
import queue
import subprocess
import threading
import time

import pytest

import invites
import mbtest
from mbtest import Peer, run
from test_mcp import Mcp, text
from tlsterm import Certs, Relay, Terminator


def clean_env(**kw):
    """the environment of a meshctl on another machine: no broker settings"""
    e = {k: v for k, v in os.environ.items() if not k.startswith("MESHBROKER_") and k != "MESHCTL_CONFIG"}
    e.update(kw)
    return e


def mc(args, env, check=True, timeout=30, input=None, cwd="/tmp"):
    r = subprocess.run([mbtest.require_bin("meshctl")] + args, env=env, capture_output=True, text=True,
                       timeout=timeout, input=input, cwd=cwd)
    if check:
        assert r.returncode == 0, f"meshctl {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


class TlsMcp(Mcp):
    """meshctl mcp with the environment of a remote machine"""

    def __init__(self, cfg, env):
        self.p = subprocess.Popen([mbtest.require_bin("meshctl"), "mcp", "--config", str(cfg)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                  cwd="/tmp")
        self.lines = queue.Queue()
        self.err = []
        self.seq = 0
        threading.Thread(target=self._read, args=(self.p.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()


class Connect:
    """a long-running meshctl connect, its stdout lines as JSON"""

    def __init__(self, cfg, env, *extra):
        self.p = subprocess.Popen([mbtest.require_bin("meshctl"), "connect", "--config", str(cfg), *extra],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
        self.out, self.err, self.seen = queue.Queue(), [], []
        threading.Thread(target=Mcp._read, args=(self.p.stdout, self.out), daemon=True).start()
        threading.Thread(target=lambda: [self.err.append(l.decode()) for l in self.p.stderr], daemon=True).start()

    def wait(self, pred, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            line = self.out.get(timeout=max(0.05, deadline - time.monotonic()))
            assert line is not None, f"meshctl connect ended: {''.join(self.err)}"
            j = json.loads(line)
            self.seen.append(j)
            if pred(j):
                return j

    def texts(self):
        while True:
            try:
                line = self.out.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(json.loads(line))
        return [j.get("text") for j in self.seen if j.get("type") == "push"]

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)


@pytest.fixture
def tls(broker, pg, db, tmp_path):
    """a broker, nginx in front of it with a good certificate, a mesh made by
    meshctl with alice (a Python member talking to the broker directly) and a
    wss:// invite good for three joins"""
    b = broker()
    certs = Certs(tmp_path / "certs")
    term = Terminator(tmp_path / "nginx", b.port, *certs.pair("good")).start()
    admin = {"DATABASE_URL": pg.url}
    owner_key = tmp_path / "owner.key"
    invites.meshctl(["keygen", "--out", str(owner_key)])
    slug = "tls-" + mbtest.new_id(8).lower()
    invites.meshctl(["mesh", "create", "TLS test", "--slug", slug, "--owner-key", str(owner_key)], env=admin)
    with db.cursor() as c:
        c.execute("SELECT id FROM mesh.mesh WHERE slug = %s", (slug,))
        mesh_id = c.fetchone()[0]
    m = mbtest.Mesh.__new__(mbtest.Mesh)
    m.db, m.id, m.slug, m.members = db, mesh_id, slug, []
    alice = m.add("alice")
    public = f"wss://{term.host_url}/ws"
    r = invites.meshctl(["invite", "create", slug, "--owner-key", str(owner_key), "--max-uses", "3",
                         "--broker", public], env=admin)
    token, link = r.stdout.strip().splitlines()
    ns = type("Tls", (), {})()
    ns.b, ns.certs, ns.term, ns.mesh, ns.alice, ns.link, ns.token, ns.public = b, certs, term, m, alice, link, token, public
    ns.env = clean_env(MESHBROKER_CA=certs.ca)
    ns.tmp = tmp_path
    try:
        yield ns
    finally:
        term.stop()


def join(t, name):
    cfg = t.tmp / f"{name}.json"
    r = mc(["join", t.link, "--name", name, "--out", str(cfg)], t.env)
    conf = json.load(open(cfg))
    assert conf["memberId"] == r.stdout.strip() and conf["broker"] == t.public, conf
    return cfg, conf


def test_join_connect_send_topic_hook_and_mcp_through_the_tls_terminator(tls, pg):
    t = tls
    pad = "=" * (-len(t.token) % 4)
    payload = json.loads(base64.urlsafe_b64decode(t.token + pad))
    assert payload["broker_url"] == t.public  # the invite carries the public wss:// URL
    bob_cfg, bob = join(t, "bob")  # no --broker: the invite says where
    carol_cfg, carol = join(t, "carol")
    key = invites.apikey(pg, t.mesh, "status")

    async def go():
        a = Peer(t.b, t.alice)
        ack = await a.join()
        # bob -> alice: meshctl send over wss://
        await asyncio_thread(mc, ["send", t.alice.pubkey, "hello over tls", "--config", str(bob_cfg)], t.env)
        push = await a.push(timeout=20)
        assert a.decrypt(push) == "hello over tls" and push["senderPubkey"] == bob["pubkey"]
        # alice -> bob: meshctl connect over wss:// decrypts it
        c = Connect(bob_cfg, t.env, "--count", "2", "--timeout", "20")
        await asyncio_thread(c.wait, lambda j: j.get("type") == "hello_ack")
        await a.send_direct(bob["pubkey"], "hi bob over tls")
        await asyncio_thread(c.wait, lambda j: j.get("type") == "push")
        assert c.texts() == ["hi bob over tls"]
        c.stop()
        # topic create / post / history over wss://
        await asyncio_thread(mc, ["topic", "create", "tls-room", "--config", str(bob_cfg)], t.env)
        await asyncio_thread(mc, ["topic", "post", "tls-room", "posted over tls", "--config", str(bob_cfg)], t.env)
        h = await asyncio_thread(mc, ["topic", "history", "tls-room", "--config", str(bob_cfg)], t.env)
        assert [json.loads(l).get("text") for l in h.stdout.splitlines()] == ["posted over tls"], h.stdout
        # hook over https:// (the URL from bob's config), Bearer key through the proxy
        r = await asyncio_thread(mc, ["hook", "working", "--config", str(bob_cfg), "--cwd", "/tmp/meshbroker-test"],
                                 dict(t.env, MESHBROKER_API_KEY=key), True, 30, "")
        assert json.loads(r.stdout) == {"ok": True, "presence_id": ack["presenceId"]}, (r.stdout, r.stderr)
        assert r.stderr == ""
        # meshctl mcp over wss://: a message both ways
        s = TlsMcp(carol_cfg, t.env)
        try:
            await asyncio_thread(s.start)
            await asyncio_thread(s.call_until, "list_peers", lambda r: "alice" in text(r) and not r["isError"])
            await a.send_direct(carol["pubkey"], "hi carol over tls")
            got = await asyncio_thread(s.call_until, "check_messages", lambda r: "hi carol" in text(r))
            assert [x["text"] for x in got["structuredContent"]["messages"]] == ["hi carol over tls"]
            # alice is "working" since the hook: only priority now reaches her
            r = await asyncio_thread(s.call, "send_message", 30, to="alice", message="carol says hi", priority="now")
            assert not r["isError"], text(r)
            push = await a.push(timeout=20, pred=lambda p: p.get("senderPubkey") == carol["pubkey"])
            assert a.decrypt(push) == "carol says hi"
        finally:
            s.stop()
        await a.close()

    run(go(), 120)
    # every request went through the terminator, none bypassed it
    assert any("/join" in l for l in t.term.requests()) and any("/hook/set-status" in l for l in t.term.requests())


async def asyncio_thread(fn, *args, **kw):
    import asyncio
    return await asyncio.to_thread(fn, *args, **kw)


BAD = [("other", "not signed by a trusted CA"), ("expired", "has expired"), ("wrong", "another host name")]


@pytest.mark.parametrize("cert,reason", BAD, ids=[c for c, _ in BAD])
def test_a_bad_certificate_fails_in_one_line_naming_host_and_reason_and_nothing_goes_in_clear(tls, cert, reason):
    t = tls
    bob_cfg, _ = join(t, "bob")
    bad = Terminator(t.tmp / f"nginx-{cert}", t.b.port, *t.certs.pair(cert)).start()
    relay = Relay(bad.port)
    try:
        url = f"wss://localhost:{relay.port}/ws"
        env = dict(t.env, MESHBROKER_URL=url)
        runs = [
            (["send", t.alice.pubkey, "secret words", "--config", str(bob_cfg)], 1),
            (["connect", "--config", str(bob_cfg), "--timeout", "5"], 1),
            (["status", "idle", "--config", str(bob_cfg)], 1),
            (["join", t.link, "--name", "eve", "--out", str(t.tmp / "eve.json"), "--broker", url], 1),
            (["hook", "working", "--cwd", "/tmp", "--url", f"https://localhost:{relay.port}"], 0),
        ]
        for args, rc in runs:
            r = mc(args, env, check=False, input="")
            lines = r.stderr.strip().splitlines()
            assert r.returncode == rc and len(lines) == 1, (args, r.returncode, r.stderr)
            assert "TLS to localhost" in lines[0] and reason in lines[0], (args, lines[0])
        # the same through --cacert, and meshctl mcp keeps saying why while it retries
        r = mc(["send", t.alice.pubkey, "x", "--config", str(bob_cfg), "--cacert", t.certs.ca], env, check=False)
        assert r.returncode == 1 and reason in r.stderr, r.stderr
        s = TlsMcp(bob_cfg, env)
        try:
            s.start()
            r = s.call("list_peers")
            assert r["isError"] and "reconnecting" in text(r), r
            mbtest.wait_until(lambda: any(reason in l for l in s.err), 10, what="mcp to name the reason")
        finally:
            s.stop()
        assert not os.path.exists(t.tmp / "eve.json")
        # nothing reached nginx's HTTP layer, and every connection began with a TLS handshake record
        assert bad.requests() == [], bad.requests()
        sent = bytes(relay.sent)
        assert sent and sent[0] == 0x16, sent[:16]
        for word in (b"GET ", b"POST ", b"HTTP/1.1", b"hello", b"secret words", b"Upgrade"):
            assert word not in sent, word
    finally:
        relay.close()
        bad.stop()


def test_plain_http_on_a_tls_url_is_refused_not_downgraded(tls):
    t = tls
    bob_cfg, _ = join(t, "bob")
    env = dict(t.env, MESHBROKER_URL=t.b.ws_url.replace("ws://", "wss://") + "/ws")
    r = mc(["send", t.alice.pubkey, "x", "--config", str(bob_cfg)], env, check=False)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "TLS to 127.0.0.1" in lines[0], r.stderr


def test_mcp_and_connect_come_back_within_5s_after_the_terminator_restarts(tls):
    t = tls
    bob_cfg, bob = join(t, "bob")
    carol_cfg, carol = join(t, "carol")
    c = Connect(bob_cfg, t.env)
    s = TlsMcp(carol_cfg, t.env)
    got = []

    def drain(want, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = s.call("check_messages")
            if not r["isError"]:
                got.extend(x["text"] for x in r["structuredContent"]["messages"])
            if set(want) <= set(got):
                return
            time.sleep(0.2)
        raise AssertionError(f"carol has {got}, wants {want}; stderr {''.join(s.err)}")

    async def go():
        a = Peer(t.b, t.alice)
        await a.join()
        await asyncio_thread(c.wait, lambda j: j.get("type") == "hello_ack")
        await asyncio_thread(s.start)
        await asyncio_thread(s.call_until, "list_peers", lambda r: "bob" in text(r) and not r["isError"])
        for who in (bob, carol):
            await a.send_direct(who["pubkey"], "before")
        await asyncio_thread(c.wait, lambda j: j.get("text") == "before")
        await asyncio_thread(drain, ["before"])

        await asyncio_thread(t.term.stop)
        for who in (bob, carol):
            _, ack = await a.send_direct(who["pubkey"], "during")
            assert ack["queued"] is True
        # a tool answers at once while the link is down
        t0 = time.monotonic()
        r = await asyncio_thread(s.call, "send_message", 10, to=t.alice.pubkey, message="while down")
        assert r["isError"] and "reconnecting" in text(r) and time.monotonic() - t0 < 3, r

        start = time.monotonic()
        await asyncio_thread(t.term.start)
        await asyncio_thread(c.wait, lambda j: j.get("type") == "hello_ack", 5)
        await asyncio_thread(s.call_until, "list_peers", lambda r: not r["isError"] and "bob" in text(r), 5)
        back = time.monotonic() - start
        assert back <= 5, f"back after {back:.1f} s"

        for who in (bob, carol):
            await a.send_direct(who["pubkey"], "after")
        r = await asyncio_thread(s.call, "send_message", 30, to="alice", message="carol is back")
        assert not r["isError"], text(r)
        push = await a.push(timeout=20, pred=lambda p: p.get("senderPubkey") == carol["pubkey"])
        assert a.decrypt(push) == "carol is back"
        await asyncio_thread(c.wait, lambda j: j.get("text") == "after")
        await asyncio_thread(drain, ["before", "during", "after"])
        await a.close()

    try:
        run(go(), 150)
        time.sleep(1)  # a late duplicate would show now
        assert c.texts() == ["before", "during", "after"], c.seen
        drain(["before", "during", "after"])
        assert got == ["before", "during", "after"], got
        assert any("reconnecting" in l for l in c.err) and any("reconnecting" in l for l in s.err)
    finally:
        c.stop()
        s.stop()


def test_mcp_survives_the_network_dropping_without_a_word(tls):
    """packets lost both ways, no FIN: a tool answers "reconnecting" instead of
    hanging, and the session is back once the network is"""
    t = tls
    carol_cfg, carol = join(t, "carol")
    relay = Relay(t.term.port)
    s = TlsMcp(carol_cfg, dict(t.env, MESHBROKER_URL=f"wss://localhost:{relay.port}/ws"))
    try:
        s.start()
        s.call_until("list_peers", lambda r: not r["isError"])
        relay.blackhole = True
        t0 = time.monotonic()
        r = s.call("send_message", 40, to=t.alice.pubkey, message="into the void")
        took = time.monotonic() - t0
        assert r["isError"] and "reconnecting" in text(r) and took < 25, (took, r)
        # while the network is still gone, reconnect attempts never hold the tools up
        for _ in range(4):
            t0 = time.monotonic()
            r = s.call("list_peers", 10)
            assert r["isError"] and "reconnecting" in text(r) and time.monotonic() - t0 < 1.5, r
            time.sleep(1.5)
        relay.blackhole = False

        async def go():
            a = Peer(t.b, t.alice)
            await a.join()
            await asyncio_thread(s.call_until, "list_peers", lambda r: not r["isError"] and "alice" in text(r), 30)
            r = await asyncio_thread(s.call, "send_message", 30, to="alice", message="back on the network")
            assert not r["isError"], text(r)
            push = await a.push(timeout=20, pred=lambda p: p.get("senderPubkey") == carol["pubkey"])
            assert a.decrypt(push) == "back on the network"
            await a.send_direct(carol["pubkey"], "welcome back")
            got = await asyncio_thread(s.call_until, "check_messages", lambda r: "welcome back" in text(r))
            assert [x["text"] for x in got["structuredContent"]["messages"]] == ["welcome back"]
            await a.close()

        run(go(), 90)
        assert any("no ack from the broker" in l for l in s.err), s.err
    finally:
        s.stop()
        relay.close()

# ---------------------------------------------------------------- the client's shape (acceptance 4)

CLI = os.path.join(mbtest.REPO, "cli")


def cli_sources():
    return {f[:-2]: open(os.path.join(CLI, f)).read() for f in sorted(os.listdir(CLI)) if f.endswith(".c")}


def code_only(text):
    """C text without comments and string literals' contents kept (comments dropped)"""
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def test_cli_has_no_hand_written_http_client_or_url_parser():
    src = {m: code_only(t) for m, t in cli_sources().items()}
    assert "dial" not in src, "cli/dial.c (the hand-written URL parser and TCP client) is back"
    for m, t in src.items():
        # sockets are curl's: no resolver, connect, send or recv of our own
        calls = re.sub(r'"(\\.|[^"\\])*"', '""', t)  # string literals out
        bad = re.findall(r"(?<![\w.>])(getaddrinfo|socket|connect|recv|send|sendto|recvfrom)\s*\(", calls)
        assert not bad, f"cli/{m}.c calls {bad}: every connection belongs to libcurl"
        # no HTTP message framing outside the WebSocket upgrade request
        for word in ("HTTP/1.", "Content-Length", "Transfer-Encoding", "chunked", "\\r\\n\\r\\n"):
            assert m == "wsupgrade" or word not in t, f"cli/{m}.c writes or parses HTTP by hand ({word})"
        # no URL taken apart by hand: schemes compared or "://" searched for
        assert not re.search(r'str(n)?(case)?(cmp|str)\s*\([^;]*"(ws|wss|http|https|ic)://', t), \
            f"cli/{m}.c parses a URL by hand (use curl_url)"
        # admin.c only checks that DATABASE_URL is a postgres:// one (libpq parses it)
        assert m == "admin" or not re.search(r'strstr\s*\([^;]*"://"', t), f"cli/{m}.c looks for \"://\" by hand"
    # the upgrade response is read by http_parser, not by hand
    assert "http_parser_execute" in src["wsupgrade"] and "strstr" not in src["wsupgrade"]


def _cycle(edges, nodes):
    """a cycle in the directed graph, or None"""
    color, stack = {n: 0 for n in nodes}, []

    def visit(n):
        color[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if color[m] == 1:
                return stack[stack.index(m):] + [m]
            if color[m] == 0:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        color[n] = 2
        return None

    for n in sorted(nodes):
        if color[n] == 0:
            c = visit(n)
            if c:
                return c
    return None


def test_cli_modules_call_and_include_each_other_without_a_cycle():
    """the two views of scripts/callgraph.sh, over cli/: symbols (nm) and includes"""
    mods = cli_sources()
    objdir = os.path.join(os.path.dirname(mbtest.BIN), "obj", "cli")
    defs, undef = {}, {}
    for m in mods:
        o = os.path.join(objdir, m + ".o")
        assert os.path.exists(o), f"{o} missing (make build)"
        for line in subprocess.run(["nm", "--defined-only", o], capture_output=True, text=True,
                                   check=True).stdout.splitlines():
            f = line.split()
            if len(f) == 3 and f[1] in "TDRB":
                defs[f[2]] = m
        undef[m] = {l.split()[-1] for l in subprocess.run(["nm", "-u", o], capture_output=True, text=True,
                                                            check=True).stdout.splitlines() if l.strip()}
    sym = {m: {defs[s] for s in undef[m] if s in defs and defs[s] != m} for m in mods}
    inc = {m: {h for h in re.findall(r'^#include "(?:cli/)?([a-z_]+)\.h"', t, re.M) if h in mods and h != m}
           for m, t in mods.items()}
    for view, edges in (("symbols", sym), ("includes", inc)):
        c = _cycle(edges, mods)
        assert c is None, f"cli/ {view} cycle: {' -> '.join(c)}"


def test_no_cli_file_is_over_450_lines():
    for m, t in cli_sources().items():
        assert t.count("\n") <= 450, f"cli/{m}.c has {t.count(chr(10))} lines"


def test_every_command_help_lists_its_options():
    exe = mbtest.require_bin("meshctl")
    usage = subprocess.run([exe, "help"], capture_output=True, text=True, check=True).stdout
    # "  meshctl WORDS..." lines, continuation lines indented further
    entries, cur = [], None
    for line in usage.splitlines():
        if line.startswith("  meshctl "):
            cur = [line[len("  meshctl "):]]
            entries.append(cur)
        elif cur is not None and line.startswith("                 "):
            cur.append(line)
        else:
            cur = None
    assert len(entries) > 20, usage
    for e in entries:
        text = " ".join(e)
        words = []
        for w in text.split():
            if w.startswith(("-", "[")) or not re.fullmatch(r"[a-z]+", w):
                break
            words.append(w)
        r = subprocess.run([exe, *words, "--help"], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, (words, r.stderr)
        listed = set(re.findall(r"^\s+(--[a-z-]+)", r.stdout, re.M))
        for opt in set(re.findall(r"(--[a-z-]+)", text)):
            assert opt in listed, f"meshctl {' '.join(words)} --help does not list {opt}:\n{r.stdout}"
        if words != ["help"]:
            for g in ("--config", "--broker", "--cacert"):
                assert g in listed or g in r.stdout, (words, r.stdout)


def test_make_install_ships_a_bash_completion_that_completes_commands_and_options(tmp_path):
    dest = tmp_path / "root"
    r = subprocess.run(["make", "--no-print-directory", "-C", mbtest.REPO, "install", f"DESTDIR={dest}",
                        "PREFIX=/usr"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    comp = dest / "usr/share/bash-completion/completions/meshctl"
    assert comp.is_file()
    lib = "/usr/share/bash-completion/bash_completion"
    if not os.path.exists(lib):
        pytest.fail("bash-completion is missing (scripts/deps.sh test installs it)")
    script = f"""
source {lib}
source {comp}
t() {{ COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); COMP_LINE="${{COMP_WORDS[*]}}";
      COMP_POINT=${{#COMP_LINE}}; COMPREPLY=(); _meshctl; echo "${{COMPREPLY[*]}}"; }}
t meshctl to
t meshctl topic p
t meshctl send --pri
t meshctl --config x.json connect --st
t meshctl send --priority n
t meshctl mcp --ca
"""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert out.stdout.splitlines() == ["topic", "post", "--priority", "--status", "now next", "--cacert"], out
