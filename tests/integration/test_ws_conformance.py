"""RFC 6455 conformance of the WebSocket transport (issue 11, "conformance"):
the case groups of the Autobahn TestSuite, played by a raw-frame client
written here with the socket module alone (independent of wslay and of
python3-websockets).  It does the upgrade by hand and writes every frame
byte for byte: masking, fragmentation, control frames, reserved bits and
opcodes, bad UTF-8, close codes, large payloads, frames dribbled one byte
per write.

The broker is not an echo server.  For a valid message the RFC outcome is
"the connection stays open and the broker processes it": before a hello a
text frame holding a JSON object is answered error{code:"no_hello"}, any
other text error{code:"bad_json"} (docs/protocol.md §2), so each valid case
checks that answer and then that the connection is still open (a probe is
answered, and a close 1000 is echoed and followed by the TCP close).  A
protocol violation gets a close frame with the RFC's code and then the TCP
close, and nothing of what followed the violation is answered.  A binary
message is closed 1003 (docs/protocol.md §3.2).

Two brokers serve the whole module (one connection per case): the default
MAX_MESSAGE_BYTES (65536, the deployed limit) and a 4 MiB one for the large
cases of group 9."""

import json
import os
import select
import socket
import struct
import time

import pytest

import mbtest

LIMIT = 65536  # MAX_MESSAGE_BYTES of the default broker (the deployed default)
BIG_LIMIT = 4 << 20  # and of the broker for the large cases of group 9

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
NO_HELLO = {"type": "error", "code": "no_hello", "message": "must send hello first"}


# ---------------------------------------------------------------- brokers


def _module_broker(pg, **env):
    env = {"HELLO_TIMEOUT_SECONDS": 120, "PING_INTERVAL_SECONDS": 600, "PONG_TIMEOUT_SECONDS": 1200,
           "MAX_CONNECTIONS_PER_SOURCE": 1000, **env}
    b = mbtest.Broker("accept", pg.url, env)
    b.start()
    yield b
    problems = b.check()
    if problems:
        print(f"\n--- broker (port {b.port}) stderr tail: {b.log}")
        print(mbtest.tail(b.log, 40))
        pytest.fail("\n".join(problems[:20]), pytrace=False)


@pytest.fixture(scope="module")
def cb(pg):
    """the broker of this module, default limits"""
    yield from _module_broker(pg)


@pytest.fixture(scope="module")
def big_cb(pg):
    """a broker with MAX_MESSAGE_BYTES of 4 MiB (group 9)"""
    yield from _module_broker(pg, MAX_MESSAGE_BYTES=BIG_LIMIT)


# ---------------------------------------------------------------- the client


