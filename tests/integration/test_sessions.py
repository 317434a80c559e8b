"""Session keys and session_hello (issue 18; docs/protocol.md §12.1, §12.2):
a hello's sessionPubkey is stored with the presence and routable (a DM to a
session key reaches only a connection holding it, and waits for one),
pushes name the sender's session key and its member, and session_hello
authenticates a session connection with its member's attestation — or is
refused with its code and the socket closed."""

import asyncio

import nacl.encoding
import nacl.public
import nacl.signing
import nacl.utils
import pytest

import mbtest
from mbtest import Peer, b64d, b64e, is_push, now_ms, run

DAY_MS = 86_400_000


def new_key():
    sk = nacl.signing.SigningKey.generate()
    return sk, sk.verify_key.encode(nacl.encoding.HexEncoder).decode().lower()


def box(sk, other_pub_hex):
    return nacl.public.Box(sk.to_curve25519_private_key(),
                           nacl.signing.VerifyKey(bytes.fromhex(other_pub_hex)).to_curve25519_public_key())


def dm_frame(sender_sk, to_pub, text, **extra):
    """a send boxed with sender_sk (a session or member key) for to_pub"""
    nonce = nacl.utils.random(24)
    ct = box(sender_sk, to_pub).encrypt(text.encode(), nonce).ciphertext
    f = {"type": "send", "id": mbtest.new_id(12), "targetSpec": to_pub, "priority": "now",
         "nonce": b64e(nonce), "ciphertext": b64e(ct)}
    f.update(extra)
    return f


def opened(recipient_sk, push):
    return box(recipient_sk, push["senderPubkey"]).decrypt(b64d(push["ciphertext"]), b64d(push["nonce"])).decode()


class SessionPeer(Peer):
    """A peer holding a session key: a hello with sessionPubkey, or (session
    = True) a session_hello with an attestation by its member's key."""

    def __init__(self, broker, member, session=False, key=None):
        super().__init__(broker, member)
        self.sk, self.pub = key or new_key()
        self.session = session

    def attestation(self, expires_at=None, sign_with=None, **over):
        m = self.member
        exp = now_ms() + 12 * 3600 * 1000 if expires_at is None else expires_at
        sig = (sign_with or m.sk).sign(
            f"claudemesh-session-attest|{m.pubkey}|{self.pub}|{exp}".encode()).signature.hex()
        a = {"sessionPubkey": self.pub, "parentMemberPubkey": m.pubkey, "expiresAt": exp, "signature": sig}
        a.update(over)
        return a

    def session_hello_msg(self, ts=None, att=None, sign_with=None, **over):
        m = self.member
        ts = self.fresh_ts() if ts is None else ts
        msg = {"type": "session_hello", "meshId": m.mesh.id, "parentMemberPubkey": m.pubkey,
               "parentMemberId": m.id, "sessionPubkey": self.pub,
               "parentAttestation": att or self.attestation(), "sessionId": self.session_id,
               "pid": 4242, "cwd": "/tmp/meshbroker-session", "timestamp": ts,
               "channel": "claudemesh-session"}
        msg.update(over)
        msg["signature"] = (sign_with or self.sk).sign(
            f"claudemesh-session-hello|{msg['meshId']}|{msg['parentMemberPubkey']}|{msg['sessionPubkey']}|"
            f"{msg['timestamp']}".encode()).signature.hex()
        return msg

    async def hello(self, timeout=20, **kw):
        if self.session:
            msg = kw.pop("msg", None) or self.session_hello_msg(**kw)
        else:
            msg = kw.pop("msg", None) or self.hello_msg(sessionPubkey=self.pub, **kw)
        await self.send_json(msg)
        return await self.wait_for(lambda x: x.get("type") in ("hello_ack", "error"), timeout)


async def refused(b, peer, msg):
    """send msg as the first frame; (error frame, close code, close reason)"""
    await peer.connect()
    await peer.send_json(msg)
    err = await peer.wait_for(lambda x: x.get("type") in ("hello_ack", "error"))
    code, reason = await peer.wait_closed()
    return err, code, reason


def presence_row(db, presence_id, want):
    """the presence row's (session_pubkey, peer_role), once it says want
    (it is written after hello_ack)"""
    def row():
        with db.cursor() as c:
            c.execute("SELECT session_pubkey, peer_role FROM mesh.presence WHERE id = %s", (presence_id,))
            return c.fetchone()
    mbtest.wait_until(lambda: row() == want, 10)
    return row()


# ---------------------------------------------------------------- hello.sessionPubkey


