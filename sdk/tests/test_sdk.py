#!/usr/bin/python3
# SDK tests over the network, without nginx: python3-websockets (an
# independent WebSocket implementation) plays the agent; raw sockets send
# what a well-behaved client never would.

import asyncio
import json
import struct
import socket
import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from amontest import (HANDSHAKE, Host, Raw, Tap, pb_bytes, pb_envelope, pb_map,
                      pb_parse, pb_str, run, slow_factor)

try:
    import websockets
except ImportError:
    from amontest import skip_all
    skip_all("python3-websockets is not installed (make deps)")

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}"
                     r"-[0-9a-f]{12}$")

t = Tap()


def action(name, params=None, msg_id=None, **extra):
    env = {"msg_id": msg_id or str(uuid.uuid4()), "type": "action",
           "target_id": "test-target", "timestamp": int(time.time() * 1000),
           "payload": {"action": name, "params": params or {}}}
    env.update(extra)
    return env


async def connect(host, token=None, **kw):
    headers = {"Authorization": "Bearer " + token} if token else {}
    return await websockets.connect(host.url, extra_headers=headers,
                                    ping_interval=None, max_size=None, **kw)


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(),
                                             timeout * slow_factor()))


async def recv_type(ws, type_, timeout=5):
    """Skip other messages until one of type_ arrives."""
    deadline = time.monotonic() + timeout * slow_factor()
    while True:
        m = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        if m.get("type") == type_:
            return m


async def ack_for(ws, msg_id, timeout=5):
    deadline = time.monotonic() + timeout * slow_factor()
    while True:
        m = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        if (m.get("type") == "action_ack"
                and m["payload"].get("action_msg_id") == msg_id):
            return m


async def call(ws, name, params=None, **extra):
    a = action(name, params, **extra)
    await ws.send(json.dumps(a))
    return a, await ack_for(ws, a["msg_id"])


async def silence(ws, seconds):
    """Messages that arrive within "seconds" (heartbeats skipped)."""
    got = []
    try:
        while True:
            m = await recv_json(ws, seconds)
            if m.get("type") != "heartbeat":
                got.append(m)
    except asyncio.TimeoutError:
        return got


# --- heartbeats, register, actions ---------------------------------------

def test_heartbeat_and_actions():
    host = Host("--interval", "300")

    async def go():
        ws = await connect(host)
        t0 = time.monotonic()
        hb = await recv_json(ws)
        t.is_(hb["type"], "heartbeat", "first message is a heartbeat")
        t.ok(time.monotonic() - t0 < 0.25 * slow_factor(),
             "first heartbeat comes right after the connection opens")
        t.ok(UUID_RE.match(hb["msg_id"]), "heartbeat msg_id is a UUID4")
        t.is_(hb["target_id"], "test-target", "heartbeat target_id")
        t.ok(isinstance(hb["timestamp"], int)
             and abs(hb["timestamp"] - time.time() * 1000) < 5000,
             "heartbeat timestamp is UTC milliseconds")
        t.is_(hb["payload"], {"target_id": "test-target", "status": "up",
                              "metrics": {"name": "host", "actions": "0"}},
              "heartbeat payload: target_id, status up, provider metrics")

        # the interval: 300 ms
        hbs = [hb]
        while time.monotonic() - t0 < 1.05:
            m = await recv_json(ws, 1)
            if m["type"] == "heartbeat":
                hbs.append(m)
        t.ok(3 <= len(hbs) <= 5,
             "heartbeats every 300 ms (%d in 1.05 s)" % len(hbs))
        t.ok(len({h["msg_id"] for h in hbs}) == len(hbs),
             "every heartbeat has its own msg_id")

        a, ack = await call(ws, "restart", {"from": "test"}, trace_id="tr-1")
        p = ack["payload"]
        t.is_((p["action_msg_id"], p["success"], p["message"]),
              (a["msg_id"], True, "restarted"),
              "restart is acked success:true \"restarted\"")
        t.ok(UUID_RE.match(ack["msg_id"]) and ack["msg_id"] != a["msg_id"],
             "the ack has a fresh UUID msg_id")
        t.is_(ack["target_id"], "test-target", "ack target_id")
        t.is_(ack.get("trace_id"), "tr-1", "ack carries the trace_id")
        t.ok(isinstance(ack["timestamp"], int), "ack has a timestamp")

        a, ack = await call(ws, "fly")
        t.is_((ack["payload"]["success"], ack["payload"]["message"]),
              (False, "unsupported action: fly"),
              "an unknown action: success:false, unsupported action: fly")

        a, ack = await call(ws, "fail")
        t.is_((ack["payload"]["success"], ack["payload"]["message"]),
              (False, "failed on purpose"), "a failing handler")

        params = {"b": [1, 2, {"c": "é"}], "a": None}
        a = action("echo", params)
        raw = json.dumps(a, ensure_ascii=False)
        await ws.send(raw)
        ack = await ack_for(ws, a["msg_id"])
        sent_params = raw[raw.index('"params": ') + 10:raw.rindex("}}")]
        t.is_(ack["payload"]["message"],
              "%s||test-target|text" % sent_params,
              "the handler gets the params text verbatim and the target_id")

        a = {"msg_id": "no-params", "type": "action",
             "payload": {"action": "echo"}}
        await ws.send(json.dumps(a))
        ack = await ack_for(ws, "no-params")
        t.is_(ack["payload"]["message"], "{}|||text",
              "absent params are given as {}")

        a, ack = await call(ws, "bad_utf8")
        t.is_(ack["payload"]["message"], "invalid ack message",
              "an ack message that is not UTF-8 is replaced")

        hb = await recv_type(ws, "heartbeat")
        t.ok(int(hb["payload"]["metrics"]["actions"]) >= 6,
             "metrics are asked again for every heartbeat")
        await ws.close()

    run(go())
    rc, stats, _ = host.stop()
    t.is_(rc, 0, "host exits cleanly")