def mask_payload(payload, key):
    """RFC 6455 §5.3, by integer XOR (fast for megabytes)"""
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None, length_form=None):
    """one frame's bytes.  rsv: the three RSV bits as a number 0..7 (RSV1 = 4);
    length: the payload length to announce (default: the real one);
    length_form: 7, 16 or 64 to force an encoding of the length."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7:
        head = bytes([b0, mbit | n])
    elif form == 16:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + mask_payload(payload, key)


def close_body(code, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack(">H", code) + reason


class EOF(Exception):
    pass


class Conn:
    """One WebSocket connection over a plain socket: the upgrade by hand,
    frames written as given (optionally a few bytes per write), frames read
    with every header bit checked."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = mbtest.b64e(os.urandom(16))
        self.sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status, hdrs, _ = mbtest.parse_response(head + b"\r\n\r\n")
        assert status == 101, f"upgrade answered {head!r}"
        import hashlib
        want = mbtest.b64e(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        assert hdrs.get("sec-websocket-accept") == want, f"bad Sec-WebSocket-Accept in {head!r}"
        assert hdrs.get("upgrade", "").lower() == "websocket", head
        self.close_sent = False

    # -- bytes

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("read timed out")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise EOF("connection closed")
        self.buf += chunk

    def send(self, data, chop=None):
        """write data; chop=n writes it n bytes per send (TCP_NODELAY: one
        segment each, as Autobahn's "in chops" cases do).  False when the
        peer had closed (what it still took is sent)."""
        try:
            if not chop:
                self.sock.sendall(data)
            else:
                for i in range(0, len(data), chop):
                    self.sock.sendall(data[i:i + chop])
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def send_frame(self, *a, chop=None, **kw):
        return self.send(frame(*a, **kw), chop=chop)

    def send_close(self, code=None, reason=b""):
        self.close_sent = True
        return self.send_frame(OP_CLOSE, b"" if code is None else close_body(code, reason))

    # -- frames

    def recv_frame(self, timeout=10):
        """(fin, opcode, payload) of the next server frame, its header
        checked: no mask, no RSV bit, a defined opcode, control frames
        whole and at most 125 bytes, lengths in their shortest form."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < 2:
            self._fill(deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, f"server frame masked: {self.buf[:16]!r}"
        assert not b0 & 0x70, f"server frame with RSV bits: {b0:#x}"
        op = b0 & 0x0F
        assert op in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG), f"server opcode {op:#x}"
        n, off = b1 & 0x7F, 2
        if n == 126:
            while len(self.buf) < 4:
                self._fill(deadline)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
            assert n >= 126, f"16-bit length {n} not in its shortest form"
        elif n == 127:
            while len(self.buf) < 10:
                self._fill(deadline)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
            assert 65536 <= n < 1 << 63, f"64-bit length {n} not in its shortest form"
        if op >= 0x8:
            assert b0 & 0x80 and n <= 125, f"server control frame fin={b0 >> 7} length {n}"
        while len(self.buf) < off + n:
            self._fill(deadline)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return bool(b0 & 0x80), op, payload

    def next_frame(self, timeout=10):
        """the next frame that is not a keep-alive ping of the broker's own
        (answered, as a client does)"""
        while True:
            fin, op, payload = self.recv_frame(timeout)
            if op == OP_PING and payload == b"":
                self.send_frame(OP_PONG, payload)
                continue
            return fin, op, payload

    def recv_json(self, timeout=10):
        fin, op, payload = self.next_frame(timeout)
        assert op == OP_TEXT and fin, f"expected a text message, got opcode {op:#x} {payload[:80]!r}" + (
            f" (close {mbtest.close_payload(payload)})" if op == OP_CLOSE else "")
        return json.loads(payload)

    def recv_pong(self, want, timeout=10):
        fin, op, payload = self.next_frame(timeout)
        assert op == OP_PONG, f"expected a pong, got opcode {op:#x} {payload[:80]!r}" + (
            f" (close {mbtest.close_payload(payload)})" if op == OP_CLOSE else "")
        assert payload == want, f"pong payload {payload[:40]!r}... is not the ping's {want[:40]!r}..."

    def wait_eof(self, timeout=10):
        """the TCP close, after the close handshake: no further frame may come"""
        deadline = time.monotonic() + timeout
        while True:
            if self.buf:
                raise AssertionError(f"bytes after the close frame: {self.buf[:80]!r}")
            try:
                self._fill(deadline)
            except EOF:
                return
            except socket.timeout:
                raise AssertionError(f"no TCP close within {timeout}s of the close handshake")

    def expect_close(self, code, timeout=10):
        """the server fails the connection: a close frame with code (nothing
        but keep-alive pings before it), then the TCP close.  Returns the
        reason."""
        try:
            fin, op, payload = self.next_frame(timeout)
        except EOF:
            raise AssertionError(f"TCP closed without a close frame (expected close {code})")
        got = mbtest.close_payload(payload) if op == OP_CLOSE else None
        assert op == OP_CLOSE, f"expected close {code}, got opcode {op:#x} {payload[:80]!r}"
        assert got[0] == code, f"close code {got[0]} ({got[1]!r}), expected {code}"
        if not self.close_sent:
            self.send_close(code)  # answer it, as RFC 6455 §5.5.1 says
        self.wait_eof()
        return got[1]

    def expect_open(self):
        """the connection still serves: a probe is answered, and a close 1000
        is echoed and followed by the TCP close"""
        self.send_frame(OP_TEXT, json.dumps({"type": "conformance_probe"}))
        assert self.recv_json() == NO_HELLO
        self.send_close(1000, "bye")
        self.expect_close(1000)

    def close(self):
        self.sock.close()


@pytest.fixture
def conn(cb):
    """conn() -> a fresh Conn to the module's broker; closed after the test"""
    opened = []

    def make(broker=None):
        c = Conn((broker or cb).port)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


def json_text(n):
    """a JSON object of exactly n bytes (n >= 29): answered no_hello"""
    base = json.dumps({"type": "conformance", "p": ""}, separators=(",", ":"))
    assert n >= len(base), n
    s = json.dumps({"type": "conformance", "p": "p" * (n - len(base))}, separators=(",", ":")).encode()
    assert len(s) == n
    return s


def expect_processed(c, payload):
    """the answer a text message gets before hello: no_hello for a JSON
    object, bad_json for anything else"""
    try:
        obj = json.loads(payload, strict=False)  # cJSON takes raw control characters in strings
    except ValueError:
        obj = None
    reply = c.recv_json()
    if isinstance(obj, dict):
        assert reply == NO_HELLO, reply
    else:
        assert reply.get("type") == "error" and reply.get("code") == "bad_json", reply


def pieces(data, n):
    """data cut into n nearly equal fragments (some may be empty)"""
    step = -(-len(data) // n) if data else 0
    return [data[i * step:(i + 1) * step] for i in range(n)]


def send_fragmented(c, opcode, data, n, chop=None):
    parts = pieces(data, n)
    for i, p in enumerate(parts):
        c.send_frame(opcode if i == 0 else OP_CONT, p, fin=i == len(parts) - 1, chop=chop)


# ---------------------------------------------------------------- 1 framing

TEXT_SIZES = [0, 1, 24, 125, 126, 127, 128, 1000, 65535, 65536]


@pytest.mark.parametrize("size", TEXT_SIZES)
def test_1_1_text_message_of_size_is_processed(conn, size):
    c = conn()
    data = json_text(size) if size >= 29 else b"x" * size
    c.send_frame(OP_TEXT, data)
    expect_processed(c, data)
    c.expect_open()


@pytest.mark.parametrize("size", [125, 126, 65535, 65536])
def test_1_1_text_message_written_in_chops_of_997_bytes_is_processed(conn, size):
    c = conn()
    data = json_text(size)
    c.send_frame(OP_TEXT, data, chop=997)
    expect_processed(c, data)
    c.expect_open()


@pytest.mark.parametrize("size,form", [(0, 16), (5, 16), (125, 16), (5, 64), (125, 64), (65535, 64)],
                         ids=lambda v: str(v))
def test_1_1_length_not_in_its_shortest_form_is_1002(conn, size, form):
    # RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length"
    c = conn()
    c.send_frame(OP_TEXT, b"x" * size, length_form=form)
    c.expect_close(1002)


def test_1_1_64_bit_length_with_its_top_bit_set_is_1002(conn):
    # §5.2: the most significant bit of a 64-bit length MUST be 0
    c = conn()
    c.send(frame(OP_TEXT, b"", length=1 << 63, length_form=64) + b"xxxx")
    c.expect_close(1002)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_1_2_binary_message_is_closed_1003(conn, size):
    c = conn()
    c.send_frame(OP_BINARY, os.urandom(size))
    reason = c.expect_close(1003)
    assert reason == "binary frames are not supported"


def test_1_2_binary_message_after_a_text_one_is_closed_1003_after_its_answer(conn):
    c = conn()
    c.send(frame(OP_TEXT, json_text(100)) + frame(OP_BINARY, b"\x00\xff"))
    assert c.recv_json() == NO_HELLO
    c.expect_close(1003)


def test_1_unmasked_client_frame_is_1002(conn):
    # §5.1: a server MUST close the connection on an unmasked frame
    c = conn()
    c.send_frame(OP_TEXT, json_text(50), mask=False)
    c.expect_close(1002)


def test_1_text_message_with_the_upgrade_request_is_processed(cb):
    """frames in the same segment as the HTTP head reach the WebSocket layer"""
    s = socket.create_connection(("127.0.0.1", cb.port), timeout=10)
    try:
        key = mbtest.b64e(os.urandom(16))
        s.sendall((f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
                  + frame(OP_TEXT, json_text(40)) + frame(OP_PING, b"early") + frame(OP_CLOSE, close_body(1000)))
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        head, _, rest = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        # the text's answer follows the pong (control frames go first) or not
        assert b"no_hello" in rest and b"\x8a\x05early" in rest and b"\x88\x02\x03\xe8" in rest, rest
    finally:
        s.close()


# ---------------------------------------------------------------- 2 ping/pong


@pytest.mark.parametrize("size", [0, 1, 10, 124, 125])
def test_2_ping_is_answered_with_a_pong_echoing_its_payload(conn, size):
    c = conn()
    payload = bytes((i * 7 + 1) & 0xFF for i in range(size))  # binary, not UTF-8
    c.send_frame(OP_PING, payload)
    c.recv_pong(payload)
    c.expect_open()


def test_2_ping_written_one_byte_per_write_is_answered(conn):
    c = conn()
    payload = b"*" * 125
    c.send_frame(OP_PING, payload, chop=1)
    c.recv_pong(payload)
    c.expect_open()


@pytest.mark.parametrize("size", [126, 127, 1000, 65536])
def test_2_ping_with_more_than_125_bytes_is_1002(conn, size):
    c = conn()
    c.send_frame(OP_PING, b"p" * size)
    c.expect_close(1002)


@pytest.mark.parametrize("payload", [b"", b"unsolicited", b"\xff\xfe"], ids=["empty", "text", "binary"])
def test_2_unsolicited_pong_is_ignored(conn, payload):
    c = conn()
    c.send_frame(OP_PONG, payload)
    c.expect_open()


def test_2_pong_with_more_than_125_bytes_is_1002(conn):
    c = conn()
    c.send_frame(OP_PONG, b"p" * 126)
    c.expect_close(1002)


def test_2_ten_pings_get_ten_pongs_in_order(conn):
    c = conn()
    payloads = [f"ping {i}".encode() for i in range(10)]
    c.send(b"".join(frame(OP_PING, p) for p in payloads))
    for p in payloads:
        c.recv_pong(p)
    c.expect_open()


def test_2_ten_pings_written_in_chops_get_ten_pongs(conn):
    c = conn()
    payloads = [f"chopped ping {i}".encode() for i in range(10)]
    c.send(b"".join(frame(OP_PING, p) for p in payloads), chop=3)
    for p in payloads:
        c.recv_pong(p)
    c.expect_open()


# ---------------------------------------------------------------- 3 reserved bits


@pytest.mark.parametrize("rsv", range(1, 8))
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_PONG, OP_CLOSE],
                         ids=["text", "binary", "ping", "pong", "close"])
def test_3_reserved_bit_is_1002(conn, opcode, rsv):
    c = conn()
    payload = close_body(1000) if opcode == OP_CLOSE else json_text(30) if opcode == OP_TEXT else b"rsv"
    c.send_frame(opcode, payload, rsv=rsv)
    c.expect_close(1002)


def test_3_reserved_bit_on_a_continuation_is_1002(conn):
    c = conn()
    data = json_text(60)
    c.send(frame(OP_TEXT, data[:30], fin=False) + frame(OP_CONT, data[30:], rsv=4))
    c.expect_close(1002)


def test_3_reserved_bit_after_an_answered_text_then_ping_is_1002_and_the_ping_unanswered(conn):
    c = conn()
    c.send_frame(OP_TEXT, json_text(40))
    assert c.recv_json() == NO_HELLO
    c.send(frame(OP_TEXT, json_text(40), rsv=2) + frame(OP_PING, b"after"))
    c.expect_close(1002)


# ---------------------------------------------------------------- 4 opcodes


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF], ids=lambda o: f"op{o:#x}")
@pytest.mark.parametrize("payload", [b"", b"reserved opcode"], ids=["empty", "payload"])
def test_4_reserved_opcode_is_1002(conn, opcode, payload):
    c = conn()
    c.send_frame(opcode, payload)
    c.expect_close(1002)


