"""Spare workers (issue 23; docs/design.md "Cost of a worker, second round"):
meshbroker-accept keeps SPARE_WORKERS workers exec'd, initialised and
sandboxed ahead of any connection, hands each new connection to one of them
over a socketpair (common/handover.h) and starts a successor.  A spare that
dies before or during its hand-over loses no connection; spares count
against no limit and are never evicted; SPARE_WORKERS=0 is the fork+exec
per connection of before.  Spares are told apart by their command line:
`meshbroker-worker --spare`, rewritten to `--taken` once the connection is
theirs (mbtest.is_spare)."""

import asyncio
import json
import os
import shutil
import signal
import threading
import time

import mbtest
from mbtest import Peer, run, wait_until


def status_field(pid, name):
    data = mbtest._read(f"/proc/{pid}/status") or b""
    for line in data.decode(errors="replace").splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def parent_of(pid):
    data = mbtest._read(f"/proc/{pid}/stat") or b""
    return int(data[data.rindex(b")") + 2:].split()[1]) if data else None


def stop_check_kill(b, pid):
    """SIGKILL pid if it is still a spare waiting for (or being handed) a
    connection.  It is stopped first: a stopped process cannot rewrite its
    title, and it rewrites it before it acknowledges a connection, so a
    spare killed here never held one.  True when it was killed."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return False
    try:
        wait_until(lambda: mbtest.proc_state(pid) in ("T", "t", "Z", "X", None), 2, interval=0.002)
        if mbtest.is_spare(pid):
            b.kill_worker(pid)
            return True
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    return False


def spare_lines(b, msg):
    """the broker's JSON log lines whose msg is msg"""
    out = []
    for line in b.log_text().splitlines():
        if line.startswith("{"):
            try:
                if json.loads(line).get("msg") == msg:
                    out.append(line)
            except ValueError:
                pass
    return out


def test_a_connection_goes_to_a_waiting_sandboxed_spare_which_is_then_replaced(broker, mesh):
    b = broker(SPARE_WORKERS=2)
    assert wait_until(lambda: len(b.spares()) == 2, 20), f"spares: {b.spares()}"
    first = set(b.spares())
    # initialised ahead: sandboxed while waiting, before any client byte can reach it
    assert wait_until(lambda: all(status_field(p, "Seccomp") == "2" for p in first), 10), \
        {p: status_field(p, "Seccomp") for p in first}
    for pid in first:
        assert status_field(pid, "NoNewPrivs") == "1", f"spare {pid} lacks no_new_privs"
        assert parent_of(pid) == b.proc.pid
        assert "/libpq.so" not in (mbtest._read(f"/proc/{pid}/maps") or b"").decode(errors="replace")
    m = mesh("A")

    async def go():
        p = Peer(b, m.members[0])
        await p.join()
        pid = p.worker_pid()
        assert pid in first, f"the connection went to {pid}, not to a spare of {first}"
        assert mbtest.proc_argv(pid)[1:2] == [b"--taken"], mbtest.proc_argv(pid)
        # a successor was started: two spares wait again, one of them new
        assert wait_until(lambda: len(b.spares()) == 2 and set(b.spares()) - first, 20), \
            f"spares after a hand-over: {b.spares()} (before: {first})"
        assert pid not in b.spares()
        # and the peer is an ordinary one
        await p.send_json({"type": "list_peers", "_reqId": "l"})
        lst = await p.wait_for(lambda x: x.get("type") == "peers_list", 20)
        assert m.members[0].id in {x["memberId"] for x in lst["peers"]}, lst
        await p.close()

    run(go(), 60)


def test_spare_workers_zero_starts_a_worker_per_connection_as_before(broker, mesh):
    b = broker(SPARE_WORKERS=0)
    time.sleep(0.3)
    assert not b.workers(spares=True), f"processes besides the acceptor: {b.workers(spares=True)}"
    m = mesh("A")

    async def go():
        p = Peer(b, m.members[0])
        await p.join()
        pid = p.worker_pid()
        assert mbtest.proc_argv(pid)[1:] == [], mbtest.proc_argv(pid)
        assert parent_of(pid) == b.proc.pid
        env = mbtest.proc_environ(pid)  # the systemd-style start: all in the environment
        assert env.get("REMOTE_PORT") == str(p.client_port), env.get("REMOTE_PORT")
        assert env.get("REMOTE_ADDR") == "127.0.0.1"
        assert env.get("MESHBROKER_CHILD_SLOT", "").isdigit()
        assert not b.spares()
        await p.close()

    run(go(), 60)
    assert not spare_lines(b, "spare worker killed")


def test_a_spare_that_dies_during_its_hand_over_loses_no_connection(broker):
    """the one spare is stopped, handed a connection (whose request is already
    in the socket), then killed: the acceptor hands the same connection on and
    the request is answered"""
    b = broker(SPARE_WORKERS=1)
    assert wait_until(lambda: len(b.spares()) == 1, 20)
    (victim,) = b.spares()
    os.kill(victim, signal.SIGSTOP)
    c = None
    try:
        assert wait_until(lambda: mbtest.proc_state(victim) in ("T", "t"), 5)
        c = mbtest.RawHTTP(b.port)
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        # handed to the stopped spare: the acceptor started its successor
        assert wait_until(lambda: len(b.spares()) == 2, 20), f"spares: {b.spares()}"
        assert victim in b.spares()
        b.kill_worker(victim)
    finally:
        try:
            os.kill(victim, signal.SIGCONT)
        except ProcessLookupError:
            pass
    st, _, body, _ = c.read_response(20)
    c.close()
    assert st == 200, (st, body)
    assert wait_until(lambda: spare_lines(b, "a spare worker did not take its connection; handing it on"), 10), \
        mbtest.tail(b.log)
    assert b.metric("broker_connections_refused_total", reason="max_connections") == 0


