# Copyright (C) AMonitor authors
#
# What an action handler sees (Action) and how what it returns becomes
# the action_ack's "success" and "message".

"""Actions, handler results and their conversion to acks."""

from __future__ import annotations

import decimal
import json
from dataclasses import dataclass, field
from typing import (Any, Awaitable, Callable, Dict, Mapping, Optional, Tuple,
                    Union)

from . import _lib

# What a handler may return (or an async handler's coroutine produce):
#   None                  success, empty message
#   bool                  success or failure, empty message
#   (bool, str)           success or failure with a message
#   {"success": bool, "message": str}   the same as a mapping
Result = Union[None, bool, Tuple[bool, str], Mapping[str, Any]]

# An action handler: a function, or an async function, of one Action.
Handler = Callable[["Action"], Union[Result, Awaitable[Result]]]


def _text(raw: Optional[bytes]) -> str:
    return raw.decode("utf-8", "replace") if raw else ""


def _int(digits: str) -> Any:
    """A JSON integer: int, or Decimal past Python's int-from-text limit
    (4300 digits), whose ValueError would otherwise lose the whole params."""
    try:
        return int(digits)
    except ValueError:
        return decimal.Decimal(digits)


@dataclass(frozen=True)
class Action:
    """An action sent to this program by a panel, through the agent.

    ``params`` is the action's "params" object (``{}`` when absent or
    not an object; the text as received is ``params_json``); an integer
    too long for ``int()`` (over 4300 digits) is a ``decimal.Decimal``.  ``msg_id``
    is unique per action: the agent stops a repeated msg_id before it
    reaches the program.  ``conn_id`` names the agent connection that
    delivered it (see SDK.emit_event's conn_id).
    """

    name: str
    msg_id: str
    params: Dict[str, Any] = field(default_factory=dict)
    params_json: str = "{}"
    trace_id: str = ""
    target_id: str = ""
    target_url: str = ""
    binary: bool = False
    conn_id: int = 0

    @classmethod
    def _from_struct(cls, s: "_lib.ActionStruct") -> "Action":
        raw = b""
        if s.params:
            raw = _lib.ctypes.string_at(s.params, s.params_len)
        text = raw.decode("utf-8", "replace") or "{}"
        try:
            params = json.loads(text, parse_int=_int)
        except (ValueError, RecursionError):
            params = {}
        if not isinstance(params, dict):
            params = {}
        return cls(name=_text(s.name), msg_id=_text(s.msg_id),
                   params=params, params_json=text,
                   trace_id=_text(s.trace_id), target_id=_text(s.target_id),
                   target_url=_text(s.target_url), binary=bool(s.binary),
                   conn_id=int(s.conn_id))


class InvalidResult(TypeError):
    """A handler returned something that is not a Result."""


def to_ack(result: Any) -> Tuple[bool, str]:
    """Convert a handler's result into (success, message).

    Raises InvalidResult for anything that is not a Result.
    """
    if result is None:
        return True, ""
    if isinstance(result, bool):
        return result, ""
    if isinstance(result, tuple) and len(result) == 2:
        ok, message = result
        if isinstance(ok, bool) and isinstance(message, str):
            return ok, message
        raise InvalidResult("expected (bool, str), got (%s, %s)"
                            % (type(ok).__name__, type(message).__name__))
    if isinstance(result, Mapping):
        extra = sorted(str(k) for k in result if k not in
                       ("success", "message"))
        ok = result.get("success")
        message = result.get("message", "")
        if extra:
            raise InvalidResult("unexpected key %r" % extra[0])
        if not isinstance(ok, bool):
            raise InvalidResult('"success" must be a bool')
        if message is None:
            message = ""
        if not isinstance(message, str):
            raise InvalidResult('"message" must be a str')
        return ok, message
    raise InvalidResult("a %s" % type(result).__name__)


def error_ack(exc: BaseException) -> Tuple[bool, str]:
    """The ack of a handler that raised: failure, naming the exception."""
    if isinstance(exc, InvalidResult):
        return False, "handler returned an invalid result: %s" % exc
    text = str(exc)
    name = type(exc).__name__
    return False, ("handler raised %s: %s" % (name, text) if text
                   else "handler raised %s" % name)


def encode_message(message: str, size: int = _lib.MESSAGE_MAX) -> bytes:
    """UTF-8 of "message", cut at the last whole character that fits in
    size - 1 bytes (the C SDK's message rule); NULs become spaces."""
    data = message.replace("\0", " ").encode("utf-8", "replace")
    if len(data) > size - 1:
        data = data[:max(size - 1, 0)].decode("utf-8", "ignore").encode()
    return data


def metric_text(value: Any) -> str:
    """A metric value as the string the heartbeat carries: str as is,
    bool as true/false, None as null, numbers with str(), anything else
    as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True,
                      default=str)
