"""GET /api/v1/topics/:name/stream as Server-Sent Events (issue 18,
acceptance 5; docs/protocol.md §12.6): a stream sees a post made over the
socket and one made over REST, in order, pushed as posted; after a
reconnect with Last-Event-ID it gets exactly what it missed; a key without
read or outside the topic scope gets 403; heartbeats come when nothing else
did; a revoked key ends the stream; the stream's presence slot is given back."""

import asyncio
import base64
import hashlib
import json
import secrets
import socket
import time

import nacl.utils

from mbtest import Peer, b64e, new_id, run, wait_until
from test_topics import create, post, quiet_request


def api_key(db, mesh, member, caps=("send", "read"), topics=None):
    secret = "cm_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.api_key (id, mesh_id, issuer_member_id, secret_hash, prefix, capabilities, "
                  "topic_scopes) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                  (new_id(), mesh.id, member.id, hashlib.sha256(secret.encode()).hexdigest(), secret[:11],
                   list(caps), list(topics) if topics is not None else None))
    return secret


class Stream:
    """a bare SSE client: the head, then events parsed as they arrive"""

    def __init__(self, b, path, secret, last_event_id=None):
        self.sock = socket.create_connection(("127.0.0.1", b.port), timeout=10)
        extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n"
                          f"Accept: text/event-stream\r\n{extra}\r\n".encode())
        self.buf = b""
        self.closed = False
        while b"\r\n\r\n" not in self.buf:
            self._recv(10)
            assert not self.closed or b"\r\n\r\n" in self.buf, self.buf
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        if not chunk:
            self.closed = True
        self.buf += chunk

    def body(self, timeout=5):
        """what a refused stream answered (the whole body, the worker closes)"""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._recv(deadline - time.monotonic())
        return json.loads(self.buf)

    def event(self, timeout=10):
        """the next event {event, id, data} or None when none came in time"""
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self._recv(left)
        raw, self.buf = self.buf.split(b"\n\n", 1)
        ev = {"event": "message", "id": None, "data": ""}
        for line in raw.decode().split("\n"):
            if line.startswith(":"):
                continue
            k, _, v = line.partition(": ")
            ev[k] = v
        return ev

    def messages(self, n, timeout=10):
        """the next n message events (heartbeats skipped)"""
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            ev = self.event(max(0.01, deadline - time.monotonic()))
            assert ev is not None, f"{len(got)} of {n} message events came: {got}"
            if ev["event"] == "message":
                got.append(ev)
        return got

    def close(self):
        self.sock.close()


