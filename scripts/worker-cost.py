#!/usr/bin/python3
"""worker-cost.py — what one meshbroker-worker costs (issue 13; docs/design.md
"Cost of a worker"), in figures that do not depend on how busy the machine is:
instructions (valgrind --tool=callgrind), page faults (perf stat) and system
calls (strace -c), plus private memory from /proc.

    /usr/bin/python3 scripts/worker-cost.py [--hellos N] [--idle N] [--wake N] BINDIR [BINDIR...]

For each BINDIR (a build's bin/, e.g. build/bin, or an older build to compare)
it starts a private PostgreSQL (tests/integration/mbtest.py) and
meshbroker-accept, then prints:
  exec     the worker binary started with no connection (it refuses and
           exits): shared objects, symbol relocations (LD_DEBUG=statistics),
           instructions, page faults;
  hello    one connect + upgrade + signed hello + close, median of N, in the
           worker only: instructions, page faults, system calls (the worker
           run under callgrind / perf stat / strace -c by MESHBROKER_WORKER;
           page faults and system calls include a few of the sh that execs it);
  wake     (--wake N) a peer that joins, stays idle 3.5 s and sends once:
           the worker's instructions with DB_IDLE_SECONDS=1 (the session
           closes, libpq unloads, the memory is given back, and the send
           loads libpq again) and with 60 (none of that), medians of N;
  idle     N idle authenticated peers (DB_IDLE_SECONDS=2): per worker, the
           median USS (Private_Clean + Private_Dirty of smaps_rollup), RSS and
           PageTables, right after the hellos and once the database session
           has closed, and the private memory of one worker by mapping
           (clean+dirty KiB; an anonymous map that follows a library's or
           the executable's is named as its .bss) at both moments.
Needs valgrind, perf and strace for the first two; run as root or as a user
who may run PostgreSQL (see mbtest.PgCluster)."""

import argparse
import asyncio
import glob
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import mbtest  # noqa: E402


def exec_figures(worker):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    out = {}
    ldd = subprocess.run(["ldd", worker], capture_output=True, text=True).stdout
    out["objects"] = len([x for x in ldd.splitlines() if x.strip()])
    st = subprocess.run([worker], capture_output=True, text=True, env=dict(env, LD_DEBUG="statistics")).stderr
    m = re.findall(r"final number of relocations: (\d+)", st)
    out["symbol relocations"] = int(m[-1]) if m else None
    if shutil.which("valgrind"):
        r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", worker],
                           capture_output=True, text=True, env=env)
        m = re.search(r"Collected : (\d+)", r.stderr)
        out["instructions"] = int(m.group(1)) if m else None
    if shutil.which("perf"):
        r = subprocess.run(["perf", "stat", "-x,", "-r", "20", "-e", "page-faults", worker],
                           capture_output=True, text=True, env=env)
        m = re.search(r"^([\d.]+),,page-faults", r.stderr, re.M)
        out["page faults"] = round(float(m.group(1))) if m else None
    return out


def wrapper(d, kind, worker):
    path = os.path.join(d, f"run-{kind}.sh")
    if kind == "callgrind":
        # valgrind makes system calls of its own that the worker's seccomp
        # sandbox (worker/sandbox.c) kills: under callgrind, the sandbox
        # test build of the same worker (make build puts it in tests/), in
        # its log-only mode (MESHBROKER_SANDBOX_LOG=1); builds from before
        # the sandbox have no such binary and need none
        sbx = os.path.join(os.path.dirname(os.path.dirname(worker)), "tests", "meshbroker-worker-sbxtest")
        pre, prog = ("export MESHBROKER_SANDBOX_LOG=1; ", sbx) if os.path.exists(sbx) else ("", worker)
        body = f'{pre}exec valgrind --tool=callgrind --callgrind-out-file={d}/cg.%p.out {prog} 2>>{d}/vg.log'
    elif kind == "perf":
        body = (f"exec perf stat -x, -o {d}/perf.$$.out -e page-faults "
                f"sh -c 'LISTEN_PID=$$ exec {worker}'")
    else:
        body = f"exec strace -f -c -o {d}/strace.$$.out sh -c 'LISTEN_PID=$$ exec {worker}'"
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)
    return path


