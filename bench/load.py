"""Load: one local server process under many concurrent clients sending a mixed workload for a fixed
time, on loopback only, with offline providers only.

The server is `python -m lib.cli serve` with its own database (`bench_load`, recreated per run) and
the default pool. Clients are asyncio tasks sharing one httpx client; each sends its next request
as soon as the previous one is answered, until the time is up. The mix: health, ai_execute
(`local/echo`, uncached and cached), embeddings, small uploads, rag searches and rag answers
(`local/echo`, so each answer is an LLM call with a ledger row).

Reported: requests, errors by status and code, p50/p95/p99 per request kind, and the usage ledger
checked against the LLM calls served: every ai_execute and rag answer that got a 200 must have
its row (matched by the request id the client sent).

    .venv/bin/python bench/load.py [--seconds 60] [--concurrency 200] [--json out.json]
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from envs import PROJECT_ROOT  # noqa: E402
from gateway import free_port  # noqa: E402
from measure import arguments, emit, percentile, table  # noqa: E402
from pg import drop_database, fresh_database  # noqa: E402

PROJECT_PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
NAMESPACE = "load"
LLM_KINDS = ("ai_execute", "ai_execute cached", "rag answer")  # each 200 is a served LLM call

TOPICS = ["kettles", "toasters", "blenders", "espresso machines", "rice cookers", "air fryers",
          "dishwashers", "fridges", "ovens", "microwaves"]
FACTS = ["warranty lasts two years", "descaling is monthly", "refunds take five business days",
         "the filter is dishwasher safe", "spare parts ship in a week", "the manual is online"]


def document(topic: str, n: int) -> str:
    lines = [f"# {topic.title()} note {n}", ""]
    for i, fact in enumerate(FACTS):
        lines.append(f"For {topic}, the {fact}; item {n}.{i} explains why in a sentence or two of prose.")
    return "\n".join(lines) + "\n"


def next_request(rng: random.Random) -> tuple[str, str, str, dict[str, Any] | None]:
    """(kind, method, path, body) of the next request, drawn from the mix."""
    kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    topic = rng.choice(TOPICS)
    if kind == "health":
        return kind, "GET", "/api/health", None
    if kind == "ai_execute":
        return kind, "POST", "/api/ai_execute", {"model": "local/echo",
                                                 "prompt": f"Tell me about {topic} {uuid.uuid4().hex[:8]}"}
    if kind == "ai_execute cached":  # 30 distinct prompts at temperature 0: mostly cache hits
        return kind, "POST", "/api/ai_execute", {"model": "local/echo", "temperature": 0,
                                                 "prompt": f"What about {topic}? #{rng.randrange(3)}"}
    if kind == "embeddings":
        return kind, "POST", "/api/embeddings", {"input": [f"{topic} {rng.choice(FACTS)}" for _ in range(4)]}
    if kind == "upload":
        return kind, "POST", "/api/upload", {"namespace": "load-uploads", "content": document(topic, rng.randrange(10**9)),
                                             "filename": f"{topic}-{uuid.uuid4().hex[:12]}.md"}
    question = f"How long does the {topic} {rng.choice(FACTS).split()[0]} last?"
    if kind == "rag search":
        return kind, "POST", "/api/rag", {"query": question, "namespace": NAMESPACE, "answer": False}
    return kind, "POST", "/api/rag", {"query": question, "namespace": NAMESPACE, "model": "local/echo",
                                      "stream": False}


MIX = {"health": 10, "ai_execute": 20, "ai_execute cached": 15, "embeddings": 15, "upload": 10,
       "rag search": 15, "rag answer": 15}


@dataclass
class Outcome:
    kind: str
    status: int  # 0: no HTTP answer
    code: str | None
    seconds: float
    request_id: str


async def run_clients(base_url: str, seconds: float, concurrency: int, seed: int) -> tuple[list[Outcome], float]:
    import httpx

    assert base_url.startswith("http://127.0.0.1:"), "the load benchmark only talks to loopback"
    outcomes: list[Outcome] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:
        started = time.monotonic()
        end = started + seconds

        async def client_loop(number: int) -> None:
            rng = random.Random(seed * 100_003 + number)
            while time.monotonic() < end:
                kind, method, path, body = next_request(rng)
                request_id = f"load-{uuid.uuid4().hex}"
                t0 = time.perf_counter()
                try:
                    response = await client.request(method, path, json=body, headers={"x-request-id": request_id})
                    status, code = response.status_code, None
                    if status >= 400:
                        try:
                            code = response.json()["error"]["code"]
                        except (ValueError, KeyError, TypeError):
                            code = "health_unavailable" if path == "/api/health" else "non_json_error"
                except httpx.HTTPError as exc:
                    status, code = 0, type(exc).__name__
                outcomes.append(Outcome(kind, status, code, time.perf_counter() - t0, request_id))

        await asyncio.gather(*(client_loop(i) for i in range(concurrency)))
        elapsed = time.monotonic() - started
    return outcomes, elapsed


async def seed_documents(base_url: str, count: int = 30) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        for i in range(count):
            topic = TOPICS[i % len(TOPICS)]
            response = await client.post("/api/upload", json={"namespace": NAMESPACE, "filename": f"{topic}-{i}.md",
                                                              "content": document(topic, i)})
            response.raise_for_status()


def wait_until_serving(base_url: str, server: subprocess.Popen, timeout_s: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the local server exited during start-up")
        try:
            if httpx.get(f"{base_url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the local server did not answer within {timeout_s} s")


def stop(server: subprocess.Popen) -> None:
    """Stop the server we started, by its own pid."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def ledger_check(database_url: str, outcomes: list[Outcome]) -> dict[str, Any]:
    """Served LLM calls (200s of ai_execute and rag answers) against their usage-ledger rows."""
    import psycopg

    served = [o.request_id for o in outcomes if o.kind in LLM_KINDS and o.status == 200]
    failed = [o.request_id for o in outcomes if o.status != 200]
    with psycopg.connect(database_url, autocommit=True, prepare_threshold=None) as conn:
        # a request the client saw fail but the server served anyway would show up here
        rows_for_failed = conn.execute("SELECT count(*) FROM usage_ledger WHERE request_id = ANY(%s)",
                                       (failed,)).fetchone()[0]
        rows = conn.execute(
            "SELECT request_id, count(*), count(*) FILTER (WHERE status = 'cached')"
            " FROM usage_ledger WHERE kind = 'chat' AND request_id = ANY(%s) GROUP BY request_id",
            (served,)).fetchall()
        total_rows = conn.execute("SELECT count(*) FROM usage_ledger WHERE kind = 'chat'").fetchone()[0]
    per_request = {request_id: n for request_id, n, _ in rows}
    missing = [r for r in served if r not in per_request]
    return {"served_llm_calls": len(served), "ledger_rows_for_them": sum(per_request.values()),
            "served_without_row": len(missing), "requests_with_more_than_one_row":
            sum(1 for n in per_request.values() if n > 1), "cached_rows": sum(c for _, _, c in rows),
            "chat_rows_in_database": total_rows, "rows_for_failed_requests": rows_for_failed,
            "missing_examples": missing[:5]}


