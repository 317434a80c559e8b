"""netns — the multi-host test harness of issue 24: three broker hosts and
one PostgreSQL, each in a network namespace of its own, on a bridge this
harness creates (docs/design.md "More than one host").

    pg namespace    10.A.B.10   PostgreSQL (its own cluster, the unprivileged
                                cluster user of mbtest.PgCluster), TCP on its
                                veth address, plus a Unix socket for the test
    h1..h3          10.A.B.11+  meshbroker-accept (+ workers) and
                                meshbroker-relay, HOST_ID h1/h2/h3, their own
                                MESHBROKER_RUNTIME_DIR, a PgBouncer; the
                                bouncer's and the relay's sessions are TCP to
                                the pg namespace (see below)
    root namespace  10.A.B.1    the bridge's address: the test's clients

Nothing has a default route: the only addresses anything here can reach are
the ones on this bridge.  The bridge, the veth pairs and the namespaces are
named after os.getpid() and a counter ("mb<pid>x<n>..."), and the /24 is
picked from 10.234.0.0/15 keyed by the pid, skipping every network the root
namespace already has an address or a route in, under a lock file: the
normal and the ASan integration runs (tests/run.sh, at the same time) each
get their own.  A leftover of a run that was killed (its pid gone, or this
very name) is removed first, processes in its namespaces included.

Everything is torn down by Harness.down(), which the fixture calls in a
finalizer; a SIGTERM while a harness is up becomes a KeyboardInterrupt so
that pytest's teardown still runs.

Faults: sigkill_host(i) (acceptor, workers and relay), sigstop_host(i) /
sigcont_host(i) (every process of the host's namespace), cut_link(i) /
restore_link(i) (the host's bridge port down / up), kill_relay(i) /
start_relay(i), restart_pg() (fast shutdown, start).  i is 0-based:
hosts[0] is HOST_ID h1.

Each host runs its own PgBouncer (transaction pooling, scripts/pg.sh's
settings) in its namespace, on a Unix socket in a private directory, with
its server sessions over TCP to the pg namespace: the workers' DATABASE_URL
points at it, as docs/deploy.md "More than one host" says; the relay's
RELAY_DATABASE_URL is direct.  (scripts/pg.sh's own bouncer reaches
PostgreSQL through its Unix socket, which no namespace or cut link would
separate, so this one has its own configuration.)  Harness(bouncer=False)
points the workers straight at PostgreSQL instead.

Needs CAP_NET_ADMIN and CAP_SYS_ADMIN (root): require() skips otherwise."""

import atexit
import concurrent.futures
import fcntl
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import psycopg2
import pytest

import mbtest

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
POOL = ipaddress.ip_network("10.234.0.0/15")  # 512 /24s, clear of the usual Docker, Kubernetes and cloud ranges
BROKER_PORT = 7900  # every host its own namespace: the same port everywhere
PG_PORT = 5432
LOCK_PATHS = ("/run/lock/meshbroker-netns.lock", "/tmp/meshbroker-netns.lock")
NAME_RE = re.compile(r"^mb(\d+)x(\d+)")
NS_RE = re.compile(r"^mbnet-(\d+)x(\d+)-")

_counter = itertools.count(1)


def _caps():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def require():
    """pytest.skip when this process cannot make network namespaces"""
    caps = _caps()
    missing = [n for n, b in (("CAP_NET_ADMIN", CAP_NET_ADMIN), ("CAP_SYS_ADMIN", CAP_SYS_ADMIN))
               if not caps & (1 << b)]
    if missing:
        pytest.skip(f"the network-namespace harness needs {' and '.join(missing)} (run as root): "
                    f"it creates a bridge, veth pairs and namespaces")
    assert shutil.which("ip"), "ip (iproute2) is missing: scripts/deps.sh installs it"


