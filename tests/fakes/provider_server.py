"""A fake LLM provider: a real HTTP server on loopback speaking the providers' wire formats.

The official SDKs reach it through their base-URL settings, so tests exercise the same HTTP,
SSE parsing and error mapping as production. Tests script what it answers next:

    fake.queue(Reply(status=429, headers={"retry-after": "0"}), Reply(text="hi"))
    fake.queue_for("/v1/chat/completions", Reply(tool_calls=[...]), Reply(text="done"))  # one route's own

Replies queued for a path answer only requests to exactly that path, in order, before the shared
queue; so a test can script a tool loop on one provider and a summary on another. With nothing
queued it answers a short successful reply. Every request is recorded, body included
(`requests`, `bodies(path)`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.loopback import LoopbackServer

# The chat path each provider's SDK calls on this server, by a model of that provider.
PROVIDER_PATHS = {
    "openai/gpt-4o-mini": "/v1/chat/completions",
    "anthropic/claude-haiku-4-5": "/v1/messages",
    "groq/llama-3.3-70b-versatile": "/openai/v1/chat/completions",
    "google/gemini-2.5-flash": "/v1beta/openai/chat/completions",
    "openrouter/meta-llama/llama-3.1-8b-instruct": "/api/v1/chat/completions",
    "compat/llama3.2": "/compat/v1/chat/completions",
}


@dataclass
class Reply:
    """What the fake answers to one request.

    status/json: an error or a raw body; text/tool_calls/finish_reason/usage: a normal answer in
    the route's own format; delay_s: wait before answering (timeouts); cut_after: in a stream,
    close the connection after this many content events (a stream cut off midway); end_after: in a
    stream, end the body cleanly after this many content events, with no finish event.
    """

    status: int = 200
    text: str | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] | None = None  # [{"id", "name", "arguments": dict}]
    finish_reason: str | None = None
    usage: dict[str, int] | None = None  # {"input": n, "output": n, "cached": n}
    delay_s: float = 0.0
    cut_after: int | None = None
    end_after: int | None = None  # in a stream, end it cleanly after this many content events
    model: str | None = None
    chunk_delay_s: float = 0.0


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def fake_embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector per text, so cache and order tests can compare values."""
    digest = hashlib.sha256(text.encode()).digest()
    values = [((digest[i % len(digest)] + i * 31) % 255) / 255.0 - 0.5 for i in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class FakeProvider(LoopbackServer):
    """The server and its script. Route handlers are registered per path suffix."""

    def __init__(self) -> None:
        self._replies: deque[Reply] = deque()
        self._replies_for: dict[str, deque[Reply]] = {}
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.routes: dict[str, Callable[[Any, RecordedRequest, Reply], None]] = {}
        self.default_text = "Hello from the fake provider."
        register_openai_routes(self)
        register_anthropic_routes(self)

    # --- script ------------------------------------------------------------------------------
    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def queue_for(self, path: str, *replies: Reply) -> None:
        """Replies for requests to exactly `path` (e.g. "/v1/messages"), answered in order."""
        with self._lock:
            self._replies_for.setdefault(path, deque()).extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._replies.clear()
            self._replies_for.clear()
            self.requests.clear()

    def next_reply(self, path: str = "") -> Reply:
        with self._lock:
            own = self._replies_for.get(path)
            if own:
                return own.popleft()
            return self._replies.popleft() if self._replies else Reply()

    def requests_to(self, suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(suffix)]

    def bodies(self, path: str) -> list[Any]:
        """The bodies received at exactly `path`, in order."""
        return [r.body for r in self.requests if r.path == path]

    # --- server ------------------------------------------------------------------------------
    def start(self) -> FakeProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                provider._handle(self)

            def do_POST(self) -> None:
                provider._handle(self)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                # a client that hangs up mid-stream is a scenario the tests create on purpose
                import sys

                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)

        self.serve(Handler, Server)
        return self

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        path = handler.path.split("?")[0]
        recorded = RecordedRequest(handler.command, path, {k.lower(): v for k, v in handler.headers.items()}, body)
        with self._lock:
            self.requests.append(recorded)
        reply = self.next_reply(path)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.status >= 400 or reply.json is not None:
            payload = reply.json if reply.json is not None else {
                "error": {"message": f"fake error {reply.status}", "type": "fake_error", "code": None}
            }
            send_json(handler, reply.status, payload, reply.headers)
            return
        for suffix, route in self.routes.items():
            if path.endswith(suffix):
                route(handler, recorded, reply)
                return
        send_json(handler, 404, {"error": {"message": f"no fake route for {path}"}})


