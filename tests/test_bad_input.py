"""Every bad input found by fuzzing the live server answers a 4xx envelope naming the problem, never a 500."""

from __future__ import annotations

import json

import pytest

NUL_BODIES = [
    ("/api/rag", {"query": "a\u0000b", "answer": False}),
    ("/api/rag", {"query": "x", "answer": False, "namespace": "a\u0000b"}),
    ("/api/rag", {"query": "x", "answer": False, "sources": ["a\u0000"]}),
    ("/api/rag", {"query": "x", "answer": False, "filter": {"k\u0000": "v"}}),
    ("/api/rag", {"query": "x", "answer": False, "filter": {"k": "v\u0000"}}),
    ("/api/upload", {"filename": "a.txt", "content": "hello", "source": "s\u0000"}),
    ("/api/upload", {"filename": "a.txt", "content": "hello", "title": "t\u0000"}),
    ("/api/upload", {"filename": "a.txt", "content": "hello", "metadata": {"m": "\u0000"}}),
    ("/api/ai_execute", {"prompt": "a\u0000b", "model": "local/echo", "temperature": 0}),
    ("/api/embeddings", {"input": "a\u0000b"}),
]


def assert_envelope(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"] and error["request_id"] == response.headers["x-request-id"]
    return error


@pytest.mark.parametrize(("path", "body"), NUL_BODIES)
def test_nul_characters_are_refused_naming_the_field(client, path, body):
    error = assert_envelope(client.post(path, content=json.dumps(body)), 400)
    assert error["code"] == "invalid_text" and "NUL" in error["message"]


def test_nul_in_the_prompt_is_refused_before_the_provider_is_paid(client, fake_provider):
    before = len(fake_provider.requests_to("/chat/completions"))
    body = {"prompt": "a\u0000b", "model": "openai/gpt-4o-mini", "temperature": 0}
    assert_envelope(client.post("/api/ai_execute", content=json.dumps(body)), 400)
    assert len(fake_provider.requests_to("/chat/completions")) == before


@pytest.mark.parametrize("body", [
    '{"query": "x", "answer": false, "filter": {"\\ud800": {}}}',
    '{"input": "\\ud800"}',
])
def test_lone_surrogates_are_refused_and_the_reply_is_valid_json(client, body):
    path = "/api/embeddings" if "input" in body else "/api/rag"
    error = assert_envelope(client.post(path, content=body), 400)
    assert "surrogate" in error["message"] and "\ud800" not in error["message"]


@pytest.mark.parametrize(("path", "body"), [
    ("/api/rag", '{"query": "x", "answer": false, "filter": {"year": NaN}}'),
    ("/api/upload", '{"filename": "a.txt", "content": "x", "metadata": {"n": Infinity}}'),
    ("/api/ai_execute", '{"prompt": "x", "model": "local/echo", "metadata": {"n": -Infinity}}'),
])
def test_nan_and_infinity_are_not_json(client, path, body):
    error = assert_envelope(client.post(path, content=body), 400)
    assert error["code"] == "invalid_json"


def test_deep_nesting_is_a_400(client):
    body = '{"query": "x", "answer": false, "filter": ' + "[" * 1100 + "]" * 1100 + "}"
    assert len(body) < 2300
    assert_envelope(client.post("/api/rag", content=body), 400)
    moderate = '{"query": "x", "answer": false, "filter": {"a": ' + "[" * 200 + "]" * 200 + "}}"
    assert_envelope(client.post("/api/rag", content=moderate), 400)


def test_nul_in_a_query_string_is_refused(client):
    assert_envelope(client.get("/api/upload?namespace=a%00b"), 400)


def test_unicode_digits_are_not_a_limit(client):
    error = assert_envelope(client.get("/api/upload?limit=%C2%B2"), 422)
    assert "limit" in error["message"]


def test_delete_with_wrong_types_is_a_422(client):
    error = assert_envelope(client.request("DELETE", "/api/upload", content=json.dumps({"source": 5})), 422)
    assert "source" in error["message"]
    urn = "urn:uuid:12345678-1234-5678-1234-567812345678"
    response = client.request("DELETE", f"/api/upload?document_id={urn}&namespace=default")
    assert response.status_code in (404, 422), response.text  # never a 500; no such document either way


def test_broken_utf16_is_a_corrupt_document(client):
    body = {"filename": "a.txt", "content_base64": "//4AAWdhcmJhZ2U="}
    error = assert_envelope(client.post("/api/upload", content=json.dumps(body)), 422)
    assert "a.txt" in error["message"]
