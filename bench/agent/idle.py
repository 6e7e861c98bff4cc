#!/usr/bin/env python3
# Idle memory per connection of one nginx worker with the module: N SDK
# connections (targets the worker dials, answered by one asyncio server
# that completes the handshake, answers pings and otherwise stays quiet)
# and N panels that connect and then stay quiet.  The worker's Rss and Pss
# (/proc/PID/smaps_rollup) are read with the SDK server down (the targets
# exist, in backoff), with the N SDK connections open, and with the N
# panels open too; the differences divided by N are the cost of one idle
# connection of each kind.
#
#   python3 bench/agent/idle.py [--n 1000] [--module build/nginx/...so]
#                               [--tls]
#
# --tls: the panels over "listen ... ssl" and the targets over wss://
# (certificates made for the run with scripts/tls-certs.sh).
#
# Prints "KIND rss_bytes_per_conn pss_bytes_per_conn" for: sdk (what an
# open SDK connection adds to its target), sdk_with_target (the target
# and its connection, against a worker with no target) and panel.

import argparse
import asyncio
import base64
import hashlib
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rollup(pid):
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[0] in ("Rss:", "Pss:"):
                out[parts[0][:-1]] = int(parts[1]) * 1024
    return out


def detail(pid):
    out, cur = {}, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if ":" not in parts[0] and "-" in parts[0]:
                cur = parts[0] + " " + (parts[5] if len(parts) > 5 else "")
            elif parts[0] == "Rss:":
                out[cur] = int(parts[1])
    return out


def worker_pids(master):
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                         text=True).stdout.split()
    return [int(p) for p in out]


async def sdk_conn(reader, writer, state):
    # the agent's upgrade request, then our 101
    head = await reader.readuntil(b"\r\n\r\n")
    key = b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    acc = base64.b64encode(hashlib.sha1(key + GUID).digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc
                 + b"\r\n\r\n")
    state["open"] += 1
    try:
        while True:
            # masked client frames; answer a ping, drop the rest
            h = await reader.readexactly(2)
            op, ln = h[0] & 0x0F, h[1] & 0x7F
            if ln == 126:
                ln = struct.unpack(">H", await reader.readexactly(2))[0]
            elif ln == 127:
                ln = struct.unpack(">Q", await reader.readexactly(8))[0]
            mask = await reader.readexactly(4)
            data = bytearray(await reader.readexactly(ln))
            for i in range(ln):
                data[i] ^= mask[i % 4]
            if op == 9:
                writer.write(bytes([0x8A, len(data)]) + bytes(data))
            elif op == 8:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    state["open"] -= 1
    writer.close()


