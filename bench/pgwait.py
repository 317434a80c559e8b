#!/usr/bin/env python3
"""pgwait.py — what PostgreSQL's backends and the bouncer's clients wait on
during one meshbench section (issue 23, docs/design.md "The leave off the
chain lock"): bench/msgstats.sh runs it with SAMPLE_OUT=FILE.

  pgwait.py sample DIRECT_URL BOUNCER_DIR BOUNCER_PORT OUT   (until SIGTERM)
  pgwait.py summary OUT

sample: every 50 ms, one line per (statement, state, wait event) of the
meshbroker database's backends (pg_stat_activity, this sampler left out)
and one line with the bouncer's cl_active/cl_waiting/sv_active/sv_idle
(SHOW POOLS through its admin console, the user pgbouncer over its Unix
socket); both through a psql that stays connected (\\watch).
summary: over the samples with at least one busy backend, the average and
the peak number of backends per (statement, wait event), and the bouncer's
average and peak cl_waiting."""
import collections
import os
import signal
import subprocess
import sys
import time

ACT_SQL = (
    "SELECT 'A', extract(epoch from clock_timestamp())::numeric(16,3), "
    "coalesce(substring(query from 'mesh\\.([a-z_]+)\\('), left(regexp_replace(query, '\\s+', ' ', 'g'), 30)), "
    "coalesce(wait_event_type, 'running'), coalesce(wait_event, ''), count(*) "
    "FROM pg_stat_activity WHERE datname = 'meshbroker' AND pid <> pg_backend_pid() "
    "AND state = 'active' AND backend_type = 'client backend' GROUP BY 3, 4, 5 "
    "UNION ALL SELECT 'T', extract(epoch from clock_timestamp())::numeric(16,3), '', '', '', 0 \\watch 0.05\n"
)


def sample(url, bdir, bport, out):
    f = open(out, "w")
    procs = [subprocess.Popen(["psql", url, "-Atq", "-F", "|", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                              stdout=f, stderr=subprocess.DEVNULL, text=True)]
    procs[0].stdin.write(ACT_SQL)
    procs[0].stdin.flush()
    if bdir:
        p = subprocess.Popen(["psql", "-h", bdir, "-p", bport, "-U", "pgbouncer", "pgbouncer", "-Atq", "-F", "|"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(p)  # SHOW cannot be \watch'ed: one per 50 ms, stamped here
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    bf = open(out + ".pools", "w") if bdir else None
    while not stop:
        if bdir:
            try:
                procs[1].stdin.write("SHOW POOLS;\nSHOW VERSION;\n")
                procs[1].stdin.flush()
                now = time.time()
                while True:  # the pools' rows, then the version's one line
                    line = procs[1].stdout.readline()
                    if not line:
                        bdir = None
                        break
                    if line.startswith("PgBouncer"):
                        break
                    bf.write("%.3f|%s" % (now, line))
            except (BrokenPipeError, OSError):
                bdir = None
        time.sleep(0.05)
    for p in procs:
        p.terminate()
    f.close()
    if bf:
        bf.close()


def summary(out):
    per = collections.defaultdict(list)  # sample stamp -> [(stmt, wait, n)]
    stamps = []
    for line in open(out):
        v = line.rstrip("\n").split("|")
        if len(v) != 6:
            continue
        if v[0] == "T":
            stamps.append(v[1])
        elif v[0] == "A":
            per[v[1]].append((v[2], v[3] + ":" + v[4] if v[4] else v[3], int(v[5])))
    busy = [s for s in stamps if per.get(s)]
    print("-- pg_stat_activity: %d samples, %d with a busy backend" % (len(stamps), len(busy)))
    tot = collections.Counter()
    peak = collections.Counter()
    for s in busy:
        c = collections.Counter()
        for stmt, wait, n in per[s]:
            c[(stmt, wait)] += n
        for k, n in c.items():
            tot[k] += n
            peak[k] = max(peak[k], n)
    if busy:
        print("statement|wait|avg backends per busy sample|peak")
        for k, n in tot.most_common(20):
            print("%s|%s|%.2f|%d" % (k[0], k[1], n / len(busy), peak[k]))
        adv = [sum(n for stmt, wait, n in per[s] if wait == "Lock:advisory") for s in busy]
        print("Lock:advisory: avg %.2f, peak %d, in %d%% of busy samples" %
              (sum(adv) / len(busy), max(adv), 100 * sum(1 for a in adv if a) // len(busy)))
    if os.path.exists(out + ".pools"):
        rows = []
        hdr = None
        for line in open(out + ".pools"):
            v = line.rstrip("\n").split("|")
            if len(v) > 8 and v[1] == "meshbroker":
                rows.append(v)
        # SHOW POOLS (1.18): database, user, cl_active, cl_waiting, cl_active_cancel_req,
        # cl_waiting_cancel_req, sv_active, ...
        if rows:
            w = [int(r[4]) for r in rows]
            a = [int(r[3]) for r in rows]
            sv = [int(r[7]) for r in rows]
            live = [i for i in range(len(rows)) if a[i] or w[i]]
            print("-- bouncer SHOW POOLS: %d samples, %d with clients" % (len(rows), len(live)))
            if live:
                print("cl_waiting avg %.1f peak %d; cl_active avg %.1f peak %d; sv_active avg %.1f peak %d" % (
                    sum(w[i] for i in live) / len(live), max(w), sum(a[i] for i in live) / len(live), max(a),
                    sum(sv[i] for i in live) / len(live), max(sv)))
        else:
            print("-- bouncer SHOW POOLS: no rows (admin console refused?)")


if __name__ == "__main__":
    if sys.argv[1] == "sample":
        sample(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        summary(sys.argv[2])
