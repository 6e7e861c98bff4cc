#!/usr/bin/python3
# The complete program of docs/sdk.md compiles against the built SDK
# (shared through pkg-config, and static) and behaves as the text says.

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from amontest import BUILD, ROOT, Tap, run, skip_all, valgrind_prefix

try:
    import websockets
except ImportError:
    skip_all("python3-websockets is not installed (make deps)")

t = Tap()

with open(os.path.join(ROOT, "docs", "sdk.md")) as f:
    doc = f.read()

blocks = re.findall(r"```c\n(.*?)```", doc, re.S)
program = [b for b in blocks if "int\nmain(" in b]
if not t.ok(len(program) == 1, "docs/sdk.md has one complete program"):
    t.done()

s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
source = program[0].replace("cfg.port = 8765;", "cfg.port = %d;" % port)
t.ok(source != program[0], "the program listens on a port we can change")

sdkdir = os.path.join(BUILD, "sdk")
env = dict(os.environ, PKG_CONFIG_PATH=sdkdir)
extra = os.environ.get("AMON_EXTRA_CFLAGS", "").split()


def pkg(*args):
    return subprocess.run(["pkg-config"] + list(args) + ["amonitor_sdk"],
                          env=env, capture_output=True, text=True,
                          check=True).stdout.split()


tmp = tempfile.mkdtemp(prefix="amon-doc-")
src = os.path.join(tmp, "app.c")
with open(src, "w") as f:
    f.write(source)

builds = {
    "shared": ["cc", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"] + extra + [src, "-o",
               os.path.join(tmp, "app-shared")] + pkg("--cflags", "--libs")
    + ["-Wl,-rpath," + sdkdir],
    "static": ["cc", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]
    + extra + [src, "-o", os.path.join(tmp, "app-static")] + pkg("--cflags")
    + [os.path.join(sdkdir, "libamonitor_sdk.a"), "-lcjson", "-lprotobuf-c",
       "-lcrypto", "-pthread"],
}


async def exercise(exe):
    proc = subprocess.Popen(valgrind_prefix() + [exe])
    ws = None
    try:
        for _ in range(100):
            try:
                ws = await websockets.connect("ws://127.0.0.1:%d/" % port,
                                              ping_interval=None)
                break
            except OSError:
                await asyncio.sleep(0.1)
        if ws is None:
            raise RuntimeError("the program did not listen")
        hb = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.send(json.dumps({"msg_id": "doc-1", "type": "action",
                                  "payload": {"action": "restart",
                                              "params": {"by": "doc"}}}))
        two = [json.loads(await asyncio.wait_for(ws.recv(), 5))
               for _ in range(2)]
        two.sort(key=lambda m: m["type"])
        ack, ev = two
        await ws.send(json.dumps({"msg_id": "doc-2", "type": "action",
                                  "payload": {"action": "halt"}}))
        ack2 = json.loads(await asyncio.wait_for(ws.recv(), 5))
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except websockets.ConnectionClosed:
            pass
        return hb, ev, ack, ack2, ws.close_code, proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


for kind, cmd in builds.items():
    r = subprocess.run(cmd, capture_output=True, text=True)
    if not t.ok(r.returncode == 0, "%s build of the docs program" % kind,
                " ".join(cmd) + "\n" + r.stderr):
        continue
    exe = cmd[cmd.index("-o") + 1]
    ldd = subprocess.run(["ldd", exe], capture_output=True,
                         text=True).stdout
    if kind == "shared":
        t.ok("libamonitor_sdk.so.1 => " + sdkdir in ldd,
             "the shared build uses libamonitor_sdk.so.1", ldd)
    else:
        t.ok("libamonitor_sdk" not in ldd,
             "the static build needs no libamonitor_sdk.so", ldd)
    hb, ev, ack, ack2, code, rc = run(exercise(exe))
    t.is_((hb["type"], hb["target_id"], hb["payload"]["status"]),
          ("heartbeat", "demo-target", "up"), kind + ": heartbeat")
    t.is_((ev["type"], ev["payload"]["event_name"], ev["payload"]["data"]),
          ("event", "restarted", {"by": "doc"}),
          kind + ": the event emitted by the handler")
    t.is_((ack["payload"]["action_msg_id"], ack["payload"]["success"],
           ack["payload"]["message"]), ("doc-1", True, "restarted"),
          kind + ": restart acked")
    t.is_((ack2["payload"]["success"], ack2["payload"]["message"]),
          (False, "unsupported action: halt"),
          kind + ": other actions unsupported")
    t.is_((code, rc), (1001, 0),
          kind + ": SIGTERM closes with 1001 and exits 0")

shutil.rmtree(tmp, ignore_errors=True)
t.done()
