"""Before a hello proves membership it writes (almost) nothing (issue 11,
part): a stranger's self-signed hello appends no audit row to the mesh it
names, and hellos that fail their signature check write at most one
hello_rejected row per mesh a minute; /metrics counts every one."""

import nacl.signing

import mbtest
from mbtest import Peer, run


def audit_count(db, mesh_id, kind=None):
    with db.cursor() as c:
        if kind:
            c.execute("SELECT count(*) FROM mesh.audit_log WHERE mesh_id = %s AND event_type = %s", (mesh_id, kind))
        else:
            c.execute("SELECT count(*) FROM mesh.audit_log WHERE mesh_id = %s", (mesh_id,))
        return c.fetchone()[0]


def test_self_signed_and_forged_hellos_write_at_most_one_row_and_a_member_still_gets_in(broker, mesh, db):
    b = broker()
    m = mesh("A")
    (am,) = m.members
    rows0 = audit_count(db, m.id)
    unauth0 = b.metric("broker_connections_rejected_total", reason="unauthorized")
    badsig0 = b.metric("broker_connections_rejected_total", reason="bad_signature")
    n_strangers, n_forged = 30, 20

    async def go():
        # strangers: a valid signature with their own key, naming the real mesh
        for i in range(n_strangers):
            stranger = mbtest.Member(m, f"s{i}")  # never inserted
            p = Peer(b, stranger)
            await p.connect()
            r = await p.hello()
            assert r.get("code") == "unauthorized", r
            await p.wait_closed()
        # forgers: A's member id and pubkey, signed with another key
        for i in range(n_forged):
            p = Peer(b, am)
            await p.connect()
            r = await p.hello(sign_with=nacl.signing.SigningKey.generate())
            assert r.get("code") == "bad_signature", r
            await p.wait_closed()
        # the member itself is not held up
        ok = Peer(b, am)
        await ok.join()
        await ok.close()

    run(go(), 120)
    assert b.wait_metric("broker_connections_rejected_total", unauth0 + n_strangers,
                         reason="unauthorized") == unauth0 + n_strangers
    assert b.wait_metric("broker_connections_rejected_total", badsig0 + n_forged,
                         reason="bad_signature") == badsig0 + n_forged
    # wait for the member's own rows (joined, left), then count the rest
    assert mbtest.wait_until(lambda: audit_count(db, m.id, "peer_left") == 1, 20)
    assert audit_count(db, m.id, "hello_rejected") == 1, "forged hellos wrote more than one row a minute"
    assert audit_count(db, m.id) == rows0 + 3  # hello_rejected, peer_joined, peer_left
