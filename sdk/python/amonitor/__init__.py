# Copyright (C) AMonitor authors
#
# The Python binding of the AMonitor C SDK (libamonitor_sdk.so.1).

"""AMonitor SDK for Python programs.

A thin binding over the AMonitor C SDK: the monitored program runs a
WebSocket server that the AMonitor agent (nginx with
ngx_http_amonitor_module) dials; the SDK sends heartbeats with metrics and
events, and answers actions with the results of the program's handlers.

    import amonitor

    sdk = amonitor.SDK(target_id="billing", port=8765)

    @sdk.action("restart")
    def restart(action: amonitor.Action) -> amonitor.Result:
        return True, "restarted"

    sdk.run()                     # blocking; or: async with sdk: ...

See docs/python-sdk.md for the whole API.
"""

from ._errors import AmonitorError
from ._sdk import SDK, Action, Result, Handler
from ._lib import library_path

__version__ = "1.2.0"

__all__ = ["SDK", "Action", "Result", "Handler", "AmonitorError",
           "library_path", "__version__"]
