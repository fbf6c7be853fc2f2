"""Streams from /api/ai_execute parsed by the AI SDK's own client code (the `ai` npm package, v5)
under Node: the chunk schema useChat's transport applies, and readUIMessageStream building the
message. Skipped only when Node.js is not installed."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.ai_sdk import needs_node, parse_with_ai_sdk
from tests.fakes.provider_server import Reply

pytestmark = [pytest.mark.node, needs_node]


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}


def test_text_stream_parses(client, fake_provider) -> None:
    fake_provider.queue(Reply(text="Hello from a stream", usage={"input": 5, "output": 4}))
    r = client.post("/api/ai_execute", json={"prompt": "hi", "model": "openai/gpt-4o-mini", "stream": True})
    parsed = parse_with_ai_sdk(r.content)
    assert parsed["errors"] == []
    text_parts = [p for p in parsed["message"]["parts"] if p["type"] == "text"]
    assert [p["text"] for p in text_parts] == ["Hello from a stream"]
    assert parsed["message"]["metadata"]["usage"]["output_tokens"] == 4


def test_tool_call_stream_parses(client, fake_provider) -> None:
    fake_provider.queue(Reply(text="Let me check.", tool_calls=[{"id": "toolu_1", "name": "get_weather",
                                                                  "arguments": {"city": "Oslo"}}]))
    r = client.post("/api/ai_execute", json={"prompt": "Oslo?", "model": "anthropic/claude-haiku-4-5",
                                             "tools": [WEATHER], "stream": True})
    parsed = parse_with_ai_sdk(r.content)
    [tool] = [p for p in parsed["message"]["parts"] if p["type"] == "tool-get_weather"]
    assert tool["state"] == "input-available" and tool["input"] == {"city": "Oslo"}
    assert tool["toolCallId"] == "toolu_1"


def test_cut_stream_parses_and_reports_the_error(client, fake_provider) -> None:
    fake_provider.queue(Reply(text="one two three four", cut_after=2))
    r = client.post("/api/ai_execute", json={"prompt": "x", "model": "openai/gpt-4o-mini", "stream": True})
    parsed = parse_with_ai_sdk(r.content)
    assert len(parsed["errors"]) == 1 and "broke off" in parsed["errors"][0]


def test_source_parts_added_before_finish_parse() -> None:
    from lib.gateway.chain import ChatCompleted, ChatResult
    from lib.gateway.ui_stream import source_document_part, source_url_part, ui_message_chunks
    from lib.providers.types import ChatResponse, StreamFinished, TextDelta, Usage

    async def events():
        yield TextDelta("Cited answer [1].")
        yield StreamFinished("stop", Usage(3, 4))
        yield ChatCompleted(ChatResult(ChatResponse("Cited answer [1].", usage=Usage(3, 4)), "local/echo",
                                       "local", 0.0, 1.0, []))

    async def encode() -> bytes:
        out = []
        async for chunk in ui_message_chunks(events(), before_finish=lambda: [
                source_url_part("s1", "https://example.com/a", "A"),
                source_document_part("s2", "Handbook", "application/pdf", "handbook.pdf")]):
            out.append(f"data: {chunk if isinstance(chunk, str) else json.dumps(chunk)}\n\n")
        return "".join(out).encode()

    parsed = parse_with_ai_sdk(asyncio.run(encode()))
    kinds = [p["type"] for p in parsed["message"]["parts"]]
    assert "source-url" in kinds and "source-document" in kinds
