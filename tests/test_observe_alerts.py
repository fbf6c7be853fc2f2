"""Budget and error-rate alerts, sent by the cron to a webhook (here a receiver on loopback) once
per period even when two cron runs race, retried when the webhook fails; and the cron's pruning."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from lib.config import Settings
from lib.observe.alerts import budget_alerts, error_rate_alert
from tests.fakes.provider_server import Reply
from tests.test_observe import query, wait_recorded


class Receiver:
    """An incoming-webhook stand-in: records each POST body, answers slowly (to widen races) with
    the next scripted status, 200 once the script is used up."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.bodies.append(json.loads(raw))
                time.sleep(0.3)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"

    def texts(self) -> list[str]:
        return [b["text"] for b in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def set_spend(database: str, period: str, amount: float) -> None:
    start = "date_trunc('day', now() AT TIME ZONE 'UTC')::date" if period == "day" else \
            "date_trunc('month', now() AT TIME ZONE 'UTC')::date"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"""
            INSERT INTO spend_counters (scope, period, period_start, spent_usd) VALUES ('global', %s, {start}, %s)
            ON CONFLICT (scope, period, period_start) DO UPDATE SET spent_usd = EXCLUDED.spent_usd""", (period, amount))


def race_crons(client, runs: int = 2) -> list[dict]:
    """Concurrent invocations of the cron, as overlapping Vercel cron calls would be."""
    with ThreadPoolExecutor(max_workers=runs) as pool:
        responses = list(pool.map(lambda _: client.get("/api/reindex"), range(runs)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json()["observe"] for r in responses]


# --- what is due ----------------------------------------------------------------------------------


def test_only_the_highest_threshold_crossed_is_sent() -> None:
    settings = Settings(budget_daily_usd=10.0, budget_monthly_usd=100.0)
    alerts = budget_alerts(settings, {"day": 8.5, "month": 49.0}, date(2026, 5, 17))
    assert [(a.key, a.suppressed) for a in alerts] == [("budget:day:50:2026-05-17", True),
                                                       ("budget:day:80:2026-05-17", False)]
    assert "85% of the daily budget of $10" in alerts[1].message
    assert budget_alerts(Settings(), {"day": 1e9}, date(2026, 5, 17)) == []


def test_error_rate_needs_enough_requests_and_a_rate_over_the_threshold() -> None:
    from datetime import UTC, datetime

    hour = datetime(2026, 5, 17, 9, tzinfo=UTC)
    settings = Settings(alert_error_rate=0.1, alert_min_requests=20)
    assert error_rate_alert(settings, 10, 10, {}, hour) is None  # too few requests to judge
    assert error_rate_alert(settings, 100, 10, {}, hour) is None  # at, not over, the threshold
    alert = error_rate_alert(settings, 100, 11, {"upstream_error": 11}, hour)
    assert alert is not None and alert.key == "error_rate:0.1:2026-05-17T09:00:00+00:00"
    assert "11 of the last hour's 100 requests" in alert.message and "upstream_error 11" in alert.message


# --- sent once, whatever the races ----------------------------------------------------------------


def test_budget_alert_reaches_the_webhook_once_when_two_crons_race(client, database, env, receiver) -> None:
    env(ALERT_WEBHOOK_URL=receiver.url, BUDGET_DAILY_USD="1.00")
    set_spend(database, "day", 0.85)
    reports = race_crons(client)
    assert len(receiver.bodies) == 1
    [body] = receiver.bodies
    assert body["text"] == body["content"] and "85% of the daily budget of $1" in body["text"]
    assert sorted(len(r["alerts"]["sent"]) for r in reports) == [0, 1]
    rows = query(database, "SELECT alert_key, suppressed, delivered_at IS NOT NULL FROM alerts ORDER BY alert_key")
    assert [(k.split(":")[2], s, d) for k, s, d in rows] == [("50", True, False), ("80", False, True)]

    race_crons(client)  # the same period: nothing new
    assert len(receiver.bodies) == 1

    set_spend(database, "day", 1.2)  # over the budget: the 100% alert, once
    race_crons(client, runs=3)
    assert len(receiver.bodies) == 2 and "the budget is spent" in receiver.bodies[1]["text"]


def test_error_rate_alert_is_sent_once_per_hour(client, fake_provider, database, env, receiver) -> None:
    env(ALERT_WEBHOOK_URL=receiver.url, ALERT_ERROR_RATE="0.25", ALERT_MIN_REQUESTS="8", MAX_RETRIES="0")
    ids = []
    for _ in range(8):
        fake_provider.queue(Reply(status=500))
        r = client.post("/api/ai_execute", json={"prompt": "x", "model": "openai/gpt-4o-mini"})
        assert r.status_code == 502
        ids.append(r.headers["x-request-id"])
    ids += [client.get("/api/health").headers["x-request-id"] for _ in range(2)]
    wait_recorded(database, ids)
    race_crons(client)
    errors = [t for t in receiver.texts() if t.startswith("Error alert")]
    assert len(errors) == 1 and "failed with a server error" in errors[0]
    race_crons(client)
    assert len([t for t in receiver.texts() if t.startswith("Error alert")]) == 1


def test_a_failed_delivery_is_retried_by_the_next_run(client, database, env, receiver) -> None:
    env(ALERT_WEBHOOK_URL=receiver.url, BUDGET_MONTHLY_USD="10")
    set_spend(database, "month", 6.0)
    receiver.statuses = [500]
    first = race_crons(client, runs=1)[0]["alerts"]
    assert first["sent"] == [] and len(first["failed"]) == 1
    [(attempts, delivered, error)] = query(database, "SELECT attempts, delivered_at, last_error FROM alerts"
                                                     " WHERE kind = 'budget_monthly'")
    assert attempts == 1 and delivered is None and "500" in error
    second = race_crons(client, runs=1)[0]["alerts"]
    assert second["sent"] == first["failed"]
    assert [t for t in receiver.texts() if "monthly" in t] == [receiver.bodies[-1]["text"]] * 2
    race_crons(client, runs=1)
    assert len([t for t in receiver.texts() if "monthly" in t]) == 2


def test_without_a_webhook_nothing_is_evaluated(client, env) -> None:
    env(ALERT_WEBHOOK_URL=None, BUDGET_DAILY_USD="0.01")
    [report] = race_crons(client, runs=1)
    assert report["alerts"] == {"enabled": False}


# --- retention ------------------------------------------------------------------------------------


def test_the_cron_prunes_raw_rows_and_hourly_rollups_past_retention(client, database, env) -> None:
    env(METRICS_RETENTION_DAYS="30")
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("""
            WITH old AS (
                INSERT INTO request_log (created_at, request_id, function, method, status, latency_ms)
                SELECT now() - make_interval(days => d), 'old-' || d, 'health', 'GET', 200, 5
                FROM generate_series(31, 45) AS d
                RETURNING *)
            SELECT observe_fold(array_agg(old::request_log)) FROM old""")
    before = dict(query(database, "SELECT grain, count(*) FROM metrics_rollup WHERE bucket_start < now() - interval "
                                  "'30 days' GROUP BY grain"))
    assert before["hour"] > 0 and before["day"] > 0
    [report] = race_crons(client, runs=1)
    assert report["pruned"]["requests"] == 15 and report["pruned"]["rollups"] >= before["hour"]
    [(old_raw,)] = query(database, "SELECT count(*) FROM request_log WHERE request_id LIKE 'old-%'")
    assert old_raw == 0
    after = dict(query(database, "SELECT grain, count(*) FROM metrics_rollup WHERE bucket_start < now() - interval "
                                 "'30 days' GROUP BY grain"))
    assert "hour" not in after and after["day"] == before["day"]  # daily rollups live 400 days
    [(lifetime,)] = query(database, "SELECT requests FROM metrics_rollup WHERE grain = 'total' AND dim = 'function'"
                                    " AND key = 'health'")
    assert lifetime >= 15  # the Prometheus counters never go down
