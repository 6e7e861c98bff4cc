# Copyright (C) AMonitor authors
#
# os.fork() in a program whose SDK runs: the child's copy of the SDK is
# inert (its methods say so, close() and the atexit hook release only
# the child's descriptors), and once the child exited normally the
# parent still sends events, answers new agents and closes in time.
# The child used to close the copy at exit: that took the listening
# socket and the wake pipe out of the epoll set the two processes share,
# and the parent's close() then hung.

import os
import subprocess
import sys
import time
import unittest

import helpers
from helpers import TIMEOUT

PROGRAM = """
import os, sys, time
sys.path.insert(0, %r)
from helpers import amonitor

sdk = amonitor.SDK(target_id="fork", port=0, heartbeat_interval=60)
sdk.start()
print(sdk.port, flush=True)
sys.stdin.readline()                    # an agent is connected
pid = os.fork()
if pid == 0:
    bad = []
    try:
        sdk.emit_event("child", {})
        bad.append("emit_event worked")
    except RuntimeError as e:
        if "forked" not in str(e):
            bad.append(str(e))
    try:
        sdk.start()
        bad.append("start worked")
    except RuntimeError:
        pass
    if sdk.running or sdk.port is not None or sdk.stats()["events"]:
        bad.append("not inert")
    sdk.close()                         # nothing to do in the child
    print("child", bad or "ok", flush=True)
    sys.exit(0)                         # atexit hooks run
_, status = os.waitpid(pid, 0)
print("child exit", status, flush=True)
sys.stdin.readline()
sdk.emit_event("after", {"n": 1})
print("emitted", flush=True)
sys.stdin.readline()                    # a second agent is connected
t = time.monotonic()
sdk.close()
print("closed in %%.1f s" %% (time.monotonic() - t), flush=True)
"""


class ForkTest(unittest.TestCase):

    def test_a_child_that_exits_leaves_the_parents_sdk_serving(self):
        env = dict(os.environ, PYTHONPATH=os.path.dirname(helpers.HERE))
        child = subprocess.Popen(
            [sys.executable, "-c", PROGRAM % helpers.HERE], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)

        def say(line):
            child.stdin.write(line + "\n")
            child.stdin.flush()

        port = int(child.stdout.readline())
        first = helpers.raw_agent(port)
        say("connected")
        self.assertEqual(child.stdout.readline(), "child ok\n")
        self.assertEqual(child.stdout.readline(), "child exit 0\n")
        say("emit")
        self.assertEqual(child.stdout.readline(), "emitted\n")
        # a new agent is answered: the listener is still watched
        second = helpers.raw_agent(port)
        say("close")
        start = time.monotonic()
        frames = helpers.raw_read_all(first)
        out, err = child.communicate(timeout=TIMEOUT)
        self.assertLess(time.monotonic() - start, 3)
        self.assertEqual(child.returncode, 0, err)
        self.assertEqual(err, "")
        self.assertRegex(out, r"^closed in [01]\.\d s\n$")
        texts = [p.decode() for op, p in frames if op == 1]
        self.assertTrue(any('"event_name":"after"' in t for t in texts),
                        texts)
        closes = [int.from_bytes(p[:2], "big") for op, p in frames
                  if op == 8]
        self.assertEqual(closes, [1001])
        first.close()
        second.close()


if __name__ == "__main__":
    unittest.main()
