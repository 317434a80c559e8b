"""The per-mesh audit hash chain (docs/protocol.md §8): every row's hash is
sha256_hex(prev_hash|mesh_id|event_type|actor|canonical_json(payload)|created_at_iso),
the first prev_hash is "genesis", and concurrent appends never fork it."""

import hashlib
import json

from mbtest import Peer, run


def canonical(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def verify_chain(db, mesh_id):
    with db.cursor() as c:
        c.execute("SELECT mesh_id, event_type, actor_member_id, payload, prev_hash, hash, "
                  "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
                  "FROM mesh.audit_log WHERE mesh_id = %s ORDER BY id", (mesh_id,))
        rows = c.fetchall()
    prev = "genesis"
    for mesh, event, actor, payload, prev_hash, h, ts in rows:
        assert prev_hash == prev, f"chain broken at {event}: {prev_hash} != {prev}"
        text = "|".join([prev, mesh, event, actor if actor is not None else "null", canonical(payload), ts])
        assert h == hashlib.sha256(text.encode()).hexdigest(), f"bad hash on {event}"
        prev = h
    return rows


def test_audit_rows_form_a_valid_chain_under_concurrent_appends(broker, mesh, db):
    b = broker()
    m = mesh("A", "B", "C")

    async def go():
        peers = [Peer(b, x) for x in m.members]
        for p in peers:
            await p.join()
        # three peers appending at once (message_sent rows from three workers)
        for i in range(10):
            for p in peers:
                await p.send_json(p.send_frame_direct(m.members[0].pubkey, f"m{i}", "low", id=f"x{i}"))
        for p in peers:
            for i in range(10):
                await p.wait_for(lambda x, i=i: x.get("type") == "ack" and x.get("id") == f"x{i}", 10)
        for p in peers:
            await p.close()

    run(go(), 60)
    rows = verify_chain(db, m.id)
    events = [r[1] for r in rows]
    assert events.count("message_sent") == 30, events
    assert events.count("peer_joined") == 3


def test_meshctl_audit_verify_accepts_the_chain_and_names_a_tampered_row(broker, mesh, db, pg):
    import os
    import subprocess

    from mbtest import require_bin

    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        for i in range(3):
            await a.send_direct(bm.pubkey, f"n{i}", "low")
        await a.close()

    run(go(), 30)
    env = dict(os.environ, DATABASE_URL=pg.url)
    meshctl = require_bin("meshctl")
    r = subprocess.run([meshctl, "audit", "verify", m.id], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "chain intact" in r.stdout
    with db.cursor() as c:
        c.execute("UPDATE mesh.audit_log SET payload = jsonb_set(payload, '{priority}', '\"now\"') "
                  "WHERE id = (SELECT min(id) FROM mesh.audit_log WHERE mesh_id = %s AND event_type = 'message_sent') "
                  "RETURNING id", (m.id,))
        bad = c.fetchone()[0]
    r = subprocess.run([meshctl, "audit", "verify", m.id], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f"row {bad}" in r.stderr and "hash does not match" in r.stderr, r.stderr
