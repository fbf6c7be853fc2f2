"""The OpenAPI document: committed and fresh, valid OpenAPI 3.1, every function and method in it
with no list to keep, every error code documented, and real answers of the live server (JSON,
streams and errors) valid against the committed document's own schemas."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import uuid
from typing import Any, get_args

import pytest

from lib import errors
from lib.cli.server import API_DIR, discover_functions
from lib.db.health import VERSION
from lib.web import Endpoint, Request
from lib.web.openapi import document_json, openapi_document
from tests.conftest import ROOT

COMMITTED = ROOT / "openapi.json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(COMMITTED.read_text())


def test_the_committed_document_is_the_one_the_models_make() -> None:
    fresh = document_json(openapi_document(discover_functions(), version=VERSION))
    assert COMMITTED.read_text() == fresh, (
        "openapi.json is stale: run `.venv/bin/python -m lib.cli openapi > openapi.json` "
        "(and `make client-types` for clients/typescript/schema.d.ts)")


def test_the_command_line_prints_it() -> None:
    done = subprocess.run([sys.executable, "-m", "lib.cli", "openapi"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == COMMITTED.read_text()


def test_it_is_valid_openapi_3_1(document) -> None:
    from openapi_spec_validator import validate

    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_function_and_method_is_in_it(document) -> None:
    names = {p.stem for p in API_DIR.glob("*.py") if not p.name.startswith("_")}
    assert {f"/api/{name}" for name in names} == set(document["paths"])
    for name, app in discover_functions().items():
        assert set(document["paths"][f"/api/{name}"]) == {m.lower() for m in app.routes}, name
        for method, operation in document["paths"][f"/api/{name}"].items():
            assert operation["summary"] and operation["operationId"] == f"{method}_{name}"
            assert "500" in operation["responses"] and "200" in operation["responses"]


def test_a_new_function_is_documented_with_no_registration() -> None:
    from pydantic import BaseModel

    class EchoQuery(BaseModel):
        word: str

    class Echoed(BaseModel):
        word: str

    app = Endpoint("echo")

    @app.get(EchoQuery, response=Echoed)
    async def echo(request: Request, query: EchoQuery) -> dict:
        """Say it back."""
        return {"word": query.word}

    @app.post(EchoQuery, streams={"text": None})
    async def shout(request: Request, body: EchoQuery) -> dict:
        return {"word": body.word.upper()}

    doc = openapi_document({"echo": app}, version="0")
    paths = doc["paths"]["/api/echo"]
    assert paths["get"]["summary"] == "Say it back."
    assert paths["get"]["parameters"][0]["name"] == "word" and paths["get"]["parameters"][0]["required"]
    assert paths["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Echoed"}
    assert "text/plain; charset=utf-8" in paths["post"]["responses"]["200"]["content"]
    assert {"401", "422", "413"} <= set(paths["post"]["responses"])


def test_streams_are_documented_with_their_content_types_and_header(document) -> None:
    for name in ("ai_execute", "rag"):
        ok = document["paths"][f"/api/{name}"]["post"]["responses"]["200"]
        assert {"application/json", "text/event-stream", "text/plain; charset=utf-8"} <= set(ok["content"])
        assert ok["headers"]["x-vercel-ai-ui-message-stream"] == {"$ref": "#/components/headers/UIMessageStream"}
    assert document["components"]["headers"]["UIMessageStream"]["schema"]["const"] == "v1"
    upload = document["paths"]["/api/upload"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert upload["responses"]["200"]["content"]["text/event-stream"]["x-event"] == {
        "$ref": "#/components/schemas/UploadEvent"}


def test_every_error_code_lib_sends_is_documented_with_its_status() -> None:
    """Every `code="..."` given to an ApiError in lib/ and api/, each class's own code, and every
    provider failure kind (as upstream_<kind>) is in lib.errors.CODES, at the status it is sent with."""
    classes = {name: cls for name, cls in vars(errors).items()
               if isinstance(cls, type) and issubclass(cls, errors.ApiError)}
    sent: dict[str, int] = {cls.code: cls.status for cls in classes.values()}
    for path in [*sorted((ROOT / "lib").rglob("*.py")), *sorted(API_DIR.glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            cls = classes.get(called)
            code = next((k.value for k in node.keywords if k.arg == "code"), None)
            if cls is None or not isinstance(code, ast.Constant) or not isinstance(code.value, str):
                continue
            status = next((k.value.value for k in node.keywords if k.arg == "status"
                           and isinstance(k.value, ast.Constant)), cls.status)
            sent[code.value] = status
    from lib.providers.exceptions import Kind

    for kind in get_args(Kind):
        sent[f"upstream_{kind}"] = 504 if kind == "timeout" else 502
    missing = {code: status for code, status in sent.items() if errors.CODES.get(code, (None,))[0] != status}
    assert missing == {}, f"add these to lib.errors.CODES with their status: {missing}"


# Media types whose body is not JSON by nature: a string is all a schema can say of them.
NOT_JSON = ("text/html", "text/javascript", "text/css", "text/plain")


def undeclared(document: dict[str, Any]) -> list[str]:
    """Every success response (2xx) of every operation that does not say what it answers: no
    content, a media type without a schema, JSON declared as a bare string, or a stream without
    the schema of its events."""
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if not status.startswith("2"):
                    continue
                where = f"{method.upper()} {path} {status}"
                content = response.get("content") or {}
                if not content:
                    missing.append(f"{where}: no content")
                for media, declared in content.items():
                    schema = declared.get("schema") or {}
                    if media == "application/json":
                        if not ({"$ref", "anyOf", "oneOf"} & set(schema) or schema.get("type") == "object"):
                            missing.append(f"{where} {media}: no schema")
                    elif media == "text/event-stream":
                        if not ({"x-event", "x-message-metadata"} & set(declared) and schema.get("description")):
                            missing.append(f"{where} {media}: its events are not described")
                    elif not (media.startswith(NOT_JSON) and schema.get("type") == "string"):
                        missing.append(f"{where} {media}: no schema")
    return missing


def test_every_success_response_says_what_it_answers(document) -> None:
    assert undeclared(document) == [], (
        "declare what these answer (`response=` on the route: a model, 'module:Name', or a media type "
        "for bodies that are not JSON)")


def test_a_route_that_does_not_declare_its_answer_is_caught() -> None:
    app = Endpoint("mute")

    @app.get()
    async def mute(request: Request, _query: object) -> dict:
        """Answer something undocumented."""
        return {"said": "nothing"}

    @app.post(streams={"events": None}, response="lib.ingest.response:IngestResult")
    async def events(request: Request, body: object) -> dict:
        return {}

    assert undeclared(openapi_document({"mute": app}, version="0")) == [
        "GET /api/mute 200: no content", "POST /api/mute 200 text/event-stream: its events are not described"]


def test_function_modules_do_not_import_the_documentation_models() -> None:
    code = ("import sys, importlib\n"
            f"for name in {sorted(p.stem for p in API_DIR.glob('*.py') if not p.name.startswith('_'))!r}:\n"
            "    importlib.import_module('api.' + name)\n"
            "print(sorted(m for m in sys.modules if m.endswith('.response') or m in ('lib.shapes', 'lib.web.openapi')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- the live server's answers against the committed document ------------------------------------


class Contract:
    """Validates bodies against the committed document's schemas, $refs and all."""

    def __init__(self, document: dict[str, Any]) -> None:
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        self.document = document
        self.registry = Registry().with_resource("urn:openapi", Resource.from_contents(
            document, default_specification=DRAFT202012))
        self.validator = Draft202012Validator

    def schema_for(self, path: str, method: str, status: int, media: str = "application/json") -> dict:
        response = self.document["paths"][path][method]["responses"][str(status)]
        return response["content"][media]

    def check(self, body: Any, schema: dict[str, Any]) -> None:
        ref = schema.get("$ref")
        wrapped = {"$ref": "urn:openapi" + ref} if ref else self._absolute(schema)
        validator = self.validator(wrapped, registry=self.registry)
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
        assert problems == [], problems

    def _absolute(self, schema: Any) -> Any:
        if isinstance(schema, dict):
            return {k: ("urn:openapi" + v if k == "$ref" else self._absolute(v)) for k, v in schema.items()}
        if isinstance(schema, list):
            return [self._absolute(v) for v in schema]
        return schema

    def check_response(self, response: Any, path: str, method: str) -> None:
        """A JSON answer (success or error) against its operation's schema for that status."""
        operation = self.document["paths"][path][method]
        assert str(response.status_code) in operation["responses"], (
            f"{method.upper()} {path} answered {response.status_code}, which the document does not list")
        media = self.schema_for(path, method, response.status_code)
        assert response.headers["content-type"].startswith("application/json")
        self.check(response.json(), media["schema"])
        assert response.headers["x-request-id"]


    def check_text(self, response: Any, path: str, method: str) -> None:
        """A body that is not JSON (a page, a script, Prometheus text): its content type is one the
        document lists for that status."""
        content = self.document["paths"][path][method]["responses"][str(response.status_code)]["content"]
        sent = response.headers["content-type"]
        assert any(sent.startswith(media) for media in content if media != "application/json"), (
            f"{method.upper()} {path} answered {sent}; the document lists {sorted(content)}")
        assert response.headers["x-request-id"]


