# Copyright (C) AMonitor authors
#
# Helpers of the binding's unit tests: the package under test (the source
# tree's, or the installed one with AMONITOR_TEST_INSTALLED=1) and an
# agent made of Python's websockets package, an implementation
# independent of the C SDK's.

import asyncio
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

if not os.environ.get("AMONITOR_TEST_INSTALLED"):
    sys.path.insert(0, os.path.dirname(HERE))
    build = os.environ.get("AMON_BUILD", os.path.join(ROOT, "build"))
    os.environ.setdefault("AMONITOR_SDK_LIB", os.path.join(
        build, "sdk", "libamonitor_sdk.so.1"))

import amonitor  # noqa: E402
import logging  # noqa: E402
import websockets  # noqa: E402

# the SDK's log is checked with assertLogs; otherwise it stays quiet
# (TEST_AMON_VERBOSE=1 shows it)
if not os.environ.get("TEST_AMON_VERBOSE"):
    logging.getLogger("amonitor").addHandler(logging.NullHandler())
else:
    logging.basicConfig(level=logging.DEBUG,
                        format="%(relativeCreated)d %(name)s %(message)s")

__all__ = ["amonitor", "Agent", "TIMEOUT", "raw_agent", "raw_send_text",
           "raw_read_all"]

TIMEOUT = 5.0 * float(os.environ.get("TEST_AMON_TIMEOUT_SCALE", "1"))


class Agent:
    """One agent connection to an SDK, as nginx would open it."""

    def __init__(self, ws):
        self.ws = ws
        self.seen = []
        self.backlog = []  # received, not yet asked for

    @classmethod
    async def connect(cls, port, token=None, path="/"):
        headers = {"Authorization": "Bearer " + token} if token else {}
        ws = await asyncio.wait_for(websockets.connect(
            "ws://127.0.0.1:%d%s" % (port, path), extra_headers=headers,
            max_queue=None, close_timeout=1),
            TIMEOUT)
        return cls(ws)

    async def recv(self, timeout=TIMEOUT):
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        msg = json.loads(raw)
        self.seen.append(msg)
        return msg

    async def recv_type(self, type_, timeout=TIMEOUT, **match):
        """The first message of this type (and payload fields) not
        asked for yet."""
        def matches(msg):
            payload = msg.get("payload") or {}
            return msg.get("type") == type_ and all(
                payload.get(k) == v for k, v in match.items())

        for i, msg in enumerate(self.backlog):
            if matches(msg):
                return self.backlog.pop(i)
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            msg = await self.recv(max(end - loop.time(), 0.01))
            if matches(msg):
                return msg
            if msg.get("type") != "heartbeat":
                self.backlog.append(msg)

    async def action(self, name, msg_id, params=None, target_id="py"):
        env = {"msg_id": msg_id, "type": "action", "target_id": target_id,
               "payload": {"action": name, "params": params or {}}}
        await self.ws.send(json.dumps(env))

    async def ack(self, msg_id, timeout=TIMEOUT):
        """The action_ack answering msg_id: its payload."""
        msg = await self.recv_type("action_ack", timeout,
                                   action_msg_id=msg_id)
        return msg["payload"]

    async def close(self):
        await self.ws.close()


def raw_agent(port):
    """A blocking agent connection (plain socket) that stays open until
    the process ends: for what happens at interpreter exit."""
    import base64
    import socket
    s = socket.create_connection(("127.0.0.1", port), TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket"
               "\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % (port, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.decode("latin-1"))
    return s


def raw_send_text(s, text):
    """One masked text frame (payloads under 126 bytes)."""
    data = text.encode()
    assert len(data) < 126
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(data)]) + mask
              + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def raw_read_all(s, timeout=TIMEOUT):
    """Every frame (opcode, payload) the SDK sends until it closes the
    TCP connection (server frames are not masked)."""
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    frames = []
    while len(data) >= 2:
        op, n = data[0] & 0x0F, data[1] & 0x7F
        at = 2
        if n == 126:
            n, at = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            n, at = int.from_bytes(data[2:10], "big"), 10
        frames.append((op, data[at:at + n]))
        data = data[at + n:]
    return frames
