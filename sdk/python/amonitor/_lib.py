# Copyright (C) AMonitor authors
#
# The ctypes view of libamonitor_sdk.so.1: finding and loading the
# library, the structures and callback types of amonitor.h, and the
# prototypes of the functions the binding calls.  Nothing here keeps
# state beyond the loaded library.

"""Low-level ctypes declarations of the AMonitor C SDK (amonitor.h)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Optional

from ._errors import AmonitorError

SONAME = "libamonitor_sdk.so.1"
ENV_LIB = "AMONITOR_SDK_LIB"

# amonitor.h: error codes, reply codes, log levels, options
OK = 0
ERR_INVAL = -1
ERR_NOMEM = -2
ERR_IO = -3
ERR_STATE = -4
ERR_FULL = -5
ERR_NOTFOUND = -6
ERR_TOOBIG = -7
STOPPED = 1

REPLY_FAILURE = 0x4100
REPLY_SUCCESS = 0x4101
REPLY_LATER = 0x4102

LOG_ERROR = 0
LOG_WARN = 1
LOG_INFO = 2
LOG_DEBUG = 3

OPT_PENDING_TIMEOUT_MS = 1
OPT_ACCEPT_BACKOFF_MS = 2
OPT_IDLE_AGENT_MS = 3

MESSAGE_MAX = 1024


class SdkStruct(ctypes.Structure):
    """amonitor_sdk_t: only err and errstr are public."""

    _fields_ = [
        ("err", ctypes.c_int),
        ("errstr", ctypes.c_char * 128),
        ("priv", ctypes.c_void_p),
    ]


class ConfigStruct(ctypes.Structure):
    """amonitor_sdk_config_t (layout frozen by the C SDK)."""

    _fields_ = [
        ("host", ctypes.c_char_p),
        ("port", ctypes.c_uint),
        ("path", ctypes.c_char_p),
        ("target_id", ctypes.c_char_p),
        ("token", ctypes.c_char_p),
        ("heartbeat_ms", ctypes.c_uint),
        ("register_url", ctypes.c_char_p),
        ("metadata_json", ctypes.c_char_p),
        ("binary", ctypes.c_int),
        ("max_message", ctypes.c_size_t),
        ("max_send_queue", ctypes.c_size_t),
        ("max_connections", ctypes.c_uint),
        ("max_pending", ctypes.c_uint),
        ("max_queued_events", ctypes.c_uint),
    ]


class ActionStruct(ctypes.Structure):
    """amonitor_action_t (fields are only ever appended)."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("params", ctypes.c_char_p),
        ("params_len", ctypes.c_size_t),
        ("msg_id", ctypes.c_char_p),
        ("trace_id", ctypes.c_char_p),
        ("target_id", ctypes.c_char_p),
        ("target_url", ctypes.c_char_p),
        ("binary", ctypes.c_int),
        ("pending", ctypes.c_void_p),
        ("conn_id", ctypes.c_uint64),
    ]


STATS_FIELDS = (
    "connections", "connections_total", "rejected", "actions", "acks",
    "acks_dropped", "heartbeats", "events", "dropped", "invalid",
    "protocol_errors", "pending", "duplicates", "pending_timeouts",
    "pending_cancelled", "accept_errors",
)


class StatsStruct(ctypes.Structure):
    """amonitor_stats_t as of SDK 1.1."""

    _fields_ = [(name, ctypes.c_uint64) for name in STATS_FIELDS]


SDK_P = ctypes.POINTER(SdkStruct)
ACTION_P = ctypes.POINTER(ActionStruct)

# Callbacks.  The message buffer is a c_void_p (not c_char_p) so that
# ctypes passes the address and the binding writes into it.
HANDLER_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ACTION_P,
                              ctypes.c_void_p, ctypes.c_size_t,
                              ctypes.c_void_p)
TEARDOWN_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
METRICS_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_void_p)
LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_void_p)
CONNECTION_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64,
                                 ctypes.c_char_p, ctypes.c_int,
                                 ctypes.c_void_p)

