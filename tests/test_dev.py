"""The local server and command line: discovery, routing, static files, scripts, cold imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lib.cli import parse_function_args
from lib.cli.server import API_DIR, DevRouter, discover_functions
from tests.conftest import ROOT, serve_asgi


def test_every_api_file_is_served_at_its_name():
    functions = discover_functions()
    names = {p.stem for p in API_DIR.glob("*.py") if not p.name.startswith("_")}
    assert set(functions) == names and "health" in functions


def test_unknown_function_is_a_json_404(client):
    response = client.get("/api/does-not-exist")
    assert response.status_code == 404
    assert "/api/health" in response.json()["error"]["message"]


def test_public_files_are_served(tmp_path):
    (tmp_path / "index.html").write_text("<h1>playground</h1>")
    import httpx

    with serve_asgi(DevRouter({}, public_dir=tmp_path)) as base:
        assert httpx.get(f"{base}/").text == "<h1>playground</h1>"
        assert httpx.get(f"{base}/index.html").headers["content-type"].startswith("text/html")
        assert httpx.get(f"{base}/../etc/passwd").status_code == 404


def test_function_arguments_from_json_and_flags():
    assert parse_function_args(['{"a": 1}']) == ("POST", {"a": 1}, {})
    assert parse_function_args(["--prompt", "Hello world", "--max-tokens", "5", "--stream"]) == (
        "POST", {"prompt": "Hello world", "max_tokens": 5, "stream": True}, {})
    # --query is a field like any other (rag's question), never the query string
    assert parse_function_args(["--query", "What is AI?", "--top-k", "5"]) == (
        "POST", {"query": "What is AI?", "top_k": 5}, {})
    assert parse_function_args([]) == ("GET", None, {})


def test_function_arguments_go_in_the_query_string_of_a_get():
    assert parse_function_args(["--method", "GET", "--namespace", "docs", "--limit", "5"]) == (
        "GET", None, {"namespace": "docs", "limit": "5"})
    # a function that only answers GET takes its fields in the query string
    assert parse_function_args(["--verbose"], methods=["GET"]) == ("GET", None, {"verbose": "true"})
    assert parse_function_args(["--method", "DELETE", "--namespace", "d"], methods=["GET", "DELETE"]) == (
        "DELETE", None, {"namespace": "d"})
    assert parse_function_args(["--prompt", "x", "--param", "debug=1"]) == ("POST", {"prompt": "x"}, {"debug": "1"})


def test_function_arguments_take_a_function_s_aliases():
    assert parse_function_args(["--text", "Sample text"], aliases={"text": "input"}) == (
        "POST", {"input": "Sample text"}, {})


def test_function_file_runs_as_a_script(database):
    out = subprocess.run([sys.executable, str(ROOT / "api" / "health.py")], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["database"] == "ok"


def test_cli_lists_its_commands():
    out = subprocess.run([sys.executable, "-m", "lib.cli", "--help"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0
    for name in ("migrate", "serve", "health"):
        assert name in out.stdout


def test_function_modules_import_no_sdk_database_driver_or_parser():
    heavy = ["openai", "anthropic", "groq", "psycopg", "boto3", "numpy", "pgvector", "tokenizers", "pypdf", "docx",
             "torch", "joserfc", "cryptography"]
    for path in sorted(API_DIR.glob("*.py")):
        code = (f"import sys, importlib; importlib.import_module('api.{path.stem}'); "
                f"print([m for m in {heavy!r} if m in sys.modules])")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[]", f"api/{path.name} imports {out.stdout.strip()}"


def test_health_cold_start_loads_no_event_loop_machinery_or_validation():
    # health answers from a cold instance first: asyncio (~20-60 ms), pydantic and numpy stay out of its import
    code = ("import sys, importlib; importlib.import_module('api.health'); "
            "print([m for m in ('asyncio', 'pydantic', 'email', 'hashlib', 'numpy', 'pgvector') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_every_function_is_deployed_and_documented():
    vercel = json.loads((ROOT / "vercel.json").read_text())["functions"]
    readme = (ROOT / "README.md").read_text()
    names = sorted(p.stem for p in API_DIR.glob("*.py") if not p.name.startswith("_"))
    assert sorted(Path(f).stem for f in vercel) == names
    assert len({entry["excludeFiles"] for entry in vercel.values()}) == 1
    for name in names:
        assert vercel[f"api/{name}.py"]["maxDuration"] > 0
        assert f"/api/{name}`" in readme, f"/api/{name} is missing from the README's table"
