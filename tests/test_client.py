"""clients/typescript: its types are what openapi-typescript makes of the committed openapi.json,
they and the client compile with tsc, and bundleError and readEvents work, on their own and
against the live server. Skipped, visibly, where Node.js is not installed; with Node there, a
missing npm install fails them (`make node-deps` installs it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.browser import NODE
from tests.conftest import ROOT

CLIENT = ROOT / "clients" / "typescript"
BIN = CLIENT / "node_modules" / ".bin"

pytestmark = [pytest.mark.node, pytest.mark.skipif(NODE is None, reason="Node.js is not installed")]


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    if not (BIN / "tsc").exists():
        pytest.fail("clients/typescript has no node_modules: run `make node-deps` (npm ci there)")
    done = subprocess.run(args, cwd=CLIENT, capture_output=True, text=True, timeout=180, **kwargs)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def test_the_types_are_generated_from_the_committed_document(tmp_path) -> None:
    fresh = tmp_path / "schema.d.ts"
    run(str(BIN / "openapi-typescript"), str(ROOT / "openapi.json"), "--default-non-nullable", "false",
        "--output", str(fresh))
    assert fresh.read_text() == (CLIENT / "schema.d.ts").read_text(), (
        "clients/typescript/schema.d.ts is stale: run `make client-types`")


def test_the_types_and_the_client_compile() -> None:
    run(str(BIN / "tsc"), "--noEmit", "-p", ".")


def test_bundle_error_and_read_events_work_against_the_live_server(client) -> None:
    run(str(BIN / "tsc"), "-p", "test")
    done = run(NODE, "--test", "test/", env={**os.environ, "BUNDLE_URL": str(client.base_url).rstrip("/")})
    sys.stdout.write(done.stdout[-600:])
    assert "# fail 0" in done.stdout and "# skipped 0" in done.stdout
