"""Observability: what recording every request costs, and what reading the metrics costs at scale.

Recording: two local servers on the same database, one with METRICS_ENABLED=true and one with
false, each answering `POST /api/ai_execute` (model local/echo, which writes its ledger row)
one request at a time over keep-alive, taking turns request by request; the figure is the
latency the caller sees. The write itself (`observe_record()`: the raw row and its rollups) is also timed
alone, called directly.

Reading: one million requests and one million ledger rows spread over 30 days, generated with
SQL generate_series and folded into the rollups with the same function the live path uses; then
`GET /api/metrics` for several windows and groupings, and the Prometheus scrape, on a local
server, one at a time after a warm-up.

    .venv/bin/python bench/observe.py [--requests 2000] [--rows 1000000] [--regenerate] [--quick] [--json out.json]

The generated rows are kept (database `bench_observe_read`) and read again by the next run when
it asks for as many; `--regenerate` builds them anew.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from envs import DATA_DIR, PROJECT_ROOT  # noqa: E402
from gateway import Process, free_port, wait_for_port  # noqa: E402
from measure import arguments, emit, summary, table  # noqa: E402
from pg import fresh_database, server_url, with_dbname  # noqa: E402

PROJECT_PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
READ_TARGET_MS = 300.0
QUERIES = [("24h", "function"), ("7d", "model"), ("30d", "function"), ("30d", "model"), ("30d", "user"),
           ("30d", "caller")]
CHAT_MODELS = ["openai/gpt-4o-mini", "openai/gpt-4.1", "anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5",
               "groq/llama-3.3-70b-versatile", "google/gemini-2.5-flash"]


def start_server(database_url: str, metrics_enabled: bool) -> tuple[Process, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(DATABASE_URL=database_url, METRICS_ENABLED="true" if metrics_enabled else "false", API_KEYS="",
               CACHE_TTL_S="0", RATE_LIMIT_RPM="0", LOG_LEVEL="warning")
    code = ("import uvicorn; from lib.cli.server import create_app; "
            f"uvicorn.run(create_app(), host='127.0.0.1', port={port}, log_level='warning', "
            "access_log=False, lifespan='off')")
    server = Process([str(PROJECT_PYTHON), "-c", code], env=env, quiet=True)
    wait_for_port(port, server)
    return server, f"http://127.0.0.1:{port}"


# --- recording ------------------------------------------------------------------------------------


def recording_cost(requests: int) -> dict:
    import httpx

    url = fresh_database("observe")
    servers = {mode: start_server(url, mode == "on") for mode in ("on", "off")}
    latencies: dict[str, list[float]] = {"on": [], "off": []}
    try:
        clients = {mode: httpx.Client(base_url=base, timeout=30) for mode, (_, base) in servers.items()}
        body = {"prompt": "How much does it cost to record this?", "model": "local/echo"}
        for client in clients.values():  # warm-up: imports, pools, plans
            for _ in range(100):
                client.post("/api/ai_execute", json=body).raise_for_status()
        # one request to each in turn, so both see the same load of a shared machine
        for i in range(requests):
            for mode in (("on", "off") if i % 2 == 0 else ("off", "on")):
                started = time.perf_counter()
                clients[mode].post("/api/ai_execute", json=body).raise_for_status()
                latencies[mode].append(time.perf_counter() - started)
        for client in clients.values():
            client.close()
        time.sleep(1)  # the last records land
    finally:
        for server, _ in servers.values():
            server.stop()
    write = asyncio.run(write_cost(url, requests))
    return {"on": summary(latencies["on"]), "off": summary(latencies["off"]), "write": write,
            "recorded": count(url, "SELECT count(*) FROM request_log")}


async def write_cost(url: str, n: int) -> dict:
    """The recording statement alone: one request's row and rollups, committed."""
    from lib import config, db
    from lib.observe.record import record_request
    from lib.web.trace import RequestRecord

    os.environ["DATABASE_URL"] = url
    config.reset_settings()
    settings = config.get_settings()
    timings = []
    try:
        for i in range(n):
            record = RequestRecord(f"bench-write-{i}", "ai_execute", "POST", 200, None, 12.5 + i % 40,
                                   caller="key:bench", user_id=f"user-{i % 50}", namespace="default")
            started = time.perf_counter()
            await record_request(record, settings)
            timings.append(time.perf_counter() - started)
    finally:
        await db.close_pools()
    return summary(timings)


