#!/usr/bin/env python3
# The SDK side of bench/idle-learned.sh: one asyncio server on 127.0.0.1
# that answers every WebSocket handshake and then stays silent.  The
# connection to /hub sends N "register" messages, each naming
# ws://127.0.0.1:PORT/sdk/I, so that the agent learns N targets and
# connects to each of them.  Prints "connections C" to stderr on SIGUSR1.
#
# Usage: bench/idle-learned-sdk.py PORT N

import asyncio
import base64
import hashlib
import json
import signal
import sys
import uuid

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
port, n = int(sys.argv[1]), int(sys.argv[2])
open_conns = 0


def frame(text):
    data = text.encode()
    if len(data) < 126:
        return bytes([0x81, len(data)]) + data
    return bytes([0x81, 126]) + len(data).to_bytes(2, "big") + data


async def serve(reader, writer):
    global open_conns
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        writer.close()
        return
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    key = b""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-key":
            key = value.strip().encode()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                  % accept).encode())
    open_conns += 1
    if path == "/hub":
        for i in range(1, n + 1):
            tid = "l%d" % i
            writer.write(frame(json.dumps({
                "msg_id": str(uuid.uuid4()), "type": "register",
                "target_id": tid, "timestamp": 0,
                "payload": {"target_id": tid,
                            "sdk_url": "ws://127.0.0.1:%d/sdk/%d"
                            % (port, i)}})))
            if i % 256 == 0:
                await writer.drain()
    await writer.drain()
    # silent from now on: read (and drop) until the agent goes away
    while await reader.read(65536):
        pass
    open_conns -= 1
    writer.close()


async def main():
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(
        "connections %d" % open_conns, file=sys.stderr, flush=True))
    server = await asyncio.start_server(serve, "127.0.0.1", port,
                                        backlog=4096)
    async with server:
        await server.serve_forever()


asyncio.run(main())
