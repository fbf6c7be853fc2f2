"""One client of the gateway benchmark, run inside the environment that has its library.

It reads commands from stdin, one JSON object a line (`{"mode": "json"|"stream", "n": 500}`),
sends that many chat requests in a row, and answers each command with one JSON line of
per-request latencies in seconds. Streamed latency is the time to the first text ("Hello").

    python bench/gateway_client.py openai|litellm|httpx|bundle|asgi BASE_URL
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

MODEL = "gpt-4o-mini"
FIRST_TEXT = "Hello"


def messages(i: int) -> list[dict[str, str]]:
    # a different prompt each time, so no layer can answer from a cache
    return [{"role": "user", "content": f"Say hello, request {i}."}]


Call = Callable[[int], "float | None"]


def openai_client(base_url: str) -> dict[str, Call]:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)

    def plain(i: int) -> None:
        client.chat.completions.create(model=MODEL, messages=messages(i))

    def stream(i: int) -> float:
        started = time.perf_counter()
        first_text = None
        for event in client.chat.completions.create(model=MODEL, messages=messages(i), stream=True):
            if first_text is None and event.choices and event.choices[0].delta.content:
                first_text = time.perf_counter()
        if first_text is None:
            raise RuntimeError("the SDK's stream ended without text")
        return first_text - started

    return {"json": plain, "stream": stream}


def litellm_client(base_url: str) -> dict[str, Call]:
    import litellm

    litellm.telemetry = False
    options = {"model": f"openai/{MODEL}", "api_base": base_url, "api_key": "sk-bench", "num_retries": 0}

    def plain(i: int) -> None:
        litellm.completion(messages=messages(i), **options)

    def stream(i: int) -> float:
        # LiteLLM's stream wrapper has no close(): read it to the end, or its pooled connection
        # stays busy, and time the first text on the way
        started = time.perf_counter()
        first_text = None
        for event in litellm.completion(messages=messages(i), stream=True, **options):
            if first_text is None and event.choices and event.choices[0].delta.content:
                first_text = time.perf_counter()
        if first_text is None:
            raise RuntimeError("LiteLLM's stream ended without text")
        return first_text - started

    return {"json": plain, "stream": stream}


def httpx_client(base_url: str) -> dict[str, Call]:
    """The floor: one bare HTTP request to the fake server, no SDK."""
    import httpx

    client = httpx.Client(base_url=base_url, headers={"authorization": "Bearer sk-bench"})

    def plain(i: int) -> None:
        client.post("/chat/completions", json={"model": MODEL, "messages": messages(i)}).raise_for_status()

    def stream(i: int) -> float:
        body = {"model": MODEL, "messages": messages(i), "stream": True}
        started = time.perf_counter()
        with client.stream("POST", "/chat/completions", json=body) as response:
            return _first_text_then_drain(response, started)

    return {"json": plain, "stream": stream}


def bundle_client(base_url: str) -> dict[str, Call]:
    """`POST /api/ai_execute` on the local server, which calls the fake through the openai SDK."""
    import httpx

    client = httpx.Client(base_url=base_url, timeout=30)

    def plain(i: int) -> None:
        body = {"model": f"openai/{MODEL}", "messages": messages(i)}
        response = client.post("/api/ai_execute", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"ai_execute answered {response.status_code}: {response.text[:300]}")

    def stream(i: int) -> float:
        body = {"model": f"openai/{MODEL}", "messages": messages(i), "stream": True}
        started = time.perf_counter()
        with client.stream("POST", "/api/ai_execute", json=body) as response:
            if response.status_code != 200:
                raise RuntimeError(f"ai_execute answered {response.status_code}: {response.read()[:300]!r}")
            return _first_text_then_drain(response, started)

    return {"json": plain, "stream": stream}


def asgi_client(_base_url: str) -> dict[str, Call]:
    """The same app called in-process through ASGI, as a serverless runtime hands it a request:
    the gateway's own overhead without the extra HTTP hop. Needs the server's environment.

    A full response is timed until its last body message is handed to `send`, as an HTTP client
    has it then; what the app does after that (the request's own record, lib/observe) still runs
    before the next request starts, but nobody waits for it."""
    import asyncio

    from lib.cli.server import create_app

    app = create_app()
    loop = asyncio.new_event_loop()

    async def call(body: dict) -> float:
        raw = json.dumps(body).encode()
        scope = {"type": "http", "method": "POST", "path": "/api/ai_execute", "query_string": b"",
                 "client": ("127.0.0.1", 0), "headers": [(b"content-type", b"application/json"),
                                                         (b"content-length", str(len(raw)).encode())]}
        received = False
        status = 0
        first_text: float | None = None
        complete: float | None = None
        seen = b""

        async def receive() -> dict:
            nonlocal received
            if received:
                await asyncio.sleep(3600)
            received = True
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: dict) -> None:
            nonlocal status, first_text, complete, seen
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                if first_text is None:
                    seen += message.get("body", b"")
                    if FIRST_TEXT.encode() in seen:
                        first_text = time.perf_counter()
                if not message.get("more_body", False):
                    complete = time.perf_counter()

        started = time.perf_counter()
        await app(scope, receive, send)
        if status != 200 or first_text is None or complete is None:
            raise RuntimeError(f"ai_execute answered {status}: {seen[:300]!r}")
        return (first_text if body.get("stream") else complete) - started

    def plain(i: int) -> float:
        return loop.run_until_complete(call({"model": f"openai/{MODEL}", "messages": messages(i)}))

    def stream(i: int) -> float:
        return loop.run_until_complete(call({"model": f"openai/{MODEL}", "messages": messages(i),
                                             "stream": True}))

    return {"json": plain, "stream": stream}


def _first_text_then_drain(response, started: float) -> float:
    """Seconds from `started` to the first text; then read the rest, as a real client would, so
    the connection goes back to the pool and the server finishes its work (ledger included)."""
    seen = b""
    first_text = None
    for chunk in response.iter_bytes():
        if first_text is None:
            seen += chunk
            if FIRST_TEXT.encode() in seen:
                first_text = time.perf_counter()
    if first_text is None:
        raise RuntimeError(f"the stream ended without {FIRST_TEXT!r}: {seen[:300]!r}")
    return first_text - started


CLIENTS = {"openai": openai_client, "litellm": litellm_client, "httpx": httpx_client,
           "bundle": bundle_client, "asgi": asgi_client}


def main() -> None:
    kind, base_url = sys.argv[1], sys.argv[2]
    calls = CLIENTS[kind](base_url)
    counter = 0
    for line in sys.stdin:
        command = json.loads(line)
        call = calls[command["mode"]]
        latencies = []
        for _ in range(command["n"]):
            counter += 1
            started = time.perf_counter()
            measured = call(counter)  # a client that times itself (first text in-process) says so
            latencies.append(measured if measured is not None else time.perf_counter() - started)
        sys.stdout.write(json.dumps({"latencies": latencies}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