def sse_data(body: bytes) -> list[Any]:
    events = []
    for block in body.decode().split("\n\n"):
        if block.startswith("data: ") and block != "data: [DONE]":
            events.append(json.loads(block[len("data: "):]))
    return events


@pytest.fixture(scope="module")
def contract(document) -> Contract:
    return Contract(document)


def test_health_answers_as_documented(client, contract) -> None:
    contract.check_response(client.get("/api/health"), "/api/health", "get")


def test_ai_execute_answers_as_documented(client, contract) -> None:
    contract.check_response(client.post("/api/ai_execute", json={"prompt": "hi", "model": "local/echo",
                                                                 "metadata": {"a": 1}}), "/api/ai_execute", "post")
    contract.check_response(client.post("/api/ai_execute", json={
        "prompt": "hi", "model": "local/echo", "response_format": {"type": "json_object"}}), "/api/ai_execute", "post")
    contract.check_response(client.post("/api/ai_execute", json={"prompt": "hi", "model": "nobody/x"}),
                            "/api/ai_execute", "post")
    contract.check_response(client.post("/api/ai_execute", content=b"{", headers={"content-type": "application/json"}),
                            "/api/ai_execute", "post")
    contract.check_response(client.post("/api/ai_execute", content=b"x", headers={"content-type": "text/csv"}),
                            "/api/ai_execute", "post")
    streamed = client.post("/api/ai_execute", json={"prompt": "hi", "model": "local/echo", "stream": True})
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.headers["x-vercel-ai-ui-message-stream"] == "v1"
    finish = [e for e in sse_data(streamed.content) if e["type"] == "finish"][0]
    media = contract.schema_for("/api/ai_execute", "post", 200, "text/event-stream")
    contract.check(finish["messageMetadata"], media["x-message-metadata"])
    text = client.post("/api/ai_execute", json={"prompt": "hi", "model": "local/echo", "stream": True,
                                                "protocol": "text"})
    assert text.headers["content-type"] == "text/plain; charset=utf-8" and "hi" in text.text
    assert "text/plain; charset=utf-8" in contract.document["paths"]["/api/ai_execute"]["post"]["responses"]["200"][
        "content"]


