#!/usr/bin/python3
"""The panels of bench/cluster/kills.sh, one on each instance: --rate new
actions a second to random targets; an id not answered within 7 s, or
whose panel's connection dropped, is sent again through another instance
(as a dashboard retries); 5 % of the sends repeat an answered id.  The
counts, and the answers by kind, go to --out (JSON)."""
import argparse
import asyncio
import collections
import json
import random
import time
import uuid

import websockets

ap = argparse.ArgumentParser()
ap.add_argument('--dur', type=int, default=180)
ap.add_argument('--rate', type=float, default=35)
ap.add_argument('--out', required=True)
ap.add_argument('--ports', required=True, help='the instances, comma-separated')
a = ap.parse_args()

PORTS = [int(p) for p in a.ports.split(',')]
TARGETS = ['fa', 'fb', 'fc']
pending = {}      # msg_id -> (target, sent_at, port)
done = []
kinds = collections.Counter()
stats = {'ids': 0, 'sends': 0, 'answers': 0}
conns = {}


def act(mid, target):
    return json.dumps({"msg_id": mid, "type": "action", "target_id": target,
                       "timestamp": int(time.time() * 1000),
                       "payload": {"action": "restart",
                                   "params": {"delay_ms": random.randint(0, 300)}}})


async def panel(port):
    while True:
        try:
            async with websockets.connect('ws://127.0.0.1:%d/ws/panel' % port,
                                          ping_interval=None, max_size=None) as ws:
                conns[port] = ws
                async for m in ws:
                    j = json.loads(m)
                    t = j.get('type')
                    if t not in ('action_ack', 'error'):
                        continue
                    p = j.get('payload') or {}
                    mid = p.get('action_msg_id') if t == 'action_ack' else j.get('msg_id')
                    if t == 'action_ack' and p.get('final') is False:
                        continue
                    if t == 'error' and p.get('final') is False:
                        continue
                    if mid in pending:
                        del pending[mid]
                        done.append(mid)
                        stats['answers'] += 1
                        k = t if t == 'action_ack' else 'error:' + str(p.get('code'))
                        if p.get('duplicate'):
                            k += ':dup:' + str(p.get('state')) + ':' + str((p.get('original') or {}).get('code'))
                        kinds[k] += 1
        except Exception:
            pass
        conns.pop(port, None)
        await asyncio.sleep(0.2)


async def send(mid, target, avoid=None):
    ports = [p for p in PORTS if p != avoid and p in conns] or [p for p in PORTS if p in conns]
    if not ports:
        return False
    port = random.choice(ports)
    try:
        await conns[port].send(act(mid, target))
    except Exception:
        return False
    pending[mid] = (target, time.time(), port)
    stats['sends'] += 1
    return True


async def retrier():
    while True:
        await asyncio.sleep(0.5)
        now = time.time()
        for mid, (target, at, port) in list(pending.items()):
            if now - at > 7 or port not in conns:
                await send(mid, target, avoid=port)


async def main():
    for p in PORTS:
        asyncio.ensure_future(panel(p))
    asyncio.ensure_future(retrier())
    await asyncio.sleep(1)
    end = time.time() + a.dur - 20
    while time.time() < end:
        await asyncio.sleep(1.0 / a.rate)
        if done and random.random() < 0.05:
            mid = random.choice(done)
            await send(mid, random.choice(TARGETS))
            continue
        mid = str(uuid.uuid4())
        stats['ids'] += 1
        await send(mid, random.choice(TARGETS))
    t = time.time()
    while pending and time.time() - t < 15:
        await asyncio.sleep(0.5)
    stats['kinds'] = dict(kinds)
    stats['unanswered'] = len(pending)
    json.dump(stats, open(a.out, 'w'))

asyncio.run(main())
