"""What an operator sees (issue 23, "An operator sees latency", acceptance 3):
the latency histograms on /metrics (_bucket/_sum/_count, le 0.5 ms .. 10 s
and +Inf) that count a hello, a send and its push and the database's
statements; meshbroker_build_info; the acceptor's process gauges; the
Grafana dashboard and the Prometheus alert rules shipped in the package,
whose every query names a metric a real broker exports; and log lines with
a journald priority prefix when stderr is the journal."""

import json
import os
import re

import pytest

import mbtest
from mbtest import Peer, run

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DASHBOARD = os.path.join(TOP, "units", "grafana", "meshbroker.json")
ALERTS = os.path.join(TOP, "units", "prometheus", "meshbroker-alerts.yml")

HISTOGRAMS = ["broker_hello_duration_seconds", "broker_send_ack_seconds", "broker_send_push_seconds",
              "broker_db_statement_seconds"]
LE = ["0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
      "10", "+Inf"]
ACCEPTOR = ["meshbroker_acceptor_process_start_time_seconds", "meshbroker_acceptor_process_open_fds",
            "meshbroker_acceptor_process_max_fds", "meshbroker_acceptor_process_resident_memory_bytes",
            "meshbroker_acceptor_process_cpu_seconds_total"]

# PromQL words that are not metric names
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "rate", "irate", "increase", "delta", "idelta", "deriv", "predict_linear", "histogram_quantile",
    "absent", "absent_over_time", "abs", "ceil", "floor", "round", "clamp", "clamp_min", "clamp_max", "time",
    "vector", "scalar", "label_replace", "label_join", "sort", "sort_desc", "changes", "resets",
    "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "count_over_time", "last_over_time",
    "timestamp", "label_values", "inf", "nan",
}


def traffic(b, m):
    """two hellos, a send acked and its push received"""
    am, bm = m.members

    async def go():
        a, bb = Peer(b, am), Peer(b, bm)
        await a.join()
        await bb.join()
        _, ack = await a.send_direct(bm.pubkey, "metrics, please", "now")
        assert ack.get("queued") is True, ack
        push = await bb.push(timeout=10)
        assert push["messageId"] == ack["messageId"]
        await a.close()
        await bb.close()

    run(go())


def exported(metrics):
    """every name a scrape can match: the sample names and the families"""
    names = {k[0] for k in metrics.samples} | set(metrics.type)
    labels = {}
    for (name, lab) in metrics.samples:
        labels.setdefault(name, set()).update(k for k, _ in lab)
    for fam, typ in metrics.type.items():
        if typ == "histogram":
            labels.setdefault(fam, set()).add("le")
    return names, labels


def strip_promql(expr):
    """(metric names an expression selects, [(metric, label) in its matchers])"""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges, [$__rate_interval] included
    matchers = []
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", e):
        for lab in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(2)):
            matchers.append((m.group(1), lab))
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)  # label lists
    e = re.sub(r"\$\w+", "", e)  # Grafana variables
    words = set(re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)", e))
    return {w for w in words if w.lower() not in PROMQL_WORDS}, matchers


