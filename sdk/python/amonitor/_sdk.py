# Copyright (C) AMonitor authors
#
# The SDK class: one C context (amonitor_sdk_t), driven either by the C
# SDK's own I/O thread (start/run) or by an asyncio event loop through
# the context's descriptor (start_async/serve), with the program's
# handlers, metrics provider and connection callback behind one ctypes
# callback each.

"""The SDK class: a monitored program's AMonitor endpoint."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import inspect
import json
import logging
import os
import signal
import threading
from typing import (Any, Callable, Dict, Mapping, Optional,
                    Union)

from . import _lib, _live, _options
from ._action import (Action, Handler, Result, encode_message, error_ack,
                      metric_text, to_ack)
from ._errors import AmonitorError

__all__ = ["SDK", "Action", "Result", "Handler"]

log = logging.getLogger("amonitor")

MetricsSource = Union[Mapping[str, Any], Callable[[], Mapping[str, Any]]]
ConnectionCallback = Callable[[int, str, bool], None]

_C_LEVEL = {_lib.LOG_ERROR: logging.ERROR, _lib.LOG_WARN: logging.WARNING,
            _lib.LOG_INFO: logging.INFO, _lib.LOG_DEBUG: logging.DEBUG}

class SDK:
    """One AMonitor SDK endpoint of this program.

    Keyword arguments mirror amonitor_sdk_config_t (None keeps the C
    SDK's default):

    host, port -- listen address (numeric) and port; port 0 picks a
        free one (see the ``port`` property after starting)
    target_id -- the id panels address this program by
    token -- bearer token the agent must present
    path -- the only accepted request path (None: any)
    heartbeat_interval -- seconds between heartbeats (0: none)
    register_url, metadata -- announce this URL (and a metadata object)
        in a register message on every agent connection
    binary -- send heartbeats, events and register as protobuf
    max_message, max_send_queue, max_connections, max_pending,
    max_queued_events -- limits, as in amonitor.h
    pending_timeout -- seconds an async handler may take before the SDK
        answers success:false (300; 0: never)
    idle_agent -- seconds an agent's connection may say nothing before a
        new connection may take its place when all are taken (60; 0: never)

    Text options are str without NUL (TypeError, ValueError otherwise);
    numbers outside what the C SDK accepts raise ValueError.  In a
    process forked from the one that started it, the SDK is inert (see
    docs/python-sdk.md).

    Handlers, the metrics provider and the connection callback may be
    registered at any time.  Run the SDK either with start() / run()
    (the C SDK's own I/O thread; callbacks run on that thread) or with
    ``await start_async()`` / ``await serve()`` / ``async with`` (the
    running asyncio loop; callbacks run on the loop, async handlers are
    awaited as tasks).  close() (or aclose()) ends it for good.
    """

    def __init__(self, *, target_id: str = "demo-target",
                 host: str = "127.0.0.1", port: int = 8765,
                 token: Optional[str] = None, path: Optional[str] = None,
                 heartbeat_interval: float = 10.0,
                 register_url: Optional[str] = None,
                 metadata: Optional[Mapping[str, Any]] = None,
                 binary: bool = False,
                 max_message: Optional[int] = None,
                 max_send_queue: Optional[int] = None,
                 max_connections: Optional[int] = None,
                 max_pending: Optional[int] = None,
                 max_queued_events: Optional[int] = None,
                 pending_timeout: Optional[float] = None,
                 idle_agent: Optional[float] = None) -> None:
        self._conf: Dict[str, Any] = _options.config({
            "host": host, "port": port, "target_id": target_id,
            "token": token, "path": path,
            "heartbeat_interval": heartbeat_interval,
            "register_url": register_url, "binary": binary,
            "max_message": max_message, "max_send_queue": max_send_queue,
            "max_connections": max_connections, "max_pending": max_pending,
            "max_queued_events": max_queued_events,
        }, metadata)
        self._pending_timeout = None if pending_timeout is None else \
            _options.seconds_to_ms(pending_timeout, "pending_timeout",
                                   _options.PENDING_TIMEOUT_MAX_MS)
        self._idle_agent = None if idle_agent is None else \
            _options.seconds_to_ms(idle_agent, "idle_agent",
                                   _options.IDLE_AGENT_MAX_MS)
        self._lib = _lib.load()
        self.target_id = target_id
        self._host, self._port = host, port
        self._pid = os.getpid()  # the process that created the context
        self._inherited = False  # a copy in a forked child

        self._handlers: Dict[Optional[str], Handler] = {}
        self._metrics: Optional[MetricsSource] = None
        self._on_conn: Optional[ConnectionCallback] = None

        self._ctx: Optional[Any] = None  # SDK_P while the context lives
        # calls that other threads may make (emit_event, stats, port)
        # hold a use of the context; _free waits for them to end
        self._uses = 0
        self._use_cond = threading.Condition(threading.Lock())
        self._loop_thread = 0
        self._aclosing: Optional[asyncio.Future] = None
        self._mode: Optional[str] = None  # "thread" or "loop"
        self._closed = False
        self._state = threading.RLock()
        self._tls = threading.local()
        self._cfuncs: Optional[tuple] = None

        # pending (async) actions: handle address -> task/thread/future
        self._pending: Dict[int, Any] = {}
        self._plock = threading.Lock()

        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._fd = -1
        self._timer: Optional[asyncio.TimerHandle] = None
        self._stopped: Optional[asyncio.Future] = None
        self._interrupts: list = []

        self._stop_event = threading.Event()
        self._stop_async: Optional[asyncio.Event] = None

    # --- registration -------------------------------------------------

    def action(self, name: Optional[str] = None) -> Callable[[Handler],
                                                              Handler]:
        """Decorator: handle actions named ``name``.

        Without a name the handler is the fallback for every action that
        has no handler of its own (otherwise such an action is answered
        success:false, "unsupported action: NAME").  The handler gets an
        Action and returns a Result (None, bool, (bool, message) or
        {"success": bool, "message": str}); an ``async def`` handler (or
        one returning an awaitable or a concurrent.futures.Future) is
        answered when it completes.  An exception becomes
        success:false, "handler raised TYPE: TEXT".  A second handler
        for the same name replaces the first.
        """
        if callable(name):
            raise TypeError("use @sdk.action() or @sdk.action(\"name\")")

        def register(fn: Handler) -> Handler:
            self.add_action(name, fn)
            return fn

        return register

    def add_action(self, name: Optional[str], fn: Handler) -> None:
        """Register ``fn`` for actions named ``name`` (None: fallback)."""
        if not callable(fn):
            raise TypeError("an action handler must be callable")
        if name is not None:
            _options.c_text(name, "action name")  # as C strings are
        self._handlers[name] = fn

    def remove_action(self, name: Optional[str]) -> None:
        """Forget the handler of ``name`` (None: the fallback)."""
        self._handlers.pop(name, None)

    def metrics(self, source: MetricsSource) -> MetricsSource:
        """Set the heartbeat's metrics; usable as a decorator.

        ``source`` is a mapping (read at every heartbeat) or a function
        returning one, called before every heartbeat on the thread that
        runs the SDK (the loop, with asyncio).  Keys are strings; values
        are sent as strings: str as is, numbers with str(), bool as
        true/false, None as null, anything else as compact JSON.
        """
        if inspect.iscoroutinefunction(source):
            raise TypeError("the metrics provider must not be async: keep "
                            "the values in a dict that a task updates")
        if not (callable(source) or isinstance(source, Mapping)):
            raise TypeError("metrics: a mapping or a function returning one")
        self._metrics = source
        return source

    set_metrics = metrics

    def on_connection(self, fn: ConnectionCallback) -> ConnectionCallback:
        """Decorator: ``fn(conn_id, peer, connected)`` when an agent
        connection opens (after its first heartbeat went out) and
        closes; emit_event(..., conn_id=conn_id) reaches that agent
        only."""
        if not callable(fn):
            raise TypeError("on_connection needs a callable")
        self._on_conn = fn
        return fn

    # --- starting ----------------------------------------------------

    def _create(self) -> None:
        """amonitor_sdk_new() with the configuration and the callbacks."""
        self._check_fork()
        if self._inherited:
            raise RuntimeError(self._inherited_text())
        if self._closed:
            raise RuntimeError("this SDK was closed; create a new one")
        if self._ctx is not None:
            raise RuntimeError("this SDK is running already")
        lib = self._lib
        cfg = _lib.ConfigStruct()
        lib.amonitor_sdk_config_init(ctypes.byref(cfg))
        for key, value in self._conf.items():
            setattr(cfg, key, value)  # checked, bytes kept by _conf
        self._pid = os.getpid()
        ctx = lib.amonitor_sdk_new(ctypes.byref(cfg))
        if not ctx:
            raise MemoryError("amonitor_sdk_new")
        if ctx.contents.err:
            err = self._error(ctx)
            lib.amonitor_sdk_free(ctx)
            raise err

        cfuncs = (_lib.HANDLER_FN(self._c_action), _lib.TEARDOWN_FN(),
                  _lib.METRICS_FN(self._c_metrics), _lib.LOG_FN(self._c_log),
                  _lib.CONNECTION_FN(self._c_connection))
        level = _lib.LOG_ERROR
        for c_level in (_lib.LOG_WARN, _lib.LOG_INFO, _lib.LOG_DEBUG):
            if log.isEnabledFor(_C_LEVEL[c_level]):
                level = c_level
        calls = [
            lambda: lib.amonitor_sdk_handle(ctx, None, cfuncs[0], cfuncs[1],
                                            None),
            lambda: lib.amonitor_sdk_set_metrics(ctx, cfuncs[2], None),
            lambda: lib.amonitor_sdk_set_log(ctx, level, cfuncs[3], None),
            lambda: lib.amonitor_sdk_on_connection(ctx, cfuncs[4],
                                                   cfuncs[1], None),
        ]
        if self._pending_timeout is not None:
            ms = self._pending_timeout
            calls.append(lambda: lib.amonitor_sdk_set_option(
                ctx, _lib.OPT_PENDING_TIMEOUT_MS, ms))
        if self._idle_agent is not None:
            idle_ms = self._idle_agent
            calls.append(lambda: lib.amonitor_sdk_set_option(
                ctx, _lib.OPT_IDLE_AGENT_MS, idle_ms))
        self._cfuncs = cfuncs
        for call in calls:
            if call() != _lib.OK:
                err = self._error(ctx)
                lib.amonitor_sdk_free(ctx)
                self._cfuncs = None
                raise err
        self._ctx = ctx

    def _error(self, ctx: Any = None) -> AmonitorError:
        ctx = ctx or self._ctx
        code = ctx.contents.err
        text = ctx.contents.errstr.decode("utf-8", "replace")
        return AmonitorError(code, text or _lib.strerror(code))

    def _register_live(self) -> None:
        _live.add(self)

    def start(self) -> "SDK":
        """Listen and run the SDK on the C SDK's own I/O thread.

        Returns at once.  Handlers, the metrics provider and the
        connection callback then run on that thread (async handlers on
        a thread of their own, through asyncio.run).  Raises
        AmonitorError when the address cannot be bound.
        """
        with self._state:
            self._create()
            self._mode = "thread"  # before the I/O thread may call back
            if self._lib.amonitor_sdk_start(self._ctx) != _lib.OK:
                err = self._error()
                self._free()
                self._mode = None
                raise err
            self._register_live()
        return self

    async def start_async(self) -> "SDK":
        """Listen and run the SDK on the running asyncio loop.

        Nothing blocks the loop: the loop watches the SDK's descriptor
        (loop.add_reader) and its next timer (loop.call_later) and then
        lets the SDK do its work without waiting.  Handlers run on the
        loop; ``async def`` handlers run as tasks and are acked when
        they finish.  Needs a loop with add_reader (the default
        selector loop on Linux).
        """
        loop = asyncio.get_running_loop()
        with self._state:
            self._create()
            lib = self._lib
            if lib.amonitor_sdk_listen(self._ctx) != _lib.OK:
                err = self._error()
                self._free()
                raise err
            self._fd = lib.amonitor_sdk_fd(self._ctx)
            self._loop = loop
            self._loop_thread = threading.get_ident()
            self._stop_async = asyncio.Event()
            if self._stop_event.is_set():
                self._stop_async.set()
            self._mode = "loop"
            try:
                loop.add_reader(self._fd, self._pump)
            except BaseException:
                self._loop = None
                self._free()
                self._mode = None
                raise
            self._register_live()
            self._arm()
        return self

    # --- the asyncio side --------------------------------------------

    def _arm(self) -> None:
        """Schedule _pump for the SDK's next timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._ctx is None or self._loop is None:
            return
        ms = self._lib.amonitor_sdk_timeout(self._ctx)
        if ms >= 0:
            self._timer = self._loop.call_later(ms / 1000.0, self._pump)

    def _pump(self) -> None:
        """The descriptor is readable or a timer is due: one step."""
        if self._ctx is None:
            return
        rc = self._lib.amonitor_sdk_step(self._ctx, 0)
        if rc == _lib.STOPPED:
            if self._stopped is not None and not self._stopped.done():
                self._stopped.set_result(None)
        elif rc != _lib.OK:
            log.error("amonitor_sdk_step: %s", self._error())
        self._arm()
        if self._interrupts:
            exc = self._interrupts.pop(0)
            raise exc

    # --- callbacks from C --------------------------------------------

    def _enter(self) -> None:
        self._tls.depth = getattr(self._tls, "depth", 0) + 1

    def _leave(self) -> None:
        self._tls.depth -= 1

    def _in_callback(self) -> bool:
        return getattr(self._tls, "depth", 0) > 0

    def _c_action(self, ctx: int, action: Any, message: int, size: int,
                  data: int) -> int:
        self._enter()
        try:
            ok, text, later = self._dispatch(action.contents)
        except BaseException as e:  # never let an exception reach ctypes
            ok, text, later = False, "handler failed: %r" % (e,), False
        finally:
            self._leave()
        if later:
            return _lib.REPLY_LATER
        if message and size:
            data_ = encode_message(text, size)
            ctypes.memmove(message, data_ + b"\0", len(data_) + 1)
        return _lib.REPLY_SUCCESS if ok else _lib.REPLY_FAILURE

    def _dispatch(self, s: Any) -> tuple:
        """Run the handler of one action: (success, message, later)."""
        act = Action._from_struct(s)
        fn = self._handlers.get(act.name)
        if fn is None:
            fn = self._handlers.get(None)
        if fn is None:
            return False, "unsupported action: %s" % act.name, False
        try:
            result = fn(act)
        except Exception as e:
            log.warning("action %s (msg_id %s): handler raised",
                        act.name, act.msg_id, exc_info=True)
            return error_ack(e) + (False,)
        except BaseException as e:
            # KeyboardInterrupt, SystemExit: the ack fails; on a loop the
            # exception goes on once the C SDK returned, on the SDK's
            # thread there is nowhere to raise it
            if self._mode == "loop":
                self._interrupts.append(e)
            else:
                log.error("action %s (msg_id %s): handler raised %s on "
                          "the SDK's thread; ignored", act.name, act.msg_id,
                          type(e).__name__)
            return False, "handler interrupted: %s" % type(e).__name__, False
        if inspect.isawaitable(result) or isinstance(
                result, concurrent.futures.Future):
            self._defer(result, s.pending, act)
            return True, "", True
        try:
            return to_ack(result) + (False,)
        except TypeError as e:
            log.warning("action %s (msg_id %s): %s", act.name, act.msg_id,
                        error_ack(e)[1])
            return error_ack(e) + (False,)

    def _defer(self, result: Any, handle: int, act: Action) -> None:
        """Answer the pending action ``handle`` once ``result`` is done."""
        with self._plock:
            self._pending[handle] = result
        try:
            self._schedule(result, handle, act)
        except BaseException:
            # not scheduled (no thread could start, the loop is closed):
            # the action fails now and the handle goes back to the C SDK,
            # which frees it; kept, close() would ack freed memory
            with self._plock:
                self._pending.pop(handle, None)
            if inspect.iscoroutine(result):
                result.close()
            raise

    def _schedule(self, result: Any, handle: int, act: Action) -> None:
        """Have ``result`` acked when done: a callback, a task or a
        thread."""
        if isinstance(result, concurrent.futures.Future):
            result.add_done_callback(
                lambda f: self._finish(handle, act, f))
        elif self._mode == "loop" and self._loop is not None:
            task = asyncio.ensure_future(result, loop=self._loop)
            with self._plock:
                self._pending[handle] = task
            task.add_done_callback(lambda t: self._finish(handle, act, t))
        else:
            # a daemon: a handler that never ends must not hold up the
            # interpreter's exit (close() answers its action then)
            t = threading.Thread(target=self._run_in_thread,
                                 args=(result, handle, act),
                                 name="amonitor-action-%s" % act.msg_id,
                                 daemon=True)
            with self._plock:
                self._pending[handle] = t
            t.start()

    def _run_in_thread(self, awaitable: Any, handle: int,
                       act: Action) -> None:
        async def wait() -> Any:
            return await awaitable

        fut: concurrent.futures.Future = concurrent.futures.Future()
        try:
            fut.set_result(asyncio.run(wait()))
        except BaseException as e:
            fut.set_exception(e)
        self._finish(handle, act, fut)

    def _finish(self, handle: int, act: Action, fut: Any) -> None:
        """Ack a pending action from its finished future or task."""
        with self._plock:
            if self._pending.pop(handle, None) is None:
                return  # answered at close already
        if fut.cancelled():
            ok, text = False, "action handler cancelled"
        else:
            exc = fut.exception()
            if exc is not None:
                log.warning("action %s (msg_id %s): handler raised",
                            act.name, act.msg_id,
                            exc_info=(type(exc), exc, exc.__traceback__))
                ok, text = error_ack(exc)
            else:
                try:
                    ok, text = to_ack(fut.result())
                except TypeError as e:
                    ok, text = error_ack(e)
        rc = self._lib.amonitor_pending_ack(handle, 1 if ok else 0,
                                            encode_message(text))
        if rc not in (_lib.OK, _lib.ERR_NOTFOUND, _lib.ERR_STATE):
            log.error("amonitor_pending_ack: %s", _lib.strerror(rc))

    def _c_metrics(self, ctx: int, m: int, data: int) -> None:
        if not m:
            return  # teardown at free
        source = self._metrics
        if source is None:
            return
        self._enter()
        try:
            values = source() if callable(source) else source
            for key, value in dict(values).items():
                try:  # NUL would cut the text short in C
                    name = _options.c_text(str(key), "metric name")
                    text = _options.c_text(
                        metric_text(value).encode("utf-8", "replace")
                        .decode("utf-8"), "metric value")
                except ValueError as e:
                    log.warning("metric %r not sent: %s", key, e)
                    continue
                rc = self._lib.amonitor_metrics_add(m, name, text)
                if rc != _lib.OK:
                    log.warning("metric %r not sent: %s", key,
                                _lib.strerror(rc))
        except Exception:
            log.exception("the metrics provider failed")
        finally:
            self._leave()

    def _c_log(self, level: int, msg: Optional[bytes], data: int) -> None:
        if msg is None:
            return
        # a callback like the others: a logging handler that calls
        # close() here gets RuntimeError (the C SDK ignores a free from
        # its callbacks, and would then call released callbacks)
        self._enter()
        try:
            log.log(_C_LEVEL.get(level, logging.INFO), "%s",
                    msg.decode("utf-8", "replace"))
        finally:
            self._leave()

    def _c_connection(self, ctx: int, conn_id: int, peer: Optional[bytes],
                      connected: int, data: int) -> None:
        fn = self._on_conn
        if fn is None:
            return
        self._enter()
        try:
            fn(int(conn_id), peer.decode() if peer else "", bool(connected))
        except Exception:
            log.exception("the connection callback failed")
        finally:
            self._leave()

    # --- running ------------------------------------------------------

    def _use(self) -> Any:
        """Hold the context for one call from any thread, or None."""
        self._check_fork()
        with self._use_cond:
            if self._ctx is None:
                return None
            self._uses += 1
            return self._ctx

    def _unuse(self) -> None:
        with self._use_cond:
            self._uses -= 1
            if self._uses == 0:
                self._use_cond.notify_all()

    @property
    def port(self) -> Optional[int]:
        """The bound port (useful with port=0); None when not running."""
        ctx = self._use()
        if ctx is None:
            return None
        try:
            port = self._lib.amonitor_sdk_port(ctx)
        finally:
            self._unuse()
        return None if port < 0 else port

    @property
    def running(self) -> bool:
        """True between a successful start and close."""
        return self._ctx is not None

    def emit_event(self, name: str, data: Any = None, *,
                   conn_id: Optional[int] = None) -> None:
        """Send event ``name`` with ``data`` (anything json.dumps takes)
        to every agent connection, or to ``conn_id`` only.  Any thread.

        Raises AmonitorError (ERR_FULL when max_queued_events are
        waiting, ERR_INVAL for a bad name, ERR_TOOBIG) or RuntimeError
        when the SDK is not running (or was inherited through fork).
        TypeError or ValueError for a name that is not a str without
        NUL, or a conn_id that is not an int of 1..2**64-1.
        """
        c_name = _options.c_text(name, "event name")
        if conn_id is not None:
            conn_id = _options.conn_id(conn_id)
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)
        ctx = self._use()
        if ctx is None:
            raise RuntimeError(self._inherited_text() if self._inherited
                               else "the SDK is not running")
        try:
            if conn_id is None:
                rc = self._lib.amonitor_sdk_emit_event(
                    ctx, c_name, text.encode("utf-8"))
            else:
                rc = self._lib.amonitor_sdk_emit_event_to(
                    ctx, conn_id, c_name, text.encode("utf-8"))
        finally:
            self._unuse()
        if rc != _lib.OK:
            raise AmonitorError(rc, "event %r: %s"
                                % (name, _lib.strerror(rc)))

    def stats(self) -> Dict[str, int]:
        """The SDK's counters (amonitor_stats_t) as a dict; any thread."""
        st = _lib.StatsStruct()
        ctx = self._use()
        if ctx is None:
            return {name: 0 for name in _lib.STATS_FIELDS}
        try:
            self._lib.amonitor_sdk_stats_get(ctx, ctypes.byref(st),
                                             ctypes.sizeof(st))
        finally:
            self._unuse()
        return {name: int(getattr(st, name)) for name in _lib.STATS_FIELDS}

    def request_stop(self) -> None:
        """Make run() or serve() return (and close).  Any thread, also
        from a handler or a signal handler."""
        self._stop_event.set()
        loop, ev = self._loop, self._stop_async
        if loop is not None and ev is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:
                pass

    def run(self, *, handle_signals: bool = True) -> None:
        """Blocking mode for programs without asyncio: start() on the
        SDK's own thread, wait for SIGINT/SIGTERM (when
        ``handle_signals`` and on the main thread) or request_stop(),
        then close()."""
        old = {}
        if handle_signals and \
                threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(
                    sig, lambda *_: self.request_stop())
        try:
            self.start()
            while not self._stop_event.wait(1.0):
                pass
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            self.close()

    async def wait_for_stop(self) -> None:
        """Wait (on the loop, after start_async) until request_stop()."""
        if self._stop_async is None:
            raise RuntimeError("wait_for_stop() needs start_async() first")
        await self._stop_async.wait()

    async def serve(self) -> None:
        """start_async(), then wait until request_stop() (or until the
        task is cancelled), then aclose()."""
        await self.start_async()
        try:
            await self.wait_for_stop()
        finally:
            await self.aclose()

    # --- stopping -----------------------------------------------------

    def _check_not_callback(self, what: str) -> None:
        if self._in_callback():
            raise RuntimeError(
                "%s() from a handler or callback of this SDK; call "
                "request_stop() there instead" % what)

    def _detach(self) -> None:
        """Take the descriptor and timer off the loop (loop mode)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop, self._loop = self._loop, None
        if loop is not None and self._fd >= 0 and not loop.is_closed():
            try:
                loop.remove_reader(self._fd)
            except (RuntimeError, ValueError):
                pass
        self._fd = -1

    def _check_fork(self) -> None:
        """Forked without os.register_at_fork's hook (a fork from C)?"""
        if self._ctx is not None and self._pid != os.getpid():
            self._forget_parents()

    def _inherited_text(self) -> str:
        return ("this SDK was started by process %d; a process forked "
                "from it cannot use it (create a new SDK there)"
                % self._pid)

    def _forget_parents(self) -> None:
        """In a forked child: release this process's copy of the C
        context (its descriptors; the parent's sockets, epoll set and
        I/O thread stay untouched) and make this object inert."""
        self._state = threading.RLock()
        self._use_cond = threading.Condition(threading.Lock())
        self._uses = 0
        self._plock = threading.Lock()
        self._pending = {}
        ctx, self._ctx = self._ctx, None
        self._inherited = self._closed = True
        self._mode, self._loop, self._timer, self._fd = None, None, None, -1
        if ctx is not None:
            self._lib.amonitor_sdk_free(ctx)  # the child's copy only
        self._cfuncs = None

    def _free(self) -> None:
        """amonitor_sdk_free(): stops (pending actions get success:false),
        waits for a running handler, calls the teardowns; then the
        remaining pending handles are released."""
        with self._use_cond:
            ctx, self._ctx = self._ctx, None
            # another thread's emit_event/stats/port ends first: they
            # never wait for anything this thread holds
            self._use_cond.wait_for(lambda: self._uses == 0)
        if ctx is not None:
            self._lib.amonitor_sdk_free(ctx)
        self._cfuncs = None  # no C code refers to them any more
        with self._plock:
            left, self._pending = list(self._pending.items()), {}
        for handle, waiter in left:
            self._lib.amonitor_pending_ack(
                handle, 0, b"monitored program stopped before answering")
            if isinstance(waiter, asyncio.Task):
                waiter.cancel()
        _live.discard(self)

    def close(self) -> None:
        """Stop the SDK (close 1001 to every agent, at most about one
        second; pending actions are answered success:false) and release
        it.  Idempotent; not from a handler (see request_stop).  With
        asyncio prefer ``await aclose()``, which does not block the
        loop.  In a process forked from the one that started it, it
        does nothing."""
        self._check_fork()
        with self._state:
            if self._closed:
                return
            self._check_not_callback("close")
            loop = self._loop
            if (self._mode == "loop" and loop is not None
                    and loop.is_running()
                    and threading.get_ident() != self._loop_thread):
                raise RuntimeError(
                    "close() of an SDK on an asyncio loop from another "
                    "thread; use request_stop() or close it on the loop")
            self._closed = True
            self._stop_event.set()
            self._detach()
            self._free()
            self._mode = None

    async def aclose(self) -> None:
        """close() without blocking the loop: the close handshakes run
        on the loop.  Idempotent."""
        self._check_fork()
        if self._closed:
            return
        self._check_not_callback("aclose")
        if self._mode != "loop" or self._ctx is None or self._loop is None:
            self.close()
            return
        if self._aclosing is not None:
            await asyncio.shield(self._aclosing)  # another task closes
            return
        loop = self._loop
        self._aclosing = loop.create_future()
        try:
            await self._aclose_on_loop(loop)
        finally:
            self._aclosing.set_result(None)

    async def _aclose_on_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stopped = loop.create_future()
        if self._lib.amonitor_sdk_stop_begin(self._ctx) == _lib.OK:
            self._pump()
            try:
                await asyncio.wait_for(asyncio.shield(self._stopped), 3.0)
            except asyncio.TimeoutError:
                log.warning("the SDK did not stop in time; closing anyway")
        current = asyncio.current_task()
        with self._plock:
            tasks = [w for w in self._pending.values()
                     if isinstance(w, asyncio.Task) and w is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.close()

    def __enter__(self) -> "SDK":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "SDK":
        return await self.start_async()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else (self._mode or "new")
        return "<amonitor.SDK %s %s:%s %s>" % (
            self.target_id, self._host,
            self.port if self.port is not None else self._port, state)