def test_stored_chats_answer_as_documented(client, contract) -> None:
    stored = client.post("/api/ai_execute", json={"prompt": "remember me", "model": "local/echo",
                                                  "conversation_id": "contract-chat", "store": True})
    contract.check_response(stored, "/api/ai_execute", "post")
    assert stored.json()["conversation_id"] == "contract-chat"
    contract.check_response(client.get("/api/ai_execute"), "/api/ai_execute", "get")
    one = client.get("/api/ai_execute", params={"conversation_id": "contract-chat"})
    assert one.json()["messages"], one.text
    contract.check_response(one, "/api/ai_execute", "get")
    contract.check_response(client.delete("/api/ai_execute", params={"conversation_id": "contract-chat"}),
                            "/api/ai_execute", "delete")
    gone = client.delete("/api/ai_execute", params={"conversation_id": "contract-chat"})
    assert gone.status_code == 404
    contract.check_response(gone, "/api/ai_execute", "delete")


def test_ai_execute_with_tools_and_fallbacks_answers_as_documented(client, contract, fake_provider) -> None:
    from tests.fakes.provider_server import Reply

    fake_provider.queue(Reply(status=500), Reply(status=500), Reply(status=500),
                        Reply(text="ok", tool_calls=[{"id": "c1", "name": "get_time", "arguments": {}}]))
    r = client.post("/api/ai_execute", json={
        "prompt": "time?", "model": "openai/gpt-4o-mini", "fallbacks": ["anthropic/claude-haiku-4-5"],
        "tools": [{"name": "get_time", "parameters": {"type": "object", "properties": {}}}]})
    assert r.status_code == 200, r.text
    assert r.json()["message"]["tool_calls"] and len(r.json()["attempts"]) == 4
    contract.check_response(r, "/api/ai_execute", "post")
    fake_provider.queue(*[Reply(status=401)] * 3)
    failed = client.post("/api/ai_execute", json={"prompt": "x", "model": "openai/gpt-4o-mini"})
    assert failed.status_code == 502
    contract.check_response(failed, "/api/ai_execute", "post")