def dashboard_queries(d):
    out = []

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "expr" and isinstance(v, str):
                    out.append(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(d.get("panels", []))
    for var in d.get("templating", {}).get("list", []):
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if var.get("type") == "query" and q:
            out.append(re.sub(r"label_values\(\s*([^,()]+)\s*,\s*\w+\s*\)", r"\1", q))
    return out


def check_queries(what, queries, names, labels):
    assert queries, f"{what}: no queries found"
    for q in queries:
        used, matchers = strip_promql(q)
        assert used, f"{what}: {q!r} names no metric"
        unknown = sorted(used - names)
        assert not unknown, f"{what}: {q!r} names {unknown}, which the broker does not export"
        for metric, lab in matchers:
            if lab in ("instance", "job"):  # Prometheus's target labels
                continue
            assert lab in labels.get(metric, set()), f"{what}: {q!r}: {metric} has no label {lab}"


@pytest.fixture
def scraped(broker, mesh):
    b = broker()  # meshbroker-accept: its gauges are there too
    traffic(b, mesh("A", "B"))
    return b, b.metrics()


def test_histograms_have_buckets_sum_count_and_count_the_traffic(scraped):
    _, m = scraped
    print(m.text[-6000:]) if os.environ.get("OBS_SHOW") else None
    assert not m.bad_lines, m.bad_lines[:5]
    for h in HISTOGRAMS:
        assert m.type.get(h) == "histogram", f"# TYPE {h} is {m.type.get(h)!r}"
        assert m.help.get(h, "").strip(), f"no # HELP for {h}"
        buckets = m.family(h + "_bucket")
        les = [dict(k)["le"] for k in buckets]
        assert les == LE, f"{h}: le labels {les}, want {LE}"  # in order, 0.5 ms .. 10 s, +Inf
        values = [buckets[(("le", le),)] for le in LE]
        assert values == sorted(values), f"{h}: buckets not cumulative: {values}"
        count, total = m.value(h + "_count"), m.value(h + "_sum")
        assert count is not None and total is not None, f"{h}: no _count or _sum"
        assert values[-1] == count, f"{h}: +Inf bucket {values[-1]} != _count {count}"
        assert total >= 0
    # one hello per peer, one send acked, one push written, and statements
    assert m.value("broker_hello_duration_seconds_count") >= 2
    assert m.value("broker_send_ack_seconds_count") >= 1
    assert m.value("broker_send_push_seconds_count") >= 1
    assert m.value("broker_db_statement_seconds_count") >= 1
    assert m.value("broker_db_statement_seconds_sum") > 0, "statements take time"
    assert m.value("broker_hello_duration_seconds_sum") > 0, "a hello takes time"


def test_build_info_and_the_acceptor_gauges(scraped):
    b, m = scraped
    info = m.family("meshbroker_build_info")
    assert m.type.get("meshbroker_build_info") == "gauge"
    assert len(info) == 1, info
    (labels, value), = info.items()
    labels = dict(labels)
    assert value == 1
    assert labels["git_sha"] == "testsha0", labels  # GIT_SHA in the environment wins
    assert re.match(r"^\d+\.\d+", labels["version"]), labels
    assert m.value("meshbroker_acceptor_up") == 1
    pid = b.proc.pid
    for g in ACCEPTOR:
        assert m.value(g) is not None, f"{g} missing while the acceptor runs"
    assert m.type["meshbroker_acceptor_process_cpu_seconds_total"] == "counter"
    assert 0 < m.value("meshbroker_acceptor_process_open_fds") < m.value("meshbroker_acceptor_process_max_fds")
    rss = int(open(f"/proc/{pid}/statm").read().split()[1]) * os.sysconf("SC_PAGESIZE")
    got = m.value("meshbroker_acceptor_process_resident_memory_bytes")
    assert rss / 4 < got < rss * 4, f"acceptor resident {got}, /proc says {rss}"
    start = m.value("meshbroker_acceptor_process_start_time_seconds")
    assert mbtest.now_ms() / 1000 - 600 < start <= mbtest.now_ms() / 1000, "the acceptor started in this test"


def test_build_info_defaults_to_the_sha_the_binary_was_built_with(broker):
    b = broker(GIT_SHA="")
    labels = dict(next(iter(b.metrics().family("meshbroker_build_info"))))
    gen = os.path.join(os.path.dirname(mbtest.binpath("meshbroker-worker")), "..", "gen", "git_sha.h")
    if os.path.exists(gen):
        want = re.search(r'"([^"]*)"', open(gen).read()).group(1)
        assert labels["git_sha"] == want, (labels, want)
    assert labels["git_sha"] and labels["git_sha"] != "testsha0", labels


def test_build_info_escapes_a_strange_sha(broker):
    b = broker(GIT_SHA='x"y\\z')
    m = b.metrics()
    assert not m.bad_lines, m.bad_lines[:5]
    labels = dict(next(iter(m.family("meshbroker_build_info"))))
    assert labels["git_sha"] == 'x\\"y\\\\z', labels  # as the text format escapes it


def test_no_acceptor_gauges_under_socket_activation(broker):
    b = broker("socket-activate")
    m = b.metrics()
    assert m.value("meshbroker_acceptor_up") == 0
    for g in ACCEPTOR:
        assert m.value(g) is None, f"{g} shown without an acceptor"
    for h in HISTOGRAMS:
        assert m.type.get(h) == "histogram"


def test_dashboard_is_json_and_every_query_names_an_exported_metric(scraped):
    _, m = scraped
    names, labels = exported(m)
    with open(DASHBOARD) as f:
        d = json.load(f)
    assert d.get("title") and isinstance(d.get("panels"), list) and d["panels"]
    queries = dashboard_queries(d)
    check_queries("dashboard", queries, names, labels)
    used = set().union(*(strip_promql(q)[0] for q in queries))
    for h in HISTOGRAMS:
        assert h + "_bucket" in used, f"the dashboard shows no quantile of {h}"


def test_alert_rules_parse_and_every_expr_names_an_exported_metric(scraped):
    yaml = pytest.importorskip("yaml")  # python3-yaml (scripts/deps.sh test)
    _, m = scraped
    names, labels = exported(m)
    with open(ALERTS) as f:
        doc = yaml.safe_load(f)
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert rules
    for r in rules:
        assert re.match(r"^[A-Z][A-Za-z0-9]+$", r["alert"]), r
        assert isinstance(r["expr"], str) and r["expr"].strip(), r
        assert r.get("labels", {}).get("severity") in ("critical", "warning"), r
        assert r.get("annotations", {}).get("summary"), r
        if "for" in r:
            assert re.match(r"^\d+[smh]$", r["for"]), r
    assert len({r["alert"] for r in rules}) == len(rules), "alert names repeat"
    check_queries("alerts", [r["expr"] for r in rules], names, labels)


def test_the_query_check_can_fail():
    names, labels = {"broker_queue_depth", "broker_db_healthy"}, {"broker_queue_depth": set()}
    with pytest.raises(AssertionError):
        check_queries("x", ["rate(broker_nonexistent_total[5m])"], names, labels)
    with pytest.raises(AssertionError):
        check_queries("x", ['broker_queue_depth{mesh="a"} > 1'], names, labels)
    with pytest.raises(AssertionError):
        check_queries("x", ["up == 0"], names, labels)
    check_queries("x", ['sum by (instance) (broker_queue_depth{instance=~"$instance"}[$__rate_interval])'],
                  names, labels)


def test_log_lines_carry_the_journal_priority_when_stderr_is_the_journal(pg, mesh):
    b = mbtest.Broker("accept", pg.url, {"LOG_LEVEL": "debug"})
    open(b.log, "ab").close()
    st = os.stat(b.log)
    b.env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    try:
        b.start()
        traffic(b, mesh("A", "B"))
    finally:
        problems = b.check()
    lines = [l for l in b.log_text().splitlines() if l.strip()]
    prio = {"debug": "<7>", "info": "<6>", "warn": "<4>", "error": "<3>"}
    seen = set()
    for line in lines:
        mm = re.match(r"^<(\d)>(\{.*)$", line)
        if not mm:
            continue
        rec = json.loads(mm.group(2))
        assert line.startswith(prio[rec["level"]]), line
        seen.add((rec["component"], rec["level"]))
    assert ("accept", "info") in seen, seen  # "listening"
    assert ("worker", "info") in seen, seen  # "peer joined": the workers inherit the stream
    assert not [l for l in lines if l.startswith("{")], "a JSON line without its priority"
    assert not [p for p in problems if "sanitizer" in p or "signal" in p], problems


def test_log_lines_are_plain_when_stderr_is_not_the_journal(pg, mesh):
    b = mbtest.Broker("accept", pg.url, {"JOURNAL_STREAM": "1:2"})  # someone else's stream
    try:
        b.start()
        traffic(b, mesh("A", "B"))
    finally:
        problems = b.check()
    lines = [l for l in b.log_text().splitlines() if l.strip()]
    assert any(l.startswith("{") and '"peer joined"' in l for l in lines), lines[:10]
    assert not [l for l in lines if re.match(r"^<\d>", l)], "a priority prefix outside the journal"
    assert not problems, problems
