"""Every wake arrives (issue 21, acceptance 3): a sender whose wakes cannot go
out because more than UDS_OUT_MAX (16) destinations are busy keeps every one
of them pending (worker/uds.c's wait set) instead of dropping the oldest, and
each recipient gets its message within 1 s of being free again.

"Busy" is a recipient worker that does not run for a while (SIGSTOP: what a
CPU-starved or swapped-out worker looks like to its peers): it reads nothing
from its Unix sockets, so the sender's socket to it fills up with wakes and
then refuses more (EAGAIN)."""

import asyncio
import signal
import time

from mbtest import Peer, new_id, run

RECIPIENTS = 20
FILL = 320  # wakes per recipient: more than a Unix socket's send buffer holds
FREE_WITHIN_S = 1.0


def test_twenty_busy_recipients_all_get_their_message_within_1s_of_being_free(broker, mesh):
    b = broker(SEND_RATE_LIMIT_PER_MIN=1000000, SEND_RATE_BURST=1000000)
    m = mesh("S", *[f"R{i}" for i in range(RECIPIENTS)])
    sm, rms = m.members[0], m.members[1:]

    async def go():
        s = Peer(b, sm)
        await s.join()
        rs = [Peer(b, r) for r in rms]
        for r in rs:
            await r.join()
            # "next" messages wait while working; only the "now" one below
            # is pushed, so each freed worker has one row to claim
            await r.set_status("working")
            await r.barrier()
        pids = [r.worker_pid() for r in rs]
        for pid in pids:
            b.kill_worker(pid, signal.SIGSTOP)
        try:
            # every broadcast rings all 20 doorbells (one at a time: sends
            # that arrive together share a batch and one ring); with the
            # recipients stopped the sender's sockets fill and its wakes
            # pile up
            for i in range(FILL):
                f = {"type": "send", "id": new_id(12), "targetSpec": "*", "priority": "next",
                     "nonce": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "ciphertext": "ZmlsbA=="}
                ack = await s.send_and_ack(f, 60)
                assert ack["queued"], ack
            # the message that matters: sent while every recipient is busy
            acks = []
            for r in rms:
                _, ack = await s.send_direct(r.pubkey, f"for {r.name}", "now")
                assert ack["queued"], ack
                acks.append(ack["messageId"])
            await asyncio.sleep(0.3)  # the sender's wakes are pending now
        finally:
            for pid in pids:
                b.kill_worker(pid, signal.SIGCONT)
        freed = time.monotonic()

        async def one(r, mid):
            p = await r.push(timeout=10, pred=lambda x: x.get("messageId") == mid)
            return time.monotonic() - freed, r.decrypt(p)

        got = await asyncio.gather(*[one(r, mid) for r, mid in zip(rs, acks)])
        late = [(rms[i].name, round(t, 3)) for i, (t, _) in enumerate(got) if t > FREE_WITHIN_S]
        assert not late, f"recipients that got their message more than {FREE_WITHIN_S} s after being free: {late}"
        for i, (_, text) in enumerate(got):
            assert text == f"for {rms[i].name}"
        for r in rs:
            await r.close()
        await s.close()

    run(go(), 180)
