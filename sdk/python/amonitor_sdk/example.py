# Copyright (C) AMonitor authors
#
# "python3 -m amonitor_sdk.example [OPTIONS]" in sdk/python, the first
# project's command: runs examples/amonitor-sdk-example.py (a target
# "demo-target" on port 8765, the same options).

"""Runs the example target, examples/amonitor-sdk-example.py."""

import os
import runpy
import sys


def main() -> None:
    path = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "examples", "amonitor-sdk-example.py")
    if not os.path.isfile(path):
        sys.exit("amonitor_sdk.example: %s not found: run it in the source "
                 "tree's sdk/python" % path)
    sys.argv[0] = path
    runpy.run_path(path, run_name="__main__")


if __name__ == "__main__":
    main()
