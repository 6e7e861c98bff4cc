# Copyright (C) AMonitor authors
#
# The SDKs this process started: closed by an atexit hook before the
# interpreter goes away (the C SDK's I/O thread never calls into a dead
# one), and in a child of os.fork() left to the parent, each copy
# releasing only the child's descriptors.

"""The registry of started SDKs: interpreter exit and os.fork()."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any, Set

log = logging.getLogger("amonitor")

_LIVE: Set[Any] = set()
_LOCK = threading.Lock()


def add(sdk: Any) -> None:
    with _LOCK:
        _LIVE.add(sdk)


def discard(sdk: Any) -> None:
    with _LOCK:
        _LIVE.discard(sdk)


@atexit.register
def _close_all() -> None:
    with _LOCK:
        live = list(_LIVE)
    for sdk in live:
        if sdk._pid != os.getpid():
            continue  # a forked child's copy: the parent closes it
        try:
            sdk.close()
        except Exception:  # pragma: no cover - best effort at exit
            log.exception("closing an AMonitor SDK at exit")


def _after_fork_in_child() -> None:
    """In a child of os.fork(): the started SDKs are the parent's.

    Each copy releases only this process's descriptors (the C SDK
    touches nothing the parent uses) and refuses to serve from then on.
    The lock is a new one: another thread may have held it at the fork.
    """
    global _LOCK
    _LOCK = threading.Lock()
    live = list(_LIVE)
    _LIVE.clear()
    for sdk in live:
        sdk._forget_parents()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