@pytest.mark.parametrize("opcode", [5, 0xD], ids=lambda o: f"op{o:#x}")
def test_4_reserved_opcode_after_an_answered_text_is_1002(conn, opcode):
    c = conn()
    c.send_frame(OP_TEXT, json_text(40))
    assert c.recv_json() == NO_HELLO
    c.send(frame(opcode, b"x") + frame(OP_PING, b"after"))
    c.expect_close(1002)


# ---------------------------------------------------------------- 5 fragmentation


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=["ping", "pong", "close"])
def test_5_fragmented_control_frame_is_1002(conn, opcode):
    c = conn()
    body = close_body(1000) if opcode == OP_CLOSE else b"fragment"
    c.send(frame(opcode, body[:3], fin=False) + frame(OP_CONT, body[3:]))
    c.expect_close(1002)


@pytest.mark.parametrize("n", [2, 3, 10, 100])
@pytest.mark.parametrize("chop", [None, 1], ids=["whole", "chop1"])
def test_5_fragmented_text_message_is_processed(conn, n, chop):
    c = conn()
    data = json_text(200)
    send_fragmented(c, OP_TEXT, data, n, chop=chop if n <= 10 else None)
    expect_processed(c, data)
    c.expect_open()


def test_5_fragmented_text_with_empty_fragments_is_processed(conn):
    c = conn()
    data = json_text(40)
    c.send(frame(OP_TEXT, b"", fin=False) + frame(OP_CONT, data, fin=False) + frame(OP_CONT, b"", fin=False)
           + frame(OP_CONT, b""))
    expect_processed(c, data)
    c.expect_open()


