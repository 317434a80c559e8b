"""Fixtures of meshbroker's integration tests: one PostgreSQL cluster for the
session (migrated with `meshctl migrate`), private clusters for the tests
that stop PostgreSQL, broker processes under both start modes, and fresh
meshes.  See mbtest.py for the helpers themselves."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import mbtest  # noqa: E402


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


# A hang guard per test phase (issue 25): a setup, call or teardown that runs
# longer than IT_TEST_TIMEOUT seconds (default 600; the slowest test takes
# ~50 s on a quiet machine) fails with a traceback of where it was, and the
# run goes on to the next test.  tests/run.sh's IT_TIMEOUT is then only the
# last resort for a run that hangs outside a test (it kills pytest, and with
# it every result), so it can be as large as CI's budget allows.
PHASE_TIMEOUT = int(os.environ.get("IT_TEST_TIMEOUT", "600"))


class PhaseTimeout(Exception):
    pass


@contextlib.contextmanager
def _guarded(item, when):
    def expired(signum, frame):
        raise PhaseTimeout(f"{item.nodeid}: {when} ran longer than {PHASE_TIMEOUT} s (IT_TEST_TIMEOUT): "
                           "a hang, or a machine far too loaded")
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(PHASE_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _guarded(item, "setup"):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _guarded(item, "call"):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    with _guarded(item, "teardown"):
        yield


def pytest_collection_modifyitems(config, items):
    """Against the ASan+UBSan build (tests/run.sh sets MESHBROKER_SANITIZED=1)
    a test marked unsanitized is reported as skipped, with its reason, rather
    than left out of the count (issue 21: not run is a skip, never a pass)."""
    if os.environ.get("MESHBROKER_SANITIZED") != "1":
        return
    skip = pytest.mark.skip(reason="marked unsanitized: not run against the ASan+UBSan build "
                                   "(too many workers or a memory bound; the reason is beside the mark)")
    for item in items:
        if item.get_closest_marker("unsanitized"):
            item.add_marker(skip)


def _failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


def _apply_schema(url):
    if os.access(mbtest.binpath("meshctl"), os.X_OK):
        mbtest.migrate(url)
        return
    # meshctl not built yet: apply the SQL files directly so the HTTP and
    # WebSocket tests can run; test_meshctl.py still fails on the missing tool
    warnings.warn("meshctl missing: schema applied from db/migrations/*.sql directly")
    import glob
    import psycopg2
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as c:
        for f in sorted(glob.glob(os.path.join(mbtest.REPO, "db", "migrations", "*.sql"))):
            c.execute(open(f).read())
    conn.close()


@pytest.fixture(scope="session")
def pg():
    """the session's PostgreSQL (never stopped by a test)"""
    cluster = mbtest.PgCluster().init()
    try:
        _apply_schema(cluster.url)
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def db(pg):
    """an autocommit psycopg2 connection to the session database"""
    conn = pg.connect()
    yield conn
    conn.close()


@pytest.fixture
def own_pg():
    """a private PostgreSQL cluster that the test may stop and start"""
    cluster = mbtest.PgCluster(prefix="mbpgo-").init()
    try:
        _apply_schema(cluster.url)
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def broker(pg, request):
    """broker(mode="accept"|"socket-activate", database_url=None, **env) ->
    a started mbtest.Broker; every broker and its workers are stopped at
    teardown, and the stderr tail is printed when the test failed."""
    started = []

    def start(mode="accept", database_url=None, **env):
        b = mbtest.Broker(mode, database_url or pg.url, env)
        started.append(b)
        return b.start()

    yield start
    # every broker is stopped and read before any verdict: a crashed or
    # leaked worker, a sanitizer report or an unexpected error line fails the
    # test even when its client never noticed
    found = []
    for b in started:
        problems = b.check()
        found += [f"broker ({b.mode}, port {b.port}): {p}" for p in problems]
        if problems or _failed(request):
            print(f"\n--- broker ({b.mode}, port {b.port}) stderr tail: {b.log}")
            print(mbtest.tail(b.log, 40))
        else:
            shutil.rmtree(b.workdir, ignore_errors=True)
    if found:
        pytest.fail("\n".join(found[:20]), pytrace=False)


@pytest.fixture
def mesh(db):
    """mesh(*names) -> a fresh mbtest.Mesh with one member per name"""

    def make(*names):
        m = mbtest.Mesh(db)
        for n in names:
            m.add(n)
        return m

    return make


@pytest.fixture
def bouncer_factory(pg):
    """bouncer_factory(**env) -> the DATABASE_URL of a PgBouncer in front of
    the session's PostgreSQL, started by scripts/pg.sh exactly as `make run`
    starts its embedded one (transaction pooling, private socket directory,
    the cluster's user; env: MAX_CONNECTIONS, BOUNCER_POOL_SIZE, ...).
    Stopped at teardown."""
    script = os.path.join(mbtest.REPO, "scripts", "pg.sh")
    started = []

    def start(**env):
        if not shutil.which("pgbouncer") and not os.access("/usr/sbin/pgbouncer", os.X_OK):
            pytest.fail("pgbouncer is not installed (scripts/deps.sh installs it)")
        root = tempfile.mkdtemp(prefix="mbbouncer-", dir="/tmp")
        os.chmod(root, 0o755)  # the cluster's user makes its private directory inside
        started.append(root)
        e = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
        e.update({k: str(v) for k, v in env.items()})
        e["PG_SOCKET_DIR"] = pg.sock
        r = subprocess.run(["bash", script, "bouncer", root, str(pg.port), str(mbtest.free_port())],
                           env=e, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"pg.sh bouncer failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return r.stdout.strip().splitlines()[-1]

    yield start
    for root in started:
        subprocess.run(["bash", script, "stop", root], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def bouncer(bouncer_factory):
    """the DATABASE_URL of a PgBouncer as `make run` starts it (see bouncer_factory)"""
    return bouncer_factory()