def test_embeddings_answer_as_documented(client, contract) -> None:
    for body in ({"input": ["a", "b"]}, {"input": "a", "encoding_format": "base64"}, {"input": []},
                 {"input": "a", "model": "nobody/x"}):
        contract.check_response(client.post("/api/embeddings", json=body), "/api/embeddings", "post")


def test_upload_answers_as_documented(client, contract) -> None:
    note = {"filename": "contract.md", "content": "# Contract\n\nThe warranty lasts two years.", "namespace": "contract"}
    indexed = client.post("/api/upload", json=note)
    assert indexed.status_code == 200, indexed.text
    contract.check_response(indexed, "/api/upload", "post")
    streamed = client.post("/api/upload", json={**note, "content": note["content"] + " Really.", "stream": True})
    events = sse_data(streamed.content)
    assert events[-1]["type"] == "result"
    event_schema = contract.schema_for("/api/upload", "post", 200, "text/event-stream")["x-event"]
    for event in events:
        contract.check(event, event_schema)
    contract.check_response(client.get("/api/upload", params={"namespace": "contract"}), "/api/upload", "get")
    contract.check_response(client.get("/api/upload", params={"limit": "many"}), "/api/upload", "get")
    contract.check_response(client.post("/api/upload", files={"file": ("x.bin", b"\x00\x01\x02")}), "/api/upload", "post")
    document_id = indexed.json()["document_id"]
    contract.check_response(client.delete("/api/upload", params={"namespace": "contract", "document_id": document_id}),
                            "/api/upload", "delete")
    contract.check_response(client.delete("/api/upload", params={"namespace": "contract", "document_id": document_id}),
                            "/api/upload", "delete")


def test_rag_answers_as_documented(client, contract) -> None:
    client.post("/api/upload", json={"filename": "kettle.md", "namespace": "contract-rag",
                                     "content": "# Warranty\n\nEvery kettle has a warranty of two years."})
    ask = {"query": "How long is the kettle warranty?", "namespace": "contract-rag"}
    answered = client.post("/api/rag", json=ask)
    assert answered.json()["citations"], answered.text
    contract.check_response(answered, "/api/rag", "post")
    contract.check_response(client.post("/api/rag", json={**ask, "answer": False}), "/api/rag", "post")
    contract.check_response(client.post("/api/rag", json={**ask, "top_k": 0}), "/api/rag", "post")
    contract.check_response(client.post("/api/rag", json={**ask, "conversation_id": "nobody's"}), "/api/rag", "post")
    streamed = client.post("/api/rag", json={"namespace": "contract-rag", "messages": [
        {"id": "m1", "role": "user", "parts": [{"type": "text", "text": ask["query"]}]}]})
    assert streamed.headers["x-vercel-ai-ui-message-stream"] == "v1" and streamed.headers["x-conversation-id"]
    finish = [e for e in sse_data(streamed.content) if e["type"] == "finish"][0]
    contract.check(finish["messageMetadata"],
                   contract.schema_for("/api/rag", "post", 200, "text/event-stream")["x-message-metadata"])


def test_reindex_answers_as_documented(client, contract, env) -> None:
    contract.check_response(client.get("/api/reindex"), "/api/reindex", "get")
    env(CRON_SECRET="cron-secret")
    contract.check_response(client.get("/api/reindex"), "/api/reindex", "get")


