"""The current request's deadline: started once at the edge, read by whatever has to wait.

A context variable, so each request (each asyncio task) has its own. Outside a request (the CLI,
tests calling `lib` directly) there is none, and callers fall back to a bound of their own.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def start(seconds: float) -> None:
    """The request that is starting has `seconds` to finish (`TOTAL_TIMEOUT_S` at the edge)."""
    _deadline.set(time.monotonic() + seconds)


def remaining(default: float) -> float:
    """Seconds left before the request's deadline (never negative), or `default` outside one."""
    deadline = _deadline.get()
    if deadline is None:
        return default
    return max(0.0, deadline - time.monotonic())
