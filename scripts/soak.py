#!/usr/bin/python3
"""soak — meshbroker under mixed load for SOAK_MINUTES (default 30), then an
account of every message and of every resource (`make soak`; issue 11).

It starts its own PostgreSQL cluster (a Unix socket in a temp directory) and
a meshbroker-accept on 127.0.0.1, with the helpers of the integration tests
(tests/integration/mbtest.py), so nothing leaves this machine.  Then:

  * two meshes of four members each; one WebSocket peer per member sends
    direct messages (crypto_box) and broadcasts (`*`) at random priorities to
    its mesh, half of them with the "client_ack" capability;
  * each peer closes and reconnects every few seconds;
  * a random broker worker is SIGKILLed every few seconds;
  * PostgreSQL is stopped and started once, half way through.

When the time is up every member connects once more and collects what is
still queued for it.  The run prints sent / acked / refused / unacked /
delivered / lost / duplicated and fails (exit 1) when

  * an acked message did not reach each of its recipients (lost), or a
    recipient got a message nobody sent or one whose text does not match;
  * an audit chain does not verify (`meshctl audit verify`);
  * a worker process, a zombie, a presence slot, a worker socket file, a TCP
    connection of the broker, a descriptor of the acceptor or a database
    session is left over, compared with the start;
  * the acceptor's resident memory grew by more than SOAK_RSS_SLACK_KB (4096);
  * the broker's log shows a crash (a signal the soak did not send, a
    sanitizer report).

Duplicates are printed but allowed: the protocol's at-least-once windows
(docs/protocol.md §3.4: a worker killed between writing a push and marking it
delivered, a client_ack that never reached the database) produce them, each
time with the same messageId.

Bounded: SOAK_MINUTES of traffic (at most SOAK_MAX_SENDS sends, default
500,000), then at most 3 minutes of collection and checks.  SOAK_SEED makes
the random choices repeatable.  MESHBROKER_BIN picks the binaries (default
build/bin)."""

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import websockets  # noqa: E402

import mbtest  # noqa: E402

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
MAX_SENDS = int(os.environ.get("SOAK_MAX_SENDS", "500000"))
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
RSS_SLACK_KB = int(os.environ.get("SOAK_RSS_SLACK_KB", "4096"))
MESHES, MEMBERS = 2, 4
KILL_EVERY = (2.0, 6.0)        # seconds between worker kills
CONNECTION_LIFE = (3.0, 15.0)  # seconds a peer stays connected before it reconnects
SEND_PAUSE = (0.02, 0.25)      # seconds between one peer's sends
PG_DOWN_SECONDS = 3.0
COLLECT_SECONDS = 120

rng = random.Random(SEED)


def log(*a):
    print(f"[soak {time.strftime('%H:%M:%S')}]", *a, flush=True)


class Ledger:
    """What was sent, acked, refused and received, by messageId."""

    def __init__(self):
        self.sent = 0
        self.acked = {}          # messageId -> (sender member id, recipients tuple, text)
        self.refused = 0         # ack queued:false (PostgreSQL away, ...)
        self.unacked = 0         # the connection broke before the ack
        self.received = Counter()  # (recipient member id, messageId) -> times
        self.texts = {}          # (recipient, messageId) -> text as decrypted
        self.unknown = []        # pushes nobody sent
        self.bad_text = []