def test_spares_killed_while_peers_connect_lose_no_hello(broker, mesh):
    """rounds of 20 peers connecting over ~1 s while spares are SIGKILLed,
    until at least 5 were (4 rounds at most): every hello is acked"""
    per, rounds = 20, 4
    n = per * rounds
    b = broker(SPARE_WORKERS=3, MAX_CONNECTIONS=n + 20, MAX_CONNECTIONS_PER_SOURCE=n + 20,
               MAX_CONNECTIONS_PER_MESH=n + 20)
    m = mesh(*[f"k{i}" for i in range(n)])
    assert wait_until(lambda: len(b.spares()) == 3, 20)
    stop = threading.Event()
    killed = []

    def spares_now():  # the acceptor's children only: quicker than scanning every process
        return [p for p in mbtest.proc_children(b.proc.pid) if mbtest.is_spare(p)]

    def killer():
        while not stop.is_set():
            for pid in spares_now():
                if stop.is_set():
                    break
                if stop_check_kill(b, pid):
                    killed.append(pid)
            time.sleep(0.005)

    async def hello(p, i):
        await asyncio.sleep(i * 0.05)  # spread, so kills land between them
        try:
            await p.connect(open_timeout=60)
            ack = await p.hello(timeout=60)
        except Exception as e:  # noqa: BLE001 - every failure is reported below
            return f"{p.member.name}: {type(e).__name__}: {e}"
        return None if ack.get("type") == "hello_ack" else f"{p.member.name}: {ack}"

    async def go():
        out, done = [], 0
        for r in range(rounds):
            peers = [Peer(b, mem) for mem in m.members[r * per:(r + 1) * per]]
            try:
                out += await asyncio.gather(*(hello(p, i) for i, p in enumerate(peers)))
            finally:
                await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
            done += per
            if len(killed) >= 5:
                break
        return out, done

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        results, done = run(go(), 300)
    finally:
        stop.set()
        t.join(10)
    failed = [r for r in results if r]
    assert not failed, f"{len(failed)} of {done} hellos failed: {failed[:5]}"
    assert len(killed) >= 5, f"only {len(killed)} spares were killed in {done} hellos: the test proved little"
    # the broker goes on making spares, and refused nobody
    assert wait_until(lambda: len(b.spares()) == 3, 30), f"spares after the storm: {b.spares()}"
    mx = b.metrics()
    assert mx.value("broker_connections_refused_total", reason="max_connections") == 0
    assert mx.value("broker_connections_refused_total", reason="max_connections_per_source") == 0


def test_spares_count_against_no_limit_and_are_never_evicted(broker, mesh):
    """MAX_CONNECTIONS=2 and an unauthenticated share of 1 with four spares
    waiting: a silent connection evicts nobody, and two peers get in"""
    b = broker(SPARE_WORKERS=4, MAX_CONNECTIONS=2, UNAUTH_SHARE_PERCENT=50, HELLO_TIMEOUT_SECONDS=30)
    assert wait_until(lambda: len(b.spares()) == 4, 20)
    m = mesh("A", "B")

    async def go():
        silent = mbtest.RawWS(b.port)  # upgraded, no hello: the one unauthenticated place
        time.sleep(0.3)
        with_silent = b.workers()
        silent.close()
        a, bb = Peer(b, m.members[0]), Peer(b, m.members[1])
        assert wait_until(lambda: not b.workers(), 10)
        await a.join()
        await bb.join()
        await a.close()
        await bb.close()
        return with_silent

    with_silent = run(go(), 60)
    assert len(with_silent) == 1, f"workers with one silent connection: {with_silent}"
    assert b.wait_no_workers(20)
    mx = b.metrics()  # one request: an HTTP worker lingers a moment, and MAX_CONNECTIONS is 2
    assert mx.value("broker_connections_evicted_total", reason="unauthenticated_share") == 0
    assert mx.value("broker_connections_evicted_total", reason="max_connections") == 0
    assert mx.value("broker_connections_refused_total", reason="max_connections") == 0
    # no spare was killed or failed: each one still waits or served a connection
    assert not spare_lines(b, "spare worker killed"), spare_lines(b, "spare worker killed")
    assert not spare_lines(b, "spare worker failed")


def test_a_replaced_worker_binary_replaces_the_waiting_spares(broker, tmp_path):
    """new connections exec the new binary after an upgrade (docs/design.md
    "Processes"): spares exec'd from the old one are let go within a second
    or two and new ones started"""
    src = mbtest.require_bin("meshbroker-worker")
    d = tmp_path / "bin"
    d.mkdir()
    w = d / "meshbroker-worker"
    shutil.copy2(src, w)
    b = broker(SPARE_WORKERS=2, MESHBROKER_WORKER=str(w))
    assert wait_until(lambda: len(b.spares()) == 2, 20)
    old = set(b.spares())
    fresh = d / "meshbroker-worker.new"
    shutil.copy2(src, fresh)
    os.rename(fresh, w)  # a new file in its place, as dpkg does
    assert wait_until(lambda: len(b.spares()) == 2 and not set(b.spares()) & old, 15), \
        f"spares {b.spares()}, of the old binary {old}"
    assert spare_lines(b, "the worker binary changed; spare workers restarted")
    st, _, _ = b.get("/health")
    assert st == 200
    assert not spare_lines(b, "spare worker killed")
