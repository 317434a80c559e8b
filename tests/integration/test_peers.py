"""Peers and the Claude Code surface on the broker (issue 10; docs/protocol.md
§11): list_peers with its four scopes, set_summary, set_status with
scope "member", session replace, and coalesced peer_events pushes."""

import asyncio
import time

import pytest

import mbtest
from mbtest import Peer, run


def is_type(t):
    return lambda m: m.get("type") == t


def is_event(m):
    return m.get("type") == "push" and m.get("subtype") == "system"


async def list_peers(p, **kw):
    tag = mbtest.new_id(10)
    await p.send_json(dict({"type": "list_peers", "_reqId": tag}, **kw))
    r = await p.wait_for(lambda m: m.get("_reqId") == tag or
                         (m.get("type") == "error" and m.get("id") == tag))
    return r


def test_list_peers_shows_every_live_peer_with_status_summary_and_self(broker, mesh, db):
    b = broker()
    m = mesh("alice", "bob")
    alice, bob = m.members

    async def go():
        a, c = Peer(b, alice), Peer(b, bob)
        await a.connect()
        assert (await a.hello(hostname="hostA", peerType="ai", repo="git@x:r.git"))["type"] == "hello_ack"
        await c.connect()
        assert (await c.hello(hostname="hostB", repo="git@x:r.git", cwd="/tmp/other"))["type"] == "hello_ack"
        await c.send_json({"type": "set_summary", "summary": "refactoring the parser"})
        await c.set_status("working")
        await c.barrier()
        r = await list_peers(a)
        assert r["type"] == "peers_list"
        by = {p["displayName"]: p for p in r["peers"]}
        assert set(by) == {"alice", "bob"}
        assert by["alice"]["self"] is True and by["bob"]["self"] is False
        assert by["bob"]["summary"] == "refactoring the parser"
        assert by["bob"]["status"] == "working"
        assert by["bob"]["pubkey"] == bob.pubkey and by["bob"]["memberId"] == bob.id
        assert by["bob"]["hostname"] == "hostB" and by["alice"]["peerType"] == "ai"
        assert by["bob"]["sessionId"] == c.session_id and by["bob"]["cwd"] == "/tmp/other"
        assert by["bob"]["connectedAt"].endswith("Z")
        # the scopes: same hostname / cwd / repo as the caller's hello
        names = lambda r: sorted(p["displayName"] for p in r["peers"])  # noqa: E731
        assert names(await list_peers(a, scope="mesh")) == ["alice", "bob"]
        assert names(await list_peers(a, scope="machine")) == ["alice"]
        assert names(await list_peers(a, scope="directory")) == ["alice"]
        assert names(await list_peers(a, scope="repo")) == ["alice", "bob"]
        e = await list_peers(a, scope="galaxy")
        assert e["type"] == "error" and e["code"] == "invalid_scope"

        def stored_repo():
            with db.cursor() as cur:
                cur.execute("SELECT repo FROM mesh.presence WHERE session_id = %s", (a.session_id,))
                row = cur.fetchone()
                return row and row[0]
        assert mbtest.wait_until(lambda: stored_repo() == "git@x:r.git", 20), "repo kept in mesh.presence"
        await a.close()
        await c.close()

    run(go())


def test_set_summary_over_1024_bytes_is_refused_and_1024_is_kept(broker, mesh):
    b = broker()
    m = mesh("alice")

    async def go():
        a = Peer(b, m.members[0])
        await a.join()
        await a.send_json({"type": "set_summary", "summary": "x" * 1025, "_reqId": "s1"})
        e = await a.wait_for(is_type("error"))
        assert e["code"] == "summary_too_long" and e.get("id") == "s1"
        await a.send_json({"type": "set_summary", "summary": "é" * 512})
        r = await list_peers(a)
        assert r["peers"][0]["summary"] == "é" * 512
        await a.send_json({"type": "set_summary", "summary": 7})
        e = await a.wait_for(is_type("error"))
        assert e["code"] == "malformed"
        await a.close()

    run(go())


