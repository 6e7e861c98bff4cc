# Copyright (C) AMonitor authors
#
# docs/python-sdk.md cannot drift from the package: its Python blocks
# parse and name only what the package has, its tables list exactly the
# SDK's options and the Action's fields.

import ast
import dataclasses
import inspect
import os
import re
import unittest

import helpers
from helpers import amonitor

DOC = os.path.join(helpers.ROOT, "docs", "python-sdk.md")


def read_doc():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def section(text, title):
    """The text of a "### title" section up to the next heading."""
    at = text.index("\n### " + title)
    rest = text[at + 5 + len(title):]
    end = re.search(r"\n#{2,3} ", rest)
    return rest[:end.start()] if end else rest


def first_column(text):
    names = []
    for line in text.splitlines():
        m = re.match(r"^\| (`[^|]+`) \|", line)
        if m:
            names += re.findall(r"`(\w+)`", m.group(1))
    return names


@unittest.skipUnless(os.path.exists(DOC), "no source tree")
class DocsTest(unittest.TestCase):

    def setUp(self):
        self.text = read_doc()
        self.blocks = re.findall(r"```python\n(.*?)```", self.text, re.S)

    def test_there_are_python_blocks_and_they_parse(self):
        self.assertGreaterEqual(len(self.blocks), 5)
        for block in self.blocks:
            with self.subTest(block=block[:40]):
                ast.parse(block)

    def test_the_blocks_name_only_what_the_package_has(self):
        owners = {"amonitor": amonitor, "sdk": amonitor.SDK,
                  "action": amonitor.Action}
        fields = {f.name for f in dataclasses.fields(amonitor.Action)}
        checked = 0
        for block in self.blocks:
            for node in ast.walk(ast.parse(block)):
                if not (isinstance(node, ast.Attribute)
                        and isinstance(node.value, ast.Name)
                        and node.value.id in owners):
                    continue
                owner = owners[node.value.id]
                known = hasattr(owner, node.attr) or (
                    owner is amonitor.Action and node.attr in fields) or (
                    owner is amonitor.SDK and node.attr == "target_id")
                self.assertTrue(known, "%s.%s in docs/python-sdk.md"
                                % (node.value.id, node.attr))
                checked += 1
        self.assertGreater(checked, 15)

    def test_the_options_table_is_the_constructors(self):
        table = set(first_column(section(self.text,
                                         "`amonitor.SDK(**options)`")))
        params = {name for name, p in inspect.signature(
            amonitor.SDK.__init__).parameters.items()
            if p.kind is p.KEYWORD_ONLY}
        self.assertEqual(table, params)

    def test_the_action_table_is_the_actions_fields(self):
        table = set(first_column(section(self.text, "Action handlers")))
        table -= {"None", "True", "False"}  # the results table
        fields = {f.name for f in dataclasses.fields(amonitor.Action)}
        self.assertEqual(table, fields)


if __name__ == "__main__":
    unittest.main()
