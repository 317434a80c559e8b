"""Audit rows written by workers (issue 3; docs/protocol.md §8): peer_joined,
peer_left, message_sent and hello_rejected, metadata only."""

import json

import nacl.signing

import mbtest
from mbtest import Peer, run


def audit_rows(db, mesh_id):
    with db.cursor() as c:
        c.execute("SELECT event_type, actor_member_id, actor_display_name, payload FROM mesh.audit_log "
                  "WHERE mesh_id = %s ORDER BY id", (mesh_id,))
        return c.fetchall()


def test_audit_rows_record_join_leave_send_and_rejection_without_bodies(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members
    sent = {}

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        frame, ack = await a.send_direct(bm.pubkey, "secret words", "next")
        assert ack["queued"]
        sent.update(frame=frame, ack=ack)
        await bb.push()
        await a.close()
        await bb.close()
        # a rejected hello for this mesh
        bad = Peer(b, am)
        await bad.connect()
        r = await bad.hello(sign_with=nacl.signing.SigningKey.generate())
        assert r["code"] == "bad_signature"
        await bad.wait_closed()

    run(go(), 30)

    def complete():
        rows = audit_rows(db, m.id)
        kinds = [r[0] for r in rows]
        if kinds.count("peer_joined") >= 2 and kinds.count("peer_left") >= 2 and \
                "message_sent" in kinds and "hello_rejected" in kinds:
            return rows
        return None

    rows = mbtest.wait_until(complete, 5, interval=0.1)
    assert rows, f"audit rows so far: {[(r[0], r[1]) for r in audit_rows(db, m.id)]}"

    joined = [r for r in rows if r[0] == "peer_joined"]
    assert {r[1] for r in joined} == {am.id, bm.id}
    assert {r[2] for r in joined} == {"A", "B"}
    left = [r for r in rows if r[0] == "peer_left"]
    assert {r[1] for r in left} == {am.id, bm.id}

    msg = [r for r in rows if r[0] == "message_sent"]
    assert len(msg) == 1
    assert msg[0][1] == am.id
    payload = msg[0][3]
    assert payload.get("targetSpec") == bm.pubkey
    assert payload.get("priority") == "next"
    assert payload.get("messageId") == sent["ack"]["messageId"]

    rej = [r for r in rows if r[0] == "hello_rejected"]
    assert len(rej) == 1 and rej[0][3].get("reason") == "bad_signature", rej

    # metadata only: no body, nonce or ciphertext anywhere in the payloads
    for r in rows:
        text = json.dumps(r[3])
        for k in ("nonce", "ciphertext", "body", "text"):
            assert f'"{k}"' not in text, f"{r[0]} payload carries {k}: {text}"
        assert sent["frame"]["nonce"] not in text and sent["frame"]["ciphertext"] not in text
        assert "secret words" not in text


def test_broker_logs_never_contain_message_bodies(broker, mesh):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members
    frames = []

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        frame, ack = await a.send_direct(bm.pubkey, "do not log me", "now")
        frames.append(frame)
        bframe, _ = await a.send_broadcast("plain broadcast body", "now")
        frames.append(bframe)
        await bb.push()
        await bb.push()
        await a.close()
        await bb.close()

    run(go(), 30)
    b.stop()
    log = open(b.log, "rb").read().decode("utf-8", "replace")
    for f in frames:
        assert f["ciphertext"] not in log, "a ciphertext was logged"
        assert f["nonce"] not in log, "a nonce was logged"
    # every log line is one JSON object with ts, level, component, msg
    for line in log.splitlines():
        if not line.strip():
            continue
        try:
            j = json.loads(line)
        except ValueError:
            raise AssertionError(f"log line is not JSON: {line[:200]}")
        for k in ("ts", "level", "component", "msg"):
            assert k in j, f"log line without {k}: {line[:200]}"
