"""Issue 2 acceptance 4 with a client not written in this repository:
python3-websockets (Debian) is pinged by the broker, answers by itself, and
stays connected."""

import asyncio
import json
import logging

import websockets

from mbtest import run


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_python_websockets_client_is_pinged_and_stays_open(broker):
    b = broker(PING_INTERVAL_SECONDS=1, PONG_TIMEOUT_SECONDS=3, HELLO_TIMEOUT_SECONDS=30)
    cap = Captured()
    log = logging.getLogger("meshbroker.test.wsclient")
    log.setLevel(logging.DEBUG)
    log.addHandler(cap)

    async def go():
        ws = await websockets.connect(b.ws_url + "/ws?x=1", ping_interval=None, logger=log, open_timeout=5)
        await asyncio.sleep(4.5)  # longer than PONG_TIMEOUT_SECONDS: the library's pongs keep it open
        pings = [l for l in cap.lines if l.startswith("< PING")]
        assert len(pings) >= 3, f"{len(pings)} pings in 4.5 s with PING_INTERVAL_SECONDS=1: {cap.lines[-5:]}"
        await ws.send(json.dumps({"type": "anything"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 3))
        assert reply["code"] == "no_hello"
        assert ws.open
        await ws.close()

    run(go(), 30)
