"""Every request recorded and rolled up: known traffic through the fake provider, then the JSON
figures checked against values computed by hand (percentiles within the stated bucket error), the
Prometheus text parsed and its counters checked against the ledger, rollups that stay exact under
concurrent requests, admins only, and bad parameters refused with 4xx."""

from __future__ import annotations

import json
import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from lib.observe.buckets import LATENCY_BOUNDS_MS, PERCENTILE_ERROR, TOKEN_BOUNDS, latency_bucket, percentile
from tests.fakes.provider_server import Reply

PRICES = {"openai/gpt-4o-mini": {"input": 2.0, "output": 8.0},
          "anthropic/claude-haiku-4-5": {"input": 1.0, "output": 5.0}}


def cost(model: str, tokens_in: int, tokens_out: int) -> float:
    price = PRICES[model]
    return (tokens_in * price["input"] + tokens_out * price["output"]) / 1e6


def query(database: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(database) as conn:
        return conn.execute(sql, params or None).fetchall()


def wait_recorded(database: str, request_ids: list[str], timeout_s: float = 60) -> None:
    """Requests are recorded just after their response: wait until every one has its row (a loaded
    machine may take many seconds; a lost row still fails)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        [(n,)] = query(database, "SELECT count(*) FROM request_log WHERE request_id = ANY(%s)", (request_ids,))
        if n >= len(request_ids):
            return
        time.sleep(0.05)
    raise AssertionError(f"only {n} of {len(request_ids)} requests were recorded")


def wait_quiet(database: str) -> None:
    """Until no recording is in flight (the row count holds still for a second)."""
    last, still = -1, 0
    for _ in range(150):
        [(n,)] = query(database, "SELECT count(*) FROM request_log")
        still = still + 1 if n == last else 0
        if still >= 5:
            return
        last = n
        time.sleep(0.2)


def exact_percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def within_bucket_error(reported: float, true: float) -> bool:
    return abs(reported - true) <= PERCENTILE_ERROR * true + 1e-9


def group(document: dict, name: str | None) -> dict:
    [found] = [g for g in document["groups"] if g["group"] == name]
    return found


def metrics(client, **params) -> dict:
    r = client.get("/api/metrics", params=params)
    assert r.status_code == 200, r.text
    return r.json()


# --- buckets ----------------------------------------------------------------------------------


def test_python_and_sql_buckets_agree(database) -> None:
    [(latency, tokens)] = query(database, "SELECT observe_latency_bounds(), observe_token_bounds()")
    assert tuple(latency) == LATENCY_BOUNDS_MS
    assert [t - 0.5 for t in tokens] == list(TOKEN_BOUNDS)
    samples = [0.01, 0.1, 0.125, 0.126, 0.5, 1.0, 7.94, 12.5, 999.9, 1000.0, 12345.6, 999999.0, 1e6, 5e6]
    rows = query(database, "SELECT v, width_bucket(v, observe_latency_bounds()) FROM unnest(%s::float8[]) v",
                 (samples,))
    assert [(v, latency_bucket(v)) for v, _ in rows] == rows
    assert PERCENTILE_ERROR == pytest.approx(0.1251, abs=1e-4)


def test_percentile_is_the_geometric_middle_of_its_bucket() -> None:
    counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    for ms in (10, 20, 30, 40, 1000):
        counts[latency_bucket(ms)] += 1
    assert percentile(counts, 0.5) == pytest.approx(math.sqrt(25.1 * 31.6), abs=1e-3)  # 30 ms
    assert within_bucket_error(percentile(counts, 0.99), 1000)
    assert percentile([0] * len(counts), 0.5) is None


# --- known traffic --------------------------------------------------------------------------------


def test_known_traffic_gives_the_hand_computed_figures(client, fake_provider, database, env) -> None:
    env(PRICING_OVERRIDES=json.dumps(PRICES), MAX_RETRIES="1")
    timed, mixed = f"timed-{uuid.uuid4().hex[:6]}", f"mixed-{uuid.uuid4().hex[:6]}"
    ids: list[str] = []

    def ask(body: dict, user: str, expect: int = 200) -> dict | str:
        r = client.post("/api/ai_execute", json={"model": "openai/gpt-4o-mini", **body, "user": user})
        assert r.status_code == expect, r.text
        ids.append(r.headers["x-request-id"])
        return r.text if body.get("stream") else r.json()

    fake_provider.queue(Reply(text="warm"))  # the first call imports the SDK: not part of the timing
    assert client.post("/api/ai_execute", json={"prompt": "warm up", "model": "openai/gpt-4o-mini"}).status_code == 200
    # ten answers that take 30, 60, ... 300 ms at the provider
    delays_ms = [30 * i for i in range(1, 11)]
    for delay in delays_ms:
        fake_provider.queue(Reply(text="ok", usage={"input": 1000, "output": 100}, delay_s=delay / 1000))
        ask({"prompt": f"timed {delay}"}, timed)

    # a retry, a fallback, a failure, a cache miss then hit, and a stream
    fake_provider.queue(Reply(status=429, headers={"retry-after": "0"}), Reply(text="ok", usage={"input": 400, "output": 40}))
    ask({"prompt": "retry"}, mixed)
    fake_provider.queue(Reply(status=500), Reply(status=500), Reply(text="claude", usage={"input": 500, "output": 50}))
    ask({"prompt": "fallback", "fallbacks": ["anthropic/claude-haiku-4-5"]}, mixed)
    fake_provider.queue(Reply(status=500), Reply(status=500))
    failure_code = ask({"prompt": "fails"}, mixed, expect=502)["error"]["code"]
    cached = {"prompt": f"cache {uuid.uuid4().hex}", "temperature": 0}
    fake_provider.queue(Reply(text="fresh", usage={"input": 100, "output": 10}))
    assert ask(cached, mixed)["cached"] is False
    assert ask(cached, mixed)["cached"] is True
    fake_provider.queue(Reply(text="streamed words", usage={"input": 200, "output": 20}, delay_s=0.25))
    assert "streamed" in ask({"prompt": "stream", "stream": True}, mixed)
    wait_recorded(database, ids)

    # the timed user: counts, tokens, cost, and percentiles from buckets within the stated error
    doc = metrics(client, window="1h", by="user", limit=1000)
    t = group(doc, timed)
    assert t["requests"] == 10 and t["errors"] == 0 and t["error_rate"] == 0
    assert t["tokens"] == {"input": 10_000, "output": 1000}
    assert t["cost_usd"] == pytest.approx(10 * cost("openai/gpt-4o-mini", 1000, 100))
    assert t["llm_requests"] == 10 and t["cache_hits"] == 0 and t["operations"] == 10
    raw = [r[0] for r in query(database, "SELECT latency_ms FROM request_log WHERE user_id = %s ORDER BY created_at",
                               (timed,))]
    for measured, delay in zip(raw, delays_ms, strict=True):
        assert measured >= delay  # what the provider took, plus our own work (a busy machine adds more)
    for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert within_bucket_error(t["latency_ms"][name], exact_percentile(raw, fraction)), name
    # by hand: p50 is the 5th of ten (150 ms at the provider), p95 and p99 the 10th (300 ms)
    assert t["latency_ms"]["p50"] >= 150 * (1 - PERCENTILE_ERROR)
    assert t["latency_ms"]["p95"] == t["latency_ms"]["p99"] >= 300 * (1 - PERCENTILE_ERROR)
    assert t["latency_ms"]["mean"] == pytest.approx(sum(raw) / 10, abs=1e-3)

    # the mixed user: errors by code, retries, fallbacks, cache hit rate, time to first token
    m = group(doc, mixed)
    assert m["requests"] == 6
    assert m["errors"] == m["server_errors"] == 1 and m["client_errors"] == 0
    assert m["errors_by_code"] == {failure_code: {"count": 1, "rate": pytest.approx(1 / 6, abs=1e-6)}}
    assert m["error_rate"] == pytest.approx(1 / 6, abs=1e-6)
    assert m["retries"] == 3  # the 429's retry, and one more try of openai before each fallback/failure
    assert m["fallbacks"] == 1
    assert m["operations"] == 2 + 3 + 2 + 1 + 1 and m["failed_operations"] == 1 + 2 + 2
    assert m["llm_requests"] == 6 and m["cache_hits"] == 1 and m["cache_hit_rate"] == pytest.approx(1 / 6, abs=1e-6)
    assert m["tokens"] == {"input": 400 + 500 + 100 + 200, "output": 40 + 50 + 10 + 20}
    expected_cost = (cost("openai/gpt-4o-mini", 400, 40) + cost("anthropic/claude-haiku-4-5", 500, 50)
                     + cost("openai/gpt-4o-mini", 100, 10) + cost("openai/gpt-4o-mini", 200, 20))
    assert m["cost_usd"] == pytest.approx(expected_cost)
    assert m["ttft_ms"]["streams"] == 1 and m["ttft_ms"]["p50"] >= 250 * (1 - PERCENTILE_ERROR)
    assert m["latency_ms"]["p99"] >= m["ttft_ms"]["p99"] * (1 - 2 * PERCENTILE_ERROR)

    # by model: each call under the model that made it
    by_model = metrics(client, window="1h", by="model")
    claude = group(by_model, "anthropic/claude-haiku-4-5")
    assert claude["cost_usd"] == pytest.approx(cost("anthropic/claude-haiku-4-5", 500, 50))
    assert claude["tokens"] == {"input": 500, "output": 50} and claude["requests"] == 1
    by_provider = metrics(client, window="24h", by="provider")
    assert group(by_provider, "anthropic")["cost_usd"] == pytest.approx(claude["cost_usd"])

    # the series: one point per hour of the window, adding up to the totals
    series = doc["series"]
    assert len(series["start"]) in (2, 3) and doc["grain"] == "hour"
    assert sum(series["groups"][timed]["requests"]) == 10
    assert sum(series["total"]["requests"]) == doc["totals"]["requests"]
    assert sum(series["groups"][mixed]["cost_usd"]) == pytest.approx(expected_cost)
    assert all(len(values) == len(series["start"]) for values in series["total"].values())

    # the slowest and failed requests, with their request ids and what they called
    doc = metrics(client, window="1h", by="function", recent=5)
    slowest = doc["recent"]["slowest"]
    assert [r["latency_ms"] for r in slowest] == sorted((r["latency_ms"] for r in slowest), reverse=True)
    assert slowest[0]["request_id"] in ids and slowest[0]["latency_ms"] >= 300
    failed = [r for r in doc["recent"]["failed"] if r["request_id"] in ids]
    assert [(r["status"], r["error_code"], r["models"]) for r in failed] == [
        (502, failure_code, ["openai/gpt-4o-mini"])]
    # the day grain of the longer windows holds the same requests
    week = metrics(client, window="7d", by="user", limit=1000)
    assert week["grain"] == "day" and group(week, timed)["requests"] == 10


def test_a_stream_the_provider_breaks_counts_as_a_502(client, fake_provider, database) -> None:
    fake_provider.queue(Reply(text="one two three four", cut_after=1))
    r = client.post("/api/ai_execute", json={"prompt": "x", "model": "openai/gpt-4o-mini", "stream": True})
    assert r.status_code == 200
    request_id = r.headers["x-request-id"]
    wait_recorded(database, [request_id])
    [(status, code, ttfb)] = query(database, "SELECT status, error_code, ttfb_ms FROM request_log WHERE request_id = %s",
                                   (request_id,))
    assert status == 502 and code and code != "client_closed" and ttfb is not None


def test_a_stream_the_client_leaves_counts_as_a_499(client, fake_provider, database) -> None:
    fake_provider.queue(Reply(text="one two three four five six", chunk_delay_s=0.3))
    with client.stream("POST", "/api/ai_execute", json={"prompt": "x", "model": "openai/gpt-4o-mini",
                                                        "stream": True}) as response:
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if '"text-delta"' in line:
                break
    wait_recorded(database, [request_id])
    [(status, code)] = query(database, "SELECT status, error_code FROM request_log WHERE request_id = %s", (request_id,))
    assert (status, code) == (499, "client_closed")


def test_validation_errors_are_client_errors_of_their_function(client, database) -> None:
    ids = []
    for _ in range(3):
        r = client.post("/api/embeddings", json={"input": "x", "nope": 1})
        assert r.status_code == 422
        ids.append(r.headers["x-request-id"])
    wait_recorded(database, ids)
    embeddings = group(metrics(client, window="1h"), "embeddings")
    assert embeddings["client_errors"] >= 3 and embeddings["errors_by_code"]["validation_error"]["count"] >= 3


# --- concurrency, and rollups equal to a fold of the raw rows ---------------------------------


def test_concurrent_requests_are_all_counted(client, database) -> None:
    user = f"burst-{uuid.uuid4().hex[:6]}"

    def one(i: int) -> str:
        r = client.post("/api/ai_execute", json={"prompt": f"burst {i}", "model": "local/echo", "user": user})
        assert r.status_code == 200, r.text
        return r.headers["x-request-id"]

    with ThreadPoolExecutor(max_workers=12) as pool:
        ids = list(pool.map(one, range(48)))
    wait_recorded(database, ids)
    doc = metrics(client, window="1h", by="user", limit=1000)
    burst = group(doc, user)
    assert burst["requests"] == 48 and burst["llm_requests"] == 48 and burst["operations"] == 48
    assert burst["latency_ms"]["p50"] is not None
    assert sum(doc["series"]["groups"][user]["requests"]) == 48


def test_incremental_rollups_equal_a_fold_of_the_raw_rows(client, database) -> None:
    wait_quiet(database)
    # histograms as text, so that their subscripts (the bucket numbers) are compared too
    columns = ("grain, dim, bucket_start, key, kind, requests, client_errors, server_errors, error_codes, "
               "latency_counts::text, streams, ttfb_counts::text, llm_requests, cache_hits, operations, "
               "failed_operations, retries, fallbacks, input_tokens, output_tokens, cost_usd, operation_counts::text, "
               "input_token_counts::text, output_token_counts::text, round(latency_ms_sum::numeric, 3), "
               "round(ttfb_ms_sum::numeric, 3)")
    snapshot = f"SELECT {columns} FROM metrics_rollup ORDER BY grain, dim, bucket_start, key, kind"
    # one snapshot for every statement (a request recorded meanwhile is in neither side), rolled back
    with psycopg.connect(database) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        incremental = conn.execute(snapshot).fetchall()
        [(raw_rows,)] = conn.execute("SELECT count(*) FROM request_log").fetchall()
        conn.execute("DELETE FROM metrics_rollup")
        conn.execute("SELECT observe_fold(array_agg(r)) FROM request_log r")
        folded = conn.execute(snapshot).fetchall()
        conn.rollback()
    assert raw_rows > 60 and len(incremental) > 30
    assert incremental == folded


# --- Prometheus -----------------------------------------------------------------------------


def test_prometheus_text_parses_and_its_counters_match_the_ledger(client, fake_provider, database, env) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    env(PRICING_OVERRIDES=json.dumps(PRICES), MAX_RETRIES="0")
    fake_provider.queue(Reply(text="a", usage={"input": 300, "output": 30}), Reply(status=500),
                        Reply(text="b c", usage={"input": 70, "output": 7}))
    ids = [client.post("/api/ai_execute", json={"prompt": p, "model": "openai/gpt-4o-mini", "stream": p == "s"}
                       ).headers["x-request-id"] for p in ("a", "e", "s")]
    wait_recorded(database, ids)
    wait_quiet(database)
    r = client.get("/api/metrics", params={"format": "prometheus"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert {"gen_ai_client_operation_duration_seconds", "gen_ai_client_token_usage",
            "gen_ai_server_time_to_first_token_seconds", "http_server_request_duration_seconds",
            "gen_ai_client_cost_usd", "http_server_request_errors", "gen_ai_client_operation_errors"} <= set(families)
    assert families["gen_ai_client_operation_duration_seconds"].type == "histogram"
    assert families["gen_ai_client_cost_usd"].type == "counter"

    def samples(family: str, name: str, **labels: str) -> list[float]:
        return [s.value for s in families[family].samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    model = {"gen_ai_system": "openai", "gen_ai_request_model": "gpt-4o-mini", "gen_ai_operation_name": "chat"}
    [(ops, ok_in, ok_out, spent)] = query(database, """
        SELECT count(*) FILTER (WHERE status <> 'cached'), sum(input_tokens) FILTER (WHERE status = 'ok'),
               sum(output_tokens) FILTER (WHERE status = 'ok'), sum(cost_usd)
        FROM usage_ledger WHERE model = 'openai/gpt-4o-mini' AND request_id IN (SELECT request_id FROM request_log)""")
    duration = "gen_ai_client_operation_duration_seconds"
    assert samples(duration, duration + "_count", **model) == [ops]
    assert samples(duration, duration + "_bucket", **model, le="+Inf") == [ops]
    buckets = samples(duration, duration + "_bucket", **model)
    assert buckets == sorted(buckets) and len(buckets) == len(LATENCY_BOUNDS_MS) + 1
    tokens = "gen_ai_client_token_usage"
    assert samples(tokens, tokens + "_sum", **model, gen_ai_token_type="input") == [ok_in]
    assert samples(tokens, tokens + "_sum", **model, gen_ai_token_type="output") == [ok_out]
    assert samples("gen_ai_client_cost_usd", "gen_ai_client_cost_usd_total", **model) == [pytest.approx(float(spent))]

    [(ai_requests, ai_502, code)] = query(database, """
        SELECT count(*), count(*) FILTER (WHERE status = 502 AND ttfb_ms IS NULL),
               min(error_code) FILTER (WHERE status = 502 AND ttfb_ms IS NULL)
        FROM request_log WHERE function = 'ai_execute'""")
    http = "http_server_request_duration_seconds"
    assert samples(http, http + "_count", http_route="/api/ai_execute") == [ai_requests]
    assert samples("http_server_request_errors", "http_server_request_errors_total", http_route="/api/ai_execute",
                   error_type=code) == [ai_502]
    ttft = "gen_ai_server_time_to_first_token_seconds"
    assert samples(ttft, ttft + "_count", **model)[0] >= 1


# --- who may read, and bad input ------------------------------------------------------------------


def test_only_administrators_read_metrics(client, env) -> None:
    env(API_KEYS="admin-key,reader-key:docs|faq")
    assert client.get("/api/metrics").status_code == 401
    assert client.get("/api/metrics", headers={"authorization": "Bearer nope"}).status_code == 401
    for params in ({}, {"format": "prometheus"}):
        refused = client.get("/api/metrics", params=params, headers={"authorization": "Bearer reader-key"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    ok = client.get("/api/metrics", headers={"authorization": "Bearer admin-key"})
    assert ok.status_code == 200 and "totals" in ok.json()


@pytest.mark.parametrize(("params", "field"), [
    ({"window": "2h"}, "window"), ({"by": "color"}, "by"), ({"format": "xml"}, "format"),
    ({"limit": "abc"}, "limit"), ({"limit": "0"}, "limit"), ({"recent": "1000"}, "recent"),
    ({"sort": "\x00"}, "sort"), ("window=%ED%A0%80", "window"), ({"colour": "1"}, "colour"),
])
def test_bad_parameters_are_4xx_naming_the_field(client, params, field) -> None:
    r = client.get("/api/metrics?" + params) if isinstance(params, str) else client.get("/api/metrics", params=params)
    # 422 for a value that is not allowed; 400 for text that cannot be stored at all (a NUL)
    assert r.status_code == (400 if params == {"sort": "\x00"} else 422), r.text
    assert any(field in d["field"] for d in r.json()["error"]["details"])


def test_recording_never_fails_a_request(client, database, monkeypatch) -> None:
    from lib.observe import record

    monkeypatch.setattr(record, "RECORD_SQL", "SELECT no_such_function()")
    r = client.get("/api/health")
    assert r.status_code == 200
    time.sleep(0.5)  # the write is tried, fails and is logged after the response
    [(n,)] = query(database, "SELECT count(*) FROM request_log WHERE request_id = %s", (r.headers["x-request-id"],))
    assert n == 0


def test_recording_can_be_switched_off(client, database, env) -> None:
    env(METRICS_ENABLED="false")
    r = client.get("/api/health")
    assert r.status_code == 200
    time.sleep(0.3)
    [(n,)] = query(database, "SELECT count(*) FROM request_log WHERE request_id = %s", (r.headers["x-request-id"],))
    assert n == 0