def test_register():
    host = Host("--register-url", "ws://127.0.0.1:9/sdk",
                "--metadata", '{"zone":"eu","n":1}')

    async def go():
        ws = await connect(host)
        m = await recv_json(ws)
        t.is_(m["type"], "register", "register is the first message")
        t.is_(m["payload"], {"target_id": "test-target",
                             "sdk_url": "ws://127.0.0.1:9/sdk",
                             "metadata": {"zone": "eu", "n": 1}},
              "register payload: target_id, sdk_url, metadata")
        m = await recv_json(ws)
        t.is_(m["type"], "heartbeat", "then the first heartbeat")
        await ws.close()

    run(go())
    host.stop()


# --- asynchronous acks ---------------------------------------------------

def test_async_acks():
    host = Host("--max-pending", "3")

    async def go():
        ws = await connect(host)
        await recv_type(ws, "heartbeat")

        slow = action("slow", {"ms": 400})
        t0 = time.monotonic()
        await ws.send(json.dumps(slow))
        a, ack = await call(ws, "restart")
        t.ok(time.monotonic() - t0 < 0.3 * slow_factor(),
             "a pending action does not hold up the next one")
        ack = await ack_for(ws, slow["msg_id"])
        dt = time.monotonic() - t0
        t.is_((ack["payload"]["success"], ack["payload"]["message"]),
              (True, "slow done"), "the async ack arrives")
        t.ok(dt >= 0.38, "... after the handler's delay (%.3fs)" % dt)

        a = action("early")
        await ws.send(json.dumps(a))
        ack = await ack_for(ws, a["msg_id"])
        t.is_(ack["payload"]["message"], "slow done",
              "an ack sent before the handler returned PENDING")
        extra = await silence(ws, 0.3)
        t.is_(extra, [], "... and nothing else")

        a = action("early_ok")
        await ws.send(json.dumps(a))
        ack = await ack_for(ws, a["msg_id"])
        extra = await silence(ws, 0.3)
        t.ok(ack["payload"]["message"] == "slow done" and extra == [],
             "acked by another thread and returned OK: exactly one ack",
             extra)

        a, ack = await call(ws, "ack_unknown")
        t.is_(ack["payload"]["message"], "rc=-6",
              "amonitor_sdk_ack with an unknown msg_id: NOTFOUND")

        a, ack = await call(ws, "stop_inside")
        t.is_(ack["payload"]["message"], "rc=-4",
              "amonitor_sdk_stop from a handler: ERR_STATE")

        # max_pending 3
        slows = [action("slow", {"ms": 600}) for _ in range(4)]
        for s in slows:
            await ws.send(json.dumps(s))
        ack = await ack_for(ws, slows[3]["msg_id"], 0.4)
        t.is_((ack["payload"]["success"], ack["payload"]["message"]),
              (False, "too many pending actions"),
              "over max_pending: refused at once")
        want = {s["msg_id"] for s in slows[:3]}
        done = set()
        while done != want:
            m = await recv_type(ws, "action_ack")
            if m["payload"]["success"]:
                done.add(m["payload"]["action_msg_id"])
        t.ok(True, "the pending ones complete")

        # the same msg_id again and again on one connection while it is
        # pending: one answer, and the repeats do not pile up
        slow = action("slow", {"ms": 400})
        for _ in range(500):
            await ws.send(json.dumps(slow))
        ack = await ack_for(ws, slow["msg_id"])
        t.is_(ack["payload"]["message"], "slow done",
              "500 repeats of a pending action: it runs once")
        extra = [m for m in await silence(ws, 0.5)
                 if m.get("type") == "action_ack"]
        t.is_(extra, [], "... and the connection gets one answer, not 500")

        # the connection goes away while an action is pending
        ws2 = await connect(host)
        await recv_type(ws2, "heartbeat")
        await ws2.send(json.dumps(action("slow", {"ms": 300})))
        await asyncio.sleep(0.05)
        await ws2.close()
        await asyncio.sleep(0.5 * slow_factor())
        await ws.close()

    run(go())
    rc, stats, _ = host.stop()
    t.is_(stats and stats["acks_dropped"], 1,
          "an async ack for a closed connection is dropped and counted")


