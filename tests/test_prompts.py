"""/api/prompts and stored prompts in ai_execute and rag: immutable versions, audited labels that
reach another process within PROMPT_CACHE_TTL_S, variables checked, admins only for writes, and
the prompt version recorded in the response, the stream and the ledger."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from lib import db
from lib.config import get_settings
from tests.conftest import ROOT, run_async
from tests.fakes.provider_server import Reply
from tests.test_ai_execute import ledger, sse_chunks


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(client, name: str, **body) -> dict:
    response = client.post("/api/prompts", json={"name": name, **body})
    assert response.status_code == 201, response.text
    return response.json()


def move(client, name: str, version: int, label: str = "production") -> dict:
    response = client.post("/api/prompts", json={"action": "label", "name": name, "version": version, "label": label})
    assert response.status_code == 200, response.text
    return response.json()


SUPPORT = [{"role": "system", "content": "You are {{persona}}. Answer in {{language}}."},
           {"role": "user", "content": "{{question}}"}]
VARIABLES = {"persona": "a kettle expert", "language": "French", "question": "How do I descale it?"}


# --- versions and labels ------------------------------------------------------------------------


def test_a_second_post_makes_a_new_version_and_none_can_change(client, database) -> None:
    name = unique("greeting")
    first = create(client, name, template="Hello {{ name }}, welcome to {{place}}.")
    second = create(client, name, template="Hi {{name}}!", model="local/echo", params={"temperature": 0.3})
    assert (first["version"], second["version"]) == (1, 2)
    assert first["variables"] == ["name", "place"] and second["variables"] == ["name"]
    assert second["params"] == {"temperature": 0.3} and second["model"] == "local/echo"
    # no update path: other methods are refused, and so is an UPDATE in the database itself
    assert client.put("/api/prompts", json={"name": name, "template": "x"}).status_code == 405
    with psycopg.connect(database, autocommit=True) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("UPDATE prompt_versions SET template = 'changed' WHERE name = %s", (name,))
    one = client.get("/api/prompts", params={"name": name, "version": 1}).json()
    assert one["template"] == "Hello {{ name }}, welcome to {{place}}."


def test_concurrent_creates_never_share_a_version_number(database) -> None:
    from lib.prompts.request import CreatePrompt
    from lib.prompts.store import create_version

    name = unique("race")

    async def main() -> list[int]:
        async def one(i: int) -> int:
            async with db.connect(get_settings()) as conn:
                version, _ = await create_version(conn, CreatePrompt(name=name, template=f"v{i}"), "test")
                return version.version

        return sorted(await asyncio.gather(*(one(i) for i in range(8))))

    assert run_async(main) == list(range(1, 9))


def test_label_moves_are_recorded_with_who_when_from_and_to(client, env) -> None:
    env(API_KEYS="admin-key")
    headers = {"authorization": "Bearer admin-key"}
    name = unique("audited")
    for text in ("one", "two", "three"):
        client.post("/api/prompts", json={"name": name, "template": text}, headers=headers)
    moved = client.post("/api/prompts", json={"action": "label", "name": name, "version": 1, "label": "production"},
                        headers=headers).json()
    assert moved["previous_version"] is None and moved["moved"] and moved["moved_by"].startswith("key:")
    client.post("/api/prompts", json={"action": "label", "name": name, "version": 3, "label": "production"},
                headers=headers)
    again = client.post("/api/prompts", json={"action": "label", "name": name, "version": 3,
                                              "label": "production"}, headers=headers).json()
    assert again["moved"] is False  # already there: nothing to record
    history = client.get("/api/prompts", params={"name": name}, headers=headers).json()
    assert [(m["label"], m["from_version"], m["to_version"]) for m in history["label_moves"]] == [
        ("production", 1, 3), ("production", None, 1)]
    assert all(m["moved_by"] == moved["moved_by"] and m["moved_at"] for m in history["label_moves"])
    assert history["labels"]["production"]["version"] == 3
    assert client.get("/api/prompts", params={"name": name, "label": "production"},
                      headers=headers).json()["template"] == "three"
    assert client.get("/api/prompts", params={"name": name, "label": "latest"},
                      headers=headers).json()["version"] == 3
    [listed] = [p for p in client.get("/api/prompts", headers=headers).json()["prompts"] if p["name"] == name]
    assert listed["labels"] == {"latest": 3, "production": 3}


@pytest.mark.parametrize(("body", "field"), [
    ({"action": "label", "name": "x", "version": 1, "label": "latest"}, "label"),
    ({"name": "x", "template": "a", "messages": [{"role": "user", "content": "b"}]}, "body"),
    ({"name": "x"}, "body"),
    ({"name": "../x", "template": "a"}, "name"),
    ({"name": "x", "template": "a", "params": {"temperature": 9}}, "params.temperature"),
    ({"name": "x", "template": "a", "params": {"top_k": 1}}, "params.top_k"),
    ({"name": "x", "template": "a", "model": "nope/model"}, "model"),
    ({"action": "label", "name": "x", "version": 2**40, "label": "a"}, "version"),
])
def test_bad_prompt_bodies_name_the_field(client, body, field) -> None:
    response = client.post("/api/prompts", json=body)
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]], response.text


def test_unknown_prompts_versions_and_labels_are_404(client) -> None:
    name = unique("lonely")
    assert client.get("/api/prompts", params={"name": name}).status_code == 404
    create(client, name, template="only")
    assert client.get("/api/prompts", params={"name": name, "version": 2}).status_code == 404
    assert client.get("/api/prompts", params={"name": name, "label": "staging"}).status_code == 404
    response = client.post("/api/prompts", json={"action": "label", "name": name, "version": 2, "label": "x"})
    assert response.status_code == 422 and "versions 1 to 1" in response.text


def test_render_previews_the_final_messages_and_checks_variables(client) -> None:
    name = unique("preview")
    create(client, name, messages=SUPPORT, labels=["production"])
    response = client.post("/api/prompts", json={"action": "render", "name": name, "variables": VARIABLES})
    assert response.status_code == 200, response.text
    assert response.json()["messages"] == [
        {"role": "system", "content": "You are a kettle expert. Answer in French."},
        {"role": "user", "content": "How do I descale it?"}]
    # one pass: a value containing a placeholder is not expanded again
    tricky = {**VARIABLES, "question": "what is {{persona}}?"}
    rendered = client.post("/api/prompts", json={"action": "render", "name": name, "variables": tricky}).json()
    assert rendered["messages"][1]["content"] == "what is {{persona}}?"
    missing = client.post("/api/prompts", json={"action": "render", "name": name, "version": 1,
                                                "variables": {"persona": "x", "languag": "y", "question": "z"}})
    assert missing.status_code == 422
    assert {d["field"] for d in missing.json()["error"]["details"]} == {"variables.language", "variables.languag"}


# --- who may write --------------------------------------------------------------------------------


def test_only_admins_write_prompts_and_anyone_authenticated_reads(client, env) -> None:
    env(API_KEYS="root-key,tenant-key:docs|faq")
    admin, tenant = {"authorization": "Bearer root-key"}, {"authorization": "Bearer tenant-key"}
    name = unique("guarded")
    assert client.post("/api/prompts", json={"name": name, "template": "hi"}, headers=admin).status_code == 201
    refused = client.post("/api/prompts", json={"name": name, "template": "mine now"}, headers=tenant)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    label = client.post("/api/prompts", json={"action": "label", "name": name, "version": 1, "label": "production"},
                        headers=tenant)
    assert label.status_code == 403
    assert client.get("/api/prompts", params={"name": name}, headers=tenant).status_code == 200
    preview = client.post("/api/prompts", json={"action": "render", "name": name, "label": "latest"}, headers=tenant)
    assert preview.status_code == 200
    assert client.get("/api/prompts").status_code == 401


# --- the cache: a label move reaches another process within the bound ---------------------------

RESOLVER = """
import asyncio, json, sys, time
from lib import db
from lib.config import get_settings
from lib.prompts.resolve import resolve_prompt