def server_log_summary(path: Path) -> dict[str, int]:
    """Warning and error events the server logged, by event name."""
    events: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if "Traceback" in line:
                events["traceback"] += 1
            continue
        if isinstance(record, dict) and record.get("level") in ("warning", "error"):
            events[f"{record['level']}: {record.get('event')}"] += 1
    return dict(events)


def summarise(outcomes: list[Outcome], elapsed: float, ledger: dict[str, Any], log_events: dict[str, int],
              args: Any) -> tuple[dict[str, Any], str]:
    by_kind: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_kind[outcome.kind].append(outcome)
    errors = Counter((o.status, o.code) for o in outcomes if o.status != 200)
    unexpected = {k: n for k, n in errors.items() if k[0] != 429}
    rows = []
    figures_by_kind = {}
    for kind in MIX:
        items = by_kind.get(kind, [])
        ok = [o.seconds for o in items if o.status == 200]
        figures = {"requests": len(items), "ok": len(ok), "p50_ms": percentile(ok, 0.5) * 1000,
                   "p95_ms": percentile(ok, 0.95) * 1000, "p99_ms": percentile(ok, 0.99) * 1000}
        figures_by_kind[kind] = figures
        rows.append([kind, figures["requests"], len(items) - len(ok), f"{figures['p50_ms']:.0f}",
                     f"{figures['p95_ms']:.0f}", f"{figures['p99_ms']:.0f}"])
    total = len(outcomes)
    figures = {"seconds": args.seconds, "concurrency": args.concurrency, "elapsed_s": elapsed, "requests": total,
               "requests_per_s": total / elapsed if elapsed else 0.0,
               "errors": {f"{status} {code}": n for (status, code), n in errors.items()},
               "unexpected_errors": sum(unexpected.values()), "by_kind": figures_by_kind, "ledger": ledger,
               "failed_examples": [vars(o) for o in outcomes if o.status not in (200, 429)][:20],
               "server_log": log_events}
    error_lines = ", ".join(f"{n} x {status} `{code}`" for (status, code), n in errors.most_common()) or "none"
    log_lines = ", ".join(f"{n} x {event}" for event, n in sorted(log_events.items())) or "none"
    ledger_ok = ledger["served_without_row"] == 0 and ledger["served_llm_calls"] > 0
    markdown = "\n".join([
        "## Load",
        "",
        f"One local server process (`python -m lib.cli serve`: uvicorn, one event loop, a pool of "
        f"{os.environ.get('DATABASE_POOL_SIZE', '4')} Postgres connections) on loopback; "
        f"{args.concurrency} concurrent clients, each sending its next request as soon as the last is "
        f"answered, for {args.seconds:.0f} s. Mix by weight: "
        + ", ".join(f"{kind} {weight}" for kind, weight in MIX.items())
        + ". Offline providers only (`local/echo`, `local/hash-384`); rag searches and answers run on "
        "30 seeded documents while uploads keep adding more. Latencies are of successful requests, "
        "queueing for a pooled connection included.",
        "",
        table(["request", "requests", "errors", "p50 ms", "p95 ms", "p99 ms"], rows),
        "",
        f"- {total} requests in {elapsed:.1f} s ({figures['requests_per_s']:.0f}/s); errors: {error_lines}"
        + ("" if errors else " (target: none other than deliberate 429s)") + ".",
        f"- Usage ledger: {ledger['served_llm_calls']} LLM calls served (200s of ai_execute and rag answers), "
        f"{ledger['ledger_rows_for_them']} ledger rows carry their request ids "
        f"({ledger['cached_rows']} of them cache hits); served calls without a row: "
        f"{ledger['served_without_row']}" + (" (target met)" if ledger_ok else " (target: 0)")
        + f"; rows for requests the client saw fail: {ledger['rows_for_failed_requests']}.",
        f"- Server warnings and errors logged: {log_lines}.",
    ])
    return figures, markdown