class SoakPeer:
    """One member's client: reconnects forever, sends, receives, acks."""

    def __init__(self, broker, member, mesh_members, ledger, client_ack):
        self.b = broker
        self.member = member
        self.others = [m for m in mesh_members if m is not member]
        self.ledger = ledger
        self.client_ack = client_ack
        self.peer = mbtest.Peer(broker, member)
        self.connections = 0
        self.broken = 0
        self.pending = {}  # frame id -> future of its ack

    def hello_frame(self):
        caps = ["client_ack"] if self.client_ack else []
        return self.peer.hello_msg(capabilities=caps)

    def on_push(self, m):
        mid = m.get("messageId")
        key = (self.member.id, mid)
        self.ledger.received[key] += 1
        text = None
        try:  # a direct message is boxed to us; a broadcast carries its text in base64
            text = self.peer.decrypt(m)
        except Exception:  # noqa: BLE001 - anything that fits neither is a finding
            try:
                text = mbtest.b64d(m["ciphertext"]).decode()
            except Exception:  # noqa: BLE001
                pass
        self.ledger.texts.setdefault(key, text)

    async def reader(self, ws, acked_hello):
        try:
            async for raw in ws:
                m = json.loads(raw)
                t = m.get("type")
                if t == "hello_ack":
                    acked_hello.set_result(m)
                elif t == "push":
                    self.on_push(m)
                    if self.client_ack:
                        await ws.send(json.dumps({"type": "client_ack", "brokerMessageId": m.get("messageId")}))
                elif t == "ack":
                    f = self.pending.pop(m.get("id"), None)
                    if f and not f.done():
                        f.set_result(m)
                elif t == "error" and not acked_hello.done():
                    acked_hello.set_result(m)
        except websockets.ConnectionClosed:
            pass
        finally:
            if not acked_hello.done():
                acked_hello.set_result(None)
            for f in self.pending.values():
                if not f.done():
                    f.set_result(None)
            self.pending.clear()

    async def connect(self):
        """(ws, reader task) once a hello was acked, or None"""
        try:
            ws = await websockets.connect(self.b.ws_url + "/ws", max_queue=None, max_size=2 ** 24,
                                          ping_interval=None, open_timeout=10, close_timeout=5)
        except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake, websockets.ConnectionClosed):
            return None
        acked_hello = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self.reader(ws, acked_hello))
        try:
            await ws.send(json.dumps(self.hello_frame()))
            r = await asyncio.wait_for(acked_hello, 20)
        except (websockets.ConnectionClosed, asyncio.TimeoutError):
            r = None
        if not r or r.get("type") != "hello_ack":
            await self.close(ws, task)
            return None
        self.connections += 1
        return ws, task

    async def close(self, ws, task):
        """a client close; what came before the server's close frame counts"""
        try:
            await asyncio.wait_for(ws.close(), 10)
        except Exception:  # noqa: BLE001
            pass
        try:
            await asyncio.wait_for(task, 10)
        except Exception:  # noqa: BLE001
            task.cancel()

    def frame(self):
        prio = rng.choice(["now", "now", "next", "low"])
        seq = self.ledger.sent
        if rng.random() < 0.25:
            text = f"soak:{self.member.id}:{seq}:*"
            frame = {"type": "send", "id": mbtest.new_id(12), "targetSpec": "*", "priority": prio,
                     "nonce": mbtest.b64e(os.urandom(24)), "ciphertext": mbtest.b64e(text.encode())}
            return frame, tuple(m.id for m in self.others), text
        to = rng.choice(self.others)
        text = f"soak:{self.member.id}:{seq}:{to.id}"
        return self.peer.send_frame_direct(to.pubkey, text, prio), (to.id,), text

    async def send_one(self, ws):
        frame, recipients, text = self.frame()
        fut = asyncio.get_running_loop().create_future()
        self.pending[frame["id"]] = fut
        self.ledger.sent += 1
        try:
            await ws.send(json.dumps(frame))
            ack = await asyncio.wait_for(fut, 30)
        except (websockets.ConnectionClosed, asyncio.TimeoutError):
            ack = None
        self.pending.pop(frame["id"], None)
        if ack is None:
            self.ledger.unacked += 1
            return False
        if ack.get("queued") is True and ack.get("messageId"):
            self.ledger.acked[ack["messageId"]] = (self.member.id, recipients, text)
        else:
            self.ledger.refused += 1
        return True

    async def run(self, stop):
        while not stop.is_set():
            c = await self.connect()
            if not c:
                await asyncio.sleep(rng.uniform(0.2, 1.0))
                continue
            ws, task = c
            until = time.monotonic() + rng.uniform(*CONNECTION_LIFE)
            alive = True
            while alive and not stop.is_set() and time.monotonic() < until and self.ledger.sent < MAX_SENDS:
                alive = await self.send_one(ws) and not task.done()
                await asyncio.sleep(rng.uniform(*SEND_PAUSE))
            if not alive or task.done():
                self.broken += 1
            await self.close(ws, task)

    async def collect(self, want, deadline):
        """connect until everything in want (messageIds) arrived or deadline"""
        while time.monotonic() < deadline:
            c = await self.connect()
            if not c:
                await asyncio.sleep(0.5)
                continue
            ws, task = c
            while time.monotonic() < deadline and not task.done():
                if all(self.ledger.received[(self.member.id, mid)] for mid in want):
                    break
                await asyncio.sleep(0.2)
            done = not task.done()
            await asyncio.sleep(0.5)  # a client_ack or two still in flight
            await self.close(ws, task)
            if done and all(self.ledger.received[(self.member.id, mid)] for mid in want):
                return


