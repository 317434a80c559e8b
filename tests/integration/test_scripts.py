"""The project's own scripts: `make run` (issue 2, acceptance 7: scripts/run.sh
with its embedded PostgreSQL) and scripts/smoke-test.sh (issue 3, acceptance 7)."""

import json
import os
import signal
import subprocess
import tempfile

import mbtest


def postgres_pids_under(path):
    """postgres processes whose data directory (their cwd) is under path,
    following the symlinks path holds (a cluster kept elsewhere)"""
    roots = {os.path.realpath(path)}
    for d, dirs, files in os.walk(path):
        for n in dirs + files:
            f = os.path.join(d, n)
            if os.path.islink(f):
                roots.add(os.path.realpath(f))
    out = []
    for pid in mbtest.all_pids():
        if "postgres" not in os.path.basename(mbtest.proc_exe(pid)):
            continue
        try:
            cwd = os.path.realpath(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            continue
        if any(cwd == r or cwd.startswith(r + "/") for r in roots):
            out.append(pid)
    return out


def test_make_run_serves_health_200_and_stops_its_postgres_on_sigterm():
    script = os.path.join(mbtest.REPO, "scripts", "run.sh")
    assert os.path.exists(script), "scripts/run.sh is missing"
    port = mbtest.free_port()
    var = tempfile.mkdtemp(prefix="mbrun-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(BROKER_PORT=str(port), MESHBROKER_VAR_DIR=var, MESHBROKER_BIN=mbtest.BIN)
    out_path = os.path.join(var, "..", os.path.basename(var) + ".out")
    out = open(out_path, "wb")
    p = subprocess.Popen(["bash", script], cwd=mbtest.REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    out.close()
    try:
        def healthy():
            if p.poll() is not None:
                return "exited"
            try:
                st, _, body = mbtest.http_request(port, "GET", "/health", timeout=3)
            except OSError:
                return False
            return st == 200 and json.loads(body)["db"] == "up"

        r = mbtest.wait_until(healthy, 120, interval=0.3)
        assert r is True, f"make run: /health not 200 within 120 s ({r}):\n{mbtest.tail(out_path)}"
        def url_printed():
            printed = open(out_path, errors="replace").read()
            return f"://127.0.0.1:{port}" in printed or f"://localhost:{port}" in printed

        assert mbtest.wait_until(url_printed, 10, interval=0.2), \
            f"make run did not print its URL:\n{mbtest.tail(out_path)}"
        pg_pids = postgres_pids_under(var)
        assert pg_pids, "no embedded PostgreSQL under MESHBROKER_VAR_DIR"
        # the workers go through the embedded PgBouncer (issue 13), which runs as
        # the cluster's user and listens in the cluster's private directory
        bdir = os.path.join(var, "pg", "cluster", "bouncer")
        bpid = int(open(os.path.join(bdir, "pgbouncer.pid")).read())
        assert "pgbouncer" in os.path.basename(mbtest.proc_exe(bpid)), f"pid {bpid} is no pgbouncer"
        acc = [pid for pid in mbtest.all_pids() if mbtest.proc_exe(pid).endswith("meshbroker-accept")
               and mbtest.proc_environ(pid).get("BROKER_PORT") == str(port)]
        assert acc, "no meshbroker-accept of make run found"
        url = mbtest.proc_environ(acc[0]).get("DATABASE_URL", "")
        assert f"host={os.path.realpath(bdir)}" in url or f"host={bdir}" in url, \
            f"the broker's DATABASE_URL does not go through the bouncer: {url}"

        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"run.sh still running 30 s after SIGTERM:\n{mbtest.tail(out_path)}")
        alive = lambda: [x for x in pg_pids if mbtest.proc_state(x) not in (None, "Z", "X")]  # noqa: E731
        gone = mbtest.wait_until(lambda: not alive(), 10)
        assert gone, f"embedded PostgreSQL still running after run.sh exited: {alive()}"
        assert mbtest.wait_until(lambda: mbtest.proc_state(bpid) in (None, "Z", "X"), 10), \
            f"embedded PgBouncer {bpid} still running after run.sh exited"
        left = [pid for pid in mbtest.all_pids()
                if "meshbroker" in os.path.basename(mbtest.proc_exe(pid))
                and f"BROKER_PORT={port}" in "\n".join(f"{k}={v}" for k, v in mbtest.proc_environ(pid).items())]
        assert not left, f"broker processes left after run.sh exited: {left}"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        for pid in postgres_pids_under(var):
            try:
                os.kill(pid, signal.SIGQUIT)
            except ProcessLookupError:
                pass
        for pid in mbtest.all_pids():
            env_ = mbtest.proc_environ(pid)
            if env_.get("BROKER_PORT") == str(port) and "meshbroker" in mbtest.proc_exe(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        mbtest.wait_until(lambda: not postgres_pids_under(var), 10)
        try:  # a bouncer left by a failed run
            left_b = int(open(os.path.join(var, "pg", "cluster", "bouncer", "pgbouncer.pid")).read())
            if "pgbouncer" in os.path.basename(mbtest.proc_exe(left_b)):
                os.kill(left_b, signal.SIGKILL)
        except (OSError, ValueError):
            pass
        # a cluster kept outside the var dir (pg.sh does that when its user
        # cannot reach var) goes too
        for d, dirs, files in os.walk(var):
            for n in dirs + files:
                f = os.path.join(d, n)
                if os.path.islink(f) and os.path.basename(os.path.realpath(f)).startswith("meshbroker-pg-"):
                    subprocess.run(["rm", "-rf", os.path.realpath(f)])
        subprocess.run(["rm", "-rf", var, out_path])


def test_smoke_test_script_passes(pg):
    script = os.path.join(mbtest.REPO, "scripts", "smoke-test.sh")
    assert os.path.exists(script), "scripts/smoke-test.sh is missing"
    env = dict(os.environ, BROKER_PORT=str(mbtest.free_port()), DATABASE_URL=pg.url,
               MESHBROKER_BIN=mbtest.BIN)
    try:
        r = subprocess.run(["bash", script], cwd=mbtest.REPO, env=env, capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"smoke-test.sh still running after 120 s:\n{e.stdout}\n{e.stderr}")
    assert r.returncode == 0, f"smoke-test.sh exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


HANGING_TESTS = '''
import socket
import time


def test_hangs_in_a_read():
    a, b = socket.socketpair()
    a.recv(1)  # nothing ever comes


def test_runs_after_the_hang():
    time.sleep(0.1)
'''


def test_a_hanging_test_fails_on_its_own_and_the_run_goes_on():
    """Issue 25: the per-phase guard of conftest.py (IT_TEST_TIMEOUT) turns a
    hang into that test's failure, naming it, and the next test still runs;
    tests/run.sh's whole-run IT_TIMEOUT (which loses every result) is only the
    last resort."""
    import sys
    itdir = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "conftest.py"), "w") as f:
            f.write("import importlib.util\n"
                    f"spec = importlib.util.spec_from_file_location('mb_conftest', {os.path.join(itdir, 'conftest.py')!r})\n"
                    "m = importlib.util.module_from_spec(spec)\n"
                    "spec.loader.exec_module(m)\n"
                    "pytest_runtest_setup = m.pytest_runtest_setup\n"
                    "pytest_runtest_call = m.pytest_runtest_call\n"
                    "pytest_runtest_teardown = m.pytest_runtest_teardown\n")
        with open(os.path.join(d, "test_hang.py"), "w") as f:
            f.write(HANGING_TESTS)
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", d],
                           env={**os.environ, "IT_TEST_TIMEOUT": "2"}, capture_output=True, text=True,
                           timeout=120, cwd=d)
    assert "1 failed, 1 passed" in r.stdout, r.stdout + r.stderr
    assert "test_hangs_in_a_read: call ran longer than 2 s (IT_TEST_TIMEOUT)" in r.stdout, r.stdout