def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the clients send (default 60)")
    parser.add_argument("--concurrency", type=int, default=200, help="concurrent clients (default 200)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.concurrency = min(args.seconds, 5.0), min(args.concurrency, 20)
    if not (0 < args.seconds <= 600 and 0 < args.concurrency <= 1000):
        parser.error("keep it bounded: --seconds in (0, 600], --concurrency in (0, 1000]")

    database_url = fresh_database("load")
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="bench-load-")) / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
    env.update(DATABASE_URL=database_url, API_KEYS="", RATE_LIMIT_RPM="0", LOG_LEVEL="warning",
               DEFAULT_MODEL="local/echo", EMBEDDING_MODEL="local/hash-384", PYTHONPATH=str(PROJECT_ROOT))
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log_file:  # the server's JSON log, read for warnings afterwards
        server = subprocess.Popen([str(PROJECT_PYTHON), "-m", "lib.cli", "serve", "--port", str(port)],
                                  cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        wait_until_serving(base_url, server)
        asyncio.run(seed_documents(base_url))
        print(f"load: {args.concurrency} clients for {args.seconds:.0f} s against {base_url} ...",
              file=sys.stderr, flush=True)
        outcomes, elapsed = asyncio.run(run_clients(base_url, args.seconds, args.concurrency, args.seed))
    finally:
        stop(server)
    ledger = ledger_check(database_url, outcomes)
    figures, markdown = summarise(outcomes, elapsed, ledger, server_log_summary(log_path), args)
    emit(args, "load", figures, markdown)
    drop_database("load")


if __name__ == "__main__":
    main()
