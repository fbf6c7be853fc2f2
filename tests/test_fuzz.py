"""Generated bad requests at every function through the real local server: never a 5xx.

Every response to a request a client could send is either a success or a 4xx in the error
envelope whose request id matches the `x-request-id` header, and every request leaves a log
line with that id. Bodies are built from each route's own field names with hostile values
(wrong types, NUL, lone surrogates, NaN, huge numbers, deep nesting), plus raw bytes, query
strings and headers. `FUZZ_EXAMPLES` raises the number of examples per function (default 25).
"""

from __future__ import annotations

import json
import os
import string
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.cli.server import discover_functions

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUNCTIONS = discover_functions()

HOSTILE_TEXT = st.sampled_from([
    "", " ", "a\u0000b", "\ud800", "x" * 5000, "../../etc/passwd", "'; DROP TABLE chunks; --", "ℕ𝕒𝕞𝕖",
    "\u202e", "%00", "default", "local/echo", "local/hash-0384", "openai/gpt-4o-mini", "²", "-1", "1e999",
    "urn:uuid:12345678-1234-5678-1234-567812345678", "12345678-1234-5678-1234-567812345678", "$and",
    "upload", "presign", "ingest", "delete", "ui", "text", "hybrid",
])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), HOSTILE_TEXT, st.text(max_size=30),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(HOSTILE_TEXT, st.text(max_size=8)), inner, max_size=4)),
    max_leaves=12,
)
# Literals Python's JSON reader would take but JSON forbids, and shapes no model expects.
RAW_BODIES = st.sampled_from([
    b"", b"{", b"[]", b"null", b"42", b'"text"', b"\xff\xfe\x00", b'{"a": NaN}', b'{"a": Infinity}',
    b"{" + b'"a":' * 0 + b"[" * 3000 + b"]" * 3000 + b"}", b'{"query": "x"' + b"}" * 2,
    b'{"\\ud800": 1}', b'{"a": "\\u0000"}', b"\x00" * 64,
])
CONTENT_TYPES = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "text/plain", "multipart/form-data",
    "multipart/form-data; boundary=xyz", "application/x-www-form-urlencoded", "", "application/ld+json",
])


def field_names(app: Any, method: str) -> list[str]:
    model = app.routes[method].model
    names = list(getattr(model, "model_fields", {}) or {})
    for variant in getattr(model, "__args__", ()) or ():  # a union of request models
        names += list(getattr(variant, "model_fields", {}) or {})
    return sorted(set(names)) or ["query", "namespace"]


def requests_for(name: str):
    app = FUNCTIONS[name]
    methods = sorted(set(app.routes) | {"OPTIONS", "PUT"})

    @st.composite
    def build(draw) -> dict[str, Any]:
        method = draw(st.sampled_from(methods))
        fields = field_names(app, method) if method in app.routes else ["x"]
        chosen = draw(st.lists(st.sampled_from(fields), max_size=len(fields), unique=True))
        body: Any = {field: draw(VALUES) for field in chosen}
        if draw(st.booleans()):
            body[draw(st.text(alphabet=string.ascii_letters, min_size=1, max_size=6))] = draw(VALUES)
        raw = draw(st.one_of(RAW_BODIES, st.just(None)))
        content = raw if raw is not None else json.dumps(body).encode()
        query = draw(st.dictionaries(st.sampled_from([*fields, "namespace", "limit", "offset", "document_id"]),
                                     HOSTILE_TEXT, max_size=3))
        headers = {"content-type": draw(CONTENT_TYPES)}
        if draw(st.booleans()):
            headers["authorization"] = draw(st.sampled_from(["Bearer", "Bearer x", "Basic abc", "bearer  x", "Bearer \tx"]))
        if draw(st.booleans()):
            headers["origin"] = draw(st.sampled_from(["https://evil.example", "null", "http://127.0.0.1"]))
            headers["access-control-request-method"] = draw(st.sampled_from(["POST", "TRACE", "x"]))
            headers["access-control-request-headers"] = draw(st.sampled_from(["content-type", "x-openai-api-key"]))
        if draw(st.booleans()):
            headers["x-request-id"] = draw(st.sampled_from(["short", "a" * 300, "valid-request-id-123"]))
        return {"method": method, "content": content, "params": query, "headers": headers}

    return build()


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_no_request_a_client_can_send_gets_a_5xx(name, server_url, database, fake_provider, capfd):
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("FUZZ_EXAMPLES"),
              suppress_health_check=list(HealthCheck))
    @given(request=requests_for(name))
    def check(request: dict[str, Any]) -> None:
        # Encoded by hand: a lone surrogate goes out as the (invalid UTF-8) bytes a browser may send.
        query = "&".join(f"{quote(k.encode('utf-8', 'surrogatepass'))}={quote(v.encode('utf-8', 'surrogatepass'))}"
                         for k, v in request["params"].items())
        with httpx.Client(base_url=server_url, timeout=60) as http:
            response = http.request(request["method"], f"/api/{name}" + (f"?{query}" if query else ""),
                                    content=request["content"], headers=request["headers"])
        request_id = response.headers.get("x-request-id")
        assert response.status_code < 500, (request, response.status_code, response.text[:500])
        assert request_id, request
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["code"] and error["message"] and error["request_id"] == request_id, response.text
        # The log line is written once the response has gone out: wait for it briefly.
        logged, deadline = "", time.monotonic() + 5
        while f'"request_id": "{request_id}"' not in logged and time.monotonic() < deadline:
            time.sleep(0.005)
            logged += capfd.readouterr().err
        assert f'"request_id": "{request_id}"' in logged, (request, logged[-500:])

    check()
