"""Stored chats on /api/ai_execute: every turn kept in Postgres per caller, user and namespace, so a
client may send only its newest message; chats loaded back as AI SDK UI messages, listed and
deleted; another identity's chat is a 404; regenerating and client-side tools on a stored chat."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from tests.ai_sdk import needs_node, parse_with_ai_sdk, validate_ui_messages
from tests.fakes.provider_server import Reply

OPENAI = "/v1/chat/completions"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def chat_id() -> str:
    return f"chat-{uuid.uuid4().hex[:12]}"


def post(client, body: dict, **kwargs):
    return client.post("/api/ai_execute", json={"model": "openai/gpt-4o-mini", **body}, **kwargs)


def sse_chunks(body: str) -> list:
    return [json.loads(b[6:]) for b in body.strip().split("\n\n") if b != "data: [DONE]"]


def sent_messages(fake, index: int = -1) -> list[dict]:
    return fake.bodies(OPENAI)[index]["messages"]


def user(text: str, message_id: str | None = None) -> dict:
    return {"id": message_id or f"u-{uuid.uuid4().hex[:8]}", "role": "user", "parts": [{"type": "text", "text": text}]}


# --- resuming a chat from its newest message ------------------------------------------------------


def test_a_chat_resumed_from_only_the_newest_message(client, fake_provider) -> None:
    chat = chat_id()
    fake_provider.queue(Reply(text="Nice to meet you, Ada."), Reply(text="Your name is Ada."))
    first = post(client, {"conversation_id": chat, "messages": [{"role": "user", "content": "My name is Ada."}]})
    assert first.status_code == 200, first.text
    assert first.json()["conversation_id"] == chat
    second = post(client, {"conversation_id": chat, "message": {"role": "user", "content": "What is my name?"}})
    assert second.status_code == 200, second.text
    assert sent_messages(fake_provider) == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"}]
    assert second.json()["text"] == "Your name is Ada."


def test_use_chat_sending_the_newest_message_by_chat_id_streams_and_resumes(client, fake_provider) -> None:
    # the AI SDK's persistence guide: prepareSendMessagesRequest sends {id, message}
    chat = chat_id()
    fake_provider.queue(Reply(text="Hello!"), Reply(text="Still here."))
    r = post(client, {"id": chat, "message": user("Hi"), "trigger": "submit-message"})
    assert r.status_code == 200 and r.headers["x-conversation-id"] == chat
    started = sse_chunks(r.text)[0]
    assert started["type"] == "start" and started["messageId"].startswith("msg-")
    assert sse_chunks(r.text)[-1]["messageMetadata"]["conversationId"] == chat
    r = post(client, {"id": chat, "message": user("Are you there?"), "trigger": "submit-message"})
    assert [m["content"] for m in sent_messages(fake_provider)] == ["Hi", "Hello!", "Are you there?"]


def test_use_chat_sending_the_whole_list_stores_each_turn_once(client, fake_provider, database) -> None:
    chat = chat_id()
    fake_provider.queue(Reply(text="One."), Reply(text="Two."))
    first_user = user("first")
    r = post(client, {"id": chat, "messages": [first_user], "trigger": "submit-message"})
    answer_id = sse_chunks(r.text)[0]["messageId"]
    history = [first_user, {"id": answer_id, "role": "assistant",
                            "parts": [{"type": "step-start"}, {"type": "text", "text": "One.", "state": "done"}]}]
    post(client, {"id": chat, "messages": [*history, user("second")], "trigger": "submit-message"})
    assert [m["content"] for m in sent_messages(fake_provider)] == ["first", "One.", "second"]
    loaded = client.get("/api/ai_execute", params={"conversation_id": chat}).json()["messages"]
    assert [(m["role"], m["parts"][-1]["text"]) for m in loaded] == [
        ("user", "first"), ("assistant", "One."), ("user", "second"), ("assistant", "Two.")]
    with psycopg.connect(database) as conn:
        [(stored,)] = conn.execute("SELECT count(*) FROM conversation_turns WHERE conversation_id = %s",
                                    (chat,)).fetchall()
    assert stored == 4


def test_a_retried_question_is_stored_once(client, fake_provider, env) -> None:
    chat = chat_id()
    env(MAX_RETRIES="0")
    fake_provider.queue(Reply(status=500), Reply(text="Answered."))
    body = {"conversation_id": chat, "message": {"role": "user", "content": "Is it raining?"}}
    assert post(client, body).status_code == 502
    assert post(client, body).status_code == 200
    assert [m["content"] for m in sent_messages(fake_provider)] == ["Is it raining?"]


def test_regenerating_replaces_the_last_answer(client, fake_provider) -> None:
    chat = chat_id()
    fake_provider.queue(Reply(text="First try."), Reply(text="Second try."))
    question = user("Tell me a joke")
    r = post(client, {"id": chat, "messages": [question], "trigger": "submit-message"})
    old_id = sse_chunks(r.text)[0]["messageId"]
    # useChat's regenerate(): the answer is sliced off, and its id sent as messageId
    r = post(client, {"id": chat, "messages": [question], "trigger": "regenerate-message", "messageId": old_id})
    assert sse_chunks(r.text)[0]["messageId"] == old_id
    assert [m["content"] for m in sent_messages(fake_provider)] == ["Tell me a joke"]
    loaded = client.get("/api/ai_execute", params={"conversation_id": chat}).json()["messages"]
    assert [(m["id"], m["parts"][-1]["text"]) for m in loaded] == [(question["id"], "Tell me a joke"),
                                                                   (old_id, "Second try.")]


def test_editing_a_question_drops_what_came_after_it(client, fake_provider) -> None:
    chat = chat_id()
    first, second = user("What is 2+2?"), user("And 3+3?")
    fake_provider.queue(Reply(text="4"), Reply(text="6"), Reply(text="10"))
    post(client, {"conversation_id": chat, "message": first})
    post(client, {"conversation_id": chat, "message": second})
    edited = {**second, "parts": [{"type": "text", "text": "And 5+5?"}]}
    post(client, {"conversation_id": chat, "message": edited, "messageId": second["id"]})
    assert [m["content"] for m in sent_messages(fake_provider)] == ["What is 2+2?", "4", "And 5+5?"]


# --- client-side tools on a stored chat ---------------------------------------------------------------


def test_client_side_tool_round_trip_with_openai_style_messages(client, fake_provider) -> None:
    chat = chat_id()
    fake_provider.queue(Reply(tool_calls=[{"id": "call_w1", "name": "get_weather", "arguments": {"city": "Oslo"}}]),
                        Reply(text="It is grey in Oslo."))
    r = post(client, {"conversation_id": chat, "prompt": "Weather in Oslo?", "tools": [WEATHER]})
    data = r.json()
    assert data["finish_reason"] == "tool_calls" and data["message"]["tool_calls"][0]["id"] == "call_w1"
    # the client runs its tool and sends only the result
    r = post(client, {"conversation_id": chat, "tools": [WEATHER],
                      "messages": [{"role": "tool", "tool_call_id": "call_w1", "content": '{"sky": "grey"}'}]})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "It is grey in Oslo."
    sent = sent_messages(fake_provider)
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == "call_w1" and sent[2]["content"] == '{"sky": "grey"}'
    # the tool result went into the call's part, and the answer went on in the same message
    [asked, answered] = client.get("/api/ai_execute", params={"conversation_id": chat}).json()["messages"]
    tool_part = next(p for p in answered["parts"] if p["type"] == "tool-get_weather")
    assert tool_part["state"] == "output-available" and tool_part["output"] == {"sky": "grey"}
    assert answered["parts"][-1] == {"type": "text", "text": "It is grey in Oslo."}
    r = post(client, {"conversation_id": chat, "tools": [WEATHER],
                      "messages": [{"role": "tool", "tool_call_id": "call_nope", "content": "{}"}]})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "messages.0.tool_call_id"


@needs_node
def test_client_side_tool_round_trip_with_use_chat(client, fake_provider) -> None:
    chat = chat_id()
    fake_provider.queue(Reply(text="Checking.", tool_calls=[{"id": "call_w2", "name": "get_weather",
                                                              "arguments": {"city": "Rome"}}]),
                        Reply(text="Sunny in Rome."))
    question = user("Weather in Rome?")
    r = post(client, {"id": chat, "messages": [question], "tools": [WEATHER], "trigger": "submit-message"})
    message = parse_with_ai_sdk(r.content)["message"]
    assert message["metadata"]["finishReason"] == "tool-calls"
    # useChat's addToolResult, then sendAutomaticallyWhen: the same message, now with the output
    for part in message["parts"]:
        if part["type"] == "tool-get_weather":
            part.update(state="output-available", output={"sky": "clear"})
    r = post(client, {"id": chat, "message": message, "tools": [WEATHER], "trigger": "submit-message",
                      "messageId": message["id"]})
    chunks = sse_chunks(r.text)
    assert chunks[0] == {"type": "start", "messageId": message["id"]}  # the same message goes on
    sent = sent_messages(fake_provider)
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert json.loads(sent[2]["content"]) == {"sky": "clear"}
    [_, answered] = client.get("/api/ai_execute", params={"conversation_id": chat}).json()["messages"]
    assert answered["id"] == message["id"]
    assert [p["type"] for p in answered["parts"]] == ["step-start", "text", "tool-get_weather", "step-start", "text"]
    validate_ui_messages(client.get("/api/ai_execute", params={"conversation_id": chat}).json()["messages"])


# --- reading, listing, deleting ------------------------------------------------------------------------


@needs_node
def test_a_loaded_chat_is_ui_messages_the_ai_sdk_accepts(client, fake_provider) -> None:
    chat = chat_id()
    fake_provider.queue(Reply(text="Hi there."), Reply(text="Bye."))
    post(client, {"conversation_id": chat, "prompt": "Hello", "metadata": {"x": 1}})
    post(client, {"conversation_id": chat, "message": user("Goodbye")})
    data = client.get("/api/ai_execute", params={"conversation_id": chat}).json()
    assert data["conversation_id"] == chat and data["title"] == "Hello" and data["namespace"] == "default"
    checked = validate_ui_messages(data["messages"])
    assert [m["role"] for m in checked["messages"]] == ["user", "assistant", "user", "assistant"]
    assert checked["modelMessages"][1]["content"][0]["text"] == "Hi there."
    assert data["messages"][1]["metadata"]["model"] == "openai/gpt-4o-mini"


def test_a_rag_conversation_loads_as_ui_messages_too(client, fake_provider) -> None:
    chat = chat_id()
    r = client.post("/api/rag", json={"query": "anything at all?", "conversation_id": chat, "stream": False,
                                      "model": "local/extractive"})
    assert r.status_code == 200, r.text
    messages = client.get("/api/ai_execute", params={"conversation_id": chat}).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["parts"] == [{"type": "text", "text": "anything at all?"}]


def test_listing_and_deleting_ones_own_chats(client, fake_provider) -> None:
    namespace = f"list-{uuid.uuid4().hex[:6]}"
    chats = [chat_id(), chat_id()]
    for chat in chats:
        post(client, {"conversation_id": chat, "prompt": f"About {chat}", "namespace": namespace})
    listed = client.get("/api/ai_execute", params={"namespace": namespace}).json()
    assert [c["conversation_id"] for c in listed["conversations"]] == chats[::-1]  # most recent first
    assert listed["conversations"][0]["turns"] == 2 and listed["conversations"][0]["title"] == f"About {chats[1]}"
    assert client.get("/api/ai_execute", params={"namespace": namespace, "limit": 1, "offset": 1}).json()[
        "conversations"][0]["conversation_id"] == chats[0]
    gone = client.delete("/api/ai_execute", params={"conversation_id": chats[0], "namespace": namespace})
    assert gone.status_code == 200 and gone.json() == {"conversation_id": chats[0], "namespace": namespace,
                                                        "deleted": True, "turns": 2}
    assert client.get("/api/ai_execute", params={"conversation_id": chats[0], "namespace": namespace}).status_code == 404
    assert client.delete("/api/ai_execute", params={"conversation_id": chats[0], "namespace": namespace}).status_code == 404


def test_another_identitys_chat_is_a_404(client, fake_provider, env) -> None:
    env(API_KEYS="key-alice-1234,key-bob-5678")
    alice, bob = {"authorization": "Bearer key-alice-1234"}, {"authorization": "Bearer key-bob-5678"}
    chat = chat_id()
    fake_provider.queue(Reply(text="Your secret is safe."))
    assert post(client, {"conversation_id": chat, "prompt": "My secret is 42."}, headers=alice).status_code == 200
    for method in ("GET", "DELETE"):
        r = client.request(method, "/api/ai_execute", params={"conversation_id": chat}, headers=bob)
        assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found"
    assert client.get("/api/ai_execute", headers=bob).json()["conversations"] == []
    # the same id from another caller is another chat: nothing of alice's reaches the model
    post(client, {"conversation_id": chat, "prompt": "What is my secret?"}, headers=bob)
    assert sent_messages(fake_provider) == [{"role": "user", "content": "What is my secret?"}]
    # and the end users of one caller do not meet either
    post(client, {"conversation_id": chat, "prompt": "I am Carol.", "user": "carol"}, headers=alice)
    r = client.get("/api/ai_execute", params={"conversation_id": chat, "user": "dave"}, headers=alice)
    assert r.status_code == 404
    carols = client.get("/api/ai_execute", params={"conversation_id": chat, "user": "carol"}, headers=alice).json()
    assert [m["parts"][0]["text"] for m in carols["messages"] if m["role"] == "user"] == ["I am Carol."]
    mine = client.get("/api/ai_execute", params={"conversation_id": chat}, headers=alice).json()
    assert mine["messages"][0]["parts"][0]["text"] == "My secret is 42."


def test_a_key_limited_to_other_namespaces_cannot_keep_chats_in_this_one(client, fake_provider, env) -> None:
    env(API_KEYS="key-docs-only:docs")
    headers = {"authorization": "Bearer key-docs-only"}
    assert post(client, {"conversation_id": chat_id(), "prompt": "x"}, headers=headers).status_code == 403
    assert post(client, {"conversation_id": chat_id(), "prompt": "x", "namespace": "docs"},
                headers=headers).status_code == 200
    assert client.get("/api/ai_execute", headers=headers).status_code == 403
    assert post(client, {"prompt": "no chat, no namespace"}, headers=headers).status_code == 200


def test_store_false_keeps_nothing(client, fake_provider) -> None:
    chat = chat_id()
    r = post(client, {"id": chat, "messages": [user("ephemeral")], "trigger": "submit-message", "store": False})
    assert r.status_code == 200 and "x-conversation-id" not in r.headers
    assert client.get("/api/ai_execute", params={"conversation_id": chat}).status_code == 404


@pytest.mark.parametrize("params, field", [
    ({"conversation_id": "has space"}, "conversation_id"),
    ({"conversation_id": "x" * 129}, "conversation_id"),
    ({"namespace": "bad namespace"}, "namespace"),
    ({"limit": "0"}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"offset": "-1"}, "offset"),
    ({"colour": "red"}, "colour"),
])
def test_bad_chat_queries_are_422s_naming_the_field(client, params, field) -> None:
    for method in ("GET", "DELETE"):
        query = {"conversation_id": "c1", **params} if method == "DELETE" else params
        r = client.request(method, "/api/ai_execute", params=query)
        if method == "DELETE" and field in ("limit", "offset"):
            assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == field
            continue
        assert r.status_code == 422, (method, r.text)
        assert r.json()["error"]["details"][0]["field"] == field


@pytest.mark.parametrize("body, field", [
    ({"id": "not a chat id!", "messages": [{"role": "user", "content": "x"}], "trigger": "submit-message"}, "id"),
    ({"conversation_id": "bad id", "prompt": "x"}, "conversation_id"),
    ({"prompt": "x", "message": {"role": "user", "content": "y"}}, "body"),
    ({"prompt": "x", "store": True}, "body"),
    ({"prompt": "x", "context": "forget"}, "context"),
])
def test_bad_chat_fields_are_422s(client, fake_provider, body, field) -> None:
    r = post(client, body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == field
    assert fake_provider.requests == []


def test_the_same_message_sent_twice_at_once_is_never_a_5xx(client, fake_provider) -> None:
    from concurrent.futures import ThreadPoolExecutor

    chat, message = chat_id(), user("Hello twice")
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: post(client, {"conversation_id": chat, "message": message}).status_code,
                              range(4)))
    assert codes == [200] * 4
    turns = client.get("/api/ai_execute", params={"conversation_id": chat}).json()["messages"]
    assert [m["id"] for m in turns].count(message["id"]) == 1
