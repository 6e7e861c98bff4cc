# Copyright (C) AMonitor authors
#
# Finding and loading libamonitor_sdk.so.1, and the package's version.
# Each case runs in a fresh interpreter: the library is loaded once per
# process.

import os
import re
import subprocess
import sys
import unittest

import helpers

PKG = os.path.dirname(helpers.HERE)


def python(code, **env):
    e = dict(os.environ)
    for k, v in env.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    e["PYTHONPATH"] = PKG if not os.environ.get("AMONITOR_TEST_INSTALLED") \
        else ""
    return subprocess.run([sys.executable, "-c", code], env=e,
                          capture_output=True, text=True, timeout=30)


class LibraryTest(unittest.TestCase):

    def test_the_environment_variable_names_the_library(self):
        lib = os.environ["AMONITOR_SDK_LIB"] if not os.environ.get(
            "AMONITOR_TEST_INSTALLED") else None
        if lib is None:
            self.skipTest("the installed package finds its own library")
        r = python("import amonitor; print(amonitor.library_path())",
                   AMONITOR_SDK_LIB=lib)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), os.path.realpath(lib))

    def test_a_missing_library_is_a_clear_error(self):
        r = python("import amonitor\n"
                   "try:\n"
                   "    amonitor.SDK()\n"
                   "except amonitor.AmonitorError as e:\n"
                   "    print(e.code, e)\n",
                   AMONITOR_SDK_LIB="/nonexistent/libamonitor_sdk.so.1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^-3 cannot load the AMonitor C SDK")
        self.assertIn("AMONITOR_SDK_LIB", r.stdout)
        self.assertIn("/nonexistent/libamonitor_sdk.so.1", r.stdout)

    def test_a_copy_outside_a_source_tree_says_where_to_get_the_library(
            self):
        # the package as pip installs it: in a directory of its own
        import shutil
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(os.path.join(PKG, "amonitor"),
                            os.path.join(tmp, "site", "amonitor"))
            e = dict(os.environ, PYTHONPATH=os.path.join(tmp, "site"),
                     LD_LIBRARY_PATH="")
            e.pop("AMONITOR_SDK_LIB", None)
            r = subprocess.run(
                [sys.executable, "-c",
                 "import amonitor\n"
                 "from amonitor import _lib\n"
                 "print('candidates:', ' '.join(_lib.candidates()))\n"
                 "try:\n"
                 "    print(amonitor.library_path())\n"
                 "except amonitor.AmonitorError as e:\n"
                 "    print(e)\n"], env=e, cwd=tmp, capture_output=True,
                text=True, timeout=30)
        # a copy outside a checkout looks in no build/sdk/ of its own
        self.assertNotIn("build/sdk", r.stdout.splitlines()[0])
        self.assertEqual(r.returncode, 0, r.stderr)
        if "cannot load" not in r.stdout:
            self.skipTest("the library is installed: " + r.stdout.strip())
        self.assertIn("is not in a source tree", r.stdout)
        self.assertIn("make install-sdk", r.stdout)
        self.assertIn("AMONITOR_SDK_LIB=<checkout>/build/sdk/", r.stdout)

    def test_without_the_variable_the_soname_comes_first(self):
        r = python("from amonitor import _lib\n"
                   "print('\\n'.join(_lib.candidates()))",
                   AMONITOR_SDK_LIB=None)
        self.assertEqual(r.returncode, 0, r.stderr)
        found = r.stdout.split()
        self.assertEqual(found[0], "libamonitor_sdk.so.1")
        self.assertTrue(found[-1].endswith("/build/sdk/libamonitor_sdk.so.1"))

    def test_a_library_without_the_1_1_symbols_is_refused(self):
        # libc stands in for an SDK 1.0 library: it has none of them
        r = python("from amonitor import _lib, AmonitorError\n"
                   "import ctypes\n"
                   "try:\n"
                   "    _lib._declare(ctypes.CDLL('libc.so.6'))\n"
                   "except AmonitorError as e:\n"
                   "    print(e)\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("the Python binding needs the C SDK 1.1 or later",
                      r.stdout)

    def test_the_version_is_the_c_sdks(self):
        header = os.path.join(helpers.ROOT, "sdk", "include", "amonitor.h")
        if not os.path.exists(header):
            self.skipTest("no source tree")
        with open(header) as f:
            text = f.read()
        parts = [re.search(r"#define AMONITOR_VERSION_%s +(\d+)" % p,
                           text).group(1)
                 for p in ("MAJOR", "MINOR", "PATCH")]
        import amonitor
        self.assertEqual(amonitor.__version__, ".".join(parts))
        with open(os.path.join(PKG, "pyproject.toml")) as f:
            self.assertIn('version = "%s"' % ".".join(parts), f.read())


if __name__ == "__main__":
    unittest.main()