def count(url: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        return conn.execute(sql).fetchone()[0]


# --- reading ---------------------------------------------------------------------------------------

GENERATE_REQUESTS = """
INSERT INTO request_log (created_at, request_id, function, method, status, error_code, latency_ms, ttfb_ms,
                         caller, user_id, namespace)
SELECT at, 'bench-' || i, function, 'POST', status,
       CASE status WHEN 502 THEN 'upstream_server_error' WHEN 422 THEN 'validation_error' END,
       latency, CASE WHEN streamed THEN latency * (0.2 + 0.3 * r3) END,
       'key:' || lpad(to_hex(i %% 7), 12, '0'), 'user-' || (i * 7919 %% 2000), 'ns-' || (i %% 25)
FROM (
    SELECT i, now() - (i::float8 / %(n)s) * interval '30 days' AS at,
           (ARRAY['ai_execute', 'ai_execute', 'ai_execute', 'ai_execute', 'rag', 'rag', 'embeddings',
                  'upload'])[1 + i %% 8] AS function,
           CASE WHEN r1 < 0.02 THEN 502 WHEN r1 < 0.05 THEN 422 ELSE 200 END AS status,
           -- about log-normal around 400 ms
           round(exp(ln(400) + 0.9 * (r2 + r3 + r4 - 1.5) * 2)::numeric, 3)::float8 AS latency,
           i %% 8 < 6 AND r4 < 0.6 AS streamed, r3
    FROM (SELECT i, random() AS r1, random() AS r2, random() AS r3, random() AS r4
          FROM generate_series(1, %(n)s::bigint) AS i) g
) s
"""
GENERATE_LEDGER = """
INSERT INTO usage_ledger (created_at, request_id, user_id, caller, provider, model, kind, attempt, status,
                          error_code, input_tokens, output_tokens, cost_usd, latency_ms, cache_hit, streamed)
SELECT r.created_at - make_interval(secs => r.latency_ms / 2000), r.request_id, r.user_id, r.caller,
       split_part(m.model, '/', 1), m.model, m.kind, CASE WHEN n %% 33 = 0 THEN 2 ELSE 1 END,
       CASE WHEN r.status = 502 THEN 'error' WHEN m.kind = 'chat' AND n %% 20 = 0 THEN 'cached' ELSE 'ok' END,
       CASE WHEN r.status = 502 THEN 'upstream_server_error' END,
       t.input, t.output, round(((t.input * 1.0 + t.output * 4.0) / 1e6)::numeric, 8),
       r.latency_ms * 0.8, m.kind = 'chat' AND n %% 20 = 0, r.ttfb_ms IS NOT NULL
FROM (SELECT *, substr(request_id, 7)::bigint AS n FROM request_log WHERE request_id LIKE 'bench-%%') r
CROSS JOIN LATERAL (SELECT CASE WHEN r.function IN ('embeddings', 'upload') THEN 'openai/text-embedding-3-small'
                                ELSE (%(models)s::text[])[1 + (r.n / 8) %% %(model_count)s] END AS model,
                           CASE WHEN r.function IN ('embeddings', 'upload') THEN 'embedding' ELSE 'chat' END AS kind) m
CROSS JOIN LATERAL (SELECT CASE WHEN r.status = 502 OR (m.kind = 'chat' AND r.n %% 20 = 0) THEN 0
                                ELSE 200 + (r.n * 37 %% 1800) END AS input,
                           CASE WHEN m.kind = 'embedding' OR r.status = 502 OR r.n %% 20 = 0 THEN 0
                                ELSE 20 + (r.n * 13 %% 480) END AS output) t
"""
FOLD_CHUNK = """
SELECT observe_fold(array_agg(r)) FROM request_log r
WHERE created_at >= %(start)s AND created_at < %(start)s + interval '6 hours'
"""


def generate(url: str, rows: int) -> dict:
    import psycopg

    timings = {}
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        conn.execute("SELECT setseed(0.42)")
        started = time.perf_counter()
        conn.execute(GENERATE_REQUESTS, {"n": rows})
        conn.execute(GENERATE_LEDGER, {"models": CHAT_MODELS, "model_count": len(CHAT_MODELS)})
        conn.execute("ANALYZE request_log")
        conn.execute("ANALYZE usage_ledger")
        timings["generate_s"] = time.perf_counter() - started
        started = time.perf_counter()
        # each chunk planned for its own size: a plan cached for one row would join chunks row by row
        conn.execute("SET plan_cache_mode = force_custom_plan")
        first = conn.execute("SELECT date_trunc('hour', min(created_at)) FROM request_log").fetchone()[0]
        last = conn.execute("SELECT max(created_at) FROM request_log").fetchone()[0]
        start = first
        while start <= last:
            conn.execute(FOLD_CHUNK, {"start": start})
            start += timedelta(hours=6)
        conn.execute("ANALYZE metrics_rollup")
        timings["fold_s"] = time.perf_counter() - started
        timings["requests"] = conn.execute("SELECT count(*) FROM request_log").fetchone()[0]
        timings["ledger"] = conn.execute("SELECT count(*) FROM usage_ledger").fetchone()[0]
        timings["rollup_rows"] = conn.execute("SELECT count(*) FROM metrics_rollup").fetchone()[0]
    return timings


def reading_cost(rows: int, runs: int, reuse: bool) -> dict:
    import httpx

    url = with_dbname(server_url(), "bench_observe_read")
    saved = DATA_DIR / "observe_read.json"
    if reuse and saved.exists() and json.loads(saved.read_text()).get("requests") == rows and _has_rows(url, rows):
        data = json.loads(saved.read_text())
        print(f"bench observe: reusing the {rows} generated requests", file=sys.stderr, flush=True)
    else:
        url = fresh_database("observe_read")
        data = generate(url, rows)
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(data))
    server, base = start_server(url, metrics_enabled=False)  # the reads themselves are not recorded
    results = {}
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            for window, by in QUERIES + [("prometheus", "")]:
                params = {"format": "prometheus"} if window == "prometheus" else {"window": window, "by": by}
                timings = []
                for attempt in range(runs + 2):
                    started = time.perf_counter()
                    response = client.get("/api/metrics", params=params)
                    elapsed = time.perf_counter() - started
                    response.raise_for_status()
                    if attempt >= 2:
                        timings.append(elapsed)
                label = "format=prometheus" if window == "prometheus" else f"window={window}&by={by}"
                results[label] = {**summary(timings), "bytes": len(response.content)}
                if window == "30d" and by == "function":
                    data["totals_30d"] = response.json()["totals"]["requests"]
    finally:
        server.stop()
    return {**data, "queries": results}


