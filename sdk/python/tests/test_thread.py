# Copyright (C) AMonitor authors
#
# The SDK on the C SDK's own I/O thread (start, run, with), for programs
# without asyncio; closing, and what happens at interpreter exit.

import asyncio
import os
import subprocess
import sys
import threading
import time
import unittest

import helpers
from helpers import TIMEOUT, Agent, amonitor


def agent_session(port, script):
    """Run ``script(agent)`` (a coroutine function) as an agent."""
    async def main():
        agent = await Agent.connect(port)
        try:
            return await script(agent)
        finally:
            await agent.close()

    return asyncio.run(main())


class ThreadTest(unittest.TestCase):

    def setUp(self):
        self.sdk = amonitor.SDK(target_id="py", port=0,
                                heartbeat_interval=0.1)
        self.addCleanup(self.sdk.close)

    def test_handlers_run_on_the_sdks_thread(self):
        threads = []

        @self.sdk.action("restart")
        def restart(action):
            threads.append(threading.current_thread())
            return True, "restarted"

        @self.sdk.metrics
        def metrics():
            threads.append(threading.current_thread())
            return {"restarts": len(threads)}

        self.sdk.start()

        async def script(agent):
            hb = await agent.recv_type("heartbeat")
            await agent.action("restart", "t1")
            return hb, await agent.ack("t1")

        hb, ack = agent_session(self.sdk.port, script)
        self.assertIn("restarts", hb["payload"]["metrics"])
        self.assertEqual((ack["success"], ack["message"]),
                         (True, "restarted"))
        main = threading.main_thread()
        self.assertTrue(threads)
        self.assertTrue(all(t is not main for t in threads))

    def test_params_with_an_integer_longer_than_int_reads(self):
        seen = []

        @self.sdk.action("big")
        def big(action):
            seen.append(action.params)
            return True

        self.sdk.start()
        digits = "1" * 5000

        async def script(agent):
            await agent.ws.send(
                '{"msg_id":"b1","type":"action","target_id":"py",'
                '"payload":{"action":"big","params":'
                '{"mode":"hard","n":%s}}}' % digits)
            return await agent.ack("b1")

        ack = agent_session(self.sdk.port, script)
        self.assertTrue(ack["success"])
        self.assertEqual(seen[0]["mode"], "hard")
        self.assertEqual(str(seen[0]["n"]), digits)

    def test_an_async_handler_runs_without_a_loop_of_the_program(self):
        @self.sdk.action("drain")
        async def drain(action):
            await asyncio.sleep(0.05)
            return {"success": True, "message": "drained"}

        @self.sdk.action("fail")
        async def fail(action):
            raise OSError("no such queue")

        self.sdk.start()

        async def script(agent):
            await agent.action("drain", "d1")
            await agent.action("fail", "d2")
            return await agent.ack("d1"), await agent.ack("d2")

        with self.assertLogs("amonitor", "WARNING"):
            ok, bad = agent_session(self.sdk.port, script)
        self.assertEqual(ok["message"], "drained")
        self.assertEqual((bad["success"], bad["message"]),
                         (False, "handler raised OSError: no such queue"))

    def test_an_exception_becomes_a_failed_ack(self):
        self.sdk.add_action("restart", lambda a: {}["missing"])
        self.sdk.start()

        async def script(agent):
            await agent.action("restart", "x1")
            return await agent.ack("x1")

        with self.assertLogs("amonitor", "WARNING"):
            ack = agent_session(self.sdk.port, script)
        self.assertEqual((ack["success"], ack["message"]),
                         (False, "handler raised KeyError: 'missing'"))

    def test_events_from_any_thread(self):
        self.sdk.start()

        async def script(agent):
            await agent.recv_type("heartbeat")
            t = threading.Thread(target=self.sdk.emit_event,
                                 args=("from-thread", [1, 2]))
            t.start()
            t.join()
            return await agent.recv_type("event")

        ev = agent_session(self.sdk.port, script)
        self.assertEqual(ev["payload"]["data"], [1, 2])

    def test_run_blocks_until_request_stop(self):
        sdk = amonitor.SDK(target_id="py", port=0)

        @sdk.action("stop")
        def stop(action):
            sdk.request_stop()
            return True, "bye"

        runner = threading.Thread(target=sdk.run)
        runner.start()
        deadline = time.monotonic() + TIMEOUT
        while sdk.port is None and time.monotonic() < deadline:
            time.sleep(0.01)

        async def script(agent):
            await agent.action("stop", "s1")
            return await agent.ack("s1")

        ack = agent_session(sdk.port, script)
        self.assertEqual(ack["message"], "bye")
        runner.join(TIMEOUT)
        self.assertFalse(runner.is_alive(), "run() returned")
        self.assertFalse(sdk.running)

    def test_with_starts_and_closes_and_close_is_idempotent(self):
        with amonitor.SDK(target_id="py", port=0) as sdk:
            self.assertTrue(sdk.running)
            port = sdk.port
        self.assertFalse(sdk.running)
        sdk.close()
        sdk.close()
        with self.assertRaises(RuntimeError):
            sdk.start()
        # the port is free again
        again = amonitor.SDK(target_id="py", port=port)
        self.addCleanup(again.close)
        again.start()
        self.assertEqual(again.port, port)

    def test_a_busy_port_is_an_error(self):
        self.sdk.start()
        other = amonitor.SDK(target_id="py", port=self.sdk.port)
        with self.assertRaises(amonitor.AmonitorError) as cm:
            other.start()
        self.assertEqual(cm.exception.code, -3)
        self.assertIn("in use", str(cm.exception))
        self.assertFalse(other.running)
        other.close()

    def test_an_invalid_configuration_is_an_error(self):
        sdk = amonitor.SDK(target_id="py", host="not-an-address", port=0)
        with self.assertRaises(amonitor.AmonitorError) as cm:
            sdk.start()
        self.assertEqual(cm.exception.code, -1)
        with self.assertRaises(ValueError):
            amonitor.SDK(port=70000)

    def test_other_threads_may_use_it_while_it_closes(self):
        # emit_event, stats and port from other threads race close():
        # each call either works or says the SDK is not running
        self.sdk.start()
        stop = threading.Event()
        outcomes = {"sent": 0, "not running": 0, "other": []}

        def hammer():
            while not stop.is_set():
                try:
                    self.sdk.emit_event("tick", {"n": 1})
                    outcomes["sent"] += 1
                except RuntimeError:
                    outcomes["not running"] += 1
                except amonitor.AmonitorError as e:
                    if e.code != -5:  # a full queue is fine
                        outcomes["other"].append(e)
                except Exception as e:
                    outcomes["other"].append(e)
                self.sdk.stats()
                self.sdk.port

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.1)
        self.sdk.close()
        time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(TIMEOUT)
        self.assertEqual(outcomes["other"], [])
        self.assertGreater(outcomes["sent"], 0)
        self.assertGreater(outcomes["not running"], 0)
        with self.assertRaises(RuntimeError):
            self.sdk.emit_event("late")
        self.assertIsNone(self.sdk.port)
        self.assertEqual(self.sdk.stats()["connections"], 0)

    def test_close_waits_for_a_running_handler(self):
        entered = threading.Event()
        done = []

        @self.sdk.action("slow")
        def slow(action):
            entered.set()
            time.sleep(0.3)
            done.append(True)
            return True

        self.sdk.start()

        async def script(agent):
            await agent.action("slow", "w1")
            await asyncio.get_running_loop().run_in_executor(
                None, entered.wait, TIMEOUT)
            t = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(
                None, self.sdk.close)
            return time.monotonic() - t

        took = agent_session(self.sdk.port, script)
        self.assertEqual(done, [True])
        self.assertGreater(took, 0.1)