def test_repeats_over_connections():
    """A pending action repeated over many short connections: the ones
    that closed leave its list of waiters (which once grew by one entry
    per connection, each repeat scanning them all: memory and CPU without
    bound, quadratic)."""
    host = Host("--interval", "0")

    async def go():
        ws = await connect(host)
        slow = action("slow", {"ms": 4000 * slow_factor()})
        await ws.send(json.dumps(slow))
        t0 = time.monotonic()
        for _ in range(200):
            raw = Raw(host.port)
            raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.frame(1, json.dumps(slow))
            raw.frame(8, struct.pack("!H", 1000))
            raw.close_code()
            raw.close()
        stats = host.stats()
        t.diag("200 repeats in %.2fs" % (time.monotonic() - t0))
        t.is_((stats["acks_dropped"], stats["acks"]), (199, 0),
              "200 repeats over closed connections while pending: the "
              "closed ones leave the waiters (their acks dropped)")
        ack = await ack_for(ws, slow["msg_id"], 20)
        t.is_(ack["payload"]["message"], "slow done",
              "the action runs once and its first connection gets the ack")

    run(go())
    rc, stats, _ = host.stop()
    t.is_(stats and (stats["acks"], stats["acks_dropped"]), (1, 200),
          "one ack sent, one per closed connection dropped")


# --- tokens --------------------------------------------------------------

def test_token():
    host = Host("--token", "s3cret")

    async def closed_with(token):
        ws = await connect(host, token)
        try:
            await recv_json(ws)
            return None
        except websockets.ConnectionClosed:
            return ws.close_code, ws.close_reason

    async def go():
        t.is_(await closed_with(None), (4401, "unauthorized"),
              "no Authorization header: handshake, then close 4401")
        t.is_(await closed_with("wrong"), (4401, "unauthorized"),
              "wrong token: close 4401")
        t.is_(await closed_with("s3cre"), (4401, "unauthorized"),
              "a prefix of the token: close 4401")
        ws = await connect(host, "s3cret")
        m = await recv_json(ws)
        t.is_(m["type"], "heartbeat", "the right token: served")
        a, ack = await call(ws, "restart")
        t.ok(ack["payload"]["success"], "... and actions work")
        await ws.close()

        raw = Raw(host.port, extra="Authorization: bearer  s3cret \r\n")
        t.ok(raw.response.startswith("HTTP/1.1 101")
             and raw.next_frame()[0] == 1,
             "the scheme is case-insensitive, blanks around the token ok")
        raw.close()

    run(go())
    rc, stats, _ = host.stop()
    t.is_(stats and stats["rejected"], 3, "rejected connections counted")


# --- many agent connections ----------------------------------------------

def test_many_connections():
    host = Host()

    async def go():
        conns = [await connect(host) for _ in range(6)]
        for ws in conns:
            await recv_type(ws, "heartbeat")
        t.is_(host.stats()["connections"], 6, "six agent connections open")

        a = action("restart")
        await conns[3].send(json.dumps(a))
        ack = await ack_for(conns[3], a["msg_id"])
        t.ok(ack["payload"]["success"], "an action on connection 4 is acked")
        others = [await silence(ws, 0.2) for i, ws in enumerate(conns)
                  if i != 3]
        t.is_(others, [[]] * 5, "... on that connection only")

        out = host.command('emit hello {"x":[1,2]}', "EMIT ")
        t.is_(out, "0", "emit from the main thread succeeds")
        evs = [await recv_type(ws, "event") for ws in conns]
        t.ok(all(e["payload"] == {"target_id": "test-target",
                                  "event_name": "hello",
                                  "data": {"x": [1, 2]}} for e in evs),
             "every connection gets the event", evs[0])
        t.ok(len({e["msg_id"] for e in evs}) == 1,
             "one event, one msg_id on all connections")

        t.is_(host.command("emit bad {x", "EMIT "), "-1",
              "emit with invalid JSON is refused (AMONITOR_ERR_INVAL)")

        a = action("emit", {"count": 200, "size": 10})
        await conns[0].send(json.dumps(a))
        for n, ws in enumerate(conns):
            seq = []
            while len(seq) < 200:
                m = await recv_json(ws)
                if m["type"] == "event":
                    seq.append(m["payload"]["data"]["i"])
            if n == 0:
                t.is_(seq, list(range(200)),
                      "200 events emitted by another thread arrive in order")
        t.ok(True, "... on all six connections")

        for ws in conns:
            await ws.close()

    run(go(), 40)
    host.stop()