def test_5_empty_message_in_three_empty_fragments_is_processed(conn):
    c = conn()
    c.send(frame(OP_TEXT, b"", fin=False) + frame(OP_CONT, b"", fin=False) + frame(OP_CONT, b""))
    expect_processed(c, b"")
    c.expect_open()


@pytest.mark.parametrize("control", ["ping", "pong"])
@pytest.mark.parametrize("chop", [None, 1], ids=["whole", "chop1"])
def test_5_control_frame_between_fragments_is_answered_and_the_message_processed(conn, control, chop):
    c = conn()
    data = json_text(80)
    ctrl = frame(OP_PING if control == "ping" else OP_PONG, b"between")
    c.send(frame(OP_TEXT, data[:40], fin=False) + ctrl + frame(OP_CONT, data[40:]), chop=chop)
    if control == "ping":
        c.recv_pong(b"between")
    expect_processed(c, data)
    c.expect_open()


def test_5_text_in_five_fragments_with_two_pings_between_sent_with_pauses(conn):
    c = conn()
    data = json_text(100)
    parts = pieces(data, 5)
    for i, p in enumerate(parts):
        c.send_frame(OP_TEXT if i == 0 else OP_CONT, p, fin=i == 4)
        if i in (1, 3):
            c.send_frame(OP_PING, f"ping {i}".encode())
            c.recv_pong(f"ping {i}".encode())  # answered while the message is still open
        time.sleep(0.02)
    expect_processed(c, data)
    c.expect_open()


