# Copyright (C) AMonitor authors
#
# How handler results, messages and metric values are converted (no
# network, no C calls but the library's presence).

import unittest

from helpers import amonitor

_action = amonitor._action


class ResultTest(unittest.TestCase):

    def test_results_become_success_and_message(self):
        cases = [
            (None, (True, "")),
            (True, (True, "")),
            (False, (False, "")),
            ((True, "restarted"), (True, "restarted")),
            ((False, "no"), (False, "no")),
            ({"success": True}, (True, "")),
            ({"success": False, "message": "disk full"},
             (False, "disk full")),
            ({"success": True, "message": None}, (True, "")),
        ]
        for result, ack in cases:
            with self.subTest(result=result):
                self.assertEqual(_action.to_ack(result), ack)

    def test_invalid_results_are_refused_with_a_reason(self):
        cases = [
            (1, "a int"),
            ("ok", "a str"),
            ((1, "x"), "expected (bool, str), got (int, str)"),
            ((True, 5), "expected (bool, str), got (bool, int)"),
            ((True, "a", "b"), "a tuple"),
            ({"message": "x"}, '"success" must be a bool'),
            ({"success": True, "extra": 1}, "unexpected key 'extra'"),
            ({"success": True, "message": 3}, '"message" must be a str'),
        ]
        for result, reason in cases:
            with self.subTest(result=result):
                with self.assertRaises(_action.InvalidResult) as cm:
                    _action.to_ack(result)
                self.assertEqual(str(cm.exception), reason)
                self.assertEqual(_action.error_ack(cm.exception), (
                    False, "handler returned an invalid result: " + reason))

    def test_exceptions_name_their_type_and_text(self):
        self.assertEqual(_action.error_ack(ValueError("bad input")),
                         (False, "handler raised ValueError: bad input"))
        self.assertEqual(_action.error_ack(KeyError()),
                         (False, "handler raised KeyError"))

    def test_messages_are_cut_at_a_whole_utf8_character(self):
        self.assertEqual(_action.encode_message("héllo"),
                         "héllo".encode())
        # 1023 bytes fit; "é" is two bytes and must not be split
        text = "a" * 1022 + "é"
        self.assertEqual(_action.encode_message(text), b"a" * 1022)
        self.assertEqual(len(_action.encode_message("x" * 5000)), 1023)
        self.assertEqual(_action.encode_message("a\0b"), b"a b")
        self.assertEqual(_action.encode_message("ab€", 5), b"ab")

    def test_metric_values_become_strings(self):
        cases = [("up", "up"), (3, "3"), (2.5, "2.5"), (True, "true"),
                 (False, "false"), (None, "null"),
                 ({"b": 1, "a": [1, 2]}, '{"a":[1,2],"b":1}')]
        for value, text in cases:
            with self.subTest(value=value):
                self.assertEqual(_action.metric_text(value), text)


if __name__ == "__main__":
    unittest.main()