def test_hello_with_an_uppercase_session_pubkey_is_refused_and_closed(broker, mesh):
    b = broker()
    m = mesh("A")
    p = SessionPeer(b, m.members[0])

    async def go():
        return await refused(b, p, p.hello_msg(sessionPubkey=p.pub.upper()))

    err, code, reason = run(go(), 30)
    assert err == {"type": "error", "code": "bad_session_pubkey",
                   "message": "sessionPubkey must be 64 lowercase hex chars"}, err
    assert (code, reason) == (1008, "bad_session_pubkey")
    assert b.metric("broker_connections_rejected_total", reason="bad_session_pubkey") == 1


def test_a_dm_to_a_session_key_reaches_only_that_session_and_opens_with_its_secret_key(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = SessionPeer(b, am)
        s1, s2 = SessionPeer(b, bm), SessionPeer(b, bm)
        for p in (a, s1, s2):
            ack = await p.join()
        assert presence_row(db, ack["presenceId"], (s2.pub, "control-plane")) == (s2.pub, "control-plane")
        f = dm_frame(a.sk, s1.pub, "for session one only")
        ack = await a.send_and_ack(f)
        assert ack["queued"] is True, ack
        p = await s1.push()
        await s2.quiet(is_push, 1.0)
        for x in (a, s1, s2):
            await x.close()
        return a, s1, ack, p

    a, s1, ack, p = run(go(), 60)
    assert p["messageId"] == ack["messageId"]
    # §12.1: senderPubkey is the sender connection's session key; §12.2 fix:
    # the member behind it on every push
    assert p["senderPubkey"] == a.pub
    assert (p["senderMemberPubkey"], p["senderMemberId"], p["senderName"]) == (am.pubkey, am.id, "A")
    assert opened(s1.sk, p) == "for session one only"
    with db.cursor() as c:
        c.execute("SELECT recipient_member_id, recipient_session_pubkey, delivered_at IS NOT NULL "
                  "FROM mesh.delivery WHERE message_id = %s", (ack["messageId"],))
        assert c.fetchall() == [(bm.id, s1.pub, True)]


def test_a_dm_to_an_offline_session_key_waits_for_a_connection_holding_it(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members
    k1 = new_key()

    async def go():
        s1 = SessionPeer(b, bm, key=k1)
        await s1.join()  # the key is now B's
        await s1.close()
        a = Peer(b, am)
        await a.join()
        ack = await a.send_and_ack(dm_frame(am.sk, k1[1], "held for k1"))
        assert ack["queued"] is True, ack
        other = SessionPeer(b, bm)  # B, another session key
        await other.join()
        await other.quiet(is_push, 1.0)
        again = SessionPeer(b, bm, key=k1)
        await again.join()
        p = await again.push()
        for x in (a, other, again):
            await x.close()
        return p

    p = run(go(), 60)
    assert p["senderPubkey"] == am.pubkey  # a sender without a session key: its member key
    assert opened(k1[0], p) == "held for k1"


def test_a_dm_to_the_member_key_reaches_a_session_connection_of_that_member(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, s = Peer(b, am), SessionPeer(b, bm)
        await a.join()
        await s.join()
        f, ack = await a.send_direct(bm.pubkey, "to the member")
        p = await s.push()
        await a.close()
        await s.close()
        return p

    p = run(go(), 30)
    assert box(bm.sk, p["senderPubkey"]).decrypt(b64d(p["ciphertext"]), b64d(p["nonce"])) == b"to the member"


def test_a_session_key_of_another_member_or_a_member_key_is_refused(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members
    k = new_key()

    async def go():
        first = SessionPeer(b, am, key=k)
        await first.join()
        thief = SessionPeer(b, bm, key=k)
        e1, c1, _ = await refused(b, thief, thief.hello_msg(sessionPubkey=k[1]))
        posing = SessionPeer(b, bm)
        e2, c2, _ = await refused(b, posing, posing.hello_msg(sessionPubkey=am.pubkey))
        # a session_hello claiming A's session key for B
        sh = SessionPeer(b, bm, session=True, key=k)
        e3, c3, _ = await refused(b, sh, sh.session_hello_msg())
        await first.close()
        return e1, c1, e2, c2, e3, c3

    e1, c1, e2, c2, e3, c3 = run(go(), 60)
    assert (e1["code"], c1) == ("bad_session_pubkey", 1008) and "another member" in e1["message"], e1
    assert (e2["code"], c2) == ("bad_session_pubkey", 1008), e2
    assert (e3["code"], c3) == ("bad_session_pubkey", 1008), e3
    assert e3["message"] == "sessionPubkey belongs to another member"


def test_a_new_hello_with_the_same_session_key_replaces_the_older_connection(broker, mesh):
    b = broker()
    m = mesh("A")
    k = new_key()

    async def go():
        old = SessionPeer(b, m.members[0], key=k)
        await old.join()
        new = SessionPeer(b, m.members[0], key=k)  # another sessionId, the same key
        await new.join()
        code, reason = await old.wait_closed()
        await new.close()
        return code, reason

    assert run(go(), 30) == (1000, "session_replaced")


def test_client_ids_are_echoed_on_the_push_and_client_ack_takes_the_client_id(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = SessionPeer(b, am)
        s = SessionPeer(b, bm)
        await a.join()
        await s.connect()
        ack = await s.hello(capabilities=["client_ack"])
        assert ack["type"] == "hello_ack", ack
        f = dm_frame(a.sk, s.pub, "with ids", client_message_id="cmid-1", request_fingerprint="fp-1")
        f["id"] = "cmid-1"
        sent = await a.send_and_ack(f)
        p = await s.push()
        await s.send_json({"type": "client_ack", "clientMessageId": "cmid-1"})
        await s.barrier()
        await a.close()
        await s.close()
        return sent, p

    sent, p = run(go(), 30)
    assert sent["queued"] is True, sent
    assert (p["client_message_id"], p["request_fingerprint"]) == ("cmid-1", "fp-1"), p
    with db.cursor() as c:
        c.execute("SELECT delivered_at IS NOT NULL FROM mesh.delivery WHERE message_id = %s", (sent["messageId"],))
        assert c.fetchone() == (True,)


# ---------------------------------------------------------------- session_hello


def test_session_hello_authenticates_a_session_and_its_dms_reach_it(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        s = SessionPeer(b, bm, session=True)
        ack = await s.join()
        a = SessionPeer(b, am)
        await a.join()
        sent = await a.send_and_ack(dm_frame(a.sk, s.pub, "to the session"))
        p = await s.push()
        # its own sends carry its session key
        back = await s.send_and_ack(dm_frame(s.sk, a.pub, "from the session"))
        q = await a.push()
        await a.close()
        await s.close()
        return s, a, ack, sent, p, back, q

    s, a, ack, sent, p, back, q = run(go(), 30)
    assert ack["type"] == "hello_ack" and ack["memberId"] == bm.id and ack["memberDisplayName"] == "B", ack
    assert presence_row(db, ack["presenceId"], (s.pub, "session")) == (s.pub, "session")
    assert opened(s.sk, p) == "to the session"
    assert back["queued"] is True
    assert q["senderPubkey"] == s.pub and q["senderMemberPubkey"] == bm.pubkey and q["senderMemberId"] == bm.id
    assert opened(a.sk, q) == "from the session"


def test_session_hello_gets_what_was_queued_for_its_session_key_first(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members
    k = new_key()

    async def go():
        s = SessionPeer(b, bm, session=True, key=k)
        await s.join()
        await s.close()
        a = Peer(b, am)
        await a.join()
        await a.send_and_ack(dm_frame(am.sk, k[1], "queued for the session"))
        s2 = SessionPeer(b, bm, session=True, key=k)
        await s2.connect()
        await s2.send_json(s2.session_hello_msg())
        first = await s2.recv_json()
        p = await s2.push()
        await a.close()
        await s2.close()
        return first, p

    first, p = run(go(), 30)
    assert first["type"] == "hello_ack", first
    assert opened(k[0], p) == "queued for the session"


REFUSALS = [
    # (name, how the frame is spoiled, code, metric label)
    ("expired", lambda p: {"att": p.attestation(expires_at=now_ms() - 1000)}, "expired", "attestation_expired"),
    ("ttl_too_long", lambda p: {"att": p.attestation(expires_at=now_ms() + DAY_MS + 60_000)}, "ttl_too_long",
     "attestation_ttl_too_long"),
    ("forged", lambda p: {"att": p.attestation(sign_with=nacl.signing.SigningKey.generate())}, "bad_signature",
     "attestation_bad_signature"),
    ("mismatch", lambda p: {"att": p.attestation(sessionPubkey=new_key()[1])}, "attestation_mismatch",
     "attestation_mismatch"),
    ("session_forged", lambda p: {"sign_with": nacl.signing.SigningKey.generate()}, "bad_signature",
     "session_bad_signature"),
    ("session_skew", lambda p: {"ts": now_ms() - 61_000}, "timestamp_skew", "session_timestamp_skew"),
    ("bad_parent", lambda p: {"parentMemberPubkey": p.member.pubkey.upper()}, "bad_parent_pubkey",
     "bad_parent_pubkey"),
    ("member_id", lambda p: {"parentMemberId": "not-this-member"}, "parent_member_id_mismatch",
     "parent_member_id_mismatch"),
]


@pytest.mark.parametrize("name,spoil,code,label", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_session_hello_is_refused_with_its_code_and_closed(broker, mesh, name, spoil, code, label):
    b = broker()
    m = mesh("B")
    s = SessionPeer(b, m.members[0], session=True)

    async def go():
        return await refused(b, s, s.session_hello_msg(**spoil(s)))

    err, close, reason = run(go(), 30)
    assert err["type"] == "error" and err["code"] == code, err
    assert "_reqId" not in err and "id" not in err, err
    assert (close, reason) == (1008, code)
    assert b.metric("broker_connections_rejected_total", reason=label) == 1


def test_session_hello_expired_attestation_message(broker, mesh):
    b = broker()
    m = mesh("B")
    s = SessionPeer(b, m.members[0], session=True)

    async def go():
        return await refused(b, s, s.session_hello_msg(att=s.attestation(expires_at=now_ms() - 1)))

    err, close, reason = run(go(), 30)
    assert err == {"type": "error", "code": "expired", "message": "attestation rejected: expired"}, err


def test_a_replayed_session_hello_is_refused(broker, mesh):
    b = broker()
    m = mesh("B")

    async def go():
        s = SessionPeer(b, m.members[0], session=True)
        frame = s.session_hello_msg()
        await s.connect()
        await s.send_json(frame)
        ok = await s.wait_for(lambda x: x.get("type") in ("hello_ack", "error"))
        again = SessionPeer(b, m.members[0], session=True)
        err, close, reason = await refused(b, again, frame)
        await s.close()
        return ok, err, close, reason

    ok, err, close, reason = run(go(), 30)
    assert ok["type"] == "hello_ack", ok
    assert err == {"type": "error", "code": "replayed", "message": "session_hello rejected: replayed"}, err
    assert (close, reason) == (1008, "replayed")


def test_session_hello_of_a_stranger_or_a_revoked_member(broker, mesh):
    b = broker()
    m = mesh("B", "C")
    bm, cm = m.members
    m.revoke(cm)
    stranger = mbtest.Member(m, "X")  # never added to the mesh

    async def go():
        s = SessionPeer(b, stranger, session=True)
        e1 = await refused(b, s, s.session_hello_msg(parentMemberId=None))
        r = SessionPeer(b, cm, session=True)
        e2 = await refused(b, r, r.session_hello_msg())
        return e1, e2

    (e1, c1, r1), (e2, c2, r2) = run(go(), 30)
    assert (e1["code"], e1["message"], c1, r1) == ("unauthorized", "parent pubkey not found in mesh", 1008,
                                                   "unauthorized"), e1
    # §12.4: one refusal for a banned member, hello or session_hello: the mesh's name, close 4002, counted once
    assert (e2["code"], c2, r2) == ("revoked", 4002, "banned"), e2
    assert e2["message"] == f'You\'ve been removed from "{m.name}". Contact the mesh owner to rejoin.', e2
    assert b.wait_metric("broker_connections_rejected_total", 1, reason="revoked")
    assert b.metric("broker_connections_rejected_total", reason="revoked") == 1


def test_session_hello_switched_off_answers_unknown_message_type_and_closes(broker, mesh):
    b = broker(SESSION_HELLO="0")
    m = mesh("B")
    s = SessionPeer(b, m.members[0], session=True)

    async def go():
        return await refused(b, s, s.session_hello_msg())

    err, close, reason = run(go(), 30)
    assert err == {"type": "error", "code": "unknown_message_type",
                   "message": "unknown message type: session_hello"}, err
    assert (close, reason) == (1008, "unknown_message_type")


def test_a_session_hello_after_hello_is_already_authenticated(broker, mesh):
    b = broker()
    m = mesh("B")

    async def go():
        p = SessionPeer(b, m.members[0])
        await p.join()
        s = SessionPeer(b, m.members[0], session=True)
        await p.send_json(s.session_hello_msg())
        r = await p.wait_for(lambda x: x.get("type") == "error")
        await p.close()
        return r

    assert run(go(), 30)["code"] == "already_authenticated"