async def main():
    settings, seen, deadline = get_settings(), None, time.monotonic() + 30
    while time.monotonic() < deadline:
        version = (await resolve_prompt(settings, sys.argv[1], label="production")).version
        if version != seen:
            print(json.dumps({"version": version, "at": time.time()}), flush=True)
            seen = version
            if version == int(sys.argv[2]):
                break
        await asyncio.sleep(0.02)
    await db.close_pools()

asyncio.run(main())
"""


def test_a_label_move_reaches_another_process_within_the_cache_ttl(client, database) -> None:
    ttl = 1.0
    name = unique("rollout")
    create(client, name, template="old wording", labels=["production"])
    create(client, name, template="new wording")
    env = {**os.environ, "DATABASE_URL": database, "PROMPT_CACHE_TTL_S": str(ttl), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", RESOLVER, name, "2"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(process.stdout.readline())
        assert first["version"] == 1
        time.sleep(ttl / 2)  # the other process now holds version 1 in its cache
        move(client, name, 2)
        moved_at = time.time()
        second = json.loads(process.stdout.readline())
        assert second["version"] == 2
        assert second["at"] - moved_at <= ttl + 0.5, second["at"] - moved_at
    finally:
        process.kill()
        process.wait()


def test_resolving_reads_the_database_once_per_ttl(database, env, monkeypatch) -> None:
    from lib.prompts import resolve, store
    from lib.prompts.request import CreatePrompt

    env(PROMPT_CACHE_TTL_S="0.3")
    resolve.forget_prompts()
    name = unique("cached")
    reads = []
    real = store.read_version

    async def counted(*args, **kwargs):
        reads.append(kwargs)
        return await real(*args, **kwargs)

    async def main() -> list[int]:
        settings = get_settings()
        async with db.connect(settings) as conn:
            await store.create_version(conn, CreatePrompt(name=name, template="a", labels=["production"]), "t")
            await store.create_version(conn, CreatePrompt(name=name, template="b"), "t")
        monkeypatch.setattr(store, "read_version", counted)
        seen = [(await resolve.resolve_prompt(settings, name, label="production")).version for _ in range(20)]
        async with db.connect(settings) as conn:  # another instance moves the label
            await store.move_label(conn, name, "production", 2, "elsewhere")
        seen.append((await resolve.resolve_prompt(settings, name, label="production")).version)
        await asyncio.sleep(0.35)
        seen.append((await resolve.resolve_prompt(settings, name, label="production")).version)
        for _ in range(5):  # by number: immutable, cached for good
            await resolve.resolve_prompt(settings, name, version=1)
        return seen

    seen = run_async(main)
    assert seen == [1] * 21 + [2]
    assert len(reads) == 3  # the label twice (once per TTL), version 1 once


# --- ai_execute ---------------------------------------------------------------------------------


def test_ai_execute_runs_a_chat_prompt_with_its_model_and_params(client, fake_provider, database) -> None:
    name = unique("support")
    created = create(client, name, messages=SUPPORT, model="openai/gpt-4o-mini",
                     params={"temperature": 0.2, "max_tokens": 77}, labels=["production"])
    fake_provider.queue(Reply(text="Détartrez avec du vinaigre."))
    response = client.post("/api/ai_execute", json={"template": {"name": name, "variables": VARIABLES}})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["prompt"] == {"name": name, "version": created["version"]}
    assert data["model"] == "openai/gpt-4o-mini" and data["text"] == "Détartrez avec du vinaigre."
    sent = fake_provider.requests[-1].body
    assert sent["messages"] == [{"role": "system", "content": "You are a kettle expert. Answer in French."},
                                {"role": "user", "content": "How do I descale it?"}]
    assert sent["temperature"] == 0.2 and sent["max_completion_tokens"] == 77
    [row] = ledger(database, "request_id = %s", (data["id"],))
    assert (row["prompt_name"], row["prompt_version"]) == (name, created["version"])


def test_the_request_overrides_the_prompts_model_and_params(client, fake_provider) -> None:
    name = unique("override")
    create(client, name, messages=SUPPORT, model="local/echo", params={"temperature": 0.2}, labels=["production"])
    fake_provider.queue(Reply(text="ok"))
    response = client.post("/api/ai_execute", json={
        "template": {"name": name, "variables": VARIABLES}, "model": "openai/gpt-4o-mini", "temperature": 0.9,
        "messages": [{"role": "user", "content": "And then?"}]})
    assert response.status_code == 200, response.text
    sent = fake_provider.requests[-1].body
    assert sent["temperature"] == 0.9 and response.json()["model"] == "openai/gpt-4o-mini"
    # the request's conversation follows the prompt's messages
    assert [m["content"] for m in sent["messages"]][-2:] == ["How do I descale it?", "And then?"]


def test_labels_and_versions_choose_what_runs(client) -> None:
    name = unique("pick")
    create(client, name, template="first {{x}}", model="local/echo", labels=["production"])
    create(client, name, template="second {{x}}", model="local/echo", labels=["staging"])
    create(client, name, template="third {{x}}", model="local/echo")

    def run(**choice) -> dict:
        response = client.post("/api/ai_execute", json={"template": {"name": name, "variables": {"x": "!"}, **choice}})
        assert response.status_code == 200, response.text
        return response.json()

    assert run()["prompt"]["version"] == 1  # no label or version: production
    assert run(label="staging")["prompt"]["version"] == 2
    assert run(label="latest")["prompt"]["version"] == 3
    assert "first !" in run(version=1)["text"]


@pytest.mark.parametrize(("variables", "named"), [
    ({"persona": "p", "language": "l"}, ["template.variables.question"]),
    ({**VARIABLES, "tone": "dry"}, ["template.variables.tone"]),
    ({"persona": "p", "language": "l", "questio": "q"}, ["template.variables.question", "template.variables.questio"]),
])
def test_a_missing_or_extra_variable_is_a_422_naming_it(client, variables, named) -> None:
    name = unique("strict")
    create(client, name, messages=SUPPORT, model="local/echo", labels=["production"])
    response = client.post("/api/ai_execute", json={"template": {"name": name, "variables": variables}})
    assert response.status_code == 422, response.text
    assert sorted(d["field"] for d in response.json()["error"]["details"]) == sorted(named)


@pytest.mark.parametrize(("template", "field"), [
    ({"name": "no-such-prompt"}, "template.name"),
    ({"name": "PLACEHOLDER", "label": "staging"}, "template.label"),
    ({"name": "PLACEHOLDER", "version": 9}, "template.version"),
    ({"name": "PLACEHOLDER", "version": 1, "label": "production"}, "template"),
])
def test_an_unknown_prompt_label_or_version_is_a_422(client, template, field) -> None:
    name = unique("known")
    create(client, name, template="hi", model="local/echo", labels=["production"])
    body = {"template": {k: (name if v == "PLACEHOLDER" else v) for k, v in template.items()}}
    response = client.post("/api/ai_execute", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == field


def test_a_text_prompt_is_the_whole_prompt(client) -> None:
    name = unique("text")
    create(client, name, template="Summarize: {{doc}}", model="local/echo", labels=["production"])
    ok = client.post("/api/ai_execute", json={"template": {"name": name, "variables": {"doc": "tea"}}})
    assert ok.status_code == 200 and "Summarize: tea" in ok.json()["text"]
    both = client.post("/api/ai_execute", json={"template": {"name": name, "variables": {"doc": "tea"}},
                                                "prompt": "and this"})
    assert both.status_code == 422 and both.json()["error"]["details"][0]["field"] == "template"


def test_the_stream_finish_metadata_names_the_prompt_version(client, database) -> None:
    name = unique("streamed")
    created = create(client, name, messages=SUPPORT, model="local/echo", labels=["production"])
    response = client.post("/api/ai_execute", json={"template": {"name": name, "variables": VARIABLES},
                                                    "stream": True})
    assert response.status_code == 200, response.text
    finish = [c for c in sse_chunks(response.text) if isinstance(c, dict) and c["type"] == "finish"][0]
    assert finish["messageMetadata"]["prompt"] == {"name": name, "version": created["version"]}
    assert finish["messageMetadata"]["finishReason"] == "stop" and finish["messageMetadata"]["model"] == "local/echo"
    [row] = ledger(database, "request_id = %s", (response.headers["x-request-id"],))
    assert row["prompt_version"] == created["version"] and row["streamed"]


def test_a_stored_chat_keeps_its_own_turns_under_a_system_prompt(client, fake_provider) -> None:
    name, chat = unique("persona"), unique("chat")
    created = create(client, name, messages=[{"role": "system", "content": "You are {{persona}}."}],
                     model="openai/gpt-4o-mini", labels=["production"])
    template = {"name": name, "variables": {"persona": "a tea sommelier"}}
    for question in ("Green or black?", "And for breakfast?"):
        fake_provider.queue(Reply(text="Black."))
        response = client.post("/api/ai_execute", json={"conversation_id": chat, "prompt": question,
                                                        "template": template})
        assert response.status_code == 200, response.text
        assert response.json()["prompt"] == {"name": name, "version": created["version"]}
    sent = fake_provider.requests[-1].body["messages"]
    assert sent[0] == {"role": "system", "content": "You are a tea sommelier."}
    assert [m["content"] for m in sent[1:]] == ["Green or black?", "Black.", "And for breakfast?"]
    stored = client.get("/api/ai_execute", params={"conversation_id": chat}).json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]  # no prompt turns
    assert stored[-1]["metadata"]["prompt"] == {"name": name, "version": created["version"]}
    # a prompt that opens with its own user message cannot be replayed into a stored chat
    opening = unique("opening")
    create(client, opening, messages=SUPPORT, model="local/echo", labels=["production"])
    refused = client.post("/api/ai_execute", json={"conversation_id": chat, "prompt": "hi",
                                                   "template": {"name": opening, "variables": VARIABLES}})
    assert refused.status_code == 422 and "stored chat" in refused.text


def test_a_prompt_with_tools_and_a_json_format(client, fake_provider) -> None:
    name = unique("tools")
    create(client, name, template="Weather in {{city}}?", model="openai/gpt-4o-mini", labels=["production"],
           params={"tools": [{"name": "weather", "parameters": {"type": "object", "properties": {}}}],
                   "response_format": {"type": "json_object"}})
    fake_provider.queue(Reply(text='{"ok": true}'))
    response = client.post("/api/ai_execute", json={"template": {"name": name, "variables": {"city": "Oslo"}}})
    assert response.status_code == 200, response.text
    sent = fake_provider.requests[-1].body
    assert sent["tools"][0]["function"]["name"] == "weather" and sent["response_format"] == {"type": "json_object"}
    assert response.json()["json"] == {"ok": True}


# --- rag ------------------------------------------------------------------------------------------

RAG_PROMPT = [{"role": "system", "content": "Answer as {{brand}} support, from these passages only:\n{{context}}"},
              {"role": "user", "content": "{{query}}"}]


@pytest.fixture(scope="module")
def kettle(database: str) -> str:
    from tests.test_rag import WARRANTY, ingest

    ingest("prompted", "kettle.md", WARRANTY)
    return "prompted"


def test_rag_answers_with_a_stored_prompt(client, fake_provider, kettle, database) -> None:
    name = unique("rag")
    created = create(client, name, messages=RAG_PROMPT, model="openai/gpt-4o-mini", params={"temperature": 0.1},
                     labels=["production"])
    fake_provider.queue(Reply(text="Two years [1]."))
    response = client.post("/api/rag", json={"query": "How long is the warranty?", "namespace": kettle,
                                             "template": {"name": name, "variables": {"brand": "Kettle Co"}}})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["prompt"] == {"name": name, "version": created["version"]} and data["citations"]
    sent = fake_provider.requests[-1].body
    system, user = sent["messages"][0]["content"], sent["messages"][-1]["content"]
    assert system.startswith("Answer as Kettle Co support") and "[1] (source: kettle.md" in system
    assert user == "How long is the warranty?" and sent["temperature"] == 0.1
    rows = ledger(database, "request_id = %s AND kind = 'chat'", (response.headers["x-request-id"],))
    assert rows and all(r["prompt_version"] == created["version"] for r in rows)


def test_rag_streams_the_prompt_in_its_finish_metadata(client, fake_provider, kettle) -> None:
    name = unique("ragstream")
    create(client, name, messages=RAG_PROMPT, model="openai/gpt-4o-mini", labels=["production"])
    fake_provider.queue(Reply(text="Two years [1]."))
    response = client.post("/api/rag", json={"query": "warranty?", "namespace": kettle, "stream": True,
                                             "template": {"name": name, "variables": {"brand": "K"}}})
    assert response.status_code == 200, response.text
    finish = [c for c in sse_chunks(response.text) if isinstance(c, dict) and c["type"] == "finish"][0]
    assert finish["messageMetadata"]["prompt"]["name"] == name and finish["messageMetadata"]["citations"]


@pytest.mark.parametrize(("messages", "says"), [
    ([{"role": "user", "content": "{{query}}"}], "{{context}}"),
    ([{"role": "system", "content": "{{context}} {{query}}"}], "no user message"),
])
def test_rag_refuses_a_prompt_that_cannot_answer(client, kettle, messages, says) -> None:
    name = unique("ragbad")
    create(client, name, messages=messages, model="openai/gpt-4o-mini", labels=["production"])
    response = client.post("/api/rag", json={"query": "warranty?", "namespace": kettle, "template": {"name": name}})
    assert response.status_code == 422 and says in response.text, response.text


def test_rag_fills_query_and_context_itself(client, kettle) -> None:
    name = unique("ragvars")
    create(client, name, messages=RAG_PROMPT, model="openai/gpt-4o-mini", labels=["production"])
    response = client.post("/api/rag", json={"query": "warranty?", "namespace": kettle, "template": {
        "name": name, "variables": {"brand": "K", "context": "made up"}}})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "template.variables.context"
    extractive = client.post("/api/rag", json={"query": "warranty?", "namespace": kettle, "model": "local/extractive",
                                               "template": {"name": name, "variables": {"brand": "K"}}})
    assert extractive.status_code == 422 and "local/extractive" in extractive.text


# --- the command line ---------------------------------------------------------------------------


def cli(capsys, *args: str) -> tuple[int, str]:
    """`python -m lib.cli prompts ...` in this process: (exit code, stdout); a refusal exits non-zero."""
    from lib.cli import main

    try:
        code = main(["prompts", *args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    return code, capsys.readouterr().out


def test_cli_push_list_label_and_diff(database, tmp_path, capsys) -> None:
    name = unique("cli")
    yaml_file = tmp_path / "support.yaml"
    yaml_file.write_text(f"name: {name}\nmessages:\n  - role: system\n    content: Be {{{{tone}}}}.\n"
                         "  - role: user\n    content: '{{question}}'\nmodel: local/echo\nlabels: [staging]\n")
    code, out = cli(capsys, "push", str(yaml_file))
    assert code == 0
    assert json.loads(out)[0] | {"file": ""} == {"name": name, "version": 1, "created": True,
                                                 "labels": ["staging"], "file": ""}
    assert json.loads(cli(capsys, "push", str(yaml_file))[1])[0]["created"] is False  # same content: no version
    json_file = tmp_path / "support.json"
    json_file.write_text(json.dumps({"prompts": [{"name": name, "model": "local/echo", "messages": [
        {"role": "system", "content": "Be {{tone}}, and brief."}, {"role": "user", "content": "{{question}}"}]}]}))
    assert json.loads(cli(capsys, "push", str(json_file))[1])[0]["version"] == 2
    code, out = cli(capsys, "label", name, "2", "production")
    assert code == 0 and json.loads(out)["moved"] is True
    listed = json.loads(cli(capsys, "list", name)[1])
    assert listed["labels"]["production"]["version"] == 2 and listed["labels"]["staging"]["version"] == 1
    assert listed["label_moves"][0]["moved_by"] == "cli"
    code, diff = cli(capsys, "diff", name, "staging", "production")
    assert code == 0 and diff.startswith(f"--- {name} staging (version 1)")
    assert "-Be {{tone}}." in diff and "+Be {{tone}}, and brief." in diff
    assert cli(capsys, "label", name, "1", "latest")[0] != 0
    assert cli(capsys, "diff", name, "1", "7")[0] != 0


def test_the_cli_runs_as_a_module(database) -> None:
    env = {**os.environ, "DATABASE_URL": database}
    result = subprocess.run([sys.executable, "-m", "lib.cli", "prompts", "list"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and isinstance(json.loads(result.stdout), list), result.stderr
