# Copyright (C) AMonitor authors
#
# Checking what the binding hands to the C SDK: the SDK's options (types
# and the ranges amonitor.h and the C configuration check accept, before
# ctypes could wrap a number or take an int for a pointer) and text for a
# C string (str only, no NUL, UTF-8).

"""Checks of the SDK's options and of text passed to the C SDK."""

from __future__ import annotations

import ctypes
import json
import math
import numbers
from typing import Any, Dict, Mapping, Optional

UINT_MAX = 2 ** 32 - 1
SIZE_MAX = 2 ** (8 * ctypes.sizeof(ctypes.c_size_t)) - 1
UINT64_MAX = 2 ** 64 - 1

# amonitor_sdk_config_t.heartbeat_ms is an unsigned int (0: none)
HEARTBEAT_MAX_MS = UINT_MAX
# AMONITOR_OPT_PENDING_TIMEOUT_MS: 0 (never) .. 7 days
PENDING_TIMEOUT_MAX_MS = 7 * 86400 * 1000
IDLE_AGENT_MAX_MS = 86400 * 1000

# the C configuration check's limits (amonitor_sdk.c)
_INT_OPTIONS = {
    # name: (lowest, highest)
    "port": (0, 65535),
    "max_message": (1024, 256 * 1024 * 1024),
    "max_send_queue": (4096, SIZE_MAX),
    "max_connections": (1, UINT_MAX),
    "max_pending": (1, UINT_MAX),
    "max_queued_events": (1, UINT_MAX),
}

_TEXT_OPTIONS = ("host", "target_id", "token", "path", "register_url")


def c_text(value: Any, what: str) -> bytes:
    """``value`` as the UTF-8 bytes of a C string.

    TypeError unless it is a str (bytes too: the binding encodes text
    itself); ValueError for a NUL character (C would end the string
    there) or a lone surrogate (not encodable as UTF-8).
    """
    if not isinstance(value, str):
        raise TypeError("%s must be a str, not %s"
                        % (what, type(value).__name__))
    if "\0" in value:
        raise ValueError("%s must not contain NUL characters: %r"
                         % (what, value))
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError("%s is not valid text: %s" % (what, e)) from None


def c_int(value: Any, what: str, lowest: int, highest: int) -> int:
    """An integer option within [lowest, highest] (no bool, no float)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError("%s must be an int, not %s"
                        % (what, type(value).__name__))
    if not lowest <= value <= highest:
        raise ValueError("%s must be %d..%d, not %r"
                         % (what, lowest, highest, value))
    return int(value)


def seconds_to_ms(value: Any, what: str, highest_ms: int) -> int:
    """Seconds as whole milliseconds for the C SDK: 0 stays 0 (the
    option's "none"), anything else must be 0.001 s to highest_ms."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("%s must be a number of seconds, not %s"
                        % (what, type(value).__name__))
    value = float(value)
    if value == 0:
        return 0
    ms = value * 1000
    if math.isnan(value) or value < 0.001 or ms > highest_ms:
        raise ValueError("%s must be 0 or 0.001..%s seconds, not %r"
                         % (what, highest_ms / 1000, value))
    return min(int(round(ms)), highest_ms)


def config(options: Dict[str, Any],
           metadata: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The SDK's keyword arguments as amonitor_sdk_config_t fields.

    None keeps the C SDK's default (the field is left out).  Raises
    TypeError or ValueError for what the C SDK would not take as meant.
    """
    conf: Dict[str, Any] = {}
    for name in _TEXT_OPTIONS:
        if options[name] is not None:
            conf[name] = c_text(options[name], name)
    for name, (lowest, highest) in _INT_OPTIONS.items():
        if options[name] is not None:
            conf[name] = c_int(options[name], name, lowest, highest)
    if options["heartbeat_interval"] is not None:
        conf["heartbeat_ms"] = seconds_to_ms(
            options["heartbeat_interval"], "heartbeat_interval",
            HEARTBEAT_MAX_MS)
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError("metadata must be a mapping, not %s"
                            % type(metadata).__name__)
        conf["metadata_json"] = json.dumps(
            dict(metadata), separators=(",", ":"),
            allow_nan=False).encode("utf-8")
    conf["binary"] = 1 if options["binary"] else 0
    return conf


def conn_id(value: Any) -> int:
    """An agent connection id (amonitor_sdk_emit_event_to): 1..2**64-1."""
    return c_int(value, "conn_id", 1, UINT64_MAX)
