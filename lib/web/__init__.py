"""The endpoint helper: turns typed handlers into one ASGI `app` per Vercel function.

A function file declares `app = Endpoint("name")` and registers a handler per method, with the
least role a caller needs for it (`reader` < `writer` < `admin`; admin when not said):

    @app.post(AskRequest, role="reader")
    async def ask(request: Request, body: AskRequest) -> dict: ...

    @app.get(ListQuery, role="writer")   # GET (and DELETE): the model validates the query string
    async def list_items(request: Request, query: ListQuery) -> dict: ...

The helper owns everything at the edge: request ids, CORS and preflight, who may call (API keys,
end users' tokens, roles; `lib/web/auth.py`), body limits, content types, JSON and multipart
parsing, pydantic validation (unknown fields refused, a bad field or query parameter named in the
422), the JSON error shape, streaming responses and one structured log line per request.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from lib import deadline, errors
from lib.config import ROLES, ApiKey, SettingError, Settings, get_settings
from lib.logs import log, scrub, set_level
from lib.web.auth import (
    PUBLIC,
    Identity,
    authenticate,
    authenticate_api_key,
    bearer_token,
    check_cron_or_admin,
    check_cron_secret,
    client_address,
    matching_secret,
    same_site,
)
from lib.web.client_input import check_fields, check_text, read_json_object
from lib.web.trace import RequestTrace, identify

__all__ = [
    "Endpoint", "Request", "Response", "StreamingResponse", "UploadedFile", "json_response", "sse_response",
    "Identity", "authenticate_api_key", "bearer_token", "check_cron_or_admin", "check_cron_secret",
    "matching_secret",
]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")
_EXPOSED_HEADERS = "x-request-id, x-vercel-ai-ui-message-stream, retry-after"
# What a browser may send cross-origin: provider keys (BYOK headers) are for servers only.
_CORS_REQUEST_HEADERS = frozenset({
    "accept", "accept-language", "content-language", "content-type", "authorization", "x-request-id",
})


# --- responses ------------------------------------------------------------------------------


@dataclass
class Response:
    """A complete response body. Handlers may return one to set the status or headers."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    try:
        body = json.dumps(data, ensure_ascii=False, default=_json_default).encode()
    except UnicodeEncodeError:  # a lone surrogate from somewhere: escape it rather than fail
        body = json.dumps(data, default=_json_default).encode()
    return Response(body, status, dict(headers or {}))


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "hex") and type(value).__name__ == "UUID":
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


@dataclass
class StreamingResponse:
    """A body sent chunk by chunk as the iterator yields (SSE, plain text). Nothing is buffered."""

    chunks: AsyncIterator[bytes | str]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "text/plain; charset=utf-8"


def sse_response(
    events: AsyncIterator[Any], headers: dict[str, str] | None = None
) -> StreamingResponse:
    """Server-sent events: each item becomes `data: <json>\\n\\n` (strings are sent as they are)."""

    async def encode() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                payload = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
                yield f"data: {payload}\n\n".encode()
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    base = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}
    base.update(headers or {})
    return StreamingResponse(encode(), 200, base, "text/event-stream; charset=utf-8")


# --- requests -------------------------------------------------------------------------------


@dataclass
class UploadedFile:
    """One file part of a multipart form."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class Request:
    """What a handler sees of the HTTP request, already authenticated and size-checked."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    request_id: str
    settings: Settings
    api_key: ApiKey | None = None
    body: bytes = b""
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)
    client_ip: str = ""
    identity: Identity = PUBLIC
    end_user: str | None = None  # the body's `user`, when a trusted server (an API key) named one

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def require_role(self, role: str) -> None:
        """Refuse (403, `<role>_required`) a caller whose role is below `role` (`reader` < `writer` < `admin`)."""
        if not self.identity.may(role):
            raise errors.Forbidden(
                f"{self.method} {self.path} needs role {role!r}; {self.identity.described} does not have it",
                code=f"{role}_required", details={"required_role": role, "role": self.identity.role or None})

    def require_namespace(self, namespace: str) -> None:
        """Refuse (403) when the caller is limited to other namespaces."""
        if not self.identity.allows(namespace):
            raise errors.Forbidden(f"{self.identity.described} may not use namespace {namespace!r}",
                                   details={"namespace": namespace})

    @property
    def caller(self) -> str:
        """A stable, non-secret name for the caller, for rate limits, conversations and the ledger."""
        return self.identity.caller

    @property
    def user_id(self) -> str | None:
        """The end user, for per-user budgets, rate limits and the ledger: a token's subject, or
        the `user` a server with an API key named in the body."""
        return self.identity.user_id if self.identity.kind == "user" else self.end_user


