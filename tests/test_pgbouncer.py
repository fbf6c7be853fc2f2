"""The bundle behind a real transaction pooler: PgBouncer in transaction mode between the live
local server (`python -m lib.cli serve`, its own process) and the test database.

PgBouncer gets fewer server connections (2) than the server's pool has clients (4), so one client's
transactions land on different server connections, as on Neon or Supabase. Databases are created
and dropped directly on Postgres, never through PgBouncer: a database cloned with `CREATE DATABASE
... TEMPLATE` must have no other session, and PgBouncer would keep an idle server connection to
any database reached through it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from lib import db, errors
from tests.conftest import (
    ROOT,
    _admin_execute,
    _admin_url,
    _free_port,
    _with_dbname,
    fake_provider_env,
    run_async,
)
from tests.fakes.provider_server import Reply

SERVER_CONNECTIONS = 2  # PgBouncer's default_pool_size: fewer than the app's pool of 4
APP_POOL_SIZE = 4


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None)


@dataclass
class PgBouncer:
    """One running PgBouncer: `url(dbname)` through it, `admin(command)` on its console."""

    port: int
    user: str
    process: subprocess.Popen
    log_path: Path

    def url(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={dbname}"

    def admin(self, command: str) -> list[dict]:
        with psycopg.connect(self.url("pgbouncer"), autocommit=True) as conn:
            cur = conn.execute(command)
            if cur.description is None:
                return []
            names = [d.name for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def run_pgbouncer(pool_size: int = SERVER_CONNECTIONS) -> Iterator[PgBouncer]:
    """Start PgBouncer (transaction mode, trust auth) on a free loopback port in front of the test
    Postgres, with its ini, socket and log in a fresh temporary folder; stop it afterwards."""
    binary = pgbouncer_binary()
    if binary is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does it)")
    target = conninfo_to_dict(_admin_url())
    host, user = target.get("host") or "127.0.0.1", target.get("user") or "postgres"
    server = f"host={host} port={target.get('port') or 5432} user={user}"
    if target.get("password"):
        server += f" password={target['password']}"
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    port = _free_port()
    (folder / "userlist.txt").write_text(f'"{user}" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""[databases]
* = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir = {folder}
auth_type = trust
auth_file = {folder / "userlist.txt"}
admin_users = {user}
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
logfile = {folder / "pgbouncer.log"}
""")
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root. Run it as the owner of the Postgres socket folder (the
        # embedded server's own user), who can reach that socket, or as nobody for a TCP target.
        run_as = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else "nobody"
        shutil.chown(folder, run_as)
        for path in folder.iterdir():
            shutil.chown(path, run_as)
        command += ["-u", run_as]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    bouncer = PgBouncer(port, user, process, folder / "pgbouncer.log")
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                bouncer.admin("SHOW VERSION")
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                    pytest.fail(f"pgbouncer did not start: {stderr}{bouncer.log()}")
                time.sleep(0.05)
        yield bouncer
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def pgbouncer(database: str) -> Iterator[PgBouncer]:
    with run_pgbouncer() as bouncer:
        yield bouncer
        bouncer.admin(f'KILL "{conninfo_to_dict(database)["dbname"]}"')  # before the database is dropped


@pytest.fixture(scope="module")
def pooled_url(database: str, pgbouncer: PgBouncer) -> str:
    """The module's database, reached through PgBouncer."""
    return pgbouncer.url(conninfo_to_dict(database)["dbname"])


@dataclass
class LiveServer:
    url: str
    log_path: Path

    def error_lines(self) -> list[dict]:
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # uvicorn's own lines, and tracebacks
                if "Traceback" in line or "ERROR" in line:
                    lines.append({"level": "error", "raw": line})
                continue
            if record.get("level") == "error":
                lines.append(record)
        return lines


@pytest.fixture(scope="module")
def live_server(pooled_url: str, fake_provider_server, tmp_path_factory) -> Iterator[LiveServer]:
    """`python -m lib.cli serve` in its own process, its DATABASE_URL pointing at PgBouncer."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("live-server") / "server.log"
    env = {**os.environ, **fake_provider_env(fake_provider_server.base_url), "DATABASE_URL": pooled_url,
           "DATABASE_POOL_SIZE": str(APP_POOL_SIZE), "EMBEDDING_MODEL": "local/hash-384",
           "PYTHONPATH": str(ROOT)}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "lib.cli", "serve", "--port", str(port)],
                                   cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = LiveServer(f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{server.url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the local server did not start: {log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        yield client


def fetch(database: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Read straight from Postgres (not through the pooler), to check what the server wrote."""
    with psycopg.connect(database) as conn:
        return conn.execute(sql, params).fetchall()


# --- the pooler itself --------------------------------------------------------------------------


def test_one_client_runs_on_different_server_connections(pgbouncer: PgBouncer, pooled_url: str) -> None:
    """The premise of the module: in transaction mode a client has no server connection of its own."""
    with psycopg.connect(pooled_url, autocommit=True, prepare_threshold=None) as first, \
            psycopg.connect(pooled_url, autocommit=True, prepare_threshold=None) as second:
        first.execute("BEGIN")
        pinned = first.execute("SELECT pg_backend_pid()").fetchone()[0]  # holds one server connection
        seen = {second.execute("SELECT pg_backend_pid()").fetchone()[0]}  # so this gets the other
        first.execute("COMMIT")
        second.execute("BEGIN")
        seen.add(second.execute("SELECT pg_backend_pid()").fetchone()[0])  # the one just released
        second.execute("COMMIT")
    assert pinned in seen and len(seen) == 2
    pools = [p for p in pgbouncer.admin("SHOW POOLS") if p["database"] == conninfo_to_dict(pooled_url)["dbname"]]
    assert pools and pools[0]["pool_mode"] == "transaction"
    servers = [s for s in pgbouncer.admin("SHOW SERVERS") if s["database"] == pools[0]["database"]]
    assert len(servers) <= SERVER_CONNECTIONS


# --- every function through it ------------------------------------------------------------------


def upload(http: httpx.Client, namespace: str, filename: str, content: str, **extra) -> dict:
    response = http.post("/api/upload", json={"namespace": namespace, "filename": filename,
                                              "content": content, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_uploads_in_parallel(http: httpx.Client, live_server: LiveServer, database: str) -> None:
    texts = {f"manual-{i}.md": f"# Manual {i}\n\nThe kettle model {i} boils water in {60 + i} seconds.\n"
             for i in range(12)}

    def one(item: tuple[str, str]) -> int:
        with httpx.Client(base_url=live_server.url, timeout=60) as client:
            return client.post("/api/upload", json={"namespace": "parallel", "filename": item[0],
                                                    "content": item[1]}).status_code

    results: list[int] = []
    threads = [threading.Thread(target=lambda item=item: results.append(one(item))) for item in texts.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [200] * len(texts)
    listed = http.get("/api/upload", params={"namespace": "parallel", "limit": 50}).json()["documents"]
    assert {d["source"] for d in listed} == set(texts)
    assert fetch(database, "SELECT count(*) FROM chunks WHERE namespace = 'parallel'") == [(len(texts),)]
    # the same content again is a no-op, through the pooler too
    again = upload(http, "parallel", "manual-0.md", texts["manual-0.md"])
    assert again["status"] == "unchanged"


def test_rag_conversation_of_two_turns(http: httpx.Client, fake_provider, database: str) -> None:
    upload(http, "kettles", "warranty.md", "# Warranty\n\nEvery kettle has a two-year warranty.\n\n"
           "# Refunds\n\nRefunds are paid within five business days.\n")
    fake_provider.queue(Reply(text="Two years [1]."))
    first = http.post("/api/rag", json={"query": "How long is the kettle warranty?", "namespace": "kettles",
                                        "model": "openai/gpt-4o-mini"})
    assert first.status_code == 200, first.text
    conversation_id = first.json()["conversation_id"]
    fake_provider.queue(Reply(text="kettle refund time"), Reply(text="Five business days [1]."))
    second = http.post("/api/rag", json={"query": "And refunds?", "namespace": "kettles",
                                         "model": "openai/gpt-4o-mini", "conversation_id": conversation_id})
    assert second.status_code == 200, second.text
    body = second.json()
    assert body["conversation_id"] == conversation_id and body["search_query"] == "kettle refund time"
    assert body["answer"] == "Five business days [1]." and body["citations"]
    turns = fetch(database, "SELECT role FROM conversation_turns WHERE conversation_id = %s ORDER BY id",
                  (conversation_id,))
    assert [r[0] for r in turns] == ["user", "assistant", "user", "assistant"]
    rows = fetch(database, "SELECT count(*) FROM usage_ledger WHERE kind = 'chat' AND request_id = ANY(%s)",
                 ([first.headers["x-request-id"], second.headers["x-request-id"]],))
    assert rows == [(3,)]  # one answer, then a rewrite and an answer


def test_ai_execute_cache_hit_at_temperature_zero(http: httpx.Client, fake_provider, database: str) -> None:
    body = {"prompt": f"cache me {uuid.uuid4().hex[:8]}", "model": "openai/gpt-4o-mini", "temperature": 0}
    fake_provider.queue(Reply(text="fresh", usage={"input": 100, "output": 10}))
    first, second = (http.post("/api/ai_execute", json=body) for _ in range(2))
    assert first.status_code == second.status_code == 200
    assert first.json()["cached"] is False and second.json()["cached"] is True
    assert second.json()["text"] == "fresh" and len(fake_provider.requests) == 1
    rows = fetch(database, "SELECT status, cache_hit FROM usage_ledger WHERE request_id = ANY(%s)"
                           " ORDER BY id",
                 ([first.headers["x-request-id"], second.headers["x-request-id"]],))
    assert rows == [("ok", False), ("cached", True)]


def test_reindex_moves_a_namespace_to_the_configured_model(http: httpx.Client, database: str) -> None:
    for i in range(3):
        upload(http, "old-model", f"note-{i}.txt", f"Note {i} about descaling kettles.",
               embedding_model="local/hash-16")
    report = http.get("/api/reindex")
    assert report.status_code == 200, report.text
    assert report.json()["remaining"] == 0 and report.json()["failed"] == 0
    models = fetch(database, "SELECT DISTINCT embedding_model FROM chunks WHERE namespace = 'old-model'")
    assert models == [("local/hash-384",)]
    again = http.get("/api/reindex").json()
    assert again["processed"] == 0 and again["planned"] == 0


def test_the_server_logged_no_errors(live_server: LiveServer) -> None:
    assert live_server.error_lines() == []


# --- timeouts and failures through the pooler ------------------------------------------------------


def test_timeouts_hold_through_the_pooler_and_stay_off_other_clients(pooled_url: str, env) -> None:
    env(DATABASE_URL=pooled_url, DATABASE_STATEMENT_TIMEOUT_MS="200", DATABASE_LOCK_TIMEOUT_MS="100")

    async def slow() -> errors.ApiError | None:
        try:
            async with db.connect() as conn:
                await conn.execute("SELECT pg_sleep(2)")
        except errors.ApiError as exc:
            return exc
        return None

    try:
        assert isinstance(run_async(slow), errors.DatabaseTimeout)
    finally:
        db.forget_database(pooled_url)
    # every server connection PgBouncer holds is back to the server's defaults
    with psycopg.connect(pooled_url, autocommit=True, prepare_threshold=None) as first, \
            psycopg.connect(pooled_url, autocommit=True, prepare_threshold=None) as second:
        first.execute("BEGIN")
        second.execute("BEGIN")
        settings = [c.execute("SELECT current_setting('statement_timeout'), current_setting('lock_timeout')")
                    .fetchone() for c in (first, second)]
        first.execute("COMMIT")
        second.execute("COMMIT")
    assert settings == [("0", "0"), ("0", "0")]


def test_a_pooler_that_goes_away_is_unavailable_not_busy(database: str, env) -> None:
    dbname = conninfo_to_dict(database)["dbname"]
    with run_pgbouncer() as bouncer:
        url = bouncer.url(dbname)
        env(DATABASE_URL=url, DATABASE_CONNECT_TIMEOUT_S="1", DATABASE_POOL_SIZE="2",
            DATABASE_POOL_WAIT_S="8")

        async def scenario() -> tuple[object, float]:
            async with db.connect() as conn:
                await conn.execute("SELECT 1")
            bouncer.process.terminate()
            bouncer.process.wait(timeout=10)
            started = time.monotonic()
            try:
                async with db.connect() as conn:
                    await conn.execute("SELECT 1")
            except errors.ApiError as exc:
                return exc, time.monotonic() - started
            return None, time.monotonic() - started

        try:
            failure, elapsed = run_async(scenario)
        finally:
            db.forget_database(url)
    assert type(failure) is errors.ServiceUnavailable and failure.code == "service_unavailable"
    assert elapsed < 5


# --- cold starts ----------------------------------------------------------------------------------

COLD_START = """
import asyncio, json, os, sys, time
from lib import db

go = sys.argv[1]
while not os.path.exists(go):  # every process is imported and waiting: start together
    time.sleep(0.005)

async def main():
    async with db.connect() as conn:
        cur = await conn.execute("SELECT count(*) FROM schema_migrations")
        print(json.dumps({"versions": (await cur.fetchone())[0]}))
    await db.close_pools()

asyncio.run(main())
"""


def test_concurrent_cold_starts_on_an_empty_database_migrate_once(pgbouncer: PgBouncer, tmp_path) -> None:
    name = f"cold_start_{os.getpid()}"
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin_execute(f'CREATE DATABASE "{name}"')  # empty: not even the vector extension
    go = tmp_path / "go"
    env = {**os.environ, "DATABASE_URL": pgbouncer.url(name), "PYTHONPATH": str(ROOT)}
    try:
        processes = [subprocess.Popen([sys.executable, "-c", COLD_START, str(go)], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(6)]
        time.sleep(1.0)  # let them import
        go.touch()
        outcomes = [(p.wait(timeout=60), *(s.decode() for s in p.communicate())) for p in processes]
        versions = [r[0] for r in fetch(_with_dbname(_admin_url(), name),
                                        "SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        pgbouncer.admin(f'KILL "{name}"')
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for code, out, err in outcomes:
        assert code == 0, err
        assert json.loads(out) == {"versions": len(db.migration_files())}
    assert versions == [p.stem for p in db.migration_files()]
    appliers = [err for _, _, err in outcomes if '"migrations_applied"' in err]
    assert len(appliers) == 1  # one process applied everything; the others found it done
    assert all('"level": "error"' not in err for _, _, err in outcomes)


def test_cold_starts_wait_for_a_slow_migration_instead_of_timing_out(pgbouncer: PgBouncer, tmp_path) -> None:
    """The migration lock is waited for without the lock timeout: an instance that starts while
    another migrates (here: holds the lock for 1.5 s, past a 300 ms lock timeout) waits."""
    name = f"slow_migration_{os.getpid()}"
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin_execute(f'CREATE DATABASE "{name}"')
    go = tmp_path / "go"
    go.touch()
    env = {**os.environ, "DATABASE_URL": pgbouncer.url(name), "PYTHONPATH": str(ROOT),
           "DATABASE_LOCK_TIMEOUT_MS": "300", "DATABASE_STATEMENT_TIMEOUT_MS": "300"}
    try:
        with psycopg.connect(_with_dbname(_admin_url(), name)) as holder:
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (db._MIGRATION_LOCK_ID,))
            process = subprocess.Popen([sys.executable, "-c", COLD_START, str(go)], cwd=ROOT, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(1.5)
            holder.rollback()
        code = process.wait(timeout=60)
        out, err = (s.decode() for s in process.communicate())
    finally:
        pgbouncer.admin(f'KILL "{name}"')
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert code == 0, err
    assert json.loads(out) == {"versions": len(db.migration_files())}

