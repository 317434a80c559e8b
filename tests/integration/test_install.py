"""meshctl install / uninstall / doctor (issue 20, acceptance 6): install
--scope project twice in a scratch directory with a scratch HOME leaves one
MCP entry and one entry per hook, keeps the unrelated entries, and uninstall
removes only its own; --scope user writes under HOME; doctor against a
stopped broker names the problem and exits non-zero, and passes its broker
line against a running one."""

import json
import os
import subprocess

import mbtest

HOOK_EVENTS = {"UserPromptSubmit": ["working", "prompt"], "Stop": ["idle"]}


def mc(args, home, cwd, check=True, env=None):
    e = {k: v for k, v in os.environ.items() if k not in ("MESHCTL_CONFIG", "MESHBROKER_URL")}
    e["HOME"] = str(home)
    e.update(env or {})
    r = subprocess.run([mbtest.require_bin("meshctl")] + args, env=e, cwd=str(cwd), capture_output=True,
                       text=True, timeout=30)
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def make_config(path, broker_url):
    exe = mbtest.require_bin("meshctl")
    key = path.parent / (path.name + ".key")
    subprocess.run([exe, "keygen", "--out", str(key)], check=True, capture_output=True)
    k = json.loads(key.read_text())
    path.write_text(json.dumps({"broker": broker_url, "meshId": "m" * 32, "memberId": "u" * 32,
                                "displayName": "bob", "pubkey": k["pubkey"], "secretKey": k["secretKey"]}))
    os.chmod(path, 0o600)
    return path


def ours(settings):
    """[(event, mode)] of meshctl's hook commands, and the other commands"""
    mine, others = [], []
    for event, groups in settings.get("hooks", {}).items():
        for g in groups:
            for h in g["hooks"]:
                if h["command"].endswith("# meshctl install"):
                    mode = h["command"].split(" hook ")[1].split()[0]
                    mine.append((event, mode))
                    assert "--config '" in h["command"] and h["type"] == "command"
                    assert h.get("async") is (True if mode != "prompt" else None), h
                else:
                    others.append((event, h["command"]))
    return sorted(mine), others


def test_install_project_twice_keeps_others_and_uninstall_removes_only_its_own(tmp_path):
    home, proj = tmp_path / "home", tmp_path / "proj"
    home.mkdir()
    (proj / ".claude").mkdir(parents=True)
    (proj / ".mcp.json").write_text(json.dumps({"mcpServers": {"other": {"command": "other-server"}}}))
    (proj / ".claude" / "settings.json").write_text(json.dumps(
        {"model": "opus", "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "echo unrelated"}]}],
                                    "PreToolUse": [{"matcher": "Bash",
                                                    "hooks": [{"type": "command", "command": "lint"}]}]}}))
    cfg = make_config(proj / "bob.json", "ws://127.0.0.1:1/ws")
    for _ in range(2):
        r = mc(["install", "--config", "bob.json", "--scope", "project"], home, proj)
        assert r.stderr == "", r.stderr
    mcp = json.loads((proj / ".mcp.json").read_text())
    assert set(mcp["mcpServers"]) == {"other", "meshbroker"}
    assert mcp["mcpServers"]["other"] == {"command": "other-server"}
    e = mcp["mcpServers"]["meshbroker"]
    assert e["command"] == mbtest.require_bin("meshctl") and os.path.isabs(e["command"])
    assert e["args"] == ["mcp", "--config", str(cfg)]
    settings = json.loads((proj / ".claude" / "settings.json").read_text())
    mine, others = ours(settings)
    assert mine == sorted((ev, m) for ev, ms in HOOK_EVENTS.items() for m in ms), mine
    assert sorted(others) == [("PreToolUse", "lint"), ("Stop", "echo unrelated")]
    assert settings["model"] == "opus"
    assert not (home / ".claude.json").exists() and not (home / ".claude").exists()
    # the registered hook command runs as Claude Code would run it: nothing on stdout, exit 0
    cmd = next(h["command"] for g in settings["hooks"]["Stop"] for h in g["hooks"] if "meshctl install" in h["command"])
    r = subprocess.run(["sh", "-c", cmd], input="{}", capture_output=True, text=True, timeout=20, cwd="/")
    assert r.returncode == 0 and r.stdout == "" and len(r.stderr.splitlines()) == 1, r
    # uninstall: exactly its own
    mc(["uninstall", "--scope", "project"], home, proj)
    assert json.loads((proj / ".mcp.json").read_text()) == {"mcpServers": {"other": {"command": "other-server"}}}
    settings = json.loads((proj / ".claude" / "settings.json").read_text())
    assert settings == {"model": "opus",
                        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "echo unrelated"}]}],
                                  "PreToolUse": [{"matcher": "Bash",
                                                  "hooks": [{"type": "command", "command": "lint"}]}]}}
    # a second uninstall changes nothing
    before = [(p, p.read_bytes()) for p in (proj / ".mcp.json", proj / ".claude" / "settings.json")]
    mc(["uninstall", "--scope", "project"], home, proj)
    assert all(p.read_bytes() == b for p, b in before)


