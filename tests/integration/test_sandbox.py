"""The worker under a reproduction of its systemd sandbox that needs no PID 1
(issue 12, acceptance 3): scripts/sandbox-worker.sh wraps every worker of
meshbroker-accept in a private mount namespace (read-only everything but the
runtime dir, a private /tmp, no /home), as the meshbroker user with
no_new_privs and no capabilities, and the
system-call filters of units/meshbroker@.service applied by
scripts/seccomp-exec.py.  The first test shows the confinement is real; the
rest are the messaging tests of test_messaging.py, run again with every
worker sandboxed."""

import json
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

import mbtest
import test_messaging

SANDBOX = os.path.join(mbtest.REPO, "scripts", "sandbox-worker.sh")
SECCOMP = os.path.join(mbtest.REPO, "scripts", "seccomp-exec.py")
UNIT = os.path.join(mbtest.REPO, "units", "meshbroker@.service")

# Not in the ASan+UBSan run (tests/run.sh): the unit's system-call filter
# denies ptrace, which LeakSanitizer needs when the worker exits.
pytestmark = pytest.mark.unsanitized


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("the sandbox reproduction makes mounts: root only")


def service_uid(worker, syscalls):
    """the uid the sandbox gives the worker: the unit's User=meshbroker (the
    fixtures create that user when run as root), unless that user cannot
    reach the worker or the helper (a checkout under /root): then uid 0,
    still without capabilities"""
    mbtest.ensure_pg_user()
    r = subprocess.run(["runuser", "-u", "meshbroker", "--", "test", "-x", worker, "-a", "-r", SECCOMP,
                        "-a", "-r", syscalls, "-a", "-r", UNIT], capture_output=True)
    return pwd.getpwnam("meshbroker").pw_uid if r.returncode == 0 else 0


