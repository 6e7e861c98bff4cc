# Copyright (C) AMonitor authors
#
# What the binding hands to the C SDK: text options, event and action
# names and metrics are str without NUL (an int there was taken for a
# pointer and crashed the interpreter; a NUL cut the text short), and
# numbers stay within what the C SDK accepts (0.0004 s of heartbeat
# became 0, "none"; 1e10 s wrapped in an unsigned int).

import asyncio
import os
import subprocess
import sys
import unittest

import helpers
from helpers import amonitor, Agent

TEXT_OPTIONS = ("target_id", "host", "token", "path", "register_url")


class TextTest(unittest.TestCase):

    def test_an_int_option_is_a_type_error_not_a_crash(self):
        env = dict(os.environ, PYTHONPATH=os.path.dirname(helpers.HERE))
        code = ("import sys; sys.path.insert(0, %r)\n"
                "from helpers import amonitor\n"
                "try:\n"
                "    amonitor.SDK(target_id=12345, port=0).start()\n"
                "except TypeError as e:\n"
                "    print(e)\n" % helpers.HERE)
        r = subprocess.run([sys.executable, "-c", code], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "target_id must be a str, not int\n")

    def test_text_options_are_str_without_nul(self):
        for name in TEXT_OPTIONS:
            for bad in (5, b"/x", 1.5):
                with self.subTest(name=name, value=bad):
                    with self.assertRaisesRegex(TypeError, name):
                        amonitor.SDK(port=0, **{name: bad})
            with self.subTest(name=name, value="NUL"):
                with self.assertRaisesRegex(ValueError, "NUL"):
                    amonitor.SDK(port=0, **{name: "/a\0b"})
            with self.subTest(name=name, value="surrogate"):
                with self.assertRaises(ValueError):
                    amonitor.SDK(port=0, **{name: "/a\udc80"})

    def test_names_are_str_without_nul(self):
        sdk = amonitor.SDK(target_id="py", port=0).start()
        self.addCleanup(sdk.close)
        with self.assertRaisesRegex(ValueError, "NUL"):
            sdk.emit_event("a\0b", {})
        with self.assertRaisesRegex(TypeError, "event name"):
            sdk.emit_event(7, {})
        for bad in (0, -1, 2 ** 64):
            with self.assertRaisesRegex(ValueError, "conn_id"):
                sdk.emit_event("e", {}, conn_id=bad)
        with self.assertRaises(TypeError):
            sdk.emit_event("e", {}, conn_id="1")
        with self.assertRaisesRegex(ValueError, "NUL"):
            sdk.add_action("a\0b", lambda a: True)
        with self.assertRaises(TypeError):
            sdk.add_action(5, lambda a: True)
        self.assertEqual(sdk.stats()["events"], 0)

    def test_metrics_with_nul_are_left_out_and_logged(self):
        async def run():
            sdk = amonitor.SDK(target_id="py", port=0, heartbeat_interval=5)
            sdk.metrics({"ok": 1, "a\0b": 2, "v": "x\0y"})
            async with sdk:
                agent = await Agent.connect(sdk.port)
                hb = await agent.recv_type("heartbeat")
                await agent.close()
            return hb["payload"]["metrics"]

        with self.assertLogs("amonitor", "WARNING") as logs:
            metrics = asyncio.run(run())
        self.assertEqual(metrics, {"ok": "1"})
        text = "\n".join(logs.output)
        self.assertIn("metric 'a\\x00b' not sent", text)
        self.assertIn("metric 'v' not sent", text)


class RangeTest(unittest.TestCase):

    def test_intervals_the_c_sdk_cannot_hold_are_value_errors(self):
        for name in ("heartbeat_interval", "pending_timeout", "idle_agent"):
            for bad in (0.0004, 1e10, -1, float("nan"), float("inf")):
                with self.subTest(name=name, value=bad):
                    with self.assertRaisesRegex(ValueError, name):
                        amonitor.SDK(port=0, **{name: bad})
            with self.assertRaises(TypeError):
                amonitor.SDK(port=0, **{name: "5"})
            amonitor.SDK(port=0, **{name: 0})      # none / never
            amonitor.SDK(port=0, **{name: 0.001})  # 1 ms
            amonitor.SDK(port=0, **{name: None})   # the C default

    def test_the_smallest_heartbeat_interval_sends_heartbeats(self):
        async def run():
            sdk = amonitor.SDK(target_id="py", port=0,
                               heartbeat_interval=0.001)
            async with sdk:
                agent = await Agent.connect(sdk.port)
                for _ in range(5):
                    await agent.recv_type("heartbeat")
                await agent.close()

        asyncio.run(run())

    def test_idle_agent_lets_a_new_agent_take_a_silent_ones_place(self):
        async def run():
            sdk = amonitor.SDK(target_id="py", port=0, max_connections=1,
                               heartbeat_interval=0, idle_agent=0.3)
            async with sdk:
                silent = await Agent.connect(sdk.port)
                await asyncio.sleep(0.5)
                newcomer = await Agent.connect(sdk.port)
                await newcomer.ws.ping()
                with self.assertRaises(helpers.websockets.ConnectionClosed):
                    await asyncio.wait_for(silent.ws.recv(), 5)
                self.assertGreaterEqual(sdk.stats()["rejected"], 1)
                await newcomer.close()

        asyncio.run(run())

    def test_limits_do_not_wrap(self):
        bad = {"port": (-1, 65536), "max_message": (1023, 2 ** 28 + 1),
               "max_send_queue": (-1, 4095, 2 ** 64),
               "max_connections": (0, 2 ** 32), "max_pending": (-5, 2 ** 32),
               "max_queued_events": (0, 2 ** 32 + 1)}
        for name, values in bad.items():
            for value in values:
                with self.subTest(name=name, value=value):
                    with self.assertRaisesRegex(ValueError, name):
                        amonitor.SDK(**{name: value})
            with self.assertRaises(TypeError):
                amonitor.SDK(**{name: 2.0})
            with self.assertRaises(TypeError):
                amonitor.SDK(**{name: True})

    def test_limits_at_their_bounds_start(self):
        sdk = amonitor.SDK(target_id="py", port=0, max_message=1024,
                           max_send_queue=2 ** 64 - 1,
                           max_connections=2 ** 32 - 1, max_pending=1,
                           max_queued_events=1, pending_timeout=604800)
        sdk.start()
        sdk.close()


if __name__ == "__main__":
    unittest.main()
