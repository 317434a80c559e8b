#!/usr/bin/python3
"""worker-lives.py — what N workers' lives cost the kernel and the acceptor
(issue 23, docs/design.md "A worker's start and end, fourth round"), in
counts: perf stat's page faults and context switches and task-clock (CPU
time; the one figure that a busy machine bends), and strace -c's system
calls, per life.

    /usr/bin/python3 scripts/worker-lives.py [--lives N] [--spares 0,2] [--kind health,hello] BINDIR [BINDIR...]

For each BINDIR (a build's bin/), each SPARE_WORKERS value and each kind of
life (`health`: one GET /health, the worker's start, one answer and its
end, no database; `hello`: connect + upgrade + signed hello + close, through
PostgreSQL), it starts a private PostgreSQL (tests/integration/mbtest.py)
and meshbroker-accept, attaches `perf stat` to the acceptor twice (the
acceptor alone, and with every process it starts: workers, spares), runs N
lives one after the other, and prints both per life; then, again, `strace
-c` of the acceptor alone (its system calls per life) and `strace -c -f`
(the acceptor and its children).  Run as root or as a user who may run
PostgreSQL (see mbtest.PgCluster)."""

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import mbtest  # noqa: E402

EVENTS = "task-clock,page-faults,context-switches"


def perf_attach(pid, inherit):
    # -i (--no-inherit): the process alone; without it, the children it
    # starts after the attach count too
    argv = ["perf", "stat", "-x,", "-e", EVENTS, "-p", str(pid)] + ([] if inherit else ["-i"])
    return subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def perf_read(p):
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=30)[1]
    out = {}
    for line in err.splitlines():
        f = line.split(",")
        if len(f) >= 3 and f[2] in EVENTS.split(","):
            try:
                out[f[2]] = float(f[0])
            except ValueError:
                pass
    return out


def strace_attach(pid, follow, path):
    argv = ["strace", "-c", "-o", path, "-p", str(pid)] + (["-f"] if follow else [])
    p = subprocess.Popen(argv, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    return p


def strace_read(p, path):
    p.send_signal(signal.SIGINT)
    p.wait(timeout=30)
    calls = {}
    for line in open(path).read().splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
        if m and m.group(2) != "total":
            calls[m.group(2)] = int(m.group(1))
    return calls


async def lives(b, kind, members, n):
    for i in range(n):
        if kind == "health":
            st = b.get("/health")[0]
            assert st == 200, st
        else:
            p = mbtest.Peer(b, members[i % len(members)])
            await p.join(timeout=60)
            await p.ws.close()
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)  # the last worker's end


def top(calls, k=8):
    return ", ".join(f"{n} {v}" for n, v in sorted(calls.items(), key=lambda x: -x[1])[:k])


async def measure(bindir, pg, mesh, spares, kind, n):
    mbtest.BIN = bindir
    b = mbtest.Broker("accept", pg.url, dict(SPARE_WORKERS=spares, HELLO_TIMEOUT_SECONDS=60)).start()
    try:
        await lives(b, kind, mesh.members, 5)  # warm: the spares after the start-up probe, the member caches
        acc = b.proc.pid
        alone, every = perf_attach(acc, False), perf_attach(acc, True)
        time.sleep(0.5)
        await lives(b, kind, mesh.members, n)
        a, e = perf_read(alone), perf_read(every)
        d = tempfile.mkdtemp(prefix="worker-lives-", dir="/tmp")
        s = strace_attach(acc, False, f"{d}/acc")
        await lives(b, kind, mesh.members, n)
        sa = strace_read(s, f"{d}/acc")
        s = strace_attach(acc, True, f"{d}/all")
        await lives(b, kind, mesh.members, n)
        sf = strace_read(s, f"{d}/all")
        shutil.rmtree(d, ignore_errors=True)
    finally:
        b.stop()

    def per(x, k, scale=1.0):
        return f"{x.get(k, 0) * scale / n:.2f}" if k in x else "?"
    print(f"  SPARE_WORKERS={spares} {kind}, per life (N={n}):")
    print(f"    acceptor alone:      task-clock {per(a, 'task-clock')} ms, page faults {per(a, 'page-faults')}, "
          f"context switches {per(a, 'context-switches')}, system calls {sum(sa.values()) / n:.1f} ({top(sa)})")
    print(f"    acceptor + children: task-clock {per(e, 'task-clock')} ms, page faults {per(e, 'page-faults')}, "
          f"context switches {per(e, 'context-switches')}, system calls {sum(sf.values()) / n:.1f} ({top(sf)})")


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lives", type=int, default=200)
    ap.add_argument("--spares", default="0,2", help="SPARE_WORKERS values, comma-separated")
    ap.add_argument("--kind", default="health,hello", help="health, hello or both, comma-separated")
    ap.add_argument("bindirs", nargs="+")
    a = ap.parse_args()
    for tool in ("perf", "strace"):
        if not shutil.which(tool):
            sys.exit(f"worker-lives: {tool} is needed")
    pg = mbtest.PgCluster(prefix="mblives-").init()
    try:
        mbtest.migrate(pg.url)
        db = pg.connect()
        mesh = mbtest.Mesh(db)
        for i in range(20):
            mesh.add(f"p{i}")
        for bindir in a.bindirs:
            print(os.path.abspath(bindir))
            for spares in [int(x) for x in a.spares.split(",")]:
                for kind in a.kind.split(","):
                    await measure(os.path.abspath(bindir), pg, mesh, spares, kind, a.lives)
    finally:
        pg.destroy()


if __name__ == "__main__":
    asyncio.run(main())
