"""How meshbroker-accept starts a worker (issue 23, docs/design.md "A
worker's start and end, fourth round"): vfork+exec (accept/spawn.c), the
child doing only system calls before its exec.  What a worker gets must be
what the fork+exec of before gave it: every signal the acceptor ignores back
to its default, a mask with only SIGTERM/SIGINT blocked across the exec
(which the worker keeps blocked outside its waits), no descriptor of the
acceptor's but the one it is handed as fd 3, the acceptor's environment
without the variables that name a connection, LISTEN_PID its own pid; and an
exec that fails costs the acceptor nothing but that connection."""

import ctypes
import os
import platform
import signal
import subprocess

import pytest

import mbtest
from mbtest import Peer, run, wait_until

SIGPIPE_BIT = 1 << (signal.SIGPIPE - 1)
# 32 and 33 are glibc's own (SIGCANCEL, SIGSETXID): its sigaction refuses
# them (EINVAL), so no program built on it sets or resets them, and GNU make
# starts its recipes with both ignored (`make test`'s whole tree has them so)
GLIBC_BITS = (1 << 31) | (1 << 32)
TERM_INT_BITS = (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1))


def status_mask(pid, name):
    data = (mbtest._read(f"/proc/{pid}/status") or b"").decode(errors="replace")
    for line in data.splitlines():
        if line.startswith(name + ":"):
            return int(line.split(":", 1)[1].strip(), 16)
    raise AssertionError(f"no {name} for {pid}")


_libc = ctypes.CDLL(None, use_errno=True)
SYS_KCMP, KCMP_FILE = 312, 0  # x86_64


def same_file(pid1, fd1, pid2, fd2, t1, t2):
    """pid1's fd1 and pid2's fd2 are one open file description (an inherited
    descriptor, not the same path opened twice): kcmp(2), else the link text
    for sockets, pipes and anonymous inodes"""
    if platform.machine() == "x86_64":
        r = _libc.syscall(SYS_KCMP, pid1, pid2, KCMP_FILE, fd1, fd2)
        if r >= 0:
            return r == 0
    return t1 == t2 and not t1.startswith("/")


def fd_targets(pid):
    out = {}
    d = f"/proc/{pid}/fd"
    for fd in os.listdir(d):
        try:
            out[int(fd)] = os.readlink(f"{d}/{fd}")
        except OSError:
            pass
    return out


@pytest.fixture
def odd_acceptor(monkeypatch):
    """the acceptor started with SIGUSR2 and SIGQUIT ignored, SIGUSR1 and
    SIGHUP blocked, a pipe open on an extra descriptor and connection
    variables of its own in the environment: none of it may reach a worker"""
    r, w = os.pipe()
    real = subprocess.Popen

    def pre():
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGHUP})

    def popen(argv, *a, **kw):
        if argv and str(argv[0]).endswith("meshbroker-accept"):
            kw["preexec_fn"] = pre
            kw["pass_fds"] = (w,)
            env = dict(kw.get("env") or os.environ)
            env.update(REMOTE_ADDR="10.9.9.9", REMOTE_PORT="9", LISTEN_FDNAMES="stale")
            kw["env"] = env
        return real(argv, *a, **kw)

    monkeypatch.setattr(mbtest.subprocess, "Popen", popen)
    yield w
    os.close(r)
    os.close(w)


def check_clean_start(b, pid, acc, extra_fd_target):
    assert status_mask(pid, "SigIgn") & ~GLIBC_BITS == SIGPIPE_BIT, \
        f"{pid}: ignored signals {status_mask(pid, 'SigIgn'):#x}, expected only SIGPIPE (the worker's own)"
    # the worker blocks SIGTERM/SIGINT itself outside its waits (ppoll lets
    # them in, so a waiting worker shows none); nothing else may be blocked
    assert status_mask(pid, "SigBlk") & ~TERM_INT_BITS == 0, \
        f"{pid}: blocked {status_mask(pid, 'SigBlk'):#x}, expected at most SIGTERM and SIGINT"
    assert status_mask(pid, "SigCgt") & TERM_INT_BITS == TERM_INT_BITS
    fds = fd_targets(pid)
    assert 3 in fds and fds[3].startswith("socket:"), fds
    theirs = {fd: t for fd, t in fd_targets(acc).items() if fd >= 3}
    inherited = {fd: t for fd, t in fds.items() if fd >= 3
                 for afd, at in theirs.items() if same_file(pid, fd, acc, afd, t, at)}
    assert not inherited, f"{pid} holds descriptors of the acceptor's: {inherited} (acceptor: {theirs})"
    assert extra_fd_target not in fds.values(), f"{pid} inherited the acceptor's pipe: {fds}"
    env = mbtest.proc_environ(pid)
    assert "LISTEN_FDNAMES" not in env, env.get("LISTEN_FDNAMES")
    assert env.get("REMOTE_ADDR") in (None, "127.0.0.1"), env.get("REMOTE_ADDR")


@pytest.mark.parametrize("spares", [0, 2])
def test_a_worker_gets_default_signals_no_inherited_descriptor_and_its_own_listen_pid(
        broker, mesh, odd_acceptor, spares):
    b = broker(SPARE_WORKERS=spares)
    acc = b.proc.pid
    assert status_mask(acc, "SigIgn") & (1 << (signal.SIGUSR2 - 1)), "the fixture's ignored signal did not take"
    extra = os.readlink(f"/proc/{acc}/fd/{odd_acceptor}")
    assert extra.startswith("pipe:"), extra
    if spares:
        assert wait_until(lambda: len(b.spares()) == spares, 20), b.spares()
    m = mesh("A")

    async def go():
        p = Peer(b, m.members[0])
        await p.join()
        pid = p.worker_pid()
        check_clean_start(b, pid, acc, extra)
        env = mbtest.proc_environ(pid)
        if not spares:
            assert env.get("LISTEN_PID") == str(pid), env.get("LISTEN_PID")
            assert env.get("LISTEN_FDS") == "1"
            assert env.get("REMOTE_PORT") == str(p.client_port)
        else:
            for k in ("LISTEN_PID", "LISTEN_FDS", "REMOTE_PORT", "REMOTE_ADDR", "MESHBROKER_CHILD_SLOT"):
                assert k not in env, f"a spare's environment has {k}={env[k]}"
            assert wait_until(lambda: len(b.spares()) == spares, 20), b.spares()
            for s in b.spares():  # the spares waiting: their own socketpair end only
                check_clean_start(b, s, acc, extra)
        # and it works: a round trip through the worker
        await p.send_json({"type": "list_peers", "_reqId": "l"})
        await p.wait_for(lambda x: x.get("type") == "peers_list", 20)
        await p.close()

    run(go(), 60)


def test_a_worker_that_cannot_be_executed_costs_its_connection_only(broker, tmp_path):
    real = mbtest.require_bin("meshbroker-worker")
    link = tmp_path / "meshbroker-worker"
    os.symlink(real, link)
    b = broker(SPARE_WORKERS=0, MESHBROKER_WORKER=str(link))
    b.allow_log(r"cannot exec the worker")
    os.unlink(link)  # the exec fails now: ENOENT
    try:
        st = b.get("/health", timeout=5)[0]
    except Exception as e:  # the connection is closed unanswered
        st = repr(e)
    assert st != 200, st
    assert wait_until(lambda: "cannot exec the worker" in b.log_text(), 10), b.log_text()[-2000:]
    assert b.proc.poll() is None, "the acceptor exited"
    assert wait_until(lambda: not b.zombies(), 10), f"unreaped: {b.zombies()}"
    os.symlink(real, link)
    assert b.get("/health")[0] == 200
