#!/usr/bin/python3
# amonitor CLI against hostile or broken agents, written here on raw
# sockets: an agent that floods pings and reads nothing, one whose
# messages carry terminal escape sequences, one that never answers the
# upgrade, one that stops reading actions.  The CLI must keep to its
# --timeout / --duration and print no control character it was sent.

import base64
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "..", "sdk", "tests"))

from amontest import (BUILD, Tap, free_port, slow_factor,  # noqa: E402
                      valgrind_prefix)

CLI = os.path.join(BUILD, "amonitor")
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ESC = "\x1b]0;PWNED\x07\x1b[2J\x1b[31m\u009b1m\x7f"

t = Tap()


def frame(opcode, data):
    if isinstance(data, str):
        data = data.encode()
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + data


def read_frame(conn):
    """One client frame (masked): (opcode, payload)."""
    def need(n):
        b = b""
        while len(b) < n:
            chunk = conn.recv(n - len(b))
            if not chunk:
                raise EOFError
            b += chunk
        return b

    b0, b1 = need(2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack("!H", need(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", need(8))[0]
    key = need(4) if b1 & 0x80 else b"\0\0\0\0"
    data = bytes(c ^ key[i % 4] for i, c in enumerate(need(n)))
    return b0 & 0x0f, data


def upgrade(conn):
    req = b""
    while b"\r\n\r\n" not in req:
        chunk = conn.recv(4096)
        if not chunk:
            raise EOFError
        req += chunk
    key = ""
    for line in req.decode("latin-1").split("\r\n"):
        if line.lower().startswith("sec-websocket-key:"):
            key = line.split(":", 1)[1].strip()
    accept = base64.b64encode(
        hashlib.sha1((key + GUID).encode()).digest()).decode()
    conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                  % accept).encode())


def envelope(type_, target_id, payload, msg_id="m-1"):
    return json.dumps({"msg_id": msg_id, "type": type_,
                       "target_id": target_id, "timestamp": 1,
                       "payload": payload})


def ping_flood(conn):
    upgrade(conn)
    conn.setblocking(False)
    ping = frame(0x9, b"p" * 100)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            conn.send(ping)
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            return


def escapes(conn):
    upgrade(conn)
    conn.sendall(frame(0x1, envelope(
        "heartbeat", "t" + ESC, {"status": "up" + ESC,
                                 "metrics": {"k": ESC}})))
    conn.sendall(frame(0x1, envelope(
        "event", "t" + ESC, {"event_name": "ev" + ESC, "data": {"d": ESC}})))
    try:
        op, data = read_frame(conn)
    except EOFError:
        return
    if op != 0x1:
        return
    action = json.loads(data)
    conn.sendall(frame(0x1, envelope(
        "error", "t", {"code": "ACK_TIMEOUT" + ESC, "message": "slow" + ESC,
                       "final": False}, action["msg_id"])))
    conn.sendall(frame(0x1, envelope(
        "action_ack", "t" + ESC,
        {"action_msg_id": action["msg_id"], "success": False,
         "message": "failed" + ESC})))
    time.sleep(1)
    conn.sendall(frame(0x8, struct.pack("!H", 1000) + ("bye" + ESC).encode()))
    time.sleep(0.5)


def silent(conn):
    time.sleep(10)


def no_read(conn):
    upgrade(conn)
    time.sleep(15)


def serve(behaviour, rcvbuf=None):
    """A one-behaviour agent on a free port; returns its panel URL."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def run():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    def handle(conn):
        try:
            behaviour(conn)
        except (OSError, EOFError):
            pass
        finally:
            conn.close()

    threading.Thread(target=run, daemon=True).start()
    return "ws://127.0.0.1:%d/ws/panel" % srv.getsockname()[1]


def cli(*args, timeout=40):
    t0 = time.monotonic()
    r = subprocess.run(valgrind_prefix() + [CLI] + list(args),
                       capture_output=True, timeout=timeout * slow_factor())
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"), time.monotonic() - t0)


def controls(text):
    """The control characters (C0 but newline, DEL, C1) in the text."""
    return sorted({c for c in text if (ord(c) < 0x20 and c not in "\n")
                   or 0x7f <= ord(c) < 0xa0})


slow = slow_factor()

# an agent that floods pings and reads nothing: --timeout still holds
url = serve(ping_flood)
rc, out, err, took = cli("send", "--target-id", "x", "--timeout", "3",
                         "--url", url)
t.ok(rc == 1 and took < 8 * slow,
     "send --timeout 3 against a ping flood that is not read: exit 1 "
     "within 8 s (took %.1f s)" % took, (rc, out, err))
t.ok("does not read" in err or "no ack" in err,
     "send: says why it gave up", err)

rc, out, err, took = cli("watch", "--once", "--timeout", "2", "--url", url,
                         "--status-url", "none")
t.ok(took < 7 * slow, "watch --once --timeout 2 against the ping flood "
     "ends within 7 s (took %.1f s)" % took, (rc, out, err))

# messages with escape sequences: nothing of them reaches the terminal
url = serve(escapes)
rc, out, err, took = cli("send", "--target-id", "t", "--timeout", "5",
                         "--url", url)
t.ok(rc == 1 and "action failed: failed" in err,
     "send: the hostile ack is reported as a failure", (rc, out, err))
t.is_(controls(out + err), [],
      "send: no control character in what it prints")
t.ok("\\u001b]0;PWNED\\u0007" in err,
     "send: the escape sequence is shown escaped", err)

rc, out, err, took = cli("sim", "--target-id", "t", "--duration", "2",
                         "--url", url)
t.ok("event_name=ev\\u001b" in out and "status=up\\u001b" in out,
     "sim: heartbeat and event fields shown escaped", out)
t.is_(controls(out + err), [], "sim: no control character in what it prints")
t.ok("bye\\u001b]0;PWNED" in err,
     "sim: the close reason is shown escaped", (rc, out, err))

# an agent that never answers the upgrade: sim keeps to --duration
url = serve(silent)
rc, out, err, took = cli("sim", "--target-id", "t", "--duration", "2",
                         "--url", url)
t.ok(took < 4 * slow,
     "sim --duration 2 against an agent that never answers: ends within "
     "4 s (took %.1f s)" % took, (rc, out, err))

# an agent that stops reading: bench keeps to --duration and the drain
url = serve(no_read, rcvbuf=4096)
rc, out, err, took = cli("bench", "--target-id", "t", "--rate", "20000",
                         "--duration", "2", "--max-inflight", "1000000",
                         "--url", url)
t.ok(took < 5.5 * slow,
     "bench --duration 2 against an agent that does not read: ends within "
     "5.5 s (took %.1f s)" % took, (rc, out, err))
t.ok(rc == 1 and "did not take the action in time" in err,
     "bench: exit 1 and says the agent did not take the actions",
     (rc, err))

# the example programs print the actions an agent sends them: escaped
def raw_agent_action(port, name, msg_id):
    """Dial an example as an agent and send it one action."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(4096)
    data = json.dumps({"msg_id": msg_id, "type": "action",
                       "target_id": "ex", "timestamp": 1,
                       "payload": {"action": name, "params": {}}}).encode()
    key = os.urandom(4)
    masked = bytes(c ^ key[i % 4] for i, c in enumerate(data))
    conn.sendall(struct.pack("!BBH", 0x81, 0x80 | 126, len(data)) + key
                 + masked)
    return conn


SDK_PY = os.path.join(HERE, "..", "..", "sdk", "python")
examples = [("C", [os.path.join(BUILD, "sdk", "amonitor-sdk-example")], {}),
            ("Python", ["/usr/bin/python3",
                        os.path.join(SDK_PY, "examples",
                                     "amonitor-sdk-example.py")],
             {"PYTHONPATH": SDK_PY, "PYTHONDONTWRITEBYTECODE": "1",
              "AMONITOR_SDK_LIB": os.path.join(BUILD, "sdk",
                                               "libamonitor_sdk.so")})]
for lang, argv, env in examples:
    port = free_port()
    p = subprocess.Popen(argv + ["--port", str(port), "--target-id", "ex",
                                 "--interval", "30"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=dict(os.environ, **env))
    conn = None
    try:
        for _ in range(100):
            try:
                conn = raw_agent_action(port, "fly" + ESC, "m" + ESC)
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
    finally:
        if conn:
            conn.close()
        p.terminate()
        out = p.communicate(timeout=10)[0].decode("utf-8", "replace")
    lines = [ln for ln in out.splitlines() if "-> unsupported" in ln]
    t.ok(lines and "fly\\u001b]0;PWNED\\u0007" in lines[0],
         "%s example: the action's name is printed escaped" % lang, out)
    t.is_(controls("\n".join(lines)), [],
          "%s example: no control character from the agent printed" % lang)

t.done()
