"""Command line: `python -m lib.cli <command>`, and `python api/<name>.py` for any function.

Subcommands register themselves in COMMANDS; each takes its own argparse sub-parser.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from lib.config import get_settings, load_dotenv

# name -> (help, configure(parser), run(args) -> exit code)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[Any], int]]] = {}


def command(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None] | None = None):
    def register(run: Callable[[Any], int]) -> Callable[[Any], int]:
        COMMANDS[name] = (help, configure or (lambda p: None), run)
        return run

    return register


# --- calling a function in-process ------------------------------------------------------------


def _coerce(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _as_query_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def parse_function_args(
    argv: list[str], methods: Iterable[str] = ("GET", "POST"), aliases: dict[str, str] | None = None,
) -> tuple[str, dict[str, Any] | None, dict[str, str]]:
    """`'{"a": 1}'` or `--a 1 --top-k 5 --flag` -> (method, body, query string).

    Fields go in a POST body when the function takes POST and something was given, else in the
    query string of a GET (or of `--method DELETE`). `--param k=v` adds a query-string parameter
    to any method. `aliases` lets a function take the names its command line is known by
    (`--text` for `input`). Every other flag, `--query` and `--model` included, names a field."""
    methods = {m.upper() for m in methods}
    method = ""
    fields: dict[str, Any] = {}
    params: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            key = arg[2:].replace("-", "_")
            value: Any = True
            if "=" in key:
                key, raw = key.split("=", 1)
                value = _coerce(raw)
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value = _coerce(argv[i + 1])
                i += 1
            if key == "method":
                method = str(value).upper()
            elif key == "param":
                k, sep, v = str(value).partition("=")
                if not sep:
                    raise SystemExit(f"--param takes key=value, got {value!r}")
                params[k] = v
            else:
                fields[(aliases or {}).get(key, key)] = value
        else:
            parsed = _coerce(arg)
            if not isinstance(parsed, dict):
                raise SystemExit(f"expected a JSON object or --field value, got {arg!r}")
            fields.update(parsed)
        i += 1
    if not method:
        method = "POST" if "POST" in methods and (fields or "GET" not in methods) else "GET"
    if method in ("GET", "HEAD") or (method == "DELETE" and "POST" not in methods):
        return method, None, {**{k: _as_query_value(v) for k, v in fields.items()}, **params}
    return method, fields, params


async def call_app(
    app: Any, method: str, body: dict[str, Any] | None, query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None, on_chunk: Callable[[bytes], None] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Drive an ASGI app in this process, as the server would, and collect the response."""
    from urllib.parse import urlencode

    raw = json.dumps(body).encode() if body is not None else b""
    all_headers = {"content-type": "application/json", **(headers or {})}
    scope = {
        "type": "http", "method": method, "path": f"/api/{getattr(app, 'name', '')}",
        "query_string": urlencode(query or {}).encode(), "client": ("127.0.0.1", 0),
        "headers": [(k.encode(), v.encode()) for k, v in all_headers.items()],
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    status = 0
    response_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers.update({k.decode(): v.decode() for k, v in message["headers"]})
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            chunks.append(chunk)
            if on_chunk and chunk:
                on_chunk(chunk)

    await app(scope, receive, send)
    return status, response_headers, b"".join(chunks)


def run_function(app: Any, argv: list[str] | None = None, aliases: dict[str, str] | None = None) -> None:
    """Entry point of `python api/<name>.py ...`: call the function once, print the response.
    The project's `.env` is read first, as `make dev` does."""
    args = sys.argv[1:] if argv is None else argv
    methods = sorted(getattr(app, "routes", {}) or ("GET", "POST"))
    if args and args[0] in ("-h", "--help"):
        names = "".join(f" --{alias.replace('_', '-')} (= {field})" for alias, field in (aliases or {}).items())
        print(f"usage: python api/{app.name}.py ['<json body>'] [--field value ...] "
              f"[--method {'|'.join(methods)}] [--param key=value]\n"
              "Fields go in the body of a POST, or in the query string of a GET; --top-k is top_k."
              + (f"\nAlso:{names}" if names else ""))
        raise SystemExit(0)
    load_dotenv()
    method, body, query = parse_function_args(args, methods, aliases)
    streaming = bool(body and body.get("stream"))

    def stream(chunk: bytes) -> None:
        sys.stdout.write(chunk.decode(errors="replace"))
        sys.stdout.flush()

    async def main() -> tuple[int, dict[str, str], bytes]:
        from lib import db

        try:
            headers = {}
            # the command line acts as the operator: it uses the first configured key, if any
            api_keys = get_settings().api_keys
            if api_keys:
                headers["authorization"] = "Bearer " + api_keys[0].key
            return await call_app(app, method, body, query, headers=headers,
                                  on_chunk=stream if streaming else None)
        finally:
            await db.close_pools()

    status, headers, raw = asyncio.run(main())
    if not streaming:
        if headers.get("content-type", "").startswith("application/json") and raw:
            print(json.dumps(json.loads(raw), indent=2, ensure_ascii=False))
        else:
            sys.stdout.write(raw.decode(errors="replace"))
    raise SystemExit(0 if status < 400 else 1)


# --- subcommands ------------------------------------------------------------------------------


@command("migrate", "apply pending database migrations")
def _migrate(args: Any) -> int:
    from lib import db

    async def main() -> list[str]:
        async with db.connect() as conn:
            applied = await db.apply_migrations(conn)
        await db.close_pools()
        return applied

    applied = asyncio.run(main())
    print(json.dumps({"database": "ok", "applied": applied}))
    return 0


@command("db-url", "print the database URL in use (starting the embedded server if needed)")
def _db_url(args: Any) -> int:
    from lib import db

    print(db.database_url())
    return 0


def _configure_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default: HOST, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: PORT, else 8000)")


@command("serve", "run the local server (every api/*.py at /api/<name>)", _configure_serve)
def _serve(args: Any) -> int:
    from lib.cli.server import serve

    settings = get_settings()
    serve(args.host or settings.host, args.port or settings.port)
    return 0


@command("health", "check the database and print the health report")
def _health(args: Any) -> int:
    from lib import db
    from lib.db.health import check_health
    from lib.web.auth import auth_report

    async def main() -> dict[str, Any]:
        try:
            return {**await check_health(get_settings()), **auth_report(get_settings())}
        finally:
            await db.close_pools()

    report = asyncio.run(main())
    print(json.dumps(report, indent=2))
    return 0 if report["status"] == "ok" else 1


@command("openapi", "print the OpenAPI 3.1 document of every api/*.py function (openapi.json)")
def _openapi(args: Any) -> int:
    from lib.cli.server import discover_functions
    from lib.db.health import VERSION
    from lib.web.openapi import document_json, openapi_document

    sys.stdout.write(document_json(openapi_document(discover_functions(), version=VERSION)))
    return 0


def _load_plugins() -> None:
    """Modules that add subcommands (ingestion, retrieval) register them on import."""
    import importlib

    for name in ("lib.cli.ingest", "lib.cli.search", "lib.cli.prompts"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def main(argv: list[str] | None = None) -> int:
    load_dotenv()
    _load_plugins()
    parser = argparse.ArgumentParser(prog="python -m lib.cli", description="AI back end bundle")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, configure, _run) in sorted(COMMANDS.items()):
        configure(sub.add_parser(name, help=help_text))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][2](args)
