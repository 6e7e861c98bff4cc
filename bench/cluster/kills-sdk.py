#!/usr/bin/python3
"""An SDK for bench/cluster/kills.sh: a WebSocket server that acks every
action after payload.params.delay_ms and appends one line per action it
runs to --log ("<msg_id>\\n"), so that the script can count the msg_ids
run more than once.  A heartbeat every --interval seconds."""
import argparse
import asyncio
import json
import time
import uuid

import websockets

ap = argparse.ArgumentParser()
ap.add_argument('--port', type=int, required=True)
ap.add_argument('--id', required=True)
ap.add_argument('--interval', type=float, default=2.0)
ap.add_argument('--log', required=True)
args = ap.parse_args()

runs = open(args.log, 'a', buffering=1)
peers = set()


def envelope(kind, payload):
    return json.dumps({'msg_id': str(uuid.uuid4()), 'type': kind,
                       'target_id': args.id,
                       'timestamp': int(time.time() * 1000),
                       'payload': payload}, separators=(',', ':'))


async def ack(ws, msg, delay):
    await asyncio.sleep(delay / 1000.0)
    try:
        await ws.send(envelope('action_ack', {
            'action_msg_id': msg['msg_id'], 'success': True,
            'message': 'done by ' + args.id}))
    except websockets.ConnectionClosed:
        pass


async def serve(ws, path=None):
    peers.add(ws)
    try:
        async for text in ws:
            try:
                msg = json.loads(text)
            except ValueError:
                continue
            if msg.get('type') != 'action':
                continue
            runs.write(msg.get('msg_id', '') + '\n')
            params = (msg.get('payload') or {}).get('params') or {}
            asyncio.ensure_future(ack(ws, msg, int(params.get('delay_ms', 0))))
    except websockets.ConnectionClosed:
        pass
    finally:
        peers.discard(ws)


async def main():
    async with websockets.serve(serve, '127.0.0.1', args.port,
                                ping_interval=None):
        while True:
            await asyncio.sleep(args.interval)
            beat = envelope('heartbeat', {'target_id': args.id,
                                          'status': 'up', 'metrics': {}})
            for ws in list(peers):
                try:
                    await ws.send(beat)
                except websockets.ConnectionClosed:
                    pass

asyncio.run(main())