@pytest.mark.parametrize("fin", [True, False], ids=["fin", "nofin"])
def test_5_continuation_without_a_message_is_1002(conn, fin):
    c = conn()
    c.send_frame(OP_CONT, b"continuation", fin=fin)
    c.expect_close(1002)


def test_5_continuation_after_a_finished_message_is_1002(conn):
    c = conn()
    c.send_frame(OP_TEXT, json_text(40))
    assert c.recv_json() == NO_HELLO
    c.send_frame(OP_CONT, b"late continuation")
    c.expect_close(1002)


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_5_new_data_frame_inside_a_fragmented_message_is_1002(conn, second):
    c = conn()
    data = json_text(60)
    c.send(frame(OP_TEXT, data[:30], fin=False) + frame(second, data[30:]))
    c.expect_close(1002)


def test_5_fragmented_binary_message_is_closed_1003(conn):
    c = conn()
    c.send(frame(OP_BINARY, b"\x00\x01", fin=False) + frame(OP_CONT, b"\x02", fin=False) + frame(OP_CONT, b"\x03"))
    c.expect_close(1003)


# ---------------------------------------------------------------- 6 UTF-8

VALID_UTF8 = [
    ("ascii", "Hello-µ@ßöäüàá-UTF-8!!".encode()),
    ("greek", "κόσμε".encode()),
    ("max_bmp", b"\xef\xbf\xbf"),  # U+FFFF
    ("first_4byte", b"\xf0\x90\x80\x80"),  # U+10000
    ("max_codepoint", b"\xf4\x8f\xbf\xbf"),  # U+10FFFF
    ("before_surrogates", b"\xed\x9f\xbf"),  # U+D7FF
    ("after_surrogates", b"\xee\x80\x80"),  # U+E000
    ("nul", b"a\x00b"),
]

INVALID_UTF8 = [
    ("lone_continuation", b"\x80"),
    ("continuation_run", b"\x80\xbf\x80"),
    ("truncated_2", b"\xce"),
    ("truncated_3", b"\xe1\xbd"),
    ("truncated_4", b"\xf0\x90\x80"),
    ("overlong_slash_2", b"\xc0\xaf"),
    ("overlong_slash_3", b"\xe0\x80\xaf"),
    ("overlong_slash_4", b"\xf0\x80\x80\xaf"),
    ("overlong_nul", b"\xc0\x80"),
    ("c1", b"\xc1\xbf"),
    ("surrogate_high", b"\xed\xa0\x80"),
    ("surrogate_low", b"\xed\xbf\xbf"),
    ("surrogate_pair", b"\xed\xa0\x80\xed\xb0\x80"),
    ("above_10ffff", b"\xf4\x90\x80\x80"),
    ("f5", b"\xf5\x80\x80\x80"),
    ("fe", b"\xfe"),
    ("ff", b"\xff"),
    ("5_byte", b"\xf8\x88\x80\x80\x80"),
    ("kosme_then_surrogate", "κόσμε".encode() + b"\xed\xa0\x80edited"),
    ("start_without_continuation", b"\xc2 space"),
]


