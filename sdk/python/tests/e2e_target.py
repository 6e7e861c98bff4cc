#!/usr/bin/python3
# Copyright (C) AMonitor authors
#
# A monitored program for t/530-python-sdk.t: the binding behind nginx.
# Prints one "ran NAME MSG_ID" line per handler run, so that the test
# can count executions.  Actions: restart (sync), drain (async), crash
# (raises), and the refusal of anything else by the SDK itself.
#   e2e_target.py --port N --target-id ID --mode asyncio|thread

import argparse
import asyncio
import logging
import signal
import sys
import threading

from helpers import amonitor  # the package under test


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--target-id", required=True)
    p.add_argument("--mode", choices=("asyncio", "thread"), required=True)
    p.add_argument("--interval", type=float, default=0.3)
    args = p.parse_args()

    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(name)s: %(message)s")
    state = {"restarts": 0}
    sdk = amonitor.SDK(target_id=args.target_id, port=args.port,
                       heartbeat_interval=args.interval)

    def ran(action):
        print("ran %s %s on %s" % (action.name, action.msg_id,
                                   threading.current_thread().name),
              flush=True)

    @sdk.action("restart")
    def restart(action):
        ran(action)
        state["restarts"] += 1
        sdk.emit_event("restarted", {"count": state["restarts"]})
        return True, "restarted"

    @sdk.action("drain")
    async def drain(action):
        ran(action)
        await asyncio.sleep(0.05)
        return {"success": True,
                "message": "drained %s" % action.params.get("queue")}

    @sdk.action("crash")
    def crash(action):
        ran(action)
        raise ValueError("disk full")

    sdk.metrics(lambda: {"restarts": state["restarts"],
                         "mode": args.mode})

    if args.mode == "thread":
        sdk.start()
        print("serving %d" % sdk.port, flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.wait(0.5):
            pass
        sdk.close()
    else:
        async def run():
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, sdk.request_stop)
            await sdk.start_async()
            print("serving %d" % sdk.port, flush=True)
            await sdk.wait_for_stop()
            await sdk.aclose()
        asyncio.run(run())
    print("stopped after %d restarts" % state["restarts"], flush=True)


if __name__ == "__main__":
    main()