# --- wire helpers -----------------------------------------------------------------------------


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


class StreamWriter:
    """Writes an SSE response with chunked transfer encoding; `cut()` drops the connection."""

    def __init__(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        self.handler = handler
        self.reply = reply
        self.sent = 0
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("transfer-encoding", "chunked")
        for key, value in reply.headers.items():
            handler.send_header(key, value)
        handler.end_headers()

    def _write(self, text: str) -> None:
        data = text.encode()
        self.handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.handler.wfile.flush()

    def event(self, payload: Any, event: str | None = None, counts: bool = True) -> bool:
        """Send one event; returns False once the script says to cut the stream here."""
        if counts and self.reply.cut_after is not None and self.sent >= self.reply.cut_after:
            self.cut()
            return False
        if counts and self.reply.end_after is not None and self.sent >= self.reply.end_after:
            self.close()  # a well-formed end of the body, with no finish event: a proxy that gave up
            return False
        if self.reply.chunk_delay_s:
            time.sleep(self.reply.chunk_delay_s)
        prefix = f"event: {event}\n" if event else ""
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self._write(f"{prefix}data: {data}\n\n")
        if counts:
            self.sent += 1
        return True

    def cut(self) -> None:
        # close without the terminating chunk: the client sees a broken stream
        self.handler.close_connection = True
        try:
            self.handler.wfile.flush()
            self.handler.connection.shutdown(2)
        except OSError:
            pass

    def close(self) -> None:
        self.handler.wfile.write(b"0\r\n\r\n")
        self.handler.wfile.flush()


def words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


# --- OpenAI-compatible routes (OpenAI, Gemini, OpenRouter, Ollama, vLLM) -----------------------


def _openai_usage(reply: Reply, body: dict[str, Any], text: str) -> dict[str, Any]:
    usage = reply.usage or {}
    prompt = usage.get("input", max(1, len(json.dumps(body.get("messages", ""))) // 4))
    completion = usage.get("output", max(1, len(text.split())))
    result: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                              "total_tokens": prompt + completion}
    if "cached" in usage:
        result["prompt_tokens_details"] = {"cached_tokens": usage["cached"]}
    return result


def _openai_chat(handler: BaseHTTPRequestHandler, req: RecordedRequest, reply: Reply, provider: FakeProvider) -> None:
    body = req.body or {}
    model = reply.model or body.get("model", "fake-model")
    text = reply.text if reply.text is not None else ("" if reply.tool_calls else provider.default_text)
    finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
    tool_calls = [
        {"id": tc.get("id", f"call_{i}"), "type": "function",
         "function": {"name": tc["name"], "arguments": json.dumps(tc.get("arguments", {}))}}
        for i, tc in enumerate(reply.tool_calls or [])
    ]
    created = int(time.time())
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        send_json(handler, 200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": _openai_usage(reply, body, text),
        }, reply.headers)
        return
    stream = StreamWriter(handler, reply)
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model}
    if not stream.event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                              "finish_reason": None}]}, counts=False):
        return
    for piece in words(text) if text else []:
        if not stream.event({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}):
            return
    for i, tc in enumerate(tool_calls):
        args = tc["function"]["arguments"]
        half = len(args) // 2
        first = {"index": i, "id": tc["id"], "type": "function",
                 "function": {"name": tc["function"]["name"], "arguments": args[:half]}}
        if not stream.event({**base, "choices": [{"index": 0, "delta": {"tool_calls": [first]}, "finish_reason": None}]}):
            return
        rest = {"index": i, "function": {"arguments": args[half:]}}
        if not stream.event({**base, "choices": [{"index": 0, "delta": {"tool_calls": [rest]}, "finish_reason": None}]}):
            return
    last: dict[str, Any] = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
    if req.path.endswith("/openai/v1/chat/completions"):  # Groq puts usage on the last chunk
        last["x_groq"] = {"id": "req_fake", "usage": _openai_usage(reply, body, text)}
    stream.event(last, counts=False)
    if (body.get("stream_options") or {}).get("include_usage"):
        stream.event({**base, "choices": [], "usage": _openai_usage(reply, body, text)}, counts=False)
    stream.event("[DONE]", counts=False)
    stream.close()