# ---------------------------------------------------------------- resources


def rss_kb(pid):
    data = mbtest._read(f"/proc/{pid}/status", "r") or ""
    m = re.search(r"^VmRSS:\s+(\d+) kB", data, re.M)
    return int(m.group(1)) if m else 0


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def tcp_of_port(port):
    """TCP sockets of this port other than the listener and TIME_WAIT"""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in (mbtest._read(table, "r") or "").splitlines()[1:]:
            f = line.split()
            lp = int(f[1].rsplit(":", 1)[1], 16)
            rp = int(f[2].rsplit(":", 1)[1], 16)
            state = f[3]
            if (lp == port or rp == port) and state not in ("0A", "06"):  # LISTEN, TIME_WAIT
                n += 1
    return n


def db_sessions(pg):
    conn = pg.connect()
    try:
        with conn.cursor() as c:
            c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = 'meshbroker' "
                      "AND pid <> pg_backend_pid()")
            return c.fetchone()[0]
    finally:
        conn.close()


def worker_sockets(b):
    d = os.path.join(b.runtime_dir, "w")
    try:
        return len([x for x in os.listdir(d) if x.endswith(".sock")])
    except OSError:
        return 0


def snapshot(b, pg):
    active = b.metric("broker_connections_active")  # also reclaims the slots of dead workers
    return {
        "workers": len(b.workers()),
        "zombies": len(b.zombies()),
        "presence slots": int(active or 0),
        "worker socket files": worker_sockets(b),
        "broker TCP connections": tcp_of_port(b.port),
        "acceptor fds": fd_count(b.proc.pid),
        "database sessions": db_sessions(pg),
    }


def quiet_snapshot(b, pg):
    """the snapshot with no client connected: /metrics is read first (its
    worker reclaims dead slots), then the processes, connections and database
    sessions once that worker is gone too"""
    b.wait_no_workers(10)
    snap = snapshot(b, pg)
    b.wait_no_workers(10)
    snap.update({"workers": len(b.workers()), "zombies": len(b.zombies()),
                 "broker TCP connections": tcp_of_port(b.port), "database sessions": db_sessions(pg)})
    return snap


def settled(b, pg, start, timeout=60):
    """the quiet snapshot, once it equals start or the timeout passed"""
    snap = {}

    def same():
        nonlocal snap
        snap = quiet_snapshot(b, pg)
        return snap == start

    mbtest.wait_until(same, timeout, interval=1)
    return snap


# ---------------------------------------------------------------- main


