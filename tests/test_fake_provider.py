"""The fake provider speaks the OpenAI wire format well enough for the official SDK."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.fakes.provider_server import Reply


def sdk(fake, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=f"{fake.base_url}/v1", max_retries=0, **kwargs)


def test_chat_completion_and_stream(fake_provider):
    fake_provider.queue(Reply(text="one two three", usage={"input": 7, "output": 3, "cached": 2}))
    result = sdk(fake_provider).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert result.choices[0].message.content == "one two three"
    assert result.usage.prompt_tokens_details.cached_tokens == 2
    fake_provider.queue(Reply(text="a b c"))
    stream = sdk(fake_provider).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == "a b c"
    assert fake_provider.requests_to("/chat/completions")[-1].headers["authorization"] == "Bearer sk-test"


def test_scripted_errors_reach_the_sdk(fake_provider):
    fake_provider.queue(Reply(status=429, headers={"retry-after": "3"}))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(fake_provider).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert caught.value.response.headers["retry-after"] == "3"


def test_stream_cut_midway_breaks_the_sdk_stream(fake_provider):
    fake_provider.queue(Reply(text="a b c d e f", cut_after=2))
    stream = sdk(fake_provider).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True)
    received = []
    with pytest.raises((httpx.TransportError, openai.APIConnectionError)):
        for chunk in stream:
            received.extend(c.delta.content for c in chunk.choices if c.delta.content)
    assert received and "".join(received) != "a b c d e f"  # some text arrived, then the cut


def test_embeddings_base64_round_trip(fake_provider):
    result = sdk(fake_provider).embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=8)
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 8
    assert result.data[0].embedding != result.data[1].embedding
