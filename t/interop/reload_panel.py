#!/usr/bin/python3
"""A reload seen by a panel written with Python's websockets library that
keeps sending while it is behind.  The script is the SDK too: it serves
--sdk-port and waits for the agent to dial it; then the panel connects to
URL, the SDK sends --events events of 2 KiB (more than the sockets hold),
the panel sends a message every millisecond, the script sends SIGHUP to
nginx's master (--master-pid) and the panel reads all it can.  Prints one
JSON line: how the connection ended (close code, 1006 when it ended
without a close frame) and how many events the panel read.  With
--cafile, URL is a wss:// one whose certificate that CA signed;
--read-delay makes the panel slower still.
"""

import argparse
import asyncio
import json
import os
import signal
import ssl

import websockets

PAD = "x" * 2048


def out(**kw):
    print(json.dumps(kw), flush=True)


async def main(a):
    agent = asyncio.Event()
    go = asyncio.Event()

    async def sdk(ws, path=None):
        agent.set()
        await go.wait()
        for i in range(a.events):
            await ws.send(json.dumps({"type": "event", "target_id": a.target,
                "msg_id": "e%d" % i, "ts": 1, "payload": {"pad": PAD}}))
        await ws.wait_closed()

    async with websockets.serve(sdk, "127.0.0.1", a.sdk_port):
        await asyncio.wait_for(agent.wait(), 10)

        tls = None
        if a.cafile:
            tls = ssl.create_default_context(cafile=a.cafile)

        async with websockets.connect(a.url, max_queue=1, ssl=tls) as ws:
            await asyncio.sleep(0.3)
            go.set()
            await asyncio.sleep(a.fill)
            os.kill(a.master_pid, signal.SIGHUP)

            async def sender():
                while True:
                    await ws.send('{"type":"noop"}')
                    await asyncio.sleep(0.001)

            st = asyncio.ensure_future(sender())
            n = 0
            try:
                while True:
                    m = await asyncio.wait_for(ws.recv(), 10)
                    if json.loads(m).get("type") == "event":
                        n += 1
                    if a.read_delay:
                        await asyncio.sleep(a.read_delay)
            except websockets.ConnectionClosed as e:
                out(ev="closed", code=e.code, reason=e.reason, events=n)
            except asyncio.TimeoutError:
                out(ev="timeout", events=n)
            st.cancel()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("--sdk-port", type=int, required=True)
    p.add_argument("--master-pid", type=int, required=True)
    p.add_argument("--target", default="py-reload")
    p.add_argument("--events", type=int, default=1500)
    p.add_argument("--fill", type=float, default=1.5)
    p.add_argument("--cafile", help="CA of a wss:// URL's certificate")
    p.add_argument("--read-delay", type=float, default=0,
        help="seconds the panel waits after each message it reads")
    asyncio.run(main(p.parse_args()))