@pytest.fixture(scope="module")
def syscalls():
    """the unit's allowed system calls, expanded once (systemd-analyze)"""
    _need_root()
    d = tempfile.mkdtemp(prefix="mbsbx-", dir="/tmp")
    os.chmod(d, 0o755)  # the sandboxed worker runs as the meshbroker user
    path = os.path.join(d, "syscalls")
    r = subprocess.run(["/usr/bin/python3", "-B", SECCOMP, "--list", UNIT], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    open(path, "w").write(r.stdout)
    os.chmod(path, 0o644)
    assert "sendmsg" in r.stdout.split() and "mount" not in r.stdout.split()
    yield path
    shutil.rmtree(d, ignore_errors=True)


PROBE = r"""
import errno, json, mmap, os, socket, sys
out = {}
st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
out["nnp"] = st["NoNewPrivs"].strip()
out["uid"] = os.getuid()
out["seccomp"] = st["Seccomp"].strip()
out["capeff"] = st["CapEff"].strip()
out["capbnd"] = st["CapBnd"].strip()
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
out["write_root"] = attempt(lambda: open("/sandbox-probe", "w"))
out["write_etc"] = attempt(lambda: open("/etc/sandbox-probe", "w"))
out["write_usr"] = attempt(lambda: open("/usr/sandbox-probe", "w"))
out["write_runtime"] = attempt(lambda: open(os.path.join(sys.argv[2], "sandbox-probe"), "w"))
out["write_proc_sys"] = attempt(lambda: open("/proc/sys/kernel/hostname", "w"))
out["host_tmp_visible"] = os.path.exists(sys.argv[3])
out["affinity"] = attempt(lambda: os.sched_setaffinity(0, {0}))
out["setuid"] = attempt(lambda: os.setuid(0))
out["packet_socket"] = attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
out["unix_socket"] = attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).close())
out["wx_mmap"] = attempt(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC))
out["umask"] = oct(os.umask(0o77))
out["dev"] = sorted(os.listdir("/dev"))
out["urandom"] = len(open("/dev/urandom", "rb").read(16))
print(json.dumps(out))
"""


def test_sandbox_confines_like_the_unit(syscalls):
    d = tempfile.mkdtemp(prefix="mbsbx-", dir="/tmp")
    rt = os.path.join(d, "run")
    os.mkdir(rt)
    host_file = os.path.join(d, "host-only")
    open(host_file, "w").close()
    # the probe (python3 as the "worker") reports what it may do; host_file
    # sits in the host's /tmp, which the sandbox's private /tmp hides
    env = dict(os.environ, MESHBROKER_RUNTIME_DIR=rt, SANDBOX_SYSCALLS=syscalls,
               SANDBOX_WORKER="/usr/bin/python3")
    try:
        r = subprocess.run([SANDBOX, "-B", "-c", PROBE, mbtest.REPO, rt, host_file], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout.strip().splitlines()[-1])
        assert os.path.exists(os.path.join(rt, "sandbox-probe")), "the runtime dir is not the host's"
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert got["uid"] == service_uid("/usr/bin/python3", syscalls), got  # User=meshbroker
    assert got["nnp"] == "1", got                    # NoNewPrivileges=yes
    assert got["seccomp"] == "2", got                # a filter is loaded
    assert int(got["capeff"], 16) == 0 and int(got["capbnd"], 16) == 0, got  # CapabilityBoundingSet=
    assert got["write_root"] == "EROFS", got         # ProtectSystem=strict
    assert got["write_etc"] == "EROFS" and got["write_usr"] == "EROFS", got
    assert got["write_proc_sys"] == "EROFS", got     # ProtectKernelTunables=yes
    assert got["write_runtime"] == "ok", got         # RuntimeDirectory=
    assert got["host_tmp_visible"] is False, got     # PrivateTmp=yes
    assert got["affinity"] == "EPERM", got           # ~@resources, SystemCallErrorNumber=EPERM
    assert got["setuid"] == "EPERM", got             # ~@privileged
    assert got["packet_socket"] == "EAFNOSUPPORT", got  # RestrictAddressFamilies=
    assert got["unix_socket"] == "ok", got
    assert got["wx_mmap"] == "EPERM", got            # MemoryDenyWriteExecute=yes
    assert got["umask"] == "0o77", got               # UMask=0077
    assert set(got["dev"]) <= {"null", "zero", "full", "random", "urandom", "tty", "shm", "mqueue", "fd",
                               "stdin", "stdout", "stderr"}, got  # PrivateDevices=yes
    assert got["urandom"] == 16, got


@pytest.fixture
def broker(broker, syscalls):
    """conftest's broker (its start, teardown and log checks), in accept mode
    with every worker sandboxed"""

    def start(mode="accept", database_url=None, **env):
        env = dict(env, MESHBROKER_WORKER=SANDBOX, SANDBOX_SYSCALLS=syscalls,
                   SANDBOX_WORKER=mbtest.binpath("meshbroker-worker"))
        return broker("accept", database_url, **env)

    return start


def test_a_live_peer_is_served_by_a_confined_worker(broker, mesh, syscalls):
    b = broker()
    st, _, body = b.get("/health")
    assert st == 200, body
    m = mesh("A")
    (am,) = m.members

    async def go():
        a = mbtest.Peer(b, am)
        await a.join()
        pid = b.worker_for(a.client_port)
        st = dict(ln.split(":", 1) for ln in open(f"/proc/{pid}/status").read().splitlines() if ":" in ln)
        assert int(st["Uid"].split()[0]) == service_uid(mbtest.binpath("meshbroker-worker"), syscalls), st
        assert st["NoNewPrivs"].strip() == "1", st
        assert st["Seccomp"].strip() == "2", st
        assert int(st["CapEff"].strip(), 16) == 0, st
        root = [ln.split() for ln in open(f"/proc/{pid}/mountinfo") if ln.split()[4] == "/"]
        assert root and "ro" in root[-1][5].split(","), root
        assert os.path.basename(mbtest.proc_exe(pid)) == "meshbroker-worker"
        await a.close()

    mbtest.run(go(), 30)


# the messaging tests again, every worker sandboxed
for _name, _fn in list(vars(test_messaging).items()):
    if _name.startswith("test_") and callable(_fn):
        globals()["test_sandboxed_" + _name[len("test_"):]] = _fn
del _name, _fn
