"""Bounded memory for every input: a client that floods frames and never
reads the replies is not read from while its replies pile up, so its worker
stays small (the systemd unit gives a worker MemoryMax=64M)."""

import socket
import threading
import time

from mbtest import run  # noqa: F401  (same fixtures as the other tests)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


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
    time.sleep(4)
    rss = rss_kib(pid)
    stop.set()
    s.shutdown(socket.SHUT_RDWR)
    s.close()
    t.join(5)
    assert sent[0] > 100_000, f"only {sent[0]} frames went out: the test did not flood"
    # without backpressure the replies queued in the worker grow past a GiB
    assert rss < 64 * 1024, f"worker RSS {rss} KiB after {sent[0]} unread replies"
