"""Provider adapters and the registry: what each wire format receives for one normalized request,
the pricing table, and overload / quota handling, against the fake provider server."""

from __future__ import annotations

import asyncio
import json

import pytest

from lib import errors
from lib.config import Settings, get_settings
from lib.providers import PROVIDERS, adapter_for, openai_client, resolve_model, target_for
from lib.providers.pricing import DEFAULT_LIMITS, Limits, cost_usd, limits_of
from lib.providers.types import ChatRequest, Message, Tool, ToolCall, Usage
from tests.fakes.provider_server import Reply


def run(model: str, request: ChatRequest, *, stream: bool = False):
    spec, name = resolve_model(model)
    target = target_for(spec, name, get_settings(), timeout_s=5)
    adapter = adapter_for(spec)
    chat = ChatRequest(**{**vars(request), "model": name})

    async def go():
        if not stream:
            return await adapter.complete(chat, target)
        return [event async for event in adapter.stream(chat, target)]

    return asyncio.run(go())


CONVERSATION = ChatRequest(
    model="", system="Be terse.", temperature=1.5, max_tokens=None, stop=["END"], user="u-42",
    messages=[Message("system", "Use metric units."), Message("user", "Weather?"),
              Message("assistant", "", [ToolCall("c1", "weather", '{"city": "Oslo"}')]),
              Message("tool", '{"t": 4}', tool_call_id="c1", name="weather"),
              Message("tool", '{"wind": 2}', tool_call_id="c1", name="weather")],
    tools=[Tool("weather", "Weather now", {"type": "object", "properties": {"city": {"type": "string"}}})],
    tool_choice={"name": "weather"}, response_format={"type": "json_object"})


def test_anthropic_translation(fake_provider) -> None:
    run("anthropic/claude-haiku-4-5", CONVERSATION)
    body = fake_provider.requests[-1].body
    assert body["system"].startswith("Be terse.\n\nUse metric units.") and "JSON" in body["system"]
    assert body["max_tokens"] == 4096  # required by Anthropic, filled in when the caller gave none
    assert "temperature" not in body  # the Messages API of this SDK takes no sampling temperature
    assert body["stop_sequences"] == ["END"] and body["metadata"] == {"user_id": "u-42"}
    assert body["tool_choice"] == {"type": "tool", "name": "weather"}
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert len(body["messages"][2]["content"]) == 2  # both tool results in one user turn


def test_openai_translation(fake_provider) -> None:
    run("openai/gpt-4o-mini", CONVERSATION)
    body = fake_provider.requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    assert body["messages"][1] == {"role": "system", "content": "Use metric units."}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert body["stop"] == ["END"] and body["user"] == "u-42" and body["temperature"] == 1.5
    assert body["response_format"] == {"type": "json_object"}
    assert "max_completion_tokens" not in body and "max_tokens" not in body


def test_max_tokens_field_per_provider(fake_provider) -> None:
    short = ChatRequest(model="", messages=[Message("user", "hi")], max_tokens=7)
    run("openai/gpt-4o-mini", short)
    assert fake_provider.requests[-1].body["max_completion_tokens"] == 7
    run("google/gemini-2.5-flash", ChatRequest(**{**vars(short), "user": "u-1"}))
    assert fake_provider.requests[-1].body["max_tokens"] == 7
    assert "user" not in fake_provider.requests[-1].body  # Gemini refuses fields it does not know


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "groq/llama-3.3-70b-versatile"])
def test_length_stop_reason_is_normalized(fake_provider, model) -> None:
    reason = "max_tokens" if model.startswith("anthropic") else "length"
    fake_provider.queue(Reply(text="cut", finish_reason=reason), Reply(text="cut", finish_reason=reason))
    hello = ChatRequest(model="", messages=[Message("user", "hi")])
    assert run(model, hello).finish_reason == "length"
    assert run(model, hello, stream=True)[-1].finish_reason == "length"


def test_anthropic_overloaded_529_is_retried_by_the_endpoint(client, fake_provider) -> None:
    fake_provider.queue(Reply(status=529, json={"type": "error", "error": {"type": "overloaded_error",
                                                                            "message": "Overloaded"}}),
                        Reply(text="back"))
    r = client.post("/api/ai_execute", json={"prompt": "x", "model": "anthropic/claude-haiku-4-5"})
    assert r.status_code == 200 and r.json()["attempts"][0]["error_code"] == "overloaded"