PROFILE_DIR = None  # --profile: keep the callgrind files there (callgrind_annotate them per phase)
SPARES = False  # --spares: also a hello served by a spare worker (SPARE_WORKERS), split at its hand-over


def spare_wrapper(d, worker):
    """callgrind of spare workers (`--spare`, so the arguments are passed on),
    with a dump when spare_start returns: cg.PID.out.1 is what the spare did
    ahead (exec, initialisation, the wait), cg.PID.out what its connection
    cost after the hand-over"""
    path = os.path.join(d, "run-spare.sh")
    sbx = os.path.join(os.path.dirname(os.path.dirname(worker)), "tests", "meshbroker-worker-sbxtest")
    pre, prog = ("export MESHBROKER_SANDBOX_LOG=1; ", sbx) if os.path.exists(sbx) else ("", worker)
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\n{pre}exec valgrind --tool=callgrind --dump-after=spare_start '
                f'--callgrind-out-file={d}/cg.%p.out {prog} "$@" 2>>{d}/vg.log\n')
    os.chmod(path, 0o755)
    return path


def spare_results(d):
    """(ahead, after) instruction counts of the spares that served a connection"""
    ahead, after = [], []
    for f in glob.glob(f"{d}/cg.*.out"):
        parts = []
        for name in (f + ".1", f):
            if os.path.exists(name):
                for line in open(name):
                    if line.startswith(("totals:", "summary:")):
                        parts.append(int(line.split()[1]))
                        break
        if len(parts) == 2 and parts[1] > 0:
            ahead.append(parts[0])
            after.append(parts[1])
    return ahead, after


def read_results(d, kind):
    vals = []
    for f in glob.glob(f"{d}/{ {'callgrind': 'cg', 'perf': 'perf', 'strace': 'strace'}[kind] }.*"):
        for line in open(f):
            if kind == "callgrind" and line.startswith(("totals:", "summary:")):
                vals.append(int(line.split()[1]))
                break
            if kind == "perf" and ",page-faults" in line:
                vals.append(int(float(line.split(",")[0])))
            if kind == "strace" and line.strip().endswith("total"):
                vals.append(int(line.split()[3]))
        if PROFILE_DIR and kind == "callgrind":
            shutil.copy(f, PROFILE_DIR)
        os.unlink(f)
    return vals


async def hellos(b, members, n, pause=0.3):
    for i in range(n):
        p = mbtest.Peer(b, members[i % len(members)])
        await p.join(timeout=60)
        await p.ws.close()
        await asyncio.sleep(pause)


def rollup(pid):
    d = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        m = re.match(r"(\w+):\s+(\d+) kB", line)
        if m:
            d[m.group(1)] = int(m.group(2))
    for line in open(f"/proc/{pid}/status"):
        m = re.match(r"(VmPTE):\s+(\d+) kB", line)
        if m:
            d[m.group(1)] = int(m.group(2))
    d["USS"] = d["Private_Clean"] + d["Private_Dirty"]
    return d


def by_mapping(pid):
    """private KiB per mapping, summed by name: (name, clean, dirty), largest
    first.  An anonymous map right after an executable's or library's last
    map is its .bss ("libc.so.6 .bss"); [stack], [heap] and other anonymous
    maps keep their own names."""
    out, cur, prev_end, prev_file = {}, None, None, None
    for line in open(f"/proc/{pid}/smaps"):
        m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$", line)
        if m:
            start, end, path = int(m.group(1), 16), int(m.group(2), 16), m.group(3).strip()
            if path:
                cur = os.path.basename(path) if path.startswith("/") else path
                # an ELF object's (executable or library): not a mapped data file's
                elf = path.startswith("/") and (".so" in cur or os.access(path, os.X_OK))
                prev_file = cur if elf else None
            else:
                cur = f"{prev_file} .bss" if prev_file and start == prev_end else "[anon]"
                prev_file = None
            prev_end = end
        else:
            m = re.match(r"(Private_Clean|Private_Dirty):\s+(\d+) kB", line)
            if m and cur is not None:
                c, d = out.get(cur, (0, 0))
                out[cur] = (c + int(m.group(2)), d) if m.group(1) == "Private_Clean" else (c, d + int(m.group(2)))
    return sorted(((k, c, d) for k, (c, d) in out.items() if c + d),
                  key=lambda x: -(x[1] + x[2]))