def test_set_status_scope_member_holds_next_messages_of_every_session_of_the_member(broker, mesh):
    b = broker()
    m = mesh("alice", "bob")
    alice, bob = m.members

    async def go():
        a, live, oneshot = Peer(b, alice), Peer(b, bob), Peer(b, bob)
        await a.join()
        await live.join()
        await oneshot.join()
        await oneshot.send_json({"type": "set_status", "status": "working", "scope": "member"})
        r = None
        for _ in range(200):  # the other session's worker applies it on its own turn
            r = await list_peers(a)
            st = {p["sessionId"]: p["status"] for p in r["peers"]}
            if st.get(live.session_id) == "working":
                break
            await asyncio.sleep(0.05)
        assert st[live.session_id] == "working", r
        await oneshot.close()
        await a.send_direct(bob.pubkey, "held", priority="next")
        await live.quiet(mbtest.is_push, 1.5)
        await a.send_json({"type": "set_status", "status": "idle", "scope": "bogus", "id": "x"})
        e = await a.wait_for(is_type("error"))
        assert e["code"] == "invalid_scope"
        # idle from another one-shot session releases what was held
        again = Peer(b, bob)
        await again.connect()
        await again.send_json(again.hello_msg(capabilities=["client_ack"]))
        await again.wait_for(is_type("hello_ack"))
        await again.send_json({"type": "set_status", "status": "idle", "scope": "member"})
        await again.close()
        p = await live.push(timeout=30)
        assert live.decrypt(p) == "held"
        await a.close()
        await live.close()

    run(go())


def test_second_hello_with_the_same_session_id_replaces_the_first_and_loses_nothing(broker, mesh):
    b = broker()
    m = mesh("alice", "bob")
    alice, bob = m.members

    async def go():
        a = Peer(b, alice)
        await a.join()
        first = Peer(b, bob)
        await first.connect()
        await first.send_json(first.hello_msg(capabilities=["client_ack"]))
        await first.wait_for(is_type("hello_ack"))
        await a.send_direct(bob.pubkey, "one")
        p1 = await first.push()
        assert first.decrypt(p1) == "one"  # received, never acked
        second = Peer(b, bob)
        second.session_id = first.session_id
        await second.connect()
        await second.send_json(second.hello_msg(capabilities=["client_ack"]))
        await second.wait_for(is_type("hello_ack"))
        code, reason = await first.wait_closed(timeout=30)
        assert (code, reason) == (1000, "session_replaced")
        p = await second.push(timeout=30)
        assert second.decrypt(p) == "one"
        await a.send_direct(bob.pubkey, "two")
        p = await second.push(timeout=30)
        assert second.decrypt(p) == "two"
        r = await list_peers(a)
        assert [p["sessionId"] for p in r["peers"] if p["displayName"] == "bob"] == [first.session_id]
        await a.close()
        await second.close()

    run(go())


def test_peer_events_report_joins_status_and_leaves_coalesced(broker, mesh):
    b = broker()
    m = mesh("watcher", "p1", "p2", "p3")
    w, *others = m.members

    async def go():
        watcher = Peer(b, w)
        await watcher.connect()
        await watcher.send_json(watcher.hello_msg(capabilities=["peer_events"]))
        await watcher.wait_for(is_type("hello_ack"))
        peers = [Peer(b, o) for o in others]
        for p in peers:
            await p.join()
        seen = {}
        deadline = time.monotonic() + 30
        while len(seen) < 3 and time.monotonic() < deadline:
            e = await watcher.wait_for(is_event, timeout=30)
            assert e["senderPubkey"] == "system" and e["nonce"] == "" and e["ciphertext"] == ""
            evs = e["eventData"]["events"] if e["event"] == "peers_changed" else [dict(e["eventData"], event=e["event"])]
            for x in evs:
                assert x["event"] == "peer_joined"
                seen[x["sessionId"]] = x
        assert set(seen) == {p.session_id for p in peers}
        assert {x["displayName"] for x in seen.values()} == {"p1", "p2", "p3"}
        await peers[0].set_status("working")
        e = await watcher.wait_for(is_event, timeout=30)
        assert e["event"] == "peer_status" and e["eventData"]["status"] == "working"
        assert e["eventData"]["pubkey"] == others[0].pubkey
        await peers[1].close()
        e = await watcher.wait_for(is_event, timeout=30)
        assert e["event"] == "peer_left" and e["eventData"]["sessionId"] == peers[1].session_id
        for p in (peers[0], peers[2], watcher):
            await p.close()

    run(go())


