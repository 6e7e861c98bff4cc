# The short-lived panels of the soak run (bench/soak/soak.py): clean ones
# with ?targets=, subscribe with a pattern, resets, half handshakes,
# broken frames, invalid messages and panels that stall; each checks what
# the agent must answer.

import asyncio
import json
import random
import socket
import struct
import time

import websockets

from instance import HOST

OK_CLOSE = (1000, 1012)


class ShortPanels:
    async def churn(self):
        kinds = ["clean", "clean", "subscribe", "reset", "half", "garbage",
                 "unmasked", "stall", "invalid"]
        tasks = set()
        while self.a.churn > 0 and not self.stop_load:
            await asyncio.sleep(random.expovariate(self.a.churn))
            k = random.choice(kinds)
            t = asyncio.ensure_future(self.short_panel(k))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=15)


    async def short_panel(self, k):
        t0 = time.monotonic()
        try:
            await self.short_panel_run(k, t0)
        finally:
            if time.monotonic() - t0 > 5:
                self.say("short panel %s took %.1f s" % (k, time.monotonic() - t0))

    async def short_panel_run(self, k, t0):
        self.count["short_" + k] += 1
        try:
            inst = self.inst_of()
            if k in ("clean", "subscribe"):
                await self.short_ws(k, inst)
                return
            if k == "invalid":
                await self.short_invalid(inst)
                return
            r, w = await asyncio.open_connection(HOST, inst.port)
            req = (b"GET /ws/panel HTTP/1.1\r\nHost: x\r\nUpgrade: websocket"
                   b"\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                   b"dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
                   b"\r\n\r\n")
            if k == "stall":           # reads nothing for a while, then
                w.write(req)            # closes: the echo comes after
                await r.readuntil(b"\r\n\r\n")     # what was queued
                await asyncio.sleep(random.uniform(1, 3))
                w.write(b"\x88\x82\x00\x00\x00\x00\x03\xe8")
                code = await self.raw_close_code(r)
                if code not in OK_CLOSE:
                    self.fail("stalled panel's close: %s, not 1000" % code)
            elif k == "half":
                w.write(req[:random.randint(1, len(req) - 1)])
                await w.drain()
                await asyncio.sleep(random.uniform(0, 0.5))
            else:
                w.write(req)
                await r.readuntil(b"\r\n\r\n")
                if k == "unmasked":     # a client frame without a mask
                    w.write(b"\x81\x05hello")
                elif k == "garbage":    # a reserved opcode, masked
                    w.write(b"\x83\x85\x01\x02\x03\x04hello")
                await w.drain()
                if k in ("unmasked", "garbage"):
                    code = await self.raw_close_code(r)
                    if code not in (1002, 1012):
                        self.fail("%s frame: close %s, not 1002" % (k, code))
                else:                   # reset: RST, no close frame
                    await asyncio.sleep(random.uniform(0, 0.3))
                    sock = w.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
            w.close()
        except websockets.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
            self.count["short_closed_%s" % code] += 1
            if code not in OK_CLOSE:
                self.fail("short panel %s: %r" % (k, e))
        except (OSError, asyncio.IncompleteReadError,
                websockets.WebSocketException) as e:
            if self.last_reload >= t0 - 0.5:
                # a worker that stops gives up on a panel that does not
                # read what it has queued (its 1012 among it)
                self.count["short_cut_by_reload"] += 1
            else:
                self.fail("short panel %s: %r" % (k, e))

    async def short_invalid(self, inst):
        # not JSON, then an action for a target nobody serves: both
        # answered with an error, and the panel stays open
        async with websockets.connect(inst.url("?targets="),
                                      ping_interval=None) as ws:
            await ws.send("{not json")
            await ws.send(json.dumps({
                "msg_id": "bad-1", "type": "action",
                "target_id": "no-such-target",
                "payload": {"action": "soak"}}))
            codes = []
            for _ in range(2):
                m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                codes.append((m.get("payload") or {}).get("code"))
            if sorted(codes) != ["INVALID_MESSAGE", "UNKNOWN_TARGET"]:
                self.fail("invalid messages answered %s" % codes)

    async def raw_close_code(self, r):
        # skip the snapshot's frames to the close frame
        while True:
            h = await asyncio.wait_for(r.readexactly(2), 5)
            n = h[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", await r.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", await r.readexactly(8))[0]
            body = await r.readexactly(n)
            if h[0] & 0x0F == 8:
                return struct.unpack(">H", body[:2])[0] if n >= 2 else None

    async def short_ws(self, k, inst):
        want = set(random.sample(self.targets, random.randint(
            1, min(3, len(self.targets)))))
        pat = sorted(want)[0][:-1] + "*" if k == "subscribe" else None
        tls = self.tls if self.tls and random.random() < 0.5 else None
        if tls:
            self.count["tls_short_panels"] += 1
        async with websockets.connect(
                inst.url("?targets=" + ",".join(sorted(want)),
                         tls is not None),
                ssl=tls, ping_interval=None, max_size=None) as ws:
            if pat:
                await ws.send(json.dumps({"msg_id": "s1", "type": "subscribe",
                                          "payload": {"targets": [pat]}}))
            allowed, seen, subscribed = want, set(), False
            end = time.monotonic() + random.uniform(0.3, 1.5)
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), max(
                        0.001, end - time.monotonic()))
                except asyncio.TimeoutError:
                    break
                m = json.loads(raw)
                if m["type"] == "subscribed":
                    # nothing about the new set before this answer
                    subscribed = True
                    allowed = set(t for t in self.targets if t.startswith(
                        pat[:-1]))
                    seen = set()
                    continue
                p = m.get("payload") or {}
                tid = p.get("target_id") or m.get("target_id")
                if tid not in allowed:
                    self.fail("short panel for %s got %s of %s" %
                              (sorted(allowed), m["type"], tid))
                if m["type"] == "target_status":
                    seen.add(tid)
            if pat and not subscribed:
                self.fail("subscribe %s: no answer" % pat)
            elif seen != allowed:       # the snapshot: one per target
                self.fail("snapshot of %s had %s" % (sorted(allowed),
                                                      sorted(seen)))