def mapping_line(pid):
    rows = by_mapping(pid)
    total = sum(c + d for _, c, d in rows)
    return (f"  one worker's private KiB by mapping (clean+dirty, {total} in all): " +
            ", ".join(f"{k} {c}+{d}" for k, c, d in rows))


def idle_line(b, when):
    rs = [rollup(p) for p in b.workers()]
    med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
    return (f"  idle ({when}): {len(rs)} workers, USS {med('USS'):.0f} KiB (dirty {med('Private_Dirty'):.0f}, "
            f"anonymous {med('Anonymous'):.0f}), "
            f"RSS {med('Rss'):.0f} KiB, PageTables {med('VmPTE'):.0f} KiB")


async def wake_cost(worker, pg, mesh, n, idle_s):
    """callgrind instructions of one worker whose peer joins, stays 3.5 s
    without a word, sends one direct message (stored: its recipient is away)
    and closes; median of n.  With DB_IDLE_SECONDS=1 the session closes,
    libpq unloads and the memory is given back in that pause, and the send
    loads libpq again; with 60, none of it happens."""
    d = tempfile.mkdtemp(prefix="worker-cost-", dir="/tmp")
    b = mbtest.Broker("accept", pg.url, dict(MESHBROKER_WORKER=wrapper(d, "callgrind", worker),
                                             HELLO_TIMEOUT_SECONDS=60, DB_IDLE_SECONDS=idle_s)).start()
    try:
        time.sleep(1)
        read_results(d, "callgrind")  # the start-up probe's
        for _ in range(n):
            p = mbtest.Peer(b, mesh.members[0])
            await p.join(timeout=60)
            await asyncio.sleep(3.5)
            _, ack = await p.send_direct(mesh.members[1].pubkey, "wake", timeout=60)
            assert ack.get("type") == "ack", ack
            await p.ws.close()
            await asyncio.sleep(0.3)
        time.sleep(2)
    finally:
        b.stop()
    vals = read_results(d, "callgrind")
    shutil.rmtree(d, ignore_errors=True)
    return statistics.median(vals) if vals else None