def rest_post(b, secret, topic, nonce, ct):
    st, _, data = b.request("POST", "/api/v1/messages", body=json.dumps({"topic": topic, "nonce": nonce,
                                                                          "ciphertext": ct}),
                            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    assert st == 200, (st, data)
    return json.loads(data)


def setup_topic(b, mesh_obj, name="live"):
    am, bm = mesh_obj.members[:2]

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        tid = (await create(a, name))["topic"]["id"]
        assert await quiet_request(bb, {"type": "topic_join", "topic": tid}) is None
        await a.close()
        await bb.close()
        return tid

    return run(go(), 30)


def socket_post(b, member, tid, text):
    async def go():
        a = Peer(b, member)
        await a.join()
        ack = await post(a, tid, b64e(nacl.utils.random(24)), b64e(text.encode()), 1)
        assert ack["queued"], ack
        await a.close()
        return ack["messageId"]

    return run(go(), 30)


def test_stream_sees_socket_and_rest_posts_in_order_and_resumes_with_last_event_id(broker, mesh, db):
    b = broker()
    m = mesh("alice", "bob")
    am, bm = m.members
    tid = setup_topic(b, m)
    ka, kb = api_key(db, m, am), api_key(db, m, bm, caps=("read",), topics=("live",))
    before = rest_post(b, ka, "live", "n0", "old")  # before the stream: not replayed
    s = Stream(b, "/api/v1/topics/live/stream", kb)
    try:
        assert s.status == 200 and s.headers["content-type"] == "text/event-stream", (s.status, s.headers)
        assert s.headers["cache-control"] == "no-cache"
        ready = s.event()
        assert ready["event"] == "ready", ready
        r = json.loads(ready["data"])
        assert r["topic"] == "live" and r["topicId"] == tid and r["connectedAt"].endswith("Z"), r
        m1 = socket_post(b, am, tid, "over the socket")
        m2 = rest_post(b, ka, "live", "fake-nonce-aaa", "hello-from-a")["messageId"]
        got = s.messages(2)
        assert [e["id"] for e in got] == [m1, m2], (got, m1, m2)
        d1, d2 = (json.loads(e["data"]) for e in got)
        assert d1["id"] == m1 and base64.b64decode(d1["ciphertext"]) == b"over the socket"
        assert d1["senderMemberId"] == am.id and d1["senderPubkey"] == am.pubkey and d1["senderName"] == "alice"
        assert d1["bodyVersion"] == 1 and d1["replyToId"] is None and d1["createdAt"].endswith("Z")
        assert (d2["nonce"], d2["ciphertext"]) == ("fake-nonce-aaa", "hello-from-a"), d2
        assert before["messageId"] not in (m1, m2)
        # pushed as posted (a wake), not found by the 2 s poll: three in a row, each at once
        for i in range(3):
            t0 = time.monotonic()
            mid = rest_post(b, ka, "live", "n", f"quick {i}")["messageId"]
            assert [e["id"] for e in s.messages(1)] == [mid]
            assert time.monotonic() - t0 < 0.6, time.monotonic() - t0
        m2 = mid
    finally:
        s.close()
    # what happens while it is away
    missed = [socket_post(b, am, tid, "missed one"), rest_post(b, ka, "live", "n", "missed two")["messageId"]]
    s = Stream(b, "/v1/topics/live/stream", kb, last_event_id=m2)
    try:
        assert s.event()["event"] == "ready"
        got = s.messages(2)
        assert [e["id"] for e in got] == missed, (got, missed)
        # exactly what it missed: nothing more, then live again
        nxt = s.event(timeout=0.5)
        assert nxt is None or nxt["event"] == "heartbeat", nxt
        m5 = rest_post(b, ka, "live", "n", "live again")["messageId"]
        assert [e["id"] for e in s.messages(1)] == [m5]
    finally:
        s.close()
    # an unknown Last-Event-ID starts from now
    s = Stream(b, "/v1/topics/live/stream", kb, last_event_id="nosuchmessage")
    try:
        assert s.event()["event"] == "ready"
        m6 = rest_post(b, ka, "live", "n", "after an unknown id")["messageId"]
        assert [e["id"] for e in s.messages(1)] == [m6]
    finally:
        s.close()


def test_stream_refuses_keys_without_read_or_outside_the_scope(broker, mesh, db):
    b = broker()
    m = mesh("alice", "bob", "carol")
    am, bm, cm = m.members
    tid = setup_topic(b, m)
    for prefix in ("/v1", "/api/v1"):
        for secret, want in ((api_key(db, m, bm, caps=("send",)), "api_key_missing_capability"),
                             (api_key(db, m, bm, topics=("elsewhere",)), "api_key_topic_out_of_scope")):
            s = Stream(b, f"{prefix}/topics/live/stream", secret)
            try:
                assert s.status == 403, s.status
                assert s.body() == {"error": want, "code": "error." + want, "status": 403}
            finally:
                s.close()
    # carol is no topic member; an unknown topic
    for path, st, want in (("/v1/topics/live/stream", 403, "not_a_member"),
                           ("/v1/topics/nope/stream", 404, "topic_not_found")):
        s = Stream(b, path, api_key(db, m, cm))
        try:
            assert s.status == st and s.body()["error"] == want
        finally:
            s.close()
    assert tid


def test_stream_heartbeats_own_posts_revocation_and_slot_release(broker, mesh, db):
    b = broker(PING_INTERVAL_SECONDS=1)
    m = mesh("alice", "bob")
    am, bm = m.members
    setup_topic(b, m)
    kb = api_key(db, m, bm)
    active = b.metric("broker_connections_active")
    s = Stream(b, "/v1/topics/live/stream", kb)
    try:
        assert s.event()["event"] == "ready"
        # the stream is woken like a live connection of bob: its slot is in the presence table,
        # but it is no peer (docs/protocol.md §12.3): list_peers does not show it
        assert wait_until(lambda: b.metric("broker_connections_active") == active + 1, 5)

        async def peers():
            a = Peer(b, am)
            await a.join()
            await a.send_json({"type": "list_peers", "_reqId": "lp1"})
            r = await a.wait_for(lambda x: x.get("_reqId") == "lp1", 10)
            await a.close()
            return r["peers"]

        ps = run(peers(), 30)
        assert [(p["memberId"], p["self"]) for p in ps] == [(am.id, True)], ps
        assert not [p for p in ps if p.get("peerType") == "sse" or p["memberId"] == bm.id], ps
        hb = s.event(timeout=3)
        assert hb["event"] == "heartbeat" and int(hb["data"]) > 0, hb
        # bob's own post reaches bob's stream at once (the REST post rings its poster's doorbell too)
        t0 = time.monotonic()
        own = rest_post(b, kb, "live", "n", "mine")["messageId"]
        assert [e["id"] for e in s.messages(1)] == [own]
        assert time.monotonic() - t0 < 0.6
        with db.cursor() as c:
            c.execute("UPDATE mesh.api_key SET revoked_at = now() WHERE prefix = %s", (kb[:11],))
        deadline = time.monotonic() + 6
        ev = None
        while time.monotonic() < deadline:
            ev = s.event(timeout=deadline - time.monotonic())
            if ev is None or ev["event"] == "error":
                break
        assert ev and ev["event"] == "error" and json.loads(ev["data"]) == {"error": "api_key_revoked"}, ev
        assert s.event(timeout=3) is None and s.closed
    finally:
        s.close()
    assert wait_until(lambda: b.metric("broker_connections_active") == active, 5)
    assert b.wait_no_workers(5)


def test_a_post_committed_after_a_later_one_is_not_skipped(broker, mesh, db, pg):
    """created_at is stamped before the commit: a post stamped first but committed after a later one
    (its transaction slower) still reaches the stream, which reads a message only once it settled"""
    b = broker()
    m = mesh("alice", "bob")
    am, bm = m.members
    tid = setup_topic(b, m)
    ka, kb = api_key(db, m, am), api_key(db, m, bm)
    s = Stream(b, "/v1/topics/live/stream", kb)
    slow = pg.connect()
    try:
        assert s.event()["event"] == "ready"
        slow.autocommit = False
        first = new_id()
        with slow.cursor() as c:  # stamped now, committed later
            c.execute("INSERT INTO mesh.topic_message (id, topic_id, sender_member_id, nonce, ciphertext) "
                      "VALUES (%s, %s, %s, 'n', 'stamped first')", (first, tid, am.id))
        second = rest_post(b, ka, "live", "n", "stamped second")["messageId"]
        time.sleep(0.05)
        slow.commit()
        got = s.messages(2)
        assert [e["id"] for e in got] == [first, second], got
    finally:
        slow.close()
        s.close()


def test_a_stream_is_no_peer_it_makes_no_peer_event_and_takes_no_connection_of_its_member(broker, mesh, db):
    """docs/protocol.md §12.3: an event stream holds a presence slot of its member (posts wake it) but is no
    peer: no peer_joined for it, and with MAX_CONNECTIONS_PER_MEMBER=1 its member can still connect"""
    b = broker(MAX_CONNECTIONS_PER_MEMBER=1)
    m = mesh("alice", "bob")
    am, bm = m.members
    setup_topic(b, m)
    kb = api_key(db, m, bm)

    async def go():
        watcher = Peer(b, am)
        await watcher.connect()
        await watcher.send_json(watcher.hello_msg(capabilities=["peer_events"]))
        await watcher.wait_for(lambda x: x.get("type") == "hello_ack")
        active = b.metric("broker_connections_active")
        s = Stream(b, "/v1/topics/live/stream", kb)
        try:
            assert s.event()["event"] == "ready"
            assert wait_until(lambda: b.metric("broker_connections_active") == active + 1, 5)
            await asyncio.sleep(0.8)  # the watcher's worker looks every 250 ms
            bob = Peer(b, bm)
            await bob.join()  # the stream took no connection of bob's
            e = await watcher.wait_for(lambda x: x.get("subtype") == "system" and "event" in x, timeout=10)
            evs = e["eventData"]["events"] if e["event"] == "peers_changed" else [dict(e["eventData"], event=e["event"])]
            assert [(x["event"], x["sessionId"]) for x in evs] == [("peer_joined", bob.session_id)], e
            await bob.close()
            e = await watcher.wait_for(lambda x: x.get("subtype") == "system" and "event" in x, timeout=10)
            assert e["event"] == "peer_left" and e["eventData"]["sessionId"] == bob.session_id, e
        finally:
            s.close()
        # the stream's end is no peer_left either
        assert wait_until(lambda: b.metric("broker_connections_active") == active, 5)
        await watcher.quiet(lambda x: x.get("subtype") == "system" and "event" in x, 1.0)
        await watcher.close()

    run(go(), 40)
