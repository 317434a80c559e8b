"""The worker sandboxes itself (issue 21, acceptance 6; worker/sandbox.c):
before it reads the client's first byte, under meshbroker-accept as under
systemd-socket-activate, it sets no_new_privs and loads a seccomp allow-list
(Landlock bounds its writes where the kernel has it).  Every authenticated
worker shows NoNewPrivs: 1 and Seccomp: 2 in /proc; a worker that makes a
system call off the list dies by SIGSYS, and only its own connection closes.

The forbidden call comes from a test-only build of the worker
(build/…/tests/meshbroker-worker-sbxtest: skel.c compiled with
-DMESHBROKER_TEST_FORBIDDEN_SYSCALL, which calls acct(2) on SIGUSR1); the
shipped binary has no such path."""

import os
import signal

import pytest

import mbtest
from mbtest import Peer, run, wait_until

SBXTEST = os.path.join(os.path.dirname(mbtest.BIN), "tests", "meshbroker-worker-sbxtest")


def _status(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


@pytest.mark.parametrize("mode", ["accept", "socket-activate"])
def test_every_authenticated_worker_has_no_new_privs_and_a_seccomp_filter(broker, mesh, mode):
    b = broker(mode)
    m = mesh("A", "B", "C")

    async def go():
        peers = [Peer(b, mm) for mm in m.members]
        for p in peers:
            await p.join()
        for p in peers:
            st = _status(p.worker_pid())
            assert st.get("NoNewPrivs") == "1", f"{p.member.name}: NoNewPrivs {st.get('NoNewPrivs')}"
            assert st.get("Seccomp") == "2", f"{p.member.name}: Seccomp {st.get('Seccomp')} (2 = filter)"
        # the sandboxed workers still do their work: a message goes through
        _, ack = await peers[0].send_direct(m.members[1].pubkey, "inside the sandbox")
        assert ack["queued"], ack
        push = await peers[1].push(timeout=10)
        assert peers[1].decrypt(push) == "inside the sandbox"
        for p in peers:
            await p.close()

    run(go(), 60)


def test_a_forbidden_system_call_kills_only_that_worker_by_sigsys(broker, mesh):
    if not os.access(SBXTEST, os.X_OK):
        pytest.fail(f"{SBXTEST} missing: `make build` (or `make build unit-bins BUILD=build/asan SAN=1`) "
                    "builds it")
    b = broker(MESHBROKER_WORKER=SBXTEST)
    m = mesh("A", "B", "C")

    async def go():
        a, bb, c = [Peer(b, mm) for mm in m.members]
        for p in (a, bb, c):
            await p.join()
        victim = a.worker_pid()
        others = [bb.worker_pid(), c.worker_pid()]
        # the test asks for SIGUSR1; the kernel's SIGSYS follows from it
        b.sent_signals.setdefault(victim, set()).add(int(signal.SIGSYS))
        b.kill_worker(victim, signal.SIGUSR1)
        code, _ = await a.wait_closed(timeout=10)
        assert code != 1000, "the victim's connection closed cleanly: its worker did not die"
        assert wait_until(lambda: victim not in b.workers(), 10), "the victim's worker is still there"
        assert wait_until(lambda: '"msg":"worker killed"' in b.log_text() and
                          f'"pid":"{victim}","signal":"{int(signal.SIGSYS)}"' in b.log_text(), 10), \
            f"the acceptor did not see SIGSYS for {victim}:\n{mbtest.tail(b.log)}"
        # nobody else's connection closed: the others still talk
        assert all(pid in b.workers() for pid in others)
        _, ack = await bb.send_direct(m.members[2].pubkey, "still here")
        assert ack["queued"], ack
        push = await c.push(timeout=10)
        assert c.decrypt(push) == "still here"
        await bb.close()
        await c.close()

    run(go(), 60)
