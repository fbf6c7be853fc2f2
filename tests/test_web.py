"""The endpoint helper at the HTTP edge: error shapes and statuses, limits, CORS, streaming, logs."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Annotated, Literal

import httpx
import pytest
from pydantic import BaseModel, ConfigDict, Field

from lib import errors
from lib.cli import call_app
from lib.web import Endpoint, Request, StreamingResponse, sse_response
from lib.web.fields import Namespace
from tests.conftest import serve_asgi


class Greeting(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    count: int = 1


app = Endpoint("greet")
release_stream = threading.Event()
stream_closed = threading.Event()


@app.post(Greeting)
async def greet(request: Request, body: Greeting) -> dict:
    if body.name == "boom":
        raise RuntimeError("database password=hunter2 leaked sk-abcdefghijklmnop")
    if body.name == "upstream":
        raise errors.UpstreamError("the provider failed after 3 attempts")
    if body.name == "slow-upstream":
        raise errors.UpstreamTimeout("the provider did not answer in 60 s")
    if body.name == "stream":
        async def events():
            yield {"type": "first"}
            # the test releases the rest only after it has read the first event
            await asyncio.get_running_loop().run_in_executor(None, release_stream.wait, 10)
            yield {"type": "second"}

        return sse_response(events())
    if body.name == "forever":
        async def endless():
            try:
                yield {"type": "first"}
                await asyncio.sleep(3600)  # an upstream that never sends another token
                yield {"type": "never"}
            finally:
                stream_closed.set()

        return sse_response(endless())
    if body.name == "text":
        async def chunks():
            yield "hello "
            yield "world"

        return StreamingResponse(chunks())
    return {"greeting": f"hello {body.name}", "count": body.count}


@app.get()
async def read(request: Request, query: dict | None) -> dict:
    return {"query": query or {}}


def call(method: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    """Drive the ASGI app in-process with a raw body."""

    async def run():
        scope = {"type": "http", "method": method, "path": "/api/greet", "query_string": b"",
                 "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
        sent = False

        async def receive():
            nonlocal sent
            if sent:
                await asyncio.sleep(10)
            sent = True
            return {"type": "http.request", "body": body or b"", "more_body": False}

        out: dict = {"body": b""}

        async def send(message):
            if message["type"] == "http.response.start":
                out["status"] = message["status"]
                out["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
            else:
                out["body"] += message.get("body", b"")

        await app(scope, receive, send)
        return out

    result = asyncio.run(run())
    result["json"] = json.loads(result["body"]) if result["body"].startswith(b"{") else None
    return result


JSON = {"content-type": "application/json"}


def assert_error(result: dict, status: int, code: str) -> dict:
    assert result["status"] == status, result
    error = result["json"]["error"]
    assert error["code"] == code
    assert error["request_id"] == result["headers"]["x-request-id"]
    assert error["message"]
    return error


def test_valid_request_answers_json_with_request_id():
    result = call("POST", b'{"name": "ada", "count": 2}', JSON)
    assert result["status"] == 200
    assert result["json"] == {"greeting": "hello ada", "count": 2}
    assert len(result["headers"]["x-request-id"]) >= 8


def test_incoming_request_id_is_kept():
    result = call("POST", b'{"name": "ada"}', {**JSON, "x-request-id": "req-1234567890"})
    assert result["headers"]["x-request-id"] == "req-1234567890"


def test_malformed_json_is_400():
    error = assert_error(call("POST", b'{"name": "ada",', JSON), 400, "invalid_json")
    assert "malformed JSON" in error["message"]


def test_json_that_is_not_an_object_is_400():
    assert_error(call("POST", b'["ada"]', JSON), 400, "invalid_json")


def test_wrong_method_is_405_with_allow_header():
    result = call("PUT", b"{}", JSON)
    error = assert_error(result, 405, "method_not_allowed")
    assert "PUT" in error["message"]
    assert "POST" in result["headers"]["allow"]


def test_body_over_the_limit_is_413(env):
    env(MAX_BODY_BYTES="100")
    big = json.dumps({"name": "x" * 200}).encode()
    result = call("POST", big, {**JSON, "content-length": str(len(big))})
    error = assert_error(result, 413, "payload_too_large")
    assert "100" in error["message"]
    # a chunked body with no content-length is counted as it arrives
    assert_error(call("POST", big, JSON), 413, "payload_too_large")


def test_wrong_content_type_is_415():
    error = assert_error(call("POST", b"name=ada", {"content-type": "application/x-www-form-urlencoded"}),
                         415, "unsupported_media_type")
    assert "application/json" in error["message"]


def test_unknown_field_is_422_naming_it():
    error = assert_error(call("POST", b'{"name": "ada", "colour": "red"}', JSON), 422, "validation_error")
    assert {"field": "colour", "message": "unknown field", "type": "extra_forbidden"} in error["details"]
    assert "colour" in error["message"]


def test_wrong_type_and_missing_field_are_422_naming_each():
    error = assert_error(call("POST", b'{"count": "many"}', JSON), 422, "validation_error")
    fields = {d["field"] for d in error["details"]}
    assert fields == {"name", "count"}


def test_unexpected_exception_is_500_without_details(capfd):
    result = call("POST", b'{"name": "boom"}', JSON)
    error = assert_error(result, 500, "internal_error")
    body = result["body"].decode()
    assert "hunter2" not in body and "Traceback" not in body and "sk-abc" not in body
    logged = capfd.readouterr().err
    assert "RuntimeError" in logged  # the detail goes to the log...
    assert "sk-abcdefghijklmnop" not in logged  # ...with secrets scrubbed
    assert error["request_id"] in logged


@pytest.mark.parametrize(("name", "status", "code"), [
    ("upstream", 502, "upstream_error"), ("slow-upstream", 504, "upstream_timeout")])
def test_upstream_faults_map_to_gateway_statuses(name, status, code):
    assert_error(call("POST", json.dumps({"name": name}).encode(), JSON), status, code)


def test_get_passes_query_parameters():
    async def run():
        return await call_app(app, "GET", None, {"namespace": "docs"})

    status, _headers, raw = asyncio.run(run())
    assert status == 200 and json.loads(raw) == {"query": {"namespace": "docs"}}


def test_cors_allows_listed_origin_and_answers_preflight(env):
    env(ALLOWED_ORIGINS="https://app.example.com")
    ok = call("POST", b'{"name": "ada"}', {**JSON, "origin": "https://app.example.com"})
    assert ok["headers"]["access-control-allow-origin"] == "https://app.example.com"
    assert "x-request-id" in ok["headers"]["access-control-expose-headers"]
    preflight = call("OPTIONS", None, {"origin": "https://app.example.com",
                                       "access-control-request-method": "POST",
                                       "access-control-request-headers": "content-type, authorization"})
    assert preflight["status"] == 204
    assert "POST" in preflight["headers"]["access-control-allow-methods"]
    assert preflight["headers"]["access-control-allow-headers"] == "content-type, authorization"
    denied = call("POST", b'{"name": "ada"}', {**JSON, "origin": "https://evil.example.com"})
    assert_error(denied, 403, "origin_not_allowed")
    assert "access-control-allow-origin" not in denied["headers"]


def test_one_json_log_line_per_request_without_secrets(capfd, env):
    env(API_KEYS="secret-key-123")
    call("POST", b'{"name": "ada"}', {**JSON, "authorization": "Bearer secret-key-123"})
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["event"] == "request"]
    assert len(requests) == 1
    entry = requests[0]
    assert entry["method"] == "POST" and entry["path"] == "/api/greet" and entry["status"] == 200
    assert entry["duration_ms"] >= 0 and entry["request_id"]
    assert "secret-key-123" not in json.dumps(lines)


def test_sse_stream_reaches_the_client_event_by_event():
    release_stream.clear()
    with serve_asgi(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        with http.stream("POST", "/api/greet", json={"name": "stream"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            first = next(line for line in lines if line)
            # the handler is still blocked: the first event arrived before the stream finished
            assert json.loads(first.removeprefix("data: ")) == {"type": "first"}
            release_stream.set()
            rest = [line for line in lines if line]
    assert [json.loads(line.removeprefix("data: ")) for line in rest] == [{"type": "second"}]


def test_plain_text_stream():
    with serve_asgi(app) as base:
        response = httpx.post(f"{base}/api/greet", json={"name": "text"}, timeout=10)
    assert response.text == "hello world"
    assert response.headers["content-type"].startswith("text/plain")


def test_client_disconnect_closes_the_stream_behind_the_response():
    stream_closed.clear()
    with serve_asgi(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        with http.stream("POST", "/api/greet", json={"name": "forever"}) as response:
            first = next(line for line in response.iter_lines() if line)
            assert json.loads(first.removeprefix("data: ")) == {"type": "first"}
        # leaving the block closes the connection; the server must stop and close the generator
        assert stream_closed.wait(5), "the stream kept running after the client went away"


def test_cors_wildcard_never_travels_with_credentials(env):
    env(ALLOWED_ORIGINS="*")
    ok = call("POST", b'{"name": "ada"}', {**JSON, "origin": "https://anyone.example"})
    assert ok["headers"]["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in ok["headers"]
    env(ALLOWED_ORIGINS="*,https://app.example.com")  # a listed origin still gets credentials
    listed = call("POST", b'{"name": "ada"}', {**JSON, "origin": "https://app.example.com"})
    assert listed["headers"]["access-control-allow-origin"] == "https://app.example.com"
    assert listed["headers"]["access-control-allow-credentials"] == "true"


def test_cors_preflight_checks_the_method_and_allows_only_fixed_headers(env):
    env(ALLOWED_ORIGINS="*")
    byok = call("OPTIONS", None, {"origin": "https://anyone.example", "access-control-request-method": "POST",
                                  "access-control-request-headers": "content-type, x-openai-api-key"})
    error = assert_error(byok, 400, "cors_header_not_allowed")
    assert "x-openai-api-key" in error["message"]
    wrong_method = call("OPTIONS", None, {"origin": "https://anyone.example",
                                          "access-control-request-method": "PUT"})
    assert_error(wrong_method, 400, "cors_method_not_allowed")


# --- query models and unions ------------------------------------------------------------------


class Page(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace: Namespace = "default"
    limit: int = Field(10, ge=1, le=100)


class Hello(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["hello"]
    name: str


class Bye(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["bye"]


paged = Endpoint("paged")


@paged.get(Page)
async def page(request: Request, query: Page) -> dict:
    return query.model_dump()


@paged.delete(Page)
async def remove(request: Request, query: Page) -> dict:
    return {"deleted": query.namespace}


@paged.post(Annotated[Hello | Bye, Field(discriminator="action")])
async def act(request: Request, body: Hello | Bye) -> dict:
    return {"kind": type(body).__name__}


def call_paged(method: str, query: dict | None = None, body: dict | None = None) -> tuple[int, dict]:
    status, _, raw = asyncio.run(call_app(paged, method, body, query))
    return status, json.loads(raw)


def test_query_model_validates_and_converts_the_query_string():
    assert call_paged("GET", {"namespace": "docs", "limit": "5"}) == (200, {"namespace": "docs", "limit": 5})
    assert call_paged("GET") == (200, {"namespace": "default", "limit": 10})
    assert call_paged("GET", {"limit": ""}) == (200, {"namespace": "default", "limit": 10})  # blank = absent
    assert call_paged("DELETE", {"namespace": "hr"}) == (200, {"deleted": "hr"})
    # a DELETE may send its fields as a JSON body too; they win over the query string's
    assert call_paged("DELETE", {"namespace": "hr"}, {"namespace": "docs"}) == (200, {"deleted": "docs"})
    status, body = call_paged("DELETE", body={"limit": "x"})
    assert status == 422 and [d["field"] for d in body["error"]["details"]] == ["limit"]


@pytest.mark.parametrize(("query", "parameter"), [
    ({"limit": "many"}, "limit"), ({"limit": "1000"}, "limit"), ({"limit": "-1"}, "limit"),
    ({"namespace": "a b"}, "namespace"), ({"namespace": "x;y"}, "namespace"), ({"colour": "red"}, "colour"),
])
def test_bad_query_parameter_is_a_422_naming_it(query, parameter):
    for method in ("GET", "DELETE"):
        status, body = call_paged(method, query)
        assert status == 422 and body["error"]["code"] == "validation_error"
        assert [d["field"] for d in body["error"]["details"]] == [parameter]


def test_a_union_body_is_validated_by_its_discriminator_and_errors_name_real_fields():
    assert call_paged("POST", body={"action": "hello", "name": "ada"}) == (200, {"kind": "Hello"})
    assert call_paged("POST", body={"action": "bye"}) == (200, {"kind": "Bye"})
    status, body = call_paged("POST", body={"action": "bye", "name": "ada"})
    assert status == 422 and body["error"]["details"][0]["field"] == "name"  # not "bye.name"
    status, body = call_paged("POST", body={"action": "wave"})
    assert status == 422 and body["error"]["details"][0]["field"] == "action"
    assert "'wave' is not one of 'hello', 'bye'" in body["error"]["message"]
    status, body = call_paged("POST", body={"name": "ada"})
    assert status == 422 and body["error"]["message"] == "invalid request: action: is required"
