"""The local server: every `api/<name>.py` at `/api/<name>`, as Vercel routes them, plus `public/`.

Functions are found by scanning `api/`, so a new file needs no registration. Responses stream
as they do on Vercel (uvicorn sends each ASGI body message as it comes).
"""

from __future__ import annotations

import importlib.util
import json
import mimetypes
import sys
from pathlib import Path
from typing import Any

from lib.config import PROJECT_ROOT
from lib.web import answer_lifespan

API_DIR = PROJECT_ROOT / "api"
PUBLIC_DIR = PROJECT_ROOT / "public"


def discover_functions(api_dir: Path = API_DIR) -> dict[str, Any]:
    """`{name: asgi_app}` for each `api/*.py` that defines a top-level `app`."""
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    apps: dict[str, Any] = {}
    for path in sorted(api_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module_name = f"api.{path.stem}"
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        app = getattr(module, "app", None)
        if app is not None:
            apps[path.stem] = app
    return apps


class DevRouter:
    """An ASGI app dispatching `/api/<name>` to that function's app, and the rest to `public/`."""

    def __init__(self, functions: dict[str, Any], public_dir: Path = PUBLIC_DIR) -> None:
        self.functions = functions
        self.public_dir = public_dir.resolve()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path.startswith("/api/"):
            name = path[len("/api/"):].strip("/").split("/")[0]
            app = self.functions.get(name)
            if app is not None:
                await app(scope, receive, send)
                return
            await _send(send, 404, json.dumps({"error": {
                "code": "not_found", "message": f"no function at {path}; have: "
                + ", ".join(f"/api/{n}" for n in sorted(self.functions)), "request_id": None}}).encode(),
                "application/json")
            return
        await self._static(path, send)

    async def _static(self, path: str, send: Any) -> None:
        relative = path.lstrip("/") or "index.html"
        target = (self.public_dir / relative).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(self.public_dir) or not target.is_file():
            await _send(send, 404, b"not found", "text/plain; charset=utf-8")
            return
        media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        await _send(send, 200, target.read_bytes(), media_type)


async def _send(send: Any, status: int, body: bytes, media_type: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media_type.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app() -> DevRouter:
    return DevRouter(discover_functions())


def serve(host: str = "127.0.0.1", port: int = 8000, prepare_database: bool = True) -> None:
    """Start the embedded database (unless DATABASE_URL is set), migrate, and serve."""
    import asyncio

    import uvicorn

    if prepare_database:
        from lib import db

        async def prepare() -> None:
            await db.get_pool()
            await db.close_pools()

        asyncio.run(prepare())
        db.forget_database()
    app = create_app()
    print(f"serving {', '.join('/api/' + n for n in sorted(app.functions))} on http://{host}:{port}",
          file=sys.stderr)
    # Idle connections stay open longer than clients keep theirs (httpx and Node: 4-5 s), so a
    # client never sends its next request on a connection the server is closing at that moment.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_keep_alive=75)