def ip(*args, check=True, ns=None):
    argv = ["ip"] + (["-n", ns] if ns else []) + list(args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def in_ns(ns, argv):
    return ["ip", "netns", "exec", ns] + list(argv)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ns_pids(ns):
    """the processes in namespace ns (what `ip netns pids` prints, without a process per look)"""
    try:
        st = os.stat(f"/run/netns/{ns}")
    except OSError:
        return []
    out = []
    for pid in mbtest.all_pids():
        try:
            s = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if (s.st_ino, s.st_dev) == (st.st_ino, st.st_dev):
            out.append(pid)
    return out


def kill_ns_processes(ns, timeout=5):
    """SIGKILL (after SIGCONT) every process in the namespace; wait for them"""
    pids = ns_pids(ns)
    for sig in (signal.SIGKILL, signal.SIGCONT):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    mbtest.wait_until(lambda: not [p for p in ns_pids(ns) if mbtest.proc_state(p) not in (None, "Z", "X")],
                      timeout)


def _remove_ns(ns):
    kill_ns_processes(ns)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _stale(pid, n, mine):
    return (pid, n) == mine or not _alive(pid)


def sweep_leftovers(mine):
    """remove namespaces and links of harnesses whose process is gone, and
    any of this very name (pid, counter) — a run killed before its teardown"""
    for line in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                               timeout=30).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = NS_RE.match(name)
        if m and _stale(int(m.group(1)), int(m.group(2)), mine):
            _remove_ns(name)
    for line in ip("-o", "link", "show").splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        m = NAME_RE.match(name)
        if m and _stale(int(m.group(1)), int(m.group(2)), mine):
            ip("link", "del", name, check=False)