async def traffic(b, pg, peers, stats):
    stop = asyncio.Event()
    t_end = time.monotonic() + MINUTES * 60
    t_pg = time.monotonic() + MINUTES * 60 / 2
    tasks = [asyncio.create_task(p.run(stop)) for p in peers]
    pg_restarted = False
    next_kill = time.monotonic() + rng.uniform(*KILL_EVERY)
    next_report = time.monotonic() + 30
    loop = asyncio.get_running_loop()
    while time.monotonic() < t_end and stats["ledger"].sent < MAX_SENDS:
        now = time.monotonic()
        if not pg_restarted and now >= t_pg:
            log("stopping PostgreSQL")
            await loop.run_in_executor(None, pg.stop, "fast")
            await asyncio.sleep(PG_DOWN_SECONDS)
            await loop.run_in_executor(None, pg.start)
            log("PostgreSQL is back")
            pg_restarted = True
        if now >= next_kill:
            ws = b.workers()
            if ws:
                pid = rng.choice(ws)
                try:
                    b.kill_worker(pid, signal.SIGKILL)
                    stats["kills"] += 1
                except ProcessLookupError:
                    pass
            next_kill = now + rng.uniform(*KILL_EVERY)
        if now >= next_report:
            lg = stats["ledger"]
            log(f"sent {lg.sent}, acked {len(lg.acked)}, refused {lg.refused}, unacked {lg.unacked}, "
                f"kills {stats['kills']}, workers {len(b.workers())}")
            next_report = now + 30
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    stats["pg_restarted"] = pg_restarted


async def collect(peers, ledger):
    want = defaultdict(set)
    for mid, (_, recipients, _) in ledger.acked.items():
        for r in recipients:
            want[r].add(mid)
    deadline = time.monotonic() + COLLECT_SECONDS
    await asyncio.gather(*(p.collect(want[p.member.id], deadline) for p in peers))
    return want


