# Helpers for the SDK and CLI tests (run by prove with python3): TAP
# output, the SDK test host process, a raw WebSocket client for malformed
# input, and a minimal protobuf codec for the binary envelope.

import asyncio
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
BUILD = os.environ.get("AMON_BUILD", os.path.join(ROOT, "build"))


class Tap:
    """Minimal TAP producer: ok/is_, a plan at the end, exit 1 on failure."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, name),
              flush=True)
        if not cond:
            self.failed += 1
            if diag is not None:
                for line in str(diag).splitlines():
                    print("#   " + line, flush=True)
        return cond

    def is_(self, got, expected, name):
        return self.ok(got == expected, name,
                       "got:      %r\nexpected: %r" % (got, expected))

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line, flush=True)

    def done(self):
        print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed else 0)


def skip_all(reason):
    print("1..0 # SKIP %s" % reason, flush=True)
    sys.exit(0)


def valgrind_prefix():
    if os.environ.get("AMON_TEST_VALGRIND"):
        return ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect",
                "--show-leak-kinds=definite,indirect"]
    return []


def free_port():
    """A port nobody listens on now (on 127.0.0.1)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def slow_factor():
    return 10 if os.environ.get("AMON_TEST_VALGRIND") else 1


class Lines:
    """Reads a child's output on a thread, so that the pipe never fills
    and no line waits in a buffer that select() cannot see."""

    def __init__(self, stream):
        self.q = queue.Queue()
        self.all = []
        th = threading.Thread(target=self._run, args=(stream,), daemon=True)
        th.start()

    def _run(self, stream):
        for line in stream:
            self.all.append(line)
            self.q.put(line)
        self.q.put(None)

    def get(self, timeout):
        """The next line, "" at EOF; raises RuntimeError on timeout."""
        try:
            line = self.q.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError("no output within %ss" % timeout)
        return "" if line is None else line

    def wait_for(self, needle, timeout):
        deadline = time.monotonic() + timeout
        while True:
            line = self.get(max(0.01, deadline - time.monotonic()))
            if not line or needle in line:
                return line


class Host:
    """The sdk_test_host program: an SDK with test handlers."""

    instances = []

    def __init__(self, *args):
        Host.instances.append(self)
        exe = os.path.join(BUILD, "sdk", "tests", "sdk_test_host")
        self.proc = subprocess.Popen(
            valgrind_prefix() + [exe] + list(args),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            bufsize=1)
        self.lines = Lines(self.proc.stdout)
        line = self.readline(30)
        while line.startswith("LOG "):  # --log-stdout
            line = self.readline(30)
        if not line.startswith("PORT "):
            raise RuntimeError("host did not start: %r" % line)
        self.port = int(line.split()[1])
        self.url = "ws://127.0.0.1:%d/" % self.port
        self.stopped = None

    def readline(self, timeout=10):
        return self.lines.get(timeout * slow_factor())

    def command(self, line, expect=None):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        if expect:
            while True:
                out = self.readline()
                if out.startswith(expect):
                    return out[len(expect):].strip()

    def stats(self):
        import json
        return json.loads(self.command("stats", "STATS "))

    def stop(self, timeout=10):
        """Returns (exit status, final stats, seconds taken)."""
        import json
        if self.stopped is not None:
            return self.stopped
        t0 = time.monotonic()
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        stats = None
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=timeout * slow_factor())
            while True:
                line = self.readline(5)
                if not line:
                    break
                if line.startswith("STATS "):
                    stats = json.loads(line[6:])
        except (subprocess.TimeoutExpired, RuntimeError):
            self.proc.kill()
            self.proc.wait()
        self.stopped = (self.proc.returncode, stats, time.monotonic() - t0)
        return self.stopped

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout * slow_factor()))


# --- raw WebSocket client ------------------------------------------------

HANDSHAKE = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n%s\r\n")


