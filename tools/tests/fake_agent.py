#!/usr/bin/python3
# A stand-in for the AMonitor agent, for testing the amonitor CLI without
# nginx: serves panels on /ws/panel, forwards actions to real SDKs (or
# answers them itself for mock targets), forwards SDK messages to panels,
# de-duplicates actions by msg_id as the protocol asks.  JSON frames only.
#
#   fake_agent.py --port N [--token T] [--target ID=ws://h:p/ ...]
#                 [--mock ID:BEHAVIOUR ...] [--heartbeat SEC] [--events HZ]
#                 [--snapshot ID:STATE:HB_AGE:SINCE_AGE ...]
#                 [--close-first CODE:AFTER] [--exit-after-close]
#
# Mock behaviours: ok, fail, error, silent, nodedupe.  Prints "READY <port>"
# when listening and one line "ACTION <json>" per action it receives.
# Protobuf (binary) actions to mock targets are answered in protobuf.
# --snapshot: each new panel first gets the target's target_status (down
# or up "since" SINCE_AGE s) and its last heartbeat, stamped HB_AGE s ago
# (by the SDK's clock: negative for one running ahead), as the agent's
# snapshot.  --close-first: the first panel is closed with CODE after AFTER
# s ("PANEL <ms>" per panel, "CLOSED <ms>"); --exit-after-close: the agent
# then exits, as a stopped nginx.

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.parse
import uuid
from http import HTTPStatus

import websockets


def now_ms():
    return int(time.time() * 1000)


def envelope(type_, target_id, payload, msg_id=None):
    return json.dumps({
        "msg_id": msg_id or str(uuid.uuid4()),
        "type": type_,
        "target_id": target_id,
        "timestamp": now_ms(),
        "payload": payload,
    })


# --- protobuf, by hand (proto/amonitor.proto: Envelope, payloads) --------

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


def pb_field(num, value):
    if isinstance(value, bool) or isinstance(value, int):
        return pb_varint(num << 3) + pb_varint(int(value))
    if isinstance(value, str):
        value = value.encode()
    return pb_varint(num << 3 | 2) + pb_varint(len(value)) + value


def pb_fields(data):
    """{field number: value} of a message (varints and bytes only)."""
    out, i = {}, 0
    while i < len(data):
        key, i = pb_read_varint(data, i)
        if key & 7 == 0:
            out[key >> 3], i = pb_read_varint(data, i)
        elif key & 7 == 2:
            n, i = pb_read_varint(data, i)
            out[key >> 3], i = data[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % (key & 7))
    return out


def pb_read_varint(data, i):
    n, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def pb_envelope(type_, target_id, payload):
    return (pb_field(1, str(uuid.uuid4())) + pb_field(3, type_)
            + pb_field(4, target_id) + pb_field(5, now_ms())
            + pb_field(6, payload))


