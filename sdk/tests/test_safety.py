#!/usr/bin/python3
# Runs the cmocka SDK safety tests (C: threads, handles, stop, EMFILE)
# with TAP output, under valgrind when AMON_TEST_VALGRIND is set.

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from amontest import BUILD, valgrind_prefix

exe = os.path.join(BUILD, "sdk", "tests", "test_sdk_safety")
env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP")
rc = subprocess.call(valgrind_prefix() + [exe], env=env)
if rc != 0:
    print("# test_sdk_safety exited with %d" % rc, flush=True)
sys.exit(rc)