@pytest.mark.parametrize("name,data", VALID_UTF8, ids=[v[0] for v in VALID_UTF8])
def test_6_valid_utf8_text_is_processed(conn, name, data):
    c = conn()
    msg = b'{"type":"' + data + b'"}'
    c.send_frame(OP_TEXT, msg)
    expect_processed(c, msg)  # no_hello: the type is not hello
    c.expect_open()


@pytest.mark.parametrize("name,data", VALID_UTF8[:5], ids=[v[0] for v in VALID_UTF8[:5]])
def test_6_valid_utf8_split_in_every_fragment_is_processed(conn, name, data):
    """every byte its own fragment: code points cut at every position"""
    c = conn()
    msg = b'{"type":"' + data + b'"}'
    send_fragmented(c, OP_TEXT, msg, len(msg))
    expect_processed(c, msg)
    c.expect_open()


@pytest.mark.parametrize("name,data", INVALID_UTF8, ids=[v[0] for v in INVALID_UTF8])
def test_6_invalid_utf8_text_is_1007(conn, name, data):
    c = conn()
    c.send_frame(OP_TEXT, b'{"type":"' + data + b'"}')
    c.expect_close(1007)


@pytest.mark.parametrize("name,data", INVALID_UTF8, ids=[v[0] for v in INVALID_UTF8])
def test_6_invalid_utf8_split_across_fragments_is_1007(conn, name, data):
    c = conn()
    msg = b'{"type":"' + data + b'"}'
    cut = len(msg) - len(data) // 2 - 2  # inside the bad sequence (or just before it)
    c.send(frame(OP_TEXT, msg[:cut], fin=False) + frame(OP_CONT, msg[cut:]))
    c.expect_close(1007)


@pytest.mark.parametrize("data", [b"\xce", b"\xf0\x90\x80"], ids=["2byte", "4byte"])
def test_6_message_ending_inside_a_code_point_is_1007(conn, data):
    """every fragment is fine on its own; the message ends mid code point"""
    c = conn()
    c.send(frame(OP_TEXT, b"ab", fin=False) + frame(OP_CONT, data[:1], fin=False) + frame(OP_CONT, data[1:]))
    c.expect_close(1007)


def test_6_invalid_utf8_fails_fast_before_the_message_is_complete(conn):
    """Autobahn 6.4: the first fragment holds the bad byte; the close comes
    without the rest of the message ever being sent"""
    c = conn()
    c.send_frame(OP_TEXT, "κόσμε".encode() + b"\xf4\x90\x80\x80", fin=False)
    c.expect_close(1007)


def test_6_invalid_utf8_fails_fast_inside_a_frame(conn):
    """the frame announces 100 bytes; the close comes after the first 10,
    the bad ones among them"""
    c = conn()
    whole = frame(OP_TEXT, b"abc\xff" + b"x" * 96)
    c.send(whole[:2 + 4 + 10])  # header, mask key, 10 payload bytes
    c.expect_close(1007)


def test_6_invalid_utf8_in_a_binary_message_is_not_checked(conn):
    """binary payloads are not UTF-8: they get 1003, not 1007"""
    c = conn()
    c.send_frame(OP_BINARY, b"\xff\xfe\xed\xa0\x80")
    c.expect_close(1003)


# ---------------------------------------------------------------- 7 close

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES)
def test_7_valid_close_code_is_echoed(conn, code):
    c = conn()
    c.send_close(code, "reason")
    c.expect_close(code)


@pytest.mark.parametrize("code", INVALID_CODES)
def test_7_invalid_close_code_is_1002(conn, code):
    c = conn()
    c.send_close(code)
    c.expect_close(1002)


def test_7_close_without_payload_is_answered_and_the_connection_closed(conn):
    c = conn()
    c.send_close()
    fin, op, payload = c.next_frame()
    assert op == OP_CLOSE
    assert payload == b"" or mbtest.close_payload(payload)[0] == 1000, payload
    c.wait_eof()


def test_7_close_with_a_one_byte_payload_is_1002(conn):
    c = conn()
    c.send_frame(OP_CLOSE, b"\x03")
    c.expect_close(1002)


@pytest.mark.parametrize("reason", [b"", b"Hello World!", "κόσμε".encode(), b"r" * 123],
                         ids=["none", "ascii", "utf8", "123_bytes"])
def test_7_close_reason_is_accepted(conn, reason):
    c = conn()
    c.send_close(1000, reason)
    c.expect_close(1000)


def test_7_close_reason_of_124_bytes_is_1002(conn):
    """the payload would be 126 bytes: over a control frame's 125"""
    c = conn()
    c.send_close(1000, b"r" * 124)
    c.expect_close(1002)


