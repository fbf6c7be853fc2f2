"""Each adapter maps its SDK's failures into one `ProviderError` at its seam: the real SDKs against
the fake provider server, and the kind, status and retry-after the retry loop then reads."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

import httpx
import openai
import pytest

from lib.config import get_settings
from lib.ingest.embedders import resolve_embedding_model
from lib.ingest.embedders.openai_wire import OpenAIEmbedder
from lib.providers import adapter_for, openai_wire, resolve_model, target_for
from lib.providers.exceptions import ProviderError
from lib.providers.types import ChatRequest, Message
from tests.fakes.provider_server import Reply

CHAT_MODELS = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "groq/llama-3.3-70b-versatile"]
HELLO = ChatRequest(model="", messages=[Message("user", "hi")])


def failure(model: str, *, stream: bool = False, timeout_s: float = 5.0,
            base_url: str | None = None) -> ProviderError:
    """What the adapter for `model` raises for the fake provider's next reply."""
    spec, name = resolve_model(model)
    target = target_for(spec, name, get_settings(), timeout_s=timeout_s)
    if base_url is not None:
        target = replace(target, base_url=base_url)
    adapter = adapter_for(spec)
    chat = replace(HELLO, model=name)

    async def call() -> None:
        if stream:
            async for _ in adapter.stream(chat, target):
                pass
        else:
            await adapter.complete(chat, target)

    with pytest.raises(ProviderError) as info:
        asyncio.run(call())
    return info.value


def closed_port_url() -> str:
    """A loopback URL nobody listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def error_body(message: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": code or "fake_error", "code": code}}


HTTP_ERRORS = [  # (status, headers, body, kind, retry_after_s)
    (429, {"retry-after": "3"}, None, "rate_limited", 3.0),
    (429, {"retry-after-ms": "250"}, None, "rate_limited", 0.25),
    (429, {}, error_body("You exceeded your current quota", "insufficient_quota"), "quota_exhausted", None),
    (500, {}, None, "server_error", None),
    (503, {"retry-after": "1"}, None, "server_error", 1.0),
    (529, {}, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "overloaded",
     None),
    (401, {}, error_body("bad key"), "auth", None),
    (403, {}, None, "permission_denied", None),
    (404, {}, None, "not_found", None),
    (400, {}, None, "bad_request", None),
    (408, {}, None, "timeout", None),
]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("model", CHAT_MODELS)
def test_http_errors_map_to_kind_status_and_retry_after(fake_provider, model, stream) -> None:
    for status, headers, body, kind, retry_after_s in HTTP_ERRORS:
        fake_provider.queue(Reply(status=status, headers=headers, json=body))
        error = failure(model, stream=stream)
        assert (error.kind, error.status, error.retry_after_s) == (kind, status, retry_after_s), (status, headers)
        assert error.provider == model.split("/")[0]
        assert error.should_retry is None
    assert len(fake_provider.requests) == len(HTTP_ERRORS)  # the SDKs' own retries are off


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_the_providers_own_retry_verdict_is_kept(fake_provider, model) -> None:
    fake_provider.queue(Reply(status=503, headers={"x-should-retry": "false"}),
                        Reply(status=400, headers={"x-should-retry": "true"}))
    assert failure(model).should_retry is False
    assert failure(model).should_retry is True


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_the_body_message_is_kept_without_secrets(fake_provider, model) -> None:
    fake_provider.queue(Reply(status=401, json=error_body("Incorrect API key provided: sk-live-abcdefgh12345678")))
    error = failure(model)
    assert error.message.startswith("Incorrect API key provided: ")
    assert "abcdefgh12345678" not in error.message and "abcdefgh12345678" not in str(error)


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_a_stream_cut_off_midway_is_a_connection_error(fake_provider, model) -> None:
    # openai wraps the broken read in its own class; anthropic (httpx2) and groq (httpx) do not
    fake_provider.queue(Reply(text="one two three four five", cut_after=2))
    error = failure(model, stream=True)
    assert (error.kind, error.status) == ("connection", None)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("model", CHAT_MODELS)
def test_a_read_timeout_is_a_timeout(fake_provider, model, stream) -> None:
    # complete: no answer at all; stream: the headers arrive, then no event in time
    reply = Reply(text="a b", chunk_delay_s=0.8) if stream else Reply(text="late", delay_s=0.8)
    fake_provider.queue(reply)
    error = failure(model, stream=stream, timeout_s=0.2)
    assert (error.kind, error.status) == ("timeout", None)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("model", CHAT_MODELS)
def test_a_refused_connection_is_a_connection_error(fake_provider, model, stream) -> None:
    error = failure(model, stream=stream, base_url=closed_port_url())
    assert (error.kind, error.status, error.provider) == ("connection", None, model.split("/")[0])


def test_an_error_event_inside_a_stream_has_no_status() -> None:
    request = httpx.Request("POST", "http://provider.test/v1/chat/completions")
    event = openai.APIError("An error occurred during streaming", request, body={"message": "the model broke"})
    with pytest.raises(ProviderError) as info, openai_wire.map_exceptions("openai"):
        raise event
    assert (info.value.kind, info.value.status, info.value.message) == ("provider_error", None, "the model broke")


def test_exceptions_of_our_own_pass_unmapped() -> None:
    with pytest.raises(KeyError), openai_wire.map_exceptions("openai"):
        raise KeyError("a bug, not a provider failure")


def embed_failure(base_url: str | None = None) -> ProviderError:
    settings = get_settings()
    if base_url is not None:
        settings = replace(settings, openai_base_url=base_url)
    spec = resolve_embedding_model("openai/text-embedding-3-small")

    async def embed() -> None:  # the SDK client belongs to the event loop it is built in
        await OpenAIEmbedder(spec, settings).embed(["a", "b"])

    with pytest.raises(ProviderError) as info:
        asyncio.run(embed())
    return info.value


def test_the_openai_embedder_maps_its_sdks_errors(fake_provider) -> None:
    fake_provider.queue(Reply(status=429, headers={"retry-after-ms": "1500"}), Reply(status=529))
    error = embed_failure()
    assert (error.kind, error.status, error.retry_after_s, error.provider) == ("rate_limited", 429, 1.5, "openai")
    assert (embed_failure().kind, fake_provider.requests_to("/embeddings")[-1].body["input"]) == (
        "overloaded", ["a", "b"])
    assert embed_failure(base_url=closed_port_url()).kind == "connection"
