"""Tools the server runs on /api/ai_execute: search_documents and fetch_document over the request's
namespace, in a loop of model calls on every provider, streamed as the AI SDK renders tools,
with citations; failures become tool results; budgets, rate limits and the ledger per step."""

from __future__ import annotations

import asyncio
import json
import uuid

import psycopg
import pytest

from lib import db
from lib.config import get_settings
from tests.ai_sdk import needs_node, parse_with_ai_sdk, validate_ui_messages
from tests.fakes.provider_server import PROVIDER_PATHS, Reply

OPENAI = "/v1/chat/completions"
NAMESPACE = "handbook"
WARRANTY = """# Warranty

Every kettle comes with a warranty of two years from the date of purchase.
The warranty covers defects in materials and workmanship.

# Returns

You can return an unused kettle within 30 days for a full refund.
"""


def ingest(namespace: str, filename: str, text: str) -> str:
    from lib.ingest.store import IngestOptions, ingest_document

    async def main() -> str:
        try:
            options = IngestOptions(namespace=namespace, embedding_model="local/hash-384")
            return (await ingest_document(text.encode(), filename, options, settings=get_settings())).document_id
        finally:
            await db.close_pools()

    return asyncio.run(main())


@pytest.fixture(scope="module")
def handbook(database: str) -> dict[str, str]:
    return {"warranty": ingest(NAMESPACE, "kettle.md", WARRANTY),
            "long": ingest(NAMESPACE, "minutes.txt", "The committee met again. " * 3000),
            "elsewhere": ingest("other-team", "secret.md", "# Secret\n\nThe warranty of the other team is ten years.")}


def call(name: str, arguments: dict, call_id: str | None = None) -> dict:
    return {"id": call_id or f"call_{uuid.uuid4().hex[:8]}", "name": name, "arguments": arguments}


def sse_chunks(body: str) -> list:
    return [json.loads(b[6:]) for b in body.strip().split("\n\n") if b != "data: [DONE]"]


def ledger(database: str, request_id: str) -> list[tuple]:
    with psycopg.connect(database) as conn:
        return conn.execute("SELECT status, model FROM usage_ledger WHERE request_id = %s ORDER BY id",
                            (request_id,)).fetchall()


def tool_results_sent(body: dict) -> list[str]:
    """The tool results a provider request carries, in either wire format."""
    results = [m["content"] for m in body["messages"] if m.get("role") == "tool"]
    for m in body["messages"]:
        if isinstance(m.get("content"), list):
            results += [b["content"] for b in m["content"] if b.get("type") == "tool_result"]
    return results


# --- the loop on every provider ---------------------------------------------------------------------


@pytest.mark.parametrize("model", list(PROVIDER_PATHS))
def test_a_two_step_search_loop_with_citations_on_every_provider(client, fake_provider, handbook, database,
                                                                  model) -> None:
    path = PROVIDER_PATHS[model]
    fake_provider.queue_for(path, Reply(tool_calls=[call("search_documents", {"query": "kettle warranty"}, "call_s1")]),
                            Reply(text="A kettle's warranty lasts two years [1]."))
    r = client.post("/api/ai_execute", json={"model": model, "prompt": "How long is the warranty?", "stream": True,
                                             "namespace": NAMESPACE, "server_tools": ["search_documents"]})
    assert r.status_code == 200, r.text
    chunks = sse_chunks(r.text)
    kinds = [c["type"] for c in chunks]
    assert kinds[:5] == ["start", "start-step", "tool-input-start", "tool-input-available", "tool-output-available"]
    assert kinds[5:7] == ["finish-step", "start-step"]
    assert kinds[-4:] == ["text-end", "source-document", "finish-step", "finish"]
    output = chunks[4]["output"]
    assert chunks[4]["toolCallId"] == "call_s1" and output["passages"][0]["ref"] == 1
    assert output["passages"][0]["source"] == "kettle.md" and "two years" in output["passages"][0]["text"]
    assert all(p["source"] != "secret.md" for p in output["passages"])  # only the request's namespace
    meta = chunks[-1]["messageMetadata"]
    assert meta["steps"] == 2 and meta["finishReason"] == "stop"
    assert [c["source"] for c in meta["citations"]] == ["kettle.md"]
    assert chunks[-3]["title"] == "Warranty" and chunks[-3]["sourceId"].startswith(handbook["warranty"])
    first, second = fake_provider.bodies(path)
    names = [t.get("name") or t["function"]["name"] for t in first["tools"]]
    assert names == ["search_documents"]
    [result] = tool_results_sent(second)
    assert json.loads(result)["passages"][0]["ref"] == 1
    assert ledger(database, r.headers["x-request-id"]) == [("ok", model), ("ok", model)]


