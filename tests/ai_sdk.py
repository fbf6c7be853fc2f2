"""The AI SDK's own client code (the `ai` npm package in tests/node) run under Node, for the tests
that check our streams. They are skipped only where Node.js is not installed: with Node there, a
missing `ai` package fails them, so a broken setup cannot pass for a working stream."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE = shutil.which("node")

needs_node = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")


def require_ai_package() -> None:
    if not (NODE_DIR / "node_modules" / "ai").is_dir():
        pytest.fail("the ai npm package is not installed: run `make node-deps` (npm install in tests/node)")


def parse_with_ai_sdk(stream: bytes) -> dict:
    """A captured UI message stream read by check_ui_stream.mjs: the AI SDK's chunk schema, no key
    outside it, and readUIMessageStream building the message. Returns {chunks, message, errors}."""
    require_ai_package()
    done = subprocess.run([NODE, str(NODE_DIR / "check_ui_stream.mjs")], input=stream, capture_output=True,
                          cwd=NODE_DIR, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


def validate_ui_messages(messages: list) -> dict:
    """Stored chat messages checked by check_ui_messages.mjs: the AI SDK's UIMessage[] schema
    (validateUIMessages) and convertToModelMessages. Returns {messages, modelMessages}."""
    require_ai_package()
    done = subprocess.run([NODE, str(NODE_DIR / "check_ui_messages.mjs")], input=json.dumps(messages).encode(),
                          capture_output=True, cwd=NODE_DIR, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)
