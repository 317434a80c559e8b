"""The per-mesh audit hash chain (PROTOCOL.md §8): every row's hash is
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