@pytest.mark.parametrize("reason", [b"\xff", b"\xce\xba\xe1\xbd", b"ok\xed\xa0\x80", b"\xc0\xaf"],
                         ids=["ff", "truncated", "surrogate", "overlong"])
def test_7_close_reason_with_invalid_utf8_is_1007(conn, reason):
    c = conn()
    c.send_close(1000, reason)
    c.expect_close(1007)


def test_7_text_then_close_gets_the_answer_then_the_close(conn):
    c = conn()
    c.send(frame(OP_TEXT, json_text(40)) + frame(OP_CLOSE, close_body(1000)))
    c.close_sent = True
    assert c.recv_json() == NO_HELLO
    c.expect_close(1000)


@pytest.mark.parametrize("after", ["text", "ping", "close", "binary", "bad_opcode", "garbage"])
def test_7_what_follows_a_close_is_ignored(conn, after):
    c = conn()
    tail = {
        "text": frame(OP_TEXT, json_text(40)),
        "ping": frame(OP_PING, b"after close"),
        "close": frame(OP_CLOSE, close_body(1001)),
        "binary": frame(OP_BINARY, b"\x00"),
        "bad_opcode": frame(5, b"x"),
        "garbage": b"\xff" * 64,
    }[after]
    c.send(frame(OP_CLOSE, close_body(1000)) + tail)
    c.close_sent = True
    c.expect_close(1000)  # nothing before or after the one close


def test_7_close_inside_a_fragmented_message_ends_it_unanswered(conn):
    c = conn()
    data = json_text(60)
    c.send(frame(OP_TEXT, data[:30], fin=False) + frame(OP_CLOSE, close_body(1000)) + frame(OP_CONT, data[30:]))
    c.close_sent = True
    c.expect_close(1000)


def test_7_large_text_then_close_then_ping(conn):
    c = conn()
    data = json_text(LIMIT)
    c.send(frame(OP_TEXT, data) + frame(OP_CLOSE, close_body(1000)) + frame(OP_PING, b"late"))
    c.close_sent = True
    assert c.recv_json() == NO_HELLO
    c.expect_close(1000)


def test_7_close_written_one_byte_per_write(conn):
    c = conn()
    c.send_frame(OP_CLOSE, close_body(4000, "chopped"), chop=1)
    c.close_sent = True
    c.expect_close(4000)


def test_7_tcp_close_without_a_close_frame_ends_the_worker(cb, conn):
    c = conn()
    port = c.sock.getsockname()[1]
    pid = cb.worker_for(port)
    c.send(frame(OP_TEXT, json_text(30))[:5])  # half a frame, then gone
    c.sock.shutdown(socket.SHUT_RDWR)
    assert mbtest.wait_until(lambda: pid not in cb.workers(), 10), f"worker {pid} outlived its client"


# ---------------------------------------------------------------- 9 limits


@pytest.mark.parametrize("n", [1, 4, 64, 1024])
def test_9_text_message_of_exactly_the_limit_is_processed(conn, n):
    c = conn()
    data = json_text(LIMIT)
    if n == 1:
        c.send_frame(OP_TEXT, data)
    else:
        send_fragmented(c, OP_TEXT, data, n)
    expect_processed(c, data)
    c.expect_open()


def test_9_text_frame_over_the_limit_is_1009_from_its_header(conn):
    """the close comes after the header alone: the body is never needed"""
    c = conn()
    whole = frame(OP_TEXT, json_text(LIMIT + 1))
    c.send(whole[:14 + 100])  # 64-bit length header, mask key, 100 bytes
    c.expect_close(1009)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_9_message_over_the_limit_in_one_frame_is_1009(conn, opcode):
    c = conn()
    c.send_frame(opcode, b"x" * (LIMIT + 1))
    c.expect_close(1009)


@pytest.mark.parametrize("n", [2, 16, 1024])
def test_9_fragmented_message_over_the_limit_is_1009(conn, n):
    c = conn()
    send_fragmented(c, OP_TEXT, b"x" * (LIMIT + 1), n)
    c.expect_close(1009)


def test_9_fragmented_message_over_the_limit_fails_at_the_fragment_that_crosses_it(conn):
    c = conn()
    c.send(frame(OP_TEXT, b"x" * (LIMIT - 10), fin=False))
    c.send(frame(OP_CONT, b"x" * 11, fin=False)[:7])  # the crossing fragment's header and one byte
    c.expect_close(1009)


def test_9_many_small_fragments_make_one_message(conn):
    c = conn()
    data = json_text(4096)
    parts = pieces(data, 4096)
    c.send(b"".join(frame(OP_TEXT if i == 0 else OP_CONT, p, fin=i == len(parts) - 1) for i, p in enumerate(parts)))
    expect_processed(c, data)
    c.expect_open()


