"""The dashboard: its page and vendored files as /api/dashboard serves them, and the page in a real
headless chromium (driven by puppeteer-core) loading figures from /api/metrics, drawing its
charts and tables, with no console error. The browser test is skipped, with the reason, when
chromium, Node.js or the puppeteer-core package is missing; it keeps a screenshot in
tests/artifacts/."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.browser import ARTIFACTS, NODE, NODE_DIR, browser_missing, node_env
from tests.conftest import ROOT
from tests.fakes.provider_server import Reply
from tests.test_observe import wait_recorded


def test_page_and_assets_are_served_with_a_strict_policy(client) -> None:
    page = client.get("/api/dashboard")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    assert '<script src="?asset=uPlot.iife.min.js"></script>' in page.text
    for asset, media_type in (("uPlot.iife.min.js", "text/javascript"), ("uPlot.min.css", "text/css"),
                              ("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        r = client.get("/api/dashboard", params={"asset": asset})
        assert r.status_code == 200 and r.headers["content-type"].startswith(media_type), asset
    vendored = client.get("/api/dashboard", params={"asset": "uPlot.iife.min.js"}).text
    assert vendored.startswith("/*! uPlot v1.6.32 | (c) 2022 Leon Sorokin | MIT License")


@pytest.mark.parametrize("params", [{"asset": "../../../etc/passwd"}, {"asset": "index.html"}, {"page": "1"},
                                    {"asset": "\x00"}])
def test_anything_else_is_a_4xx(client, params) -> None:
    r = client.get("/api/dashboard", params=params)
    # 422 for a name that is not served; 400 for text that cannot be stored at all (a NUL)
    expected = (400, "invalid_text") if params == {"asset": "\x00"} else (422, "validation_error")
    assert (r.status_code, r.json()["error"]["code"]) == expected


def test_the_playground_links_to_the_dashboard() -> None:
    assert 'href="/api/dashboard"' in (ROOT / "public" / "index.html").read_text()


@pytest.mark.node
@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_dashboard_draws_real_figures_in_headless_chromium(client, fake_provider, database, env) -> None:
    env(API_KEYS="admin-key,reader-key:docs", MAX_RETRIES="0")
    auth = {"authorization": "Bearer admin-key"}
    ids, failed_ids = [], []
    for i in range(6):
        fake_provider.queue(Reply(text="answer", usage={"input": 400 + i, "output": 40}))
        r = client.post("/api/ai_execute", headers=auth, json={"prompt": f"q{i}", "model": "openai/gpt-4o-mini",
                                                                "user": f"user-{i % 3}"})
        ids.append(r.headers["x-request-id"])
    fake_provider.queue(Reply(status=500))
    r = client.post("/api/ai_execute", headers=auth, json={"prompt": "fail", "model": "openai/gpt-4o-mini"})
    assert r.status_code == 502
    failed_ids.append(r.headers["x-request-id"])
    fake_provider.queue(Reply(text="streamed answer", delay_s=0.1))
    ids.append(client.post("/api/ai_execute", headers=auth, json={"prompt": "s", "model": "openai/gpt-4o-mini",
                                                                  "stream": True}).headers["x-request-id"])
    wait_recorded(database, ids + failed_ids)

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "dashboard.png"
    screenshot.unlink(missing_ok=True)
    base = str(client.base_url).rstrip("/")
    done = subprocess.run([NODE, str(NODE_DIR / "check_dashboard.mjs"), base, "admin-key", str(screenshot)],
                          capture_output=True, text=True, cwd=NODE_DIR, timeout=120,
                          env=node_env())
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["problems"] == [], seen["problems"]
    assert seen["stored"] and seen["status"].startswith("Updated")
    assert {c["id"] for c in seen["charts"]} == {"chart-requests", "chart-latency", "chart-cost", "chart-cache"}
    for chart in seen["charts"]:
        assert chart["canvases"] and all(c["width"] > 100 and c["height"] > 50 for c in chart["canvases"]), chart
    assert any("gpt-4o-mini" in label for label in next(c for c in seen["charts"] if c["id"] == "chart-cost")["legend"])
    assert any(t.endswith("requests") and not t.startswith("0") for t in seen["tiles"])
    slowest_ids = {row[1] for row in seen["rows"]["slowest"]}
    assert slowest_ids & set(ids)
    assert failed_ids[0] in {row[1] for row in seen["rows"]["failed"]}
    assert {row[0] for row in seen["rows"]["users"]} >= {"user-0", "user-1", "user-2"}
    assert screenshot.stat().st_size > 20_000
