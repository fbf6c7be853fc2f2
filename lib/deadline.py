"""The current request's deadline: started once at the edge, read by whatever has to wait.

A context variable, so each request (each asyncio task) has its own. Outside a request (the CLI,
tests calling `lib` directly) there is none, and callers fall back to a bound of their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def at_least(seconds: float) -> Iterator[None]:
    """Within the block, at least `seconds` from now: for bookkeeping that must happen even when
    the request has run out of time (the ledger row of an answer already served)."""
    current = _deadline.get()
    floor = time.monotonic() + seconds
    token = _deadline.set(floor if current is None else max(current, floor))
    try:
        yield
    finally:
        _deadline.reset(token)
