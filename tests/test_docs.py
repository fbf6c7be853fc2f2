"""/api/openapi and /api/docs: the committed document as JSON, the Redoc page and its vendored
script with a strict policy, and the page rendered by headless chromium with no console error."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.browser import ARTIFACTS, NODE, NODE_DIR, browser_missing, node_env
from tests.conftest import ROOT


def test_the_document_is_served_as_committed(client) -> None:
    r = client.get("/api/openapi")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.content == (ROOT / "openapi.json").read_bytes()
    assert r.json()["openapi"] == "3.1.0" and r.headers["x-request-id"]


def test_the_page_and_its_script_are_served_with_a_strict_policy(client) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert '<redoc spec-url="openapi"' in page.text and '<script src="?asset=redoc.standalone.js">' in page.text
    script = client.get("/api/docs", params={"asset": "redoc.standalone.js"})
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert b'Version: "2.5.4"' in (ROOT / "lib/web/redoc/redoc.standalone.js.LICENSE.txt").read_bytes()
    assert len(script.content) < 4_500_000  # Vercel's response limit
    assert b"cdn.redoc.ly" not in script.content  # nothing is fetched from elsewhere (see OFFLINE_PATCHES)


@pytest.mark.parametrize("params", [{"asset": "../../../etc/passwd"}, {"asset": "index.html"}, {"page": "1"}])
def test_anything_else_is_a_422(client, params) -> None:
    r = client.get("/api/docs", params=params)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


@pytest.mark.node
@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_the_page_renders_every_operation_in_headless_chromium(client) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "docs.png"
    screenshot.unlink(missing_ok=True)
    done = subprocess.run([NODE, str(NODE_DIR / "check_docs.mjs"), str(client.base_url).rstrip("/"), str(screenshot)],
                          capture_output=True, text=True, cwd=NODE_DIR, timeout=180, env=node_env())
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["problems"] == [], seen["problems"]
    document = json.loads((ROOT / "openapi.json").read_text())
    assert seen["title"].startswith(document["info"]["title"])
    operations = sum(len(methods) for methods in document["paths"].values())
    assert len(seen["operations"]) == operations, seen["operations"]
    assert set(seen["mentions"]) == {"validation_error", "text/event-stream", "x-vercel-ai-ui-message-stream"}
    assert screenshot.stat().st_size > 20_000