@pytest.mark.parametrize("count,size", [(1000, 30), (100, 4096)])
def test_9_many_messages_in_one_burst_are_each_answered(conn, count, size):
    c = conn()
    one = json_text(size)
    c.send(b"".join(frame(OP_TEXT, one) for _ in range(count)))
    for _ in range(count):
        assert c.recv_json() == NO_HELLO
    c.expect_open()


def test_9_many_messages_one_at_a_time_are_each_answered(conn):
    c = conn()
    for i in range(200):
        c.send_frame(OP_TEXT, json_text(30 + i))
        assert c.recv_json() == NO_HELLO
    c.expect_open()


@pytest.mark.parametrize("size", [256 << 10, 1 << 20, BIG_LIMIT], ids=["256KiB", "1MiB", "4MiB"])
def test_9_large_text_message_up_to_a_raised_limit_is_processed(big_cb, conn, size):
    c = conn(big_cb)
    data = json_text(size)
    c.send_frame(OP_TEXT, data)
    expect_processed(c, data)
    c.expect_open()


@pytest.mark.parametrize("chunk", [64 << 10, 1 << 20])
def test_9_large_fragmented_text_message_up_to_a_raised_limit_is_processed(big_cb, conn, chunk):
    c = conn(big_cb)
    data = json_text(BIG_LIMIT)
    send_fragmented(c, OP_TEXT, data, BIG_LIMIT // chunk)
    expect_processed(c, data)
    c.expect_open()


def test_9_over_a_raised_limit_is_1009(big_cb, conn):
    c = conn(big_cb)
    c.send(frame(OP_TEXT, b"", length=BIG_LIMIT + 1, length_form=64) + b"x" * 1000)
    c.expect_close(1009)


# ---------------------------------------------------------------- close frames in pieces


@pytest.mark.parametrize("chop", [1, 2, 3, 5])
def test_7_close_reason_with_invalid_utf8_in_chops_is_1007(conn, chop):
    """the reason is checked as a whole, however its bytes arrive"""
    c = conn()
    c.send_frame(OP_CLOSE, close_body(1000, b"ok \xce\xba\xff"), chop=chop)
    c.close_sent = True
    c.expect_close(1007)


@pytest.mark.parametrize("chop", [1, 2, 3, 5])
def test_7_close_reason_with_valid_utf8_in_chops_is_echoed(conn, chop):
    c = conn()
    c.send_frame(OP_CLOSE, close_body(1001, "κόσμε ok".encode()), chop=chop)
    c.close_sent = True
    c.expect_close(1001)


def test_7_close_reason_with_a_nul_is_valid_utf8(conn):
    c = conn()
    c.send_close(1000, b"a\x00b")
    c.expect_close(1000)


# ---------------------------------------------------------------- after the hello


def hello(c, m):
    """the hello of member m over c (docs/protocol.md §2): hello_ack"""
    msg = mbtest.Peer(None, m).hello_msg()
    c.send_frame(OP_TEXT, json.dumps(msg))
    ack = c.recv_json()
    assert ack.get("type") == "hello_ack", ack
    return ack


def test_after_hello_a_fragmented_request_with_a_ping_between_is_answered(conn, mesh):
    m = mesh("A")
    c = conn()
    hello(c, m.members[0])
    data = json.dumps({"type": "list_peers", "id": "frag"}).encode()
    c.send(frame(OP_TEXT, data[:5], fin=False) + frame(OP_PING, b"mid") + frame(OP_CONT, data[5:12], fin=False)
           + frame(OP_CONT, data[12:]), chop=3)
    c.recv_pong(b"mid")
    reply = c.recv_json()
    assert reply.get("type") == "peers_list", reply
    c.send_close(1000)
    c.expect_close(1000)


@pytest.mark.parametrize("bad", ["rsv", "opcode", "utf8", "binary"])
def test_after_hello_a_violation_closes_with_its_code(conn, mesh, bad):
    m = mesh("A")
    c = conn()
    hello(c, m.members[0])
    data, code = {
        "rsv": (frame(OP_TEXT, b"{}", rsv=1), 1002),
        "opcode": (frame(0xC, b""), 1002),
        "utf8": (frame(OP_TEXT, b'{"type":"list_peers","id":"\xc0\xaf"}'), 1007),
        "binary": (frame(OP_BINARY, b"{}"), 1003),
    }[bad]
    c.send(data)
    c.expect_close(code)
