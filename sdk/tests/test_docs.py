#!/usr/bin/python3
# The complete programs of docs/sdk.md, one per integration style (own
# thread, host event loop, threads acking later), compile against the
# built SDK (shared through pkg-config, and static) and behave as the text
# says.

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from amontest import (BUILD, ROOT, Tap, free_port, run, skip_all,
                      valgrind_prefix)

try:
    import websockets
except ImportError:
    skip_all("python3-websockets is not installed (make deps)")

t = Tap()

with open(os.path.join(ROOT, "docs", "sdk.md")) as f:
    doc = f.read()

STYLES = ["own thread", "host event loop", "threads acking later"]

blocks = re.findall(r"```c\n(.*?)```", doc, re.S)
programs = {}
for b in blocks:
    m = re.match(r"/\* integration: (.*?) \*/\n", b)
    if m and "int\nmain(" in b:
        programs[m.group(1)] = b
t.is_(sorted(programs), sorted(STYLES),
      "docs/sdk.md has one complete program per integration style")

sdkdir = os.path.join(BUILD, "sdk")
env = dict(os.environ, PKG_CONFIG_PATH=sdkdir)
extra = os.environ.get("AMON_EXTRA_CFLAGS", "").split()
WARN = ["cc", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]


def pkg(*args):
    return subprocess.run(["pkg-config"] + list(args) + ["amonitor_sdk"],
                          env=env, capture_output=True, text=True,
                          check=True).stdout.split()


async def recv(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_type(ws, type_, timeout=5):
    while True:
        m = await recv(ws, timeout)
        if m["type"] == type_:
            return m


async def closed(ws):
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    except websockets.ConnectionClosed:
        pass
    return ws.close_code


async def start(exe, port):
    proc = subprocess.Popen(valgrind_prefix() + [exe],
                            stdout=subprocess.PIPE, text=True)
    for _ in range(100):
        try:
            ws = await websockets.connect("ws://127.0.0.1:%d/" % port,
                                          ping_interval=None)
            return proc, ws
        except OSError:
            await asyncio.sleep(0.1)
    proc.kill()
    raise RuntimeError("the program did not listen")


def action(msg_id, name, params=None):
    return json.dumps({"msg_id": msg_id, "type": "action",
                       "payload": {"action": name,
                                   "params": params or {}}})


async def own_thread(ws, proc, kind):
    hb = await recv(ws)
    t.is_((hb["type"], hb["target_id"], hb["payload"]["status"]),
          ("heartbeat", "demo-target", "up"), kind + ": heartbeat")
    await ws.send(action("doc-1", "restart", {"by": "doc"}))
    two = sorted([await recv(ws), await recv(ws)], key=lambda m: m["type"])
    ack, ev = two
    t.is_((ev["type"], ev["payload"]["event_name"], ev["payload"]["data"]),
          ("event", "restarted", {"by": "doc"}),
          kind + ": the event emitted by the handler")
    t.is_((ack["payload"]["action_msg_id"], ack["payload"]["success"],
           ack["payload"]["message"]), ("doc-1", True, "restarted"),
          kind + ": restart acked")
    await ws.send(action("doc-2", "halt"))
    ack2 = await recv_type(ws, "action_ack")
    t.is_((ack2["payload"]["success"], ack2["payload"]["message"]),
          (False, "unsupported action: halt"),
          kind + ": other actions unsupported")
    proc.send_signal(signal.SIGTERM)
    return await closed(ws)


async def host_loop(ws, proc, kind):
    got = sorted([await recv(ws), await recv(ws)], key=lambda m: m["type"])
    ev, hb = got
    t.is_((hb["type"], hb["target_id"]), ("heartbeat", "loop-target"),
          kind + ": heartbeat")
    t.is_((ev["payload"]["event_name"], ev["payload"]["data"]),
          ("hello", {"state": "serving"}),
          kind + ": the connection callback greets the new agent")
    await ws.send(action("loop-1", "status"))
    ack = await recv_type(ws, "action_ack")
    t.is_((ack["payload"]["success"], ack["payload"]["message"]),
          (True, "up, 42 requests served"), kind + ": status acked")
    proc.send_signal(signal.SIGTERM)
    return await closed(ws)


async def threads_later(ws, proc, kind):
    await ws.send(action("job-1", "backup", {"ms": 200}))
    ack = await recv_type(ws, "action_ack")
    t.is_((ack["payload"]["action_msg_id"], ack["payload"]["success"],
           ack["payload"]["message"]),
          ("job-1", True, "backup done in 200 ms"),
          kind + ": a worker thread acks later")
    await ws.send(action("job-2", "backup", {"ms": 1500}))
    await asyncio.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    ack = await recv_type(ws, "action_ack")
    t.is_((ack["payload"]["action_msg_id"], ack["payload"]["success"],
           ack["payload"]["message"]),
          ("job-2", False, "monitored program stopped before answering"),
          kind + ": a pending action is failed at free")
    return await closed(ws)


EXERCISE = {"own thread": own_thread, "host event loop": host_loop,
            "threads acking later": threads_later}

tmp = tempfile.mkdtemp(prefix="amon-doc-")

for style, source in sorted(programs.items()):
    port = free_port()
    src = source.replace("cfg.port = 8765;", "cfg.port = %d;" % port)
    t.ok(src != source, style + ": the program listens on a port we set")
    name = style.replace(" ", "-")
    path = os.path.join(tmp, name + ".c")
    with open(path, "w") as f:
        f.write(src)

    builds = {
        "shared": WARN + extra + [path, "-o", os.path.join(tmp, name + "-so")]
        + pkg("--cflags", "--libs") + ["-Wl,-rpath," + sdkdir],
        # the archive, then what --static adds (the SDK's own libraries)
        "static": WARN + extra + [path, "-o", os.path.join(tmp, name + "-a")]
        + pkg("--cflags") + [os.path.join(sdkdir, "libamonitor_sdk.a")]
        + [x for x in pkg("--static", "--libs")
           if x != "-lamonitor_sdk" and not x.startswith("-L")],
    }

    for kind, cmd in builds.items():
        label = "%s, %s" % (style, kind)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if not t.ok(r.returncode == 0, label + ": builds",
                    " ".join(cmd) + "\n" + r.stderr):
            continue
        exe = cmd[cmd.index("-o") + 1]
        ldd = subprocess.run(["ldd", exe], capture_output=True,
                             text=True).stdout
        if kind == "shared":
            t.ok("libamonitor_sdk.so.1 => " + sdkdir in ldd,
                 label + ": uses libamonitor_sdk.so.1", ldd)
        else:
            t.ok("libamonitor_sdk" not in ldd,
                 label + ": needs no libamonitor_sdk.so", ldd)

        async def go():
            proc, ws = await start(exe, port)
            try:
                code = await EXERCISE[style](ws, proc, label)
                rc = proc.wait(20)
                return code, rc
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

        code, rc = run(go(), timeout=60)
        t.is_((code, rc), (1001, 0),
              label + ": SIGTERM closes with 1001 and exits 0")

shutil.rmtree(tmp, ignore_errors=True)
t.done()
