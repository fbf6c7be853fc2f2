"""examples/nextjs as a test: the app type-checks, and, built once (`next build`) and served
(`next start`) against the live bundle, it is driven in headless chromium through sign-in with
Auth.js, chat (offline echo, an error explained by bundleError, a browser-side tool, stop() midway),
an upload with its progress, a question about it with a follow-up, and the API docs through the
app's own /api rewrite, with no console error.

The bundle knows no API key and no anonymous caller: it shares AUTH_SECRET with the app and reads
the Auth.js session cookie the browser sends with each same-origin /api call (the role from the
token's `role` claim), so a page's call works only while someone is signed in.

Only compat/... models reach the fake provider, so the offline models answer everything else. The
build is kept between runs while the app, the client and the bundle's address are unchanged.
Skipped, saying why, without Node.js (the type check) or chromium (the browser test)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from lib import config
from tests.browser import ARTIFACTS, NODE, NODE_DIR, browser_missing, node_env
from tests.conftest import ROOT, _free_port, serve_asgi
from tests.fakes.provider_server import Reply

EXAMPLE = ROOT / "examples" / "nextjs"
NEXT = EXAMPLE / "node_modules" / ".bin" / "next"
TSC = EXAMPLE / "node_modules" / ".bin" / "tsc"
BUNDLE_PORT = 18731  # the address the build's rewrite points at; another when taken (and a rebuild)
AUTH_SECRET = "example-auth-secret-shared-by-app-and-bundle-0123"
PASSWORD = "correct horse"
SLOW_STORY = "Once upon a time " + " ".join(f"word{i}" for i in range(60)) + " and they lived happily ever after."

pytestmark = [pytest.mark.node, pytest.mark.skipif(NODE is None, reason="Node.js is not installed")]


def _require_install() -> None:
    if not NEXT.exists():
        pytest.fail("examples/nextjs has no node_modules: run `make node-deps` (npm ci there)")


def test_the_example_type_checks() -> None:
    _require_install()
    for command in ([str(NEXT), "typegen"], [str(TSC), "--noEmit", "-p", "."]):  # typegen: next-env.d.ts
        done = subprocess.run(command, cwd=EXAMPLE, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "NEXT_TELEMETRY_DISABLED": "1"})
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _sources_hash(bundle_url: str) -> str:
    digest = hashlib.sha256(bundle_url.encode())
    files = [*sorted(p for folder in ("app", "components", "lib") for p in (EXAMPLE / folder).rglob("*") if p.is_file()),
             *(EXAMPLE / name for name in ("auth.ts", "next.config.mjs", "tsconfig.json", "package-lock.json")),
             ROOT / "clients" / "typescript" / "index.ts", ROOT / "clients" / "typescript" / "schema.d.ts"]
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _build(bundle_url: str, env: dict[str, str]) -> float:
    """`next build` unless the last build was of these sources for this address; its seconds."""
    stamp = EXAMPLE / ".next" / "built-for-tests"
    wanted = _sources_hash(bundle_url)
    if stamp.exists() and stamp.read_text() == wanted and (EXAMPLE / ".next" / "BUILD_ID").exists():
        return 0.0
    started = time.monotonic()
    done = subprocess.run([str(NEXT), "build"], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    stamp.write_text(wanted)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def example_app(database: str, fake_provider_server) -> Iterator[dict[str, str]]:
    """The bundle (Auth.js sessions only: no API key, no anonymous caller; compat/... models at the
    fake provider) and the built app in front of it."""
    _require_install()
    fake_provider_server.reset()
    app_port = _free_port()
    app_url = f"http://127.0.0.1:{app_port}"
    with pytest.MonkeyPatch.context() as patch:
        for name in ("API_KEYS", "ANONYMOUS_ROLE"):
            patch.delenv(name, raising=False)
        patch.setenv("AUTH_SECRET", AUTH_SECRET)
        patch.setenv("AUTH_ROLE_CLAIM", "role")
        # the rewrite proxy sends the bundle its own host, so the app's pages are another origin
        # to it: a cookie-authenticated POST from them is allowed by name
        patch.setenv("ALLOWED_ORIGINS", app_url)
        patch.setenv("OPENAI_COMPATIBLE_BASE_URL", f"{fake_provider_server.base_url}/compat/v1")
        patch.setenv("MAX_RETRIES", "0")
        config.reset_settings()
        from lib.cli.server import create_app

        port = BUNDLE_PORT if _port_free(BUNDLE_PORT) else _free_port()
        with serve_asgi(create_app(), port=port) as bundle_url:
            env = {**os.environ, "BUNDLE_URL": bundle_url, "AUTH_SECRET": AUTH_SECRET, "EXAMPLE_PASSWORD": PASSWORD,
                   "AUTH_TRUST_HOST": "true", "NEXT_TELEMETRY_DISABLED": "1"}
            env.pop("NODE_ENV", None)
            build_s = _build(bundle_url, env)
            server = subprocess.Popen([str(NEXT), "start", "-p", str(app_port), "-H", "127.0.0.1"], cwd=EXAMPLE,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      start_new_session=True)
            try:
                deadline = time.monotonic() + 120
                while _port_free(app_port):
                    assert server.poll() is None, server.stdout.read() if server.stdout else ""
                    assert time.monotonic() < deadline, "next start did not listen within 120 s"
                    time.sleep(0.2)
                yield {"app": app_url, "bundle": bundle_url, "build_s": f"{build_s:.0f}"}
            finally:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()
    config.reset_settings()


def _ledger(database: str, where: str, params: tuple = ()) -> list[dict]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(database, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(f"SELECT * FROM usage_ledger WHERE {where}", params).fetchall()


@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_a_person_uses_the_example_app_in_headless_chromium(example_app, database, fake_provider_server) -> None:
    fake = fake_provider_server
    fake.queue(Reply(text="", tool_calls=[{"id": "call_time", "name": "get_time", "arguments": {}}]),
               Reply(text="It is noon where you are."),
               Reply(text=SLOW_STORY, chunk_delay_s=0.2))
    ARTIFACTS.mkdir(exist_ok=True)
    started = time.monotonic()
    done = subprocess.run([NODE, str(NODE_DIR / "check_example.mjs"), example_app["app"], PASSWORD, str(ARTIFACTS)],
                          capture_output=True, text=True, cwd=NODE_DIR, timeout=600, env=node_env())
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"next build: {example_app['build_s']} s (0: reused), browser run: {time.monotonic() - started:.0f} s")

    assert seen["problems"] == [], seen["problems"]
    # before sign-in the page's own call to the bundle is refused: it has no session to send
    assert seen["beforeSignIn"]["status"] == 401, seen["beforeSignIn"]
    assert seen["beforeSignIn"]["body"]["error"]["code"] == "unauthorized"
    # sign-in through Auth.js's Credentials provider; its session is Auth.js's own http-only cookie
    assert seen["redirected"] == "/sign-in" and "Wrong password" in seen["wrongPassword"]
    assert seen["signedIn"] == {"path": "/", "user": "ada"}
    assert seen["sessionCookie"] == {"name": "authjs.session-token", "httpOnly": True, "readableByPage": False}
    # the offline echo, streamed through useChat
    assert "You said: Hello there" in seen["echo"]["text"] and "[offline local/echo" in seen["echo"]["text"]
    assert "local/echo" in seen["echo"]["meta"]
    # an error shown through bundleError: the envelope's code and request id, not raw JSON
    assert seen["chatError"]["code"] == "validation_error" and "model" in seen["chatError"]["text"]
    assert len(seen["chatError"]["requestId"]) >= 8 and '{"error"' not in seen["chatError"]["text"]
    # a tool call run in the browser, its result sent back, and the answer that used it
    assert "get_time" in seen["tool"]["part"] and '"now"' in seen["tool"]["part"]
    assert "noon" in seen["tool"]["answer"]
    continuation = [r.body for r in fake.requests if any(m.get("role") == "tool" for m in r.body.get("messages", []))]
    assert continuation and continuation[0]["user"] == "ada"  # the session's subject, as the bundle verified it
    # stop() midway: the text stops growing, no error, and the bundle saw the client go
    assert seen["stop"]["statusBefore"] in ("streaming", "submitted")
    assert 0 < seen["stop"]["stoppedAt"] == seen["stop"]["later"] < len(SLOW_STORY)
    assert "happily ever after" not in seen["stop"]["text"] and not seen["stop"]["error"]
    deadline = time.monotonic() + 20
    while not _ledger(database, "model = 'compat/slow-demo' AND error_code = 'client_closed'"):
        assert time.monotonic() < deadline, "the stopped stream never reached the bundle as a closed client"
        time.sleep(0.5)
    # an upload with its progress, listed afterwards; a file that is no document, explained
    stages = seen["upload"]["stages"]
    assert stages[0] == "extract" and "chunk" in stages and any(s.startswith("embed") for s in stages)
    assert stages[-1] == "result" and "kettle.md: indexed" in seen["upload"]["result"]
    assert "kettle.md" in seen["upload"]["documents"]
    assert seen["uploadError"]["code"] == "unsupported_document_type" and seen["uploadError"]["requestId"]
    # an answer with citations, then a follow-up in the same conversation
    assert "two years" in seen["ask"]["text"] and seen["ask"]["sources"]
    assert "two years" in seen["ask"]["citations"]
    assert "refund" in seen["followUp"]["text"].lower()
    # the docs through the app's rewrite (a production build keeps it: BUNDLE_URL at build time)
    document = json.loads((ROOT / "openapi.json").read_text())
    assert seen["docs"] == sum(len(methods) for methods in document["paths"].values())
    # every call was the signed-in user's own: the bundle named them from the session cookie
    rows = _ledger(database, "user_id IS NOT NULL")
    assert rows and {r["user_id"] for r in rows} == {"ada"}
    assert all(r["caller"].startswith("user:") and r["caller"].endswith("/ada") for r in rows)
    # signed out, the cookie is gone and the same call is refused again
    assert seen["signedOut"] == "/sign-in"
    assert seen["afterSignOut"]["status"] == 401, seen["afterSignOut"]
    assert seen["afterSignOut"]["body"]["error"]["code"] == "unauthorized"


def test_the_bundle_behind_the_app_refuses_strangers(example_app) -> None:
    import httpx

    from tests.authjs import mint_session

    app = example_app["app"]
    ask = {"query": "How long is the warranty?", "namespace": "default"}
    # no session: the rewrite reaches the bundle, which knows no key and no anonymous caller
    stranger = httpx.post(f"{app}/api/rag", json=ask, headers={"origin": app})
    assert stranger.status_code == 401 and stranger.json()["error"]["request_id"]
    # a session made with another secret is not one of this app's
    forged = mint_session("some-other-apps-secret-0123456789abcdef", "authjs.session-token",
                          {"sub": "mallory", "role": "admin"})["cookies"][0]
    refused = httpx.post(f"{app}/api/rag", json=ask, headers={"origin": app},
                         cookies={forged["name"]: forged["value"]})
    assert refused.status_code == 401 and "AUTH_SECRET" in refused.json()["error"]["message"]
    # a real session works from the app's pages, and is refused when another site's page rides it
    session = mint_session(AUTH_SECRET, "authjs.session-token", {"sub": "ada", "role": "writer"})["cookies"][0]
    cookies = {session["name"]: session["value"]}
    search = {**ask, "answer": False}
    assert httpx.post(f"{app}/api/rag", json=search, headers={"origin": app}, cookies=cookies).status_code == 200
    elsewhere = httpx.post(f"{app}/api/rag", json=search, headers={"origin": "https://elsewhere.example"},
                           cookies=cookies)
    assert elsewhere.status_code == 403 and elsewhere.json()["error"]["code"] == "origin_not_allowed"
    # Auth.js's own routes are the app's (/auth/*), not the bundle's
    assert httpx.get(f"{app}/auth/session").json() is None
    assert "credentials" in httpx.get(f"{app}/auth/providers").json()
    assert httpx.get(f"{app}/api/openapi").json()["openapi"] == "3.1.0"
