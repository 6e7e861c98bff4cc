#!/usr/bin/python3
# Copyright (C) AMonitor authors
#
# Example monitored program in Python, the twin of the C example
# (sdk/examples/amonitor-sdk-example.c): an AMonitor SDK target that
# accepts the "restart" action and refuses every other one, sends
# heartbeats with a few metrics and, optionally, periodic events.  Runs
# on the C SDK's own thread, or with --asyncio on an asyncio loop (where
# "restart" is an async handler).  Stops on SIGINT/SIGTERM.

"""amonitor-sdk-example.py: a demo target for the AMonitor agent."""

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
import time

try:
    import amonitor
except ImportError:  # run from the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(
        os.path.abspath(__file__)), ".."))
    import amonitor


class Example:
    """The program's state, its handlers and its output."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.time()
        self.restarts = 0
        self.refused = 0
        self.seq = 0

    def say(self, fmt: str, *a: object) -> None:
        if self.args.quiet:
            return
        # an action's name and msg_id come from the agent: no control
        # character of theirs (C0, DEL, C1) reaches the terminal
        text = "".join("\\u%04x" % ord(c)
                       if ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 else c
                       for c in fmt % a)
        print("%s [%s] %s" % (time.strftime("%H:%M:%S"),
                              self.args.target_id, text), flush=True)

    def restart(self, action: amonitor.Action) -> amonitor.Result:
        self.restarts += 1
        self.say("action restart (msg_id %s, params %s) -> restarted",
                 action.msg_id, action.params_json)
        return True, "restarted"

    async def restart_async(self, action: amonitor.Action) -> amonitor.Result:
        await asyncio.sleep(0)  # a real program would await its work here
        return self.restart(action)

    def other(self, action: amonitor.Action) -> amonitor.Result:
        self.refused += 1
        self.say("action %s (msg_id %s) -> unsupported", action.name,
                 action.msg_id)
        return False, "unsupported action: %s" % action.name

    def metrics(self) -> dict:
        return {"uptime_s": int(time.time() - self.started),
                "restarts": self.restarts, "pid": os.getpid()}

    def tick(self, sdk: amonitor.SDK) -> None:
        self.seq += 1
        try:
            sdk.emit_event("tick", {"seq": self.seq,
                                    "uptime_s": int(time.time()
                                                    - self.started)})
        except amonitor.AmonitorError as e:
            print("amonitor-sdk-example: %s" % e, file=sys.stderr)

    def setup(self, asyncio_mode: bool) -> amonitor.SDK:
        a = self.args
        sdk = amonitor.SDK(host=a.host, port=a.port, target_id=a.target_id,
                           token=a.token, heartbeat_interval=a.interval,
                           register_url=a.register_url, binary=a.binary)
        sdk.add_action("restart",
                       self.restart_async if asyncio_mode else self.restart)
        sdk.add_action(None, self.other)
        sdk.metrics(self.metrics)
        return sdk

    def serving(self, sdk: amonitor.SDK, mode: str) -> None:
        a = self.args
        self.say("serving ws://%s:%d/ (heartbeat every %gs%s%s%s), Ctrl-C "
                 "to stop", a.host, sdk.port, a.interval,
                 ", token required" if a.token else "",
                 ", events" if a.event_interval > 0 else "", mode)

    def run_thread(self) -> None:
        """The SDK on its own thread; this one sends the events."""
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        with self.setup(False) as sdk:
            self.serving(sdk, "")
            every = self.args.event_interval
            while not stop.wait(every if every > 0 else 1.0):
                if every > 0:
                    self.tick(sdk)
            self.say("stopping (%d restarts, %d refused)", self.restarts,
                     self.refused)

    async def run_asyncio(self) -> None:
        """The SDK on this asyncio loop, next to an event task."""
        sdk = self.setup(True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, sdk.request_stop)

        async def ticks() -> None:
            while True:
                await asyncio.sleep(self.args.event_interval)
                self.tick(sdk)

        async with sdk:
            self.serving(sdk, ", asyncio")
            task = None
            if self.args.event_interval > 0:
                task = asyncio.ensure_future(ticks())
            await sdk.wait_for_stop()
            if task:
                task.cancel()
            self.say("stopping (%d restarts, %d refused)", self.restarts,
                     self.refused)


def seconds(text: str) -> float:
    v = float(text)
    if not 0 <= v <= 86400:
        raise argparse.ArgumentTypeError("invalid seconds %r" % text)
    return v


def port(text: str) -> int:
    v = int(text)
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError("invalid port %r" % text)
    return v


def main() -> int:
    p = argparse.ArgumentParser(
        prog="amonitor-sdk-example.py",
        description="Example AMonitor target: accepts \"restart\", "
        "refuses the rest, sends heartbeats (and events).")
    p.add_argument("--host", default="127.0.0.1", help="listen address")
    p.add_argument("--port", type=port, default=8765,
                   help="listen port (0: a free one)")
    p.add_argument("--target-id", default="demo-target")
    p.add_argument("--interval", type=seconds, default=5.0,
                   help="heartbeat interval in seconds")
    p.add_argument("--token", help="require Authorization: Bearer TOKEN")
    p.add_argument("--register-url", help="announce URL in a register "
                   "message")
    p.add_argument("--event-interval", type=seconds, default=0.0,
                   help="emit a \"tick\" event every SEC seconds")
    p.add_argument("--binary", action="store_true",
                   help="send protobuf instead of JSON")
    p.add_argument("--asyncio", "--loop", action="store_true",
                   help="run the SDK on an asyncio loop")
    p.add_argument("--quiet", action="store_true", help="print only errors")
    args = p.parse_args()

    ex = Example(args)

    # the SDK's log: warnings and errors on stderr, the rest as our lines
    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                print("amonitor-sdk-example: %s" % record.getMessage(),
                      file=sys.stderr, flush=True)
            else:
                ex.say("%s", record.getMessage())

    logger = logging.getLogger("amonitor")
    logger.addHandler(Lines())
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    logger.propagate = False

    try:
        if args.asyncio:
            asyncio.run(ex.run_asyncio())
        else:
            ex.run_thread()
    except amonitor.AmonitorError as e:
        print("amonitor-sdk-example: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
