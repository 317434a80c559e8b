#!/usr/bin/env python3
"""cpuclass.py — CPU seconds of a bench run's processes, by class (issue 23,
docs/design.md "A message's CPU"): what bench/msgstats.sh runs around one
meshbench section with CPU=1.

  cpuclass.py snap ACCEPTOR_PID POSTMASTER_PID BOUNCER_PID > FILE
      one snapshot: per class, utime + stime of the live processes (from
      /proc/PID/stat) plus what the class's parent reaped (cutime + cstime:
      workers that ended, backends that ended)
  cpuclass.py diff BEFORE AFTER MESSAGES [CLIENT_SECONDS]
      the table: CPU seconds per class between the two snapshots, and
      microseconds per message; CLIENT_SECONDS is the bench client's own
      (user + system, from /usr/bin/time)

Classes: the acceptor itself; the workers (every descendant of the acceptor,
live or reaped); PostgreSQL's client backends; its WAL writer; its other
processes (checkpointer, background writer, autovacuum, the postmaster
itself, and backends that ended, which the postmaster reaped); PgBouncer.
Counts, not times: they need no quiet machine (only the same run's traffic).
"""
import json
import os
import sys

TCK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    """(ppid, utime+stime, cutime+cstime) in seconds, or None"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    # fields from 3 (state): ppid is 4, utime 14, stime 15, cutime 16, cstime 17
    ppid = int(rest[1])
    own = (int(rest[11]) + int(rest[12])) / TCK
    kids = (int(rest[13]) + int(rest[14])) / TCK
    return ppid, own, kids


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def snap(acc, pg, bouncer):
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat(int(d))
            if st:
                procs[int(d)] = st
    children = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)

    def descendants(root):
        out, todo = [], list(children.get(root, []))
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children.get(p, []))
        return out

    c = {"acceptor": 0.0, "workers": 0.0, "pg backends": 0.0, "pg walwriter": 0.0, "pg other": 0.0,
         "pgbouncer": 0.0}
    if acc in procs:
        c["acceptor"] = procs[acc][1]
        c["workers"] = procs[acc][2] + sum(procs[p][1] + procs[p][2] for p in descendants(acc) if p in procs)
    if pg in procs:
        c["pg other"] = procs[pg][1] + procs[pg][2]
        for p in children.get(pg, []):
            cl = cmdline(p)
            own = procs[p][1] + procs[p][2]
            if "walwriter" in cl:
                c["pg walwriter"] += own
            elif "[local]" in cl or "idle" in cl or "SELECT" in cl or "UPDATE" in cl:
                c["pg backends"] += own
            else:
                c["pg other"] += own
    if bouncer in procs:
        c["pgbouncer"] = procs[bouncer][1] + procs[bouncer][2]
    return c


def diff(before, after, msgs, client):
    a, b = json.load(open(after)), json.load(open(before))
    rows = [(k, a[k] - b[k]) for k in a]
    if client is not None:
        rows.append(("bench client", client))
    total = sum(v for _, v in rows)
    print(f"| process class | CPU s | us / message | share |")
    print(f"|---|--:|--:|--:|")
    for k, v in rows:
        print(f"| {k} | {v:.2f} | {v * 1e6 / msgs:.0f} | {100 * v / total if total else 0:.1f} % |")
    print(f"| all | {total:.2f} | {total * 1e6 / msgs:.0f} | 100 % |")


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "snap":
        json.dump(snap(*map(int, sys.argv[2:5])), sys.stdout)
        print()
    elif len(sys.argv) in (5, 6) and sys.argv[1] == "diff":
        diff(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]) if len(sys.argv) == 6 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
