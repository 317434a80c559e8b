"""mbtest — helpers for meshbroker's integration tests: a private PostgreSQL
cluster, broker processes (meshbroker-accept or systemd-socket-activate),
meshes and members made with SQL, Python WebSocket peers that do the crypto
themselves, a raw RFC 6455 client for frame-level checks, and /metrics parsing.
Everything is real: processes, sockets on 127.0.0.1, PostgreSQL."""

import asyncio
import base64
import glob
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import string
import struct
import subprocess
import tempfile
import time

import nacl.encoding
import nacl.public
import nacl.signing
import nacl.utils
import psycopg2
import websockets

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("MESHBROKER_BIN") or os.path.join(REPO, "build", "bin")
PG_USER = "meshbroker"

ALNUM = string.ascii_letters + string.digits


def new_id(n=32):
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def now_ms():
    return time.time_ns() // 1_000_000


def _port_range():
    """ports for servers: below the kernel's ephemeral range, so that no
    client socket of this or another test run is ever given one"""
    try:
        lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    hi = max(lo, 2048)
    return max(1024, hi - 12000), hi


def free_port():
    """A TCP port that nothing listens on now, drawn at random from a range
    no client socket is given.  Another process can still take it before the
    caller binds it: servers started with a port from here retry with another
    one on EADDRINUSE (see Broker.start, listen_with_retry)."""
    lo, hi = _port_range()
    for _ in range(200):
        port = secrets.randbelow(hi - lo) + lo
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            try:
                s.bind(("::1", port))
            except OSError as e:
                if e.errno != 99:  # EADDRNOTAVAIL: no IPv6 here, fine
                    continue
        return port
    raise RuntimeError("no free port found")


ADDR_IN_USE = re.compile(r"[Aa]ddress already in use|EADDRINUSE")

# signals that mean a crash, not a request to stop
CRASH_SIGNALS = {4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 11: "SIGSEGV",
                 31: "SIGSYS"}
SANITIZER_LINE = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|"
                            r"SUMMARY: (Address|Undefined|Leak)|AddressSanitizer:DEADLYSIGNAL")


def b64e(b):
    return base64.b64encode(b).decode()


def b64d(s):
    return base64.b64decode(s, validate=True)


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until it returns a truthy value; return it, or the last
    falsy value after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def tail(path, n=60):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    lines = data.decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-n:])


def binpath(name):
    return os.path.join(BIN, name)


def require_bin(name):
    p = binpath(name)
    assert os.access(p, os.X_OK), f"{p} is missing (run `make build`)"
    return p


# ---------------------------------------------------------------- PostgreSQL


def pg_bindir():
    dirs = glob.glob("/usr/lib/postgresql/*/bin")
    dirs.sort(key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    assert dirs, "PostgreSQL server binaries not found under /usr/lib/postgresql"
    return dirs[-1]


def ensure_pg_user():
    r = subprocess.run(["id", "-u", PG_USER], capture_output=True)
    if r.returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        PG_USER], check=True)


def as_pg_user(argv):
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--"] + argv
    return argv


class PgCluster:
    """A private PostgreSQL cluster listening only on a Unix socket in a
    temporary directory.  stop()/start() keep the same socket dir and port, so
    a DATABASE_URL handed to a broker stays valid across a restart."""

    def __init__(self, prefix="mbpg-"):
        if os.geteuid() == 0:
            ensure_pg_user()
        self.bindir = pg_bindir()
        self.root = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        self.data = os.path.join(self.root, "data")
        self.sock = os.path.join(self.root, "s")
        self.log = os.path.join(self.root, "postgres.log")
        self.port = free_port()
        os.mkdir(self.sock)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", PG_USER, self.root], check=True)
        self.url = f"postgresql:///meshbroker?host={self.sock}&port={self.port}&user={PG_USER}"
        self.running = False

    def _run(self, argv, timeout=60):
        r = subprocess.run(as_pg_user(argv), capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n"
                               f"log:\n{tail(self.log)}")
        return r

    def init(self):
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", PG_USER,
                   "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"], timeout=120)
        self.start()
        conn = psycopg2.connect(host=self.sock, port=self.port, user=PG_USER, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as c:
            c.execute(f"CREATE DATABASE meshbroker OWNER {PG_USER}")
        conn.close()
        return self

    def start(self):
        opts = (f"-c listen_addresses='' -k {self.sock} -p {self.port} -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log, "-w",
                   "-t", "60", "-o", opts, "start"], timeout=90)
        self.running = True

    def stop(self, mode="fast"):
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w",
                   "-t", "60", "stop"], timeout=90)
        self.running = False

    def connect(self):
        conn = psycopg2.connect(host=self.sock, port=self.port, user=PG_USER, dbname="meshbroker")
        conn.autocommit = True
        return conn

    def destroy(self):
        if self.running:
            try:
                self.stop("immediate")
            except Exception:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