def verify_audit(pg, meshes):
    env = dict(os.environ, DATABASE_URL=pg.url)
    bad = []
    for m in meshes:
        r = subprocess.run([mbtest.require_bin("meshctl"), "audit", "verify", m.id], env=env,
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0 or "chain intact" not in r.stdout:
            bad.append(f"{m.id}: exit {r.returncode} {r.stdout.strip()} {r.stderr.strip()}")
    return bad


def main():
    log(f"{MINUTES:g} minutes, seed {SEED}, binaries {mbtest.BIN}")
    t0 = time.monotonic()
    pg = mbtest.PgCluster(prefix="mbsoak-pg-").init()
    b = None
    failures = []
    try:
        mbtest.migrate(pg.url)
        b = mbtest.Broker("accept", pg.url, {"SEND_RATE_LIMIT_PER_MIN": 1000000, "SEND_RATE_BURST": 100000,
                                            "HELLO_TIMEOUT_SECONDS": 20}).start()
        conn = pg.connect()
        meshes = []
        for _ in range(MESHES):
            m = mbtest.Mesh(conn)
            for k in range(MEMBERS):
                m.add(f"soak{k}")
            meshes.append(m)
        conn.close()
        start = quiet_snapshot(b, pg)
        rss0 = rss_kb(b.proc.pid)
        log(f"start: {start}, acceptor RSS {rss0} kB")

        ledger = Ledger()
        peers = [SoakPeer(b, mem, m.members, ledger, client_ack=(i % 2 == 1))
                 for m in meshes for i, mem in enumerate(m.members)]
        stats = {"ledger": ledger, "kills": 0}
        mbtest.run(traffic(b, pg, peers, stats), MINUTES * 60 + 300)
        log(f"traffic done: sent {ledger.sent}, acked {len(ledger.acked)}; collecting what is queued")
        want = mbtest.run(collect(peers, ledger), COLLECT_SECONDS + 60)

        # the account
        expected = sum(len(v) for v in want.values())
        delivered = sum(1 for r, mids in want.items() for mid in mids if ledger.received[(r, mid)])
        lost = expected - delivered
        dup = sum(c - 1 for c in ledger.received.values() if c > 1)
        dup_ids = sum(1 for c in ledger.received.values() if c > 1)
        acked_ids = set(ledger.acked)
        stray = 0  # received, never acked: fine if its send was stored before the break
        for (r, mid), _ in ledger.received.items():
            if mid not in acked_ids:
                stray += 1
                continue
            sender, recipients, text = ledger.acked[mid]
            if r not in recipients:
                ledger.unknown.append((r, mid))
            elif ledger.texts.get((r, mid)) != text:
                ledger.bad_text.append((r, mid))
        print()
        print(f"soak: {MINUTES:g} min, seed {SEED}, {len(peers)} peers in {MESHES} meshes, "
              f"{sum(p.connections for p in peers)} connections ({sum(p.broken for p in peers)} broken), "
              f"{stats['kills']} workers SIGKILLed, PostgreSQL restarted {1 if stats.get('pg_restarted') else 0}x")
        print(f"  sent        {ledger.sent}")
        print(f"  acked       {len(ledger.acked)}  (deliveries owed: {expected})")
        print(f"  refused     {ledger.refused}  (queued:false, e.g. while PostgreSQL was down)")
        print(f"  unacked     {ledger.unacked}  (the connection broke before the ack; "
              f"{stray} of their deliveries arrived anyway)")
        print(f"  delivered   {delivered}")
        print(f"  lost        {lost}")
        print(f"  duplicated  {dup}  ({dup_ids} deliveries came more than once; allowed: at-least-once windows)")
        if lost:
            failures.append(f"{lost} acked deliveries never arrived")
            missing = [(r, mid) for r, mids in want.items() for mid in mids if not ledger.received[(r, mid)]]
            print(f"  first lost: {missing[:5]}")
        if ledger.unknown:
            failures.append(f"{len(ledger.unknown)} pushes reached a member they were not for")
        if ledger.bad_text:
            failures.append(f"{len(ledger.bad_text)} pushes whose text does not match what was sent")

        bad = verify_audit(pg, meshes)
        print(f"  audit       {'intact' if not bad else 'BROKEN'} ({len(meshes)} chains)")
        failures += [f"audit chain: {x}" for x in bad]

        end = settled(b, pg, start, 60)
        rss1 = rss_kb(b.proc.pid)
        for k in start:
            mark = "" if end.get(k) == start[k] else "   <-- LEAK"
            print(f"  {k:24s} start {start[k]:>4}  end {end.get(k):>4}{mark}")
            if mark:
                failures.append(f"{k}: {start[k]} at start, {end.get(k)} at the end")
        grew = rss1 - rss0
        print(f"  {'acceptor RSS (kB)':24s} start {rss0:>4}  end {rss1:>4}"
              f"{'   <-- LEAK' if grew > RSS_SLACK_KB else ''}")
        if grew > RSS_SLACK_KB:
            failures.append(f"acceptor RSS grew by {grew} kB")
        conn = pg.connect()
        with conn.cursor() as c:
            c.execute("SELECT count(*) FROM mesh.presence WHERE disconnected_at IS NULL")
            open_rows = c.fetchone()[0]
        conn.close()
        print(f"  presence rows without disconnected_at: {open_rows} (history of SIGKILLed workers; not a slot)")
    finally:
        if b is not None:
            problems = b.check()
            crashes = [p for p in problems if "signal" in p or "sanitizer" in p or "outlived" in p
                       or "did not stop" in p or "SIGKILL" in p]
            errors = [p for p in problems if p not in crashes]
            print(f"  broker log  {len(crashes)} crash/stop problems, {len(errors)} error lines")
            for p in problems[:10]:
                print(f"    {p}")
            failures += crashes
        pg.destroy()
        if b is not None and not failures:
            import shutil
            shutil.rmtree(b.workdir, ignore_errors=True)
        elif b is not None:
            print(f"  broker log: {b.log}")
    print(f"soak: {time.monotonic() - t0:.0f}s")
    if failures:
        print("soak FAILED:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("soak passed: nothing lost, nothing leaked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