def test_max_connections():
    host = Host("--max-connections", "2")

    async def go():
        a = await connect(host)
        b = await connect(host)
        try:
            c = await connect(host)
            await recv_json(c, 2)
            t.ok(False, "a third connection is refused")
        except (websockets.InvalidHandshake, websockets.ConnectionClosed,
                OSError, asyncio.TimeoutError):
            t.ok(True, "a third connection is refused")
        m = await recv_json(a)
        t.is_(m["type"], "heartbeat", "the first two are served")
        await a.close()
        await b.close()

    run(go())
    rc, stats, _ = host.stop()
    t.is_(stats and stats["rejected"], 1, "the refusal is counted")

    # sockets that never finish a handshake (or were refused for the
    # token) cannot hold every place: the oldest makes room for a new one
    host = Host("--max-connections", "3", "--token", "s3cret")

    async def squat():
        idle = [socket.create_connection(("127.0.0.1", host.port))
                for _ in range(3)]
        await asyncio.sleep(0.2)
        agents = []
        for n in range(3):
            ws = await connect(host, "s3cret")
            m = await recv_json(ws)
            t.is_(m["type"], "heartbeat",
                  "all places held by idle sockets: agent %d is served"
                  % (n + 1))
            agents.append(ws)
        for n, sock in enumerate(idle):
            sock.settimeout(2)
            t.is_(sock.recv(1), b"", "idle socket %d was closed to make "
                  "room, the oldest first" % (n + 1))
        try:
            ws = await connect(host, "s3cret")
            await recv_json(ws, 2)
            t.ok(False, "with three agents open, a fourth is refused")
        except (websockets.InvalidHandshake, websockets.ConnectionClosed,
                OSError, asyncio.TimeoutError):
            t.ok(True, "with three agents open, a fourth is refused")
        for sock in idle:
            sock.close()
        for ws in agents:
            await ws.close()

    run(squat())
    host.stop()

    # without a token anyone finishes a handshake: connections that then
    # say nothing cannot hold every place either, once silent long enough
    host = Host("--max-connections", "2", "--idle-agent", "600")

    async def silent():
        quiet = await connect(host)
        talking = await connect(host)
        await recv_json(quiet)
        try:
            ws = await connect(host)
            await recv_json(ws, 2)
            t.ok(False, "nobody silent for 0.6 s yet: a third is refused")
        except (websockets.InvalidHandshake, websockets.ConnectionClosed,
                OSError, asyncio.TimeoutError):
            t.ok(True, "nobody silent for 0.6 s yet: a third is refused")
        for _ in range(9):
            await talking.ping()
            await asyncio.sleep(0.1)
        try:
            newcomer = await connect(host)
            m = await recv_json(newcomer)
        except (websockets.InvalidHandshake, websockets.ConnectionClosed,
                OSError, asyncio.TimeoutError) as e:
            t.ok(False, "0.9 s later a new agent is served (%r)" % e)
            return
        t.is_(m["type"], "heartbeat", "0.9 s later a new agent is served")
        try:
            await asyncio.wait_for(quiet.recv(), 2 * slow_factor())
            t.ok(False, "the silent connection was closed for it")
        except websockets.ConnectionClosed:
            t.ok(True, "the silent connection was closed for it")
        pong = await talking.ping()
        await asyncio.wait_for(pong, 2 * slow_factor())
        t.ok(True, "the one that kept talking is still served")
        await talking.close()
        await newcomer.close()

    run(silent())
    rc, stats, _ = host.stop()
    t.is_(stats and stats["rejected"], 2,
          "the refusal and the eviction are counted")


def test_places_by_address():
    # a flood of sockets from one address (127.0.0.2) replaces its own
    # sockets, not the agent's handshake in progress from another one
    host = Host("--max-connections", "4", "--token", "s3cret",
                "--log-stdout")
    agent = socket.create_connection(("127.0.0.1", host.port))
    req = (HANDSHAKE % "Authorization: Bearer s3cret\r\n").encode()
    agent.sendall(req[:20])
    flood = []
    for _ in range(40):
        sock = socket.socket()
        sock.bind(("127.0.0.2", 0))
        sock.connect(("127.0.0.1", host.port))
        flood.append(sock)
    time.sleep(0.3)
    agent.settimeout(5 * slow_factor())
    head = b""
    try:
        agent.sendall(req[20:])
        while b"\r\n\r\n" not in head:
            data = agent.recv(4096)
            if not data:
                break
            head += data
    except OSError:
        pass
    t.ok(head.startswith(b"HTTP/1.1 101"),
         "40 sockets from another address while the agent's handshake is "
         "under way: the agent gets in", head[:80])
    for sock in flood:
        sock.close()
    agent.close()
    rc, stats, _ = host.stop()
    t.ok(stats and stats["rejected"] >= 36,
         "the flood's sockets made room for each other (%s rejected)"
         % (stats and stats["rejected"]))
    room = [ln for ln in host.lines.all if "places are taken" in ln]
    t.is_(len(room), 1, "one log line for the evictions, not one each")
    t.ok(room and "127.0.0.2:" in room[0], "it names the flood's address",
         room)