class ExitTest(unittest.TestCase):
    """The interpreter exits while the SDK runs, without close(): the
    SDK is closed at exit, before the interpreter goes away, so agents
    get their acks and a close 1001, and nothing crashes or hangs."""

    def exit_child(self, code, action):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.path.dirname(helpers.HERE)
        if os.environ.get("AMONITOR_TEST_INSTALLED"):
            env.pop("PYTHONPATH")
        prelude = ("import asyncio, sys, time\nsys.path.insert(0, %r)\n"
                   "from helpers import amonitor\n" % helpers.HERE)
        child = subprocess.Popen([sys.executable, "-c", prelude + code],
                                 env=env, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            port = int(child.stdout.readline())
            agent = helpers.raw_agent(port)
            helpers.raw_send_text(
                agent, '{"msg_id":"x1","type":"action","payload":'
                '{"action":"%s"}}' % action)
            time.sleep(0.2)
            try:
                child.stdin.write("exit\n")
                child.stdin.flush()
            except BrokenPipeError:
                pass  # it ended on its own
            frames = helpers.raw_read_all(agent)
            agent.close()
            out, err = child.communicate(timeout=TIMEOUT)
        finally:
            child.kill()
            child.wait()
        texts = [p.decode() for op, p in frames if op == 1]
        closes = [int.from_bytes(p[:2], "big") for op, p in frames
                  if op == 8]
        acks = [t for t in texts if '"action_ack"' in t]
        return child.returncode, out, err, acks, closes

    def test_exit_while_a_handler_runs_on_the_sdks_thread(self):
        code = """
sdk = amonitor.SDK(target_id="py", port=0, heartbeat_interval=0.005)
sdk.metrics(lambda: {"x": 1})
sdk.add_action("slow", lambda a: time.sleep(0.3) or (True, "slept"))
sdk.start()
print(sdk.port, flush=True)
sys.stdin.readline()
print("exiting", flush=True)
"""
        rc, out, err, acks, closes = self.exit_child(code, "slow")
        self.assertEqual((rc, out, err), (0, "exiting\n", ""))
        self.assertEqual(len(acks), 1)
        self.assertIn('"message":"slept"', acks[0])
        self.assertEqual(closes, [1001])

    def test_exit_while_an_async_handler_hangs_on_the_sdks_thread(self):
        code = """
sdk = amonitor.SDK(target_id="py", port=0)
async def hang(action):
    await asyncio.sleep(3600)
sdk.add_action("hang", hang)
sdk.start()
print(sdk.port, flush=True)
sys.stdin.readline()
print("exiting", flush=True)
"""
        t = time.monotonic()
        rc, out, err, acks, closes = self.exit_child(code, "hang")
        self.assertLess(time.monotonic() - t, TIMEOUT)
        self.assertEqual((rc, out, err), (0, "exiting\n", ""))
        self.assertEqual(len(acks), 1)
        self.assertIn('"success":false,"message":"monitored program '
                      'stopped before answering"', acks[0])
        self.assertEqual(closes, [1001])

    def test_exit_after_asyncio_run_with_an_action_pending(self):
        code = """
sdk = amonitor.SDK(target_id="py", port=0, heartbeat_interval=0.01)
async def hang(action):
    await asyncio.sleep(3600)
sdk.add_action("hang", hang)
async def main():
    await sdk.start_async()
    print(sdk.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(
        None, sys.stdin.readline)
asyncio.run(main())
print("exiting", flush=True)
"""
        rc, out, err, acks, closes = self.exit_child(code, "hang")
        self.assertEqual((rc, out, err), (0, "exiting\n", ""))
        self.assertEqual(len(acks), 1)
        self.assertIn('"success":false', acks[0])
        self.assertEqual(closes, [1001])

    def test_keyboard_interrupt_in_a_handler_fails_it_and_goes_on(self):
        # on a loop it leaves asyncio.run() as usual; the action fails
        code = """
sdk = amonitor.SDK(target_id="py", port=0)
def stop(action):
    raise KeyboardInterrupt
sdk.add_action("stop", stop)
async def main():
    await sdk.start_async()
    print(sdk.port, flush=True)
    await asyncio.sleep(3600)
try:
    asyncio.run(main())
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""
        rc, out, err, acks, closes = self.exit_child(code, "stop")
        self.assertEqual((rc, out, err), (0, "interrupted\n", ""))
        self.assertEqual(len(acks), 1)
        self.assertIn('"success":false,"message":"handler interrupted: '
                      'KeyboardInterrupt"', acks[0])
        self.assertEqual(closes, [1001])

    def test_an_async_handler_that_cannot_start_fails_and_close_is_safe(self):
        # no thread for it (a process at its thread limit): the action
        # fails at once, and close() must not ack its handle, which the C
        # SDK freed with that answer (it crashed the program)
        code = """
import threading
start = threading.Thread.start
def refuse(self):
    if self.name.startswith("amonitor-action-"):
        raise RuntimeError("can't start new thread")
    return start(self)
threading.Thread.start = refuse
sdk = amonitor.SDK(target_id="py", port=0)
async def drain(action):
    return True, "drained"
sdk.add_action("drain", drain)
sdk.start()
print(sdk.port, flush=True)
sys.stdin.readline()
sdk.close()
print("closed", flush=True)
"""
        rc, out, err, acks, closes = self.exit_child(code, "drain")
        self.assertEqual((rc, out, err), (0, "closed\n", ""))
        self.assertEqual(len(acks), 1)
        self.assertIn('"success":false,"message":"handler failed: '
                      'RuntimeError(', acks[0])
        self.assertEqual(closes, [1001])

    def test_close_from_a_logging_handler_is_refused(self):
        # the C SDK's log reaches logging from inside the SDK: a handler
        # there is a callback, and close() from it must raise, not drop
        # the callbacks that the C SDK (which ignores that free) still uses
        code = """
import logging
refused = []
class Closer(logging.Handler):
    def emit(self, record):
        if "agent connected" in record.getMessage():
            try:
                sdk.close()
            except RuntimeError:
                refused.append(True)
log = logging.getLogger("amonitor")
log.setLevel(logging.INFO)
log.addHandler(Closer())
sdk = amonitor.SDK(target_id="py", port=0, heartbeat_interval=0.005)
sdk.metrics(lambda: {"x": 1})
sdk.add_action("restart", lambda a: (True, "restarted"))
sdk.start()
print(sdk.port, flush=True)
sys.stdin.readline()
print("refused" if refused else "closed", flush=True)
"""
        rc, out, err, acks, closes = self.exit_child(code, "restart")
        self.assertEqual((rc, out, err), (0, "refused\n", ""))
        self.assertEqual(len(acks), 1)
        self.assertIn('"message":"restarted"', acks[0])
        self.assertEqual(closes, [1001])


if __name__ == "__main__":
    unittest.main()
