"""Opaque fields stay whole (issue 11, part; issue 18): nonce and ciphertext
are any JSON strings, carried byte for byte or refused, never cut.  A JSON
string with \\u0000 would reach the broker's C strings cut at the NUL (and
PostgreSQL text cannot hold it); such a send is refused with the documented
code nul_in_field.  Anything else, base64 or not, is stored and pushed
exactly as sent (the reference's own smoke test sends "fake-nonce-aaa")."""

from mbtest import Peer, is_push, run


def sends(b, m, mutate):
    """A sends B one message mutated by mutate(frame); (frame, reply)"""
    am, bm = m.members

    async def go():
        a = Peer(b, am)
        await a.join()
        f = a.send_frame_direct(bm.pubkey, "whole or nothing")
        mutate(f)
        await a.send_json(f)
        r = await a.wait_for(lambda x: x.get("type") in ("ack", "error"))
        bb = Peer(b, bm)
        await bb.join()
        await bb.quiet(is_push, 0.5)
        await bb.close()
        await a.close()
        return f, r

    return run(go(), 60)


def assert_refused(f, r, words, db, sender):
    assert r["type"] == "ack" and r["id"] == f["id"], r
    assert r["queued"] is False and r["messageId"] == "", r
    assert r["code"] == "nul_in_field" and r["error"].startswith("nul_in_field") and words in r["error"], r
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.message_queue WHERE sender_member_id = %s", (sender.id,))
        assert c.fetchone()[0] == 0, "a refused send was stored"


def test_nul_inside_the_ciphertext_is_refused_not_cut(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    f, r = sends(b, m, lambda f: f.update(ciphertext=f["ciphertext"][:8] + "\x00" + f["ciphertext"][8:]))
    assert_refused(f, r, "\\u0000", db, m.members[0])


def test_nul_inside_the_nonce_is_refused_not_cut(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    f, r = sends(b, m, lambda f: f.update(nonce=f["nonce"][:4] + "\x00" + f["nonce"][4:]))
    assert_refused(f, r, "\\u0000", db, m.members[0])


def carried(b, m, nonce, ciphertext):
    """A sends B (nonce, ciphertext) verbatim; (ack, push)"""
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        f = {"type": "send", "id": "opaque-1", "targetSpec": bm.pubkey, "priority": "now",
             "nonce": nonce, "ciphertext": ciphertext}
        ack = await a.send_and_ack(f)
        p = await bb.push()
        await a.close()
        await bb.close()
        return ack, p

    return run(go(), 30)


def assert_carried(db, nonce, ciphertext, ack, p):
    assert ack["queued"] is True and ack["messageId"], ack
    assert (p["nonce"], p["ciphertext"]) == (nonce, ciphertext), p
    with db.cursor() as c:
        c.execute("SELECT nonce, ciphertext FROM mesh.message_queue WHERE id = %s", (ack["messageId"],))
        assert c.fetchone() == (nonce, ciphertext)


def test_the_reference_smoke_test_fields_are_acked_and_pushed_byte_for_byte(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    ack, p = carried(b, m, "fake-nonce-aaa", "hello-from-a")
    assert_carried(db, "fake-nonce-aaa", "hello-from-a", ack, p)


def test_every_printable_ascii_character_is_carried_byte_for_byte(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    every = "".join(chr(c) for c in range(0x20, 0x7f))  # quotes, commas, backslashes, braces
    ack, p = carried(b, m, every, every[::-1])
    assert_carried(db, every, every[::-1], ack, p)


def test_empty_and_non_ascii_opaque_strings_are_carried(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    ct = "h\u00e9llo, \"w\u00f6rld\" \\ \t\n \u2603 {a,b}"
    ack, p = carried(b, m, "", ct)
    assert_carried(db, "", ct, ack, p)


def test_a_nonce_that_is_not_a_string_is_refused(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    f, r = sends(b, m, lambda f: f.update(nonce=12))
    assert r["type"] == "ack" and r["queued"] is False and r["code"] == "malformed", r
    assert "nonce" in r["error"], r


def test_other_frames_with_a_nul_get_an_error_and_change_nothing(broker, mesh, db):
    b = broker()
    m = mesh("A")

    async def go():
        a = Peer(b, m.members[0])
        ack = await a.join()
        await a.send_json({"type": "set_status", "status": "dnd\x00", "id": "s1"})
        r = await a.wait_for(lambda x: x.get("type") == "error")
        assert r["code"] == "bad_json" and "\\u0000" in r["message"] and r.get("id") == "s1", r
        await a.barrier()
        await a.close()
        return ack

    ack = run(go(), 30)
    with db.cursor() as c:
        c.execute("SELECT status FROM mesh.presence WHERE id = %s", (ack["presenceId"],))
        assert c.fetchone()[0] == "idle"


def test_a_valid_send_is_stored_and_pushed_byte_for_byte(broker, mesh, db):
    b = broker()
    m = mesh("A", "B")
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        f, ack = await a.send_direct(bm.pubkey, "exactly this")
        p = await bb.push()
        await a.close()
        await bb.close()
        return f, ack, p

    f, ack, p = run(go(), 30)
    assert ack["queued"] is True
    assert (p["nonce"], p["ciphertext"]) == (f["nonce"], f["ciphertext"])
    with db.cursor() as c:
        c.execute("SELECT nonce, ciphertext FROM mesh.message_queue WHERE id = %s", (ack["messageId"],))
        assert c.fetchone() == (f["nonce"], f["ciphertext"])