def test_prompts_answer_each_action_as_documented(client, contract) -> None:
    name = f"contract-{uuid.uuid4().hex[:8]}"
    created = client.post("/api/prompts", json={"name": name, "template": "Hello {{who}}."})
    assert created.status_code == 201, created.text
    contract.check_response(created, "/api/prompts", "post")
    chat = client.post("/api/prompts", json={
        "name": name, "messages": [{"role": "system", "content": "Be {{tone}}."}, {"role": "user", "content": "hi"}],
        "model": "local/echo", "params": {"temperature": 0.2, "max_tokens": 50, "response_format": {"type": "json_object"},
                                          "tools": [{"name": "now", "parameters": {"type": "object"}}]},
        "labels": ["production"], "commit_message": "chat"})
    assert chat.status_code == 201 and chat.json()["labels"] == ["production"], chat.text
    contract.check_response(chat, "/api/prompts", "post")
    for body in ({"action": "label", "name": name, "version": 1, "label": "staging"},  # a new label
                 {"action": "label", "name": name, "version": 1, "label": "staging"},  # where it is: not moved
                 {"action": "label", "name": name, "version": 1, "label": "production"},  # moved from 2
                 {"action": "render", "name": name, "version": 2, "variables": {"tone": "brief"}},
                 {"action": "render", "name": name, "label": "staging", "variables": {"who": "you"}},
                 {"action": "render", "name": name, "version": 9},
                 {"action": "label", "name": name, "version": 9, "label": "staging"}):
        contract.check_response(client.post("/api/prompts", json=body), "/api/prompts", "post")
    for params in ({}, {"name": name}, {"name": name, "label": "production"}, {"name": name, "version": 2},
                   {"name": "nobody-" + name}, {"label": "production"}):
        contract.check_response(client.get("/api/prompts", params=params), "/api/prompts", "get")


def test_experiments_and_feedback_answer_each_action_as_documented(client, contract) -> None:
    name, tone = f"contract-{uuid.uuid4().hex[:8]}", f"contract-tone-{uuid.uuid4().hex[:8]}"
    for system in ("Be formal.", "Be casual."):
        client.post("/api/prompts", json={"name": tone, "model": "local/echo", "labels": ["production"],
                                          "messages": [{"role": "system", "content": system},
                                                       {"role": "user", "content": "{{question}}"}]})
    created = client.post("/api/experiments", json={"name": name, "unit": "user", "variants": [
        {"name": "formal", "prompt": {"name": tone, "version": 1}},
        {"name": "casual", "prompt": {"name": tone, "version": 2}, "weight": 2, "params": {"max_tokens": 20}}]})
    assert created.status_code == 201, created.text
    contract.check_response(created, "/api/experiments", "post")
    for action in ("start", "pause", "start", "pause"):
        contract.check_response(client.post("/api/experiments", json={"action": action, "name": name}),
                                "/api/experiments", "post")
    client.post("/api/experiments", json={"action": "start", "name": name})
    served = {"formal": 0, "casual": 0}
    for i in range(100):  # rated users until each variant has two, so the report can compare them
        if min(served.values()) >= 2:
            break
        answer = client.post("/api/ai_execute", json={"experiment": name, "user": f"user-{i}", "template": {
            "name": tone, "variables": {"question": f"q{i}"}}}).json()
        served[answer["experiment"]["variant"]] += 1
        given = client.post("/api/feedback", json={"request_id": answer["id"], "score": i / 100, "comment": "ok"})
        assert given.status_code == 201 and given.json()["experiment"]["name"] == name, given.text
        contract.check_response(given, "/api/feedback", "post")
    again = client.post("/api/feedback", json={"request_id": answer["id"], "score": 4, "scale": "1-5"})
    assert again.status_code == 200
    contract.check_response(again, "/api/feedback", "post")
    contract.check_response(client.get("/api/feedback", params={"request_id": answer["id"]}), "/api/feedback", "get")
    plain = client.post("/api/ai_execute", json={"prompt": "hi", "model": "local/echo"}).json()["id"]
    unrated = client.get("/api/feedback", params={"request_id": plain})
    assert unrated.status_code == 404
    contract.check_response(unrated, "/api/feedback", "get")
    rated = client.post("/api/feedback", json={"request_id": plain, "score": 1})
    assert rated.json()["experiment"] is None and rated.json()["prompt"] is None
    contract.check_response(rated, "/api/feedback", "post")
    contract.check_response(client.post("/api/feedback", json={"request_id": plain, "score": 9}), "/api/feedback", "post")

    report = client.get("/api/experiments", params={"name": name})
    casual = [v for v in report.json()["variants"] if v["name"] == "casual"][0]
    assert casual["metrics"]["feedback_score"]["vs_control"], report.text
    contract.check_response(report, "/api/experiments", "get")
    contract.check_response(client.get("/api/experiments"), "/api/experiments", "get")
    contract.check_response(client.get("/api/experiments", params={"name": "nobody-" + name}), "/api/experiments", "get")
    picked = client.post("/api/experiments", json={"action": "winner", "name": name, "variant": "casual"})
    assert picked.json()["label_moved"]["version"] == 2, picked.text
    contract.check_response(picked, "/api/experiments", "post")
    conflict = client.post("/api/experiments", json={"action": "start", "name": name})
    assert conflict.status_code == 409
    contract.check_response(conflict, "/api/experiments", "post")
    models = client.post("/api/experiments", json={"name": name + "-models", "start": True, "variants": [
        {"name": "a", "model": "local/echo"}, {"name": "b", "model": "local/echo"}]})
    contract.check_response(models, "/api/experiments", "post")
    untried = client.get("/api/experiments", params={"name": name + "-models"})  # no traffic: nulls throughout
    assert untried.json()["variants"][1]["metrics"]["latency"]["mean"] is None, untried.text
    contract.check_response(untried, "/api/experiments", "get")
    unlabelled = client.post("/api/experiments", json={"action": "winner", "name": name + "-models", "variant": "b"})
    assert unlabelled.json()["label_moved"] is None, unlabelled.text
    contract.check_response(unlabelled, "/api/experiments", "post")
    contract.check_response(client.post("/api/experiments", json={"action": "stop", "name": name + "-models"}),
                            "/api/experiments", "post")


