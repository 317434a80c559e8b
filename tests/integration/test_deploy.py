"""Deployment on a hardened host (issue 12): what `make install` puts down,
`systemd-analyze verify` and `systemd-analyze security --offline=yes` on the
installed units (acceptance 1), the man pages (acceptance 5), --version and
--help on every binary (5), `make run` with its port taken (4) and /health on
an unmigrated database (4).  No PID 1 is needed: everything is checked offline
against a DESTDIR install.  The Debian package is `make package-test`."""

import glob
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading

import pytest

import mbtest

SERVICES = ["meshbroker@.service", "meshbroker-accept.service", "meshbroker-migrate.service",
            "meshbroker-relay.service"]
UNITS = SERVICES + ["meshbroker.socket", "meshbroker.slice"]
MAN_PAGES = ["man1/meshctl.1", "man8/meshbroker-worker.8", "man8/meshbroker-accept.8",
             "man8/meshbroker-relay.8", "man5/meshbroker.conf.5"]
BINARIES = ["meshbroker-worker", "meshbroker-accept", "meshbroker-relay", "meshctl"]
MAX_EXPOSURE = 1.0


def need(tool):
    if not shutil.which(tool):
        pytest.fail(f"{tool} is missing (scripts/deps.sh test installs it)")


@pytest.fixture(scope="module")
def installed():
    """`make install DESTDIR=<tmp> PREFIX=/usr`, as an operator or debian/rules runs it"""
    dest = tempfile.mkdtemp(prefix="mbinst-", dir="/tmp")
    r = subprocess.run(["make", "--no-print-directory", "-C", mbtest.REPO, "install",
                        f"DESTDIR={dest}", "PREFIX=/usr"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"make install failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    yield dest
    shutil.rmtree(dest, ignore_errors=True)


@pytest.fixture(scope="module")
def unit_root(installed):
    """the DESTDIR install plus the host's own units (sysinit.target and the
    rest of the boot graph), so that `systemd-analyze verify --root` can build
    the start transaction of each of ours"""
    need("systemd-analyze")
    unitdir = os.path.join(installed, "usr/lib/systemd/system")
    for name in os.listdir("/usr/lib/systemd/system"):
        dst = os.path.join(unitdir, name)
        if not os.path.lexists(dst):
            src = os.path.join("/usr/lib/systemd/system", name)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            elif os.path.isdir(src):
                shutil.copytree(src, dst, symlinks=True)
            else:
                shutil.copy2(src, dst)
    return installed


def is_stripped(path):
    r = subprocess.run(["readelf", "-S", "-W", path], capture_output=True, text=True, check=True)
    return ".symtab" not in r.stdout and ".debug_info" not in r.stdout


def test_make_install_puts_down_stripped_binaries_units_sysusers_tmpfiles_env_and_man_pages(installed):
    for b in BINARIES:
        p = os.path.join(installed, "usr/bin", b)
        assert os.access(p, os.X_OK), f"{b} not installed"
        assert is_stripped(p), f"{b} is installed with its symbols"
    for u in UNITS:
        p = os.path.join(installed, "usr/lib/systemd/system", u)
        assert os.path.isfile(p), f"{u} not installed"
        text = open(p).read()
        assert "/usr/local" not in text, f"{u} still names /usr/local after PREFIX=/usr"
    sysusers = open(os.path.join(installed, "usr/lib/sysusers.d/meshbroker.conf")).read()
    assert re.search(r"^u\s+meshbroker\s", sysusers, re.M), sysusers
    tmpfiles = open(os.path.join(installed, "usr/lib/tmpfiles.d/meshbroker.conf")).read()
    assert re.search(r"^d\s+/run/meshbroker\s+0750\s+meshbroker\s+meshbroker", tmpfiles, re.M), tmpfiles
    env = os.path.join(installed, "etc/meshbroker/env")
    assert stat.S_IMODE(os.stat(env).st_mode) == 0o600, oct(os.stat(env).st_mode)
    assert re.search(r"^DATABASE_URL=", open(env).read(), re.M)
    for m in MAN_PAGES:
        assert os.path.isfile(os.path.join(installed, "usr/share/man", m)), f"{m} not installed"


def test_make_install_keeps_an_existing_env_file(installed):
    env = os.path.join(installed, "etc/meshbroker/env")
    with open(env, "a") as f:
        f.write("# operator's change\n")
    r = subprocess.run(["make", "--no-print-directory", "-C", mbtest.REPO, "install",
                        f"DESTDIR={installed}", "PREFIX=/usr"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert open(env).read().endswith("# operator's change\n"), "make install overwrote /etc/meshbroker/env"


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_passes_on_installed_unit(unit_root, unit):
    unitdir = os.path.join(unit_root, "usr/lib/systemd/system")
    argv = ["systemd-analyze", "verify", f"--root={unit_root}", "--man=no", unit]
    r = subprocess.run(argv, cwd=unitdir, capture_output=True, text=True, timeout=120)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0, f"systemd-analyze verify {unit} failed:\n{out}"
    # unknown keys and bad values are only warnings: none may be about our files
    ours = [ln for ln in out.splitlines() if "meshbroker" in ln]
    assert not ours, f"systemd-analyze verify {unit} warns:\n{out}"
    # an ordering cycle (a socket Before=sockets.target but After= a service
    # that comes after basic.target) is broken silently: only debug says so
    r = subprocess.run(argv, cwd=unitdir, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, SYSTEMD_LOG_LEVEL="debug"))
    cycles = [ln for ln in (r.stdout + r.stderr).splitlines() if "ordering cycle" in ln]
    assert not cycles, f"starting {unit} meets an ordering cycle:\n" + "\n".join(cycles)


@pytest.mark.parametrize("unit", ["meshbroker.socket", "meshbroker-accept.service"])
def test_boot_transaction_with_the_unit_enabled_has_no_ordering_cycle(unit_root, unit):
    """enabled as the package does (systemctl --root enable), the unit joins
    the boot transaction of multi-user.target without an ordering cycle (at
    boot systemd would break one by dropping a job, e.g. sockets.target)"""
    unitdir = os.path.join(unit_root, "usr/lib/systemd/system")
    r = subprocess.run(["systemctl", f"--root={unit_root}", "enable", unit], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    try:
        r = subprocess.run(["systemd-analyze", "verify", f"--root={unit_root}", "--man=no", "multi-user.target"],
                           cwd=unitdir, capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, SYSTEMD_LOG_LEVEL="debug"))
        out = r.stdout + r.stderr
        assert f"{unit}/start" in out, f"{unit} is not part of multi-user.target's transaction once enabled"
        cycles = [ln for ln in out.splitlines() if "ordering cycle" in ln]
        assert not cycles, f"booting with {unit} enabled meets an ordering cycle:\n" + "\n".join(cycles)
    finally:
        subprocess.run(["systemctl", f"--root={unit_root}", "disable", unit], capture_output=True, timeout=60)


def exposure(root, unit):
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--root={root}",
                        "--no-pager", unit], capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out)
    assert m, f"no overall exposure in the output (exit {r.returncode}):\n{out}"
    return float(m.group(1)), out


@pytest.mark.parametrize("unit", SERVICES)
def test_systemd_analyze_security_rates_service_at_most_1_0(unit_root, unit):
    score, out = exposure(unit_root, unit)
    assert score <= MAX_EXPOSURE, f"{unit}: exposure {score} > {MAX_EXPOSURE}:\n" + \
        "\n".join(ln for ln in out.splitlines() if ln.startswith("✗"))


def test_socket_accepts_per_connection_up_to_the_presence_slots(installed):
    text = open(os.path.join(installed, "usr/lib/systemd/system/meshbroker.socket")).read()
    val = lambda k: re.search(rf"^{k}=(\S+)", text, re.M).group(1)  # noqa: E731
    assert val("Accept") == "yes"
    slots = re.search(r'"PRESENCE_SLOTS", (\d+)', open(os.path.join(mbtest.REPO, "common/config.c")).read())
    assert slots, "PRESENCE_SLOTS default not found in common/config.c"
    assert val("MaxConnections") == slots.group(1)
    assert int(val("MaxConnectionsPerSource")) > 0
    assert int(val("TriggerLimitBurst")) >= int(slots.group(1)), "a reconnect storm would fail the socket"
    assert "meshbroker-migrate.service" in val("Requires")
    assert "meshbroker-migrate.service" in val("After")
    assert re.search(r"^ListenStream=", text, re.M)


def test_every_service_runs_as_the_sysusers_user_in_the_slice_and_takes_secrets_from_the_env_file(installed):
    unitdir = os.path.join(installed, "usr/lib/systemd/system")
    for u in SERVICES:
        text = open(os.path.join(unitdir, u)).read()
        assert re.search(r"^User=meshbroker$", text, re.M), u
        assert re.search(r"^Slice=meshbroker.slice$", text, re.M), u
        assert re.search(r"^EnvironmentFile=-/etc/meshbroker/env$", text, re.M), u
        exec_start = re.search(r"^ExecStart=(.*)$", text, re.M).group(1)
        assert "DATABASE_URL" not in exec_start and "postgres" not in exec_start, u
    worker = open(os.path.join(unitdir, "meshbroker@.service")).read()
    for k in ("MemoryMax", "TasksMax", "CPUQuota"):
        assert re.search(rf"^{k}=\S+", worker, re.M), f"meshbroker@.service has no per-connection {k}"
    accept = open(os.path.join(unitdir, "meshbroker-accept.service")).read()
    assert re.search(r"^\[Install\]\s*\nWantedBy=multi-user.target", accept, re.M)
    migrate = open(os.path.join(unitdir, "meshbroker-migrate.service")).read()
    assert re.search(r"^Type=oneshot$", migrate, re.M)
    assert re.search(r"^ExecStart=/usr/bin/meshctl migrate$", migrate, re.M)


@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_renders_page_without_warnings(page):
    need("man")
    path = os.path.join(mbtest.REPO, "man", os.path.basename(page))
    r = subprocess.run(["man", "--warnings", "-l", path], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
    assert r.returncode == 0, r.stderr
    assert not r.stderr.strip(), f"man warns on {page}:\n{r.stderr}"
    name = os.path.basename(page).rsplit(".", 1)[0]
    assert "NAME" in r.stdout and name.split(".")[0] in r.stdout
    assert len(r.stdout.splitlines()) > 20, r.stdout


def test_acceptor_answers_version_and_help():
    accept = mbtest.require_bin("meshbroker-accept")
    r = subprocess.run([accept, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and re.match(r"meshbroker-accept \d+\.\d+\.\d+", r.stdout), r
    r = subprocess.run([accept, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("usage: meshbroker-accept"), r


# every binary answers --version and --help
@pytest.mark.parametrize("name", ["meshbroker-worker", "meshbroker-relay", "meshctl"])
def test_binary_answers_version_and_help(name):
    b = mbtest.require_bin(name)
    r = subprocess.run([b, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and re.match(rf"{name} \d+\.\d+\.\d+", r.stdout), r
    r = subprocess.run([b, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith(f"usage: {name}"), r


@pytest.fixture
def unmigrated_url(pg, db):
    """a database in the session cluster that was never migrated"""
    name = "unmigrated_" + mbtest.new_id(8).lower()
    with db.cursor() as c:
        c.execute(f"CREATE DATABASE {name} OWNER {mbtest.PG_USER}")
    yield pg.url.replace("/meshbroker?", f"/{name}?", 1)
    with db.cursor() as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_health_answers_503_unmigrated_on_a_database_without_the_schema(broker, unmigrated_url):
    b = broker(database_url=unmigrated_url)
    st, _, body = b.get("/health")
    assert st == 503, (st, body)
    assert b'"db":"unmigrated"' in body, body


def test_health_answers_200_up_on_the_migrated_database(broker):
    b = broker()
    st, _, body = b.get("/health")
    assert st == 200 and b'"db":"up"' in body, (st, body)


def test_hello_on_an_unmigrated_database_says_so(broker, mesh, unmigrated_url):
    b = broker(database_url=unmigrated_url)
    m = mesh("A")

    async def go():
        p = mbtest.Peer(b, m.members[0])
        await p.connect()
        reply = await p.hello()
        assert reply.get("type") == "error", reply
        assert "migrat" in json.dumps(reply), reply

    mbtest.run(go(), 30)


class _Squatter:
    """another program on the port: answers every request with 200, as the
    health check of the old run.sh was happy to accept"""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            try:
                c.settimeout(1)
                c.recv(4096)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\nConnection: close\r\n\r\n"
                          b'{"db":"up"}    ')
            except OSError:
                pass
            c.close()

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def test_make_run_with_the_port_taken_exits_nonzero_with_one_line_naming_the_port(pg):
    port = mbtest.free_port()
    squatter = _Squatter(port)
    var = tempfile.mkdtemp(prefix="mbrun-", dir="/tmp")
    env = dict(os.environ, BROKER_PORT=str(port), DATABASE_URL=pg.url, MESHBROKER_VAR_DIR=var,
               MESHBROKER_BIN=mbtest.BIN)
    try:
        r = subprocess.run(["bash", os.path.join(mbtest.REPO, "scripts/run.sh")], cwd=mbtest.REPO, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    finally:
        squatter.close()
        shutil.rmtree(var, ignore_errors=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"make run succeeded with port {port} taken:\n{out}"
    assert "is up" not in out, out
    last = r.stderr.strip().splitlines()[-1]
    assert str(port) in last and "in use" in last, f"last line does not name the port:\n{out}"
    left = [p for p in mbtest.all_pids() if "meshbroker-accept" in os.path.basename(mbtest.proc_exe(p))
            and f"BROKER_PORT={port}".encode() + b"\0" in (mbtest._read(f"/proc/{p}/environ") or b"")]
    assert not left, f"acceptor left running: {left}"


def test_make_run_names_the_port_when_the_acceptor_fails_to_start(pg):
    port = mbtest.free_port()
    var = tempfile.mkdtemp(prefix="mbrun-", dir="/tmp")
    # a worker that does not exist: the acceptor refuses to start
    env = dict(os.environ, BROKER_PORT=str(port), DATABASE_URL=pg.url, MESHBROKER_VAR_DIR=var,
               MESHBROKER_BIN=mbtest.BIN, MESHBROKER_WORKER=os.path.join(var, "no-such-worker"))
    try:
        r = subprocess.run(["bash", os.path.join(mbtest.REPO, "scripts/run.sh")], cwd=mbtest.REPO, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(var, ignore_errors=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "is up" not in out, out
    last = r.stderr.strip().splitlines()[-1]
    assert str(port) in last and "acceptor" in last, f"last line does not name the port:\n{out}"


def test_health_reports_the_schema_version_it_runs_on(broker):
    newest = sorted(os.path.basename(f)[:-4] for f in glob.glob(os.path.join(mbtest.REPO, "db", "migrations", "*.sql")))[-1]
    b = broker()
    st, _, body = b.get("/health")
    j = json.loads(body)
    assert st == 200 and j["db"] == "up", (st, body)
    assert j["schema"] == newest and j["schemaExpected"] == newest, j


def test_health_on_an_unmigrated_database_reports_no_schema(broker, unmigrated_url):
    b = broker(database_url=unmigrated_url)
    st, _, body = b.get("/health")
    j = json.loads(body)
    assert st == 503 and j["db"] == "unmigrated" and j["status"] == "degraded", (st, body)
    assert j["schema"] is None and j["schemaExpected"], j
