"""API keys: required when configured, limited to namespaces, and fail-closed in production."""

from __future__ import annotations

import asyncio
import json

from lib.cli import call_app
from lib.config import parse_api_keys
from lib.web import Endpoint, Request, bearer_token, matching_secret

app = Endpoint("scoped")


@app.get(role="reader")
async def scoped(request: Request, query: dict | None) -> dict:
    namespace = (query or {}).get("namespace", "default")
    request.require_namespace(namespace)
    return {"namespace": namespace, "caller": request.caller}


def get(headers: dict[str, str] | None = None, namespace: str = "default") -> tuple[int, dict, dict]:
    status, response_headers, raw = asyncio.run(
        call_app(app, "GET", None, {"namespace": namespace}, headers=headers))
    return status, response_headers, json.loads(raw)


def test_no_keys_configured_locally_serves(env):
    env(API_KEYS=None, VERCEL_ENV=None)
    status, _, body = get()
    assert status == 200 and body["caller"] == "anonymous"


def test_missing_and_wrong_keys_are_401(env):
    env(API_KEYS="k1,k2")
    status, headers, body = get()
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert headers["www-authenticate"] == "Bearer"
    status, _, body = get({"authorization": "Bearer nope"})
    assert status == 401 and body["error"]["message"] == "invalid API key"
    status, _, body = get({"authorization": "Basic k1"})
    assert status == 401


def test_valid_key_passes_and_caller_is_not_the_secret(env):
    env(API_KEYS="k1,k2")
    status, _, body = get({"authorization": "Bearer k2"})
    assert status == 200
    assert body["caller"].startswith("key:") and "k2" not in body["caller"][4:6]


def test_key_limited_to_namespaces_is_403_elsewhere(env):
    env(API_KEYS="admin,reader:docs|faq")
    assert get({"authorization": "Bearer reader"}, namespace="docs")[0] == 200
    status, _, body = get({"authorization": "Bearer reader"}, namespace="billing")
    assert status == 403 and "billing" in body["error"]["message"]
    assert get({"authorization": "Bearer admin"}, namespace="billing")[0] == 200


def test_production_without_keys_refuses_with_503(env):
    env(API_KEYS=None, VERCEL_ENV="production")
    status, _, body = get()
    assert status == 503
    assert body["error"]["code"] == "configuration_error"
    assert "API_KEYS" in body["error"]["message"]


def test_parse_api_keys_scopes():
    keys = parse_api_keys(" a , b:x|y ,")
    assert [k.key for k in keys] == ["a", "b"]
    assert keys[0].allows("anything")
    assert keys[1].allows("x") and not keys[1].allows("z")


def test_health_is_open_and_other_functions_need_the_key(client, env):
    env(API_KEYS="k1")
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/nope").status_code == 404


def test_bearer_token_reads_only_the_bearer_scheme():
    assert bearer_token({"authorization": "Bearer k1"}) == "k1"
    assert bearer_token({"authorization": "bearer   k1 "}) == "k1"
    for value in ("Basic k1", "Bearer", "Bearer   ", "k1", ""):
        assert bearer_token({"authorization": value}) is None
    assert bearer_token({}) is None


def test_matching_secret_names_the_match_and_survives_any_token():
    assert matching_secret("k2", ["k1", "k2"]) == 1
    assert matching_secret("k", ["k1", "k2"]) is None
    assert matching_secret(None, ["k1"]) is None
    assert matching_secret("cl\u00e9\u00ff", ["k1"]) is None  # not ASCII: compared as bytes, no TypeError


def test_non_ascii_authorization_is_a_401_not_a_500(env):
    env(API_KEYS="k1")
    status, _, body = get({"authorization": "Bearer cl\u00e9"})
    assert status == 401 and body["error"]["message"] == "invalid API key"