def test_metrics_and_the_dashboard_answer_as_documented(client, contract, database) -> None:
    from tests.test_observe import wait_recorded

    ids = [client.post("/api/ai_execute", json={"prompt": "hi", "model": model}).headers["x-request-id"]
           for model in ("local/echo", "nobody/x")]
    wait_recorded(database, ids)
    for params in ({}, {"window": "1h", "by": "model", "recent": 3}, {"window": "7d", "by": "user", "recent": 0},
                   {"window": "bad"}):
        contract.check_response(client.get("/api/metrics", params=params), "/api/metrics", "get")
    document = client.get("/api/metrics", params={"window": "1h"}).json()
    assert document["totals"]["requests"] and document["recent"]["failed"], document
    prometheus = client.get("/api/metrics", params={"format": "prometheus"})
    assert prometheus.status_code == 200 and "# TYPE" in prometheus.text
    contract.check_text(prometheus, "/api/metrics", "get")
    for params in ({}, {"asset": "dashboard.js"}, {"asset": "dashboard.css"}):
        page = client.get("/api/dashboard", params=params)
        assert page.status_code == 200
        contract.check_text(page, "/api/dashboard", "get")
    contract.check_response(client.get("/api/dashboard", params={"asset": "secrets"}), "/api/dashboard", "get")


def test_an_answer_that_breaks_its_schema_fails(client, contract) -> None:
    """The check bites: a real answer with a field renamed, a key added, or a type changed fails."""
    name = f"contract-{uuid.uuid4().hex[:8]}"
    created = client.post("/api/prompts", json={"name": name, "template": "Hi."}).json()
    schema = contract.schema_for("/api/prompts", "post", 201)["schema"]
    contract.check(created, schema)
    for broken in ({**created, "surprise": 1}, {k: v for k, v in created.items() if k != "labels"},
                   {**created, "version": "1"}, {**created, "kind": "poem"}):
        with pytest.raises(AssertionError):
            contract.check(broken, schema)
    rendered = client.post("/api/prompts", json={"action": "render", "name": name, "version": 1}).json()
    anyof = contract.schema_for("/api/prompts", "post", 200)["schema"]
    contract.check(rendered, anyof)
    with pytest.raises(AssertionError):
        contract.check({**rendered, "messages": [{"role": "robot", "content": "Hi."}]}, anyof)
