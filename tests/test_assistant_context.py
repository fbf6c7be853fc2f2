"""Context windows on /api/ai_execute: every request fitted to its model's window before each call,
older turns dropped whole (a tool call never without its result) or folded into a running summary
that a stored chat computes once; the response says what was left out; a newest message that
cannot fit is a 422 that says by how much."""

from __future__ import annotations

import json
import uuid

import pytest

from lib.tokens import count_tokens
from tests.fakes.provider_server import Reply

TINY = "compat/tiny"  # a 4,096-token window, 512 of them for the answer (PRICING_OVERRIDES below)
COMPAT = "/compat/v1/chat/completions"
OPENAI = "/v1/chat/completions"
ROOM = int((4096 - 512) * 0.85)
FILLER = ("the committee reviewed quarterly figures for the northern warehouse and agreed that the "
          "delivery schedule should move by two weeks while the audit continues")


@pytest.fixture
def tiny_window(env, fake_provider):
    env(PRICING_OVERRIDES=json.dumps({TINY: {"context_window": 4096, "max_output_tokens": 512}}), CACHE_TTL_S="0")
    return fake_provider


def chat_id() -> str:
    return f"chat-{uuid.uuid4().hex[:12]}"


def history(turns: int) -> list[dict]:
    """`turns` alternating user and assistant UI messages of about 35 tokens each."""
    return [{"id": f"m{i}", "role": "user" if i % 2 == 0 else "assistant",
             "parts": [{"type": "text", "text": f"Turn {i}: {FILLER}"}]} for i in range(turns)]


def question(text: str = "What did the committee decide?") -> dict:
    return {"id": f"q-{uuid.uuid4().hex[:6]}", "role": "user", "parts": [{"type": "text", "text": text}]}


def post(client, body: dict):
    return client.post("/api/ai_execute", json={"model": TINY, **body})


def estimate(body: dict) -> int:
    """Our estimate of what the provider was sent: every message with its framing, the tools."""
    tokens = sum(count_tokens(m.get("content") or "") + 4 for m in body["messages"])
    tokens += sum(count_tokens(c["function"]["name"]) + count_tokens(c["function"]["arguments"]) + 4
                  for m in body["messages"] for c in m.get("tool_calls", []))
    functions = [tool["function"] for tool in body.get("tools") or []]
    return tokens + (count_tokens(json.dumps(functions, separators=(",", ":"))) if functions else 0)


def assert_fits(body: dict) -> None:
    sent = body["messages"]
    assert estimate(body) <= ROOM, estimate(body)
    first = next(m for m in sent if m["role"] != "system")
    assert first["role"] == "user"  # never an answer whose question was dropped
    for i, m in enumerate(sent):  # never a tool result without its call
        if m["role"] == "tool":
            calls = [c["id"] for p in sent[:i] if p["role"] == "assistant" for c in p.get("tool_calls", [])]
            assert m["tool_call_id"] in calls


# --- dropping -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stored", [True, False])
def test_a_200_turn_chat_fits_a_small_window_by_dropping_the_oldest_turns(client, tiny_window, stored) -> None:
    chat = chat_id()
    body = {"messages": [*history(200), question()]}
    if stored:
        body["conversation_id"] = chat
    r = post(client, body)
    assert r.status_code == 200, r.text
    context = r.json()["context"]
    sent = tiny_window.bodies(COMPAT)[-1]
    assert_fits(sent)
    assert sent["messages"][-1]["content"] == "What did the committee decide?"
    kept = len(sent["messages"])
    assert context["strategy"] == "drop" and context["dropped_turns"] == 201 - kept
    assert context["summarized_turns"] == 0 and context["context_window"] == 4096 and context["window_known"]
    assert 0 < context["input_tokens_estimate"] <= ROOM
    assert sent["messages"][0]["content"].startswith(f"Turn {201 - kept}:")  # the newest turns, in order
    if stored:  # the next request sends only its question: the server fits the stored chat again
        r = post(client, {"conversation_id": chat, "message": question("And then?")})
        sent = tiny_window.bodies(COMPAT)[-1]
        assert_fits(sent)
        assert sent["messages"][-1]["content"] == "And then?" and r.json()["context"]["dropped_turns"] > 0


