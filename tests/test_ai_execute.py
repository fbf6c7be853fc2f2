"""POST /api/ai_execute through each provider's official SDK against the fake provider server:
text, tools, JSON, usage and cost, retries, fallbacks, timeouts, budgets, cache and rate limits."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from tests.fakes.provider_server import PROVIDER_PATHS, Reply

# model -> the path its SDK posts to on the fake server

def unique(text: str = "") -> str:
    return f"{text} {uuid.uuid4().hex[:8]}".strip()


def ledger(database: str, where: str = "TRUE", params: tuple = ()) -> list[dict]:
    with psycopg.connect(database) as conn:
        cur = conn.execute(f"SELECT * FROM usage_ledger WHERE {where} ORDER BY id", params)
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def post(client, body: dict, **kwargs):
    return client.post("/api/ai_execute", json=body, **kwargs)


# --- the offline provider -------------------------------------------------------------------------


def test_local_echo_answers_offline_and_says_so(client, database) -> None:
    r = post(client, {"prompt": "Hello there", "model": "local/echo"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["text"].startswith("[offline local/echo")
    assert "Hello there" in data["text"]
    assert data["provider"] == "local" and data["cost_usd"] == 0.0 and data["cached"] is False
    assert data["usage"]["output_tokens"] > 0
    assert [a["status"] for a in data["attempts"]] == ["ok"]
    rows = ledger(database, "request_id = %s", (data["id"],))
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["provider"] == "local"


def test_default_model_comes_from_the_environment(client, env) -> None:
    env(DEFAULT_MODEL="local/echo")
    r = post(client, {"prompt": "hi"})
    assert r.status_code == 200 and r.json()["model"] == "local/echo"


def test_without_keys_or_default_model_the_offline_echo_answers(client, env) -> None:
    env(DEFAULT_MODEL=None)
    r = post(client, {"prompt": "hi"})
    assert r.status_code == 200 and r.json()["model"] == "local/echo"


def test_with_a_key_and_no_default_model_the_422_says_what_to_name(client, env) -> None:
    env(DEFAULT_MODEL=None, OPENAI_API_KEY="sk-test", ANTHROPIC_API_KEY="sk-ant-test")
    r = post(client, {"prompt": "hi"})
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert "openai/gpt-4o-mini" in message and "anthropic/claude-haiku-4-5" in message
    assert "DEFAULT_MODEL" in message and r.json()["error"]["details"][0]["field"] == "model"


@pytest.mark.parametrize(("bare", "full"), [("gpt-4o-mini", "openai/gpt-4o-mini"),
                                            ("claude-haiku-4-5", "anthropic/claude-haiku-4-5"),
                                            ("llama-3.1-8b-instant", "groq/llama-3.1-8b-instant")])
def test_a_bare_model_name_is_its_one_provider_s(client, fake_provider, bare, full) -> None:
    fake_provider.queue(Reply(text="ok"))
    r = post(client, {"prompt": "hi", "model": bare})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == full and r.json()["provider"] == full.split("/")[0]


def test_a_bare_model_name_no_provider_claims_is_a_422(client, database) -> None:
    r = post(client, {"prompt": "hi", "model": "mistral-large"})
    assert r.status_code == 422 and "provider/model" in r.json()["error"]["message"]


# --- every provider, plain and streamed -------------------------------------------------------------


@pytest.mark.parametrize("model", list(PROVIDER_PATHS))
def test_plain_text_through_each_sdk(client, fake_provider, model) -> None:
    fake_provider.queue(Reply(text="Paris is the capital.", usage={"input": 1000, "output": 200}))
    r = post(client, {"prompt": "Capital of France?", "model": model, "system": "Be brief.", "max_tokens": 50})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["text"] == "Paris is the capital."
    assert data["finish_reason"] == "stop"
    assert data["usage"] == {"input_tokens": 1000, "output_tokens": 200, "cached_tokens": 0, "total_tokens": 1200}
    assert data["provider"] == model.split("/")[0] and data["model"] == model
    [sent] = fake_provider.requests
    assert sent.path == PROVIDER_PATHS[model]
    if model.startswith("anthropic/"):
        assert sent.body["system"] == "Be brief." and sent.body["max_tokens"] == 50
        assert sent.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]}]
        assert "sk-ant-test" in (sent.headers.get("x-api-key", ""), sent.headers.get("authorization", ""))[0] + \
            sent.headers.get("authorization", "")
    else:
        assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}
    prices = {"openai/gpt-4o-mini": (0.15, 0.6), "anthropic/claude-haiku-4-5": (1.0, 5.0),
              "groq/llama-3.3-70b-versatile": (0.59, 0.79), "google/gemini-2.5-flash": (0.3, 2.5)}
    if model in prices:
        inp, out = prices[model]
        assert data["cost_usd"] == pytest.approx((1000 * inp + 200 * out) / 1e6)
    else:
        assert data["cost_usd"] is None  # no price in the table: unknown, never guessed


def sse_chunks(body: str) -> list:
    events = []
    for block in body.strip().split("\n\n"):
        assert block.startswith("data: "), block
        payload = block[len("data: "):]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


@pytest.mark.parametrize("model", list(PROVIDER_PATHS))
def test_streamed_text_as_ui_message_stream(client, fake_provider, database, model) -> None:
    fake_provider.queue(Reply(text="one two three", usage={"input": 10, "output": 3}))
    r = post(client, {"prompt": "count", "model": model, "stream": True})
    assert r.status_code == 200, r.text
    assert r.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks = sse_chunks(r.text)
    kinds = [c if isinstance(c, str) else c["type"] for c in chunks]
    assert kinds[:3] == ["start", "start-step", "text-start"]
    assert kinds[-4:] == ["text-end", "finish-step", "finish", "[DONE]"]
    assert "".join(c["delta"] for c in chunks if isinstance(c, dict) and c["type"] == "text-delta") == "one two three"
    meta = chunks[-2]["messageMetadata"]
    assert meta["usage"]["input_tokens"] == 10 and meta["usage"]["output_tokens"] == 3
    assert meta["finishReason"] == "stop" and meta["provider"] == model.split("/")[0]
    assert fake_provider.requests[-1].path == PROVIDER_PATHS[model]
    request_id = r.headers["x-request-id"]
    [row] = ledger(database, "request_id = %s", (request_id,))
    assert row["status"] == "ok" and row["streamed"] and row["input_tokens"] == 10


def test_plain_text_protocol(client, fake_provider) -> None:
    fake_provider.queue(Reply(text="just the words"))
    r = post(client, {"prompt": "x", "model": "openai/gpt-4o-mini", "stream": True, "protocol": "text"})
    assert r.status_code == 200 and r.text == "just the words"
    assert r.headers["content-type"].startswith("text/plain")


def test_first_token_is_not_buffered(client, fake_provider) -> None:
    import time

    fake_provider.queue(Reply(text="a b c d e", chunk_delay_s=0.25))
    started = time.monotonic()
    first_delta_at = None
    with client.stream("POST", "/api/ai_execute",
                       json={"prompt": "x", "model": "openai/gpt-4o-mini", "stream": True}) as r:
        for line in r.iter_lines():
            if first_delta_at is None and '"text-delta"' in line:
                first_delta_at = time.monotonic() - started
    total = time.monotonic() - started
    assert first_delta_at is not None and total - first_delta_at > 0.7


# --- tools and JSON -------------------------------------------------------------------------------

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "groq/llama-3.3-70b-versatile"])
def test_tool_call_in_and_tool_result_back(client, fake_provider, model) -> None:
    fake_provider.queue(Reply(tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}]))
    r = post(client, {"prompt": "Weather in Oslo?", "model": model, "tools": [WEATHER_TOOL],
                      "tool_choice": "auto"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["finish_reason"] == "tool_calls"
    [call] = data["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    sent = fake_provider.requests[-1].body
    if model.startswith("anthropic/"):
        assert sent["tools"][0]["input_schema"]["required"] == ["city"] and sent["tool_choice"] == {"type": "auto"}
    else:
        assert sent["tools"][0]["function"]["name"] == "get_weather"

    fake_provider.queue(Reply(text="It is sunny in Oslo."))
    conversation = [{"role": "user", "content": "Weather in Oslo?"}, data["message"],
                    {"role": "tool", "tool_call_id": call["id"], "content": '{"sky": "sunny"}'}]
    r = post(client, {"messages": conversation, "model": model, "tools": [WEATHER_TOOL]})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "It is sunny in Oslo."
    sent = fake_provider.requests[-1].body["messages"]
    if model.startswith("anthropic/"):
        assert sent[1]["content"][-1] == {"type": "tool_use", "id": call["id"], "name": "get_weather",
                                          "input": {"city": "Oslo"}}
        assert sent[2] == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
                                                         "content": '{"sky": "sunny"}'}]}
    else:
        assert sent[1]["tool_calls"][0]["id"] == call["id"]
        assert sent[2] == {"role": "tool", "tool_call_id": call["id"], "content": '{"sky": "sunny"}'}


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
def test_streamed_tool_call_parts(client, fake_provider, model) -> None:
    fake_provider.queue(Reply(text="Checking.", tool_calls=[{"id": "call_9", "name": "get_weather",
                                                              "arguments": {"city": "Rome"}}]))
    r = post(client, {"prompt": "Rome?", "model": model, "tools": [WEATHER_TOOL], "stream": True})
    chunks = [c for c in sse_chunks(r.text) if isinstance(c, dict)]
    available = [c for c in chunks if c["type"] == "tool-input-available"]
    assert available == [{"type": "tool-input-available", "toolCallId": "call_9", "toolName": "get_weather",
                          "input": {"city": "Rome"}}]
    assert [c["type"] for c in chunks].index("tool-input-start") < [c["type"] for c in chunks].index(
        "tool-input-available")
    assert chunks[-1]["messageMetadata"]["finishReason"] == "tool-calls"


SCHEMA = {"name": "city", "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
def test_json_output(client, fake_provider, model) -> None:
    fake_provider.queue(Reply(text='{"name": "Lima"}'))
    r = post(client, {"prompt": "A city", "model": model,
                      "response_format": {"type": "json_schema", "json_schema": SCHEMA}})
    assert r.status_code == 200, r.text
    assert r.json()["json"] == {"name": "Lima"}
    sent = fake_provider.requests[-1].body
    if model.startswith("anthropic/"):
        assert sent["output_config"]["format"] == {"type": "json_schema", "schema": SCHEMA["schema"]}
    else:
        assert sent["response_format"] == {"type": "json_schema", "json_schema": SCHEMA}


def test_cached_prompt_tokens_are_normalized_and_priced(client, fake_provider) -> None:
    # OpenAI counts cached tokens inside prompt_tokens; Anthropic on top of input_tokens
    for model, cached_price in (("openai/gpt-4o-mini", 0.075), ("anthropic/claude-haiku-4-5", 0.1)):
        fake_provider.queue(Reply(text="ok", usage={"input": 1000, "output": 10, "cached": 800}))
        data = post(client, {"prompt": unique(), "model": model}).json()
        assert data["usage"]["input_tokens"] == 1000 and data["usage"]["cached_tokens"] == 800
        inp, out = {"openai/gpt-4o-mini": (0.15, 0.6), "anthropic/claude-haiku-4-5": (1.0, 5.0)}[model]
        assert data["cost_usd"] == pytest.approx((200 * inp + 800 * cached_price + 10 * out) / 1e6)


# --- retries, fallbacks, timeouts ------------------------------------------------------------------


def test_429_with_retry_after_then_success(client, fake_provider, database) -> None:
    fake_provider.queue(Reply(status=429, headers={"retry-after": "0.2"}), Reply(text="second time lucky"))
    r = post(client, {"prompt": "x", "model": "openai/gpt-4o-mini"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["text"] == "second time lucky"
    assert [(a["status"], a.get("http_status")) for a in data["attempts"]] == [("error", 429), ("ok", None)]
    assert len(fake_provider.requests) == 2  # our loop only: the SDK's own retries are off
    rows = ledger(database, "request_id = %s", (data["id"],))
    assert [(r["status"], r["error_code"]) for r in rows] == [("error", "rate_limited"), ("ok", None)]


def test_500_on_primary_then_fallback_on_another_provider(client, fake_provider, env) -> None:
    env(MAX_RETRIES="1")
    fake_provider.queue(Reply(status=500), Reply(status=500), Reply(text="from Claude"))
    r = post(client, {"prompt": "x", "model": "openai/gpt-4o-mini", "fallbacks": ["anthropic/claude-haiku-4-5"]})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["text"] == "from Claude" and data["provider"] == "anthropic"
    assert [(a["model"], a["status"]) for a in data["attempts"]] == [
        ("openai/gpt-4o-mini", "error"), ("openai/gpt-4o-mini", "error"), ("anthropic/claude-haiku-4-5", "ok")]
    assert [q.path for q in fake_provider.requests] == ["/v1/chat/completions"] * 2 + ["/v1/messages"]


def test_streamed_fallback_before_the_first_token(client, fake_provider, env) -> None:
    env(MAX_RETRIES="0")
    fake_provider.queue(Reply(status=503), Reply(text="fallback stream"))
    r = post(client, {"prompt": "x", "model": "groq/llama-3.3-70b-versatile",
                      "fallbacks": ["openai/gpt-4o-mini"], "stream": True})
    chunks = sse_chunks(r.text)
    assert "".join(c["delta"] for c in chunks if isinstance(c, dict) and c["type"] == "text-delta") == "fallback stream"
    assert chunks[-2]["messageMetadata"]["provider"] == "openai"


def test_timeout_is_a_504_listing_the_attempts(client, fake_provider, env) -> None:
    env(REQUEST_TIMEOUT_S="0.3", MAX_RETRIES="1")
    fake_provider.queue(Reply(text="late", delay_s=1.0), Reply(text="late again", delay_s=1.0))
    r = post(client, {"prompt": "x", "model": "openai/gpt-4o-mini"})
    assert r.status_code == 504, r.text
    error = r.json()["error"]
    assert error["code"] == "upstream_timeout"
    assert [a["error_code"] for a in error["details"]["attempts"]] == ["timeout", "timeout"]


def test_auth_error_is_not_retried(client, fake_provider, database, env) -> None:
    env(MAX_RETRIES="3")
    fake_provider.queue(Reply(status=401, json={"error": {"message": "bad key", "type": "invalid_request_error"}}))
    r = post(client, {"prompt": "x", "model": "openai/gpt-4o-mini"})
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_auth"
    assert len(fake_provider.requests) == 1
    rows = ledger(database, "request_id = %s", (r.headers["x-request-id"],))
    assert [(x["status"], x["http_status"]) for x in rows] == [("error", 401)]


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
def test_stream_cut_off_midway_ends_with_an_error_part(client, fake_provider, database, model) -> None:
    fake_provider.queue(Reply(text="one two three four five", cut_after=2))
    r = post(client, {"prompt": "x", "model": model, "stream": True})
    assert r.status_code == 200
    chunks = sse_chunks(r.text)
    kinds = [c if isinstance(c, str) else c["type"] for c in chunks]
    assert kinds[-2:] == ["error", "[DONE]"] and "finish" not in kinds
    assert "".join(c["delta"] for c in chunks if isinstance(c, dict) and c["type"] == "text-delta") == "one two "
    assert len(fake_provider.requests) == 1  # nothing is retried once tokens went out
    rows = ledger(database, "request_id = %s", (r.headers["x-request-id"],))
    assert [x["status"] for x in rows] == ["error"] and rows[0]["streamed"]


@pytest.mark.parametrize("model", list(PROVIDER_PATHS))
def test_stream_that_ends_without_a_finish_reason_is_an_error_not_a_complete_answer(client, fake_provider,
                                                                                      database, model) -> None:
    # A proxy or a dropped upstream can end the body cleanly mid-answer: no finish event, no usage.
    fake_provider.queue(Reply(text="one two three four five", end_after=2))
    r = post(client, {"prompt": "x", "model": model, "stream": True})
    chunks = sse_chunks(r.text)
    kinds = [c if isinstance(c, str) else c["type"] for c in chunks]
    assert kinds[-2:] == ["error", "[DONE]"] and "finish" not in kinds, kinds
    rows = ledger(database, "request_id = %s", (r.headers["x-request-id"],))
    assert [(x["status"], x["error_code"]) for x in rows] == [("error", "connection")]
    fake_provider.queue(Reply(text="one two three four five", end_after=2))
    whole = post(client, {"prompt": "x", "model": model})  # the same cut, not streamed: the SDK reads JSON
    assert whole.status_code == 200  # a JSON answer arrives whole or not at all


# --- budgets, cache, rate limits, keys -------------------------------------------------------------


def test_budget_refusal_happens_before_any_provider_call(client, fake_provider, env) -> None:
    env(BUDGET_DAILY_USD="0")
    r = post(client, {"prompt": "x", "model": "openai/gpt-4o-mini"})
    assert r.status_code == 402
    assert r.json()["error"]["code"] == "budget_exceeded" and "daily budget" in r.json()["error"]["message"]
    assert fake_provider.requests == []


def test_per_user_monthly_budget(client, fake_provider, env) -> None:
    env(BUDGET_USER_MONTHLY_USD="0.001")
    user = unique("user")
    fake_provider.queue(Reply(text="pricey", usage={"input": 10_000, "output": 1000}))  # $0.0021
    assert post(client, {"prompt": "x", "model": "openai/gpt-4o-mini", "user": user}).status_code == 200
    r = post(client, {"prompt": "x", "model": "openai/gpt-4o-mini", "user": user})
    assert r.status_code == 402 and user in r.json()["error"]["message"]
    assert post(client, {"prompt": "x", "model": "openai/gpt-4o-mini", "user": unique("other")}).status_code == 200
    assert len(fake_provider.requests) == 2


def test_identical_request_at_temperature_zero_is_a_cache_hit(client, fake_provider, database) -> None:
    body = {"prompt": unique("cache me"), "model": "openai/gpt-4o-mini", "temperature": 0}
    fake_provider.queue(Reply(text="fresh", usage={"input": 100, "output": 10}))
    first = post(client, body).json()
    second = post(client, body).json()
    assert first["cached"] is False and first["cost_usd"] > 0
    assert second["cached"] is True and second["text"] == "fresh" and second["cost_usd"] == 0
    assert len(fake_provider.requests) == 1
    [row] = ledger(database, "request_id = %s", (second["id"],))
    assert row["status"] == "cached" and row["cache_hit"]
    # a streamed request replays the cached answer too
    r = post(client, {**body, "stream": True})
    assert "fresh" in r.text and len(fake_provider.requests) == 1


def test_cache_is_off_by_default_above_temperature_zero(client, fake_provider) -> None:
    body = {"prompt": unique(), "model": "openai/gpt-4o-mini", "temperature": 0.7}
    post(client, body), post(client, body)
    assert len(fake_provider.requests) == 2
    forced = {**body, "prompt": unique(), "cache": True}
    post(client, forced)
    assert post(client, forced).json()["cached"] is True and len(fake_provider.requests) == 3


def test_rate_limit_per_api_key(client, fake_provider, env) -> None:
    key = unique("key").replace(" ", "-")
    env(RATE_LIMIT_RPM="2", API_KEYS=key)
    headers = {"authorization": f"Bearer {key}"}
    import time

    if time.time() % 60 > 55:  # the window is the wall-clock minute: do not straddle two
        time.sleep(60 - time.time() % 60 + 0.1)
    codes = [post(client, {"prompt": "x", "model": "local/echo"}, headers=headers).status_code for _ in range(3)]
    assert codes[:2] == [200, 200] and codes[2] == 429
    r = post(client, {"prompt": "x", "model": "local/echo"}, headers=headers)
    assert r.json()["error"]["code"] == "rate_limited" and 1 <= int(r.headers["retry-after"]) <= 60


def test_byok_header_reaches_the_provider_only_when_allowed(client, fake_provider, env, database) -> None:
    byok = "sk-caller-own-key-123456"
    r = post(client, {"prompt": "x", "model": "openai/gpt-4o-mini"}, headers={"x-openai-api-key": byok})
    assert r.status_code == 403 and r.json()["error"]["code"] == "byok_disabled"
    env(ALLOW_BYOK="1")
    r = post(client, {"prompt": "x", "model": "openai/gpt-4o-mini"}, headers={"x-openai-api-key": byok})
    assert r.status_code == 200
    assert fake_provider.requests[-1].headers["authorization"] == f"Bearer {byok}"
    r = post(client, {"prompt": "x", "model": "anthropic/claude-haiku-4-5"},
             headers={"x-anthropic-api-key": "sk-ant-caller-key-98765"})
    assert r.status_code == 200
    sent = fake_provider.requests[-1].headers
    assert "sk-ant-caller-key-98765" in sent.get("x-api-key", "") + sent.get("authorization", "")
    # the next caller without a key of its own is served with the operator's key again
    assert post(client, {"prompt": "x", "model": "openai/gpt-4o-mini"}).status_code == 200
    assert fake_provider.requests[-1].headers["authorization"] == "Bearer sk-test-openai"
    with psycopg.connect(database) as conn:
        dump = conn.execute("SELECT string_agg(t::text, ' ') FROM usage_ledger t").fetchone()[0]
    assert byok not in dump


def test_use_chat_body_with_ui_message_parts(client, fake_provider) -> None:
    fake_provider.queue(Reply(text="Sure."))
    body = {
        "id": "chat-1", "trigger": "submit-message", "messageId": None, "model": "openai/gpt-4o-mini",
        "messages": [
            {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Weather in Oslo?"}]},
            {"id": "m2", "role": "assistant", "parts": [
                {"type": "step-start"},
                {"type": "tool-get_weather", "toolCallId": "c1", "state": "output-available",
                 "input": {"city": "Oslo"}, "output": {"sky": "grey"}},
                {"type": "text", "text": "It is grey."}]},
            {"id": "m3", "role": "user", "parts": [{"type": "text", "text": "Thanks!"}]},
        ],
    }
    r = post(client, body)
    assert r.status_code == 200, r.text
    assert r.headers["x-vercel-ai-ui-message-stream"] == "v1"  # useChat's body streams by default
    sent = fake_provider.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert sent[2] == {"role": "tool", "tool_call_id": "c1", "content": '{"sky": "grey"}'}
    assert sent[3]["content"] == "It is grey."


@pytest.mark.parametrize("body, status, field", [
    ({"model": "local/echo"}, 422, "body"),
    ({"prompt": "a", "messages": [{"role": "user", "content": "b"}], "model": "local/echo"}, 422, "body"),
    ({"prompt": "   ", "model": "local/echo"}, 422, "body"),
    ({"messages": [], "model": "local/echo"}, 422, "body"),
    ({"prompt": "a", "model": "local/echo", "colour": "red"}, 422, "colour"),
    ({"prompt": "a", "model": "mistral-large"}, 422, "model"),  # a bare name no provider claims
    ({"prompt": "a", "model": "nobody/model"}, 422, "model"),
    ({"prompt": "a", "model": "local/gpt-5"}, 422, "model"),
    ({"prompt": "a", "model": "local/echo", "fallbacks": ["bad"]}, 422, "fallbacks.0"),
    ({"prompt": "a", "model": "local/echo", "temperature": 3}, 422, "temperature"),
    ({"prompt": "a", "model": "local/echo", "max_tokens": 0}, 422, "max_tokens"),
    ({"prompt": "a", "model": "local/echo", "tool_choice": "required"}, 422, "body"),
    ({"prompt": "a", "model": "openai/gpt-4o-mini", "tools": [WEATHER_TOOL],
      "tool_choice": {"type": "function", "function": {"name": "other"}}}, 422, "tool_choice"),
    ({"prompt": "a", "model": "local/echo", "protocol": "xml"}, 422, "protocol"),
    ({"prompt": "a", "model": "local/echo", "response_format": {"type": "json_schema"}}, 422, "response_format"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
      "model": "local/echo"}, 422, "messages.0.content.0.type"),
    ({"messages": [{"role": "tool", "content": "x"}], "model": "local/echo"}, 422, "messages.0"),
    ({"messages": [{"role": "user", "content": "  "}], "model": "local/echo"}, 422, "messages.0"),
    ({"messages": [{"role": "user", "parts": [{"text": "no type"}]}], "model": "local/echo"}, 422,
     "messages.0.parts.0.type"),
    ({"prompt": "a", "model": "local/echo", "stop": ["a", "b", "c", "d", "e"]}, 422, "stop"),
    ({"prompt": "a", "model": "local/echo", "fallbacks": ["local/echo"] * 6}, 422, "fallbacks"),
    ({"prompt": "a", "model": "local/echo", "stream": "yes please"}, 422, "stream"),
    ({"messages": [{"role": "user", "parts": [{"type": "file", "url": "x"}]}], "model": "local/echo"},
     422, "messages.0.parts.0.type"),
])
def test_bad_input_is_a_4xx_naming_the_field(client, fake_provider, body, status, field) -> None:
    r = post(client, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    fields = [d["field"] for d in error.get("details") or []]
    assert any(f == field or f.startswith(field) for f in fields), (fields, error["message"])
    assert fake_provider.requests == []


def test_missing_provider_key_is_a_configuration_error(client, fake_provider, env) -> None:
    env(GROQ_API_KEY=None)
    r = post(client, {"prompt": "a", "model": "groq/llama-3.3-70b-versatile"})
    assert r.status_code == 503 and "GROQ_API_KEY" in r.json()["error"]["message"]
    # a configured fallback still answers
    r = post(client, {"prompt": "a", "model": "groq/llama-3.3-70b-versatile", "fallbacks": ["local/echo"]})
    assert r.status_code == 200 and r.json()["attempts"][0]["status"] == "skipped"


def test_malformed_json_body(client) -> None:
    r = client.post("/api/ai_execute", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_a_stream_the_client_abandons_is_still_recorded(client, fake_provider, database) -> None:
    import time

    fake_provider.queue(Reply(text="one two three four five six seven eight", chunk_delay_s=0.3))
    body = {"prompt": unique("abandon"), "model": "openai/gpt-4o-mini", "stream": True}
    with client.stream("POST", "/api/ai_execute", json=body) as response:
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if '"text-delta"' in line:
                break  # the user closed the tab after the first words
    deadline = time.monotonic() + 10
    rows = []
    while time.monotonic() < deadline and not rows:
        rows = ledger(database, "request_id = %s", (request_id,))
        time.sleep(0.1)
    assert rows, "an abandoned stream spent tokens but left no ledger row"
    assert rows[-1]["error_code"] == "client_closed"


@pytest.mark.parametrize("key", ["gsk_" + "A1b2C3d4" * 5, "hf_" + "x9Y8z7W6" * 4, "plain-caller-token-4711"])
def test_byok_keys_never_reach_the_log_even_when_a_provider_echoes_them(client, fake_provider, env, capfd, key):
    env(ALLOW_BYOK="1")
    fake_provider.queue(Reply(status=401, json={"error": {"message": f"Invalid API Key: {key}",
                                                          "type": "invalid_request_error"}}))
    r = post(client, {"prompt": "x", "model": "groq/llama-3.1-8b-instant"}, headers={"x-groq-api-key": key})
    assert r.status_code >= 400
    assert fake_provider.requests[-1].headers["authorization"] == f"Bearer {key}"
    logged = capfd.readouterr().err
    assert "request" in logged and key not in logged and key not in r.text


def test_one_tenant_cannot_spend_or_rate_limit_another_tenants_user(client, fake_provider, env) -> None:
    # User ids are each tenant's own names: key A's user "42" is not key B's user "42".
    env(API_KEYS="key-tenant-a,key-tenant-b", BUDGET_USER_MONTHLY_USD="0.001", RATE_LIMIT_RPM="3")
    a, b = ({"authorization": "Bearer key-tenant-a"}, {"authorization": "Bearer key-tenant-b"})
    user = unique("user-42")
    fake_provider.queue(Reply(text="pricey", usage={"input": 10_000, "output": 1000}))  # $0.0021
    assert post(client, {"prompt": "x", "model": "openai/gpt-4o-mini", "user": user}, headers=a).status_code == 200
    assert post(client, {"prompt": "x", "model": "openai/gpt-4o-mini", "user": user}, headers=a).status_code == 402
    fake_provider.queue(Reply(text="fine"))
    assert post(client, {"prompt": "x", "model": "openai/gpt-4o-mini", "user": user}, headers=b).status_code == 200
    key_a, key_b = unique("rl-a").replace(" ", "-"), unique("rl-b").replace(" ", "-")
    env(API_KEYS=f"{key_a},{key_b}", RATE_LIMIT_RPM="2", BUDGET_USER_MONTHLY_USD=None)
    other = unique("user-7")
    import time

    if time.time() % 60 > 55:  # the window is the wall-clock minute: do not straddle two
        time.sleep(60 - time.time() % 60 + 0.1)
    codes = [post(client, {"prompt": "x", "model": "local/echo", "user": other},
                  headers={"authorization": f"Bearer {key_a}"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    theirs = post(client, {"prompt": "x", "model": "local/echo", "user": other},
                  headers={"authorization": f"Bearer {key_b}"})
    assert theirs.status_code == 200, theirs.text
