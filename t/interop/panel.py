#!/usr/bin/python3
"""A dashboard ("panel") written with Python's websockets library, for the
interoperability tests of the agent.  Connects to URL and runs the steps
given on the command line in order, printing one JSON line per step:

  wait-heartbeat           the next heartbeat, as received (text)
  wait-type:TYPE           the next message of that type
  action:ID:NAME[:FRAGS]   send an action for --target (in FRAGS fragments)
                           and wait for the ack or error that answers it
  subscribe:ID:T1,T2       send a subscribe for those ids and patterns
                           (none: an empty set) and wait for its answer
  heartbeats:N             the target_id of each of the next N heartbeats
  ping[:PAYLOAD]           ping and wait for the pong
  sleep:SECONDS            stay connected (answering pings) for a while
  close[:CODE]             close and report the close code

A wss:// URL is verified against --cafile (PEM).
"""

import argparse
import asyncio
import json
import ssl
import sys
import time
import uuid

import websockets


def out(**kw):
    print(json.dumps(kw, ensure_ascii=False), flush=True)


async def next_message(ws, pred, timeout):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            m = await asyncio.wait_for(ws.recv(), left)
        except asyncio.TimeoutError:
            return None
        if isinstance(m, bytes):
            continue
        try:
            j = json.loads(m)
        except ValueError:
            continue
        if pred(j):
            return m


async def run(args):
    headers = {}
    if args.token:
        headers["Authorization"] = "Bearer " + args.token
    kw = {"extra_headers": headers, "max_size": 2 ** 24}
    if args.subprotocol:
        kw["subprotocols"] = [args.subprotocol]
    if args.ping_interval > 0:
        kw["ping_interval"] = args.ping_interval
        kw["ping_timeout"] = args.ping_interval * 2
    else:
        kw["ping_interval"] = None
    if args.cafile:
        kw["ssl"] = ssl.create_default_context(cafile=args.cafile)
    try:
        ws = await websockets.connect(args.url, **kw)
    except websockets.InvalidStatusCode as e:
        out(step="connect", ok=False, status=e.status_code)
        return 1
    out(step="connect", ok=True, subprotocol=ws.subprotocol)
    for step in args.steps:
        parts = step.split(":")
        name = parts[0]
        if name == "wait-heartbeat" or name == "wait-type":
            want = "heartbeat" if name == "wait-heartbeat" else parts[1]
            m = await next_message(
                ws, lambda j: isinstance(j, dict) and j.get("type") == want,
                args.timeout)
            out(step=step, ok=m is not None, text=m)
        elif name == "action":
            msg_id, action = parts[1], parts[2]
            frags = int(parts[3]) if len(parts) > 3 else 1
            env = {
                "msg_id": msg_id,
                "trace_id": "trace-" + msg_id,
                "type": "action",
                "target_id": args.target,
                "timestamp": int(time.time() * 1000),
                "payload": {"action": action,
                            "params": {"from": "python", "n": frags},
                            "target_url": args.target_url},
            }
            text = json.dumps(env)
            if frags > 1:
                step_len = max(1, len(text) // frags)
                await ws.send([text[i:i + step_len]
                               for i in range(0, len(text), step_len)])
            else:
                await ws.send(text)

            def answers(j):
                if not isinstance(j, dict):
                    return False
                p = j.get("payload") or {}
                if j.get("type") == "action_ack":
                    return p.get("action_msg_id") == msg_id
                return j.get("type") == "error" and j.get("msg_id") == msg_id
            m = await next_message(ws, answers, args.timeout)
            out(step=step, ok=m is not None, text=m, sent=text)
        elif name == "subscribe":
            msg_id = parts[1]
            targets = [x for x in ":".join(parts[2:]).split(",") if x]
            await ws.send(json.dumps({"msg_id": msg_id, "type": "subscribe",
                                      "payload": {"targets": targets}}))
            m = await next_message(
                ws, lambda j: isinstance(j, dict)
                and j.get("msg_id") == msg_id
                and j.get("type") in ("subscribed", "error"), args.timeout)
            out(step=step, ok=m is not None, text=m)
        elif name == "heartbeats":
            ids = []
            for _ in range(int(parts[1])):
                m = await next_message(
                    ws, lambda j: isinstance(j, dict)
                    and j.get("type") == "heartbeat", args.timeout)
                if m is None:
                    break
                ids.append(json.loads(m).get("target_id"))
            out(step=step, ok=len(ids) == int(parts[1]), targets=ids)
        elif name == "ping":
            payload = (parts[1] if len(parts) > 1 else "py-ping").encode()
            t0 = time.monotonic()
            try:
                waiter = await ws.ping(payload)
                await asyncio.wait_for(waiter, args.timeout)
                out(step=step, ok=True, rtt=time.monotonic() - t0)
            except (asyncio.TimeoutError, websockets.ConnectionClosed):
                out(step=step, ok=False)
        elif name == "sleep":
            t_end = time.monotonic() + float(parts[1])
            got = 0
            while time.monotonic() < t_end:
                try:
                    await asyncio.wait_for(ws.recv(),
                                           t_end - time.monotonic())
                    got += 1
                except asyncio.TimeoutError:
                    break
                except websockets.ConnectionClosed:
                    break
            out(step=step, ok=ws.open, received=got)
        elif name == "close":
            code = int(parts[1]) if len(parts) > 1 else 1000
            await ws.close(code, "python panel done")
            out(step=step, ok=True, code=ws.close_code,
                reason=ws.close_reason)
        else:
            out(step=step, ok=False, error="unknown step")
    if ws.open:
        await ws.close()
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("steps", nargs="*")
    ap.add_argument("--token")
    ap.add_argument("--cafile")
    ap.add_argument("--target", default="py-sdk")
    ap.add_argument("--target-url")
    ap.add_argument("--subprotocol")
    ap.add_argument("--ping-interval", type=float, default=0)
    ap.add_argument("--timeout", type=float, default=5)
    args = ap.parse_intermixed_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