def test_quota_exhausted_is_not_retried(client, fake_provider) -> None:
    fake_provider.queue(Reply(status=429, json={"error": {"message": "You exceeded your current quota",
                                                          "type": "insufficient_quota", "code": "insufficient_quota"}}))
    r = client.post("/api/ai_execute", json={"prompt": "x", "model": "openai/gpt-4o-mini"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_quota_exhausted"
    assert len(fake_provider.requests) == 1


def test_overall_timeout_stops_before_the_next_fallback(client, fake_provider, env) -> None:
    env(TOTAL_TIMEOUT_S="0.4", MAX_RETRIES="0")
    fake_provider.queue(Reply(text="slow", delay_s=1.0))
    r = client.post("/api/ai_execute", json={"prompt": "x", "model": "openai/gpt-4o-mini",
                                             "fallbacks": ["anthropic/claude-haiku-4-5"]})
    assert r.status_code == 504
    assert [a["model"] for a in r.json()["error"]["details"]["attempts"]] == ["openai/gpt-4o-mini"]


# --- registry and pricing ---------------------------------------------------------------------------


def test_registry_names_and_aliases() -> None:
    assert resolve_model("gemini/gemini-2.5-flash")[0].name == "google"
    assert resolve_model("openrouter/anthropic/claude-3.5-sonnet")[1] == "anthropic/claude-3.5-sonnet"
    assert resolve_model("ollama/llama3")[0].name == "compat"
    # a bare name is the one provider's that can serve it
    assert resolve_model("gpt-4o") == (PROVIDERS["openai"], "gpt-4o")
    assert resolve_model("claude-sonnet-4-5")[0].name == "anthropic"
    assert resolve_model("gemini-2.5-pro")[0].name == "google"
    assert resolve_model("llama-3.3-70b-versatile")[0].name == "groq"  # by the pricing table
    for bare in ("llama3", "mistral-large", "echo-ish", ""):
        with pytest.raises(errors.ValidationFailed):
            resolve_model(bare)


def test_openai_client_for_embeddings_has_sdk_retries_off() -> None:
    settings = Settings(openai_api_key="sk-x", gemini_api_key="g", compat_base_url="http://localhost:11434/v1")

    async def build():
        return [openai_client(p, settings) for p in ("openai", "gemini", "compat")]

    clients = asyncio.run(build())
    assert all(c.max_retries == 0 for c in clients)
    assert str(clients[2].base_url).startswith("http://localhost:11434/v1")
    with pytest.raises(errors.ConfigurationError):
        openai_client("openrouter", settings)
    with pytest.raises(ValueError):
        openai_client("anthropic", settings)


def test_pricing_overrides_and_file(tmp_path) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert cost_usd("openai/gpt-4o-mini", usage, Settings()) == pytest.approx(0.75)
    assert cost_usd("openai/some-new-model", usage, Settings()) is None
    overrides = json.dumps({"openai/some-new-model": {"input": 1, "output": 2}})
    assert cost_usd("openai/some-new-model", usage, Settings(pricing_overrides=overrides)) == 3
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"compiled": "2030-01-01", "models": {"local/echo": {"input": 5, "output": 5}}}))
    assert cost_usd("openai/gpt-4o-mini", usage, Settings(pricing_file=str(table))) is None
    assert cost_usd("local/echo", usage, Settings(pricing_file=str(table))) == 10
    with pytest.raises(errors.ConfigurationError):
        cost_usd("local/echo", usage, Settings(pricing_overrides="{nope"))


def test_context_windows_are_data_with_a_stated_default() -> None:
    assert limits_of("openai/gpt-4o-mini", Settings()) == Limits(128_000, 16_384)
    assert limits_of("anthropic/claude-haiku-4-5", Settings()).context_window == 200_000
    unknown = limits_of("compat/llama3.2", Settings())
    assert unknown == DEFAULT_LIMITS and unknown.context_window == 8192 and not unknown.known
    # an override may give a window alone (its price stays unknown) or amend a listed model's
    tiny = Settings(pricing_overrides=json.dumps({"compat/tiny": {"context_window": 2000},
                                                  "openai/gpt-4o-mini": {"context_window": 4096,
                                                                         "max_output_tokens": 1024}}))
    assert limits_of("compat/tiny", tiny) == Limits(2000, 500)
    assert cost_usd("compat/tiny", Usage(10, 10), tiny) is None
    assert limits_of("openai/gpt-4o-mini", tiny) == Limits(4096, 1024)
    assert cost_usd("openai/gpt-4o-mini", Usage(1_000_000, 0), tiny) == pytest.approx(0.15)
    for bad in ({"context_window": "big"}, {"context_window": 4096, "max_output_tokens": 5000}, {"input": 1}):
        with pytest.raises(errors.ConfigurationError):
            limits_of("compat/x", Settings(pricing_overrides=json.dumps({"compat/x": bad})))


def test_local_echo_calls_a_tool_when_told_to_and_then_echoes_the_result() -> None:
    search = Tool("search_documents", "", {"type": "object", "properties": {"query": {"type": "string"}}})
    ask = ChatRequest(model="", messages=[Message("user", '/tool search_documents {"query": "warranty"}')],
                      tools=[search])
    first = run("local/echo", ask)
    [call] = first.tool_calls
    assert first.finish_reason == "tool_calls" and call.name == "search_documents"
    assert call.parsed_arguments() == {"query": "warranty"} and run("local/echo", ask).tool_calls == [call]
    events = run("local/echo", ask, stream=True)
    assert [type(e).__name__ for e in events] == ["ToolCallStarted", "ToolCallReady", "StreamFinished"]
    answered = ChatRequest(model="", tools=[search], messages=[
        *ask.messages, Message("assistant", "", [call]), Message("tool", '{"passages": []}', tool_call_id=call.id)])
    assert run("local/echo", answered).text.endswith('You said: {"passages": []}')
    unknown = ChatRequest(model="", messages=[Message("user", '/tool delete_everything {}')], tools=[search])
    assert "no tool 'delete_everything'" in run("local/echo", unknown).text


def test_served_snapshot_name_is_priced() -> None:
    # OpenRouter or a dated snapshot: priced when the served name is in the table
    assert cost_usd("openai/my-alias", Usage(1_000_000, 0), Settings(), served_model="gpt-4o-mini") == 0.15


def test_broken_pricing_overrides_refuse_before_paying(client, fake_provider, env) -> None:
    env(PRICING_OVERRIDES="{not json")
    r = client.post("/api/ai_execute", json={"prompt": "x", "model": "openai/gpt-4o-mini"})
    assert r.status_code == 503 and "PRICING_OVERRIDES" in r.json()["error"]["message"]
    assert fake_provider.requests == []


def test_answer_without_reported_usage_has_unknown_cost(client, fake_provider) -> None:
    fake_provider.queue(Reply(text="no usage here", usage={"input": 0, "output": 0}))
    r = client.post("/api/ai_execute", json={"prompt": "x", "model": "openai/gpt-4o-mini"})
    assert r.status_code == 200 and r.json()["cost_usd"] is None