def test_a_long_stored_chat_is_read_only_as_far_back_as_could_be_sent(client, tiny_window, database) -> None:
    import psycopg

    chat = chat_id()
    post(client, {"conversation_id": chat, "messages": [*history(400), question()]})
    r = post(client, {"conversation_id": chat, "message": question("One more?")})
    sent = tiny_window.bodies(COMPAT)[-1]["messages"]
    with psycopg.connect(database) as conn:
        [(stored,)] = conn.execute("SELECT count(*) FROM conversation_turns WHERE conversation_id = %s",
                                   (chat,)).fetchall()
    assert stored == 404 and r.json()["context"]["dropped_turns"] == 403 - len(sent)  # before its answer


def test_a_tool_call_is_never_separated_from_its_result(client, tiny_window) -> None:
    messages = []
    for i in range(40):
        messages += [{"role": "user", "content": f"Question {i}: {FILLER}"},
                     {"role": "assistant", "content": "", "tool_calls": [
                         {"id": f"call_{i}", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
                     {"role": "tool", "tool_call_id": f"call_{i}", "content": f"result {i}: {FILLER}"},
                     {"role": "assistant", "content": f"Answer {i}."}]
    messages.append({"role": "user", "content": "Last question"})
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    r = post(client, {"messages": messages, "tools": [tool]})
    assert r.status_code == 200, r.text
    sent = tiny_window.bodies(COMPAT)[-1]
    assert_fits(sent)
    assert r.json()["context"]["dropped_turns"] % 4 == 0  # whole exchanges only


def test_the_tightest_window_of_the_model_chain_is_fitted(client, tiny_window) -> None:
    r = client.post("/api/ai_execute", json={"model": "openai/gpt-4o-mini", "fallbacks": [TINY],
                                             "messages": [*history(200), question()]})
    assert r.json()["context"]["context_window"] == 4096 and r.json()["context"]["dropped_turns"] > 0


def test_a_newest_message_that_cannot_fit_is_a_422_saying_by_how_much(client, tiny_window) -> None:
    r = post(client, {"prompt": FILLER * 200})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "context_too_long" and "shorten it by about" in error["message"]
    details = error["details"]
    assert details["over_by_tokens"] == details["needed_tokens"] - details["available_tokens"] > 0
    assert details["context_window"] == 4096 and details["model"] == TINY
    assert tiny_window.requests == []
    # a model whose window is a guess gets the message anyway: its real window may hold it
    r = post(client, {"prompt": FILLER * 200, "model": "compat/unlisted-model"})
    assert r.status_code == 200 and r.json()["context"]["window_known"] is False
    r = post(client, {"prompt": "hi", "max_tokens": 5000})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "max_tokens"


# --- summarizing --------------------------------------------------------------------------------------


def test_a_200_turn_chat_is_summarized_once_across_requests(client, tiny_window, env) -> None:
    env(SUMMARY_MODEL="openai/gpt-4o-mini")
    chat = chat_id()
    tiny_window.queue_for(OPENAI, Reply(text="SUMMARY: the committee moved deliveries by two weeks.",
                                        usage={"input": 5000, "output": 12}))
    r = post(client, {"conversation_id": chat, "context": "summarize", "messages": [*history(200), question()]})
    assert r.status_code == 200, r.text
    context = r.json()["context"]
    [summary_call] = tiny_window.bodies(OPENAI)
    assert "Turn 0:" in summary_call["messages"][-1]["content"]  # the oldest turns were folded in
    sent = tiny_window.bodies(COMPAT)[-1]
    assert_fits(sent)
    assert sent["messages"][0]["role"] == "system" and "SUMMARY: the committee" in sent["messages"][0]["content"]
    kept = len(sent["messages"]) - 1
    assert context["summarized_turns"] == 201 - kept and context["dropped_turns"] == 0
    assert context["summary"]["calls"] == 1 and context["summary"]["model"] == "openai/gpt-4o-mini"
    assert context["summary"]["cost_usd"] > 0
    assert r.json()["cost_usd"] is None  # the summary's cost is part of the request's, and tiny has no price
    # the next request reuses it: no new summary call, the same turns folded
    r = post(client, {"conversation_id": chat, "context": "summarize", "message": question("And the audit?")})
    assert len(tiny_window.bodies(OPENAI)) == 1
    again = r.json()["context"]
    assert again["summarized_turns"] == context["summarized_turns"] and "summary" not in again
    sent = tiny_window.bodies(COMPAT)[-1]
    assert "SUMMARY: the committee" in sent["messages"][0]["content"]
    assert sent["messages"][-1]["content"] == "And the audit?"
    stored = client.get("/api/ai_execute", params={"conversation_id": chat}).json()["summary"]
    assert stored == {"text": "SUMMARY: the committee moved deliveries by two weeks.",
                      "turns": context["summarized_turns"]}


def test_context_strategy_setting_and_an_offline_summarizer(client, tiny_window, env) -> None:
    env(CONTEXT_STRATEGY="summarize", SUMMARY_MODEL="local/echo")
    r = post(client, {"messages": [*history(200), question()]})
    assert r.status_code == 200, r.text
    context = r.json()["context"]
    assert context["strategy"] == "summarize" and context["summarized_turns"] > 0
    system = tiny_window.bodies(COMPAT)[-1]["messages"][0]["content"]
    assert "[offline local/echo" in system and "Turn 0:" in system  # a deterministic digest of the lines


def test_a_summary_that_fails_falls_back_to_dropping(client, tiny_window, env) -> None:
    env(SUMMARY_MODEL="openai/gpt-4o-mini")
    tiny_window.queue_for(OPENAI, Reply(status=401))
    r = post(client, {"context": "summarize", "messages": [*history(200), question()]})
    assert r.status_code == 200, r.text
    context = r.json()["context"]
    assert context["dropped_turns"] > 0 and "summary could not be written" in context["notice"]
    assert_fits(tiny_window.bodies(COMPAT)[-1])


def test_a_short_chat_needs_no_summary(client, tiny_window, env) -> None:
    env(SUMMARY_MODEL="openai/gpt-4o-mini")
    r = post(client, {"context": "summarize", "messages": [*history(4), question()]})
    assert r.json()["context"]["summarized_turns"] == 0 and tiny_window.bodies(OPENAI) == []


def test_the_stream_says_what_was_left_out(client, tiny_window) -> None:
    r = post(client, {"messages": [*history(200), question()], "stream": True})
    finish = [json.loads(b[6:]) for b in r.text.strip().split("\n\n") if b != "data: [DONE]"][-1]
    assert finish["type"] == "finish" and finish["messageMetadata"]["context"]["dropped_turns"] > 0


def test_a_request_with_a_summary_counts_once_against_the_rate_limit(client, tiny_window, env) -> None:
    import time

    key = f"key-{uuid.uuid4().hex[:8]}"
    env(API_KEYS=key, RATE_LIMIT_RPM="1", SUMMARY_MODEL="openai/gpt-4o-mini")
    if time.time() % 60 > 55:  # the window is the wall-clock minute: do not straddle two
        time.sleep(60 - time.time() % 60 + 0.1)
    headers = {"authorization": f"Bearer {key}"}
    body = {"model": TINY, "context": "summarize", "messages": [*history(200), question()]}
    first = client.post("/api/ai_execute", json=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["context"]["summary"]["calls"] == 1
    again = client.post("/api/ai_execute", json=body, headers=headers)
    assert again.status_code == 429 and len(tiny_window.bodies(OPENAI)) == 1  # refused before any spend
