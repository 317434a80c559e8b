"""Issue 2 acceptance 4 with a client not written in this repository:
python3-websockets (Debian) is pinged by the broker, answers by itself, and
stays connected."""

import asyncio
import json
import logging
import time

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
        # five pings one interval apart span more than PONG_TIMEOUT_SECONDS:
        # only the library's own pongs can have kept the connection open
        deadline = time.monotonic() + 25
        while len([x for x in cap.lines if x.startswith("< PING")]) < 5:
            assert ws.open, f"closed after {len([x for x in cap.lines if x.startswith('< PING')])} pings"
            assert time.monotonic() < deadline, f"fewer than 5 pings in 25 s: {cap.lines[-5:]}"
            await asyncio.sleep(0.1)
        assert ws.open
        await ws.send(json.dumps({"type": "anything"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 3))
        assert reply["code"] == "no_hello"
        assert ws.open
        await ws.close()

    run(go(), 45)