class BigPg(mbtest.PgCluster):
    """a private cluster with room for 200 workers' sessions at once"""

    def start(self):
        opts = (f"-c listen_addresses='' -k {self.sock} -p {self.port} -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run([mbtest.os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log, "-w",
                   "-t", "60", "-o", opts, "start"], timeout=90)
        self.running = True


@pytest.mark.unsanitized  # 200 ASan workers at once would need gigabytes on the shared test machine
def test_200_peers_with_peer_events_get_at_most_one_push_a_second_and_all_are_listed(broker):
    n = 200
    pg = BigPg(prefix="mbpgb-").init()
    try:
        mbtest.migrate(pg.url)
        conn = pg.connect()
        # all n hellos may be waiting at once on a loaded machine: the
        # unauthenticated share (UNAUTH_SHARE_PERCENT, 75 % of
        # MAX_CONNECTIONS) must hold them all, or the acceptor rightly
        # evicts the oldest (1013 "evicted"; issue 11) and this test, which
        # is about peer events, not admission, fails under load
        b = broker(database_url=pg.url, MAX_CONNECTIONS_PER_MESH=n + 10, MAX_CONNECTIONS_PER_SOURCE=n + 10,
                   MAX_CONNECTIONS=n * 4 // 3 + 50, HELLO_TIMEOUT_SECONDS=60)
        m = mbtest.Mesh(conn)
        for i in range(n):
            m.add(f"peer{i:03d}")

        async def one(member, counts):
            p = Peer(b, member)
            # all at once: on a busy machine 200 fork+execs take a while, so
            # the opening handshake gets a generous deadline (Peer's is 5 s)
            p.ws = await mbtest.websockets.connect(b.ws_url + "/ws", max_queue=None, max_size=2 ** 24,
                                                   ping_interval=None, open_timeout=120, close_timeout=10)
            await p.send_json(p.hello_msg(capabilities=["peer_events"]))
            await p.wait_for(is_type("hello_ack"), timeout=120)
            counts[member.name] = 0
            return p

        async def go():
            counts = {}
            start = time.monotonic()
            peers = await asyncio.gather(*(one(mm, counts) for mm in m.members))
            # let the events of the burst flow for a while, counting them
            stop = time.monotonic() + 5
            while time.monotonic() < stop:
                for p in peers:
                    while True:
                        try:
                            raw = await asyncio.wait_for(p.ws.recv(), 0.001)
                        except asyncio.TimeoutError:
                            break
                        msg = mbtest.json.loads(raw)
                        if is_event(msg):
                            counts[p.member.name] += 1
                        else:
                            p.backlog.append(msg)
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - start
            worst = max(counts.values())
            assert worst <= elapsed + 1, f"a peer got {worst} event pushes in {elapsed:.1f} s"
            r = await list_peers(peers[0])
            assert {p["displayName"] for p in r["peers"]} == {mm.name for mm in m.members}
            await asyncio.gather(*(p.close() for p in peers))

        run(go(), timeout=600)
        conn.close()
        b.stop()
    finally:
        pg.destroy()
