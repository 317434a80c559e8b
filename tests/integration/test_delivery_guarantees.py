"""No loss, and no duplicates but one window (issue 3, acceptance 5 and 6):
many senders to a recipient that keeps reconnecting (exactly once, in order);
SIGKILL of the recipient's worker with messages in flight (every acked message
arrives; only a push the killed worker had written but not yet marked
delivered may come again, once, on the next connection — at-least-once for
that window, with the same messageId); SIGKILL of the sender's worker right
after a send (what was acked, and what was stored, is delivered exactly once).

Waits are for events (every acked id seen) with generous deadlines, never for
a quiet spell of a few seconds: a loaded machine can be slower than that."""

import asyncio
from collections import Counter

import mbtest
from mbtest import Closed, Peer, is_push, run

FAST = dict(SEND_RATE_LIMIT_PER_MIN=1_000_000, SEND_RATE_BURST=100_000)


def test_five_senders_200_each_reach_a_recipient_that_reconnects_every_50_exactly_once_in_order(broker, mesh):
    b = broker(**FAST)
    m = mesh("R", "S0", "S1", "S2", "S3", "S4")
    rm, senders = m.members[0], m.members[1:]
    n_each, total = 200, 1000

    # the senders send in five chunks of 40 each, chunk j only once the
    # recipient's j-th connection has begun: however fast or slow the
    # machine, messages are in flight across at least five connections
    chunk = 40
    started = [asyncio.Event() for _ in range(n_each // chunk + 1)]

    async def send_all(k, member):
        p = Peer(b, member)
        await p.join()
        acked = []
        for i in range(n_each):
            if i % chunk == 0:
                await asyncio.wait_for(started[i // chunk + 1].wait(), 120)
            _, ack = await p.send_direct(rm.pubkey, f"{k}:{i}", "now", timeout=20)
            assert ack["queued"] is True, f"sender {k} message {i}: {ack}"
            acked.append(ack["messageId"])
        await p.close()
        return acked

    async def receive_all(done):
        got = []  # (connection number, push)
        conn = 0
        while len(got) < total:
            p = Peer(b, rm)
            await p.join(timeout=20)
            conn += 1
            if conn < len(started):
                started[conn].set()
            this = 0
            while this < 50 and len(got) < total:
                try:
                    push = await p.push(timeout=10 if done.is_set() else 30)
                except asyncio.TimeoutError:
                    break
                got.append((conn, push))
                this += 1
            await p.close()
            late = p.take(is_push)  # written before the server's close frame: delivered
            got += [(conn, x) for x in late]
            if this == 0 and not late and done.is_set():
                break
        return got, conn

    async def go():
        done = asyncio.Event()
        recv_task = asyncio.create_task(receive_all(done))
        acked = await asyncio.gather(*(send_all(k, s) for k, s in enumerate(senders)))
        done.set()
        got, conns = await recv_task
        # one more connection: nothing may come again
        p = Peer(b, rm)
        await p.join()
        await p.quiet(is_push, 1.5)
        await p.close()
        return acked, got, conns

    acked, got, conns = run(go(), 240)
    # pushes already on the wire when the recipient closes still count, so a
    # connection may end with more than 50; it must still have cycled a lot
    assert conns >= 5, f"recipient connected only {conns} times"
    ids = [p["messageId"] for _, p in got]
    dup = [i for i, c in Counter(ids).items() if c > 1]
    all_acked = {i for a in acked for i in a}
    missing = all_acked - set(ids)
    assert not dup, f"{len(dup)} messages delivered more than once"
    assert not missing, f"{len(missing)} of {total} acked messages never delivered"
    assert len(ids) == total
    texts = [mbtest.Peer(b, rm).decrypt(p) for _, p in got]
    for k in range(len(senders)):
        seq = [int(t.split(":")[1]) for t in texts if t.startswith(f"{k}:")]
        assert seq == list(range(n_each)), f"sender {k}: out of order or incomplete: first bad at " \
            f"{next((i for i, (x, y) in enumerate(zip(seq, range(n_each))) if x != y), len(seq))}"


def marked(db, member_id, message_ids):
    """which of message_ids are marked delivered to member_id"""
    with db.cursor() as c:
        c.execute("SELECT message_id FROM mesh.delivery WHERE recipient_member_id = %s "
                  "AND delivered_at IS NOT NULL AND message_id = ANY(%s)", (member_id, list(message_ids)))
        return {r[0] for r in c.fetchall()}


def test_sigkill_of_the_recipients_worker_loses_no_acked_message_and_frees_its_slot(broker, mesh, db):
    b = broker(**FAST)
    m = mesh("A", "B")
    am, bm = m.members
    n = 150

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        active_a = b.wait_metric("broker_connections_active", 1)
        assert active_a == 1
        await bb.join()
        assert b.wait_metric("broker_connections_active", 2) == 2
        b_worker = bb.worker_pid()

        async def sender():
            acked = []
            for i in range(n):
                _, ack = await a.send_direct(bm.pubkey, f"m{i}", "now", timeout=20)
                if ack["queued"]:
                    acked.append(ack["messageId"])
            return acked

        task = asyncio.create_task(sender())
        first = []
        while len(first) < 20:
            first.append(await bb.push(timeout=10))
        # what the peer's TCP acknowledged is marked delivered while it
        # stays connected (on its next claim, or on its own after 50 ms)
        head = {p["messageId"] for p in first[:10]}
        assert mbtest.wait_until(lambda: head <= marked(db, bm.id, head), 10), \
            "the first 10 pushes read were not marked delivered within 10 s"
        b.kill_worker(b_worker)
        # what the dead worker had already written is still readable
        while True:
            try:
                first.append(await bb.push(timeout=5))
            except (Closed, asyncio.TimeoutError):
                break
        acked = await task
        assert len(acked) == n, f"only {len(acked)} of {n} sends acked (the sender's worker is alive)"
        # the killed worker's slot is reclaimed
        active = b.wait_metric("broker_connections_active", 1, timeout=20)
        assert active == 1, f"broker_connections_active {active} after SIGKILL, want 1"
        assert mbtest.wait_until(lambda: b_worker not in b.workers(), 20)
        # what the dead worker had marked: nothing of it may come again
        marked_at_kill = marked(db, bm.id, {p["messageId"] for p in first})

        b2 = Peer(b, bm)
        await b2.join()
        assert b.wait_metric("broker_connections_active", 2) == 2
        second = []
        seen = {p["messageId"] for p in first}
        while not set(acked) <= seen:
            try:
                p = await b2.push(timeout=30)
            except asyncio.TimeoutError:
                break  # the loss is reported below
            second.append(p)
            seen.add(p["messageId"])
        await b2.quiet(is_push, 0.5)  # nothing more: no second copy of anything
        await a.close()
        await b2.close()
        return acked, first, second, marked_at_kill

    acked, first, second, marked_at_kill = run(go(), 120)
    ids1 = [p["messageId"] for p in first]
    ids2 = [p["messageId"] for p in second]
    assert len(ids1) == len(set(ids1)), "duplicate pushes on one connection"
    assert len(ids2) == len(set(ids2)), "duplicate pushes on one connection"
    missing = set(acked) - set(ids1) - set(ids2)
    assert not missing, f"{len(missing)} acked messages lost after SIGKILL of the recipient's worker"
    redelivered = set(ids1) & set(ids2)
    # only pushes not yet marked delivered when the worker died may come
    # again, and only once (checked above: no repeat per connection).  How
    # many those are depends on scheduling (pushes written in the last
    # moments before the kill, whose marks had not ridden on a claim yet:
    # up to 31 of 42 at load average 76), not on a promise: the promise is
    # that a marked push never comes again.
    assert not (redelivered & marked_at_kill), \
        f"{len(redelivered & marked_at_kill)} pushes marked delivered before the kill came again: " \
        f"{sorted(ids1.index(i) for i in redelivered & marked_at_kill)} of {len(ids1)}"
    assert redelivered <= set(ids1) - marked_at_kill
    with db.cursor() as c:
        c.execute("SELECT count(*) FROM mesh.delivery WHERE recipient_member_id = %s AND delivered_at IS NULL",
                  (bm.id,))
        assert c.fetchone()[0] == 0


def test_sigkill_of_the_senders_worker_either_acks_and_delivers_or_never_acks(broker, mesh, db):
    b = broker(**FAST)
    m = mesh("A", "B")
    am, bm = m.members

    async def round_(delay, tag):
        """delay: seconds to wait, or ("acks", k) to kill right after the
        k-th ack arrived (so some sends certainly were acked)"""
        a = Peer(b, am)
        await a.join()
        pid = a.worker_pid()
        frames = [a.send_frame_direct(bm.pubkey, f"{tag}-{i}", "now") for i in range(10)]
        for f in frames:
            await a.send_json(f)
        acks = []
        if isinstance(delay, tuple):
            while len([x for x in acks if x.get("queued")]) < delay[1]:
                acks.append(await a.wait_for(lambda x: x.get("type") == "ack", 20))
        elif delay:
            await asyncio.sleep(delay)
        b.kill_worker(pid)
        while True:
            try:
                r = await a.wait_for(lambda x: x.get("type") == "ack", 3)
            except (Closed, asyncio.TimeoutError):
                break
            acks.append(r)
        return frames, [x["messageId"] for x in acks if x.get("queued")]

    def stored_ids():
        with db.cursor() as c:
            c.execute("SELECT q.id FROM mesh.message_queue q WHERE q.sender_member_id = %s", (am.id,))
            return {r[0] for r in c.fetchall()}

    async def go():
        bb = Peer(b, bm)
        await bb.join()
        rounds = []
        for k, delay in enumerate([0, 0.002, 0.01, 0.05, ("acks", 1), ("acks", 5)]):
            rounds.append(await round_(delay, f"r{k}"))
        acked = {i for _, a in rounds for i in a}
        got = []
        # B's open connection gets what the senders' workers woke it for ...
        while not (acked | stored_ids()) <= {p["messageId"] for p in got}:
            try:
                got.append(await bb.push(timeout=15))
            except asyncio.TimeoutError:
                break  # the rest was never announced to this connection
        await bb.close()
        got += bb.take(is_push)
        # ... and a message committed by a worker that died before waking B
        # is delivered on B's next connection at the latest
        b2 = Peer(b, bm)
        await b2.join()
        while not (acked | stored_ids()) <= {p["messageId"] for p in got}:
            try:
                got.append(await b2.push(timeout=30))
            except asyncio.TimeoutError:
                break  # the loss is reported below
        await b2.quiet(is_push, 0.5)  # and nothing twice
        await b2.close()
        return rounds, got, bb

    rounds, got, bb = run(go(), 180)
    ids = [p["messageId"] for p in got]
    assert len(ids) == len(set(ids)), "a message was pushed twice"
    acked = {i for _, a in rounds for i in a}
    # the rounds that waited for acks before the kill had them: the test
    # cannot pass by acking nothing
    assert len(rounds[4][1]) >= 1 and len(rounds[5][1]) >= 5, [len(r[1]) for r in rounds]
    missing = acked - set(ids)
    assert not missing, f"{len(missing)} acked messages never delivered after the sender's worker died"
    sent_texts = {f"r{k}-{i}" for k in range(len(rounds)) for i in range(10)}
    for p in got:
        assert bb.decrypt(p) in sent_texts
    # what is stored was stored whole (message + its delivery row) and was delivered
    with db.cursor() as c:
        c.execute("SELECT q.id FROM mesh.message_queue q WHERE q.sender_member_id = %s", (am.id,))
        stored = {r[0] for r in c.fetchall()}
        c.execute("SELECT count(*) FROM mesh.message_queue q WHERE q.sender_member_id = %s AND NOT EXISTS "
                  "(SELECT 1 FROM mesh.delivery d WHERE d.message_id = q.id)", (am.id,))
        assert c.fetchone()[0] == 0, "a message was stored without its delivery row"
    assert stored == set(ids), f"stored {len(stored)} messages, delivered {len(set(ids))}"
