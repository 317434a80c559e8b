#!/usr/bin/env python3
"""msgphases.py — where one message's time goes, phase by phase (issue 23,
docs/design.md "One message's time"), from an strace log of a one-at-a-time
run: `SPARE_WORKERS=0 STATS=0 STRACE_OUT=st.txt bash bench/msgstats.sh
build/bin x msg --msgs 300 --reps 1`, then
    python3 bench/msgphases.py st.txt            (the first sender/recipient pair)
    python3 bench/msgphases.py st.txt S_PID R_PID
Each message is followed from the sender's worker reading its frame to the
recipient's worker writing its push, by the system calls that mark the
phases (the statement written to and its answer read from the database
socket, the wake datagram, the ack and push frames).  strace slows every
system call, so the in-worker phases come out longer than they are: read the
shares and the order, not the microseconds."""
import re
import statistics
import sys


def load(log, pids):
    ev = {p: [] for p in pids}
    unfinished = {}
    for line in open(log, errors="replace"):
        m = re.match(r"(\d+)\s+(\d+\.\d+) (.*)", line)
        if not m or m.group(1) not in ev:
            continue
        pid, t, rest = m.group(1), float(m.group(2)), m.group(3)
        if rest.endswith("<unfinished ...>"):
            unfinished[pid] = (t, rest)
            continue
        if rest.startswith("<... ") and pid in unfinished:
            t, r0 = unfinished.pop(pid)
            rest = r0.replace("<unfinished ...>", "") + rest.split("resumed>", 1)[1]
        ev[pid].append((t, rest))
    return ev


def kind(rest):
    if rest.startswith("recvfrom(3<TCP") and "= -1" not in rest:
        return "frame_in"
    if rest.startswith("sendto(5<UNIX-STREAM") and "send_batch" in rest:
        return "stmt_send"
    if rest.startswith("sendto(5<UNIX-STREAM") and ("SELECT c.*" in rest or "delivery_push_claim" in rest):
        return "claim_send"
    if rest.startswith("recvfrom(5<UNIX-STREAM") and "= -1" not in rest:
        return "db_answer"
    if rest.startswith("sendto(") and "<UNIX:[" in rest and "= 24" in rest:
        return "wake_out"
    if rest.startswith("recvfrom(") and "<UNIX:[" in rest and "= 24" in rest:
        return "wake_in"
    if rest.startswith("sendto(3<TCP") and '{\\"type\\":\\"ack' in rest:
        return "ack_out"
    if rest.startswith("sendto(3<TCP") and '{\\"type\\":\\"push' in rest:
        return "push_out"
    return None


def sequences(events, start, steps, after):
    out, cur = [], None
    for t, r in events:
        k = kind(r)
        if k == start and cur is None:
            cur = {start: t}
        elif cur is not None and k in steps and k not in cur:
            if k == "db_answer" and after not in cur:
                continue
            cur[k] = t
            if k == steps[-1]:
                out.append(cur)
                cur = None
    return out


def first_pair(log):
    """the first worker that sent a statement and the first that claimed after it"""
    s = r = None
    for line in open(log, errors="replace"):
        m = re.match(r"(\d+)\s", line)
        if not m:
            continue
        if s is None and "send_batch" in line:
            s = m.group(1)
        elif s and r is None and m.group(1) != s and ("delivery_push_claim" in line or "SELECT c.*" in line):
            r = m.group(1)
        if s and r:
            return s, r
    sys.exit("no sender/recipient pair in the log")


def main():
    log = sys.argv[1]
    S, R = sys.argv[2:4] if len(sys.argv) >= 4 else first_pair(log)
    ev = load(log, (S, R))
    ss = sequences(ev[S], "frame_in", ("stmt_send", "db_answer", "wake_out", "ack_out"), "stmt_send")
    rs = sequences(ev[R], "wake_in", ("claim_send", "db_answer", "push_out"), "claim_send")
    pairs, j = [], 0
    for s in ss:
        while j < len(rs) and rs[j]["wake_in"] < s["wake_out"]:
            j += 1
        if j < len(rs) and rs[j]["wake_in"] - s["wake_out"] < 0.05:
            pairs.append((s, rs[j]))
    if not pairs:
        sys.exit("no message followed from sender to recipient")
    phases = [
        ("sender: frame read -> statement written", "stmt_send", "frame_in", 0),
        ("sender: statement written -> answer read (bouncer, PostgreSQL, commit)", "db_answer", "stmt_send", 0),
        ("sender: answer read -> wake sent", "wake_out", "db_answer", 0),
        ("sender: wake sent -> ack written", "ack_out", "wake_out", 0),
        ("wake sent -> recipient reads it", "wake_in", "wake_out", 1),
        ("recipient: wake read -> claim written", "claim_send", "wake_in", 1),
        ("recipient: claim written -> answer read (bouncer, PostgreSQL)", "db_answer", "claim_send", 1),
        ("recipient: answer read -> push written", "push_out", "db_answer", 1),
    ]

    def at(s, r, key, side):
        if key == "wake_in" or side == 1 and key in r:
            return r[key]
        return s[key]

    total = statistics.median(r["push_out"] - s["frame_in"] for s, r in pairs)
    print(f"sender {S}, recipient {R}: {len(pairs)} messages; median frame read -> push written {total * 1e6:.0f} us")
    for name, b, a, side in phases:
        if side == 0:
            v = [s[b] - s[a] for s, r in pairs]
        elif a == "wake_out":
            v = [r[b] - s[a] for s, r in pairs]
        else:
            v = [r[b] - r[a] for s, r in pairs]
        med = statistics.median(v)
        print(f"  {name:72s} {med * 1e6:7.0f} us  {med / total * 100:5.1f} %")


main()