def test_log_escaped():
    host = Host("--log-stdout")
    bad = "x\x1b]0;PWNED\x07\x1b[2J\u009b1m"

    async def go():
        ws = await connect(host)
        await ws.send(json.dumps(action("restart" + bad, msg_id="m" + bad)))
        await recv_type(ws, "action_ack")
        await ws.close()

    run(go())
    host.stop()
    lines = [ln for ln in host.lines.all
             if ln.startswith("LOG ") and "received" in ln]
    t.ok(lines and "restartx\\u001b]0;PWNED\\u0007" in lines[0]
         and "\\u009b1m" in lines[0],
         "a log line quoting an action shows its escape sequence escaped",
         lines)
    t.ok(lines and not any(ord(c) < 0x20 and c != "\n"
                           or 0x7f <= ord(c) < 0xa0 for c in lines[0]),
         "... and carries no control character", lines)


# --- bad input -----------------------------------------------------------

def test_handshake_errors():
    host = Host("--path", "/sdk")

    def status(req):
        r = Raw(host.port, request=req)
        line = r.response.split("\r\n")[0]
        eof = r.eof()
        r.close()
        return line, eof

    ok = ("GET /sdk HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
          "Connection: keep-alive, Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          "Sec-WebSocket-Version: 13\r\n\r\n")
    r = Raw(host.port, request=ok)
    t.ok(r.response.startswith("HTTP/1.1 101"),
         "the configured path is accepted")
    r.close()

    line, eof = status(ok.replace("/sdk", "/other"))
    t.ok(line.startswith("HTTP/1.1 404") and eof,
         "another path: 404 and the connection closed", line)
    line, _ = status(ok.replace("/sdk ", "/sdk?x=1 "))
    t.ok(line.startswith("HTTP/1.1 101"), "a query string is ignored", line)
    line, _ = status(ok.replace("GET", "POST"))
    t.ok(line.startswith("HTTP/1.1 405"), "POST: 405", line)
    line, _ = status(ok.replace("Sec-WebSocket-Version: 13\r\n", ""))
    t.ok(line.startswith("HTTP/1.1 4"), "no version: 4xx", line)
    line, _ = status(ok.replace("Version: 13", "Version: 8"))
    t.ok(line.startswith("HTTP/1.1 426"), "version 8: 426", line)
    line, _ = status(ok.replace("Upgrade: websocket\r\n", ""))
    t.ok(line.startswith("HTTP/1.1 4"), "no Upgrade header: 4xx", line)
    line, _ = status(ok.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"))
    t.ok(line.startswith("HTTP/1.1 400"), "a bad key: 400", line)
    line, _ = status(ok.replace("Host: x\r\n",
                                "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="
                                "\r\n"))
    t.ok(line.startswith("HTTP/1.1 400"), "two keys: 400", line)
    # RFC 6455 4.2.1, RFC 9110/9112: a Host, once; names that are tokens;
    # no control characters; Sec-WebSocket-Version and Authorization once
    for req, name in [
            (ok.replace("Host: x\r\n", ""), "no Host"),
            (ok.replace("Host: x\r\n", "Host: x\r\nHost: y\r\n"),
             "two Hosts"),
            (ok.replace("Host: x", "Host : x"), "a blank before the colon"),
            (ok.replace("Host: x", "Host: x\x00y"), "a NUL in a value"),
            (ok.replace("Sec-WebSocket-Version: 13\r\n",
                        "Sec-WebSocket-Version: 8\r\n"
                        "Sec-WebSocket-Version: 13\r\n"),
             "two versions")]:
        line, _ = status(req)
        t.ok(line.startswith("HTTP/1.1 400"), name + ": 400", line)

    # a short request and a frame of 9 KiB in one write: the frame is not
    # counted as head (431 is for heads over 8 KiB)
    sock = socket.create_connection(("127.0.0.1", host.port), timeout=10)
    a = action("restart", {"pad": "p" * 9000})
    payload = json.dumps(a).encode()
    key = os.urandom(4)
    frame = (struct.pack("!BBH", 0x81, 0x80 | 126, len(payload)) + key
             + bytes(c ^ key[i % 4] for i, c in enumerate(payload)))
    sock.sendall(ok.encode() + frame)
    sock.settimeout(5 * slow_factor())
    got = b""
    try:
        while a["msg_id"].encode() not in got:
            data = sock.recv(65536)
            if not data:
                break
            got += data
    except socket.timeout:
        pass
    sock.close()
    t.ok(got.startswith(b"HTTP/1.1 101") and a["msg_id"].encode() in got,
         "a request with 9 KiB of frames behind it: 101 and the action "
         "answered", got[:80])

    line, _ = status("\x00\x01\x02 garbage\r\n\r\n")
    t.ok(line.startswith("HTTP/1.1 400"), "garbage: 400", line)
    line, _ = status("GET /sdk HTTP/1.1\r\n" + "X: " + "a" * 9000 + "\r\n")
    t.ok(line.startswith("HTTP/1.1 431"), "an endless header: 431", line)

    rc, stats, _ = host.stop()
    t.is_(rc, 0, "host still fine after bad handshakes")


def test_bad_frames():
    host = Host("--max-message", "4096")

    def close_after(*frames, raw_bytes=None):
        r = Raw(host.port)
        r.next_frame()  # the first heartbeat
        if raw_bytes:
            r.send(raw_bytes)
        for f in frames:
            r.frame(*f[0], **f[1])
        code = r.close_code()
        eof = r.eof()
        r.close()
        return code and code[0], eof

    async def go():
        good = await connect(host)
        await recv_type(good, "heartbeat")

        cases = [
            ("an unmasked frame", [((1, "{}"), {"mask": False})], 1002),
            ("RSV1 without extension", [((1, "{}"), {"rsv": 4})], 1002),
            ("a reserved opcode", [((3, "x"), {})], 1002),
            ("a control frame over 125 bytes", [((9, "p" * 126), {})], 1002),
            ("a fragmented ping", [((9, "p"), {"fin": False})], 1002),
            ("a continuation without a start", [((0, "x"), {})], 1002),
            ("a new message inside a fragmented one",
             [((1, "{"), {"fin": False}), ((1, "}"), {})], 1002),
            ("invalid UTF-8 in a text message", [((1, b"\xc3\x28"), {})],
             1007),
            ("invalid UTF-8 split over fragments",
             [((1, b"ab\xe2"), {"fin": False}), ((0, b"\x28\xa1"), {})],
             1007),
            ("a close payload of 1 byte", [((8, b"\x03"), {})], 1002),
            ("a close with an invalid code", [((8, b"\x03\xe7"), {})], 1002),
            ("a message over max_message",
             [((1, "x" * 5000), {})], 1009),
            ("a fragmented message over max_message",
             [((1, "x" * 3000), {"fin": False}), ((0, "x" * 3000), {})],
             1009),
        ]
        for name, frames, want in cases:
            code, eof = close_after(*frames)
            t.ok(code == want and eof,
                 "%s: close %d, then the SDK hangs up" % (name, want),
                 "got %r eof=%r" % (code, eof))

        code, eof = close_after(raw_bytes=b"\x81\xff" + b"\xff" * 8
                                + b"mask")
        t.is_(code, 1002, "a 64-bit length with the top bit set: 1002")

        # announced size over max_message: refused before the payload
        r = Raw(host.port)
        r.next_frame()
        r.send(b"\x82\xfe\x27\x10mask")  # binary, masked, 10000 bytes
        t.is_(r.close_code(), (1009, "message too big"),
              "an oversized header is refused before its payload")
        r.close()

        a, ack = await call(good, "restart")
        t.ok(ack["payload"]["success"],
             "a well-behaved agent connection is served throughout")

        # well framed, invalid content: ignored, connection kept
        before = host.stats()["invalid"]
        for junk in ["not json", "[1,2]", '{"type":"action"}',
                     '{"msg_id":"x"}', '{"msg_id":"x","type":"action"}',
                     '{"msg_id":1,"type":"action","payload":{}}',
                     '{"msg_id":"x","type":"action","payload":{}} trailing',
                     '{"msg_id":"x","type":"action","payload":{"action":'
                     + "[" * 40 + "]" * 40 + "}}",
                     '{"msg_id":"e1","type":"action","payload":{}}',
                     '{"msg_id":"e2","type":"action","payload":'
                     '{"action":"","params":{}}}',
                     '{"msg_id":"e3","type":"action","payload":'
                     '{"params":{"a":1}}}']:
            await good.send(junk)
        await good.send(b"\x0a\x05junk")
        await good.send(json.dumps({"msg_id": "h", "type": "heartbeat",
                                    "payload": {}}))
        a, ack = await call(good, "restart")
        t.ok(ack["payload"]["success"],
             "invalid envelopes are ignored, the connection keeps working")
        t.is_(host.stats()["invalid"] - before, 12,
              "... and counted (a heartbeat from the agent is not invalid; "
              "an action without a name is)")

        # good frames a client library would not produce
        r = Raw(host.port)
        r.next_frame()
        a = json.dumps(action("restart", msg_id="frag-1"))
        r.frame(1, a[:10], fin=False)
        r.frame(9, "mid-ping")
        r.frame(0, a[10:30], fin=False)
        r.frame(0, "", fin=False)
        r.frame(0, a[30:])
        f1 = r.next_frame()
        f2 = r.next_frame()
        t.is_(f1, (10, b"mid-ping"),
              "a ping between fragments is answered with its payload")
        t.ok(f2 and f2[0] == 1 and b'"action_msg_id":"frag-1"' in f2[1],
             "a fragmented action is reassembled and acked", f2)
        r.frame(9, b"")
        t.is_(r.next_frame(), (10, b""), "an empty ping gets an empty pong")
        r.frame(8, b"\x03\xe8bye")
        t.is_(r.close_code(), (1000, ""), "a client close is echoed (1000)")
        t.ok(r.eof(), "... and the SDK closes the TCP connection")
        r.close()

        r = Raw(host.port)
        r.next_frame()
        r.frame(8, b"")
        t.is_(r.close_code(), (1000, ""),
              "an empty close is answered with 1000, as the agent does")
        r.close()

        # a client that vanishes without a close frame
        r = Raw(host.port)
        r.next_frame()
        r.close()

        await asyncio.sleep(0.2)
        t.is_(host.stats()["connections"], 1,
              "connections are released, only the good one is left")

        async with websockets.connect(host.url, ping_interval=None) as ws:
            await recv_type(ws, "heartbeat")
            pong = await ws.ping(b"abc")
            await asyncio.wait_for(pong, 2)
            t.ok(True, "a websocket library ping is answered")
        await good.close()

    run(go(), 60)
    rc, stats, _ = host.stop()
    t.ok(rc == 0 and stats["protocol_errors"] >= 14,
         "host survives; protocol errors counted", stats)


# --- protobuf ------------------------------------------------------------

def test_protobuf():
    host = Host("--binary", "--register-url", "ws://127.0.0.1:1/")

    async def go():
        ws = await connect(host)
        first = await asyncio.wait_for(ws.recv(), 5)
        t.ok(isinstance(first, bytes), "a binary SDK sends binary frames")
        env = pb_parse(first)
        t.is_(pb_str(env, 3), "register", "protobuf register first")
        reg = pb_parse(env[6][0])
        t.is_((pb_str(reg, 1), pb_str(reg, 2)),
              ("test-target", "ws://127.0.0.1:1/"), "RegisterPayload fields")

        env = pb_parse(await asyncio.wait_for(ws.recv(), 5))
        t.is_(pb_str(env, 3), "heartbeat", "protobuf heartbeat")
        t.ok(env.get(5, [0])[0] > 1.6e12, "Envelope.timestamp is set")
        hb = pb_parse(env[6][0])
        t.is_((pb_str(hb, 1), pb_map(hb, 2)),
              ("test-target", {"name": "host", "actions": "0"}),
              "HeartbeatPayload target_id and metrics map")

        payload = (pb_bytes(1, "echo") + pb_bytes(2, '{"x":1}') +
                   pb_bytes(3, "ws://127.0.0.1:1/"))
        await ws.send(pb_envelope("pb-1", "action", "test-target", payload))
        while True:
            env = pb_parse(await asyncio.wait_for(ws.recv(), 5))
            if pb_str(env, 3) == "action_ack":
                break
        ack = pb_parse(env[6][0])
        t.is_((pb_str(ack, 1), ack.get(2, [0])[0], pb_str(ack, 3)),
              ("pb-1", 1, '{"x":1}||test-target|binary'),
              "a protobuf action gets a protobuf ack")
        t.ok(pb_str(env, 1) not in ("", "pb-1"), "the ack has its own id")

        # a NUL in a string field: protobuf-c would hand "echo\0x" to C as
        # "echo" (and msg_id "pb-2\0x" as "pb-2"); refused as in JSON
        invalid = host.stats()["invalid"]
        await ws.send(pb_envelope("pb-2", "action", "test-target",
                                  pb_bytes(1, "echo\0x")))
        await ws.send(pb_envelope("pb-2\0x", "action", "test-target",
                                  pb_bytes(1, "echo")))
        await ws.send(pb_envelope("pb-3", "action", "test-target",
                                  pb_bytes(1, "echo") +
                                  pb_bytes(3, "ws://h:1/\0x")))
        # params that are not JSON, or nested deeper than a JSON envelope
        # may be: refused as such a JSON envelope is
        await ws.send(pb_envelope("pb-5", "action", "test-target",
                                  pb_bytes(1, "echo") +
                                  pb_bytes(2, "[" * 5000 + "]" * 5000)))
        await ws.send(pb_envelope("pb-6", "action", "test-target",
                                  pb_bytes(1, "echo") + pb_bytes(2, "{x")))
        await ws.send(pb_envelope("pb-4", "action", "test-target",
                                  pb_bytes(1, "echo")))
        while True:
            env = pb_parse(await asyncio.wait_for(ws.recv(), 5))
            if pb_str(env, 3) == "action_ack":
                break
        t.is_(pb_str(pb_parse(env[6][0]), 1), "pb-4",
              "protobuf actions with a NUL in a string field or params "
              "that are not JSON of at most 32 levels get no ack")
        t.is_(host.stats()["invalid"] - invalid, 5,
              "and are counted as invalid")

        # a JSON action to a binary SDK is answered in JSON
        a = action("restart")
        await ws.send(json.dumps(a))
        while True:
            m = await asyncio.wait_for(ws.recv(), 5)
            if isinstance(m, str):
                break
        m = json.loads(m)
        t.is_((m["type"], m["payload"]["action_msg_id"]),
              ("action_ack", a["msg_id"]),
              "the ack uses the action's encoding (JSON)")

        host.command('emit e {"k":"v"}', "EMIT ")
        while True:
            env = pb_parse(await asyncio.wait_for(ws.recv(), 5))
            if pb_str(env, 3) == "event":
                break
        ev = pb_parse(env[6][0])
        t.is_((pb_str(ev, 1), pb_str(ev, 2), ev[3][0]),
              ("test-target", "e", b'{"k":"v"}'),
              "EventPayload: target_id, event_name, data as JSON text")
        await ws.close()

    run(go())
    host.stop()


# --- a stuck agent connection --------------------------------------------

def test_slow_agent():
    host = Host("--interval", "200", "--max-send-queue", "262144")

    async def go():
        stuck = Raw(host.port)       # completes the handshake, never reads
        stuck.sock.setsockopt(__import__("socket").SOL_SOCKET,
                              __import__("socket").SO_RCVBUF, 4096)
        good = await connect(host)
        await recv_type(good, "heartbeat")

        a = action("emit", {"count": 600, "size": 16000, "pause_us": 1000})
        await good.send(json.dumps(a))
        t0 = time.monotonic()
        got = 0
        late = 0
        last_hb = t0
        while got < 600 and time.monotonic() - t0 < 20 * slow_factor():
            m = await recv_json(good, 5)
            if m["type"] == "event":
                got += 1
            elif m["type"] == "heartbeat":
                now = time.monotonic()
                late = max(late, now - last_hb)
                last_hb = now
        t.is_(got, 600, "a reading agent gets all 9.6 MB of events")
        t.ok(late < 1.0 * slow_factor(),
             "... and its heartbeats on time (largest gap %.2fs)" % late)
        a, ack = await call(good, "restart")
        t.ok(ack["payload"]["success"],
             "the SDK keeps serving while another connection is stuck")
        st = host.stats()
        t.ok(st["dropped"] > 0,
             "messages for the stuck connection are dropped (%d)"
             % st["dropped"])
        t.is_(st["connections"], 2, "the stuck connection is kept open")
        stuck.close()
        await good.close()

    run(go(), 60)
    rc, stats, secs = host.stop()
    t.ok(rc == 0, "host stops cleanly")


# --- host event loop mode ------------------------------------------------

def test_host_loop():
    host = Host("--loop", "--interval", "250")

    async def go():
        ws = await connect(host)
        m = await recv_json(ws)
        t.is_(m["type"], "heartbeat", "host loop: first heartbeat")
        m = await recv_type(ws, "heartbeat", 1)
        t.ok(True, "host loop: the heartbeat timer fires")
        a, ack = await call(ws, "restart")
        t.ok(ack["payload"]["success"], "host loop: actions acked")
        slow = action("slow", {"ms": 200})
        await ws.send(json.dumps(slow))
        ack = await ack_for(ws, slow["msg_id"])
        t.is_(ack["payload"]["message"], "slow done",
              "host loop: an ack from another thread wakes the loop")
        host.command('emit tick {"n":1}', "EMIT ")
        ev = await recv_type(ws, "event")
        t.is_(ev["payload"]["event_name"], "tick", "host loop: events")
        await ws.close()

    run(go())
    rc, stats, _ = host.stop()
    t.is_(rc, 0, "host loop: clean stop")


# --- clean stop ----------------------------------------------------------

def test_clean_stop():
    host = Host()

    async def go():
        conns = [await connect(host) for _ in range(3)]
        for ws in conns:
            await recv_type(ws, "heartbeat")
        raw = Raw(host.port)
        raw.next_frame()
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, host.stop)
        codes = []
        for ws in conns:
            try:
                while True:
                    await recv_json(ws, 5)
            except websockets.ConnectionClosed:
                codes.append((ws.close_code, ws.close_reason))
        t.is_(codes, [(1001, "going away")] * 3,
              "stop sends close 1001 \"going away\" to every agent")
        t.is_(raw.close_code(), (1001, "going away"),
              "... also to one that does not answer the close")
        rc, stats, secs = await fut
        t.ok(rc == 0 and secs < 3 * slow_factor(),
             "the host stops promptly (%.2fs) and exits 0" % secs)
        t.is_(stats and stats["connections"], 0, "no connection left")
        raw.close()

    run(go())


test_heartbeat_and_actions()
test_register()
test_async_acks()
test_repeats_over_connections()
test_token()
test_many_connections()
test_max_connections()
test_places_by_address()
test_log_escaped()
test_handshake_errors()
test_bad_frames()
test_protobuf()
test_slow_agent()
test_host_loop()
test_clean_stop()

codes = [h.stop()[0] for h in Host.instances]
t.is_(codes, [0] * len(codes),
      "every SDK host exited 0 (no valgrind or sanitizer report)")
t.done()
