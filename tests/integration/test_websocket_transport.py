"""The WebSocket transport before authentication (issue 2, acceptance 4): a
client not written in this repo (python3-websockets) upgrades, gets no_hello,
is pinged, and is closed 1009 / 1003 / 1008 hello_timeout."""

import asyncio
import json
import time

import pytest
import websockets

import mbtest
from mbtest import RawWS, close_payload, run

MODES = ["accept", "socket-activate"]


async def open_ws(b, path="/ws"):
    return await websockets.connect(b.ws_url + path, ping_interval=None, open_timeout=5,
                                    close_timeout=3, max_size=2 ** 20)


async def closed_with(ws, timeout=5):
    await asyncio.wait_for(ws.wait_closed(), timeout)
    return ws.close_code, ws.close_reason


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", ["/ws", "/ws?x=1"])
def test_python_websockets_completes_the_upgrade(broker, mode, path):
    b = broker(mode)

    async def go():
        ws = await open_ws(b, path)
        assert ws.open
        await ws.send(json.dumps({"type": "list_peers"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply.get("type") == "error"
        await ws.close()

    run(go(), 20)


@pytest.mark.parametrize("mode", MODES)
def test_frame_before_hello_gets_no_hello_and_the_socket_stays_open(broker, mode):
    b = broker(mode)

    async def go():
        ws = await open_ws(b)
        for frame in ({"type": "send", "targetSpec": "*", "priority": "now", "nonce": "", "ciphertext": ""},
                      {"type": "set_status", "status": "idle"}):
            await ws.send(json.dumps(frame))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply == {"type": "error", "code": "no_hello", "message": "must send hello first"}, reply
        assert ws.open, "the socket must stay open after no_hello"
        await ws.close()

    run(go(), 20)


def test_frame_sent_together_with_the_upgrade_request_is_not_lost(broker):
    """bytes that arrive with the headers are fed to the WebSocket layer first"""
    import base64
    import os
    import socket

    b = broker()
    s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    payload = json.dumps({"type": "set_status", "status": "idle"}).encode()
    mask = os.urandom(4)
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    s.sendall(req + frame)
    buf = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        if b"\r\n\r\n" in buf and b"no_hello" in buf:
            break
    s.close()
    assert buf.startswith(b"HTTP/1.1 101"), buf[:200]
    assert b"no_hello" in buf, f"the frame sent with the request got no answer: {buf!r}"


def test_client_is_pinged(broker):
    b = broker(PING_INTERVAL_SECONDS=1, PONG_TIMEOUT_SECONDS=30, HELLO_TIMEOUT_SECONDS=30)
    ws = RawWS(b.port)
    try:
        pings = 0
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and pings < 2:
            fin, op, payload = ws.recv_frame(timeout=max(0.05, deadline - time.monotonic()))
            if op == 0x9:
                pings += 1
                ws.send_frame(0xA, payload)
            else:
                assert op != 0x8, f"closed instead of pinged: {close_payload(payload)}"
        assert pings >= 2, f"{pings} pings in 4 s with PING_INTERVAL_SECONDS=1"
        # answered pings keep the connection alive
        ws.send_text(json.dumps({"type": "x"}))
        while True:
            fin, op, payload = ws.recv_frame(timeout=3)
            if op == 0x1:
                assert json.loads(payload)["code"] == "no_hello"
                break
            assert op in (0x9,), f"unexpected opcode {op}"
            ws.send_frame(0xA, payload)
    finally:
        ws.close()


def test_peer_that_never_answers_pings_is_closed_1001_ping_timeout(broker):
    b = broker(PING_INTERVAL_SECONDS=1, PONG_TIMEOUT_SECONDS=2, HELLO_TIMEOUT_SECONDS=60)
    ws = RawWS(b.port)
    pings = 0
    try:
        while True:
            fin, op, payload = ws.recv_frame(timeout=30)
            if op == 0x8:
                break
            pings += op == 0x9
        code, reason = close_payload(payload)
        assert (code, reason) == (1001, "ping_timeout")
        assert pings >= 1, "closed for a ping timeout without having pinged"
    finally:
        ws.close()


def test_oversized_text_frame_is_closed_1009(broker):
    b = broker(MAX_MESSAGE_BYTES=1024)

    async def go():
        ws = await open_ws(b)
        await ws.send("x" * 2000)
        code, _ = await closed_with(ws)
        assert code == 1009, f"close code {code}"

    run(go(), 20)
    assert b.wait_no_workers(3)


def test_text_frame_of_exactly_max_message_bytes_is_accepted(broker):
    b = broker(MAX_MESSAGE_BYTES=1024)

    async def go():
        ws = await open_ws(b)
        body = json.dumps({"type": "x", "pad": ""})
        frame = json.dumps({"type": "x", "pad": "p" * (1024 - len(body))})
        assert len(frame) == 1024
        await ws.send(frame)
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply["code"] == "no_hello"
        await ws.close()

    run(go(), 20)


def test_binary_frame_is_closed_1003(broker):
    b = broker()

    async def go():
        ws = await open_ws(b)
        await ws.send(b"\x00\x01\x02")
        code, _ = await closed_with(ws)
        assert code == 1003, f"close code {code}"

    run(go(), 20)
    assert b.wait_no_workers(3)


def test_silent_client_is_closed_1008_hello_timeout(broker):
    b = broker(HELLO_TIMEOUT_SECONDS=1)

    async def go():
        t0 = time.monotonic()  # before the connection exists: the broker's deadline starts later
        ws = await open_ws(b)
        code, reason = await closed_with(ws, timeout=30)
        assert (code, reason) == (1008, "hello_timeout")
        # causality, not speed: the close cannot precede its 1 s deadline
        assert time.monotonic() - t0 >= 1.0, "closed before HELLO_TIMEOUT_SECONDS ran out"

    run(go(), 20)
    assert b.wait_no_workers(3), f"workers left: {b.workers()}"


def test_invalid_json_before_hello_keeps_the_socket_open(broker):
    b = broker()

    async def go():
        ws = await open_ws(b)
        await ws.send("{not json")
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply.get("type") == "error" and reply.get("code") in ("bad_json", "no_hello"), reply
        await ws.send(json.dumps({"type": "x"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply.get("code") == "no_hello"
        await ws.close()

    run(go(), 20)


def test_websocket_worker_exits_when_the_client_closes(broker):
    b = broker()

    async def go():
        ws = await open_ws(b)
        pid = b.worker_for(ws.transport.get_extra_info("sockname")[1])
        await ws.close()
        return pid

    pid = run(go(), 20)
    assert mbtest.wait_until(lambda: pid not in b.workers(), 20), f"worker {pid} outlived its client"