_PROTOTYPES = {
    # name: (restype, argtypes)
    "amonitor_sdk_config_init": (None, [ctypes.POINTER(ConfigStruct)]),
    "amonitor_sdk_new": (SDK_P, [ctypes.POINTER(ConfigStruct)]),
    "amonitor_sdk_free": (None, [SDK_P]),
    "amonitor_sdk_handle": (ctypes.c_int, [SDK_P, ctypes.c_char_p,
                                           HANDLER_FN, TEARDOWN_FN,
                                           ctypes.c_void_p]),
    "amonitor_sdk_set_metrics": (ctypes.c_int, [SDK_P, METRICS_FN,
                                                ctypes.c_void_p]),
    "amonitor_sdk_set_log": (ctypes.c_int, [SDK_P, ctypes.c_int, LOG_FN,
                                            ctypes.c_void_p]),
    "amonitor_sdk_on_connection": (ctypes.c_int, [SDK_P, CONNECTION_FN,
                                                  TEARDOWN_FN,
                                                  ctypes.c_void_p]),
    "amonitor_sdk_set_option": (ctypes.c_int, [SDK_P, ctypes.c_int,
                                               ctypes.c_longlong]),
    "amonitor_sdk_listen": (ctypes.c_int, [SDK_P]),
    "amonitor_sdk_port": (ctypes.c_int, [SDK_P]),
    "amonitor_sdk_start": (ctypes.c_int, [SDK_P]),
    "amonitor_sdk_stop": (ctypes.c_int, [SDK_P]),
    "amonitor_sdk_stop_begin": (ctypes.c_int, [SDK_P]),
    "amonitor_sdk_fd": (ctypes.c_int, [SDK_P]),
    "amonitor_sdk_timeout": (ctypes.c_int, [SDK_P]),
    "amonitor_sdk_step": (ctypes.c_int, [SDK_P, ctypes.c_int]),
    "amonitor_sdk_emit_event": (ctypes.c_int, [SDK_P, ctypes.c_char_p,
                                               ctypes.c_char_p]),
    "amonitor_sdk_emit_event_to": (ctypes.c_int, [SDK_P, ctypes.c_uint64,
                                                  ctypes.c_char_p,
                                                  ctypes.c_char_p]),
    "amonitor_sdk_stats_get": (ctypes.c_int, [SDK_P,
                                              ctypes.POINTER(StatsStruct),
                                              ctypes.c_size_t]),
    "amonitor_pending_ack": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int,
                                            ctypes.c_char_p]),
    "amonitor_metrics_add": (ctypes.c_int, [ctypes.c_void_p,
                                            ctypes.c_char_p,
                                            ctypes.c_char_p]),
    "amonitor_strerror": (ctypes.c_char_p, [ctypes.c_int]),
}


def _build_tree_path() -> str:
    """build/sdk/libamonitor_sdk.so.1 of the source tree this file is in."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    return os.path.join(root, "build", "sdk", SONAME)


def _in_source_tree() -> bool:
    """True when this package is sdk/python/amonitor of a checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    return os.path.isfile(os.path.join(root, "sdk", "include", "amonitor.h"))


def candidates() -> list:
    """Where the library is looked for, in order.

    1. the file named by the AMONITOR_SDK_LIB environment variable (only
       that one, when it is set);
    2. the soname through the dynamic loader's search (ldconfig cache,
       LD_LIBRARY_PATH), then what ctypes.util.find_library reports;
    3. build/sdk/ of the source tree this package sits in (a package
       installed with pip sits in none: the error then says so).
    """
    env = os.environ.get(ENV_LIB)
    if env:
        return [env]
    found = [SONAME]
    name = ctypes.util.find_library("amonitor_sdk")
    if name and name not in found:
        found.append(name)
    if _in_source_tree():
        found.append(_build_tree_path())
    return found


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    for name, (restype, argtypes) in _PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise AmonitorError(
                ERR_STATE,
                "%s has no %s: the Python binding needs the C SDK 1.1 or "
                "later" % (lib._name, name)) from None
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


_LIB: Optional[ctypes.CDLL] = None


def load() -> ctypes.CDLL:
    """Load libamonitor_sdk once and return it (see candidates())."""
    global _LIB
    if _LIB is not None:
        return _LIB
    errors = []
    for path in candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            errors.append("%s: %s" % (path, e))
            continue
        _LIB = _declare(lib)
        return _LIB
    if os.environ.get(ENV_LIB) or _in_source_tree():
        hint = ("install libamonitor-sdk1, run make build-sdk, or set %s "
                "to the library's path" % ENV_LIB)
    else:
        # pip-installed: build/sdk of a checkout is not searched
        hint = ("this amonitor package (%s) is not in a source tree, so "
                "no build/sdk/ is searched: install libamonitor-sdk1, run "
                "make install-sdk (then ldconfig), or set %s to the "
                "library's path, e.g. %s=<checkout>/build/sdk/%s"
                % (os.path.dirname(os.path.abspath(__file__)), ENV_LIB,
                   ENV_LIB, SONAME))
    raise AmonitorError(
        ERR_IO, "cannot load the AMonitor C SDK (%s); %s. Tried: %s"
        % (SONAME, hint, "; ".join(errors)))


def library_path() -> str:
    """The file the loaded library was mapped from (for diagnostics)."""
    lib = load()
    addr = ctypes.cast(lib.amonitor_strerror, ctypes.c_void_p).value

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p),
                    ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p),
                    ("dli_saddr", ctypes.c_void_p)]

    info = DlInfo()
    libc = ctypes.CDLL(None)
    if libc.dladdr(ctypes.c_void_p(addr), ctypes.byref(info)) and \
            info.dli_fname:
        return os.path.realpath(info.dli_fname.decode())
    return lib._name


def strerror(code: int) -> str:
    """amonitor_strerror(): a static description of an error code."""
    return load().amonitor_strerror(code).decode("utf-8", "replace")
