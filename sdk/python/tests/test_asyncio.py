# Copyright (C) AMonitor authors
#
# The SDK on an asyncio loop: heartbeats with metrics, events, sync and
# async handlers and what their results, exceptions and cancellations
# become, the loop never blocked, closing.

import asyncio
import threading
import time
import unittest

import websockets

from helpers import TIMEOUT, Agent, amonitor


class AsyncioTest(unittest.IsolatedAsyncioTestCase):

    async def asyncSetUp(self):
        self.sdk = amonitor.SDK(target_id="py", port=0,
                                heartbeat_interval=0.1)
        self.addAsyncCleanup(self.sdk.aclose)

    async def start(self, **kw):
        await self.sdk.start_async()
        agent = await Agent.connect(self.sdk.port, **kw)
        self.addAsyncCleanup(agent.close)
        return agent

    async def test_heartbeats_carry_the_providers_metrics(self):
        calls = []

        @self.sdk.metrics
        def metrics():
            calls.append(threading.get_ident())
            return {"uptime_s": 12, "healthy": True, "load": 0.5,
                    "queue": {"depth": 3}, "name": "billing"}

        agent = await self.start()
        hb = await agent.recv_type("heartbeat")
        self.assertEqual(hb["target_id"], "py")
        self.assertEqual(hb["payload"]["status"], "up")
        self.assertEqual(hb["payload"]["metrics"], {
            "uptime_s": "12", "healthy": "true", "load": "0.5",
            "queue": '{"depth":3}', "name": "billing"})
        self.assertEqual(set(calls), {threading.get_ident()},
                         "the provider runs on the loop's thread")

    async def test_a_static_mapping_is_read_at_every_heartbeat(self):
        values = {"n": 1}
        self.sdk.metrics(values)
        agent = await self.start()
        await agent.recv_type("heartbeat")
        values["n"] = 2
        for _ in range(5):
            hb = await agent.recv_type("heartbeat")
            if hb["payload"]["metrics"] == {"n": "2"}:
                break
        self.assertEqual(hb["payload"]["metrics"], {"n": "2"})

    async def test_a_failing_provider_leaves_the_heartbeat_going(self):
        self.sdk.metrics(lambda: 1 / 0)
        agent = await self.start()
        await agent.recv_type("heartbeat")  # sent on connecting
        with self.assertLogs("amonitor", "ERROR") as logs:
            hb = await agent.recv_type("heartbeat")
        self.assertEqual(hb["payload"]["status"], "up")
        self.assertEqual(hb["payload"].get("metrics", {}), {})
        self.assertIn("the metrics provider failed", logs.output[0])

    async def test_a_sync_handler_runs_on_the_loop_and_is_acked(self):
        seen = []

        @self.sdk.action("restart")
        def restart(action):
            seen.append((action, threading.get_ident()))
            return True, "restarted with %s" % action.params["mode"]

        agent = await self.start()
        await agent.action("restart", "m1", {"mode": "soft"})
        ack = await agent.ack("m1")
        self.assertEqual(ack, {"action_msg_id": "m1", "success": True,
                               "message": "restarted with soft"})
        self.assertEqual(len(seen), 1)
        action, thread = seen[0]
        self.assertEqual(thread, threading.get_ident())
        self.assertEqual((action.name, action.msg_id, action.target_id),
                         ("restart", "m1", "py"))
        self.assertEqual(action.params, {"mode": "soft"})
        self.assertEqual(action.params_json, '{"mode": "soft"}')
        self.assertFalse(action.binary)
        self.assertGreater(action.conn_id, 0)

    async def test_every_result_form_becomes_its_ack(self):
        results = {"none": None, "true": True, "false": False,
                   "pair": (False, "busy"),
                   "dict": {"success": True, "message": "done"},
                   "bad": 42}
        for name, result in results.items():
            self.sdk.add_action(name, lambda a, r=result: r)
        agent = await self.start()
        for name in results:
            await agent.action(name, "r-" + name)
        acks = {}
        for _ in results:
            msg = await agent.recv_type("action_ack")
            acks[msg["payload"]["action_msg_id"]] = (
                msg["payload"]["success"], msg["payload"]["message"])
        self.assertEqual(acks, {
            "r-none": (True, ""), "r-true": (True, ""),
            "r-false": (False, ""), "r-pair": (False, "busy"),
            "r-dict": (True, "done"),
            "r-bad": (False, "handler returned an invalid result: a int")})

    async def test_an_exception_becomes_a_failed_ack(self):
        @self.sdk.action("restart")
        def restart(action):
            raise RuntimeError("disk is read-only")

        agent = await self.start()
        with self.assertLogs("amonitor", "WARNING") as logs:
            await agent.action("restart", "e1")
            ack = await agent.ack("e1")
        self.assertEqual(ack["success"], False)
        self.assertEqual(ack["message"],
                         "handler raised RuntimeError: disk is read-only")
        self.assertIn("Traceback", "\n".join(logs.output))

    async def test_unknown_actions_go_to_the_fallback_or_are_refused(self):
        agent = await self.start()
        await agent.action("reboot", "u1")
        self.assertEqual(await agent.ack("u1"), {
            "action_msg_id": "u1", "success": False,
            "message": "unsupported action: reboot"})

        @self.sdk.action()
        def other(action):
            return False, "no %s here" % action.name

        await agent.action("reboot", "u2")
        self.assertEqual((await agent.ack("u2"))["message"],
                         "no reboot here")

    async def test_an_async_handler_is_acked_when_it_finishes(self):
        gate = asyncio.Event()
        ran = []

        @self.sdk.action("drain")
        async def drain(action):
            ran.append(action.msg_id)
            await gate.wait()
            return {"success": True, "message": "drained"}

        agent = await self.start()
        await agent.action("drain", "a1")
        # meanwhile the loop serves everything else: heartbeats go on
        await agent.recv_type("heartbeat")
        await agent.recv_type("heartbeat")
        self.assertEqual(ran, ["a1"])
        self.assertEqual(self.sdk.stats()["pending"], 1)
        gate.set()
        self.assertEqual(await agent.ack("a1"), {
            "action_msg_id": "a1", "success": True, "message": "drained"})
        self.assertEqual(self.sdk.stats()["pending"], 0)

    async def test_an_async_handlers_exception_becomes_a_failed_ack(self):
        @self.sdk.action("drain")
        async def drain(action):
            await asyncio.sleep(0)
            raise ValueError("queue %s not found" % action.params["q"])

        agent = await self.start()
        with self.assertLogs("amonitor", "WARNING"):
            await agent.action("drain", "a2", {"q": "jobs"})
            ack = await agent.ack("a2")
        self.assertEqual((ack["success"], ack["message"]), (
            False, "handler raised ValueError: queue jobs not found"))

    async def test_a_handler_returning_a_future_is_acked_later(self):
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.sdk.add_action("later", lambda a: fut)
        agent = await self.start()
        await agent.action("later", "f1")
        await agent.recv_type("heartbeat")
        fut.set_result((True, "at last"))
        self.assertEqual((await agent.ack("f1"))["message"], "at last")

    async def test_pending_timeout_bounds_an_async_handler(self):
        sdk = amonitor.SDK(target_id="py", port=0, pending_timeout=0.2)
        self.addAsyncCleanup(sdk.aclose)

        @sdk.action("hang")
        async def hang(action):
            await asyncio.sleep(3600)

        await sdk.start_async()
        agent = await Agent.connect(sdk.port)
        self.addAsyncCleanup(agent.close)
        t = time.monotonic()
        await agent.action("hang", "pt1")
        ack = await agent.ack("pt1")
        self.assertEqual((ack["success"], ack["message"]), (
            False, "action timed out in the monitored program"))
        self.assertGreater(time.monotonic() - t, 0.15)
        self.assertEqual(sdk.stats()["pending_timeouts"], 1)

    async def test_the_loop_is_never_blocked(self):
        # a ticker measures the loop's latency while the SDK serves
        # heartbeats, an agent and a stream of actions and events
        self.sdk.add_action("restart", lambda a: True)
        agent = await self.start()
        worst = 0.0
        stop = False

        async def ticker():
            nonlocal worst
            while not stop:
                t = time.monotonic()
                await asyncio.sleep(0.005)
                worst = max(worst, time.monotonic() - t - 0.005)

        task = asyncio.ensure_future(ticker())
        for i in range(50):
            await agent.action("restart", "l%d" % i)
            self.sdk.emit_event("tick", {"i": i})
        for i in range(50):
            await agent.ack("l%d" % i)
        stop = True
        await task
        self.assertLess(worst, 0.1, "the loop stalled for %.3fs" % worst)

    async def test_events_reach_every_agent_or_one(self):
        conns = []
        self.sdk.on_connection(lambda cid, peer, up: conns.append(
            (cid, peer, up)))
        a = await self.start()
        b = await Agent.connect(self.sdk.port)
        self.addAsyncCleanup(b.close)
        await a.recv_type("heartbeat")
        await b.recv_type("heartbeat")
        self.sdk.emit_event("deploy", {"version": "1.2", "ok": True})
        for agent in (a, b):
            ev = await agent.recv_type("event")
            self.assertEqual(ev["payload"], {
                "target_id": "py", "event_name": "deploy",
                "data": {"version": "1.2", "ok": True}})
        self.assertEqual([c[2] for c in conns], [True, True])
        self.assertRegex(conns[1][1], r"^127\.0\.0\.1:\d+$")
        self.sdk.emit_event("only-b", None, conn_id=conns[1][0])
        ev = await b.recv_type("event")
        self.assertEqual((ev["payload"]["event_name"], ev["payload"]["data"]),
                         ("only-b", None))
        await b.close()
        for _ in range(100):
            if len(conns) == 3:
                break
            await asyncio.sleep(0.01)
        self.assertEqual(conns[2][:1] + conns[2][2:], (conns[1][0], False))

    async def test_bad_events_raise(self):
        await self.sdk.start_async()
        with self.assertRaises(amonitor.AmonitorError) as cm:
            self.sdk.emit_event("", {})
        self.assertEqual(cm.exception.code, -1)
        with self.assertRaises(ValueError):
            self.sdk.emit_event("nan", float("nan"))

    async def test_the_token_is_checked(self):
        sdk = amonitor.SDK(target_id="py", port=0, token="s3cret")
        self.addAsyncCleanup(sdk.aclose)
        await sdk.start_async()
        agent = await Agent.connect(sdk.port, token="s3cret")
        self.addAsyncCleanup(agent.close)
        await agent.recv_type("heartbeat")
        with self.assertRaises(Exception):
            bad = await Agent.connect(sdk.port, token="wrong")
            await bad.recv(timeout=2)
        self.assertEqual(sdk.stats()["rejected"], 1)

    async def test_aclose_answers_pending_actions_and_is_idempotent(self):
        started = asyncio.Event()

        @self.sdk.action("hang")
        async def hang(action):
            started.set()
            await asyncio.sleep(3600)

        agent = await self.start()
        await agent.action("hang", "p1")
        await asyncio.wait_for(started.wait(), TIMEOUT)
        await self.sdk.aclose()
        ack = await agent.ack("p1")
        self.assertEqual((ack["success"], ack["message"]),
                         (False, "monitored program stopped before answering"))
        self.assertFalse(self.sdk.running)
        await self.sdk.aclose()
        self.sdk.close()
        with self.assertRaises(RuntimeError):
            await self.sdk.start_async()

    async def test_close_belongs_to_the_loops_thread(self):
        await self.sdk.start_async()
        loop = asyncio.get_running_loop()
        with self.assertRaises(RuntimeError) as cm:
            await loop.run_in_executor(None, self.sdk.close)
        self.assertIn("request_stop()", str(cm.exception))
        self.assertTrue(self.sdk.running)
        # request_stop from another thread is fine
        await loop.run_in_executor(None, self.sdk.request_stop)
        await asyncio.wait_for(self.sdk.wait_for_stop(), TIMEOUT)

    async def test_two_tasks_may_aclose_at_once(self):
        agent = await self.start()
        await asyncio.wait_for(asyncio.gather(
            self.sdk.aclose(), self.sdk.aclose()), TIMEOUT)
        self.assertFalse(self.sdk.running)
        with self.assertRaises(websockets.ConnectionClosed):
            while True:  # what was queued before the close, then the close
                await agent.recv(timeout=2)
        self.assertEqual(agent.ws.close_code, 1001)

    async def test_close_from_a_handler_is_refused_clearly(self):
        @self.sdk.action("quit")
        def quit_(action):
            self.sdk.close()

        agent = await self.start()
        await agent.action("quit", "q1")
        ack = await agent.ack("q1")
        self.assertFalse(ack["success"])
        self.assertIn("RuntimeError: close() from a handler", ack["message"])
        self.assertTrue(self.sdk.running)

    async def test_serve_returns_after_request_stop(self):
        sdk = amonitor.SDK(target_id="py", port=0)

        @sdk.action("stop")
        def stop(action):
            sdk.request_stop()
            return True, "stopping"

        task = asyncio.ensure_future(sdk.serve())
        for _ in range(100):
            if sdk.port:
                break
            await asyncio.sleep(0.01)
        agent = await Agent.connect(sdk.port)
        await agent.action("stop", "s1")
        self.assertEqual((await agent.ack("s1"))["message"], "stopping")
        await asyncio.wait_for(task, TIMEOUT)
        self.assertFalse(sdk.running)
        await agent.close()

    async def test_async_with_starts_and_closes(self):
        sdk = amonitor.SDK(target_id="py", port=0)
        async with sdk as s:
            self.assertIs(s, sdk)
            self.assertTrue(sdk.running)
            self.assertIsInstance(sdk.port, int)
        self.assertFalse(sdk.running)
        self.assertIsNone(sdk.port)


if __name__ == "__main__":
    unittest.main()
