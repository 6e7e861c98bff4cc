#!/usr/bin/env python3
# Many SDKs and many subscribed panels: nginx with --workers workers and
# --sdks targets (one asyncio server answers them all and sends each a
# heartbeat every --interval seconds on every agent connection, as an SDK
# does), --panels panels subscribed to --per-panel random targets each
# (?targets=) and --all panels that take everything.  Reports the delivery
# latency (heartbeat made -> read by a panel) p50/p99, deliveries against
# what the subscriptions promise, and the workers' Rss and CPU time.
#
#   python3 bench/agent/scale.py --sdks 2000 --panels 2000
#
# --sdk-procs K plays the SDKs in K helper processes sharing the port
# (SO_REUSEPORT): this machine allows 20,000 open files per process, and
# two workers make 20,000 SDK connections for 10,000 SDKs.

import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
LAT = []
GOT = {"n": 0}
MEASURING = {"on": False}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def frame(op, data):
    n = len(data)
    if n < 126:
        return bytes([0x80 | op, n]) + data
    if n < 65536:
        return bytes([0x80 | op, 126]) + struct.pack(">H", n) + data
    return bytes([0x80 | op, 127]) + struct.pack(">Q", n) + data


async def read_frame(reader):
    h = await reader.readexactly(2)
    op, ln = h[0] & 0x0F, h[1] & 0x7F
    if ln == 126:
        ln = struct.unpack(">H", await reader.readexactly(2))[0]
    elif ln == 127:
        ln = struct.unpack(">Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if h[1] & 0x80 else None
    data = await reader.readexactly(ln)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return op, data


async def sdk_conn(reader, writer, a):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    target = lines[0].split(b" ")[1].decode().strip("/")
    key = b""
    for line in lines:
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    acc = base64.b64encode(hashlib.sha1(key + GUID).digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc
                 + b"\r\n\r\n")

    async def beat():
        await asyncio.sleep(random.random() * a.interval)
        seq = 0
        while True:
            seq += 1
            # the same envelope on every agent connection, as an SDK does
            slot = int(time.time() / a.interval)
            env = {"msg_id": "hb-%s-%d" % (target, slot),
                   "type": "heartbeat", "target_id": target,
                   "timestamp": int(time.time() * 1000),
                   "payload": {"target_id": target,
                               "metrics": {"t": "%.6f" % time.time()}}}
            writer.write(frame(1, json.dumps(env).encode()))
            await asyncio.sleep(a.interval)

    task = asyncio.ensure_future(beat())
    try:
        while True:
            op, data = await read_frame(reader)
            if op == 9:
                writer.write(frame(10, data))
            elif op == 8:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    task.cancel()
    writer.close()


async def panel(port, targets):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    q = "" if targets is None else "?targets=" + ",".join(targets)
    writer.write(("GET /ws/panel%s HTTP/1.1\r\nHost: x\r\n" % q).encode()
                 + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: " + key + b"\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")

    async def run():
        try:
            while True:
                op, data = await read_frame(reader)
                if op == 9:
                    writer.write(bytes([0x8A, 0x80 | len(data)]) + b"\0" * 4
                                 + data)
                    continue
                if op != 1 or not MEASURING["on"]:
                    continue
                j = json.loads(data)
                if j.get("type") != "heartbeat":
                    continue
                t = float(j["payload"]["metrics"]["t"])
                LAT.append(time.time() - t)
                GOT["n"] += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    return asyncio.ensure_future(run()), writer


def stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().split()
    rss = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
    return int(v[13]) + int(v[14]), rss


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sdks", type=int, default=2000)
    ap.add_argument("--panels", type=int, default=2000)
    ap.add_argument("--per-panel", type=int, default=10)
    ap.add_argument("--all", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--module",
                    default="build/nginx/ngx_http_amonitor_module.so")
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--sdk-procs", type=int, default=0,
                    help="SDK servers in helper processes (SO_REUSEPORT)")
    ap.add_argument("--role", default="main")
    ap.add_argument("--sdk-port", type=int, default=0)
    a = ap.parse_args()

    if a.role == "sdk":
        # a helper: its share of the SDK connections, until killed
        await asyncio.start_server(
            lambda r, w: sdk_conn(r, w, a), "127.0.0.1", a.sdk_port,
            backlog=8192, reuse_port=True)
        await asyncio.Event().wait()

    prefix = tempfile.mkdtemp(prefix="amon-scale-")
    sdk_port, http_port = free_port(), free_port()
    targets = "".join("    amonitor_target t%d ws://127.0.0.1:%d/t%d;\n"
                      % (i, sdk_port, i) for i in range(a.sdks))
    conf = """
load_module %s;
worker_processes %d;
worker_rlimit_nofile 20000;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 19000; }
http {
    access_log off;
    amonitor_zone amon 64m;
    amonitor_reconnect 200ms 2s;
%s
    server {
        listen 127.0.0.1:%d reuseport backlog=4096;
        location = /ws/panel { amonitor_panel on; amonitor_panel_snapshot off; }
    }
}
""" % (os.path.abspath(a.module), a.workers, prefix, prefix, targets,
       http_port)
    with open(prefix + "/nginx.conf", "w") as f:
        f.write(conf)
    os.makedirs(prefix + "/logs", exist_ok=True)

    helpers = []
    if a.sdk_procs:
        for _ in range(a.sdk_procs):
            helpers.append(subprocess.Popen(
                ["python3", os.path.abspath(__file__), "--role", "sdk",
                 "--sdk-port", str(sdk_port), "--interval",
                 str(a.interval)]))
        await asyncio.sleep(1.0)
        server = None
    else:
        server = await asyncio.start_server(
            lambda r, w: sdk_conn(r, w, a), "127.0.0.1", sdk_port,
            backlog=8192)

    t_start = time.time()
    subprocess.run([a.nginx, "-p", prefix, "-c", prefix + "/nginx.conf",
                    "-e", prefix + "/error.log"], check=True)
    try:
        while not os.path.exists(prefix + "/nginx.pid"):
            await asyncio.sleep(0.05)
        master = int(open(prefix + "/nginx.pid").read())
        await asyncio.sleep(0.5)
        workers = [int(p) for p in subprocess.run(
            ["pgrep", "-P", str(master)], capture_output=True,
            text=True).stdout.split()]

        # the panels: --per-panel random targets each, then --all
        subs = {}
        tasks = []
        names = ["t%d" % i for i in range(a.sdks)]
        t0 = time.time()
        for i in range(0, a.panels, 200):
            batch = []
            for _ in range(i, min(a.panels, i + 200)):
                pick = random.sample(names, a.per_panel)
                for t in pick:
                    subs[t] = subs.get(t, 0) + 1
                batch.append(panel(http_port, pick))
            tasks += await asyncio.gather(*batch)
        tasks += await asyncio.gather(*(panel(http_port, None)
                                        for _ in range(a.all)))
        t_panels = time.time() - t0

        # one heartbeat interval to settle, then measure
        await asyncio.sleep(a.interval + 1)
        c0 = [stat(w) for w in workers]
        MEASURING["on"] = True
        await asyncio.sleep(a.duration)
        MEASURING["on"] = False
        c1 = [stat(w) for w in workers]

        # what the subscriptions promise in the window
        expected = a.duration / a.interval * (sum(subs.values())
                                              + a.all * a.sdks)
        LAT.sort()
        n = len(LAT)
        cpu = sum(y[0] - x[0] for x, y in zip(c0, c1)) \
            / os.sysconf("SC_CLK_TCK")
        print("sdks=%d panels=%d+%d workers=%d interval=%.0fs "
              "panels_connected_in=%.1fs" % (a.sdks, a.panels, a.all,
                                            a.workers, a.interval, t_panels))
        print("deliveries=%d expected=%.0f p50_ms=%.1f p99_ms=%.1f "
              "max_ms=%.1f" % (n, expected,
                               LAT[n // 2] * 1000 if n else -1,
                               LAT[int(n * 0.99)] * 1000 if n else -1,
                               LAT[-1] * 1000 if n else -1))
        print("worker_cpu_s=%.2f over %.0fs (%.1f%% of one core) "
              "worker_rss_mib=%s" % (cpu, a.duration,
                                     cpu / a.duration * 100,
                                     ",".join("%.1f" % (y[1] / 2**20)
                                              for y in c1)))
        print("time_total=%.0fs" % (time.time() - t_start))
        for t, w in tasks:
            t.cancel()
            w.close()
    finally:
        subprocess.run([a.nginx, "-p", prefix, "-c", prefix + "/nginx.conf",
                        "-e", prefix + "/error.log", "-s", "stop"])
        if server:
            server.close()
        for h in helpers:
            h.terminate()
            h.wait()
        await asyncio.sleep(0.5)
        errs = open(prefix + "/error.log").read().count("[alert]")
        if errs:
            print("alerts in the error log: %d" % errs)
        shutil.rmtree(prefix, ignore_errors=True)


asyncio.run(main())
