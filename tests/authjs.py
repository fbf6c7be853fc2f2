"""Auth.js's own code (`@auth/core` in tests/node) run under Node, to mint sessions exactly as a
Next.js app does. Like tests/ai_sdk.py: skipped only where Node.js is not installed; with Node
there, a missing `@auth/core` fails the tests, so a broken setup cannot pass for a working one."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.ai_sdk import NODE, NODE_DIR, needs_node

__all__ = ["mint_session", "needs_node"]


def require_authjs() -> None:
    if not (NODE_DIR / "node_modules" / "@auth" / "core").is_dir():
        pytest.fail("the @auth/core npm package is not installed: run `make node-deps` (npm install in tests/node)")


def mint_session(secret: str, cookie_name: str, token: dict, max_age: int = 3600) -> dict:
    """@auth/core's `encode` and SessionStore: {"jwt": ..., "cookies": [{"name", "value"}, ...]}."""
    require_authjs()
    request = {"secret": secret, "cookieName": cookie_name, "token": token, "maxAge": max_age}
    done = subprocess.run([NODE, str(NODE_DIR / "mint_authjs_session.mjs")], input=json.dumps(request).encode(),
                          capture_output=True, cwd=NODE_DIR, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)
