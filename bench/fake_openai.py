"""A minimal OpenAI-compatible chat server for the gateway benchmark: it answers at once with
prebuilt bytes, so what the clients measure is their own overhead, not the server's.

HTTP/1.1 keep-alive on asyncio; `POST .../chat/completions` returns a fixed completion, or with
`"stream": true` the same answer as server-sent events (all sent at once). Prints its port.

    python bench/fake_openai.py [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json

ANSWER = ["Hello", " from", " the", " benchmark", " server", "."]


def _completion() -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "".join(ANSWER)}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": len(ANSWER), "total_tokens": 12 + len(ANSWER)},
    }).encode()


def _stream() -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "gpt-4o-mini"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
               for word in ANSWER]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**base, "choices": [],
                   "usage": {"prompt_tokens": 12, "completion_tokens": len(ANSWER), "total_tokens": 18}})
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return body.encode()


def _response(body: bytes, content_type: str) -> bytes:
    head = (f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
            "x-request-id: req_bench\r\nconnection: keep-alive\r\n\r\n")
    return head.encode() + body


COMPLETION = _response(_completion(), "application/json")
STREAM = _response(_stream(), "text/event-stream")
NOT_FOUND = _response(b'{"error": {"message": "not found", "type": "invalid_request_error"}}',
                      "application/json").replace(b"200 OK", b"404 Not Found", 1)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            path = head.split(b" ", 2)[1]
            if not path.endswith(b"/chat/completions"):
                writer.write(NOT_FOUND)
            elif b'"stream":true' in body.replace(b" ", b""):
                writer.write(STREAM)
            else:
                writer.write(COMPLETION)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