async def panel(port, i, panels, tls=None):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
    key = base64.b64encode(os.urandom(16))
    writer.write(b"GET /ws/panel HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: " + key + b"\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    panels.append((reader, writer))


async def drain(panels):
    # read what the agent sends (snapshot, pings) so nothing stays queued
    while True:
        for r, w in panels:
            try:
                data = await asyncio.wait_for(r.read(65536), 0.001)
                if data and data[0] & 0x0F == 9:
                    w.write(bytes([0x8A, 0x80]) + b"\0\0\0\0")
            except asyncio.TimeoutError:
                pass
        await asyncio.sleep(0.5)


def base_worker(a, prefix, http_port):
    conf = open(prefix + "/nginx.conf").read()
    conf = "\n".join(l for l in conf.split("\n")
                     if "amonitor_target" not in l)
    conf = conf.replace("%s/nginx.pid" % prefix, "%s/base.pid" % prefix)
    conf = conf.replace("127.0.0.1:%d " % http_port,
                        "127.0.0.1:%d " % free_port())
    with open(prefix + "/base.conf", "w") as f:
        f.write(conf)
    subprocess.run([a.nginx, "-p", prefix, "-c", prefix + "/base.conf",
                    "-e", prefix + "/base-error.log"], check=True)
    for _ in range(100):
        if os.path.exists(prefix + "/base.pid"):
            break
        time.sleep(0.05)
    time.sleep(a.settle)
    m = rollup(worker_pids(int(open(prefix + "/base.pid").read()))[0])
    subprocess.run([a.nginx, "-p", prefix, "-c", prefix + "/base.conf",
                    "-e", prefix + "/base-error.log", "-s", "stop"])
    return m


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="panels")
    ap.add_argument("--sdks", type=int, default=-1,
                    help="SDK connections (default: as many as panels)")
    ap.add_argument("--module", default="build/nginx/ngx_http_amonitor_module.so")
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=100,
                    help="panels that connect at the same time")
    ap.add_argument("--tls", action="store_true",
                    help="panels over TLS, targets over wss://")
    a = ap.parse_args()
    if a.sdks < 0:
        a.sdks = a.n

    prefix = tempfile.mkdtemp(prefix="amon-idle-")
    sdk_port, http_port = free_port(), free_port()
    scheme, listen, sdk_tls, panel_tls = "ws", "", None, None
    if a.tls:
        certs = prefix + "/certs"
        subprocess.run(["bash", os.path.join(os.path.dirname(
            os.path.abspath(__file__)), "../../scripts/tls-certs.sh"),
            certs], check=True, stdout=subprocess.DEVNULL)
        scheme = "wss"
        listen = (" ssl;\n        ssl_certificate %s/panel.crt;\n"
                  "        ssl_certificate_key %s/panel.key" % (certs, certs))
        sdk_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        sdk_tls.load_cert_chain(certs + "/sdk.crt", certs + "/sdk.key")
        panel_tls = ssl.create_default_context(cafile=certs + "/ca.crt")
    targets = "".join("    amonitor_target t%d %s://127.0.0.1:%d/t%d;\n"
                      % (i, scheme, sdk_port, i) for i in range(a.sdks))
    if a.tls:
        targets = ("    amonitor_ssl_trusted_certificate %s/ca.crt;\n"
                   % certs) + targets
    conf = """
load_module %s;
worker_processes 1;
worker_rlimit_nofile 20000;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    amonitor_zone amon 16m;
    amonitor_reconnect 100ms 500ms;
    amonitor_ping 600s;
%s
    server {
        listen 127.0.0.1:%d backlog=4096%s;
        location = /ws/panel { amonitor_panel on; amonitor_panel_snapshot off; }
    }
}
""" % (os.path.abspath(a.module), prefix, prefix, targets, http_port, listen)
    with open(prefix + "/nginx.conf", "w") as f:
        f.write(conf)
    os.makedirs(prefix + "/logs", exist_ok=True)
    subprocess.run([a.nginx, "-p", prefix, "-c", prefix + "/nginx.conf",
                    "-e", prefix + "/error.log"], check=True)
    try:
        for _ in range(100):
            if os.path.exists(prefix + "/nginx.pid"):
                break
            time.sleep(0.05)
        master = int(open(prefix + "/nginx.pid").read())
        await asyncio.sleep(a.settle)
        w = worker_pids(master)[0]
        m0 = rollup(w)
        # the same worker's figures with no target at all: a reload to a
        # configuration without them would keep the old worker's memory,
        # so a fresh worker of a second nginx is measured instead
        mb = base_worker(a, prefix, http_port)

        state = {"open": 0}
        server = await asyncio.start_server(
            lambda r, wr: sdk_conn(r, wr, state), "127.0.0.1", sdk_port,
            backlog=4096, ssl=sdk_tls)
        t0 = time.time()
        while state["open"] < a.sdks and time.time() - t0 < 60:
            await asyncio.sleep(0.2)
        await asyncio.sleep(a.settle)
        m1 = rollup(w)
        if os.environ.get("DETAIL"):
            d1 = detail(w)

        # the panels in two halves: the second half's cost is the marginal
        # one, without what the first panels fault in once (code pages of
        # the HTTP request path, the heap's first growth)
        panels = []
        half = a.n // 2
        for lo, hi in ((0, half), (half, a.n)):
            for i in range(lo, hi, a.batch):
                await asyncio.gather(*(panel(http_port, j, panels, panel_tls)
                                       for j in range(i, min(hi, i + a.batch))))
            if lo == 0:
                dr = asyncio.ensure_future(drain(panels))
                await asyncio.sleep(a.settle)
                mh = rollup(w)
        await asyncio.sleep(a.settle)
        m2 = rollup(w)
        dr.cancel()
        if os.environ.get("DETAIL"):
            d2 = detail(w)
            for k in d2:
                if d2[k] - d1.get(k, 0) > 40:
                    print("mapping %s +%d KiB" % (k, d2[k] - d1.get(k, 0)))

        print("sdk_connections_open %d panels_open %d" % (state["open"],
                                                          len(panels)))
        print("sdk_with_target %d %d" % (
            (m1["Rss"] - mb["Rss"]) // max(state["open"], 1),
            (m1["Pss"] - mb["Pss"]) // max(state["open"], 1)))
        for kind, x, y, n in (("sdk", m0, m1, state["open"]),
                              ("panel", m1, m2, len(panels)),
                              ("panel_marginal", mh, m2, a.n - half)):
            print("%s %d %d" % (kind, (y["Rss"] - x["Rss"]) // max(n, 1),
                                (y["Pss"] - x["Pss"]) // max(n, 1)))
        for _, wr in panels:
            wr.close()
        server.close()
    finally:
        subprocess.run([a.nginx, "-p", prefix, "-c", prefix + "/nginx.conf",
                        "-e", prefix + "/error.log", "-s", "stop"])
        # the loop runs meanwhile: the SDK handlers see nginx close their
        # connections and end, rather than being cancelled at exit
        await asyncio.sleep(0.5)
        if os.environ.get("KEEP"):
            print(prefix)
        else:
            shutil.rmtree(prefix, ignore_errors=True)


asyncio.run(main())
