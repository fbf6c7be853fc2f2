"""GET /api/metrics?format=prometheus: the rollups as Prometheus text (exposition format 0.0.4).

Counters and histograms count from the first request ever recorded, from the 'total' rollups
(one row per function and per model), so a scrape reads a few dozen rows and counters never go
down when old rollups are pruned. Names follow the OpenTelemetry semantic conventions as the
OpenTelemetry Prometheus exporter writes them (dots to underscores, unit suffix):

    gen_ai_client_operation_duration_seconds   histogram  one per provider call (ledger row)
    gen_ai_client_token_usage                  histogram  gen_ai_token_type="input"|"output"
    gen_ai_server_time_to_first_token_seconds  histogram  streamed chat requests we served
    http_server_request_duration_seconds       histogram  http_route="/api/<function>"

and, outside the conventions, counters of cost, failed provider calls, retries, cache hits,
fallbacks and request errors by code. Labels are bounded by design: functions and models only
(users, callers and namespaces stay in the JSON, where a window bounds them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from lib.observe.buckets import LATENCY_BOUNDS_MS, LATENCY_COUNTS, TOKEN_BOUNDS, TOKEN_COUNTS, dense

if TYPE_CHECKING:
    from psycopg import AsyncConnection

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TOTALS_SQL = """
SELECT dim, key, kind, provider, requests, error_codes, latency_ms_sum, ttfb_ms_sum, llm_requests, cache_hits,
       failed_operations, retries, fallbacks, input_tokens, output_tokens, cost_usd, operation_ms_sum,
       latency_counts, array_lower(latency_counts, 1) AS latency_counts_from,
       ttfb_counts, array_lower(ttfb_counts, 1) AS ttfb_counts_from,
       operation_counts, array_lower(operation_counts, 1) AS operation_counts_from,
       input_token_counts, array_lower(input_token_counts, 1) AS input_token_counts_from,
       output_token_counts, array_lower(output_token_counts, 1) AS output_token_counts_from
FROM metrics_rollup WHERE grain = 'total' AND dim IN ('function', 'model')
ORDER BY dim, key, kind
"""
_HISTOGRAMS = {"latency_counts": LATENCY_COUNTS, "ttfb_counts": LATENCY_COUNTS, "operation_counts": LATENCY_COUNTS,
               "input_token_counts": TOKEN_COUNTS, "output_token_counts": TOKEN_COUNTS}

_SECONDS_BOUNDS = [bound / 1000 for bound in LATENCY_BOUNDS_MS]


async def read_prometheus(conn: AsyncConnection) -> str:
    from psycopg.rows import dict_row

    async with conn.cursor(binary=True, row_factory=dict_row) as cur:
        await cur.execute(TOTALS_SQL)
        rows = await cur.fetchall()
    for row in rows:  # stored sparse: see lib/observe/buckets.py
        for column, size in _HISTOGRAMS.items():
            row[column] = dense(row[column], row.pop(column + "_from"), size)
    return render(rows)


def render(rows: Sequence[dict[str, Any]]) -> str:
    functions = [r for r in rows if r["dim"] == "function"]
    models = [r for r in rows if r["dim"] == "model"]
    out = Exposition()

    out.family("http_server_request_duration_seconds", "histogram",
               "Duration of requests to each function, until the last byte was sent.")
    for r in functions:
        out.histogram({"http_route": f"/api/{r['key']}"}, r["latency_counts"], _SECONDS_BOUNDS,
                      r["latency_ms_sum"] / 1000)
    out.family("http_server_request_errors", "counter",
               "Requests that ended in an error, by function and error code (4xx and 5xx).")
    for r in functions:
        for code, count in sorted(r["error_codes"].items()):
            out.sample("", {"http_route": f"/api/{r['key']}", "error_type": code}, count)
    out.family("gen_ai_client_fallbacks", "counter",
               "Chat models tried after the first one, by function.")
    for r in functions:
        out.sample("", {"http_route": f"/api/{r['key']}"}, r["fallbacks"])

    out.family("gen_ai_client_operation_duration_seconds", "histogram",
               "GenAI operation duration: each provider call, failed ones and retries included.")
    for r in models:
        if r["operation_counts"] is not None:
            out.histogram(_model_labels(r), r["operation_counts"], _SECONDS_BOUNDS, (r["operation_ms_sum"] or 0) / 1000)
    out.family("gen_ai_client_token_usage", "histogram",
               "Number of input and output tokens used per successful provider call.")
    for r in models:
        for token_type, counts, total in (("input", r["input_token_counts"], r["input_tokens"]),
                                          ("output", r["output_token_counts"], r["output_tokens"])):
            if counts is not None:
                out.histogram({**_model_labels(r), "gen_ai_token_type": token_type}, counts, TOKEN_BOUNDS, total)
    out.family("gen_ai_server_time_to_first_token_seconds", "histogram",
               "Time until the first byte of each streamed chat answer this bundle served.")
    for r in models:
        if r["kind"] == "chat" and r["ttfb_counts"] is not None:
            out.histogram(_model_labels(r), r["ttfb_counts"], _SECONDS_BOUNDS, r["ttfb_ms_sum"] / 1000)

    for name, column, text in (
        ("gen_ai_client_cost_usd", "cost_usd", "Cost of provider calls in US dollars, at the configured prices."),
        ("gen_ai_client_operation_errors", "failed_operations", "Provider calls that failed."),
        ("gen_ai_client_retries", "retries", "Provider calls that were a retry of a failed one."),
        ("gen_ai_client_requests", "llm_requests", "Requests that used each chat model (cache hits included)."),
        ("gen_ai_client_cache_hits", "cache_hits", "Requests answered from the response cache."),
    ):
        out.family(name, "counter", text)
        for r in models:
            if column in ("cost_usd", "failed_operations", "retries") or r["kind"] == "chat":
                out.sample("", _model_labels(r), r[column])
    return out.text()


def _model_labels(row: dict[str, Any]) -> dict[str, str]:
    provider, model = row["provider"], row["key"]
    requested = model[len(provider) + 1:] if model.startswith(provider + "/") else model
    return {"gen_ai_operation_name": "chat" if row["kind"] == "chat" else "embeddings",
            "gen_ai_system": provider, "gen_ai_provider_name": provider, "gen_ai_request_model": requested}


class Exposition:
    """Builds the text: one `# HELP` and `# TYPE` per family, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.name = ""

    def family(self, name: str, kind: str, text: str) -> None:
        # a counter is named with its `_total` suffix in the text format, as prometheus_client writes it
        self.name = name + "_total" if kind == "counter" else name
        self.lines += [f"# HELP {self.name} {text}", f"# TYPE {self.name} {kind}"]

    def sample(self, suffix: str, labels: dict[str, str], value: Any) -> None:
        self.lines.append(f"{self.name}{suffix}{_labels(labels)} {_number(value)}")

    def histogram(self, labels: dict[str, str], counts: Sequence[int], bounds: Iterable[float], total: Any) -> None:
        """Cumulative `_bucket` samples: counts[i] holds values under bounds[i] (and over bounds[i-1])."""
        cumulative = 0
        for bound, count in zip(bounds, counts, strict=False):
            cumulative += count
            self.sample("_bucket", {**labels, "le": _number(bound)}, cumulative)
        self.sample("_bucket", {**labels, "le": "+Inf"}, sum(counts))
        self.sample("_sum", labels, total)
        self.sample("_count", labels, sum(counts))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.10g}"