def _has_rows(url: str, rows: int) -> bool:
    try:
        return count(url, "SELECT count(*) FROM request_log") == rows
    except Exception:  # noqa: BLE001 - no such database yet
        return False


# --- report ---------------------------------------------------------------------------------------


def markdown(figures: dict) -> str:
    rec, read = figures["recording"], figures["reading"]
    added = (rec["on"]["p50"] - rec["off"]["p50"]) * 1000
    lines = [
        "## Observability",
        "",
        f"**Recording.** `POST /api/ai_execute` (model `local/echo`, ledger row written) on two local servers on "
        f"one database, recording on and off, {rec['on']['n']} requests each, one at a time, taking turns. "
        "The row and its rollups are written after the response is sent, so the caller does not wait for "
        "the write; what remains is the work sharing the event loop and the CPU with the next request.",
        "",
        table(["recording", "p50 ms", "p95 ms", "requests"], [
            ["on", f"{rec['on']['p50'] * 1000:.2f}", f"{rec['on']['p95'] * 1000:.2f}", rec["on"]["n"]],
            ["off", f"{rec['off']['p50'] * 1000:.2f}", f"{rec['off']['p95'] * 1000:.2f}", rec["off"]["n"]],
        ]),
        "",
        f"Added latency per request, p50: **{added:+.2f} ms**. The write itself (`observe_record()`: one "
        f"committed statement storing the row and upserting its hourly, daily and lifetime rollups), called "
        f"directly {rec['write']['n']} times: p50 {rec['write']['p50'] * 1000:.2f} ms, "
        f"p95 {rec['write']['p95'] * 1000:.2f} ms. Requests recorded in this run: {rec['recorded']}.",
        "",
        f"**Reading.** {read['requests']:,} requests and {read['ledger']:,} ledger rows over 30 days, generated with "
        f"`generate_series` (about 1 in 20 a 4xx or 5xx, 60% of chat requests streamed, 6 chat models and one "
        f"embedding model, 2,000 users, 7 keys, 25 namespaces) in {read['generate_s']:.0f} s, folded into "
        f"{read['rollup_rows']:,} rollup rows by `observe_fold()` in {read['fold_s']:.0f} s. Then "
        f"`GET /api/metrics` on a local server, {figures['runs']} runs each after 2 warm-ups, with the default "
        "`limit=25` groups and `recent=10` (so each JSON answer also lists the slowest and failed requests "
        "from the raw rows). "
        f"The 30-day totals count {read.get('totals_30d', 0):,} requests.",
        "",
        table(["query", "p50 ms", "p95 ms", "response KB", f"p50 under {READ_TARGET_MS:.0f} ms"], [
            [f"`{label}`", f"{q['p50'] * 1000:.1f}", f"{q['p95'] * 1000:.1f}", f"{q['bytes'] / 1024:.0f}",
             "yes" if q["p50"] * 1000 < READ_TARGET_MS else "**no**"]
            for label, q in read["queries"].items()
        ]),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per recording mode")
    parser.add_argument("--rows", type=int, default=1_000_000, help="requests (and ledger rows) to read over")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per metrics query")
    parser.add_argument("--regenerate", action="store_true",
                        help="generate the rows again even when a previous run left as many")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.rows, args.runs = 200, 50_000, 5
    os.environ.setdefault("LOG_LEVEL", "warning")
    print("bench observe: recording ...", file=sys.stderr, flush=True)
    recording = recording_cost(args.requests)
    print("bench observe: generating and reading ...", file=sys.stderr, flush=True)
    reading = reading_cost(args.rows, args.runs, reuse=not args.regenerate)
    figures = {"recording": recording, "reading": reading, "runs": args.runs}
    emit(args, "observe", figures, markdown(figures))


if __name__ == "__main__":
    main()