class Raw:
    def __init__(self, port, request=None, extra="", handshake=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.response = None
        if handshake:
            req = request if request is not None else HANDSHAKE % extra
            if isinstance(req, str):
                req = req.encode("latin1")
            self.sock.sendall(req)
            self.response = self.read_head()

    def read_head(self, timeout=5):
        deadline = time.monotonic() + timeout * slow_factor()
        while b"\r\n\r\n" not in self.buf:
            data = self.recv_some(deadline)
            if not data:
                break
        head, sep, rest = self.buf.partition(b"\r\n\r\n")
        self.buf = rest
        return head.decode("latin1")

    def recv_some(self, deadline):
        t = deadline - time.monotonic()
        if t <= 0:
            return b""
        self.sock.settimeout(t)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            return b""
        self.buf += data
        return data

    def send(self, data):
        self.sock.sendall(data)

    def frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0,
              length=None):
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        if n < 126:
            head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def next_frame(self, timeout=5):
        """(opcode, payload) of the next server frame, or None."""
        deadline = time.monotonic() + timeout * slow_factor()
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                n = b1 & 0x7f
                off = 2
                if n == 126 and len(self.buf) >= 4:
                    n = struct.unpack("!H", self.buf[2:4])[0]
                    off = 4
                elif n == 127 and len(self.buf) >= 10:
                    n = struct.unpack("!Q", self.buf[2:10])[0]
                    off = 10
                if (b1 & 0x7f) < 126 or off > 2:
                    if len(self.buf) >= off + n:
                        payload = self.buf[off:off + n]
                        self.buf = self.buf[off + n:]
                        return b0 & 0x0f, payload
            if not self.recv_some(deadline):
                return None

    def close_code(self, timeout=5):
        """Skip data frames until a close frame; (code, reason) or None."""
        while True:
            f = self.next_frame(timeout)
            if f is None:
                return None
            if f[0] == 8:
                if len(f[1]) >= 2:
                    return struct.unpack("!H", f[1][:2])[0], f[1][2:].decode(
                        "utf-8", "replace")
                return 1005, ""

    def eof(self, timeout=5):
        deadline = time.monotonic() + timeout * slow_factor()
        while True:
            t = deadline - time.monotonic()
            if t <= 0:
                return False
            self.sock.settimeout(t)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not data:
                return True

    def close(self):
        self.sock.close()


# --- protobuf, just enough for the envelope ------------------------------

def pb_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return pb_varint((num << 3) | 2) + pb_varint(len(data)) + data


def pb_int(num, v):
    return pb_varint(num << 3) + pb_varint(v)


def pb_parse(data):
    """field number -> list of values (bytes for length-delimited)."""
    fields = {}
    i = 0
    while i < len(data):
        key = 0
        shift = 0
        while True:
            b = data[i]
            i += 1
            key |= (b & 0x7f) << shift
            shift += 7
            if not b & 0x80:
                break
        num, wt = key >> 3, key & 7
        if wt == 0:
            v = 0
            shift = 0
            while True:
                b = data[i]
                i += 1
                v |= (b & 0x7f) << shift
                shift += 7
                if not b & 0x80:
                    break
        elif wt == 2:
            n = 0
            shift = 0
            while True:
                b = data[i]
                i += 1
                n |= (b & 0x7f) << shift
                shift += 7
                if not b & 0x80:
                    break
            v = data[i:i + n]
            i += n
        else:
            raise ValueError("unexpected wire type %d" % wt)
        fields.setdefault(num, []).append(v)
    return fields


def pb_envelope(msg_id, type_, target_id, payload, ts=None):
    return (pb_bytes(1, msg_id) + pb_bytes(3, type_) +
            pb_bytes(4, target_id) + pb_int(5, ts or int(time.time() * 1000))
            + pb_bytes(6, payload))


def pb_str(fields, num):
    return fields.get(num, [b""])[0].decode()


def pb_map(fields, num):
    out = {}
    for entry in fields.get(num, []):
        e = pb_parse(entry)
        out[pb_str(e, 1)] = pb_str(e, 2)
    return out
