"""`python api/ai_execute.py ...` from a shell, and what importing the function costs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_command_line_prints_the_json_response(database) -> None:
    env = {**os.environ, "DATABASE_URL": database, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "api/ai_execute.py", "--prompt", "Hello", "--model", "local/echo"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    assert data["model"] == "local/echo" and "Hello" in data["text"] and "offline" in data["text"]


def test_importing_the_function_loads_no_provider_sdk() -> None:
    code = ("import sys, api.ai_execute; "
            "print(sorted(m for m in ('openai', 'anthropic', 'groq', 'httpx', 'httpx2', 'psycopg', 'numpy', "
            "'boto3', 'asyncio') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
