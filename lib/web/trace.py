"""What the edge saw of each request, handed on once the response is out.

The endpoint helper opens a `RequestTrace` when a request arrives, tells it who called and for
whom, and awaits `finish()` after the last byte went out, in the same event loop and the same
invocation: the caller never waits for what happens next. What happens next is up to whoever
registered with `on_request_finished`: the request recorder (lib/observe) sits above the edge
in the import order, so it registers itself here instead of being imported (see lib/__init__.py).
A failing listener is logged, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from lib.logs import log, scrub


@dataclass
class RequestRecord:
    """One finished request as the edge knows it (a row of `request_log`)."""

    request_id: str
    function: str
    method: str
    status: int
    error_code: str | None
    latency_ms: float
    ttfb_ms: float | None = None  # streams only: until the first body byte
    caller: str | None = None
    user_id: str | None = None
    namespace: str | None = None


Listener = Callable[[RequestRecord], Awaitable[None]]
_listeners: list[Listener] = []
_current: ContextVar[RequestTrace | None] = ContextVar("request_trace", default=None)


def on_request_finished(listener: Listener) -> None:
    """Have `listener` awaited with the record of every request, after its response (once)."""
    if listener not in _listeners:
        _listeners.append(listener)


class RequestTrace:
    """What one request did, gathered while it runs. Created by the endpoint for each request."""

    def __init__(self, function: str, method: str, request_id: str) -> None:
        self.function, self.method, self.request_id = function, method, request_id
        self.started = time.perf_counter()
        self.first_byte: float | None = None
        self.completed = False
        self.caller: str | None = None
        self.user_id: str | None = None
        self.namespace: str | None = None
        _current.set(self)

    def watch(self, send: Any) -> Any:
        """Wrap the ASGI `send` to note when the first body byte and the end of the body go out."""

        async def timed_send(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body":
                if self.first_byte is None and message.get("body"):
                    self.first_byte = time.perf_counter()
                if not message.get("more_body", False):
                    self.completed = True

        return timed_send

    def identify(self, request: Any, body: Any = None) -> None:
        """Note the caller (once authenticated), the end user it acts for (`Request.user_id`: a
        token's subject, or the `user` a key named), and the namespace of the request's input."""
        if request is not None:
            self.caller = request.caller
            user = request.user_id
            self.user_id = user if isinstance(user, str) and user else self.user_id
        if body is None:
            return
        namespace = body.get("namespace") if isinstance(body, dict) else getattr(body, "namespace", None)
        self.namespace = namespace if isinstance(namespace, str) and namespace else self.namespace

    def to_record(self, status: int, error_code: str | None, streamed: bool) -> RequestRecord:
        now = time.perf_counter()
        ttfb = (self.first_byte - self.started) * 1000 if streamed and self.first_byte is not None else None
        if streamed and not self.completed and status < 400:
            status, error_code = 499, "client_closed"  # the client left before the stream ended
        return RequestRecord(self.request_id, self.function, self.method, status, error_code,
                             round((now - self.started) * 1000, 3), None if ttfb is None else round(ttfb, 3),
                             self.caller, self.user_id, self.namespace)

    async def finish(self, status: int, error_code: str | None, *, streamed: bool) -> None:
        """Hand the record to every listener; never raises (a request is not failed by its bookkeeping)."""
        _current.set(None)
        if self.method == "OPTIONS" or not _listeners:
            return  # preflights say nothing about the function
        record = self.to_record(status, error_code, streamed)
        for listener in _listeners:
            try:
                await listener(record)
            except Exception as exc:  # noqa: BLE001 - see docstring
                log("warning", "request_record_failed", request_id=self.request_id, function=self.function,
                    detail=scrub(repr(exc))[:500])


def identify(request: Any, body: Any = None) -> None:
    """Tell the current request's trace who called and with what input (no-op outside a request)."""
    trace = _current.get()
    if trace is not None:
        trace.identify(request, body)