Handler = Callable[[Request, Any], Awaitable[Any]]


@dataclass
class _Route:
    handler: Handler
    model: Any  # a pydantic model class, any type pydantic validates (a union of models), or None
    multipart: bool
    role: str = "admin"  # the least role a caller needs
    adapter: Any = None  # the pydantic TypeAdapter for a `model` that is not a model class
    # What the route answers, for the OpenAPI document only (lib/web/openapi.py); never read on a
    # request. Models may be named "module:Name" so the function's cold start does not import them.
    responses: dict[int, Any] = field(default_factory=dict)  # status -> model
    streams: dict[str, Any] = field(default_factory=dict)  # ui | text | events -> model of its data
    errors: tuple[int, ...] = ()  # statuses beyond those every route of its kind can answer
    headers: dict[str, str] = field(default_factory=dict)  # response header -> what it says


# --- the endpoint ---------------------------------------------------------------------------


class Endpoint:
    """An ASGI application serving one Vercel function.

    `auth=False` opens the function to everyone (health); otherwise every request is
    authenticated (`lib/web/auth.py`: an API key, a user's token, or anonymous when allowed) and
    must have the role its route names, and in production with no way to authenticate anyone
    configured the function refuses to serve at all.
    """

    def __init__(self, name: str, *, auth: bool = True, max_body_bytes: int | None = None) -> None:
        self.name = name
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.routes: dict[str, _Route] = {}

    def route(self, method: str, model: Any = None, *, multipart: bool = False, role: str = "admin",
              response: Any = None, streams: dict[str, Any] | None = None, errors: tuple[int, ...] = (),
              headers: dict[str, str] | None = None):
        """Register the handler of `method`. `model` validates what the method carries: the JSON
        or multipart body of a POST, the query string of a GET, both for a DELETE (a body's fields
        win). A blank query parameter (`?limit=`) counts as absent, as HTML forms send it. Without a
        model the handler gets the raw dict. `role` is the least role a caller needs (a route that
        does not say is for administrators).

        The rest documents the route in the OpenAPI document: `response` is the model of a 200
        (or `{status: model}`): a model, "module:Name", several joined with " | " (one per
        `action`), and media types for bodies that are not JSON ("text/html | text/css"), `streams` the streamed forms it can answer with instead
        (`ui`: the AI SDK UI message stream, with the model of `finish.messageMetadata`; `text`:
        plain text; `events`: server-sent JSON events, with their model), `errors` the statuses
        it can answer beyond those of every route (see lib/web/openapi.py), and `headers` the
        response headers it adds."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")

        def register(handler: Handler) -> Handler:
            self.routes[method.upper()] = _Route(
                handler, model, multipart, role,
                responses=response if isinstance(response, dict) else ({200: response} if response else {}),
                streams=dict(streams or {}), errors=tuple(errors), headers=dict(headers or {}))
            return handler

        return register

    def get(self, model: Any = None, *, role: str = "admin", **documented: Any):
        return self.route("GET", model, role=role, **documented)

    def post(self, model: Any = None, *, multipart: bool = False, role: str = "admin", **documented: Any):
        return self.route("POST", model, multipart=multipart, role=role, **documented)

    def delete(self, model: Any = None, *, role: str = "admin", **documented: Any):
        return self.route("DELETE", model, role=role, **documented)

    # ASGI entry point
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming_id = headers.get("x-request-id", "")
        request_id = incoming_id if _REQUEST_ID.match(incoming_id) else os.urandom(16).hex()
        method = scope["method"].upper()
        trace = RequestTrace(self.name, method, request_id)
        send = trace.watch(send)
        outcome = {"status": 500, "error_code": None}
        extra_headers = {"x-request-id": request_id}
        try:
            settings = _settings()
            deadline.start(settings.total_timeout_s)
            extra_headers.update(_cors_headers(settings, headers.get("origin")))
            response = await self._dispatch(scope, receive, method, headers, request_id, settings)
        except errors.ApiError as exc:
            outcome["error_code"] = exc.code
            if exc.status >= 500:
                log("error", "request_failed", request_id=request_id, code=exc.code,
                    detail=scrub(repr(exc.__cause__ or exc)))
            response = json_response(_scrubbed(exc.body(request_id)), exc.status, exc.headers)
        except Exception as exc:  # noqa: BLE001 - the edge turns every fault into JSON
            outcome["error_code"] = "internal_error"
            log("error", "unhandled_exception", request_id=request_id, path=scope.get("path"),
                exception=type(exc).__name__, detail=scrub(_traceback(exc)))
            err = errors.ApiError("internal error; see the server log for this request id")
            response = json_response(err.body(request_id), 500)
        response.headers.update(extra_headers)
        outcome["status"] = response.status
        try:
            await _send_response(send, receive, response, request_id)
        finally:
            log("info", "request", method=method, path=scope.get("path", ""),
                status=outcome["status"], duration_ms=round((time.perf_counter() - started) * 1000, 2),
                request_id=request_id, function=self.name, **({"error_code": outcome["error_code"]}
                                                              if outcome["error_code"] else {}))
            # after the last byte went out: the caller does not wait for this write
            await trace.finish(outcome["status"], outcome["error_code"],
                               streamed=isinstance(response, StreamingResponse))

    async def _dispatch(
        self, scope: Scope, receive: Receive, method: str, headers: dict[str, str],
        request_id: str, settings: Settings,
    ) -> Response | StreamingResponse:
        origin = headers.get("origin")
        if method == "OPTIONS":
            return _preflight(settings, origin, headers, self.routes)
        if (origin and settings.allowed_origins and not _origin_allowed(settings, origin)
                and not same_site(settings, headers, origin)):
            raise errors.Forbidden(f"origin {origin!r} is not in ALLOWED_ORIGINS", code="origin_not_allowed")
        route = self.routes.get(method) or (self.routes.get("GET") if method == "HEAD" else None)
        if route is None:
            allowed = ", ".join(sorted(set(self.routes) | {"OPTIONS"}))
            raise errors.MethodNotAllowed(
                f"{method} is not allowed on /api/{self.name}; use {allowed}",
                headers={"allow": allowed},
            )
        address = client_address(settings, headers, (scope.get("client") or ("", 0))[0] or "")
        identity = await authenticate(settings, headers, method, address) if self.auth else PUBLIC
        request = Request(
            method=method,
            path=scope.get("path", ""),
            headers=headers,
            query=_parse_query(scope.get("query_string", b"")),
            request_id=request_id,
            settings=settings,
            api_key=identity.api_key,
            client_ip=address,
            identity=identity,
        )
        identify(request)
        if self.auth:
            request.require_role(route.role)
            if identity.kind == "anonymous":
                from lib.web.ratelimit import limit_anonymous

                await limit_anonymous(settings, identity.caller)
        body: Any = None
        data: dict[str, Any] = {}
        if method in ("GET", "HEAD", "DELETE"):  # a model reads a blank `?limit=` as absent
            data = {name: value for name, value in request.query.items() if value or route.model is None}
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            request.body = await _read_body(receive, headers, self.max_body_bytes or settings.max_body_bytes)
            data.update(_parse_body(request, route))
        if route.model is not None:
            body = _validate(route, data)
        elif data:
            body = data
        request.end_user = _end_user(identity, body)
        identify(request, body)
        result = await route.handler(request, body)
        if isinstance(result, (Response, StreamingResponse)):
            return result
        return json_response(result)

# --- edge helpers ---------------------------------------------------------------------------


def _end_user(identity: Identity, body: Any) -> str | None:
    """The `user` a body names, when its caller may name one: a server with an API key may (it
    speaks for its users), a signed-in user may only name themselves, an anonymous caller nobody."""
    named = body.get("user") if isinstance(body, dict) else getattr(body, "user", None)
    if not isinstance(named, str):
        return None
    if identity.kind == "user" and named != identity.user_id:
        raise errors.Forbidden(f"the body names user {named!r} but the token is {identity.user_id!r}'s: a "
                               "signed-in user acts only for themselves (leave `user` out)",
                               code="user_mismatch")
    if identity.kind == "anonymous":
        raise errors.Forbidden("an anonymous caller cannot name a `user`; sign in", code="user_mismatch")
    return named


def _settings() -> Settings:
    """The process's settings, with LOG_LEVEL applied; a variable that does not fit is a 503."""
    try:
        settings = get_settings()
    except SettingError as exc:
        raise errors.ConfigurationError(str(exc)) from None
    set_level(settings.log_level)
    return settings


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """ASGI lifespan: nothing to start or stop (state lives in Postgres), so say yes to both."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _parse_query(raw: bytes) -> dict[str, str]:
    if not raw:
        return {}
    from urllib.parse import parse_qsl

    query = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    check_fields(query, "query")
    return query


def _origin_allowed(settings: Settings, origin: str) -> bool:
    return "*" in settings.allowed_origins or origin in settings.allowed_origins


def _cors_headers(settings: Settings, origin: str | None) -> dict[str, str]:
    if not origin or not _origin_allowed(settings, origin):
        return {}
    if origin not in settings.allowed_origins:  # allowed by `*` alone: any site, so no credentials
        return {"access-control-allow-origin": "*", "access-control-expose-headers": _EXPOSED_HEADERS}
    return {
        "access-control-allow-origin": origin,
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": _EXPOSED_HEADERS,
        "vary": "origin",
    }


def _preflight(settings: Settings, origin: str | None, headers: dict[str, str], routes: dict) -> Response:
    allowed_methods = ", ".join(sorted(set(routes) | {"OPTIONS"}))
    if not origin:
        return Response(b"", 204, {"allow": allowed_methods})
    if not _origin_allowed(settings, origin):
        raise errors.Forbidden(f"origin {origin!r} is not in ALLOWED_ORIGINS", code="origin_not_allowed")
    method = headers.get("access-control-request-method", "").upper()
    if method and method not in routes:
        raise errors.BadRequest(f"CORS preflight: {method} is not allowed here; use {allowed_methods}",
                                code="cors_method_not_allowed")
    requested = [h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",")]
    refused = [h for h in requested if h and h not in _CORS_REQUEST_HEADERS]
    if refused:
        raise errors.BadRequest(
            f"CORS preflight: request headers {', '.join(refused)} are not allowed from a browser; "
            f"allowed: {', '.join(sorted(_CORS_REQUEST_HEADERS))}", code="cors_header_not_allowed")
    return Response(
        b"",
        204,
        {
            "access-control-allow-methods": allowed_methods,
            "access-control-allow-headers": ", ".join(h for h in requested if h) or "authorization, content-type",
            "access-control-max-age": "600",
        },
    )


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise errors.PayloadTooLarge(
            f"request body is {int(declared)} bytes; the limit is {limit} bytes",
            details={"limit_bytes": limit},
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise errors.BadRequest("client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(
                f"request body is over the limit of {limit} bytes", details={"limit_bytes": limit}
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse_body(request: Request, route: _Route) -> dict[str, Any]:
    raw = request.body
    content_type = request.header("content-type").split(";")[0].strip().lower()
    if not raw.strip():
        return {}
    if content_type == "multipart/form-data" and route.multipart:
        request.form, request.files = _parse_multipart(request.header("content-type"), raw)
        return dict(request.form)
    if content_type not in ("application/json", "") and not content_type.endswith("+json"):
        accepted = "application/json" + (" or multipart/form-data" if route.multipart else "")
        raise errors.UnsupportedMediaType(
            f"content type {content_type!r} is not accepted here; send {accepted}"
        )
    return read_json_object(raw)


def _parse_multipart(content_type: str, raw: bytes) -> tuple[dict[str, str], dict[str, UploadedFile]]:
    # The stdlib email parser reads MIME multipart correctly; imported only for uploads.
    from email.parser import BytesParser
    from email.policy import HTTP

    if "boundary=" not in content_type:
        raise errors.BadRequest("multipart/form-data without a boundary", code="invalid_multipart")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    if not message.is_multipart():
        raise errors.BadRequest("malformed multipart/form-data body", code="invalid_multipart")
    form: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = UploadedFile(filename, part.get_content_type(), payload)
        else:
            charset = part.get_content_charset() or "utf-8"
            form[name] = payload.decode(charset, errors="replace")
    check_fields(form, "form")
    for upload in files.values():
        check_text(upload.filename, "file name")
    return form, files


def _validate(route: _Route, data: dict[str, Any]) -> Any:
    from pydantic import TypeAdapter, ValidationError

    try:
        if hasattr(route.model, "model_validate"):
            return route.model.model_validate(data)
        if route.adapter is None:
            route.adapter = TypeAdapter(route.model)
        return route.adapter.validate_python(data)
    except ValidationError as exc:
        union = _is_union(route.model)
        details = []
        for err in exc.errors(include_url=False, include_input=False):
            # a union's errors start with the member they were checked against, which is no field
            loc = err["loc"][1:] if union and err["loc"] else err["loc"]
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = "unknown field"
            elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc = (*loc, err["ctx"]["discriminator"].strip("'"))
                message = (f"{err['ctx']['tag']!r} is not one of {err['ctx']['expected_tags']}"
                           if err["type"] == "union_tag_invalid" else "is required")
            where = ".".join(str(p) for p in loc) or "body"
            details.append({"field": where, "message": message, "type": err["type"]})
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
        raise errors.ValidationFailed(f"invalid request: {summary}", details=details) from None


def _is_union(model: Any) -> bool:
    while get_origin(model) is Annotated:
        model = get_args(model)[0]
    return get_origin(model) in (Union, UnionType)


async def _send_response(
    send: Send, receive: Receive, response: Response | StreamingResponse, request_id: str
) -> None:
    headers = dict(response.headers)
    headers.setdefault("content-type", response.media_type)
    if isinstance(response, Response):
        headers["content-length"] = str(len(response.body))
        await send({"type": "http.response.start", "status": response.status,
                    "headers": _encode_headers(headers)})
        await send({"type": "http.response.body", "body": response.body})
        return
    await send({"type": "http.response.start", "status": response.status,
                "headers": _encode_headers(headers)})
    if await _stream_until_disconnect(send, receive, response.chunks, request_id):
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _stream_until_disconnect(
    send: Send, receive: Receive, chunks: AsyncIterator[bytes | str], request_id: str
) -> bool:
    """Send chunks as they come; stop, and close the iterator (and so the provider stream behind
    it), as soon as the client goes away, so an abandoned stream stops spending tokens.
    Returns False when the client disconnected."""
    import asyncio

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(client_gone())
    iterator = chunks.__aiter__()
    connected = True
    try:
        while True:
            next_chunk = asyncio.ensure_future(iterator.__anext__())
            await asyncio.wait({next_chunk, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not next_chunk.done():
                next_chunk.cancel()
                await asyncio.gather(next_chunk, return_exceptions=True)
                connected = False
                log("info", "client_disconnected", request_id=request_id)
                return False
            try:
                chunk = next_chunk.result()
            except StopAsyncIteration:
                return True
            data = chunk.encode() if isinstance(chunk, str) else chunk
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})
    except Exception as exc:  # noqa: BLE001 - headers are gone; log and close the stream
        log("error", "stream_failed", request_id=request_id, exception=type(exc).__name__,
            detail=scrub(_traceback(exc)))
        return connected
    finally:
        watcher.cancel()
        close = getattr(chunks, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:  # noqa: BLE001 - closing a broken stream must not mask the result
                pass


def _encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]


def _scrubbed(value: Any) -> Any:
    """An error body with secrets redacted: provider messages may echo the key they were sent."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


def _traceback(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
