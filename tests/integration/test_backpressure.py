"""Bounded memory for every input: a client that floods frames and never
reads the replies is not read from while its replies pile up, so its worker
stays small (the systemd unit gives a worker MemoryMax=64M)."""

import socket
import threading
import time

import pytest


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.mark.unsanitized  # the bound is the production build's; ASan's shadow memory and quarantine add more
def test_flooding_client_that_never_reads_keeps_its_worker_small(broker):
    b = broker(HELLO_TIMEOUT_SECONDS=60)
    s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert s.recv(12) == b"HTTP/1.1 101"
    pid = b.worker_for(s.getsockname()[1])
    # each 1-byte text frame ("x") earns a ~90-byte bad_json error frame
    frame = bytes([0x81, 0x81]) + b"\0\0\0\0" + b"x"
    stop = threading.Event()
    sent = [0]

    def flood():
        s.settimeout(None)
        try:
            while not stop.is_set():
                s.sendall(frame * 1000)
                sent[0] += 1000
        except OSError:
            pass

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    # flood until the worker stops reading (sendall blocks: nothing more goes
    # out for a while) or, without backpressure, until far more than enough
    # went out; bounded by a deadline either way
    deadline = time.monotonic() + 60
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline and sent[0] < 3_000_000:
        time.sleep(0.25)
        if sent[0] != last:
            last, still_since = sent[0], time.monotonic()
        elif sent[0] > 100_000 and time.monotonic() - still_since > 2:
            break
    rss = rss_kib(pid)
    stop.set()
    s.shutdown(socket.SHUT_RDWR)
    s.close()
    t.join(5)
    assert sent[0] > 100_000, f"only {sent[0]} frames went out: the test did not flood"
    # without backpressure the replies queued in the worker grow past a GiB
    assert rss < 64 * 1024, f"worker RSS {rss} KiB after {sent[0]} unread replies"
