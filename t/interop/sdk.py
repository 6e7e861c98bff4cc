#!/usr/bin/python3
"""A monitored program's SDK written with Python's websockets library, for
the interoperability tests of the agent: a WebSocket server that sends a
heartbeat on open and then every --hb-interval seconds, answers actions
with an action_ack, checks a Bearer token (close 4401), and logs what it
sends and receives as JSON lines to --log.  With --tls-cert and --tls-key
it serves wss://."""

import argparse
import asyncio
import json
import ssl
import sys
import time
import uuid

import websockets


def now_ms():
    return int(time.time() * 1000)


class SDK:
    def __init__(self, args):
        self.args = args
        self.log = open(args.log, "a", buffering=1, encoding="utf-8")
        self.seq = 0
        self.conns = 0

    def note(self, **kw):
        kw["t"] = time.time()
        self.log.write(json.dumps(kw, ensure_ascii=False) + "\n")

    def heartbeat_text(self):
        self.seq += 1
        # deliberately unusual formatting: spaces, key order, non-ASCII,
        # escapes; the agent must forward these bytes unchanged
        return (
            '{ "type" : "heartbeat", "msg_id": "%s",  "target_id": "%s",'
            ' "timestamp": %d, "payload": {"target_id": "%s", "status": "up",'
            ' "metrics": {"seq": "%d", "note": "caf\u00e9 \\u00e9 \\"q\\""},'
            ' "extra": [1, 2.5e3, null, true]}, "trace_id": "py-%d" }'
            % (uuid.uuid4(), self.args.target_id, now_ms(),
               self.args.target_id, self.seq, self.seq))

    async def send(self, ws, text, fragments=1):
        if fragments > 1:
            step = max(1, len(text) // fragments)
            parts = [text[i:i + step] for i in range(0, len(text), step)]
            await ws.send(parts)
        else:
            await ws.send(text)
        self.note(ev="sent", conn=id(ws), text=text, fragments=fragments)

    async def heartbeats(self, ws):
        try:
            while True:
                await self.send(ws, self.heartbeat_text(),
                                self.args.fragment_heartbeat)
                if self.args.hb_interval <= 0:
                    return
                await asyncio.sleep(self.args.hb_interval)
        except websockets.ConnectionClosed:
            pass

    async def handler(self, ws, path=None):
        headers = ws.request_headers
        auth = headers.get("Authorization")
        self.note(ev="connect", conn=id(ws), path=ws.path, auth=auth,
                  host=headers.get("Host"))
        if self.args.token is not None and auth != "Bearer " + self.args.token:
            self.note(ev="reject", conn=id(ws))
            await ws.close(4401, "unauthorized")
            return
        self.conns += 1
        hb = asyncio.ensure_future(self.heartbeats(ws))
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    self.note(ev="recv-binary", conn=id(ws), len=len(message))
                    continue
                self.note(ev="recv", conn=id(ws), text=message)
                try:
                    env = json.loads(message)
                except ValueError:
                    continue
                if not isinstance(env, dict) or env.get("type") != "action":
                    continue
                payload = env.get("payload") or {}
                name = payload.get("action")
                ok = name == "restart"
                ack = {
                    "msg_id": str(uuid.uuid4()),
                    "type": "action_ack",
                    "target_id": self.args.target_id,
                    "timestamp": now_ms(),
                    "payload": {
                        "action_msg_id": env.get("msg_id"),
                        "success": ok,
                        "message": "restarted by python" if ok
                        else "unsupported action: %s" % name,
                    },
                }
                if env.get("trace_id") is not None:
                    ack["trace_id"] = env["trace_id"]
                await self.send(ws, json.dumps(ack),
                                self.args.fragment_ack)
        except websockets.ConnectionClosed:
            pass
        finally:
            hb.cancel()
            self.conns -= 1
            self.note(ev="close", conn=id(ws), code=ws.close_code,
                      reason=ws.close_reason)

    async def main(self):
        kw = {}
        if self.args.ping_interval > 0:
            kw["ping_interval"] = self.args.ping_interval
            kw["ping_timeout"] = self.args.ping_interval * 2
        else:
            kw["ping_interval"] = None
        if self.args.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.args.tls_cert, self.args.tls_key)
            kw["ssl"] = ctx
        async with websockets.serve(self.handler, "127.0.0.1",
                                    self.args.port, **kw):
            self.note(ev="listening", port=self.args.port)
            print("READY", flush=True)
            await asyncio.Future()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--target-id", default="py-sdk")
    ap.add_argument("--token")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--hb-interval", type=float, default=0.3)
    ap.add_argument("--fragment-heartbeat", type=int, default=1)
    ap.add_argument("--fragment-ack", type=int, default=1)
    ap.add_argument("--ping-interval", type=float, default=0)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    try:
        asyncio.run(SDK(args).main())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