def _openai_embeddings(handler: BaseHTTPRequestHandler, req: RecordedRequest, reply: Reply, provider: FakeProvider) -> None:
    body = req.body or {}
    inputs = body.get("input", [])
    if isinstance(inputs, str):
        inputs = [inputs]
    dimensions = int(body.get("dimensions") or 1536)
    data = []
    for i, text in enumerate(inputs):
        vector = fake_embedding(str(text), dimensions)
        if body.get("encoding_format") == "base64":
            encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        else:
            encoded = vector
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    tokens = sum(max(1, len(str(t).split())) for t in inputs)
    send_json(handler, 200, {
        "object": "list", "data": data, "model": body.get("model", "fake-embedding"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }, reply.headers)


def _openai_models(handler: BaseHTTPRequestHandler, req: RecordedRequest, reply: Reply, provider: FakeProvider) -> None:
    send_json(handler, 200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})


def register_openai_routes(provider: FakeProvider) -> None:
    provider.routes["/chat/completions"] = lambda h, r, rep: _openai_chat(h, r, rep, provider)
    provider.routes["/embeddings"] = lambda h, r, rep: _openai_embeddings(h, r, rep, provider)
    provider.routes["/models"] = lambda h, r, rep: _openai_models(h, r, rep, provider)


# --- Anthropic Messages API (/v1/messages), plain and SSE ------------------------------------------


def _anthropic_usage(reply: Reply, body: dict[str, Any], text: str) -> dict[str, int]:
    # Anthropic reports cached prompt tokens in addition to input_tokens, not as a part of them
    usage = reply.usage or {}
    prompt = usage.get("input", max(1, len(json.dumps(body.get("messages", ""))) // 4))
    cached = usage.get("cached", 0)
    return {"input_tokens": prompt - cached, "output_tokens": usage.get("output", max(1, len(text.split()))),
            "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}


def _anthropic_messages(handler: BaseHTTPRequestHandler, req: RecordedRequest, reply: Reply,
                        provider: FakeProvider) -> None:
    body = req.body or {}
    if "max_tokens" not in body:  # the real API refuses this too
        send_json(handler, 400, {"type": "error", "error": {
            "type": "invalid_request_error", "message": "max_tokens: Field required"}})
        return
    model = reply.model or body.get("model", "claude-fake")
    text = reply.text if reply.text is not None else ("" if reply.tool_calls else provider.default_text)
    stop = reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn")
    calls = [{"type": "tool_use", "id": tc.get("id", f"toolu_{i}"), "name": tc["name"],
              "input": tc.get("arguments", {})} for i, tc in enumerate(reply.tool_calls or [])]
    usage = _anthropic_usage(reply, body, text)
    if not body.get("stream"):
        content = ([{"type": "text", "text": text}] if text else []) + calls
        send_json(handler, 200, {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                                 "content": content, "stop_reason": stop, "stop_sequence": None,
                                 "usage": usage}, reply.headers)
        return
    stream = StreamWriter(handler, reply)
    start_usage = {**usage, "output_tokens": 1}
    if not stream.event({"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}}, "message_start", counts=False):
        return
    stream.event({"type": "ping"}, "ping", counts=False)
    index = 0
    if text:
        stream.event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                     "content_block_start", counts=False)
        for piece in words(text):
            if not stream.event({"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": piece}}, "content_block_delta"):
                return
        stream.event({"type": "content_block_stop", "index": 0}, "content_block_stop", counts=False)
        index = 1
    for call in calls:
        args = json.dumps(call["input"])
        stream.event({"type": "content_block_start", "index": index,
                      "content_block": {**call, "input": {}}}, "content_block_start", counts=False)
        for piece in (args[: len(args) // 2], args[len(args) // 2:]):
            if not stream.event({"type": "content_block_delta", "index": index,
                                 "delta": {"type": "input_json_delta", "partial_json": piece}},
                                "content_block_delta"):
                return
        stream.event({"type": "content_block_stop", "index": index}, "content_block_stop", counts=False)
        index += 1
    stream.event({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                  "usage": {"output_tokens": usage["output_tokens"]}}, "message_delta", counts=False)
    stream.event({"type": "message_stop"}, "message_stop", counts=False)
    stream.close()


def register_anthropic_routes(provider: FakeProvider) -> None:
    provider.routes["/v1/messages"] = lambda h, r, rep: _anthropic_messages(h, r, rep, provider)


# Groq's SDK posts to /openai/v1/chat/completions: the OpenAI-compatible route above answers it.