class Agent:
    def __init__(self, args):
        self.args = args
        self.panels = set()
        self.seen = {}          # msg_id -> stored ack payload or None
        self.waiting = {}       # action msg_id -> panel websocket
        self.sdks = {}          # target_id -> sdk websocket (connected)
        self.urls = {}          # normalised url -> target_id
        self.mocks = {}
        for spec in args.target:
            tid, url = spec.split("=", 1)
            self.urls[self.norm(url)] = tid
        for spec in args.mock:
            tid, behaviour = spec.split(":", 1)
            self.mocks[tid] = behaviour

    @staticmethod
    def norm(url):
        return url if url.endswith("/") else url + "/"

    async def broadcast(self, text):
        for ws in list(self.panels):
            try:
                await ws.send(text)
            except websockets.ConnectionClosed:
                pass

    # --- SDK side --------------------------------------------------------

    async def sdk_loop(self, tid, url):
        while True:
            try:
                async with websockets.connect(url) as ws:
                    self.sdks[tid] = ws
                    await self.broadcast(envelope(
                        "target_status", tid,
                        {"target_id": tid, "state": "up", "url": url}))
                    async for text in ws:
                        await self.from_sdk(text)
            except (OSError, websockets.WebSocketException):
                pass
            if self.sdks.pop(tid, None) is not None:
                await self.broadcast(envelope(
                    "target_status", tid,
                    {"target_id": tid, "state": "down", "url": url}))
            await asyncio.sleep(0.5)

    async def from_sdk(self, text):
        try:
            env = json.loads(text)
        except ValueError:
            return
        if env.get("type") == "action_ack":
            payload = env.get("payload", {})
            mid = payload.get("action_msg_id")
            self.seen[mid] = payload
            panel = self.waiting.pop(mid, None)
            if panel is not None:
                try:
                    await panel.send(text)
                except websockets.ConnectionClosed:
                    pass
            return
        await self.broadcast(text)

    async def mock_loop(self, tid):
        seq = 0
        next_hb = 0.0
        while True:
            t = time.monotonic()
            if t >= next_hb:
                await self.broadcast(envelope(
                    "heartbeat", tid,
                    {"target_id": tid, "status": "up",
                     "metrics": {"mock": "1"}}))
                next_hb = t + self.args.heartbeat
            if self.args.events > 0:
                seq += 1
                await self.broadcast(envelope(
                    "event", tid,
                    {"target_id": tid, "event_name": "tick",
                     "data": {"seq": seq}}))
                await asyncio.sleep(1.0 / self.args.events)
            else:
                await asyncio.sleep(0.1)

    # --- panel side ------------------------------------------------------

    async def process_request(self, path, headers):
        path, _, query = path.partition("?")
        if path != "/ws/panel":
            return HTTPStatus.NOT_FOUND, [], b"not found\n"
        for arg in query.split("&") if query else []:
            if arg.startswith("targets="):
                # what a panel asked for (the agent would send only those)
                print("TARGETS %s" % urllib.parse.unquote(arg[8:]),
                      flush=True)
        if self.args.token:
            if headers.get("Authorization") != "Bearer " + self.args.token:
                return HTTPStatus.UNAUTHORIZED, [], b"unauthorized\n"
        return None

    async def snapshot(self, ws):
        for spec in self.args.snapshot:
            tid, state, hb_age, since_age = spec.split(":")
            status = {"target_id": tid, "state": state,
                      "url": "ws://127.0.0.1:9/",
                      "since": now_ms() - int(float(since_age) * 1000)}
            if state == "down":
                status["reason"] = "connection lost"
            await ws.send(envelope("target_status", tid, status))
            hb = json.loads(envelope(
                "heartbeat", tid,
                {"target_id": tid, "status": "up", "metrics": {}}))
            hb["timestamp"] = now_ms() - int(float(hb_age) * 1000)
            await ws.send(json.dumps(hb))

    async def close_first(self, ws):
        code, after = self.args.close_first.split(":")
        await asyncio.sleep(float(after))
        if self.args.exit_after_close:
            self.server.server.close()  # a stopped nginx: nobody listens
        print("CLOSED %d" % now_ms(), flush=True)
        await ws.close(int(code), "agent reloading or stopping: reconnect")
        if self.args.exit_after_close:
            os._exit(0)

    async def panel(self, ws, path):
        self.npanels = getattr(self, "npanels", 0) + 1
        print("PANEL %d" % now_ms(), flush=True)
        if self.args.close_first and self.npanels == 1:
            asyncio.ensure_future(self.close_first(ws))
        try:
            await self.snapshot(ws)   # before any live message, as the agent
            self.panels.add(ws)
            async for text in ws:
                if isinstance(text, bytes):
                    await self.from_panel_pb(ws, text)
                    continue
                await self.from_panel(ws, text)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.panels.discard(ws)

    async def error(self, ws, mid, tid, code, message):
        await ws.send(envelope("error", tid,
                               {"code": code, "message": message}, mid))

    async def from_panel_pb(self, ws, data):
        """A protobuf action to a mock target, answered in protobuf."""
        env = pb_fields(data)
        mid = env.get(1, b"").decode()
        tid = env.get(4, b"").decode()
        action = pb_fields(env.get(6, b"")).get(1, b"").decode()
        print("ACTION " + json.dumps({"msg_id": mid, "target_id": tid,
                                      "binary": True,
                                      "payload": {"action": action}}),
              flush=True)
        ok = self.mocks.get(tid) in ("ok", "nodedupe") and action == "restart"
        msg = ("restarted" if ok else "failed on purpose"
               if self.mocks.get(tid) == "fail"
               else "unsupported action: %s" % action)
        ack = (pb_field(1, mid) + (pb_field(2, True) if ok else b"")
               + pb_field(3, msg) + pb_field(7, True))
        await ws.send(pb_envelope("action_ack", tid, ack))

    async def from_panel(self, ws, text):
        try:
            env = json.loads(text)
            mid = env["msg_id"]
        except (ValueError, KeyError, TypeError):
            await self.error(ws, None, None, "INVALID_MESSAGE", "bad json")
            return
        if env.get("type") != "action":
            return
        print("ACTION " + json.dumps(env), flush=True)
        payload = env.get("payload") or {}
        tid = env.get("target_id")
        if tid not in self.mocks and tid not in self.urls.values():
            tid = self.urls.get(self.norm(payload.get("target_url") or ""))
        if tid is None:
            await self.error(ws, mid, env.get("target_id"), "UNKNOWN_TARGET",
                             "unknown target")
            return

        behaviour = self.mocks.get(tid)
        if mid in self.seen and behaviour != "nodedupe":
            ack = {"action_msg_id": mid, "success": True,
                   "message": "duplicate ignored", "duplicate": True}
            if self.seen[mid] is not None:
                ack["original"] = self.seen[mid]
            await ws.send(envelope("action_ack", tid, ack))
            return
        self.seen[mid] = None

        if behaviour is None:
            sdk = self.sdks.get(tid)
            if sdk is None:
                del self.seen[mid]
                await self.error(ws, mid, tid, "TARGET_UNAVAILABLE",
                                 "target is not connected")
                return
            self.waiting[mid] = ws
            await sdk.send(text)
            return

        action = payload.get("action")
        if behaviour in ("ok", "nodedupe"):
            ack = {"action_msg_id": mid, "success": action == "restart",
                   "message": "restarted" if action == "restart"
                   else "unsupported action: %s" % action}
        elif behaviour == "fail":
            ack = {"action_msg_id": mid, "success": False,
                   "message": "failed on purpose"}
        elif behaviour == "error":
            await self.error(ws, mid, tid, "TARGET_UNAVAILABLE",
                             "target is down")
            return
        else:  # silent
            return
        self.seen[mid] = ack
        await ws.send(envelope("action_ack", tid, ack))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token")
    ap.add_argument("--target", action="append", default=[])
    ap.add_argument("--mock", action="append", default=[])
    ap.add_argument("--heartbeat", type=float, default=1.0)
    ap.add_argument("--events", type=float, default=0)
    ap.add_argument("--snapshot", action="append", default=[])
    ap.add_argument("--close-first")
    ap.add_argument("--exit-after-close", action="store_true")
    args = ap.parse_args()

    agent = Agent(args)
    server = await websockets.serve(agent.panel, "127.0.0.1", args.port,
                                    process_request=agent.process_request)
    agent.server = server
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)

    tasks = [asyncio.ensure_future(agent.sdk_loop(t, u))
             for u, t in agent.urls.items()]
    tasks += [asyncio.ensure_future(agent.mock_loop(t)) for t in agent.mocks]
    await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