async def measure(bindir, pg, db, n_hello, n_idle, n_wake=0):
    worker = os.path.join(bindir, "meshbroker-worker")
    mbtest.BIN = bindir
    print(bindir)
    print("  exec:", ", ".join(f"{k} {v}" for k, v in exec_figures(worker).items()))
    mesh = mbtest.Mesh(db)
    for i in range(max(n_idle, 5)):
        mesh.add(f"p{i}")
    if n_hello:
        d = tempfile.mkdtemp(prefix="worker-cost-", dir="/tmp")
        figures = []
        for kind, tool in (("callgrind", "valgrind"), ("perf", "perf"), ("strace", "strace")):
            if not shutil.which(tool):
                continue
            # SPARE_WORKERS=0: each hello's worker is exec'd for it, through the wrapper
            b = mbtest.Broker("accept", pg.url, dict(MESHBROKER_WORKER=wrapper(d, kind, worker),
                                                     HELLO_TIMEOUT_SECONDS=60, SPARE_WORKERS=0)).start()
            try:
                time.sleep(1)
                read_results(d, kind)  # the start-up probe's
                await hellos(b, mesh.members, n_hello)
                time.sleep(2)
            finally:
                b.stop()
            vals = read_results(d, kind)
            name = {"callgrind": "instructions", "perf": "page faults", "strace": "syscalls"}[kind]
            figures.append(f"{name} {statistics.median(vals):.0f}" if vals else f"{name} ?")
        if os.environ.get("WORKER_COST_KEEP"):
            print("  kept", d)
        else:
            shutil.rmtree(d, ignore_errors=True)
        print(f"  hello (median of {n_hello}):", ", ".join(figures))
        if SPARES and shutil.which("valgrind"):
            d = tempfile.mkdtemp(prefix="worker-cost-", dir="/tmp")
            b = mbtest.Broker("accept", pg.url, dict(MESHBROKER_WORKER=spare_wrapper(d, worker),
                                                     HELLO_TIMEOUT_SECONDS=60, SPARE_WORKERS=1)).start()
            try:
                time.sleep(3)  # the spare after the start-up probe's is ready
                for f in glob.glob(f"{d}/cg.*"):
                    os.unlink(f)  # the start-up probe's
                await hellos(b, mesh.members, n_hello, pause=3)
                time.sleep(2)
                ahead, after = spare_results(d)  # before the stop: the spare still waiting wrote none
            finally:
                b.stop()
            shutil.rmtree(d, ignore_errors=True)
            if after:
                print(f"  hello through a spare (median of {len(after)}): instructions done ahead "
                      f"{statistics.median(ahead):.0f}, after the hand-over {statistics.median(after):.0f}")
    if n_wake and shutil.which("valgrind"):
        cold = await wake_cost(worker, pg, mesh, n_wake, 1)
        warm = await wake_cost(worker, pg, mesh, n_wake, 60)
        fmt = lambda v: f"{v / 1e6:.2f} M" if v else "?"  # noqa: E731
        print(f"  hello, 3.5 s idle, one send, close (median of {n_wake}): {fmt(cold)} instructions with "
              f"the idle close (DB_IDLE_SECONDS=1), {fmt(warm)} without (60)" +
              (f": the unload, the release and the reload cost {(cold - warm) / 1e6:.2f} M" if cold and warm else ""))
    if n_idle:
        b = mbtest.Broker("accept", pg.url, dict(DB_IDLE_SECONDS=2, MAX_CONNECTIONS_PER_MESH=2000,
                                                 MAX_CONNECTIONS_PER_MEMBER=2000)).start()
        try:
            peers = [mbtest.Peer(b, m) for m in mesh.members[:n_idle]]
            for p in peers:
                await p.join()
            time.sleep(0.5)
            print(idle_line(b, "database session open"))
            print(mapping_line(b.workers()[0]))
            time.sleep(4.5)
            print(idle_line(b, "after DB_IDLE_SECONDS"))
            print(mapping_line(b.workers()[0]))
            for p in peers:
                await p.ws.close()
        finally:
            b.stop()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hellos", type=int, default=5)
    ap.add_argument("--idle", type=int, default=20)
    ap.add_argument("--wake", type=int, default=0,
                    help="N: instructions of a peer's first send after its worker went idle, median of N")
    ap.add_argument("--profile", metavar="DIR", help="keep each hello's callgrind.out in DIR")
    ap.add_argument("--spares", action="store_true", help="also a hello through a spare worker (SPARE_WORKERS)")
    ap.add_argument("bindirs", nargs="+")
    a = ap.parse_args()
    global PROFILE_DIR, SPARES
    SPARES = a.spares
    if a.profile:
        PROFILE_DIR = os.path.abspath(a.profile)
        os.makedirs(PROFILE_DIR, exist_ok=True)
    pg = mbtest.PgCluster(prefix="mbcost-").init()
    try:
        mbtest.migrate(pg.url)
        db = pg.connect()
        for bindir in a.bindirs:
            await measure(os.path.abspath(bindir), pg, db, a.hellos, a.idle, a.wake)
    finally:
        pg.destroy()


if __name__ == "__main__":
    asyncio.run(main())