def _networks_in_use():
    nets = []
    text = ip("-o", "-4", "addr", "show") + ip("-4", "route", "show", "table", "all")
    for tok in re.findall(r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?\b", text):
        try:
            nets.append(ipaddress.ip_network(tok, strict=False))
        except ValueError:
            pass
    return nets


def pick_subnet(pid, n):
    subnets = list(POOL.subnets(new_prefix=24))
    used = _networks_in_use()
    start = (pid * 131 + n * 7) % len(subnets)
    for k in range(len(subnets)):
        cand = subnets[(start + k) % len(subnets)]
        if not any(cand.overlaps(u) for u in used):
            return cand
    raise RuntimeError(f"no free /24 in {POOL}")


class _Lock:
    def __enter__(self):
        for p in LOCK_PATHS:
            try:
                self.f = open(p, "a")
                break
            except OSError:
                continue
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


# ---------------------------------------------------------------- PostgreSQL

_template = None


def template_data():
    """the data directory of a cluster made once per process (initdb, the
    meshbroker database, `meshctl migrate`) and stopped: each harness starts
    a copy of it, which takes a fraction of initdb's seconds"""
    global _template
    if _template is None:
        c = mbtest.PgCluster(prefix="mbpgt-").init()
        try:
            mbtest.migrate(c.url)
            c.stop("fast")
        except BaseException:
            c.destroy()
            raise
        atexit.register(c.destroy)
        _template = c
    return _template.data



class NetnsPg(mbtest.PgCluster):
    """mbtest.PgCluster run inside a namespace: TCP on the namespace's veth
    address (trusted from the harness's /24 only) and the usual Unix socket
    in a private directory, which the test itself uses"""

    def __init__(self, ns, addr, subnet):
        super().__init__(prefix="mbpgn-")
        self.ns, self.addr, self.subnet = ns, addr, subnet
        self.port = PG_PORT
        self.url = f"postgresql:///meshbroker?host={self.sock}&port={self.port}&user={mbtest.PG_USER}"
        self.tcp_url = f"postgresql://{mbtest.PG_USER}@{addr}:{self.port}/meshbroker"

    def init(self):
        """a copy of this process's migrated template cluster, started"""
        r = subprocess.run(["cp", "-a", template_data(), self.data], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"copying the template cluster failed: {r.stderr}"
        with open(os.path.join(self.data, "pg_hba.conf"), "a") as f:
            f.write(f"host all all {self.subnet} trust\n")
        self.start()
        return self

    def start(self):
        opts = (f"-c listen_addresses='{self.addr}' -k {self.sock} -p {self.port} -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        argv = [os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60",
                "-o", opts, "start"]
        r = subprocess.run(in_ns(self.ns, mbtest.as_pg_user(argv)), capture_output=True, text=True,
                           timeout=90)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start in {self.ns} failed ({r.returncode}):\n{r.stdout}\n"
                               f"{r.stderr}\nlog:\n{mbtest.tail(self.log)}")
        self.running = True


# ---------------------------------------------------------------- broker hosts


class HostBroker(mbtest.Broker):
    """mbtest.Broker (meshbroker-accept) started inside a host's namespace,
    listening on its veth address (BROKER_BIND)"""

    def __init__(self, ns, addr, database_url, env):
        super().__init__("accept", database_url, env, port=BROKER_PORT)
        self.ns, self.addr = ns, addr
        self.env["BROKER_BIND"] = addr
        self.killed = False

    @property
    def http_url(self):
        return f"http://{self.addr}:{self.port}"

    @property
    def ws_url(self):
        return f"ws://{self.addr}:{self.port}"

    def _start(self, timeout):
        accept = mbtest.require_bin("meshbroker-accept")
        mbtest.require_bin("meshbroker-worker")
        try:
            self.log_start = os.path.getsize(self.log)
        except OSError:
            self.log_start = 0
        before = set(self.workers())
        env = dict(os.environ)
        env.update(self.env)
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(in_ns(self.ns, [accept]), env=env, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf, cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker in {self.ns} exited with {self.proc.returncode} at start:\n"
                                   f"{mbtest.tail(self.log)}")
            try:
                probe = socket.create_connection((self.addr, self.port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"broker in {self.ns} not accepting on {self.addr}:{self.port} "
                                       f"after {timeout}s:\n{mbtest.tail(self.log)}")
                time.sleep(0.05)
        # a whole request, so that the probe's worker has come and gone
        probe.settimeout(5)
        probe.sendall(b"GET /__probe HTTP/1.1\r\nHost: probe\r\n\r\n")
        try:
            while probe.recv(65536):
                pass
        except OSError:
            pass
        probe.close()
        if not self.wait_no_workers(5, exclude=before):
            raise RuntimeError(f"the start-up probe's worker did not exit: {self.workers()}\n"
                               f"{mbtest.tail(self.log)}")
        return self

    def stop(self):
        if self.killed:
            return True
        return super().stop()


class HostRelay:
    """meshbroker-relay of one host, in its namespace"""

    def __init__(self, host):
        self.host = host
        self.log = os.path.join(host.broker.workdir, "relay.stderr")
        self.proc = None

    def start(self, wait=True):
        h = self.host
        env = dict(os.environ)
        env.update(h.broker.env)
        env["RELAY_DATABASE_URL"] = h.harness.pg.tcp_url
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(in_ns(h.ns, [mbtest.require_bin("meshbroker-relay")]), env=env,
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         start_new_session=True)
        if wait:
            sock = os.path.join(h.broker.runtime_dir, "relay.sock")
            ok = mbtest.wait_until(lambda: h.harness.lease_live(h.host_id) and os.path.exists(sock), 15)
            assert ok, f"relay {h.host_id} did not register:\n{mbtest.tail(self.log)}"
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.running():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def problems(self):
        text = (mbtest._read(self.log) or b"").decode("utf-8", "replace")
        return [f"relay: sanitizer: {ln.strip()[:300]}" for ln in text.splitlines()
                if mbtest.SANITIZER_LINE.search(ln)]

    def errors(self):
        text = (mbtest._read(self.log) or b"").decode("utf-8", "replace")
        return [ln for ln in text.splitlines() if '"level":"error"' in ln]


class HostBouncer:
    """PgBouncer of one host, in its namespace, run as the cluster's user"""

    PORT = 6432

    def __init__(self, host, pg):
        self.host = host
        self.root = tempfile.mkdtemp(prefix="mbbn-", dir="/tmp")
        os.chmod(self.root, 0o755)
        self.dir = os.path.join(self.root, "b")
        os.mkdir(self.dir, 0o700)
        if os.geteuid() == 0:
            subprocess.run(["chown", mbtest.PG_USER, self.dir], check=True)
        self.log = os.path.join(self.dir, "pgbouncer.log")
        self.url = f"postgresql:///meshbroker?host={self.dir}&port={self.PORT}&user={mbtest.PG_USER}"
        ini = os.path.join(self.dir, "pgbouncer.ini")
        users = os.path.join(self.dir, "users.txt")
        with open(users, "w") as f:
            f.write(f'"{mbtest.PG_USER}" ""\n')
        with open(ini, "w") as f:
            f.write(f"""[databases]
meshbroker = host={pg.addr} port={pg.port} dbname=meshbroker user={mbtest.PG_USER}
[pgbouncer]
listen_addr =
listen_port = {self.PORT}
unix_socket_dir = {self.dir}
unix_socket_mode = 0700
auth_type = trust
auth_file = {users}
pool_mode = transaction
default_pool_size = 20
max_db_connections = 20
max_client_conn = 1280
server_login_retry = 0.25
log_connections = 0
log_disconnections = 0
logfile = {self.log}
pidfile = {os.path.join(self.dir, "pgbouncer.pid")}
""")
        if os.geteuid() == 0:
            subprocess.run(["chown", mbtest.PG_USER, ini, users], check=True)
        self.ini = ini

    def start(self):
        binp = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        assert os.access(binp, os.X_OK), "pgbouncer is not installed (scripts/deps.sh installs it)"
        r = subprocess.run(in_ns(self.host.ns, mbtest.as_pg_user([binp, "-d", "-q", self.ini])),
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"pgbouncer in {self.host.ns}: {r.stderr}\n{mbtest.tail(self.log)}"
        sock = os.path.join(self.dir, f".s.PGSQL.{self.PORT}")
        assert mbtest.wait_until(lambda: os.path.exists(sock), 10), \
            f"pgbouncer in {self.host.ns} opened no socket:\n{mbtest.tail(self.log)}"
        return self


class Host:
    def __init__(self, harness, i, ns, veth, addr):
        self.harness, self.i = harness, i
        self.host_id = f"h{i + 1}"
        self.ns, self.veth, self.addr = ns, veth, addr
        self.broker = None
        self.relay = None
        self.bouncer = None
        self.faults = []  # what the test did to this host

    def __repr__(self):
        return f"<Host {self.host_id} {self.addr} {self.ns}>"


# ---------------------------------------------------------------- the harness


class Harness:
    def __init__(self, nhosts=3, broker_env=None, bouncer=True):
        self.bouncer = bouncer
        self.pid = os.getpid()
        self.n = next(_counter)
        self.tag = f"{self.pid}x{self.n}"
        self.nhosts = nhosts
        self.broker_env = dict(broker_env or {})
        self.bridge = f"mb{self.tag}br"
        self.subnet = None
        self.namespaces = []
        self.links = []
        self.pg = None
        self.pg_ns = None
        self.hosts = []
        self.workdirs = []
        self._db = None
        self._db_lock = threading.Lock()
        self._old_sigterm = None
        self.torn_down = False
        assert len(self.bridge) <= 15, self.bridge

    # -- set-up

    def _addr(self, k):
        return str(self.subnet.network_address + k)

    def _ns(self, role, k):
        """a namespace with loopback up, IPv6 off, and one veth on the bridge at .k"""
        ns = f"mbnet-{self.tag}-{role}"
        veth = f"mb{self.tag}{role}"  # role: pg, h1, h2, h3 (letters end the counter)
        assert len(veth) <= 15, veth
        ip("netns", "add", ns)
        self.namespaces.append(ns)
        subprocess.run(in_ns(ns, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                                  "net.ipv6.conf.default.disable_ipv6=1"]), capture_output=True, timeout=30)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.links.append(veth)
        ip("link", "set", veth, "master", self.bridge)
        ip("link", "set", veth, "up")
        ip("link", "set", "lo", "up", ns=ns)
        addr = self._addr(k)
        ip("addr", "add", f"{addr}/{self.subnet.prefixlen}", "dev", "eth0", ns=ns)
        ip("link", "set", "eth0", "up", ns=ns)
        return ns, veth, addr

    def up(self):
        self._old_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        with _Lock():
            sweep_leftovers((self.pid, self.n))
            self.subnet = pick_subnet(self.pid, self.n)
            ip("link", "add", self.bridge, "type", "bridge")
            self.links.append(self.bridge)
            try:
                with open(f"/proc/sys/net/ipv6/conf/{self.bridge}/disable_ipv6", "w") as f:
                    f.write("1")
            except OSError:
                pass
            ip("addr", "add", f"{self._addr(1)}/{self.subnet.prefixlen}", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
        self.pg_ns, _, pg_addr = self._ns("pg", 10)
        self.pg = NetnsPg(self.pg_ns, pg_addr, str(self.subnet))
        self.pg.init()
        for i in range(self.nhosts):
            ns, veth, addr = self._ns(f"h{i + 1}", 11 + i)
            self.hosts.append(Host(self, i, ns, veth, addr))
        for h in self.hosts:
            env = {"HOST_ID": h.host_id, "SEND_RATE_LIMIT_PER_MIN": 6000, "SEND_RATE_BURST": 200}
            env.update(self.broker_env)
            if self.bouncer:
                h.bouncer = HostBouncer(h, self.pg)
                self.workdirs.append(h.bouncer.root)
            h.broker = HostBroker(h.ns, h.addr, h.bouncer.url if h.bouncer else self.pg.tcp_url, env)
            self.workdirs.append(h.broker.workdir)
            h.relay = HostRelay(h)
        self._each_host(self._start_host)
        return self

    def _each_host(self, fn):
        """fn(host) for every host at once (threads: each mostly waits); the
        first exception is raised once all ended"""
        with concurrent.futures.ThreadPoolExecutor(len(self.hosts) or 1) as ex:
            futures = [ex.submit(fn, h) for h in self.hosts]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]
        return [f.result() for f in futures]

    @staticmethod
    def _start_host(h):
        if h.bouncer:
            h.bouncer.start()
        h.broker.start()
        h.relay.start()

    def _on_sigterm(self, sig, frame):
        raise KeyboardInterrupt("SIGTERM: tearing the network-namespace harness down")

    # -- the test's view

    def db(self):
        """an autocommit connection to the harness's database (Unix socket),
        opened again after a restart"""
        if self._db is None or self._db.closed:
            self._db = self.pg.connect()
        else:
            try:
                with self._db.cursor() as c:
                    c.execute("SELECT 1")
            except psycopg2.Error:
                self._db.close()
                self._db = self.pg.connect()
        return self._db

    def lease_live(self, host_id):
        with self._db_lock:  # the hosts start in threads of their own
            try:
                with self.db().cursor() as c:
                    c.execute("SELECT 1 FROM mesh.broker_host WHERE host_id = %s AND lease_until > now()",
                              (host_id,))
                    return c.fetchone() is not None
            except psycopg2.Error:
                return False

    # -- faults

    def sigkill_host(self, i):
        """the host dies at once: relay, acceptor and workers SIGKILLed"""
        h = self.hosts[i]
        h.faults.append("sigkill")
        b = h.broker
        workers = b.workers()
        for pid in workers:
            b.sent_signals.setdefault(pid, set()).add(int(signal.SIGKILL))
        h.relay.kill()
        try:
            os.killpg(b.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in workers + ns_pids(h.ns):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        b.proc.wait(timeout=10)
        b.killed = True
        mbtest.wait_until(lambda: not b.workers(), 5)

    def _signal_ns(self, i, sig):
        for pid in ns_pids(self.hosts[i].ns):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def sigstop_host(self, i):
        self.hosts[i].faults.append("sigstop")
        self._signal_ns(i, signal.SIGSTOP)

    def sigcont_host(self, i):
        self._signal_ns(i, signal.SIGCONT)

    def cut_link(self, i):
        """the host's bridge port down: it reaches neither PostgreSQL nor its clients"""
        self.hosts[i].faults.append("cut")
        ip("link", "set", self.hosts[i].veth, "down")

    def restore_link(self, i):
        ip("link", "set", self.hosts[i].veth, "up")

    def kill_relay(self, i):
        self.hosts[i].faults.append("relay")
        self.hosts[i].relay.kill()

    def start_relay(self, i, wait=True):
        self.hosts[i].relay.start(wait=wait)

    def restart_pg(self):
        """fast shutdown and start again (same address, port and data)"""
        for h in self.hosts:
            h.faults.append("pg")
        if self._db is not None:
            self._db.close()
            self._db = None
        self.pg.stop("fast")
        self.pg.start()

    # -- tear-down

    def down(self):
        """stop and remove everything; a list of problems found in the logs
        (sanitizer reports, crashes; database errors only on hosts without
        faults)"""
        if self.torn_down:
            return []
        self.torn_down = True
        problems = []
        steps = []
        for h in self.hosts:  # a paused or cut host first comes back, so that it can stop
            steps.append(lambda h=h: self.sigcont_host(h.i))
            steps.append(lambda h=h: self.restore_link(h.i))
        for h in self.hosts:
            if h.relay:
                steps.append(lambda h=h: h.relay.kill(signal.SIGTERM))
        steps.append(lambda: [problems.extend(p) for p in self._each_host(
            lambda h: self._host_problems(h) if h.broker and h.broker.proc else [])])
        if self._db is not None:
            steps.append(lambda: self._db.close())
        if self.pg:
            steps.append(lambda: self.pg.destroy())
        for ns in self.namespaces:
            steps.append(lambda ns=ns: _remove_ns(ns))
        for link in reversed(self.links):
            steps.append(lambda link=link: ip("link", "del", link, check=False))
        for step in steps:
            try:
                step()
            except Exception as e:  # every step runs, whatever an earlier one did
                problems.append(f"tear-down: {e!r}")
        leftover = [ns for ns in self.namespaces if os.path.exists(f"/run/netns/{ns}")]
        if leftover:
            problems.append(f"namespaces left behind: {leftover}")
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
        return problems

    def _host_problems(self, h):
        b = h.broker
        b.leaked = []
        clean = b.stop()
        out = []
        faulted = bool(h.faults)
        for p in b.problems():
            # on a host the test did something to: error lines (the database
            # away, a fence) and a worker still in its leave's bounded wait
            # for the database when the listener's drain ran out (see
            # worker/reap.c reap_leave) are what the fault costs, printed only
            if faulted and (p.startswith("error logged") or p.startswith("workers ignored the listener's SIGTERM")):
                print(f"{h.host_id} (after {', '.join(h.faults)}): {p}")
                continue
            out.append(f"{h.host_id}: {p}")
        if b.leaked:
            out.append(f"{h.host_id}: workers outlived the test: {b.leaked}")
        elif not clean and not faulted:
            out.append(f"{h.host_id}: the listener did not stop within 15 s of SIGTERM")
        out += [f"{h.host_id}: {p}" for p in h.relay.problems()] if h.relay else []
        if h.relay and not faulted:
            out += [f"{h.host_id}: relay error: {ln[:300]}" for ln in h.relay.errors()]
        return out

    def logs(self, n=30):
        out = []
        for h in self.hosts:
            if h.broker:
                out.append(f"--- {h.host_id} broker ({h.broker.log}):\n{mbtest.tail(h.broker.log, n)}")
            if h.relay:
                out.append(f"--- {h.host_id} relay ({h.relay.log}):\n{mbtest.tail(h.relay.log, n)}")
            if h.bouncer:
                out.append(f"--- {h.host_id} pgbouncer ({h.bouncer.log}):\n{mbtest.tail(h.bouncer.log, 10)}")
        if self.pg:
            out.append(f"--- postgres ({self.pg.log}):\n{mbtest.tail(self.pg.log, n)}")
        return "\n".join(out)

    def remove_workdirs(self):
        for d in self.workdirs:
            shutil.rmtree(d, ignore_errors=True)


def summary(d):
    """one line of figures for the test's output"""
    return "netns figures: " + json.dumps(d, sort_keys=True)