def test_install_user_scope_writes_under_home_and_refuses_what_is_not_its_own(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / ".claude.json").write_text(json.dumps({"numStartups": 3, "projects": {"/x": {"allowedTools": []}}}))
    cfg = make_config(tmp_path / "bob.json", "ws://127.0.0.1:1/ws")
    mc(["install", "--config", str(cfg)], home, work)
    cj = json.loads((home / ".claude.json").read_text())
    assert cj["numStartups"] == 3 and cj["projects"] == {"/x": {"allowedTools": []}}
    assert cj["mcpServers"]["meshbroker"]["args"] == ["mcp", "--config", str(cfg)]
    assert ours(json.loads((home / ".claude" / "settings.json").read_text()))[0] == \
        [("Stop", "idle"), ("UserPromptSubmit", "prompt"), ("UserPromptSubmit", "working")]
    assert not (work / ".mcp.json").exists()
    # an entry of that name that is not meshctl's is left alone
    cj["mcpServers"]["meshbroker"] = {"command": "someone-else"}
    (home / ".claude.json").write_text(json.dumps(cj))
    r = mc(["install", "--config", str(cfg)], home, work, check=False)
    assert r.returncode == 1 and "not meshctl's" in r.stderr, r.stderr
    # a file that is not a JSON object is never overwritten
    (home / ".claude.json").write_text("[1, 2")
    r = mc(["install", "--config", str(cfg)], home, work, check=False)
    assert r.returncode == 1 and "not a JSON object" in r.stderr
    assert (home / ".claude.json").read_text() == "[1, 2"
    # usage
    r = mc(["install", "--config", str(cfg), "--scope", "galaxy"], home, work, check=False)
    assert r.returncode == 2


def test_doctor_names_a_stopped_broker_and_passes_a_running_one(broker, tmp_path):
    home, proj = tmp_path / "home", tmp_path / "proj"
    home.mkdir()
    proj.mkdir()
    port = mbtest.free_port()
    stopped = make_config(proj / "stopped.json", f"ws://127.0.0.1:{port}/ws")
    mc(["install", "--config", str(stopped), "--scope", "project"], home, proj)
    r = mc(["doctor", "--config", str(stopped)], home, proj, check=False)
    assert r.returncode == 1, r
    bad = [l for l in r.stdout.splitlines() if l.startswith("FAIL")]
    assert len(bad) == 1 and "broker" in bad[0] and f"127.0.0.1:{port}" in bad[0], r.stdout
    assert any(l.startswith("ok") and "install: project scope" in l for l in r.stdout.splitlines()), r.stdout
    # a running broker: every line but channels/path is ok, exit 0
    b = broker()
    good = make_config(proj / "good.json", b.ws_url + "/ws")
    r = mc(["doctor", "--config", str(good)], home, proj, check=False)
    lines = r.stdout.splitlines()
    assert r.returncode == 0, r.stdout
    for what in ("key permissions", "config", "broker", "tls", "clock"):
        assert any(l.startswith("ok") and l[5:].startswith(what) for l in lines), (what, r.stdout)
    # a key file others can read is a failure of its own
    os.chmod(good, 0o644)
    r = mc(["doctor", "--config", str(good)], home, proj, check=False)
    assert r.returncode == 1 and any(l.startswith("FAIL key permissions") for l in r.stdout.splitlines()), r.stdout


def test_invite_create_says_its_url_and_refuses_a_loopback_one_without_local(pg, tmp_path):
    owner_key = tmp_path / "owner.key"
    exe = mbtest.require_bin("meshctl")
    env = {k: v for k, v in os.environ.items() if k not in ("MESHBROKER_URL", "MESHCTL_CONFIG")}
    env["DATABASE_URL"] = pg.url
    run = lambda args: subprocess.run([exe] + args, env=env, capture_output=True, text=True, timeout=30,
                                      cwd=str(tmp_path))
    assert run(["keygen", "--out", str(owner_key)]).returncode == 0
    slug = "inv-" + mbtest.new_id(10).lower()
    assert run(["mesh", "create", "Invite URL", "--slug", slug, "--owner-key", str(owner_key)]).returncode == 0
    base = ["invite", "create", slug, "--owner-key", str(owner_key)]
    # no --broker, no MESHBROKER_URL: the default is loopback, refused
    for extra in ([], ["--broker", "ws://127.0.0.1:7900/ws"], ["--broker", "wss://localhost:8443/ws"]):
        r = run(base + extra)
        assert r.returncode == 1 and r.stdout == "" and "--local" in r.stderr, r
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run(base + ["--local"])
    assert r.returncode == 0 and "broker URL ws://127.0.0.1:7900/ws" in r.stderr, r.stderr
    r = run(base + ["--broker", "wss://mesh.example.org/ws"])
    assert r.returncode == 0 and "broker URL wss://mesh.example.org/ws" in r.stderr, r.stderr
    assert r.stdout.splitlines()[1].startswith("ic://join/")