def migrate(url):
    """Apply the schema with `meshctl migrate` (the real tool)."""
    meshctl = require_bin("meshctl")
    env = dict(os.environ, DATABASE_URL=url)
    r = subprocess.run([meshctl, "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"meshctl migrate failed ({r.returncode}): {r.stdout}{r.stderr}"
    return r


# ---------------------------------------------------------------- processes


def _read(path, mode="rb"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def proc_exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def proc_environ(pid):
    data = _read(f"/proc/{pid}/environ")
    if not data:
        return {}
    env = {}
    for item in data.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            env[k.decode(errors="replace")] = v.decode(errors="replace")
    return env


def proc_argv(pid):
    """the command line of pid as a list of bytes ([] when gone)"""
    data = _read(f"/proc/{pid}/cmdline") or b""
    return data.split(b"\0")[:-1] if data else []


def is_spare(pid):
    """a spare worker still waiting for its connection: the acceptor starts
    it as `meshbroker-worker --spare`, and it rewrites that to `--taken` once
    it holds a connection (common/handover.h)"""
    return proc_argv(pid)[1:2] == [b"--spare"]


def proc_state(pid):
    data = _read(f"/proc/{pid}/stat")
    if not data:
        return None
    # pid (comm) state ...   comm may contain spaces/parens: split at the last ')'
    return data[data.rindex(b")") + 2:data.rindex(b")") + 3].decode()


def proc_children(pid):
    kids = []
    for t in glob.glob(f"/proc/{pid}/task/*/children"):
        data = _read(t)
        if data:
            kids += [int(x) for x in data.split()]
    return kids


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def socket_inodes(pid):
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", link)
        if m:
            inodes.add(int(m.group(1)))
    return inodes


def tcp_inode(local_port, remote_port):
    """Inode of the IPv4/IPv6 TCP socket local_port <- remote_port on this host."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        data = _read(table, "r") or ""
        for line in data.splitlines()[1:]:
            f = line.split()
            lp = int(f[1].rsplit(":", 1)[1], 16)
            rp = int(f[2].rsplit(":", 1)[1], 16)
            if lp == local_port and rp == remote_port and int(f[9]) != 0:
                return int(f[9])
    return None


# ---------------------------------------------------------------- broker


def http_request(port, method, path, body=None, headers=None, timeout=10, source=None):
    """(status, headers dict lower-case, body bytes); source: the local
    address to connect from (a loopback address), else the kernel's choice"""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                   source_address=(source, 0) if source else None)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


class PortTaken(RuntimeError):
    pass


class Broker:
    """One broker: meshbroker-accept, or systemd-socket-activate --accept
    running meshbroker-worker per connection.  Its workers are recognised by
    their executable and MESHBROKER_RUNTIME_DIR in their environment."""

    def __init__(self, mode, database_url, env=None, workdir=None, port=None):
        assert mode in ("accept", "socket-activate"), mode
        self.mode = mode
        self.port = port or free_port()
        self.workdir = workdir or tempfile.mkdtemp(prefix="mbb-", dir="/tmp")
        self.runtime_dir = os.path.join(self.workdir, "run")
        self.log = os.path.join(self.workdir, "broker.stderr")
        self.env = {
            "BROKER_PORT": str(self.port),
            "MESHBROKER_RUNTIME_DIR": self.runtime_dir,
            "DATABASE_URL": database_url,
            "GIT_SHA": "testsha0",
        }
        self.env.update({k: str(v) for k, v in (env or {}).items()})
        self.proc = None
        self.fixed_port = port is not None
        self.sent_signals = {}  # worker pid -> signals this test sent it
        self.allowed = []  # regexes of error log lines the test provokes on purpose
        self.log_start = 0  # where this listener's part of the log begins
        # a test that limits connections per source sets this: each /metrics
        # scrape then comes from a /24 of its own, so an earlier scrape's
        # worker, still exiting, never holds a place the next one needs
        self.scrape_from_new_sources = False
        self.scrapes = 0

    @property
    def http_url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout=30):
        """start the listener; a port another process took since it was
        chosen is replaced by a fresh one (up to 5 times)"""
        for attempt in range(5):
            try:
                return self._start(timeout)
            except PortTaken:
                if self.fixed_port or attempt == 4:
                    raise
                self.port = free_port()
                self.env["BROKER_PORT"] = str(self.port)

    def _start(self, timeout):
        worker = require_bin("meshbroker-worker")
        try:
            self.log_start = os.path.getsize(self.log)
        except OSError:
            self.log_start = 0
        logf = open(self.log, "ab")
        before = set(self.workers())  # live workers of an earlier listener on this runtime dir
        if self.mode == "accept":
            accept = require_bin("meshbroker-accept")
            env = dict(os.environ)
            env.update(self.env)
            argv = [accept]
        else:
            env = dict(os.environ)
            argv = ["systemd-socket-activate", "--accept", "-l", f"127.0.0.1:{self.port}"]
            passed = dict(self.env)
            for k in ("PATH", "LANG", "ASAN_OPTIONS", "UBSAN_OPTIONS"):
                if k in os.environ and k not in passed:
                    passed[k] = os.environ[k]
            for k, v in passed.items():
                argv += ["-E", f"{k}={v}"]
            argv.append(worker)
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=logf, cwd=self.workdir, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                if ADDR_IN_USE.search(self.log_text()):
                    raise PortTaken(self.port)
                raise RuntimeError(f"broker ({self.mode}) exited with {self.proc.returncode} at start:\n"
                                   f"{tail(self.log)}")
            try:
                probe = RawHTTP(self.port, timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"broker ({self.mode}) not accepting on {self.port} after "
                                       f"{timeout}s:\n{tail(self.log)}")
                time.sleep(0.05)
        # a whole request, so that the probe's worker has come and gone (and
        # been reaped) before the test counts connections or workers
        probe.send(b"GET /__probe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        probe.read_response(5)
        probe.close()
        if not self.wait_no_workers(5, exclude=before):
            raise RuntimeError(f"the start-up probe's worker did not exit: {self.workers()} "
                               f"zombies {self.zombies()}\n{tail(self.log)}")
        return self

    # -- processes

    def workers(self, spares=False):
        """pids of this broker's live (non-zombie) meshbroker-worker processes;
        spare workers still waiting for a connection (SPARE_WORKERS, argv
        `--spare`) only with spares=True"""
        out = []
        needle = f"MESHBROKER_RUNTIME_DIR={self.runtime_dir}".encode() + b"\0"
        for pid in all_pids():
            exe = proc_exe(pid)
            if "meshbroker-worker" not in os.path.basename(exe):
                continue
            data = _read(f"/proc/{pid}/environ") or b""
            if needle in data and proc_state(pid) not in (None, "Z", "X"):
                if spares or not is_spare(pid):
                    out.append(pid)
        return out

    def spares(self):
        """pids of this broker's spare workers waiting for a connection"""
        return [p for p in self.workers(spares=True) if is_spare(p)]

    def zombies(self):
        """children of the listener that have exited but were not reaped"""
        if not self.proc:
            return []
        return [k for k in proc_children(self.proc.pid) if proc_state(k) == "Z"]

    def worker_for(self, client_port, timeout=15):
        """pid of the worker serving the TCP connection whose client side is
        127.0.0.1:client_port"""
        deadline = time.monotonic() + timeout
        while True:
            inode = tcp_inode(self.port, client_port)
            if inode:
                for pid in self.workers():
                    if inode in socket_inodes(pid):
                        return pid
            if time.monotonic() > deadline:
                raise AssertionError(f"no worker found for client port {client_port}")
            time.sleep(0.05)

    def wait_no_workers(self, timeout, exclude=()):
        """True when no worker (besides exclude) is left and the listener
        has reaped every child that ended: its children are then only spares
        still waiting for a connection and the reaper.  A worker on its way
        out has lost its command line and environment (its memory is gone)
        some time before it is a zombie: an ASan worker's teardown takes tens
        of milliseconds under load, and workers() no longer sees it then.  So
        the listener's children are looked at by what they are not: anything
        but a waiting spare or the reaper is a worker not yet reaped."""
        def settled():
            if [p for p in self.workers() if p not in exclude]:
                return False
            if not self.proc:
                return True
            for k in proc_children(self.proc.pid):
                state = proc_state(k)
                if k in exclude or state is None:
                    continue  # excluded, or gone since it was listed
                if state != "Z" and proc_argv(k)[1:2] in ([b"--spare"], [b"--reap"]):
                    continue
                return False
            return True
        return wait_until(settled, timeout)

    def stop(self):
        """SIGTERM the listener; True when it and every worker ended by
        themselves in time.  Whatever is left then is SIGKILLed (so nothing
        outlives the test) and the result is False."""
        clean = True
        # workers whose clients are gone end by themselves; give them the
        # chance first: a SIGTERM that reaches an ASan worker in the middle of
        # LeakSanitizer's exit-time scan can hang it
        wait_until(lambda: not self.workers(), 5)
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                clean = False
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # no worker (spares included) may outlive its test
        left = wait_until(lambda: not self.workers(spares=True), 10)
        if not left:
            self.leaked = self.workers(spares=True)
            for pid in self.leaked:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            wait_until(lambda: not self.workers(spares=True), 5)
        return clean and bool(left)

    # -- what went wrong without the client noticing

    def kill_worker(self, pid, sig=signal.SIGKILL):
        """send a worker a signal on purpose: check() does not count it"""
        self.sent_signals.setdefault(pid, set()).add(int(sig))
        os.kill(pid, sig)

    def allow_log(self, *patterns):
        """error lines matching one of these regexes are provoked by the test"""
        self.allowed += [re.compile(p) for p in patterns]

    def log_text(self):
        data = _read(self.log) or b""
        return data[self.log_start:].decode("utf-8", "replace")

    def problems(self):
        """What the listener's log says went wrong: a worker that died by a
        signal nobody sent it, a sanitizer report, an error-level line the
        test did not allow, children killed at stop.  A list of strings."""
        out = []
        stopping = False  # after the acceptor's "stopping", its SIGTERM is expected
        for line in self.log_text().splitlines():
            if SANITIZER_LINE.search(line):
                out.append(f"sanitizer: {line.strip()}")
                continue
            m = re.match(r"Child (\d+) died with code (\d+)", line)  # systemd-socket-activate
            if m:
                pid, code = int(m.group(1)), int(m.group(2))
                # worker exit statuses are 0, 100 and 111; these are signals
                if code in CRASH_SIGNALS or (code == 9 and 9 not in self.sent_signals.get(pid, ())):
                    out.append(f"worker {pid} died by signal {code} "
                               f"({CRASH_SIGNALS.get(code, 'SIGKILL')}) that the test did not send")
                continue
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                out.append(f"unparsable log line: {line[:200]}")
                continue
            msg = rec.get("msg", "")
            if msg == "stopping":
                stopping = True
            if msg == "worker killed":
                pid, sig = int(rec.get("pid", 0)), int(rec.get("signal", 0))
                if sig not in self.sent_signals.get(pid, ()) and not (stopping and sig == 15):
                    out.append(f"worker {pid} killed by signal {sig} that the test did not send")
                continue
            if msg == "children did not exit in time; killing them":
                out.append(f"workers ignored the listener's SIGTERM and were SIGKILLed: {line.strip()[:300]}")
            elif rec.get("level") == "error" and not any(p.search(line) for p in self.allowed):
                out.append(f"error logged: {line.strip()[:300]}")
        return out

    def check(self):
        """stop, then the list of problems (leaked workers included)"""
        self.leaked = []
        clean = self.stop()
        out = self.problems()
        if self.leaked:
            out.append(f"workers outlived the test: {self.leaked}")
        elif not clean:
            out.append("the listener did not stop within 15 s of SIGTERM")
        return out

    # -- HTTP

    def request(self, method, path, body=None, headers=None, timeout=10):
        return http_request(self.port, method, path, body, headers, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def scrape_source(self):
        """the local address of the next /metrics scrape (None: the kernel's)"""
        if not self.scrape_from_new_sources:
            return None
        self.scrapes += 1
        return f"127.{100 + self.scrapes // 256 % 150}.{self.scrapes % 256}.1"

    def metrics(self):
        st, hdrs, body = http_request(self.port, "GET", "/metrics", source=self.scrape_source())
        assert st == 200, f"/metrics answered {st}: {body[:200]!r}"
        return Metrics(body.decode())

    def metric(self, name, **labels):
        return self.metrics().value(name, **labels)

    def wait_metric(self, name, expect, timeout=20, **labels):
        """Poll /metrics until name{labels} == expect; return the last value."""
        last = [None]

        def ok():
            last[0] = self.metric(name, **labels)
            return last[0] == expect

        wait_until(ok, timeout, interval=0.1)
        return last[0]


class Metrics:
    """Prometheus text format 0.0.4"""

    LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)(\s+\d+)?$')
    LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

    def __init__(self, text):
        self.text = text
        self.help = {}
        self.type = {}
        self.samples = {}
        self.bad_lines = []
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("# HELP "):
                parts = line.split(" ", 3)
                self.help[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            if line.startswith("# TYPE "):
                parts = line.split(" ")
                self.type[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            if line.startswith("#"):
                continue
            m = self.LINE.match(line)
            if not m:
                self.bad_lines.append(line)
                continue
            labels = tuple(sorted(self.LABEL.findall(m.group(3) or "")))
            self.samples[(m.group(1), labels)] = float(m.group(4))

    def value(self, name, **labels):
        """the sample's value; 0 when a labelled sample is absent (a counter
        that never rose may be omitted); None when the metric is unknown"""
        key = (name, tuple(sorted(labels.items())))
        if key in self.samples:
            return self.samples[key]
        if labels and (name in self.type or any(k[0] == name for k in self.samples)):
            return 0.0
        return None

    def family(self, name):
        """{labels tuple: value} of every sample of name"""
        return {k[1]: v for k, v in self.samples.items() if k[0] == name}


# ---------------------------------------------------------------- meshes


class Member:
    def __init__(self, mesh, name, role="member", sk=None):
        self.mesh = mesh
        self.id = new_id()
        self.name = name
        self.role = role
        self.sk = sk or nacl.signing.SigningKey.generate()
        self.pubkey = self.sk.verify_key.encode(nacl.encoding.HexEncoder).decode().lower()

    def __repr__(self):
        return f"<Member {self.name} {self.pubkey[:8]}>"


class Mesh:
    def __init__(self, db, name=None):
        self.db = db
        self.id = new_id()
        self.name = name or f"mesh-{self.id[:6]}"
        self.slug = f"t-{self.id.lower()}"
        self.owner = nacl.signing.SigningKey.generate()
        owner_pub = self.owner.verify_key.encode(nacl.encoding.HexEncoder).decode()
        with db.cursor() as c:
            c.execute("INSERT INTO mesh.mesh (id, name, slug, owner_pubkey) VALUES (%s,%s,%s,%s)",
                      (self.id, self.name, self.slug, owner_pub))
        self.members = []

    def add(self, name, role="member", sk=None):
        m = Member(self, name, role, sk)
        with self.db.cursor() as c:
            c.execute("INSERT INTO mesh.member (id, mesh_id, peer_pubkey, display_name, role) "
                      "VALUES (%s,%s,%s,%s,%s)", (m.id, self.id, m.pubkey, name, role))
        self.members.append(m)
        return m

    def revoke(self, member):
        with self.db.cursor() as c:
            c.execute("UPDATE mesh.member SET revoked_at = now() WHERE id = %s", (member.id,))


# ---------------------------------------------------------------- peers


def box_for(sk, other_pubkey_hex):
    return nacl.public.Box(sk.to_curve25519_private_key(),
                           nacl.signing.VerifyKey(bytes.fromhex(other_pubkey_hex)).to_curve25519_public_key())


def sign_hello(sk, mesh_id, member_id, pubkey, ts):
    return sk.sign(f"{mesh_id}|{member_id}|{pubkey}|{ts}".encode()).signature.hex()


class Closed(Exception):
    pass


class Peer:
    """A mesh member speaking the peer protocol with python3-websockets, doing
    the crypto of docs/protocol.md §3.3 itself (PyNaCl)."""

    _last_ts = 0

    def __init__(self, broker, member):
        self.broker = broker
        self.member = member
        self.ws = None
        self.backlog = []
        self.session_id = f"{os.getpid()}-{now_ms()}-{secrets.token_hex(3)}"

    # -- connection

    async def connect(self, path="/ws", open_timeout=5):
        self.ws = await websockets.connect(self.broker.ws_url + path, max_queue=None,
                                           max_size=2 ** 24, ping_interval=None,
                                           open_timeout=open_timeout, close_timeout=3)
        self.backlog = []
        return self

    @property
    def client_port(self):
        return self.ws.transport.get_extra_info("sockname")[1]

    def worker_pid(self):
        return self.broker.worker_for(self.client_port)

    @classmethod
    def fresh_ts(cls):
        # two hellos in one millisecond would carry the same signature (replay)
        ts = max(now_ms(), cls._last_ts + 1)
        cls._last_ts = ts
        return ts

    def hello_msg(self, ts=None, sign_with=None, sign_mesh=None, **over):
        m = self.member
        ts = self.fresh_ts() if ts is None else ts
        msg = {
            "type": "hello",
            "meshId": m.mesh.id,
            "memberId": m.id,
            "pubkey": m.pubkey,
            "sessionId": self.session_id,
            "pid": os.getpid(),
            "cwd": "/tmp/meshbroker-test",
            "timestamp": ts,
        }
        msg.update({k: v for k, v in over.items() if k != "signature"})
        msg["signature"] = sign_hello(sign_with or m.sk, sign_mesh or msg["meshId"], msg["memberId"],
                                      msg["pubkey"], msg["timestamp"])
        if "signature" in over:
            msg["signature"] = over["signature"]
        return msg

    async def hello(self, timeout=20, **kw):
        """send hello, return the first reply (hello_ack or error)"""
        msg = kw.pop("msg", None) or self.hello_msg(**kw)
        await self.send_json(msg)
        return await self.wait_for(lambda x: x.get("type") in ("hello_ack", "error"), timeout)

    async def join(self, path="/ws", timeout=20):
        """connect + hello, asserting hello_ack"""
        await self.connect(path)
        ack = await self.hello(timeout=timeout)
        assert ack.get("type") == "hello_ack", f"{self.member.name}: hello refused: {ack}"
        return ack

    async def close(self):
        """client-initiated close handshake; what arrived before the server's
        close frame stays in the backlog"""
        if self.ws is None:
            return
        await self.ws.close()
        while True:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), 1)
            except (websockets.ConnectionClosed, asyncio.TimeoutError):
                break
            self.backlog.append(json.loads(raw))

    async def wait_closed(self, timeout=20):
        """wait for the server to close; (code, reason)"""
        await asyncio.wait_for(self.ws.wait_closed(), timeout)
        return self.ws.close_code, self.ws.close_reason

    # -- frames

    async def send_json(self, obj):
        await self.ws.send(json.dumps(obj))

    async def recv_json(self, timeout=20):
        if self.backlog:
            return self.backlog.pop(0)
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except websockets.ConnectionClosed as e:
            raise Closed(f"{self.member.name}: connection closed ({self.ws.close_code} "
                         f"{self.ws.close_reason!r})") from e
        return json.loads(raw)

    async def wait_for(self, pred, timeout=20):
        """next message matching pred; the others stay in the backlog, in order"""
        for i, m in enumerate(self.backlog):
            if pred(m):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError(f"{self.member.name}: nothing matching within {timeout}s; "
                                           f"backlog={self.backlog[-5:]}")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), left)
            except asyncio.TimeoutError:
                continue
            except websockets.ConnectionClosed as e:
                raise Closed(f"{self.member.name}: connection closed ({self.ws.close_code} "
                             f"{self.ws.close_reason!r}); backlog={self.backlog[-5:]}") from e
            m = json.loads(raw)
            if pred(m):
                return m
            self.backlog.append(m)

    async def quiet(self, pred, seconds):
        """assert that nothing matching pred arrives within seconds"""
        try:
            m = await self.wait_for(pred, seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"{self.member.name}: unexpected {m}")

    def take(self, pred):
        got = [m for m in self.backlog if pred(m)]
        self.backlog = [m for m in self.backlog if not pred(m)]
        return got

    # -- messages

    def encrypt(self, to_pubkey, text):
        nonce = nacl.utils.random(24)
        ct = box_for(self.member.sk, to_pubkey).encrypt(text.encode(), nonce).ciphertext
        return b64e(nonce), b64e(ct)

    def decrypt(self, push):
        return box_for(self.member.sk, push["senderPubkey"]).decrypt(
            b64d(push["ciphertext"]), b64d(push["nonce"])).decode()

    def send_frame_direct(self, to_pubkey, text, priority="now", id=None):
        nonce, ct = self.encrypt(to_pubkey, text)
        return {"type": "send", "id": id if id is not None else new_id(12), "targetSpec": to_pubkey,
                "priority": priority, "nonce": nonce, "ciphertext": ct}

    async def send_direct(self, to_pubkey, text, priority="now", id=None, timeout=20):
        """send a crypto_box'd direct message; returns (frame sent, ack)"""
        frame = self.send_frame_direct(to_pubkey, text, priority, id)
        return frame, await self.send_and_ack(frame, timeout)

    async def send_broadcast(self, text, priority="now", id=None, timeout=20):
        # reference clients put b64 of the plaintext in ciphertext for '*'
        frame = {"type": "send", "id": id if id is not None else new_id(12), "targetSpec": "*",
                 "priority": priority, "nonce": b64e(nacl.utils.random(24)),
                 "ciphertext": b64e(text.encode())}
        return frame, await self.send_and_ack(frame, timeout)

    async def send_and_ack(self, frame, timeout=20):
        await self.send_json(frame)
        return await self.wait_for(lambda m: m.get("type") == "ack" and m.get("id") == frame["id"],
                                   timeout)

    async def set_status(self, status):
        await self.send_json({"type": "set_status", "status": status})

    async def barrier(self, timeout=20):
        """Wait until the worker has handled every frame sent before: it
        handles frames in order and answers an unknown type with an error,
        so that error's arrival means what came before is done."""
        tag = new_id(12)
        await self.send_json({"type": "mbtest_barrier", "id": tag})
        r = await self.wait_for(lambda m: m.get("type") == "error" and m.get("code") == "unknown_type"
                                and m.get("id") in (tag, None), timeout)
        return r

    async def push(self, timeout=20, pred=None):
        return await self.wait_for(lambda m: m.get("type") == "push" and (pred is None or pred(m)),
                                   timeout)


def is_push(m):
    return m.get("type") == "push"


def run(coro, timeout=120):
    """run a coroutine with an overall deadline"""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---------------------------------------------------------------- raw sockets


class RawHTTP:
    """A bare TCP client for malformed and slow HTTP."""

    def __init__(self, port, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        """send what the peer still accepts; False when it closed on us"""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def read_response(self, timeout=15):
        """(status, headers dict lower-case, body bytes, closed bool).  Reads
        until the peer closes or timeout (a worker serves one request and
        closes); headers parsed from what arrived."""
        deadline = time.monotonic() + timeout
        closed = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            self.buf += chunk
        return parse_response(self.buf) + (closed,)

    def wait_eof(self, timeout):
        """True when the peer closes within timeout (data is discarded)"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def close(self):
        self.sock.close()


def parse_headers(head):
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            hdrs[k.decode().strip().lower()] = v.decode(errors="replace").strip()
    return hdrs


def parse_response(buf):
    if b"\r\n\r\n" not in buf:
        m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
        return (int(m.group(1)) if m else None, {}, b"")
    head, _, body = buf.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return (int(m.group(1)) if m else None, parse_headers(head), body)


class RawWS:
    """A minimal RFC 6455 client over a plain socket: sees every frame the
    server sends (pings included) and answers nothing on its own."""

    def __init__(self, port, path="/ws", timeout=15, rcvbuf=None):
        if rcvbuf is None:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        else:
            # set before connect: the window scale is fixed by the SYN
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect(("127.0.0.1", port))
        key = b64e(os.urandom(16))
        req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"upgrade: connection closed; got {self.buf!r}")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status, hdrs, _ = parse_response(head + b"\r\n\r\n")
        assert status == 101, f"upgrade answered {head!r}"
        import hashlib
        want = b64e(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        assert hdrs.get("sec-websocket-accept") == want, f"bad Sec-WebSocket-Accept in {head!r}"

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("frame read timed out")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def recv_frame(self, timeout=15):
        """(fin, opcode, payload)"""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not (b1 & 0x80), "server frames must not be masked"
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack(">H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack(">Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def send_frame(self, opcode, payload, fin=True):
        if isinstance(payload, str):
            payload = payload.encode()
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_text(self, text):
        self.send_frame(0x1, text)

    def close(self):
        self.sock.close()

    def reset(self):
        """close with SO_LINGER 0: an RST, and whatever sat unread in our
        receive buffer is thrown away"""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def close_payload(payload):
    """(code, reason) of a close frame's payload"""
    if len(payload) < 2:
        return None, ""
    return struct.unpack(">H", payload[:2])[0], payload[2:].decode(errors="replace")
