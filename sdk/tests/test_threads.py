#!/usr/bin/python3
# The SDK under threads (sdk/tests/test_threads.c): as is, under
# valgrind's helgrind and under drd.  A data race or a lock order problem
# that either tool reports fails the test.  In the ASan build (which
# valgrind cannot run) only the plain run, with ASan's checks.

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from amontest import BUILD, Tap

exe = os.path.join(BUILD, "sdk", "tests", "test_threads")

sanitized = "-fsanitize" in os.environ.get("AMON_EXTRA_CFLAGS", "")

t = Tap()

runs = [("plain", [])]

if sanitized:
    t.diag("sanitizer build: helgrind and drd are not run")

elif t.ok(shutil.which("valgrind") is not None,
          "valgrind is installed (make deps)"):
    runs += [("helgrind", ["valgrind", "--tool=helgrind", "-q",
                           "--error-exitcode=3"]),
             ("drd", ["valgrind", "--tool=drd", "-q",
                      "--error-exitcode=3"])]

for name, prefix in runs:
    r = subprocess.run(prefix + [exe], capture_output=True, text=True,
                       timeout=300)
    inner = [line for line in r.stdout.splitlines()
             if line.startswith(("ok ", "not ok "))]
    t.ok(r.returncode == 0 and len(inner) == 5
         and all(line.startswith("ok ") for line in inner),
         "%s: the threaded program passes%s" % (
             name, " with no report" if prefix else ""),
         r.stdout + r.stderr)

t.done()
