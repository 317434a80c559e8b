"""HTTP routes of docs/protocol.md §1 and §7 under both start modes (issue 2,
acceptance 2 and 3): /health, /metrics, CORS, OPTIONS, 404."""

import json
import time

import pytest

import mbtest

MODES = ["accept", "socket-activate"]

CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "POST, GET, OPTIONS, PATCH",  # PATCH: §12.6's topics/:name/read
    "access-control-allow-headers": "Content-Type, Authorization",
}

# name -> Prometheus type (docs/protocol.md §7)
METRICS = {
    "broker_connections_total": "counter",
    "broker_connections_rejected_total": "counter",
    "broker_connections_active": "gauge",
    "broker_messages_routed_total": "counter",
    "broker_messages_rejected_total": "counter",
    "broker_queue_depth": "gauge",
    "broker_ttl_sweeps_total": "counter",
    "broker_hook_requests_total": "counter",
    "broker_hook_requests_rate_limited_total": "counter",
    "broker_db_healthy": "gauge",
}
UNLABELLED = ["broker_connections_total", "broker_connections_active", "broker_queue_depth",
              "broker_ttl_sweeps_total", "broker_hook_requests_total",
              "broker_hook_requests_rate_limited_total", "broker_db_healthy"]


def assert_cors(hdrs):
    for k, v in CORS.items():
        assert hdrs.get(k) == v, f"header {k}: {hdrs.get(k)!r}, want {v!r} (headers {hdrs})"


@pytest.mark.parametrize("mode", MODES)
def test_health_is_200_ok_with_db_up(broker, mode):
    b = broker(mode)
    st, hdrs, body = b.get("/health")
    assert st == 200, body
    assert hdrs.get("content-type", "").startswith("application/json")
    j = json.loads(body)
    assert j["status"] == "ok"
    assert j["db"] == "up"
    assert isinstance(j["version"], str) and j["version"]
    assert j["gitSha"] == "testsha0", "gitSha must come from GIT_SHA"
    assert isinstance(j["uptime"], (int, float)) and not isinstance(j["uptime"], bool)
    assert j["uptime"] >= 0
    assert_cors(hdrs)


def test_health_uptime_counts_from_broker_start_not_worker_start(broker):
    t0 = time.monotonic()
    b = broker("accept")
    time.sleep(2.2)
    st, _, body = b.get("/health")
    since_start = time.monotonic() - t0  # an upper bound of the acceptor's age
    assert st == 200
    up = json.loads(body)["uptime"]
    # a worker is milliseconds old; only the acceptor's start explains >= 2 s
    assert 2 <= up <= since_start + 1, f"uptime {up}: should be seconds since the acceptor started"


@pytest.mark.parametrize("mode", MODES)
def test_metrics_has_all_ten_names_with_help_and_type(broker, mode):
    b = broker(mode)
    st, hdrs, body = b.get("/metrics")
    assert st == 200
    assert hdrs.get("content-type", "").startswith("text/plain; version=0.0.4"), hdrs.get("content-type")
    assert_cors(hdrs)
    m = mbtest.Metrics(body.decode())
    assert not m.bad_lines, f"lines that are not Prometheus text format: {m.bad_lines[:5]}"
    for name, typ in METRICS.items():
        assert name in m.help and m.help[name].strip(), f"no # HELP for {name}"
        assert m.type.get(name) == typ, f"# TYPE {name} is {m.type.get(name)!r}, want {typ}"
    for name in UNLABELLED:
        assert (name, ()) in m.samples, f"unlabelled {name} has no sample line (`{name} 0` at least)"
    assert m.value("broker_db_healthy") == 1, "broker_db_healthy must be 1 while PostgreSQL is up"
    assert m.value("broker_connections_active") == 0


@pytest.mark.parametrize("mode", MODES)
def test_connections_total_rises_by_exactly_the_number_of_websocket_connections(broker, mode):
    """each connection is its own worker process: only shared counters add up"""
    import websockets

    b = broker(mode)
    before = b.metric("broker_connections_total")
    n = 4
    pids = set()

    async def go():
        for _ in range(n):
            ws = await websockets.connect(b.ws_url + "/ws", ping_interval=None, open_timeout=5,
                                          close_timeout=3)
            pids.add(b.worker_for(ws.transport.get_extra_info("sockname")[1]))
            await ws.close()

    mbtest.run(go(), 30)
    assert len(pids) == n, f"expected {n} distinct worker processes, saw {pids}"
    after = b.wait_metric("broker_connections_total", before + n, timeout=20)
    assert after == before + n, f"broker_connections_total {before} -> {after}, want +{n}"
    time.sleep(0.3)
    assert b.metric("broker_connections_total") == before + n, "counter kept rising"


def test_http_requests_do_not_count_as_websocket_connections(broker):
    b = broker()
    before = b.metric("broker_connections_total")
    for _ in range(3):
        assert b.get("/health")[0] == 200
    assert b.metric("broker_connections_total") == before


@pytest.mark.parametrize("mode", MODES)
def test_options_is_204_with_empty_body_and_cors(broker, mode):
    b = broker(mode)
    for path in ("/ws", "/hook/set-status", "/anything"):
        st, hdrs, body = b.request("OPTIONS", path)
        assert st == 204, f"OPTIONS {path}: {st}"
        assert body == b""
        assert_cors(hdrs)


@pytest.mark.parametrize("mode", MODES)
def test_unknown_path_is_404_not_found(broker, mode):
    b = broker(mode)
    for path in ("/nope", "/healthz", "/metrics/x", "/"):
        st, hdrs, body = b.get(path)
        assert st == 404, f"GET {path}: {st}"
        assert body == b"not found", f"GET {path}: body {body!r}"
        assert_cors(hdrs)


def test_health_ignores_the_query_string(broker):
    b = broker()
    st, _, body = b.get("/health?probe=1")
    assert st == 200, body


def test_every_http_worker_exits_after_its_answer(broker):
    b = broker()
    for path in ("/health", "/metrics", "/nope"):
        b.get(path)
    b.request("OPTIONS", "/x")
    assert b.wait_no_workers(3), f"workers left: {b.workers()}, zombies: {b.zombies()}"