@needs_node
def test_the_search_loop_renders_in_the_ai_sdk_and_is_stored_as_tool_parts(client, fake_provider, handbook) -> None:
    chat = f"chat-{uuid.uuid4().hex[:8]}"
    fake_provider.queue_for(OPENAI, Reply(text="Let me look.", tool_calls=[call("search_documents", {"query": "refund"})]),
                            Reply(text="Unused kettles can be returned within 30 days [1]."))
    r = client.post("/api/ai_execute", json={
        "model": "openai/gpt-4o-mini", "id": chat, "trigger": "submit-message", "namespace": NAMESPACE,
        "server_tools": ["search_documents", "fetch_document"],
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Can I return a kettle?"}]}]})
    parsed = parse_with_ai_sdk(r.content)
    assert parsed["errors"] == []
    parts = parsed["message"]["parts"]
    assert [p["type"] for p in parts] == ["step-start", "text", "tool-search_documents", "step-start", "text",
                                         "source-document"]
    assert parts[2]["state"] == "output-available" and parts[2]["output"]["passages"][0]["source"] == "kettle.md"
    stored = client.get("/api/ai_execute", params={"conversation_id": chat, "namespace": NAMESPACE}).json()["messages"]
    assert stored[1]["id"] == parsed["message"]["id"]
    assert [p["type"] for p in stored[1]["parts"]] == [p["type"] for p in parts]
    checked = validate_ui_messages(stored)
    assert [m["role"] for m in checked["modelMessages"]] == ["user", "assistant", "tool", "assistant"]


def test_json_answers_carry_every_step_and_the_messages_to_send_back(client, fake_provider, handbook) -> None:
    fake_provider.queue_for(OPENAI, Reply(tool_calls=[call("search_documents", {"query": "warranty"}, "call_j1")],
                                          usage={"input": 100, "output": 10}),
                            Reply(text="Two years [1].", usage={"input": 300, "output": 5}))
    r = client.post("/api/ai_execute", json={"model": "openai/gpt-4o-mini", "prompt": "Warranty?",
                                             "namespace": NAMESPACE, "server_tools": ["search_documents"]})
    data = r.json()
    assert data["text"] == "Two years [1]." and data["finish_reason"] == "stop"
    assert data["usage"]["input_tokens"] == 400 and data["usage"]["output_tokens"] == 15
    assert data["cost_usd"] == pytest.approx((400 * 0.15 + 15 * 0.6) / 1e6)
    assert [s["finish_reason"] for s in data["steps"]] == ["tool_calls", "stop"]
    assert data["steps"][0]["tool_results"][0]["output"]["passages"][0]["ref"] == 1
    assert [m["role"] for m in data["messages"]] == ["assistant", "tool", "assistant"]
    assert data["citations"][0]["source"] == "kettle.md" and data["citations"][0]["quote"]
    assert [p["type"] for p in data["ui_message"]["parts"]] == ["step-start", "tool-search_documents", "step-start",
                                                                "text", "source-document"]


def test_fetch_document_reads_a_document_in_bounded_pieces(client, fake_provider, handbook) -> None:
    fake_provider.queue_for(OPENAI, Reply(tool_calls=[call("fetch_document", {"document_id": handbook["long"]})]),
                            Reply(tool_calls=[call("fetch_document", {"document_id": handbook["long"], "offset": 5})]),
                            Reply(text="Read it."))
    r = client.post("/api/ai_execute", json={"model": "openai/gpt-4o-mini", "prompt": "Read the minutes",
                                             "namespace": NAMESPACE, "server_tools": ["fetch_document"]})
    first, second = [s["tool_results"][0]["output"] for s in r.json()["steps"][:2]]
    assert first["source"] == "minutes.txt" and first["truncated"] and first["offset"] == 0
    assert first["text"].startswith("The committee met again.") and len(first["text"]) < first["total_chars"]
    assert first["next_offset"] == len(first["text"]) and first["total_chars"] == len("The committee met again. " * 3000) - 1
    assert second["offset"] == 5 and second["text"].startswith("ommittee met")


def test_the_last_allowed_step_answers_without_tools(client, fake_provider, handbook) -> None:
    fake_provider.queue_for(OPENAI, *[Reply(tool_calls=[call("search_documents", {"query": f"q{i}"})]) for i in range(2)],
                            Reply(text="Enough searching."))
    r = client.post("/api/ai_execute", json={"model": "openai/gpt-4o-mini", "prompt": "Search a lot", "max_steps": 3,
                                             "namespace": NAMESPACE, "server_tools": ["search_documents"],
                                             "tool_choice": "required"})
    bodies = fake_provider.bodies(OPENAI)
    assert [b.get("tool_choice") for b in bodies] == ["required", "auto", "none"]
    assert r.json()["text"] == "Enough searching." and len(r.json()["steps"]) == 3
    # passages are numbered on across the searches of one answer
    refs = [p["ref"] for s in r.json()["steps"][:2] for p in s["tool_results"][0]["output"]["passages"]]
    assert refs == list(range(1, len(refs) + 1))


# --- failures are tool results ----------------------------------------------------------------------


def test_a_failing_tool_becomes_a_tool_result(client, fake_provider, handbook) -> None:
    fake_provider.queue_for(OPENAI, Reply(tool_calls=[call("fetch_document", {"document_id": "not-a-uuid"}, "c_bad"),
                                                      call("fetch_document", {"document_id": str(uuid.uuid4())}, "c_gone"),
                                                      call("search_documents", {"query": ""}, "c_empty")]),
                            Reply(text="I could not read those."))
    r = client.post("/api/ai_execute", json={"model": "openai/gpt-4o-mini", "prompt": "Read something",
                                             "stream": True, "namespace": NAMESPACE,
                                             "server_tools": ["search_documents", "fetch_document"]})
    assert r.status_code == 200
    errors_shown = {c["toolCallId"]: c["errorText"] for c in sse_chunks(r.text) if c["type"] == "tool-output-error"}
    assert "not a document id" in errors_shown["c_bad"] and "no document" in errors_shown["c_gone"]
    assert "non-empty" in errors_shown["c_empty"]
    sent = [json.loads(t) for t in tool_results_sent(fake_provider.bodies(OPENAI)[1])]
    assert all(set(result) == {"error"} for result in sent) and len(sent) == 3
    assert sse_chunks(r.text)[-1]["messageMetadata"]["finishReason"] == "stop"


def test_a_tool_that_crashes_is_a_tool_result_and_a_log_line(client, fake_provider, handbook, monkeypatch,
                                                             capfd) -> None:
    async def broken(*args, **kwargs):
        raise RuntimeError("the index is on fire")

    monkeypatch.setattr("lib.retrieval.answers.run_search", broken)
    fake_provider.queue_for(OPENAI, Reply(tool_calls=[call("search_documents", {"query": "warranty"})]),
                            Reply(text="The search is broken."))
    r = client.post("/api/ai_execute", json={"model": "openai/gpt-4o-mini", "prompt": "Warranty?",
                                             "namespace": NAMESPACE, "server_tools": ["search_documents"]})
    assert r.status_code == 200, r.text
    error = r.json()["steps"][0]["tool_results"][0]["error"]
    assert "internal error" in error and r.json()["id"] in error and "fire" not in error
    assert "server_tool_failed" in capfd.readouterr().err


# --- admission for the whole loop ----------------------------------------------------------------------


def test_the_loop_counts_once_against_the_rate_limit(client, fake_provider, handbook, env) -> None:
    import time

    key = f"key-{uuid.uuid4().hex[:8]}"
    env(API_KEYS=key, RATE_LIMIT_RPM="1")
    if time.time() % 60 > 55:  # the window is the wall-clock minute: do not straddle two
        time.sleep(60 - time.time() % 60 + 0.1)
    fake_provider.queue_for(OPENAI, Reply(tool_calls=[call("search_documents", {"query": "warranty"})]),
                            Reply(text="Two years [1]."))
    body = {"model": "openai/gpt-4o-mini", "prompt": "Warranty?", "namespace": NAMESPACE,
            "server_tools": ["search_documents"]}
    headers = {"authorization": f"Bearer {key}"}
    first = client.post("/api/ai_execute", json=body, headers=headers)
    assert first.status_code == 200 and len(first.json()["steps"]) == 2
    assert client.post("/api/ai_execute", json=body, headers=headers).status_code == 429


def test_the_budget_is_checked_before_every_step(client, fake_provider, handbook, env, database) -> None:
    env(BUDGET_USER_DAILY_USD="0.001")
    user = f"user-{uuid.uuid4().hex[:8]}"
    fake_provider.queue_for(OPENAI, Reply(tool_calls=[call("search_documents", {"query": "warranty"})],
                                          usage={"input": 100_000, "output": 10}))  # $0.015
    body = {"model": "openai/gpt-4o-mini", "prompt": "Warranty?", "namespace": NAMESPACE, "user": user,
            "server_tools": ["search_documents"], "stream": True}
    r = client.post("/api/ai_execute", json=body)
    chunks = sse_chunks(r.text)
    assert chunks[-1]["type"] == "error" and "budget" in chunks[-1]["errorText"]
    assert len(fake_provider.bodies(OPENAI)) == 1  # the second step was refused before any call
    assert ledger(database, r.headers["x-request-id"]) == [("ok", "openai/gpt-4o-mini")]
    assert client.post("/api/ai_execute", json={**body, "stream": False}).status_code == 402


# --- offline, and what a request may not do ----------------------------------------------------------


def test_the_whole_loop_runs_offline_with_local_echo(client, handbook) -> None:
    r = client.post("/api/ai_execute", json={"model": "local/echo", "namespace": NAMESPACE,
                                             "prompt": '/tool search_documents {"query": "kettle warranty"}',
                                             "server_tools": ["search_documents"]})
    assert r.status_code == 200, r.text
    data = r.json()
    assert [s["finish_reason"] for s in data["steps"]] == ["tool_calls", "stop"]
    assert "kettle.md" in data["text"] and data["text"].startswith("[offline local/echo")


@pytest.mark.parametrize("body, status, field", [
    ({"server_tools": ["search_documents"], "tools": [{"name": "search_documents"}]}, 422, "tools"),
    ({"server_tools": ["delete_everything"]}, 422, "server_tools.0"),
    ({"server_tools": ["search_documents"], "max_steps": 11}, 422, "max_steps"),
    ({"server_tools": ["search_documents"], "max_steps": 0}, 422, "max_steps"),
])
def test_bad_tool_requests_are_422s(client, fake_provider, body, status, field) -> None:
    r = client.post("/api/ai_execute", json={"model": "openai/gpt-4o-mini", "prompt": "x", **body})
    assert r.status_code == status, r.text
    assert r.json()["error"]["details"][0]["field"] == field


def test_server_tools_stay_in_the_namespaces_a_key_may_use(client, fake_provider, env) -> None:
    env(API_KEYS="key-faq-only:faq")
    r = client.post("/api/ai_execute", json={"model": "openai/gpt-4o-mini", "prompt": "x", "namespace": NAMESPACE,
                                             "server_tools": ["search_documents"]},
                    headers={"authorization": "Bearer key-faq-only"})
    assert r.status_code == 403 and fake_provider.requests == []
