# Copyright (C) AMonitor authors
#
# The one exception type of the binding.

"""AmonitorError: an AMONITOR_ERR_* code from the C SDK, with its text."""

from __future__ import annotations


class AmonitorError(Exception):
    """A call into the C SDK failed.

    ``code`` is the AMONITOR_ERR_* value (negative; see amonitor.h) and
    ``message`` the SDK's description (ctx->errstr or amonitor_strerror).
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return "AmonitorError(%d, %r)" % (self.code, self.message)
